# SPDX-License-Identifier: Apache-2.0
package UPM::JWKS;
# A stand-in identity provider for the tests: an HTTPS server on loopback
# with a certificate of its own test CA, serving a JWKS at /jwks (and
# /jwks-b, a second source, with a document of its own once set_keys_b
# has been called), and an OpenID configuration at
# /.well-known/openid-configuration.  What it answers is steered through
# files in its directory, so the forked server needs no control channel:
#   mode       ok | down (503) | slow (answers after 10 s) | garbage
#   jwks.json  the document served
# Every request's path is appended to requests.log.
use strict;
use warnings;
use File::Path qw(make_path remove_tree);
use IO::Socket::SSL;
use POSIX ();
use Time::HiRes qw(sleep time);
use JSON ();
use Crypt::PK::RSA;
use Crypt::PK::ECC;

my $JSON = JSON->new->utf8->canonical;

sub new {
    my ($class, $dir) = @_;
    remove_tree($dir);
    make_path($dir);
    chmod 0777, $dir;    # the server's User writes the cache here
    my $self = bless { dir => $dir }, $class;
    $self->_certs;
    $self->mode('ok');
    $self->set_keys();
    my $srv = IO::Socket::SSL->new(
        LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 64, ReuseAddr => 1,
        SSL_server => 1, SSL_startHandshake => 0,
        SSL_cert_file => "$dir/server.pem", SSL_key_file => "$dir/server.key",
    ) or die "JWKS server: $SSL_ERROR";
    $self->{port} = $srv->sockport;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        $SIG{CHLD} = 'IGNORE';
        while (1) {
            my $c = $srv->accept or next;
            my $k = fork;
            if (defined $k && $k == 0) {
                $self->_serve($c);
                POSIX::_exit(0);
            }
            close $c;
        }
    }
    close $srv;
    $self->{pid} = $pid;
    return $self;
}

sub _certs {
    my ($self) = @_;
    my $d = $self->{dir};
    my $q = "2>/dev/null";
    system("openssl req -x509 -newkey rsa:2048 -nodes -keyout $d/ca.key -out $d/ca.pem "
           . "-days 2 -subj /CN=upm-test-ca $q") == 0 or die 'CA';
    system("openssl req -newkey rsa:2048 -nodes -keyout $d/server.key -out $d/server.csr "
           . "-subj /CN=127.0.0.1 $q") == 0 or die 'CSR';
    open my $fh, '>', "$d/ext.cnf" or die;
    print $fh "subjectAltName=IP:127.0.0.1\n";
    close $fh;
    system("openssl x509 -req -in $d/server.csr -CA $d/ca.pem -CAkey $d/ca.key "
           . "-CAcreateserial -out $d/server.pem -days 2 -extfile $d/ext.cnf $q") == 0
        or die 'cert';
}

sub _serve {
    my ($self, $c) = @_;
    $c->accept_SSL or return;
    my $req = '';
    while ($req !~ /\r\n\r\n/) {
        my $n = sysread($c, $req, 4096, length $req);
        return unless $n;
    }
    my ($path) = $req =~ /^GET (\S+)/;
    $path //= '?';
    if (open my $log, '>>', "$self->{dir}/requests.log") {
        print $log "$path\n";
        close $log;
    }
    my $mode = _slurp("$self->{dir}/mode") // 'ok';
    chomp $mode;
    my ($code, $body) = (200, '');
    if ($mode eq 'down') {
        ($code, $body) = (503, 'down');
    }
    elsif ($path =~ m{^/\.well-known/openid-configuration}) {
        $body = $JSON->encode({ issuer => $self->issuer, jwks_uri => $self->url('/jwks') });
    }
    elsif ($path =~ m{^/jwks}) {
        sleep 10 if $mode eq 'slow';
        my $doc = $path =~ m{^/jwks-b} && -e "$self->{dir}/jwks-b.json" ? 'jwks-b' : 'jwks';
        $body = $mode eq 'garbage' ? '{"keys":[{"kty":' : _slurp("$self->{dir}/$doc.json");
    }
    else {
        ($code, $body) = (404, 'no');
    }
    print $c "HTTP/1.1 $code X\r\nContent-Type: application/json\r\nContent-Length: "
        . length($body) . "\r\nConnection: close\r\n\r\n$body";
    $c->close(SSL_fast_shutdown => 1);
}

sub _slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return undef;
    local $/;
    my $s = <$fh>;
    return $s;
}

sub _write {
    my ($f, $s) = @_;
    open my $fh, '>', "$f.tmp" or die "$f: $!";
    print $fh $s;
    close $fh;
    rename "$f.tmp", $f or die "$f: $!";
}

sub dir    { $_[0]{dir} }
sub port   { $_[0]{port} }
sub ca     { "$_[0]{dir}/ca.pem" }
sub url    { "https://127.0.0.1:$_[0]{port}" . ($_[1] // '/jwks') }
sub issuer { "https://127.0.0.1:$_[0]{port}" }
sub mode   { _write("$_[0]{dir}/mode", $_[1]) }

# The served document: a list of JWKs (hash refs), or a raw string.
# set_keys_b: the document of /jwks-b alone.
sub set_keys   { my $self = shift; $self->_set_keys('jwks', @_) }
sub set_keys_b { my $self = shift; $self->_set_keys('jwks-b', @_) }
sub _set_keys {
    my ($self, $name, @jwks) = @_;
    _write("$self->{dir}/$name.json",
           @jwks == 1 && !ref $jwks[0] ? $jwks[0] : $JSON->encode({ keys => \@jwks }));
}

# The public JWK of a Crypt::PK key, with extra members.
sub jwk {
    my ($key, %extra) = @_;
    ref $key or die 'jwk() takes a Crypt::PK::RSA or Crypt::PK::ECC key';
    my $h = $key->export_key_jwk('public', 1);
    return { %$h, %extra };
}

sub requests {
    my ($self, $re) = @_;
    my $s = _slurp("$self->{dir}/requests.log") // '';
    my @r = split /\n/, $s;
    return $re ? grep { /$re/ } @r : @r;
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'TERM', $self->{pid};
    waitpid $self->{pid}, 0;
    delete $self->{pid};
}

sub DESTROY { $_[0]->stop }

1;
