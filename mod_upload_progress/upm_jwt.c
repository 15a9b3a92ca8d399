/* SPDX-License-Identifier: Apache-2.0 */
/* JWT verification on top of libjwt 1.10.
 *
 * libjwt 1.10 verifies signatures but trusts the token far too much: it
 * takes the algorithm from the token header (alg "none" passes when no key
 * is given, and an HS256 token "signed" with an RSA public key PEM as HMAC
 * secret passes against that PEM), and it checks no claim at all.  So the
 * header is read here first, the key is chosen by us, the header algorithm
 * must equal the key's algorithm before libjwt sees the token, and exp,
 * nbf, iss, aud and the user claim are checked afterwards. */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_base64.h>
#include <apr_strings.h>

#include "upm_jwt.h"

/* Public keys are well under 4 KB; the bound keeps the int length that
 * jwt_decode() takes from ever overflowing. */
#define UPM_JWT_MAX_KEY (64 * 1024)

static const char *const status_labels[UPM_JWT__COUNT] = {
    [UPM_JWT_OK]            = "ok",
    [UPM_JWT_MISSING]       = "missing",
    [UPM_JWT_TOO_LARGE]     = "too_large",
    [UPM_JWT_MALFORMED]     = "malformed",
    [UPM_JWT_BAD_ALG]       = "bad_alg",
    [UPM_JWT_UNKNOWN_KID]   = "unknown_kid",
    [UPM_JWT_NO_KEY]        = "no_key",
    [UPM_JWT_BAD_SIGNATURE] = "bad_signature",
    [UPM_JWT_EXPIRED]       = "expired",
    [UPM_JWT_NOT_YET_VALID] = "not_yet_valid",
    [UPM_JWT_BAD_ISSUER]    = "bad_issuer",
    [UPM_JWT_BAD_AUDIENCE]  = "bad_audience",
    [UPM_JWT_NO_USER]       = "no_user",
    [UPM_JWT_BAD_CLAIM]     = "bad_claim",
    [UPM_JWT_NO_EXP]        = "no_exp",
    [UPM_JWT_TOO_LONG]      = "too_long_lived"
};

/* These end up inside a quoted WWW-Authenticate parameter, hence no
 * double quotes or backslashes, and never any part of the token. */
static const char *const status_texts[UPM_JWT__COUNT] = {
    [UPM_JWT_OK]            = "The token is valid",
    [UPM_JWT_MISSING]       = "No bearer token was supplied",
    [UPM_JWT_TOO_LARGE]     = "The token is too large",
    [UPM_JWT_MALFORMED]     = "The token is malformed",
    [UPM_JWT_BAD_ALG]       = "The token algorithm is not accepted",
    [UPM_JWT_UNKNOWN_KID]   = "The token key id is unknown",
    [UPM_JWT_NO_KEY]        = "No configured key can verify the token",
    [UPM_JWT_BAD_SIGNATURE] = "The token signature is invalid",
    [UPM_JWT_EXPIRED]       = "The token has expired",
    [UPM_JWT_NOT_YET_VALID] = "The token is not valid yet",
    [UPM_JWT_BAD_ISSUER]    = "The token issuer is not accepted",
    [UPM_JWT_BAD_AUDIENCE]  = "The token audience is not accepted",
    [UPM_JWT_NO_USER]       = "The token does not identify a user",
    [UPM_JWT_BAD_CLAIM]     = "The token has a claim of the wrong type",
    [UPM_JWT_NO_EXP]        = "The token has no expiry time",
    [UPM_JWT_TOO_LONG]      = "The token lives longer than accepted"
};

static const struct {
    const char *name;
    jwt_alg_t alg;
    apr_size_t hs_min;          /* RFC 7518 3.2: secret >= hash size */
} alg_table[] = {
    { "HS256", JWT_ALG_HS256, 32 },
    { "HS384", JWT_ALG_HS384, 48 },
    { "HS512", JWT_ALG_HS512, 64 },
    { "RS256", JWT_ALG_RS256, 0 },
    { "RS384", JWT_ALG_RS384, 0 },
    { "RS512", JWT_ALG_RS512, 0 },
    { "ES256", JWT_ALG_ES256, 0 },
    { "ES384", JWT_ALG_ES384, 0 },
    { "ES512", JWT_ALG_ES512, 0 }
};

#define ALG_COUNT (sizeof(alg_table) / sizeof(alg_table[0]))

