# SPDX-License-Identifier: Apache-2.0
# The polling fallback: ?since= answers at once with the user's messages
# after that id (or a reset), ?wait= holds the request until a message
# arrives (long-poll); same authentication, isolation and scopes as SSE.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use Time::HiRes qw(time sleep);
use JSON ();
use POSIX ();

my $JSONC = JSON->new->utf8->canonical;

sub poll {
    my ($tok, $query) = @_;
    my ($st, $h, $b) = publish_raw('GET', '/poll' . (defined $query ? "?$query" : ''), undef,
                                   'Content-Type' => undef,
                                   ($tok ? (Authorization => "Bearer $tok") : ()));
    return ($st, $h, $b);
}

sub pub {
    my (@events) = @_;
    my ($st, undef, $b) = publish('/publish', \@events);
    is($st, 202, 'published ' . scalar(@events)) or diag(ref $b ? $JSONC->encode($b) : $b);
    return ref $b eq 'HASH' ? @{ $b->{ids} || [] } : ();
}

# Publishes after $delay seconds from a child process.
sub pub_later {
    my ($delay, @events) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        sleep $delay;
        publish('/publish', \@events);
        POSIX::_exit(0);
    }
    return $pid;
}

my $ua = uniq('poll-a');
my $ub = uniq('poll-b');
my $ta = token(sub => $ua);
my $tb = token(sub => $ub);

