# SPDX-License-Identifier: Apache-2.0
# Isolation with messages addressed to users and to scopes, proved at
# random: 50 connections (SSE, WebSocket and polling) with random grants
# (the upl claim and UploadProgressJWTIdClaim claims) and random narrowings
# (URL query, WebSocket subscribe), then 100,000 random messages in batches:
# some to a user (userId, maybe with ids), some to a session, job, project
# or file (no userId).  Every connection must receive exactly the messages
# it is entitled to, in publish order, once; then a replay after a
# reconnect must give exactly the entitled messages after its id.  Also
# through Redis pub/sub and Redis Streams (fewer messages: the modes share
# the matching, what differs is the way in).
#
# Entitled (docs/security.md): every narrowing holds, and the message is
# the connection's user's own, or one of its narrowed ids is granted by
# the token.  A message to a scope has no owner: only the second way.
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

my $seed = $ENV{UPM_SEED} || (time ^ $$) & 0xffffff;
srand($seed);
note("seed $seed (UPM_SEED=$seed to repeat)");

my $mode = UPM::Server::async_mode();
my @USERS = map { "u$_" } 0 .. 3;
my %POOL = (sessionId => [map { "s$_" } 0 .. 3], jobId => [map { "j$_" } 0 .. 3],
            projectId => [map { "p$_" } 0 .. 3], fileId => [map { "f$_" } 0 .. 3]);
my @FIELDS = qw(jobId sessionId projectId fileId);
my %GRANT = (sessionId => 'sessions', jobId => 'jobs', projectId => 'projects',
             fileId => 'files');
# The id claims configured below: the claim that grants each field.
my %IDCLAIM = (sessionId => 'sid', jobId => 'jid', projectId => 'pid', fileId => 'fid');

my $CONF = <<"CONF";
UploadProgressAsync $mode
UploadProgressReplay 16384
UploadProgressReplayMemory 32M
<Location "/sse">
    UploadProgressJWTIdClaim session sid
    UploadProgressJWTIdClaim job jid
    UploadProgressJWTIdClaim project pid
    UploadProgressJWTIdClaim file fid
    UploadProgressSendQueue 4M
</Location>
<Location "/ws">
    UploadProgressJWTIdClaim session sid
    UploadProgressJWTIdClaim job jid
    UploadProgressJWTIdClaim project pid
    UploadProgressJWTIdClaim file fid
    UploadProgressSendQueue 4M
</Location>
CONF

sub pick { $_[int rand @_] }

# ---------------------------------------------------------------- clients

package FastSSE;
our @ISA = ('UPM::Node::SSE');
# Only the message numbers and ids: decoding 100,000s of messages with a
# pure-Perl JSON would take longer than the server needs to send them.
sub _parse {
    my ($self) = @_;
    my $t = $self->{text} // '';
    my $end = rindex($t, "\n\n");
    return if $end < 0;
    my $chunk = substr($t, 0, $end + 2, '');
    $self->{text} = $t;
    while ($chunk =~ /^data: (.*)$/mg) {
        my $d = $1;
        if ($d =~ /"n":(\d+)/) {
            push @{ $self->{got} }, $1 + 0;
            ($self->{last}) = $d =~ /"id":"([^"]+)"/;
        }
        elsif ($d =~ /"type":"reset"/) {
            $self->{resets}++;
        }
    }
}

package main;

sub ws_collect {
    my ($c) = @_;
    my $ws = $c->{ws};
    $ws->_fill(0);
    while (my $f = $ws->_parse) {
        if ($f->{opcode} == 9) {
            $ws->send_frame(opcode => 10, payload => $f->{payload});
        }
        elsif ($f->{opcode} == 1) {
            my $p = $f->{payload};
            if ($p =~ /"n":(\d+)/) {
                push @{ $c->{got} }, $1 + 0;
                ($c->{last}) = $p =~ /"id":"([^"]+)"/;
            }
            elsif ($p =~ /"type":"(reset|error)"/) {
                $c->{resets}++;
                $c->{odd} = $p;
            }
            elsif ($p =~ /"type":"subscribed"/) {
                $c->{acks}++;
            }
        }
    }
}

sub poll_once {
    my ($node, $c) = @_;
    while (1) {
        my $q = join '&', map { "$_=$c->{narrow}{$_}" } sort keys %{ $c->{narrow} };
        $q .= ($q ? '&' : '') . "since=$c->{since}";
        my ($st, $b) = $node->http('GET', "/poll?$q", undef,
                                   { Authorization => "Bearer $c->{token}" });
        return 0 unless $st && $st == 200;
        my ($last) = $b =~ /"lastEventId":"([^"]+)"/;
        $c->{since} = $last if $last;
        push @{ $c->{got} }, map { $_ + 0 } $b =~ /"n":(\d+)/g;
        $c->{resets}++ if $b =~ /"type":"reset"/;
        return 1 unless $b =~ /"more":true/;
    }
}