const char *upm_jwt_status_label(upm_jwt_status st)
{
    if ((int)st < 0 || st >= UPM_JWT__COUNT) {
        return "unknown";
    }
    return status_labels[st];
}

const char *upm_jwt_status_text(upm_jwt_status st)
{
    if ((int)st < 0 || st >= UPM_JWT__COUNT) {
        return "The token was rejected";
    }
    return status_texts[st];
}

jwt_alg_t upm_jwt_alg_parse(const char *name)
{
    apr_size_t i;

    if (name == NULL) {
        return JWT_ALG_INVAL;
    }
    for (i = 0; i < ALG_COUNT; i++) {
        if (strcmp(name, alg_table[i].name) == 0) {
            return alg_table[i].alg;
        }
    }
    return JWT_ALG_INVAL;
}

static int alg_is_hs(jwt_alg_t alg)
{
    return alg == JWT_ALG_HS256 || alg == JWT_ALG_HS384
        || alg == JWT_ALG_HS512;
}

static int alg_is_rs(jwt_alg_t alg)
{
    return alg == JWT_ALG_RS256 || alg == JWT_ALG_RS384
        || alg == JWT_ALG_RS512;
}

static apr_size_t hs_min_len(jwt_alg_t alg)
{
    apr_size_t i;

    for (i = 0; i < ALG_COUNT; i++) {
        if (alg_table[i].alg == alg) {
            return alg_table[i].hs_min;
        }
    }
    return 0;
}

/* Key data is not NUL-terminated (it may come straight from a file), so
 * a bounded search instead of strstr(). */
static const unsigned char *mem_find(const unsigned char *hay, apr_size_t len,
                                     const char *needle)
{
    apr_size_t nl = strlen(needle), i;

    if (nl == 0 || nl > len) {
        return NULL;
    }
    for (i = 0; i + nl <= len; i++) {
        if (hay[i] == (unsigned char)needle[0]
            && memcmp(hay + i, needle, nl) == 0) {
            return hay + i;
        }
    }
    return NULL;
}

/* What a SubjectPublicKeyInfo holds, as far as choosing an algorithm
 * goes. */
typedef enum {
    SPKI_UNKNOWN = 0,           /* could not be read: let OpenSSL judge */
    SPKI_RSA,
    SPKI_EC_P256,
    SPKI_EC_P384,
    SPKI_EC_P521,
    SPKI_EC_OTHER,
    SPKI_OTHER
} spki_type;

static const unsigned char oid_rsa[] = {           /* 1.2.840.113549.1.1.1 */
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01
};
static const unsigned char oid_ec[] = {            /* 1.2.840.10045.2.1 */
    0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01
};
static const unsigned char oid_p256[] = {          /* 1.2.840.10045.3.1.7 */
    0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07
};
static const unsigned char oid_p384[] = {          /* 1.3.132.0.34 */
    0x2b, 0x81, 0x04, 0x00, 0x22
};
static const unsigned char oid_p521[] = {          /* 1.3.132.0.35 */
    0x2b, 0x81, 0x04, 0x00, 0x23
};

/* Steps into one DER element with the expected tag. */
static int der_enter(const unsigned char **pp, const unsigned char *end,
                     unsigned char tag, apr_size_t *len)
{
    const unsigned char *p = *pp;
    apr_size_t n;

    if (end - p < 2 || p[0] != tag) {
        return 0;
    }
    n = p[1];
    p += 2;
    if (n & 0x80) {
        int bytes = (int)(n & 0x7f);

        if (bytes == 0 || bytes > 3 || end - p < bytes) {
            return 0;
        }
        n = 0;
        while (bytes--) {
            n = (n << 8) | *p++;
        }
    }
    if ((apr_size_t)(end - p) < n) {
        return 0;
    }
    *pp = p;
    *len = n;
    return 1;
}

static int oid_is(const unsigned char *p, apr_size_t len,
                  const unsigned char *oid, apr_size_t oid_len)
{
    return len == oid_len && memcmp(p, oid, oid_len) == 0;
}

/* libjwt only learns at verification time that the key does not fit the
 * algorithm (every token then fails as a bad signature), and an ES256 key
 * on the P-384 curve would even verify SHA-256 signatures made on the
 * wrong curve.  Reading the algorithm identifier of the first PUBLIC KEY
 * block (the one OpenSSL will use) turns that into a configuration
 * error. */
