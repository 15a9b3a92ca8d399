# SPDX-License-Identifier: Apache-2.0
# Redis Streams mode, what a client sees of ids and times:
#  - an entry XADDed without a timestamp carries its entry id's time, live
#    and on every replay, on every server (ring replay, and the read-back
#    of a server that never held it);
#  - a stream that has no entry yet opens new streams at 0-0, and a client
#    that resumes from there gets everything added since, without a reset;
#  - resuming from an id inside the stream that no entry has is a position:
#    what follows it is replayed, no reset; an id after the newest entry the
#    stream ever had is `invalid`;
#  - the status page shows the stream ids clients see, and counts the
#    events this server's publish handler sent to Redis;
#  - with Redis down, tracking's error names Redis, not the ring.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX qw(strftime);
use Time::HiRes qw(sleep);
use UPM::Redis;
use UPM::Node;

my $j = $UPM::Node::JSON;
my $redis = UPM::Redis->new(port => 6441)->start;
my $key = "upm:ids:$$";

sub iso_of_id {
    my ($id) = @_;
    my ($ms) = $id =~ /\A(\d+)-/ or return '';
    return strftime('%Y-%m-%dT%H:%M:%S', gmtime(int($ms / 1000))) . sprintf('.%03dZ', $ms % 1000);
}

my $a = UPM::Node->new(redis => $redis->url, stream => $key)->start;
my $u = "ids-$$";
my $tok = $a->token($u);

# An empty stream: the position is its beginning.
my $first = $a->sse(token => $tok);
UPM::Node::pump([$first], sub { defined $first->open_id }, 5);
is($first->open_id, '0-0', 'on a stream with no entry yet a new stream opens at 0-0');
$first->close;

my $live = $a->sse(token => $tok);
my @ids;
for my $n (1 .. 3) {
    push @ids, $redis->cmd('XADD', $key, '*', 'data', $j->encode({ type => 'step', userId => $u, n => $n }));
    sleep 0.05;
}
UPM::Node::pump([$live], sub { $live->messages >= 3 }, 5);
my @got = $live->messages;
is_deeply([ map { $_->{id} } @got ], \@ids, 'live: the stream ids');
is_deeply([ map { $_->{json}{timestamp} } @got ], [ map { iso_of_id($_) } @ids ],
          'live: an entry without timestamp carries its id\'s time');
$live->close;

# From 0-0 (what the first stream opened with): everything, no reset.
my $from0 = $a->sse(token => $tok, last_id => '0-0');
UPM::Node::pump([$from0], sub { $from0->messages >= 3 }, 5);
is_deeply([ map { $_->{json}{n} } $from0->messages ], [1, 2, 3],
          'resuming from 0-0 gives what was added since');
is(scalar($from0->of_type('reset')), 0, '... without a reset');
$from0->close;

sleep 1.1;    # any time taken at read or replay would now differ by a second

# Replayed from this server's ring.
my $r1 = $a->sse(token => $tok, last_id => $ids[0]);
UPM::Node::pump([$r1], sub { $r1->messages >= 2 }, 5);
is_deeply([ map { $_->{json}{timestamp} } $r1->messages ], [ map { iso_of_id($_) } @ids[1, 2] ],
          'ring replay: the same timestamps as live');
$r1->close;

# A server started now reads them back from the stream.
my $b = UPM::Node->new(redis => $redis->url, stream => $key)->start;
my $r2 = $b->sse(token => $tok, last_id => $ids[0]);
UPM::Node::pump([$r2], sub { $r2->messages >= 2 }, 5);
is_deeply([ map { $_->{id} } $r2->messages ], [ @ids[1, 2] ], 'read back from the stream on B');
is_deeply([ map { $_->{json}{timestamp} } $r2->messages ], [ map { iso_of_id($_) } @ids[1, 2] ],
          '... with the same timestamps');
$r2->close;

# A publisher's own timestamp is kept.
my $own = $redis->cmd('XADD', $key, '*', 'data',
                      $j->encode({ type => 'step', userId => $u, n => 4,
                                   timestamp => '2026-01-02T03:04:05.678Z' }));
my $r3 = $b->sse(token => $tok, last_id => $ids[2]);
UPM::Node::pump([$r3], sub { $r3->messages >= 1 }, 5);
is(($r3->messages)[0]{json}{timestamp}, '2026-01-02T03:04:05.678Z', "a publisher's timestamp is kept");
$r3->close;

# An id inside the stream that no entry has: a position.
my ($ms, $seq) = $ids[1] =~ /\A(\d+)-(\d+)\z/;
my $never = "$ms-" . ($seq + 1000);
my $r4 = $b->sse(token => $tok, last_id => $never);
UPM::Node::pump([$r4], sub { $r4->messages >= 2 }, 5);
UPM::Node::pump([$r4], sub { 0 }, 0.3);
is_deeply([ map { $_->{json}{n} } $r4->messages ], [3, 4],
          'a never-issued id inside the stream: what follows it is replayed');
is(scalar($r4->of_type('reset')), 0, '... no reset');
$r4->close;

# After the newest entry the stream ever had: invalid.
my $future = ($ms + 86400000) . '-0';
for my $node ($a, $b) {
    my $r5 = $node->sse(token => $tok, last_id => $future);
    UPM::Node::pump([$r5], sub { $r5->of_type('reset') }, 5);
    my ($reset) = $r5->of_type('reset');
    is($reset && $reset->{json}{reason}, 'invalid', 'an id after the stream\'s newest: reset invalid');
    $r5->close;
}

# The status page: stream ids, and the publish handler's events counted.
my ($st, $body) = $a->publish([ map { { type => 'step', userId => $u, n => 100 + $_ } } 1 .. 4 ]);
is($st, 202, 'four events POSTed');
my $newest = $body->{ids}[-1];
my $c = $a->sse(token => $tok, last_id => $own);
UPM::Node::pump([$c], sub { $c->messages >= 4 }, 5);
$c->close;
my $s = $a->status;
is($s->{ring}{last_id}, $newest, 'status last_id is the stream id clients see');
is($s->{ring}{oldest_id}, $ids[0], 'oldest_id is a stream id too');
is($s->{events}{publish}, 4, 'status counts the POSTed events as publish in Redis mode');
cmp_ok($s->{events}{redis}, '>=', 8, 'and every ring append as redis (they came through the stream)');

$a->stop;
$b->stop;

# Redis down: the error log names Redis, not the ring, when upload tracking
# cannot publish.
{
    my $d = UPM::Node->new(redis => 'redis://127.0.0.1:6442',
                           conf => "UploadProgressRedisTimeout 200\n")->start(no_wait_feeder => 1);
    my ($st) = $d->http('POST', '/track-pub', $j->encode({ type => 'note', userId => $u }),
                        { 'Content-Type' => 'application/json', 'X-Progress-ID' => "down-$$",
                          Authorization => 'Bearer ' . $d->token($u, scope => 'progress:publish') });
    is($st, 503, 'with Redis down the publish answers 503') or diag $d->log_text;
    my $log = $d->log_text;
    like($log, qr/AH13308: upload down-$$: cannot publish upload_started: Redis is unavailable/,
         'tracking says Redis is unavailable');
    unlike($log, qr/event ring is not available/, '... and does not blame the ring');
    $d->stop;
}
done_testing();
