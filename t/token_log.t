# SPDX-License-Identifier: Apache-2.0
# A token sent in the query string never reaches the access or error log,
# whichever way the request is refused: the WebSocket Origin check (403,
# which runs before authentication), a bad handshake (400), a wrong
# version or no upgrade (426), too many streams (429), a bad token (401),
# on WebSocket and SSE locations.  The logged request line is scrubbed
# before any hook can end the request.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::WS;
use File::Spec;
use Time::HiRes qw(sleep time);

my @sent;       # [probe, token, expected status]

# Each request carries a probe of its own next to the token, so its access
# log line can be found.
sub probe { 'p' . int(rand(1e9)) }

# Every token unique (jti), so a leak is pinned on the request that made it.
my $jti = 0;
sub tok { token(jti => 'tl' . $$ . '-' . $jti++, @_) }

sub ws_try {
    my ($name, $path, $tok, $expect, %o) = @_;
    my $p = probe();
    my $sep = $path =~ /\?/ ? '&' : '?';
    my $ws = UPM::WS->connect("$path${sep}probe=$p&token=$tok", timeout => 5, %o);
    is($ws->status, $expect, "$name: $expect");
    push @sent, [$p, $tok, $expect, $name];
    $ws->close;
}

sub http_try {
    my ($name, $path, $tok, $expect, %o) = @_;
    my $p = probe();
    my $sep = $path =~ /\?/ ? '&' : '?';
    my ($st) = raw_http("GET $path${sep}probe=$p&token=$tok HTTP/1.1\r\nHost: localhost\r\n"
        . ($o{auth} ? "Authorization: Bearer $o{auth}\r\n" : '')
        . "Connection: close\r\n\r\n", 5);
    is($st, $expect, "$name: $expect");
    push @sent, [$p, $tok, $expect, $name];
}

my $u = uniq('tlog');

# 403: the Origin is checked before the token is looked at.
ws_try('WebSocket from another origin', '/ws-origin', tok(sub => $u), 403,
       headers => { Origin => 'https://evil.example' });
ws_try('WebSocket from another origin, bad token', '/ws-origin',
       tok(sub => $u, key => hs_secret('hs256-k1.secret')), 403,
       headers => { Origin => 'https://evil.example' });
ws_try('WebSocket from another origin, token among other parameters',
       '/ws-origin?jobId=j1', tok(sub => $u), 403,
       headers => { Origin => 'https://evil.example' });

# 400: bad handshakes.
ws_try('WebSocket with a bad key', '/ws/upload-progress', tok(sub => $u), 400,
       headers => { 'Sec-WebSocket-Key' => 'short' });
ws_try('WebSocket over HTTP/1.0', '/ws/upload-progress', tok(sub => $u), 400,
       http10 => 1);
ws_try('WebSocket with a bad scope', '/ws/upload-progress?jobId=%20bad', tok(sub => $u),
       400);

# 426: no upgrade, or another protocol version.
ws_try('WebSocket of version 8', '/ws/upload-progress', tok(sub => $u), 426,
       headers => { 'Sec-WebSocket-Version' => '8' });
ws_try('plain GET at a WebSocket location', '/ws/upload-progress', tok(sub => $u), 426,
       headers => { Upgrade => undef, Connection => undef });

# 401: tokens that do not verify.
ws_try('WebSocket with a token of another key', '/ws/upload-progress',
       tok(sub => $u, key => hs_secret('hs256-k1.secret')), 401);
ws_try('WebSocket with an expired token', '/ws/upload-progress',
       tok(sub => $u, exp => int(time) - 3600), 401);
http_try('SSE with a token of another key', '/sse',
         tok(sub => $u, key => hs_secret('hs256-k1.secret')), 401);
http_try('SSE with a token without exp', '/sse', tok(sub => $u, exp => undef), 401);

# 429: a user at the per-user limit (3 here) opens one more stream.
{
    my $lu = uniq('tlog-lim');
    my $lt = tok(sub => $lu);
    my @hold = map { UPM::WS->connect('/ws-limit', token => $lt) } 1 .. 3;
    is(scalar(grep { ($_->status // 0) == 101 } @hold), 3, 'three WebSockets open');
    ws_try('fourth WebSocket of the user', '/ws-limit', tok(sub => $lu), 429);
    $_->close for @hold;

    my $su = uniq('tlog-slim');
    my $st = tok(sub => $su);
    my @sse = map { sse('/sse-limit', token => $st) } 1 .. 3;
    is(scalar(grep { ($_->status // 0) == 200 } @sse), 3, 'three SSE streams open');
    http_try('fourth SSE stream of the user', '/sse-limit', tok(sub => $su), 429);
    $_->close for @sse;
}

# Accepted, for comparison: the token is used, and not logged either.
{
    my $p = probe();
    my $tok = tok(sub => $u);
    my $ws = UPM::WS->connect("/ws/upload-progress?probe=$p&token=$tok");
    is($ws->status, 101, 'accepted WebSocket: 101');
    push @sent, [$p, $tok, 101, 'accepted WebSocket'];
    $ws->close;
}

my $access = File::Spec->catfile(t_logs(), 'access_log');
my $error  = File::Spec->catfile(t_logs(), 'error_log');
my ($alog, $deadline) = ('', time + 10);
while (time < $deadline) {
    $alog = file_text($access);
    last unless grep { index($alog, $_->[0]) < 0 } @sent;
    sleep 0.25;
}
my $elog = file_text($error);
my $qlog = file_text(File::Spec->catfile(t_logs(), 'query_log'));
for my $s (@sent) {
    my ($p, $tok, $expect, $name) = @$s;
    my ($line) = grep { index($_, $p) >= 0 } split /\n/, $alog;
    ok($line, "$name: in the access log") or next;
    like($line, qr/" $expect /, "$name: logged with status $expect");
    unlike($line, qr/[?&]token=/, "$name: no token parameter on its line");
    my ($sig) = (split /\./, $tok)[2];
    ok(index($alog, $tok) < 0 && index($alog, $sig) < 0, "$name: token not in access_log");
    ok(index($elog, $tok) < 0 && index($elog, $sig) < 0, "$name: token not in error_log");
    my ($qline) = grep { index($_, $p) >= 0 } split /\n/, $qlog;
    ok($qline && index($qlog, $sig) < 0, "$name: token not in a %q log")
        or diag($qline);
}

done_testing();