static spki_type spki_inspect(apr_pool_t *p, const unsigned char *pem,
                              apr_size_t len)
{
    static const char begin[] = "-----BEGIN PUBLIC KEY-----";
    static const char end_marker[] = "-----END PUBLIC KEY-----";
    const unsigned char *start, *stop, *q, *der_end;
    unsigned char *der;
    char *b64;
    apr_size_t n = 0, l;
    int der_len;

    start = mem_find(pem, len, begin);
    if (start == NULL) {
        return SPKI_UNKNOWN;
    }
    start += sizeof(begin) - 1;
    stop = mem_find(start, len - (apr_size_t)(start - pem), end_marker);
    if (stop == NULL) {
        return SPKI_UNKNOWN;
    }

    b64 = apr_palloc(p, (apr_size_t)(stop - start) + 1);
    for (q = start; q < stop; q++) {
        if ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z')
            || (*q >= '0' && *q <= '9') || *q == '+' || *q == '/'
            || *q == '=') {
            b64[n++] = (char)*q;
        }
    }
    b64[n] = '\0';
    if (n == 0 || n % 4 != 0) {
        return SPKI_UNKNOWN;
    }
    der = apr_palloc(p, (apr_size_t)apr_base64_decode_len(b64));
    der_len = apr_base64_decode((char *)der, b64);
    if (der_len <= 0) {
        return SPKI_UNKNOWN;
    }

    /* SEQUENCE { SEQUENCE { OID algorithm, parameters }, BIT STRING } */
    q = der;
    der_end = der + der_len;
    if (!der_enter(&q, der_end, 0x30, &l)) {
        return SPKI_UNKNOWN;
    }
    der_end = q + l;
    if (!der_enter(&q, der_end, 0x30, &l)) {
        return SPKI_UNKNOWN;
    }
    der_end = q + l;
    if (!der_enter(&q, der_end, 0x06, &l)) {
        return SPKI_UNKNOWN;
    }
    if (oid_is(q, l, oid_rsa, sizeof(oid_rsa))) {
        return SPKI_RSA;
    }
    if (!oid_is(q, l, oid_ec, sizeof(oid_ec))) {
        return SPKI_OTHER;
    }
    q += l;
    if (!der_enter(&q, der_end, 0x06, &l)) {
        return SPKI_EC_OTHER;
    }
    if (oid_is(q, l, oid_p256, sizeof(oid_p256))) {
        return SPKI_EC_P256;
    }
    if (oid_is(q, l, oid_p384, sizeof(oid_p384))) {
        return SPKI_EC_P384;
    }
    if (oid_is(q, l, oid_p521, sizeof(oid_p521))) {
        return SPKI_EC_P521;
    }
    return SPKI_EC_OTHER;
}

static const char *check_public_key(apr_pool_t *p, jwt_alg_t alg,
                                    const char *name,
                                    const unsigned char *data,
                                    apr_size_t len)
{
    apr_pool_t *tmp;
    spki_type t, want;
    const char *msg = NULL;

    if (mem_find(data, len, "PRIVATE KEY")) {
        return apr_psprintf(p, "the %s key is a private key; configure the "
                            "public key instead (openssl pkey -in "
                            "private.pem -pubout)", name);
    }
    if (!mem_find(data, len, "-----BEGIN PUBLIC KEY-----")) {
        /* OpenSSL 3 reads a PKCS#1 RSA public key where libjwt asks for
         * a PUBLIC KEY, but it does not take the key out of a
         * certificate, so a certificate alone could never verify. */
        if (alg_is_rs(alg)
            && mem_find(data, len, "-----BEGIN RSA PUBLIC KEY-----")) {
            return NULL;
        }
        if (mem_find(data, len, "-----BEGIN CERTIFICATE-----")) {
            return apr_psprintf(p, "the %s key is a certificate, which "
                                "libjwt cannot verify with; configure its "
                                "public key instead (openssl x509 -in "
                                "cert.pem -pubkey -noout)", name);
        }
        return apr_psprintf(p, "the %s key is not a PEM public key "
                            "(-----BEGIN PUBLIC KEY-----)", name);
    }

    if (apr_pool_create(&tmp, p) != APR_SUCCESS) {
        return NULL;
    }
    t = spki_inspect(tmp, data, len);
    apr_pool_destroy(tmp);

    switch (alg) {
    case JWT_ALG_ES256:
        want = SPKI_EC_P256;
        break;
    case JWT_ALG_ES384:
        want = SPKI_EC_P384;
        break;
    case JWT_ALG_ES512:
        want = SPKI_EC_P521;
        break;
    default:
        want = SPKI_RSA;
        break;
    }
    if (t == SPKI_UNKNOWN || t == want) {
        return NULL;
    }
    if (want == SPKI_RSA) {
        msg = "is not an RSA public key";
    }
    else if (t == SPKI_RSA || t == SPKI_OTHER) {
        msg = "is not an EC public key";
    }
    else {
        msg = apr_pstrcat(p, "is on the wrong curve (", name, " needs ",
                          want == SPKI_EC_P256 ? "P-256"
                          : want == SPKI_EC_P384 ? "P-384" : "P-521",
                          ")", NULL);
    }
    return apr_psprintf(p, "the %s key %s", name, msg);
}

