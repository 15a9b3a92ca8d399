# SPDX-License-Identifier: Apache-2.0
# Streams over HTTP/2.  mod_http2 gives every stream of a connection that
# is being processed a worker of its own and processes only a few of one
# connection's streams at a time (6 at first); a stream that holds its
# worker for as long as it is open took those places, and every later
# request on the connection (the page's images, API calls, other tabs)
# waited behind it for ever.  One connection, h2c and h2 over TLS, Node's
# http2 client (t/h2/streams.mjs): N SSE streams of N users (also long
# polls mixed in), then plain GETs on the same connection that must be
# answered promptly, then one message per user that must reach every
# stream that was answered 200.  The rest are refused with 503
# http2_streams_busy, which the JS client takes as "use WebSocket".
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::Server;
use JSON::PP ();

my $node = `sh -c 'command -v node'`;
chomp $node;
plan skip_all => 'node is needed for the HTTP/2 client' unless $node;
chomp(my $moddir = `apxs -q LIBEXECDIR`);
plan skip_all => 'mod_http2 is not installed' unless -f "$moddir/mod_http2.so";

my $dir = UPM::Test::t_dir() . "/logs/h2-files";
mkdir $dir;
system("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
       . "-keyout $dir/key.pem -out $dir/cert.pem 2>/dev/null") == 0
    or die 'openssl req failed';
chmod 0644, "$dir/key.pem";
open my $fh, '>', "$dir/hello.txt" or die $!;
print $fh "hello\n";
close $fh;

my $tls_port = UPM::Server::free_port();
my $auth = UPM::Server::jwt_auth();
my $srv = UPM::Server->private(<<"CONF");
LoadModule http2_module $moddir/mod_http2.so
LoadModule socache_shmcb_module $moddir/mod_socache_shmcb.so
LoadModule ssl_module $moddir/mod_ssl.so
# One child, as a small site runs: every connection below is on it.
ServerLimit 1
StartServers 1
ThreadsPerChild 25
MaxRequestWorkers 25
Protocols h2c http/1.1
DocumentRoot "$dir"
<Directory "$dir">
    Require all granted
</Directory>
UploadProgressMaxConnectionsPerUser 100
<Location /sse>
    SetHandler upload-progress-sse
    $auth
</Location>
<Location /poll>
    SetHandler upload-progress-poll
    $auth
</Location>
<Location /sse3>
    SetHandler upload-progress-sse
    UploadProgressHTTP2Streams 3
    $auth
</Location>
<Location /poll3>
    SetHandler upload-progress-poll
    UploadProgressHTTP2Streams 3
    $auth
</Location>
Listen 127.0.0.1:$tls_port
<VirtualHost 127.0.0.1:$tls_port>
    Protocols h2 http/1.1
    SSLEngine on
    SSLCertificateFile $dir/cert.pem
    SSLCertificateKeyFile $dir/key.pem
    <Location /sse>
        SetHandler upload-progress-sse
        $auth
    </Location>
    <Location /poll>
        SetHandler upload-progress-poll
        $auth
    </Location>
</VirtualHost>
CONF
my $port = $srv->port;
my $mode = UPM::Server::async_mode();
note("h2c on $port, h2 on $tls_port, UploadProgressAsync $mode");

sub probe {
    my (%a) = @_;
    my @users = map { uniq("h2u$_") } 1 .. $a{n};
    my $arg = JSON::PP::encode_json({
        url => $a{url}, sse => $a{sse} || '/sse', get => '/hello.txt',
        poll => $a{poll} ? ($a{sse} ? '/poll3' : '/poll') : undef,
        publish => "http://127.0.0.1:$port/publish",
        users => \@users, tokens => [map { token(sub => $_) } @users],
        reopen => $a{reopen},
    });
    my $out = `$node $FindBin::Bin/h2/streams.mjs '$arg' 2>&1`;
    my $r = eval { JSON::PP::decode_json((split /\n/, $out)[-1]) };
    die "streams.mjs: $out" unless $r;
    return $r;
}

