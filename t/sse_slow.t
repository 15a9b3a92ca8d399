# SPDX-License-Identifier: Apache-2.0
# An SSE client that stops reading (t/ws_reactor.t has the WebSocket
# one).  A private server with small socket buffers and a 16 KB send
# queue: while the client does not read, further progress messages for the
# same photo replace the queued one (coalescing) and anything else clears
# the queue for an in-band reset (reason overflow); a client that reads
# again gets exactly what is newer than the reset.  One that never reads
# again is closed after UploadProgressWriteTimeout with the reason logged,
# and another client gets its messages in time all along.  Both
# UploadProgressAsync modes (on a worker the write timeout bounds the
# blocking write).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::Server;
use Time::HiRes qw(time sleep);

$SIG{PIPE} = 'IGNORE';

my $auth = UPM::Server::jwt_auth();
my $srv = UPM::Server->private(<<"CONF");
SendBufferSize 16384
<Location /sse-queue>
    SetHandler upload-progress-sse
    UploadProgressSendQueue 16K
    UploadProgressWriteTimeout 120
    $auth
</Location>
<Location /sse-slow>
    SetHandler upload-progress-sse
    UploadProgressSendQueue 16K
    UploadProgressWriteTimeout 3
    $auth
</Location>
CONF
my $port = $srv->port;
note("private server on $port, UploadProgressAsync " . UPM::Server::async_mode());

