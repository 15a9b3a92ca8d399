#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The Debian package, end to end, as root on Debian 12: builds it from a
# copy of this tree (dpkg-buildpackage -us -uc -b), runs lintian (no
# error allowed), installs it with apt (which removes the old
# libapache2-mod-upload-progress it replaces), checks what it installed,
# disables and enables it with a2dismod / a2enmod, checks that the
# commented defaults of upload_progress.conf parse once uncommented,
# starts Debian's own apache2 with its stock configuration plus
# conf/upload-progress-endpoints.conf, gets an event from the publish
# endpoint to a user's SSE stream, then stops apache2, purges the package
# and puts back what was there before (the old package and whether its
# module was enabled).  Debian's apache2 must not be running (it listens
# on port 80); scripts/deps.sh stops it.
set -eu
cd "$(dirname "$0")/.."
TOP=$(pwd)
PKG=libapache2-mod-upload-progress-events
OLD=libapache2-mod-upload-progress
[ "$(id -u)" -eq 0 ] || { echo "deb-test: run as root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
if [ -s /var/run/apache2/apache2.pid ] && kill -0 "$(cat /var/run/apache2/apache2.pid)" 2>/dev/null; then
    echo "deb-test: Debian's apache2 is running; stop it first (service apache2 stop)" >&2
    exit 1
fi
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q "ok installed"; then
    echo "deb-test: $PKG is installed already; purge it first" >&2
    exit 1
fi

t0=$(date +%s)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/upm-deb.XXXXXX")
STATE="$WORK/state"
mkdir -p "$WORK/src" "$STATE"
step() { echo "deb-test: $*"; }
fail() { echo "deb-test: FAILED: $*" >&2; exit 1; }

# ---- what is there now, to be put back
old_version=$(dpkg-query -W -f='${Status} ${Version}' "$OLD" 2>/dev/null \
              | sed -n 's/^install ok installed //p')
# The module's links and a2enmod's records of who enabled or disabled it.
(cd / && tar -cf "$STATE/links.tar" $(cd / && ls -d etc/apache2/mods-enabled/upload_progress.* \
     var/lib/apache2/module/*/upload_progress 2>/dev/null) 2>/dev/null) || true
[ -s "$STATE/links.tar" ] || tar -cf "$STATE/links.tar" -T /dev/null
snapshot() {
    { dpkg-query -W -f='${Package} ${Status} ${Version}\n' "$OLD" "$PKG" 2>/dev/null || true
      find /etc/apache2/mods-enabled /etc/apache2/conf-enabled /etc/apache2/conf-available \
           /etc/apache2/mods-available /var/lib/apache2/module /usr/lib/apache2/modules \
           -printf '%p %l\n' 2>/dev/null
      md5sum /etc/apache2/mods-available/upload_progress.* /usr/lib/apache2/modules/mod_upload_progress.so \
          2>/dev/null || true; } | sort
}
snapshot >"$STATE/before"
ls -d /var/lib/apache2/module/*/ >"$STATE/dirs" 2>/dev/null || true
if [ -n "$old_version" ]; then
    # Its .deb, to install it again at the end.
    old_deb=$(ls /var/cache/apt/archives/${OLD}_"$(echo "$old_version" | sed 's/:/%3a/')"_*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$old_deb" ]; then
        (cd "$WORK" && apt-get download -q "$OLD=$old_version" >/dev/null 2>&1) \
            || fail "cannot get $OLD $old_version to reinstall it afterwards"
        old_deb=$(ls "$WORK"/${OLD}_*.deb | head -n1)
    fi
fi

started=
cleanup() {
    set +e
    if [ -n "$started" ]; then
        apache2ctl stop >/dev/null 2>&1
        i=0; while [ -s /var/run/apache2/apache2.pid ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
    fi
    a2disconf -q upm-deb-test >/dev/null 2>&1
    rm -f /etc/apache2/conf-available/upm-deb-test.conf /etc/apache2/upm-deb-test.secret
    if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -qv "not-installed"; then
        dpkg --purge "$PKG" </dev/null >"$WORK/purge.log" 2>&1 || cat "$WORK/purge.log"
    fi
    if [ -n "$old_version" ] && ! dpkg-query -W -f='${Status}' "$OLD" 2>/dev/null | grep -q "ok installed"; then
        dpkg -i "$old_deb" </dev/null >"$WORK/reinstall.log" 2>&1 || cat "$WORK/reinstall.log"
    fi
    # The maintainer scripts enable and disable as they see fit: put the
    # links and records back as they were.
    rm -f /etc/apache2/mods-enabled/upload_progress.* /var/lib/apache2/module/*/upload_progress
    (cd / && tar -xf "$STATE/links.tar")
    for d in /var/lib/apache2/module/*/; do
        grep -qxF "$d" "$STATE/dirs" || rmdir "$d" 2>/dev/null
    done
    snapshot >"$STATE/after"
    if cmp -s "$STATE/before" "$STATE/after"; then
        echo "deb-test: packages and apache2 configuration are as they were"
    else
        echo "deb-test: NOT as before:" >&2
        diff "$STATE/before" "$STATE/after" >&2
        status=1
    fi
    rm -rf "$WORK"
}
status=0
trap 'rc=$?; cleanup; [ "$status" -ne 0 ] || status=$rc; exit $status' EXIT
trap 'status=1; exit' INT TERM HUP
# From here, a failure leaves through the cleanup with status 1.
fail() { echo "deb-test: FAILED: $*" >&2; status=1; exit 1; }

# ---- build, from a copy (dpkg-buildpackage cleans and configures the tree)
step "building the package"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | tar -cf - --null -T - | tar -xf - -C "$WORK/src"
else
    cp -a . "$WORK/src"
fi
(cd "$WORK/src" && dpkg-buildpackage -us -uc -b >"$WORK/build.log" 2>&1) \
    || { tail -n 60 "$WORK/build.log"; fail "dpkg-buildpackage"; }
deb=$(ls "$WORK"/${PKG}_*.deb)
changes=$(ls "$WORK"/mod-upload-progress_*.changes)
step "built $(basename "$deb")"

# make install, into a scratch root: the module, and where /etc/apache2
# exists the .load and .conf for a2enmod.
make -C "$WORK/src" -s install DESTDIR="$WORK/dest" >"$WORK/make-install.log" 2>&1 \
    || { cat "$WORK/make-install.log"; fail "make install"; }
for f in usr/lib/apache2/modules/mod_upload_progress.so \
         etc/apache2/mods-available/upload_progress.load etc/apache2/mods-available/upload_progress.conf; do
    [ -f "$WORK/dest/$f" ] || fail "make install did not install /$f"
done

step "lintian"
lintian --fail-on error --tag-display-limit 0 "$changes" >"$WORK/lintian.log" 2>&1 \
    || { cat "$WORK/lintian.log"; fail "lintian reports errors"; }
sed 's/^/  /' "$WORK/lintian.log"

# ---- install with apt: the conflict with the old package is resolved
# in the open (apt lists it for removal)
step "installing"
apt-get install -y -q "$deb" </dev/null >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; fail "apt-get install"; }
if [ -n "$old_version" ]; then
    grep -q "REMOVED" "$WORK/install.log" && grep -q "$OLD" "$WORK/install.log" \
        || { cat "$WORK/install.log"; fail "apt did not say it removes $OLD"; }
    dpkg-query -W -f='${Status}' "$OLD" | grep -q "ok installed" && fail "$OLD still installed"
fi
for f in /usr/lib/apache2/modules/mod_upload_progress.so \
         /etc/apache2/mods-available/upload_progress.load \
         /etc/apache2/mods-available/upload_progress.conf \
         /usr/share/doc/$PKG/README.md.gz /usr/share/doc/$PKG/tracking.md.gz \
         /usr/share/doc/$PKG/examples/upload-progress-endpoints.conf \
         /usr/share/doc/$PKG/copyright; do
    [ -e "$f" ] || [ -e "${f%.gz}" ] || fail "the package did not install $f"
done
dpkg-query -L "$PKG" | grep -q '^/etc/apache2/mods-available/upload_progress.conf$' \
    || fail "upload_progress.conf is not the package's"
grep -q "^/etc/apache2/mods-available/upload_progress.conf$" /var/lib/dpkg/info/$PKG.conffiles \
    || fail "upload_progress.conf is not a conffile"

# ---- a2dismod / a2enmod
step "a2dismod / a2enmod"
a2dismod -q -f upload_progress >/dev/null
[ ! -e /etc/apache2/mods-enabled/upload_progress.load ] || fail "a2dismod left the module enabled"
a2enmod -q upload_progress >/dev/null
[ -L /etc/apache2/mods-enabled/upload_progress.load ] && [ -L /etc/apache2/mods-enabled/upload_progress.conf ] \
    || fail "a2enmod did not enable upload_progress.load and .conf"

# ---- the commented defaults are directives that parse
step "the commented defaults of upload_progress.conf, uncommented"
mkdir -p "$WORK/t/logs"
sed 's/^\([[:space:]]*\)#\(Upload\)/\1\2/' /etc/apache2/mods-available/upload_progress.conf >"$WORK/t/defaults.conf"
n=$(grep -c '^[[:space:]]*Upload' "$WORK/t/defaults.conf")
[ "$n" -ge 10 ] || fail "upload_progress.conf lists only $n directives"
cat >"$WORK/t/httpd.conf" <<EOF
ServerRoot "$WORK/t"
ServerName localhost
Listen 127.0.0.1:1
PidFile "$WORK/t/logs/pid"
ErrorLog "$WORK/t/logs/error_log"
DefaultRuntimeDir "$WORK/t/logs"
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
$(cat /etc/apache2/mods-available/upload_progress.load)
Include "$WORK/t/defaults.conf"
EOF
apache2 -t -f "$WORK/t/httpd.conf" >"$WORK/t/syntax.log" 2>&1 \
    || { cat "$WORK/t/syntax.log"; fail "the uncommented defaults do not parse"; }

# ---- Debian's apache2, stock configuration plus our endpoints
step "Debian's apache2 with conf/upload-progress-endpoints.conf"
openssl rand -hex 32 >/etc/apache2/upm-deb-test.secret
chmod 600 /etc/apache2/upm-deb-test.secret
sed "s|@SECRET@|/etc/apache2/upm-deb-test.secret|g" conf/upload-progress-endpoints.conf \
    >/etc/apache2/conf-available/upm-deb-test.conf
a2enconf -q upm-deb-test >/dev/null
apache2ctl configtest >"$WORK/configtest.log" 2>&1 || { cat "$WORK/configtest.log"; fail "configtest"; }
apache2ctl start >"$WORK/start.log" 2>&1 || { cat "$WORK/start.log"; fail "apache2ctl start"; }
started=1
i=0
until curl -s -o /dev/null http://127.0.0.1/; do
    i=$((i + 1)); [ $i -lt 50 ] || fail "apache2 does not answer on port 80"; sleep 0.2
done
apache2ctl -M 2>/dev/null | grep -q upload_progress_module || fail "upload_progress_module is not loaded"

user="deb-test-$$"
token=$(scripts/jwt.sh /etc/apache2/upm-deb-test.secret "$user" 300)
curl -sN --max-time 10 -H "Authorization: Bearer $token" \
    http://127.0.0.1/api/upload/sessions/notifications/stream >"$WORK/stream.txt" 2>&1 &
curl_pid=$!
i=0
until grep -q ':' "$WORK/stream.txt" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 50 ] || fail "the SSE stream did not open: $(cat "$WORK/stream.txt")"; sleep 0.1
done
code=$(curl -s -o "$WORK/publish.txt" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data "{\"event\":\"PhotoUploadProgressed\",\"userId\":\"$user\",\"photoId\":\"ph-deb\",\"bytesUploaded\":50,\"totalBytes\":100}" \
    http://127.0.0.1/publish)
[ "$code" = 202 ] || fail "publish answered $code: $(cat "$WORK/publish.txt")"
i=0
until grep -q '"photoId":"ph-deb"' "$WORK/stream.txt"; do
    i=$((i + 1)); [ $i -lt 50 ] || fail "no event on the stream: $(cat "$WORK/stream.txt")"; sleep 0.1
done
kill "$curl_pid" 2>/dev/null || true
wait "$curl_pid" 2>/dev/null || true
grep -q '^event: upload_progress' "$WORK/stream.txt" || fail "the event is not an upload_progress message"
step "event delivered: $(grep '"photoId":"ph-deb"' "$WORK/stream.txt")"

apache2ctl stop >/dev/null 2>&1 || fail "apache2ctl stop"
i=0; while [ -s /var/run/apache2/apache2.pid ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
started=
a2dismod -q -f upload_progress >/dev/null
step "passed in $(( $(date +%s) - t0 )) s"
