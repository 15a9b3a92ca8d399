# SPDX-License-Identifier: Apache-2.0
# Any Apache authentication in front of the streams: the user is r->user,
# whoever set it.  AuthType Basic (mod_auth_basic + mod_authn_file) and a
# login form with an encrypted session cookie (mod_auth_form +
# mod_session_cookie + mod_session_crypto) each open a stream that
# carries that user's messages and nobody else's.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use MIME::Base64 qw(encode_base64);
use LWP::UserAgent;
use HTTP::Request::Common qw(POST);
use UPM::Test;
use UPM::Server;
use UPM::WS;

my $dir = t_logs() . '/apache-auth';
system('rm', '-rf', $dir);
mkdir $dir or die "$dir: $!";
system("htpasswd -bcB $dir/htpasswd alice wonderland 2>/dev/null") == 0 or die 'htpasswd';
system("htpasswd -bB $dir/htpasswd bob builder 2>/dev/null") == 0 or die 'htpasswd';
chmod 0644, "$dir/htpasswd";

chomp(my $moddir = `/usr/bin/apxs -q LIBEXECDIR`);
my $S = UPM::Server->private(<<"CONF");
LoadModule authn_file_module $moddir/mod_authn_file.so
LoadModule auth_basic_module $moddir/mod_auth_basic.so
LoadModule request_module $moddir/mod_request.so
LoadModule session_module $moddir/mod_session.so
LoadModule session_cookie_module $moddir/mod_session_cookie.so
LoadModule session_crypto_module $moddir/mod_session_crypto.so
LoadModule auth_form_module $moddir/mod_auth_form.so
<Location /basic/sse>
    SetHandler upload-progress-sse
    AuthType Basic
    AuthName "upload progress"
    AuthBasicProvider file
    AuthUserFile $dir/htpasswd
    Require valid-user
</Location>
<Location /basic/ws>
    SetHandler upload-progress-websocket
    AuthType Basic
    AuthName "upload progress"
    AuthBasicProvider file
    AuthUserFile $dir/htpasswd
    Require valid-user
</Location>
<Location /form>
    AuthType form
    AuthName "upload progress"
    AuthFormProvider file
    AuthUserFile $dir/htpasswd
    Session On
    SessionCookieName upm_session path=/;httponly
    SessionCryptoPassphrase a-test-passphrase-not-for-production
    Require valid-user
</Location>
<Location /form/sse>
    SetHandler upload-progress-sse
</Location>
<Location /form/ws>
    SetHandler upload-progress-websocket
</Location>
<Location /form/login>
    SetHandler form-login-handler
    AuthFormLoginSuccessLocation /form/done
    Require all granted
</Location>
CONF
my $port = $S->port;

# Basic
my $basic = 'Basic ' . encode_base64('alice:wonderland', '');
my $A = sse('/basic/sse', port => $port, headers => { Authorization => $basic });
is($A->status, 200, 'AuthType Basic: the stream opens for alice');
my $N = sse('/basic/sse', port => $port);
is($N->status, 401, 'AuthType Basic: no credentials, 401');
my $W = sse('/basic/sse', port => $port,
            headers => { Authorization => 'Basic ' . encode_base64('alice:wrong', '') });
is($W->status, 401, 'AuthType Basic: a wrong password, 401');

my ($st) = $S->publish('/publish', { type => 'file_registered', userId => 'bob', fileId => 'b1' });
is($st, 202, 'published for bob');
($st) = $S->publish('/publish', { type => 'file_registered', userId => 'alice', fileId => 'a1' });
is($st, 202, 'published for alice');
my $AW = UPM::WS->connect('/basic/ws', port => $port, headers => { Authorization => $basic });
is($AW->status, 101, 'AuthType Basic: the WebSocket opens for alice');
my $NW = UPM::WS->connect('/basic/ws', port => $port);
is($NW->status, 401, 'AuthType Basic: a WebSocket without credentials, 401');
my $e = $A->next_event(5);
is($e && $e->{event}, 'file_registered', 'alice receives her message');
like($e && $e->{data}, qr/"a1"/, 'it is hers, not bob\'s');
ok(!$A->next_event(1), 'and nothing else');
$A->close;
($st) = $S->publish('/publish', { type => 'file_registered', userId => 'bob', fileId => 'b3' });
($st) = $S->publish('/publish', { type => 'file_registered', userId => 'alice', fileId => 'a3' });
my ($m, @before) = $AW->until_json(fileId => 'a3', 5);
ok($m, 'WebSocket (Basic): alice receives her message');
ok(!grep({ ($_->{fileId} // '') =~ /^b/ } @before, $AW->drain_json(1)),
   'WebSocket (Basic): none of bob\'s');
$AW->close;

# Form login + encrypted session cookie
my $ua = LWP::UserAgent->new(timeout => 10, keep_alive => 0, max_redirect => 0);
my $res = $ua->request(POST("http://127.0.0.1:$port/form/login",
                            [ httpd_username => 'bob', httpd_password => 'builder' ]));
my ($cookie) = ($res->header('Set-Cookie') // '') =~ /(upm_session=[^;]+)/;
ok($cookie, 'form login sets the session cookie (' . $res->code . ')');
unlike($cookie // '', qr/bob/, 'the session cookie is encrypted (no user name in it)');
my $B = sse('/form/sse', port => $port, headers => { Cookie => $cookie });
is($B->status, 200, 'session cookie: the stream opens for bob');
my $BW = UPM::WS->connect('/form/ws', port => $port, headers => { Cookie => $cookie });
is($BW->status, 101, 'session cookie: the WebSocket opens for bob');
my $F = sse('/form/sse', port => $port);
is($F->status, 401, 'no session cookie: 401');
$F = sse('/form/sse', port => $port, headers => { Cookie => 'upm_session=forged' });
is($F->status, 401, 'a forged session cookie: 401');

($st) = $S->publish('/publish', { type => 'file_registered', userId => 'alice', fileId => 'a2' });
($st) = $S->publish('/publish', { type => 'file_registered', userId => 'bob', fileId => 'b2' });
is($st, 202, 'published for alice and bob');
$e = $B->next_event(5);
like($e && $e->{data}, qr/"b2"/, 'bob receives his message, not alice\'s');
ok(!$B->next_event(1), 'and nothing else');
$B->close;
($m, @before) = $BW->until_json(fileId => 'b2', 5);
ok($m, 'WebSocket (session cookie): bob receives his message');
ok(!grep({ ($_->{fileId} // '') =~ /^a/ } @before), 'WebSocket (session cookie): none of alice\'s');
$BW->close;

$S->stop;
done_testing();
