# SPDX-License-Identifier: Apache-2.0
package UPM::Test;

# Helpers shared by the mod_upload_progress test files: tokens, publishing,
# and a Server-Sent Events client that never blocks without a timeout.

use strict;
use warnings;

use Exporter 'import';
use File::Basename qw(dirname);
use File::Spec;
use JSON ();
use MIME::Base64 qw(encode_base64url);
use Crypt::JWT qw(encode_jwt);
use Crypt::PK::RSA;
use Crypt::PK::ECC;
use LWP::UserAgent;
use HTTP::Request;
use Time::HiRes qw(time sleep);
use Apache::Test ();
use UPM::Wire;
use IO::Select;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_RCVBUF pack_sockaddr_in inet_aton);

our @EXPORT = qw(
    token none_token hs_secret key_text
    publish publish_raw sse port t_dir t_logs uniq
    id_parts id_cmp ids_increasing epoch_of
    wait_all file_text server_pid children_of raw_http check_delivery
);

my $JSON = JSON->new->utf8->canonical;

# --------------------------------------------------------------- basics

sub t_dir { File::Spec->rel2abs(dirname(dirname(dirname(__FILE__)))) }

sub port {
    my $cfg = Apache::Test::config();
    return $cfg->{vars}->{port};
}

sub t_logs { File::Spec->catdir(t_dir(), 'logs') }

sub file_text {
    my ($path) = @_;
    open my $fh, '<', $path or die "open $path: $!";
    local $/;
    my $s = <$fh>;
    return defined $s ? $s : '';
}

# Text of a key file under t/keys (PEM text, or a secret without its newline).
sub key_text {
    my ($name) = @_;
    my $s = file_text(File::Spec->catfile(t_dir(), 'keys', $name));
    $s =~ s/\r?\n\z// if $name =~ /\.secret\z/;
    return $s;
}

sub hs_secret { key_text($_[0] || 'hs256.secret') }

my $uniq_n = 0;

# A name no other test run or test file uses ("label-<pid>-<n>-<rand>").
sub uniq {
    my ($label) = @_;
    $uniq_n++;
    return sprintf '%s-%d-%d-%04x', ($label || 'u'), $$, $uniq_n,
        int(rand(65536));
}

# pid of the test server's parent process (t/logs/httpd.pid)
sub server_pid {
    my $f = File::Spec->catfile(t_logs(), 'httpd.pid');
    return undef unless -e $f;
    my $s = file_text($f);
    return $s =~ /(\d+)/ ? $1 : undef;
}

# pids of the processes whose parent is $ppid
sub children_of {
    my ($ppid) = @_;
    my @kids;
    opendir my $d, '/proc' or die "/proc: $!";
    for my $pid (grep { /\A\d+\z/ } readdir $d) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh>;
        next unless defined $stat;
        my ($rest) = $stat =~ /\A\d+ \(.*\) (.*)\z/s or next;
        my (undef, $pp) = split ' ', $rest;
        push @kids, $pid if $pp == $ppid;
    }
    return sort { $a <=> $b } @kids;
}

# --------------------------------------------------------------- tokens

# token(sub => 'alice', scope => '...', alg => 'HS256', key => ..., kid => 'k1')
# Claims default to iat = now and exp = now + 3600; a claim given as undef
# is left out.  alg defaults to HS256 with t/keys/hs256.secret; RS256 and
# ES256 default to t/keys/rsa.pem and t/keys/ec256.pem.  key may be a
# secret string (HS*), a PEM string or a Crypt::PK object.
sub token {
    my (%a) = @_;
    my $alg = delete $a{alg} || 'HS256';
    my $key = delete $a{key};
    my $kid = delete $a{kid};
    my %claims = (iat => time_int(), exp => time_int() + 3600, %a);
    for (keys %claims) { delete $claims{$_} unless defined $claims{$_} }

    if (!defined $key) {
        if    ($alg =~ /^HS/) { $key = hs_secret() }
        elsif ($alg =~ /^RS/) { $key = key_text('rsa.pem') }
        elsif ($alg =~ /^ES/) { $key = key_text('ec256.pem') }
        else  { die "no default key for $alg" }
    }
    if (!ref $key && $alg =~ /^RS/) { $key = Crypt::PK::RSA->new(\$key) }
    if (!ref $key && $alg =~ /^ES/) { $key = Crypt::PK::ECC->new(\$key) }

    my %hdr = (typ => 'JWT');
    $hdr{kid} = $kid if defined $kid;
    return encode_jwt(payload => \%claims, alg => $alg, key => $key,
                      extra_headers => \%hdr);
}

