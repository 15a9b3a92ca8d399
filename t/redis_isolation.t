# SPDX-License-Identifier: Apache-2.0
# Isolation under Redis ingest: 20 users with 2 connections each (spread
# over 2 children), 2,000 events to random users published on Redis, half
# routed by the user:{id} channel alone, half by userId on other channels.
# Every connection must receive exactly its user's events, in order, once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use UPM::Redis;
use UPM::Node;

my $seed = $ENV{UPM_SEED} || (time ^ $$) & 0xffffff;
srand($seed);
note("seed $seed (UPM_SEED=$seed to repeat)");

my $redis = UPM::Redis->new(port => 6392)->start;
my $node = UPM::Node->new(redis => $redis->url)->start;
my $j = $UPM::Node::JSON;

my @users = map { "iso$_-$$" } 0 .. 19;
my @subs;
for my $u (@users) {
    push @subs, { user => $u, c => $node->sse(token => $node->token($u)) } for 1, 2;
}
is(scalar(grep { ($_->{c}->status // 0) == 200 } @subs), 40, '40 connections open');

my (%expect, %owner);
my @chans = ('user:%s', 'upload-session:s%d', 'job:j%d', 'project:p%d');
for my $batch (1 .. 20) {
    my @cmds;
    for my $k (1 .. 100) {
        my $seq = ($batch - 1) * 100 + $k;
        my $u = $users[int rand @users];
        my $how = int rand 4;
        my $ev = { event => 'PhotoUploadStarted', photoId => "ph-$seq", seq => $seq };
        my $ch;
        if ($how == 0) {
            $ch = sprintf $chans[0], $u;        # the channel names the owner
        }
        else {
            $ch = sprintf $chans[$how], $seq;
            $ev->{userId} = $u;
        }
        push @cmds, [ 'PUBLISH', $ch, $j->encode($ev) ];
        push @{ $expect{$u} }, $seq;
        $owner{$seq} = $u;
    }
    my @r = $redis->pipeline(@cmds);
    my $heard = grep { defined $_ && !ref $_ && $_ == 2 } @r;
    is($heard, 100, "batch $batch: each message heard by both children") unless $heard == 100;
}

my @conns = map { $_->{c} } @subs;
my $t0 = time;
my $done = UPM::Node::pump(\@conns, sub {
    !grep { $_->{c}->messages < @{ $expect{ $_->{user} } || [] } } @subs
}, 60);
ok($done, sprintf 'every connection got its count within %.1f s', time - $t0);
UPM::Node::pump(\@conns, sub { 0 }, 1);     # anything extra arriving late?

my ($foreign, $dups, $exact, $resets) = (0, 0, 0, 0);
for my $s (@subs) {
    my @got = map { $_->{json}{seq} // -1 } $s->{c}->messages;
    my %seen;
    $foreign += grep { ($owner{$_} // '') ne $s->{user} } @got;
    $dups += grep { $seen{$_}++ } @got;
    $resets += $s->{c}->of_type('reset');
    my $want = $expect{ $s->{user} } || [];
    if ("@got" eq "@$want") { $exact++ }
    else {
        my %have = map { $_ => 1 } @got;
        my @miss = grep { !$have{$_} } @$want;
        diag(sprintf '%s: got %d, expected %d%s; missing seq %s', $s->{user}, scalar @got,
             scalar @$want, $s->{c}->eof ? ' (the server closed the stream)' : '',
             join(',', @miss[0 .. ($#miss > 9 ? 9 : $#miss)]));
    }
}
if ($exact != 40) {
    diag("error log:\n" . join("\n", grep { /upload_progress|AH0/ }
                                  split /\n/, $node->log_text));
}
is($foreign, 0, "no connection received another user's event");
is($dups, 0, 'no duplicates');
is($resets, 0, 'no resets');
is($exact, 40, "all 40 connections received exactly their user's events, in publish order");

$_->close for @conns;
$node->stop;
unlike($node->log_text, qr/Segmentation|\[(?:crit|emerg|alert)\]/, 'no crash');
done_testing();
