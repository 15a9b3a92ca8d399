# SPDX-License-Identifier: Apache-2.0
# Keys from an identity provider (UploadProgressJWKS): a local HTTPS
# provider with its own test CA (t/lib/UPM/JWKS.pm) rotates, fails,
# stalls and serves garbage; the server keeps verifying with the last good
# set, picks up rotations without a restart, never makes a request wait
# on the provider, and starts cold from its disk cache.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);
use Crypt::PK::RSA;
use Crypt::PK::ECC;
use LWP::UserAgent;
use MIME::Base64 qw(encode_base64url);
use UPM::Test;
use UPM::Server;
use UPM::JWKS;

my $dir = t_logs() . '/jwks-provider';
my $P = UPM::JWKS->new($dir);
my $ca = $P->ca;

my $rsa1 = Crypt::PK::RSA->new(\ key_text('rsa.pem'));
my $ec1  = Crypt::PK::ECC->new(\ key_text('ec256.pem'));
my $rsa2 = Crypt::PK::RSA->new;
$rsa2->generate_key(256, 65537);
my $rsa3 = Crypt::PK::RSA->new;
$rsa3->generate_key(256, 65537);
my $hs = 'x' x 40;

sub jwk { UPM::JWKS::jwk(@_) }
my %oct = (kty => 'oct', kid => 'hs1', alg => 'HS256', k => encode_base64url($hs));

$P->set_keys(jwk($rsa1, kid => 'k1', use => 'sig'), jwk($ec1, kid => 'e1'),
             jwk($rsa3, kid => 'enc1', use => 'enc'),
             jwk($ec1, kid => 'bad-alg', alg => 'RS256'),
             { %{ jwk($rsa1) }, kty => 'EC', kid => 'bad-kty' },
             \%oct);

# A file source with an HMAC key beside an RSA one: refused unless hs=on.
open my $fh, '>', "$dir/file.json" or die;
print $fh JSON->new->encode({ keys => [ jwk($rsa1, kid => 'f1'), \%oct ] });
close $fh;

my $auth = 'AuthType JWT' . "\n    Require valid-user\n    SetHandler upload-progress-poll";
my $S = UPM::Server->private(<<"CONF");
UploadProgressJWKSCache $dir/cache.json
<Location /a>
    $auth
    UploadProgressJWKS ${\ $P->url('/jwks')} refresh=2 min-refresh=1 timeout=1500 ca=$ca
</Location>
<Location /early>
    $auth
    UploadProgressJWKS ${\ $P->url('/jwks-b')} refresh=3600 min-refresh=2 timeout=1500 ca=$ca
</Location>
<Location /discover>
    $auth
    UploadProgressJWTIssuer ${\ $P->issuer}
    UploadProgressJWKS discover refresh=3600 ca=$ca
</Location>
<Location /file>
    $auth
    UploadProgressJWKS file:$dir/file.json
</Location>
<Location /file-hs>
    $auth
    UploadProgressJWKS file:$dir/file.json hs=on
</Location>
<Location /noca>
    $auth
    UploadProgressJWKS ${\ $P->url('/jwks?noca')} refresh=3600
</Location>
CONF

my $ua = LWP::UserAgent->new(timeout => 30, keep_alive => 0);
my $base = 'http://127.0.0.1:' . $S->port;
sub get {
    my ($path, $tok) = @_;
    my $t0 = time;
    my $r = $ua->get("$base$path", Authorization => "Bearer $tok");
    return wantarray ? ($r->code, time - $t0) : $r->code;
}
sub tok {
    my ($key, $kid, $alg) = @_;
    $alg ||= ref $key eq 'Crypt::PK::ECC' ? 'ES256' : 'RS256';
    return token(sub => 'alice', alg => $alg, key => $key, kid => $kid);
}
# Polls until $path answers $want for the token, within $secs: the time taken.
sub until_code {
    my ($path, $tok, $want, $secs) = @_;
    my $t0 = time;
    while (time - $t0 < $secs) {
        return time - $t0 if get($path, $tok) == $want;
        sleep 0.2;
    }
    return undef;
}

my $t1 = tok($rsa1, 'k1');
ok(defined until_code('/a', $t1, 200, 10), 'a token of the fetched set is accepted');
sleep 0.5;    # every child has loaded it (each looks every 0.2 s)
is(get('/a', tok($ec1, 'e1')), 200, 'an EC key (alg from crv) is accepted');
is(get('/a', tok($rsa1, 'k1', 'RS384')), 401, 'the JWK alg holds: RS384 on an RS256 key refused');
is(get('/a', tok($rsa3, 'enc1')), 401, 'a key with use "enc" is ignored');
is(get('/a', tok($ec1, 'bad-alg')), 401, 'a JWK whose alg does not fit its kty is ignored');
is(get('/a', tok($rsa1, 'bad-kty')), 401, 'a JWK with the wrong kty is ignored');
is(get('/a', token(sub => 'alice', alg => 'HS256', key => $hs, kid => 'hs1')), 401,
   'an HS (oct) key in a fetched set is refused');
is(get('/a', tok($rsa2, 'k1')), 401, 'another key under a published kid: bad signature');

is(get('/file', tok($rsa1, 'f1')), 200, 'a file source works');
is(get('/file', token(sub => 'alice', alg => 'HS256', key => $hs, kid => 'hs1')), 401,
   'an HS key in a file is refused without hs=on');
is(get('/file-hs', token(sub => 'alice', alg => 'HS256', key => $hs, kid => 'hs1')), 200,
   'and accepted with hs=on');
