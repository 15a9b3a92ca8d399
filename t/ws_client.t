# SPDX-License-Identifier: Apache-2.0
# The WebSocket endpoint as a real client library sees it (Mojo::UserAgent
# from libmojolicious-perl): connect, subscribe, receive, unsubscribe,
# resume, close; plus the narrowed /session/{id} endpoint.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use Time::HiRes qw(time);
use Mojo::UserAgent;
use Mojo::IOLoop;

my $port = port();
my $ua = Mojo::UserAgent->new(connect_timeout => 5, request_timeout => 10,
                              inactivity_timeout => 60);

# Runs the event loop until $cond is true or $timeout passes.
sub wait_until {
    my ($cond, $timeout) = @_;
    my $deadline = time + $timeout;
    while (!$cond->() && time < $deadline) {
        my $tid = Mojo::IOLoop->timer(0.05 => sub { });
        Mojo::IOLoop->one_tick;
        Mojo::IOLoop->remove($tid);
    }
    return $cond->();
}

# A client: {tx, msgs => [decoded JSON], finish => [code, reason]}
sub client {
    my ($path) = @_;
    my $c = { msgs => [] };
    $ua->websocket("ws://127.0.0.1:$port$path" => sub {
        my (undef, $tx) = @_;
        $c->{tx} = $tx;
        $c->{status} = $tx->res->code;
        return unless $tx->is_websocket;
        $tx->on(json => sub { push @{ $c->{msgs} }, $_[1] });
        $tx->on(finish => sub { $c->{finish} = [ $_[1], $_[2] ] });
    });
    wait_until(sub { $c->{tx} }, 5);
    return $c;
}

