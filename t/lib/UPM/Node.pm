# SPDX-License-Identifier: Apache-2.0
package UPM::Node;

# One httpd with the module just built, on a free loopback port, with a
# generated minimal configuration: what the Redis tests need (several
# nodes, a server-wide UploadProgressRedis, children to kill), which the
# single Apache::Test server cannot give.  Also tokens, publishing and an
# SSE client that work against any node.

use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Select;
use POSIX qw(:sys_wait_h);
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);
use UPM::Wire;
use JSON::PP ();
use Crypt::JWT qw(encode_jwt);

our $JSON = JSON::PP->new->utf8->canonical;
my $TOP = abs_path(dirname(__FILE__) . '/../../..');
my $SECRET = 'redis-test-secret-' . ('x' x 40);
my @live;

sub top { $TOP }

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or die "no free port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

# UPM::Node->new(redis => $url, stream => 'key', children => 2, conf => "extra lines")
sub new {
    my ($class, %o) = @_;
    my $self = bless {
        port => $o{port} || free_port(),
        dir => tempdir('upm-node-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{UPM_KEEP}),
        children => $o{children} || 2,
        threads => $o{threads} || 25,
        o => \%o,
    }, $class;
    chmod 0755, $self->{dir};
    mkdir "$self->{dir}/run";
    chmod 0777, "$self->{dir}/run";
    push @live, $self;
    $self->_write_conf;
    return $self;
}

sub port { $_[0]->{port} }
sub dir  { $_[0]->{dir} }
sub error_log { "$_[0]->{dir}/error_log" }

sub _write_conf {
    my ($self) = @_;
    my $o = $self->{o};
    my $mods = '/usr/lib/apache2/modules';
    # make check-asan points these at the sanitized build and its wrapper.
    my $so = $ENV{UPM_TEST_SO} || "$TOP/mod_upload_progress/.libs/mod_upload_progress.so";
    die "the module is not built ($so): run make first\n" unless -f $so;
    open my $sf, '>', "$self->{dir}/secret" or die $!;
    print $sf $SECRET;
    close $sf;
    my $n = $self->{children};
    my $t = $self->{threads};
    my $user = $> == 0 ? "User nobody\nGroup nogroup\n" : '';
    my $redis = '';
    $redis .= "UploadProgressRedis $o->{redis}\n" if $o->{redis};
    $redis .= "UploadProgressRedisStream $o->{stream}\n" if $o->{stream};
    my $extra = $o->{conf} || '';
    $extra =~ s/\@SECRET\@/$self->{dir}\/secret/g;
    # seed => 'conf/x.conf': that file as a site would include it (its
    # @SECRET@ the node's secret), in place of the node's own streams.
    if ($o->{seed}) {
        my $f = $o->{seed} =~ m{^/} ? $o->{seed} : "$TOP/$o->{seed}";
        my $text = _slurp($f);
        die "$f: empty or missing\n" unless length $text;
        $text =~ s/\@SECRET\@/$self->{dir}\/secret/g;
        if ($text =~ /\@REDIS\@/) {
            die "$f needs Redis: pass redis => URL\n" unless $o->{redis};
            $text =~ s/\@REDIS\@/$o->{redis}/g;
        }
        $extra .= "\n$text\n";
    }
    my $own = $o->{seed} ? '' : <<"OWN";
<Location "/sse">
    SetHandler upload-progress-sse
    AuthType JWT
    AuthName "upload-progress"
    UploadProgressJWTKey HS256 file:$self->{dir}/secret
    UploadProgressHeartbeat 1
    Require valid-user
</Location>
# Upload tracking in front of a handler that reads the body.
<Location "/track-pub">
    SetHandler upload-progress-publish
    UploadProgressTrack On
    AuthType JWT
    AuthName "upload-progress"
    UploadProgressJWTKey HS256 file:$self->{dir}/secret
    Require valid-user
</Location>
<Location "/ws">
    SetHandler upload-progress-websocket
    AuthType JWT
    AuthName "upload-progress"
    UploadProgressJWTKey HS256 file:$self->{dir}/secret
    Require valid-user
</Location>
OWN
    my $conf = <<"CONF";
ServerRoot "$self->{dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:$self->{port}
PidFile "$self->{dir}/httpd.pid"
ErrorLog "$self->{dir}/error_log"
LogLevel warn upload_progress:@{[ $ENV{UPM_LOGLEVEL} || "info" ]}
DefaultRuntimeDir "$self->{dir}/run"
$user
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authn_core_module $mods/mod_authn_core.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule authz_host_module $mods/mod_authz_host.so
LoadModule authz_user_module $mods/mod_authz_user.so
LoadModule upload_progress_module $so

# A fixed number of children: the failover test kills one of them.  With
# server_limit above it, a graceful restart has room to start the new
# generation while the old one still runs.
StartServers $n
ServerLimit @{[ $self->{o}{server_limit} || $n ]}
ThreadsPerChild $t
MaxRequestWorkers @{[ ($self->{o}{server_limit} || $n) * $t ]}
MinSpareThreads @{[ $n * $t ]}
MaxSpareThreads @{[ $n * $t ]}
MaxConnectionsPerChild 0
KeepAliveTimeout 2
Timeout 30

$redis
$extra

<Location "/publish">
    SetHandler upload-progress-publish
    Require ip 127.0.0.1
</Location>
<Location "/upm-status">
    SetHandler upload-progress-status
    Require ip 127.0.0.1
</Location>
$own
CONF
    open my $f, '>', "$self->{dir}/httpd.conf" or die $!;
    print $f $conf;
    close $f;
}

# Starts httpd in the foreground as a child of the test and waits until it
# answers (and, with Redis, until a child feeds the ring).
sub start {
    my ($self, %w) = @_;
    my $bin = $ENV{UPM_TEST_HTTPD} || '/usr/sbin/apache2';
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDOUT, '>>', "$self->{dir}/stdout.log";
        open STDERR, '>&', \*STDOUT;
        setpgrp(0, 0);
        exec $bin, '-DFOREGROUND', '-f', "$self->{dir}/httpd.conf";
        exit 127;
    }
    $self->{pid} = $pid;
    my $deadline = time + 15;
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            $self->{pid} = undef;
            die "httpd exited at start:\n" . $self->log_text . _slurp("$self->{dir}/stdout.log");
        }
        my ($st) = eval { $self->http('GET', '/publish') };
        last if $st && $st == 405;
        sleep 0.1;
    }
    die "httpd on $self->{port} did not answer within 15 s\n" . $self->log_text
        unless time < $deadline;
    if ($self->{o}{redis} && !$w{no_wait_feeder}) {
        $self->wait_log(qr/now feeds the ring/, 10)
            or die "no child took the Redis feed within 10 s\n" . $self->log_text;
        # Pub/sub: every child subscribed (standbys included), so nothing
        # published from now on is missed.
        sleep 0.3;
    }
    return $self;
}

