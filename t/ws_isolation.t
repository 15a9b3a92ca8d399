# SPDX-License-Identifier: Apache-2.0
# Isolation over WebSocket: 20 users with 2 connections each, 2,000 events
# to random users; every connection must receive exactly its user's
# events, in publish order, once.  Then grants: a subscription to a shared
# project reaches other users' events only with a token that grants it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::WS;
use Time::HiRes qw(time);

my $seed = $ENV{UPM_SEED} || (time ^ $$) & 0xffffff;
srand($seed);
note("seed $seed (UPM_SEED=$seed to repeat)");

sub open_ws {
    my ($path, $tok) = @_;
    my $ws = UPM::WS->connect($path, token => $tok);
    return undef unless ($ws->status // 0) == 101;
    my $hello = $ws->next_json(5);
    return ($hello && ($hello->{type} // '') eq 'connected') ? $ws : undef;
}

my @users = map { uniq("wsiso$_") } 0 .. 19;
my @subs;
for my $user (@users) {
    for my $path ('/ws', '/ws/upload-progress') {
        push @subs, { user => $user, conn => open_ws($path, token(sub => $user)) };
    }
}
is(scalar(grep { $_->{conn} } @subs), 40, '40 WebSocket connections open');
@subs = grep { $_->{conn} } @subs;

my (%expect, %owner);
my $seq = 0;
my @all_ids;
for my $batch (1 .. 20) {
    my @evs;
    for (1 .. 100) {
        my $user = $users[int rand @users];
        $seq++;
        push @evs, { event => 'PhotoUploadStarted', userId => $user,
                     photoId => "wsiso-photo-$seq", seq => $seq };
        push @{ $expect{$user} }, $seq;
        $owner{$seq} = $user;
    }
    my ($st, undef, $b) = publish('/publish', \@evs);
    is($st, 202, "batch $batch published") unless $st == 202;
    push @all_ids, @{ $b->{ids} || [] } if ref $b eq 'HASH';
}
is(scalar @all_ids, 2000, '2000 events accepted');

my @conns = map { $_->{conn} } @subs;
my $t0 = time;
my $complete = UPM::WS->wait_all(\@conns, sub {
    !grep { scalar($_->{conn}->inbox) < @{ $expect{ $_->{user} } || [] } } @subs
}, 60);
ok($complete, sprintf 'every connection got at least its count within %.1f s', time - $t0);
UPM::WS->wait_all(\@conns, sub { 0 }, 1);    # late extras?

my ($foreign, $dups, $disorder, $exact) = (0, 0, 0, 0);
for my $i (0 .. $#subs) {
    my $s = $subs[$i];
    my @msgs = $s->{conn}->inbox;
    my @got = map { $_->{seq} // -1 } @msgs;
    my %c;
    $foreign += grep { ($owner{$_} // '') ne $s->{user} } @got;
    $foreign += grep { ($_->{userId} // '') ne $s->{user} } @msgs;
    $dups += grep { $c{$_}++ } @got;
    $disorder++ unless ids_increasing(map { $_->{id} } @msgs);
    my $want = $expect{ $s->{user} } || [];
    if ("@got" eq "@$want") { $exact++ }
    else {
        diag(sprintf "connection %d (%s): got %d events, expected %d",
             $i, $s->{user}, scalar @got, scalar @$want);
    }
}
is($foreign, 0, "no connection received another user's event");
is($dups, 0, 'no duplicates');
is($disorder, 0, 'ids in increasing order on every connection');
is($exact, scalar @subs, "every connection received exactly its user's events, in publish order");
$_->close for @conns;

# --------------------------------------------------------------- grants
my $proj = uniq('shared-proj');
my ($owner_u, $granted_u, $plain_u) = map { uniq("wsgrant-$_") } qw(owner granted plain);
my $G = open_ws('/ws', token(sub => $granted_u, upl => { projects => [$proj] }));
my $N = open_ws('/ws', token(sub => $plain_u));
my $Gall = open_ws('/ws', token(sub => $granted_u, upl => { projects => [$proj] }));
ok($G && $N && $Gall, 'three connections for the grant check');
for my $c ($G, $N) {
    $c->send_json({ type => 'subscribe', projectId => $proj });
    is(($c->next_json(5) || {})->{type}, 'subscribed', 'subscribed to the shared project');
}
my @evs;
my (@owner_ids, @plain_ids);
for my $i (1 .. 30) {
    my $who = $i % 3 ? $owner_u : $plain_u;
    push @evs, { event => 'PhotoUploadStarted', userId => $who, projectId => $proj,
                 photoId => "gp-$i" };
}
my ($st, undef, $b) = publish('/publish', \@evs);
is($st, 202, '30 events for the shared project published');
my @ids = @{ $b->{ids} || [] };
for my $i (0 .. $#evs) {
    push @owner_ids, $ids[$i] if $evs[$i]{userId} eq $owner_u;
    push @plain_ids, $ids[$i] if $evs[$i]{userId} eq $plain_u;
}
UPM::WS->wait_all([ $G, $N, $Gall ], sub { scalar($G->inbox) >= 30 && scalar($N->inbox) >= 10 }, 10);
UPM::WS->wait_all([ $G, $N, $Gall ], sub { 0 }, 1);
is_deeply([ map { $_->{id} } $G->inbox ], \@ids,
          'the granted user, subscribed to the project, gets all of its events');
is_deeply([ map { $_->{id} } $N->inbox ], \@plain_ids,
          'a user without the grant gets only his own events of that project');
is(scalar($Gall->inbox), 0,
   'the granted user\'s unsubscribed connection gets none of the others\' events');
$_->close for $G, $N, $Gall;

done_testing();