# ----------------------------------------------- the first poll: from now
my ($before) = pub({ type => 'progress', userId => $ub, n => 0 });
my ($st, $h, $r) = poll($ta);
is($st, 200, 'poll: 200');
like($h->header('Content-Type') // '', qr{\Aapplication/json}, 'poll: JSON');
like($h->header('Cache-Control') // '', qr/no-store/, 'poll: not cached');
is_deeply($r->{events}, [], 'no since: no events');
is($r->{lastEventId}, $before, 'no since: lastEventId is the newest id');
is($r->{more}, JSON::false, 'more: false');

# -------------------------------------------- since: the user's own, in order
my @ids = pub({ type => 'progress', userId => $ua, n => 1 },
              { type => 'progress', userId => $ub, n => 2 },
              { type => 'job_progress', userId => $ua, jobId => 'j1', progress => 10, n => 3 },
              { type => 'progress', userId => $ub, n => 4 },
              { type => 'job_complete', userId => $ua, jobId => 'j2', n => 5 });
($st, $h, $r) = poll($ta, "since=$before");
is($st, 200, 'since: 200');
is_deeply([map { $_->{n} } @{ $r->{events} }], [1, 3, 5], "since: exactly the user's messages, in order");
is_deeply([map { $_->{id} } @{ $r->{events} }], [@ids[0, 2, 4]], 'since: with their ids');
is($r->{lastEventId}, $ids[4], 'since: lastEventId');
ok(!grep({ $_->{userId} ne $ua } @{ $r->{events} }), 'since: no other user\'s message');
(undef, undef, my $rb) = poll($tb, "since=$before");
is_deeply([map { $_->{n} } @{ $rb->{events} }], [2, 4], 'the other user gets its own');
(undef, undef, $r) = poll($ta, "since=$ids[4]");
is_deeply($r->{events}, [], 'since the last id: nothing new');
is($r->{lastEventId}, $ids[4], 'lastEventId stays');
{
    my ($s2, undef, $r2) = publish_raw('GET', '/poll', undef, 'Content-Type' => undef,
                                       Authorization => "Bearer $ta",
                                       'Last-Event-ID' => $before);
    is_deeply([map { $_->{n} } @{ $r2->{events} }], [1, 3, 5], 'Last-Event-ID header works as since');
}

# ------------------------------------------------------------- scopes
(undef, undef, $r) = poll($ta, "since=$before&jobId=j1");
is_deeply([map { $_->{n} } @{ $r->{events} }], [3], 'jobId narrows the poll');
($st, undef, $r) = poll($ta, 'jobId=bad%20id');
is($st, 400, 'malformed scope: 400');
is(ref $r && $r->{error}, 'bad_scope', 'error bad_scope');

# ------------------------------------------------------------- reset
($st, undef, $r) = poll($ta, 'since=1-1');
is($st, 200, 'since from another epoch: 200');
is(scalar @{ $r->{events} }, 1, 'one event');
is($r->{events}[0]{type}, 'reset', 'a reset');
is($r->{events}[0]{reason}, 'epoch', 'reason epoch');
is($r->{lastEventId}, $r->{events}[0]{id}, 'lastEventId is the reset id');
is(epoch_of($r->{lastEventId}), epoch_of($before), 'of the current epoch');
(undef, undef, $r) = poll($ta, 'since=garbage');
is($r->{events}[0]{reason}, 'invalid', 'malformed since: reset invalid');
{
    # Resuming from the reset's id works without another reset.
    my $rid = $r->{lastEventId};
    my (undef, undef, $r2) = poll($ta, "since=$rid");
    ok(!grep({ $_->{type} eq 'reset' } @{ $r2->{events} }), 'polling from the reset id: no reset');
}

# ------------------------------------------------------- a full batch
{
    my $uc = uniq('poll-c');
    my $tc = token(sub => $uc);
    my (undef, undef, $r0) = poll($tc);
    my $from = $r0->{lastEventId};
    pub(map { { type => 'progress', userId => $uc, n => $_ } } 1 .. 300);
    my (undef, undef, $r1) = poll($tc, "since=$from");
    is(scalar @{ $r1->{events} }, 256, 'at most 256 events per answer');
    is($r1->{more}, JSON::true, 'more: true when more are waiting');
    is($r1->{lastEventId}, $r1->{events}[-1]{id}, 'lastEventId is the last one sent');
    my (undef, undef, $r2) = poll($tc, "since=$r1->{lastEventId}");
    is(scalar @{ $r2->{events} }, 44, 'the rest on the next poll');
    is($r2->{more}, JSON::false, 'then more: false');
    is_deeply([map { $_->{n} } @{ $r1->{events} }, @{ $r2->{events} }], [1 .. 300],
              'no hole, no duplicate');
}

# --------------------------------------------------------- long-poll
{
    my $t0 = time;
    my $pid = pub_later(1, { type => 'job_progress', userId => $ua, jobId => 'lp', progress => 50 });
    my ($s, undef, $lp) = poll($ta, "since=$ids[4]&wait=10");
    my $dt = time - $t0;
    waitpid $pid, 0;
    is($s, 200, 'long-poll: 200');
    is(scalar @{ $lp->{events} || [] }, 1, 'long-poll: answered with the message');
    is($lp->{events}[0]{jobId}, 'lp', 'long-poll: the message published while waiting');
    ok($dt >= 0.8 && $dt < 5, sprintf('long-poll: answered when it arrived (%.2f s)', $dt));
    is($lp->{lastEventId}, $lp->{events}[0]{id}, 'long-poll: lastEventId');
}
{
    # Something already waiting: no wait at all.
    my ($id) = pub({ type => 'progress', userId => $ua, n => 'ready' });
    my $t0 = time;
    my (undef, undef, $lp) = poll($ta, "since=$before&wait=10");
    ok(time - $t0 < 2, 'long-poll with messages waiting: answered at once');
    is($lp->{events}[-1]{n}, 'ready', 'long-poll: with them');
}
{
    # Another user's message does not wake this poll; the timeout ends it.
    my (undef, undef, $now) = poll($ta);
    my $t0 = time;
    my $pid = pub_later(0.5, { type => 'progress', userId => $ub, n => 'not-yours' });
    my ($s, undef, $lp) = poll($ta, "since=$now->{lastEventId}&wait=2");
    my $dt = time - $t0;
    waitpid $pid, 0;
    is($s, 200, 'long-poll timeout: 200');
    is_deeply($lp->{events}, [], 'long-poll timeout: no events (the other user\'s stayed away)');
    ok($dt >= 1.8 && $dt < 4, sprintf('long-poll timeout after wait seconds (%.2f s)', $dt));
}
{
    # Without since, a long-poll waits for the next message from now.
    my $t0 = time;
    my $pid = pub_later(0.7, { type => 'progress', userId => $ua, n => 'next' });
    my (undef, undef, $lp) = poll($ta, 'wait=5');
    waitpid $pid, 0;
    is_deeply([map { $_->{n} } @{ $lp->{events} }], ['next'], 'long-poll from now: the next message');
    ok(time - $t0 < 4, 'long-poll from now: answered when it came');
}

# ----------------------------------------------------- bad requests
($st, undef, $r) = poll($ta, 'wait=soon');
is($st, 400, 'wait not a number: 400');
is(ref $r && $r->{error}, 'bad_wait', 'error bad_wait');
($st) = poll(undef, 'since=1-1');
is($st, 401, 'no token: 401');
($st) = poll(token(sub => $ua, exp => int(time) - 3600), "");
is($st, 401, 'expired token: 401');
($st, $h) = publish_raw('POST', '/poll', '{}', Authorization => "Bearer $ta");
is($st, 405, 'POST: 405');
like($h->header('Allow') // '', qr/\bGET\b/, 'POST: Allow names GET');

done_testing();
