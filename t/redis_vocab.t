# SPDX-License-Identifier: Apache-2.0
# Redis pub/sub ingest: the three event vocabularies published with
# redis-cli on their usual channels arrive mapped; bad input from Redis is
# skipped, counted and logged without hurting anyone; the publish endpoint
# goes through Redis.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use UPM::Redis;
use UPM::Node;

my $redis = UPM::Redis->new(port => 6391)->start;
my $node = UPM::Node->new(redis => $redis->url,
                          conf => "UploadProgressRedisMaxMessage 32K\n"
                                . "UploadProgressRedisSubscribe upload-session:* user:* job:* "
                                . "project:* misc:*")->start;

sub cli {
    my (@args) = @_;
    my $out = `redis-cli -p @{[ $redis->port ]} @{[ map { "'$_'" } @args ]} 2>&1`;
    chomp $out;
    return $out;
}

my $j = $UPM::Node::JSON;
my $alice = $node->sse(token => $node->token('alice'));
my $bob = $node->sse(token => $node->token('bob'));
is($alice->status, 200, 'alice streams');
is($bob->status, 200, 'bob streams');

# [channel, event, expected type]
my @cases = (
    [ 'upload-session:s1', { event => 'PhotoUploadStarted', userId => 'alice', sessionId => 's1',
                             photoId => 'p1' }, 'upload_started' ],
    [ 'upload-session:s1', { event => 'PhotoUploadProgressed', userId => 'alice', sessionId => 's1',
                             photoId => 'p1', bytesUploaded => 455, totalBytes => 1000 },
      'upload_progress' ],
    [ 'upload-session:s1', { event => 'PhotoUploadCompleted', userId => 'alice', photoId => 'p1' },
      'upload_completed' ],
    [ 'upload-session:s1', { event => 'PhotoUploadFailed', userId => 'alice', photoId => 'p2',
                             reason => 'virus' }, 'upload_failed' ],
    [ 'job:j1', { event => 'UploadJobProgressed', userId => 'alice', jobId => 'j1',
                  bytesCompleted => 1, bytesTotal => 3 }, 'job_progress' ],
    [ 'job:j1', { event => 'UploadJobCompleted', userId => 'alice', jobId => 'j1' },
      'job_completed' ],
    # The owner from the channel alone.
    [ 'user:alice', { event => 'PhotoUploadedEvent', photoId => 'p3', projectId => 'pr1' },
      'PHOTO_UPLOADED' ],
    [ 'user:alice', { event => 'PhotoUploadFailedEvent', photoId => 'p4' }, 'PHOTO_FAILED' ],
    [ 'project:pr1', { event => 'UploadSessionCompletedEvent', userId => 'alice',
                       sessionId => 's1', projectId => 'pr1' }, 'SESSION_COMPLETED' ],
    [ 'upload-session:s2', { type => 'session_created', userId => 'alice', sessionId => 's2' },
      'session_created' ],
    [ 'upload-session:s2', { type => 'part_uploaded', userId => 'alice', sessionId => 's2',
                             progress => { partsCompleted => 1, partsTotal => 4 } },
      'part_uploaded' ],
    [ 'user:alice', { type => 'job_failed', jobId => 'j2', error => { code => 'E1' } },
      'job_failed' ],
);
for my $c (@cases) {
    my $n = cli('PUBLISH', $c->[0], $j->encode($c->[1]));
    is($n, 2, "redis-cli PUBLISH $c->[0] $c->[1]{event}/$c->[1]{type}: heard by both children")
        unless $n eq '2';
}
UPM::Node::pump([$alice], sub { $alice->messages >= @cases }, 10);
my @got = $alice->messages;
is(scalar @got, scalar @cases, 'alice received every event');
is_deeply([ map { $_->{event} } @got ], [ map { $_->[2] } @cases ],
          'in order, each with its mapped type');
is_deeply([ map { $_->{json}{type} } @got ], [ map { $_->[2] } @cases ],
          'the type inside the message too');
