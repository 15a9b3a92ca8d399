/* SPDX-License-Identifier: Apache-2.0 */
/* JWKS parsing: JSON through jansson, keys through OpenSSL 3.
 *
 * libjwt 1.10 verifies RS and ES signatures with a PEM public key, so a
 * JWK's parameters are assembled into an EVP_PKEY and written out as a
 * SubjectPublicKeyInfo PEM; upm_jwt_key_make() then applies the same
 * checks as to a configured key file (the curve must fit the alg). */

#include <string.h>
#include <strings.h>

#include <apr_base64.h>
#include <apr_strings.h>
#include <jansson.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "upm_jwks.h"
#include "upm_jwt.h"

/* Largest RSA modulus taken: 16384 bits.  Below 2048 bits a key is
 * refused: such keys are factorable by well-funded attackers, and no
 * provider we know of publishes one. */
#define RSA_MAX_BYTES 2048
#define RSA_MIN_BITS 2048
#define KID_MAX 256

/* base64url without padding (RFC 7515 2); padding is tolerated since some
 * providers emit it.  NULL on any other character. */
static unsigned char *b64url_decode(apr_pool_t *p, const char *s, apr_size_t n,
                                    apr_size_t *out_len)
{
    char *b64;
    unsigned char *raw;
    apr_size_t i, m;
    int len;

    while (n > 0 && s[n - 1] == '=') {
        n--;
    }
    if (n == 0 || n % 4 == 1) {
        return NULL;
    }
    b64 = apr_palloc(p, n + 4);
    for (i = 0; i < n; i++) {
        char c = s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            b64[i] = c;
        }
        else if (c == '-') {
            b64[i] = '+';
        }
        else if (c == '_') {
            b64[i] = '/';
        }
        else {
            return NULL;
        }
    }
    m = n;
    while (m % 4) {
        b64[m++] = '=';
    }
    b64[m] = '\0';
    raw = apr_palloc(p, (apr_size_t)apr_base64_decode_len(b64) + 1);
    len = apr_base64_decode_binary(raw, b64);
    if (len <= 0) {
        return NULL;
    }
    *out_len = (apr_size_t)len;
    return raw;
}

/* A string member, base64url-decoded; NULL when absent or not valid. */
static unsigned char *member_bytes(apr_pool_t *p, json_t *jwk, const char *name,
                                   apr_size_t *len)
{
    json_t *v = json_object_get(jwk, name);

    if (!json_is_string(v)) {
        return NULL;
    }
    return b64url_decode(p, json_string_value(v), json_string_length(v), len);
}

/* The PEM text of an EVP_PKEY's public half, copied into the pool. */
static const char *pkey_pem(apr_pool_t *p, EVP_PKEY *pkey, apr_size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *copy = NULL;
    long n;

    if (bio == NULL) {
        return NULL;
    }
    if (PEM_write_bio_PUBKEY(bio, pkey) == 1 && (n = BIO_get_mem_data(bio, &data)) > 0) {
        copy = apr_pstrmemdup(p, data, (apr_size_t)n);
        *len = (apr_size_t)n;
    }
    BIO_free(bio);
    return copy;
}

static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
    EVP_PKEY *pkey = NULL;

    if (params == NULL) {
        return NULL;
    }
    ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        pkey = NULL;
    }
    /* fromdata takes an EC point as given: a point off the curve (an
     * invalid-curve attack's tool) is caught only by this check. */
    if (pkey) {
        chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (chk == NULL || EVP_PKEY_public_check(chk) != 1) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
    }
    EVP_PKEY_CTX_free(chk);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static const char *rsa_pem(apr_pool_t *p, json_t *jwk, apr_size_t *pem_len,
                           const char **pem)
{
    unsigned char *n, *e;
    apr_size_t nl, el;
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld;
    EVP_PKEY *pkey = NULL;
    const char *why = NULL;

    n = member_bytes(p, jwk, "n", &nl);
    e = member_bytes(p, jwk, "e", &el);
    if (!n || !e) {
        return "RSA key without valid n and e";
    }
    while (nl > 0 && *n == 0) {
        n++;
        nl--;
    }
    if (nl > RSA_MAX_BYTES) {
        return "RSA modulus larger than 16384 bits";
    }
    if (el > 8 || !(e[el - 1] & 1)) {
        return "RSA exponent not a small odd number";
    }
    bn = BN_bin2bn(n, (int)nl, NULL);
    be = BN_bin2bn(e, (int)el, NULL);
    if (!bn || !be) {
        BN_free(bn);
        BN_free(be);
        return "out of memory";
    }
    if (BN_num_bits(bn) < RSA_MIN_BITS) {
        BN_free(bn);
        BN_free(be);
        return "RSA key shorter than 2048 bits";
    }
    if (BN_is_one(be)) {
        BN_free(bn);
        BN_free(be);
        return "RSA exponent not a small odd number";
    }
    bld = OSSL_PARAM_BLD_new();
    if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn)
        && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be)) {
        pkey = pkey_from_params("RSA", bld);
    }
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    if (pkey == NULL) {
        return "RSA parameters refused by OpenSSL";
    }
    *pem = pkey_pem(p, pkey, pem_len);
    if (*pem == NULL) {
        why = "RSA key could not be written as PEM";
    }
    EVP_PKEY_free(pkey);
    return why;
}

