# SPDX-License-Identifier: Apache-2.0
# The same system's SSE alternative, unchanged, on
# conf/seed-001-progress-sse.conf: GET /api/v1/upload-progress/{jobId}
# (text/event-stream) carries the user's messages of that job as
# `event: upload_progress` / `event: upload_completed` with their JSON;
# EventSource's reconnection (Last-Event-ID) resumes without holes; the
# polling fallback answers the same messages.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use UPM::Node;
use UPM::Server;

my $mode = UPM::Server::async_mode();
my $node = UPM::Node->new(seed => 'conf/seed-001-progress-sse.conf',
                          conf => "UploadProgressAsync $mode")->start;
my $J = $UPM::Node::JSON;
my $tok = $node->token('m-alice');
my ($st, $b, $h) = $node->http('GET', '/api/v1/upload-progress/job-1/poll', undef,
                               { Authorization => "Bearer $tok" });
is($st, 200, 'the polling fallback answers');
my $since = $J->decode($b)->{lastEventId};
my $s = $node->sse(path => '/api/v1/upload-progress/job-1', token => $tok);
is($s->status, 200, 'GET /api/v1/upload-progress/{jobId}: 200');
my $other = $node->sse(path => '/api/v1/upload-progress/job-1', token => $node->token('m-bob'));

($st) = $node->publish([
    { event => 'PhotoUploadProgressed', userId => 'm-alice', jobId => 'job-1', photoId => 'p1',
      bytesUploaded => 455, totalBytes => 1000, status => 'UPLOADING' },
    { event => 'PhotoUploadProgressed', userId => 'm-alice', jobId => 'job-2', photoId => 'p9',
      bytesUploaded => 1, totalBytes => 2 },
    { event => 'PhotoUploadCompleted', userId => 'm-alice', jobId => 'job-1', photoId => 'p1',
      status => 'COMPLETED' },
    { event => 'PhotoUploadCompleted', userId => 'm-bob', jobId => 'job-1', photoId => 'pb' },
]);
is($st, 202, 'published');
UPM::Node::pump([$s, $other], sub { $s->messages >= 2 && $other->messages >= 1 }, 5);
my @e = $s->messages;
is_deeply([map { $_->{event} } @e], [qw(upload_progress upload_completed)],
          'event: upload_progress, then event: upload_completed (that job only)');
is($e[0]{json}{progress}, 45.5, 'data: progress 45.5');
is($e[0]{json}{status}, 'UPLOADING', 'data: status');
is($e[1]{json}{status}, 'COMPLETED', 'data: COMPLETED');
is_deeply([map { $_->{json}{photoId} } $other->messages], ['pb'],
          'another user on the same job path: only their own');

my $again = $node->sse(path => '/api/v1/upload-progress/job-1', token => $tok,
                       last_id => $e[0]{id});
UPM::Node::pump([$again], sub { $again->messages >= 1 }, 5);
is_deeply([map { $_->{event} } $again->messages], ['upload_completed'],
          'reconnect with Last-Event-ID: what came after, once');

($st, $b) = $node->http('GET', "/api/v1/upload-progress/job-1/poll?since=$since", undef,
                        { Authorization => "Bearer $tok" });
my $p = $J->decode($b);
is_deeply([map { $_->{type} } @{ $p->{events} }], [qw(upload_progress upload_completed)],
          'polling: the same two messages');
$_->close for $s, $other, $again;
$node->stop;
done_testing;
