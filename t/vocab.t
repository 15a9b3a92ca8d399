# SPDX-License-Identifier: Apache-2.0
# The event vocabularies: domain events mapped to message types, messages
# passed through, progress computed from byte counts, fields passed
# through untouched, and progress throttling per connection.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use JSON ();

my $u = uniq('vocab');
my $S = sse('/sse', token => token(sub => $u));
is($S->status, 200, 'subscriber connected') or BAIL_OUT('no SSE stream');

my $n = 0;

# Publishes one event for $u and returns the message delivered for it.
sub roundtrip {
    my ($name, $ev) = @_;
    my %e = (userId => $u, %$ev);
    my ($st, undef, $b) = publish('/publish', \%e);
    is($st, 202, "$name: published") or diag(ref $b ? JSON->new->encode($b) : $b);
    my $m = $S->next_event(5);
    ok($m && $m->{json}, "$name: delivered") or return {};
    is($m->{id}, $b->{ids}[0], "$name: the message of this event");
    return $m;
}

# ------------------------------------------------------------ mapping
my @map = (
    [PhotoUploadStarted          => 'upload_started'],
    [PhotoUploadProgressed       => 'upload_progress'],
    [PhotoUploadCompleted        => 'upload_completed'],
    [PhotoUploadFailed           => 'upload_failed'],
    [UploadJobProgressed         => 'job_progress'],
    [UploadJobCompleted          => 'job_completed'],
    [PhotoUploadedEvent          => 'PHOTO_UPLOADED'],
    [PhotoUploadFailedEvent      => 'PHOTO_FAILED'],
    [UploadSessionCompletedEvent => 'SESSION_COMPLETED'],
    [ThumbnailGenerated          => 'thumbnail_ready'],    # UploadProgressEventMap
);
for my $row (@map) {
    my ($domain, $type) = @$row;
    my $id = 'map-' . ++$n;
    my $m = roundtrip("$domain", { event => $domain, photoId => $id, jobId => "job-$id" });
    is($m->{event}, $type, "$domain -> event: $type");
    is($m->{json}{type}, $type, "$domain -> JSON type $type");
    is($m->{json}{photoId}, $id, "$domain: photoId kept");
    is($m->{json}{jobId}, "job-$id", "$domain: jobId kept");
}
for my $type (qw(session_created file_registered part_uploaded file_completed
                 session_finalized progress job_complete job_failed)) {
    my $id = 'msg-' . ++$n;
    my $m = roundtrip("type $type", { type => $type, sessionId => "s-$id", fileId => "f-$id",
                                      projectId => "p-$id" });
    is($m->{event}, $type, "$type unchanged (event line)");
    is($m->{json}{type}, $type, "$type unchanged (JSON)");
    is($m->{json}{sessionId}, "s-$id", "$type: sessionId kept");
    is($m->{json}{fileId}, "f-$id", "$type: fileId kept");
    is($m->{json}{projectId}, "p-$id", "$type: projectId kept");
}
{
    my $m = roundtrip('publisher timestamp',
                      { type => 'file_completed', fileId => 'ts', timestamp => '2026-01-02T03:04:05.678Z' });
    is($m->{json}{timestamp}, '2026-01-02T03:04:05.678Z', "the publisher's timestamp is kept");
}

# ------------------------------------------------------------ progress
my @prog = (
    ['455 of 1000', 'PhotoUploadProgressed', { bytesUploaded => 455, totalBytes => 1000 }, 45.5],
    ['1 of 3', 'PhotoUploadProgressed', { bytesUploaded => 1, totalBytes => 3 }, 33.33],
    ['2 of 3', 'UploadJobProgressed', { bytesUploaded => 2, totalBytes => 3 }, 66.67],
    ['bytesCompleted / bytesTotal', 'UploadJobProgressed',
     { bytesCompleted => 250, bytesTotal => 1000 }, 25],
    ['0 of 0 while progressing', 'PhotoUploadProgressed', { bytesUploaded => 0, totalBytes => 0 }, 0],
    ['0 of 0 on completion', 'PhotoUploadCompleted', { bytesUploaded => 0, totalBytes => 0 }, 100],
    ['1500 of 1000 clamps to 100', 'PhotoUploadProgressed',
     { bytesUploaded => 1500, totalBytes => 1000 }, 100],
    ['all of it', 'PhotoUploadCompleted', { bytesUploaded => 4096, totalBytes => 4096 }, 100],
);
for my $p (@prog) {
    my ($name, $event, $fields, $want) = @$p;
    my $m = roundtrip("progress $name", { event => $event, photoId => 'prog-' . ++$n, %$fields });
    my $got = $m->{json}{progress};
    # Encoded back before any other use: a JSON string would come out quoted.
    my $enc = JSON->new->allow_nonref->encode($got);
    like($enc, qr/\A-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\z/, "progress $name: a JSON number")
        or diag("progress: $enc");
    ok(defined $got && !ref $got && abs($got - $want) < 0.0001, "progress $name: $want")
        or diag('got ' . JSON->new->allow_nonref->encode($got));
    for my $k (keys %$fields) {
        is($m->{json}{$k}, $fields->{$k}, "progress $name: $k passes through");
    }
}

