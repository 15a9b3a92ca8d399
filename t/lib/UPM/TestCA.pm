# SPDX-License-Identifier: Apache-2.0
package UPM::TestCA;

# Throw-away certificate authorities for the TLS tests, made with the
# openssl command: UPM::TestCA->new($dir, 'name') writes name-ca.crt, and
# ->issue('server', san => 'DNS:redis.test,IP:127.0.0.1') a certificate
# and key it signed.

use strict;
use warnings;

sub _run {
    my @cmd = @_;
    my $out = `@{[ join ' ', map { "'$_'" } @cmd ]} 2>&1`;
    die "@cmd failed:\n$out" if $?;
}

sub new {
    my ($class, $dir, $name) = @_;
    my $self = bless { dir => $dir, name => $name }, $class;
    _run('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
         '-keyout', "$dir/$name-ca.key", '-out', "$dir/$name-ca.crt",
         '-subj', "/CN=upm test CA $name");
    return $self;
}

sub ca { "$_[0]{dir}/$_[0]{name}-ca.crt" }

# -> (cert file, key file)
sub issue {
    my ($self, $who, %o) = @_;
    my ($d, $n) = @$self{qw(dir name)};
    my $base = "$d/$n-$who";
    _run('openssl', 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', "$base.key",
         '-out', "$base.csr", '-subj', "/CN=$who");
    open my $e, '>', "$base.ext" or die $!;
    print $e "subjectAltName=$o{san}\n" if $o{san};
    print $e "extendedKeyUsage=" . ($o{client} ? 'clientAuth' : 'serverAuth') . "\n";
    close $e;
    _run('openssl', 'x509', '-req', '-in', "$base.csr", '-CA', $self->ca,
         '-CAkey', "$d/$n-ca.key", '-CAcreateserial', '-days', '2',
         '-out', "$base.crt", '-extfile', "$base.ext");
    chmod 0644, "$base.key";    # the httpd children (nobody) read it
    return ("$base.crt", "$base.key");
}

1;
