# SPDX-License-Identifier: Apache-2.0
# Upload tracking takes jobId / sessionId from the client (query, X-Job-ID,
# X-Session-ID).  Its events reach the uploader's streams only (and the
# scopes the uploader's own token grants), never a stream that watches the
# id through another user's grant: otherwise any signed-in user could push
# upload_started / upload_progress / upload_failed into a session or job
# stream that someone else was granted.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::Upload;
use Time::HiRes qw(sleep time);

my $victim = uniq('tg-victim');
my $mallory = uniq('tg-mallory');
my $owner = uniq('tg-owner');
my ($sess, $job) = (uniq('tg-sess'), uniq('tg-job'));

# The victim is granted the session and the job (they are the owner's).
my $tv = token(sub => $victim, upl => { sessions => [$sess], jobs => [$job] });
# Mallory is signed in and has no grant; an uploader with the same grants
# as the victim watches its own upload through them.
my $tm = token(sub => $mallory);
my $tu_name = uniq('tg-uploader');
my $tu = token(sub => $tu_name, upl => { sessions => [$sess], jobs => [$job] });

my %s = (
    v_session => sse("/api/upload/sessions/$sess/stream", token => $tv),
    v_job     => sse("/api/v1/upload-progress/$job", token => $tv),
    u_session => sse("/api/upload/sessions/$sess/stream", token => $tu),
    m_own     => sse('/sse', token => $tm),
);
is($s{$_}->status, 200, "$_: stream open") for sort keys %s;

# An id from before the uploads, to replay from later.
publish('/publish', { type => 'file_registered', userId => $owner, sessionId => $sess,
                      fileId => 'start' });
my ($start) = $s{v_session}->until_field('fileId', 'start', 10);
ok($start && $start->{id}, 'granted session stream: an id before the uploads');

sub upload {
    my ($path, $tok, $id, %h) = @_;
    my $u = UPM::Upload->start($path, size => 4096, token => $tok, id => $id,
                               headers => \%h);
    $u->send_all(piece => 4096);
    my $res = $u->response(10);
    is($res->{status}, 200, "upload $id answered 200");
}

my ($m1, $m2, $m3) = map { uniq('tg-up') } 1 .. 3;
upload('/track/upload.pl', $tm, $m1, 'X-Session-ID' => $sess, 'X-Job-ID' => $job);
upload("/track/upload.pl?sessionId=$sess&jobId=$job", $tm, $m2);
my $ui = uniq('tg-own');
upload('/track/upload.pl', $tu, $ui, 'X-Session-ID' => $sess);

# Markers from the application: an event of the session's owner does reach
# the granted streams (the grant works), and closes what is looked at.
my ($st) = publish('/publish', [
    { type => 'file_registered', userId => $owner, sessionId => $sess, jobId => $job,
      fileId => 'marker' } ]);
is($st, 202, 'application event for the session published');

for my $name (qw(v_session v_job)) {
    my ($mk, @before) = $s{$name}->until_field('fileId', 'marker', 10);
    ok($mk, "$name: the application's event arrives");
    my @up = grep { ($_->{json}{type} // '') =~ /^upload_/ } @before;
    my @mine = grep { ($_->{json}{photoId} // '') =~ /^\Q$m1\E$|^\Q$m2\E$/ } @up;
    is(scalar @mine, 0, "$name: none of the other user's upload events")
        or diag(join ' ', map { "$_->{json}{type}:$_->{json}{photoId}" } @mine);
    my @own = grep { ($_->{json}{photoId} // '') eq $ui } @up;
    is(scalar @own, 0, "$name: nor the granted uploader's (not the victim's upload)");
}

# The uploader's own streams: its own events, through its own grant too.
{
    my ($mk, @before) = $s{u_session}->until_field('fileId', 'marker', 10);
    ok($mk, 'uploader session stream: marker');
    my @own = grep { ($_->{json}{photoId} // '') eq $ui } @before;
    like(join(' ', map { $_->{json}{type} } @own), qr/\Aupload_started.*upload_completed\z/,
         'uploader watching the session through its own grant gets its upload');
    my @other = grep { ($_->{json}{photoId} // '') =~ /^\Q$m1\E$|^\Q$m2\E$/ } @before;
    is(scalar @other, 0, "uploader session stream: not mallory's uploads");
}
{
    my @ev;
    $s{m_own}->wait_for(sub {
        @ev = grep { ($_->{json}{type} // '') eq 'upload_completed' } @{ $s{m_own}{events} };
        @ev >= 2 }, 10);
    is(scalar @ev, 2, "mallory's own stream gets both of its uploads");
    is_deeply([sort map { $_->{json}{sessionId} } @ev], [$sess, $sess],
              'with the session id it named');
}

# A stream opened afterwards that replays from the start of the ring (a
# resume) does not get them either.
{
    my $r = sse("/api/upload/sessions/$sess/stream", token => $tv,
                headers => { 'Last-Event-ID' => $start->{id} });
    my ($mk, @got) = $r->until_field('fileId', 'marker', 10);
    ok($mk, 'replay to a granted stream: the application event again');
    ok(!grep({ ($_->{json}{type} // '') eq 'reset' || ($_->{event} // '') eq 'reset' } @got),
       'replay: no reset (the ring still holds it all)');
    my @up = grep { ($_->{json}{type} // '') =~ /^upload_/ } @got;
    is(scalar @up, 0, 'replay to a granted stream: no upload events of others')
        or diag(join ' ', map { $_->{json}{type} } @up);
    $r->close;
}
$_->close for values %s;

done_testing();
