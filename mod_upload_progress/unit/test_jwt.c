/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for upm_jwt.c.
 *
 * Tokens are made with libjwt from the private keys in unit/keys/ and
 * verified against the public keys, the way an identity provider and the
 * module meet in production.  The attack tokens (alg none, HMAC keyed with
 * the RSA public key) are also fed to bare libjwt first, to prove that the
 * refusal comes from upm_jwt and not from libjwt.
 *
 * Usage: test_jwt [keys-dir]   (else $UPM_TEST_KEYS, else
 *        mod_upload_progress/unit/keys) */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_base64.h>
#include <apr_strings.h>

#include "upm_jwt.h"
#include "upm_test.h"

#define NOW ((apr_int64_t)1700000000)

static apr_pool_t *pool;
static const char *keys_dir;

/* 64 bytes, enough for every HS variant. */
static const char secret_a[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char secret_b[] =
    "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
static const char secret_c[] =
    "a-third-secret-that-nobody-configured-a-third-secret-that-nobody";

typedef struct {
    const unsigned char *data;
    apr_size_t len;
} blob;

static blob load_key(const char *name)
{
    blob b = { NULL, 0 };
    const char *path = apr_pstrcat(pool, keys_dir, "/", name, NULL);
    FILE *fp = fopen(path, "rb");
    unsigned char *buf;
    long n;

    if (fp == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = apr_palloc(pool, (apr_size_t)n + 1);
    if (n <= 0 || fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(fp);
    buf[n] = '\0';
    b.data = buf;
    b.len = (apr_size_t)n;
    return b;
}

static const char *b64url(const char *s, apr_size_t n)
{
    char *out = apr_palloc(pool, (apr_size_t)apr_base64_encode_len((int)n));
    char *q;

    apr_base64_encode(out, s, (int)n);
    for (q = out; *q; q++) {
        if (*q == '+') {
            *q = '-';
        }
        else if (*q == '/') {
            *q = '_';
        }
        else if (*q == '=') {
            *q = '\0';
            break;
        }
    }
    return out;
}

static const char *b64url_str(const char *s)
{
    return b64url(s, strlen(s));
}

/* A token signed by libjwt; kid may be NULL. */
static const char *make_token(jwt_alg_t alg, const void *key, apr_size_t len,
                              const char *kid, const char *grants_json)
{
    jwt_t *jwt = NULL;
    char *s;
    const char *tok;

    if (jwt_new(&jwt) != 0
        || jwt_add_grants_json(jwt, grants_json) != 0
        || (kid && jwt_add_header(jwt, "kid", kid) != 0)
        || jwt_set_alg(jwt, alg, key, (int)len) != 0
        || (s = jwt_encode_str(jwt)) == NULL) {
        fprintf(stderr, "cannot make a token for %s\n", grants_json);
        exit(2);
    }
    jwt_free(jwt);
    tok = apr_pstrdup(pool, s);
    free(s);
    return tok;
}

static const char *hs_token(const char *secret, const char *kid,
                            const char *grants_json)
{
    return make_token(JWT_ALG_HS256, secret, strlen(secret), kid,
                      grants_json);
}

static upm_jwt_key *key_ok(const char *alg, const void *data,
                           apr_size_t len, const char *kid)
{
    const char *err = NULL;
    upm_jwt_key *k = upm_jwt_key_make(pool, alg, data, len, kid, &err);

    if (k == NULL) {
        fprintf(stderr, "key %s refused: %s\n", alg, err);
        exit(2);
    }
    return k;
}

static apr_array_header_t *keyset(upm_jwt_key *k1, upm_jwt_key *k2)
{
    apr_array_header_t *a = apr_array_make(pool, 2, sizeof(upm_jwt_key *));

    if (k1) {
        APR_ARRAY_PUSH(a, upm_jwt_key *) = k1;
    }
    if (k2) {
        APR_ARRAY_PUSH(a, upm_jwt_key *) = k2;
    }
    return a;
}

static const upm_jwt_policy default_policy = { NULL, NULL, 0, "sub" };

/* Verifies and releases the claims, so a check can stay on one line. */
static upm_jwt_status verify(const char *tok, const apr_array_header_t *keys,
                             const upm_jwt_policy *pol, upm_jwt_result *res)
{
    upm_jwt_result local;
    upm_jwt_status st;

    if (res == NULL) {
        res = &local;
    }
    st = upm_jwt_verify(pool, tok, keys, pol ? pol : &default_policy, NOW,
                        res);
    if (st != UPM_JWT_OK && res->claims != NULL) {
        fprintf(stderr, "claims returned with status %s\n",
                upm_jwt_status_label(st));
        upm_t_fail++;
    }
    if (res->claims) {
        json_decref(res->claims);
        res->claims = NULL;
    }
    return st;
}

#define GRANTS_OK "{\"sub\":\"alice\",\"exp\":1700000600}"

static void test_labels(void)
{
    static const char *const labels[UPM_JWT__COUNT] = {
        "ok", "missing", "too_large", "malformed", "bad_alg", "unknown_kid",
        "no_key", "bad_signature", "expired", "not_yet_valid", "bad_issuer",
        "bad_audience", "no_user", "bad_claim", "no_exp", "too_long_lived"
    };
    int i;

    for (i = 0; i < UPM_JWT__COUNT; i++) {
        const char *t = upm_jwt_status_text((upm_jwt_status)i);

        UPM_CHECK_STR(upm_jwt_status_label((upm_jwt_status)i), labels[i]);
        UPM_CHECK(t != NULL && *t != '\0');
        UPM_CHECK(t && strchr(t, '"') == NULL && strchr(t, '\\') == NULL);
    }
    UPM_CHECK_STR(upm_jwt_status_text(UPM_JWT_EXPIRED),
                  "The token has expired");
    UPM_CHECK_STR(upm_jwt_status_label(UPM_JWT__COUNT), "unknown");
    UPM_CHECK(upm_jwt_status_text(UPM_JWT__COUNT) != NULL);
}

static void test_alg_parse(void)
{
    UPM_CHECK_INT(upm_jwt_alg_parse("HS256"), JWT_ALG_HS256);
    UPM_CHECK_INT(upm_jwt_alg_parse("HS384"), JWT_ALG_HS384);
    UPM_CHECK_INT(upm_jwt_alg_parse("HS512"), JWT_ALG_HS512);
    UPM_CHECK_INT(upm_jwt_alg_parse("RS256"), JWT_ALG_RS256);
    UPM_CHECK_INT(upm_jwt_alg_parse("RS384"), JWT_ALG_RS384);
    UPM_CHECK_INT(upm_jwt_alg_parse("RS512"), JWT_ALG_RS512);
    UPM_CHECK_INT(upm_jwt_alg_parse("ES256"), JWT_ALG_ES256);
    UPM_CHECK_INT(upm_jwt_alg_parse("ES384"), JWT_ALG_ES384);
    UPM_CHECK_INT(upm_jwt_alg_parse("ES512"), JWT_ALG_ES512);
    UPM_CHECK_INT(upm_jwt_alg_parse("none"), JWT_ALG_INVAL);
    UPM_CHECK_INT(upm_jwt_alg_parse("hs256"), JWT_ALG_INVAL);
    UPM_CHECK_INT(upm_jwt_alg_parse("HS1"), JWT_ALG_INVAL);
    UPM_CHECK_INT(upm_jwt_alg_parse("PS256"), JWT_ALG_INVAL);
    UPM_CHECK_INT(upm_jwt_alg_parse(""), JWT_ALG_INVAL);
    UPM_CHECK_INT(upm_jwt_alg_parse(NULL), JWT_ALG_INVAL);
}

static void test_key_make(void)
{
    blob rsa_pub = load_key("rsa_public.pem");
    blob rsa_priv = load_key("rsa_private.pem");
    blob ec256_priv = load_key("ec256_private.pem");
    blob ec256_pub = load_key("ec256_public.pem");
    blob ec384_pub = load_key("ec384_public.pem");
    blob ec521_pub = load_key("ec521_public.pem");
    static const char pkcs1_private[] =
        "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n"
        "-----END RSA PRIVATE KEY-----\n";
    static const char certificate[] =
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    const char *err;
    upm_jwt_key *k;
    char buf[128];

    /* Exactly the minimum lengths pass, one byte less does not. */
    err = NULL;
    k = upm_jwt_key_make(pool, "HS256", (const unsigned char *)secret_a, 32,
                         "k1", &err);
    UPM_CHECK(k != NULL);
    UPM_CHECK(err == NULL);
    if (k) {
        UPM_CHECK_INT(k->alg, JWT_ALG_HS256);
        UPM_CHECK_INT(k->key_len, 32);
        UPM_CHECK_INT(k->key[32], 0);
        UPM_CHECK(k->key != (const unsigned char *)secret_a);
        UPM_CHECK_STR(k->kid, "k1");
    }
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "HS256",
                               (const unsigned char *)secret_a, 31, NULL,
                               &err) == NULL);
    UPM_CHECK(err != NULL && strstr(err, "32") != NULL);
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "HS384",
                               (const unsigned char *)secret_a, 47, NULL,
                               &err) == NULL);
    UPM_CHECK(err != NULL);
    UPM_CHECK(upm_jwt_key_make(pool, "HS384",
                               (const unsigned char *)secret_a, 48, NULL,
                               &err) != NULL);
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "HS512",
                               (const unsigned char *)secret_a, 63, NULL,
                               &err) == NULL);
    UPM_CHECK(err != NULL);
    UPM_CHECK(upm_jwt_key_make(pool, "HS512",
                               (const unsigned char *)secret_a, 64, NULL,
                               &err) != NULL);

    /* One trailing newline (LF or CRLF) is not part of the secret, and
     * does not count towards the minimum length. */
    memcpy(buf, secret_a, 32);
    buf[32] = '\n';
    k = upm_jwt_key_make(pool, "HS256", (unsigned char *)buf, 33, NULL,
                         &err);
    UPM_CHECK(k != NULL);
    if (k) {
        UPM_CHECK_INT(k->key_len, 32);
        UPM_CHECK(memcmp(k->key, secret_a, 32) == 0);
        UPM_CHECK(k->kid == NULL);
    }
    buf[32] = '\r';
    buf[33] = '\n';
    k = upm_jwt_key_make(pool, "HS256", (unsigned char *)buf, 34, NULL,
                         &err);
    UPM_CHECK(k != NULL && k->key_len == 32);
    buf[31] = '\n';
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "HS256", (unsigned char *)buf, 32,
                               NULL, &err) == NULL);
    UPM_CHECK(err != NULL);
    memcpy(buf, secret_a, 32);
    buf[32] = '\n';
    buf[33] = '\n';
    k = upm_jwt_key_make(pool, "HS256", (unsigned char *)buf, 34, NULL,
                         &err);
    UPM_CHECK(k != NULL && k->key_len == 33);
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "HS256", (const unsigned char *)"\n", 1,
                               NULL, &err) == NULL);
    UPM_CHECK(err != NULL);

    /* Unknown algorithms, none, empty data. */
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "none", (const unsigned char *)secret_a,
                               64, NULL, &err) == NULL);
    UPM_CHECK(err != NULL && strstr(err, "none") != NULL);
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "HS1", (const unsigned char *)secret_a,
                               64, NULL, &err) == NULL);
    UPM_CHECK(err != NULL && strstr(err, "HS1") != NULL);
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "hs256",
                               (const unsigned char *)secret_a, 64, NULL,
                               &err) == NULL);
    UPM_CHECK(err != NULL);
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, NULL, (const unsigned char *)secret_a,
                               64, NULL, &err) == NULL);
    UPM_CHECK(err != NULL);
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "HS256", (const unsigned char *)"", 0,
                               NULL, &err) == NULL);
    UPM_CHECK(err != NULL);
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "RS256", NULL, 0, NULL, &err) == NULL);
    UPM_CHECK(err != NULL);
    /* A NULL err pointer is allowed. */
    UPM_CHECK(upm_jwt_key_make(pool, "HS256",
                               (const unsigned char *)secret_a, 3, NULL,
                               NULL) == NULL);

    /* Private keys are refused with a hint at the public key. */
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "RS256", rsa_priv.data, rsa_priv.len,
                               NULL, &err) == NULL);
    UPM_CHECK(err != NULL && strstr(err, "public key") != NULL);
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "ES256", ec256_priv.data,
                               ec256_priv.len, NULL, &err) == NULL);
    UPM_CHECK(err != NULL && strstr(err, "public key") != NULL);
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "RS256", (const unsigned char *)
                               pkcs1_private, strlen(pkcs1_private), NULL,
                               &err) == NULL);
    UPM_CHECK(err != NULL && strstr(err, "public key") != NULL);

    /* Not PEM at all, or a certificate libjwt cannot use. */
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "RS256",
                               (const unsigned char *)secret_a, 64, NULL,
                               &err) == NULL);
    UPM_CHECK(err != NULL);
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "RS256", (const unsigned char *)
                               certificate, strlen(certificate), NULL,
                               &err) == NULL);
    UPM_CHECK(err != NULL && strstr(err, "x509") != NULL);

    /* A PEM is never an HMAC secret: it is public. */
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "HS256", rsa_pub.data, rsa_pub.len,
                               NULL, &err) == NULL);
    UPM_CHECK(err != NULL);

    /* Key type and curve must fit the algorithm. */
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "RS256", ec256_pub.data, ec256_pub.len,
                               NULL, &err) == NULL);
    UPM_CHECK(err != NULL && strstr(err, "RSA") != NULL);
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "ES256", rsa_pub.data, rsa_pub.len,
                               NULL, &err) == NULL);
    UPM_CHECK(err != NULL && strstr(err, "EC") != NULL);
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "ES256", ec384_pub.data, ec384_pub.len,
                               NULL, &err) == NULL);
    UPM_CHECK(err != NULL && strstr(err, "P-256") != NULL);
    err = NULL;
    UPM_CHECK(upm_jwt_key_make(pool, "ES512", ec256_pub.data, ec256_pub.len,
                               NULL, &err) == NULL);
    UPM_CHECK(err != NULL && strstr(err, "P-521") != NULL);

    /* Public keys: copied, NUL-terminated, key_len excludes the NUL, and
     * an empty kid means no kid. */
    k = upm_jwt_key_make(pool, "RS256", rsa_pub.data, rsa_pub.len, "",
                         &err);
    UPM_CHECK(k != NULL);
    if (k) {
        UPM_CHECK_INT(k->alg, JWT_ALG_RS256);
        UPM_CHECK_INT(k->key_len, rsa_pub.len);
        UPM_CHECK_INT(k->key[k->key_len], 0);
        UPM_CHECK(k->key != rsa_pub.data);
        UPM_CHECK(k->kid == NULL);
    }
    UPM_CHECK(upm_jwt_key_make(pool, "ES256", ec256_pub.data, ec256_pub.len,
                               NULL, &err) != NULL);
    UPM_CHECK(upm_jwt_key_make(pool, "ES384", ec384_pub.data, ec384_pub.len,
                               NULL, &err) != NULL);
    UPM_CHECK(upm_jwt_key_make(pool, "ES512", ec521_pub.data, ec521_pub.len,
                               NULL, &err) != NULL);
}

