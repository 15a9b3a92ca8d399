# SPDX-License-Identifier: Apache-2.0
# How the module answers and logs what it refuses before a handler runs:
#  - a 401 (no token, a bad token) and a 403 (a foreign origin, a claim that
#    does not allow the location) carry a JSON body with an `error` field,
#    not Apache's HTML page; the 401 keeps its WWW-Authenticate;
#  - the first refusal of each kind per minute (per child) is logged at
#    warn, so that LogLevel warn (Debian's default) shows why clients are
#    refused; the rest at info, counted in the next warning.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use LWP::UserAgent;
use JSON ();
use UPM::Test;
use UPM::Server;
use UPM::WS;

my $auth = UPM::Server::jwt_auth();
my $srv = UPM::Server->private(<<"CONF");
<Location /sse>
    SetHandler upload-progress-sse
    $auth
</Location>
<Location /sse-admin>
    SetHandler upload-progress-sse
    AuthType JWT
    UploadProgressJWTKey HS256 file:@{[ UPM::Test::t_dir() ]}/keys/hs256.secret
    Require jwt-claim role admin
</Location>
<Location /ws>
    SetHandler upload-progress-websocket
    $auth
</Location>
CONF
my $base = 'http://127.0.0.1:' . $srv->port;
my $ua = LWP::UserAgent->new(timeout => 10, keep_alive => 0);
sub get {
    my ($path, %h) = @_;
    my $res = $ua->get("$base$path", %h);
    return ($res, scalar eval { JSON->new->utf8->decode($res->content) });
}

my ($res, $j) = get('/sse');
is($res->code, 401, 'no token: 401');
like($res->header('Content-Type') // '', qr{^application/json}, '... as JSON');
is($j && $j->{error}, 'unauthorized', '... with an error field');
like($res->header('WWW-Authenticate') // '', qr/^Bearer realm=/, '... and WWW-Authenticate kept');
unlike($res->content, qr/<html|<!DOCTYPE/i, '... not the HTML page');

my $expired = token(sub => 'u1', exp => time - 600, iat => time - 1200);
($res, $j) = get('/sse', Authorization => "Bearer $expired");
is($res->code, 401, 'an expired token: 401');
is($j && $j->{error}, 'invalid_token', '... error invalid_token');
is($j && $j->{reason}, 'expired', '... reason expired');
like($res->header('WWW-Authenticate') // '', qr/error="invalid_token"/, '... RFC 6750 header kept');

($res, $j) = get('/sse-admin', Authorization => 'Bearer ' . token(sub => 'u1', role => 'viewer'));
ok($res->code == 401 || $res->code == 403, 'a claim that does not allow the location: refused');
is($j && $j->{error}, 'forbidden', '... error forbidden');
is($j && $j->{reason}, 'claim', '... reason claim');

{
    no warnings qw(redefine once);
    local *UPM::Test::port = sub { $srv->port };
    my $ws = UPM::WS->connect('/ws', token => token(sub => 'u1'),
                              headers => { Origin => 'https://evil.example' });
    is($ws->status, 403, 'a foreign origin: 403');
    my $b = $ws->json_body;
    is($b && $b->{error}, 'forbidden_origin', '... JSON error forbidden_origin');
    $ws->close;
}

# More of the same kinds.
get('/sse') for 1 .. 6;
get('/sse', Authorization => "Bearer $expired") for 1 .. 6;
sleep 1;
my $log = $srv->error_log;
my @warn_missing = $log =~ /\[upload_progress:warn\][^\n]*AH13001/g;
my @info_missing = $log =~ /\[upload_progress:info\][^\n]*AH13001/g;
my $children = 2;
cmp_ok(scalar(@warn_missing), '>=', 1, 'a missing token is logged at warn');
cmp_ok(scalar(@warn_missing), '<=', $children, '... once a minute per child');
is(scalar(@warn_missing) + scalar(@info_missing), 7, '... the others at info');
my @warn_exp = $log =~ /\[upload_progress:warn\][^\n]*AH13002[^\n]*expired/g;
cmp_ok(scalar(@warn_exp), '>=', 1, 'an expired token is a kind of its own: at warn too');
cmp_ok(scalar(@warn_exp), '<=', $children, '... once a minute per child');
like($log, qr/\[upload_progress:warn\][^\n]*AH13107/, 'the origin refusal at warn');
like($log, qr/\[upload_progress:warn\][^\n]*AH13006/, 'the claim refusal at warn');

done_testing();
