# SPDX-License-Identifier: Apache-2.0
# A Spring WebFlux SSE + Redis pub/sub system, unchanged, on
# conf/seed-002-session-sse-redis.conf: the application PUBLISHes its
# session messages (no userId) to upload-session:{sessionId} with
# redis-cli; five SSE clients on /api/upload/sessions/{sessionId}/stream
# all receive them, exactly as published (plus id); a user notification
# on user:{userId} reaches /api/upload/sessions/notifications/stream; a
# token that does not grant the session is refused (403).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use UPM::Node;
use UPM::Redis;
use UPM::Server;

my $mode = UPM::Server::async_mode();
my $redis = UPM::Redis->new(port => 6402)->start;
my $node = UPM::Node->new(redis => $redis->url, seed => 'conf/seed-002-session-sse-redis.conf',
                          conf => "UploadProgressAsync $mode")->start;
my $J = $UPM::Node::JSON;

my $S = '5b0c6a2e-3f41-4d7a-9c1e-8f2d7b6a4e10';
my $S2 = '9d1e7f3a-0b2c-4e5d-8a6f-1c2b3d4e5f60';
sub cli {
    my (@a) = @_;
    my $out = `redis-cli -p @{[ $redis->port ]} @{[ map { "'$_'" } @a ]} 2>&1`;
    chomp $out;
    return $out;
}