static void check_alg(const char *name, jwt_alg_t alg, const char *priv,
                      const char *pub)
{
    const void *sk, *vk;
    apr_size_t sk_len, vk_len;
    upm_jwt_result res;
    upm_jwt_status st;
    const char *tok;
    apr_array_header_t *keys;

    if (priv) {
        blob s = load_key(priv), v = load_key(pub);

        sk = s.data;
        sk_len = s.len;
        vk = v.data;
        vk_len = v.len;
    }
    else {
        sk = vk = secret_a;
        sk_len = vk_len = strlen(secret_a);
    }
    tok = make_token(alg, sk, sk_len, NULL, GRANTS_OK);
    keys = keyset(key_ok(name, vk, vk_len, NULL), NULL);

    st = upm_jwt_verify(pool, tok, keys, &default_policy, NOW, &res);
    UPM_CHECK_INT(st, UPM_JWT_OK);
    if (st != UPM_JWT_OK) {
        fprintf(stderr, "  %s: %s\n", name, upm_jwt_status_label(st));
    }
    UPM_CHECK_STR(res.user, "alice");
    UPM_CHECK_INT(res.exp, 1700000600);
    UPM_CHECK(res.kid == NULL);
    UPM_CHECK(res.claims != NULL);
    if (res.claims) {
        UPM_CHECK_STR(json_string_value(json_object_get(res.claims, "sub")),
                      "alice");
        json_decref(res.claims);
    }

    /* One flipped payload character breaks every algorithm. */
    {
        char *bad = apr_pstrdup(pool, tok);
        char *pl = strchr(bad, '.') + 1;

        pl[1] = pl[1] == 'A' ? 'B' : 'A';
        UPM_CHECK_INT(verify(bad, keys, NULL, NULL), UPM_JWT_BAD_SIGNATURE);
    }
    /* The signature of another message is no good either. */
    {
        const char *other = make_token(alg, sk, sk_len, NULL,
                                       "{\"sub\":\"mallory\","
                                       "\"exp\":1700000600}");
        const char *sig = strrchr(other, '.');
        const char *forged = apr_pstrcat(pool,
                                         apr_pstrndup(pool, tok,
                                                      strrchr(tok, '.')
                                                      - tok),
                                         sig, NULL);

        UPM_CHECK_INT(verify(forged, keys, NULL, NULL),
                      UPM_JWT_BAD_SIGNATURE);
    }
}

