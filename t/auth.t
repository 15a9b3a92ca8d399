# SPDX-License-Identifier: Apache-2.0
# JWT authentication of the SSE and publish handlers: token sources and
# their order, every way a token can be wrong, key choice by kid, RS256 /
# ES256, issuer / audience, the jwt-claim authz provider, and that no token
# ever reaches the logs.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use MIME::Base64 qw(encode_base64url);
use File::Spec;
use Time::HiRes qw(sleep time);

my $now = int(time);
my @used;                       # every token sent, looked for in the logs
sub tk { push @used, $_[0]; $_[0] }

my $REALM = 'Bearer realm="upload-progress"';
my $INVALID_RE = qr/\ABearer realm="upload-progress", error="invalid_token", error_description="([^"]+)"\z/;

# check($name, $path, expect => 200|401|403, kind => 'missing'|'invalid',
#       token => T (Authorization: Bearer), headers => {...})
sub check {
    my ($name, $path, %o) = @_;
    my %hdr = %{ $o{headers} || {} };
    my $c = sse($path, token => $o{token}, headers => \%hdr, timeout => 5);
    my $st = $c->status;
    is($st, $o{expect}, "$name: status $o{expect}") or diag("GET $path -> "
        . (defined $st ? $st : 'no response') . "\n" . $c->{raw_head});
    my $wa = $c->header('WWW-Authenticate');
    if ($o{expect} == 200) {
        like($c->header('Content-Type') || '', qr{\Atext/event-stream},
             "$name: text/event-stream");
        ok(!defined $wa, "$name: no WWW-Authenticate on success");
    }
    elsif ($o{expect} == 401 && ($o{kind} || '') eq 'missing') {
        is($wa, $REALM, "$name: WWW-Authenticate without error");
    }
    elsif ($o{expect} == 401) {
        like($wa || '', $INVALID_RE, "$name: WWW-Authenticate invalid_token");
        my ($desc) = ($wa || '') =~ $INVALID_RE;
        for my $t (grep { defined && length > 8 } @{ $o{secrets} || [] }) {
            unlike($desc || '', qr/\Q$t\E/, "$name: description does not echo the token");
        }
    }
    elsif ($o{expect} == 403) {
        ok(!defined $wa || $wa !~ /invalid_token/,
           "$name: 403 is not reported as an invalid token");
    }
    $c->close;
    return $c;
}

my $u = uniq('auth');

# ------------------------------------------------------------ sources
my $good = tk(token(sub => $u));
check('no token', '/sse', expect => 401, kind => 'missing');
check('no token (publish)', '/publish-jwt', expect => 401, kind => 'missing');
check('bearer header', '/sse', token => $good, expect => 200);
check('query parameter', "/sse?token=$good", expect => 200);
check('query parameter among others', "/sse?a=1&token=$good&b=2", expect => 200);
check('cookie', '/sse', headers => { Cookie => "upload_progress_token=$good" },
      expect => 200);
check('cookie among others', '/sse',
      headers => { Cookie => "a=b; upload_progress_token=$good; c=d" },
      expect => 200);

# Order: Authorization header, then query, then cookie.
check('header wins over query', '/sse?token=garbage', token => $good,
      expect => 200);
check('bad header wins over good query', "/sse?token=$good",
      token => tk('abc.def.ghi'), expect => 401, kind => 'invalid');
check('query wins over cookie', "/sse?token=$good",
      headers => { Cookie => 'upload_progress_token=garbage' }, expect => 200);
check('bad query wins over good cookie', '/sse?token=garbage',
      headers => { Cookie => "upload_progress_token=$good" },
      expect => 401, kind => 'invalid');

# ------------------------------------------------------------ time claims
my $t;
$t = tk(token(sub => $u, exp => $now - 120));
check('expired 120 s ago', '/sse', token => $t, expect => 401, kind => 'invalid',
      secrets => [$t]);
$t = tk(token(sub => $u, exp => $now - 10));
check('expired 10 s ago, within the 30 s leeway', '/sse', token => $t, expect => 200);
$t = tk(token(sub => $u, nbf => $now + 120));
check('nbf 120 s ahead', '/sse', token => $t, expect => 401, kind => 'invalid',
      secrets => [$t]);
$t = tk(token(sub => $u, nbf => $now + 10));
check('nbf 10 s ahead, within the leeway', '/sse', token => $t, expect => 200);

# A token without exp would be good forever: refused unless the location
# says otherwise (UploadProgressJWTRequireExp Off), where iat and
# UploadProgressJWTMaxAge bound it instead.
$t = tk(token(sub => $u, exp => undef));
check('no exp', '/sse', token => $t, expect => 401, kind => 'invalid',
      secrets => [$t]);