# A random connection: user, grants (upl lists and id claims), narrowing.
sub random_conn {
    my ($i) = @_;
    my %claims;
    my %granted;
    for my $f (@FIELDS) {
        for my $id (@{ $POOL{$f} }) {
            next unless rand() < 0.2;
            $granted{$f}{$id} = 1;
            if (rand() < 0.5) {
                push @{ $claims{upl}{ $GRANT{$f} } }, $id;
            }
            else {
                push @{ $claims{ $IDCLAIM{$f} } }, $id;
            }
        }
    }
    # An id claim that is a single string grants that id too.
    for my $k (values %IDCLAIM) {
        $claims{$k} = $claims{$k}[0] if ref $claims{$k} && @{ $claims{$k} } == 1 && rand() < 0.5;
    }
    my $kind = $i < 32 ? 'sse' : $i < 46 ? 'ws' : 'poll';
    my %narrow;
    my @subs;
    my $r = rand();
    if ($r < 0.2) {
        # the user's whole stream
    }
    elsif ($kind eq 'ws' && $r < 0.7) {
        # subscriptions, each one id (several: a message matching any)
        for (1 .. 1 + int rand 3) {
            my $f = pick(@FIELDS);
            push @subs, { $f => pick(@{ $POOL{$f} }) };
        }
    }
    else {
        my $f = pick(@FIELDS);
        $narrow{$f} = pick(@{ $POOL{$f} });
        if (rand() < 0.3) {
            my $g = pick(grep { $_ ne $f } @FIELDS);
            $narrow{$g} = pick(@{ $POOL{$g} });
        }
    }
    return { i => $i, kind => $kind, user => pick(@USERS), claims => \%claims,
             granted => \%granted, narrow => \%narrow, subs => \@subs, got => [] };
}

sub entitled_by {
    my ($c, $narrow, $m) = @_;
    for my $f (keys %$narrow) {
        return 0 unless defined $m->{$f} && $m->{$f} eq $narrow->{$f};
    }
    return 1 if defined $m->{userId} && $m->{userId} eq $c->{user};
    for my $f (keys %$narrow) {
        return 1 if $c->{granted}{$f}{ $narrow->{$f} };
    }
    return 0;
}

sub entitled {
    my ($c, $m) = @_;
    if (@{ $c->{subs} }) {
        for my $s (@{ $c->{subs} }) {
            return 1 if entitled_by($c, { %{ $c->{narrow} }, %$s }, $m);
        }
        return 0;
    }
    return entitled_by($c, $c->{narrow}, $m);
}

