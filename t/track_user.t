# SPDX-License-Identifier: Apache-2.0
# The application behind a tracked location learns who uploaded: the module
# sets X-Progress-User to the upload's authenticated user on the request it
# hands on (proxy, CGI, ...), and removes any X-Progress-User a client sent
# in a tracking location, so the application can trust it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::Upload;

my $u = uniq('tu');
my $tok = token(sub => $u);
my $sub = sse('/sse', token => $tok);
is($sub->status, 200, "the uploader's stream is open");

sub upload {
    my ($path, %o) = @_;
    my $up = UPM::Upload->start($path, size => 5000, %o);
    $up->send_all(piece => 5000);
    return $up->response(10);
}

my $id = "tu-$$";
my $res = upload('/track/upload.pl', token => $tok, id => $id,
                 headers => { 'X-Progress-User' => 'mallory' });
is($res->{status}, 200, 'tracked upload answered');
is($res->{json}{progressId}, $id, 'the application saw the progress id');
is($res->{json}{progressUser}, $u, 'and X-Progress-User: the authenticated uploader, not the client\'s value');
my ($done) = grep { $_->{event} eq 'upload_completed' } $sub->events_until(3, 10);
is($done && $done->{json}{userId}, $u, 'the events went to that same user');

$res = upload('/track/upload.pl', token => $tok, headers => { 'X-Progress-User' => 'mallory' });
is($res->{status}, 200, 'an untracked upload (no progress id) in the location');
is($res->{json}{progressUser}, '', "a client's X-Progress-User is removed there too");

$res = upload('/track-old/upload.pl', id => "anon-$$", headers => { 'X-Progress-User' => 'mallory' });
is($res->{status}, 200, 'an anonymous tracked upload');
is($res->{json}{progressUser}, '', 'no user: no X-Progress-User, and the client\'s is removed');

done_testing();
