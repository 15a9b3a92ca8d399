# SPDX-License-Identifier: Apache-2.0
# The replay ring wraps while clients are connected and some are behind:
# a private server whose ring holds 64 messages gets 400 for one user.
# Connected clients are fed from their own queues, not from the ring, so
# the wrap costs them nothing; one whose queue (UploadProgressSendQueue)
# overflows gets a reset (reason overflow) and then exactly what is newer.
# A client that was disconnected and resumes from an id the ring no longer
# holds gets a reset (reason expired); one whose id is still held gets
# what it missed.  Both UploadProgressAsync modes.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::Server;
use UPM::WS;
use Time::HiRes qw(time sleep);

$SIG{PIPE} = 'IGNORE';

my $auth = UPM::Server::jwt_auth();
my $srv = UPM::Server->private(<<"CONF");
SendBufferSize 16384
UploadProgressReplay 64
<Location /sse>
    SetHandler upload-progress-sse
    $auth
</Location>
<Location /sse-small>
    SetHandler upload-progress-sse
    UploadProgressSendQueue 8K
    $auth
</Location>
<Location /ws>
    SetHandler upload-progress-websocket
    $auth
</Location>
CONF
my $port = $srv->port;
note("private server on $port, UploadProgressAsync " . UPM::Server::async_mode()
     . ', a ring of 64 messages');