static void test_algorithms(void)
{
    check_alg("HS256", JWT_ALG_HS256, NULL, NULL);
    check_alg("HS384", JWT_ALG_HS384, NULL, NULL);
    check_alg("HS512", JWT_ALG_HS512, NULL, NULL);
    check_alg("RS256", JWT_ALG_RS256, "rsa_private.pem", "rsa_public.pem");
    check_alg("RS384", JWT_ALG_RS384, "rsa_private.pem", "rsa_public.pem");
    check_alg("RS512", JWT_ALG_RS512, "rsa_private.pem", "rsa_public.pem");
    check_alg("ES256", JWT_ALG_ES256, "ec256_private.pem",
              "ec256_public.pem");
    check_alg("ES384", JWT_ALG_ES384, "ec384_private.pem",
              "ec384_public.pem");
    check_alg("ES512", JWT_ALG_ES512, "ec521_private.pem",
              "ec521_public.pem");
}

static void test_rsa_pkcs1_public_key(void)
{
    blob priv = load_key("rsa_private.pem");
    blob pkcs1 = load_key("rsa_public_pkcs1.pem");
    upm_jwt_result res;
    const char *tok = make_token(JWT_ALG_RS256, priv.data, priv.len, NULL,
                                 GRANTS_OK);
    apr_array_header_t *keys = keyset(key_ok("RS256", pkcs1.data, pkcs1.len,
                                             NULL), NULL);

    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "alice");
    UPM_CHECK_INT(res.exp, 1700000600);
}

static void test_time_claims(void)
{
    apr_array_header_t *keys = keyset(key_ok("HS256", secret_a,
                                             strlen(secret_a), NULL), NULL);
    upm_jwt_policy lee = { NULL, NULL, 30, "sub" };
    upm_jwt_result res;
    const char *tok;

    tok = hs_token(secret_a, NULL, "{\"sub\":\"alice\",\"exp\":1699999990}");
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_EXPIRED);
    UPM_CHECK(res.user == NULL);
    UPM_CHECK_INT(res.exp, 1699999990);
    UPM_CHECK_INT(verify(tok, keys, &lee, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "alice");
    UPM_CHECK_INT(res.exp, 1699999990);

    /* exp == now is already expired; exp == now - leeway too. */
    tok = hs_token(secret_a, NULL, "{\"sub\":\"alice\",\"exp\":1700000000}");
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_EXPIRED);
    tok = hs_token(secret_a, NULL, "{\"sub\":\"alice\",\"exp\":1700000001}");
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_OK);
    UPM_CHECK_INT(res.exp, 1700000001);
    tok = hs_token(secret_a, NULL, "{\"sub\":\"alice\",\"exp\":1699999970}");
    UPM_CHECK_INT(verify(tok, keys, &lee, NULL), UPM_JWT_EXPIRED);
    tok = hs_token(secret_a, NULL, "{\"sub\":\"alice\",\"exp\":1699999971}");
    UPM_CHECK_INT(verify(tok, keys, &lee, &res), UPM_JWT_OK);
    UPM_CHECK_INT(res.exp, 1699999971);

    /* No exp at all is refused by default (a token that never ends);
     * allowed only when the policy says so, and reported as 0. */
    tok = hs_token(secret_a, NULL, "{\"sub\":\"alice\"}");
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_NO_EXP);
    UPM_CHECK(res.user == NULL);
    UPM_CHECK_INT(verify(tok, keys, &lee, &res), UPM_JWT_NO_EXP);
    lee.allow_no_exp = 1;
    UPM_CHECK_INT(verify(tok, keys, &lee, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "alice");
    UPM_CHECK_INT(res.exp, 0);
    lee.allow_no_exp = 0;

    /* A fractional NumericDate is legal. */
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600.5}");
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_OK);
    UPM_CHECK_INT(res.exp, 1700000600);
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1699999999.5}");
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_EXPIRED);

    /* nbf */
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,\"nbf\":1700000020}");
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_NOT_YET_VALID);
    UPM_CHECK(res.user == NULL);
    UPM_CHECK_INT(verify(tok, keys, &lee, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "alice");
    UPM_CHECK_INT(res.exp, 1700000600);
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,\"nbf\":1700000030}");
    UPM_CHECK_INT(verify(tok, keys, &lee, &res), UPM_JWT_OK);
    UPM_CHECK_INT(res.exp, 1700000600);
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,\"nbf\":1700000031}");
    UPM_CHECK_INT(verify(tok, keys, &lee, NULL), UPM_JWT_NOT_YET_VALID);
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,\"nbf\":1700000000}");
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_OK);
    UPM_CHECK_INT(res.exp, 1700000600);

    /* Wrong types. */
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":\"1700000600\"}");
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_BAD_CLAIM);
    UPM_CHECK(res.user == NULL);
    tok = hs_token(secret_a, NULL, "{\"sub\":\"alice\",\"exp\":true}");
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_BAD_CLAIM);
    tok = hs_token(secret_a, NULL, "{\"sub\":\"alice\",\"exp\":null}");
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_BAD_CLAIM);
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,\"nbf\":\"x\"}");
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_BAD_CLAIM);
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,\"iat\":[1]}");
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_BAD_CLAIM);
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,"
                   "\"iat\":1699999000}");
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_OK);
    UPM_CHECK_INT(res.exp, 1700000600);
}

static void test_bad_signature(void)
{
    apr_array_header_t *keys = keyset(key_ok("HS256", secret_a,
                                             strlen(secret_a), NULL), NULL);
    const char *tok = hs_token(secret_b, NULL, GRANTS_OK);

    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_BAD_SIGNATURE);

    /* Signature part stripped. */
    tok = hs_token(secret_a, NULL, GRANTS_OK);
    tok = apr_pstrndup(pool, tok, strrchr(tok, '.') - tok + 1);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_BAD_SIGNATURE);
}

