# SPDX-License-Identifier: Apache-2.0
package UPM::Upload;

# An upload client on a raw socket, so a test decides when each piece of
# the body leaves: send part of it, look at the server, send the rest, or
# close the connection mid-body.  Every wait is bounded.
#
#   my $u = UPM::Upload->start('/track/upload.pl', size => 262144,
#                              token => $t, id => 'up-1', chunked => 0,
#                              port => $p);     # default: the test server
#   $u->send(65536);                    # the next 64 KB
#   $u->send_all(piece => 16384, pause => 0.05);
#   my $res = $u->response(10);         # { status, headers, body, json }
#   $u->abort;                          # close now

use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);
use JSON ();
use UPM::Test ();
use UPM::Wire;

sub start {
    my ($class, $path, %o) = @_;
    my $size = $o{size};
    my $self = bless {
        size => $size, sent => 0, chunked => $o{chunked} ? 1 : 0,
        buf => '', seed => $o{seed} // 7,
    }, $class;
    my $port = $o{port} || UPM::Test::port();
    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 5,
    ) or die "connect: $!";
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    $self->{sock} = $sock;

    my $method = $o{method} || 'POST';
    my $req = "$method $path HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n";
    $req .= "Authorization: Bearer $o{token}\r\n" if defined $o{token};
    $req .= "X-Progress-ID: $o{id}\r\n" if defined $o{id};
    $req .= "Content-Type: application/octet-stream\r\n";
    $req .= $self->{chunked} ? "Transfer-Encoding: chunked\r\n"
                             : "Content-Length: $size\r\n";
    my $h = $o{headers} || {};
    $req .= "$_: $h->{$_}\r\n" for sort keys %$h;
    $req .= "Connection: close\r\n\r\n";
    $self->_write($req);
    return $self;
}

sub sent { $_[0]->{sent} }
sub size { $_[0]->{size} }

sub _write {
    my ($self, $data) = @_;
    my $off = 0;
    my $deadline = time + 10;
    while ($off < length $data) {
        die "write timed out" if time > $deadline;
        next unless IO::Select->new($self->{sock})->can_write(1);
        my $n = syswrite($self->{sock}, $data, length($data) - $off, $off);
        return 0 unless defined $n;     # the server closed: the caller sees it
        $off += $n;
    }
    return 1;
}

# Sends the next $n bytes of the body (fewer if less is left).
sub send {
    my ($self, $n) = @_;
    my $left = $self->{size} - $self->{sent};
    $n = $left if $n > $left;
    return 1 if $n <= 0;
    my $data = substr(('0123456789abcdef' x (int($n / 16) + 1)), 0, $n);
    $self->{sent} += $n;
    return $self->_write($self->{chunked} ? sprintf("%x\r\n%s\r\n", $n, $data) : $data);
}

# Sends the rest in pieces with a pause after each, then the last chunk
# of a chunked body.
sub send_all {
    my ($self, %o) = @_;
    my $piece = $o{piece} || 16384;
    while ($self->{sent} < $self->{size}) {
        $self->send($piece) or return 0;
        sleep $o{pause} if $o{pause};
    }
    return $self->finish_body;
}

sub finish_body {
    my ($self) = @_;
    return $self->_write("0\r\n\r\n") if $self->{chunked};
    return 1;
}

sub abort {
    my ($self) = @_;
    close $self->{sock} if $self->{sock};
    $self->{sock} = undef;
}

# The response (Connection: close, so read to EOF).
sub response {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout || 10);
    my $raw = '';
    while ($self->{sock}) {
        my $left = $deadline - time;
        last if $left <= 0;
        last unless IO::Select->new($self->{sock})->can_read($left);
        my $n = sysread($self->{sock}, my $d, 65536);
        last unless $n;
        $raw .= $d;
    }
    $self->abort;
    my ($status, $h, $body) = UPM::Wire::response($raw);
    my $json = eval { JSON->new->utf8->decode($body // '') };
    return { status => $status, headers => $h, body => $body, json => $json };
}

1;