# ------------------------------------------------------------ pass-through
{
    my %f = (
        status          => 'processing',
        uploadedCount   => 7,
        totalCount      => 12,
        progressPercent => 58.3,
        reason          => 'virus scan pending',
        metadata        => { camera => 'X100', tags => ['a', 'b'], exif => { iso => 200 } },
        progress        => { partsCompleted => 3, partsTotal => 8,
                             bytesCompleted => 3145728, bytesTotal => 8388608 },
        result          => { url => 'https://cdn.upm.test/p/1.jpg', width => 4000 },
        error           => { code => 'E_SIZE', message => 'too big', retryable => JSON::false },
    );
    my $m = roundtrip('pass-through', { event => 'PhotoUploadedEvent', photoId => 'pt-1',
                                        sessionId => 'sess-pt', %f });
    for my $k (sort keys %f) {
        is_deeply($m->{json}{$k}, $f{$k}, "pass-through: $k unchanged");
    }
    is($m->{json}{sessionId}, 'sess-pt', 'pass-through: sessionId');
}
{
    my $m = roundtrip('part_uploaded with nested progress',
                      { type => 'part_uploaded', fileId => 'nested-1',
                        progress => { partsCompleted => 1, partsTotal => 4,
                                      bytesCompleted => 100, bytesTotal => 400 } });
    is_deeply($m->{json}{progress}, { partsCompleted => 1, partsTotal => 4,
                                      bytesCompleted => 100, bytesTotal => 400 },
              'nested progress object unchanged');
}
{
    my $m = roundtrip('failure reason',
                      { event => 'PhotoUploadFailedEvent', photoId => 'pf-1',
                        reason => 'checksum mismatch', error => 'E_CHECKSUM' });
    is($m->{event}, 'PHOTO_FAILED', 'PhotoUploadFailedEvent type');
    is($m->{json}{reason}, 'checksum mismatch', 'reason passes through');
    is($m->{json}{error}, 'E_CHECKSUM', 'error string passes through');
}
{
    my $m = roundtrip('session completed',
                      { event => 'UploadSessionCompletedEvent', sessionId => 'sc-1',
                        uploadedCount => 10, totalCount => 10, status => 'done' });
    is($m->{event}, 'SESSION_COMPLETED', 'UploadSessionCompletedEvent type');
    is($m->{json}{uploadedCount}, 10, 'uploadedCount');
    is($m->{json}{totalCount}, 10, 'totalCount');
    is($m->{json}{status}, 'done', 'status');
}

# ------------------------------------------------------------ throttling
# Publishes the events one by one, then a marker; returns what the
# connection received up to (not including) the marker.
sub seen_before_marker {
    my ($conn, $user, @evs) = @_;
    for my $e (@evs) {
        my ($st) = publish('/publish', { userId => $user, %$e });
        is($st, 202, 'throttle input published') unless $st == 202;
    }
    my $mk = uniq('mark');
    publish('/publish', { userId => $user, type => 'file_completed', fileId => $mk });
    my ($m, @before) = $conn->until_field('fileId', $mk, 5);
    ok($m, 'marker arrived') or diag('marker missing');
    return @before;
}
sub prog { my ($id, $done, $total, $ev) = @_;
           return { event => $ev // 'PhotoUploadProgressed', photoId => $id,
                    bytesUploaded => $done, totalBytes => $total } }