upm_jwt_key *upm_jwt_key_make(apr_pool_t *p, const char *alg_name_in,
                              const unsigned char *data, apr_size_t len,
                              const char *kid, const char **err)
{
    const char *dummy;
    upm_jwt_key *key;
    unsigned char *copy;
    jwt_alg_t alg;

    if (err == NULL) {
        err = &dummy;
    }
    *err = NULL;

    if (alg_name_in == NULL || *alg_name_in == '\0') {
        *err = "no JWT algorithm given (expected HS256, HS384, HS512, "
               "RS256, RS384, RS512, ES256, ES384 or ES512)";
        return NULL;
    }
    alg = upm_jwt_alg_parse(alg_name_in);
    if (alg == JWT_ALG_INVAL) {
        if (strcasecmp(alg_name_in, "none") == 0) {
            *err = "JWT algorithm none is not allowed: unsigned tokens "
                   "are never accepted";
        }
        else {
            *err = apr_psprintf(p, "unknown JWT algorithm '%s' (expected "
                                "HS256, HS384, HS512, RS256, RS384, RS512, "
                                "ES256, ES384 or ES512)", alg_name_in);
        }
        return NULL;
    }

    if (data == NULL || len == 0) {
        *err = apr_psprintf(p, "the %s key is empty", alg_name_in);
        return NULL;
    }
    if (len > UPM_JWT_MAX_KEY) {
        *err = apr_psprintf(p, "the %s key is larger than %d bytes",
                            alg_name_in, UPM_JWT_MAX_KEY);
        return NULL;
    }

    if (alg_is_hs(alg)) {
        apr_size_t min = hs_min_len(alg);

        /* Secrets read from files (and many environment values) end with
         * a newline that was never meant to be part of the secret: the
         * issuer signs with the bare secret, so one trailing newline (LF
         * or CRLF) is dropped.  Only one, so that a secret really ending
         * in whitespace still works. */
        if (data[len - 1] == '\n') {
            len--;
            if (len > 0 && data[len - 1] == '\r') {
                len--;
            }
        }
        if (len == 0) {
            *err = apr_psprintf(p, "the %s secret is empty", alg_name_in);
            return NULL;
        }
        if (len < min) {
            *err = apr_psprintf(p, "the %s secret is %" APR_SIZE_T_FMT
                                " bytes long; at least %" APR_SIZE_T_FMT
                                " are required", alg_name_in, len, min);
            return NULL;
        }
        /* A PEM used as HMAC secret is a public value: anyone holding
         * the public key could sign tokens. */
        if (mem_find(data, len, "-----BEGIN")) {
            *err = apr_psprintf(p, "the %s secret is a PEM key; HMAC "
                                "algorithms need a random secret",
                                alg_name_in);
            return NULL;
        }
    }
    else {
        const char *msg = check_public_key(p, alg, alg_name_in, data, len);

        if (msg) {
            *err = msg;
            return NULL;
        }
    }

    /* OpenSSL's PEM reader and libjwt's key copy both want plain bytes
     * that outlive the configuration file buffer; the NUL keeps PEM text
     * usable as a C string, and is not counted in key_len. */
    copy = apr_palloc(p, len + 1);
    memcpy(copy, data, len);
    copy[len] = '\0';

    key = apr_pcalloc(p, sizeof(*key));
    key->alg = alg;
    /* An empty kid can never be told apart from "no kid" in a config
     * file, so it means no kid. */
    key->kid = (kid && *kid) ? apr_pstrdup(p, kid) : NULL;
    key->key = copy;
    key->key_len = len;
    return key;
}