sub stop {
    my ($self) = @_;
    my $pid = $self->{pid} or return;
    kill 'TERM', $pid;
    my $deadline = time + 10;
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            $self->{pid} = undef;
            return;
        }
        sleep 0.05;
    }
    kill 'KILL', -$pid;
    waitpid($pid, 0);
    $self->{pid} = undef;
}

sub DESTROY { $_[0]->stop if $_[0]->{pid} }
END { $_->stop for grep { $_ && $_->{pid} } @live }

sub pid { $_[0]->{pid} }

# pids of the httpd children
sub children {
    my ($self) = @_;
    my @kids;
    opendir my $d, '/proc' or die "/proc: $!";
    for my $pid (grep { /\A\d+\z/ } readdir $d) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh>;
        next unless defined $stat;
        my ($rest) = $stat =~ /\A\d+ \(.*\) (.*)\z/s or next;
        my ($state, $pp) = split ' ', $rest;
        push @kids, $pid if $pp == $self->{pid} && $state ne 'Z';
    }
    return sort { $a <=> $b } @kids;
}

sub _slurp {
    my ($p) = @_;
    open my $fh, '<', $p or return '';
    local $/;
    my $s = <$fh>;
    return defined $s ? $s : '';
}

sub log_text { _slurp($_[0]->error_log) }

# Waits until the error log matches (counting only matches after `after`
# bytes of it); returns the matching line or undef.
sub wait_log {
    my ($self, $re, $timeout, $after) = @_;
    my $deadline = time + $timeout;
    while (1) {
        my $t = substr($self->log_text, $after || 0);
        for (split /\n/, $t) {
            return $_ if $_ =~ $re;
        }
        return undef if time >= $deadline;
        sleep 0.05;
    }
}

sub log_size { -s $_[0]->error_log || 0 }

# The pid of the child that feeds the ring, from the newest log line.
sub feeder {
    my ($self) = @_;
    my @l = grep { /now feeds the ring/ } split /\n/, $self->log_text;
    return undef unless @l;
    return $l[-1] =~ /pid (\d+)\) now feeds/ ? $1 : undef;
}

# ------------------------------------------------------------------ HTTP

sub token {
    my ($self, $user, %claims) = @_;
    return encode_jwt(payload => { sub => $user, iat => time_int(),
                                   exp => time_int() + 3600, %claims },
                      alg => 'HS256', key => $SECRET);
}

sub time_int { int(CORE::time()) }

# http(METHOD, PATH, BODY, HEADERS) -> (status, body text, headers hash)
sub http {
    my ($self, $m, $path, $body, $h) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
                                  Proto => 'tcp', Timeout => 5) or die "connect: $!";
    my $req = "$m $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    $h ||= {};
    $req .= "$_: $h->{$_}\r\n" for sort keys %$h;
    $req .= 'Content-Length: ' . length($body) . "\r\n" if defined $body;
    $req .= "\r\n" . (defined $body ? $body : '');
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite($s, $req, length($req) - $off, $off);
        die "write: $!" unless defined $n;
        $off += $n;
    }
    my $resp = '';
    my $deadline = time + 30;
    my $sel = IO::Select->new($s);
    while (time < $deadline && $sel->can_read($deadline - time)) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $resp .= $buf;
    }
    close $s;
    my ($st, $hh, $b) = UPM::Wire::response($resp);
    return ($st, $b, $hh);
}

