# SPDX-License-Identifier: Apache-2.0
# Streams over TLS: the reactor writes through the connection's filter
# chain, so mod_ssl encrypts what it sends.  A second httpd with mod_ssl
# and a certificate made for the test; messages, heartbeats and token
# expiry must arrive over TLS.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::Server;
use IO::Socket::SSL;
use IO::Select;
use JSON::PP ();
use Time::HiRes qw(time);

my $port = UPM::Test::port() + 41;
my $dir = UPM::Test::t_dir() . "/logs/tls-cert";
mkdir $dir;
system("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
       . "-keyout $dir/key.pem -out $dir/cert.pem 2>/dev/null") == 0
    or die 'openssl req failed';
chmod 0644, "$dir/key.pem";
my $secret = UPM::Test::t_dir() . '/keys/hs256.secret';
chomp(my $moddir = `apxs -q LIBEXECDIR`);
my $async = UPM::Server::async_mode();
my $srv = UPM::Server->new(port => $port, conf => <<"CONF");
LoadModule socache_shmcb_module $moddir/mod_socache_shmcb.so
LoadModule ssl_module $moddir/mod_ssl.so
SSLEngine on
SSLCertificateFile $dir/cert.pem
SSLCertificateKeyFile $dir/key.pem
UploadProgressAsync $async
<Location /publish>
    SetHandler upload-progress-publish
    Require ip 127.0.0.1
</Location>
<Location /sse>
    SetHandler upload-progress-sse
    UploadProgressHeartbeat 1
    UploadProgressJWTLeeway 0
    AuthType JWT
    UploadProgressJWTKey HS256 file:$secret
    Require valid-user
</Location>
CONF
note("TLS server on $port, UploadProgressAsync $async");

sub tls_conn {
    my $s = IO::Socket::SSL->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                 SSL_verify_mode => SSL_VERIFY_NONE, Timeout => 5)
        or die "TLS connect: $SSL_ERROR";
    return $s;
}

# Reads decrypted bytes until $until->($buf) or the timeout.
sub read_until {
    my ($s, $until, $timeout) = @_;
    my $buf = '';
    my $t0 = time;
    while (time - $t0 < $timeout) {
        my $n = sysread($s, my $chunk, 16384);
        if (defined $n && $n > 0) {
            $buf .= $chunk;
            last if $until->($buf);
            next;
        }
        if (defined $n && $n == 0) {
            $main::eof = 1;
            last;
        }
        IO::Select->new($s)->can_read(0.2) unless $s->pending;
    }
    return $buf;
}

my $user = uniq('tls');
my $s = tls_conn();
$s->blocking(0);
my $tok = token(sub => $user, exp => int(time) + 4);
print $s "GET /sse HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer $tok\r\n\r\n";
my $head = read_until($s, sub { $_[0] =~ /retry: \d+/ }, 5);
like($head, qr{^HTTP/1\.1 200}, 'stream opened over TLS');
like($head, qr{text/event-stream}i, 'as text/event-stream');

my $p = tls_conn();
my $ev = JSON::PP::encode_json({ type => 'over_tls', userId => $user, n => 1 });
print $p "POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    . "Content-Length: " . length($ev) . "\r\nConnection: close\r\n\r\n$ev";
my $resp = join '', <$p>;
like($resp, qr{^HTTP/1\.1 202}, 'published over TLS');

our $eof;
my $got = read_until($s, sub { $_[0] =~ /event: over_tls\ndata: .*\n\n/ }, 5);
like($got, qr/event: over_tls\ndata: \{[^\n]*"n":1/, 'the message arrived over TLS');
$got .= read_until($s, sub { $_[0] =~ /: heartbeat/ }, 3);
like($got, qr/: heartbeat/, 'heartbeats arrive over TLS');
$got .= read_until($s, sub { $_[0] =~ /event: token_expired/ }, 6);
like($got, qr/event: token_expired/, 'token_expired arrives over TLS at exp');
$eof = 0;
read_until($s, sub { 0 }, 3);
ok($eof, 'and the server closed the stream');
unlike($srv->error_log, qr/Segmentation fault|AH00052/, 'no child crashed');
$srv->stop;
done_testing();