ok(defined until_code('/discover', token(sub => 'alice', alg => 'RS256', key => $rsa1, kid => 'k1',
                                         iss => $P->issuer), 200, 10),
   'discover: jwks_uri read from the issuer\'s openid-configuration')
    or diag(join "\n", grep { /AH139/ } split /\n/, $S->error_log);
is(get('/noca', $t1), 401, 'a provider whose certificate is not trusted gives no keys');
like($S->error_log, qr/AH13950.*jwks\?noca.*(certificate|SSL)/i,
     'and the certificate failure is logged');

# Rotation: k2 published, k1 withdrawn.
$P->set_keys(jwk($rsa2, kid => 'k2'), jwk($ec1, kid => 'e1'));
my $t2 = tok($rsa2, 'k2');
my $took = until_code('/a', $t2, 200, 10);
ok(defined $took, sprintf 'rotation: the new kid is accepted without a restart (%.1f s)',
   $took // -1);
sleep 0.5;
is(get('/a', $t1), 401, 'rotation: the withdrawn kid is refused');

# Unknown kid: one early refetch per floor, even under a burst.
$P->set_keys_b(jwk($rsa3, kid => 'k3'));
my $t3 = tok($rsa3, 'k3');
my $before = () = $P->requests(qr{^/jwks-b});
is(get('/early', $t3), 401, 'a kid the fetched set lacks is refused at first');
$took = until_code('/early', $t3, 200, 10);
ok(defined $took, sprintf 'an unknown kid triggers an early refetch (%.1f s, refresh is 1 h)',
   $took // -1);
my $tx = tok($rsa1, 'nobody-has-this');
my $t0 = time;
get('/early', $tx) for 1 .. 30;
my $span = time - $t0;
sleep 0.5;
my $after = () = $P->requests(qr{^/jwks-b});
my $allowed = 1 + int(($span + 0.5) / 2) + 1;
ok($after - $before <= $allowed + 1,
   sprintf '30 unknown-kid requests in %.1f s: %d fetches (floor 2 s)', $span, $after - $before);

# Malformed documents: the last good set stays, logged once.
my $log0 = length $S->error_log;
$P->mode('garbage');
sleep 4.5;
is(get('/a', $t2), 200, 'malformed JWKS: the last good set still verifies');
my $new = substr($S->error_log, $log0);
my $n = () = $new =~ /AH13950[^\n]*\/jwks: /g;
is($n, 1, 'the failure is logged once over several failed refreshes') or diag($new);
$P->mode('ok');
my $rec;
for (1 .. 30) { last if ($rec = substr($S->error_log, $log0) =~ /AH13951[^\n]*\/jwks: /); sleep 0.2 }
ok($rec, 'recovery is logged');

# Provider down: old keys keep working.
$P->mode('down');
sleep 3;
is(get('/a', $t2), 200, 'provider down: the last good set still verifies');

# Slow provider: no request waits for it.
$P->mode('slow');
my $max = 0;
$t0 = time;
my $bad = 0;
while (time - $t0 < 5) {
    my ($c, $d) = get('/a', $t2);
    $bad++ if $c != 200;
    $max = $d if $d > $max;
    sleep 0.1;
}
is($bad, 0, 'slow provider (10 s): every request verified');
ok($max < 2, sprintf 'slow provider: slowest request %.3f s', $max);

# A 1 MB set.
$P->mode('ok');
my @big = map { jwk($ec1, kid => "pad$_", x5t => 'p' x 900) } 1 .. 1100;
$P->set_keys(jwk($rsa2, kid => 'k2'), @big, jwk($rsa3, kid => 'last'));
ok(-s "$dir/jwks.json" > 1_000_000, 'the set is over 1 MB');
$took = until_code('/a', tok($rsa3, 'last'), 200, 15);
ok(defined $took, sprintf 'a 1 MB JWKS is taken (%.1f s)', $took // -1);
is(get('/a', $t2), 200, 'and its first key verifies');
$P->set_keys(jwk($rsa2, kid => 'k2'), jwk($ec1, kid => 'e1'));
ok(defined until_code('/a', tok($rsa3, 'last'), 401, 10), 'back to the small set');

# Graceful restart while the provider is down: the set survives.
$P->mode('down');
my $pidf = $S->root . '/logs/httpd.pid';
open my $pf, '<', $pidf or die;
chomp(my $ppid = <$pf>);
close $pf;
my $gen0 = () = $S->error_log =~ /resuming normal operations/g;
ok(kill('USR1', $ppid), 'graceful restart with the provider down');
my $gen1 = $gen0;
for (1 .. 50) { $gen1 = () = $S->error_log =~ /resuming normal operations/g; last if $gen1 > $gen0; sleep 0.2 }
ok($gen1 > $gen0, 'a new generation of children started');
sleep 1;
ok(defined until_code('/a', $t2, 200, 10), 'the last good set survived the graceful restart');

# Cold start with the provider down: the disk cache.
ok(-s "$dir/cache.json", 'the cache file was written');
$S->stop;
my $base1 = $base;
my $S2 = UPM::Server->new(port => UPM::Server::free_port(), conf => <<"CONF");
UploadProgressJWKSCache $dir/cache.json
<Location /a>
    $auth
    UploadProgressJWKS ${\ $P->url('/jwks')} refresh=2 min-refresh=1 timeout=1500 ca=$ca
</Location>
CONF
$base = 'http://127.0.0.1:' . $S2->port;
is(get('/a', $t2), 200, 'cold start with the provider down: the cached set verifies');
like($S2->error_log, qr/AH13956/, 'and the start from the cache is logged');
$S2->stop;
$P->stop;

done_testing();