sub open_conn {
    my ($node, $c, %o) = @_;
    $c->{token} = $node->token($c->{user}, %{ $c->{claims} });
    my $q = join '&', map { "$_=$c->{narrow}{$_}" } sort keys %{ $c->{narrow} };
    if ($c->{kind} eq 'sse') {
        my $s = FastSSE->new(port => $node->port, token => $c->{token},
                             path => '/sse' . ($q ? "?$q" : ''),
                             defined $o{last_id} ? (last_id => $o{last_id}) : ());
        $s->{sock}->blocking(0);
        $c->{sse} = $s;
        return ($s->status // 0) == 200;
    }
    if ($c->{kind} eq 'ws') {
        my $path = '/ws' . ($q ? "?$q" : '');
        my $ws = UPM::WS->connect($path, token => $c->{token}, port => $node->port);
        return 0 unless ($ws->status // 0) == 101;
        $c->{ws} = $ws;
        my $hello = $ws->next_json(5);
        return 0 unless $hello && $hello->{type} eq 'connected';
        $c->{acks} = 0;
        $ws->send_json({ type => 'subscribe', %$_ }) for @{ $c->{subs} };
        my $t0 = time;
        while ($c->{acks} < @{ $c->{subs} } && time - $t0 < 5) {
            ws_collect($c);
            sleep 0.01;
        }
        if (defined $o{last_id}) {
            $ws->send_json({ type => 'resume', lastEventId => $o{last_id} });
        }
        return $c->{acks} == @{ $c->{subs} };
    }
    # poll: start from now (or the given id)
    $c->{since} = $o{last_id} // '';
    if (!defined $o{last_id}) {
        my ($st, $b) = $node->http('GET', '/poll' . ($q ? "?$q" : ''), undef,
                                   { Authorization => "Bearer $c->{token}" });
        ($c->{since}) = ($b // '') =~ /"lastEventId":"([^"]+)"/;
        return $st && $st == 200 && $c->{since};
    }
    return 1;
}

sub close_conn {
    my ($c) = @_;
    $c->{sse}->close if $c->{sse};
    $c->{ws}->close if $c->{ws};
    delete @$c{qw(sse ws)};
}

# Reads every connection until each holds `want` messages (or timeout).
sub pump_all {
    my ($node, $conns, $want, $timeout) = @_;
    my $deadline = time + $timeout;
    for my $c (grep { $_->{kind} eq 'poll' } @$conns) {
        poll_once($node, $c);
    }
    while (time < $deadline) {
        my @short = grep { $_->{kind} ne 'poll' && @{ $_->{got} } < $want->($_) } @$conns;
        last unless @short;
        my $sel = IO::Select->new;
        my %by;
        for my $c (@short) {
            my $sock = $c->{sse} ? $c->{sse}{sock} : $c->{ws}{sock};
            next unless $sock;
            $sel->add($sock);
            $by{ fileno $sock } = $c;
        }
        last unless $sel->count;
        for my $fh ($sel->can_read(0.2)) {
            my $c = $by{ fileno $fh };
            if ($c->{sse}) {
                $c->{sse}->_read;
                $c->{got} = $c->{sse}{got} || [];
                $c->{last} = $c->{sse}{last};
                $c->{resets} = $c->{sse}{resets};
            }
            else {
                ws_collect($c);
            }
        }
    }
}

# ---------------------------------------------------------------- messages

my $N = 0;
sub random_message {
    my %m = (n => ++$N);
    if (rand() < 0.5) {
        $m{userId} = pick(@USERS);
        for my $f (@FIELDS) {
            $m{$f} = pick(@{ $POOL{$f} }) if rand() < 0.5;
        }
    }
    else {
        my @f = grep { rand() < 0.4 } @FIELDS;
        @f = (pick(@FIELDS)) unless @f;
        $m{$_} = pick(@{ $POOL{$_} }) for @f;
    }
    return \%m;
}

sub encode_message {
    my ($m) = @_;
    # by hand: JSON::PP would be the slowest part of the test
    return '{"type":"file_registered","n":' . $m->{n}
         . join('', map { defined $m->{$_} ? qq(,"$_":"$m->{$_}") : '' } 'userId', @FIELDS)
         . '}';
}

sub run_mode {
    my (%o) = @_;
    my $label = $o{label};
    my $node = UPM::Node->new(%{ $o{node} }, conf => $CONF . <<'POLL')->start;
<Location "/poll">
    SetHandler upload-progress-poll
    AuthType JWT
    AuthName "upload-progress"
    UploadProgressJWTKey HS256 file:@SECRET@
    UploadProgressJWTIdClaim session sid
    UploadProgressJWTIdClaim job jid
    UploadProgressJWTIdClaim project pid
    UploadProgressJWTIdClaim file fid
    Require valid-user
</Location>
POLL
    my @conns = map { random_conn($_) } 0 .. $o{conns} - 1;
    my $open = 0;
    for my $c (@conns) {
        if (open_conn($node, $c)) {
            $open++;
        }
        else {
            diag("$label: $c->{kind} connection $c->{i} did not open");
        }
    }
    is($open, scalar @conns, "$label: $open connections open (SSE, WebSocket, polling)");

    my @msgs;
    my %want = map { $_->{i} => [] } @conns;
    my $t0 = time;
    for my $b (1 .. $o{batches}) {
        my @batch = map { random_message() } 1 .. $o{batch};
        for my $m (@batch) {
            for my $c (@conns) {
                push @{ $want{ $c->{i} } }, $m->{n} if entitled($c, $m);
            }
        }
        push @msgs, @batch;
        my $body = '[' . join(',', map { encode_message($_) } @batch) . ']';
        my ($st, $rb) = $node->http('POST', '/publish', $body,
                                    { 'Content-Type' => 'application/json' });
        is($st, 202, "$label: batch $b accepted") unless $st && $st == 202;
        # Keep the readers close behind: a send queue holds a few batches.
        pump_all($node, \@conns, sub { scalar @{ $want{ $_[0]{i} } } }, 20) if $b % 5 == 0;
    }
    pump_all($node, \@conns, sub { scalar @{ $want{ $_[0]{i} } } }, 30);
    my $secs = time - $t0;
    # A little longer: whatever should not have arrived would now.
    sleep 0.3;
    pump_all($node, \@conns, sub { 1e9 }, 0.3);

    my ($exact, $deliveries, $scoped_deliveries) = (0, 0, 0);
    my %is_scoped = map { $_->{n} => !defined $_->{userId} } @msgs;
    for my $c (@conns) {
        my $w = $want{ $c->{i} };
        $deliveries += @$w;
        $scoped_deliveries += grep { $is_scoped{$_} } @$w;
        if ("@{ $c->{got} }" eq "@$w" && !$c->{resets}) {
            $exact++;
            next;
        }
        my %g = map { $_ => 1 } @{ $c->{got} };
        my %e = map { $_ => 1 } @$w;
        my @extra = grep { !$e{$_} } @{ $c->{got} };
        my @missing = grep { !$g{$_} } @$w;
        diag(sprintf "%s conn %d (%s user %s narrow {%s} subs [%s] granted {%s}): "
             . "got %d want %d, %d not entitled (first %s), %d missing (first %s)%s",
             $label, $c->{i}, $c->{kind}, $c->{user},
             join(',', map { "$_=$c->{narrow}{$_}" } sort keys %{ $c->{narrow} }),
             join(',', map { join '=', %$_ } @{ $c->{subs} }),
             join(',', map { my $f = $_; map { "$f=$_" } sort keys %{ $c->{granted}{$f} } }
                       sort keys %{ $c->{granted} }),
             scalar @{ $c->{got} }, scalar @$w, scalar @extra, $extra[0] // '-',
             scalar @missing, $missing[0] // '-',
             $c->{resets} ? " and $c->{resets} resets/errors ($c->{odd})" : '');
    }
    is($exact, scalar @conns, "$label: every connection got exactly its messages, in order "
       . "($deliveries deliveries, $scoped_deliveries of them to scopes, of "
       . scalar(@msgs) . " messages)");
    note(sprintf "%s: %d messages delivered in %.1f s", $label, scalar @msgs, $secs);
    ok($scoped_deliveries > 0 && $scoped_deliveries < $deliveries,
       "$label: both kinds of message were delivered");

    # Replay: each SSE and WebSocket connection reconnects from an id in
    # the middle of what it received (within the ring) and must get
    # exactly the entitled messages after it; a poll from that id too.
    my @again = grep { $_->{kind} ne 'poll' && @{ $_->{got} } > 10 } @conns;
    @again = @again[0 .. 9] if @again > 10;
    for my $c (@again) {
        # Resume from the last id seen; what is published meanwhile is
        # what the replay must give.
        close_conn($c);
        $c->{resume_from} = $c->{last};
        $c->{got} = [];
        $c->{sse}{got} = [] if $c->{sse};
    }
    my @tail = map { random_message() } 1 .. 500;
    my $body = '[' . join(',', map { encode_message($_) } @tail) . ']';
    my ($st) = $node->http('POST', '/publish', $body, { 'Content-Type' => 'application/json' });
    is($st, 202, "$label: the tail published while they were away");
    for my $c (@again) {
        open_conn($node, $c, last_id => $c->{resume_from}) or diag("reopen failed");
        $c->{got} = $c->{sse} ? ($c->{sse}{got} ||= []) : ($c->{got} || []);
    }
    my %twant;
    for my $c (@again) {
        $twant{ $c->{i} } = [map { $_->{n} } grep { entitled($c, $_) } @tail];
    }
    pump_all($node, \@again, sub { scalar @{ $twant{ $_[0]{i} } } }, 20);
    sleep 0.2;
    pump_all($node, \@again, sub { 1e9 }, 0.2);
    my $rexact = grep { "@{ $_->{got} }" eq "@{ $twant{ $_->{i} } }" } @again;
    for my $c (grep { "@{ $_->{got} }" ne "@{ $twant{ $_->{i} } }" } @again) {
        diag("$label replay conn $c->{i} ($c->{kind}): got @{ $c->{got} }[0..5] want "
             . "@{ $twant{ $c->{i} } }[0..5] (" . scalar(@{ $c->{got} }) . " vs "
             . scalar(@{ $twant{ $c->{i} } }) . ")");
    }
    is($rexact, scalar @again, "$label: " . scalar(@again) . " connections resumed after their "
       . "last id and got exactly their messages of the tail");
    close_conn($_) for @conns;
    $node->stop;
}

my $ALL = $ENV{UPM_SCOPE_MESSAGES} || 100_000;
run_mode(label => 'embedded', node => { children => 2 }, conns => 50,
         batches => int($ALL / 1000), batch => 1000);
{
    my $redis = UPM::Redis->new(port => 6400)->start;
    run_mode(label => 'pub/sub', node => { children => 2, redis => $redis->url },
             conns => 50, batches => 10, batch => 1000);
    $redis->stop;
}
{
    my $redis = UPM::Redis->new(port => 6401)->start;
    run_mode(label => 'Streams', node => { children => 2, redis => $redis->url,
                                           stream => 'upm:scope' },
             conns => 50, batches => 10, batch => 1000);
    $redis->stop;
}
done_testing;
