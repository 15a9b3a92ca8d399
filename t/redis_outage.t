# SPDX-License-Identifier: Apache-2.0
# Redis stopped and started again (without persistence) while clients are
# connected, in pub/sub and in Streams mode: the connections survive and
# keep getting heartbeats, a `reset` (reason "redis") arrives, new events
# flow again within 5 s of Redis coming back, and the error log says when
# the link went down and came back.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use UPM::Redis;
use UPM::Node;

my $redis = UPM::Redis->new(port => 6395)->start;
my $j = $UPM::Node::JSON;

for my $mode ('pubsub', 'stream') {
my $key = "upm:out:$$";
my $node = UPM::Node->new(redis => $redis->url, ($mode eq 'stream' ? (stream => $key) : ()))
                        ->start;
my $user = "out-$mode-$$";
note("---- $mode");
my $send = sub {
    my ($ev) = @_;
    return $mode eq 'stream'
        ? $redis->cmd('XADD', $key, '*', 'data', $j->encode($ev), 'channel', "user:$user")
        : $redis->publish("user:$user", $j->encode($ev));
};
my @c = map { $node->sse(token => $node->token($user)) } 1 .. 4;
is(scalar(grep { $_->status == 200 } @c), 4, '4 streams open');

$send->({ type => 'before', n => 1 });
UPM::Node::pump(\@c, sub { !grep { !$_->of_type('before') } @c }, 5);
is(scalar(grep { $_->of_type('before') } @c), 4, 'an event before the outage arrives');

my $mark = $node->log_size;
$redis->stop;
my $t_down = time;
my @beats0 = map { $_->beats } @c;
UPM::Node::pump(\@c, sub { 0 }, 3);
my @beats1 = map { $_->beats } @c;
is(scalar(grep { $_->eof } @c), 0, 'no connection closed during the outage');
is(scalar(grep { $beats1[$_] - $beats0[$_] >= 2 } 0 .. $#c), 4,
   'heartbeats kept coming during the outage (1 s interval)');

$redis->start;
my $t_back = time;
my ($n, $first_new) = (0, undef);
while (time - $t_back < 8) {
    $n++;
    eval { $send->({ type => 'after', n => $n }) };
    UPM::Node::pump(\@c, sub { !grep { !$_->of_type('after') } @c }, 0.1);
    if (!grep { !$_->of_type('after') } @c) {
        $first_new = time;
        last;
    }
}
ok($first_new, 'events flow again after Redis came back');
ok($first_new && $first_new - $t_back <= 5, sprintf 'within 5 s (%.2f s)',
   ($first_new // 99) - $t_back);
UPM::Node::pump(\@c, sub { 0 }, 0.3);

my $ok_order = 0;
for my $cl (@c) {
    my @ev = map { $_->{event} } $cl->events;
    my ($ri) = grep { $ev[$_] eq 'reset' } 0 .. $#ev;
    my ($ai) = grep { $ev[$_] eq 'after' } 0 .. $#ev;
    $ok_order++ if defined $ri && defined $ai && $ri < $ai;
}
is($ok_order, 4, 'every client got a reset, before the first new event');
my @resets = map { $_->of_type('reset') } @c;
is(scalar(grep { ($_->{json}{reason} // '') eq 'redis' } @resets), scalar(@resets),
   'reset reason "redis"');
ok(!grep({ $_->eof } @c), 'still connected');

my $log = substr($node->log_text, $mark);
like($log, qr/Redis link lost \(.*\) while feeding the ring/, 'the log says when the link went down');
like($log, qr/the Redis link is back after \d+\.\d s down/, '... and when it came back');
like($log, $mode eq 'stream' ? qr/Redis ingest gap \(entries after the last one read are no longer/
                             : qr/Redis ingest gap/, '... and that clients were reset');

# A client that missed the outage altogether (it was reconnecting) and
# resumes from an id before the gap is reset too, not silently short.
my $old_id = ($c[0]->of_type('before'))[0]{id};
my $late = $node->sse(token => $node->token($user), last_id => $old_id);
UPM::Node::pump([$late], sub { $late->events >= 1 }, 5);
my @le = $late->events;
is($le[0]{event}, 'reset', 'resume from before the gap starts with a reset');
is($le[0]{json}{reason}, 'redis', '... reason redis');
$late->close;

# Resuming from the reset's own id is no reason for another reset.
my $rid = ($c[1]->of_type('reset'))[0]{id};
my $again = $node->sse(token => $node->token($user), last_id => $rid);
UPM::Node::pump([$again], sub { $again->events >= 1 }, 2);
is(scalar($again->of_type('reset')), 0, 'resume from the reset id: no second reset');
ok(scalar($again->of_type('after')) >= 1, '... and the events after it are replayed');
$again->close;

$_->close for @c;
$node->stop;
unlike($node->log_text, qr/Segmentation|\[(?:crit|emerg|alert)\]/, 'no crash');
}
done_testing();
