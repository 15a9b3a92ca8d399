#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Restarts under load: CONNS subscribers (SSE or WebSocket) of USERS users
# through bench/loadclient while bench/publisher posts RATE events a second
# to random users, with graceful restarts (SIGUSR1) and kill -9 of a child
# at given seconds.  Every client reconnects with its last id; the summary
# counts what was lost, duplicated, reordered and reset, and how long it
# took until every client streamed again after each fault.  Loopback only,
# bounded in time.
#
#   bench/restart_storm.sh
#   PROTO=ws FORM=message bench/restart_storm.sh    first-message resume
#
# Environment (defaults):
#   PROTO=ws|sse (ws)   FORM=url|message (url; WebSocket only)
#   CONNS=4000 USERS=4000 RATE=400 SECONDS=20
#   RESTARTS="6"        seconds (after the publisher starts) of graceful restarts
#   KILLS=""            seconds of a kill -9 of one child
#   REPLAY=""           UploadProgressReplay (slots), empty: the default
#   SUBSCRIBE=""        WebSocket: --ws-subscribe list (e.g. jobId=j0,jobId=j1)
#   JOBS=0              publisher --jobs
#   PORT=8660
set -u
cd "$(dirname "$0")/.."
TOP=$(pwd)
BENCH=$TOP/bench
RUN=$BENCH/run-storm
. "$BENCH/lib.sh"
PROTO=${PROTO:-ws}
FORM=${FORM:-url}
CONNS=${CONNS:-4000}
USERS=${USERS:-4000}
RATE=${RATE:-400}
SECONDS_=${SECONDS:-20}
RESTARTS=${RESTARTS:-6}
KILLS=${KILLS:-}
REPLAY=${REPLAY:-}
SUBSCRIBE=${SUBSCRIBE:-}
JOBS=${JOBS:-0}
PORT=${PORT:-8660}

rm -rf "$RUN"
mkdir -p "$RUN/rt"
chmod 777 "$RUN" "$RUN/rt"
setup_tools
printf 'storm-secret-%s' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$RUN/secret"
chmod 644 "$RUN/secret"
extra=""
[ -n "$REPLAY" ] && extra="UploadProgressReplay $REPLAY"
# The reactor: few threads; children for the file limit, and room for a
# second generation during a graceful restart.
start_httpd "$PORT" 4 8 32 32 256 4 "$extra"
log "httpd $SERVER_PID on $PORT ($PROTO, form $FORM, $CONNS conns of $USERS users, $RATE/s)"

procs=$(( (CONNS + 999) / 1000 ))
args=(--port "$PORT" --conns "$CONNS" --users "$USERS" --prefix st --procs "$procs"
      --secret "$RUN/secret" --status "$RUN/status" --stop-file "$RUN/stop"
      --sent "$RUN/sent" --out "$RUN/clients.json" --max-time $((SECONDS_ + 120)))
if [ "$PROTO" = ws ]; then
    args+=(--proto ws --path /ws)
    [ "$FORM" = message ] && args+=(--ws-resume)
    [ -n "$SUBSCRIBE" ] && args+=(--ws-subscribe "$SUBSCRIBE")
else
    args+=(--proto sse --path /sse)
fi
"$LC" "${args[@]}" 2>"$RUN/loadclient.err" &
LC_PID=$!
for i in $(seq 1 600); do
    st=$(cat "$RUN/status" 2>/dev/null)
    [ "$(pget "$st" streaming)" = "$CONNS" ] && break
    sleep 0.1
done
log "clients: $st"

pubargs=(--target ours --port "$PORT" --users "$USERS" --prefix st --rate "$RATE"
         --duration "$SECONDS_" --sent "$RUN/sent" --out "$RUN/publisher.json" --pick random)
[ "$JOBS" -gt 0 ] && pubargs+=(--jobs "$JOBS")
"$PUB" "${pubargs[@]}" 2>"$RUN/publisher.err" &
PUB_PID=$!
T0=$(date +%s.%N)

# The faults, in time order, and after each the time until every client
# streams again (status sampled every 50 ms).
events=$( { for t in $RESTARTS; do echo "$t usr1"; done; for t in $KILLS; do echo "$t kill"; done; } | sort -n)
results=""
while read -r at what; do
    [ -z "$at" ] && continue
    now=$(date +%s.%N)
    wait_s=$(calc "$T0 + $at - $now")
    [ "$(calc "($wait_s > 0) ? 1 : 0")" = 1 ] && sleep "$wait_s"
    if [ "$what" = usr1 ]; then
        kill -USR1 "$SERVER_PID"
    else
        child=$(pgrep -P "$SERVER_PID" | head -1)
        kill -9 "$child"
    fi
    t_fault=$(date +%s.%N)
    sleep 0.3
    back=""
    for i in $(seq 1 600); do
        st=$(cat "$RUN/status" 2>/dev/null)
        if [ "$(pget "$st" streaming)" = "$CONNS" ]; then
            back=$(calc "$(date +%s.%N) - $t_fault")
            break
        fi
        sleep 0.05
    done
    log "$what at ${at}s: every client streaming again after ${back:-more than 30}s"
    results+="${what}@${at}s:back_after=${back:-timeout}s "
done <<< "$events"

wait "$PUB_PID"
sleep 3
stop_loadclient "$RUN/stop" "$LC_PID"
kill -TERM "$SERVER_PID" 2>/dev/null
wait "$SERVER_PID" 2>/dev/null
echo "faults: $results"
echo "publisher: $(cat "$RUN/publisher.json")"
echo "clients: $(cat "$RUN/clients.json")"
