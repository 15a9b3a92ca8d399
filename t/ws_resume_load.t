# SPDX-License-Identifier: Apache-2.0
# WebSocket resume under load: 300 WebSocket clients of 60 users while 200
# events a second flow, and two graceful restarts that close every one of
# them with 1001.  Each reconnects and resumes from the last id it saw, in
# one of the documented ways: ?lastEventId= in the URL, or a
# {"type":"resume"} as its first message; each either on the whole user's
# stream or narrowed by two subscriptions (sent before the resume) that
# between them match every event.  Every client must end with every event
# of its user exactly once, in id order, without a reset or an error.
#
# The first-message forms run where UploadProgressWSResumeWait covers how
# late this loaded box's clients send their first message (tens of ms
# under the restart's reconnect storm).  One more group resumes by message
# under the default wait (5 ms): a resume that comes later than the hold
# may cost a reset (reason late), never a duplicate, a reordering or a
# silent loss.  Both UploadProgressAsync modes.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::Server;
use UPM::Load;
use File::Temp qw(tempdir);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

$SIG{PIPE} = 'IGNORE';

my $ok_tools = eval { UPM::Load->tools; 1 };
ok($ok_tools, 'bench/loadclient and bench/publisher built') or BAIL_OUT($@);

my $mode = UPM::Server::async_mode();
# On workers (Async Off) every WebSocket holds a thread; a graceful
# restart runs two generations at once.
my $threads = $mode eq 'Off' ? 200 : 40;
my $auth = UPM::Server::jwt_auth();
my $srv = UPM::Server->private(<<"CONF");
ServerLimit 4
ThreadLimit $threads
ThreadsPerChild $threads
MaxRequestWorkers @{[ 4 * $threads ]}
MinSpareThreads 1
MaxSpareThreads @{[ 4 * $threads ]}
<Location /ws>
    SetHandler upload-progress-websocket
    UploadProgressHeartbeat 5
    $auth
</Location>
<Location /ws-wait>
    SetHandler upload-progress-websocket
    UploadProgressHeartbeat 5
    UploadProgressWSResumeWait 400
    $auth
</Location>
CONF
my $port = $srv->port;
note("private server on $port, UploadProgressAsync $mode");
my $pidfile = $srv->root . '/logs/httpd.pid';
my $t_pid = time;
sleep 0.1 while !-s $pidfile && time - $t_pid < 10;
my $ppid = do { open my $f, '<', $pidfile or die "$pidfile: $!"; local $/; <$f> + 0 };

my $users = 60;
my $prefix = uniq('wsr') . '-';
my $dir = tempdir(CLEANUP => 1);
my $sent = "$dir/sent";
my $subs = 'jobId=j0,jobId=j1';
# [ name, location, loadclient options, exact (no reset allowed) ]
my @forms = (
    [ 'URL resume', '/ws', [], 1 ],
    [ 'URL resume, two subscriptions', '/ws', ['--ws-subscribe', $subs], 1 ],
    [ 'first-message resume', '/ws-wait', ['--ws-resume'], 1 ],
    [ 'first-message resume, two subscriptions', '/ws-wait',
      ['--ws-resume', '--ws-subscribe', $subs], 1 ],
    [ 'first-message resume, default wait, two subscriptions', '/ws',
      ['--ws-resume', '--ws-subscribe', $subs], 0 ],
);
my $src = 2;
my @lc = map {
    my ($label, $path, $args) = @$_;
    UPM::Load->clients(port => $port, path => $path, proto => 'ws', conns => $users,
                       users => $users, prefix => $prefix, sent => $sent, label => $label,
                       src_base => $src++, max_time => 90, args => $args)
} @forms;
for my $i (0 .. $#lc) {
    ok($lc[$i]->wait_streaming(30), "$forms[$i][0]: $users WebSockets open");
}

my $pub = UPM::Load->publisher(port => $port, users => $users, prefix => $prefix,
                               rate => 200, duration => 10, sent => $sent,
                               args => ['--jobs', 2, '--pick', 'random', '--conns', 4]);

sub children { grep { $_ != $ppid } UPM::Test::children_of($ppid) }

my $t0 = time;
for my $at (2.5, 6) {
    sleep($t0 + $at - time) if $t0 + $at > time;
    my @old = children();
    ok(kill('USR1', $ppid), sprintf('graceful restart at %.1f s while events flow', time - $t0));
    my $deadline = time + 20;
    sleep 0.1 while time < $deadline && grep { kill 0, $_ } @old;
    ok(!(grep { kill 0, $_ } @old), 'every old child has exited');
}
my $ps = $pub->wait_publisher(30);
ok($ps, 'the publisher finished') or diag($pub->publisher_log);
$ps ||= {};
cmp_ok($ps->{published} // 0, '>=', 1500, "$ps->{published} events published");
is(($ps->{errors} // -1) + ($ps->{unanswered} // -1), 0, 'every publish was accepted');
sleep 2;                         # the last events reach every client

for my $i (0 .. $#lc) {
    my ($s, $log) = $lc[$i]->finish;
    my $name = $forms[$i][0];
    ok($s, "$name: summary") or do { diag($log); next };
    cmp_ok($s->{reconnects}, '>=', 2 * $users,
           "$name: every client closed by each restart reconnected ($s->{reconnects})");
    is($s->{failed}, 0, "$name: no connection failed") or diag($s->{first_error});
    cmp_ok($s->{expected}, '>', 0, "$name: $s->{expected} events were for these clients");
    is($s->{dup}, 0, "$name: no duplicate");
    is($s->{reordered}, 0, "$name: none out of id order");
    is($s->{ws_errors}, 0, "$name: no error answer");
    is($s->{foreign}, 0, "$name: nothing of another user");
    if ($forms[$i][3]) {
        is($s->{lost}, 0, "$name: none lost");
        is($s->{resets}, 0, "$name: no reset");
        is($s->{delivered}, $s->{expected}, "$name: delivered = expected");
    }
    else {
        note("$name: $s->{resets} resets, $s->{lost} messages covered by them");
        ok($s->{lost} == 0 || $s->{resets} > 0, "$name: nothing lost without a reset");
    }
}
$srv->stop;

done_testing();
