#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer harnesses (WebSocket frames, WebSocket client
# messages, the publish body, tokens, JWKS documents) with clang under AddressSanitizer and
# UndefinedBehaviorSanitizer and runs each for a bounded time:
#   scripts/fuzz.sh [SECONDS [NAME...]]   (default 60 s per harness, all)
# NAME is ws_frame, ws_proto, publish, jwt or jwks.
#
# The seed corpus in fuzz/corpus/ is only read: new inputs go to a
# temporary directory.  A crash leaves its input in fuzz/artifacts/ and
# makes the script fail.
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-60}
[ $# -gt 0 ] && shift
NAMES=${*:-ws_frame ws_proto publish jwt jwks}
for name in $NAMES; do
    case $name in
        ws_frame|ws_proto|publish|jwt|jwks) ;;
        *) echo "fuzz: no harness $name (ws_frame, ws_proto, publish, jwt, jwks)" >&2; exit 2 ;;
    esac
done
CC=${FUZZ_CC:-clang}
command -v "$CC" >/dev/null || { echo "fuzz: $CC not found (scripts/deps.sh installs clang)" >&2; exit 1; }

APR_CONFIG=$(command -v apr-1-config)
APU_CONFIG=$(command -v apu-1-config)
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -fno-omit-frame-pointer -Imod_upload_progress
        $($APR_CONFIG --cflags --cppflags --includes) $($APU_CONFIG --includes)
        $(pkg-config --cflags jansson libjwt)"
LIBS="$($APU_CONFIG --link-ld) $($APR_CONFIG --link-ld) $(pkg-config --libs jansson)"
SRC=mod_upload_progress

WORK=$(mktemp -d "${TMPDIR:-/tmp}/upm-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
mkdir -p fuzz/artifacts

# build NAME SOURCE... [-lLIB...]: fuzz/NAME_fuzzer.c with the files it drives.
build() {
    name=$1
    shift
    case " $NAMES " in *" $name "*) ;; *) return 0 ;; esac
    # shellcheck disable=SC2086
    $CC $CFLAGS -o "$WORK/${name}_fuzzer" "fuzz/${name}_fuzzer.c" "$@" $LIBS
}
build ws_frame $SRC/upm_ws_frame.c
build ws_proto $SRC/upm_ws_proto.c $SRC/upm_msg.c
build publish $SRC/upm_publish_body.c $SRC/upm_event.c $SRC/upm_msg.c $SRC/upm_ring.c -lm
# The harness signs tokens itself (HMAC from libcrypto, which libjwt uses).
# shellcheck disable=SC2046
build jwt $SRC/upm_jwt.c $(pkg-config --libs libjwt) -lcrypto
# shellcheck disable=SC2046
build jwks $SRC/upm_jwks.c $SRC/upm_jwt.c $(pkg-config --libs libjwt libcrypto)

passed=0
failed=0
for name in $NAMES; do
    mkdir -p "$WORK/corpus-$name"
    dict=""
    [ -f "fuzz/$name.dict" ] && dict="-dict=fuzz/$name.dict"
    echo "fuzz: running $name for $SECS s"
    # shellcheck disable=SC2086
    if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       "$WORK/${name}_fuzzer" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=1024 \
           -max_len=70000 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$name-" \
           $dict "$WORK/corpus-$name" "fuzz/corpus/$name" >"$WORK/$name.log" 2>&1; then
        passed=$((passed + 1))
        grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$WORK/$name.log" \
            | sed "s/^/fuzz: $name /"
    else
        failed=$((failed + 1))
        tail -n 60 "$WORK/$name.log"
        echo "fuzz: $name FAILED; reproduce with the input in fuzz/artifacts/" >&2
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