static const struct {
    const char *crv;
    const char *group;          /* OpenSSL's name */
    const char *alg;
    apr_size_t bytes;           /* field size: x and y are exactly this long */
} curves[] = {
    { "P-256", "prime256v1", "ES256", 32 },
    { "P-384", "secp384r1", "ES384", 48 },
    { "P-521", "secp521r1", "ES512", 66 },
};

static const char *ec_pem(apr_pool_t *p, json_t *jwk, int ci, apr_size_t *pem_len,
                          const char **pem)
{
    unsigned char *x, *y, *pt;
    apr_size_t xl, yl, fl = curves[ci].bytes;
    OSSL_PARAM_BLD *bld;
    EVP_PKEY *pkey = NULL;
    const char *why = NULL;

    x = member_bytes(p, jwk, "x", &xl);
    y = member_bytes(p, jwk, "y", &yl);
    /* RFC 7518 6.2.1.2: the full field size, leading zeros kept. */
    if (!x || !y || xl != fl || yl != fl) {
        return "EC key without valid x and y of the curve's size";
    }
    pt = apr_palloc(p, 1 + 2 * fl);
    pt[0] = 0x04;               /* uncompressed point */
    memcpy(pt + 1, x, fl);
    memcpy(pt + 1 + fl, y, fl);
    bld = OSSL_PARAM_BLD_new();
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                               curves[ci].group, 0)
        && OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * fl)) {
        pkey = pkey_from_params("EC", bld);
    }
    OSSL_PARAM_BLD_free(bld);
    if (pkey == NULL) {
        return "EC point not on the curve";
    }
    *pem = pkey_pem(p, pkey, pem_len);
    if (*pem == NULL) {
        why = "EC key could not be written as PEM";
    }
    EVP_PKEY_free(pkey);
    return why;
}

static const char *oct_key(apr_pool_t *p, json_t *jwk, const char *alg,
                           const char *kid, upm_jwt_key **key)
{
    unsigned char *k;
    apr_size_t kl, min;
    upm_jwt_key *out;

    if (!alg) {
        return "oct key without alg";
    }
    min = !strcmp(alg, "HS256") ? 32 : !strcmp(alg, "HS384") ? 48
        : !strcmp(alg, "HS512") ? 64 : 0;
    if (min == 0) {
        return "oct key with an alg other than HS256/384/512";
    }
    k = member_bytes(p, jwk, "k", &kl);
    if (!k) {
        return "oct key without valid k";
    }
    if (kl < min) {
        return "oct key shorter than its hash";
    }
    /* Not through upm_jwt_key_make: that trims a trailing newline meant
     * for secrets read from files, while k is exact binary. */
    out = apr_pcalloc(p, sizeof(*out));
    out->alg = upm_jwt_alg_parse(alg);
    out->kid = kid;
    out->key = k;
    out->key_len = kl;
    *key = out;
    return NULL;
}