# A token with {"alg":"none"} and an empty signature, built by hand.
sub none_token {
    my (%claims) = @_;
    %claims = (iat => time_int(), exp => time_int() + 3600, %claims);
    my $h = encode_base64url($JSON->encode({ alg => 'none', typ => 'JWT' }));
    my $p = encode_base64url($JSON->encode(\%claims));
    return "$h.$p.";
}

sub time_int { int(CORE::time()) }

# ------------------------------------------------------------ publishing

my $ua;

sub _ua {
    $ua ||= LWP::UserAgent->new(timeout => 60, keep_alive => 0);
    return $ua;
}

# publish($path, $perl_data_or_json_text, %headers)
# -> ($status, $headers (HTTP::Headers), $body: decoded JSON or raw text)
# Content-Type defaults to application/json; pass 'Content-Type' => undef
# to send none.
sub publish {
    my ($path, $data, %h) = @_;
    my $body = ref $data ? $JSON->encode($data) : $data;
    return publish_raw('POST', $path, $body, %h);
}

sub publish_raw {
    my ($method, $path, $body, %h) = @_;
    my $ct = exists $h{'Content-Type'} ? delete $h{'Content-Type'}
                                       : 'application/json';
    my $req = HTTP::Request->new($method => 'http://127.0.0.1:' . port() . $path);
    $req->header('Content-Type' => $ct) if defined $ct;
    $req->header($_ => $h{$_}) for keys %h;
    if (defined $body) {
        $req->content($body);
        $req->header('Content-Length' => length $body);
    }
    my $res = _ua()->request($req);
    my $content = $res->decoded_content(charset => 'none');
    $content = $res->content unless defined $content;
    my $decoded = eval { JSON->new->utf8->decode($content) };
    return ($res->code, $res->headers, defined $decoded ? $decoded : $content);
}

# tcp_connect($port, timeout => 5, rcvbuf => bytes, local_addr => ...):
# a connected socket to 127.0.0.1:$port, or dies.  rcvbuf: a small
# receive buffer, set before connecting (it bounds the window), so that a
# client that stops reading stalls the server soon.
sub tcp_connect {
    my ($port, %o) = @_;
    if ($o{rcvbuf}) {
        my $sock = IO::Socket::INET->new(Proto => 'tcp') or die "socket: $!";
        setsockopt($sock, SOL_SOCKET, SO_RCVBUF, $o{rcvbuf}) or die "SO_RCVBUF: $!";
        $sock->connect(pack_sockaddr_in($port, inet_aton('127.0.0.1')))
            or die "connect 127.0.0.1:$port: $!";
        return $sock;
    }
    return IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp',
        Timeout => $o{timeout} || 5,
        ($o{local_addr} ? (LocalAddr => $o{local_addr}) : ()),
    ) || die "connect 127.0.0.1:$port: $!";
}

# raw_http($request_text_or_coderef, $timeout): sends a request over a new
# connection and returns (status, headers hash (lower-case names), body,
# raw response).  With a code ref, it is called with the socket and does
# the writing itself (for Expect: 100-continue and the like).  The response
# is read until the server closes the connection or the timeout passes;
# send "Connection: close".
sub raw_http {
    my ($req, $timeout) = @_;
    $timeout ||= 10;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => port(),
                                     Proto => 'tcp', Timeout => $timeout)
        or die "connect: $!";
    if (ref $req eq 'CODE') { $req->($sock) }
    else { syswrite($sock, $req) }
    my $resp = '';
    my $deadline = time + $timeout;
    my $sel = IO::Select->new($sock);
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread($sock, my $buf, 65536);
        last unless $n;
        $resp .= $buf;
    }
    close $sock;
    my ($st, $h, $body) = UPM::Wire::response($resp);
    return ($st, $h, $body, $resp);
}

