# SPDX-License-Identifier: Apache-2.0
# scripts/jwt.sh (installed as upload-progress-token), the token tool
# docs/security.md shows: the tokens it mints are accepted by the module,
# from the same key file the server reads (one trailing newline is not
# part of the secret, LF or CRLF), from env:NAME, with a kid, and with
# extra claims (a publish scope); a token signed with the newline as part
# of the secret is refused, as the page says.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use File::Temp qw(tempdir);
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);
use UPM::Test;

my $tool = "$FindBin::Bin/../scripts/jwt.sh";
my $keys = "$FindBin::Bin/keys";
my $dir = tempdir('upm-token-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub mint {
    my ($env, @args) = @_;
    local %ENV = (%ENV, %$env);
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) { exec 'sh', $tool, @args or die "exec: $!" }
    my $t = do { local $/; <$fh> };
    close $fh;
    chomp $t if defined $t;
    return ($? == 0 ? $t : undef);
}
sub status_with {
    my ($path, $tok) = @_;
    my $s = sse($path, token => $tok, timeout => 5);
    my $st = $s->status;
    $s->close;
    return $st;
}

my $raw = UPM::Test::key_text('hs256.secret');
$raw =~ s/\r?\n\z//;

my $u = uniq('tool');
my $t = mint({}, "$keys/hs256.secret", $u, 60);
like($t // '', qr/\A[\w-]+\.[\w-]+\.[\w-]+\z/, 'the tool prints a token');
is(status_with('/sse', $t), 200, 'the module accepts it (the key file the server reads)');

for my $case (['no newline', $raw], ['CRLF', "$raw\r\n"]) {
    my $f = "$dir/secret-" . ($case->[0] =~ s/\W/_/gr);
    open my $o, '>', $f or die; binmode $o; print $o $case->[1]; close $o;
    is(status_with('/sse', mint({}, "file:$f", $u, 60)), 200,
       "the same secret in a file with $case->[0]: accepted");
}

# Signed with the newline as part of the secret: bad_signature.
{
    my $b64 = sub { encode_base64url($_[0]) };
    my $h = $b64->('{"alg":"HS256","typ":"JWT"}');
    my $p = $b64->(sprintf('{"sub":"%s","iat":%d,"exp":%d}', $u, time, time + 60));
    my $bad = "$h.$p." . $b64->(hmac_sha256("$h.$p", "$raw\n"));
    is(status_with('/sse', $bad), 401, 'a token signed with the trailing newline is refused');
}

is(status_with('/sse-env', mint({ UPM_TOKEN_SECRET => UPM::Test::key_text('hs256-k2.secret') },
                                 'env:UPM_TOKEN_SECRET', $u, 60)),
   200, 'env:NAME, as UploadProgressJWTKey takes it');
is(status_with('/sse-kid', mint({ JWT_KID => 'k1' }, "$keys/hs256-k1.secret", $u, 60)),
   200, 'JWT_KID: the kid header picks the key');

# Extra claims: a publisher token with the publish scope.
my $pt = mint({}, "$keys/hs256.secret", 'publisher', 60, '"scope":"progress:publish"');
my $sub = sse('/sse', token => $t);
my ($st) = UPM::Test::publish('/publish-jwt', { type => 'note', userId => $u }, Authorization => "Bearer $pt");
is($st, 202, 'a publisher token with "scope":"progress:publish" may publish');
my $e = $sub->next_event(5);
is($e && $e->{json}{userId}, $u, '... and its event arrives');
$sub->close;

done_testing();