my $limit = 1;      # UploadProgressHTTP2Streams auto
for my $c ([h2c => "http://127.0.0.1:$port", [1, 2, 8, 60]],
           [h2 => "https://127.0.0.1:$tls_port", [2, 8]]) {
    my ($proto, $url, $counts) = @$c;
    for my $n (@$counts) {
        my $r = probe(url => $url, n => $n);
        my $name = "$proto, $n SSE streams on one connection";
        note("$name: " . JSON::PP->new->canonical->encode($r));
        is($r->{alpn}, $proto, "$name: spoken as $proto");
        my @slow = grep { $_->{status} != 200 || $_->{ms} > 2000 } @{ $r->{gets} };
        ok(!@slow, "$name: every plain GET on the connection answered promptly")
            or diag(JSON::PP::encode_json($r->{gets}));
        my $want = $n < $limit ? $n : $limit;
        is($r->{answered}, $want, "$name: $want streams served");
        is($r->{delivered}, $r->{answered}, "$name: each served stream got its message");
        is($r->{statuses}{'sse 503'} // 0, $n - $want, "$name: the rest refused with 503");
        if ($n > $limit) {
            my $b = eval { JSON::PP::decode_json($r->{refused}[0]{body}) } || {};
            is($b->{error}, 'http2_streams_busy', "$name: the refusal says http2_streams_busy")
                or diag($r->{refused}[0]{body});
        }
    }
}

# A stream its client cancels (a closed tab) gives its place back within
# about a second: mod_http2 wakes nobody, the stream looks.
{
    my $r = probe(url => "http://127.0.0.1:$port", n => 1, reopen => 1);
    note('h2c, 1 SSE cancelled and opened again: ' . JSON::PP->new->canonical->encode($r));
    is($r->{reopened}{200} // 0, 1, 'a cancelled stream gave its place back: opened again');
    is($r->{delivered}, 1, 'the reopened stream gets its message');
}

# UploadProgressHTTP2Streams N: N places (a connection whose client
# cancels no running stream keeps mod_http2's first limit of 6).
{
    my $r = probe(url => "http://127.0.0.1:$port", n => 5, sse => '/sse3');
    note('h2c, UploadProgressHTTP2Streams 3, 5 SSE: ' . JSON::PP->new->canonical->encode($r));
    my @slow = grep { $_->{status} != 200 || $_->{ms} > 2000 } @{ $r->{gets} };
    ok(!@slow, 'UploadProgressHTTP2Streams 3: plain GETs answered promptly');
    is($r->{answered}, 3, 'UploadProgressHTTP2Streams 3: 3 served');
    is($r->{delivered}, 3, 'UploadProgressHTTP2Streams 3: each got its message');
    is($r->{statuses}{'sse 503'} // 0, 2, 'UploadProgressHTTP2Streams 3: 2 refused');
}

# Long polls hold a worker the same way: they share the places.
{
    my $r = probe(url => "http://127.0.0.1:$port", n => 4, poll => 1, sse => '/sse3');
    note('h2c, 2 SSE + 2 long polls, 3 places: ' . JSON::PP->new->canonical->encode($r));
    my @slow = grep { $_->{status} != 200 || $_->{ms} > 2000 } @{ $r->{gets} };
    ok(!@slow, 'SSE and long polls: every plain GET answered promptly')
        or diag(JSON::PP::encode_json($r->{gets}));
    is($r->{answered}, 3, 'SSE and long polls: 3 served together');
    is($r->{delivered}, 3, 'SSE and long polls: each served one got its message');
    my $refused = ($r->{statuses}{'sse 503'} // 0) + ($r->{statuses}{'poll 503'} // 0);
    is($refused, 1, 'SSE and long polls: the fourth refused with 503');
}

# All connections of a child share its h2 workers: with H2MaxWorkers 12,
# at most 12 - 6 streams hold one, whatever the connections (10 here, one
# stream each).
{
    my $small = UPM::Server->private(<<"CONF");
LoadModule http2_module $moddir/mod_http2.so
ServerLimit 1
StartServers 1
ThreadsPerChild 25
MaxRequestWorkers 25
Protocols h2c http/1.1
H2MinWorkers 4
H2MaxWorkers 12
DocumentRoot "$dir"
<Directory "$dir">
    Require all granted
</Directory>
<Location /sse>
    SetHandler upload-progress-sse
    $auth
</Location>
CONF
    my $sp = $small->port;
    my @users = map { uniq("h2w$_") } 1 .. 10;
    my $arg = JSON::PP::encode_json({
        url => "http://127.0.0.1:$sp", sse => '/sse', get => '/hello.txt', conns => 10, gets => 1,
        publish => "http://127.0.0.1:$sp/publish",
        users => \@users, tokens => [map { token(sub => $_) } @users],
    });
    my $out = `$node $FindBin::Bin/h2/streams.mjs '$arg' 2>&1`;
    my $r = eval { JSON::PP::decode_json((split /\n/, $out)[-1]) } or die "streams.mjs: $out";
    note('H2MaxWorkers 12, 10 connections x 1 SSE: ' . JSON::PP->new->canonical->encode($r));
    my @slow = grep { $_->{status} != 200 || $_->{ms} > 2000 } @{ $r->{gets} };
    ok(!@slow, 'H2MaxWorkers 12: a plain GET on every connection answered promptly')
        or diag(JSON::PP::encode_json($r->{gets}));
    is($r->{answered}, 6, 'H2MaxWorkers 12: 6 streams served in the child');
    is($r->{delivered}, 6, 'H2MaxWorkers 12: each got its message');
    is($r->{statuses}{'sse 503'} // 0, 4, 'H2MaxWorkers 12: 4 refused');
    like($small->error_log, qr/AH14002.*12 h2 workers.*1 per connection.*6 per child/,
         'the limits read from H2MaxWorkers are logged');
    $small->stop;
}

my $log = $srv->error_log;
my @once = $log =~ /AH14000/g;
is(scalar @once, 1, 'the first refusal is logged once (AH14000), not per stream');
like($log, qr/AH14000.*UploadProgressHTTP2Streams/, 'the log line names the directive');
like($log, qr/AH14001/, 'later refusals at debug (AH14001)');

done_testing();
