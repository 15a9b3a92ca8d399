#!/usr/bin/perl
# SPDX-License-Identifier: Apache-2.0
# Checks docs/directives.md against the module's command table, so that the
# reference cannot drift from the code: every directive of every AP_INIT_*
# entry in mod_upload_progress/*.c (directly or through a wrapper macro)
# must have a section in the reference, and every section a directive;
# each section's Syntax must take the arguments the entry takes, its
# Context and Override must be what the entry's flags (and a GLOBAL_ONLY
# check in its function) allow, and it must have a Default and an example
# that uses the directive.  Run by `make check`.
#   scripts/check-directives.pl [TOP]
use strict;
use warnings;

my $top = shift // $ENV{UPM_TOP} // do { my $d = $0; $d =~ s{/?[^/]*/[^/]*$}{}; $d eq '' ? '.' : $d };
my $doc = "$top/docs/directives.md";
my @errors;
my ($pass, $fail) = (0, 0);
sub check {
    my ($ok, $what) = @_;
    if ($ok) { $pass++ } else { $fail++; push @errors, $what }
}

# ---- the code -------------------------------------------------------------
my (%cmd, %funcs, %macro);
my $code = '';
for my $f (glob "$top/mod_upload_progress/*.c") {
    open my $fh, '<', $f or die "$f: $!";
    local $/;
    $code .= <$fh>;
}
# Bodies of the setter functions, to see which are GLOBAL_ONLY.
while ($code =~ /^static const char \*(\w+)\(cmd_parms \*[^)]*\)\s*\{(.*?)^\}/msg) {
    $funcs{$1} = $2;
}
# Wrapper macros around AP_INIT_*: their kind and flags.
(my $joined = $code) =~ s/\\\n/ /g;
while ($joined =~ /^#define (\w+)\(([^)]*)\)\s*AP_INIT_(\w+)\((.*)\)\s*$/mg) {
    my ($name, $params, $kind, $args) = ($1, $2, $3, $4);
    # name, func, data (may hold commas inside parentheses), flags, help
    1 while $args =~ s/\([^()]*\)/ /;
    my @a = split /,\s*/, $args;
    $macro{$name} = { kind => $kind, func => $a[1], flags => $a[3] };
}
sub add {
    my ($name, $kind, $func, $flags) = @_;
    $flags =~ s/\s+//g;
    my %f = map { $_ => 1 } split /\|/, $flags;
    $cmd{$name} = { kind => $kind, func => $func, flags => \%f,
                    global => ($funcs{$func} // '') =~ /GLOBAL_ONLY/ ? 1 : 0 };
}
while ($code =~ /AP_INIT_(\w+)\(\s*"([^"]+)"\s*,\s*(\w+)\s*,[^,]*,\s*([A-Z_| ]+?)\s*,/g) {
    add($2, $1, $3, $4);
}
for my $m (keys %macro) {
    while ($code =~ /\b\Q$m\E\(\s*"([^"]+)"/g) {
        add($1, $macro{$m}{kind}, $macro{$m}{func}, $macro{$m}{flags});
    }
}
check(scalar(keys %cmd) > 0, "no AP_INIT_* entries found under $top/mod_upload_progress");

