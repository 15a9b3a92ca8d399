# SPDX-License-Identifier: Apache-2.0
# The old module's report, side by side with the old module itself:
# Debian's libapache2-mod-upload-progress in one httpd, this module in
# another, the same configuration (TrackUploads On on a CGI upload
# location, ReportUploads On), the same uploads sent to both at the same
# moments, and the reports compared state by state and key by key: every
# key of the old report is there with the same meaning (times within a
# second, sizes exact); our extra keys are only the ones docs/tracking.md
# lists; where we differ on purpose the test says so (the DIFFERENCE
# lines) and checks that we do.
#
# The old module writes its figures to shared memory at most every 500 ms
# of an upload (and at its end): each upload below sends a burst, then
# after 550 ms one small piece (its read makes the old module write what
# it has), and both reports are read 100 ms later, so that both have
# counted the same bytes.  Bursts start just after a full second, so that
# both servers see the upload start, and each read, in the same second.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::Server;
use UPM::Upload;
use LWP::UserAgent;
use Time::HiRes qw(time sleep);
use JSON ();

my $OLD_SO = '/usr/lib/apache2/modules/mod_upload_progress.so';
my $OLD_PKG = 'libapache2-mod-upload-progress';

# Our own package installs the same file name (debian/: it replaces the
# old package), so the file alone does not say which module it is.
my $old_ok = system("dpkg-query -W -f='\${Status}' $OLD_PKG 2>/dev/null | grep -q 'ok installed'") == 0
    && -e $OLD_SO;
plan skip_all => "$OLD_PKG is not installed (scripts/deps.sh installs it)" unless $old_ok;

my $JSON = JSON->new->utf8->canonical;
my $t = t_dir();
my $apxs = $ENV{APXS} || '/usr/bin/apxs';
chomp(my $moddir = `$apxs -q LIBEXECDIR`);

# The one configuration, for both, but for one word: the old module's
# ReportUploads is a flag and answers JSON-P everywhere; ours answers it
# only where the location asks (ReportUploads On JSONP), since a JSON-P
# answer is a script any site can include (DIFFERENCE, docs/tracking.md).
sub conf {
    my ($jsonp) = @_;
    $jsonp = $jsonp ? ' JSONP' : '';
    return <<"CONF";
LoadModule cgid_module $moddir/mod_cgid.so
LoadModule alias_module $moddir/mod_alias.so
ScriptAlias /upload $t/cgi-bin/upload.pl
ScriptAlias /small $t/cgi-bin/upload.pl
<Location /upload>
    TrackUploads On
</Location>
<Location /small>
    TrackUploads On
    LimitRequestBody 10000
</Location>
<Location /progress>
    ReportUploads On$jsonp
</Location>
CONF
}

# The old module under the plain httpd even in make check-asan (which
# starts ours with libasan preloaded): its reports are not ours to judge.
chomp(my $sbin = `$apxs -q SBINDIR`);
chomp(my $prog = `$apxs -q PROGNAME`);
my $old = UPM::Server->new(port => UPM::Server::free_port(), so => $OLD_SO,
                           httpd => "$sbin/$prog", conf => conf());
my $mode = UPM::Server::async_mode();
my $new = UPM::Server->new(port => UPM::Server::free_port(),
                           conf => "UploadProgressAsync $mode\n" . conf(1));
my %srv = (old => $old, new => $new);
like($old->error_log, qr/Upload Progress: monitoring max \d+ simultaneous uploads/,
     'the old module is the one loaded in the first httpd');

my $ua = LWP::UserAgent->new(timeout => 10, keep_alive => 0);

