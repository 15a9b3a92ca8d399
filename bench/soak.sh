#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The leak soak: our httpd (event MPM, a fixed set of children that are
# never recycled) on loopback, and
#
#   1. 100,000 connect / receive / disconnect cycles, SSE and WebSocket in
#      turn, 200 at a time: each with a token for a user of its own, the
#      stream opened, one event published for that user and received, then
#      left by the protocol's goodbye, a bare FIN or a reset, in turn
#      (bench/loadclient --cycles);
#   2. 100,000 publish requests (bench/publisher --mix: single events and
#      arrays of 2 to 8, every event kind, 10,000 users), 200 subscribers
#      (SSE and WebSocket) connected meanwhile to users among them, which
#      must receive every event of theirs, once.
#
# Each httpd child's RSS (and PSS) is read by pid from /proc after the first
# 10,000 cycles (publishes) and after all of them, with nothing in flight;
# a child whose RSS grew by more than 5 % in between fails the soak, and so
# does a failed cycle, a lost, duplicated or misdelivered message, a publish
# error, or a child that died or was replaced.  The first 10,000 are the
# warm-up, with two things before them: the replay ring (shared memory,
# counted in RSS as a child first reads each page) is filled once, and
# twice the concurrency is held for a moment, so that each child's heap
# reaches the high-water mark the cycles can later ask of it.
# Prints a table; exits 1 on a miss, 2 when the soak itself could not run.
#
#   bench/soak.sh               (as root: httpd's children run as nobody)
#
# Environment: SOAK_CYCLES (100000), SOAK_PUBLISHES (100000), SOAK_WARMUP
# (10000), SOAK_CONNS (200 concurrent cycles, and subscribers), SOAK_RATE
# (publish requests per second, 4000), SOAK_MAX_GROWTH (5, percent),
# SOAK_PORT (8720), UPM_MODULE (a module built elsewhere).
set -u
cd "$(dirname "$0")/.."
TOP=$(pwd)
BENCH=$TOP/bench
RUN=$BENCH/soak-run
. "$BENCH/lib.sh"

CYCLES=${SOAK_CYCLES:-100000}
PUBLISHES=${SOAK_PUBLISHES:-100000}
WARMUP=${SOAK_WARMUP:-10000}
CONNS=${SOAK_CONNS:-200}
RATE=${SOAK_RATE:-4000}
MAX_GROWTH=${SOAK_MAX_GROWTH:-5}
CYCLE_TIMEOUT=${SOAK_CYCLE_TIMEOUT:-10}
PORT=${SOAK_PORT:-8720}
PUB_USERS=10000
CHILDREN=2
THREADS=25

[ "$(id -u)" -eq 0 ] || die "run as root (httpd's User nobody)"
[ "$WARMUP" -lt "$CYCLES" ] && [ "$WARMUP" -lt "$PUBLISHES" ] || die "SOAK_WARMUP must be below the counts"
setup_tools
[ "$(ulimit -n)" -ge $((CONNS + 1024)) ] || die "open-file limit $(ulimit -n) is too low"

rm -rf "$RUN"
mkdir -p "$RUN/rt"
chown nobody "$RUN/rt"
printf '%s' "$(openssl rand -hex 32)" > "$RUN/secret"
chmod 644 "$RUN/secret"

