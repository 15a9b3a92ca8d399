# SPDX-License-Identifier: Apache-2.0
# Two graceful restarts (SIGUSR1) while a publisher posts 75 events a
# second to the HTTP publish endpoint, without Redis: SSE and WebSocket
# clients are closed by their stopping children, reconnect with their last
# id (Last-Event-ID, or ?lastEventId= for a WebSocket) and end with every event the
# endpoint accepted, once each, in order, without a reset (the ring and
# its epoch survive a graceful restart).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::WS;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);

$SIG{PIPE} = 'IGNORE';

my $ppid = server_pid();
ok($ppid && kill(0, $ppid), 'test server running') or BAIL_OUT('no server pid');

my $u = uniq('glload');
my $tok = token(sub => $u);
my $rate = 75;

# ------------------------------------------------------------ clients
# Each logical client: its connections one after the other, and the id it
# resumes from.
my @clients = ((map { { kind => 'sse', name => "SSE $_" } } 1 .. 4),
               (map { { kind => 'ws', name => "WebSocket $_" } } 1 .. 2));

sub ws_last_id {
    my ($c) = @_;
    my @with = grep { defined $_->{id} } $c->inbox;
    return @with ? $with[-1]{id} : undef;
}

sub connect_client {
    my ($cl) = @_;
    my $from = $cl->{last};
    my $conn;
    if ($cl->{kind} eq 'sse') {
        $conn = eval {
            sse('/sse', token => $tok, timeout => 10,
                headers => { 'Last-Event-ID' => $from })
        };
        return 0 unless $conn && ($conn->status // 0) == 200;
    }
    else {
        # ?lastEventId=: the replay and the live messages in one order (a
        # first-message resume is the same: t/ws_resume_load.t).
        my $q = defined $from ? "?lastEventId=$from" : '';
        $conn = eval { UPM::WS->connect("/ws$q", token => $tok, timeout => 10) };
        return 0 unless $conn && ($conn->status // 0) == 101;
    }
    push @{ $cl->{conns} }, $conn;
    $cl->{cur} = $conn;
    return 1;
}

# Reads what is there; a closed connection is replaced by a new one that
# resumes from the last id received.
sub pump {
    my ($secs) = @_;
    my @s = grep { $_->{kind} eq 'sse' } @clients;
    my @w = grep { $_->{kind} eq 'ws' } @clients;
    wait_all([map { $_->{cur} } @s], sub { 0 }, $secs / 2);
    UPM::WS->wait_all([map { $_->{cur} } @w], sub { 0 }, $secs / 2);
    for my $cl (@clients) {
        my $c = $cl->{cur};
        my $id = $cl->{kind} eq 'sse' ? $c->{last_id} : ws_last_id($c);
        $cl->{last} = $id if defined $id;
        my $closed = $c->eof || defined $c->{closed_with};
        next unless $closed;
        $c->close;
        $cl->{reconnects}++;
        connect_client($cl) or $cl->{reconnects}--, sleep 0.1;
    }
}

sub received {
    my ($cl) = @_;
    my @all;
    for my $c (@{ $cl->{conns} }) {
        if ($cl->{kind} eq 'sse') {
            push @all, map { { id => $_->{id}, type => $_->{event} // '',
                               reason => ($_->{json} || {})->{reason} } } $c->received;
        }
        else {
            push @all, grep { ($_->{type} // '') ne 'connected' && ($_->{type} // '') ne 'pong' }
                $c->inbox;
        }
    }
    return @all;
}

for my $cl (@clients) {
    ok(connect_client($cl), "$cl->{name} connected");
}
$_->{reconnects} = 0 for @clients;

# ---------------------------------------------------------- publisher
my $dir = tempdir(CLEANUP => 1);
my $stop = "$dir/stop";
my $pub_pid = fork // die "fork: $!";
if (!$pub_pid) {
    open my $log, '>', "$dir/log" or die "$dir/log: $!";
    $log->autoflush(1);
    my $t0 = time;
    my $n = 0;
    until (-e $stop) {
        $n++;
        my $t = time;
        my ($st, $h, $b) = eval { publish('/publish', { type => 'gl_tick', userId => $u, n => $n }) };
        $t = time - $t;
        $st //= 0;
        my $answered = !($h && ($h->header('Client-Warning') // '') =~ /internal/i);
        my $id = ref $b eq 'HASH' && $b->{ids} ? $b->{ids}[0] : '-';
        printf $log "%d %d %s %s %.3f\n", $n, $st, $answered ? 'answered' : 'unanswered', $id, $t;
        my $next = $t0 + $n / $rate;
        sleep($next - time) if $next > time;
    }
    close $log;
    exit 0;
}

sub children_gone {
    my ($old, $secs) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        return 1 unless grep { kill 0, $_ } @$old;
        pump(0.2);
    }
    return 0;
}

my $t_start = time;
pump(0.2) while time - $t_start < 3;
for my $round (1, 2) {
    my @old = children_of($ppid);
    ok(kill('USR1', $ppid), "graceful restart $round under load");
    ok(children_gone(\@old, 30), "restart $round: every old child has exited");
    my $t = time;
    pump(0.2) while time - $t < 3;
}
open my $fh, '>', $stop or die "$stop: $!";
close $fh;
waitpid($pub_pid, 0);

my (@ids, $refused, $unanswered, $slowest);
$refused = $unanswered = $slowest = 0;
open my $log, '<', "$dir/log" or die "$dir/log: $!";
while (<$log>) {
    my ($n, $st, $ans, $id, $took) = split ' ';
    $slowest = $took if $took > $slowest;
    if ($st >= 200 && $st < 300) { push @ids, $id }
    elsif ($ans eq 'unanswered') { $unanswered++ }
    else { $refused++ }
}
close $log;
my $secs = time - $t_start;
note(sprintf 'the slowest publish took %.1f s', $slowest);
cmp_ok(scalar @ids, '>=', 25 * $secs, sprintf('%d events accepted in %.1f s (%d refused, '
       . '%d without an answer)', scalar @ids, $secs, $refused, $unanswered));
ok(ids_increasing(@ids), 'their ids increase');
is(scalar(grep { epoch_of($_) != epoch_of($ids[0]) } @ids), 0,
   'one epoch throughout: the ring survived both restarts');

# Every client gets to the last accepted event.
my $deadline = time + 30;
pump(0.2) while time < $deadline
    && grep { my @r = received($_); !@r || ($r[-1]{id} // '') ne $ids[-1] } @clients;
for my $cl (@clients) {
    cmp_ok($cl->{reconnects}, '>=', 2,
           "$cl->{name}: closed by each restart and reconnected ($cl->{reconnects} times)");
    my ($ok, $why) = check_delivery([received($cl)], \@ids, unanswered => $unanswered);
    ok($ok, "$cl->{name}: every accepted event, once each, in order, no reset") or diag($why);
}
$_->{cur}->close for @clients;

done_testing();
