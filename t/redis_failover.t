# Leader failover: kill -9 the child that feeds the ring while 50 events/s
# are published on Redis.  Another child takes over within 2 s; every event
# published after the take-over reaches every client once, and no client
# ever receives an event twice.  Clients behave like EventSource: when
# their connection breaks they reconnect with Last-Event-ID.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use UPM::Redis;
use UPM::Node;

my $redis = UPM::Redis->new(port => 6394)->start;
my $node = UPM::Node->new(redis => $redis->url, children => 3, threads => 10)->start;
my $j = $UPM::Node::JSON;
my $user = "fo-$$";
my $tok = $node->token($user);

my @clients = map { { c => $node->sse(token => $tok), got => [], reconnects => 0 } } 1 .. 8;
is(scalar(grep { $_->{c}->status == 200 } @clients), 8, '8 streams open');

sub pump_clients {
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
}

my $feeder = $node->feeder;
ok($feeder, "a child feeds the ring (pid $feeder)");
my %kids = map { $_ => 1 } $node->children;
ok($kids{$feeder}, 'the feeder is one of the children');

my ($seq, $t_kill, $t_take, $new_feeder) = (0, undef, undef, undef);
my %published_at;
my $mark = $node->log_size;
my $t0 = time;
my $next = $t0;
while (time - $t0 < 7) {
    $seq++;
    $redis->publish("user:$user", $j->encode({ type => 'tick', seq => $seq }));
    $published_at{$seq} = time;
    if (!$t_kill && time - $t0 >= 2) {
        kill 'KILL', $feeder;
        $t_kill = time;
        note("killed feeder $feeder at seq $seq");
    }
    if ($t_kill && !$t_take) {
        my $l = $node->wait_log(qr/now feeds the ring/, 0, $mark);
        if ($l) {
            $t_take = time;
            ($new_feeder) = $l =~ /pid (\d+)\) now feeds/;
            note("take-over seen at seq $seq: $l");
        }
    }
    $next += 0.02;      # 50 events/s
    my $wait = $next - time;
    pump_clients($wait > 0 ? $wait : 0);
}
my $last_seq = $seq;
my $deadline = time + 10;
pump_clients(0.2) while time < $deadline
    && grep { !grep { ($_->{json}{seq} // 0) == $last_seq } @{ $_->{got} } } @clients;
pump_clients(0.5);

ok($t_take, 'another child took over');
ok($t_take && $t_take - $t_kill <= 2.0, sprintf 'within 2 s of the kill (%.2f s)',
   ($t_take // 99) - $t_kill);
isnt($new_feeder, $feeder, "the new feeder ($new_feeder) is another child");
my $rate = $seq / 7;
ok($rate > 40, sprintf 'published %d events at %.0f/s', $seq, $rate);

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
note("$reconnected clients were on the killed child and reconnected; $resets resets; "
     . "$missing_any events missed in all (before the take-over included)");
is($dups, 0, 'no client received an event twice');
is($missing_after, 0, 'every event published after the take-over reached every client');
# The standbys were listening all along: the successor continues right
# after the last message the killed child took, so nothing is lost either.
is($missing_any, 0, 'no event was lost at all (the standby continued where the feeder stopped)');
is($resets, 0, 'so no client had to be reset');

$_->{c}->close for @clients;
$node->stop;
unlike(substr($node->log_text, $mark), qr/\[(?:crit|emerg|alert)\]/, 'nothing critical logged');
done_testing();