SERVER_PID=""
SUBS_PID=""
cleanup() {
    [ -n "$SUBS_PID" ] && kill -KILL "$SUBS_PID" 2>/dev/null
    [ -n "$SERVER_PID" ] && kill_tree "$SERVER_PID"
    SERVER_PID=""
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# Every child's memory by pid, one "pid rss_kb pss_kb" line each, once
# nothing is in flight (closed streams are torn down on the reactor a
# moment after the client left).
children_mem() { # OUTFILE
    sleep 2
    "$PSTAT" --each "$SERVER_PID" | awk -v pp="$SERVER_PID" '
        { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
        v["ppid"] == pp { print v["pid"], v["rss_kb"], v["pss_kb"] }' | sort > "$1"
}

FAILS=""
miss() { FAILS="$FAILS
- $*"; }
now_s() { date +%s.%N; }

# Starts $CHILDREN children and keeps them: MaxSpareThreads covers every
# thread and MaxConnectionsPerChild is 0 (bench/conf/httpd-bench.conf.in).
# Streams on the reactor still count as the MPM's connections: without a
# large AsyncRequestWorkerFactor it would refuse keep-alive (the publish
# connections) once the streams outnumber the threads, as in bench/run.sh.
# The module's defaults otherwise, the per-user stream cap included (its
# shared table must give back the place of each of 100,000 users).
MAX_PER_USER=32 start_httpd "$PORT" "$CHILDREN" "$CHILDREN" "$THREADS" "$THREADS" \
    $((CHILDREN * THREADS)) $(( (CONNS / CHILDREN + 1000) / THREADS + 2 ))
sleep 1
# The replay ring is shared memory (8 MB by default) that counts in a
# child's RSS page by page as its follower first reads them: with the
# soak's small messages the first lap takes some 40,000 of them, which
# would pass for growth after the warm-up.  One lap of large padded events
# first touches it all.
"$PUB" --target ours --port "$PORT" --path /publish --users 100 --prefix fill --rate 20000 \
    --duration 1 --pad 1000 --sent "$RUN/fill.sent" --out "$RUN/fill.json" 2>"$RUN/fill.err" \
    || die "filling the replay ring failed: $(cat "$RUN/fill.json" "$RUN/fill.err" 2>/dev/null)"
children_mem "$RUN/mem-start"
PIDS0=$(cut -d' ' -f1 "$RUN/mem-start" | tr '\n' ' ')
[ "$(wc -l < "$RUN/mem-start")" -eq "$CHILDREN" ] || die "expected $CHILDREN children, found: $PIDS0"
log "httpd $SERVER_PID, children $PIDS0, module $MODULE"

# Runs a soak in two parts, the warm-up and the rest, with every child's
# memory read after each; PART_SECONDS: how long both took.
two_parts() { # NAME RUNNER TOTAL (RUNNER: TAG COUNT BASE)
    local t0 t1 t2 t3
    t0=$(now_s)
    "$2" "$1-warmup" "$WARMUP" 0
    t1=$(now_s)
    children_mem "$RUN/mem-$1-warmup"
    t2=$(now_s)
    "$2" "$1-rest" $(($3 - WARMUP)) "$WARMUP"
    t3=$(now_s)
    children_mem "$RUN/mem-$1-end"
    PART_SECONDS=$(calc "$t1 - $t0 + $t3 - $t2")
}

same_children() { # TAG
    local now
    now=$(cut -d' ' -f1 "$RUN/mem-$1" | tr '\n' ' ')
    [ "$now" = "$PIDS0" ] || miss "children changed by $1: $PIDS0-> $now"
}

# ---- 1. connect / receive / disconnect ----------------------------------

cycles() { # TAG COUNT BASE
    "$LC" --port "$PORT" --path /sse --ws-path /ws --proto mixed --secret "$RUN/secret" --prefix soak \
        --conns "$CONNS" --procs 2 --cycles "$2" --cycle-base "$3" --cycle-timeout "$CYCLE_TIMEOUT" \
        --publish /publish --max-time 300 --label "$1" --out "$RUN/$1.json" \
        2>"$RUN/$1.err"
}

log "connection soak: $CYCLES cycles, $CONNS at a time, SSE and WebSocket"
# Part of the warm-up: which child takes a connection is up to the kernel,
# so a child's share of the $CONNS open at a time wanders, and its heap
# follows the highest share it ever held.  Twice $CONNS held at once for a
# moment sets that mark first, for both children.
"$LC" --port "$PORT" --path /sse --ws-path /ws --proto mixed --secret "$RUN/secret" \
    --prefix burst --conns $((2 * CONNS)) --users $((2 * CONNS)) --procs 2 --no-reconnect \
    --connect-timeout 4 --max-time 5 --out "$RUN/burst.json" 2>"$RUN/burst.err"
[ "$(jget "$RUN/burst.json" established)" = $((2 * CONNS)) ] \
    || miss "warm-up: $(jget "$RUN/burst.json" established) of $((2 * CONNS)) streams opened ($(jget "$RUN/burst.json" first_error))"
two_parts cycles cycles "$CYCLES"
CYCLE_SECONDS=$PART_SECONDS
for tag in cycles-warmup cycles-rest; do
    f=$RUN/$tag.json
    [ -s "$f" ] || { miss "$tag: the load client wrote no summary ($(tail -n1 "$RUN/$tag.err"))"; continue; }
    want=$(jget "$f" cycles)
    [ "$(jget "$f" cycles_ok)" = "$want" ] \
        || miss "$tag: $(jget "$f" cycles_ok) of $want cycles completed, $(jget "$f" cycles_failed) failed: $(jget "$f" first_error)"
    for k in foreign dup pub_errors; do
        [ "$(jget "$f" $k)" = 0 ] || miss "$tag: $k $(jget "$f" $k)"
    done
    log "  $tag: $(jget "$f" cycles_ok)/$want cycles (ws $(jget "$f" cycles_ws); left by goodbye $(jget "$f" left_goodbye), FIN $(jget "$f" left_fin), RST $(jget "$f" left_rst)), receive p99 $(jget "$f" p99_ms) ms"
done
e1=$(jget "$RUN/cycles-warmup.json" cycles_failed)
e2=$(jget "$RUN/cycles-rest.json" cycles_failed)
CYCLE_ERRORS=$(( ${e1:-1} + ${e2:-1} ))
same_children cycles-warmup
same_children cycles-end

# ---- 2. publishes -----------------------------------------------------------

log "publish soak: $PUBLISHES requests at $RATE/s to $PUB_USERS users, $CONNS subscribers"
# Subscribers for users pub0 .. pub$((CONNS - 1)), SSE and WebSocket in turn;
# the publisher picks among all $PUB_USERS.
"$LC" --port "$PORT" --path /sse --ws-path /ws --proto mixed --secret "$RUN/secret" --prefix pub \
    --conns "$CONNS" --users "$CONNS" --procs 2 --no-reconnect --status "$RUN/subs.status" \
    --stop-file "$RUN/subs.stop" --sent "$RUN/pub.sent" --out "$RUN/subs.json" \
    --max-time 600 --label subs 2>"$RUN/subs.err" &
SUBS_PID=$!
for i in $(seq 1 100); do
    est=$({ tr ' ' '\n' < "$RUN/subs.status"; } 2>/dev/null | sed -n 's/^established=//p')
    [ "${est:-0}" -ge "$CONNS" ] && break
    sleep 0.2
done
[ "${est:-0}" -ge "$CONNS" ] || miss "publish soak: only ${est:-0} of $CONNS subscribers connected"

publishes() { # TAG COUNT BASE: the second part goes on with the first's numbering
    local from=()
    [ "$3" -gt 0 ] && from=(--counts-from "$RUN/pub.sent")
    timeout $(( $2 / RATE + 120 )) "$PUB" --target ours --port "$PORT" --path /publish --mix \
        --users "$PUB_USERS" --prefix pub --rate "$RATE" --duration "$(calc "$2 / $RATE")" \
        --conns 4 "${from[@]}" --sent "$RUN/pub.sent" --out "$RUN/$1.json" 2>"$RUN/$1.err"
}

two_parts pub publishes "$PUBLISHES"
PUB_SECONDS=$PART_SECONDS
PUB_ERRORS=0
PUB_EVENTS=0
for tag in pub-warmup pub-rest; do
    f=$RUN/$tag.json
    [ -s "$f" ] || { miss "$tag: the publisher wrote no summary ($(tail -n1 "$RUN/$tag.err"))"; PUB_ERRORS=$((PUB_ERRORS + 1)); continue; }
    e=$(jget "$f" errors)
    PUB_ERRORS=$((PUB_ERRORS + ${e:-1} + $(jget "$f" unanswered)))
    PUB_EVENTS=$((PUB_EVENTS + $(jget "$f" acked)))
    [ "$(jget "$f" drained)" = 1 ] && [ "$e" = 0 ] \
        || miss "$tag: $e events refused, $(jget "$f" unanswered) unanswered: $(jget "$f" first_error)"
    log "  $tag: $(jget "$f" requests) requests, $(jget "$f" acked) events accepted"
done
stop_loadclient "$RUN/subs.stop" "$SUBS_PID"
SUBS_PID=""
f=$RUN/subs.json
if [ -s "$f" ]; then
    log "  subscribers: $(jget "$f" delivered) of $(jget "$f" expected) messages of theirs delivered, lost $(jget "$f" lost), dup $(jget "$f" dup), other users' $(jget "$f" foreign), p99 $(jget "$f" p99_ms) ms"
    for k in lost dup foreign failed disconnects; do
        [ "$(jget "$f" $k)" = 0 ] || miss "publish soak subscribers: $k $(jget "$f" $k) ($(jget "$f" first_error))"
    done
    [ "$(jget "$f" expected)" -gt 0 ] || miss "publish soak subscribers: no message was addressed to them"
else
    miss "publish soak: the subscribers wrote no summary"
fi
same_children pub-warmup
same_children pub-end
if grep -E 'exit signal|AH00052|AH00059|child process [0-9]+ still did not exit' "$RUN/error_log" >/dev/null; then
    miss "a child crashed: $(grep -m1 -E 'exit signal|AH00052|AH00059' "$RUN/error_log")"
fi

# ---- figures ------------------------------------------------------------------

TABLE=$RUN/table.md
growth_rows() { # LABEL COUNT SECONDS ERRORS BEFORE AFTER
    join "$5" "$6" | awk -v label="$1" -v n="$2" -v s="$3" -v err="$4" -v max="$MAX_GROWTH" '
        { pct = ($2 > 0) ? ($4 - $2) * 100 / $2 : 0
          if (NR == 1)
              printf "| %s | %s | %.1f | %s ", label, n, s, err
          else
              printf "| | | | "
          printf "| %s | %d | %d | %+.2f %% | %d | %d |\n", $1, $2, $4, pct, $3, $5
          r0 += $2; r1 += $4; p0 += $3; p1 += $5
          if (pct > max) bad = bad " " $1 }
        END { printf "| | | | | all | %d | %d | %+.2f %% | %d | %d |\n", r0, r1,
                     (r0 > 0) ? (r1 - r0) * 100 / r0 : 0, p0, p1
              if (bad != "") print "GROWTH" bad > "/dev/stderr" }'
}
{
    echo "| soak | count | seconds | errors | child | RSS KB after $WARMUP | RSS KB after all | RSS change | PSS KB after $WARMUP | PSS KB after all |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    growth_rows "connect/receive/disconnect, SSE + WS" "$CYCLES" "$CYCLE_SECONDS" "$CYCLE_ERRORS" \
        "$RUN/mem-cycles-warmup" "$RUN/mem-cycles-end" 2>"$RUN/growth-cycles"
    growth_rows "publish requests ($PUB_EVENTS events)" "$PUBLISHES" "$PUB_SECONDS" "$PUB_ERRORS" \
        "$RUN/mem-pub-warmup" "$RUN/mem-pub-end" 2>"$RUN/growth-pub"
} > "$TABLE"
for g in cycles pub; do
    bad=$(sed -n 's/^GROWTH //p' "$RUN/growth-$g")
    [ -z "$bad" ] || miss "$g: RSS of child(ren) $bad grew by more than $MAX_GROWTH % after the warm-up"
done

echo
echo "Leak soak: module $(git -C "$TOP" describe --always --dirty 2>/dev/null), $($HTTPD -v | sed -n 's/Server version: //p'), event MPM, $CHILDREN children x $THREADS threads, $CONNS at a time; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
cat "$TABLE"
echo
if [ -n "$FAILS" ]; then
    echo "Missed:$FAILS"
    exit 1
fi
echo "No child's RSS grew by more than $MAX_GROWTH % after the warm-up; every cycle and message went through."
exit 0
