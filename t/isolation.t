# SPDX-License-Identifier: Apache-2.0
# Isolation under load: 20 users with 2 connections each, 2,000 events to
# random users.  Every connection must receive exactly its user's events,
# in publish order, once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use Time::HiRes qw(time);

my $seed = $ENV{UPM_SEED} || (time ^ $$) & 0xffffff;
srand($seed);
note("seed $seed (UPM_SEED=$seed to repeat)");

my @users = map { uniq("iso$_") } 0 .. 19;
my @subs;
for my $user (@users) {
    for my $k (1, 2) {
        my $c = sse('/sse', token => token(sub => $user));
        push @subs, { user => $user, conn => $c };
    }
}
is(scalar(grep { ($_->{conn}->status // 0) == 200 } @subs), 40, '40 connections open');

my (%expect, %owner);
my $seq = 0;
my @all_ids;
for my $batch (1 .. 20) {
    my @evs;
    for (1 .. 100) {
        my $user = $users[int rand @users];
        $seq++;
        push @evs, { event => 'PhotoUploadStarted', userId => $user,
                     photoId => "iso-photo-$seq", seq => $seq };
        push @{ $expect{$user} }, $seq;
        $owner{$seq} = $user;
    }
    my ($st, undef, $b) = publish('/publish', \@evs);
    is($st, 202, "batch $batch published") unless $st == 202;
    push @all_ids, @{ $b->{ids} || [] } if ref $b eq 'HASH';
}
is(scalar @all_ids, 2000, '2000 events accepted');
ok(ids_increasing(@all_ids), 'ids increase across the whole run');

my @conns = map { $_->{conn} } @subs;
my $t0 = time;
my $complete = wait_all(\@conns, sub {
    !grep { @{ $_->{conn}{all} } < @{ $expect{ $_->{user} } || [] } } @subs
}, 60);
ok($complete, sprintf 'every connection got at least its count within %.1f s', time - $t0);
wait_all(\@conns, sub { 0 }, 1);    # late extras?

my ($foreign, $dups, $disorder, $exact) = (0, 0, 0, 0);
for my $i (0 .. $#subs) {
    my $s = $subs[$i];
    my @got = map { $_->{json} ? $_->{json}{seq} // -1 : -1 } $s->{conn}->received;
    my @ids = map { $_->{id} } $s->{conn}->received;
    my %c;
    $foreign += grep { ($owner{$_} // '') ne $s->{user} } @got;
    $dups += grep { $c{$_}++ } @got;
    $disorder++ unless ids_increasing(@ids);
    my $want = $expect{ $s->{user} } || [];
    if ("@got" eq "@$want") { $exact++ }
    else {
        diag(sprintf "connection %d (%s): got %d events, expected %d; first difference at %d",
             $i, $s->{user}, scalar @got, scalar @$want,
             (grep { ($got[$_] // -1) != ($want->[$_] // -1) } 0 .. ($#got > $#$want ? $#got : $#$want))[0]);
    }
}
is($foreign, 0, "no connection received another user's event");
is($dups, 0, 'no duplicates');
is($disorder, 0, 'ids in increasing order on every connection');
is($exact, 40, "all 40 connections received exactly their user's events, in publish order");

$_->close for @conns;
done_testing();
