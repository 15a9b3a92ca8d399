#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Threads and memory of one httpd child per SSE stream over HTTP/2 (h2c):
# a private httpd (one child, ThreadsPerChild 64), then 0 and N streams,
# one per connection, sampled from /proc.  Loopback only, bounded.
#   bench/h2-sse.sh [N [CONNS]]     (default 30 streams on 30 connections;
#   streams beyond one per connection need UploadProgressHTTP2Streams 0,
#   which this sets when CONNS < N)
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-30}
CONNS=${2:-$N}
LIMIT=auto
[ "$CONNS" -lt "$N" ] && LIMIT=0
DIR=$(mktemp -d /tmp/upm-h2b-XXXXXX)
chmod 755 "$DIR"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MODDIR=$(apxs -q LIBEXECDIR)
openssl rand -hex 32 > "$DIR/secret"
chmod 644 "$DIR/secret"
mkdir -p "$DIR/run" && chmod 777 "$DIR/run"
USER_BLOCK=""
[ "$(id -u)" -eq 0 ] && USER_BLOCK="User nobody
Group nogroup"
cat > "$DIR/httpd.conf" <<CONF
ServerRoot "$DIR"
ServerName localhost
Listen 127.0.0.1:$PORT
PidFile "$DIR/httpd.pid"
ErrorLog "$DIR/error_log"
LogLevel warn
DefaultRuntimeDir "$DIR/run"
$USER_BLOCK
LoadModule mpm_event_module $MODDIR/mod_mpm_event.so
LoadModule authn_core_module $MODDIR/mod_authn_core.so
LoadModule authz_core_module $MODDIR/mod_authz_core.so
LoadModule authz_user_module $MODDIR/mod_authz_user.so
LoadModule http2_module $MODDIR/mod_http2.so
LoadModule upload_progress_module $TOP/mod_upload_progress/.libs/mod_upload_progress.so
StartServers 1
ServerLimit 1
ThreadsPerChild 64
MaxRequestWorkers 64
Protocols h2c http/1.1
<Location /sse>
    SetHandler upload-progress-sse
    AuthType JWT
    UploadProgressJWTKey HS256 file:$DIR/secret
    Require valid-user
    UploadProgressMaxConnectionsPerUser 0
    UploadProgressHTTP2Streams $LIMIT
</Location>
CONF
/usr/sbin/apache2 -f "$DIR/httpd.conf" -k start
trap '/usr/sbin/apache2 -f "$DIR/httpd.conf" -k stop; sleep 1; rm -rf "$DIR"' EXIT
sleep 1.5
child() { pgrep -P "$(cat "$DIR/httpd.pid")" | head -1; }
sample() {
    c=$(child)
    printf '%s: threads %s, VmRSS %s kB\n' "$1" "$(ls /proc/$c/task | wc -l)" \
        "$(awk '/VmRSS/ {print $2}' /proc/$c/status)"
}
sample "0 streams"
node "$TOP/bench/h2-sse.mjs" "http://127.0.0.1:$PORT" "$DIR/secret" "$N" "$CONNS" 4 &
sleep 3
sample "$N streams on $CONNS connections"
wait
sleep 2
sample "after close"