const char *upm_jwt_bearer(const char *h)
{
    if (h == NULL || strncasecmp(h, "Bearer", 6) != 0
        || (h[6] != ' ' && h[6] != '\t')) {
        return NULL;
    }
    h += 7;
    while (*h == ' ' || *h == '\t') {
        h++;
    }
    return h;
}

static int b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* JWS compact parts are unpadded base64url (RFC 7515 2); a length of
 * 1 mod 4 cannot be produced by any encoder. */
static int b64url_part_ok(const char *s, apr_size_t n)
{
    apr_size_t i;

    if (n % 4 == 1) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!b64url_char(s[i])) {
            return 0;
        }
    }
    return 1;
}

/* The header is needed before any key is chosen, and libjwt only exposes
 * it after a successful verification. */
static json_t *decode_header(apr_pool_t *p, const char *s, apr_size_t n)
{
    char *b64, *raw;
    apr_size_t i;
    int raw_len;
    json_t *hdr;

    b64 = apr_palloc(p, n + 4);
    for (i = 0; i < n; i++) {
        b64[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    }
    while (i % 4) {
        b64[i++] = '=';
    }
    b64[i] = '\0';

    raw = apr_palloc(p, (apr_size_t)apr_base64_decode_len(b64));
    raw_len = apr_base64_decode(raw, b64);
    if (raw_len <= 0) {
        return NULL;
    }
    /* A duplicated "alg" or "kid" could be read one way here and another
     * way by a different parser; refuse rather than guess. */
    hdr = json_loadb(raw, (size_t)raw_len, JSON_REJECT_DUPLICATES, NULL);
    if (hdr && !json_is_object(hdr)) {
        json_decref(hdr);
        return NULL;
    }
    return hdr;
}

static int key_usable(const upm_jwt_key *k)
{
    return k != NULL && k->key != NULL && k->key_len > 0
        && k->key_len <= INT_MAX;
}

upm_jwt_status upm_jwt_verify(apr_pool_t *p, const char *token,
                              const apr_array_header_t *keys,
                              const upm_jwt_policy *pol,
                              apr_int64_t now_sec, upm_jwt_result *out)
{
    upm_jwt_result dummy;
    const upm_jwt_key **cand, *winner = NULL;
    const char *dot1, *dot2, *kid = NULL;
    apr_size_t len, hlen, plen, slen;
    json_t *hdr, *v, *claims = NULL;
    jwt_alg_t alg;
    int nkeys, ncand = 0, nkidless = 0, i;
    upm_jwt_status st;

    if (out == NULL) {
        out = &dummy;
    }
    memset(out, 0, sizeof(*out));

    if (token == NULL || *token == '\0') {
        return UPM_JWT_MISSING;
    }
    /* Bounded, so an enormous header value is not even scanned fully. */
    for (len = 0; token[len] != '\0' && len <= UPM_JWT_MAX_TOKEN; len++)
        ;
    if (len > UPM_JWT_MAX_TOKEN) {
        return UPM_JWT_TOO_LARGE;
    }

    dot1 = strchr(token, '.');
    dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (dot2 == NULL || strchr(dot2 + 1, '.') != NULL) {
        return UPM_JWT_MALFORMED;
    }
    hlen = (apr_size_t)(dot1 - token);
    plen = (apr_size_t)(dot2 - dot1 - 1);
    slen = len - (apr_size_t)(dot2 - token) - 1;
    /* The signature may be empty here: an unsigned token is reported as
     * a refused algorithm, which says more than "malformed". */
    if (hlen == 0 || plen == 0
        || !b64url_part_ok(token, hlen)
        || !b64url_part_ok(dot1 + 1, plen)
        || !b64url_part_ok(dot2 + 1, slen)) {
        return UPM_JWT_MALFORMED;
    }

    hdr = decode_header(p, token, hlen);
    if (hdr == NULL) {
        return UPM_JWT_MALFORMED;
    }
    v = json_object_get(hdr, "alg");
    alg = json_is_string(v) ? upm_jwt_alg_parse(json_string_value(v))
                            : JWT_ALG_INVAL;
    if (alg == JWT_ALG_INVAL) {
        json_decref(hdr);
        return UPM_JWT_BAD_ALG;
    }
    v = json_object_get(hdr, "kid");
    if (v != NULL) {
        if (!json_is_string(v)) {
            json_decref(hdr);
            return UPM_JWT_MALFORMED;
        }
        kid = apr_pstrdup(p, json_string_value(v));
    }
    /* libjwt 1.10 fails any typ other than "JWT" (say "at+jwt", RFC
     * 9068) during decoding, which would otherwise show up as a bad
     * signature and send whoever reads the logs after the keys. */
    v = json_object_get(hdr, "typ");
    if (json_is_string(v) && strcasecmp(json_string_value(v), "JWT") != 0) {
        json_decref(hdr);
        return UPM_JWT_MALFORMED;
    }
    json_decref(hdr);

    nkeys = keys ? keys->nelts : 0;
    cand = apr_palloc(p, sizeof(*cand) * (apr_size_t)(nkeys + 1));
    if (kid != NULL) {
        const upm_jwt_key *k = NULL;

        for (i = 0; i < nkeys; i++) {
            const upm_jwt_key *c = APR_ARRAY_IDX(keys, i, const upm_jwt_key *);

            if (key_usable(c) && c->kid && strcmp(c->kid, kid) == 0) {
                k = c;
                break;
            }
        }
        if (k == NULL) {
            return UPM_JWT_UNKNOWN_KID;
        }
        if (k->alg != alg) {
            return UPM_JWT_BAD_ALG;
        }
        cand[ncand++] = k;
    }
    else {
        for (i = 0; i < nkeys; i++) {
            const upm_jwt_key *c = APR_ARRAY_IDX(keys, i, const upm_jwt_key *);

            if (!key_usable(c) || c->kid != NULL) {
                continue;
            }
            nkidless++;
            if (c->alg == alg) {
                cand[ncand++] = c;
            }
        }
        if (nkidless == 0) {
            return UPM_JWT_NO_KEY;
        }
        if (ncand == 0) {
            return UPM_JWT_BAD_ALG;
        }
    }

    for (i = 0; i < ncand && winner == NULL; i++) {
        jwt_t *jwt = NULL;
        char *grants;

        /* cand[] only holds keys with a non-empty key and an alg other
         * than none, so libjwt always verifies a signature here. */
        if (jwt_decode(&jwt, token, cand[i]->key, (int)cand[i]->key_len) != 0
            || jwt == NULL) {
            jwt_free(jwt);
            continue;
        }
        if (jwt_get_alg(jwt) != cand[i]->alg) {
            jwt_free(jwt);
            return UPM_JWT_BAD_ALG;
        }
        grants = jwt_get_grants_json(jwt, NULL);
        jwt_free(jwt);
        if (grants == NULL) {
            return UPM_JWT_BAD_CLAIM;
        }
        claims = json_loads(grants, 0, NULL);
        free(grants);
        if (claims == NULL) {
            return UPM_JWT_BAD_CLAIM;
        }
        winner = cand[i];
    }
    if (winner == NULL) {
        return UPM_JWT_BAD_SIGNATURE;
    }

    /* kid and exp stay filled in on a claim failure: "expired" is much
     * easier to act on in a log line with the key and the time. */
    out->kid = winner->kid ? apr_pstrdup(p, winner->kid) : NULL;
    st = upm_jwt_check_claims(p, claims, pol, now_sec, &out->user, &out->exp);
    if (st != UPM_JWT_OK) {
        json_decref(claims);
        out->user = NULL;
        return st;
    }
    out->claims = claims;
    return UPM_JWT_OK;
}

/* Sign of (v - t) for a NumericDate, which RFC 7519 allows to be
 * fractional. */
static int date_cmp(json_t *v, apr_int64_t t)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);

        return x < t ? -1 : x > t;
    }
    else {
        double x = json_real_value(v);

        return x < (double)t ? -1 : x > (double)t;
    }
}

