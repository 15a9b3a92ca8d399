/* SPDX-License-Identifier: Apache-2.0 */
/* JSON Web Key Sets (RFC 7517) as published by identity providers: the
 * document parsed with jansson, RSA and EC public keys rebuilt with
 * OpenSSL 3 into the PEM keys upm_jwt verifies with.  No httpd
 * dependency: the unit tests and the fuzzer drive this exact code. */
#ifndef UPM_JWKS_H
#define UPM_JWKS_H

#include <apr_pools.h>
#include <apr_tables.h>

/* Largest JWKS (or discovery) document taken from a provider.  Real sets
 * hold a handful of keys (a few KB); the bound keeps a hostile or broken
 * provider from filling memory. */
#define UPM_JWKS_MAX_DOC (2 * 1024 * 1024)

/* Keys taken from one document at most. */
#define UPM_JWKS_MAX_KEYS 4096

typedef struct upm_jwks_set {
    apr_array_header_t *keys;   /* upm_jwt_key *, in document order */
    int skipped;                /* JWKs ignored (wrong use, kty, alg ...) */
    const char *first_skip;     /* why the first of them was ignored */
} upm_jwks_set;

/* Parses a JWKS document.  Each JWK becomes a key when:
 *   - "use" is absent or "sig", and "key_ops", if present, has "verify";
 *   - kty "RSA" (n, e; at least 2048 bits) with alg RS256/384/512, or kty
 *     "EC" (crv P-256/P-384/P-521, x, y on the curve) with the ES alg of
 *     its curve; the alg comes from the JWK, and when the JWK has none,
 *     from the kty (RS256) or the curve (ES256/384/512) - never from a
 *     token;
 *   - kty "oct" (k, alg HS256/384/512, secret at least the hash size)
 *     only when allow_hs is set: a published set is public, and an HMAC
 *     secret in it would let anyone sign.
 * Other JWKs are skipped and counted.  Returns NULL on success, or why
 * the document as a whole is refused (not JSON, no "keys" array, no
 * usable key, too large). */
const char *upm_jwks_parse(apr_pool_t *p, const char *doc, apr_size_t len,
                           int allow_hs, upm_jwks_set *out);

/* The jwks_uri of an OpenID Provider configuration document (OpenID
 * Connect Discovery 1.0 section 3), checked with upm_jwks_url_check.
 * Returns NULL and sets *uri, or returns why not. */
const char *upm_jwks_discovery_uri(apr_pool_t *p, const char *doc, apr_size_t len,
                                   const char **uri);

/* Whether a URL may be fetched: https://, or http:// to a loopback host
 * (127.0.0.0/8, [::1], localhost) where no one else is on the wire.
 * Returns NULL when allowed, else why not. */
const char *upm_jwks_url_check(apr_pool_t *p, const char *url);

#endif
