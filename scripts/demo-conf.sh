#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Writes a runnable demo httpd setup into RUN_DIR: httpd.conf from
# conf/demo.conf.in and conf/upload-progress-endpoints.conf, a fresh HS256
# secret (kept across runs), the demo page and the browser client in
# htdocs/, the upload CGI, and htdocs/demo-config.json with a token for
# the demo user.  Used by scripts/demo.sh and by the client and browser
# tests, which add their own locations with EXTRA_CONF files.
#   scripts/demo-conf.sh RUN_DIR PORT [EXTRA_CONF ...]
# Environment: REDIS_PORT (default 6390), DEMO_USER (default demo-user).
# Needs the module built (scripts/build.sh).
set -eu
[ $# -ge 2 ] || { echo "usage: $0 RUN_DIR PORT [EXTRA_CONF ...]" >&2; exit 2; }
RUN=$1
PORT=$2
shift 2
TOP=$(cd "$(dirname "$0")/.." && pwd)
REDIS_PORT=${REDIS_PORT:-6390}
DEMO_USER=${DEMO_USER:-demo-user}
MODULE="$TOP/mod_upload_progress/.libs/mod_upload_progress.so"
[ -f "$MODULE" ] || { echo "$MODULE is missing: run scripts/build.sh" >&2; exit 1; }

mkdir -p "$RUN/logs" "$RUN/run" "$RUN/htdocs/client" "$RUN/conf" "$RUN/cgi-bin"
RUN=$(cd "$RUN" && pwd)
[ -s "$RUN/secret" ] || { openssl rand -hex 32 > "$RUN/secret"; }
chmod 640 "$RUN/secret"
USER_BLOCK=""
if [ "$(id -u)" -eq 0 ]; then
    # httpd's children drop to nobody: they must reach the run directory.
    d=$RUN
    while [ "$d" != / ]; do
        case $(stat -c %A "$d") in
            *x|*t) ;;
            *) echo "$d is not searchable by other users, so httpd's children (User" \
                    "nobody) cannot read $RUN: choose a run directory under /tmp" >&2
               exit 1 ;;
        esac
        d=$(dirname "$d")
    done
    USER_BLOCK="User nobody
Group nogroup"
    chgrp nogroup "$RUN/secret"
    chown -R nobody "$RUN/run"
fi

subst() {
    sed -e "s|@ROOT@|$RUN|g" -e "s|@PORT@|$PORT|g" -e "s|@SECRET@|$RUN/secret|g" \
        -e "s|@MODDIR@|$(apxs -q LIBEXECDIR)|g" -e "s|@MODULE@|$MODULE|g" \
        -e "s|@CONFDIR@|$RUN/conf|g" -e "s|@REDIS_PORT@|$REDIS_PORT|g"
}
for f in upload-progress-endpoints.conf upload-progress-websocket.conf; do
    subst < "$TOP/conf/$f" > "$RUN/conf/$f"
done
EXTRA=""
n=0
for f in "$@"; do
    n=$((n + 1))
    subst < "$f" > "$RUN/conf/extra-$n.conf"
    EXTRA="${EXTRA}Include \"$RUN/conf/extra-$n.conf\"
"
done
awk -v ub="$USER_BLOCK" -v ex="$EXTRA" '
    $0 == "@USER_BLOCK@" { print ub; next }
    $0 == "@EXTRA@" { printf "%s", ex; next }
    { print }' "$TOP/conf/demo.conf.in" | subst > "$RUN/conf/httpd.conf"

# The page and the client it imports; copied so that httpd's user needs no
# access to the source tree.
cp "$TOP/clients/demo/index.html" "$TOP/clients/demo/demo.js" "$TOP/clients/demo/demo.css" \
   "$RUN/htdocs/"
cp "$TOP/clients/js/upload-progress.mjs" "$RUN/htdocs/client/"
cp "$TOP/clients/demo/upload.cgi" "$RUN/cgi-bin/upload.cgi"
chmod 755 "$RUN/cgi-bin/upload.cgi"

TOKEN=$("$TOP/scripts/jwt.sh" "$RUN/secret" "$DEMO_USER" 86400)
cat > "$RUN/htdocs/demo-config.json" <<JSON
{
  "userId": "$DEMO_USER",
  "token": "$TOKEN",
  "urls": {
    "websocket": "/ws/upload-progress",
    "sse": "/api/upload/sessions/notifications/stream",
    "poll": "/api/upload/poll"
  },
  "publishUrl": "/publish",
  "uploadUrl": "/upload"
}
JSON
chmod -R a+rX "$RUN/htdocs" "$RUN/cgi-bin"