static void test_alg_none(void)
{
    blob rsa_pub = load_key("rsa_public.pem");
    apr_array_header_t *keys = keyset(key_ok("HS256", secret_a,
                                             strlen(secret_a), NULL),
                                      key_ok("RS256", rsa_pub.data,
                                             rsa_pub.len, NULL));
    const char *payload = b64url_str(GRANTS_OK);
    const char *tok = apr_pstrcat(pool, "eyJhbGciOiJub25lIn0.", payload, ".",
                                  NULL);
    jwt_t *jwt = NULL;
    upm_jwt_result res;

    /* Bare libjwt takes it when no key is passed... */
    UPM_CHECK_INT(jwt_decode(&jwt, tok, NULL, 0), 0);
    jwt_free(jwt);

    /* ...upm_jwt never does. */
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_BAD_ALG);
    UPM_CHECK(res.user == NULL && res.claims == NULL);
    tok = apr_pstrcat(pool, "eyJhbGciOiJub25lIn0.", payload, ".c2lnbmF0dXJl",
                      NULL);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_BAD_ALG);
    tok = apr_pstrcat(pool, "eyJhbGciOiJub25lIn0.", payload, ".",
                      strrchr(hs_token(secret_a, NULL, GRANTS_OK), '.') + 1,
                      NULL);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_BAD_ALG);

    /* Spelling variants and a kid do not help. */
    tok = apr_pstrcat(pool, b64url_str("{\"alg\":\"None\",\"typ\":\"JWT\"}"),
                      ".", payload, ".", NULL);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_BAD_ALG);
    tok = apr_pstrcat(pool, b64url_str("{\"alg\":\"none\",\"kid\":\"k1\"}"),
                      ".", payload, ".", NULL);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_BAD_ALG);

    /* The libjwt-made unsigned token too. */
    if (jwt_new(&jwt) == 0) {
        char *s;

        jwt_add_grants_json(jwt, GRANTS_OK);
        s = jwt_encode_str(jwt);
        jwt_free(jwt);
        UPM_CHECK(s != NULL);
        if (s) {
            UPM_CHECK_INT(verify(s, keys, NULL, NULL), UPM_JWT_BAD_ALG);
            free(s);
        }
    }

    /* No alg, or an alg that is not a string. */
    tok = apr_pstrcat(pool, b64url_str("{\"typ\":\"JWT\"}"), ".", payload,
                      ".c2ln", NULL);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_BAD_ALG);
    tok = apr_pstrcat(pool, b64url_str("{\"alg\":256}"), ".", payload,
                      ".c2ln", NULL);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_BAD_ALG);
    tok = apr_pstrcat(pool, b64url_str("{\"alg\":\"PS256\"}"), ".", payload,
                      ".c2ln", NULL);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_BAD_ALG);
}

static void test_hs_with_rsa_public_key(void)
{
    blob rsa_pub = load_key("rsa_public.pem");
    const char *tok = make_token(JWT_ALG_HS256, rsa_pub.data, rsa_pub.len,
                                 NULL, GRANTS_OK);
    const char *tok_kid = make_token(JWT_ALG_HS256, rsa_pub.data,
                                     rsa_pub.len, "r1", GRANTS_OK);
    jwt_t *jwt = NULL;

    /* Bare libjwt verifies the forgery against the public key... */
    UPM_CHECK_INT(jwt_decode(&jwt, tok, rsa_pub.data, (int)rsa_pub.len), 0);
    jwt_free(jwt);

    /* ...upm_jwt refuses it because the key is RS256. */
    UPM_CHECK_INT(verify(tok, keyset(key_ok("RS256", rsa_pub.data,
                                            rsa_pub.len, NULL), NULL),
                         NULL, NULL), UPM_JWT_BAD_ALG);
    UPM_CHECK_INT(verify(tok_kid, keyset(key_ok("RS256", rsa_pub.data,
                                                rsa_pub.len, "r1"), NULL),
                         NULL, NULL), UPM_JWT_BAD_ALG);
}

static void test_issuer_audience(void)
{
    apr_array_header_t *keys = keyset(key_ok("HS256", secret_a,
                                             strlen(secret_a), NULL), NULL);
    upm_jwt_policy pol = { "https://idp.example", "upload-progress", 0,
                           "sub" };
    upm_jwt_result res;
    const char *tok;

    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,"
                   "\"iss\":\"https://idp.example\","
                   "\"aud\":\"upload-progress\"}");
    UPM_CHECK_INT(verify(tok, keys, &pol, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "alice");
    UPM_CHECK_INT(res.exp, 1700000600);

    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,"
                   "\"iss\":\"https://evil.example\","
                   "\"aud\":\"upload-progress\"}");
    UPM_CHECK_INT(verify(tok, keys, &pol, &res), UPM_JWT_BAD_ISSUER);
    UPM_CHECK(res.user == NULL);
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,"
                   "\"iss\":\"https://idp.example/\","
                   "\"aud\":\"upload-progress\"}");
    UPM_CHECK_INT(verify(tok, keys, &pol, NULL), UPM_JWT_BAD_ISSUER);
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,"
                   "\"aud\":\"upload-progress\"}");
    UPM_CHECK_INT(verify(tok, keys, &pol, NULL), UPM_JWT_BAD_ISSUER);

    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,"
                   "\"iss\":\"https://idp.example\","
                   "\"aud\":\"other-service\"}");
    UPM_CHECK_INT(verify(tok, keys, &pol, &res), UPM_JWT_BAD_AUDIENCE);
    UPM_CHECK(res.user == NULL);
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,"
                   "\"iss\":\"https://idp.example\"}");
    UPM_CHECK_INT(verify(tok, keys, &pol, NULL), UPM_JWT_BAD_AUDIENCE);
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,"
                   "\"iss\":\"https://idp.example\","
                   "\"aud\":[\"other-service\",\"upload-progress\"]}");
    UPM_CHECK_INT(verify(tok, keys, &pol, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "alice");
    UPM_CHECK_INT(res.exp, 1700000600);
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,"
                   "\"iss\":\"https://idp.example\","
                   "\"aud\":[\"other-service\",7]}");
    UPM_CHECK_INT(verify(tok, keys, &pol, NULL), UPM_JWT_BAD_AUDIENCE);
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,"
                   "\"iss\":\"https://idp.example\","
                   "\"aud\":[\"upload-progress-x\"]}");
    UPM_CHECK_INT(verify(tok, keys, &pol, NULL), UPM_JWT_BAD_AUDIENCE);

    /* Not configured: not checked. */
    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"alice\",\"exp\":1700000600,"
                   "\"iss\":\"https://evil.example\",\"aud\":\"x\"}");
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "alice");
    UPM_CHECK_INT(res.exp, 1700000600);
}

static void test_user_claim(void)
{
    apr_array_header_t *keys = keyset(key_ok("HS256", secret_a,
                                             strlen(secret_a), NULL), NULL);
    upm_jwt_policy custom = { NULL, NULL, 0, "preferred_username" };
    upm_jwt_result res;
    const char *tok;

    tok = hs_token(secret_a, NULL, "{\"exp\":1700000600}");
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_NO_USER);
    UPM_CHECK(res.user == NULL);
    tok = hs_token(secret_a, NULL, "{\"sub\":\"\",\"exp\":1700000600}");
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_NO_USER);
    tok = hs_token(secret_a, NULL, "{\"sub\":true,\"exp\":1700000600}");
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_NO_USER);
    tok = hs_token(secret_a, NULL, "{\"sub\":4.2,\"exp\":1700000600}");
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_NO_USER);
    tok = hs_token(secret_a, NULL, "{\"sub\":[\"a\"],\"exp\":1700000600}");
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_NO_USER);
    tok = hs_token(secret_a, NULL, "{\"sub\":null,\"exp\":1700000600}");
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_NO_USER);

    tok = hs_token(secret_a, NULL, "{\"sub\":42,\"exp\":1700000600}");
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "42");
    UPM_CHECK_INT(res.exp, 1700000600);

    tok = hs_token(secret_a, NULL,
                   "{\"sub\":\"f81d4fae\",\"preferred_username\":\"bob\","
                   "\"exp\":1700000600}");
    UPM_CHECK_INT(verify(tok, keys, &custom, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "bob");
    UPM_CHECK_INT(res.exp, 1700000600);
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "f81d4fae");
    UPM_CHECK_INT(res.exp, 1700000600);
    tok = hs_token(secret_a, NULL, "{\"sub\":\"carol\",\"exp\":1700000600}");
    UPM_CHECK_INT(verify(tok, keys, &custom, NULL), UPM_JWT_NO_USER);
}