check('no exp (publish)', '/publish-jwt',
      token => tk(token(sub => $u, scope => 'progress:publish', exp => undef)),
      expect => 401, kind => 'invalid');
check('no exp where RequireExp is Off', '/sse-noexp', token => $t, expect => 200);
$t = tk(token(sub => $u, exp => undef, iat => $now - 900));
check('no exp, iat beyond MaxAge', '/sse-noexp', token => $t, expect => 401,
      kind => 'invalid');
$t = tk(token(sub => $u, exp => undef, iat => undef));
check('neither exp nor iat where MaxAge bounds', '/sse-noexp', token => $t,
      expect => 401, kind => 'invalid');
$t = tk(token(sub => $u, exp => $now + 600));
check('lifetime 600 s, MaxAge 600', '/sse-maxage', token => $t, expect => 200);
$t = tk(token(sub => $u, exp => $now + 86400));
check('lifetime one day, MaxAge 600', '/sse-maxage', token => $t, expect => 401,
      kind => 'invalid');
$t = tk(token(sub => $u, exp => $now + 86400, iat => undef));
check('no iat, ends beyond MaxAge from now', '/sse-maxage', token => $t,
      expect => 401, kind => 'invalid');
check('lifetime one day, no MaxAge', '/sse', token => $t, expect => 200);

# ------------------------------------------------------------ signatures
$t = tk(token(sub => $u, key => hs_secret('hs256-k1.secret')));
check('signed with another secret', '/sse', token => $t, expect => 401,
      kind => 'invalid', secrets => [$t]);
{
    my ($h, $p, $s) = split /\./, $good;
    my $forged = tk(join '.', $h,
        encode_base64url('{"sub":"someone-else","exp":' . ($now + 3600) . '}'), $s);
    check('payload swapped under a valid signature', '/sse', token => $forged,
          expect => 401, kind => 'invalid', secrets => [$forged]);
}
$t = tk(none_token(sub => $u));
check('alg none', '/sse', token => $t, expect => 401, kind => 'invalid');
{
    # alg none carrying the signature of a valid token
    my ($h, $p, $s) = split /\./, $good;
    my $nh = encode_base64url('{"alg":"none","typ":"JWT"}');
    $t = tk("$nh.$p.$s");
    check('alg none with a signature', '/sse', token => $t, expect => 401,
          kind => 'invalid');
}
$t = tk(token(sub => $u, alg => 'HS256', key => key_text('rsa.pub.pem')));
check('HS256 signed with the RSA public key text', '/sse-rsa', token => $t,
      expect => 401, kind => 'invalid', secrets => [$t]);
$t = tk(token(sub => $u, alg => 'RS256'));
check('RS256 valid', '/sse-rsa', token => $t, expect => 200);
check('RS256 token at an HS256 location', '/sse', token => $t, expect => 401,
      kind => 'invalid');
$t = tk(token(sub => $u, alg => 'ES256'));
check('ES256 valid', '/sse-es', token => $t, expect => 200);
check('ES256 token at an RS256 location', '/sse-rsa', token => $t,
      expect => 401, kind => 'invalid');
{
    # RS256 signed by a key that is not the configured one
    require Crypt::PK::RSA;
    my $other = Crypt::PK::RSA->new;
    $other->generate_key(256);
    $t = tk(token(sub => $u, alg => 'RS256', key => $other));
    check('RS256 signed by another key', '/sse-rsa', token => $t,
          expect => 401, kind => 'invalid');
}

# ------------------------------------------------------------ claims
$t = tk(token(exp => $now + 600));
check('no sub', '/sse', token => $t, expect => 401, kind => 'invalid');
$t = tk(token(sub => $u, exp => 'tomorrow'));
check('exp not a number', '/sse', token => $t, expect => 401, kind => 'invalid');

my %ia = (iss => 'https://issuer.upm.test/', aud => 'upload-progress-test');
$t = tk(token(sub => $u, %ia));
check('issuer and audience right', '/sse-iss', token => $t, expect => 200);
$t = tk(token(sub => $u, %ia, aud => ['other-api', 'upload-progress-test']));
check('audience in an array', '/sse-iss', token => $t, expect => 200);
$t = tk(token(sub => $u, %ia, iss => 'https://evil.upm.test/'));
check('wrong issuer', '/sse-iss', token => $t, expect => 401, kind => 'invalid');
$t = tk(token(sub => $u, %ia, aud => 'other-api'));
check('wrong audience', '/sse-iss', token => $t, expect => 401, kind => 'invalid');
$t = tk(token(sub => $u, %ia, aud => ['other-api']));
check('audience array without ours', '/sse-iss', token => $t, expect => 401,
      kind => 'invalid');
