# SPDX-License-Identifier: Apache-2.0
package UPM::Wire;

# The one reader of what the module writes on the wire, for every test
# client: the HTTP response head, the body (chunked or not, whole or as it
# arrives) and Server-Sent Events.  The SSE client (UPM::Test), the Node
# style client (UPM::Node), the WebSocket handshake (UPM::WS) and the
# whole-response helpers all parse through it, so a framing rule the tests
# rely on is written once.

use strict;
use warnings;

# head(\$buf, last_wins => 0): takes the response head off the front of
# $buf once it is complete and returns { status, headers, raw }; undef
# while the head is incomplete.  Header names are lower-cased; a repeated
# header is joined with ", " (as RFC 9110 allows), or with last_wins the
# last one is kept (what the whole-response helpers always did).
sub head {
    my ($bufref, %o) = @_;
    my $i = index($$bufref, "\r\n\r\n");
    return undef if $i < 0;
    my $raw = substr($$bufref, 0, $i);
    substr($$bufref, 0, $i + 4) = '';
    return parse_head($raw, %o);
}

sub parse_head {
    my ($raw, %o) = @_;
    my ($sl, @lines) = split /\r\n/, $raw;
    my ($status) = ($sl // '') =~ m{\AHTTP/\d\.\d (\d{3})};
    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $k = lc $k;
        $h{$k} = exists $h{$k} && !$o{last_wins} ? "$h{$k}, $v" : $v;
    }
    return { status => $status, headers => \%h, raw => $raw };
}

# response($raw): a whole response read to EOF -> (status, headers, body),
# the body de-chunked when it was sent chunked.
sub response {
    my ($raw) = @_;
    my ($head, $body) = split /\r\n\r\n/, $raw // '', 2;
    my $h = parse_head($head // '', last_wins => 1);
    if (defined $body) {
        my $dec = UPM::Wire::Body->new($h->{headers});
        $body = $dec->feed($body);
    }
    return ($h->{status}, $h->{headers}, $body);
}

package UPM::Wire::Body;

# Decodes a response body as its bytes arrive.  feed() returns the body
# bytes decoded so far from what it was given; done() is true after the
# last chunk, or when a Content-Length body is complete.

sub new {
    my ($class, $headers) = @_;
    my $chunked = ($headers->{'transfer-encoding'} // '') =~ /chunked/i ? 1 : 0;
    return bless {
        chunked => $chunked,
        clen => $chunked ? undef : $headers->{'content-length'},
        buf => '', left => undef, got => 0, done => 0,
    }, $class;
}

sub chunked { $_[0]{chunked} }
sub clen    { $_[0]{clen} }
sub done    { $_[0]{done} }

sub feed {
    my ($self, $bytes) = @_;
    return '' if $self->{done};
    if (!$self->{chunked}) {
        $self->{got} += length $bytes;
        $self->{done} = 1 if defined $self->{clen} && $self->{got} >= $self->{clen};
        return $bytes;
    }
    $self->{buf} .= $bytes;
    my $out = '';
    while (1) {
        if (!defined $self->{left}) {
            my $i = index($self->{buf}, "\r\n");
            last if $i < 0;
            my $line = substr($self->{buf}, 0, $i);
            substr($self->{buf}, 0, $i + 2) = '';
            next if $line eq '';            # the CRLF after a chunk's data
            $line =~ s/;.*//;
            my $size = hex $line;
            if ($size == 0) {               # the last chunk
                $self->{done} = 1;
                last;
            }
            $self->{left} = $size;
        }
        my $take = length($self->{buf}) < $self->{left} ? length($self->{buf}) : $self->{left};
        last if $take == 0;
        $out .= substr($self->{buf}, 0, $take, '');
        $self->{left} -= $take;
        $self->{left} = undef if $self->{left} == 0;
    }
    return $out;
}

package UPM::Wire::SSE;

# Server-Sent Events as EventSource parses them (WHATWG HTML 9.2.6): lines
# end with LF (a CR before it is dropped), a blank line dispatches the
# block, a line starting with ':' is a comment, `field: value` with one
# optional space.  Callbacks: line => sub ($line) for every line,
# comment => sub ($line), block => sub ($block) at every blank line with
# { id, event, data, retry, lines } (data undef when the block had none:
# EventSource dispatches no event then, but takes its id).

sub new {
    my ($class, %cb) = @_;
    return bless { cb => \%cb, text => '', cur => _block() }, $class;
}

sub _block { { id => undef, event => undef, data => undef, retry => undef, lines => [] } }

sub feed {
    my ($self, $text) = @_;
    $self->{text} .= $text;
    my $cb = $self->{cb};
    while ((my $i = index($self->{text}, "\n")) >= 0) {
        my $line = substr($self->{text}, 0, $i);
        substr($self->{text}, 0, $i + 1) = '';
        $line =~ s/\r\z//;
        $cb->{line}->($line) if $cb->{line};
        if ($line eq '') {
            my $b = $self->{cur};
            $self->{cur} = _block();
            $cb->{block}->($b) if $cb->{block};
            next;
        }
        if ($line =~ /^:/) {
            $cb->{comment}->($line) if $cb->{comment};
            next;
        }
        my $b = $self->{cur};
        push @{ $b->{lines} }, $line;
        my ($f, $v) = $line =~ /^([^:]*)(?::\s?(.*))?\z/;
        $v = '' unless defined $v;
        if    ($f eq 'id')    { $b->{id} = $v }
        elsif ($f eq 'event') { $b->{event} = $v }
        elsif ($f eq 'data')  { $b->{data} = defined $b->{data} ? "$b->{data}\n$v" : $v }
        elsif ($f eq 'retry') { $b->{retry} = $v; $cb->{retry}->($v) if $cb->{retry} }
    }
}

1;