static apr_int64_t date_int(json_t *v)
{
    double x;

    if (json_is_integer(v)) {
        return (apr_int64_t)json_integer_value(v);
    }
    x = json_real_value(v);
    /* Casting an out-of-range double is undefined. */
    if (x >= 9.2e18) {
        return APR_INT64_MAX;
    }
    if (x <= -9.2e18) {
        return APR_INT64_MIN;
    }
    return (apr_int64_t)x;
}

upm_jwt_status upm_jwt_check_claims(apr_pool_t *p, json_t *claims,
                                    const upm_jwt_policy *pol,
                                    apr_int64_t now_sec,
                                    const char **user, apr_int64_t *exp)
{
    json_t *jexp, *jnbf, *jiat, *v;
    apr_int64_t leeway = 0;
    const char *user_claim = "sub";

    if (user) {
        *user = NULL;
    }
    if (exp) {
        *exp = 0;
    }
    if (!json_is_object(claims)) {
        return UPM_JWT_BAD_CLAIM;
    }
    if (pol) {
        leeway = pol->leeway > 0 ? pol->leeway : 0;
        if (pol->user_claim && *pol->user_claim) {
            user_claim = pol->user_claim;
        }
    }

    jexp = json_object_get(claims, "exp");
    jnbf = json_object_get(claims, "nbf");
    jiat = json_object_get(claims, "iat");
    if ((jexp && !json_is_number(jexp)) || (jnbf && !json_is_number(jnbf))
        || (jiat && !json_is_number(jiat))) {
        return UPM_JWT_BAD_CLAIM;
    }

    if (!jexp && !(pol && pol->allow_no_exp)) {
        return UPM_JWT_NO_EXP;
    }
    if (jexp) {
        if (exp) {
            *exp = date_int(jexp);
        }
        if (date_cmp(jexp, now_sec - leeway) <= 0) {
            return UPM_JWT_EXPIRED;
        }
    }
    if (jnbf && date_cmp(jnbf, now_sec + leeway) > 0) {
        return UPM_JWT_NOT_YET_VALID;
    }
    if (pol && pol->max_age > 0) {
        apr_int64_t max_age = pol->max_age;

        if (jiat) {
            apr_int64_t iat = date_int(jiat), end;

            /* Saturating: iat comes from the token and may be huge. */
            end = iat > APR_INT64_MAX - max_age ? APR_INT64_MAX : iat + max_age;
            if (jexp && date_int(jexp) > end) {
                return UPM_JWT_TOO_LONG;
            }
            if (end <= now_sec - leeway) {
                return UPM_JWT_EXPIRED;
            }
            if (exp && (!jexp || end < *exp)) {
                *exp = end;
            }
        }
        else if (!jexp
                 || date_cmp(jexp, now_sec > APR_INT64_MAX - max_age - leeway
                                   ? APR_INT64_MAX : now_sec + max_age + leeway) > 0) {
            /* Without iat the age is unknown: only a token that ends
             * within max_age from now is bounded by it. */
            return UPM_JWT_TOO_LONG;
        }
    }

    if (pol && pol->issuer) {
        v = json_object_get(claims, "iss");
        if (!json_is_string(v) || strcmp(json_string_value(v), pol->issuer)) {
            return UPM_JWT_BAD_ISSUER;
        }
    }

    if (pol && pol->audience) {
        int found = 0;

        v = json_object_get(claims, "aud");
        if (json_is_string(v)) {
            found = strcmp(json_string_value(v), pol->audience) == 0;
        }
        else if (json_is_array(v)) {
            size_t idx;
            json_t *el;

            json_array_foreach(v, idx, el) {
                if (json_is_string(el)
                    && strcmp(json_string_value(el), pol->audience) == 0) {
                    found = 1;
                    break;
                }
            }
        }
        if (!found) {
            return UPM_JWT_BAD_AUDIENCE;
        }
    }

    v = json_object_get(claims, user_claim);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);

        /* An embedded NUL would make the logged user differ from the
         * claimed one. */
        if (n == 0 || strlen(s) != n) {
            return UPM_JWT_NO_USER;
        }
        if (user) {
            *user = apr_pstrmemdup(p, s, n);
        }
    }
    else if (json_is_integer(v)) {
        if (user) {
            *user = apr_psprintf(p, "%" APR_INT64_T_FMT,
                                 (apr_int64_t)json_integer_value(v));
        }
    }
    else {
        return UPM_JWT_NO_USER;
    }
    return UPM_JWT_OK;
}