static void test_garbage(void)
{
    apr_array_header_t *keys = keyset(key_ok("HS256", secret_a,
                                             strlen(secret_a), NULL), NULL);
    const char *good = hs_token(secret_a, NULL, GRANTS_OK);
    const char *payload = b64url_str(GRANTS_OK);
    const char *tok;
    upm_jwt_result res;

    UPM_CHECK_INT(verify(NULL, keys, NULL, &res), UPM_JWT_MISSING);
    UPM_CHECK(res.user == NULL && res.claims == NULL && res.exp == 0);
    UPM_CHECK_INT(verify("", keys, NULL, NULL), UPM_JWT_MISSING);
    UPM_CHECK_INT(verify("abc", keys, NULL, NULL), UPM_JWT_MALFORMED);
    UPM_CHECK_INT(verify("a.b", keys, NULL, NULL), UPM_JWT_MALFORMED);
    UPM_CHECK_INT(verify("a.b.c.d", keys, NULL, NULL), UPM_JWT_MALFORMED);
    UPM_CHECK_INT(verify("..", keys, NULL, NULL), UPM_JWT_MALFORMED);
    UPM_CHECK_INT(verify("...", keys, NULL, NULL), UPM_JWT_MALFORMED);
    UPM_CHECK_INT(verify(apr_pstrcat(pool, good, ".", NULL), keys, NULL,
                         NULL), UPM_JWT_MALFORMED);
    UPM_CHECK_INT(verify(apr_pstrcat(pool, "eyJhbGciOiJIUzI1NiJ9..",
                                     strrchr(good, '.') + 1, NULL),
                         keys, NULL, NULL), UPM_JWT_MALFORMED);
    UPM_CHECK_INT(verify(apr_pstrcat(pool, ".", payload, ".c2ln", NULL),
                         keys, NULL, NULL), UPM_JWT_MALFORMED);
    UPM_CHECK_INT(verify("ey!!.eyJ.abc", keys, NULL, NULL),
                  UPM_JWT_MALFORMED);
    UPM_CHECK_INT(verify("eyJhbGciOiJIUzI1NiJ9.eyJ zdWIiOiJ4In0.c2ln", keys,
                         NULL, NULL), UPM_JWT_MALFORMED);
    UPM_CHECK_INT(verify("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2l+n/=",
                         keys, NULL, NULL), UPM_JWT_MALFORMED);
    UPM_CHECK_INT(verify(apr_pstrcat(pool, good, "\n", NULL), keys, NULL,
                         NULL), UPM_JWT_MALFORMED);
    UPM_CHECK_INT(verify(apr_pstrcat(pool, "Bearer ", good, NULL), keys,
                         NULL, NULL), UPM_JWT_MALFORMED);
    /* Padding is not part of base64url in a JWS. */
    UPM_CHECK_INT(verify(apr_pstrcat(pool,
                                     b64url_str("{\"alg\":\"HS256\"}"),
                                     "==.", payload, ".c2ln", NULL),
                         keys, NULL, NULL), UPM_JWT_MALFORMED);
    /* A part 1 mod 4 long cannot be base64. */
    UPM_CHECK_INT(verify(apr_pstrcat(pool, "eyJhb", ".", payload, ".c2ln",
                                     NULL), keys, NULL, NULL),
                  UPM_JWT_MALFORMED);

    /* Headers that are not a JSON object. */
    tok = apr_pstrcat(pool, b64url_str("not json"), ".", payload, ".c2ln",
                      NULL);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_MALFORMED);
    tok = apr_pstrcat(pool, b64url_str("[\"HS256\"]"), ".", payload,
                      ".c2ln", NULL);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_MALFORMED);
    tok = apr_pstrcat(pool, b64url_str("{\"alg\":\"HS256\""), ".", payload,
                      ".c2ln", NULL);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_MALFORMED);
    tok = apr_pstrcat(pool, b64url_str("{\"alg\":\"HS256\",\"alg\":\"none\"}"),
                      ".", payload, ".c2ln", NULL);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_MALFORMED);
    tok = apr_pstrcat(pool, b64url_str("{\"alg\":\"HS256\",\"kid\":5}"),
                      ".", payload, ".c2ln", NULL);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_MALFORMED);
    /* libjwt would refuse this typ at decoding time anyway. */
    tok = apr_pstrcat(pool,
                      b64url_str("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}"),
                      ".", payload, ".c2ln", NULL);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_MALFORMED);
}

static void test_bearer(void)
{
    UPM_CHECK_STR(upm_jwt_bearer("Bearer abc.def.ghi"), "abc.def.ghi");
    UPM_CHECK_STR(upm_jwt_bearer("bearer \t  abc"), "abc");
    UPM_CHECK_STR(upm_jwt_bearer("BEARER\tabc"), "abc");
    UPM_CHECK_STR(upm_jwt_bearer("Bearer "), "");
    UPM_CHECK_STR(upm_jwt_bearer("Bearer abc "), "abc ");
    UPM_CHECK(upm_jwt_bearer(NULL) == NULL);
    UPM_CHECK(upm_jwt_bearer("") == NULL);
    UPM_CHECK(upm_jwt_bearer("Bearer") == NULL);
    UPM_CHECK(upm_jwt_bearer("Bearerabc") == NULL);
    UPM_CHECK(upm_jwt_bearer("Basic YTpi") == NULL);
    UPM_CHECK(upm_jwt_bearer(" Bearer abc") == NULL);
}

static void test_too_large(void)
{
    apr_array_header_t *keys = keyset(key_ok("HS256", secret_a,
                                             strlen(secret_a), NULL), NULL);
    char *big = apr_palloc(pool, 9001);
    const char *tok;

    memset(big, 'a', 9000);
    big[9000] = '\0';
    tok = hs_token(secret_a, NULL,
                   apr_psprintf(pool, "{\"sub\":\"alice\",\"exp\":1700000600,"
                                "\"pad\":\"%s\"}", big));
    UPM_CHECK(strlen(tok) > UPM_JWT_MAX_TOKEN);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_TOO_LARGE);

    big[UPM_JWT_MAX_TOKEN + 1] = '\0';
    UPM_CHECK_INT(verify(big, keys, NULL, NULL), UPM_JWT_TOO_LARGE);
    /* At the limit the token is parsed (and found wanting). */
    big[UPM_JWT_MAX_TOKEN] = '\0';
    UPM_CHECK_INT(verify(big, keys, NULL, NULL), UPM_JWT_MALFORMED);

    /* A valid token of exactly the maximum size is accepted. */
    {
        const char *base = hs_token(secret_a, NULL,
                                    "{\"sub\":\"alice\",\"exp\":1700000600,"
                                    "\"pad\":\"\"}");
        apr_size_t pad = 0;
        upm_jwt_result res;

        /* Every 3 bytes of claim add 4 characters. */
        pad = (UPM_JWT_MAX_TOKEN - strlen(base)) / 4 * 3;
        big[pad] = '\0';
        tok = hs_token(secret_a, NULL,
                       apr_psprintf(pool, "{\"sub\":\"alice\","
                                    "\"exp\":1700000600,\"pad\":\"%s\"}",
                                    big));
        while (strlen(tok) < UPM_JWT_MAX_TOKEN) {
            big[pad] = 'a';
            big[++pad] = '\0';
            tok = hs_token(secret_a, NULL,
                           apr_psprintf(pool, "{\"sub\":\"alice\","
                                        "\"exp\":1700000600,\"pad\":\"%s\"}",
                                        big));
        }
        /* Unpadded base64 never has a length of 1 mod 4, and the limit
         * minus header and signature is 3 mod 4, so it is reachable. */
        UPM_CHECK_INT(strlen(tok), UPM_JWT_MAX_TOKEN);
        UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_OK);
        UPM_CHECK_STR(res.user, "alice");
        UPM_CHECK_INT(res.exp, 1700000600);
    }
}