my $pad = 'p' x 2000;
sub open_sse {
    my ($path, $user, %o) = @_;
    my $c = sse($path, port => $port, token => token(sub => $user), timeout => 10, %o);
    die "$path: " . ($c->status // 'no answer') unless ($c->status // 0) == 200;
    return $c;
}
sub as_checked {
    map { { id => $_->{id}, type => $_->{event} // '', reason => ($_->{json} || {})->{reason} } }
        @_;
}
# 100 messages of about 2 KB (200 KB: far more than the socket buffers and
# the queue hold), 5 a request, each request fitting the queue.
sub flood {
    my ($user, $make, $between) = @_;
    my @ids;
    for my $b (0 .. 19) {
        my ($st, $body) = $srv->publish('/publish', [map { $make->($b * 5 + $_) } 1 .. 5]);
        die "publish: $st" unless $st == 202;
        push @ids, @{ $body->{ids} };
        $between->() if $between;
    }
    return @ids;
}
# Has $c received $id, or a reset that covers it?
sub reached {
    my ($c, $id) = @_;
    return sub { my @r = $c->received; @r && id_cmp($r[-1]{id}, $id) >= 0 };
}
# A message for $c's user must reach it within $secs.
my $probe_n = 0;
sub in_time {
    my ($c, $user, $secs) = @_;
    my $n = ++$probe_n;
    my $t0 = time;
    my ($st) = $srv->publish('/publish', [{ type => 'probe', userId => $user, n => $n }]);
    my ($ev) = $c->until_field('n', $n, $secs);
    return $st == 202 && $ev ? time - $t0 : undef;
}

# -------------------------------------------------- overflow, then reset
{
    my ($us, $ug) = (uniq('slow-ovf'), uniq('slow-ovf-good'));
    my $slow = open_sse('/sse-queue', $us, rcvbuf => 4096);
    my $good = open_sse('/sse-queue', $ug);
    my @late;
    my @ids = flood($us, sub { { type => 'slow_bulk', userId => $us, n => $_[0], pad => $pad } },
                    sub { my $t = in_time($good, $ug, 5); push @late, $t unless defined $t && $t < 2 });
    is(scalar @late, 0, 'another client gets each of its 20 messages within 2 s meanwhile');
    ok(wait_all([$slow], reached($slow, $ids[-1]), 30),
       'the stalled client, reading again, gets to the last message (or a reset covering it)');
    my @got = $slow->received;
    my ($ok, $why) = check_delivery([as_checked(@got)], \@ids, reasons => ['overflow']);
    ok($ok, 'what it got: messages in order, each once, a reset, then exactly what is '
            . 'newer than the reset') or diag($why);
    my @resets = grep { $_->{event} eq 'reset' } @got;
    cmp_ok(scalar @resets, '>=', 1, 'its queue overflowed: ' . scalar(@resets) . ' reset(s)');
    is(scalar(grep { ($_->{json}{reason} // '') ne 'overflow' } @resets), 0, 'reason overflow');
    cmp_ok(scalar(grep { $_->{event} ne 'reset' } @got), '<', 100,
           'what a reset covers is not sent');
    ok(defined in_time($slow, $us, 5), 'and it is live again');
    $_->close for $slow, $good;
}

# ------------------------------------------------ progress is coalesced
{
    my $u = uniq('slow-prog');
    my $slow = open_sse('/sse-queue', $u, rcvbuf => 4096);
    my @ids = flood($u, sub { { type => 'upload_progress', userId => $u, photoId => 'ph1',
                                bytesUploaded => $_[0], totalBytes => 100, pad => $pad } });
    ok(wait_all([$slow], reached($slow, $ids[-1]), 30),
       'progress: the stalled client, reading again, gets the last one');
    my @got = $slow->received;
    my @p = map { ($_->{json} || {})->{progress} // -1 } @got;
    is(scalar(grep { $_->{event} ne 'upload_progress' } @got), 0, 'no reset: only progress');
    cmp_ok(scalar @got, '<', 100, 'coalesced: ' . scalar(@got) . ' of 100 sent');
    is(scalar(grep { $p[$_] <= $p[$_ - 1] } 1 .. $#p), 0, 'progress only increases');
    is($p[-1], 100, 'and ends at 100');
    ok(ids_increasing(map { $_->{id} } @got), 'ids increasing');
    my ($st) = $srv->publish('/publish', [{ type => 'upload_completed', userId => $u,
                                            photoId => 'ph1' }]);
    my ($ev) = $slow->until_field('type', 'upload_completed', 5);
    ok($st == 202 && $ev, 'then upload_completed arrives');
    $slow->close;
}

# ------------------------------------------------------ the write timeout
{
    my ($us, $ug) = (uniq('slow-wt'), uniq('slow-wt-good'));
    my $slow = open_sse('/sse-slow', $us, rcvbuf => 4096);
    my $good = open_sse('/sse-slow', $ug);
    my $t0 = time;
    my @ids = flood($us, sub { { type => 'slow_bulk', userId => $us, n => $_[0], pad => $pad } });
    my ($logged, @late, $probes);
    my $deadline = time + 20;
    until ($logged || time > $deadline) {
        my $t = in_time($good, $ug, 5);
        $probes++;
        push @late, $t // 'never' unless defined $t && $t < 2;
        ($logged) = grep { /AH1304[35]/ && /\Q$us\E/ } split /\n/, $srv->error_log;
        sleep 0.2 unless $logged;
    }
    my $after = time - $t0;
    ok($logged, 'the client that does not read is closed, the reason logged')
        or diag($srv->error_log);
    like($logged // '', qr/has not read for \d+ s \(UploadProgressWriteTimeout\)/,
         'naming UploadProgressWriteTimeout');
    cmp_ok($after, '>=', 2.9, sprintf('not before the write timeout (%.1f s)', $after));
    is(scalar @late, 0, "another client got each of its $probes messages within 2 s meanwhile")
        or diag("late: @late");
    ok(wait_all([$slow], sub { 0 }, 10) || $slow->eof, 'its connection is closed');
    my @got = $slow->received;
    ok(@got && $got[-1]{id} ne $ids[-1], 'before it had everything');

    # Reconnecting with its last id: the rest (the ring still holds it).
    my $again = open_sse('/sse-slow', $us, headers => { 'Last-Event-ID' => $slow->{last_id} });
    ok(wait_all([$again], reached($again, $ids[-1]), 20),
       'reconnecting with its last id, it gets the rest');
    my ($ok, $why) = check_delivery([as_checked(@got, $again->received)], \@ids,
                                    reasons => ['overflow']);
    ok($ok, 'all told: every message in order, each once, or a reset and what is newer')
        or diag($why);
    ok(defined in_time($good, $ug, 5), 'the other client is still served');
    $_->close for $again, $good;
}

$srv->stop;
done_testing();
