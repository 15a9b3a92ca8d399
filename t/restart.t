# SPDX-License-Identifier: Apache-2.0
# Graceful restart (DESIGN 4, 5): the stopping children close their SSE
# streams (with a retry: hint) instead of hanging in "G", and the ring
# survives, so a client resumes with its Last-Event-ID without a reset.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use Time::HiRes qw(time sleep);

my $ppid = server_pid();
ok($ppid && kill(0, $ppid), 'test server running') or BAIL_OUT('no server pid');
my @old = children_of($ppid);
ok(@old >= 3, 'children before the restart: ' . scalar(@old));

my $u = uniq('restart');
my $S = sse('/sse', token => token(sub => $u));
is($S->status, 200, 'stream open');
my ($st, undef, $b) = publish('/publish', { type => 'file_registered', userId => $u, fileId => 'before' });
is($st, 202, 'published before the restart');
my $id1 = $b->{ids}[0];
my $e = $S->next_event(5);
is($e && $e->{id}, $id1, 'received before the restart');

ok(kill('USR1', $ppid), 'graceful restart (SIGUSR1)');
my $t0 = time;
$S->wait_for(sub { 0 }, 15);
ok($S->eof, sprintf 'the stream is closed by its stopping child (%.1f s)', time - $t0);
my @retry = grep { /^retry:\s*\d+\z/ } $S->lines;
ok(@retry >= 2, 'a retry: line is sent before the close')
    or diag('lines after the first event: ' . join(' | ', ($S->lines)[4 .. ($S->lines - 1)]));

my @alive;
my $deadline = time + 15;
while (time < $deadline) {
    @alive = grep { kill 0, $_ } @old;
    last unless @alive;
    sleep 0.2;
}
is(scalar @alive, 0, 'every old child has exited within 15 s')
    or diag("still running: @alive");

# The server answers again (new generation).
my $id2;
$deadline = time + 15;
while (time < $deadline) {
    my ($st2, undef, $b2) = eval { publish('/publish', { type => 'file_registered', userId => $u,
                                                         fileId => 'after' }) };
    if (($st2 // 0) == 202) { $id2 = $b2->{ids}[0]; last }
    sleep 0.2;
}
ok($id2, 'published after the restart');
is(epoch_of($id2 // ''), epoch_of($id1), 'same epoch: the ring survived the graceful restart');
ok($id2 && id_cmp($id1, $id2) < 0, 'the sequence went on');

my $R = sse('/sse', token => token(sub => $u), headers => { 'Last-Event-ID' => $id1 });
is($R->status, 200, 'resume after the restart: 200');
my $r = $R->next_event(5);
is($r && $r->{event}, 'file_registered', 'no reset: the missed message comes first');
is($r && $r->{id}, $id2, 'it is the message published after the restart');
$R->close;

my @new = children_of($ppid);
ok(@new >= 2, 'new children running: ' . scalar(@new));

done_testing();
