/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for token handling (upm_jwt.c): the Authorization
 * header and the token through upm_jwt_verify against HS256, RS256 and
 * ES256 keys (with and without key ids), and the claim checks.
 *
 * The first input byte chooses: bits 0-1 the key set, bits 2-3 the
 * policy, bits 4-5 the mode:
 *   0, 1  the rest is an Authorization header value, or the token itself
 *         when it is not "Bearer ..." (query and cookie tokens);
 *   2     the rest is "<header JSON>\n<payload bytes>", signed here with
 *         the HS256 secret, so that libjwt and the claim checks get
 *         arbitrary verified content (what a misbehaving issuer sends);
 *   3     the rest is a claims object for upm_jwt_check_claims and
 *         upm_jwt_claim_has.
 * The keys are those of t/keys (public halves only), so the seed tokens
 * in fuzz/corpus/jwt were signed with t/keys/rsa.pem and ec256.pem. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_base64.h>
#include <apr_strings.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "upm_jwt.h"

#define NOW ((apr_int64_t)1700000000)

static const char hs_secret[] = "5R3J5KzG0asYrPh2CKOp4dfsDvCFDsGWxvZt1cec";

static const char rsa_pub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAkym0e9dIHkXDZpsA4Z3l\n"
    "Kr+s2+ThY97l0Zc0igFj4BtwE07U1vYwcr4FBhiLecztBR3UWo2QFr0p9EVl3Com\n"
    "3Ma0pzvE6ykQWtEAAKOspeWrwTM2iUjG+ygZ26yjIUSHWaCek4xOen+DxgH9I146\n"
    "8rE6dA7X9FO0aU20QasSKGP6yd3qres55ZZWCBRVZJC7rvc7jrnLmXsl//KeKvfu\n"
    "SjbhIIcVHK8n/HKypq4UDmaraGzo//DtdntlQ5pn7JTR5LWnRGTRoi3Njek7PIbE\n"
    "Q/uMIV8bgxP7pgiSq6Vo+x9FE+UGId1cYcv9k/908MXMZmr7sHf3Pplm+2uBQCiA\n"
    "sQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static const char ec_pub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEbgH/qJ35yJ8OOACIimkinOnb1vlc\n"
    "aK7wtGFHGs9T9WwIBuj8h4q/nXBfNAPIWCEz6eDHYZDeYJDnSneqnc/C8g==\n"
    "-----END PUBLIC KEY-----\n";

static apr_pool_t *root;
static apr_array_header_t *keysets[4];

static const upm_jwt_policy policies[4] = {
    { NULL, NULL, 0, "sub" },
    { "https://issuer.example", "upload-progress", 0, "sub" },
    { NULL, "upload-progress", 30, "uid", 0, 3600 },
    { "https://issuer.example", NULL, 86400, "", 1, 0 }
};

static upm_jwt_key *key(const char *alg, const char *data, const char *kid)
{
    const char *err = NULL;
    upm_jwt_key *k = upm_jwt_key_make(root, alg, (const unsigned char *)data,
                                      strlen(data), kid, &err);
    if (!k) {
        fprintf(stderr, "key %s refused: %s\n", alg, err);
        abort();
    }
    return k;
}

static apr_array_header_t *keyset(upm_jwt_key *a, upm_jwt_key *b, upm_jwt_key *c)
{
    apr_array_header_t *ks = apr_array_make(root, 3, sizeof(upm_jwt_key *));
    if (a) APR_ARRAY_PUSH(ks, upm_jwt_key *) = a;
    if (b) APR_ARRAY_PUSH(ks, upm_jwt_key *) = b;
    if (c) APR_ARRAY_PUSH(ks, upm_jwt_key *) = c;
    return ks;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apr_initialize();
    apr_pool_create(&root, NULL);
    keysets[0] = keyset(key("HS256", hs_secret, NULL), NULL, NULL);
    keysets[1] = keyset(key("RS256", rsa_pub, NULL), key("ES256", ec_pub, NULL), NULL);
    keysets[2] = keyset(key("HS256", hs_secret, "k1"), key("RS256", rsa_pub, "rsa"),
                        key("ES256", ec_pub, "ec"));
    keysets[3] = keyset(key("RS256", rsa_pub, NULL), key("ES256", ec_pub, NULL),
                        key("HS256", hs_secret, NULL));
    return 0;
}

static const char *b64url(apr_pool_t *p, const unsigned char *s, apr_size_t n)
{
    char *out = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)n));
    apr_size_t len = (apr_size_t)apr_base64_encode_binary(out, s, (int)n), i;

    for (i = 0; i < len && out[i]; i++) {
        if (out[i] == '+') out[i] = '-';
        else if (out[i] == '/') out[i] = '_';
        else if (out[i] == '=') { out[i] = '\0'; break; }
    }
    return out;
}

