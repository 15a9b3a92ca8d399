# SPDX-License-Identifier: Apache-2.0
# The status handler (JSON and Prometheus) and the mod_status section,
# checked against the traffic this test makes: publishes, deliveries,
# rejections, auth failures, resets, polls, an upload, open streams.
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

my $JSONC = JSON->new->utf8->canonical;

sub status_json {
    my ($st, $h, $b) = publish_raw('GET', '/upm-status', undef, 'Content-Type' => undef);
    die "status: $st" unless $st == 200 && ref $b eq 'HASH';
    return $b;
}

sub get_text {
    my ($path, %h) = @_;
    my ($st, $hd, $b) = publish_raw('GET', $path, undef, 'Content-Type' => undef, %h);
    return ($st, $hd, ref $b ? $JSONC->encode($b) : $b);
}

# Parses the exposition format strictly; returns { "name{labels}" => value }
# and the list of problems found.
sub parse_prom {
    my ($text) = @_;
    my (%v, @bad, %type, $family);
    for my $line (split /\n/, $text) {
        if ($line =~ /\A# TYPE (\S+) (counter|gauge|histogram)\z/) {
            $family = $1;
            push @bad, "family $1 typed twice" if $type{$1}++;
            next;
        }
        next if $line =~ /\A# HELP \S+ .+\z/;
        if ($line =~ /\A(upload_progress_[a-z_]+)(\{(?:[a-z_]+="[^"\\\n]*",?)*\})? ([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)\z/) {
            my ($name, $labels, $val) = ($1, $2 // '', $3);
            push @bad, "$name outside its family" unless defined $family
                && ($name eq $family || $name =~ /\A\Q$family\E_(bucket|sum|count)\z/);
            push @bad, "duplicate $name$labels" if exists $v{"$name$labels"};
            $v{"$name$labels"} = $val;
            next;
        }
        push @bad, "bad line: $line";
    }
    return (\%v, \@bad);
}

# Open SSE streams, whichever way they are served (worker or reactor).
sub sse_open { my ($j) = @_; ($j->{connections}{sse}{worker} // 0) + ($j->{connections}{sse}{async} // 0) }

sub d { my ($a, $b, @path) = @_; my ($x, $y) = ($a, $b);
        for (@path) { $x = $x->{$_}; $y = $y->{$_} } return ($y // 0) - ($x // 0) }

# ---------------------------------------------------------- baseline
my $s0 = status_json();
is($s0->{module}, 'mod_upload_progress', 'JSON: module');
like($s0->{version} // '', qr/\A\d+\.\d+\.\d+\z/, 'JSON: version');
is($s0->{redis}{link}, 'disabled', 'embedded mode: Redis link disabled');
ok($s0->{ring}{slots} >= 16, 'ring slots');
ok(@{ $s0->{children} } >= 1, 'at least one child');

# ------------------------------------------------------------ traffic
my $uc = uniq('status-c');
my $tc = token(sub => $uc);
my @streams = map { sse('/sse-hb', token => $tc) } 1 .. 2;
is($_->status, 200, 'stream open') for @streams;

my ($st, undef, $pb) = publish('/publish', [map { { type => 'progress', userId => $uc, n => $_ } } 1 .. 3]);
is($st, 202, 'published 3');
my @ids = @{ $pb->{ids} || [] };
for my $c (@streams) {
    my @e = $c->events_until(3, 5);
    is(scalar @e, 3, 'stream got the 3 messages');
}
($st) = publish_raw('POST', '/publish', '{not json');
is($st, 400, 'one publish refused');
($st) = get_text('/sse', Authorization => 'Bearer ' . token(sub => $uc, key => 'x' x 40));
is($st, 401, 'one token with a bad signature');
($st) = get_text('/sse');
is($st, 401, 'one request without a token');
my ($pst, undef, $pj) = get_text('/poll?since=1-1', Authorization => "Bearer $tc");
is($pst, 200, 'one poll with a reset');
($pst) = get_text("/poll?since=$ids[0]", Authorization => "Bearer $tc");
is($pst, 200, 'one poll replaying 2 messages');

my $s1 = status_json();
is(d($s0, $s1, qw(events publish)), 3, 'events.publish +3');
is(d($s0, $s1, qw(events total)), 3, 'events.total +3');
is(d($s0, $s1, qw(events track)), 0, 'events.track +0');
is(d($s0, $s1, qw(events rejected)), 1, 'events.rejected +1');
is(d($s0, $s1, qw(messages delivered)), 8, 'messages.delivered +8 (2 streams x 3, 2 by poll)');
is(d($s0, $s1, qw(messages replayed)), 2, 'messages.replayed +2');
is(d($s0, $s1, qw(messages resets)), 1, 'messages.resets +1');
is(d($s0, $s1, qw(auth_failures bad_signature)), 1, 'auth_failures.bad_signature +1');
is(d($s0, $s1, qw(auth_failures missing)), 1, 'auth_failures.missing +1');
is(d($s0, $s1, qw(auth_failures total)), 2, 'auth_failures.total +2');
is(d($s0, $s1, qw(requests poll)), 2, 'requests.poll +2');
is(d($s0, $s1, qw(requests sse_opened)), 2, 'requests.sse_opened +2');
is(d($s0, $s1, qw(latency count)), 6, 'latency.count +6 (live deliveries only)');
ok(d($s0, $s1, qw(latency sum_seconds)) >= 0, 'latency sum grows');
ok(sse_open($s1) >= 2, 'connections.sse counts the open streams');
{
    my $sum = 0;
    $sum += $_->{connections}{total} for @{ $s1->{children} };
    is($sum, $s1->{connections}{total}, 'children\'s connections add up to the total');
    my $del = 0;
    $del += $_->{delivered} for @{ $s1->{children} };
    ok($del >= 8, 'children\'s deliveries include ours');
}
is($s1->{ring}{last_id}, $ids[-1], 'ring.last_id is the last message published');
{
    my ($e, $last) = $s1->{ring}{last_id} =~ /\A(\d+)-(\d+)\z/;
    my (undef, $old) = ($s1->{ring}{oldest_id} // '') =~ /\A(\d+)-(\d+)\z/;
    is($s1->{ring}{messages}, $last - $old + 1, 'ring.messages = last - oldest + 1');
    ok($s1->{ring}{bytes_used} > 0 && $s1->{ring}{bytes_used} <= $s1->{ring}{bytes},
       'ring.bytes_used within ring.bytes');
}
{
    my @b = @{ $s1->{latency}{buckets} };
    ok(!grep({ $b[$_]{count} < $b[$_ - 1]{count} } 1 .. $#b), 'JSON latency buckets cumulative');
    is($b[-1]{le}, '+Inf', 'last bucket +Inf');
    is($b[-1]{count}, $s1->{latency}{count}, '+Inf bucket = count');
}

# -------------------------------------------------------- Prometheus
{
    my ($pst2, $ph, $text) = get_text('/upm-status?format=prometheus');
    is($pst2, 200, 'Prometheus: 200');
    like($ph->header('Content-Type') // '', qr{\Atext/plain; version=0\.0\.4}, 'Prometheus content type');
    my ($v, $bad) = parse_prom($text);
    is_deeply($bad, [], 'every line is valid exposition format');
    my $s2 = status_json();      # no traffic in between: counters agree
    is($v->{'upload_progress_events_received_total{source="publish"}'}, $s2->{events}{publish},
       'events_received_total{publish} = JSON');
    is($v->{'upload_progress_events_received_total{source="track"}'}, $s2->{events}{track},
       'events_received_total{track} = JSON');
    is($v->{'upload_progress_messages_delivered_total'}, $s2->{messages}{delivered},
       'messages_delivered_total = JSON');
    is($v->{'upload_progress_messages_dropped_total{reason="throttle"}'},
       $s2->{messages}{dropped}{throttle}, 'messages_dropped_total{throttle} = JSON');
    is($v->{'upload_progress_auth_failures_total{reason="bad_signature"}'},
       $s2->{auth_failures}{bad_signature}, 'auth_failures_total{bad_signature} = JSON');
    is($v->{'upload_progress_resets_sent_total'}, $s2->{messages}{resets}, 'resets = JSON');
    is($v->{'upload_progress_poll_requests_total'}, $s2->{requests}{poll}, 'poll requests = JSON');
    is($v->{'upload_progress_redis_link{state="disabled"}'}, 1, 'redis_link{disabled} 1');
    is($v->{'upload_progress_redis_link{state="up"}'}, 0, 'redis_link{up} 0');
    ok(exists $v->{'upload_progress_redis_reconnects_total'}, 'redis_reconnects_total present');
    is($v->{'upload_progress_ring_slots'}, $s2->{ring}{slots}, 'ring_slots');
    is($v->{'upload_progress_ring_messages'}, $s2->{ring}{messages}, 'ring_messages');
    my ($last) = $s2->{ring}{last_id} =~ /-(\d+)\z/;
    is($v->{'upload_progress_ring_last_seq'}, $last, 'ring_last_seq');
    ok($v->{'upload_progress_connections{transport="sse",mode="worker"}'}
       + $v->{'upload_progress_connections{transport="sse",mode="async"}'} >= 2,
       'connections{sse,...} counts the open streams');
    ok(exists $v->{'upload_progress_connections{transport="websocket",mode="async"}'},
       'connections by transport and mode: all combinations present');
    my @le = grep { /\Aupload_progress_delivery_latency_seconds_bucket/ } keys %$v;
    cmp_ok(scalar @le, '>=', 10, 'latency histogram buckets');
    my @sorted = sort { ($a =~ /le="([^"]+)"/)[0] eq '+Inf' ? 1 : ($b =~ /le="([^"]+)"/)[0] eq '+Inf' ? -1
                        : ($a =~ /le="([^"]+)"/)[0] <=> ($b =~ /le="([^"]+)"/)[0] } @le;
    my @cum = map { $v->{$_} } @sorted;
    ok(!grep({ $cum[$_] < $cum[$_ - 1] } 1 .. $#cum), 'histogram buckets cumulative');
    is($v->{$sorted[-1]}, $v->{'upload_progress_delivery_latency_seconds_count'}, '+Inf = _count');
    is($v->{'upload_progress_delivery_latency_seconds_count'}, $s2->{latency}{count},
       'latency count = JSON');
    my %pids = map { /pid="(\d+)"/ ? ($1 => 1) : () } grep { /\Aupload_progress_child_/ } keys %$v;
    is(scalar(keys %pids), $v->{'upload_progress_children'}, 'child_* series for every child');
    my $sum = 0;
    $sum += $v->{$_} for grep { /\Aupload_progress_child_connections\{/ } keys %$v;
    my $tot = 0;
    $tot += $v->{$_} for grep { /\Aupload_progress_connections\{/ } keys %$v;
    is($sum, $tot, 'child connections add up to the totals');
    ok(!grep({ /_total\{|_total\z/ && !/\Aupload_progress_[a-z_]+_total/ } keys %$v),
       'counters are named *_total');

    # Prometheus' own Accept header selects the text format too.
    my (undef, $ah) = get_text('/upm-status',
        Accept => 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5');
    like($ah->header('Content-Type') // '', qr{\Atext/plain; version=0\.0\.4}, 'Accept: version=0.0.4');
    my ($bst, undef, $berr) = get_text('/upm-status?format=xml');
    is($bst, 400, 'format=xml: 400');
}

# ---------------------------------------------------------- mod_status
{
    my ($mst, undef, $auto) = get_text('/server-status?auto');
    is($mst, 200, 'server-status?auto: 200');
    my %a = $auto =~ /^(UploadProgress\w+): (.*)$/mg;
    my $s3 = status_json();
    is($a{UploadProgressMessagesDelivered}, $s3->{messages}{delivered},
       '?auto UploadProgressMessagesDelivered = JSON');
    is($a{UploadProgressEventsReceived}, $s3->{events}{total}, '?auto UploadProgressEventsReceived');
    is($a{UploadProgressRedisLink}, 'disabled', '?auto UploadProgressRedisLink');
    is($a{UploadProgressRingLastId}, $s3->{ring}{last_id}, '?auto UploadProgressRingLastId');
    is($a{UploadProgressAuthFailures}, $s3->{auth_failures}{total}, '?auto UploadProgressAuthFailures');
    ok($a{UploadProgressConnections} >= 2, '?auto UploadProgressConnections');
    my ($hst, undef, $html) = get_text('/server-status');
    like($html, qr{<h2>mod_upload_progress [\d.]+</h2>\s*<table}, 'HTML section');
}

# -------------------------------------------- streams closing are counted
{
    my $open = sse_open(status_json());
    $_->close for @streams;
    my $now = $open;
    my $deadline = time + 6;
    while (time < $deadline) {
        $now = sse_open(status_json());
        last if $now <= $open - 2;
        sleep 0.2;
    }
    ok($now <= $open - 2, "closed streams leave the gauge ($open -> $now)");
}

# ----------------------------------------------------------- an upload
{
    my $b0 = status_json();
    my $id = uniq('st-up');
    my $w = sse('/sse', token => $tc);
    my $u = UPM::Upload->start('/track/upload.pl', size => 50000, token => $tc, id => $id);
    $u->send(20000);
    my $mid;
    my $deadline = time + 5;
    while (time < $deadline) {
        $mid = status_json();
        last if $mid->{uploads}{active} > $b0->{uploads}{active};
        sleep 0.05;
    }
    is($mid->{uploads}{active} - $b0->{uploads}{active}, 1, 'uploads.active +1 during the upload');
    $u->send_all(pause => 0.02);
    is($u->response(10)->{status}, 200, 'upload: 200');
    my ($end, @before) = $w->until_field(type => 'upload_completed', 10);
    ok($end, 'the uploader saw it complete');
    my $b1 = status_json();
    is(d($b0, $b1, qw(uploads started)), 1, 'uploads.started +1');
    is(d($b0, $b1, qw(uploads completed)), 1, 'uploads.completed +1');
    is(d($b0, $b1, qw(uploads failed)), 0, 'uploads.failed +0');
    is(d($b0, $b1, qw(uploads bytes)), 50000, 'uploads.bytes +50000');
    is($b1->{uploads}{active}, $b0->{uploads}{active}, 'uploads.active back');
    is(d($b0, $b1, qw(events track)), scalar(@before) + 1,
       'events.track = the messages the uploader received');
    is(d($b0, $b1, qw(events publish)), 0, 'events.publish +0');
    $w->close;

    # A failed one, by reason.
    my $f = UPM::Upload->start('/track/upload.pl', size => 50000, token => $tc, id => uniq('st-f'));
    $f->send(1000);
    $f->abort;
    my $b2;
    $deadline = time + 5;
    while (time < $deadline) {
        $b2 = status_json();
        last if d($b1, $b2, qw(uploads failed));
        sleep 0.05;
    }
    is(d($b1, $b2, qw(uploads failed)), 1, 'uploads.failed +1');
    is(d($b1, $b2, qw(uploads failed_by_reason aborted)), 1, 'failed_by_reason.aborted +1');
}

done_testing();
