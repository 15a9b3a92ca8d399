# WebSocket over TLS (wss://): frames must pass through mod_ssl's filters
# both ways.  This file starts a second, private httpd with mod_ssl on a
# free loopback port (a self-signed certificate made here), with a short
# RequestReadTimeout, and stops it at the end.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use File::Temp qw(tempdir);
use File::Spec;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use Mojo::UserAgent;
use Mojo::IOLoop;

my $cfg = Apache::Test::config();
my $httpd = $cfg->{vars}{httpd};
my $moddir = '/usr/lib/apache2/modules';
my $module = File::Spec->rel2abs(File::Spec->catfile(t_dir(), '..', 'mod_upload_progress',
                                                     '.libs', 'mod_upload_progress.so'));
plan skip_all => "mod_ssl not installed in $moddir" unless -f "$moddir/mod_ssl.so";

my $dir = tempdir('upm-wss-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{UPM_KEEP_TMP});
note("private server in $dir");
chmod 0755, $dir;      # the children (User nobody) look up paths under it
mkdir "$dir/$_" for qw(logs run htdocs);
my $secret = File::Spec->catfile(t_dir(), 'keys', 'hs256.secret');

my $port = do {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1,
                                  ReuseAddr => 1) or die "no free port: $!";
    my $p = $s->sockport;
    close $s;
    $p;
};

system("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
       . "-keyout $dir/key.pem -out $dir/cert.pem 2>/dev/null") == 0
    or BAIL_OUT('openssl could not make a certificate');

my $user_block = $> == 0 ? "User nobody\nGroup nogroup\n" : '';
chown((getpwnam('nobody'))[2], -1, "$dir/run") if $> == 0;
open my $fh, '>', "$dir/httpd.conf" or die $!;
print $fh <<"CONF";
ServerRoot "$dir"
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile "$dir/logs/httpd.pid"
ErrorLog "$dir/logs/error_log"
LogLevel info upload_progress:debug
DefaultRuntimeDir "$dir/run"
Mutex file:$dir/run default
$user_block
LoadModule mpm_event_module $moddir/mod_mpm_event.so
LoadModule authn_core_module $moddir/mod_authn_core.so
LoadModule authz_core_module $moddir/mod_authz_core.so
LoadModule authz_host_module $moddir/mod_authz_host.so
LoadModule authz_user_module $moddir/mod_authz_user.so
LoadModule socache_shmcb_module $moddir/mod_socache_shmcb.so
LoadModule ssl_module $moddir/mod_ssl.so
LoadModule reqtimeout_module $moddir/mod_reqtimeout.so
LoadModule upload_progress_module $module
DocumentRoot "$dir/htdocs"
<Directory />
    AllowOverride None
</Directory>
StartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
# Short, so that a WebSocket still under mod_reqtimeout would die here.
RequestReadTimeout handshake=0 header=5 body=2
SSLEngine on
SSLCertificateFile "$dir/cert.pem"
SSLCertificateKeyFile "$dir/key.pem"
SSLSessionCache shmcb:$dir/run/ssl_scache(512000)
<Location /publish>
    SetHandler upload-progress-publish
    Require ip 127.0.0.1
</Location>
<Location /ws>
    SetHandler upload-progress-websocket
    AuthType JWT
    UploadProgressJWTKey HS256 file:$secret
    Require valid-user
</Location>
CONF
close $fh;

system($httpd, '-f', "$dir/httpd.conf", '-k', 'start') == 0 or BAIL_OUT('httpd with mod_ssl did not start');
my $started = 0;
for (1 .. 100) {
    if (IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 1)) {
        $started = 1;
        last;
    }
    sleep 0.1;
}
END {
    if ($dir && -f "$dir/logs/httpd.pid") {
        system($httpd, '-f', "$dir/httpd.conf", '-k', 'stop');
        for (1 .. 100) { last unless -f "$dir/logs/httpd.pid"; sleep 0.1 }
    }
}
ok($started, "private httpd with mod_ssl listens on 127.0.0.1:$port");

my $ua = Mojo::UserAgent->new(insecure => 1, connect_timeout => 5, request_timeout => 10,
                              inactivity_timeout => 30);

sub wait_until {
    my ($cond, $timeout) = @_;
    my $deadline = time + $timeout;
    while (!$cond->() && time < $deadline) {
        my $tid = Mojo::IOLoop->timer(0.05 => sub { });
        Mojo::IOLoop->one_tick;
        Mojo::IOLoop->remove($tid);
    }
    return $cond->();
}

my $user = uniq('wss');
my $tok = token(sub => $user);
my (@msgs, $tx, $finish);
$ua->websocket("wss://127.0.0.1:$port/ws?token=$tok" => sub {
    (undef, $tx) = @_;
    return unless $tx->is_websocket;
    $tx->max_websocket_size(1 << 20);
    $tx->on(json => sub { push @msgs, $_[1] });
    $tx->on(finish => sub { $finish = [ $_[1], $_[2] ] });
});
wait_until(sub { $tx }, 10);
ok($tx && $tx->is_websocket, 'wss:// handshake through mod_ssl')
    or diag('status ', ($tx ? $tx->res->code // 'none' : 'no transaction'), ': ',
            ($tx && $tx->error ? $tx->error->{message} : ''), "\n",
            `tail -n 20 $dir/logs/error_log`);
ok($tx && $tx->is_websocket && $tx->req->is_secure, 'over TLS');
wait_until(sub { @msgs }, 5);
is((shift(@msgs) || {})->{type}, 'connected', 'connected');

$tx->send({ json => { type => 'subscribe', jobId => 'tls-job' } });
wait_until(sub { @msgs }, 5);
is((shift(@msgs) || {})->{type}, 'subscribed', 'subscribed');

sub pub {
    my ($ev) = @_;
    my $res = $ua->post("https://127.0.0.1:$port/publish" => json => $ev)->result;
    is($res->code, 202, 'published over https');
    return ($res->json->{ids} || [])->[0];
}

my $big = 'z' x 40000;
my $id1 = pub({ event => 'UploadJobProgressed', userId => $user, jobId => 'tls-job',
                progress => 42, note => $big });
wait_until(sub { @msgs }, 5);
my $m = shift(@msgs) || {};
is($m->{id}, $id1, 'a 40 KB message arrives whole through TLS');
is(length($m->{note} // ''), 40000, 'with every byte');

# A 60 KB client message spans several TLS records and input reads.
$tx->send(('{"type":"ping","pad":"' . ('p' x 60000) . '"}'));
wait_until(sub { @msgs }, 5);
is((shift(@msgs) || {})->{type}, 'pong', 'a 60 KB client message is read whole');

# Longer than RequestReadTimeout body=2: the connection must live on.
wait_until(sub { 0 }, 3.5);
$tx->send({ json => { type => 'ping' } });
wait_until(sub { @msgs }, 5);
is((shift(@msgs) || {})->{type}, 'pong', 'still answering after 3.5 s quiet (reqtimeout removed)');
my $id2 = pub({ type => 'job_complete', userId => $user, jobId => 'tls-job' });
wait_until(sub { @msgs }, 5);
is((shift(@msgs) || {})->{id}, $id2, 'and still delivering');

$tx->finish(1000);
wait_until(sub { $finish }, 5);
is($finish && $finish->[0], 1000, 'close 1000 echoed over TLS');

done_testing();
