#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs every test: installs what is missing, builds, runs the C unit tests
# (make check), fuzzes the WebSocket parsers, the publish body, JWKS and token
# handling for a bounded time (FUZZ_SECONDS per harness, default 20; 0
# skips), then runs the Apache::Test suite against a real httpd twice:
# streams on the event-MPM reactor (the default), then with
# UploadProgressAsync Off (each stream on its worker thread).  Both runs
# use the module built a second time with ASan + UBSan (make check-asan)
# and fail on any sanitizer report naming the module; CHECK_ASAN=0 runs
# them against the plain build instead.  Then the browser client's and
# React hooks' tests (node --test, each file starting its own httpd) and
# the demo page in headless Chromium, against the plain build; alongside
# them the leak soak (bench/soak.sh, about 80 seconds, its own httpd on
# port 8720: 100,000 connect / receive / disconnect cycles and 100,000
# publishes, failing when an httpd child's RSS grew by more than 5 % after
# the first 10,000; SOAK=0 skips it).  Last, as root, the Debian package
# (scripts/deb-test.sh, about a minute: built, lintian, installed, enabled,
# an event through Debian's own apache2, purged; DEB_TEST=0 skips it).  With arguments, runs just the
# Apache::Test suite with them against the plain build.  Run as root, or
# as a user who may sudo apt-get.  Ports of the node tests: UPM_TEST_PORT
# (8660), UPM_REACT_PORT (8661), UPM_E2E_PORT (8662).
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
make -s check
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
[ "$FUZZ_SECONDS" -gt 0 ] && scripts/fuzz.sh "$FUZZ_SECONDS"
APXS=$(command -v apxs)
HTTPD="$($APXS -q SBINDIR)/$($APXS -q PROGNAME)"
run_suite() {
    # Apache::Test keeps its options between runs: start from scratch.
    [ -x t/TEST ] && t/TEST -clean >/dev/null 2>&1 || true
    perl t/TEST.PL -apxs "$APXS" -httpd "$HTTPD" "$@"
}
if [ $# -gt 0 ]; then
    run_suite "$@"
    exit
fi
# t/reactor.t and t/ws_reactor.t assert that streams do not hold workers
# (and the reactor's write timeout), t/detach.t that they are detached
# from their request: not the Async Off mode's.
SYNC_FILES=$(ls t/*.t | grep -v -e '^t/reactor\.t$' -e '^t/ws_reactor\.t$' -e '^t/detach\.t$')
if [ "${CHECK_ASAN:-1}" != 0 ]; then
    # The sanitized build runs the same sources, slower: the suite in both
    # modes against it covers what the plain build's runs would, and CI's
    # 20 minutes do not hold both.
    echo "== Apache::Test suite, streams on the reactor, module built with ASan + UBSan"
    make -s check-asan
    echo "== Apache::Test suite, UploadProgressAsync Off, module built with ASan + UBSan"
    # shellcheck disable=SC2086
    make -s check-asan ASAN_DEFINES=UPM_SYNC ASAN_ARGS="$(echo $SYNC_FILES)"
else
    echo "== Apache::Test suite, streams on the reactor"
    run_suite
    echo "== Apache::Test suite, UploadProgressAsync Off"
    # shellcheck disable=SC2086
    run_suite -defines UPM_SYNC $SYNC_FILES
fi

# The leak soak (its own httpd on 8720) runs while the browser tests (their
# own httpds on 8660-8662) do: neither measures time, the soak's bar is
# memory, and CI's 20 minutes are tight.  Its output follows theirs.
soak_pid=
if [ "${SOAK:-1}" != 0 ]; then
    soak_log=$(mktemp "${TMPDIR:-/tmp}/upm-soak.XXXXXX")
    bench/soak.sh >"$soak_log" 2>&1 &
    soak_pid=$!
fi

echo "== Browser client, React hooks, their npm packages and the demo in Chromium"
# npm devDependencies from the lockfile; the client itself has none.
(cd clients && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
(cd clients && node --test --test-concurrency=1 js/test/ react/test/ packages/test/ demo/test/)

if [ -n "$soak_pid" ]; then
    echo "== Leak soak: 100,000 connect / receive / disconnect cycles, 100,000 publishes"
    soak_status=0
    wait "$soak_pid" || soak_status=$?
    cat "$soak_log"
    rm -f "$soak_log"
    [ "$soak_status" -eq 0 ] || { echo "leak soak failed ($soak_status)" >&2; exit 1; }
fi

# Last: it swaps the old module's package for ours and back, which the
# Apache::Test suite (t/compat_old.t) must not see happen.
if [ "${DEB_TEST:-1}" != 0 ] && [ "$(id -u)" -eq 0 ]; then
    echo "== The Debian package: build, lintian, install, a2enmod, an event through Debian's apache2, purge"
    scripts/deb-test.sh
fi
