# SPDX-License-Identifier: Apache-2.0
# rediss://: the module's own TLS (OpenSSL under hiredis' protocol reader)
# against redis-server's --tls-port, with a CA made here and a client
# certificate the server requires.  pub/sub and Streams (listener,
# publish endpoint, Streams read-back) work over it; a wrong CA, a wrong
# name and a plain redis:// URL towards the TLS port are refused with a
# log line that says why; verify=off works and warns.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use UPM::Redis;
use UPM::Node;
use UPM::TestCA;

my $TLS_PORT = 6470;
my $dir = tempdir('upm-tls-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my $ca = UPM::TestCA->new($dir, 'good');
my $other = UPM::TestCA->new($dir, 'other');
my ($scrt, $skey) = $ca->issue('redis', san => 'DNS:redis.test,IP:127.0.0.1');
my ($ccrt, $ckey) = $ca->issue('upm-client', client => 1);

# The plain port is the test's own client; the module only gets the TLS one.
my $redis = UPM::Redis->new(port => 6471, args => [
    '--tls-port', $TLS_PORT, '--tls-cert-file', $scrt, '--tls-key-file', $skey,
    '--tls-ca-cert-file', $ca->ca, '--tls-auth-clients', 'yes' ])->start;
my $j = $UPM::Node::JSON;
my $url = "rediss://127.0.0.1:$TLS_PORT";
my $client_cert = "cert=$ccrt key=$ckey";

sub no_errors {
    my ($node, $what) = @_;
    my @bad = grep { /\[(?:\w+:)?(?:error|crit|alert|emerg)\]/ } split /\n/, $node->log_text;
    is(scalar @bad, 0, "$what: no error in the log") or diag(join "\n", @bad);
}

# ---- pub/sub over TLS ------------------------------------------------------
{
    my $node = UPM::Node->new(redis => $url, children => 2,
                              conf => "UploadProgressRedisTLS ca=@{[ $ca->ca ]} $client_cert")
                        ->start;
    my $u = "tls-$$";
    my $c = $node->sse(token => $node->token($u));
    is($c->status, 200, 'pub/sub: stream open');
    $redis->publish("user:$u", $j->encode({ type => 'step', n => 1 }));
    my ($st) = $node->publish({ type => 'step', userId => $u, n => 2 });
    is($st, 202, 'pub/sub: the publish endpoint publishes over TLS');
    # Larger than a TLS record (16K): the reply spans several records.
    my $big = 'x' x 40000;
    $redis->publish("user:$u", $j->encode({ type => 'step', n => 3, pad => $big }));
    ($st) = $node->publish({ type => 'step', userId => $u, n => 4, pad => $big });
    is($st, 202, 'pub/sub: a 40 KB event published over TLS');
    UPM::Node::pump([$c], sub { $c->messages >= 4 }, 10);
    is_deeply([ map { $_->{json}{n} } $c->messages ], [ 1 .. 4 ],
              'pub/sub: events from Redis and from the endpoint arrive once, in order');
    is(length($c->messages > 2 ? ($c->messages)[2]{json}{pad} // '' : ''), 40000,
       'pub/sub: the 40 KB event arrives whole');
    no_errors($node, 'pub/sub');
    $c->close;
    $node->stop;
}

# ---- Streams over TLS: listener, publish, read-back --------------------------
{
    my $key = "upm:tls:$$";
    my $conf = "UploadProgressRedisTLS ca=@{[ $ca->ca ]} $client_cert";
    my $a = UPM::Node->new(redis => $url, stream => $key, conf => $conf)->start;
    my $u = "tls-st-$$";
    my $tok = $a->token($u);
    my $c = $a->sse(token => $tok);
    my ($st, $body) = $a->publish([ map { { type => 'step', userId => $u, n => $_ } } 1 .. 5 ]);
    is($st, 202, 'Streams: published 5 events over TLS (XADD)');
    is($redis->cmd('XLEN', $key), 5, 'Streams: they are in the stream');
    UPM::Node::pump([$c], sub { $c->messages >= 5 }, 10);
    is_deeply([ map { $_->{id} } $c->messages ], $body->{ids} || [],
              'Streams: the listener read them over TLS (XREAD), with their stream ids');
    $c->close;

    # A node started later: its ring never held them, so a resume reads
    # them back from the stream (XRANGE) over TLS.
    my $b = UPM::Node->new(redis => $url, stream => $key, conf => $conf)->start;
    my $r = $b->sse(token => $b->token($u), last_id => $body->{ids}[0]);
    UPM::Node::pump([$r], sub { $r->messages >= 4 }, 10);
    is_deeply([ map { $_->{id} } $r->messages ], [ @{ $body->{ids} }[1 .. 4] ],
              'Streams: a node whose ring lacks them reads them back over TLS (XRANGE)');
    is(scalar $r->of_type('reset'), 0, 'Streams: ... without a reset');
    no_errors($a, 'Streams node A');
    no_errors($b, 'Streams node B');
    $r->close;
    $b->stop;
    $a->stop;
}

# ---- refusals --------------------------------------------------------------
# Each: the listener's log line says why, and the publish endpoint answers
# 503 with the reason.
my @refused = (
    [ 'a CA that did not sign the server certificate', $url,
      "UploadProgressRedisTLS ca=@{[ $other->ca ]} $client_cert",
      qr/AH13218: cannot reach Redis at rediss:.*certificate is refused \((?:unable to get local issuer certificate|self-signed certificate in certificate chain)\)/ ],
    [ 'a name the certificate does not carry', $url,
      "UploadProgressRedisTLS ca=@{[ $ca->ca ]} $client_cert servername=other.test",
      qr/AH13218: cannot reach Redis at rediss:.*certificate is refused \(hostname mismatch\)/ ],
    [ 'a plain redis:// URL to the TLS port', "redis://127.0.0.1:$TLS_PORT", '',
      qr/AH13218: cannot reach Redis at redis:.*if that port speaks TLS, use a rediss:\/\/ URL/ ],
);
for my $t (@refused) {
    my ($what, $u, $conf, $re) = @$t;
    my $node = UPM::Node->new(redis => $u, conf => $conf)->start(no_wait_feeder => 1);
    my $line = $node->wait_log($re, 10);
    ok($line, "refused: $what, and the log says why") or diag($node->log_text);
    note($line) if $line;
    my ($st, $b) = $node->publish({ type => 'step', userId => 'x', n => 1 });
    is($st, 503, "refused: $what: the publish endpoint answers 503");
    unlike($node->log_text, qr/now feeds the ring/, "refused: $what: nothing is fed");
    $node->stop;
}

# verify=off: connects in spite of the unknown CA, and says so at start.
{
    my $node = UPM::Node->new(redis => $url,
                              conf => "UploadProgressRedisTLS ca=@{[ $other->ca ]} "
                                    . "$client_cert verify=off")->start;
    like($node->log_text, qr/AH14050: UploadProgressRedisTLS verify=off/,
         'verify=off: a warning at start-up');
    my $u = "tls-nv-$$";
    my $c = $node->sse(token => $node->token($u));
    my ($st) = $node->publish({ type => 'step', userId => $u, n => 1 });
    is($st, 202, 'verify=off: publishes');
    UPM::Node::pump([$c], sub { $c->messages >= 1 }, 10);
    is(scalar $c->messages, 1, 'verify=off: delivers');
    $node->stop;
}

# A CA file that cannot be read stops the start with the reason.
{
    my $node = UPM::Node->new(redis => $url,
                              conf => "UploadProgressRedisTLS ca=$dir/missing.pem");
    my $ok = eval { $node->start(no_wait_feeder => 1); 1 };
    ok(!$ok, 'an unreadable ca= file: httpd does not start');
    like($@ . $node->log_text, qr/AH14051: .*cannot load the CA certificates ca=\S*missing\.pem/,
         '... and the log names the file');
    $node->stop;
}

$redis->stop;
done_testing;
