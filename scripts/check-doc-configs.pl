#!/usr/bin/perl
# SPDX-License-Identifier: Apache-2.0
# Every Apache configuration the documentation shows must parse: each
# ```apache block of docs/*.md and each file of conf/ is filled in, put
# where its text says it goes, and given to `apache2 -t` with a temporary
# ServerRoot.  A documented configuration that does not parse fails
# `make check`.
#
# Where a block goes (the marker convention):
#   docs/*.md   an HTML comment on the line right before the ```apache fence:
#                 <!-- conf-check: server -->  the main server configuration
#                 <!-- conf-check: vhost -->   inside a <VirtualHost>
#                 <!-- conf-check: both -->    each of the two, one run each
#                 <!-- conf-check: skip WHY --> not checked (WHY is required)
#               A block without a marker goes in the main server configuration.
#   conf/*.conf a comment line "# conf-check: server|vhost|both" (required):
#               the file is Included from there, as its own text says.
#   conf/*.in   "# conf-check: standalone": a whole server configuration.
#
# Filled in before the run (so that the examples' own paths need not exist):
#   @SECRET@ (and @REDIS@: a local URL) and the key of every UploadProgressJWTKey (file:PATH, a bare
#   PATH or env:NAME): a key of the algorithm's family; SSLCertificate*File:
#   a self-signed certificate; Include of /etc/apache2/conf-available/NAME
#   (where deployment.md says the conf/ files go): conf/NAME, itself filled in;
#   the @NAME@ placeholders of conf/demo.conf.in: what scripts/demo-conf.sh
#   puts there.
#
#   scripts/check-doc-configs.pl [TOP]
# Environment: UPM_MODULE (the module to load; default the build's),
# UPM_HTTPD (default /usr/sbin/apache2).
use strict;
use warnings;
use File::Temp qw(tempdir);
use Cwd qw(abs_path);

my $top = shift // $ENV{UPM_TOP} // do { my $d = $0; $d =~ s{/?[^/]*/[^/]*$}{}; $d eq '' ? '.' : $d };
$top = abs_path($top);
my $httpd = $ENV{UPM_HTTPD} // '/usr/sbin/apache2';
my $module = $ENV{UPM_MODULE} // "$top/mod_upload_progress/.libs/mod_upload_progress.so";
my $moddir = '/usr/lib/apache2/modules';
my $keys = "$top/mod_upload_progress/unit/keys";

unless (-x $httpd) { print "SKIP: no $httpd\n"; exit 77 }
-f $module or die "$module is missing: build the module first\n";

my $tmp = tempdir('upm-confcheck-XXXXXX', TMPDIR => 1, CLEANUP => 1);
mkdir "$tmp/$_" for qw(logs run htdocs cgi-bin conf-available conf);

# Keys and a certificate for the examples' placeholders.
my $secret = "$tmp/hs.secret";
open my $sf, '>', $secret or die; print $sf ('a1b2c3d4' x 8), "\n"; close $sf;
system('sh', '-c', 'exec "$@" 2>/dev/null', 'sh', 'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
       '-keyout', "$tmp/tls.key", '-out', "$tmp/tls.pem") == 0
    or die "openssl cannot make a test certificate\n";
my %keyfile = (HS => $secret, RS => "$keys/rsa_public.pem", PS => "$keys/rsa_public.pem",
               ES256 => "$keys/ec256_public.pem", ES384 => "$keys/ec384_public.pem",
               ES512 => "$keys/ec521_public.pem");
sub key_for {
    my ($alg) = @_;
    return $keyfile{$alg} // $keyfile{substr($alg, 0, 2)} // $secret;
}
sub slurp { my ($f) = @_; open my $fh, '<', $f or die "$f: $!"; local $/; my $s = <$fh>; $s }

my %env;    # env:NAME sources the examples use
sub fill {
    my ($text) = @_;
    my @out;
    for my $line (split /\n/, $text, -1) {
        $line =~ s/\@SECRET\@/$secret/g;
        $line =~ s{\@REDIS\@}{redis://127.0.0.1:6379}g;
        if ($line =~ /^(\s*UploadProgressJWTKey\s+)(\S+)(\s+)(\S+)(.*)$/i) {
            my ($pre, $alg, $sp, $src, $rest) = ($1, uc $2, $3, $4, $5);
            if ($src =~ /^env:(\w+)$/) {
                my $var = $1;
                $env{$var} = $alg =~ /^HS/ ? slurp($secret) =~ s/\s+$//r : slurp(key_for($alg));
            } else {
                $src = 'file:' . key_for($alg);
            }
            $line = "$pre$alg$sp$src$rest";
        }
        $line =~ s{^(\s*SSLCertificateFile\s+)\S+}{$1$tmp/tls.pem}i;
        $line =~ s{^(\s*SSLCertificateKeyFile\s+)\S+}{$1$tmp/tls.key}i;
        if ($line =~ m{^(\s*Include(?:Optional)?\s+)"?/etc/apache2/conf-available/([^"\s]+)"?}i) {
            my ($pre, $name) = ($1, $2);
            if (-f "$top/conf/$name") {
                open my $o, '>', "$tmp/conf-available/$name" or die;
                print $o fill(slurp("$top/conf/$name"));
                close $o;
            }
            # A name that conf/ does not have stays missing: Include fails.
            $line = "$pre\"$tmp/conf-available/$name\"";
        }
        push @out, $line;
    }
    return join "\n", @out;
}

