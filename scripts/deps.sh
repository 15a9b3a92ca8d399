#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs what building, running and testing the module needs on Debian 12.
# Safe to run again: apt-get skips what is already there.
set -eu
PKGS="build-essential autoconf automake libtool pkg-config curl openssl libcurl4-openssl-dev
      apache2 apache2-dev libapr1-dev libaprutil1-dev
      libjansson-dev libjwt-dev libhiredis-dev redis-server redis-sentinel
      libapache2-mod-perl2 libcrypt-jwt-perl libjson-perl libwww-perl libio-socket-ssl-perl
      libmojolicious-perl libapache2-mod-auth-openidc clang libclang-rt-14-dev chromium libssl-dev python3
      libapache2-mod-upload-progress debhelper dpkg-dev lintian fakeroot"
# python3: t/publish_examples.t runs the Python publisher of docs/publishing.md.
# libapache2-mod-auth-openidc: t/openidc.t puts it in front of the streams.
# libcurl4-openssl-dev: the module fetches JWKS from identity providers
# with libcurl (certificate verification through OpenSSL).
# Node.js 20 with npm for the client tests (the machine image has them;
# Debian's own packages are the fallback).
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
# libapache2-mod-upload-progress: the old module, which t/compat_old.t runs
# beside this one.  Its package enables it in Debian's own apache2, which
# the tests do not start; t/TEST.PL keeps it out of what the Apache::Test
# server inherits from there (same module name as ours).
# debhelper, dpkg-dev, lintian, fakeroot: scripts/deb-test.sh builds and
# checks the Debian package (debian/).
# libssl-dev: OpenSSL for the module (JWKS keys are built with OpenSSL 3;
# rediss:// links) and libcrypto for the tools in bench/ (the leak soak of
# scripts/test.sh uses them).
# redis-sentinel: t/redis_sentinel.t.  bench/run.sh also needs nginx with nchan, the
# peer it measures against.
[ "${1:-}" = bench ] && PKGS="$PKGS nginx libnginx-mod-nchan"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
echo "installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# The packaged apache2 and redis services are not used: tests and the demo
# start their own instances on loopback.
$SUDO service apache2 stop >/dev/null 2>&1 || true
$SUDO service redis-server stop >/dev/null 2>&1 || true
$SUDO service redis-sentinel stop >/dev/null 2>&1 || true
$SUDO service nginx stop >/dev/null 2>&1 || true
