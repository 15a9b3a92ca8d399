# SPDX-License-Identifier: Apache-2.0
# The SSE handler: response headers, framing, heartbeat, replay through
# Last-Event-ID / lastEventId, the reset signal for ids it cannot resume
# from, and the end of a stream at the token's expiry.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use Time::HiRes qw(time sleep);
use POSIX qw(strftime);
use JSON ();

my $ISO = qr/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/;

sub pub_ok {
    my ($name, $data) = @_;
    my ($st, undef, $b) = publish('/publish', $data);
    is($st, 202, "$name: published") or diag(ref $b ? JSON->new->encode($b) : $b);
    return ref $b eq 'HASH' ? @{ $b->{ids} || [] } : ();
}

# ------------------------------------------------------------ framing
my $ua = uniq('sse-a');
my $A = sse('/sse', token => token(sub => $ua));
is($A->status, 200, 'GET /sse: 200');
like($A->header('Content-Type') // '', qr{\Atext/event-stream}, 'Content-Type text/event-stream');
like($A->header('Cache-Control') // '', qr/\bno-cache\b/, 'Cache-Control: no-cache');
ok($A->wait_for(sub { scalar $A->lines }, 3), 'stream starts within 3 s');
is(($A->lines)[0], 'retry: 3000', 'first line is retry: 3000 (the default)');

my $t0 = time;
my ($id1) = pub_ok('framing', { event => 'PhotoUploadStarted', userId => $ua,
                               photoId => 'ph-1', fileName => 'cat.jpg',
                               sizeBytes => 1234 });
my $e = $A->next_event(5);
ok($e, 'event received') or BAIL_OUT('no event delivered at all');
is_deeply($e->{lines}, ["id: $id1", 'event: upload_started', "data: $e->{data}"],
          'message is id / event / data lines, in that order');
unlike($e->{data}, qr/\n/, 'data is one line');
ok($e->{json}, 'data is JSON') or diag($e->{data});
my $j = $e->{json} || {};
is($j->{type}, 'upload_started', 'JSON type');
is($j->{id}, $id1, 'JSON id equals the id line');
is($j->{userId}, $ua, 'JSON userId');
is($j->{photoId}, 'ph-1', 'JSON photoId');
is($j->{fileName}, 'cat.jpg', 'other fields pass through (string)');
is($j->{sizeBytes}, 1234, 'other fields pass through (number)');
like($j->{timestamp} // '', $ISO, 'timestamp is ISO 8601 UTC with milliseconds');
{
    my ($Y, $M, $D, $h, $m, $s) = ($j->{timestamp} // '') =~
        /\A(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)/;
    require Time::Local;
    my $ts = defined $s ? Time::Local::timegm($s, $m, $h, $D, $M - 1, $Y) : 0;
    ok(abs($ts - $t0) < 30, 'timestamp is the server time of publication')
        or diag("timestamp $j->{timestamp}, now " . strftime('%FT%TZ', gmtime $t0));
}
{
    my ($id2) = pub_ok('second', { type => 'job_complete', userId => $ua, jobId => 'j1' });
    my $e2 = $A->next_event(5);
    is($e2 && $e2->{id}, $id2, 'second message, next id');
    is($e2 && $e2->{event}, 'job_complete', 'second message type');
    ok(($A->lines)[-1] eq '', 'messages end with a blank line');
}

{
    my ($st, $h) = publish_raw('POST', '/sse', '{}',
                               Authorization => 'Bearer ' . token(sub => $ua));
    is($st, 405, 'POST /sse: 405');
    my $allow = $h->header('Allow') // '';
    like($allow, qr/\bGET\b/, 'POST /sse: Allow names GET');
    unlike($allow, qr/\bPOST\b/, 'POST /sse: Allow does not name POST');
}

{
    # Field values that would break the framing if not escaped, and UTF-8.
    my %f = (note => "line1\nline2\r\nline3\rend", name => "caf\x{e9} \x{1F4F7}.jpg",
             sep => "a\x{2028}b", colon => 'data: id: event: x');
    my ($id) = pub_ok('escaping', { type => 'file_registered', userId => $ua,
                                    fileId => 'esc', %f });
    my $e = $A->next_event(5);
    is($e && $e->{id}, $id, 'escaping: delivered');
    is(scalar @{ $e ? $e->{lines} : [] }, 3, 'escaping: still three lines');
    is($e && $e->{json} && $e->{json}{$_}, $f{$_}, "escaping: $_ intact") for sort keys %f;
}
{
    # Large messages (4 x 50 KB in one request) arrive whole and in order.
    my @evs = map { { type => 'file_registered', userId => $ua, fileId => "big$_",
                      blob => ($_ x 50_000) } } 1 .. 4;
    my @ids = pub_ok('large messages', \@evs);
    my @got = $A->events_until(4, 10);
    is_deeply([map { $_->{id} } @got], \@ids, 'large messages: all four, in order');
    is_deeply([map { length($_->{json} ? $_->{json}{blob} : '') } @got],
              [(50_000) x 4], 'large messages: bodies intact');
}

{
    # An HTTP/1.0 client (no chunked encoding): the stream still flows.
    my $u10 = uniq('http10');
    my $O = sse('/sse', token => token(sub => $u10), http10 => 1);
    is($O->status, 200, 'HTTP/1.0 client: 200');
    ok(!$O->{chunked}, 'HTTP/1.0 client: not chunked');
    my ($id) = pub_ok('HTTP/1.0', { type => 'file_registered', userId => $u10, fileId => 'h10' });
    my $e = $O->next_event(5);
    is($e && $e->{id}, $id, 'HTTP/1.0 client: message delivered');
    $O->close;
}

# ------------------------------------------------------------ heartbeat
{
    my $H = sse('/sse-hb', token => token(sub => uniq('hb')));
    is($H->status, 200, 'GET /sse-hb: 200');
    $H->wait_for(sub { scalar $H->lines }, 3);
    is(($H->lines)[0], 'retry: 1500', 'UploadProgressRetry 1500 is sent first');
    my $start = time;
    $H->wait_for(sub { $H->comments >= 3 }, 4.5);
    my @c = $H->comments;
    ok(@c >= 3, 'at least 3 heartbeat comments within 4.5 s at 1 s interval')
        or diag(scalar(@c) . ' comments: ' . join(' | ', map { $_->{text} } @c));
    like($_->{text}, qr/\A:/, 'heartbeat is a comment line') for @c[0 .. ($#c < 2 ? $#c : 2)];
    ok(!$H->eof, 'stream still open');
    $H->close;
}
{
    # The default interval is 15 s: no comment flood on /sse.
    my @c = $A->comments;
    ok(@c <= 1, 'no heartbeat every second at the default interval')
        or diag(scalar(@c) . ' comments on /sse after ' . int(time - $A->{t_open}) . ' s');
}

# ------------------------------------------------------------ replay
my $ub = uniq('sse-b');
my $uc = uniq('sse-c');
my @b_ids;
my $c_mid;
{
    my @evs;
    for my $i (1 .. 6) {
        push @evs, { type => 'file_registered', userId => $ub, fileId => "fb$i" };
        push @evs, { type => 'file_registered', userId => $uc, fileId => "fc$i" };
    }
    my @ids = pub_ok('replay set', \@evs);
    @b_ids = @ids[grep { $_ % 2 == 0 } 0 .. $#ids];
    $c_mid = $ids[5];    # C's event between B's 3rd and 4th
}
is(scalar @b_ids, 6, 'six ids for B');
{
    my $R = sse('/sse', token => token(sub => $ub),
                headers => { 'Last-Event-ID' => $b_ids[1] });
    is($R->status, 200, 'resume with Last-Event-ID header: 200');
    my @got = $R->events_until(4, 5);
    is_deeply([map { $_->{id} } @got], [@b_ids[2 .. 5]],
              'Last-Event-ID: the four later messages of B, in order');
    is_deeply([map { $_->{json}{fileId} } @got], [map { "fb$_" } 3 .. 6],
              'Last-Event-ID: the right payloads');
    my ($live) = pub_ok('live after replay',
                        { type => 'file_registered', userId => $ub, fileId => 'fb7' });
    push @b_ids, $live;
    my @rest = $R->events_until(2, 2);
    is_deeply([map { $_->{id} } @rest], [$live],
              'then live, without duplicates');
    $R->close;
}
{
    my $R = sse("/sse?lastEventId=$b_ids[4]", token => token(sub => $ub));
    is($R->status, 200, 'resume with lastEventId query: 200');
    my @got = $R->events_until(2, 5);
    is_deeply([map { $_->{id} } @got], [@b_ids[5, 6]],
              'lastEventId: the later messages of B (replayed and former live one)');
    my ($live) = pub_ok('live after query replay',
                        { type => 'file_registered', userId => $ub, fileId => 'fb8' });
    push @b_ids, $live;
    my @rest = $R->events_until(2, 2);
    is_deeply([map { $_->{id} } @rest], [$live], 'then live, no duplicates');
    $R->close;
}
{
    # The id of another user's message is a valid position too.
    my $R = sse('/sse', token => token(sub => $ub),
                headers => { 'Last-Event-ID' => $c_mid });
    my @got = $R->events_until(5, 5);
    is_deeply([map { $_->{id} } @got], [@b_ids[3 .. 7]],
              "resume from another user's id: B's messages after it");
    $R->close;
}
{
    # Resuming from the newest id: nothing replayed, live works.
    my $R = sse('/sse', token => token(sub => $ub),
                headers => { 'Last-Event-ID' => $b_ids[-1] });
    is($R->status, 200, 'resume from the newest id: 200');
    my @none = $R->drain(0.7);
    is(scalar @none, 0, 'resume from the newest id: nothing replayed')
        or diag(join ' ', map { $_->{event} // '?' } @none);
    my ($live) = pub_ok('live', { type => 'file_registered', userId => $ub, fileId => 'fb9' });
    my $e = $R->next_event(5);
    is($e && $e->{id}, $live, 'resume from the newest id: then live');
    $R->close;
}

# Resuming while the user's events are being published: the hand-over from
# replay to live must lose nothing and repeat nothing.
{
    my $uz = uniq('race');
    my @pre = pub_ok('race: first 20', [map { { type => 'part_uploaded', userId => $uz,
                                                fileId => 'race', n => $_ } } 1 .. 20]);
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        my $n = 20;
        for (1 .. 200) {
            publish('/publish', [map { { type => 'part_uploaded', userId => $uz,
                                         fileId => 'race', n => ++$n } } 1 .. 2]);
            Time::HiRes::sleep(0.004);
        }
        POSIX::_exit(0);
    }
    my @from = (9, 4, 19, 0, 14, 17);
    my @R;
    for my $i (0 .. $#from) {
        my %o = $i % 2 ? (path => "/sse?lastEventId=$pre[$from[$i]]")
                       : (path => '/sse', headers => { 'Last-Event-ID' => $pre[$from[$i]] });
        push @R, sse($o{path}, token => token(sub => $uz), headers => $o{headers} || {});
        Time::HiRes::sleep(0.08);
    }
    ok(waitpid($pid, POSIX::WNOHANG()) == 0,
       'race: the publisher was still running when the last client connected');
    my %want = map { $_ => [($from[$_] + 2) .. 420] } 0 .. $#from;
    wait_all(\@R, sub { !grep { @{ $R[$_]{all} } < @{ $want{$_} } } 0 .. $#R }, 30);
    waitpid($pid, 0);
    wait_all(\@R, sub { 0 }, 0.3);
    for my $i (0 .. $#R) {
        my @n = map { $_->{json} ? $_->{json}{n} : -1 } $R[$i]->received;
        my $ok = "@n" eq "@{ $want{$i} }";
        ok($ok, 'resume after event ' . ($from[$i] + 1) . ' during publishing: '
           . 'events ' . ($from[$i] + 2) . '..420 exactly once, in order');
        unless ($ok) {
            my %c; my @dup = grep { $c{$_}++ } @n;
            my %have = map { $_ => 1 } @n;
            my @miss = grep { !$have{$_} } @{ $want{$i} };
            diag("got " . scalar(@n) . "; missing: @miss[0 .. ($#miss < 9 ? $#miss : 9)]"
                 . "; duplicated: @dup[0 .. ($#dup < 9 ? $#dup : 9)]");
        }
        $R[$i]->close;
    }
}

# ------------------------------------------------------------ reset
my ($epoch) = ($b_ids[0] =~ /\A(\d+)-/);
ok(defined $epoch, "current epoch $epoch");

sub expect_reset {
    my ($name, $reason, %o) = @_;
    my $user = uniq('reset');
    my $R = sse($o{path} // '/sse', token => token(sub => $user),
                headers => $o{headers} || {});
    is($R->status, 200, "$name: 200");
    my $r = $R->next_event(5);
    is($r && $r->{event}, 'reset', "$name: first an event: reset")
        or diag('got: ' . ($r ? join(' | ', @{ $r->{lines} }) : 'nothing'));
    is($r && $r->{json} && $r->{json}{type}, 'reset', "$name: data type reset");
    is($r && $r->{json} && $r->{json}{reason}, $reason, "$name: reason $reason");
    my ($live) = pub_ok("$name live",
                        { type => 'file_registered', userId => $user, fileId => 'after-reset' });
    my $e = $R->next_event(5);
    is($e && $e->{id}, $live, "$name: then live messages");
    my @extra = $R->drain(0.3);
    is(scalar @extra, 0, "$name: nothing else");
    $R->close;
}

my $other_epoch = $epoch == 999 ? 998 : 999;
expect_reset('another epoch', 'epoch', headers => { 'Last-Event-ID' => "$other_epoch-1" });
expect_reset('another epoch (query)', 'epoch', path => "/sse?lastEventId=$other_epoch-1");
expect_reset('malformed id', 'invalid', headers => { 'Last-Event-ID' => 'not-an-id' });
expect_reset('malformed id (query)', 'invalid', path => '/sse?lastEventId=12x-3');
{
    my (undef, $seq) = ($b_ids[-1] =~ /\A(\d+)-(\d+)\z/);
    expect_reset('id in the future', 'invalid',
                 headers => { 'Last-Event-ID' => "$epoch-" . ($seq + 1_000_000) });
}

# Older than the ring: 4200 messages of one user (ring of 4096).
{
    my $ux = uniq('flood');
    my @ids;
    for my $batch (0 .. 20) {
        my @evs = map {
            { type => 'part_uploaded', userId => $ux, fileId => 'flood',
              part => $batch * 200 + $_ }
        } 1 .. 200;
        my ($st, undef, $b) = publish('/publish', \@evs);
        is($st, 202, "flood batch $batch") unless $st == 202;
        push @ids, @{ $b->{ids} || [] } if ref $b eq 'HASH';
    }
    is(scalar @ids, 4200, '4200 messages published');
    expect_reset('id older than the ring', 'expired',
                 headers => { 'Last-Event-ID' => $ids[0] });

    # Still in the ring: the last 100 of that user are replayed in order.
    my $R = sse('/sse', token => token(sub => $ux),
                headers => { 'Last-Event-ID' => $ids[4099] });
    my @got = $R->events_until(100, 10);
    is(scalar @got, 100, 'resume within the ring: 100 messages replayed');
    is_deeply([map { $_->{id} } @got], [@ids[4100 .. 4199]],
              'resume within the ring: the right ids in order');
    is_deeply([map { $_->{json}{part} } @got], [4101 .. 4200],
              'resume within the ring: the right payloads');
    ok(!grep({ ($_->{event} // '') eq 'reset' } @got), 'no reset');
    $R->close;
}

# ------------------------------------------------------------ token expiry
{
    my $exp = int(time) + 3;
    my $X = sse('/sse-exp', token => token(sub => uniq('exp'), exp => $exp));
    is($X->status, 200, 'token valid for 3 more seconds: 200');
    my $opened = time;
    my $ev;
    $X->wait_for(sub { grep { ($_->{event} // '') eq 'token_expired' } @{ $X->{events} } }, 7);
    ($ev) = grep { ($_->{event} // '') eq 'token_expired' } @{ $X->{events} };
    ok($ev, 'event: token_expired arrives') or diag('lines: ' . join(' | ', $X->lines));
    my $at = $ev ? $ev->{t} : time;
    ok($at >= $exp - 0.5, 'not before exp') or diag("at " . ($at - $exp) . " s from exp");
    ok($at <= $exp + 3, 'within 3 s of exp') or diag("at " . ($at - $exp) . " s from exp");
    ok($X->wait_for(sub { 0 }, 3) == 0 && $X->eof, 'then the stream ends (EOF)');
    ok(time - $opened < 10, 'all within 10 s');
}

$A->close;
done_testing();
