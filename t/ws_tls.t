# SPDX-License-Identifier: Apache-2.0
# WebSocket over TLS (wss://): frames must pass through mod_ssl's filters
# both ways.  A second httpd (UPM::Server) with mod_ssl on a free loopback
# port, a certificate made for the test and a short RequestReadTimeout, in
# the suite's mode (on the reactor, or on its worker under UPM_SYNC).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::Server;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use Mojo::UserAgent;
use Mojo::IOLoop;

my $moddir = '/usr/lib/apache2/modules';
plan skip_all => "mod_ssl not installed in $moddir" unless -f "$moddir/mod_ssl.so";

my $port = do {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1,
                                  ReuseAddr => 1) or die "no free port: $!";
    my $p = $s->sockport;
    close $s;
    $p;
};
my $dir = t_dir() . "/logs/ws-tls-cert";
mkdir $dir;
system("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
       . "-keyout $dir/key.pem -out $dir/cert.pem 2>/dev/null") == 0
    or BAIL_OUT('openssl could not make a certificate');
chmod 0644, "$dir/key.pem";
my $secret = t_dir() . '/keys/hs256.secret';
my $async = ($ENV{UPM_SYNC} || (Apache::Test::config()->{vars}{defines} // '') =~ /UPM_SYNC/)
    ? 'Off' : 'On';

my $srv = UPM::Server->new(port => $port, conf => <<"CONF");
LoadModule socache_shmcb_module $moddir/mod_socache_shmcb.so
LoadModule ssl_module $moddir/mod_ssl.so
LoadModule reqtimeout_module $moddir/mod_reqtimeout.so
# Short, so that a WebSocket still under mod_reqtimeout would die here.
RequestReadTimeout handshake=0 header=5 body=2
SSLEngine on
SSLCertificateFile $dir/cert.pem
SSLCertificateKeyFile $dir/key.pem
UploadProgressAsync $async
<Location /publish>
    SetHandler upload-progress-publish
    Require ip 127.0.0.1
</Location>
# A ping every second: the pongs must come back through mod_ssl too.
<Location /ws>
    SetHandler upload-progress-websocket
    UploadProgressHeartbeat 1
    AuthType JWT
    UploadProgressJWTKey HS256 file:$secret
    Require valid-user
</Location>
CONF
ok($srv, "private httpd with mod_ssl listens on 127.0.0.1:$port");
note("UploadProgressAsync $async");

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
            $srv->error_log);
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

# Several client messages in one TLS write: mod_ssl hands over more than
# one frame per read, and every one is answered.
$tx->send({ json => { type => 'ping', n => $_ } }) for 1 .. 20;
wait_until(sub { @msgs >= 20 }, 5);
is(scalar(grep { ($_->{type} // '') eq 'pong' } splice(@msgs, 0, 20)), 20,
   '20 messages sent back to back: 20 pongs');

# Bursts of 100 messages (200 KB each, within the connection's queue):
# they leave the server faster than the socket takes them, and must all
# arrive, in order.
my $published = 0;
for my $b (0 .. 2) {
    my $res = $ua->post("https://127.0.0.1:$port/publish" => json => [
        map { { type => 'tls_burst', userId => $user, jobId => 'tls-job', n => $_,
                pad => 'b' x 2000 } } $b * 100 + 1 .. $b * 100 + 100 ])->result;
    $published++ if $res->code == 202;
    wait_until(sub { @msgs >= ($b + 1) * 100 }, 10);
}
is($published, 3, 'three bursts published');
my @burst = grep { ($_->{type} // '') eq 'tls_burst' } splice(@msgs, 0);
is(join(',', map { $_->{n} } @burst), join(',', 1 .. 300), 'every burst arrives whole, in order');

# Longer than RequestReadTimeout body=2, and than two ping intervals: the
# connection must live on (Mojo answers the pings by itself).
wait_until(sub { 0 }, 3.5);
ok(!$finish, 'not closed after 3.5 s of pings (pongs read through mod_ssl)')
    or diag('closed with ' . join(' ', map { $_ // '' } @{ $finish || [] }));
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
