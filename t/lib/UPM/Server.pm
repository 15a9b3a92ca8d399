# SPDX-License-Identifier: Apache-2.0
package UPM::Server;
# A second httpd with the built module (or, with so =>, another module
# named upload_progress_module), for tests that need a server configured
# unlike the Apache::Test one (TLS here).  Loopback only; stopped
# by stop() or when the object goes away.
use strict;
use warnings;
use File::Path qw(make_path remove_tree);
use File::Spec;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use UPM::Test ();
use Apache::Test ();
use LWP::UserAgent;
use JSON ();

sub new {
    my ($class, %a) = @_;
    my $t = UPM::Test::t_dir();
    my $root = File::Spec->catdir($t, 'logs', "server-$a{port}");
    remove_tree($root);
    make_path("$root/logs", "$root/run");
    my $apxs = $ENV{APXS} || '/usr/bin/apxs';
    chomp(my $moddir = `$apxs -q LIBEXECDIR`);
    chomp(my $sbin = `$apxs -q SBINDIR`);
    chomp(my $prog = `$apxs -q PROGNAME`);
    # make check-asan points these at the sanitized build and its wrapper.
    # so: another module under the same name (t/compat_old.t: the old one),
    # httpd: another binary for it (the plain one, not make check-asan's).
    my $so = $a{so} || $ENV{UPM_TEST_SO}
        || "$t/../mod_upload_progress/.libs/mod_upload_progress.so";
    my $user = $> == 0 ? "User nobody\nGroup nogroup\n" : '';
    if ($> == 0) {
        system('chown', '-R', 'nobody', "$root/run");
    }
    my $conf = <<"CONF";
ServerRoot "$root"
ServerName localhost
Listen 127.0.0.1:$a{port}
PidFile "$root/logs/httpd.pid"
ErrorLog "$root/logs/error_log"
LogLevel info upload_progress:debug
DefaultRuntimeDir "$root/run"
$user
LoadModule mpm_event_module $moddir/mod_mpm_event.so
LoadModule authn_core_module $moddir/mod_authn_core.so
LoadModule authz_core_module $moddir/mod_authz_core.so
LoadModule authz_host_module $moddir/mod_authz_host.so
LoadModule authz_user_module $moddir/mod_authz_user.so
LoadModule upload_progress_module $so
StartServers 2
ServerLimit 2
ThreadsPerChild 10
MaxRequestWorkers 20
$a{conf}
CONF
    open my $fh, '>', "$root/httpd.conf" or die "$root/httpd.conf: $!";
    print $fh $conf;
    close $fh;
    my $self = bless { root => $root, port => $a{port},
                       httpd => $a{httpd} || $ENV{UPM_TEST_HTTPD} || "$sbin/$prog" }, $class;
    system($self->{httpd}, '-f', "$root/httpd.conf", '-k', 'start') == 0
        or die "cannot start httpd on port $a{port} (see $root/logs/error_log)";
    my $t0 = time;
    until (IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $a{port},
                                 Proto => 'tcp', Timeout => 1)) {
        die "httpd on port $a{port} did not start" if time - $t0 > 10;
        sleep 0.2;
    }
    return $self;
}

# A port nobody listens on now, for a private server.
sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1,
                                  ReuseAddr => 1) or die "no free port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

# The UploadProgressAsync of the suite's run: Off in the run with
# -defines UPM_SYNC (scripts/test.sh), else On.
sub async_mode {
    return ($ENV{UPM_SYNC} || (Apache::Test::config()->{vars}{defines} // '') =~ /UPM_SYNC/)
        ? 'Off' : 'On';
}

# A private server on a free port, in the suite's UploadProgressAsync mode,
# with a /publish location; $conf adds the rest.
sub private {
    my ($class, $conf) = @_;
    my $mode = async_mode();
    return $class->new(port => free_port(), conf => <<"CONF" . $conf);
UploadProgressAsync $mode
<Location /publish>
    SetHandler upload-progress-publish
    Require ip 127.0.0.1
</Location>
CONF
}

# The lines that make a location take the tests' tokens (t/keys/hs256.secret).
sub jwt_auth {
    my $secret = UPM::Test::t_dir() . '/keys/hs256.secret';
    return "AuthType JWT\n    UploadProgressJWTKey HS256 file:$secret\n    Require valid-user";
}

# POSTs JSON (Perl data) to $path of this server: (status, decoded body).
sub publish {
    my ($self, $path, $data) = @_;
    $self->{ua} ||= LWP::UserAgent->new(timeout => 30, keep_alive => 0);
    my $res = $self->{ua}->post("http://127.0.0.1:$self->{port}$path",
                                'Content-Type' => 'application/json',
                                Content => JSON->new->utf8->canonical->encode($data));
    my $b = eval { JSON->new->utf8->decode($res->content) };
    return ($res->code, $b || $res->content);
}

sub root { $_[0]->{root} }
sub port { $_[0]->{port} }

sub error_log {
    my ($self) = @_;
    return UPM::Test::file_text("$self->{root}/logs/error_log");
}

sub stop {
    my ($self) = @_;
    return unless $self->{httpd};
    system($self->{httpd}, '-f', "$self->{root}/httpd.conf", '-k', 'stop');
    my $pidf = "$self->{root}/logs/httpd.pid";
    my $t0 = time;
    sleep 0.2 while -e $pidf && time - $t0 < 10;
    delete $self->{httpd};
}

sub DESTROY { $_[0]->stop }

1;
