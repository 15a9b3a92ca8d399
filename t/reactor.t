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
done_testing();
