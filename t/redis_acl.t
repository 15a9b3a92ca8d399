# SPDX-License-Identifier: Apache-2.0
# Redis ACL users (redis://user:pass@): users limited to exactly the
# commands, channels and keys the module needs (the minimal ACLs of
# docs/redis.md) are enough for pub/sub and for Streams (listener,
# publish endpoint, read-back); a wrong password and a user without a
# needed right are refused with the reason.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use UPM::Redis;
use UPM::Node;

my $redis = UPM::Redis->new(port => 6472)->start;
my $j = $UPM::Node::JSON;
my $key = "upload-progress:events";

# As in docs/redis.md.
$redis->cmd('ACL', 'SETUSER', 'upm-pubsub', 'reset', 'on', '>ps-secret', 'resetchannels',
            '&upload-session:*', '&user:*', '&job:*', '&project:*', 'resetkeys', '-@all',
            '+psubscribe', '+publish', '+multi', '+exec', '+ping');
$redis->cmd('ACL', 'SETUSER', 'upm-streams', 'reset', 'on', '>st-secret', 'resetchannels',
            'resetkeys', "~$key", '-@all', '+xadd', '+xread', '+xrange', '+xrevrange',
            '+xinfo|stream', '+multi', '+exec', '+ping');
# pub/sub user without PUBLISH: the listener works, the endpoint must not.
$redis->cmd('ACL', 'SETUSER', 'upm-nopub', 'reset', 'on', '>np-secret', 'resetchannels',
            '&upload-session:*', '&user:*', '&job:*', '&project:*', '-@all',
            '+psubscribe', '+multi', '+exec', '+ping');

# The users really are that limited.
{
    my $c = UPM::Redis::Conn->new($redis->port);
    is($c->cmd('AUTH', 'upm-pubsub', 'ps-secret'), 'OK', 'the pub/sub user logs in');
    ok(!eval { $c->cmd('GET', 'x'); 1 } && $@ =~ /NOPERM/, '... and may not read keys');
    ok(!eval { $c->cmd('PUBLISH', 'other:1', 'x'); 1 } && $@ =~ /NOPERM/,
       '... nor publish to other channels');
    my $s = UPM::Redis::Conn->new($redis->port);
    $s->cmd('AUTH', 'upm-streams', 'st-secret');
    ok(!eval { $s->cmd('XADD', 'other-key', '*', 'a', 'b'); 1 } && $@ =~ /NOPERM/,
       'the Streams user may not write other keys');
}

# ---- pub/sub ---------------------------------------------------------------
{
    my $node = UPM::Node->new(redis => 'redis://upm-pubsub:ps-secret@127.0.0.1:' . $redis->port)
                        ->start;
    my $u = "acl-$$";
    my $c = $node->sse(token => $node->token($u));
    $redis->publish("user:$u", $j->encode({ type => 'step', n => 1 }));
    $redis->publish("job:j1", $j->encode({ type => 'step', n => 2, userId => $u }));
    my ($st) = $node->publish({ type => 'step', userId => $u, n => 3 });
    is($st, 202, 'pub/sub ACL user: the publish endpoint publishes');
    UPM::Node::pump([$c], sub { $c->messages >= 3 }, 10);
    is_deeply([ map { $_->{json}{n} } $c->messages ], [ 1, 2, 3 ],
              'pub/sub ACL user: events from Redis and from the endpoint are delivered');
    unlike($node->log_text, qr/NOPERM|refused/, 'pub/sub ACL user: no refusal in the log');
    $node->stop;
}

# ---- Streams -----------------------------------------------------------------
{
    my $url = 'redis://upm-streams:st-secret@127.0.0.1:' . $redis->port;
    my $a = UPM::Node->new(redis => $url, stream => $key, children => 1)->start;
    my $u = "acl-st-$$";
    my $c = $a->sse(token => $a->token($u));
    my ($st, $body) = $a->publish([ map { { type => 'step', userId => $u, n => $_ } } 1 .. 3 ]);
    is($st, 202, 'Streams ACL user: published (XADD in MULTI/EXEC)');
    UPM::Node::pump([$c], sub { $c->messages >= 3 }, 10);
    is_deeply([ map { $_->{id} } $c->messages ], $body->{ids} || [],
              'Streams ACL user: the listener reads them (XREVRANGE, XINFO, XREAD)');
    my $b = UPM::Node->new(redis => $url, stream => $key, children => 1)->start;
    my $r = $b->sse(token => $b->token($u), last_id => $body->{ids}[0]);
    UPM::Node::pump([$r], sub { $r->messages >= 2 }, 10);
    is_deeply([ map { $_->{id} } $r->messages ], [ @{ $body->{ids} }[1, 2] ],
              'Streams ACL user: a resume reads them back (XINFO, XRANGE)');
    unlike($a->log_text . $b->log_text, qr/NOPERM|refused/,
           'Streams ACL user: no refusal in the logs');
    $b->stop;
    $a->stop;
}

# ---- refusals ----------------------------------------------------------------
{
    my $node = UPM::Node->new(redis => 'redis://upm-pubsub:wrong@127.0.0.1:' . $redis->port,
                              children => 1)->start(no_wait_feeder => 1);
    ok($node->wait_log(qr/AH13218: cannot reach Redis at redis:\/\/upm-pubsub:\*\*\*@.*WRONGPASS/, 10),
       'a wrong password: the log says WRONGPASS (and hides the password)');
    my ($st, $b) = $node->publish({ type => 'step', userId => 'x', n => 1 });
    is($st, 503, 'a wrong password: the publish endpoint answers 503');
    like(ref $b ? $b->{message} // '' : $b, qr/AUTH refused: WRONGPASS/, '... saying why');
    unlike($node->log_text, qr/wrong/, 'the password is in no log line');
    $node->stop;
}
{
    my $node = UPM::Node->new(redis => 'redis://upm-nopub:np-secret@127.0.0.1:' . $redis->port,
                              children => 1)->start;
    my ($st, $b) = $node->publish({ type => 'step', userId => 'x', n => 1 });
    is($st, 503, 'a user without +publish: the publish endpoint answers 503');
    like(ref $b ? $b->{message} // '' : $b, qr/NOPERM/, '... with the NOPERM reason');
    $node->stop;
}

$redis->stop;
done_testing;
