# SPDX-License-Identifier: Apache-2.0
# The publisher examples of docs/publishing.md, taken from the page itself
# (the blocks after a "<!-- publish-example: NAME -->" line, so that the
# page and this test cannot drift apart), run against real httpds:
#  - a 422 (an event with a bad id) is logged with its JSON reason and the
#    valid event sent right after it arrives at the user's stream;
#  - an outage (a 503 from a server whose Redis is down, and a refused
#    connection) is logged as such and makes Python and Node stop trying
#    for a while, where the shell function tells its caller (status 1).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use File::Temp qw(tempdir);
use UPM::Test;
use UPM::Server;

my $doc = "$FindBin::Bin/../docs/publishing.md";
open my $fh, '<', $doc or die "$doc: $!";
my @lines = <$fh>;
close $fh;
my %ex;
for (my $i = 0; $i < @lines; $i++) {
    next unless $lines[$i] =~ /<!--\s*publish-example:\s*(\S+)\s*-->/;
    my $name = $1;
    $i++ while $i < @lines && $lines[$i] !~ /^```/;
    my $code = '';
    for ($i++; $i < @lines && $lines[$i] !~ /^```\s*$/; $i++) { $code .= $lines[$i] }
    $ex{$name} = $code;
}
ok($ex{$_}, "docs/publishing.md has the $_ example") for qw(publish.sh progress.py progress.mjs);

my $dir = tempdir('upm-pubex-XXXXXX', TMPDIR => 1, CLEANUP => 1);
for my $n (keys %ex) {
    open my $o, '>', "$dir/$n" or die; print $o $ex{$n}; close $o;
}

my $port = UPM::Test::port();
my $url = "http://127.0.0.1:$port/publish";

# A server whose Redis is down answers publishes with 503 unavailable.
my $down = UPM::Server->new(port => UPM::Server::free_port(), conf => <<'CONF');
UploadProgressRedis redis://127.0.0.1:6440/0
UploadProgressRedisTimeout 200
<Location /publish>
    SetHandler upload-progress-publish
    Require ip 127.0.0.1
</Location>
CONF
my $down_url = 'http://127.0.0.1:' . $down->port . '/publish';
my $refused_url = 'http://127.0.0.1:' . UPM::Server::free_port() . '/publish';

# Each driver sends the events of its arguments one after the other through
# the example and prints, per event, what the example returned; the
# examples' own log lines go to its stderr.
my %cmd = (
    sh => ['sh', '-c', '. ./publish.sh; for e in "$@"; do publish_progress "$e"; echo $?; done', 'sh'],
    python => ['python3', '-c', <<'PY'],
import json, logging, sys
logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
from progress import publish_progress
for e in sys.argv[1:]:
    print(publish_progress(json.loads(e)))
PY
    node => ['node', '--input-type=module', '-e', <<'JS'],
import { publishProgress } from './progress.mjs';
for (const e of process.argv.slice(1)) console.log(await publishProgress(JSON.parse(e)));
JS
);
# node -e takes no script name: its arguments start after "--".
push @{ $cmd{node} }, '--';

sub run_driver {
    my ($lang, $u, @events) = @_;
    local $ENV{PROGRESS_URL} = $u;
    my $pid = open(my $out, '-|') // die "fork: $!";
    if (!$pid) {
        chdir $dir or die;
        open STDERR, '>', "$dir/stderr" or die;
        exec @{ $cmd{$lang} }, @events or die "exec: $!";
    }
    my @res = map { chomp; $_ } <$out>;
    close $out;
    return (\@res, UPM::Test::file_text("$dir/stderr"));
}

for my $lang (qw(sh python node)) {
    my $user = uniq("pubex-$lang");
    my $job = "job-$lang";
    my $bad = qq({"event":"UploadJobCompleted","userId":"$user","jobId":"bad id!"});
    my $good = qq({"event":"UploadJobCompleted","userId":"$user","jobId":"$job"});
    my $sub = sse('/sse', token => token(sub => $user));
    is($sub->status, 200, "$lang: the user's stream is open") or next;

    my ($res, $err) = run_driver($lang, $url, $bad, $good);
    my ($ok_bad, $ok_good) = $lang eq 'sh' ? ('0', '0') : $lang eq 'python' ? ('False', 'True')
                                                                          : ('false', 'true');
    is_deeply($res, [$ok_bad, $ok_good], "$lang: the bad event is refused, the valid one accepted")
        or diag $err;
    like($err, qr/refused.*422.*"error":"bad_field"/, "$lang: the 422 is logged with its JSON reason");
    unlike($err, qr/outage/, "$lang: a 422 is not taken for an outage");
    my @got = $sub->events_until(1, 10);
    is(scalar(@got), 1, "$lang: the valid event after the 422 arrived");
    is($got[0] && $got[0]{json}{jobId}, $job, "$lang: it is the valid event");

    # Outage: a 503 from a server whose Redis is down.
    ($res, $err) = run_driver($lang, $down_url, $good, $good);
    if ($lang eq 'sh') {
        is_deeply($res, ['1', '1'], 'sh: a 503 tells the caller: outage (status 1)');
        like($err, qr/outage, status 503\).*"error":"unavailable"/, 'sh: the 503 is logged as an outage');
    } else {
        my $f = $lang eq 'python' ? 'False' : 'false';
        is_deeply($res, [$f, $f], "$lang: nothing published during the outage");
        my @n = $err =~ /outage/g;
        is(scalar(@n), 1, "$lang: a 503 pauses publishing (one attempt for two events)") or diag $err;
        like($err, qr/503.*unavailable/, "$lang: the 503 is logged as an outage with its reason");
    }
    # Outage: nobody listens.
    ($res, $err) = run_driver($lang, $refused_url, $good, $good);
    if ($lang eq 'sh') {
        is_deeply($res, ['1', '1'], 'sh: a refused connection is an outage (status 1)');
    } else {
        my @n = $err =~ /outage/g;
        is(scalar(@n), 1, "$lang: a refused connection pauses publishing") or diag $err;
    }
    like($err, qr/outage/, "$lang: the refused connection is logged as an outage");
    unlike($err, qr/refused \(|event refused/, "$lang: and not as a refused event");
    is(scalar($sub->drain(1)), 0, "$lang: nothing else reached the user");
    $sub->close;
}

done_testing();
