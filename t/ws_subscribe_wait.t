# SPDX-License-Identifier: Apache-2.0
# The subscribes of a reconnect, sent one frame each on a connection that
# resumed in the URL, take effect together: a message of the second one
# published between the two is delivered, before the first one's newer
# message, each once.  Without the wait (UploadProgressWSResumeWait 0) the
# same sequence loses it, as events.md says: the difference is the wait.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::Server;
use UPM::WS;
use Time::HiRes qw(time sleep);

$SIG{PIPE} = 'IGNORE';

my $auth = UPM::Server::jwt_auth();
my $srv = UPM::Server->private(<<"CONF");
<Location /ws-wait>
    SetHandler upload-progress-websocket
    UploadProgressWSResumeWait 400
    $auth
</Location>
<Location /ws-nowait>
    SetHandler upload-progress-websocket
    UploadProgressWSResumeWait 0
    $auth
</Location>
CONF
my $port = $srv->port;

sub pub {
    my ($user, $job, $n) = @_;
    my ($st, $b) = $srv->publish('/publish',
        { event => 'UploadJobProgressed', userId => $user, jobId => $job, progress => $n });
    return $st == 202 && ref $b eq 'HASH' ? ($b->{ids} || [$b->{id}])->[0] : undef;
}

# Opens $path resumed in the URL from the user's first event and
# subscribes to j0: returns the connection.
sub open_narrowed {
    my ($path, $user) = @_;
    my $from = pub($user, 'j0', 0);
    ok($from, "$path: an event to resume after");
    my $ws = UPM::WS->connect("$path?lastEventId=$from", token => token(sub => $user),
                              port => $port);
    is($ws->status, 101, "$path: open with ?lastEventId=");
    is(($ws->next_json(5) || {})->{type}, 'connected', "$path: connected");
    $ws->send_json({ type => 'subscribe', jobId => 'j0' });
    is_deeply($ws->next_json(5), { type => 'subscribed', jobId => 'j0' },
              "$path: subscribed to j0");
    return $ws;
}

# ------------------------------------------------------------- with the wait
{
    my $user = uniq('wssw');
    my $ws = open_narrowed('/ws-wait', $user);
    my $t0 = time;
    my $a = pub($user, 'j1', 1);           # between the two subscribes
    my $b = pub($user, 'j0', 2);           # newer, of the first one
    $ws->send_json({ type => 'subscribe', jobId => 'j1' });
    my $sent_in = time - $t0;
    ok($a && $b, 'a j1 event, then a j0 event, published between the subscribes');
    note(sprintf 'the second subscribe went %.0f ms after the first event', 1000 * $sent_in);
    my @m = $ws->drain_json(1.5);
    is_deeply([map { $_->{type} eq 'subscribed' ? "subscribed $_->{jobId}" : $_->{id} } @m],
              ['subscribed j1', $a, $b],
              'subscribed, then the j1 event and the j0 event, in id order, once each');
    is_deeply([map { $_->{jobId} } grep { $_->{id} } @m], ['j1', 'j0'], 'their jobs');

    # The wait is over: a message goes out live again.
    my $c = pub($user, 'j1', 3);
    my $m = $ws->next_json(5) || {};
    is($m->{id}, $c, 'then live, at once');
}

# ----------------------------------------------------------- without the wait
{
    my $user = uniq('wssn');
    my $ws = open_narrowed('/ws-nowait', $user);
    my $a = pub($user, 'j1', 1);
    my $b = pub($user, 'j0', 2);
    my $m = $ws->next_json(5) || {};
    is($m->{id}, $b, 'no wait: the j0 event goes out at once');
    $ws->send_json({ type => 'subscribe', jobId => 'j1' });
    my @m = $ws->drain_json(1);
    is_deeply([map { $_->{type} eq 'subscribed' ? "subscribed $_->{jobId}" : $_->{id} } @m],
              ['subscribed j1'],
              'and the older j1 event cannot follow it: the case the wait is for');
}

$srv->stop;
done_testing();