# GET the report from one server: (status, content type, body text).
sub report_raw {
    my ($which, $query, %h) = @_;
    my $res = $ua->get("http://127.0.0.1:" . $srv{$which}->port . "/progress$query", %h);
    return ($res->code, scalar($res->header('Content-Type')) // '', $res->decoded_content // '');
}

# Both reports of id, read at the same moment: (old, new) decoded.
sub reports {
    my ($id, $form) = @_;
    my ($q, @h) = ($form // 'header') eq 'query'
        ? ("?X-Progress-ID=$id") : ('', 'X-Progress-ID' => $id);
    my %r;
    for my $w (qw(old new)) {
        my ($st, $ct, $b) = report_raw($w, $q, @h);
        my $j = eval { JSON->new->utf8->decode($b) };
        $r{$w} = { status => $st, type => $ct, json => $j, text => $b };
    }
    return @r{qw(old new)};
}

# Keys we add, state by state: names the old module never sent in that
# state, so its pages do not read them (docs/tracking.md, "Migrating").
my %EXTRA = (
    starting  => [],
    uploading => ['seconds_left'],
    done      => ['received'],
    error     => [qw(reason received size)],
);

# Compares one pair of reports.  %o: received_exact (both counted the
# same bytes), now (when they were read).
sub same_report {
    my ($what, $ro, $rn, %o) = @_;
    my ($o, $n) = ($ro->{json}, $rn->{json});
    is($ro->{status}, 200, "$what: old answers 200");
    is($rn->{status}, 200, "$what: we answer 200");
    unless (ref $o eq 'HASH' && ref $n eq 'HASH') {
        fail("$what: both reports are JSON objects");
        diag("old: $ro->{text}\nnew: $rn->{text}");
        return;
    }
    my $st = $o->{state} // '';
    is($n->{state}, $st, "$what: same state ($st)") or diag("old: $ro->{text}\nnew: $rn->{text}");
    my @missing = grep { !exists $n->{$_} } sort keys %$o;
    is("@missing", '', "$what: every key of the old report is in ours");
    my %extra = map { $_ => 1 } @{ $EXTRA{$st} || [] };
    my @more = grep { !exists $o->{$_} && !$extra{$_} } sort keys %$n;
    is("@more", '', "$what: no key beyond the listed extras ("
                    . join(' ', sort keys %extra) . ')');
    is($n->{uuid}, $o->{uuid}, "$what: uuid");
    for my $k (qw(size status)) {
        is($n->{$k}, $o->{$k}, "$what: $k exact") if exists $o->{$k};
    }
    if (exists $o->{received}) {
        if ($o{received_exact}) {
            is($n->{received}, $o->{received}, "$what: received exact");
        }
        else {
            ok($n->{received} >= $o->{received}, "$what: received at least the old module's"
               . " (which writes its count every 500 ms)");
        }
    }
    for my $k (qw(started_at completed_at eta)) {
        next unless exists $o->{$k};
        like($n->{$k} // '', qr/\A\d{10}\z/, "$what: $k is a Unix time");
        ok(abs(($n->{$k} // 0) - $o->{$k}) <= 1, "$what: $k within a second of the old"
           . " module's ($n->{$k} vs $o->{$k})");
    }
    if (exists $o->{eta} && defined $o{now}) {
        # eta is when the upload will end, never in the past.
        ok($n->{eta} > int($o{now}) - 1, "$what: eta is not in the past");
    }
    if (exists $o->{speed}) {
        # Bytes per second over whole seconds, as the old module counts:
        # the same bytes over the same seconds give the same figure.
        my $tol = $o{received_exact} ? 0.05 : 0.5;
        ok(abs($n->{speed} - $o->{speed}) <= $tol * $o->{speed} + 1,
           "$what: speed within " . ($tol * 100) . " % ($n->{speed} vs $o->{speed})");
    }
    if ($st eq 'uploading') {
        ok(!defined $n->{seconds_left} || $n->{seconds_left} =~ /\A\d+\z/,
           "$what: seconds_left is a count of seconds (or null)");
    }
    if ($st eq 'done') {
        is($n->{received}, $n->{size}, "$what: our received is the size");
    }
}

# Sleeps until $frac past the next whole second (or this one, if not past).
sub at_fraction {
    my ($frac) = @_;
    my $now = time;
    my $target = int($now) + $frac;
    $target += 1 if $target <= $now;
    sleep($target - $now);
}

# Starts the same upload on both servers.
sub both_start {
    my ($path, %o) = @_;
    return map { UPM::Upload->start($path, %o, port => $srv{$_}->port) } qw(old new);
}
sub both_send { my ($n, @u) = @_; $_->send($n) for @u }

# ---------------------------------------------- a slow upload (header id)
# 200,000 bytes over three seconds; both reports read at 0.7 s (within
# the first second the old speed is 0 and its eta now + 1), 1.7 s, 2.7 s,
# then after the end.
sub slow_upload {
    my ($label, $id, %o) = @_;
    my $size = 200_000;
    at_fraction(0.05);
    my @u = both_start('/upload', size => $size, id => $id, chunked => $o{chunked});
    my $seen_uploading = 0;
    for my $k (1 .. 3) {
        both_send(60_000, @u);
        at_fraction(0.60);
        both_send(100, @u);
        sleep 0.1;
        my $now = time;
        my ($ro, $rn) = reports($id, $k % 2 ? 'header' : 'query');
        same_report("$label, after ${k}x60 KB", $ro, $rn, received_exact => 1, now => $now);
        $seen_uploading++ if ($ro->{json}{state} // '') eq 'uploading';
        if ($o{chunked}) {
            is($rn->{json}{size}, $rn->{json}{received},
               "$label: size of a chunked body is what arrived so far")
                if $rn->{json}{state} eq 'uploading';
            ok(!defined $rn->{json}{seconds_left}, "$label: no seconds_left for an unknown size");
        }
        at_fraction(0.05);
    }
    is($seen_uploading, 3, "$label: both said uploading three times");
    $_->send_all(piece => 20_000) for @u;
    my @res = map { $_->response(15) } @u;
    is($res[0]{status}, 200, "$label: old server's upload answered 200");
    is($res[1]{status}, 200, "$label: our upload answered 200");
    my ($ro, $rn) = reports($id);
    same_report("$label, done", $ro, $rn, received_exact => 1);
    is($rn->{json}{size}, $size, "$label: done size is the body's");
    ok(($rn->{json}{completed_at} // 0) - ($rn->{json}{started_at} // 0) >= 2,
       "$label: completed_at is when it ended (at least 2 s after the start)");
}
slow_upload('slow', uniq('slow-up'));
slow_upload('chunked', uniq('chunked-up'), chunked => 1);

# ---------------------------------------------- a fast upload (query id)
{
    my $id = uniq('fast-up');
    my @u = both_start("/upload?X-Progress-ID=$id", size => 50_000);
    $_->send_all(piece => 50_000) for @u;
    my @res = map { $_->response(10) } @u;
    is($res[1]{json}{read}, 50_000, 'fast: the CGI read the whole body');
    for my $form (qw(header query)) {
        my ($ro, $rn) = reports($id, $form);
        same_report("fast, done, $form form", $ro, $rn, received_exact => 1);
    }
}

# ---------------------------------------------- over LimitRequestBody
{
    my $id = uniq('big-up');
    my @u = both_start('/small', size => 50_000, id => $id);
    $_->send_all(piece => 10_000) for @u;
    my @res = map { $_->response(10) } @u;
    is($res[0]{status}, 413, 'over LimitRequestBody: 413 from the old server');
    is($res[1]{status}, 413, 'over LimitRequestBody: 413 from ours');
    my ($ro, $rn) = reports($id);
    same_report('over LimitRequestBody', $ro, $rn);
    is($rn->{json}{state}, 'error', 'over LimitRequestBody: error');
    is($rn->{json}{reason}, 'too_large', 'over LimitRequestBody: our reason too_large');
}

# ---------------------------------------------- aborted by the client
{
    my $id = uniq('abort-up');
    at_fraction(0.05);
    my @u = both_start('/upload', size => 100_000, id => $id);
    both_send(30_000, @u);
    at_fraction(0.60);
    both_send(100, @u);
    sleep 0.1;
    my ($ro, $rn) = reports($id);
    same_report('aborted, before', $ro, $rn, received_exact => 1, now => time);
    $_->abort for @u;
    # The CGI notices the closed connection when its read fails.
    my $deadline = time + 10;
    do { sleep 0.2; ($ro, $rn) = reports($id) }
        until (($ro->{json}{state} // '') ne 'uploading' && ($rn->{json}{state} // '') ne 'uploading')
              || time > $deadline;
    same_report('aborted, after', $ro, $rn);
    is($rn->{json}{state}, 'error', 'aborted: error');
    is($rn->{json}{reason}, 'aborted', 'aborted: our reason');
}

# ---------------------------------------------- unknown ids
{
    my $id = uniq('never-uploaded');
    for my $form (qw(header query)) {
        my ($ro, $rn) = reports($id, $form);
        same_report("unknown id, $form form", $ro, $rn);
        is_deeply($rn->{json}, { state => 'starting', uuid => $id },
                  "unknown id, $form form: just state and uuid");
    }
}

# ---------------------------------------------- JSON-P
{
    my $id = uniq('jsonp-up');
    my @u = both_start('/upload', size => 20_000, id => $id);
    $_->send_all(piece => 20_000) for @u;
    $_->response(10) for @u;
    my %inner;
    for my $w (qw(old new)) {
        my ($st, $ct, $b) = report_raw($w, "?X-Progress-ID=$id&callback=jQuery1_2.cb\$");
        is($st, 200, "JSON-P: $w answers 200");
        # A page's <script> runs either: "cb(...);" or "/**/cb(...);".
        like($b, qr{\A(?:/\*\*/)?jQuery1_2\.cb\$\((\{.*\})\);\r\n\z}s, "JSON-P: $w calls the callback");
        my ($j) = $b =~ /\((\{.*\})\);/s;
        $inner{$w} = { status => $st, json => eval { JSON->new->decode($j // '') }, text => $b };
    }
    same_report('JSON-P, done', $inner{old}, $inner{new}, received_exact => 1);
    my ($st, $ct) = report_raw('new', "?X-Progress-ID=$id&callback=cb");
    like($ct, qr{\Aapplication/javascript}, 'DIFFERENCE: our JSON-P is application/javascript');
    my (undef, $oct) = report_raw('old', "?X-Progress-ID=$id&callback=cb");
    like($oct, qr{\Aapplication/json}, '(the old module sends JSON-P as application/json)');
    for my $cb ('alert(1)', 'a' x 65, '') {
        my ($so) = report_raw('old', "?X-Progress-ID=$id&callback=$cb");
        my ($sn) = report_raw('new', "?X-Progress-ID=$id&callback=$cb");
        if ($so == 400) {
            is($sn, 400, "JSON-P callback '" . substr($cb, 0, 12) . "': 400 from both");
        }
        else {
            # An empty callback: the old module answers plain JSON.
            is($sn, $so, "JSON-P callback '$cb': same status as the old module ($so)");
        }
    }
}

# ---------------------------------------------- deliberate differences
{
    # Ids shorter than 8 characters: the old module refuses them (a 400 on
    # the report, the upload untracked); we take 1 to 128 characters.
    my $id = 'abc' . int(rand(9000) + 1000);     # 7 characters
    my @u = both_start('/upload', size => 20_000, id => $id);
    $_->send_all(piece => 20_000) for @u;
    $_->response(10) for @u;
    my ($ro, $rn) = reports($id);
    is($ro->{status}, 400, 'a 7-character id: the old module answers 400');
    is($rn->{status}, 200, 'DIFFERENCE: a 7-character id: we answer 200');
    is($rn->{json}{state}, 'done', 'DIFFERENCE: a 7-character id: the upload was tracked');

    # Case: the old module finds an upload under any case of its id; ids
    # compare exactly here.
    my $cid = uniq('CaseId');
    @u = both_start('/upload', size => 20_000, id => $cid);
    $_->send_all(piece => 20_000) for @u;
    $_->response(10) for @u;
    ($ro, $rn) = reports(lc $cid);
    is($ro->{json}{state}, 'done', 'the id in lower case: the old module finds the upload');
    is($rn->{json}{state}, 'starting', 'DIFFERENCE: the id in lower case: another id here');

    # No id at all: 404 there, 400 with a JSON reason here.
    my ($so) = report_raw('old', '');
    my ($sn, undef, $b) = report_raw('new', '');
    is($so, 404, 'no id: the old module answers 404');
    is($sn, 400, 'DIFFERENCE: no id: we answer 400');
    like($b, qr/"missing_id"/, 'DIFFERENCE: no id: with the reason missing_id');

    # Characters: the old module takes ! { } / and not @; we take @ and
    # not ! { } /.
    ($so) = report_raw('old', '', 'X-Progress-ID' => 'abcd{ef}!');
    ($sn) = report_raw('new', '', 'X-Progress-ID' => 'abcd{ef}!');
    is($so, 200, 'an id with { } !: the old module takes it');
    is($sn, 400, 'DIFFERENCE: an id with { } !: we answer 400 bad_id');
    ($so) = report_raw('old', '', 'X-Progress-ID' => 'user@example');
    ($sn) = report_raw('new', '', 'X-Progress-ID' => 'user@example');
    is($so, 400, 'an id with @: the old module answers 400');
    is($sn, 200, 'DIFFERENCE: an id with @: we take it');
}

# Neither server logged a crash.
for my $w (qw(old new)) {
    unlike($srv{$w}->error_log, qr/AH00052|segmentation fault|AddressSanitizer/i,
           "$w server: no child died");
}
$_->stop for values %srv;
done_testing();
