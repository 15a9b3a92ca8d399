#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Configures (once) and builds the module and its unit tests.
set -eu
cd "$(dirname "$0")/.."
[ -x configure ] || autoreconf -fi >/dev/null
[ -f Makefile ] || ./configure -q
make -s