# ------------------------------------------------------------------ ids

# "<epoch>-<seq>" -> (epoch, seq); () when malformed.
sub id_parts {
    my ($id) = @_;
    return () unless defined $id && $id =~ /\A(\d+)-(\d+)\z/;
    return ($1, $2);
}

sub epoch_of { (id_parts($_[0]))[0] }

sub id_cmp {
    my ($a, $b) = @_;
    my @a = id_parts($a);
    my @b = id_parts($b);
    return $a[0] <=> $b[0] || $a[1] <=> $b[1];
}

sub ids_increasing {
    my (@ids) = @_;
    for my $i (0 .. $#ids) {
        return 0 unless id_parts($ids[$i]);
        return 0 if $i && id_cmp($ids[$i - 1], $ids[$i]) >= 0;
    }
    return 1;
}

# ------------------------------------------------------------- delivery

# What the reliability tests assert of one client: it received every
# message published to it, in order, each once; or, where it got a
# `reset`, exactly the messages newer than the reset's id from there on
# (a client re-reads its state at a reset), again in order and each once.
#
# check_delivery(\@received, \@published_ids, reasons => [...],
#                unanswered => $n)
# @received: hashes with id, type ('reset' or anything else) and reason
# (for resets).  @published_ids: every id accepted for this client since
# it first connected, in order.  reasons: the reset reasons allowed.
# unanswered: publish requests that got no answer (their messages may or
# may not exist): that many messages of unknown ids are tolerated.
# Returns (1, number of resets) or (0, what went wrong).
sub check_delivery {
    my ($got, $want, %o) = @_;
    my %reasons = map { $_ => 1 } @{ $o{reasons} || [] };
    my $unknown = $o{unanswered} || 0;
    my %pos;
    @pos{@$want} = (0 .. $#$want);
    my ($i, $resets, $last) = (0, 0, undef);
    for my $k (0 .. $#$got) {
        my $m = $got->[$k];
        my $id = $m->{id} // '';
        my $type = $m->{type} // '';
        return (0, "message $k has a bad id '$id'") unless id_parts($id);
        if ($type eq 'reset') {
            my $r = $m->{reason} // '';
            return (0, "reset $k ($id) with reason '$r'") unless $reasons{$r};
            return (0, "reset $k ($id) is older than $last")
                if defined $last && id_cmp($last, $id) > 0;
            $resets++;
            # Everything up to the reset's id is covered by it.
            $i++ while $i < @$want && id_cmp($want->[$i], $id) <= 0;
            $last = $id;
            next;
        }
        return (0, "message $k ($id, $type) is not newer than $last (twice, or out of order)")
            if defined $last && id_cmp($last, $id) >= 0;
        $last = $id;
        if (!exists $pos{$id}) {
            next if $unknown-- > 0;
            return (0, "message $k ($id, $type) was not published for this client");
        }
        return (0, "message $k ($id) came after the last one due")
            if $i >= @$want;
        return (0, "message $k is $id where $want->[$i] was due: "
                   . ($pos{$id} > $i ? 'lost' : 'out of order'))
            if $want->[$i] ne $id;
        $i++;
    }
    return (0, sprintf('%d of the messages due did not arrive, from %s on (%d received)',
                       @$want - $i, $want->[$i], scalar @$got)) if $i < @$want;
    return (1, $resets);
}

# ------------------------------------------------------------------ SSE

# sse($path, token => $t, headers => {...}, timeout => 5, http10 => 0,
#     port => another server's, rcvbuf => bytes)
# Opens the connection and reads the status line and headers (or gives up
# at the timeout: ->status is then undef).
sub sse { UPM::Test::SSE->new(@_) }

# Pumps several SSE clients at once until $done->() is true or the
# timeout passes; returns the result of the last $done->().
sub wait_all {
    my ($clients, $done, $timeout) = @_;
    my $deadline = time + $timeout;
    while (1) {
        return 1 if $done->();
        my $left = $deadline - time;
        return 0 if $left <= 0;
        my $sel = IO::Select->new;
        my %by;
        for my $c (@$clients) {
            next if $c->{eof} || !$c->{sock};
            $sel->add($c->{sock});
            $by{ fileno $c->{sock} } = $c;
        }
        return $done->() ? 1 : 0 unless $sel->count;
        for my $fh ($sel->can_read($left > 0.25 ? 0.25 : $left)) {
            $by{ fileno $fh }->_read_once;
        }
    }
}

package UPM::Test::SSE;

use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time);
use JSON ();