$t = tk(token(sub => $u, %ia, iss => undef));
check('issuer missing', '/sse-iss', token => $t, expect => 401, kind => 'invalid');
$t = tk(token(sub => $u, %ia, aud => undef));
check('audience missing', '/sse-iss', token => $t, expect => 401, kind => 'invalid');

# ------------------------------------------------------------ garbage
check('garbage abc', '/sse', token => 'abc', expect => 401, kind => 'invalid');
check('garbage a.b.c', '/sse', token => 'a.b.c', expect => 401, kind => 'invalid');
{
    my $r = join '.', map {
        encode_base64url(join '', map { chr int rand 256 } 1 .. 24)
    } 1 .. 3;
    check('three random base64url parts', '/sse', token => tk($r),
          expect => 401, kind => 'invalid');
    check('garbage in the query', '/sse?token=' . $r, expect => 401,
          kind => 'invalid');
    check('garbage in the cookie', '/sse',
          headers => { Cookie => "upload_progress_token=$r" },
          expect => 401, kind => 'invalid');
}
{
    my $big = tk(token(sub => $u, pad => 'x' x 7700));
    ok(length($big) > 10_000 && length($big) < 12_000,
       'oversized token is about 10 KB (' . length($big) . ' bytes)');
    check('oversized token (10 KB)', '/sse', token => $big, expect => 401,
          kind => 'invalid');
}

# ------------------------------------------------------------ kid
my $k1 = hs_secret('hs256-k1.secret');
my $k2 = hs_secret('hs256-k2.secret');
isnt($k1, $k2, 'the two rotation secrets differ');
$t = tk(token(sub => $u, key => $k1, kid => 'k1'));
check('kid k1', '/sse-kid', token => $t, expect => 200);
$t = tk(token(sub => $u, key => $k2, kid => 'k2'));
check('kid k2 (plain file path)', '/sse-kid', token => $t, expect => 200);
$t = tk(token(sub => $u, key => $k1, kid => 'k3'));
check('unknown kid k3', '/sse-kid', token => $t, expect => 401, kind => 'invalid');
$t = tk(token(sub => $u, key => $k2, kid => 'k1'));
check('kid k1 signed with k2', '/sse-kid', token => $t, expect => 401,
      kind => 'invalid');

# ------------------------------------------------------------ jwt-claim
$t = tk(token(sub => $u, role => 'admin'));
check('jwt-claim role admin', '/sse-claim', token => $t, expect => 200);
$t = tk(token(sub => $u, role => 'user'));
check('jwt-claim role user', '/sse-claim', token => $t, expect => 403);
$t = tk(token(sub => $u));
check('jwt-claim without role', '/sse-claim', token => $t, expect => 403);
check('jwt-claim without token', '/sse-claim', expect => 401, kind => 'missing');
$t = tk(token(sub => $u, role => 'admin', exp => $now - 120));
check('jwt-claim with an expired token', '/sse-claim', token => $t,
      expect => 401, kind => 'invalid');

# ------------------------------------------------------------ publish-jwt
$t = tk(token(sub => $u, scope => 'progress:publish', exp => $now - 120));
check('publish with an expired token', '/publish-jwt', token => $t,
      expect => 401, kind => 'invalid');

# ------------------------------------------------------------ leeway 0
$t = tk(token(sub => $u, exp => $now - 10));
check('expired 10 s ago with leeway 0', '/sse-exp', token => $t, expect => 401,
      kind => 'invalid');
$t = tk(token(sub => $u, nbf => $now + 10));
check('nbf 10 s ahead with leeway 0', '/sse-exp', token => $t, expect => 401,
      kind => 'invalid');

# ------------------------------------------------------------ env: key
$t = tk(token(sub => $u, key => $k2));
check('env: secret', '/sse-env', token => $t, expect => 200);
$t = tk(token(sub => $u));
check('env: location refuses another secret', '/sse-env', token => $t,
      expect => 401, kind => 'invalid');

