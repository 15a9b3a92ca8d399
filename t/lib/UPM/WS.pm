# SPDX-License-Identifier: Apache-2.0
package UPM::WS;

# A raw WebSocket client for the tests: it builds frames byte by byte, so
# it can send what a well-behaved client never would (unmasked frames,
# reserved bits, bad opcodes, broken UTF-8, lying lengths), and it reads the
# server's frames and close codes as they are.  Every wait has a timeout.
#
#   my $ws = UPM::WS->connect('/ws', token => $t);   # handshake
#   $ws->status == 101;  $ws->header('Sec-WebSocket-Accept')
#   $ws->send_json({ type => 'subscribe', jobId => 'j1' });
#   my $m = $ws->next_json(5);            # next text message, decoded
#   $ws->send_frame(opcode => 1, rsv => 4, payload => 'x');
#   my ($code, $reason) = $ws->expect_close(5);
#   $ws->wait_eof(5);                     # the server closed TCP

use strict;
use warnings;

use IO::Socket::INET;
use IO::Select;
use Socket qw(IPPROTO_TCP TCP_NODELAY SOL_SOCKET SO_RCVBUF inet_aton pack_sockaddr_in);
use MIME::Base64 qw(encode_base64);
use Digest::SHA qw(sha1_base64);
use Time::HiRes qw(time sleep);
use Encode ();
use JSON ();
use UPM::Test ();
use UPM::Wire;

my $JSON = JSON->new->utf8->canonical;
my $GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

# connect($path, token => $t, headers => {Name => value or undef to omit},
#         timeout => 5, http10 => 0, method => 'GET', early => $bytes,
#         port => the test server's, rcvbuf => bytes)
# Default headers make a valid handshake; give one as undef to leave it
# out.  ->status is the response status (undef when none came in time).
# rcvbuf: a small receive buffer, set before connecting, so that a client
# that stops reading stalls the server's writes soon.
sub connect {
    my ($class, $path, %o) = @_;
    my $timeout = defined $o{timeout} ? $o{timeout} : 5;
    my $port = $o{port} || UPM::Test::port();
    my $self = bless { buf => '', eof => 0, frames => [], status => undef,
                       headers => {}, body => '', path => $path }, $class;
    my $sock = UPM::Test::tcp_connect($port, %o, timeout => $timeout);
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    $sock->blocking(0);
    $self->{sock} = $sock;

    my $key = encode_base64(join('', map { chr int rand 256 } 1 .. 16), '');
    $self->{key} = $key;
    my %h = (
        'Host' => "127.0.0.1:$port",
        'Upgrade' => 'websocket',
        'Connection' => 'Upgrade',
        'Sec-WebSocket-Key' => $key,
        'Sec-WebSocket-Version' => '13',
    );
    $h{Authorization} = "Bearer $o{token}" if defined $o{token};
    my $extra = $o{headers} || {};
    $h{$_} = $extra->{$_} for keys %$extra;
    $self->{key} = $h{'Sec-WebSocket-Key'};
    my $req = ($o{method} || 'GET') . " $path HTTP/" . ($o{http10} ? '1.0' : '1.1') . "\r\n";
    for my $k (sort keys %h) {
        $req .= "$k: $h{$k}\r\n" if defined $h{$k};
    }
    $req .= "Content-Length: 0\r\n" if ($o{method} || 'GET') ne 'GET';
    # early: bytes sent in the same write as the request (frames that a
    # client pipelines behind its handshake)
    $self->send_raw("$req\r\n" . (defined $o{early} ? $o{early} : ''));

    my $deadline = time + $timeout;
    while (!defined $self->{status}) {
        if (my $h = UPM::Wire::head(\$self->{buf})) {
            $self->{status} = $h->{status} // 0;
            $self->{headers} = $h->{headers};
            last;
        }
        last if $self->{eof} || !$self->_fill($deadline - time);
    }
    # A refusal carries a body: read it whole.
    if (defined $self->{status} && $self->{status} != 101) {
        my $len = $self->{headers}{'content-length'};
        while (!$self->{eof} && (!defined $len || length($self->{buf}) < $len)) {
            last unless $self->_fill($deadline - time);
        }
        $self->{body} = $self->{buf};
        $self->{buf} = '';
    }
    return $self;
}

sub status  { $_[0]{status} }
sub header  { $_[0]{headers}{ lc $_[1] } }
sub body    { $_[0]{body} }
sub json_body { my $b = eval { $JSON->decode($_[0]{body}) }; $b }
sub key     { $_[0]{key} }
sub eof     { $_[0]{eof} }

# The Sec-WebSocket-Accept a correct server sends for our key.
sub expected_accept {
    my ($self) = @_;
    my $a = sha1_base64($self->{key} . $GUID);
    return $a . '=' x ((4 - length($a) % 4) % 4);
}

