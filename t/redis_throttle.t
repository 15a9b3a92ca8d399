# SPDX-License-Identifier: Apache-2.0
# Throttling under Redis ingest: 10,000 upload_progress events for one
# photo within a second reach a client as at most 101 messages, with
# non-decreasing progress ending at 100, followed by upload_completed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use UPM::Redis;
use UPM::Node;

my $redis = UPM::Redis->new(port => 6393)->start;
my $node = UPM::Node->new(redis => $redis->url)->start;
my $j = $UPM::Node::JSON;
my $user = "thr-$$";

my $c = $node->sse(token => $node->token($user));
is($c->status, 200, 'stream open');

my @cmds = map {
    [ 'PUBLISH', "upload-session:s-$$",
      $j->encode({ event => 'PhotoUploadProgressed', userId => $user, photoId => 'ph-big',
                   sessionId => "s-$$", bytesUploaded => $_, totalBytes => 10000 }) ]
} 1 .. 10000;
push @cmds, [ 'PUBLISH', "upload-session:s-$$",
              $j->encode({ event => 'PhotoUploadCompleted', userId => $user, photoId => 'ph-big',
                           sessionId => "s-$$" }) ];
my $t0 = time;
my @r = $redis->pipeline(@cmds);
my $took = time - $t0;
ok($took < 1.0, sprintf '10,001 events published within a second (%.2f s)', $took);
is(scalar(grep { defined $_ && $_ == 2 } @r), 10001, 'every one heard by both children');

UPM::Node::pump([$c], sub { $c->of_type('upload_completed') }, 30);
UPM::Node::pump([$c], sub { 0 }, 0.5);
my @m = $c->messages;
my @prog = grep { $_->{event} eq 'upload_progress' } @m;
my @p = map { $_->{json}{progress} } @prog;
ok(@prog <= 101, sprintf 'at most 101 progress messages (got %d)', scalar @prog);
ok(@prog >= 2, 'and some');
is(scalar(grep { $p[$_] < $p[$_ - 1] } 1 .. $#p), 0, 'progress never decreases');
is($p[-1], 100, 'the last progress is 100');
is($m[-1]{event}, 'upload_completed', 'upload_completed comes last');
is(scalar(@m), scalar(@prog) + 1, 'nothing else arrived');
is(scalar($c->of_type('reset')), 0, 'no reset');
my $steps_ok = !grep { $p[$_] != 100 && $p[$_] - $p[$_ - 1] < 1 - 1e-9 } 1 .. $#p;
ok($steps_ok, 'steps of at least 1 %');

$c->close;
$node->stop;
done_testing();