static json_t *claim_lookup(json_t *claims, const char *name)
{
    json_t *v;
    const char *seg, *dot;

    /* Namespaced claims are often URIs ("https://example.com/roles")
     * with dots of their own, so an exact top-level name wins. */
    v = json_object_get(claims, name);
    if (v != NULL || strchr(name, '.') == NULL) {
        return v;
    }
    v = claims;
    seg = name;
    while ((dot = strchr(seg, '.')) != NULL) {
        v = json_object_getn(v, seg, (size_t)(dot - seg));
        if (!json_is_object(v)) {
            return NULL;
        }
        seg = dot + 1;
    }
    return json_object_get(v, seg);
}

static int value_is(json_t *v, const char *value)
{
    if (json_is_string(v)) {
        return json_string_length(v) == strlen(value)
            && memcmp(json_string_value(v), value, strlen(value)) == 0;
    }
    if (json_is_integer(v)) {
        char buf[32];

        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        return strcmp(buf, value) == 0;
    }
    return 0;
}

static int has_word(const char *s, const char *word)
{
    apr_size_t wl = strlen(word);

    while (*s) {
        const char *e;

        while (*s == ' ') {
            s++;
        }
        for (e = s; *e && *e != ' '; e++)
            ;
        if ((apr_size_t)(e - s) == wl && memcmp(s, word, wl) == 0) {
            return 1;
        }
        s = e;
    }
    return 0;
}

