/* SPDX-License-Identifier: Apache-2.0 */
/* JWT verification: key handling, signature check through libjwt and the
 * claim checks libjwt 1.10 does not do.  No httpd dependency, so the unit
 * tests exercise the exact code the module runs. */
#ifndef UPM_JWT_H
#define UPM_JWT_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>
#include <jwt.h>

/* Tokens larger than this are refused before any parsing. */
#define UPM_JWT_MAX_TOKEN 8192

typedef struct upm_jwt_key {
    jwt_alg_t alg;
    const char *kid;            /* NULL: key has no id */
    const unsigned char *key;   /* secret bytes (HS*) or PEM text (RS*, ES*) */
    apr_size_t key_len;
} upm_jwt_key;

typedef struct upm_jwt_policy {
    const char *issuer;         /* NULL: iss not checked */
    const char *audience;       /* NULL: aud not checked */
    int leeway;                 /* seconds allowed on exp / nbf */
    const char *user_claim;     /* claim naming the user, e.g. "sub" */
    /* Zero is the safe value of both, so a policy left zeroed refuses
     * tokens without exp (RFC 8725 3.10 advice: bound every token). */
    int allow_no_exp;           /* 1: a token without exp is accepted */
    apr_int64_t max_age;        /* seconds a token may live; 0: no bound */
} upm_jwt_policy;

typedef enum {
    UPM_JWT_OK = 0,
    UPM_JWT_MISSING,            /* no token at all */
    UPM_JWT_TOO_LARGE,
    UPM_JWT_MALFORMED,          /* not three base64url parts / header not JSON */
    UPM_JWT_BAD_ALG,            /* alg none, unknown, or not the key's algorithm */
    UPM_JWT_UNKNOWN_KID,
    UPM_JWT_NO_KEY,             /* no configured key fits the token */
    UPM_JWT_BAD_SIGNATURE,
    UPM_JWT_EXPIRED,
    UPM_JWT_NOT_YET_VALID,
    UPM_JWT_BAD_ISSUER,
    UPM_JWT_BAD_AUDIENCE,
    UPM_JWT_NO_USER,            /* user claim missing or not a string/integer */
    UPM_JWT_BAD_CLAIM,          /* exp/nbf/iat of the wrong JSON type */
    UPM_JWT_NO_EXP,             /* no exp claim, and the policy wants one */
    UPM_JWT_TOO_LONG,           /* lifetime beyond the policy's max_age */
    UPM_JWT__COUNT
} upm_jwt_status;

typedef struct upm_jwt_result {
    const char *user;           /* pool string */
    json_t *claims;             /* new reference, caller json_decref()s; NULL on failure */
    apr_int64_t exp;            /* seconds since epoch, 0 when the token has none;
                                 * with max_age, the earlier of exp and
                                 * iat + max_age */
    const char *kid;            /* kid of the key that verified it, may be NULL */
} upm_jwt_result;

/* Short stable label of a status ("expired", "bad_signature", ...): used as
 * a metric label and in log lines. */
const char *upm_jwt_status_label(upm_jwt_status st);

/* Human text for the RFC 6750 error_description (never contains the token). */
const char *upm_jwt_status_text(upm_jwt_status st);

/* Parses "HS256".."ES512" (case-sensitive as in JOSE).  "none" and anything
 * else give JWT_ALG_INVAL. */
jwt_alg_t upm_jwt_alg_parse(const char *name);

/* Builds a key from raw bytes (file contents or environment value).
 * Refuses: unknown alg, empty data, an HS secret shorter than 32 bytes
 * for HS256 (48 for HS384, 64 for HS512), an RS/ES key that is not PEM,
 * and a PEM *private* key (we only verify).  On error returns NULL and
 * sets *err to a message fit for a configuration error. */
upm_jwt_key *upm_jwt_key_make(apr_pool_t *p, const char *alg_name,
                              const unsigned char *data, apr_size_t len,
                              const char *kid, const char **err);

/* The token of an Authorization header value "Bearer <token>" (RFC 6750
 * 2.1; the scheme in any case, then spaces or tabs): a pointer into h,
 * "" when nothing follows the scheme, NULL for another scheme. */
const char *upm_jwt_bearer(const char *h);

/* Full verification of a compact JWS.  keys is an array of upm_jwt_key*.
 * Key choice: when the token header has a kid, only the key with that kid
 * (UPM_JWT_UNKNOWN_KID if none); otherwise keys without a kid whose alg
 * equals the header's alg.  The header's alg must equal the key's alg
 * (refuses alg none and HS-signed-with-RSA-public-key), and so must the alg
 * libjwt reports after decoding. Then the claims are checked. */
upm_jwt_status upm_jwt_verify(apr_pool_t *p, const char *token,
                              const apr_array_header_t *keys,
                              const upm_jwt_policy *pol,
                              apr_int64_t now_sec, upm_jwt_result *out);

/* Claim checks as a pure function of (claims, policy, now): exp and nbf
 * with leeway (exp <= now - leeway is expired; nbf > now + leeway is not
 * yet valid), iss when configured, aud (string or array) when configured,
 * and the user claim (string, or integer rendered in decimal).
 * Without exp: UPM_JWT_NO_EXP unless pol->allow_no_exp.
 * With pol->max_age N > 0 the token must say when it ends or began:
 *   - iat and exp: exp - iat > N is UPM_JWT_TOO_LONG;
 *   - iat: it expires at iat + N (UPM_JWT_EXPIRED once that is past,
 *     with leeway), and *exp is the earlier of exp and iat + N;
 *   - exp without iat: exp > now + N + leeway is UPM_JWT_TOO_LONG;
 *   - neither: UPM_JWT_TOO_LONG (allow_no_exp does not lift max_age). */
upm_jwt_status upm_jwt_check_claims(apr_pool_t *p, json_t *claims,
                                    const upm_jwt_policy *pol,
                                    apr_int64_t now_sec,
                                    const char **user, apr_int64_t *exp);

/* `line` (a request line or a URI) without the query parameters named in
 * names[0..n-1]: every `name=value` and bare `name` member of the query
 * (from the first '?' to the first space or the end) is cut out, with its
 * '&'; a query left empty loses its '?'.  Names compare as sent (a
 * percent-encoded name is another name, as for the token lookup).
 * Returns `line` itself when nothing is cut. */
const char *upm_jwt_scrub_query(apr_pool_t *p, const char *line,
                                const char *const *names, int n);

/* True when claim `name` equals value (string or integer), is an array
 * containing value, or is a space-separated string containing value as
 * one word (OAuth "scope" style).  Dotted names descend into objects:
 * "upl.projects" looks at claims["upl"]["projects"]. */
int upm_jwt_claim_has(json_t *claims, const char *name, const char *value);

/* Does claim `name` (UploadProgressJWTIdClaim) grant id?  A string claim
 * grants the one id it holds, an array of strings each of them.  1: it
 * grants id; 0: it does not (absent, or other ids); -1: the claim is of a
 * wrong type (number, object, ...), or an array holding such values and
 * not id: it grants nothing, and the caller says so in its debug log. */
int upm_jwt_id_claim_grants(json_t *claims, const char *name, const char *id);

#endif