my $u = uniq('wrap');
my $tok = token(sub => $u);
my $open = sub { sse($_[0], port => $port, token => $tok, timeout => 10, @_[1 .. $#_]) };

my $A = $open->('/sse');                        # reads all along
my $B = $open->('/sse', rcvbuf => 4096);        # stops reading during the flood
my $C = $open->('/sse-small', rcvbuf => 4096);  # the same, with an 8 KB queue
my $D = $open->('/sse');                        # leaves early
my $E = $open->('/sse');                        # leaves late
my $W = UPM::WS->connect('/ws', port => $port, token => $tok, timeout => 10);
is(scalar(grep { ($_->status // 0) == 200 } $A, $B, $C, $D, $E), 5, 'five SSE streams open');
is($W->status, 101, 'a WebSocket open');

# 400 messages of about 450 bytes (180 KB: more than the 8 KB queue and
# the socket buffers, less than the default 256 KB queue), 8 per request.
my (@ids, $bad);
my $n = 0;
my ($d_last, $e_last);
my @D_got;
my @E_got;
my $pump = sub {
    my ($secs) = @_;
    my @live = grep { !$_->eof } $A, ($d_last ? () : $D), ($e_last ? () : $E);
    wait_all(\@live, sub { 0 }, $secs);
    UPM::WS->wait_all([$W], sub { 0 }, 0.01);
    if (!$d_last && $D->received >= 20) {
        @D_got = ($D->received)[0 .. 19];
        $d_last = $D_got[-1]{id};
        $D->close;
    }
    if (!$e_last && $E->received >= 370) {
        @E_got = ($E->received)[0 .. 369];
        $e_last = $E_got[-1]{id};
        $E->close;
    }
};
for my $batch (1 .. 50) {
    my ($st, $b) = $srv->publish('/publish', [map {
        { type => 'wrap', userId => $u, n => ++$n, pad => 'w' x 300 }
    } 1 .. 8]);
    if ($st == 202) { push @ids, @{ $b->{ids} } } else { $bad++ }
    $pump->(0.02);
}
is($bad // 0, 0, 'every publish accepted');
is(scalar @ids, 400, '400 messages published: the ring (64) wrapped six times');
$pump->(0.1) until $e_last || !wait_all([$E], sub { $E->received >= 370 }, 10);
ok($d_last, 'the early leaver left after 20 messages');
ok($e_last, 'the late leaver left after 370 messages');

my $evs = sub {
    map { { id => $_->{id}, type => $_->{event} // '', reason => ($_->{json} || {})->{reason} } }
        @_;
};
my $all_in = sub {
    my ($c, $want) = @_;
    return sub {
        my @r = $c->received;
        @r && ($r[-1]{id} // '') eq $want;
    };
};

# The readers and the stalled ones, now reading, get to the last message.
for my $c ([A => $A], [B => $B], [C => $C]) {
    ok(wait_all([$c->[1]], $all_in->($c->[1], $ids[-1]), 30),
       "$c->[0] gets to the last message") or diag(scalar($c->[1]->received) . ' received');
}
ok(UPM::WS->wait_all([$W], sub { grep { ($_->{id} // '') eq $ids[-1] } $W->inbox }, 30),
   'the WebSocket gets to the last message');

my %why = (A => 'reads all along', B => 'stalled, its queue big enough',
           C => 'stalled, its queue too small');
for my $c ([A => $A], [B => $B], [C => $C]) {
    my ($ok, $r) = check_delivery([$evs->($c->[1]->received)], \@ids,
                                  reasons => ['overflow', 'lag']);
    ok($ok, "$c->[0] ($why{$c->[0]}): every message in order, each once, "
            . 'or a reset and then exactly what is newer') or diag($r);
}
my @resets = grep { $_->{event} eq 'reset' } $B->received;
is(scalar(grep { ($_->{json}{reason} // '') eq 'overflow' } @resets), 0,
   'B: no overflow (its 256 KB queue holds the backlog the ring lost)');
@resets = grep { $_->{event} eq 'reset' } $C->received;
ok(grep({ ($_->{json}{reason} // '') eq 'overflow' } @resets),
   'C: its 8 KB queue overflowed: reset, reason overflow') or diag(scalar(@resets) . ' resets');
cmp_ok(scalar(grep { $_->{event} ne 'reset' } $C->received), '<', 400,
       'C: and it was not sent what the reset covers');
{
    my @w = grep { ($_->{type} // '') ne 'connected' } $W->inbox;
    my ($ok, $r) = check_delivery(\@w, \@ids, reasons => ['overflow', 'lag']);
    ok($ok, 'the WebSocket: every message in order, each once (or a reset, then what is newer)')
        or diag($r);
}

# Resuming: from an id the ring has lost, and from one it still holds.
my $D2 = $open->('/sse', headers => { 'Last-Event-ID' => $d_last });
my $E2 = $open->('/sse', headers => { 'Last-Event-ID' => $e_last });
my $B2 = $open->('/sse', headers => { 'Last-Event-ID' => ($B->received)[-1]{id} });
$B->close;
is(scalar(grep { ($_->status // 0) == 200 } $D2, $E2, $B2), 3, 'three clients resume');
my $r = $D2->next_event(10);
is($r && $r->{event}, 'reset', 'resuming from the 20th message (lost by the ring): a reset');
is($r && $r->{json} && $r->{json}{reason}, 'expired', 'reason expired');
my @e2 = $E2->events_until(30, 10);
is(join(',', map { $_->{id} } @e2), join(',', @ids[370 .. 399]),
   'resuming from the 370th (still held): the 30 missed, in order, no reset');

my ($st, $b) = $srv->publish('/publish', [{ type => 'wrap', userId => $u, n => 401 }]);
is($st, 202, 'one more message published');
push @ids, $b->{ids}[0];
for my $c ([A => $A], [C => $C], [D2 => $D2], [E2 => $E2], [B2 => $B2]) {
    ok(wait_all([$c->[1]], $all_in->($c->[1], $ids[-1]), 10), "$c->[0] gets it live");
}
{
    my ($ok, $why) = check_delivery([$evs->(@D_got, $D2->received)], \@ids,
                                    reasons => ['expired']);
    ok($ok, 'the early leaver: its 20, the reset, then only what came after') or diag($why);
    ($ok, $why) = check_delivery([$evs->(@E_got, $E2->received)], \@ids);
    ok($ok, 'the late leaver: every message once, in order, without a reset') or diag($why);
    ($ok, $why) = check_delivery([$evs->($A->received)], \@ids, reasons => ['lag']);
    ok($ok, 'the reader: every message once, in order') or diag($why);
    my @b2 = $B2->received;
    is(scalar(@b2), 1, 'B resuming from its last id: nothing missed, nothing again');
}

$_->close for $A, $C, $D2, $E2, $B2, $W;
$srv->stop;
done_testing();
