# SPDX-License-Identifier: Apache-2.0
# A stream on the reactor is detached from its request and connection
# about a second after it opens (docs/performance.md, "Memory"): the
# request is logged then, and the stream goes on with only its socket.
# What clients must not notice: messages keep flowing (SSE in valid chunks,
# WebSocket both ways), and every server-side end is still clean - the last
# chunk after token_expired, a retry: hint and the last chunk or a 1001 at a
# graceful restart.  Reactor mode only (a stream on its worker is logged
# when it ends).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::WS;
use File::Spec;
use Time::HiRes qw(time sleep);

my $access = File::Spec->catfile(t_logs(), 'access_log');

sub access_line_for {
    my ($probe, $secs) = @_;
    my $end = time + $secs;
    while (time < $end) {
        if (open my $fh, '<', $access) {
            while (my $l = <$fh>) {
                return $l if index($l, $probe) >= 0;
            }
        }
        sleep 0.2;
    }
    return undef;
}

# ------------------------------------------------------------------ SSE
my $u = uniq('detach');
my $S = sse("/sse?probe=$u", token => token(sub => $u));
is($S->status, 200, 'SSE stream open');
is(lc($S->header('Transfer-Encoding') // ''), 'chunked', 'chunked');
my $line = access_line_for("probe=$u", 10);
ok($line, 'its access log line is written while it is open (when it is detached)');
like($line // '', qr/" 200 \d+/, 'status 200 and the bytes sent so far');
ok(!$S->eof, 'and the stream is still open');

my @sent;
for my $i (1 .. 3) {
    my ($st, undef, $b) = publish('/publish', { type => 'file_registered', userId => $u,
                                                fileId => "f$i" });
    is($st, 202, "published $i after the detaching");
    push @sent, $b->{ids}[0];
}
# A batch at once: many frames in one write, framed as one chunk.
my @batch = map { { type => 'file_registered', userId => $u, fileId => "b$_" } } 1 .. 50;
my ($bst, undef, $bb) = publish('/publish', \@batch);
is($bst, 202, 'a batch of 50 published');
push @sent, @{ $bb->{ids} || [] };
my @got;
my $end = time + 10;
while (@got < @sent && time < $end) {
    my $e = $S->next_event($end - time) or last;
    push @got, $e->{id} if ($e->{event} // '') eq 'file_registered';
}
is_deeply(\@got, \@sent, 'every message arrives, in order, through the detached stream');
ok(!$S->eof, 'the chunked body parses and the stream stays open');

# ------------------------------------------- a server-side end: token exp
my $ue = uniq('detach-exp');
my $E = sse('/sse', token => token(sub => $ue, exp => UPM::Test::time_int() + 4));
is($E->status, 200, 'stream with a token expiring in 4 s');
$E->wait_for(sub { 0 }, 10);
ok(grep({ ($_->{event} // '') eq 'token_expired' } $E->received), 'token_expired arrives');
ok($E->{done}, 'then the last chunk: the response ends cleanly')
    or diag('last lines: ' . join(' | ', ($E->lines)[-3 .. -1]));
ok($E->eof, 'and the connection closes');

# ------------------------------------------------------------- WebSocket
my $uw = uniq('detach-ws');
my $ws = UPM::WS->connect("/ws?probe=$uw", token => token(sub => $uw));
is($ws->status, 101, 'WebSocket open');
is(($ws->next_json(5) || {})->{type}, 'connected', 'connected');
ok(access_line_for("probe=$uw", 10), 'its access log line is written while it is open');
$ws->send_json({ type => 'subscribe', jobId => 'job-1' });
my $r = $ws->next_json(5) || {};
is($r->{type}, 'subscribed', 'a subscribe after the detaching is read and answered');
my ($wst, undef, $wb) = publish('/publish', { type => 'job_progressed', userId => $uw,
                                              jobId => 'job-1', progress => 40 });
is($wst, 202, 'published to the subscription');
my $m = $ws->next_json(5) || {};
is($m->{id}, $wb->{ids}[0], 'and delivered');
$ws->send_frame(opcode => 9, payload => 'hello');
my $pong;
while (my $f = $ws->read_frame(5)) {
    if ($f->{opcode} == 10 && $f->{payload} eq 'hello') { $pong = $f; last }
}
is($pong && $pong->{opcode}, 10, 'a ping is answered with a pong');
is($pong && $pong->{payload}, 'hello', 'carrying its payload');

# ------------------------------------- graceful restart with detached streams
my $ppid = server_pid();
my $ug = uniq('detach-restart');
my @S = map { sse('/sse', token => token(sub => $ug)) } 1 .. 3;
is(scalar(grep { $_->status == 200 } @S), 3, 'three more streams open');
sleep 2.5;                                  # detached by now
ok(kill('USR1', $ppid), 'graceful restart (SIGUSR1)');
$_->wait_for(sub { 0 }, 15) for @S;
is(scalar(grep { $_->{done} } @S), 3, 'every detached SSE stream ends with the last chunk');
is(scalar(grep { grep { /^retry:\s*\d+\z/ } $_->lines } @S), 3,
   'after a retry: hint') or diag(join ' | ', map { join(',', $_->lines) } @S);
my ($code, $reason) = $ws->expect_close(15);
is($code, 1001, 'the detached WebSocket is closed with 1001');
$S->wait_for(sub { 0 }, 15);
ok($S->eof && $S->{done}, 'the first stream too');

done_testing();
