# SPDX-License-Identifier: Apache-2.0
# Narrowed streams: the user endpoints built from <LocationMatch> named
# captures, query parameters, invalid scope ids, and that narrowing never
# widens past the user's own events.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use JSON ();

my $u = uniq('scope');
my $v = uniq('scope-other');
my $tu = token(sub => $u);
my $tv = token(sub => $v);

# Opens the streams, publishes the events (one request, through $via),
# then one closing marker per stream that the stream should see; returns
# per stream the fileIds received before its marker.
my $k = 0;
sub run_case {
    my (%o) = @_;
    my %conn;
    for my $name (sort keys %{ $o{streams} }) {
        my ($path, $token) = @{ $o{streams}{$name} };
        my $c = sse($path, token => $token);
        is($c->status, 200, "$name: GET $path 200") or diag($c->{raw_head} . "\n" . $c->body);
        $conn{$name} = $c;
    }
    my @evs = map { { type => 'file_registered', %$_ } } @{ $o{events} };
    my ($st, undef, $b) = publish($o{via} // '/publish', \@evs);
    is($st, 202, 'events published' . ($o{via} ? " through $o{via}" : ''));
    my %seen;
    for my $name (sort keys %conn) {
        my $mk = 'mk-' . ++$k;
        my $scope = $o{markers}{$name};
        publish('/publish', { type => 'file_registered', fileId => $mk, %$scope });
        my ($m, @before) = $conn{$name}->until_field('fileId', $mk, 5);
        ok($m, "$name: marker received");
        $seen{$name} = [map { $_->{json}{fileId} } @before];
        $conn{$name}->close;
    }
    return \%seen;
}

# ------------------------------------------------------------ user endpoints
{
    my $job = uniq('job');
    my $job2 = uniq('job');
    my $seen = run_case(
        streams => {
            job     => ["/api/v1/upload-progress/$job", $tu],
            job_v   => ["/api/v1/upload-progress/$job", $tv],
        },
        events => [
            { userId => $u, jobId => $job,  fileId => 'u-job' },
            { userId => $u, jobId => $job2, fileId => 'u-job2' },
            { userId => $u,                 fileId => 'u-none' },
            { userId => $v, jobId => $job,  fileId => 'v-job' },
            { userId => $u, jobId => $job,  fileId => 'u-job-b', sessionId => 's1' },
            { userId => $v, jobId => $job2, fileId => 'v-job2' },
        ],
        markers => {
            job   => { userId => $u, jobId => $job },
            job_v => { userId => $v, jobId => $job },
        },
    );
    is_deeply($seen->{job}, ['u-job', 'u-job-b'],
              "/api/v1/upload-progress/{jobId}: only that job's events of the user");
    is_deeply($seen->{job_v}, ['v-job'],
              "another user with the same jobId: only their own (narrowing never widens)");
}
{
    my $s1 = uniq('sess');
    my $s2 = uniq('sess');
    my $seen = run_case(
        streams => {
            session => ["/api/upload/sessions/$s1/stream", $tu],
            all     => ['/api/upload/sessions/notifications/stream', $tu],
            all_v   => ['/api/upload/sessions/notifications/stream', $tv],
        },
        events => [
            { userId => $u, sessionId => $s1, fileId => 'a' },
            { userId => $u, sessionId => $s2, fileId => 'b' },
            { userId => $v, sessionId => $s1, fileId => 'c' },
            { userId => $u,                   fileId => 'd', jobId => 'j' },
            { userId => $u, sessionId => 'notifications', fileId => 'e' },
            { userId => $u, sessionId => $s1, fileId => 'f' },
        ],
        via => '/ws/broadcast',
        markers => {
            session => { userId => $u, sessionId => $s1 },
            all     => { userId => $u },
            all_v   => { userId => $v },
        },
    );
    is_deeply($seen->{session}, ['a', 'f'],
              "/api/upload/sessions/{sessionId}/stream: only that session's events of the user");
    is_deeply($seen->{all}, ['a', 'b', 'd', 'e', 'f'],
              "/api/upload/sessions/notifications/stream: all of the user's events");
    is_deeply($seen->{all_v}, ['c'], "another user's whole stream: only their own");
}
{
    # A job id given as a number is a string of digits in the message.
    my $num = 700_000_000 + int(rand(99_999_999));
    my $seen = run_case(
        streams => { job => ["/api/v1/upload-progress/$num", $tu] },
        events => [ { userId => $u, jobId => $num, fileId => 'num' },
                    { userId => $u, jobId => $num + 1, fileId => 'num-plus-1' } ],
        markers => { job => { userId => $u, jobId => "$num" } },
    );
    is_deeply($seen->{job}, ['num'], 'numeric jobId matches the path segment');
}

# ------------------------------------------------------------ query narrowing
{
    my %id = map { $_ => uniq($_) } qw(job session project file);
    my $seen = run_case(
        streams => {
            q_job     => ["/sse?jobId=$id{job}", $tu],
            q_session => ["/sse?sessionId=$id{session}", $tu],
            q_project => ["/sse?projectId=$id{project}", $tu],
            q_job_v   => ["/sse?jobId=$id{job}", $tv],
        },
        events => [
            { userId => $u, jobId => $id{job}, fileId => 'j1' },
            { userId => $u, sessionId => $id{session}, fileId => 's1' },
            { userId => $u, projectId => $id{project}, fileId => 'p1' },
            { userId => $u, fileId => $id{file} },
            { userId => $v, jobId => $id{job}, fileId => 'vj' },
            { userId => $v, fileId => $id{file} },
            { userId => $u, jobId => $id{job}, projectId => $id{project}, fileId => 'jp' },
            { userId => $u, fileId => 'none' },
        ],
        markers => {
            q_job     => { userId => $u, jobId => $id{job} },
            q_session => { userId => $u, sessionId => $id{session} },
            q_project => { userId => $u, projectId => $id{project} },
            q_job_v   => { userId => $v, jobId => $id{job} },
        },
    );
    is_deeply($seen->{q_job}, ['j1', 'jp'], '?jobId=: only that job');
    is_deeply($seen->{q_session}, ['s1'], '?sessionId=: only that session');
    is_deeply($seen->{q_project}, ['p1', 'jp'], '?projectId=: only that project');
    is_deeply($seen->{q_job_v}, ['vj'], '?jobId= of another user: only their own');
}
{
    # fileId narrowing: the marker trick does not work (the marker has its
    # own fileId), so count what arrives.
    my $f = uniq('file');
    my $c = sse("/sse?fileId=$f", token => $tu);
    is($c->status, 200, '?fileId= stream');
    my ($st, undef, $b) = publish('/publish', [
        { type => 'file_registered', userId => $u, fileId => $f, n => 1 },
        { type => 'file_registered', userId => $u, fileId => "$f-x", n => 2 },
        { type => 'file_registered', userId => $v, fileId => $f, n => 3 },
        { type => 'file_completed', userId => $u, fileId => $f, n => 4 },
    ]);
    is($st, 202, 'published');
    my @got = $c->events_until(2, 5);
    push @got, $c->drain(0.5);
    is_deeply([map { $_->{json}{n} } @got], [1, 4], "?fileId=: only that file's events of the user");
    $c->close;
}
{
    # Narrowing combines with replay: only the narrowed events are replayed.
    my $j = uniq('rj');
    my ($st, undef, $b) = publish('/publish', [
        { type => 'job_complete', userId => $u, jobId => 'other', n => 0 },
        { type => 'part_uploaded', userId => $u, jobId => $j, n => 1 },
        { type => 'part_uploaded', userId => $u, jobId => 'other', n => 2 },
        { type => 'part_uploaded', userId => $v, jobId => $j, n => 3 },
        { type => 'job_complete', userId => $u, jobId => $j, n => 4 },
    ]);
    my $c = sse("/api/v1/upload-progress/$j", token => $tu,
                headers => { 'Last-Event-ID' => $b->{ids}[0] });
    my @got = $c->events_until(2, 5);
    push @got, $c->drain(0.5);
    is_deeply([map { $_->{json}{n} } @got], [1, 4], 'replay on a narrowed stream: only its events');
    $c->close;
}

# ------------------------------------------------------------ grants
# A token may grant extra ids (claim upl, DESIGN 2): a stream narrowed to
# exactly such an id receives that id's events whoever owns them.
{
    my $g = uniq('grantee');
    my $h = uniq('owner');
    my ($p, $p2, $j, $s) = map { uniq($_) } qw(proj proj2 job sess);
    my $tg = token(sub => $g, upl => { projects => [$p], jobs => [$j], sessions => [$s] });
    my $seen = run_case(
        streams => {
            g_project  => ["/sse?projectId=$p", $tg],
            g_job      => ["/api/v1/upload-progress/$j", $tg],
            g_session  => ["/api/upload/sessions/$s/stream", $tg],
            g_all      => ['/sse', $tg],
            g_project2 => ["/sse?projectId=$p2", $tg],
            n_project  => ["/sse?projectId=$p", $tv],
        },
        events => [
            { userId => $h, projectId => $p,  fileId => 'h-p' },
            { userId => $g, projectId => $p,  fileId => 'g-p' },
            { userId => $h, projectId => $p2, fileId => 'h-p2' },
            { userId => $g, projectId => $p2, fileId => 'g-p2' },
            { userId => $h, jobId => $j,      fileId => 'h-j' },
            { userId => $h, sessionId => $s,  fileId => 'h-s' },
            { userId => $h,                   fileId => 'h-none' },
            { userId => $g,                   fileId => 'g-none' },
            { userId => $v, projectId => $p,  fileId => 'v-p' },
        ],
        markers => {
            g_project  => { userId => $h, projectId => $p },
            g_job      => { userId => $h, jobId => $j },
            g_session  => { userId => $h, sessionId => $s },
            g_all      => { userId => $g },
            g_project2 => { userId => $g, projectId => $p2 },
            n_project  => { userId => $v, projectId => $p },
        },
    );
    is_deeply($seen->{g_project}, ['h-p', 'g-p', 'v-p'],
              "granted project: that project's events of every owner");
    is_deeply($seen->{g_job}, ['h-j'], 'granted job: its events of another owner');
    is_deeply($seen->{g_session}, ['h-s'], 'granted session: its events of another owner');
    is_deeply($seen->{g_all}, ['g-p', 'g-p2', 'g-none'],
              'a stream not narrowed to the granted id: only the own events');
    is_deeply($seen->{g_project2}, ['g-p2'],
              'narrowed to a project not granted: only the own events');
    is_deeply($seen->{n_project}, ['v-p'],
              'another user without the grant, same project: only the own events');
}

# ------------------------------------------------------------ invalid scope ids
for my $case (['space', 'jobId=bad%20id'],
              ['slash', 'sessionId=a%2Fb'],
              ['quote', 'projectId=a%22b'],
              ['129 chars', 'jobId=' . ('j' x 129)],
              ['non-ASCII', 'fileId=caf%C3%A9'],
              ['angle bracket', 'jobId=%3Cscript%3E']) {
    my ($name, $q) = @$case;
    my $c = sse("/sse?$q", token => $tu);
    is($c->status, 400, "invalid scope id ($name): 400");
    $c->close;
}
for my $case (['128 chars', 'jobId=' . ('j' x 128)],
              ['all allowed characters', 'sessionId=Az09._:@-x']) {
    my ($name, $q) = @$case;
    my $c = sse("/sse?$q", token => $tu);
    is($c->status, 200, "valid scope id ($name): 200");
    $c->close;
}
{
    # The session stream with a 129-character id: matched by the
    # LocationMatch, refused by the module.
    my $c = sse('/api/upload/sessions/' . ('s' x 129) . '/stream', token => $tu);
    is($c->status, 400, 'session path with a 129-character id: 400');
    $c->close;
}

# ------------------------------------------------------------ /ws/broadcast
{
    my $c = sse('/api/upload/sessions/notifications/stream', token => $tu);
    my ($st, $h, $b) = publish('/ws/broadcast',
                               { event => 'UploadSessionCompletedEvent', userId => $u,
                                 sessionId => 'bc-1', uploadedCount => 3, totalCount => 3 });
    is($st, 202, 'POST /ws/broadcast: 202');
    is($b->{accepted}, 1, 'POST /ws/broadcast: accepted 1');
    my $e = $c->next_event(5);
    is($e && $e->{event}, 'SESSION_COMPLETED', 'delivered as SESSION_COMPLETED');
    is($e && $e->{id}, $b->{ids}[0], 'with the id given to the publisher');
    $c->close;
}

done_testing();
