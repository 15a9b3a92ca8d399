# SPDX-License-Identifier: Apache-2.0
# Graceful restart (apachectl graceful) with Redis pub/sub ingest while
# events flow at 50/s: the old generation's feeder keeps feeding until a
# child of the new one listens and takes over, so clients that reconnect
# with Last-Event-ID miss nothing, receive nothing twice and are not reset.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use UPM::Redis;
use UPM::Node;

my $j = $UPM::Node::JSON;
my $redis = UPM::Redis->new(port => 6398)->start;
# ServerLimit above the active children: the new generation starts while
# the old one finishes (see docs/redis.md).
my $node = UPM::Node->new(redis => $redis->url, children => 2, threads => 10,
                          server_limit => 4)->start;
my $user = "gr-$$";
my $tok = $node->token($user);
my @cl = map { { c => $node->sse(token => $tok), got => [], re => 0 } } 1 .. 4;
is(scalar(grep { $_->{c}->status == 200 } @cl), 4, '4 streams open');
my $old_feeder = $node->feeder;
my $mark = $node->log_size;

my ($seq, $signalled) = (0, 0);
my $t0 = time;
my $next = $t0;
while (time - $t0 < 6) {
    $seq++;
    $redis->publish("user:$user", $j->encode({ type => 'tick', seq => $seq }));
    if (!$signalled && time - $t0 > 1.5) {
        kill 'USR1', $node->pid;        # graceful restart
        $signalled = 1;
    }
    $next += 0.02;
    my $w = $next - time;
    UPM::Node::pump([ map { $_->{c} } @cl ], sub { 0 }, $w > 0 ? $w : 0);
    for my $x (@cl) {
        next unless $x->{c}->eof;
        push @{ $x->{got} }, $x->{c}->events;
        $x->{re}++;
        $x->{c} = $node->sse(token => $tok, last_id => $x->{got}[-1]{id});
    }
}
UPM::Node::pump([ map { $_->{c} } @cl ], sub {
    !grep { !grep { ($_->{json}{seq} // 0) == $seq } $_->{c}->events } @cl
}, 10);
my ($dups, $missing, $resets) = (0, 0, 0);
for my $x (@cl) {
    push @{ $x->{got} }, $x->{c}->events;
    my %n;
    $n{ $_->{json}{seq} }++ for grep { $_->{event} eq 'tick' } @{ $x->{got} };
    $dups += grep { $n{$_} > 1 } keys %n;
    $missing += grep { !$n{$_} } 1 .. $seq;
    $resets += grep { $_->{event} eq 'reset' } @{ $x->{got} };
}
is(scalar(grep { $_->{re} } @cl), 4, 'every stream was closed by the restart and reconnected');
my $new_feeder = $node->feeder;
isnt($new_feeder, $old_feeder, 'a child of the new generation feeds the ring');
like(substr($node->log_text, $mark), qr/now feeds the ring \(lease \d+, handed over by pid $old_feeder\)/,
     'the old feeder handed over (it kept feeding until a new child listened)');
is($dups, 0, 'no event twice');
is($missing, 0, "no event missed ($seq published)");
is($resets, 0, 'no reset');
$_->{c}->close for @cl;
$node->stop;
unlike($node->log_text, qr/Segmentation|\[(?:crit|emerg|alert)\]/, 'no crash');
done_testing();
