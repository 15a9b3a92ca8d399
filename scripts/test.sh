#!/bin/sh
# Runs every test: installs what is missing, builds, runs the C unit tests
# (make check), the Apache::Test suite against a real httpd with the module
# just built, then the browser client's tests (node --test, each starting
# its own httpd) and the demo page in headless Chromium.  Run as root, or as
# a user who may sudo apt-get.  Ports: UPM_TEST_PORT (8660) and
# UPM_E2E_PORT (8662).
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
make -s check
APXS=$(command -v apxs)
HTTPD="$($APXS -q SBINDIR)/$($APXS -q PROGNAME)"
# Start from generated files of no earlier run.
[ -x t/TEST ] && t/TEST -clean >/dev/null 2>&1 || true
perl t/TEST.PL -apxs "$APXS" -httpd "$HTTPD" "$@"

# Client, React hooks and demo: npm devDependencies from the lockfile.
(cd clients && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
(cd clients && node --test --test-concurrency=1 js/test/ react/test/ demo/test/)
