# SPDX-License-Identifier: Apache-2.0
# Hostile clients: each gets its documented answer, memory stays bounded
# and the server keeps serving a well-behaved subscriber meanwhile.
# Covered elsewhere (docs/reliability.md): oversized tokens (t/auth.t),
# invalid UTF-8, oversized WebSocket messages and the subscribe rate limit
# on a short burst (t/ws_conformance.t), slow readers (t/ws_reactor.t,
# t/reactor.t), publish floods (t/publish_rate.t).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::WS;
use JSON ();
use IO::Socket::INET;
use IO::Select;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);

$SIG{PIPE} = 'IGNORE';
my $JSON = JSON->new->utf8->canonical;

# A well-behaved user, checked after each attack: a published event
# reaches its SSE stream within 5 s.
my $good = uniq('hostile-good');
my $stream = sse('/sse', token => token(sub => $good));
is($stream->status, 200, 'the well-behaved subscriber is connected')
    or BAIL_OUT('no SSE stream');
my $seq = 0;
sub still_serving {
    my ($name) = @_;
    my $pid = 'g' . ++$seq;
    my ($st) = publish('/publish', { event => 'PhotoUploadStarted', userId => $good,
                                     photoId => $pid });
    my ($ev) = $stream->until_field('photoId', $pid, 5);
    ok($st == 202 && $ev, "$name: the server still publishes and delivers");
}

# Resident memory of all the server's children, in KB.
sub children_rss {
    my $kb = 0;
    for my $pid (children_of(server_pid())) {
        open my $fh, '<', "/proc/$pid/status" or next;
        while (<$fh>) { $kb += $1 if /^VmRSS:\s+(\d+)/ }
    }
    return $kb;
}

# -------------------------------------------------- JSON nested 10,000 deep
{
    my $deep = ('[' x 10000) . (']' x 10000);
    my ($st, undef, $b) = publish('/publish', $deep);
    is($st, 400, 'an array nested 10,000 deep: 400');
    is(ref $b eq 'HASH' && $b->{error}, 'invalid_json', 'reason invalid_json');
    like(ref $b eq 'HASH' ? $b->{message} // '' : '', qr/depth/i,
         'the message names the depth limit');
    my $ev = '{"event":"PhotoUploadStarted","userId":"' . $good
        . '","photoId":"deep","extra":' . ('{"a":' x 10000) . '1' . ('}' x 10000) . '}';
    ($st, undef, $b) = publish('/publish', $ev);
    is($st, 400, 'an event with an object nested 10,000 deep inside: 400');
    is(ref $b eq 'HASH' && $b->{error}, 'invalid_json', 'reason invalid_json');
    still_serving('after deep JSON');
}

