#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Mints an HS256/384/512 token the module accepts, for trying endpoints by
# hand, for the demo and for scripts (installed as upload-progress-token by
# make install; docs/security.md, "Keys and tokens").  Applications issue
# their tokens with their own JWT library.
#
#   scripts/jwt.sh SECRET SUB [TTL_SECONDS] [EXTRA_JSON]
#     SECRET       the secret as UploadProgressJWTKey reads it: a file (or
#                  file:PATH) or env:NAME; its bytes are the secret, less one
#                  trailing newline (LF or CRLF), exactly as the module takes it
#     SUB          the user (the sub claim)
#     TTL_SECONDS  lifetime, default 86400 (exp = now + TTL; iat = now)
#     EXTRA_JSON   more claims, without braces:
#                  '"scope":"progress:publish"' or '"upl":{"projects":["p1"]}'
#   Environment: JWT_ALG (HS256, HS384 or HS512; default HS256),
#                JWT_KID (adds a kid header, for UploadProgressJWTKey ... KID)
# Prints the token and a newline.  Needs openssl and od.
set -eu
[ $# -ge 2 ] || { sed -n '2,18s/^# \{0,1\}//p' "$0" >&2; exit 2; }
src=$1
sub=$2
ttl=${3:-86400}
extra=${4:-}
alg=${JWT_ALG:-HS256}
case $alg in
    HS256) md=sha256 ;;
    HS384) md=sha384 ;;
    HS512) md=sha512 ;;
    *) echo "jwt.sh: JWT_ALG must be HS256, HS384 or HS512" >&2; exit 2 ;;
esac
case $ttl in
    ''|*[!0-9]*) echo "jwt.sh: TTL_SECONDS must be a number of seconds" >&2; exit 2 ;;
esac

# The secret as hex, so that any byte (even NUL) signs as the module reads it.
case $src in
    env:*)
        name=${src#env:}
        eval "val=\${$name-}"
        [ -n "$val" ] || { echo "jwt.sh: environment variable $name is not set" >&2; exit 1; }
        hex=$(printf '%s' "$val" | od -An -v -tx1 | tr -d ' \n') ;;
    *)
        path=${src#file:}
        [ -r "$path" ] || { echo "jwt.sh: cannot read $path" >&2; exit 1; }
        hex=$(od -An -v -tx1 "$path" | tr -d ' \n') ;;
esac
case $hex in
    *0d0a) hex=${hex%0d0a} ;;
    *0a) hex=${hex%0a} ;;
esac
[ -n "$hex" ] || { echo "jwt.sh: the secret is empty" >&2; exit 1; }

b64u() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
json_str() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
if [ -n "${JWT_KID:-}" ]; then
    header=$(printf '{"alg":"%s","typ":"JWT","kid":"%s"}' "$alg" "$(json_str "$JWT_KID")" | b64u)
else
    header=$(printf '{"alg":"%s","typ":"JWT"}' "$alg" | b64u)
fi
payload=$(printf '{"sub":"%s","iat":%d,"exp":%d%s}' "$(json_str "$sub")" "$now" $((now + ttl)) \
          "${extra:+,$extra}" | b64u)
sig=$(printf '%s' "$header.$payload" \
      | openssl dgst -"$md" -mac HMAC -macopt "hexkey:$hex" -binary | b64u)
printf '%s.%s.%s\n' "$header" "$payload" "$sig"
