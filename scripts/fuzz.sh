#!/bin/sh
# Builds the libFuzzer harnesses of the WebSocket parsers with clang under
# AddressSanitizer and UndefinedBehaviorSanitizer and runs each for a
# bounded time:  scripts/fuzz.sh [SECONDS]   (default 60 per harness)
#
# The seed corpus in fuzz/corpus/ is only read: new inputs go to a
# temporary directory.  A crash leaves its input in fuzz/artifacts/ and
# makes the script fail.
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-60}
CC=${FUZZ_CC:-clang}
command -v "$CC" >/dev/null || { echo "fuzz: $CC not found (scripts/deps.sh installs clang)" >&2; exit 1; }

APR_CONFIG=$(command -v apr-1-config)
APU_CONFIG=$(command -v apu-1-config)
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -fno-omit-frame-pointer -Imod_upload_progress
        $($APR_CONFIG --cflags --cppflags --includes) $($APU_CONFIG --includes)
        $(pkg-config --cflags jansson)"
LIBS="$($APU_CONFIG --link-ld) $($APR_CONFIG --link-ld) $(pkg-config --libs jansson)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/upm-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
mkdir -p fuzz/artifacts

# shellcheck disable=SC2086
$CC $CFLAGS -o "$WORK/ws_frame_fuzzer" fuzz/ws_frame_fuzzer.c \
    mod_upload_progress/upm_ws_frame.c $LIBS
# shellcheck disable=SC2086
$CC $CFLAGS -o "$WORK/ws_proto_fuzzer" fuzz/ws_proto_fuzzer.c \
    mod_upload_progress/upm_ws_proto.c mod_upload_progress/upm_msg.c $LIBS

passed=0
failed=0
for name in ws_frame ws_proto; do
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