sub send_raw {
    my ($self, $data) = @_;
    my $off = 0;
    my $deadline = time + 10;
    while ($off < length $data) {
        my $n = syswrite($self->{sock}, $data, length($data) - $off, $off);
        if (!defined $n) {
            if ($!{EAGAIN} || $!{EWOULDBLOCK}) {
                return 0 if time > $deadline;
                IO::Select->new($self->{sock})->can_write(0.2);
                next;
            }
            return 0;               # the server closed: callers check close codes
        }
        $off += $n;
    }
    return 1;
}

# frame(opcode => 1, payload => '', fin => 1, rsv => 0 (0..7), mask => 1,
#       len => 'auto'|16|64, key => 4 bytes) -> the frame's bytes
sub frame {
    my ($class, %o) = @_;
    my $payload = defined $o{payload} ? $o{payload} : '';
    utf8::encode($payload) if utf8::is_utf8($payload);
    my $fin = exists $o{fin} ? $o{fin} : 1;
    my $rsv = $o{rsv} || 0;
    my $op = defined $o{opcode} ? $o{opcode} : 1;
    my $mask = exists $o{mask} ? $o{mask} : 1;
    my $form = $o{len} || 'auto';
    my $n = length $payload;
    my $b = chr(($fin ? 0x80 : 0) | (($rsv & 7) << 4) | ($op & 0x0f));
    my $mb = $mask ? 0x80 : 0;
    if ($form eq 'auto' && $n < 126) {
        $b .= chr($mb | $n);
    }
    elsif (($form eq 'auto' || $form == 16) && $n <= 0xffff) {
        $b .= chr($mb | 126) . pack('n', $n);
    }
    else {
        $b .= chr($mb | 127) . pack('NN', int($n / 4294967296), $n % 4294967296);
    }
    if ($mask) {
        my $key = defined $o{key} ? $o{key} : join('', map { chr int rand 256 } 1 .. 4);
        $b .= $key;
        my $m = substr($key x (int($n / 4) + 1), 0, $n);
        $payload = $payload ^ $m;
    }
    return $b . $payload;
}

sub send_frame {
    my ($self, %o) = @_;
    return $self->send_raw(UPM::WS->frame(%o));
}

# A text message from Perl characters (UTF-8 encoded) or bytes.
sub send_text {
    my ($self, $text) = @_;
    $text = Encode::encode('UTF-8', $text) if utf8::is_utf8($text);
    return $self->send_frame(opcode => 1, payload => $text);
}

sub send_json {
    my ($self, $data) = @_;
    return $self->send_frame(opcode => 1, payload => $JSON->encode($data));
}

# Close frame with a code (undef: empty payload) and reason bytes.
sub send_close {
    my ($self, $code, $reason) = @_;
    my $p = defined $code ? pack('n', $code) . (defined $reason ? $reason : '') : '';
    return $self->send_frame(opcode => 8, payload => $p);
}

# Reads what is there within $timeout; false on timeout or EOF.
sub _fill {
    my ($self, $timeout) = @_;
    return 0 if $self->{eof};
    $timeout = 0 if $timeout < 0;
    return 0 unless IO::Select->new($self->{sock})->can_read($timeout);
    my $n = sysread($self->{sock}, my $data, 65536);
    if (!defined $n) {
        return 1 if $!{EAGAIN} || $!{EINTR};
        $self->{eof} = 1;
        $self->{read_error} = "$!";
        return 0;
    }
    if ($n == 0) {
        $self->{eof} = 1;
        return 0;
    }
    $self->{buf} .= $data;
    return 1;
}

# Parses one whole frame out of the buffer, or undef.
sub _parse {
    my ($self) = @_;
    my $b = $self->{buf};
    return undef if length $b < 2;
    my ($b0, $b1) = unpack 'CC', $b;
    my $len = $b1 & 0x7f;
    my $off = 2;
    if ($len == 126) {
        return undef if length $b < 4;
        $len = unpack 'n', substr($b, 2, 2);
        $off = 4;
    }
    elsif ($len == 127) {
        return undef if length $b < 10;
        my ($hi, $lo) = unpack 'NN', substr($b, 2, 8);
        $len = $hi * 4294967296 + $lo;
        $off = 10;
    }
    my $masked = $b1 & 0x80;
    $off += 4 if $masked;
    return undef if length $b < $off + $len;
    my $f = { fin => ($b0 & 0x80) ? 1 : 0, rsv => ($b0 >> 4) & 7, opcode => $b0 & 0x0f,
              masked => $masked ? 1 : 0, payload => substr($b, $off, $len),
              t => time };
    substr($self->{buf}, 0, $off + $len) = '';
    if ($f->{opcode} == 8) {
        if (length $f->{payload} >= 2) {
            $f->{code} = unpack 'n', substr($f->{payload}, 0, 2);
            $f->{reason} = substr($f->{payload}, 2);
        }
        $self->{close} = $f;
    }
    return $f;
}

