# SPDX-License-Identifier: Apache-2.0
# The publish handler: methods, content type, JSON and event validation,
# size limits, the progress:publish scope, and that a refused request
# delivers nothing at all.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Apache::Test ();
use UPM::Test;
use JSON ();
use IO::Select;

my $u = uniq('pub');
my $other = uniq('pub-other');
my $sub = sse('/sse', token => token(sub => $u));
is($sub->status, 200, 'subscriber connected') or BAIL_OUT('no SSE stream');

my $n = 0;
sub ev {
    my (%a) = @_;
    return { event => 'PhotoUploadStarted', userId => $u,
             photoId => 'p' . ++$n, %a };
}

# After a refused request: a valid event published now must be the very
# first thing the subscriber receives.
sub nothing_delivered {
    my ($name) = @_;
    my $m = uniq('marker');
    my ($st, undef, $b) = publish('/publish', ev(photoId => $m));
    is($st, 202, "$name: marker accepted");
    my $e = $sub->next_event(5);
    my $got = $e ? ($e->{data} // '') : 'nothing within 5 s';
    ok($e && $e->{json} && ($e->{json}{photoId} // '') eq $m,
       "$name: nothing of the refused request was delivered")
        or diag("first event after the refused request: $got");
}

sub is_error_body {
    my ($name, $b, $error, $index) = @_;
    ok(ref $b eq 'HASH', "$name: JSON body") or return diag("body: $b");
    if (defined $error) {
        is($b->{error}, $error, "$name: error $error");
    }
    else {
        ok(defined $b->{error} && !ref $b->{error} && length $b->{error},
           "$name: error code given") or diag(JSON->new->encode($b));
    }
    ok(defined $b->{message} && !ref $b->{message} && length $b->{message},
       "$name: message given");
    is($b->{index}, $index, "$name: index $index") if defined $index;
}

# ------------------------------------------------------------ success
{
    my ($st, $h, $b) = publish('/publish', ev(photoId => 'single'));
    is($st, 202, 'single event: 202');
    like($h->header('Content-Type') // '', qr{\Aapplication/json}, 'JSON response');
    is($b->{accepted}, 1, 'accepted 1');
    is(ref $b->{ids}, 'ARRAY', 'ids array');
    is(scalar @{ $b->{ids} || [] }, 1, 'one id');
    like($b->{ids}[0] // '', qr/\A\d+-\d+\z/, 'id is <epoch>-<seq>');
    my $e = $sub->next_event(5);
    is($e && $e->{id}, $b->{ids}[0], 'delivered with that id');
}
{
    my @evs = (ev(photoId => 'a1'),
               { type => 'file_registered', userId => $u, fileId => 'f-a2' },
               ev(photoId => 'a3', userId => $other),
               { event => 'UploadJobCompleted', userId => $u, jobId => 'j-a4' });
    my ($st, $h, $b) = publish('/publish', \@evs);
    is($st, 202, 'array: 202');
    is($b->{accepted}, 4, 'array: accepted 4');
    my @ids = @{ $b->{ids} || [] };
    is(scalar @ids, 4, 'array: 4 ids');
    ok(ids_increasing(@ids), 'array: ids increasing') or diag("@ids");
    is(scalar(keys %{ { map { epoch_of($_) // 'x' => 1 } @ids } }), 1,
       'array: one epoch');
    my @got = $sub->events_until(3, 5);
    is_deeply([map { $_->{id} } @got], [@ids[0, 1, 3]],
              "array: the user's three events in order, not the other user's");
    is_deeply([map { $_->{event} } @got],
              ['upload_started', 'file_registered', 'job_completed'],
              'array: types');
}
{
    my ($st, $h, $b) = publish('/publish', ev(photoId => 'own-id', id => '1-999999'));
    is($st, 202, 'event carrying its own id: 202');
    my $e = $sub->next_event(5);
    is($e && $e->{id}, $b->{ids}[0], 'the server assigns the id');
    is($e && $e->{json}{id}, $b->{ids}[0], 'also in the JSON');
}
{
    my ($st) = publish('/publish', ev(photoId => 'cs'),
                       'Content-Type' => 'application/json; charset=utf-8');
    is($st, 202, 'charset parameter accepted');
    my $e = $sub->next_event(5);
    is($e && $e->{json}{photoId}, 'cs', 'and delivered');
}

{
    # An owner given as an integer, and a token whose sub is an integer.
    my $num = 800_000_000 + int(rand(99_999_999));
    my $N = sse('/sse', token => token(sub => 0 + $num));
    is($N->status, 200, 'integer sub: stream open');
    my ($st, undef, $b) = publish('/publish', [
        { type => 'file_registered', userId => 0 + $num, fileId => 'int-owner' },
        { type => 'file_registered', userId => "$num", fileId => 'str-owner' } ]);
    is($st, 202, 'integer userId: 202');
    my @got = $N->events_until(2, 5);
    is_deeply([map { $_->{json}{fileId} } @got], ['int-owner', 'str-owner'],
              'integer and string userId reach the same user');
    is($got[0] && $got[0]{json}{userId}, "$num", 'userId is a string in the message');
    $N->close;
}

# ------------------------------------------------------------ request framing
{
    # Chunked request body (no Content-Length).
    my $json = JSON->new->encode([ev(photoId => 'chunked-1'), ev(photoId => 'chunked-2')]);
    my $half = int(length($json) / 2);
    my $body = sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", $half, substr($json, 0, $half),
                       length($json) - $half, substr($json, $half));
    my ($st, $h, $b) = raw_http("POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        . "Connection: close\r\n\r\n$body");
    is($st, 202, 'chunked request body: 202');
    my @got = $sub->events_until(2, 5);
    is_deeply([map { $_->{json}{photoId} } @got], ['chunked-1', 'chunked-2'],
              'chunked request body: both delivered');

    # Chunked and over 16 x the limit of /publish-small: no Content-Length
    # to refuse it early, still 413.
    my $big = JSON->new->encode([map { ev(metadata => { blob => 'c' x 700 }) } 1 .. 30]);
    $body = '';
    for (my $i = 0; $i < length $big; $i += 4000) {
        my $piece = substr($big, $i, 4000);
        $body .= sprintf("%x\r\n%s\r\n", length $piece, $piece);
    }
    $body .= "0\r\n\r\n";
    ($st) = raw_http("POST /publish-small HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        . "Connection: close\r\n\r\n$body");
    is($st, 413, 'chunked body over 16 KB at /publish-small: 413');
    nothing_delivered('chunked body over the limit');

    # Expect: 100-continue (curl sends it for bodies over 1 KB).
    my $json2 = JSON->new->encode(ev(photoId => 'expect', metadata => { blob => 'e' x 2000 }));
    my $saw_continue = 0;
    ($st) = raw_http(sub {
        my ($sock) = @_;
        syswrite($sock, "POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            . "Content-Type: application/json\r\nContent-Length: " . length($json2) . "\r\n"
            . "Expect: 100-continue\r\nConnection: close\r\n\r\n");
        if (IO::Select->new($sock)->can_read(3)) {
            sysread($sock, my $interim, 25);    # "HTTP/1.1 100 Continue\r\n\r\n"
            $saw_continue = $interim =~ m{\AHTTP/1\.1 100 };
        }
        syswrite($sock, $json2);
    });
    ok($saw_continue, 'Expect: 100-continue answered with 100 Continue');
    is($st, 202, 'Expect: 100-continue: 202');
    my $e = $sub->next_event(5);
    is($e && $e->{json}{photoId}, 'expect', 'Expect: 100-continue: delivered');
}

# ------------------------------------------------------------ methods
for my $m (qw(GET PUT DELETE)) {
    my ($st, $h) = publish_raw($m, '/publish',
                               $m eq 'GET' ? undef : JSON->new->encode(ev()));
    is($st, 405, "$m: 405");
    my $allow = $h->header('Allow') // '';
    like($allow, qr/\bPOST\b/, "$m: Allow names POST");
    unlike($allow, qr/\b(GET|PUT|DELETE)\b/, "$m: Allow names no other method");
}
nothing_delivered('PUT');

# ------------------------------------------------------------ content type
for my $ct ('text/plain', 'application/x-www-form-urlencoded',
            'application/jsonp', undef) {
    my $name = 'Content-Type ' . ($ct // 'missing');
    my ($st, undef, $b) = publish('/publish', ev(), 'Content-Type' => $ct);
    is($st, 415, "$name: 415");
    is_error_body($name, $b, 'unsupported_media_type');
    nothing_delivered($name);
}

# ------------------------------------------------------------ invalid JSON
{
    my $body = qq({\n  "event": "PhotoUploadStarted",\n  "userId": x\n});
    # x is on line 3, column 13; byte offset 47 (0-based; 48 counting the x)
    my ($st, $h, $b) = publish('/publish', $body);
    is($st, 400, 'invalid JSON: 400');
    like($h->header('Content-Type') // '', qr{\Aapplication/json}, 'invalid JSON: JSON response');
    is_error_body('invalid JSON', $b, 'invalid_json');
    is($b->{line}, 3, 'invalid JSON: line 3');
    is($b->{column}, 13, 'invalid JSON: column 13');
    ok(defined $b->{position} && ($b->{position} == 47 || $b->{position} == 48),
       'invalid JSON: position at the x') or diag('position: ' . ($b->{position} // 'undef'));
    nothing_delivered('invalid JSON');
}
for my $case (['truncated', '{"event": '],
              ['valid object then garbage',
               JSON->new->encode(ev()) . ' x'],
              ['array with a missing element',
               '[' . JSON->new->encode(ev()) . ',,' . JSON->new->encode(ev()) . ']'],
              ['empty body', ''],
              # jansson quotes the bytes near the error, here a cut UTF-8
              # sequence: the body must still be JSON.
              ['cut UTF-8 near the error', qq(["\\u\xc3\xa9"])]) {
    my ($name, $body) = @$case;
    my ($st, $h, $b) = publish('/publish', $body);
    is($st, 400, "$name: 400");
    is_error_body($name, $b, 'invalid_json');
    ok(defined $b->{line} && defined $b->{column} && defined $b->{position},
       "$name: line, column and position given");
    nothing_delivered($name);
}

# ------------------------------------------------------------ 422
# error codes as in docs/events.md
my @c422 = (
    ['empty array', [], 'bad_batch', undef],
    ['array of 1001 events', [map { ev() } 1 .. 1001], 'bad_batch', undef],
    ['element 1 not an object', [ev(), 5], 'not_an_object', 1],
    ['element 2 a string', [ev(), ev(), 'str'], 'not_an_object', 2],
    ['element 1 an array', [ev(), [ev()]], 'not_an_object', 1],
    ['element 1 null', [ev(), undef], 'not_an_object', 1],
    ['unknown event', { event => 'NoSuchEvent', userId => $u }, 'no_type', 0],
    ['unknown event in an array', [ev(), { event => 'NoSuchEvent', userId => $u }], 'no_type', 1],
    ['neither event nor type', [ev(), { userId => $u, photoId => 'x' }], 'no_type', 1],
    ['no owner', [ev(), ev(), { event => 'PhotoUploadStarted', photoId => 'x' }], 'no_owner', 2],
    # A jobId alone addresses the job (a message to that scope); a photoId
    # is no scope, so this one has no addressee.
    ['no owner, single', { type => 'progress', photoId => 'j' }, 'no_owner', 0],
    ['jobId an object', [ev(), ev(jobId => { a => 1 })], 'bad_field', 1],
    ['photoId an array', [ev(photoId => [1])], 'bad_field', 0],
    ['fileId a boolean', [ev(), ev(fileId => JSON::true)], 'bad_field', 1],
    ['sessionId of 129 chars', [ev(), ev(sessionId => 's' x 129)], 'bad_field', 1],
    ['projectId of 129 chars', ev(projectId => 'p' x 129), 'bad_field', 0],
    ['jobId with a space', [ev(), ev(jobId => 'a b')], 'bad_field', 1],
    ['photoId with a slash', [ev(), ev(photoId => 'a/b')], 'bad_field', 1],
    ['empty fileId', [ev(fileId => '')], 'bad_field', 0],
);
for my $case (@c422) {
    my ($name, $data, $error, $index) = @$case;
    my ($st, $h, $b) = publish('/publish', $data);
    is($st, 422, "$name: 422");
    is_error_body($name, $b, $error, $index);
    ok(!exists $b->{index}, "$name: no index") if ref $b eq 'HASH' && !defined $index;
    nothing_delivered($name);
}
{
    # 1000 events is the most one request may hold
    my @evs = map { { type => 'part_uploaded', userId => $u, fileId => 'batch1000', n => $_ } } 1 .. 1000;
    my ($st, undef, $b) = publish('/publish', \@evs);
    is($st, 202, 'array of 1000 events: 202');
    is(ref $b eq 'HASH' && $b->{accepted}, 1000, 'array of 1000 events: accepted 1000');
    my @got = $sub->events_until(1000, 10);
    is_deeply([map { $_->{json}{n} } @got], [1 .. 1000], 'array of 1000 events: all delivered in order');
}
{
    # 128 chars is still fine
    my ($st) = publish('/publish', ev(photoId => 'limit128', sessionId => 's' x 128));
    is($st, 202, 'sessionId of 128 chars: 202');
    my $e = $sub->next_event(5);
    is($e && $e->{json}{sessionId}, 's' x 128, 'sessionId of 128 chars delivered');
}

# ------------------------------------------------------------ 413
{
    my ($st, undef, $b) = publish('/publish', [ev(), ev(metadata => { blob => 'x' x 70_000 })]);
    is($st, 413, 'event over 64 KB: 413');
    is_error_body('event over 64 KB', $b, 'too_large', 1);
    nothing_delivered('event over 64 KB');

    my @big = map { ev(metadata => { blob => 'y' x 60_000 }) } 1 .. 20;
    ($st, undef, $b) = publish('/publish', \@big);
    is($st, 413, 'body over 16 x 64 KB (events of 60 KB each): 413');
    is_error_body('body over 1 MB', $b, 'too_large');
    nothing_delivered('body over 1 MB');

    # UploadProgressMaxEventSize 1024 at /publish-small
    ($st, undef, $b) = publish('/publish-small', [ev(), ev(metadata => { blob => 'z' x 2000 })]);
    is($st, 413, 'small limit: event of 2 KB: 413');
    is_error_body('small limit, 2 KB event', $b, 'too_large', 1);
    nothing_delivered('small limit, 2 KB event');

    # 1000 bytes as published, more than 1024 once id and timestamp are added
    my $e = { type => 'file_registered', userId => $u, fileId => 'grow', pad => '' };
    $e->{pad} = 'g' x (1000 - length JSON->new->encode($e));
    is(length(JSON->new->encode($e)), 1000, 'event of exactly 1000 bytes');
    ($st, undef, $b) = publish('/publish-small', [ev(), $e]);
    is($st, 413, 'small limit: 1000-byte event over 1024 after normalisation: 413');
    is(ref $b eq 'HASH' && $b->{index}, 1, 'small limit, grows over the limit: index 1');
    nothing_delivered('small limit, grows over the limit');

    my @many = map { ev(metadata => { blob => 'w' x 800 }) } 1 .. 20;
    ($st) = publish('/publish-small', \@many);
    is($st, 413, 'small limit: body of 20 events of 0.9 KB (over 16 KB): 413');
    nothing_delivered('small limit, body over 16 KB');

    my @ok = map { ev(photoId => "small$_", metadata => { blob => 'v' x 600 }) } 1 .. 12;
    my ($st2) = publish('/publish-small', \@ok);
    is($st2, 202, 'small limit: 12 events of 0.7 KB: 202');
    my @got = $sub->events_until(12, 5);
    is_deeply([map { $_->{json}{photoId} } @got], [map { "small$_" } 1 .. 12],
              'small limit: all 12 delivered in order');
}

# ------------------------------------------------------------ scope
{
    my @cases = (
        ['no scope claim', undef, 403],
        ['scope without progress:publish', 'progress:read profile', 403],
        ['scope with a longer word', 'progress:publisher', 403],
        ['scope array without it', ['progress:publisher', 'read'], 403],
        ['scope string with it', 'read progress:publish', 202],
        ['scope array with it', ['read', 'progress:publish'], 202],
    );
    for my $c (@cases) {
        my ($name, $scope, $want) = @$c;
        my $t = token(sub => 'publisher-app', scope => $scope);
        my $pid = uniq('scope');
        my ($st, $h, $b) = publish('/publish-jwt', ev(photoId => $pid),
                                   Authorization => "Bearer $t");
        is($st, $want, "publish-jwt, $name: $want");
        if ($want == 403) {
            is_error_body("publish-jwt, $name", $b, 'forbidden');
            nothing_delivered("publish-jwt, $name");
        }
        else {
            my $e = $sub->next_event(5);
            is($e && $e->{json}{photoId}, $pid, "publish-jwt, $name: delivered");
        }
    }
    my ($st) = publish('/publish-jwt', ev());
    is($st, 401, 'publish-jwt without a token: 401');
    nothing_delivered('publish-jwt without a token');
    ($st) = publish('/publish-jwt', ev(),
                    Authorization => 'Bearer ' . token(sub => 'x', scope => 'progress:publish',
                                                       key => hs_secret('hs256-k1.secret')));
    is($st, 401, 'publish-jwt with a badly signed token: 401');
    nothing_delivered('publish-jwt with a badly signed token');
}

$sub->close;
done_testing();
