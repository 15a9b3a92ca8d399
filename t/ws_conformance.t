# SPDX-License-Identifier: Apache-2.0
# RFC 6455 conformance of the WebSocket endpoint, in the spirit of the
# Autobahn test suite's categories: handshake, framing, ping/pong, reserved
# bits, opcodes, fragmentation, UTF-8, limits, close handling, and the
# subscribe protocol's error replies.  A raw socket client sends what real
# clients never would; every case asserts the exact close code or reply.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::WS;
use Time::HiRes qw(time sleep);
use JSON ();

my $JSON = JSON->new->utf8->canonical;
my $user = uniq('wsc');
my $TOK = token(sub => $user);
my $case = 0;

# Opens /ws (or $path) and reads the "connected" message.
sub open_ws {
    my ($path, %o) = @_;
    my $ws = UPM::WS->connect($path || '/ws', token => $TOK, %o);
    die "handshake on " . ($path || '/ws') . ": status " . ($ws->status // 'none')
        unless ($ws->status // 0) == 101;
    my $hello = $ws->next_json(5);
    die "no connected message" unless $hello && ($hello->{type} // '') eq 'connected';
    return $ws;
}

# The connection answers: an application ping gets its pong.
sub alive {
    my ($ws) = @_;
    $ws->send_json({ type => 'ping' });
    my $m = $ws->next_json(5);
    return $m && ($m->{type} // '') eq 'pong';
}

sub wscase {
    my ($name, $code) = @_;
    $case++;
    subtest sprintf('case %02d: %s', $case, $name) => $code;
}

# A case whose frames must make the server close with $want (and then
# close the TCP connection).
sub closes_with {
    my ($name, $want, $send, $path) = @_;
    wscase($name => sub {
        my $ws = open_ws($path);
        $send->($ws);
        my ($code, $reason) = $ws->expect_close(5);
        is($code, $want, "server closes with $want")
            or diag('reason: ' . ($reason // '(none)'));
        ok($ws->wait_eof(5), 'and closes the TCP connection');
    });
}

sub pad_json {
    my ($size) = @_;
    my $base = '{"type":"ping","pad":""}';
    return '{"type":"ping","pad":"' . ('x' x ($size - length $base)) . '"}';
}

# Held open (and silent) for the whole file: mod_reqtimeout's body timeout
# (20 s by default) must not end an upgraded connection.
my $idle = open_ws('/ws');
my $idle_since = time;

# ================================================================ handshake
wscase('handshake: 101 with the RFC 6455 accept key and a connected message' => sub {
    my $ws = UPM::WS->connect('/ws', token => $TOK);
    is($ws->status, 101, '101 Switching Protocols');
    is($ws->header('Sec-WebSocket-Accept'), $ws->expected_accept,
       'Sec-WebSocket-Accept = base64(SHA-1(key + GUID))');
    like($ws->header('Upgrade') // '', qr/\Awebsocket\z/i, 'Upgrade: websocket');
    like($ws->header('Connection') // '', qr/\bupgrade\b/i, 'Connection: Upgrade');
    my $m = $ws->next_json(5);
    is($m->{type}, 'connected', 'first message: connected');
    like($m->{clientId} // '', qr/\A[0-9a-f]{16}\z/, 'with a clientId');
    my $f = $ws->read_frame(0.3);
    ok(!$f, 'nothing else unasked');
});

wscase('handshake: Connection header listing several tokens' => sub {
    my $ws = UPM::WS->connect('/ws', token => $TOK,
                              headers => { Connection => 'keep-alive, Upgrade' });
    is($ws->status, 101, '"keep-alive, Upgrade" matches the upgrade token');
});

wscase('handshake: no Upgrade header -> 426' => sub {
    my $ws = UPM::WS->connect('/ws', token => $TOK, headers => { Upgrade => undef });
    is($ws->status, 426, 'status 426 Upgrade Required');
    like($ws->header('Upgrade') // '', qr/websocket/i, 'names the protocol to upgrade to');
    is(($ws->json_body || {})->{error}, 'upgrade_required', 'JSON reason');
});

wscase('handshake: Connection without the upgrade token -> 426' => sub {
    my $ws = UPM::WS->connect('/ws', token => $TOK,
                              headers => { Connection => 'keep-alive' });
    is($ws->status, 426, 'status 426');
});

wscase('handshake: version 8 -> 426 with Sec-WebSocket-Version: 13' => sub {
    my $ws = UPM::WS->connect('/ws', token => $TOK,
                              headers => { 'Sec-WebSocket-Version' => '8' });
    is($ws->status, 426, 'status 426');
    is($ws->header('Sec-WebSocket-Version'), '13', 'Sec-WebSocket-Version: 13');
    is(($ws->json_body || {})->{error}, 'unsupported_version', 'JSON reason');
});

wscase('handshake: missing or malformed key -> 400' => sub {
    for my $key (undef, 'c2hvcnQ=', 'not base64 at all!!!!!==', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA') {
        my $ws = UPM::WS->connect('/ws', token => $TOK,
                                  headers => { 'Sec-WebSocket-Key' => $key });
        is($ws->status, 400, 'key ' . ($key // '(none)') . ': 400');
        is(($ws->json_body || {})->{error}, 'bad_key', 'JSON reason bad_key');
    }
});

wscase('handshake: the JWT is checked before the 101' => sub {
    my $ws = UPM::WS->connect('/ws');
    is($ws->status, 401, 'no token: 401');
    like($ws->header('WWW-Authenticate') // '', qr/^Bearer/, 'WWW-Authenticate: Bearer');
    $ws = UPM::WS->connect('/ws', token => token(sub => $user, exp => time - 3600));
    is($ws->status, 401, 'expired token: 401');
    like($ws->header('WWW-Authenticate') // '', qr/invalid_token/, 'error="invalid_token"');
    $ws = UPM::WS->connect('/ws', token => token(sub => $user, key => 'x' x 32));
    is($ws->status, 401, 'token signed with another key: 401');
    $ws = UPM::WS->connect('/ws?token=' . $TOK);
    is($ws->status, 101, 'token in the query (browsers): 101');
    $ws = UPM::WS->connect('/ws/upload-progress', token => $TOK);
    is($ws->status, 101, '/ws/upload-progress: 101');
});

wscase('handshake: not GET, or HTTP/1.0' => sub {
    my $ws = UPM::WS->connect('/ws', token => $TOK, method => 'POST');
    is($ws->status, 405, 'POST: 405');
    like($ws->header('Allow') // '', qr/\bGET\b/, 'Allow names GET');
    unlike($ws->header('Allow') // '', qr/\bPOST\b/, 'and not POST');
    $ws = UPM::WS->connect('/ws', token => $TOK, http10 => 1);
    is($ws->status, 400, 'HTTP/1.0: 400');
});

wscase('handshake: Origin policy (UploadProgressAllowOrigin)' => sub {
    my $port = port();
    my %want = (
        'https://app.upm.test' => 101,
        'https://APP.upm.test:443' => 101,
        'http://localhost:3000' => 101,
        'https://a.tenant.upm.test' => 101,
        'https://tenant.upm.test' => 403,
        'https://evil.test' => 403,
        'https://app.upm.test.evil.test' => 403,
        'http://app.upm.test' => 403,
        'null' => 403,
    );
    for my $o (sort keys %want) {
        my $ws = UPM::WS->connect('/ws-origin', token => $TOK, headers => { Origin => $o });
        is($ws->status, $want{$o}, "/ws-origin, Origin $o: $want{$o}");
    }
    # the token in a cookie is what a hijacking page would ride on
    my $ws = UPM::WS->connect('/ws-origin', headers => { Origin => 'https://evil.test',
                                                         Cookie => "upm_ws=$TOK" });
    is($ws->status, 403, 'cookie token from a foreign origin: 403');
    $ws = UPM::WS->connect('/ws-origin', headers => { Origin => 'https://app.upm.test',
                                                      Cookie => "upm_ws=$TOK" });
    is($ws->status, 101, 'cookie token from a listed origin: 101');
    $ws = UPM::WS->connect('/ws-origin', token => $TOK);
    is($ws->status, 101, 'no Origin (not a browser): 101');
    # without the directive: the server's own origin only
    $ws = UPM::WS->connect('/ws', token => $TOK,
                           headers => { Origin => "http://127.0.0.1:$port" });
    is($ws->status, 101, "/ws, same origin: 101");
    $ws = UPM::WS->connect('/ws', token => $TOK, headers => { Origin => 'https://evil.test' });
    is($ws->status, 403, '/ws, foreign origin: 403');
});

wscase('handshake: UploadProgressMaxConnectionsPerUser counts WebSockets' => sub {
    my $u = uniq('wslim');
    my $t = token(sub => $u);
    my @open = map { UPM::WS->connect('/ws-limit', token => $t) } 1 .. 3;
    is(scalar(grep { ($_->status // 0) == 101 } @open), 3, 'three open');
    my $ws = UPM::WS->connect('/ws-limit', token => $t);
    is($ws->status, 429, 'the fourth: 429');
    is($ws->header('Retry-After'), '5', 'Retry-After: 5');
    is(($ws->json_body || {})->{error}, 'too_many_connections', 'JSON reason');
    $ws = UPM::WS->connect('/ws-limit', token => token(sub => uniq('wslim-other')));
    is($ws->status, 101, 'another user is not limited by it');
    $open[0]->send_close(1000);
    $open[0]->expect_close(5);
    ok($open[0]->wait_eof(5), 'one closed');
    my $again;
    for (1 .. 20) {
        $again = UPM::WS->connect('/ws-limit', token => $t);
        last if ($again->status // 0) == 101;
        select(undef, undef, undef, 0.1);
    }
    is($again->status, 101, 'its place is free again');
    $ws = UPM::WS->connect('/ws-limit', token => $t);
    is($ws->status, 429, 'and the limit still holds');
});

# ================================================================ framing
wscase('framing: 7-bit, 16-bit and 64-bit length encodings' => sub {
    my $ws = open_ws();
    my $p = '{"type":"ping"}';
    $ws->send_frame(opcode => 1, payload => $p);
    is($ws->next_json(5)->{type}, 'pong', '7-bit length');
    $ws->send_frame(opcode => 1, payload => $p, len => 16);
    is($ws->next_json(5)->{type}, 'pong', '16-bit length of a short payload');
    $ws->send_frame(opcode => 1, payload => $p, len => 64);
    is($ws->next_json(5)->{type}, 'pong', '64-bit length of a short payload');
    $ws->send_frame(opcode => 1, payload => pad_json(300));
    is($ws->next_json(5)->{type}, 'pong', '300 bytes (16-bit)');
    $ws->send_frame(opcode => 1, payload => pad_json(65535));
    is($ws->next_json(5)->{type}, 'pong', '65535 bytes (largest 16-bit)');
    $ws->send_frame(opcode => 1, payload => pad_json(65536));
    is($ws->next_json(5)->{type}, 'pong', '65536 bytes (64-bit, exactly the limit)');
});

wscase('framing: a frame trickled one byte per write' => sub {
    my $ws = open_ws();
    my $f = UPM::WS->frame(opcode => 1, payload => '{"type":"ping"}');
    for my $i (0 .. length($f) - 1) {
        $ws->send_raw(substr($f, $i, 1));
        sleep 0.01;
    }
    is(($ws->next_json(5) || {})->{type}, 'pong', 'reassembled');
});

wscase('framing: three frames in one write' => sub {
    my $ws = open_ws();
    $ws->send_raw(join '', map { UPM::WS->frame(opcode => 1, payload => '{"type":"ping"}') } 1 .. 3);
    is(scalar(grep { ($_->{type} // '') eq 'pong' } $ws->drain_json(1)), 3, 'three replies');
});

wscase('framing: frames pipelined in the same write as the handshake' => sub {
    my $ws = UPM::WS->connect('/ws', token => $TOK,
                              early => UPM::WS->frame(opcode => 1, payload => '{"type":"ping"}')
                                       . UPM::WS->frame(opcode => 9, payload => 'early'));
    is($ws->status, 101, 'status 101');
    my $f = $ws->read_frame(5) || {};
    like($f->{payload} // '', qr/"connected"/, 'connected first');
    my ($text, $pong);
    while (!($text && $pong)) {
        my $g = $ws->read_frame(5) or last;
        $text = $g->{payload} if $g->{opcode} == 1;
        $pong = $g->{payload} if $g->{opcode} == 10;
    }
    is($text, '{"type":"pong"}', 'the early message is answered');
    is($pong, 'early', 'the early ping is answered');
});

closes_with('framing: unmasked client frame' => 1002,
            sub { $_[0]->send_frame(opcode => 1, payload => '{"type":"ping"}', mask => 0) });

closes_with('framing: 64-bit length with the most significant bit set' => 1002, sub {
    $_[0]->send_raw("\x81\xFF\x80\0\0\0\0\0\0\x05" . "abcd");
});

# ================================================================ ping/pong
wscase('ping: empty payload gets an empty pong' => sub {
    my $ws = open_ws();
    $ws->send_frame(opcode => 9, payload => '');
    my $f = $ws->read_frame(5);
    is($f->{opcode}, 10, 'pong');
    is($f->{payload}, '', 'empty');
    is($f->{masked}, 0, 'server frames are not masked');
});

wscase('ping: 125-byte binary payload is echoed exactly' => sub {
    my $ws = open_ws();
    my $p = join '', map { chr(($_ * 7) % 256) } 0 .. 124;
    $ws->send_frame(opcode => 9, payload => $p);
    my $f = $ws->read_frame(5);
    is($f->{opcode}, 10, 'pong');
    ok($f->{payload} eq $p, 'same 125 bytes');
});

closes_with('ping: payload of 126 bytes' => 1002,
            sub { $_[0]->send_frame(opcode => 9, payload => 'x' x 126) });

closes_with('ping: fragmented (FIN clear)' => 1002,
            sub { $_[0]->send_frame(opcode => 9, payload => 'x', fin => 0) });

wscase('ping: ten pings get ten pongs in order' => sub {
    my $ws = open_ws();
    $ws->send_raw(join '', map { UPM::WS->frame(opcode => 9, payload => "p$_") } 1 .. 10);
    my @got;
    while (@got < 10) {
        my $f = $ws->read_frame(5) or last;
        push @got, $f->{payload} if $f->{opcode} == 10;
    }
    is("@got", join(' ', map { "p$_" } 1 .. 10), 'pongs in order');
});

wscase('pong: an unsolicited pong is ignored' => sub {
    my $ws = open_ws();
    $ws->send_frame(opcode => 10, payload => 'unasked');
    ok(alive($ws), 'the connection carries on');
});

# ================================================================ reserved bits
for my $rsv (4, 2, 1) {
    closes_with("reserved bits: RSV$rsv on a text frame" => 1002,
                sub { $_[0]->send_frame(opcode => 1, rsv => $rsv, payload => '{"type":"ping"}') });
}
closes_with('reserved bits: all three on a ping' => 1002,
            sub { $_[0]->send_frame(opcode => 9, rsv => 7, payload => 'x') });

wscase('reserved bits: a good message first, then a bad frame' => sub {
    my $ws = open_ws();
    $ws->send_raw(UPM::WS->frame(opcode => 1, payload => '{"type":"ping"}')
                  . UPM::WS->frame(opcode => 1, rsv => 1, payload => '{"type":"ping"}'));
    my $m = $ws->next_json(5);
    is($m->{type}, 'pong', 'the good message is answered');
    my ($code) = $ws->expect_close(5);
    is($code, 1002, 'then close 1002');
});

# ================================================================ opcodes
for my $op (3 .. 7, 0xB .. 0xF) {
    closes_with(sprintf('opcodes: reserved opcode 0x%X', $op) => 1002,
                sub { $_[0]->send_frame(opcode => $op, payload => 'x') });
}
closes_with('opcodes: binary message' => 1003,
            sub { $_[0]->send_frame(opcode => 2, payload => "\x00\x01\x02") });

# ================================================================ fragmentation
wscase('fragmentation: a message in two fragments' => sub {
    my $ws = open_ws();
    $ws->send_frame(opcode => 1, fin => 0, payload => '{"type":');
    $ws->send_frame(opcode => 0, fin => 1, payload => '"ping"}');
    is(($ws->next_json(5) || {})->{type}, 'pong', 'reassembled');
});

wscase('fragmentation: one byte per fragment' => sub {
    my $ws = open_ws();
    my @c = split //, '{"type":"ping"}';
    my $first = shift @c;
    my $last = pop @c;
    $ws->send_frame(opcode => 1, fin => 0, payload => $first);
    $ws->send_frame(opcode => 0, fin => 0, payload => $_) for @c;
    $ws->send_frame(opcode => 0, fin => 1, payload => $last);
    is(($ws->next_json(5) || {})->{type}, 'pong', 'reassembled from 15 fragments');
});

wscase('fragmentation: a ping between fragments is answered at once' => sub {
    my $ws = open_ws();
    $ws->send_frame(opcode => 1, fin => 0, payload => '{"type":');
    $ws->send_frame(opcode => 9, payload => 'mid');
    my $f = $ws->read_frame(5);
    is($f->{opcode}, 10, 'pong before the message ends');
    is($f->{payload}, 'mid', 'with the ping payload');
    $ws->send_frame(opcode => 0, fin => 1, payload => '"ping"}');
    is(($ws->next_json(5) || {})->{type}, 'pong', 'then the message');
});

wscase('fragmentation: empty fragments' => sub {
    my $ws = open_ws();
    $ws->send_frame(opcode => 1, fin => 0, payload => '');
    $ws->send_frame(opcode => 0, fin => 0, payload => '{"type":"ping"}');
    $ws->send_frame(opcode => 0, fin => 1, payload => '');
    is(($ws->next_json(5) || {})->{type}, 'pong', 'answered');
});

closes_with('fragmentation: continuation without a message to continue' => 1002,
            sub { $_[0]->send_frame(opcode => 0, fin => 1, payload => '{"type":"ping"}') });

closes_with('fragmentation: a new text frame inside a fragmented message' => 1002, sub {
    $_[0]->send_frame(opcode => 1, fin => 0, payload => '{"type":');
    $_[0]->send_frame(opcode => 1, fin => 1, payload => '"ping"}');
});

closes_with('fragmentation: binary message in fragments' => 1003, sub {
    $_[0]->send_frame(opcode => 2, fin => 0, payload => 'ab');
    $_[0]->send_frame(opcode => 0, fin => 1, payload => 'cd');
});

# ================================================================ UTF-8
wscase('UTF-8: valid multi-byte text (Greek, emoji) is accepted' => sub {
    my $ws = open_ws();
    $ws->send_text("{\"type\":\"\x{3ba}\x{1f79}\x{3c3}\x{3bc}\x{3b5}\x{1F600}\"}");
    my $m = $ws->next_json(5);
    is($m->{code}, 'unknown_type', 'parsed: unknown_type');
    like($m->{message} // '', qr/\x{3ba}\x{1f79}\x{3c3}\x{3bc}\x{3b5}\x{1F600}/,
         'the type comes back intact');
});

wscase('UTF-8: a code point split across two fragments is fine' => sub {
    my $ws = open_ws();
    $ws->send_frame(opcode => 1, fin => 0, payload => "{\"type\":\"\xe2\x82");
    $ws->send_frame(opcode => 0, fin => 1, payload => "\xac\"}");
    my $m = $ws->next_json(5);
    is($m->{code}, 'unknown_type', 'answered');
});

closes_with('UTF-8: invalid byte in a single frame' => 1007,
            sub { $_[0]->send_frame(opcode => 1, payload => "{\"type\":\"\xff\"}") });
closes_with('UTF-8: UTF-16 surrogate (ED A0 80)' => 1007,
            sub { $_[0]->send_frame(opcode => 1, payload => "\"\xed\xa0\x80\"") });
closes_with('UTF-8: overlong encoding of "/"' => 1007,
            sub { $_[0]->send_frame(opcode => 1, payload => "\"\xc0\xaf\"") });
closes_with('UTF-8: code point above U+10FFFF' => 1007,
            sub { $_[0]->send_frame(opcode => 1, payload => "\"\xf4\x90\x80\x80\"") });
closes_with('UTF-8: invalid across the fragment boundary' => 1007, sub {
    $_[0]->send_frame(opcode => 1, fin => 0, payload => "\"\xe2\x82");
    $_[0]->send_frame(opcode => 0, fin => 1, payload => "\x28\"");
});
closes_with('UTF-8: message ends inside a code point' => 1007, sub {
    $_[0]->send_frame(opcode => 1, fin => 0, payload => '"a');
    $_[0]->send_frame(opcode => 0, fin => 1, payload => "\xe2\x82");
});
closes_with('UTF-8: fail fast, before the fragmented message ends' => 1007,
            sub { $_[0]->send_frame(opcode => 1, fin => 0, payload => "\"\xed\xa0\x80") });

# ================================================================ limits
closes_with('limits: one frame over 64 KB (refused from its header)' => 1009,
            sub { $_[0]->send_raw("\x81\xFF" . pack('NN', 0, 100000) . "abcd") });
closes_with('limits: fragments adding up to over 64 KB' => 1009, sub {
    $_[0]->send_frame(opcode => 1, fin => 0, payload => 'x' x 40000);
    $_[0]->send_frame(opcode => 0, fin => 1, payload => 'x' x 30000);
});
wscase('limits: UploadProgressWSMaxMessage 1K' => sub {
    my $ws = open_ws('/ws-small');
    $ws->send_frame(opcode => 1, payload => pad_json(1024));
    is(($ws->next_json(5) || {})->{type}, 'pong', '1024 bytes: accepted');
    $ws->send_frame(opcode => 1, payload => pad_json(1025));
    my ($code) = $ws->expect_close(5);
    is($code, 1009, '1025 bytes: close 1009');
});

# ================================================================ close handling
wscase('close: 1000 with a reason is echoed, then TCP closes' => sub {
    my $ws = open_ws();
    $ws->send_close(1000, 'done');
    my ($code) = $ws->expect_close(5);
    is($code, 1000, 'echoed 1000');
    ok($ws->wait_eof(5), 'TCP closed by the server');
});

wscase('close: empty close frame is echoed empty' => sub {
    my $ws = open_ws();
    $ws->send_close(undef);
    my $f = $ws->read_frame(5);
    is($f->{opcode}, 8, 'close frame');
    is($f->{payload}, '', 'with an empty payload');
    ok($ws->wait_eof(5), 'TCP closed');
});

wscase('close: valid codes are echoed' => sub {
    for my $c (1001, 1003, 1011, 3000, 4999) {
        my $ws = open_ws();
        $ws->send_close($c, '');
        my ($code) = $ws->expect_close(5);
        is($code, $c, "$c echoed");
    }
});

wscase('close: 125-byte payload (the most a control frame carries)' => sub {
    my $ws = open_ws();
    $ws->send_close(1000, 'r' x 123);
    my ($code) = $ws->expect_close(5);
    is($code, 1000, 'echoed');
});

closes_with('close: payload of one byte' => 1002,
            sub { $_[0]->send_frame(opcode => 8, payload => "\x03") });
closes_with('close: payload over 125 bytes' => 1002,
            sub { $_[0]->send_close(1000, 'r' x 124) });
closes_with('close: reason that is not UTF-8' => 1007,
            sub { $_[0]->send_close(1000, "\xff\xfe") });

wscase('close: invalid close codes get 1002' => sub {
    for my $c (0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535) {
        my $ws = open_ws();
        $ws->send_close($c, '');
        my ($code) = $ws->expect_close(5);
        is($code, 1002, "code $c: 1002");
    }
});

wscase('close: frames after the close are ignored' => sub {
    my $ws = open_ws();
    $ws->send_raw(UPM::WS->frame(opcode => 8, payload => pack('n', 1000))
                  . UPM::WS->frame(opcode => 1, payload => '{"type":"ping"}')
                  . UPM::WS->frame(opcode => 9, payload => 'late'));
    my $f = $ws->read_frame(5);
    is($f->{opcode}, 8, 'the close is echoed first');
    my $next = $ws->read_frame(1);
    ok(!$next, 'nothing answers the later frames');
    ok($ws->wait_eof(5), 'TCP closed');
});

# ================================================================ protocol replies
wscase('protocol: invalid JSON gets an error and the connection stays' => sub {
    my $ws = open_ws();
    $ws->send_text('{"type":"subscribe",');
    my $m = $ws->next_json(5);
    is($m->{type}, 'error', 'error');
    is($m->{code}, 'invalid_json', 'code invalid_json');
    ok(length($m->{message} // ''), 'with a message');
    ok(alive($ws), 'still open');
});

wscase('protocol: not an object, no type, unknown type' => sub {
    my $ws = open_ws();
    $ws->send_text('[1]');
    is($ws->next_json(5)->{code}, 'invalid_message', 'array: invalid_message');
    $ws->send_text('{"jobId":"j"}');
    is($ws->next_json(5)->{code}, 'invalid_message', 'no type: invalid_message');
    $ws->send_text('{"type":"launch"}');
    is($ws->next_json(5)->{code}, 'unknown_type', 'unknown type: unknown_type');
    ok(alive($ws), 'still open');
});

wscase('protocol: bad ids' => sub {
    my $ws = open_ws();
    for my $bad ('a b', 'x' x 129, '', 'a/b', 'caf' . "\x{e9}") {
        $ws->send_json({ type => 'subscribe', projectId => $bad });
        is($ws->next_json(5)->{code}, 'invalid_id', 'projectId "' . substr($bad, 0, 20)
           . '": invalid_id');
    }
    $ws->send_json({ type => 'subscribe', jobId => 7 });
    is($ws->next_json(5)->{code}, 'invalid_id', 'a number: invalid_id');
    $ws->send_json({ type => 'subscribe', jobId => 'x' x 128 });
    is($ws->next_json(5)->{type}, 'subscribed', '128 characters are fine');
    $ws->send_json({ type => 'subscribe', jobId => 'a', fileId => 'b' });
    is($ws->next_json(5)->{code}, 'invalid_message', 'two ids at once: invalid_message');
    $ws->send_json({ type => 'unsubscribe', jobId => 'never' });
    is($ws->next_json(5)->{code}, 'not_subscribed', 'unsubscribe unknown: not_subscribed');
    ok(alive($ws), 'still open');
});

wscase('protocol: more than 20 subscribe/unsubscribe per second' => sub {
    my $ws = open_ws();
    $ws->send_raw(join '', map { UPM::WS->frame(opcode => 1, payload =>
        $JSON->encode({ type => 'subscribe', fileId => "f$_" })) } 1 .. 25);
    my @r = grep { ($_->{type} // '') ne 'pong' } $ws->drain_json(1.5);
    is(scalar(grep { ($_->{type} // '') eq 'subscribed' } @r), 20, '20 subscribed');
    is(scalar(grep { ($_->{code} // '') eq 'rate_limited' } @r), 5, '5 rate_limited');
    ok(alive($ws), 'still open');
    $ws->send_json({ type => 'subscribe', fileId => 'later' });
    is(($ws->next_json(5) || {})->{type}, 'subscribed', 'a second later it works again');
});

wscase('protocol: at most 64 subscriptions' => sub {
    my $ws = open_ws();
    my $ok = 0;
    for my $i (1 .. 64) {
        sleep 1.05 if $i > 1 && $i % 20 == 1;      # stay under the rate limit
        $ws->send_json({ type => 'subscribe', jobId => "j$i" });
        my $m = $ws->next_json(5) || {};
        $ok++ if ($m->{type} // '') eq 'subscribed';
    }
    is($ok, 64, '64 subscriptions');
    $ws->send_json({ type => 'subscribe', jobId => 'j65' });
    my $m = $ws->next_json(5) || {};
    is($m->{code}, 'too_many_subscriptions', 'the 65th: too_many_subscriptions');
    ok(alive($ws), 'still open');
});

# ================================================================ heartbeat, expiry
wscase('heartbeat: the server pings; a client that answers stays' => sub {
    my $ws = open_ws('/ws-hb');
    my $t0 = time;
    my $f = $ws->read_frame(3);
    ok($f && $f->{opcode} == 9, 'a ping within 3 s (UploadProgressHeartbeat 1)');
    $ws->send_frame(opcode => 10, payload => $f ? $f->{payload} : '');
    # keep answering for 4 s: no close
    my ($closed, $pings) = (0, 1);
    while (time - $t0 < 4.5) {
        my $g = $ws->read_frame(0.5) or next;
        if ($g->{opcode} == 9) { $pings++; $ws->send_frame(opcode => 10, payload => $g->{payload}) }
        $closed = 1 if $g->{opcode} == 8;
    }
    ok(!$closed, 'still open after 4.5 s');
    cmp_ok($pings, '>=', 3, "pinged about every second ($pings pings)");
    ok(alive($ws), 'and answering');
});

wscase('heartbeat: a client that never answers is closed (4002)' => sub {
    my $ws = open_ws('/ws-hb');
    my $t0 = time;
    my ($code) = $ws->expect_close(6);
    my $dt = time - $t0;
    is($code, 4002, 'close 4002');
    ok($dt >= 1.5 && $dt < 5, sprintf('after about two heartbeats (%.1f s)', $dt));
    ok($ws->wait_eof(5), 'TCP closed');
});

wscase('token expiry: close 4001 at exp' => sub {
    my $exp = int(time) + 3;
    my $ws = UPM::WS->connect('/ws-exp', token => token(sub => $user, exp => $exp));
    is($ws->status, 101, 'open');
    my $hello = $ws->next_json(5);
    ok(alive($ws), 'working before exp');
    my ($code, $reason) = $ws->expect_close(8);
    is($code, 4001, 'close 4001');
    is($reason, 'token expired', 'reason');
    cmp_ok(time, '>=', $exp - 0.05, 'not before exp');
    ok($ws->wait_eof(5), 'TCP closed');
});

# ================================================================ reqtimeout
wscase('mod_reqtimeout does not end a quiet upgraded connection' => sub {
    my $wait = $idle_since + 22 - time;
    # answer whatever pings come meanwhile, sending nothing else
    while ($wait > 0) {
        my $f = $idle->read_frame($wait > 1 ? 1 : $wait);
        $idle->send_frame(opcode => 10, payload => $f->{payload}) if $f && $f->{opcode} == 9;
        $wait = $idle_since + 22 - time;
    }
    ok(!$idle->eof, 'open after 22 s');
    ok(alive($idle), 'and answering after 22 s');
    my ($st) = publish('/publish', { event => 'PhotoUploadStarted', userId => $user,
                                     photoId => 'late-photo' });
    is($st, 202, 'published');
    my ($m) = $idle->until_json(photoId => 'late-photo', 5);
    ok($m, 'and still delivering');
});

cmp_ok($case, '>=', 40, "$case conformance cases");
done_testing();