# sse() options besides those above: port => another server's,
# rcvbuf => bytes (a small receive buffer, set before connecting).
sub new {
    my ($class, $path, %o) = @_;
    my $timeout = defined $o{timeout} ? $o{timeout} : 5;
    my $self = bless {
        path => $path, status => undef, headers => {}, raw_head => '',
        buf => '', body => '', chunked => 0, clen => undef,
        eof => 0, events => [], all => [],
        lines => [], comments => [], retry => undef,
        t_open => time,
    }, $class;

    my $port = $o{port} || UPM::Test::port();
    my $sock = UPM::Test::tcp_connect($port, %o, timeout => $timeout);
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    $self->{sock} = $sock;
    $self->{sockport} = $sock->sockport;

    my %h = (Host => "127.0.0.1:$port",
             Accept => 'text/event-stream');
    $h{Authorization} = "Bearer $o{token}" if defined $o{token};
    my $extra = $o{headers} || {};
    $h{$_} = $extra->{$_} for keys %$extra;
    my $req = "GET $path HTTP/" . ($o{http10} ? '1.0' : '1.1') . "\r\n";
    for my $k (sort keys %h) {
        next unless defined $h{$k};
        $req .= "$k: $h{$k}\r\n";
    }
    $req .= "\r\n";
    $self->_write($req);

    my $deadline = time + $timeout;
    while (!defined $self->{status} && !$self->{eof}) {
        my $left = $deadline - time;
        last if $left <= 0;
        $self->_read_once if IO::Select->new($sock)->can_read($left);
    }
    # A response with a body of known length: read it now.
    if (defined $self->{status} && defined $self->{clen}) {
        while (length($self->{body}) < $self->{clen} && !$self->{eof}) {
            my $left = $deadline - time;
            last if $left <= 0;
            $self->_read_once if IO::Select->new($sock)->can_read($left);
        }
    }
    return $self;
}

sub _write {
    my ($self, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($self->{sock}, $data, length($data) - $off, $off);
        die "write: $!" unless defined $n;
        $off += $n;
    }
}

sub status  { $_[0]->{status} }
sub header  { $_[0]->{headers}->{ lc $_[1] } }
sub headers { $_[0]->{headers} }
sub body    { $_[0]->{body} }
sub retry   { $_[0]->{retry} }
sub eof     { $_[0]->{eof} }
sub lines   { @{ $_[0]->{lines} } }
sub comments { @{ $_[0]->{comments} } }
sub sockport { $_[0]->{sockport} }
sub received { @{ $_[0]->{all} } }    # every event dispatched so far
sub pending  { scalar @{ $_[0]->{events} } }

sub close {
    my ($self) = @_;
    if ($self->{sock}) {
        CORE::close($self->{sock});
        $self->{sock} = undef;
    }
    $self->{eof} = 1;
}

sub DESTROY { $_[0]->close }