/* One JWK: NULL and *key set, or why it is skipped. */
static const char *jwk_key(apr_pool_t *p, json_t *jwk, int allow_hs, upm_jwt_key **key)
{
    json_t *v;
    const char *kty, *alg = NULL, *kid = NULL, *pem = NULL, *err = NULL;
    apr_size_t pem_len = 0;
    int ci = -1;
    apr_size_t i;

    *key = NULL;
    if (!json_is_object(jwk)) {
        return "not an object";
    }
    v = json_object_get(jwk, "use");
    if (v && (!json_is_string(v) || strcmp(json_string_value(v), "sig") != 0)) {
        return "use is not sig";
    }
    v = json_object_get(jwk, "key_ops");
    if (v) {
        size_t idx;
        json_t *op;
        int verify = 0;

        if (!json_is_array(v)) {
            return "key_ops is not an array";
        }
        json_array_foreach(v, idx, op) {
            if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0) {
                verify = 1;
            }
        }
        if (!verify) {
            return "key_ops without verify";
        }
    }
    v = json_object_get(jwk, "kid");
    if (v) {
        if (!json_is_string(v) || json_string_length(v) == 0
            || json_string_length(v) > KID_MAX
            || strlen(json_string_value(v)) != json_string_length(v)) {
            return "kid is not a usable string";
        }
        kid = apr_pstrdup(p, json_string_value(v));
    }
    v = json_object_get(jwk, "alg");
    if (v) {
        if (!json_is_string(v)) {
            return "alg is not a string";
        }
        alg = json_string_value(v);
    }
    v = json_object_get(jwk, "kty");
    if (!json_is_string(v)) {
        return "no kty";
    }
    kty = json_string_value(v);

    if (strcmp(kty, "RSA") == 0) {
        if (!alg) {
            alg = "RS256";
        }
        if (strcmp(alg, "RS256") && strcmp(alg, "RS384") && strcmp(alg, "RS512")) {
            return "RSA key with an alg other than RS256/384/512";
        }
        err = rsa_pem(p, jwk, &pem_len, &pem);
    }
    else if (strcmp(kty, "EC") == 0) {
        v = json_object_get(jwk, "crv");
        for (i = 0; json_is_string(v) && i < sizeof(curves) / sizeof(curves[0]); i++) {
            if (strcmp(json_string_value(v), curves[i].crv) == 0) {
                ci = (int)i;
            }
        }
        if (ci < 0) {
            return "EC key on a curve other than P-256/P-384/P-521";
        }
        if (!alg) {
            alg = curves[ci].alg;
        }
        /* ES256 means P-256 (RFC 7518 3.4): any other pairing is refused. */
        if (strcmp(alg, curves[ci].alg) != 0) {
            return "EC key whose alg does not match its curve";
        }
        err = ec_pem(p, jwk, ci, &pem_len, &pem);
    }
    else if (strcmp(kty, "oct") == 0) {
        if (!allow_hs) {
            return "oct (HMAC) key in a set not configured for HS keys";
        }
        return oct_key(p, jwk, alg, kid, key);
    }
    else {
        return "kty other than RSA, EC or oct";
    }
    if (err) {
        return err;
    }
    *key = upm_jwt_key_make(p, alg, (const unsigned char *)pem, pem_len, kid, &err);
    return *key ? NULL : err;
}

const char *upm_jwks_parse(apr_pool_t *p, const char *doc, apr_size_t len,
                           int allow_hs, upm_jwks_set *out)
{
    json_t *root, *keys, *jwk;
    json_error_t jerr;
    size_t idx;
    const char *why = NULL;

    memset(out, 0, sizeof(*out));
    if (doc == NULL || len == 0) {
        return "empty document";
    }
    if (len > UPM_JWKS_MAX_DOC) {
        return "document larger than 2 MB";
    }
    /* A duplicated member could be read one way here and another way by
     * the provider's own tools; refuse rather than guess. */
    root = json_loadb(doc, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return apr_psprintf(p, "not JSON (%s at line %d)", jerr.text, jerr.line);
    }
    keys = json_object_get(root, "keys");
    if (!json_is_array(keys)) {
        json_decref(root);
        return "no \"keys\" array";
    }
    if (json_array_size(keys) > UPM_JWKS_MAX_KEYS) {
        json_decref(root);
        return "more than 4096 keys";
    }
    out->keys = apr_array_make(p, (int)json_array_size(keys) + 1, sizeof(upm_jwt_key *));
    json_array_foreach(keys, idx, jwk) {
        upm_jwt_key *k = NULL;
        const char *skip = jwk_key(p, jwk, allow_hs, &k);
        int i;

        /* upm_jwt_verify takes the first key with the token's kid: a later
         * one of the same kid could never be used. */
        for (i = 0; !skip && k->kid && i < out->keys->nelts; i++) {
            const upm_jwt_key *o = APR_ARRAY_IDX(out->keys, i, upm_jwt_key *);
            if (o->kid && strcmp(o->kid, k->kid) == 0) {
                skip = "kid appears twice";
            }
        }
        if (skip) {
            if (out->skipped++ == 0) {
                json_t *kid = json_object_get(jwk, "kid");
                out->first_skip = apr_psprintf(p, "key %u%s%s%s: %s", (unsigned)idx,
                                               json_is_string(kid) ? " (kid " : "",
                                               json_is_string(kid) ? json_string_value(kid)
                                                                   : "",
                                               json_is_string(kid) ? ")" : "", skip);
            }
            continue;
        }
        APR_ARRAY_PUSH(out->keys, upm_jwt_key *) = k;
    }
    json_decref(root);
    if (out->keys->nelts == 0) {
        why = out->first_skip
            ? apr_pstrcat(p, "no usable key; ", out->first_skip, NULL)
            : "no keys";
    }
    return why;
}

