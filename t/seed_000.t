# SPDX-License-Identifier: Apache-2.0
# A per-user WebSocket progress publisher, unchanged, on
# conf/seed-000-progress-websocket.conf: the application publishes its
# domain events (PhotoUploadStarted ... UploadJobCompleted) with the
# user's id; browsers on /ws/upload-progress?token= receive upload_started
# ... job_completed with photoId, jobId, progress (2 decimals) and an
# ISO 8601 timestamp, on every connection of that user and no other.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use UPM::Node;
use UPM::WS;
use UPM::Server;

my $mode = UPM::Server::async_mode();
my $node = UPM::Node->new(seed => 'conf/seed-000-progress-websocket.conf',
                          conf => "UploadProgressAsync $mode")->start;
my $J = $UPM::Node::JSON;

sub ws {
    my ($user) = @_;
    my $ws = UPM::WS->connect('/ws/upload-progress?token=' . $node->token($user),
                              port => $node->port);
    is($ws->status, 101, "$user: /ws/upload-progress 101");
    is($ws->next_json(5)->{type}, 'connected', '... connected');
    return $ws;
}
my @alice = (ws('u-alice'), ws('u-alice'));
my $bob = ws('u-bob');

my ($job, $ph) = ('0d9f3c1e-job', '6a1b2c3d-photo');
my @evs = (
    { event => 'PhotoUploadStarted', userId => 'u-alice', photoId => $ph, jobId => $job,
      status => 'UPLOADING' },
    { event => 'PhotoUploadProgressed', userId => 'u-alice', photoId => $ph, jobId => $job,
      bytesUploaded => 455, totalBytes => 1000, status => 'UPLOADING' },
    { event => 'PhotoUploadCompleted', userId => 'u-alice', photoId => $ph, jobId => $job,
      bytesUploaded => 1000, totalBytes => 1000, status => 'COMPLETED' },
    { event => 'PhotoUploadFailed', userId => 'u-alice', photoId => 'ph-2', jobId => $job,
      status => 'FAILED', reason => 'virus found' },
    { event => 'UploadJobProgressed', userId => 'u-alice', jobId => $job,
      bytesCompleted => 1, bytesTotal => 3 },
    { event => 'UploadJobCompleted', userId => 'u-alice', jobId => $job,
      bytesCompleted => 0, bytesTotal => 0 },
    { event => 'PhotoUploadStarted', userId => 'u-bob', photoId => 'ph-b', jobId => 'job-b' },
);
my ($st) = $node->publish(\@evs);
is($st, 202, 'the domain events are accepted');

for my $ws (@alice) {
    my @m = map { $ws->next_json(5) } 1 .. 6;
    is_deeply([map { $_ && $_->{type} } @m],
              [qw(upload_started upload_progress upload_completed upload_failed
                  job_progress job_completed)], 'every connection of the user: the six types');
    is($m[1]{progress}, 45.5, 'upload_progress: progress = bytesUploaded / totalBytes * 100');
    is($m[4]{progress}, 33.33, 'job_progress: rounded to 2 decimals');
    is($m[2]{progress}, 100, 'upload_completed: 100');
    is($m[5]{progress}, 100, 'job_completed with a total of 0: 100');
    ok(!grep({ ($_->{timestamp} // '') !~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/ } @m),
       'every message has an ISO 8601 timestamp');
    ok(!grep({ ($_->{jobId} // '') ne $job } @m), 'every message has the jobId');
    is_deeply([map { $_->{photoId} } @m[0 .. 3]], [$ph, $ph, $ph, 'ph-2'], 'photo events: photoId');
    is($m[1]{status}, 'UPLOADING', 'other fields pass through (status)');
    is($m[3]{reason}, 'virus found', '... (reason)');
}
my @b = ($bob->next_json(5), $bob->drain_json(0.3));
is_deeply([map { $_->{photoId} } @b], ['ph-b'], 'the other user: only their own event');
$_->close for @alice, $bob;
$node->stop;
done_testing;
