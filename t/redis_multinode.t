# SPDX-License-Identifier: Apache-2.0
# Two (then three) httpd instances sharing one Redis.
#  - pub/sub: an event POSTed to node A's endpoint reaches a client on node B;
#  - Streams: message ids are the stream's ids; a client that read on node A
#    resumes on node B with Last-Event-ID and gets exactly the missed events,
#    also from a node whose own ring never held them (read back with
#    XRANGE); an id beyond the stream's retention gets a reset.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use UPM::Redis;
use UPM::Node;

my $j = $UPM::Node::JSON;
my $redis = UPM::Redis->new(port => 6396)->start;

# ------------------------------------------------------------- pub/sub
{
    my $a = UPM::Node->new(redis => $redis->url)->start;
    my $b = UPM::Node->new(redis => $redis->url)->start;
    my $u = "mn-$$";
    my $on_b = $b->sse(token => $b->token($u));
    my $on_a = $a->sse(token => $a->token($u));
    my $other = $b->sse(token => $b->token("other-$$"));
    my ($st, $body) = $a->publish([ map { { type => 'note', userId => $u, n => $_ } } 1 .. 3 ]);
    is($st, 202, 'published through node A');
    UPM::Node::pump([$on_a, $on_b, $other], sub { $on_b->messages >= 3 && $on_a->messages >= 3 }, 5);
    is_deeply([ map { $_->{json}{n} } $on_b->messages ], [1, 2, 3],
              'a client on node B received the events POSTed to node A, once, in order');
    is_deeply([ map { $_->{json}{n} } $on_a->messages ], [1, 2, 3], '... and so did one on node A');
    is(scalar($other->messages), 0, "another user's client on B got nothing");
    $_->close for $on_a, $on_b, $other;
    $a->stop;
    $b->stop;
}

# ------------------------------------------------------------- Streams
my $key = "upm:events:$$";
my $a = UPM::Node->new(redis => $redis->url, stream => $key)->start;
my $b = UPM::Node->new(redis => $redis->url, stream => $key)->start;
my $u = "st-$$";
my $v = "st-other-$$";
my $tok = $a->token($u);

