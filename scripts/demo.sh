#!/bin/sh
# Sets up and runs the demo: installs what is missing, builds the module and
# starts httpd on 127.0.0.1 (embedded mode, no Redis) with a demo token.
#   scripts/demo.sh               foreground; Ctrl-C stops it
#   scripts/demo.sh --background  returns once the server answers
# PORT=8080 by default.
set -eu
cd "$(dirname "$0")/.."
TOP=$(pwd)
PORT=${PORT:-8080}
RUN="$TOP/demo-run"

scripts/deps.sh
scripts/build.sh

mkdir -p "$RUN/logs" "$RUN/run" "$RUN/htdocs" "$RUN/conf"
[ -s "$RUN/secret" ] || { openssl rand -hex 32 > "$RUN/secret"; chmod 640 "$RUN/secret"; }
USER_BLOCK=""
if [ "$(id -u)" -eq 0 ]; then
    USER_BLOCK="User nobody
Group nogroup"
    chgrp nogroup "$RUN/secret"
    chown -R nobody "$RUN/run"
fi
for f in upload-progress-endpoints.conf upload-progress-websocket.conf; do
    sed -e "s|@SECRET@|$RUN/secret|g" "conf/$f" > "$RUN/conf/$f"
done
awk -v ub="$USER_BLOCK" '{ if ($0 == "@USER_BLOCK@") print ub; else print }' conf/demo.conf.in |
sed -e "s|@ROOT@|$RUN|g" -e "s|@PORT@|$PORT|g" \
    -e "s|@MODDIR@|$(apxs -q LIBEXECDIR)|g" \
    -e "s|@MODULE@|$TOP/mod_upload_progress/.libs/mod_upload_progress.so|g" \
    -e "s|@CONFDIR@|$RUN/conf|g" > "$RUN/conf/httpd.conf"
[ -f "$RUN/htdocs/index.html" ] || cat > "$RUN/htdocs/index.html" <<'HTML'
<!doctype html><meta charset="utf-8"><title>mod_upload_progress demo</title>
<p>mod_upload_progress demo server. Streams: /api/upload/sessions/notifications/stream,
/api/upload/sessions/{sessionId}/stream, /api/v1/upload-progress/{jobId}; WebSocket:
/ws/upload-progress, /ws, /session/{sessionId}; publish: POST /ws/broadcast.</p>
HTML

HTTPD="$(apxs -q SBINDIR)/$(apxs -q PROGNAME)"
"$HTTPD" -t -f "$RUN/conf/httpd.conf" >/dev/null 2>&1 || "$HTTPD" -t -f "$RUN/conf/httpd.conf"
if [ -f "$RUN/logs/httpd.pid" ] && kill -0 "$(cat "$RUN/logs/httpd.pid")" 2>/dev/null; then
    "$HTTPD" -f "$RUN/conf/httpd.conf" -k stop
    sleep 1
fi

TOKEN=$(scripts/jwt.sh "$RUN/secret" demo-user 86400)
cat <<INFO

mod_upload_progress demo on http://127.0.0.1:$PORT/ (logs in $RUN/logs)

Demo token for user "demo-user" (valid 24 h):
  $TOKEN

Listen (Server-Sent Events):
  curl -N -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$PORT/api/upload/sessions/notifications/stream

Listen (WebSocket; any client, e.g. websocat or a browser console):
  ws://127.0.0.1:$PORT/ws/upload-progress?token=$TOKEN

Publish (from another terminal):
  curl -X POST -H 'Content-Type: application/json' http://127.0.0.1:$PORT/ws/broadcast \\
       -d '{"event":"PhotoUploadProgressed","userId":"demo-user","photoId":"ph-1","bytesUploaded":455,"totalBytes":1000}'

INFO
if [ "${1:-}" = "--background" ]; then
    "$HTTPD" -f "$RUN/conf/httpd.conf" -k start
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        curl -fs -o /dev/null "http://127.0.0.1:$PORT/" && break
        sleep 0.5
    done
    echo "Stop it with: $HTTPD -f $RUN/conf/httpd.conf -k stop"
else
    echo "Ctrl-C stops it."
    exec "$HTTPD" -f "$RUN/conf/httpd.conf" -DFOREGROUND
fi
