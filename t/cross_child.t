# SPDX-License-Identifier: Apache-2.0
# Delivery across httpd children: subscribers are spread over several
# child processes (checked from /proc), and every one of them gets its
# user's events whichever child accepted the publish request.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use File::Spec;
use Time::HiRes qw(time sleep);

my $port = port();

# socket inode -> pid, over the given processes
sub socket_owners {
    my (@pids) = @_;
    my %owner;
    for my $pid (@pids) {
        opendir my $d, "/proc/$pid/fd" or next;
        for my $fd (readdir $d) {
            my $l = readlink "/proc/$pid/fd/$fd" or next;
            $owner{$1} = $pid if $l =~ /\Asocket:\[(\d+)\]\z/;
        }
    }
    return \%owner;
}

# client port -> inode of the server side of 127.0.0.1:$port <- 127.0.0.1:client
sub server_side_inodes {
    my %inode;
    open my $fh, '<', '/proc/net/tcp' or die "/proc/net/tcp: $!";
    <$fh>;
    while (my $l = <$fh>) {
        $l =~ s/^\s+//;
        my @f = split /\s+/, $l;
        my ($la, $lp) = split /:/, $f[1];
        my ($ra, $rp) = split /:/, $f[2];
        next unless $la eq '0100007F' && hex($lp) == $port && $ra eq '0100007F';
        $inode{ hex $rp } = $f[9];
    }
    return \%inode;
}

my $ppid = server_pid();
ok($ppid && kill(0, $ppid), 'test server pid from t/logs/httpd.pid') or BAIL_OUT('no server pid');
my @kids;
for (1 .. 20) {
    @kids = children_of($ppid);
    last if @kids >= 3;
    sleep 0.25;
}
ok(@kids >= 3, 'at least 3 children running: ' . scalar(@kids) . " (@kids)");

my @users = map { uniq("cc$_") } 0 .. 9;
my @subs;
for my $i (0 .. 29) {
    my $user = $users[$i % 10];
    my $c = sse('/sse', token => token(sub => $user));
    is($c->status, 200, "subscriber $i ($user) connected") unless ($c->status // 0) == 200;
    push @subs, { user => $user, conn => $c };
}
is(scalar(grep { ($_->{conn}->status // 0) == 200 } @subs), 30, '30 subscribers connected');

# Who holds each connection?
sleep 0.3;
@kids = children_of($ppid);
my $owners = socket_owners(@kids);
my $inodes = server_side_inodes();
my %per_child;
my $located = 0;
for my $s (@subs) {
    my $ino = $inodes->{ $s->{conn}->sockport };
    my $pid = defined $ino ? $owners->{$ino} : undef;
    $s->{child} = $pid;
    if (defined $pid) { $located++; $per_child{$pid}++ }
}
is($located, 30, 'the server side of every subscriber is held by a child of the test server');
ok(keys(%per_child) >= 2, 'subscribers are spread over ' . scalar(keys %per_child)
   . ' children (' . join(', ', map { "$_: $per_child{$_}" } sort keys %per_child) . ')');

# Publish 5 events per user, in 5 requests (new connection each, so the
# publish requests themselves land on various children).
my %expect;
my $n = 0;
for my $round (1 .. 5) {
    my @evs;
    for my $user (@users) {
        my $f = "$user-$round";
        push @evs, { type => 'file_registered', userId => $user, fileId => $f, n => ++$n };
        push @{ $expect{$user} }, $f;
    }
    my ($st) = publish('/publish', \@evs);
    is($st, 202, "publish round $round");
}

my @conns = map { $_->{conn} } @subs;
wait_all(\@conns, sub { !grep { @{ $_->{conn}{all} } < 5 } @subs }, 15);
wait_all(\@conns, sub { 0 }, 0.5);    # anything extra?
for my $i (0 .. $#subs) {
    my $s = $subs[$i];
    my @got = map { $_->{json} ? $_->{json}{fileId} : '(not JSON)' } $s->{conn}->received;
    is_deeply(\@got, $expect{ $s->{user} },
              "subscriber $i in child " . ($s->{child} // '?') . ": exactly its user's 5 events in order");
}

$_->close for @conns;
done_testing();