# What Apache allows for the flags (server/virtual host from RSRC_CONF or
# any OR_* but AuthConfig and Limit; directory and .htaccess from OR_*).
sub expected_context {
    my ($c) = @_;
    my $f = $c->{flags};
    my @or = grep { /^OR_/ } keys %$f;
    my $server = $f->{RSRC_CONF} || grep { $_ ne 'OR_AUTHCFG' && $_ ne 'OR_LIMIT' } @or;
    my @ctx;
    if ($server) {
        push @ctx, 'server config';
        push @ctx, 'virtual host' unless $c->{global};
    }
    push @ctx, 'directory', '.htaccess' if @or && !$c->{global};
    return join(', ', @ctx);
}
sub expected_override {
    my ($c) = @_;
    my %name = (OR_AUTHCFG => 'AuthConfig', OR_FILEINFO => 'FileInfo', OR_OPTIONS => 'Options',
                OR_INDEXES => 'Indexes', OR_LIMIT => 'Limit');
    return 'any' if $c->{flags}{OR_ALL};
    my @o = sort map { $name{$_} // $_ } grep { /^OR_/ } keys %{ $c->{flags} };
    return @o ? join(', ', @o) : '-';
}
# Argument shapes: how many plain words the Syntax line must have after
# the name, and how many optional ([...]) ones.
my %shape = (TAKE1 => [1, 0], TAKE2 => [2, 0], TAKE3 => [3, 0], TAKE12 => [1, 1],
             TAKE23 => [2, 1], TAKE13 => [1, 2], TAKE123 => [1, 2], NO_ARGS => [0, 0]);

# ---- the reference --------------------------------------------------------
open my $dh, '<', $doc or die "$doc: $!";
my @lines = <$dh>;
close $dh;
my (%sec, $cur, $in_dirs, $in_code);
for (@lines) {
    if (/^## (.*)/) { $in_dirs = $1 =~ /^Directives\b/; undef $cur; next }
    next unless $in_dirs;
    if (/^### `?([A-Za-z][A-Za-z0-9]*)`?\s*$/) {
        $cur = $1;
        check(!$sec{$cur}, "docs/directives.md: $cur has two sections");
        $sec{$cur} = { text => '' };
        next;
    }
    next unless $cur;
    $sec{$cur}{text} .= $_;
    if (/^```/) { $in_code = !$in_code; next }
    if ($in_code) { $sec{$cur}{example} = 1 if /^\s*(?:<[^>]*>\s*)?\Q$cur\E\b/; next }
    if (/^\|\s*(Syntax|Default|Context|Override)\s*\|\s*(.*?)\s*\|\s*$/) {
        my ($k, $v) = (lc $1, $2);
        $v =~ s/\\\|/|/g;    # a | inside a table cell is written \|
        $sec{$cur}{$k} = $v;
    }
}

for my $name (sort keys %cmd) {
    my $c = $cmd{$name};
    my $s = $sec{$name};
    check($s, "docs/directives.md has no section '### $name' (an AP_INIT_$c->{kind} entry in the code)");
    next unless $s;
    for my $field (qw(syntax default context override)) {
        check(defined $s->{$field} && length $s->{$field}, "$name: no '| \u$field | ... |' row");
    }
    check($s->{example}, "$name: no example (a ``` block with a line that uses $name)");
    if (defined $s->{context}) {
        my $want = expected_context($c);
        check($s->{context} eq $want, "$name: Context is '$s->{context}', the code allows '$want'");
    }
    if (defined $s->{override}) {
        my $want = expected_override($c);
        check($s->{override} eq $want, "$name: Override is '$s->{override}', the code's flags say '$want'");
    }
    if (defined $s->{syntax}) {
        my $syn = $s->{syntax};
        $syn =~ s/^`|`$//g;
        my ($first, @args) = split ' ', $syn;
        check(($first // '') eq $name, "$name: Syntax '$syn' does not start with the directive");
        my $k = $c->{kind};
        if ($k eq 'FLAG') {
            check("@args" eq 'On|Off', "$name: a FLAG directive's Syntax is '$name On|Off', not '$syn'");
        }
        elsif ($k eq 'ITERATE' || $k eq 'ITERATE2') {
            check(@args >= 1 && $args[-1] =~ /\.\.\.\]?$/, "$name: an ITERATE directive's Syntax ends in '...': '$syn'");
        }
        elsif ($shape{$k}) {
            my $opt = grep { /^\[/ } @args;
            my $req = grep { !/^\[/ && !/\]$/ } @args;
            check($req == $shape{$k}[0] && $opt == $shape{$k}[1],
                  "$name: AP_INIT_$k takes $shape{$k}[0] argument(s) and $shape{$k}[1] optional, "
                  . "the Syntax '$syn' shows $req and $opt");
        }
    }
}
for my $name (sort keys %sec) {
    check($cmd{$name}, "docs/directives.md documents $name, which no AP_INIT_* entry defines");
}

# The auth provider and the authz provider are not directives of the table.
check($code =~ /ap_register_auth_provider\([^;]*"jwt-claim"/s
      || $code =~ /"jwt-claim"/, "the jwt-claim authz provider is documented but not registered");
check(join('', @lines) =~ /^### `?Require jwt-claim`?/m, "docs/directives.md: no section for Require jwt-claim");
check(join('', @lines) =~ /^### `?AuthType JWT`?/m, "docs/directives.md: no section for AuthType JWT");

print "  $_\n" for @errors;
print "check-directives: $pass passed, $fail failed\n";
exit($fail ? 1 : 0);