my $c = $a->sse(token => $tok);
is($c->status, 200, 'stream open on node A');
my ($st, $body) = $a->publish([ map { { type => 'step', userId => $u, n => $_ } } 1 .. 5 ]);
is($st, 202, 'published 5 events through node A');
is(scalar @{ $body->{ids} || [] }, 5, 'Streams mode answers with the stream ids');
like($body->{ids}[0] // '', qr/\A\d{13,}-\d+\z/, 'ids look like stream ids');
my $xlen = $redis->cmd('XLEN', $key);
is($xlen, 5, 'the events are in the stream (XADD), not only in the local ring');
UPM::Node::pump([$c], sub { $c->messages >= 5 }, 5);
is_deeply([ map { $_->{id} } $c->messages ], $body->{ids},
          "the client's message ids are the stream ids");
is_deeply([ map { $_->{json}{id} } $c->messages ], $body->{ids}, '... inside the JSON too');
my $resume_id = $c->last_id;
$c->close;

# Missed while away: 5 more for u (some through B's endpoint, some with
# XADD by the application itself), interleaved with events for v.
($st, $body) = $b->publish([ map { { type => 'step', userId => $u, n => $_ } } 6 .. 7 ]);
is($st, 202, 'published through node B');
my @missed = @{ $body->{ids} };
$b->publish({ type => 'step', userId => $v, n => 99 });
for my $n (8 .. 10) {
    push @missed, $redis->cmd('XADD', $key, '*', 'data',
                              $j->encode({ event => 'PhotoUploadProgressed', userId => $u,
                                           photoId => 'p', bytesUploaded => $n,
                                           totalBytes => 10, n => $n }));
}
$redis->cmd('XADD', $key, '*', 'data', $j->encode({ type => 'step', n => 100 }),
            'channel', "user:$v");
$redis->cmd('XADD', $key, '*', 'nodata', 'x');                      # refused, skipped
$redis->cmd('XADD', $key, '*', 'data', '{broken');                  # refused, skipped
sleep 0.3;

my $r = $b->sse(token => $tok, last_id => $resume_id);
UPM::Node::pump([$r], sub { $r->messages >= 5 }, 5);
UPM::Node::pump([$r], sub { 0 }, 0.3);
is_deeply([ map { $_->{json}{n} } $r->messages ], [6 .. 10],
          'resumed on node B: exactly the 5 missed events, in order');
is_deeply([ map { $_->{id} } $r->messages ], \@missed, '... with their stream ids');
is(scalar($r->of_type('reset')), 0, '... and no reset');
is($r->messages->[0]{event}, undef, 'sanity') if 0;
my @types = map { $_->{event} } $r->messages;
is($types[-1], 'upload_progress', 'an application XADD of a domain event arrives mapped');
# then live on B
$a->publish({ type => 'step', userId => $u, n => 11 });
UPM::Node::pump([$r], sub { $r->messages >= 6 }, 5);
is(($r->messages)[-1]{json}{n}, 11, 'then live events on B, published through A');
my $eleven = ($r->messages)[-1]{id};
$r->close;

# Upload tracking on node A: the upload_* messages go through the stream
# too, so a client on node B sees them, with stream ids.
{
    my $tb = $b->sse(token => $tok);
    my $body = $UPM::Node::JSON->encode({ type => 'note', userId => $u, n => 'big',
                                          pad => 'x' x 40000 });
    my ($st) = $a->http('POST', '/track-pub', $body,
                        { 'Content-Type' => 'application/json', 'X-Progress-ID' => "up-$$",
                          Authorization => 'Bearer ' . $a->token($u, scope => 'progress:publish') });
    is($st, 202, 'a tracked upload through node A');
    UPM::Node::pump([$tb], sub { $tb->of_type('upload_completed') && $tb->of_type('note') }, 5);
    my @up = grep { $_->{event} =~ /^upload_/ } $tb->events;
    is($up[0]{event}, 'upload_started', "node B's client saw the upload start");
    is($up[-1]{event}, 'upload_completed', '... and complete');
    is(scalar(grep { ($_->{json}{photoId} // '') eq "up-$$" } @up), scalar(@up),
       '... named by its progress id');
    is(scalar(grep { ($_->{id} // '') =~ /\A\d{13,}-\d+\z/ } @up), scalar(@up),
       '... with stream ids');
    $tb->close;
}

# A third node started now: its ring never held any of this, so the
# resume reads the stream itself.
my $c3 = UPM::Node->new(redis => $redis->url, stream => $key)->start;
my $r3 = $c3->sse(token => $tok, last_id => $resume_id);
# The numbered events of u (steps, and the application's XADDs of 8..10).
my $steps = sub { grep { /\A\d+\z/ } map { $_->{json}{n} // '' } $_[0]->messages };
UPM::Node::pump([$r3], sub { $steps->($r3) >= 6 }, 5);
UPM::Node::pump([$r3], sub { 0 }, 0.3);
is_deeply([ $steps->($r3) ], [6 .. 11],
          'a node whose ring lacks the range fills it from the stream (XRANGE)');
is(scalar($r3->of_type('reset')), 0, '... without a reset');
$c3->publish({ type => 'step', userId => $u, n => 12 });
UPM::Node::pump([$r3], sub { $steps->($r3) >= 7 }, 5);
is_deeply([ $steps->($r3) ], [6 .. 12], '... then goes live, no duplicate');
is(scalar($r3->of_type('upload_completed')), 1, '... the tracked upload among them, once');
$r3->close;

# The same over WebSocket (?lastEventId=, as a browser's first connect).
{
    require UPM::WS;
    no warnings qw(redefine once);
    local *UPM::Test::port = sub { $c3->port };
    my $ws = UPM::WS->connect("/ws?lastEventId=$resume_id", token => $tok);
    is($ws->status, 101, 'WebSocket on the third node');
    my @m = grep { ($_->{n} // '') =~ /\A\d+\z/ } $ws->drain_json(1.5);
    is_deeply([ map { $_->{n} } @m ], [6 .. 12],
              'a WebSocket resume with a stream id also reads the missed entries back');
    like($m[0]{id} // '', qr/\A\d{13,}-\d+\z/, '... with stream ids');
    $ws->close;
}

# And with a resume message on an open WebSocket: on the third node the
# range is read back from the stream at once; on node A, whose ring holds
# it, the reactor sends it in steps.  Either way the entries after the id,
# once, in order.
for my $n ([$c3, 'the third node'], [$a, 'node A']) {
    my ($node, $name) = @$n;
    no warnings qw(redefine once);
    local *UPM::Test::port = sub { $node->port };
    my $ws = UPM::WS->connect('/ws', token => $tok);
    is(($ws->next_json(5) || {})->{type}, 'connected', "WebSocket on $name");
    $ws->send_json({ type => 'resume', lastEventId => $resume_id });
    my @m = grep { ($_->{n} // '') =~ /\A\d+\z/ } $ws->drain_json(1.5);
    is_deeply([ map { $_->{n} } @m ], [6 .. 12], "a resume message on $name replays 6..12");
    like($m[0]{id} // '', qr/\A\d{13,}-\d+\z/, '... with stream ids');
    $ws->close;
}

# Another user resuming from the same point sees only their own.
my $rv = $c3->sse(token => $c3->token($v), last_id => $resume_id);
UPM::Node::pump([$rv], sub { $rv->messages >= 2 }, 5);
UPM::Node::pump([$rv], sub { 0 }, 0.3);
is_deeply([ map { $_->{json}{n} } $rv->messages ], [99, 100],
          "the other user's resume replays only that user's events");
$rv->close;

# Beyond retention: the entries after the id were trimmed away.
$redis->cmd('XTRIM', $key, 'MAXLEN', 1);
my $gone = $c3->sse(token => $tok, last_id => $resume_id);
UPM::Node::pump([$gone], sub { $gone->events >= 1 }, 5);
is(($gone->events)[0]{event}, 'reset', 'an id older than the stream retains: reset');
is(($gone->events)[0]{json}{reason}, 'expired', '... reason expired');
like(($gone->events)[0]{id} // '', qr/\A\d+-\d+\z/, '... carrying a stream id to resume from');
$gone->close;

my $future = $c3->sse(token => $tok, last_id => '99999999999999-0');
UPM::Node::pump([$future], sub { $future->events >= 1 }, 5);
is(($future->events)[0]{json}{reason}, 'invalid', 'an id the stream never gave: reset invalid');
$future->close;
my $junk = $c3->sse(token => $tok, last_id => 'garbage');
UPM::Node::pump([$junk], sub { $junk->events >= 1 }, 5);
is(($junk->events)[0]{json}{reason}, 'invalid', 'a malformed id: reset invalid');
$junk->close;

my $log = $b->log_text . $c3->log_text . $a->log_text;
like($log, qr/skipped a Redis message \(no_payload\) from stream entry/, 'entry without data logged');
like($log, qr/skipped a Redis message \(invalid_json\) from stream entry/, 'broken entry logged');

$_->stop for $a, $b, $c3;
unlike($a->log_text . $b->log_text . $c3->log_text, qr/Segmentation|\[(?:crit|emerg|alert)\]/,
       'no crash on any node');
done_testing();