# The next message, or undef after $timeout.
sub next_msg {
    my ($c, $timeout) = @_;
    wait_until(sub { @{ $c->{msgs} } }, $timeout // 5);
    return shift @{ $c->{msgs} };
}

# Messages up to and including the one whose $k is $v.
sub until_msg {
    my ($c, $k, $v, $timeout) = @_;
    my @got;
    my $deadline = time + ($timeout // 5);
    while (time < $deadline) {
        my $m = next_msg($c, $deadline - time) or last;
        push @got, $m;
        return @got if defined $m->{$k} && $m->{$k} eq $v;
    }
    return (@got, undef);
}

sub pub {
    my (@evs) = @_;
    my ($st, undef, $b) = publish('/publish', \@evs);
    is($st, 202, 'published ' . scalar(@evs) . ' event(s)');
    return @{ ref $b eq 'HASH' ? $b->{ids} || [] : [] };
}

my $user = uniq('wscli');
my $other = uniq('wscli-other');
my $tok = token(sub => $user);

# ------------------------------------------------- connect and subscribe
my $A = client("/ws/upload-progress?token=$tok");
is($A->{status}, 101, 'Mojo::UserAgent connects: 101');
ok($A->{tx} && $A->{tx}->is_websocket, 'it is a WebSocket');
my $hello = next_msg($A);
is($hello->{type}, 'connected', 'connected');
like($hello->{clientId} // '', qr/\A[0-9a-f]{16}\z/, 'clientId');

# Before any subscription: everything of the user.
my ($first) = pub({ event => 'PhotoUploadStarted', userId => $user, photoId => 'p0' });
my $m = next_msg($A);
is($m->{type}, 'upload_started', 'unsubscribed connection gets the user\'s messages');
is($m->{id}, $first, 'with the id the publisher got');

$A->{tx}->send({ json => { type => 'subscribe', jobId => 'job-A' } });
$m = next_msg($A);
is_deeply($m, { type => 'subscribed', jobId => 'job-A' }, 'subscribed to job-A');

my @ids = pub(
    { event => 'UploadJobProgressed', userId => $user, jobId => 'job-A', progress => 10 },
    { event => 'UploadJobProgressed', userId => $user, jobId => 'job-B', progress => 20 },
    { event => 'UploadJobProgressed', userId => $other, jobId => 'job-A', progress => 30 },
    { event => 'PhotoUploadStarted', userId => $user, photoId => 'p1' },
    { event => 'UploadJobCompleted', userId => $user, jobId => 'job-A' },
);
my @got = until_msg($A, type => 'job_completed');
ok(defined $got[-1], 'job-A completion arrives');
is_deeply([ map { $_->{id} } grep { defined } @got ], [ @ids[0, 4] ],
          'only job-A messages of this user, in order (not job-B, not the photo, '
          . 'not the other user\'s job-A)');
is($got[0]{progress}, 10, 'the job-A progress value');

# The same message through two subscriptions arrives once.
$A->{tx}->send({ json => { type => 'subscribe', projectId => 'proj-1' } });
is(next_msg($A)->{type}, 'subscribed', 'subscribed to proj-1 as well');
my ($both) = pub({ event => 'UploadJobProgressed', userId => $user, jobId => 'job-A',
                   projectId => 'proj-1', progress => 50 });
my ($only_p) = pub({ event => 'UploadJobProgressed', userId => $user, jobId => 'job-Z',
                     projectId => 'proj-1', progress => 60 });
@got = until_msg($A, id => $only_p);
is_deeply([ map { $_->{id} } grep { defined } @got ], [ $both, $only_p ],
          'a message matching both subscriptions comes once; each in order');

# ------------------------------------------------------------ unsubscribe
$A->{tx}->send({ json => { type => 'unsubscribe', jobId => 'job-A' } });
is_deeply(next_msg($A), { type => 'unsubscribed', jobId => 'job-A' }, 'unsubscribed job-A');
$A->{tx}->send({ json => { type => 'unsubscribe', projectId => 'proj-1' } });
is_deeply(next_msg($A), { type => 'unsubscribed', projectId => 'proj-1' },
          'unsubscribed proj-1');
my ($after_unsub) = pub({ event => 'UploadJobProgressed', userId => $user, jobId => 'job-A',
                          projectId => 'proj-1', progress => 70 });
wait_until(sub { 0 }, 1);
is(scalar @{ $A->{msgs} }, 0, 'after unsubscribing nothing is delivered');
$A->{tx}->send({ json => { type => 'ping' } });
is(next_msg($A)->{type}, 'pong', 'the connection is still open');

# ------------------------------------------------------------------ close
$A->{tx}->finish(1000);
wait_until(sub { $A->{finish} }, 5);
is($A->{finish} && $A->{finish}[0], 1000, 'closed by the client: the server echoes 1000');

# ----------------------------------------------------------------- resume
my $B = client("/ws?token=$tok");
is(next_msg($B)->{type}, 'connected', 'second connection');
$B->{tx}->send({ json => { type => 'resume', lastEventId => $first } });
my @want = (@ids[0, 1, 3, 4], $both, $only_p, $after_unsub);
@got = until_msg($B, id => $after_unsub);
is_deeply([ map { $_->{id} } grep { defined } @got ], \@want,
          'resume replays every message of the user after the id, in order');
my ($live) = pub({ event => 'PhotoUploadCompleted', userId => $user, photoId => 'p9' });
$m = next_msg($B);
is($m && $m->{id}, $live, 'then goes live, with no duplicate in between');
wait_until(sub { 0 }, 0.5);
is(scalar @{ $B->{msgs} }, 0, 'and nothing twice');

$B->{tx}->send({ json => { type => 'resume', lastEventId => '1-1' } });
$m = next_msg($B);
is($m->{type}, 'reset', 'resume from another epoch: reset');
is($m->{reason}, 'epoch', 'reason epoch');
like($m->{id} // '', qr/\A\d+-\d+\z/, 'the reset carries the current id');
$B->{tx}->send({ json => { type => 'resume', lastEventId => 'garbage' } });
$m = next_msg($B);
is($m->{reason}, 'invalid', 'malformed id: reset, reason invalid');
$B->{tx}->finish(1000);
wait_until(sub { $B->{finish} }, 5);

# lastEventId in the URL, for clients that reconnect by URL.
my $C = client("/ws?token=$tok&lastEventId=$ids[4]");
is(next_msg($C)->{type}, 'connected', 'connected with ?lastEventId=');
@got = until_msg($C, id => $live);
is_deeply([ map { $_->{id} } grep { defined } @got ], [ $both, $only_p, $after_unsub, $live ],
          '?lastEventId= replays what followed');
$C->{tx}->finish(1000);
wait_until(sub { $C->{finish} }, 5);

# ---------------------------------------------------- /session/{id}
my $S = client("/session/sess-42?token=$tok");
is($S->{status}, 101, '/session/sess-42: 101');
is(next_msg($S)->{type}, 'connected', 'connected');
my @sids = pub(
    { type => 'file_registered', userId => $user, sessionId => 'sess-41', fileId => 'f1' },
    { type => 'file_registered', userId => $user, sessionId => 'sess-42', fileId => 'f2' },
    { type => 'file_registered', userId => $other, sessionId => 'sess-42', fileId => 'f3' },
    { type => 'session_finalized', userId => $user, sessionId => 'sess-42' },
);
@got = until_msg($S, type => 'session_finalized');
is_deeply([ map { $_->{id} } grep { defined } @got ], [ @sids[1, 3] ],
          'only this session of this user');
$S->{tx}->send({ json => { type => 'subscribe', sessionId => 'sess-41' } });
is(next_msg($S)->{code}, 'out_of_scope', 'cannot subscribe outside the URL\'s session');
$S->{tx}->send({ json => { type => 'subscribe', fileId => 'f7' } });
is(next_msg($S)->{type}, 'subscribed', 'can narrow further');
my @fids = pub(
    { type => 'file_completed', userId => $user, sessionId => 'sess-42', fileId => 'f6' },
    { type => 'file_completed', userId => $user, sessionId => 'sess-41', fileId => 'f7' },
    { type => 'file_completed', userId => $user, sessionId => 'sess-42', fileId => 'f7' },
);
@got = until_msg($S, id => $fids[2]);
is_deeply([ map { $_->{id} } grep { defined } @got ], [ $fids[2] ],
          'session and file narrowing combine');
$S->{tx}->finish(1000);
wait_until(sub { $S->{finish} }, 5);
is($S->{finish} && $S->{finish}[0], 1000, 'closed');

done_testing();