int upm_jwt_claim_has(json_t *claims, const char *name, const char *value)
{
    json_t *v;

    /* An empty required value is a configuration slip, and must not
     * match an empty claim or the gaps of "a  b". */
    if (!json_is_object(claims) || name == NULL || *name == '\0'
        || value == NULL || *value == '\0') {
        return 0;
    }
    v = claim_lookup(claims, name);
    if (v == NULL) {
        return 0;
    }
    if (value_is(v, value)) {
        return 1;
    }
    if (json_is_string(v)) {
        return has_word(json_string_value(v), value);
    }
    if (json_is_array(v)) {
        size_t idx;
        json_t *el;

        json_array_foreach(v, idx, el) {
            if (value_is(el, value)) {
                return 1;
            }
        }
    }
    return 0;
}

int upm_jwt_id_claim_grants(json_t *claims, const char *name, const char *id)
{
    json_t *v;
    size_t idx;
    json_t *el;
    int wrong = 0;

    if (!json_is_object(claims) || !name || !*name || !id || !*id) {
        return 0;
    }
    v = claim_lookup(claims, name);
    if (v == NULL) {
        return 0;
    }
    /* Exactly a string or strings: unlike the scope claim, "a b" is one
     * id (an invalid one), and a number is not taken for an id, so a
     * claim the identity provider meant otherwise grants nothing. */
    if (json_is_string(v)) {
        return strcmp(json_string_value(v), id) == 0;
    }
    if (!json_is_array(v)) {
        return -1;
    }
    json_array_foreach(v, idx, el) {
        if (!json_is_string(el)) {
            wrong = 1;
            continue;
        }
        if (strcmp(json_string_value(el), id) == 0) {
            return 1;
        }
    }
    return wrong ? -1 : 0;
}

static int scrub_name_matches(const char *m, apr_size_t mlen,
                              const char *const *names, int n)
{
    apr_size_t nl;
    const char *eq = memchr(m, '=', mlen);
    int i;

    nl = eq ? (apr_size_t)(eq - m) : mlen;
    for (i = 0; i < n; i++) {
        if (names[i] && strlen(names[i]) == nl && memcmp(m, names[i], nl) == 0) {
            return 1;
        }
    }
    return 0;
}

const char *upm_jwt_scrub_query(apr_pool_t *p, const char *line,
                                const char *const *names, int n)
{
    const char *q, *end, *m;
    char *out, *o;
    int cut = 0, kept = 0;

    if (!line || !(q = strchr(line, '?'))) {
        return line;
    }
    end = q + 1 + strcspn(q + 1, " ");
    out = apr_palloc(p, strlen(line) + 1);
    memcpy(out, line, (apr_size_t)(q - line));
    o = out + (q - line);
    for (m = q + 1; m <= end; ) {
        const char *amp = memchr(m, '&', (apr_size_t)(end - m));
        const char *me = amp ? amp : end;
        apr_size_t mlen = (apr_size_t)(me - m);

        if (mlen && scrub_name_matches(m, mlen, names, n)) {
            cut = 1;
        }
        else if (mlen) {
            *o++ = kept++ ? '&' : '?';
            memcpy(o, m, mlen);
            o += mlen;
        }
        if (!amp) {
            break;
        }
        m = amp + 1;
    }
    if (!cut) {
        return line;
    }
    strcpy(o, end);
    return out;
}
