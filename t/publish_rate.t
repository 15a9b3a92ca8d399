# SPDX-License-Identifier: Apache-2.0
# UploadProgressPublishRate: a flooded publish location answers 429 with a
# Retry-After and a JSON reason instead of queueing without bound; what it
# accepted is delivered, other publish locations keep working, and after
# Retry-After seconds it accepts again.  /publish-rate allows 5 events per
# second per child (t/conf/extra.conf.in; the test server has at most 4
# children).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use Time::HiRes qw(time sleep);

my $u = uniq('rate');
my $sub = sse('/sse', token => token(sub => $u));
is($sub->status, 200, 'subscriber connected') or BAIL_OUT('no SSE stream');

my $n = 0;
sub ev { { event => 'PhotoUploadStarted', userId => $u, photoId => 'r' . ++$n } }

my (%st, @retry, @bodies, $accepted);
$accepted = 0;
my $t0 = time;
for (1 .. 80) {
    my ($st, $h, $b) = publish('/publish-rate', ev());
    $st{$st}++;
    if ($st == 202) { $accepted++ }
    elsif ($st == 429) { push @retry, $h->header('Retry-After'); push @bodies, $b }
}
my $elapsed = time - $t0;
ok($st{429}, "a flood of 80 requests gets 429s ($st{429} of them)");
is(($st{202} // 0) + ($st{429} // 0), 80, 'every answer is a 202 or a 429')
    or diag explain \%st;
my $cap = 4 * (5 + 5 * $elapsed) + 1;
cmp_ok($accepted, '<=', $cap, "accepted ($accepted) within 4 children x 5/s over "
       . sprintf('%.1f', $elapsed) . ' s');
ok(!grep({ !defined $_ || $_ !~ /^[1-9][0-9]*$/ } @retry),
   'every 429 has a Retry-After of whole seconds') or diag explain \@retry;
ok(!grep({ ref $_ ne 'HASH' || ($_->{error} // '') ne 'rate_limited' } @bodies),
   'every 429 says rate_limited in JSON') or diag explain $bodies[0];

# The unlimited location is not affected.
my ($st) = publish('/publish', ev());
is($st, 202, 'the unlimited /publish location still accepts');
$accepted++;

# What was accepted is delivered, nothing more.
my @got = $sub->events_until($accepted, 15);
my @more = $sub->drain(1);
is(scalar @got, $accepted, "the subscriber got the $accepted accepted events");
is(scalar @more, 0, 'and nothing else (a refused request delivers nothing)');

# After Retry-After seconds the location accepts again.
my $wait = (sort { $b <=> $a } @retry)[0] // 1;
sleep($wait + 0.1);
($st) = publish('/publish-rate', ev());
is($st, 202, "accepted again after Retry-After ($wait s)");

# A batch larger than a second's worth is refused on an emptied bucket
# with a 429, never queued.
my %batch;
for (1 .. 6) {
    my ($s) = publish('/publish-rate', [ map { ev() } 1 .. 20 ]);
    $batch{$s}++;
}
ok($batch{429}, 'repeated batches of 20 events are refused with 429 too');

done_testing;