static void test_kid(void)
{
    upm_jwt_key *old_key = key_ok("HS256", secret_a, strlen(secret_a),
                                  "2023-old");
    upm_jwt_key *new_key = key_ok("HS256", secret_b, strlen(secret_b),
                                  "2024-new");
    apr_array_header_t *keys = keyset(old_key, new_key);
    upm_jwt_result res;
    const char *tok;

    /* Key rotation: tokens by either key are accepted, by their kid. */
    tok = hs_token(secret_a, "2023-old", GRANTS_OK);
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "alice");
    UPM_CHECK_INT(res.exp, 1700000600);
    UPM_CHECK_STR(res.kid, "2023-old");
    tok = hs_token(secret_b, "2024-new", GRANTS_OK);
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "alice");
    UPM_CHECK_INT(res.exp, 1700000600);
    UPM_CHECK_STR(res.kid, "2024-new");

    /* The kid pins the key: no falling back to the other one. */
    tok = hs_token(secret_b, "2023-old", GRANTS_OK);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_BAD_SIGNATURE);
    tok = hs_token(secret_a, "2022-gone", GRANTS_OK);
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_UNKNOWN_KID);
    UPM_CHECK(res.kid == NULL);
    tok = hs_token(secret_a, "", GRANTS_OK);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_UNKNOWN_KID);

    /* Only keys with a kid: a token without one has no key. */
    tok = hs_token(secret_a, NULL, GRANTS_OK);
    UPM_CHECK_INT(verify(tok, keys, NULL, NULL), UPM_JWT_NO_KEY);
    UPM_CHECK_INT(verify(tok, keyset(NULL, NULL), NULL, NULL),
                  UPM_JWT_NO_KEY);
    UPM_CHECK_INT(verify(tok, NULL, NULL, NULL), UPM_JWT_NO_KEY);

    /* A kid naming a key of another algorithm. */
    {
        blob ec_priv = load_key("ec256_private.pem");
        const char *ec_tok = make_token(JWT_ALG_ES256, ec_priv.data,
                                        ec_priv.len, "2024-new", GRANTS_OK);

        UPM_CHECK_INT(verify(ec_tok, keys, NULL, NULL), UPM_JWT_BAD_ALG);
    }

    /* A claim failure still says which key verified the token. */
    tok = hs_token(secret_b, "2024-new",
                   "{\"sub\":\"alice\",\"exp\":1600000000}");
    UPM_CHECK_INT(verify(tok, keys, NULL, &res), UPM_JWT_EXPIRED);
    UPM_CHECK_STR(res.kid, "2024-new");
    UPM_CHECK_INT(res.exp, 1600000000);
}

