# SPDX-License-Identifier: Apache-2.0
# Shared by bench/run.sh and bench/soak.sh: logging, process control and
# our httpd from bench/conf/httpd-bench.conf.in.  Sourced by bash; the
# callers set TOP (the tree), BENCH (this folder) and RUN (their scratch
# folder) first.

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 2; }

tree_pids() { # the process and its descendants
    local root=$1 kids k
    echo "$root"
    kids=$(ps -o pid= --ppid "$root" 2>/dev/null)
    for k in $kids; do tree_pids "$k"; done
}

kill_tree() { # PID: TERM, wait up to 20 s, then KILL what is left
    local pid=$1 pids i
    [ -n "$pid" ] || return 0
    pids=$(tree_pids "$pid")
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    for p in $pids; do kill -KILL "$p" 2>/dev/null; done
    wait "$pid" 2>/dev/null
    # Thousands of exiting threads keep the machine busy for a while: the
    # next measurement starts when they are gone.
    for i in $(seq 1 150); do
        local alive=0
        for p in $pids; do
            [ -d "/proc/$p" ] && { alive=1; break; }
        done
        [ "$alive" = 0 ] && break
        sleep 0.2
    done
    return 0
}

wait_port() { # PORT: until something answers HTTP there (20 s)
    local i
    for i in $(seq 1 100); do
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
        sleep 0.2
    done
    return 1
}

jget() { # FILE KEY: a value of the one-line JSON the tools print
    sed -n "s/.*\"$2\":\(\"[^\"]*\"\|[-0-9.e]*\).*/\1/p" "$1" 2>/dev/null | tr -d '"' | head -n1
}
pget() { # "k=v ..." KEY
    echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}
calc() { awk "BEGIN { printf \"%s\", $* }"; }

find_httpd() { # HTTPD, APXS and MODDIR of the Debian (or apxs-reported) httpd
    APXS=$(command -v apxs) || die "apxs not found"
    HTTPD="$($APXS -q SBINDIR)/$($APXS -q PROGNAME)"
    MODDIR=$($APXS -q LIBEXECDIR)
}

# Writes $RUN/httpd.conf with MODULE and starts httpd in the foreground
# (SERVER_PID), waiting until it answers (20 s).  MAX_PER_USER: the
# per-user stream cap (default 0, none).
start_httpd() { # PORT START SERVERS THREADS MINSPARE MAXSPARE ARWF [REDIS_BLOCK]
    local port=$1 start=$2 servers=$3 tpc=$4 minspare=$5 maxspare=$6 arwf=$7
    sed -e "s|@RUN@|$RUN|g" -e "s|@PORT@|$port|g" -e "s|@MODDIR@|$MODDIR|g" \
        -e "s|@MODULE@|$MODULE|g" -e "s|@START@|$start|g" -e "s|@SERVERS@|$servers|g" \
        -e "s|@THREADS@|$tpc|g" -e "s|@MINSPARE@|$minspare|g" -e "s|@MAXSPARE@|$maxspare|g" \
        -e "s|@MAXWORKERS@|$((servers * tpc))|g" -e "s|@ARWF@|$arwf|g" \
        -e "s|@REDIS_BLOCK@|${8:-}|g" -e "s|@MAX_PER_USER@|${MAX_PER_USER:-0}|g" \
        "$BENCH/conf/httpd-bench.conf.in" > "$RUN/httpd.conf"
    "$HTTPD" -t -f "$RUN/httpd.conf" >"$RUN/httpd-t.log" 2>&1 \
        || { cat "$RUN/httpd-t.log" >&2; die "httpd config test failed"; }
    "$HTTPD" -f "$RUN/httpd.conf" -DFOREGROUND &
    SERVER_PID=$!
    wait_port "$port" || { tail "$RUN/error_log" >&2; die "httpd did not start"; }
}

# The module (UPM_MODULE, or this tree's build) and the tools in bench/,
# built when needed; httpd found by apxs; as many open files as allowed.
setup_tools() {
    if [ -n "${UPM_MODULE:-}" ]; then
        MODULE=$UPM_MODULE
        [ -f "$MODULE" ] || die "UPM_MODULE=$MODULE does not exist"
    else
        "$TOP/scripts/build.sh" >/dev/null || die "the module did not build"
        MODULE=$TOP/mod_upload_progress/.libs/mod_upload_progress.so
    fi
    make -s -C "$BENCH" >/dev/null || die "the bench tools did not build"
    find_httpd
    LC=$BENCH/loadclient
    PUB=$BENCH/publisher
    PSTAT=$BENCH/procstat
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# Tells a load client to stop by its stop file and waits for its summary
# (60 s at most, then it is killed).
stop_loadclient() { # STOP_FILE PID
    local i
    touch "$1"
    for i in $(seq 1 600); do
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$2" 2>/dev/null
    wait "$2" 2>/dev/null
}
