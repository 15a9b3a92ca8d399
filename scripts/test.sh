#!/bin/sh
# Runs every test: installs what is missing, builds, runs the C unit tests
# (make check) and the Apache::Test suite against a real httpd with the
# module just built.  Run as root, or as a user who may sudo apt-get.
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
