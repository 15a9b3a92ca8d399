#!/bin/sh
# Prints an HS256 token for a user: scripts/jwt.sh SECRET_FILE SUB [TTL_SECONDS] [EXTRA_JSON]
# For the demo and for trying things by hand; applications use their own JWT library.
set -eu
secret=$(head -n1 "$1")
sub=$2
ttl=${3:-86400}
extra=${4:-}
b64u() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64u)
payload=$(printf '{"sub":"%s","iat":%d,"exp":%d%s}' "$sub" "$now" $((now + ttl)) \
          "${extra:+,$extra}" | b64u)
sig=$(printf '%s' "$header.$payload" | openssl dgst -sha256 -hmac "$secret" -binary | b64u)
printf '%s.%s.%s\n' "$header" "$payload" "$sig"
