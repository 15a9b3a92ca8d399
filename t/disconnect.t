# SPDX-License-Identifier: Apache-2.0
# A server-side disconnect: the application publishes
# {"type":"disconnect","userId":U} (a token was revoked, an account
# closed) and every connection of U, on every transport and every child,
# receives it as its last message and is closed: SSE after the
# `disconnect` event, WebSocket with close code 4004, whatever the
# connection is narrowed to.  Other users' connections stay.  In both
# modes (reactor, and -defines UPM_SYNC).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::WS;

my $u = uniq('dc');
my $v = uniq('dc-other');
my $tu = token(sub => $u);
my $tv = token(sub => $v);

# Several streams of u, so that they spread over the children, one of them
# narrowed to a job; a WebSocket of u subscribed to a job; and v's stream.
my @sse = map { sse('/sse', token => $tu) } 1 .. 4;
push @sse, sse('/sse?jobId=job-1', token => $tu);
is(scalar(grep { $_->status == 200 } @sse), 5, "five SSE streams of $u open");
my $ws = UPM::WS->connect('/ws', token => $tu);
is($ws->status, 101, "a WebSocket of $u");
$ws->next_json(5);    # connected
$ws->send_json({ type => 'subscribe', jobId => 'job-2' });
my ($ok) = $ws->until_json(type => 'subscribed', 5);
ok($ok, '... subscribed to another job');
my $other = sse('/sse', token => $tv);
is($other->status, 200, "$v has a stream too");

my ($st, undef, $body) = publish('/publish', { type => 'disconnect', userId => $u,
                                               reason => 'token_revoked' });
is($st, 202, 'the disconnect is published like any event');
my $dc_id = $body->{ids}[0];

for my $i (0 .. $#sse) {
    my $s = $sse[$i];
    my $e = $s->next_event(5);
    is($e && $e->{event}, 'disconnect', "SSE $i: the disconnect event");
    is($e && $e->{json}{reason}, 'token_revoked', "SSE $i: ... with the publisher's fields");
    is($e && $e->{id}, $dc_id, "SSE $i: ... and its id");
    ok($s->wait_for(sub { 0 }, 5) == 0 && $s->eof, "SSE $i: then the server closed the stream");
}

my ($m) = $ws->until_json(type => 'disconnect', 5);
ok($m, 'WebSocket: the disconnect message, although subscribed to a job');
my ($code) = $ws->expect_close(5);
is($code, 4004, 'WebSocket: then close code 4004');

publish('/publish', { type => 'note', userId => $v, n => 1 });
my $e = $other->next_event(5);
is($e && $e->{json}{n}, 1, "${v}'s stream stayed open and gets its messages");
ok(!$other->eof, '... not closed');

# A new connection of u after the disconnect works (the application
# decides with its tokens whether u may come back).
my $again = sse('/sse', token => $tu);
is($again->status, 200, 'a new stream of the user is accepted');
publish('/publish', { type => 'note', userId => $u, n => 2 });
$e = $again->next_event(5);
is($e && $e->{json}{n}, 2, '... and receives live messages, not closed by the old disconnect');
$again->close;
$other->close;

done_testing();
