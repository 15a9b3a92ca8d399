# SPDX-License-Identifier: Apache-2.0
# Leader failover: kill -9 the child that feeds the ring while 50 events/s
# are published on Redis (pub/sub, Streams, and pub/sub without standby
# links).  Another child takes over within 2 s; every event published after
# the take-over reaches every client once, and no client ever receives an
# event twice.  Clients behave like EventSource: when their connection
# breaks they reconnect with Last-Event-ID.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use UPM::Redis;
use UPM::Node;

my $redis = UPM::Redis->new(port => 6394)->start;
my $j = $UPM::Node::JSON;

for my $mode ('pubsub', 'stream', 'nostandby') {
    my $key = "upm:fo:$$";
    my $node = UPM::Node->new(redis => $redis->url, children => 3, threads => 10,
                              ($mode eq 'stream' ? (stream => $key) : ()),
                              ($mode eq 'nostandby' ? (conf => 'UploadProgressRedisStandby Off')
                                                    : ()))->start;
    my $user = "fo-$mode-$$";
    my $tok = $node->token($user);

    my @clients = map { { c => $node->sse(token => $tok), got => [], reconnects => 0 } } 1 .. 8;
    is(scalar(grep { $_->{c}->status == 200 } @clients), 8, "$mode: 8 streams open");

    my $pump = sub {
        my ($t) = @_;
        UPM::Node::pump([ map { $_->{c} } @clients ], sub { 0 }, $t);
        for my $cl (@clients) {
            my $c = $cl->{c};
            my @new = @{ $c->{events} }[ $cl->{taken} // 0 .. $#{ $c->{events} } ];
            $cl->{taken} = @{ $c->{events} };
            push @{ $cl->{got} }, @new;
            $cl->{last_id} = $_->{id} for grep { defined $_->{id} } @new;
            if ($c->eof) {
                # What EventSource does: reconnect, sending the last id seen.
                $cl->{reconnects}++;
                $cl->{c} = $node->sse(token => $tok, last_id => $cl->{last_id});
                $cl->{taken} = 0;
            }
        }
    };

    my $feeder = $node->feeder;
    ok($feeder, "$mode: a child feeds the ring (pid $feeder)");
    my %kids = map { $_ => 1 } $node->children;
    ok($kids{$feeder}, "$mode: the feeder is one of the children");

    my ($seq, $t_kill, $t_take, $new_feeder) = (0, undef, undef, undef);
    my %published_at;
    my $mark = $node->log_size;
    my $t0 = time;
    my $next = $t0;
    while (time - $t0 < 6) {
        $seq++;
        my $ev = $j->encode({ type => 'tick', seq => $seq });
        if ($mode eq 'stream') {
            $redis->cmd('XADD', $key, '*', 'data', $ev, 'channel', "user:$user");
        }
        else {
            $redis->publish("user:$user", $ev);
        }
        $published_at{$seq} = time;
        if (!$t_kill && time - $t0 >= 2) {
            kill 'KILL', $feeder;
            $t_kill = time;
            note("$mode: killed feeder $feeder at seq $seq");
        }
        if ($t_kill && !$t_take) {
            my $l = $node->wait_log(qr/now feeds the ring/, 0, $mark);
            if ($l) {
                $t_take = time;
                ($new_feeder) = $l =~ /pid (\d+)\) now feeds/;
                note("$mode: take-over seen at seq $seq: $l");
            }
        }
        $next += 0.02;      # 50 events/s
        my $wait = $next - time;
        $pump->($wait > 0 ? $wait : 0);
    }
    my $last_seq = $seq;
    my $deadline = time + 10;
    $pump->(0.2) while time < $deadline
        && grep { !grep { ($_->{json}{seq} // 0) == $last_seq } @{ $_->{got} } } @clients;
    $pump->(0.5);

    ok($t_take, "$mode: another child took over");
    ok($t_take && $t_take - $t_kill <= 2.0,
       sprintf "$mode: within 2 s of the kill (%.2f s)", ($t_take // 99) - $t_kill);
    isnt($new_feeder, $feeder, "$mode: the new feeder (" . ($new_feeder // '?')
                               . ') is another child');
    ok($seq / 6 > 40, sprintf "$mode: published %d events at %.0f/s", $seq, $seq / 6);

    my ($dups, $missing_after, $missing_any, $resets) = (0, 0, 0, 0);
    for my $cl (@clients) {
        my @seqs = map { $_->{json}{seq} } grep { $_->{event} eq 'tick' } @{ $cl->{got} };
        my %n;
        $n{$_}++ for @seqs;
        $dups += grep { $n{$_} > 1 } keys %n;
        $missing_after += grep { !$n{$_} && $published_at{$_} >= $t_take } 1 .. $last_seq;
        $missing_any += grep { !$n{$_} } 1 .. $last_seq;
        $resets += grep { $_->{event} eq 'reset' } @{ $cl->{got} };
    }
    my $reconnected = grep { $_->{reconnects} } @clients;
    note("$mode: $reconnected clients were on the killed child and reconnected");
    is($dups, 0, "$mode: no client received an event twice");
    is($missing_after, 0, "$mode: every event published after the take-over reached every client");
    if ($mode eq 'nostandby') {
        # Nobody else was listening: what was published meanwhile is lost,
        # and every client is told so.
        my $told = grep { grep { $_->{event} eq 'reset' && $_->{json}{reason} eq 'redis' }
                          @{ $_->{got} } } @clients;
        note("$mode: $missing_any events missed in all");
        is($told, 8, "$mode: every client got a reset (reason redis) for the gap");
    }
    else {
        # Pub/sub standbys were listening all along and Streams continue
        # from the last id taken: nothing is lost before the take-over either.
        is($missing_any, 0, "$mode: no event was lost at all (the successor continued where "
                            . 'the killed feeder stopped)');
        is($resets, 0, "$mode: so no client had to be reset");
    }

    $_->{c}->close for @clients;
    $node->stop;
    unlike(substr($node->log_text, $mark), qr/\[(?:crit|emerg|alert)\]/,
           "$mode: nothing critical logged");
}

done_testing();
