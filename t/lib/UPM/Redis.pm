# SPDX-License-Identifier: Apache-2.0
package UPM::Redis;

# A private redis-server for one test file: started on a loopback port in
# a temporary directory, without persistence, stopped by the test (or at
# exit).  Also a tiny RESP client, so tests need no Redis Perl module.

use strict;
use warnings;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Select;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

my @live;

sub new {
    my ($class, %o) = @_;
    my $self = bless {
        port => $o{port} || die('port needed'),
        dir  => tempdir('upm-redis-XXXXXX', TMPDIR => 1, CLEANUP => 1),
        bin  => $o{bin} || '/usr/bin/redis-server',
        args => $o{args} || [],     # more redis-server options (TLS ports, ACL users ...)
        pid  => undef,
    }, $class;
    push @live, $self;
    return $self;
}

sub port { $_[0]->{port} }
sub url  { 'redis://127.0.0.1:' . $_[0]->{port} }

# Starts redis-server and waits (up to 10 s) until it answers PING.
sub start {
    my ($self) = @_;
    die "redis-server already running\n" if $self->{pid};
    if (IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
                              Proto => 'tcp', Timeout => 1)) {
        die "port $self->{port} is already in use: is a redis-server of an earlier run "
          . "still up?\n";
    }
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDOUT, '>>', "$self->{dir}/redis.log";
        open STDERR, '>&', \*STDOUT;
        exec $self->{bin}, '--port', $self->{port}, '--bind', '127.0.0.1',
             '--save', '', '--appendonly', 'no', '--daemonize', 'no',
             '--dir', $self->{dir}, '--loglevel', 'warning', @{ $self->{args} };
        exit 127;
    }
    $self->{pid} = $pid;
    my $deadline = time + 10;
    while (time < $deadline) {
        my $r = eval { $self->_fresh->cmd('PING') };
        return $self if defined $r && $r eq 'PONG';
        sleep 0.05;
    }
    die "redis-server on port $self->{port} did not answer within 10 s\n";
}

# Stops it (SIGTERM, then SIGKILL after 5 s) and waits for the exit.
sub stop {
    my ($self) = @_;
    my $pid = $self->{pid} or return;
    $self->{conn} = undef;
    kill 'TERM', $pid;
    my $deadline = time + 5;
    while (time < $deadline) {
        return $self->{pid} = undef if waitpid($pid, WNOHANG) == $pid;
        sleep 0.02;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    $self->{pid} = undef;
}

sub DESTROY { $_[0]->stop if $_[0]->{pid} }

END { $_->stop for grep { $_ && $_->{pid} } @live }

# ---------------------------------------------------------------- client

sub _fresh {
    my ($self) = @_;
    $self->{conn} = UPM::Redis::Conn->new($self->{port});
    return $self->{conn};
}

sub conn {
    my ($self) = @_;
    return $self->{conn} || $self->_fresh;
}

# cmd('PUBLISH', 'user:1', '{...}') -> the reply (array refs for arrays;
# dies on an error reply).
sub cmd { my $self = shift; $self->conn->cmd(@_) }

# Sends many commands in one write, then reads all replies.
sub pipeline { my $self = shift; $self->conn->pipeline(@_) }

sub publish { my $self = shift; $self->cmd('PUBLISH', @_) }

package UPM::Redis::Conn;

use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);

sub new {
    my ($class, $port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5)
        or die "connect to redis on $port: $!\n";
    return bless { sock => $s, buf => '' }, $class;
}

sub _enc {
    my (@a) = @_;
    my $s = '*' . scalar(@a) . "\r\n";
    for (@a) {
        my $v = defined $_ ? "$_" : '';
        utf8::encode($v) if utf8::is_utf8($v);
        $s .= '$' . length($v) . "\r\n$v\r\n";
    }
    return $s;
}

sub _write {
    my ($self, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($self->{sock}, $data, length($data) - $off, $off);
        die "redis write: $!\n" unless defined $n;
        $off += $n;
    }
}

sub _fill {
    my ($self, $deadline) = @_;
    my $left = $deadline - time;
    die "redis: no reply in time\n" if $left <= 0
        || !IO::Select->new($self->{sock})->can_read($left);
    my $n = sysread($self->{sock}, my $chunk, 1 << 20);
    die "redis: connection closed\n" unless $n;
    $self->{buf} .= $chunk;
}

sub _line {
    my ($self, $deadline) = @_;
    while ((my $i = index($self->{buf}, "\r\n")) < 0) { $self->_fill($deadline) }
    my $i = index($self->{buf}, "\r\n");
    my $l = substr($self->{buf}, 0, $i);
    substr($self->{buf}, 0, $i + 2) = '';
    return $l;
}

sub _reply {
    my ($self, $deadline) = @_;
    my $l = $self->_line($deadline);
    my ($t, $v) = (substr($l, 0, 1), substr($l, 1));
    return $v if $t eq '+' || $t eq ':';
    return bless(\$v, 'UPM::Redis::Error') if $t eq '-';
    if ($t eq '$') {
        return undef if $v < 0;
        $self->_fill($deadline) while length($self->{buf}) < $v + 2;
        my $s = substr($self->{buf}, 0, $v);
        substr($self->{buf}, 0, $v + 2) = '';
        return $s;
    }
    if ($t eq '*') {
        return undef if $v < 0;
        return [ map { $self->_reply($deadline) } 1 .. $v ];
    }
    die "redis: bad reply line '$l'\n";
}

sub cmd {
    my ($self, @a) = @_;
    $self->_write(_enc(@a));
    my $r = $self->_reply(time + 10);
    die "redis error: $$r\n" if ref $r eq 'UPM::Redis::Error';
    return $r;
}

sub pipeline {
    my ($self, @cmds) = @_;
    my $out = '';
    $out .= _enc(@$_) for @cmds;
    $self->_write($out);
    my $deadline = time + 30;
    return map { $self->_reply($deadline) } @cmds;
}

1;
