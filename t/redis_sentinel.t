# SPDX-License-Identifier: Apache-2.0
# Sentinel failover under load: three redis-sentinels (with a password),
# a primary and two replicas on loopback; three httpds found the primary through the
# sentinels (Streams with UploadProgressRedisWait 1, Streams without it,
# pub/sub), and events are POSTed to them at about 200/s in all while the
# primary changes: first SENTINEL FAILOVER, then kill -9 of the primary.
#   Streams + Wait: every event answered 202 is delivered, once.
#   pub/sub: clients get a reset and events flow again within 5 s.
#   Streams without Wait: measured (what an asynchronous failover loses).
# The figures are printed as notes (docs/redis.md quotes them).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use UPM::Redis;
use UPM::Node;

plan skip_all => 'redis-sentinel is not installed' unless -x '/usr/bin/redis-sentinel';

# Two replicas: after a failover the promoted one keeps a replica, so
# WAIT 1 can be met at once (the old primary is turned into a replica by
# the sentinels only after it reported the wrong role for about 8 s).
my ($P1, $P2, $P3) = (6480, 6481, 6485);
my @SP = (6482, 6483, 6484);
my $dir = tempdir('upm-sentinel-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{UPM_KEEP});
note("sentinel files in $dir");
my $j = $UPM::Node::JSON;

my %redis;
# Sentinel announces +switch-master only once the other replicas follow
# the new primary; a full sync waits repl-diskless-sync-delay (5 s by
# default) for more replicas first.
my @fast_sync = ('--repl-diskless-sync-delay', '0');
$redis{$P1} = UPM::Redis->new(port => $P1, args => [@fast_sync])->start;
$redis{$_} = UPM::Redis->new(port => $_, args => [ @fast_sync, '--replicaof', '127.0.0.1', $P1 ])
                       ->start for $P2, $P3;

my @sentinels;
END { for (@sentinels) { kill 'KILL', $_; waitpid($_, 0) } }
for my $p (@SP) {
    open my $f, '>', "$dir/s$p.conf" or die $!;
    # The sentinels want a password (and use it among themselves).
    print $f "port $p\nbind 127.0.0.1\ndaemonize no\ndir $dir\nlogfile $dir/s$p.log\n"
           . "requirepass sentinel-secret\n"
           . "sentinel monitor upm 127.0.0.1 $P1 2\n"
           . "sentinel down-after-milliseconds upm 1000\n"
           . "sentinel failover-timeout upm 4000\n";
    close $f;
    my $pid = fork;
    if (!$pid) { exec '/usr/bin/redis-sentinel', "$dir/s$p.conf"; exit 127 }
    push @sentinels, $pid;
}
sub scmd {
    my $p = shift;
    my $c = UPM::Redis::Conn->new($p);
    $c->cmd('AUTH', 'sentinel-secret');
    return $c->cmd(@_);
}
sub primary_port { my $r = eval { scmd($SP[0], 'SENTINEL', 'get-master-addr-by-name', 'upm') }; $r ? $r->[1] : 0 }
sub role { my $r = eval { $redis{ $_[0] }->_fresh->cmd('ROLE') }; $r ? $r->[0] : 'down' }
sub wait_until {
    my ($what, $t, $f) = @_;
    my $end = time + $t;
    while (time < $end) { return 1 if $f->(); sleep 0.1 }
    diag("timed out waiting for $what");
    return 0;
}
# Ready: the replica synced, every sentinel sees both others and the replica.
sub settled {
    my ($prim, @reps) = @_;
    return wait_until("replication and sentinels to settle", 30, sub {
        for my $rep (@reps) {
            my $info = eval { $redis{$rep}->_fresh->cmd('INFO', 'replication') } // '';
            return 0 unless $info =~ /master_link_status:up/ && $info =~ /master_port:$prim/;
        }
        for my $p (@SP) {
            my $ok = eval { scmd($p, 'SENTINEL', 'ckquorum', 'upm') } // '';
            return 0 unless $ok =~ /^OK/;
            my $m = eval { scmd($p, 'SENTINEL', 'get-master-addr-by-name', 'upm') };
            return 0 unless $m && $m->[1] == $prim;
            my $reps = eval { scmd($p, 'SENTINEL', 'replicas', 'upm') } || [];
            for my $rep (@reps) {
                return 0 unless grep { my %h = @$_; ($h{flags} // '') eq 'slave'
                                       && $h{port} == $rep } @$reps;
            }
        }
        return 1;
    });
}
ok(settled($P1, $P2, $P3), 'three sentinels, a primary and two replicas');

my $sent = 'UploadProgressRedisSentinel upm ' . join(' ', map { "127.0.0.1:$_" } @SP)
         . ' password=sentinel-secret';
my $fast = "UploadProgressRedisBackoff 50 500\n";
my %node = (
    wait   => UPM::Node->new(redis => 'redis://127.0.0.1:1', stream => "upm:sw:$$",
                             children => 2, conf => "$sent\n${fast}UploadProgressRedisWait 1 500")->start,
    nowait => UPM::Node->new(redis => 'redis://127.0.0.1:1', stream => "upm:sn:$$",
                             children => 2, conf => "$sent\n$fast")->start,
    pubsub => UPM::Node->new(redis => 'redis://127.0.0.1:1', children => 2,
                             conf => "$sent\n$fast")->start,
);
# A second httpd on the Streams+Wait stream: that mode's client moves
# between the two every 1.5 s with its last id, failovers included.
my $other = UPM::Node->new(redis => 'redis://127.0.0.1:1', stream => "upm:sw:$$",
                           children => 1, conf => "$sent\n${fast}UploadProgressRedisWait 1 500")
                     ->start;
my @modes = qw(wait nowait pubsub);
like($node{wait}->log_text, qr/AH14053: Redis Sentinel: the primary of upm is 127\.0\.0\.1:$P1/,
     'the primary was found through the sentinels');

my $user = "sen-$$";
my %cl;
for my $m (@modes) {
    $cl{$m} = { c => $node{$m}->sse(token => $node{$m}->token($user)), got => [] };
    is($cl{$m}{c}->status, 200, "$m: client connected");
}

sub pump_clients {
    my ($t) = @_;
    UPM::Node::pump([ map { $cl{$_}{c} } @modes ], sub { 0 }, $t);
    for my $m (@modes) {
        my $x = $cl{$m};
        my $c = $x->{c};
        my @new = @{ $c->{events} }[ $x->{taken} // 0 .. $#{ $c->{events} } ];
        $x->{taken} = @{ $c->{events} };
        for (@new) { $_->{at} = time; push @{ $x->{got} }, $_ }
        $x->{last_id} = $_->{id} for grep { defined $_->{id} } @new;
        my $move = $m eq 'wait' && time >= ($x->{move_at} //= time + 1.5);
        if ($c->eof || $move) {
            $x->{reconnects}++;
            if ($move) {
                $c->close;
                $x->{on_other} = !$x->{on_other};
                $x->{move_at} = time + 1.5;
                $x->{moves}++;
            }
            my $to = $x->{on_other} ? $other : $node{$m};
            $x->{c} = $to->sse(token => $to->token($user), last_id => $x->{last_id});
            $x->{taken} = 0;
        }
    }
}

# One scenario: a publisher process per node POSTs $BATCH events every
# $PERIOD s (about 200 events/s in all) for 9 s; the disruption at 2 s.
# Separate processes, so that one node's slow answers (a WAIT timing out)
# do not slow the others' publishing.
my ($BATCH, $PERIOD, $SECS) = (4, 0.06, 9);
my $seq_base = 0;
sub scenario {
    my ($name, $disrupt, $after) = @_;
    my %pub;    # mode -> seq -> [status, time]
    my %why;    # mode -> reason of a refusal -> count
    $_->{got} = [] for values %cl;
    my $t0 = time + 0.2;
    my %kid;
    for my $i (0 .. $#modes) {
        my $m = $modes[$i];
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if (!$pid) {
            open my $out, '>', "$dir/pub-$m" or die $!;
            sleep $t0 - time if $t0 > time;
            my $k = 0;
            while (time - $t0 < $SECS) {
                my $tick = time;
                my @batch = map { $seq_base + 1 + $i + 3 * $k++ } 1 .. $BATCH;
                my ($st, $b) = eval { $node{$m}->publish([ map { { type => 'tick', userId => $user,
                                                              seq => $_, mode => $m } }
                                                       @batch ]) };
                my $why = ($st // 0) == 202 ? '' : ref $b ? $b->{message} // '' : $b // '';
                $why =~ s/\s+/ /g;
                printf $out "%d %d %.4f %s\n", $_, $st // 0, time, $why for @batch;
                my $left = $PERIOD - (time - $tick);
                sleep $left if $left > 0;
            }
            close $out;
            POSIX::_exit(0);
        }
        $kid{$pid} = $m;
    }
    my ($t_dis, $done_after);
    while (%kid) {
        if (!$t_dis && time - $t0 >= 2) {
            $t_dis = time;
            $disrupt->();
        }
        if ($t_dis && !$done_after && $after && time - $t_dis >= 1) {
            $done_after = $after->();
        }
        pump_clients(0.02);
        while ((my $w = waitpid(-1, WNOHANG)) > 0) { delete $kid{$w} }
    }
    my $n = 0;
    for my $m (@modes) {
        open my $in, '<', "$dir/pub-$m" or die $!;
        while (<$in>) {
            chomp;
            my ($sq, $st, $at, $why) = split / /, $_, 4;
            $pub{$m}{$sq} = [ $st, $at ];
            $why{$m}{ $why =~ s/\d+(\.\d+)?/N/gr }++ if $st != 202;
            $n++;
            $seq_base = $sq if $sq > $seq_base;
        }
    }
    pump_clients(3);    # let the last ones arrive
    my $rate = $n / $SECS;
    note(sprintf "%s: %d events POSTed, %.0f/s", $name, $n, $rate);

    for my $m (@modes) {
        my @got = grep { $_->{event} eq 'tick' } @{ $cl{$m}{got} };
        my %cnt;
        $cnt{ $_->{json}{seq} }++ for @got;
        my @acked = sort { $a <=> $b } grep { $pub{$m}{$_}[0] == 202 } keys %{ $pub{$m} };
        my @refused = grep { $pub{$m}{$_}[0] != 202 } keys %{ $pub{$m} };
        my @lost = grep { !$cnt{$_} } @acked;
        my @twice = grep { $cnt{$_} > 1 } keys %cnt;
        my @resets = grep { $_->{event} eq 'reset' } @{ $cl{$m}{got} };
        # Recovery: from the disruption to the first event answered 202 and
        # delivered after the last one that was refused (503) or lost.
        my @bad = sort { $a <=> $b } grep { $pub{$m}{$_}[0] != 202 || !$cnt{$_} }
                                     keys %{ $pub{$m} };
        my $last_bad = @bad ? $bad[-1] : 0;
        my ($first) = grep { $_ > $last_bad && $cnt{$_} } @acked;
        my $recover = !@bad ? 0 : defined $first ? $pub{$m}{$first}[1] - $t_dis : undef;
        note(sprintf "%s %s: %d answered 202, %d not (503), %d of the 202 lost, %d delivered "
                     . "twice, %d resets; events flowed again %s after the disruption",
                     $name, $m, scalar @acked, scalar @refused, scalar @lost, scalar @twice,
                     scalar @resets, defined $recover ? sprintf('%.2f s', $recover) : 'never');
        note("$name $m: refused $why{$m}{$_} times: $_") for sort keys %{ $why{$m} || {} };
        is(scalar @twice, 0, "$name $m: no event delivered twice");
        ok(defined $recover && $recover < ($m eq 'pubsub' ? 5 : 8),
           "$name $m: events flow again" . ($m eq 'pubsub' ? ' within 5 s' : ''));
        if ($m eq 'wait') {
            note("$name wait: the client moved between the two httpds @{[ $cl{$m}{moves} // 0 ]} times");
            $cl{$m}{moves} = 0;
            is(scalar @lost, 0, "$name Streams+Wait: every event answered 202 was delivered, "
                              . 'to a client moving between two httpds')
                or diag("lost: @lost[0 .. ($#lost < 20 ? $#lost : 20)]");
        }
        if ($m eq 'pubsub') {
            ok(scalar @resets >= 1, "$name pub/sub: the client was told of the gap (reset)");
        }
    }
}

# ---- SENTINEL FAILOVER ------------------------------------------------------------
my $mark = $node{wait}->log_size;
scenario('SENTINEL FAILOVER', sub { scmd($SP[0], 'SENTINEL', 'FAILOVER', 'upm') });
my $p2 = primary_port();
ok($p2 != $P1, "SENTINEL FAILOVER: a replica is the primary now ($p2)");
ok($node{wait}->wait_log(qr/AH14053: .*is 127\.0\.0\.1:$p2 \(\+switch-master/, 1, $mark),
   'the module followed +switch-master');

# ---- kill -9 of the primary ------------------------------------------------------
ok(settled($p2, grep { $_ != $p2 } $P1, $P2, $P3), 'the old primary is a replica again');
scenario('kill -9 of the primary', sub {
    kill 'KILL', $redis{$p2}{pid};
    waitpid($redis{$p2}{pid}, 0);
    $redis{$p2}{pid} = undef;
});
my $p3 = primary_port();
ok($p3 && $p3 != $p2, "kill -9: the sentinels promoted a replica ($p3)");

$other->stop;
for my $m (@modes) {
    $cl{$m}{c}->close;
    unlike($node{$m}->log_text, qr/\[(?:\w+:)?(?:crit|alert|emerg)\]/, "$m: nothing critical logged");
    $node{$m}->stop;
}
done_testing;