# ------------------------------------------------- a token with a 1 MB claim
{
    my $big = token(sub => $good, blob => 'x' x (1024 * 1024));
    cmp_ok(length $big, '>', 1024 * 1024, 'the token is over 1 MB');
    # In the Authorization header: the core's LimitRequestFieldSize (16 KB
    # in the test config) answers before the module sees it.
    my ($st) = raw_http(sub {
        my ($s) = @_;
        syswrite($s, "GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     . "Authorization: Bearer ");
        my $off = 0;
        while ($off < length $big) {
            my $n = syswrite($s, $big, 65536, $off);
            last unless $n;
            $off += $n;
        }
        syswrite($s, "\r\n\r\n");
    }, 15);
    is($st, 400, '1 MB token in the Authorization header: 400 from the header limit');
    # In the query string: the request-line limit (8 KB) answers.
    ($st) = raw_http(sub {
        my ($s) = @_;
        my $req = "GET /sse?access_token=$big HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                . "Connection: close\r\n\r\n";
        my $off = 0;
        while ($off < length $req) {
            my $n = syswrite($s, $req, 65536, $off);
            last unless $n;
            $off += $n;
        }
    }, 15);
    is($st, 414, '1 MB token in the query string: 414 from the request-line limit');
    still_serving('after 1 MB tokens');
}

# ---------------------------------------- WebSocket frames announcing 2^63
{
    my $tok = token(sub => $good);
    my $open = sub {
        my $ws = UPM::WS->connect('/ws', token => $tok);
        my $hello = $ws->status == 101 ? $ws->next_json(5) : undef;
        return ($hello && ($hello->{type} // '') eq 'connected') ? $ws : undef;
    };
    my $ws = $open->() or BAIL_OUT('no WebSocket');
    # 2^63 - 1: the largest legal 64-bit length.
    $ws->send_raw("\x81\xFF" . pack('NN', 0x7fffffff, 0xffffffff) . "abcd");
    my ($code) = $ws->expect_close(5);
    is($code, 1009, 'a frame announcing 2^63 - 1 bytes: close 1009 from its header');
    ok($ws->wait_eof(5), 'and the TCP connection is closed');
    $ws = $open->() or BAIL_OUT('no WebSocket');
    # 2^63: the high bit of the 64-bit length must be 0 (RFC 6455 5.2).
    $ws->send_raw("\x81\xFF" . pack('NN', 0x80000000, 0) . "abcd");
    ($code) = $ws->expect_close(5);
    is($code, 1002, 'a frame announcing 2^63 bytes: close 1002 (protocol error)');
    still_serving('after 2^63-byte frames');
}

# ---------------------------------- 10,000 subscribe messages on one socket
{
    my $u = uniq('hostile-sub');
    my $ws = UPM::WS->connect('/ws', token => token(sub => $u));
    is($ws->status, 101, 'WebSocket open');
    $ws->next_json(5);
    my $rss0 = children_rss();
    my (%type, %code, $sent);
    $sent = 0;
    my $t0 = time;
    # 500 frames per write, then read what came back, so this client is
    # never the slow reader.
    while ($sent < 10000) {
        $ws->send_raw(join '', map {
            UPM::WS->frame(opcode => 1, payload =>
                $JSON->encode({ type => 'subscribe', fileId => 'f' . ($sent + $_) }))
        } 1 .. 500);
        $sent += 500;
        for my $m ($ws->drain_json(0.05)) {
            $type{ $m->{type} // '' }++;
            $code{ $m->{code} // '' }++ if defined $m->{code};
        }
    }
    my $deadline = time + 20;
    my $answered = sub { ($type{subscribed} // 0) + ($code{rate_limited} // 0)
                         + ($code{too_many_subscriptions} // 0) };
    while (time < $deadline && $answered->() < 10000) {
        for my $m ($ws->drain_json(0.2)) {
            $type{ $m->{type} // '' }++;
            $code{ $m->{code} // '' }++ if defined $m->{code};
        }
    }
    my $elapsed = time - $t0;
    my $subscribed = $type{subscribed} // 0;
    cmp_ok($subscribed, '>=', 20, "at least the first 20 subscribed ($subscribed)");
    cmp_ok($subscribed, '<=', 20 * (int($elapsed) + 2),
           sprintf('at most 20 per second over %.1f s', $elapsed));
    cmp_ok($subscribed, '<=', 64, 'never more than 64 subscriptions');
    is($answered->(), 10000, 'every other message answered rate_limited '
       . '(or too_many_subscriptions once 64 are held)') or diag explain [\%type, \%code];
    cmp_ok($code{rate_limited} // 0, '>=', 10000 - 64 * 2, 'nearly all of them rate_limited');
    ok(!$ws->eof, 'the connection stays open');
    sleep 1.1;
    $ws->send_json({ type => 'ping' });
    my ($m) = $ws->until_json('type', 'pong', 5);
    ok($m, 'and usable: a ping a second later gets its pong');
    my $grown = children_rss() - $rss0;
    cmp_ok($grown, '<', 32 * 1024, "the children's memory grew by under 32 MB ($grown KB)");
    $ws->close;
    still_serving('after 10,000 subscribe messages');
}

# ------------------------------------------------ slowloris on the handshake
# mod_reqtimeout (RequestReadTimeout header=10-40,MinRate=500 in the test
# config) closes a connection whose headers trickle in, while others are
# served.
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(),
                                  Proto => 'tcp', Timeout => 5) or die "connect: $!";
    syswrite($s, "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n");
    my $t0 = time;
    my ($closed, $answer) = (0, '');
    my $sel = IO::Select->new($s);
    my $next_byte = time + 1;
    my $served = 0;
    while (time - $t0 < 30) {
        if ($sel->can_read(0.2)) {
            my $n = sysread($s, my $buf, 4096);
            if (!$n) { $closed = 1; last }
            $answer .= $buf;
        }
        if (time >= $next_byte) {
            # one byte a second of an endless header
            syswrite($s, 'X');
            $next_byte = time + 1;
        }
        if (!$served && time - $t0 > 3) {
            still_serving('during a slowloris handshake');
            $served = 1;
        }
    }
    my $took = time - $t0;
    ok($closed, sprintf('the slowloris connection is closed (after %.1f s)', $took));
    cmp_ok($took, '<', 15, 'within the header timeout (10 s) and a margin');
    like($answer, qr{\A(?:HTTP/1\.1 408|\z)}, 'with a 408 or nothing');
    unlike($answer, qr{ 101 }, 'never upgraded');
}

# --------------------------------------------- 5,000 half-open connections
# Held by holder processes of 800 connections each (connecting at once),
# so that no process needs more file descriptors than a default limit of
# 1,024 allows.  The kernel keeps them from httpd: AcceptFilter data (the
# default on Linux) defers each accept until a request arrives, for up to
# 30 s, and ListenBacklog 4096 (extra.conf.in) leaves room for them; with
# the default 511 per listener about 2,000 fit and further SYNs are
# dropped.
{
    my $want = 5000;
    my $per = 800;
    my @holders;
    my $opened = 0;
    my $t_open = time;
    my @pipes;
    for (my $left = $want; $left > 0; $left -= $per) {
        my $n = $left < $per ? $left : $per;
        pipe(my $r, my $w) or die "pipe: $!";             # count, holder -> test
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $r;
            alarm 120;                                    # should the test die
            my @idle;
            for (1 .. $n) {
                my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(),
                                              Proto => 'tcp', Timeout => 5) or last;
                push @idle, $s;
            }
            syswrite($w, scalar(@idle) . "\n");
            close $w;
            sleep 1 while 1;                              # until TERM
        }
        close $w;
        push @pipes, $r;
        push @holders, $pid;
    }
    for my $r (@pipes) {                                  # all connect at once
        my $line = <$r>;
        close $r;
        $opened += ($line // 0) + 0;
    }
    note(sprintf 'opened in %.1f s', time - $t_open);
    is($opened, $want, "$want connections opened that send nothing ("
       . scalar(@holders) . ' holder processes)');
    my $u = uniq('hostile-halfopen');
    my $t0 = time;
    my $c = sse('/sse', token => token(sub => $u), timeout => 10);
    is($c->status, 200, 'a new SSE client is served meanwhile');
    my ($st) = publish('/publish', { event => 'PhotoUploadStarted', userId => $u,
                                     photoId => 'h1' });
    is($st, 202, 'a publish is accepted meanwhile');
    my ($got, @before) = $c->until_field('photoId', 'h1', 5);
    ok($got, 'and delivered')
        or diag explain [\@before, $c->eof, $c->body];
    cmp_ok(time - $t0, '<', 10, sprintf('all within 10 s (%.1f s)', time - $t0));
    still_serving("with $want half-open connections");
    kill 'TERM', @holders;
    waitpid($_, 0) for @holders;
}

done_testing;