const char *upm_jwks_discovery_uri(apr_pool_t *p, const char *doc, apr_size_t len,
                                   const char **uri)
{
    json_t *root, *v;
    const char *why;

    *uri = NULL;
    if (doc == NULL || len == 0 || len > UPM_JWKS_MAX_DOC) {
        return "empty or oversized discovery document";
    }
    root = json_loadb(doc, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return "discovery document is not a JSON object";
    }
    v = json_object_get(root, "jwks_uri");
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        json_decref(root);
        return "discovery document has no jwks_uri";
    }
    *uri = apr_pstrdup(p, json_string_value(v));
    json_decref(root);
    if ((why = upm_jwks_url_check(p, *uri)) != NULL) {
        *uri = NULL;
        return apr_pstrcat(p, "jwks_uri: ", why, NULL);
    }
    return NULL;
}

static int host_is_loopback(const char *h, apr_size_t n)
{
    apr_size_t i;
    int dots = 0;

    if ((n == 9 && strncasecmp(h, "localhost", 9) == 0) || (n == 5 && !memcmp(h, "[::1]", 5))) {
        return 1;
    }
    if (n < 7 || strncmp(h, "127.", 4) != 0) {
        return 0;
    }
    /* 127.a.b.c in dotted decimal only: "127.evil.example" is a name. */
    for (i = 0; i < n; i++) {
        if (h[i] == '.') {
            dots++;
        }
        else if (h[i] < '0' || h[i] > '9') {
            return 0;
        }
    }
    return dots == 3;
}

const char *upm_jwks_url_check(apr_pool_t *p, const char *url)
{
    const char *h, *e;
    int https;

    if (url == NULL) {
        return "no URL";
    }
    if (strncasecmp(url, "https://", 8) == 0) {
        https = 1;
        h = url + 8;
    }
    else if (strncasecmp(url, "http://", 7) == 0) {
        https = 0;
        h = url + 7;
    }
    else {
        return "not an https:// (or loopback http://) URL";
    }
    for (e = h; *e; e++) {
        if ((unsigned char)*e <= ' ' || (unsigned char)*e >= 0x7f) {
            return "URL contains spaces or control characters";
        }
    }
    /* userinfo would put a credential in every log line naming the URL. */
    e = h + strcspn(h, "/?#");
    if (memchr(h, '@', (apr_size_t)(e - h))) {
        return "URL carries a user name or password";
    }
    if (*h == '[') {
        const char *c = strchr(h, ']');
        if (!c || c >= e) {
            return "bad IPv6 host";
        }
        e = c + 1;
    }
    else {
        const char *c = memchr(h, ':', (apr_size_t)(e - h));
        if (c) {
            e = c;
        }
    }
    if (e == h) {
        return "URL without a host";
    }
    if (!https && !host_is_loopback(h, (apr_size_t)(e - h))) {
        return apr_psprintf(p, "http:// is only allowed to a loopback host "
                            "(127.0.0.1, [::1], localhost), not %.*s; use https://",
                            (int)(e - h), h);
    }
    return NULL;
}