# ------------------------------------------------------------ renamed sources
{
    my $uid = uniq('uid');
    my $ct = tk(token(uid => $uid, sub => "$uid-sub"));
    check('custom token parameter', "/sse-custom?access_token=$ct", expect => 200);
    # Not a token parameter at this location, so not scrubbed from the
    # access log either: a token left out of the log check.
    my $untracked = token(uid => $uid, sub => "$uid-sub", jti => 'not-a-source');
    check('default parameter name not read there', "/sse-custom?token=$untracked",
          expect => 401, kind => 'missing');
    check('custom cookie', '/sse-custom', headers => { Cookie => "upm_auth=$ct" },
          expect => 200);
    check('default cookie name not read there', '/sse-custom',
          headers => { Cookie => "upload_progress_token=$ct" },
          expect => 401, kind => 'missing');
    $t = tk(token(sub => $uid));
    check('custom user claim missing', '/sse-custom', token => $t,
          expect => 401, kind => 'invalid');

    # The user is the uid claim, not sub.
    my $c = sse('/sse-custom', token => $ct);
    is($c->status, 200, 'custom user claim: stream open');
    my ($st, undef, $b) = publish('/publish', [
        { type => 'file_registered', userId => "$uid-sub", fileId => 'by-sub' },
        { type => 'file_registered', userId => $uid, fileId => 'by-uid' } ]);
    is($st, 202, 'custom user claim: published');
    my @got = $c->events_until(1, 5);
    push @got, $c->drain(0.5);
    is_deeply([map { $_->{json}{fileId} } @got], ['by-uid'],
              'custom user claim: events of the uid user only');
    $c->close;
}
{
    my $pub = sub {
        my ($tok) = @_;
        my ($st) = publish('/publish-jwt-perms',
                           { type => 'file_registered', userId => $u, fileId => 'perm' },
                           Authorization => "Bearer $tok");
        return $st;
    };
    is($pub->(tk(token(sub => 'app', perms => 'progress:publish'))), 202,
       'custom scope claim with progress:publish: 202');
    is($pub->(tk(token(sub => 'app', scope => 'progress:publish'))), 403,
       'custom scope claim: the default scope claim does not count: 403');
}

# ------------------------------------------------------------ logs
# A query token on a stream that is then closed: the request must reach the
# access log (the 1 s heartbeat notices the closed connection) without it.
my $probe = 'probe' . int(rand(1e9));
my $qt = tk(token(sub => $u));
{
    my $c = sse("/sse-hb?probe=$probe&token=$qt", timeout => 5);
    is($c->status, 200, 'query-token stream opened');
    $c->wait_for(sub { 0 }, 1.2);
    $c->close;
}
my $access = File::Spec->catfile(t_logs(), 'access_log');
my $error  = File::Spec->catfile(t_logs(), 'error_log');
my $deadline = time + 10;
my $logged = '';
while (time < $deadline) {
    ($logged) = grep { /\Q$probe\E/ } split /\n/, file_text($access);
    last if $logged;
    sleep 0.25;
}
ok($logged, 'the closed query-token stream is in the access log')
    or diag("no access_log line with $probe within 10 s");
unlike($logged || '', qr/token=[^&\s"]/, 'its logged request line has no token value');

sleep 0.5;    # let the last 401s be logged
my $alog = file_text($access);
my $elog = file_text($error);
my %seen;
my @tokens = grep { length >= 16 && !$seen{$_}++ } @used;
my @in_access = grep { index($alog, $_) >= 0 } @tokens;
my @in_error  = grep { index($elog, $_) >= 0 } @tokens;
ok(@tokens >= 30, scalar(@tokens) . ' tokens to look for');
is(scalar @in_access, 0, 'no token in access_log')
    or diag(join "\n", map { substr($_, 0, 60) . '...' } @in_access);
is(scalar @in_error, 0, 'no token in error_log')
    or diag(join "\n", map { substr($_, 0, 60) . '...' } @in_error);
# The reason of a refusal is in the error log (DESIGN 3).
for my $reason ([expired => qr/expired/i], ['not yet valid' => qr/not.?yet.?valid|nbf/i],
                [signature => qr/signature/i], [issuer => qr/issuer|\biss\b/i],
                [audience => qr/audience|\baud\b/i], [kid => qr/kid/i],
                ['no exp' => qr/no_exp|no expiry/i],
                ['lifetime' => qr/too_long_lived|lives longer/i]) {
    my ($name, $re) = @$reason;
    ok((grep { /\[upload_progress:/ && $_ =~ $re } split /\n/, $elog),
       "error_log gives the reason: $name");
}
# Not even the signature part alone.
my @sigs = grep { length >= 20 } map { (split /\./)[2] || '' } @tokens;
is(scalar(grep { index($alog, $_) >= 0 || index($elog, $_) >= 0 } @sigs), 0,
   'no token signature in the logs');

done_testing();