my $alice = $node->token('alice', sessions => [$S]);
my $bob = $node->token('bob', sessions => [$S, $S2]);
my $path = "/api/upload/sessions/$S/stream";
my @five = map { $node->sse(path => $path, token => $_ % 2 ? $bob : $alice) } 1 .. 5;
is(scalar(grep { ($_->status // 0) == 200 } @five), 5, "five SSE clients on $path");
my $notes = $node->sse(path => '/api/upload/sessions/notifications/stream', token => $alice);
is($notes->status, 200, 'the notifications stream');
my $other = $node->sse(path => "/api/upload/sessions/$S2/stream", token => $bob);
is($other->status, 200, 'a client of another session');

# Not granted: UploadProgressRequireGrant On answers 403 with a reason.
{
    my $carol = $node->token('carol', sessions => [$S2]);
    my ($st, $b) = $node->http('GET', $path, undef, { Authorization => "Bearer $carol",
                                                       Accept => 'text/event-stream' });
    is($st, 403, 'a token that does not grant the session: 403');
    my $e = eval { $J->decode($b) } || {};
    is($e->{error}, 'forbidden', '... {"error":"forbidden"}');
    like($e->{message} // '', qr/sessionId/, '... naming the session');
    my $dave = $node->token('dave', sessions => 'not-an-array-of-this');
    ($st) = $node->http('GET', $path, undef, { Authorization => "Bearer $dave" });
    is($st, 403, 'a sessions claim naming another id: 403');
    my $eve = $node->token('eve', sessions => { $S => 1 });
    ($st) = $node->http('GET', $path, undef, { Authorization => "Bearer $eve" });
    is($st, 403, 'a sessions claim of the wrong type grants nothing: 403');
}

# The seed's messages, as the application builds them.
my @msgs = (
    { type => 'PHOTO_UPLOADED', sessionId => $S, photoId => 'c6d1a9a8-1b2e-4f3a-8d7c-5e6f7a8b9c01',
      uploadedCount => 47, totalCount => 100, progressPercent => 47.0,
      timestamp => '2025-11-11T10:30:00Z' },
    { type => 'PHOTO_FAILED', sessionId => $S, photoId => 'd7e2b0b9-2c3f-4a4b-9e8d-6f7a8b9c0d12',
      reason => 'File size exceeds limit', failedCount => 1, totalCount => 100,
      timestamp => '2025-11-11T10:30:01Z' },
    { type => 'SESSION_COMPLETED', sessionId => $S, uploadedCount => 99, failedCount => 1,
      totalCount => 100, timestamp => '2025-11-11T10:31:00Z' },
);
my @raw = ('{"type":"PHOTO_UPLOADED","sessionId":"' . $S . '","photoId":"c6d1a9a8-1b2e-4f3a-'
           . '8d7c-5e6f7a8b9c01","uploadedCount":47,"totalCount":100,"progressPercent":47.0,'
           . '"timestamp":"2025-11-11T10:30:00Z"}',
           $J->encode($msgs[1]), $J->encode($msgs[2]));
my $t0 = time;
for my $r (@raw) {
    # Every child listens (one feeds, the others stand by).
    like(cli('PUBLISH', "upload-session:$S", $r), qr/^[1-9]\d*$/,
         'redis-cli PUBLISH upload-session:{id}: the module is subscribed');
}
cli('PUBLISH', "upload-session:$S2", $J->encode({ type => 'PHOTO_UPLOADED', sessionId => $S2,
                                                 photoId => 'x', uploadedCount => 1,
                                                 totalCount => 2, progressPercent => 50.0 }));
my $note = { type => 'UPLOAD_SESSION_COMPLETED', message => 'Your upload is complete: 99 of 100 '
             . 'photos', sessionId => $S };
cli('PUBLISH', 'user:alice', $J->encode($note));

UPM::Node::pump([@five, $notes, $other],
                sub { !grep { $_->messages < 4 } @five and $notes->messages >= 1
                      and $other->messages >= 1 }, 10);
my $k = 0;
for my $c (@five) {
    $k++;
    my @m = map { $_->{json} } $c->messages;
    my @first = @m[0 .. 2];
    is_deeply([map { $_->{type} } @first], [qw(PHOTO_UPLOADED PHOTO_FAILED SESSION_COMPLETED)],
              "client $k: the three session messages, in order");
    for my $i (0 .. 2) {
        my %got = %{ $first[$i] || {} };
        like(delete $got{id} // '', qr/^\d+-\d+$/, "client $k: message $i has an id");
        is_deeply(\%got, $msgs[$i], "client $k: $msgs[$i]{type} exactly as published")
            or diag($J->encode(\%got));
    }
    # The notification names the session too: a stream that may watch the
    # session receives it as well (docs/security.md).
    is_deeply([map { $_->{type} } @m], [qw(PHOTO_UPLOADED PHOTO_FAILED SESSION_COMPLETED
                                            UPLOAD_SESSION_COMPLETED)],
              "client $k: nothing of the other session");
    is($c->{events}[0]{event}, 'PHOTO_UPLOADED', "client $k: SSE event name is the type");
}
my @at = map { ($_->messages)[0]{at} } @five;
my ($lo, $hi) = (sort { $a <=> $b } @at)[0, -1];
ok($hi - $lo < 1, sprintf('all five received it together (within %.0f ms)', 1000 * ($hi - $lo)));
note(sprintf 'PUBLISH to the fifth client: %.1f ms', 1000 * ($hi - $t0));

my @n = map { $_->{json} } $notes->messages;
is(scalar @n, 1, 'the notifications stream: one message (none of the session messages)');
is_deeply({ map { $_ => $n[0]{$_} } grep { $_ ne 'id' && $_ ne 'timestamp' } keys %{ $n[0] } },
          { %$note, userId => 'alice' }, '... the notification, its owner from the channel');
is_deeply([map { $_->{json}{sessionId} } $other->messages], [$S2],
          'the other session\'s client: only its own message');

# EventSource reconnects with Last-Event-ID: the rest, in order.
{
    my $id = ($five[0]->messages)[0]{id};
    my $again = $node->sse(path => $path, token => $alice, last_id => $id);
    UPM::Node::pump([$again], sub { $again->messages >= 3 }, 5);
    is_deeply([map { $_->{json}{type} } $again->messages],
              [qw(PHOTO_FAILED SESSION_COMPLETED UPLOAD_SESSION_COMPLETED)],
              'Last-Event-ID: the messages after it, in order');
}

# No owner and no session: still refused, and logged.
cli('PUBLISH', 'user:', '{"type":"PHOTO_UPLOADED","photoId":"p"}');
ok($node->wait_log(qr/skipped a Redis message \(no_owner\)/, 5),
   'a message with neither owner nor scope is refused');
$_->close for @five, $notes, $other;
$node->stop;
$redis->stop;
done_testing;