/* A compact JWS of header and payload, HMAC-SHA256 with the secret. */
static const char *hs256_sign(apr_pool_t *p, const uint8_t *hdr, apr_size_t hlen,
                              const uint8_t *payload, apr_size_t plen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    const char *input = apr_pstrcat(p, b64url(p, hdr, hlen), ".",
                                    b64url(p, payload, plen), NULL);

    if (!HMAC(EVP_sha256(), hs_secret, (int)strlen(hs_secret),
              (const unsigned char *)input, strlen(input), mac, &mlen)) {
        abort();
    }
    return apr_pstrcat(p, input, ".", b64url(p, mac, mlen), NULL);
}

static void check_verify(apr_pool_t *p, const char *token,
                         const apr_array_header_t *keys, const upm_jwt_policy *pol)
{
    upm_jwt_result res;
    upm_jwt_status st = upm_jwt_verify(p, token, keys, pol, NOW, &res);
    const char *text = upm_jwt_status_text(st);

    if ((int)st < 0 || st >= UPM_JWT__COUNT) abort();
    if (!upm_jwt_status_label(st) || strchr(text, '"') || strchr(text, '\\')) abort();
    if ((st == UPM_JWT_OK) != (res.claims != NULL)) abort();
    if (st == UPM_JWT_OK) {
        const char *user = NULL;
        apr_int64_t exp = 0;

        if (!res.user || !*res.user || !json_is_object(res.claims)) abort();
        /* The claims handed out are the ones that were checked. */
        if (upm_jwt_check_claims(p, res.claims, pol, NOW, &user, &exp) != UPM_JWT_OK
            || strcmp(user, res.user) != 0 || exp != res.exp) abort();
        (void)upm_jwt_claim_has(res.claims, "scope", "progress:publish");
        json_decref(res.claims);
    }
    else if (res.user) {
        abort();
    }
}

static void check_claims(apr_pool_t *p, const char *text, apr_size_t len,
                         const upm_jwt_policy *pol)
{
    json_t *claims = json_loadb(text, len, 0, NULL), *v;
    const char *user = NULL, *name;
    apr_int64_t exp = 0;
    upm_jwt_status st;
    int n = 0;

    if (!claims) {
        return;
    }
    st = upm_jwt_check_claims(p, claims, pol, NOW, &user, &exp);
    if ((int)st < 0 || st >= UPM_JWT__COUNT) abort();
    if ((st == UPM_JWT_OK) != (user != NULL)) abort();
    if (user && !*user) abort();
    if (upm_jwt_claim_has(claims, "", "x") || upm_jwt_claim_has(claims, "sub", "")
        || upm_jwt_claim_has(claims, NULL, "x") || upm_jwt_claim_has(claims, "sub", NULL)) abort();
    (void)upm_jwt_claim_has(claims, "upl.projects", "p1");
    (void)upm_jwt_claim_has(claims, "https://x.example/roles", "admin");
    if (json_is_object(claims)) {
        /* Every member name (dotted ones descend) with every string. */
        json_object_foreach(claims, name, v) {
            const char *val = json_is_string(v) ? json_string_value(v) : "x";
            if (++n > 16) {
                break;
            }
            (void)upm_jwt_claim_has(claims, name, val);
            (void)upm_jwt_claim_has(claims, apr_pstrcat(p, "a.", name, NULL), val);
        }
    }
    json_decref(claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    const apr_array_header_t *keys;
    const upm_jwt_policy *pol;
    const char *rest, *token;
    apr_size_t rlen;
    int mode;

    if (size < 1) {
        return 0;
    }
    apr_pool_create(&p, root);
    keys = keysets[data[0] & 3];
    pol = &policies[(data[0] >> 2) & 3];
    mode = (data[0] >> 4) & 3;
    rlen = size - 1;
    /* Header values and query parameters are C strings. */
    rest = apr_pstrmemdup(p, (const char *)data + 1, rlen);

    if (mode < 2) {
        token = upm_jwt_bearer(rest);
        check_verify(p, token ? token : rest, keys, pol);
    }
    else if (mode == 2) {
        const char *nl = memchr(rest, '\n', rlen);
        apr_size_t hlen = nl ? (apr_size_t)(nl - rest) : rlen;

        token = hs256_sign(p, (const uint8_t *)rest, hlen,
                           (const uint8_t *)(nl ? nl + 1 : ""),
                           nl ? rlen - hlen - 1 : 0);
        check_verify(p, token, keys, pol);
    }
    else {
        check_claims(p, rest, rlen, pol);
    }
    apr_pool_destroy(p);
    return 0;
}
