# SPDX-License-Identifier: Apache-2.0
# Streams do not hold worker threads: with UploadProgressAsync On (the
# default on the event MPM) far more streams stay open than the server has
# workers, and every one of them is served.  Run only in the async mode of
# the suite (scripts/test.sh leaves it out of the UploadProgressAsync Off run).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);

# extra.conf.in: ServerLimit 4 x ThreadsPerChild 25 = 100 workers.
my $workers = 100;
my $n = 160;
my @users = map { uniq("rx$_") } 1 .. $n;
my @conns;
for my $u (@users) {
    push @conns, sse("/sse", token => token(sub => $u), timeout => 10);
}
is(scalar(grep { ($_->status // 0) == 200 } @conns), $n,
   "$n streams open at once with $workers workers");

# A plain request still gets a worker while all those streams are open.
my ($st) = publish('/publish', { type => 'probe', userId => $users[0] });
is($st, 202, 'publishing still works with every stream open');

my @evs = map { { type => 'ping', userId => $users[$_], n => $_ } } 0 .. $n - 1;
($st) = publish('/publish', \@evs);
is($st, 202, 'one event per user published');
my $done = wait_all(\@conns, sub {
    !grep { !grep { ($_->{event} // '') eq 'ping' } $_->received } @conns
}, 30);
ok($done, 'every stream received its own event');
my $wrong = 0;
for my $i (0 .. $n - 1) {
    for my $e ($conns[$i]->received) {
        next unless ($e->{event} // '') eq 'ping';
        $wrong++ if !$e->{json} || $e->{json}{userId} ne $users[$i] || $e->{json}{n} != $i;
    }
}
is($wrong, 0, 'and nothing of anyone else');
$_->close for @conns;

# Streams whose client has half-closed by the time they are handed over:
# the reactor closes them at once, while the MPM's worker may still be
# finishing the suspension.  Each gets its response and the close; no
# child dies.
{
    my $log = t_logs() . '/error_log';
    my $crashes = sub { scalar(() = file_text($log) =~ /exit signal/g) };
    my $before = $crashes->();
    my $tok = token(sub => uniq('rxquick'));
    my $served = 0;
    for my $i (1 .. 200) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(),
                                      Proto => 'tcp', Timeout => 5) or next;
        print $s "GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               . "Authorization: Bearer $tok\r\n\r\n";
        shutdown($s, 1);
        my ($buf, $deadline) = ('', time + 5);
        my $sel = IO::Select->new($s);
        while (time < $deadline && $sel->can_read($deadline - time)) {
            my $n = sysread($s, $buf, 65536, length $buf);
            last unless $n;
        }
        $served++ if $buf =~ m{\AHTTP/1\.1 200 } && $buf =~ /retry: \d+/;
        close $s;
    }
    is($served, 200, '200 streams half-closed at once: each served, then closed');
    sleep 1.5;                      # the parent notices dead children each second
    is($crashes->() - $before, 0, 'and no child crashed');
}
done_testing();