static void test_candidates(void)
{
    blob rsa_pub = load_key("rsa_public.pem");
    blob rsa_priv = load_key("rsa_private.pem");
    blob ec_pub = load_key("ec256_public.pem");
    blob ec_priv = load_key("ec256_private.pem");
    apr_array_header_t *two_hs = keyset(key_ok("HS256", secret_a,
                                               strlen(secret_a), NULL),
                                        key_ok("HS256", secret_b,
                                               strlen(secret_b), NULL));
    apr_array_header_t *mixed = keyset(key_ok("RS256", rsa_pub.data,
                                              rsa_pub.len, NULL),
                                       key_ok("HS256", secret_a,
                                              strlen(secret_a), NULL));
    upm_jwt_result res;
    const char *tok;

    /* Without a kid every key-less candidate of the right alg is tried. */
    tok = hs_token(secret_b, NULL, GRANTS_OK);
    UPM_CHECK_INT(verify(tok, two_hs, NULL, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "alice");
    UPM_CHECK_INT(res.exp, 1700000600);
    UPM_CHECK(res.kid == NULL);
    tok = hs_token(secret_a, NULL, GRANTS_OK);
    UPM_CHECK_INT(verify(tok, two_hs, NULL, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "alice");
    UPM_CHECK_INT(res.exp, 1700000600);
    tok = hs_token(secret_c, NULL, GRANTS_OK);
    UPM_CHECK_INT(verify(tok, two_hs, NULL, NULL), UPM_JWT_BAD_SIGNATURE);

    /* Keys of other algorithms are never tried. */
    tok = make_token(JWT_ALG_RS256, rsa_priv.data, rsa_priv.len, NULL,
                     GRANTS_OK);
    UPM_CHECK_INT(verify(tok, mixed, NULL, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "alice");
    UPM_CHECK_INT(res.exp, 1700000600);
    tok = hs_token(secret_a, NULL, GRANTS_OK);
    UPM_CHECK_INT(verify(tok, mixed, NULL, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "alice");
    UPM_CHECK_INT(res.exp, 1700000600);
    tok = make_token(JWT_ALG_RS384, rsa_priv.data, rsa_priv.len, NULL,
                     GRANTS_OK);
    UPM_CHECK_INT(verify(tok, mixed, NULL, NULL), UPM_JWT_BAD_ALG);
    tok = make_token(JWT_ALG_ES256, ec_priv.data, ec_priv.len, NULL,
                     GRANTS_OK);
    UPM_CHECK_INT(verify(tok, mixed, NULL, NULL), UPM_JWT_BAD_ALG);
    UPM_CHECK_INT(verify(tok, keyset(key_ok("ES256", ec_pub.data,
                                            ec_pub.len, NULL), NULL),
                         NULL, &res), UPM_JWT_OK);
    UPM_CHECK_STR(res.user, "alice");
    UPM_CHECK_INT(res.exp, 1700000600);

    /* A hand-made key with no key bytes is skipped, never handed to
     * libjwt (which would then skip the signature check). */
    {
        upm_jwt_key empty = { JWT_ALG_HS256, NULL, NULL, 0 };
        upm_jwt_key blank = { JWT_ALG_HS256, NULL,
                              (const unsigned char *)"", 0 };

        tok = hs_token(secret_a, NULL, GRANTS_OK);
        UPM_CHECK_INT(verify(tok, keyset(&empty, &blank), NULL, NULL),
                      UPM_JWT_NO_KEY);
    }
}

static void test_check_claims(void)
{
    upm_jwt_policy pol = { "iss1", "aud1", 10, "uid" };
    const char *user = "sentinel";
    apr_int64_t exp = 99;
    json_t *c;

    UPM_CHECK_INT(upm_jwt_check_claims(pool, NULL, &pol, NOW, &user, &exp),
                  UPM_JWT_BAD_CLAIM);
    UPM_CHECK(user == NULL);
    UPM_CHECK_INT(exp, 0);
    c = json_array();
    UPM_CHECK_INT(upm_jwt_check_claims(pool, c, &pol, NOW, &user, &exp),
                  UPM_JWT_BAD_CLAIM);
    json_decref(c);

    c = json_pack("{s:s, s:s, s:s, s:I}", "iss", "iss1", "aud", "aud1",
                  "uid", "u-1", "exp", (json_int_t)(NOW - 5));
    UPM_CHECK_INT(upm_jwt_check_claims(pool, c, &pol, NOW, &user, &exp),
                  UPM_JWT_OK);
    UPM_CHECK_STR(user, "u-1");
    UPM_CHECK_INT(exp, NOW - 5);
    /* user and exp are optional outputs. */
    UPM_CHECK_INT(upm_jwt_check_claims(pool, c, &pol, NOW, NULL, NULL),
                  UPM_JWT_OK);
    UPM_CHECK_INT(upm_jwt_check_claims(pool, c, &pol, NOW + 4, &user, &exp),
                  UPM_JWT_OK);
    UPM_CHECK_INT(upm_jwt_check_claims(pool, c, &pol, NOW + 5, &user, &exp),
                  UPM_JWT_EXPIRED);
    UPM_CHECK(user == NULL);
    UPM_CHECK_INT(exp, NOW - 5);
    json_decref(c);

    c = json_pack("{s:s, s:s, s:I, s:f}", "iss", "iss1", "aud", "aud1",
                  "uid", (json_int_t)-7, "nbf", (double)(NOW + 10));
    UPM_CHECK_INT(upm_jwt_check_claims(pool, c, &pol, NOW, &user, &exp),
                  UPM_JWT_NO_EXP);
    UPM_CHECK(user == NULL);
    pol.allow_no_exp = 1;
    UPM_CHECK_INT(upm_jwt_check_claims(pool, c, &pol, NOW, &user, &exp),
                  UPM_JWT_OK);
    UPM_CHECK_STR(user, "-7");
    UPM_CHECK_INT(exp, 0);
    UPM_CHECK_INT(upm_jwt_check_claims(pool, c, &pol, NOW - 1, &user, &exp),
                  UPM_JWT_NOT_YET_VALID);
    json_decref(c);

    pol.allow_no_exp = 0;

    /* A negative leeway counts as none. */
    pol.leeway = -100;
    c = json_pack("{s:s, s:s, s:s, s:I}", "iss", "iss1", "aud", "aud1",
                  "uid", "u", "exp", (json_int_t)(NOW + 1));
    UPM_CHECK_INT(upm_jwt_check_claims(pool, c, &pol, NOW, &user, &exp),
                  UPM_JWT_OK);
    json_decref(c);

    /* Without a policy only times and "sub" are looked at. */
    c = json_pack("{s:s, s:I}", "sub", "s", "exp", (json_int_t)(NOW + 60));
    UPM_CHECK_INT(upm_jwt_check_claims(pool, c, NULL, NOW, &user, &exp),
                  UPM_JWT_OK);
    UPM_CHECK_STR(user, "s");
    json_decref(c);

    /* A string with an embedded NUL is no user name. */
    c = json_object();
    json_object_set_new(c, "sub", json_stringn("ad\0min", 6));
    json_object_set_new(c, "exp", json_integer(NOW + 60));
    UPM_CHECK_INT(upm_jwt_check_claims(pool, c, NULL, NOW, &user, &exp),
                  UPM_JWT_NO_USER);
    json_decref(c);
}

/* UploadProgressJWTRequireExp / UploadProgressJWTMaxAge. */
static json_t *times(json_int_t iat, json_int_t exp)
{
    json_t *c = json_pack("{s:s}", "sub", "u");

    if (iat) {
        json_object_set_new(c, "iat", json_integer(iat));
    }
    if (exp) {
        json_object_set_new(c, "exp", json_integer(exp));
    }
    return c;
}

static upm_jwt_status lifetime(const upm_jwt_policy *pol, json_int_t iat,
                               json_int_t exp, apr_int64_t *end)
{
    json_t *c = times(iat, exp);
    upm_jwt_status st = upm_jwt_check_claims(pool, c, pol, NOW, NULL, end);

    json_decref(c);
    return st;
}

static void test_exp_policy(void)
{
    upm_jwt_policy pol = { NULL, NULL, 10, "sub" };
    apr_int64_t end = -1;

    /* Required by default, whatever else the token says. */
    UPM_CHECK_INT(lifetime(&pol, NOW, 0, &end), UPM_JWT_NO_EXP);
    UPM_CHECK_INT(lifetime(&pol, 0, 0, &end), UPM_JWT_NO_EXP);
    UPM_CHECK_INT(lifetime(&pol, NOW, NOW + 60, &end), UPM_JWT_OK);
    UPM_CHECK_INT(end, NOW + 60);
    /* A year-long token is fine while no max age is set. */
    UPM_CHECK_INT(lifetime(&pol, NOW, NOW + 365 * 86400, &end), UPM_JWT_OK);

    pol.allow_no_exp = 1;
    UPM_CHECK_INT(lifetime(&pol, NOW, 0, &end), UPM_JWT_OK);
    UPM_CHECK_INT(end, 0);
    UPM_CHECK_INT(lifetime(&pol, 0, 0, &end), UPM_JWT_OK);

    /* max_age 3600 with iat and exp: the lifetime exp - iat counts. */
    pol.allow_no_exp = 0;
    pol.max_age = 3600;
    UPM_CHECK_INT(lifetime(&pol, NOW, NOW + 3600, &end), UPM_JWT_OK);
    UPM_CHECK_INT(end, NOW + 3600);
    UPM_CHECK_INT(lifetime(&pol, NOW, NOW + 3601, &end), UPM_JWT_TOO_LONG);
    UPM_CHECK_INT(lifetime(&pol, NOW - 86400, NOW + 86400, &end), UPM_JWT_TOO_LONG);
    /* Short-lived and old: expired by its own exp first. */
    UPM_CHECK_INT(lifetime(&pol, NOW - 7200, NOW - 7100, &end), UPM_JWT_EXPIRED);

    /* iat without exp (allowed): ends at iat + max_age, with leeway. */
    pol.allow_no_exp = 1;
    UPM_CHECK_INT(lifetime(&pol, NOW - 100, 0, &end), UPM_JWT_OK);
    UPM_CHECK_INT(end, NOW - 100 + 3600);
    UPM_CHECK_INT(lifetime(&pol, NOW - 3609, 0, &end), UPM_JWT_OK);
    UPM_CHECK_INT(lifetime(&pol, NOW - 3610, 0, &end), UPM_JWT_EXPIRED);
    /* Neither iat nor exp: nothing bounds it, refused even though exp
     * is not required. */
    UPM_CHECK_INT(lifetime(&pol, 0, 0, &end), UPM_JWT_TOO_LONG);
    /* A huge iat must not overflow into a past end. */
    UPM_CHECK_INT(lifetime(&pol, APR_INT64_MAX, 0, &end), UPM_JWT_OK);
    UPM_CHECK(end == APR_INT64_MAX);

    /* exp without iat: the token may end at most max_age (+ leeway)
     * from now. */
    pol.allow_no_exp = 0;
    UPM_CHECK_INT(lifetime(&pol, 0, NOW + 3610, &end), UPM_JWT_OK);
    UPM_CHECK_INT(end, NOW + 3610);
    UPM_CHECK_INT(lifetime(&pol, 0, NOW + 3611, &end), UPM_JWT_TOO_LONG);

    /* The same through a signed token. */
    {
        apr_array_header_t *keys = keyset(key_ok("HS256", secret_a,
                                                 strlen(secret_a), NULL), NULL);
        upm_jwt_result res;
        const char *tok = hs_token(secret_a, NULL,
                                   "{\"sub\":\"alice\",\"iat\":1700000000,"
                                   "\"exp\":1700086400}");

        UPM_CHECK_INT(verify(tok, keys, &pol, &res), UPM_JWT_TOO_LONG);
        UPM_CHECK(res.user == NULL);
        pol.max_age = 0;
        UPM_CHECK_INT(verify(tok, keys, &pol, &res), UPM_JWT_OK);
        UPM_CHECK_STR(res.user, "alice");
        UPM_CHECK_INT(res.exp, 1700086400);
    }
}

static void test_scrub_query(void)
{
    static const char *const names[] = { "token", "access_token" };
    const char *l;

    l = "GET /ws?token=abc HTTP/1.1";
    UPM_CHECK_STR(upm_jwt_scrub_query(pool, l, names, 2), "GET /ws HTTP/1.1");
    l = "GET /ws?a=1&token=abc&b=2 HTTP/1.1";
    UPM_CHECK_STR(upm_jwt_scrub_query(pool, l, names, 2), "GET /ws?a=1&b=2 HTTP/1.1");
    l = "GET /ws?token=x&token=y&access_token=z HTTP/1.0";
    UPM_CHECK_STR(upm_jwt_scrub_query(pool, l, names, 2), "GET /ws HTTP/1.0");
    l = "GET /ws?a=1&token";
    UPM_CHECK_STR(upm_jwt_scrub_query(pool, l, names, 2), "GET /ws?a=1");
    l = "/sse?&&token=1&&x=y&";
    UPM_CHECK_STR(upm_jwt_scrub_query(pool, l, names, 2), "/sse?x=y");
    /* Untouched: returned as is. */
    l = "GET /ws?tokens=1&mytoken=2&Token=3&t%6fken=4 HTTP/1.1";
    UPM_CHECK(upm_jwt_scrub_query(pool, l, names, 2) == l);
    l = "GET /ws HTTP/1.1";
    UPM_CHECK(upm_jwt_scrub_query(pool, l, names, 2) == l);
    UPM_CHECK(upm_jwt_scrub_query(pool, NULL, names, 2) == NULL);
    l = "GET /ws?token=abc HTTP/1.1";
    UPM_CHECK(upm_jwt_scrub_query(pool, l, names, 0) == l);
    /* Only the query: a '?' after the target is not looked at. */
    l = "GET /a?b=1 HTTP/1.1?token=2";
    UPM_CHECK(upm_jwt_scrub_query(pool, l, names, 2) == l);
    /* An absolute-form target. */
    l = "GET http://h.example/ws?token=abc&z HTTP/1.1";
    UPM_CHECK_STR(upm_jwt_scrub_query(pool, l, names, 2),
                  "GET http://h.example/ws?z HTTP/1.1");
}

static void test_claim_has(void)
{
    json_t *c = json_loads("{\"scope\":\"a progress:publish b\","
                           "\"roles\":[\"viewer\",\"uploader\",3],"
                           "\"upl\":{\"projects\":[\"p1\",\"p2\",7],"
                           "\"owner\":\"o1\",\"deep\":{\"x\":\"y\"}},"
                           "\"tenant\":42,"
                           "\"https://example.com/roles\":[\"admin\"],"
                           "\"flag\":true,\"ratio\":1.5,"
                           "\"spaced\":\"  lead  trail  \"}", 0, NULL);

    UPM_CHECK(c != NULL);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "scope", "progress:publish"), 1);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "scope", "a"), 1);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "scope", "b"), 1);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "scope", "a progress:publish b"), 1);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "scope", "progress"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "scope", "publish"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "scope", "a progress"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "scope", ""), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "spaced", "lead"), 1);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "spaced", "trail"), 1);

    UPM_CHECK_INT(upm_jwt_claim_has(c, "roles", "uploader"), 1);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "roles", "3"), 1);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "roles", "admin"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "roles", "upload"), 0);

    UPM_CHECK_INT(upm_jwt_claim_has(c, "upl.projects", "p2"), 1);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "upl.projects", "7"), 1);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "upl.projects", "p3"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "upl.owner", "o1"), 1);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "upl.deep.x", "y"), 1);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "upl.missing", "p1"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "upl.owner.x", "o1"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "upl", "p1"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "upl.", "p1"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, ".upl", "p1"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "scope.x", "a"), 0);

    UPM_CHECK_INT(upm_jwt_claim_has(c, "tenant", "42"), 1);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "tenant", "4"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "tenant", "042"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "https://example.com/roles", "admin"),
                  1);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "flag", "true"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "ratio", "1.5"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "absent", "x"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "", "x"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, NULL, "x"), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(c, "scope", NULL), 0);
    UPM_CHECK_INT(upm_jwt_claim_has(NULL, "scope", "a"), 0);
    json_decref(c);
}

