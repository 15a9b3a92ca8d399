# SPDX-License-Identifier: Apache-2.0
# WebSockets on the event-MPM reactor: an open WebSocket holds no worker
# thread, a client that stops reading is closed after its write timeout
# without stalling anyone else, and a long resume goes out in bounded steps
# while the socket takes them.  Run only in the async mode of the suite
# (scripts/test.sh leaves it out of the UploadProgressAsync Off run).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::Server;
use UPM::WS;
use IO::Socket::INET;
use LWP::UserAgent;
use JSON ();
use Time::HiRes qw(time sleep);

my $JSON = JSON->new->utf8->canonical;
$SIG{PIPE} = 'IGNORE';              # a closed connection fails a test, not the file

# ------------------------------------------ more WebSockets than workers
# extra.conf.in: ServerLimit 4 x ThreadsPerChild 25 = 100 workers.
# /ws-hb pings every second and closes a client silent for two.
{
    my $workers = 100;
    my $n = 160;
    my @users = map { uniq("wsrx$_") } 1 .. $n;
    my @ws;
    for my $u (@users) {
        # Those open answer their pings meanwhile: none goes away (4002)
        # and frees what it holds while the others connect.
        $_->collect for @ws;
        my $c = UPM::WS->connect('/ws-hb', token => token(sub => $u), timeout => 10);
        push @ws, $c;
        last unless ($c->status // 0) == 101;   # all workers held: stop
    }
    $_->collect for @ws;
    # (A worker-held server gets there only by closing earlier ones.)
    is(scalar(grep { ($_->status // 0) == 101 && !$_->eof && !defined $_->{closed_with} } @ws),
       $n, "$n WebSockets open at once with $workers workers");
    $_->collect for @ws;            # what came with the handshake's answer
    ok(UPM::WS->wait_all(\@ws, sub {
        !grep { !grep { ($_->{type} // '') eq 'connected' } $_->inbox } @ws
    }, 20), 'each got its connected message');

    # A plain request still gets a worker while they are all open.
    my @evs = map { { type => 'rx_hello', userId => $users[$_], n => $_ } } 0 .. $n - 1;
    my ($st) = publish('/publish', \@evs);
    is($st, 202, 'publishing works with every WebSocket open');
    ok(UPM::WS->wait_all(\@ws, sub {
        !grep { !grep { ($_->{type} // '') eq 'rx_hello' } $_->inbox } @ws
    }, 30), 'every WebSocket received its own message');
    my $wrong = 0;
    for my $i (0 .. $#ws) {
        for my $m ($ws[$i]->inbox) {
            next unless ($m->{type} // '') eq 'rx_hello';
            $wrong++ if ($m->{userId} // '') ne $users[$i] || $m->{n} != $i;
        }
    }
    is($wrong, 0, 'and nothing of anyone else');

    # Pings from the reactor's timer, answered by collect(): after 3 s
    # every connection was pinged and none was closed for want of a pong.
    UPM::WS->wait_all(\@ws, sub { 0 }, 3.2);
    is(scalar(grep { ($_->{pings} // 0) >= 2 } @ws), $n, 'every one was pinged');
    is(scalar(grep { defined $_->{closed_with} || $_->eof } @ws), 0,
       'and, answering, stays open');
    $_->send_json({ type => 'ping' }) for @ws;
    ok(UPM::WS->wait_all(\@ws, sub {
        !grep { !grep { ($_->{type} // '') eq 'pong' } $_->inbox } @ws
    }, 20), 'every one answers an application ping');
    $_->close for @ws;
}

# ------------------------------------------- closed at the hand-over
# A close frame sent with the handshake: the reactor reads it as soon as it
# owns the connection and closes at once, while the MPM's worker may still
# be finishing the suspension.  Every close is echoed and no child dies.
{
    my $log = t_logs() . '/error_log';
    my $crashes = sub { scalar(() = file_text($log) =~ /exit signal/g) };
    my $before = $crashes->();
    my $close = UPM::WS->frame(opcode => 8, payload => pack('n', 1000));
    my $echoed = 0;
    for my $i (1 .. 200) {
        my $c = UPM::WS->connect('/ws', token => token(sub => uniq('wsrx-quick')),
                                 early => $close);
        my ($code) = $c->expect_close(5);
        $echoed++ if ($code // 0) == 1000;
        $c->close;
    }
    is($echoed, 200, '200 WebSockets closed with the handshake: every close echoed');
    sleep 1.5;                      # the parent notices dead children each second
    is($crashes->() - $before, 0, 'and no child crashed');
}

# ------------------------------------------------ a private server
# Small, fixed socket buffers (SendBufferSize) so that a client that does
# not read stalls the server's writes after a few KB.
my $port = UPM::Server::free_port();
my $secret = t_dir() . '/keys/hs256.secret';
my $srv = UPM::Server->new(port => $port, conf => <<"CONF");
SendBufferSize 16384
UploadProgressAsync On
<Location /publish>
    SetHandler upload-progress-publish
    Require ip 127.0.0.1
</Location>
<Location /ws>
    SetHandler upload-progress-websocket
    AuthType JWT
    UploadProgressJWTKey HS256 file:$secret
    Require valid-user
</Location>
<Location /ws-slow>
    SetHandler upload-progress-websocket
    UploadProgressWriteTimeout 2
    UploadProgressSendQueue 16K
    AuthType JWT
    UploadProgressJWTKey HS256 file:$secret
    Require valid-user
</Location>
CONF
ok($srv, "private httpd on 127.0.0.1:$port");

my $ua = LWP::UserAgent->new(timeout => 20);
sub pub {
    my ($evs) = @_;
    my $res = $ua->post("http://127.0.0.1:$port/publish", 'Content-Type' => 'application/json',
                        Content => $JSON->encode($evs));
    my $b = eval { $JSON->decode($res->content) } || {};
    return ($res->code, $b->{ids} || []);
}

sub open_ws {
    my ($path, $user, %o) = @_;
    my $c = UPM::WS->connect($path, port => $port, token => token(sub => $user), %o);
    die "handshake on $path: " . ($c->status // 'none') unless ($c->status // 0) == 101;
    my $hello = $c->next_json(5);
    die 'no connected message' unless ($hello->{type} // '') eq 'connected';
    return $c;
}

# Reads text messages until $want of type $type came or $timeout passed.
sub read_type {
    my ($c, $type, $want, $timeout) = @_;
    my @got;
    my $deadline = time + $timeout;
    while (@got < $want) {
        my $left = $deadline - time;
        last if $left <= 0;
        my $m = $c->next_json($left) or last;
        push @got, $m if ($m->{type} // '') eq $type;
    }
    return @got;
}

# ---------------------------------------------------- a long resume
# 1500 messages of about 600 bytes (900 KB, many replay steps), replayed
# to a client with an 8 KB receive buffer that does not read for a second
# meanwhile, while more messages are published.
{
    my $u = uniq('wsrx-replay');
    my $c = open_ws('/ws', $u, rcvbuf => 8192);
    my (@ids, @live);
    my $pad = 'r' x 500;
    # Batches of 250 (160 KB): within the connection's 256 KB queue.
    for my $b (0 .. 5) {
        my ($st, $ids) = pub([map { { type => 'rx_bulk', userId => $u, n => $_, pad => $pad } }
                              $b * 250 + 1 .. $b * 250 + 250]);
        die "publishing batch $b: $st" unless $st == 202;
        push @ids, @$ids;
        push @live, read_type($c, 'rx_bulk', 250, 20);
    }
    is(scalar(@ids), 1500, '1500 messages published');
    is(join(',', map { $_->{n} } @live), join(',', 1 .. 1500),
       'they arrive live, in order');

    # A resume on this connection would send again what it delivered: a
    # new one resumes, as its first message, from the first id.
    $c->close;
    $c = open_ws('/ws', $u, rcvbuf => 8192);
    $c->send_json({ type => 'resume', lastEventId => $ids[0] });
    sleep 0.5;
    my ($st) = pub([map { { type => 'rx_bulk', userId => $u, n => $_, pad => $pad } }
                    1501 .. 1510]);
    is($st, 202, 'published during the replay');
    sleep 0.5;
    my @got = read_type($c, 'rx_bulk', 1509, 30);
    my @n = map { $_->{n} } @got;
    is(scalar(@n), 1509, 'the replay and the messages published meanwhile arrive');
    is(join(',', @n), join(',', 2 .. 1510),
       'replay of 2..1500, then 1501..1510: in order, each once');
    ($st) = pub([{ type => 'rx_bulk', userId => $u, n => 1511 }]);
    @got = read_type($c, 'rx_bulk', 2, 2);
    is(join(',', map { $_->{n} } @got), '1511', 'then live again, without duplicates');
    $c->send_json({ type => 'ping' });
    is(($c->next_json(5) || {})->{type}, 'pong', 'and the connection answers');
    $c->close;
}

# ---------------------------------------------------- a slow reader
{
    my $us = uniq('wsrx-slow');
    my $ug = uniq('wsrx-good');
    my $slow = open_ws('/ws-slow', $us, rcvbuf => 4096);
    my $good = open_ws('/ws-slow', $ug);
    my $t0 = time;
    # 200 KB for the client that does not read, 10 KB at a time (each
    # batch fits its 16 KB queue and is taken): far more than the socket
    # buffers hold.
    my $flood = 0;
    for my $b (0 .. 19) {
        my ($st) = pub([map { { type => 'rx_flood', userId => $us, n => $_, pad => 'f' x 2000 } }
                        $b * 5 + 1 .. $b * 5 + 5]);
        $flood++ if $st == 202;
        sleep 0.05;
    }
    is($flood, 20, 'flood published');

    # The others are served meanwhile.
    my ($st) = pub([{ type => 'rx_other', userId => $ug, n => 1 }]);
    is(scalar(read_type($good, 'rx_other', 1, 5)), 1,
       'another client gets its message while the slow one is stuck');

    my $logged;
    my $deadline = time + 15;
    until ($logged || time > $deadline) {
        ($logged) = grep { /AH13502/ && /\Q$us\E/ } split /\n/, $srv->error_log;
        sleep 0.2 unless $logged;
    }
    my $after = time - $t0;
    ok($logged, 'the slow reader is closed, the reason logged')
        or diag($srv->error_log);
    like($logged // '', qr/has not read for \d+ s \(UploadProgressWriteTimeout\)/,
         'naming UploadProgressWriteTimeout');
    cmp_ok($after, '>=', 1.9, 'not before the write timeout');
    ok($slow->wait_eof(10), 'its TCP connection is closed');

    ($st) = pub([{ type => 'rx_other', userId => $ug, n => 2 }]);
    my @o = read_type($good, 'rx_other', 1, 5);
    is(($o[0] || {})->{n}, 2, 'and the other client is still served');
    $good->send_json({ type => 'ping' });
    is(($good->next_json(5) || {})->{type}, 'pong', 'and answers');
    $good->close;
}

$srv->stop;
done_testing();
