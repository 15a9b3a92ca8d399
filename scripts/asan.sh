#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make check-asan: the Apache::Test suite (streams on the reactor) against
# the module built with gcc's -fsanitize=address,undefined (asan/, built by
# `make asan-module`), httpd started through scripts/asan-httpd (libasan
# preloaded).  Every sanitizer report is written under t/logs/asan/; the run
# fails if a report names a frame of the module (mod_upload_progress /
# upm_), or if a report without one is not listed in scripts/asan-known.txt.
# Leak detection is off for httpd: its pools are freed by process exit, on
# purpose.  Arguments, if any, go to t/TEST.PL (test files, -port N).
# ASAN_DEFINES=UPM_SYNC runs them with UploadProgressAsync Off.
set -eu
cd "$(dirname "$0")/.."
TOP=$(pwd)
APXS=${APXS:-$(command -v apxs)}
export APXS
export UPM_ASAN_HTTPD="$($APXS -q SBINDIR)/$($APXS -q PROGNAME)"
export UPM_LIBASAN=$(gcc -print-file-name=libasan.so)
[ -f "$UPM_LIBASAN" ] || { echo "asan: libasan not found (gcc -print-file-name=libasan.so)" >&2; exit 1; }
[ -f asan/.libs/mod_upload_progress.so ] || make -s asan-module
export UPM_TEST_SO="$TOP/asan/.libs/mod_upload_progress.so"
export UPM_TEST_HTTPD="$TOP/scripts/asan-httpd"
[ -x t/TEST ] && t/TEST -clean >/dev/null 2>&1 || true
REPORTS="$TOP/t/logs/asan"
rm -rf "$REPORTS"
mkdir -p "$REPORTS"
# httpd's children run as nobody: they must be able to write their reports.
chmod 1777 "$REPORTS"
# use_sigaltstack=0: with gcc 12 and glibc 2.36 every thread exit otherwise
# reports a stack-buffer-underflow inside libasan itself (its sigaltstack
# interceptor on its own teardown, no frame of ours) and aborts the child.
# quarantine_size_mb=16: freed memory is held back (to catch use after
# free) 16 MB per child instead of 256 MB, so t/hostile.t's memory bounds
# measure the module rather than the sanitizer's quarantine.
export ASAN_OPTIONS="log_path=$REPORTS/asan:detect_leaks=0:use_sigaltstack=0:quarantine_size_mb=16:abort_on_error=0:halt_on_error=1:detect_odr_violation=0"
export UBSAN_OPTIONS="log_path=$REPORTS/ubsan:print_stacktrace=1:halt_on_error=0"
status=0
# ASAN_DEFINES: more -defines for the suite (UPM_SYNC: UploadProgressAsync
# Off); one -defines option, since a second would replace the first.
perl t/TEST.PL -apxs "$APXS" -httpd "$UPM_TEST_HTTPD" -defines "UPM_ASAN${ASAN_DEFINES:+ $ASAN_DEFINES}" "$@" \
    || status=$?
ours=0 theirs=0 known=0
for f in "$REPORTS"/*; do
    [ -f "$f" ] || continue
    if grep -qE 'mod_upload_progress|upm_' "$f"; then
        ours=$((ours + 1))
        echo "== sanitizer report with a frame of the module: $f"
        cat "$f"
    elif grep -vE '^[[:space:]]*(#|$)' scripts/asan-known.txt >"$REPORTS/.known" 2>/dev/null \
         && [ -s "$REPORTS/.known" ] && grep -qEf "$REPORTS/.known" "$f"; then
        known=$((known + 1))
        echo "== known report, not the module's (scripts/asan-known.txt): $f"
    else
        theirs=$((theirs + 1))
        echo "== sanitizer report without a frame of the module, not in scripts/asan-known.txt: $f"
        cat "$f"
    fi
done
rm -f "$REPORTS/.known"
echo "asan: suite exit $status; reports: $ours naming the module, $theirs other, $known known"
[ "$status" -eq 0 ] && [ "$ours" -eq 0 ] && [ "$theirs" -eq 0 ]