static void test_id_claim(void)
{
    json_t *c = json_loads("{\"sessionId\":\"s1\",\"projects\":[\"p1\",\"p2\"],"
                           "\"mixed\":[3,\"m1\",null],\"num\":42,\"obj\":{\"s1\":true},"
                           "\"spaced\":\"a b\",\"ctx\":{\"jobId\":\"j1\"},\"none\":null,"
                           "\"bad\":[1,2]}", 0, NULL);
    UPM_CHECK(c != NULL);
    UPM_CHECK_INT(upm_jwt_id_claim_grants(c, "sessionId", "s1"), 1);
    UPM_CHECK_INT(upm_jwt_id_claim_grants(c, "sessionId", "s2"), 0);
    UPM_CHECK_INT(upm_jwt_id_claim_grants(c, "sessionId", "s"), 0);
    UPM_CHECK_INT(upm_jwt_id_claim_grants(c, "projects", "p2"), 1);
    UPM_CHECK_INT(upm_jwt_id_claim_grants(c, "projects", "p3"), 0);
    /* A string is one id, not a list of words (unlike the scope claim). */
    UPM_CHECK_INT(upm_jwt_id_claim_grants(c, "spaced", "a"), 0);
    /* Wrong types grant nothing and say so. */
    UPM_CHECK_INT(upm_jwt_id_claim_grants(c, "num", "42"), -1);
    UPM_CHECK_INT(upm_jwt_id_claim_grants(c, "obj", "s1"), -1);
    UPM_CHECK_INT(upm_jwt_id_claim_grants(c, "none", "x"), -1);
    UPM_CHECK_INT(upm_jwt_id_claim_grants(c, "bad", "1"), -1);
    UPM_CHECK_INT(upm_jwt_id_claim_grants(c, "mixed", "3"), -1);
    UPM_CHECK_INT(upm_jwt_id_claim_grants(c, "mixed", "m1"), 1);
    UPM_CHECK_INT(upm_jwt_id_claim_grants(c, "ctx.jobId", "j1"), 1);
    UPM_CHECK_INT(upm_jwt_id_claim_grants(c, "absent", "j1"), 0);
    UPM_CHECK_INT(upm_jwt_id_claim_grants(c, "sessionId", ""), 0);
    UPM_CHECK_INT(upm_jwt_id_claim_grants(c, "sessionId", NULL), 0);
    UPM_CHECK_INT(upm_jwt_id_claim_grants(NULL, "sessionId", "s1"), 0);
    json_decref(c);
}

int main(int argc, const char *const argv[])
{
    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&pool, NULL);

    if (argc > 1) {
        keys_dir = argv[1];
    }
    else if (getenv("UPM_TEST_KEYS")) {
        keys_dir = getenv("UPM_TEST_KEYS");
    }
    else {
        keys_dir = "mod_upload_progress/unit/keys";
    }

    test_labels();
    test_alg_parse();
    test_key_make();
    test_algorithms();
    test_rsa_pkcs1_public_key();
    test_time_claims();
    test_bad_signature();
    test_alg_none();
    test_hs_with_rsa_public_key();
    test_issuer_audience();
    test_user_claim();
    test_garbage();
    test_bearer();
    test_too_large();
    test_kid();
    test_candidates();
    test_check_claims();
    test_exp_policy();
    test_scrub_query();
    test_claim_has();
    test_id_claim();

    apr_pool_destroy(pool);
    apr_terminate();
    UPM_TEST_DONE("jwt");
}
