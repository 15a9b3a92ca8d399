# SPDX-License-Identifier: Apache-2.0
# A Node `ws` project-channel server, unchanged for its clients, on
# conf/seed-004-project-websocket.conf: /ws answers connected{clientId};
# subscribe{projectId} -> subscribed{projectId}; job handlers' progress,
# job_complete and job_failed (PUBLISHed to project:{projectId}, exactly
# the seed's JSON) reach every subscriber of the project; unsubscribe
# stops them; a project the token does not grant is refused (forbidden),
# an invalid projectId too, and a subscribe flood is rate-limited.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use UPM::Node;
use UPM::Redis;
use UPM::WS;
use UPM::Server;

my $mode = UPM::Server::async_mode();
my $redis = UPM::Redis->new(port => 6403)->start;
my $node = UPM::Node->new(redis => $redis->url, seed => 'conf/seed-004-project-websocket.conf',
                          conf => "UploadProgressAsync $mode")->start;
my $J = $UPM::Node::JSON;
my $T0 = time;
END { note(sprintf 'seed_004: %.1f s', time - $T0) if $T0 }

sub connect_ws {
    my ($tok) = @_;
    my $ws = UPM::WS->connect("/ws?token=$tok", port => $node->port);
    return ($ws, undef) unless ($ws->status // 0) == 101;
    return ($ws, $ws->next_json(5));
}

my ($a1, $hello) = connect_ws($node->token('ann', projects => ['proj-1', 'proj-3']));
is($a1->status, 101, 'GET /ws: 101');
is($hello->{type}, 'connected', '{"type":"connected"} first');
like($hello->{clientId} // '', qr/^[0-9a-f]{16}$/, '... with a clientId');
my ($a2) = connect_ws($node->token('ann', projects => ['proj-1']));
my ($b1) = connect_ws($node->token('ben', projects => 'proj-1'));
my ($c1) = connect_ws($node->token('cal', projects => ['proj-2']));

for my $ws ($a1, $a2, $b1) {
    $ws->send_json({ type => 'subscribe', projectId => 'proj-1' });
    is_deeply($ws->next_json(5), { type => 'subscribed', projectId => 'proj-1' },
              'subscribe proj-1 -> {"type":"subscribed","projectId":"proj-1"}');
}
# Not granted: refused, and nothing of that project arrives.
$c1->send_json({ type => 'subscribe', projectId => 'proj-1' });
my $e = $c1->next_json(5);
is($e->{type}, 'error', 'subscribe to a project the token does not grant: error');
is($e->{code}, 'forbidden', '... forbidden');
$c1->send_json({ type => 'subscribe', projectId => '../etc/passwd' });
$e = $c1->next_json(5);
is($e->{code}, 'invalid_id', 'an invalid projectId: invalid_id');
$c1->send_json({ type => 'subscribe', projectId => 'proj-2' });
is_deeply($c1->next_json(5), { type => 'subscribed', projectId => 'proj-2' },
          'its own project: subscribed');

sub cli {
    my (@a) = @_;
    my $out = `redis-cli -p @{[ $redis->port ]} @{[ map { "'$_'" } @a ]} 2>&1`;
    chomp $out;
    return $out;
}
# broadcastToProject(projectId, event): the seed's three event shapes.
my @evs = (
    { type => 'progress', jobId => 'job_V1StGXR8', jobType => 'audio', sentenceId => 'sen-4',
      progress => 40, message => 'Generating audio' },
    { type => 'job_complete', jobId => 'job_V1StGXR8', jobType => 'audio', sentenceId => 'sen-4',
      result => { file => '/audio/sen-4.mp3', duration => 3.2 } },
    { type => 'job_failed', jobId => 'job_Uakgb_J5', jobType => 'image', error => 'quota exceeded' },
);
cli('PUBLISH', 'project:proj-1', $J->encode($_)) for @evs;
cli('PUBLISH', 'project:proj-2', $J->encode({ type => 'progress', jobId => 'job-other',
                                              jobType => 'video', progress => 10 }));
for my $ws ($a1, $a2, $b1) {
    my @m = map { $ws->next_json(5) } 1 .. 3;
    is_deeply([map { $_ && $_->{type} } @m], [qw(progress job_complete job_failed)],
              'every subscriber of proj-1: progress, job_complete, job_failed');
    for my $i (0 .. 2) {
        my %g = %{ $m[$i] || {} };
        like(delete $g{id} // '', qr/^\d+-\d+$/, '... with an id');
        like(delete $g{timestamp} // '', qr/^\d{4}-\d\d-\d\dT/, '... and the server\'s timestamp');
        is_deeply(\%g, $evs[$i], "... $evs[$i]{type} exactly as broadcast");
    }
}
my $other = $c1->next_json(5);
is($other && $other->{jobId}, 'job-other', 'proj-2\'s subscriber: only proj-2\'s event');
is(scalar($c1->drain_json(0.3)), 0, '... and nothing of proj-1');

# unsubscribe: no more of that project.
$a2->send_json({ type => 'unsubscribe', projectId => 'proj-1' });
is_deeply($a2->next_json(5), { type => 'unsubscribed', projectId => 'proj-1' }, 'unsubscribed');
cli('PUBLISH', 'project:proj-1', $J->encode({ type => 'progress', jobId => 'job-late',
                                              jobType => 'script', progress => 90 }));
is($a1->next_json(5)->{jobId}, 'job-late', 'a subscriber still gets the next event');
is(scalar($a2->drain_json(0.3)), 0, 'the one that unsubscribed does not');

# A flood of subscribes: at most 20 a second go through.
{
    my ($f) = connect_ws($node->token('flo', projects => [map { "fp-$_" } 1 .. 40]));
    $f->send_json({ type => 'subscribe', projectId => "fp-$_" }) for 1 .. 40;
    my @r = map { $f->next_json(5) } 1 .. 40;
    my $ok = grep { $_ && $_->{type} eq 'subscribed' } @r;
    my $limited = grep { $_ && ($_->{code} // '') eq 'rate_limited' } @r;
    is($ok, 20, 'a flood of 40 subscribes: 20 accepted');
    is($limited, 20, '... 20 rate_limited');
    ok(!$f->eof, '... and the connection stays open');
}

# Disconnecting removes every subscription (nothing left to deliver to).
$_->close for $a1, $a2, $b1, $c1;
my $t0 = time;
my $st;
do { sleep 0.1; $st = $node->status } while time - $t0 < 5 && ($st->{connections}{total} // 0) > 0;
is($st->{connections}{total} // 0, 0, 'closed connections are gone')
    or diag($J->encode($st->{connections} // {}));
$node->stop;
$redis->stop;
done_testing;
