# SPDX-License-Identifier: Apache-2.0
# Graceful restart with WebSocket clients (DESIGN 5): the stopping child
# closes its connections with 1001 instead of hanging in "G", and a client
# that reconnects and resumes from its last id misses nothing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::WS;
use Time::HiRes qw(time sleep);

my $ppid = server_pid();
ok($ppid && kill(0, $ppid), 'test server running') or BAIL_OUT('no server pid');
my @old = children_of($ppid);

my $u = uniq('wsrestart');
my $tok = token(sub => $u);
my $ws = UPM::WS->connect('/ws', token => $tok);
is($ws->status, 101, 'WebSocket open');
is(($ws->next_json(5) || {})->{type}, 'connected', 'connected');
my ($st, undef, $b) = publish('/publish', { type => 'file_registered', userId => $u,
                                            fileId => 'before' });
is($st, 202, 'published before the restart');
my $id1 = $b->{ids}[0];
is(($ws->next_json(5) || {})->{id}, $id1, 'received before the restart');

ok(kill('USR1', $ppid), 'graceful restart (SIGUSR1)');
my $t0 = time;
my ($code, $reason) = $ws->expect_close(15);
is($code, 1001, sprintf('closed with 1001 by the stopping child (%.1f s)', time - $t0));
is($reason, 'server restarting', 'reason');
$ws->send_close(1001, '');
ok($ws->wait_eof(5), 'TCP closed');

my @alive;
my $deadline = time + 15;
while (time < $deadline) {
    @alive = grep { kill 0, $_ } @old;
    last unless @alive;
    sleep 0.2;
}
is(scalar @alive, 0, 'every old child has exited within 15 s') or diag("still running: @alive");

my $id2;
$deadline = time + 15;
while (time < $deadline) {
    my ($st2, undef, $b2) = eval { publish('/publish', { type => 'file_registered',
                                                         userId => $u, fileId => 'after' }) };
    if (($st2 // 0) == 202) { $id2 = $b2->{ids}[0]; last }
    sleep 0.2;
}
ok($id2, 'published after the restart');

my $R = UPM::WS->connect('/ws', token => $tok);
is($R->status, 101, 'reconnected');
is(($R->next_json(5) || {})->{type}, 'connected', 'connected');
$R->send_json({ type => 'resume', lastEventId => $id1 });
my $m = $R->next_json(5) || {};
is($m->{type}, 'file_registered', 'no reset: the missed message comes first');
is($m->{id}, $id2, 'it is the message published during the restart');
$R->send_close(1000);
$R->expect_close(5);

done_testing();
