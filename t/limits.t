# SPDX-License-Identifier: Apache-2.0
# UploadProgressMaxConnectionsPerUser: a user's streams are counted across
# every child; one more than the limit gets 429 with a JSON reason and
# Retry-After, other users are not affected, and a closed stream frees its
# place.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use JSON::PP ();
use Time::HiRes qw(sleep time);

my $user = uniq('lim');
my $tok = token(sub => $user);
my @open = map { sse('/sse-limit', token => $tok) } 1 .. 3;
is(scalar(grep { ($_->status // 0) == 200 } @open), 3, 'three streams open');

my ($st, $h, $body) = raw_http("GET /sse-limit HTTP/1.1\r\nHost: localhost\r\n"
    . "Authorization: Bearer $tok\r\nConnection: close\r\n\r\n", 5);
is($st, 429, 'the fourth stream of the same user: 429');
is($h->{'retry-after'}, '5', 'with Retry-After');
my $j = eval { JSON::PP::decode_json($body) } || {};
is($j->{error}, 'too_many_connections', 'and a JSON reason');

my $other = sse('/sse-limit', token => token(sub => uniq('lim-other')));
is($other->status, 200, 'another user is not limited by it');

# Closing one stream frees a place (the server notices the close at the
# latest at the next heartbeat, 1 s here).
$open[0]->close;
my ($ok, $t0) = (0, time);
while (time - $t0 < 6) {
    my $c = sse('/sse-limit', token => $tok, timeout => 3);
    if (($c->status // 0) == 200) {
        $ok = 1;
        $open[0] = $c;
        last;
    }
    $c->close;
    sleep 0.3;
}
ok($ok, 'after a close the user may open a stream again');

# Still three at most.
($st) = raw_http("GET /sse-limit HTTP/1.1\r\nHost: localhost\r\n"
    . "Authorization: Bearer $tok\r\nConnection: close\r\n\r\n", 5);
is($st, 429, 'and the limit still holds');
$_->close for @open, $other;
done_testing();
