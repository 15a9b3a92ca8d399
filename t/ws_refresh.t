# Token refresh on an open WebSocket: token_expiring before exp, refresh
# with a new token (refreshed, the new exp applies), a refused token keeps
# the old exp, another user's token closes with 4003, grants follow the new
# token, and a connection held across three 5 s token lifetimes with
# events flowing loses none.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);
use UPM::Test;
use UPM::Server;
use UPM::WS;

my $secret = t_dir() . '/keys/hs256.secret';
my $S = UPM::Server->private(<<"CONF");
<Location /ws>
    SetHandler upload-progress-websocket
    AuthType JWT
    UploadProgressJWTKey HS256 file:$secret
    UploadProgressJWTLeeway 0
    UploadProgressJWTRefreshAhead 2
    Require valid-user
</Location>
CONF
my $port = $S->port;
sub tok { my ($sub, $life, %c) = @_; token(sub => $sub, exp => int(time) + $life, %c) }
sub ws  { UPM::WS->connect('/ws', port => $port, token => $_[0], timeout => 10) }
sub pub { my ($st) = $S->publish('/publish', { type => 'file_registered', @_ }); $st }

# token_expiring, refresh, the new exp
my $t1 = tok('alice', 4);
my $exp1 = int(time) + 4;
my $W = ws($t1);
is($W->status, 101, 'connected with a 4 s token');
my ($m) = $W->until_json(type => 'token_expiring', 6);
ok($m, 'token_expiring arrives');
ok($m && abs($m->{exp} - $exp1) <= 1, 'it carries the token\'s exp');
ok(time < $exp1 + 0.5, 'before the token expired');
my $exp2 = int(time) + 6;
$W->send_json({ type => 'refresh', token => token(sub => 'alice', exp => $exp2) });
($m) = $W->until_json(type => 'refreshed', 5);
is($m && $m->{exp}, $exp2, 'refreshed, with the new exp');
sleep(($exp1 - time) + 1.2) if time < $exp1 + 1.2;
is(pub(userId => 'alice', fileId => 'after-exp1'), 202, 'published after the first exp');
($m) = $W->until_json(fileId => 'after-exp1', 5);
ok($m, 'the connection outlived its first token and still delivers');

# A refused token: error, and the old (second) exp still holds.
$W->send_json({ type => 'refresh', token => tok('alice', 60, kid => 'nope') . 'x' });
($m) = $W->until_json(type => 'error', 5);
is($m && $m->{code}, 'invalid_token', 'a bad token is refused with invalid_token');
my ($code) = $W->expect_close($exp2 - time + 4);
is($code, 4001, 'and the connection closes at the old exp (4001)');
ok(time >= $exp2 - 0.5, 'not before it');
$W->close;

# Another user's token: 4003.
my $X = ws(tok('alice', 60));
$X->until_json(type => 'connected', 5);
$X->send_json({ type => 'refresh', token => tok('mallory', 60) });
($code) = $X->expect_close(5);
is($code, 4003, 'a token of another user closes with 4003');
$X->close;

# Grants follow the new token.
my $G = ws(tok('alice', 60, upl => { projects => ['p9'] }));
$G->until_json(type => 'connected', 5);
$G->send_json({ type => 'subscribe', projectId => 'p9' });
($m) = $G->until_json(type => 'subscribed', 5);
ok($m, 'subscribed to a granted project');
pub(userId => 'bob', projectId => 'p9', fileId => 'granted-1');
($m) = $G->until_json(fileId => 'granted-1', 5);
ok($m, 'bob\'s message of the granted project arrives');
$G->send_json({ type => 'refresh', token => tok('alice', 60) });
my @before;
($m, @before) = $G->until_json(type => 'refreshed', 5);
my ($ended) = grep { $_->{type} eq 'unsubscribed' } @before, $m ? () : ();
($ended) = $G->until_json(type => 'unsubscribed', 3) unless $ended;
is($ended && $ended->{reason}, 'grant_revoked', 'the grant is gone: unsubscribed, grant_revoked');
is($ended && $ended->{projectId}, 'p9', 'for that project');
pub(userId => 'bob', projectId => 'p9', fileId => 'granted-2');
ok(!grep({ ($_->{fileId} // '') eq 'granted-2' } $G->drain_json(1.5)),
   'bob\'s next message of that project no longer arrives');
$G->close;

# Three token lifetimes of 5 s with events flowing: every one arrives.
my $C = ws(tok('carol', 5));
$C->until_json(type => 'connected', 5);
my ($sent, %got, $refreshes, $closed) = (0, (), 0, 0);
my $t0 = time;
my $next_pub = $t0;
while (time - $t0 < 16) {
    if (time >= $next_pub) {
        $sent++;
        pub(userId => 'carol', fileId => "c$sent");
        $next_pub += 0.2;
    }
    my $j = $C->next_json(0.05) or next;
    if (($j->{type} // '') eq 'token_expiring') {
        $C->send_json({ type => 'refresh', token => tok('carol', 5) });
    }
    $refreshes++ if ($j->{type} // '') eq 'refreshed';
    $got{ $j->{fileId} } = 1 if ($j->{fileId} // '') =~ /^c\d+$/;
}
my $deadline = time + 3;
while (keys(%got) < $sent && time < $deadline) {
    my $j = $C->next_json(0.2) or next;
    $got{ $j->{fileId} } = 1 if ($j->{fileId} // '') =~ /^c\d+$/;
}
ok($refreshes >= 3, "refreshed $refreshes times in 16 s (5 s tokens)");
ok(!$C->eof, 'the connection stayed open');
is(scalar(keys %got), $sent, "every one of the $sent messages arrived");
$C->close;

$S->stop;
done_testing();