# Reads what is available (the caller made sure the socket is readable).
sub _read_once {
    my ($self) = @_;
    return 0 if $self->{eof} || !$self->{sock};
    my $n = sysread($self->{sock}, my $data, 65536);
    if (!defined $n) {
        return 0 if $!{EAGAIN} || $!{EINTR};
        $self->{eof} = 1;
        $self->{read_error} = "$!";
        return 0;
    }
    if ($n == 0) {
        $self->{eof} = 1;
        return 0;
    }
    $self->{buf} .= $data;
    $self->_process;
    return $n;
}

sub _process {
    my ($self) = @_;
    if (!defined $self->{status}) {
        my $h = UPM::Wire::head(\$self->{buf}) or return;
        $self->{raw_head} = $h->{raw};
        $self->{status} = $h->{status} // 0;
        $self->{headers} = $h->{headers};
        $self->{dec} = UPM::Wire::Body->new($h->{headers});
        $self->{chunked} = $self->{dec}->chunked;
        $self->{clen} = $self->{dec}->clen;
        $self->{sse} = UPM::Wire::SSE->new(
            line => sub { push @{ $self->{lines} }, $_[0] },
            comment => sub { push @{ $self->{comments} }, { text => $_[0], t => time } },
            retry => sub { $self->{retry} = $_[0] unless defined $self->{retry} },
            block => sub { $self->_block($_[0]) },
        );
    }
    my $piece = $self->{dec}->feed($self->{buf});
    $self->{buf} = '';
    if (length $piece) {
        $self->{body} .= $piece;
        $self->{sse}->feed($piece);
    }
    if ($self->{dec}->done) {
        $self->{done} = 1 if $self->{chunked};  # the last chunk: the response is over
        $self->{eof} = 1;
    }
}

# As EventSource does: a block without data is no event, but its id is the
# stream's last event id (the module opens a stream with one).
sub _block {
    my ($self, $b) = @_;
    $self->{last_id} = $b->{id} if defined $b->{id};
    return unless defined $b->{data};
    my $ev = { id => $b->{id}, event => $b->{event}, data => $b->{data},
               lines => $b->{lines}, t => time };
    $ev->{json} = eval { JSON->new->utf8->decode($ev->{data}) };
    push @{ $self->{events} }, $ev;
    push @{ $self->{all} }, $ev;
}

# Reads until $cond->() is true, the stream ends or the timeout passes.
sub wait_for {
    my ($self, $cond, $timeout) = @_;
    my $deadline = time + $timeout;
    while (!$cond->()) {
        return 0 if $self->{eof};
        my $left = $deadline - time;
        return 0 if $left <= 0;
        $self->_read_once if IO::Select->new($self->{sock})->can_read($left);
    }
    return 1;
}

# The next event, or undef when none came within the timeout / at EOF.
sub next_event {
    my ($self, $timeout) = @_;
    $timeout = 5 unless defined $timeout;
    $self->wait_for(sub { @{ $self->{events} } }, $timeout);
    return shift @{ $self->{events} };
}

# Up to $count events; returns as many as arrived within the timeout.
sub events_until {
    my ($self, $count, $timeout) = @_;
    $timeout = 5 unless defined $timeout;
    $self->wait_for(sub { @{ $self->{events} } >= $count }, $timeout);
    my $n = @{ $self->{events} } < $count ? @{ $self->{events} } : $count;
    return splice @{ $self->{events} }, 0, $n;
}

# Every event that arrives within $secs (reads for the whole period).
sub drain {
    my ($self, $secs) = @_;
    $self->wait_for(sub { 0 }, $secs);
    my @e = @{ $self->{events} };
    @{ $self->{events} } = ();
    return @e;
}

# Waits for the event whose data has field $k equal to $v; returns
# (that event, the events before it).
sub until_field {
    my ($self, $k, $v, $timeout) = @_;
    my @before;
    my $deadline = time + (defined $timeout ? $timeout : 5);
    while (1) {
        my $left = $deadline - time;
        my $ev = $self->next_event($left > 0 ? $left : 0);
        return (undef, @before) unless $ev;
        return ($ev, @before)
            if $ev->{json} && defined $ev->{json}{$k} && $ev->{json}{$k} eq $v;
        push @before, $ev;
    }
}

1;