# POST events (a Perl structure) -> (status, decoded body or text)
sub publish {
    my ($self, $data) = @_;
    my ($st, $b) = $self->http('POST', '/publish', $JSON->encode($data),
                               { 'Content-Type' => 'application/json' });
    my $d = eval { $JSON->decode($b) };
    return ($st, defined $d ? $d : $b);
}

# The status handler's JSON.
sub status {
    my ($self) = @_;
    my ($st, $b) = $self->http('GET', '/upm-status', undef, { Accept => 'application/json' });
    my $d = eval { $JSON->decode($b) };
    return $st == 200 ? $d : undef;
}

sub sse {
    my ($self, %o) = @_;
    return UPM::Node::SSE->new(port => $self->{port}, %o);
}

# Pumps SSE clients until $done->() or the timeout; returns $done->().
sub pump {
    my ($clients, $done, $timeout) = @_;
    my $deadline = time + $timeout;
    while (1) {
        return 1 if $done->();
        my $left = $deadline - time;
        return 0 if $left <= 0;
        my $sel = IO::Select->new;
        my %by;
        for my $c (@$clients) {
            next if $c->{eof};
            $sel->add($c->{sock});
            $by{ fileno $c->{sock} } = $c;
        }
        if (!$sel->count) {
            sleep($left > 0.05 ? 0.05 : $left);
            next;
        }
        $by{ fileno $_ }->_read for $sel->can_read($left > 0.1 ? 0.1 : $left);
    }
}

package UPM::Node::SSE;

use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time);

# new(port => P, token => T, path => '/sse', last_id => ID)
sub new {
    my ($class, %o) = @_;
    my $self = bless { status => undef, buf => '', events => [], beats => 0,
                       eof => 0, o => \%o }, $class;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $o{port},
                                  Proto => 'tcp', Timeout => 5) or die "connect: $!";
    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    $self->{sock} = $s;
    my $req = 'GET ' . ($o{path} || '/sse') . " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            . "Accept: text/event-stream\r\nAuthorization: Bearer $o{token}\r\n"
            . (defined $o{last_id} ? "Last-Event-ID: $o{last_id}\r\n" : '') . "\r\n";
    syswrite($s, $req) == length($req) or die "write: $!";
    my $deadline = time + 10;
    while (!defined $self->{status} && !$self->{eof} && time < $deadline) {
        $self->_read if IO::Select->new($s)->can_read($deadline - time);
    }
    return $self;
}

sub status { $_[0]->{status} }
sub events { @{ $_[0]->{events} } }
sub eof    { $_[0]->{eof} }
sub beats  { $_[0]->{beats} }
sub open_id { $_[0]->{open_id} }
sub of_type { my ($self, $t) = @_; grep { $_->{event} eq $t } @{ $self->{events} } }
sub messages { grep { $_->{event} ne 'reset' } @{ $_[0]->{events} } }
sub last_id {
    my ($self) = @_;
    my @e = grep { defined $_->{id} } @{ $self->{events} };
    return @e ? $e[-1]{id} : undef;
}

sub close {
    my ($self) = @_;
    CORE::close($self->{sock}) if $self->{sock};
    $self->{sock} = undef;
    $self->{eof} = 1;
}

sub _read {
    my ($self) = @_;
    return if $self->{eof};
    my $n = sysread($self->{sock}, my $data, 65536);
    if (!$n) {
        return if !defined $n && ($!{EAGAIN} || $!{EINTR});
        $self->{eof} = 1;
        return;
    }
    $self->{buf} .= $data;
    if (!defined $self->{status}) {
        my $h = UPM::Wire::head(\$self->{buf}) or return;
        $self->{status} = $h->{status};
        $self->{dec} = UPM::Wire::Body->new($h->{headers});
        $self->{chunked} = $self->{dec}->chunked;
    }
    $self->{text} .= $self->{dec}->feed($self->{buf});
    $self->{buf} = '';
    $self->{eof} = 1 if $self->{dec}->done && $self->{chunked};
    $self->_parse;
}

# Parses the de-chunked body text in {text} (a subclass may read it its
# own way).
sub _parse {
    my ($self) = @_;
    $self->{sse} ||= UPM::Wire::SSE->new(
        comment => sub { $self->{beats}++ },
        block => sub {
            my ($b) = @_;
            # The id-only block a new stream opens with: its position.
            $self->{open_id} //= $b->{id} if defined $b->{id} && !defined $b->{data};
            return unless defined $b->{data};
            my $c = { data => $b->{data}, event => $b->{event} // 'message', at => time };
            $c->{id} = $b->{id} if defined $b->{id};
            $c->{retry} = $b->{retry} if defined $b->{retry};
            $c->{json} = eval { $UPM::Node::JSON->decode($c->{data}) };
            push @{ $self->{events} }, $c;
        },
    );
    my $t = $self->{text} // '';
    $self->{text} = '';
    $self->{sse}->feed($t);
}

1;
