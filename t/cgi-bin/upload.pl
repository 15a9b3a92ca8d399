#!/usr/bin/perl
# SPDX-License-Identifier: Apache-2.0
# A slow upload handler for t/track.t: reads the request body in 4 KB
# pieces with a short pause after each, as an application that processes
# the upload while it arrives would, then reports what it read.
#   ?status=NNN   answer with that status (after reading the whole body)
# It answers what it read, the X-Progress-ID and the X-Progress-User it saw.
use strict;
use warnings;
use Time::HiRes qw(sleep);

binmode STDIN;
my ($total, $buf) = (0, '');
while (1) {
    my $n = sysread(STDIN, $buf, 4096);
    last unless $n;
    $total += $n;
    sleep 0.002;
}
my $status = ($ENV{QUERY_STRING} // '') =~ /(?:^|&)status=(\d{3})/ ? $1 : 200;
my $id = $ENV{HTTP_X_PROGRESS_ID} // '';
$id =~ s/[^A-Za-z0-9._:@-]//g;
# The uploader, as the module tells the application (X-Progress-User).
my $user = $ENV{HTTP_X_PROGRESS_USER} // '';
$user =~ s/[^A-Za-z0-9._:@-]//g;
print "Status: $status\r\nContent-Type: application/json\r\n\r\n";
print qq({"read":$total,"progressId":"$id","progressUser":"$user"}\n);
