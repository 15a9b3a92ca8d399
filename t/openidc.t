# SPDX-License-Identifier: Apache-2.0
# mod_auth_openidc (Debian libapache2-mod-auth-openidc) in its OAuth 2.0
# resource-server mode in front of the streams, verifying access tokens
# against a local HTTPS JWKS (t/lib/UPM/JWKS.pm): the stream is the user
# mod_auth_openidc set from the token's sub, with that user's messages only.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Crypt::PK::RSA;
use UPM::Test;
use UPM::Server;
use UPM::JWKS;

chomp(my $moddir = `/usr/bin/apxs -q LIBEXECDIR`);
plan skip_all => 'mod_auth_openidc is not installed (libapache2-mod-auth-openidc)'
    unless -e "$moddir/mod_auth_openidc.so";

my $P = UPM::JWKS->new(t_logs() . '/openidc-provider');
my $rsa = Crypt::PK::RSA->new(\ key_text('rsa.pem'));
$P->set_keys(UPM::JWKS::jwk($rsa, kid => 'o1', use => 'sig', alg => 'RS256'));
my $other = Crypt::PK::RSA->new;
$other->generate_key(256, 65537);

my $S = UPM::Server->private(<<"CONF");
LoadModule auth_openidc_module $moddir/mod_auth_openidc.so
OIDCCryptoPassphrase a-test-passphrase-not-for-production
OIDCCABundlePath ${\ $P->ca}
OIDCOAuthVerifyJwksUri ${\ $P->url('/jwks')}
OIDCOAuthRemoteUserClaim sub
<Location /oidc/sse>
    SetHandler upload-progress-sse
    AuthType oauth20
    OIDCOAuthAcceptTokenAs header query
    Require valid-user
</Location>
CONF
my $port = $S->port;
my $tok = token(sub => 'carol', alg => 'RS256', key => $rsa, kid => 'o1');

my $C = sse('/oidc/sse', port => $port, token => $tok, timeout => 10);
is($C->status, 200, 'a token verified by mod_auth_openidc against the JWKS opens the stream')
    or diag($S->error_log);
my $Q = sse("/oidc/sse?access_token=$tok", port => $port, timeout => 10);
is($Q->status, 200, 'the token in the query (EventSource) works too');
my $N = sse('/oidc/sse', port => $port);
is($N->status, 401, 'no token: 401');
my $B = sse('/oidc/sse', port => $port,
            token => token(sub => 'carol', alg => 'RS256', key => $other, kid => 'o1'));
is($B->status, 401, 'a token signed by another key: 401');
my $X = sse('/oidc/sse', port => $port,
            token => token(sub => 'carol', alg => 'RS256', key => $rsa, kid => 'o1',
                           exp => int(time) - 600, iat => int(time) - 900));
is($X->status, 401, 'an expired token: 401');

my ($st) = $S->publish('/publish', { type => 'file_registered', userId => 'dave', fileId => 'd1' });
($st) = $S->publish('/publish', { type => 'file_registered', userId => 'carol', fileId => 'c1' });
is($st, 202, 'published for dave and carol');
my $e = $C->next_event(5);
like($e && $e->{data}, qr/"c1"/, 'carol (the sub mod_auth_openidc set) receives her message');
ok(!$C->next_event(1), 'and none of dave\'s');
$C->close;
$Q->close;
$S->stop;
$P->stop;
done_testing();
