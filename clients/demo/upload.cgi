#!/usr/bin/perl
# The demo's upload target: reads the request body and throws it away,
# answering with the byte count.  ?slow=1 reads 64 KiB every 30 ms (about
# 2 MB/s), so that the progress of a local upload can be watched: the
# module counts the bytes as this script reads them.
use strict;
use warnings;

binmode STDIN;
my $slow = ($ENV{QUERY_STRING} // '') =~ /(?:^|&)slow=1(?:&|$)/;
my $id = $ENV{HTTP_X_PROGRESS_ID} // '';
$id = '' unless $id =~ /^[A-Za-z0-9._:@-]{1,128}$/;
my ($total, $buf, $n) = (0, '');
while (($n = read(STDIN, $buf, 65536)) && $n > 0) {
    $total += $n;
    select(undef, undef, undef, 0.03) if $slow;
}
print "Status: 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n\r\n";
print qq({"received":$total,"progressId":"$id"}\n);