{
    my @got = seen_before_marker($S, $u,
        prog('thr-1', 455, 1000), prog('thr-1', 459, 1000), prog('thr-1', 470, 1000));
    is_deeply([map { $_->{json}{progress} } @got], [45.5, 47],
              'same photo 45.5, 45.9, 47: the client sees 45.5 and 47');
}
{
    # In one request, too.
    my $mk = uniq('mark');
    publish('/publish', [
        map({ { userId => $u, %$_ } } prog('thr-2', 100, 1000), prog('thr-2', 105, 1000),
                                       prog('thr-2', 109, 1000), prog('thr-2', 110, 1000),
                                       prog('thr-2', 300, 1000)),
        { userId => $u, type => 'file_completed', fileId => $mk } ]);
    my ($m, @got) = $S->until_field('fileId', $mk, 5);
    is_deeply([map { $_->{json}{progress} } @got], [10, 11, 30],
              'one request 10, 10.5, 10.9, 11, 30: the client sees 10, 11, 30');
}
{
    my @got = seen_before_marker($S, $u,
        prog('thr-3', 0, 1000), prog('thr-3', 5, 1000), prog('thr-3', 990, 1000),
        prog('thr-3', 995, 1000), prog('thr-3', 1000, 1000));
    is_deeply([map { $_->{json}{progress} } @got], [0, 99, 100],
              '0, 0.5, 99, 99.5, 100: 0 and 100 always, 0.5 and 99.5 coalesced');
}
{
    my @got = seen_before_marker($S, $u,
        prog('thr-4', 455, 1000), prog('thr-5', 456, 1000), prog('thr-4', 457, 1000),
        prog('thr-5', 458, 1000));
    is_deeply([map { [$_->{json}{photoId}, $_->{json}{progress}] } @got],
              [['thr-4', 45.5], ['thr-5', 45.6]],
              'throttling is per photo: two photos each get their first value');
}
{
    # Started / completed / failed are never coalesced.
    my @got = seen_before_marker($S, $u,
        { event => 'PhotoUploadStarted', photoId => 'thr-6' },
        prog('thr-6', 500, 1000), prog('thr-6', 502, 1000),
        { event => 'PhotoUploadFailed', photoId => 'thr-6', reason => 'x' },
        { event => 'PhotoUploadCompleted', photoId => 'thr-6', bytesUploaded => 503, totalBytes => 1000 });
    is_deeply([map { $_->{event} } @got],
              ['upload_started', 'upload_progress', 'upload_failed', 'upload_completed'],
              'started / failed / completed are delivered next to coalesced progress');
}
{
    my @got = seen_before_marker($S, $u,
        { type => 'job_progress', jobId => 'thr-j', progress => 20 },
        { type => 'job_progress', jobId => 'thr-j', progress => 20.4 },
        { type => 'job_progress', jobId => 'thr-j', progress => 21.5 },
        { type => 'progress', fileId => 'thr-f', bytesCompleted => 10, bytesTotal => 100 },
        { type => 'progress', fileId => 'thr-f', bytesCompleted => 105, bytesTotal => 1000 },
        { type => 'progress', fileId => 'thr-f', bytesCompleted => 12, bytesTotal => 100 });
    is_deeply([map { [$_->{event}, $_->{json}{progress}] } @got],
              [['job_progress', 20], ['job_progress', 21.5], ['progress', 10], ['progress', 12]],
              'job_progress per job and progress per file are coalesced too');
}
{
    # A second connection of the same user has its own throttle state.
    my $S2 = sse('/sse', token => token(sub => $u));
    is($S2->status, 200, 'second connection');
    my @got = seen_before_marker($S, $u, prog('thr-7', 300, 1000));
    is_deeply([map { $_->{json}{progress} } @got], [30], 'first connection: 30');
    my ($m, @got2) = $S2->until_field('photoId', 'thr-7', 5);
    is($m && $m->{json}{progress}, 30, 'second connection: 30 as well');
    @got = seen_before_marker($S, $u, prog('thr-7', 305, 1000));
    is(scalar @got, 0, 'first connection: 30.5 coalesced');
    $S2->close;
}
{
    # UploadProgressThrottle 10
    my $T = sse('/sse-throttle10', token => token(sub => $u));
    is($T->status, 200, '/sse-throttle10 connected');
    my $mk = uniq('mark');
    for my $v (455, 500, 560, 600) {
        publish('/publish', { userId => $u, %{ prog('thr-8', $v, 1000) } });
    }
    publish('/publish', { userId => $u, type => 'file_completed', fileId => $mk });
    my ($m, @got) = $T->until_field('fileId', $mk, 5);
    is_deeply([map { $_->{json}{progress} } @got], [45.5, 56],
              'throttle 10: 45.5, 50, 56, 60 -> 45.5 and 56');
    # the default connection saw every step of at least 1 point
    my ($m2, @all) = $S->until_field('fileId', $mk, 5);
    is_deeply([map { $_->{json}{progress} } @all], [45.5, 50, 56, 60],
              'throttle 1 on the other location: all four');
    $T->close;
}

$S->close;
done_testing();