is(scalar(grep { ($_->{json}{userId} // '') eq 'alice' } @got), scalar @cases,
   'every message names its owner (channel user:alice filled it in)');
is($got[1]{json}{progress}, 45.5, 'progress derived from bytes: 45.5');
is($got[4]{json}{progress}, 33.33, 'job progress from bytesCompleted/bytesTotal');
is_deeply($got[10]{json}{progress}, { partsCompleted => 1, partsTotal => 4 },
          'nested progress passes through');
is($got[11]{json}{error}{code}, 'E1', 'other fields pass through');
like($got[0]{json}{timestamp} // '', qr/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/,
     'server timestamp, ISO 8601 with milliseconds');
like($got[0]{id} // '', qr/\A\d+-\d+\z/, 'ids are <epoch>-<seq> in pub/sub mode');
is($got[0]{json}{id}, $got[0]{id}, 'the id is inside the message as well');

# ---- bad input: counted, logged, skipped; nobody else is hurt
my $mark = $node->log_size;
my $big = $j->encode({ type => 'progress', userId => 'alice', pad => 'x' x (40 * 1024) });
cli('PUBLISH', 'user:alice', '{"type":');                     # invalid JSON
cli('PUBLISH', 'user:alice', '[1,2,3]');                      # not an object
cli('PUBLISH', 'user:alice', '"just a string"');
cli('PUBLISH', 'misc:s9', '{"type":"progress","progress":5}');   # no owner, no scope
# No owner on a session's channel: a message to that session, for streams
# that watch it with a grant; neither alice's nor bob's whole stream.
cli('PUBLISH', 'upload-session:s9', '{"type":"to_the_session","progress":5}');
cli('PUBLISH', 'user:alice', '{"type":"progress","userId":"bob"}');      # owner conflict
cli('PUBLISH', 'user:alice', '{"event":"NoSuchEvent"}');                 # no type
$redis->publish('user:alice', $big);                                     # over 32K
for (1 .. 30) { cli('PUBLISH', 'misc:s9', '{"type":"progress"}') }  # more no-owner
cli('PUBLISH', 'user:alice', '{"type":"after_the_junk","n":1}');
cli('PUBLISH', 'user:bob', '{"type":"for_bob"}');
UPM::Node::pump([$alice, $bob], sub {
    (grep { $_->{event} eq 'after_the_junk' } $alice->messages) && $bob->messages >= 1
}, 10);
is_deeply([ map { $_->{event} } $alice->messages ]->[-1], 'after_the_junk',
          'after bad input alice still receives the next good event');
is(scalar($alice->messages), @cases + 1, '... and none of the bad ones');
is_deeply([ map { $_->{event} } $bob->messages ], ['for_bob'],
          'bob received only his own event (not the conflicting userId one)');
ok(!$alice->eof && !$bob->eof, 'both streams still open');
my $log = substr($node->log_text, $mark);
like($log, qr/skipped a Redis message \(invalid_json\) from channel user:alice/, 'invalid JSON logged');
like($log, qr/skipped a Redis message \(not_an_object\)/, 'non-object logged');
like($log, qr/skipped a Redis message \(no_owner\) from channel misc:s9/, 'no owner logged');
unlike($log, qr/skipped a Redis message \([a-z_]+\) from channel upload-session:s9/,
       'a message to a session is not refused');
like($log, qr/skipped a Redis message \(owner_conflict\).*"bob".*"alice"/, 'owner conflict logged');
like($log, qr/skipped a Redis message \(bad_event\)/, 'unknown event logged');
like($log, qr/skipped a Redis message \(too_large\).*more than the 32768/, 'over-size message logged');
my $no_owner_lines = () = $log =~ /\(no_owner\)/g;
is($no_owner_lines, 1, '31 messages without owner: logged once (rate-limited)');
unlike($log, qr/AH13212.*x{100}/, 'the huge payload is not copied into the log');

# ---- the publish endpoint goes through Redis
my ($st, $body) = $node->publish([{ event => 'PhotoUploadStarted', userId => 'bob', photoId => 'pb' },
                                  { event => 'PhotoUploadCompleted', userId => 'bob', photoId => 'pb' }]);
is($st, 202, 'publish endpoint accepts');
is($body->{accepted}, 2, 'two accepted');
ok(!exists $body->{ids}, 'no ids in pub/sub mode (each node numbers its own)');
UPM::Node::pump([$bob], sub { $bob->messages >= 3 }, 10);
is_deeply([ map { $_->{event} } $bob->messages ], [qw(for_bob upload_started upload_completed)],
          'bob received them through Redis');

# An event too large for the listeners is refused at the endpoint.
($st, $body) = $node->publish({ type => 'x', userId => 'bob', pad => 'y' x (40 * 1024) });
is($st, 413, 'publish endpoint: a 40K event is refused when the listeners take 32K');
like($body->{message} // '', qr/UploadProgressRedisMaxMessage/, '... saying which limit');

my $stat = $node->status;
is($stat->{redis}{link}, 'up', 'status: the Redis link is up');
ok($stat->{redis}{received} >= @cases + 37, 'status: messages received from Redis counted');
ok($stat->{redis}{refused} >= 37, 'status: the refused ones counted');
is($stat->{redis}{published}, 2, 'status: the two events sent through Redis');

# Redis down: the publish endpoint answers 503 with Retry-After.
$redis->stop;
my ($st2, $b2, $h2) = $node->http('POST', '/publish', '{"type":"x","userId":"bob"}',
                                  { 'Content-Type' => 'application/json' });
is($st2, 503, 'Redis down: publish answers 503');
is($h2->{'retry-after'}, '1', '... with Retry-After');
like($b2, qr/"error":"unavailable"/, '... and a JSON reason');
my $down = 0;
for (1 .. 40) {
    my $sj = $node->status;
    if (($sj->{redis}{link} // '') eq 'down') { $down = 1; last }
    sleep 0.05;
}
ok($down, 'status: the Redis link is down');
ok($node->status->{redis}{publish_failed} >= 1, 'status: the failed send counted');

$alice->close;
$bob->close;
$node->stop;
unlike($node->log_text, qr/\[(?:crit|emerg|alert)\]|Segmentation|AddressSanitizer/i,
       'no crash or critical error in the log');
done_testing();
