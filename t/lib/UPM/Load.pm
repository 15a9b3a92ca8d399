# SPDX-License-Identifier: Apache-2.0
package UPM::Load;

# Hundreds of subscribers and an open-loop publisher for the tests, from
# the benchmark's tools (bench/loadclient, bench/publisher: C, epoll, with
# per-user sequence numbers, so loss, duplicates and reordering are counted
# exactly).  Loopback only; every run is bounded in time.

use strict;
use warnings;
use File::Temp qw(tempdir);
use JSON::PP ();
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use UPM::Test qw(t_dir);

my $BENCH = t_dir() . '/../bench';

# Builds the tools once (they need only libcrypto); dies when it cannot.
sub tools {
    system("make -s -C '$BENCH' loadclient publisher >/dev/null 2>&1") == 0
        or die "cannot build bench/loadclient and bench/publisher\n";
    return $BENCH;
}

sub _spawn {
    my ($log, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        exec @cmd;
        exit 127;
    }
    return $pid;
}

# UPM::Load->clients(port => P, conns => N, users => U, prefix => S,
#   path => '/ws', proto => 'ws'|'sse', args => [...]): a running load client.
sub clients {
    my ($class, %o) = @_;
    my $dir = tempdir('upm-load-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $self = bless { dir => $dir, o => \%o }, $class;
    my @cmd = ("$BENCH/loadclient", '--port', $o{port}, '--path', $o{path},
               '--proto', $o{proto} || 'ws', '--conns', $o{conns}, '--users', $o{users},
               '--prefix', $o{prefix}, '--secret', t_dir() . '/keys/hs256.secret',
               '--status', "$dir/status", '--stop-file', "$dir/stop", '--out', "$dir/out",
               '--max-time', $o{max_time} || 120, '--label', $o{label} || 'load',
               '--src-base', $o{src_base} || 2, @{ $o{args} || [] });
    push @cmd, '--sent', $o{sent} if $o{sent};
    $self->{pid} = _spawn("$dir/log", @cmd);
    return $self;
}

sub status {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/status" or return {};
    my $l = <$fh> // '';
    return { map { split /=/, $_, 2 } split ' ', $l };
}

# Waits until every connection is streaming; returns whether they are.
sub wait_streaming {
    my ($self, $secs) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        my $st = $self->status;
        return 1 if ($st->{streaming} // 0) >= $self->{o}{conns};
        sleep 0.1;
    }
    return 0;
}

# Stops the client; returns its summary (a hash) or undef, and its log.
sub finish {
    my ($self) = @_;
    open my $fh, '>', "$self->{dir}/stop" or die $!;
    close $fh;
    my $deadline = time + 30;
    while (time < $deadline) {
        last if waitpid($self->{pid}, WNOHANG) == $self->{pid};
        sleep 0.1;
    }
    if (kill 0, $self->{pid}) {
        kill 'KILL', $self->{pid};
        waitpid($self->{pid}, 0);
    }
    my $out = eval { JSON::PP->new->decode(UPM::Test::file_text("$self->{dir}/out")) };
    my $log = eval { UPM::Test::file_text("$self->{dir}/log") } // '';
    return ($out, $log);
}

# UPM::Load->publisher(port => P, users => U, prefix => S, rate => R,
#   duration => D, sent => FILE, args => [...]): runs in the background.
sub publisher {
    my ($class, %o) = @_;
    my $dir = tempdir('upm-pub-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my @cmd = ("$BENCH/publisher", '--target', 'ours', '--port', $o{port},
               '--users', $o{users}, '--prefix', $o{prefix}, '--rate', $o{rate},
               '--duration', $o{duration}, '--sent', $o{sent}, '--out', "$dir/out",
               @{ $o{args} || [] });
    return bless { pid => _spawn("$dir/log", @cmd), dir => $dir }, $class;
}

# Waits for the publisher to end; returns its summary.
sub wait_publisher {
    my ($self, $secs) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        last if waitpid($self->{pid}, WNOHANG) == $self->{pid};
        sleep 0.1;
    }
    if (kill 0, $self->{pid}) {
        kill 'KILL', $self->{pid};
        waitpid($self->{pid}, 0);
    }
    return eval { JSON::PP->new->decode(UPM::Test::file_text("$self->{dir}/out")) };
}

sub publisher_log { eval { UPM::Test::file_text("$_[0]->{dir}/log") } // '' }

1;