# The next frame of any kind, or undef (timeout / EOF).
sub read_frame {
    my ($self, $timeout) = @_;
    $timeout = 5 unless defined $timeout;
    my $deadline = time + $timeout;
    while (1) {
        my $f = $self->_parse;
        return $f if $f;
        return undef if $self->{eof};
        my $left = $deadline - time;
        return undef if $left <= 0;
        $self->_fill($left);
    }
}

# The next text message's payload (bytes), answering pings on the way
# unless no_pong; a close frame or the timeout gives undef.
sub next_text {
    my ($self, $timeout, %o) = @_;
    $timeout = 5 unless defined $timeout;
    my $deadline = time + $timeout;
    while (1) {
        my $left = $deadline - time;
        my $f = $self->read_frame($left > 0 ? $left : 0) or return undef;
        if ($f->{opcode} == 9) {
            $self->{pings}++;
            $self->send_frame(opcode => 10, payload => $f->{payload}) unless $o{no_pong};
            next;
        }
        next if $f->{opcode} == 10;
        return undef if $f->{opcode} == 8;
        return $f->{payload} if $f->{opcode} == 1;
    }
}

# The next text message decoded from JSON (undef as above).
sub next_json {
    my ($self, $timeout, %o) = @_;
    my $t = $self->next_text($timeout, %o);
    return undef unless defined $t;
    my $j = eval { $JSON->decode($t) };
    return $j || { _raw => $t };
}

# Messages that arrive within $secs (reads for the whole period).
sub drain_json {
    my ($self, $secs) = @_;
    my @m;
    my $deadline = time + $secs;
    while (1) {
        my $left = $deadline - time;
        last if $left <= 0;
        my $j = $self->next_json($left) or last;
        push @m, $j;
    }
    return @m;
}

# Waits for a message with $k equal to $v; returns (it, the ones before).
sub until_json {
    my ($self, $k, $v, $timeout) = @_;
    my @before;
    my $deadline = time + (defined $timeout ? $timeout : 5);
    while (1) {
        my $left = $deadline - time;
        my $j = $self->next_json($left > 0 ? $left : 0) or return (undef, @before);
        return ($j, @before) if defined $j->{$k} && $j->{$k} eq $v;
        push @before, $j;
    }
}

# Reads until a close frame arrives (skipping anything else); returns its
# (code, reason), code undef for an empty close, () when none came.
sub expect_close {
    my ($self, $timeout) = @_;
    my $deadline = time + (defined $timeout ? $timeout : 5);
    while (1) {
        if ($self->{close}) {
            return ($self->{close}{code}, $self->{close}{reason});
        }
        my $left = $deadline - time;
        return () if $left <= 0;
        my $f = $self->read_frame($left) or return ();
    }
}

# Did the server close the TCP connection within $timeout?  Data that
# still arrives is read and dropped.
sub wait_eof {
    my ($self, $timeout) = @_;
    my $deadline = time + (defined $timeout ? $timeout : 5);
    while (!$self->{eof}) {
        my $left = $deadline - time;
        return 0 if $left <= 0;
        $self->_fill($left);
        $self->{buf} = '' if length $self->{buf} > 1 << 20;
    }
    return 1;
}

sub sock { $_[0]{sock} }

# For many connections at once: reads what one has (without waiting),
# answers its pings (counted in ->{pings}), and appends its text messages,
# decoded, to ->{inbox}; a close frame sets ->{closed_with}.
sub collect {
    my ($self) = @_;
    $self->_fill(0);
    while (my $f = $self->_parse) {
        if ($f->{opcode} == 9) {
            $self->{pings}++;
            $self->send_frame(opcode => 10, payload => $f->{payload});
        }
        elsif ($f->{opcode} == 1) {
            my $j = eval { $JSON->decode($f->{payload}) };
            push @{ $self->{inbox} }, $j || { _raw => $f->{payload} };
        }
        elsif ($f->{opcode} == 8) {
            $self->{closed_with} = $f->{code} // 0;
        }
    }
}

sub inbox { @{ $_[0]{inbox} || [] } }

# Pumps several connections until $done->() is true or $timeout passes.
sub wait_all {
    my ($class, $clients, $done, $timeout) = @_;
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
        $by{ fileno $_ }->collect for $sel->can_read($left > 0.25 ? 0.25 : $left);
    }
}

sub close {
    my ($self) = @_;
    if ($self->{sock}) {
        CORE::close($self->{sock});
        $self->{sock} = undef;
    }
    $self->{eof} = 1;
}

sub DESTROY { $_[0]->close }

1;