my @load = map { [$_, "$moddir/mod_$_.so"] } qw(mpm_event authn_core authz_core authz_host authz_user
    auth_basic mime dir alias setenvif headers env reqtimeout status proxy proxy_http proxy_wstunnel
    ssl socache_shmcb http2 rewrite cgid authn_file request session session_cookie session_crypto
    auth_form auth_openidc);
my $head = join "\n",
    "ServerRoot \"$tmp\"", 'ServerName localhost', 'Listen 127.0.0.1:8080',
    "PidFile \"$tmp/run/httpd.pid\"", "ErrorLog \"$tmp/logs/error_log\"",
    "DefaultRuntimeDir \"$tmp/run\"", "Mutex file:$tmp/run default", "DocumentRoot \"$tmp/htdocs\"",
    (map { -f $_->[1] ? "LoadModule $_->[0]_module $_->[1]" : () } @load),
    "LoadModule upload_progress_module $module", '';

my ($pass, $fail, $skip) = (0, 0, 0);
my @errors;
sub run_conf {
    my ($what, $conf) = @_;
    my $f = "$tmp/conf/httpd.conf";
    open my $o, '>', $f or die; print $o $conf; close $o;
    local %ENV = (%ENV, %env);
    my $out = `'$httpd' -t -f '$f' 2>&1`;
    if ($? == 0) { $pass++ }
    else {
        $fail++;
        $out =~ s/^AH00558.*\n//mg;
        push @errors, "$what does not parse:\n$out\n--- as checked:\n" . ($conf =~ s/^\Q$head\E//r);
    }
}
sub place {
    my ($what, $where, $filled) = @_;
    if ($where eq 'server' || $where eq 'both') {
        run_conf("$what (server config)", "$head\n$filled\n");
    }
    if ($where eq 'vhost' || $where eq 'both') {
        run_conf("$what (virtual host)", "$head\n<VirtualHost 127.0.0.1:8080>\n$filled\n</VirtualHost>\n");
    }
}

# ---- docs/*.md ---------------------------------------------------------------
for my $md (sort glob "$top/docs/*.md") {
    my @lines = split /\n/, slurp($md);
    my $name = $md =~ s{.*/}{}r;
    for (my $i = 0; $i < @lines; $i++) {
        next unless $lines[$i] =~ /^\s*```apache\s*$/;
        my $start = $i + 1;
        my $marker = $i > 0 && $lines[$i - 1] =~ /<!--\s*conf-check:\s*(.*?)\s*-->/ ? $1 : 'server';
        my @body;
        for ($i++; $i < @lines && $lines[$i] !~ /^\s*```\s*$/; $i++) { push @body, $lines[$i] }
        my $what = "docs/$name line $start";
        if ($marker =~ /^skip\s+\S/) { $skip++; next }
        if ($marker !~ /^(server|vhost|both)$/) {
            $fail++; push @errors, "$what: unknown conf-check marker '$marker'"; next;
        }
        %env = ();
        place($what, $marker, fill(join("\n", @body)));
    }
}

# ---- conf/ -------------------------------------------------------------------
for my $cf (sort glob "$top/conf/*") {
    next if -d $cf;    # conf/mods-available: the Debian package's .load/.conf (scripts/deb-test.sh)
    my $text = slurp($cf);
    my $name = $cf =~ s{.*/}{}r;
    my ($marker) = $text =~ /^#\s*conf-check:\s*(\S+)/m;
    if (!defined $marker) { $fail++; push @errors, "conf/$name has no '# conf-check:' line"; next }
    if ($marker eq 'standalone') {
        %env = ();
        my $c = fill($text);
        my %ph = (ROOT => $tmp, PORT => 8080, MODDIR => $moddir, MODULE => $module,
                  CONFDIR => "$tmp/conf-available", REDIS_PORT => 6390, USER_BLOCK => '', EXTRA => '');
        $c =~ s/\@(\w+)\@/exists $ph{$1} ? $ph{$1} : "\@$1\@"/ge;
        # The files it Includes, filled as scripts/demo-conf.sh fills them.
        for my $inc ($c =~ m{^\s*Include\s+"?\Q$tmp\E/conf-available/([^"\s]+)"?}mg) {
            open my $o, '>', "$tmp/conf-available/$inc" or die;
            print $o fill(slurp("$top/conf/$inc")) if -f "$top/conf/$inc";
            close $o;
        }
        run_conf("conf/$name (standalone)", $c);
        next;
    }
    if ($marker !~ /^(server|vhost|both)$/) {
        $fail++; push @errors, "conf/$name: unknown conf-check marker '$marker'"; next;
    }
    %env = ();
    my $inc = "$tmp/conf-available/$name";
    open my $o, '>', $inc or die; print $o fill($text); close $o;
    place("conf/$name", $marker, "Include \"$inc\"");
}

# ---- make install ships every example where deployment.md says ------------------
my ($listed) = slurp("$top/Makefile.am") =~ /^example_DATA\s*=\s*((?:.*\\\n)*.*)$/m;
$listed //= '';
for my $cf (sort glob "$top/conf/upload-progress-*.conf") {
    my $rel = $cf =~ s{^\Q$top\E/}{}r;
    if ($listed =~ /(^|\s)\Q$rel\E(\s|$)/) { $pass++ }
    else { $fail++; push @errors, "$rel is not in Makefile.am's example_DATA: make install leaves it out" }
}

print "$_\n" for @errors;
print "documented configurations: $pass parse, $fail do not, $skip skipped\n";
exit($fail ? 1 : 0);
