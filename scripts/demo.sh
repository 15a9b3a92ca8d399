#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Sets up and runs the demo: installs what is missing, builds the module and
# starts httpd on 127.0.0.1 with the demo page, the module's endpoints and a
# demo token.  Embedded mode (no Redis) unless --redis is given.
#   scripts/demo.sh                foreground; Ctrl-C stops it
#   scripts/demo.sh --background   returns once the server answers
#   scripts/demo.sh --redis        also starts redis-server on 127.0.0.1:$REDIS_PORT
#                                  and feeds the module from it (UploadProgressRedis)
#   scripts/demo.sh --stop         stops a background demo
# PORT=8080 and REDIS_PORT=6390 by default.
set -eu
cd "$(dirname "$0")/.."
TOP=$(pwd)
PORT=${PORT:-8080}
REDIS_PORT=${REDIS_PORT:-6390}
export REDIS_PORT
BACKGROUND=0
REDIS=0
STOP=0
for a in "$@"; do
    case $a in
        --background) BACKGROUND=1 ;;
        --redis) REDIS=1 ;;
        --stop) STOP=1 ;;
        *) echo "usage: $0 [--background] [--redis] [--stop]" >&2; exit 2 ;;
    esac
done

# httpd's children run as nobody when started as root: the run directory
# must be reachable by them.
RUN="$TOP/demo-run"
if [ "$(id -u)" -eq 0 ]; then
    d=$TOP
    while [ "$d" != / ]; do
        case $(stat -c %A "$d") in *x|*t) ;; *) RUN=/tmp/mod_upload_progress-demo; break ;; esac
        d=$(dirname "$d")
    done
fi
HTTPD="$(apxs -q SBINDIR 2>/dev/null || echo /usr/sbin)/$(apxs -q PROGNAME 2>/dev/null || echo apache2)"

stop_all() {
    if [ -f "$RUN/logs/httpd.pid" ] && kill -0 "$(cat "$RUN/logs/httpd.pid")" 2>/dev/null; then
        "$HTTPD" -f "$RUN/conf/httpd.conf" -k stop
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            [ -f "$RUN/logs/httpd.pid" ] || break
            sleep 0.5
        done
    fi
    if [ -f "$RUN/redis.pid" ] && kill -0 "$(cat "$RUN/redis.pid")" 2>/dev/null; then
        kill "$(cat "$RUN/redis.pid")"
    fi
    rm -f "$RUN/redis.pid"
}
if [ "$STOP" -eq 1 ]; then
    stop_all
    exit 0
fi

scripts/deps.sh
scripts/build.sh
stop_all
scripts/demo-conf.sh "$RUN" "$PORT"

DEFINES=""
if [ "$REDIS" -eq 1 ]; then
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --daemonize yes --pidfile "$RUN/redis.pid" --logfile "$RUN/logs/redis.log"
    DEFINES="-DUPM_REDIS"
fi

"$HTTPD" -t $DEFINES -f "$RUN/conf/httpd.conf" >/dev/null 2>&1 || "$HTTPD" -t $DEFINES -f "$RUN/conf/httpd.conf"
TOKEN=$(sed -n 's/.*"token": "\(.*\)".*/\1/p' "$RUN/htdocs/demo-config.json")
cat <<INFO

mod_upload_progress demo: open http://127.0.0.1:$PORT/ in a browser
(logs in $RUN/logs; $([ "$REDIS" -eq 1 ] && echo "events also from Redis on 127.0.0.1:$REDIS_PORT" || echo "embedded mode, no Redis"))

Pick files and upload them: each file's bar follows the bytes the module
counts as the server reads them, then a simulated processing job's bar.
The log lists every message the page received; "Drop connection" shows the
client resuming without losing any.

Demo token for user "demo-user" (valid 24 h):
  $TOKEN

Listen from a terminal (Server-Sent Events):
  curl -N -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$PORT/api/upload/sessions/notifications/stream

Listen (WebSocket; any client, e.g. websocat or a browser console):
  ws://127.0.0.1:$PORT/ws/upload-progress?token=$TOKEN

Publish (from another terminal):
  curl -X POST -H 'Content-Type: application/json' http://127.0.0.1:$PORT/publish \\
       -d '{"event":"PhotoUploadProgressed","userId":"demo-user","photoId":"ph-1","bytesUploaded":455,"totalBytes":1000}'
$([ "$REDIS" -eq 1 ] && printf '%s\n' "  redis-cli -p $REDIS_PORT PUBLISH user:demo-user '{\"event\":\"PhotoUploadCompleted\",\"photoId\":\"ph-1\",\"bytesUploaded\":1000,\"totalBytes\":1000}'")
INFO
if [ "$BACKGROUND" -eq 1 ]; then
    "$HTTPD" $DEFINES -f "$RUN/conf/httpd.conf" -k start
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        curl -fs -o /dev/null "http://127.0.0.1:$PORT/" && break
        sleep 0.5
    done
    echo "Stop it with: scripts/demo.sh --stop"
else
    echo "Ctrl-C stops it."
    trap 'stop_all' EXIT
    "$HTTPD" $DEFINES -f "$RUN/conf/httpd.conf" -DFOREGROUND
fi
