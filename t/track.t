# SPDX-License-Identifier: Apache-2.0
# Upload tracking through the real httpd: a CGI script reads the body
# slowly while an SSE client of the uploader watches upload_started,
# upload_progress and upload_completed; aborted, chunked, over-limit,
# failed and HTTP/2 uploads; the old module's JSON report during and
# after an upload; and another user seeing none of it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use UPM::Upload;
use Time::HiRes qw(time sleep);
use JSON ();
use File::Temp qw(tempfile);

my $JSONC = JSON->new->utf8->canonical;

sub get {
    my ($path, %h) = @_;
    my ($st, $hd, $b) = publish_raw('GET', $path, undef, 'Content-Type' => undef, %h);
    return ($st, $hd, $b);
}

sub bearer { (Authorization => 'Bearer ' . $_[0]) }

sub status_json {
    my ($st, undef, $b) = get('/upm-status');
    die "status: $st" unless $st == 200 && ref $b eq 'HASH';
    return $b;
}

# The upload_* events of one upload (photoId $id), up to its end (or the
# timeout).  They are taken out of what the stream received; events of
# other uploads stay for later calls.
my (%stash, @all_a, $A, $B);
sub upload_events {
    my ($c, $id, $timeout) = @_;
    my $deadline = time + ($timeout || 10);
    my $key = "$c";
    while (1) {
        my $q = $stash{$key} ||= [];
        my ($end) = grep { ($q->[$_]{json}{photoId} // '') eq $id
                           && $q->[$_]{event} =~ /\Aupload_(completed|failed)\z/ } 0 .. $#$q;
        my $left = $deadline - time;
        my $ev = (defined $end || $left <= 0) ? undef : $c->next_event($left);
        if ($ev) {
            push @$q, $ev;
            push @all_a, $ev if $c == $A;
            next;
        }
        $end = $#$q unless defined $end;
        my (@mine, @rest);
        for my $i (0 .. $#$q) {
            if ($i <= $end && ($q->[$i]{json}{photoId} // '') eq $id) { push @mine, $q->[$i] }
            else { push @rest, $q->[$i] }
        }
        @$q = @rest;
        return @mine;
    }
}

sub types { join ' ', map { $_->{event} } @_ }

my $ua = uniq('track-a');
my $ub = uniq('track-b');
my $ta = token(sub => $ua);
my $tb = token(sub => $ub);
$A = sse('/sse', token => $ta);
$B = sse('/sse', token => $tb);
is($A->status, 200, 'uploader stream open');
is($B->status, 200, 'other user stream open');

# ------------------------------------------------ a slow upload, watched
my $size = 262144;
my $id = uniq('up');
{
    my $u = UPM::Upload->start("/track/upload.pl?jobId=job-7&sessionId=s-1",
                               size => $size, token => $ta, id => $id);
    for (1 .. 8) { $u->send(16384); sleep 0.06 }

    # The old JSON report while the body arrives.
    my $rep;
    my $deadline = time + 5;
    while (time < $deadline) {
        (undef, undef, $rep) = get("/progress?X-Progress-ID=$id", bearer($ta));
        last if ref $rep && ($rep->{received} // 0) > 0;
        sleep 0.05;
    }
    is($rep->{state}, 'uploading', 'report during the upload: uploading')
        or diag($JSONC->encode($rep));
    is($rep->{uuid}, $id, 'report uuid');
    is($rep->{size}, $size, 'report size is the Content-Length');
    ok($rep->{received} > 0 && $rep->{received} <= 8 * 16384,
       "report received is what arrived so far ($rep->{received})");
    like($rep->{started_at} // '', qr/\A\d{10}\z/, 'report started_at is Unix seconds');
    ok(abs(($rep->{started_at} // 0) - time) < 60, 'report started_at is now');
    ok(defined $rep->{speed} && $rep->{speed} >= 0, 'report speed');
    ok(($rep->{eta} // 0) > time - 1, 'report eta is a Unix time, not in the past');
    ok(exists $rep->{seconds_left}, 'report has seconds_left');

    # Another user, or nobody, cannot read it.
    my ($st, $h, $other) = get("/progress?X-Progress-ID=$id", bearer($tb));
    is($st, 200, 'report for another user: 200');
    is_deeply($other, { state => 'starting', uuid => $id },
              'report for another user: as if unknown (no figures)');
    ($st) = get("/progress?X-Progress-ID=$id");
    is($st, 401, 'report without a token: 401');
    (undef, undef, $other) = get("/progress-old?X-Progress-ID=$id");
    is_deeply($other, { state => 'starting', uuid => $id },
              'anonymous report location: the owned upload is not shown');

    $u->send_all(piece => 16384, pause => 0.05);
    my $res = $u->response(15);
    is($res->{status}, 200, 'upload answered 200');
    is($res->{json} && $res->{json}{read}, $size, 'the CGI read the whole body');
    is($res->{json} && $res->{json}{progressId}, $id, 'the CGI saw X-Progress-ID');
    is($res->{headers}{'x-progress-id'}, $id, 'X-Progress-ID echoed in the response');
}
my @ev = upload_events($A, $id, 10);
like(types(@ev), qr/\Aupload_started( upload_progress)+ upload_completed\z/,
     'uploader got started, progress..., completed in order') or diag(types(@ev));
ok(ids_increasing(map { $_->{id} } @ev), 'ids increase');
{
    my ($s, @p) = @ev;
    my $c = pop @p;
    is($s->{json}{bytesUploaded}, 0, 'started: 0 bytes');
    is($s->{json}{totalBytes}, $size, 'started: totalBytes');
    is($s->{json}{userId}, $ua, 'started: userId is the uploader');
    is($s->{json}{jobId}, 'job-7', 'jobId from the query');
    is($s->{json}{sessionId}, 's-1', 'sessionId from the query');
    cmp_ok(scalar @p, '>=', 4, 'several progress steps (' . scalar(@p) . ')');
    my @b = map { $_->{json}{bytesUploaded} } @p;
    my @pc = map { $_->{json}{progress} } @p;
    ok(!grep({ $b[$_] <= $b[$_ - 1] } 1 .. $#b), 'bytesUploaded increases') or diag("@b");
    ok(!grep({ $pc[$_] <= $pc[$_ - 1] } 1 .. $#pc), 'progress increases') or diag("@pc");
    ok(!grep({ $_->{json}{totalBytes} != $size } @p), 'progress: totalBytes constant');
    my $mid = $p[int(@p / 2)]{json};
    ok(abs($mid->{progress} - $mid->{bytesUploaded} / $size * 100) <= 0.00500001
       && $mid->{progress} == sprintf('%.2f', $mid->{progress}),
       'progress = bytesUploaded / totalBytes * 100, 2 decimals') or diag($JSONC->encode($mid));
    is($p[-1]{json}{bytesUploaded}, $size, 'last progress: every byte');
    is($p[-1]{json}{progress}, 100, 'last progress: 100');
    is($c->{json}{bytesUploaded}, $size, 'completed: bytesUploaded');
    is($c->{json}{progress}, 100, 'completed: 100');
    is($c->{json}{status}, 200, 'completed: status 200');
    is($c->{json}{jobId}, 'job-7', 'completed: jobId');
}
{
    my ($st, $h, $rep) = get("/progress?X-Progress-ID=$id", bearer($ta));
    is($rep->{state}, 'done', 'report after the upload: done') or diag($JSONC->encode($rep));
    is($rep->{received}, $size, 'done: received');
    is($rep->{size}, $size, 'done: size');
    # The old module's done: when it ended, no eta (t/compat_old.t
    # compares every state with the old module itself).
    ok(!exists $rep->{eta}, 'done: no eta');
    ok(($rep->{completed_at} // 0) >= $rep->{started_at} && $rep->{completed_at} <= time + 1,
       'done: completed_at is when it ended');
    like($h->header('Content-Type') // '', qr{\Aapplication/json}, 'report is application/json');
    like($h->header('Cache-Control') // '', qr/no-cache/, 'report is not cached');

    my ($st2, $h2, $js) = get("/progress?X-Progress-ID=$id&callback=jQuery1_2.cb\$", bearer($ta));
    is($st2, 200, 'JSONP: 200');
    like($h2->header('Content-Type') // '', qr{\Aapplication/javascript}, 'JSONP content type');
    my ($inner) = ($js // '') =~ m{\A/\*\*/jQuery1_2\.cb\$\((.*)\);\r?\n\z}s;
    ok(defined $inner, 'JSONP: /**/callback(...);') or diag($js);
    is_deeply(eval { JSON->new->decode($inner // '') }, $rep, 'JSONP wraps the same report');

    # JSONP is a script any site may include: only where the location asks
    # for it (ReportUploads On JSONP), and never with a cookie's token,
    # which the browser would send for another site's page.
    my ($stj, undef, $ej) = get("/progress-json?X-Progress-ID=$id&callback=cb", bearer($ta));
    is($stj, 400, 'JSONP where ReportUploads has no JSONP option: 400');
    is(ref $ej && $ej->{error}, 'jsonp_disabled', 'error jsonp_disabled');
    my (undef, undef, $pj) = get("/progress-json?X-Progress-ID=$id", bearer($ta));
    is(ref $pj && $pj->{state}, 'done', 'the JSON report is served there');
    my ($stc, $hc, $ec) = get("/progress?X-Progress-ID=$id&callback=cb",
                              Cookie => "upload_progress_token=$ta");
    is($stc, 403, 'JSONP with the token from a cookie: 403');
    is(ref $ec && $ec->{error}, 'jsonp_cookie', 'error jsonp_cookie');
    unlike($hc->header('Content-Type') // '', qr/javascript/, 'and no script');
    my (undef, undef, $cj) = get("/progress?X-Progress-ID=$id",
                                 Cookie => "upload_progress_token=$ta");
    is(ref $cj && $cj->{state}, 'done', 'the JSON report with a cookie token is served');
    my ($stq, undef, $jq) = get("/progress?X-Progress-ID=$id&callback=cb&token=$ta");
    is($stq, 200, 'JSONP with the token in the query: 200');
    like($jq // '', qr{\A/\*\*/cb\(}, 'JSONP with the token in the query: the script');

    my ($st3, undef, $err) = get("/progress?X-Progress-ID=$id&callback=alert(1)", bearer($ta));
    is($st3, 400, 'JSONP callback with ( ): 400');
    is(ref $err && $err->{error}, 'bad_callback', 'error bad_callback');
    ($st3, undef, $err) = get('/progress', bearer($ta));
    is($st3, 400, 'report without an id: 400');
    is(ref $err && $err->{error}, 'missing_id', 'error missing_id');
    ($st3, undef, $err) = get('/progress?X-Progress-ID=a%20b', bearer($ta));
    is($st3, 400, 'report with a malformed id: 400');
    my ($st4, $h4, $hdr) = get('/progress', bearer($ta), 'X-Progress-ID' => $id);
    is(ref $hdr && $hdr->{state}, 'done', 'id in the X-Progress-ID header works too');
    ($st4, $h4) = publish_raw('POST', "/progress?X-Progress-ID=$id", '', bearer($ta));
    is($st4, 405, 'POST to the report: 405');
    like($h4->header('Allow') // '', qr/\bGET\b/, 'POST to the report: Allow names GET');
}

# -------------------------------------------------- a tiny upload
my $small = uniq('small');
{
    my $u = UPM::Upload->start('/track/upload.pl', size => 10, token => $ta, id => $small);
    $u->send_all;
    is($u->response(10)->{status}, 200, 'tiny upload: 200');
    my @e = upload_events($A, $small, 10);
    like(types(@e), qr/\Aupload_started (upload_progress )?upload_completed\z/,
         'tiny upload: started and completed (not stuck at starting)') or diag(types(@e));
    my (undef, undef, $rep) = get("/progress?X-Progress-ID=$small", bearer($ta));
    is($rep->{state}, 'done', 'tiny upload: report done');
    is($rep->{size}, 10, 'tiny upload: report size');
}

# ------------------------------------------ the same id again: a new upload
{
    my $u = UPM::Upload->start('/track/upload.pl', size => 5000, token => $ta, id => $small);
    $u->send_all;
    is($u->response(10)->{status}, 200, 'reused id: 200, not an error');
    my @e = grep { $_->{json}{totalBytes} && $_->{json}{totalBytes} == 5000 }
            upload_events($A, $small, 10);
    like(types(@e), qr/\Aupload_started (upload_progress )*upload_completed\z/,
         'reused id: a new started ... completed') or diag(types(@e));
    my (undef, undef, $rep) = get("/progress?X-Progress-ID=$small", bearer($ta));
    is($rep->{size}, 5000, 'reused id: the report is the new upload');
    is($rep->{state}, 'done', 'reused id: done');
}

# ------------------------------------------------ an aborted upload
my $ab = uniq('abort');
{
    my $u = UPM::Upload->start('/track/upload.pl', size => 200000, token => $ta, id => $ab);
    $u->send(40000);
    sleep 0.3;
    $u->abort;
    my @e = upload_events($A, $ab, 10);
    like(types(@e), qr/\Aupload_started( upload_progress)* upload_failed\z/,
         'aborted: started ... failed') or diag(types(@e));
    my $f = $e[-1] ? $e[-1]{json} : {};
    is($f->{reason}, 'aborted', 'aborted: reason aborted');
    ok(($f->{bytesUploaded} // -1) <= 40000, 'aborted: bytesUploaded at most what was sent');
    is($f->{totalBytes}, 200000, 'aborted: totalBytes');
    my (undef, undef, $rep) = get("/progress?X-Progress-ID=$ab", bearer($ta));
    is($rep->{state}, 'error', 'aborted: report error');
    is($rep->{reason}, 'aborted', 'aborted: report reason');
    ok($rep->{status} >= 400, 'aborted: report status is an error');
}

# ------------------------------------ a client that stops sending: timeout
{
    # t/conf/track.conf.in: RequestReadTimeout body=3-6,minrate=500.
    my $tid = uniq('stall');
    my $u = UPM::Upload->start('/track/upload.pl', size => 100000, token => $ta, id => $tid);
    $u->send(1000);
    my $t0 = time;
    my $res = $u->response(12);
    my $dt = time - $t0;
    is($res->{status}, 408, sprintf('stalled upload: 408 after %.1f s', $dt));
    my @e = upload_events($A, $tid, 5);
    like(types(@e), qr/\Aupload_started( upload_progress)* upload_failed\z/,
         'stalled upload: started ... failed') or diag(types(@e));
    is($e[-1] && $e[-1]{json}{reason}, 'timeout', 'stalled upload: reason timeout');
    is($e[-1] && $e[-1]{json}{status}, 408, 'stalled upload: status 408');
    is($e[-1] && $e[-1]{json}{bytesUploaded}, 1000, 'stalled upload: bytesUploaded');
}

# ------------------------------------------------ a chunked upload
my $ch = uniq('chunked');
{
    my $u = UPM::Upload->start('/track/upload.pl', size => 98304, token => $ta, id => $ch,
                               chunked => 1);
    $u->send_all(piece => 8192, pause => 0.06);
    my $res = $u->response(10);
    is($res->{status}, 200, 'chunked: 200');
    is($res->{json} && $res->{json}{read}, 98304, 'chunked: the CGI read it all');
    my @e = upload_events($A, $ch, 10);
    like(types(@e), qr/\Aupload_started( upload_progress)+ upload_completed\z/,
         'chunked: started, progress..., completed') or diag(types(@e));
    my ($s, @p) = @e;
    my $c = pop @p;
    ok(exists $s->{json}{totalBytes} && !defined $s->{json}{totalBytes},
       'chunked: started totalBytes null');
    ok(exists $s->{json}{progress} && !defined $s->{json}{progress},
       'chunked: started progress null');
    my @mid = grep { $_->{json}{bytesUploaded} < 98304 } @p;
    cmp_ok(scalar @mid, '>=', 2, 'chunked: progress while the body arrives');
    ok(!grep({ defined $_->{json}{progress} || defined $_->{json}{totalBytes} } @mid),
       'chunked: progress and totalBytes null until the end');
    is($c->{json}{totalBytes}, 98304, 'chunked: completed totalBytes is the size');
    is($c->{json}{progress}, 100, 'chunked: completed progress 100');
    my (undef, undef, $rep) = get("/progress?X-Progress-ID=$ch", bearer($ta));
    is($rep->{state}, 'done', 'chunked: report done');
    is($rep->{size}, 98304, 'chunked: report size');
}

# ----------------------- over LimitRequestBody, and a generated id (All)
{
    my $u = UPM::Upload->start('/track-all/upload.pl', size => 150000, token => $ta);
    $u->send_all(piece => 50000);
    my $res = $u->response(10);
    is($res->{status}, 413, 'over the limit: 413');
    # The core's own error page carries no module header: the id comes
    # from the stream.
    my $s = $A->next_event(5);
    is($s && $s->{event}, 'upload_started', 'over the limit: upload_started');
    my $gen = $s ? $s->{json}{photoId} : '';
    like($gen, qr/\A[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\z/,
         'UploadProgressTrack All: a generated UUID as the id');
    if ($s) { push @{ $stash{"$A"} }, $s; push @all_a, $s }
    my @e = upload_events($A, $gen, 10);
    like(types(@e), qr/\Aupload_started( upload_progress)* upload_failed\z/,
         'over the limit: started ... failed') or diag(types(@e));
    is($e[-1] && $e[-1]{json}{reason}, 'too_large', 'over the limit: reason too_large');
    is($e[-1] && $e[-1]{json}{status}, 413, 'over the limit: status 413');
}
{
    # A generated id reaches the client and the application.
    my $u = UPM::Upload->start('/track-all/upload.pl', size => 1000, token => $ta);
    $u->send_all;
    my $res = $u->response(10);
    my $gen = $res->{headers}{'x-progress-id'} // '';
    like($gen, qr/\A[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\z/,
         'UploadProgressTrack All: the generated id in the response header');
    is($res->{json} && $res->{json}{progressId}, $gen, 'and in the request to the application');
    my @e = upload_events($A, $gen, 10);
    like(types(@e), qr/\Aupload_started (upload_progress )?upload_completed\z/,
         'generated id: started ... completed') or diag(types(@e));
}
{
    # Chunked over the limit: found out while reading.
    my $u = UPM::Upload->start('/track-all/upload.pl', size => 150000, token => $ta,
                               chunked => 1, id => my $cl = uniq('chunk-limit'));
    $u->send_all(piece => 10000);
    is($u->response(10)->{status}, 413, 'chunked over the limit: 413');
    my @e = upload_events($A, $cl, 10);
    is($e[-1] && $e[-1]{event}, 'upload_failed', 'chunked over the limit: failed');
    is($e[-1] && $e[-1]{json}{reason}, 'too_large', 'chunked over the limit: too_large');
}
{
    # The source throttle: 25 % steps here, so at most 3 steps between 0 and 100.
    my $u = UPM::Upload->start('/track-all/upload.pl', size => 90000, token => $ta,
                               id => my $tid = uniq('thr'));
    $u->send_all(piece => 3000, pause => 0.03);
    is($u->response(10)->{status}, 200, 'throttled upload: 200');
    my @p = grep { $_->{event} eq 'upload_progress' } upload_events($A, $tid, 10);
    my @pc = map { $_->{json}{progress} } @p;
    ok(@p >= 2 && @p <= 5, 'UploadProgressThrottle 25: a handful of steps (' . scalar(@p) . ')');
    ok(!grep({ $pc[$_] < 100 && $pc[$_] - $pc[$_ - 1] < 25 } 1 .. $#pc),
       'steps of at least 25 %') or diag("@pc");
}

# ----------------------------------------- the application answers 500
{
    my $fid = uniq('fail');
    my $u = UPM::Upload->start('/track/upload.pl?status=500', size => 3000, token => $ta,
                               id => $fid);
    $u->send_all;
    is($u->response(10)->{status}, 500, 'failing application: 500');
    my @e = upload_events($A, $fid, 10);
    is($e[-1] && $e[-1]{event}, 'upload_failed', 'status >= 400: upload_failed');
    is($e[-1] && $e[-1]{json}{reason}, 'http_error', 'status >= 400: reason http_error');
    is($e[-1] && $e[-1]{json}{status}, 500, 'status >= 400: the status');
    my (undef, undef, $rep) = get("/progress?X-Progress-ID=$fid", bearer($ta));
    is($rep->{state}, 'error', 'status >= 400: report error');
    is($rep->{status}, 500, 'status >= 400: report status');
}

# ----------------------------------------------------------- HTTP/2
SKIP: {
    my ($curl) = grep { -x } map { "$_/curl" } split /:/, $ENV{PATH} // '';
    skip 'curl is needed for the HTTP/2 upload', 6 unless $curl;
    my ($fh, $file) = tempfile(UNLINK => 1);
    print $fh 'x' x 200000;
    close $fh;
    my $h2 = uniq('h2');
    my $port = port();
    # From a pipe: curl cannot know the length, so the stream has no
    # content-length (the chunked-like case of HTTP/2).
    my $out = `cat $file | $curl -sS --http2-prior-knowledge -m 20 -T - -H 'Authorization: Bearer $ta' -H 'X-Progress-ID: $h2' -w '\\n%{http_version} %{http_code}' http://127.0.0.1:$port/track/upload.pl 2>&1`;
    like($out, qr/\n2 200\z/, 'HTTP/2 upload: answered over HTTP/2 with 200') or diag($out);
    like($out, qr/"read":200000/, 'HTTP/2 upload: the CGI read it all');
    my @e = upload_events($A, $h2, 10);
    like(types(@e), qr/\Aupload_started( upload_progress)* upload_completed\z/,
         'HTTP/2 upload: started ... completed') or diag(types(@e));
    is($e[-1] && $e[-1]{json}{bytesUploaded}, 200000, 'HTTP/2 upload: bytesUploaded');
    is($e[-1] && $e[-1]{json}{totalBytes}, 200000, 'HTTP/2 upload: totalBytes');

    my $h2b = uniq('h2len');
    $out = `$curl -sS --http2-prior-knowledge -m 20 --data-binary \@$file -H 'Authorization: Bearer $ta' -H 'X-Progress-ID: $h2b' -w '\\n%{http_version} %{http_code}' http://127.0.0.1:$port/track/upload.pl 2>&1`;
    @e = upload_events($A, $h2b, 10);
    is($e[0] && $e[0]{json}{totalBytes}, 200000,
       'HTTP/2 upload with content-length: totalBytes known from the start');
}

# ---------------- a full report table: no report, events still flow
{
    # t/conf/track.conf.in: UploadProgressTrackSlots 16.
    my $st0 = status_json();
    my @held = map {
        my $h = UPM::Upload->start('/track/upload.pl', size => 3000, token => $ta,
                                   id => uniq('hold'));
        $h->send(1000);
        $h;
    } 1 .. 16;
    my $deadline = time + 5;
    my $st1 = $st0;
    while (time < $deadline && $st1->{uploads}{active} < $st0->{uploads}{active} + 16) {
        sleep 0.05;
        $st1 = status_json();
    }
    is($st1->{uploads}{report_slots_active}, 16, 'all 16 report slots hold uploads in flight');
    my $xid = uniq('nosl');
    my $x = UPM::Upload->start('/track/upload.pl', size => 3000, token => $ta, id => $xid);
    $x->send(1000);
    my $st2 = $st1;
    $deadline = time + 5;
    while (time < $deadline && $st2->{uploads}{untracked} == $st1->{uploads}{untracked}) {
        sleep 0.05;
        $st2 = status_json();
    }
    is($st2->{uploads}{untracked} - $st1->{uploads}{untracked}, 1,
       'the 17th upload: counted as untracked');
    my (undef, undef, $rep) = get("/progress?X-Progress-ID=$xid", bearer($ta));
    is_deeply($rep, { state => 'starting', uuid => $xid }, 'the 17th upload: no report');
    $x->send_all;
    is($x->response(10)->{status}, 200, 'the 17th upload: served');
    my @e = upload_events($A, $xid, 10);
    like(types(@e), qr/\Aupload_started( upload_progress)* upload_completed\z/,
         'the 17th upload: its events still flow') or diag(types(@e));
    for my $h (@held) { $h->send_all }
    is(scalar(grep { ($_->response(10)->{status} // 0) == 200 } @held), 16,
       'the 16 others: served');
    my (undef, undef, $r2) = get("/progress?X-Progress-ID=$xid", bearer($ta));
    is($r2->{state}, 'starting', 'the 17th upload: still no report afterwards');
}

# ---------------- the old module's configuration: no auth, no events
{
    my $oid = uniq('old');
    my $u = UPM::Upload->start('/track-old/upload.pl', size => 60000, id => $oid);
    $u->send(30000);
    my $rep;
    my $deadline = time + 5;
    while (time < $deadline) {
        (undef, undef, $rep) = get("/progress-old?X-Progress-ID=$oid");
        last if ref $rep && ($rep->{received} // 0) > 0;
        sleep 0.05;
    }
    is($rep->{state}, 'uploading', 'TrackUploads / ReportUploads: uploading');
    $u->send_all;
    is($u->response(10)->{status}, 200, 'anonymous upload: 200');
    (undef, undef, $rep) = get("/progress-old?X-Progress-ID=$oid&callback=cb");
    like($rep, qr{\A/\*\*/cb\(\{.*"state":"done".*\}\);\r\n\z}, 'ReportUploads JSONP: done');
    my ($sto, undef, $eo) = get("/progress-old-json?X-Progress-ID=$oid&callback=cb");
    is($sto, 400, 'ReportUploads On without JSONP: a callback gets 400');
    is(ref $eo && $eo->{error}, 'jsonp_disabled', 'error jsonp_disabled (old configuration)');
    my (undef, undef, $r2) = get("/progress?X-Progress-ID=$oid", bearer($ta));
    is($r2->{state}, 'done', 'an anonymous upload is readable by anyone with the id');
}

# --------------------------------- a malformed id: served, not tracked
{
    my $u = UPM::Upload->start('/track/upload.pl?X-Progress-ID=bad%20id%21', size => 100,
                               token => $ta);
    $u->send_all;
    my $res = $u->response(10);
    is($res->{status}, 200, 'malformed progress id: the upload is served');
    ok(!defined $res->{headers}{'x-progress-id'}, 'malformed progress id: not tracked');
}

# -------------------------------------- the other user saw nothing of it
{
    my @seen = $B->drain(1);
    is(scalar(@seen), 0, 'the other user received no event of these uploads')
        or diag(types(@seen));
    push @all_a, $A->drain(0.5);
    my @leak = grep { ($_->{json}{userId} // '') ne $ua } @all_a;
    is(scalar(@leak), 0, "the uploader received only its own events");
}

done_testing();
