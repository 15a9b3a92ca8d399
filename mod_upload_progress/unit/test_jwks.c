/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for upm_jwks.c.
 *
 * The JWKs are the public halves of the keys in unit/keys/ (exported once
 * with Perl's CryptX); tokens are signed by libjwt with the private halves
 * and verified by upm_jwt_verify against the keys the parser built, the
 * way a provider's tokens meet its published set in production. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "upm_jwks.h"
#include "upm_jwt.h"
#include "upm_test.h"

#define NOW ((apr_int64_t)1700000000)
#define CLAIMS "{\"sub\":\"alice\",\"exp\":1700000600}"

static apr_pool_t *pool;
static const char *keys_dir;

#define RSA_NE "\"e\":\"AQAB\",\"n\":\"uL0PtPypvajvbtB4ZlamQUl2mUEO_0hCYVFXPCe-JVknP9XbOZtZbnXMWy2A8_I2j8qLmmkXQxKAiOApKG4h2ykdssclZNPY2sY986_TnKIV-058gKO43rlRfoqVGcwxS3M47gsz1fFjtwPXYHLl2RITyuITpJ3D23fCTy2GnS84EgZa9Qcmjc9yCRDY3gFCe_dlXq7EruahnH540zTFs5_MGayF4L9kb_jClpFt-86nz9hWpGD2rrmhMvu3AC7p4sXqbiCqlcICUjR50Eu-shRIyAIdQPCzQb28W32pDwrP3Q1p9Nk4CHHzkq7eQ8gJzFQRyfLXFQ4Obw_Xl1cK3Q\""
#define RSA_1024 "\"e\":\"AQAB\",\"n\":\"sO3W2hWnj4cfhGsRVL94JimK44FUteKojHEvzgVbSH8U5pvBuvGY_M3Rn3Ljjc8kkpuc6pSur9HsSRlqa_iqoJlavAvC0CTnvlHbEVz9t7P5r3VMhzPrtoAEUcQqAFEyT2CmReyw6WI8g1VbBFwlOOoa-6d0aWjp6XNHjNXUN2c\""
#define EC256 "\"crv\":\"P-256\",\"x\":\"UNHPBISr0rZmQiWy8EvngikYttJkrsRwKS1apoJ8lnM\",\"y\":\"usWTPXGP9_ZF2tCk9yfrXMI19KbnkSUX9E6ZvFtJWsw\""
#define EC256_OFF "\"crv\":\"P-256\",\"x\":\"UNHPBISr0rZmQiWy8EvngikYttJkrsRwKS1apoJ8lnM\",\"y\":\"usWUPXGP9_ZF2tCk9yfrXMI19KbnkSUX9E6ZvFtJWsw\""
#define EC384 "\"crv\":\"P-384\",\"x\":\"NQ6OW00cqTFS4DA94vAOV0Oybm11Gn1q8m_VMTxplZKcPs_XTNzH98PZBgphq99H\",\"y\":\"QJrgyRdt9msmrqhZzj7mdYR9K4fjEfZe3Y9_n-Ko2Nk9gvu0MwK_Sgd_D-lo1qnP\""
#define EC521 "\"crv\":\"P-521\",\"x\":\"ANQv5Ml73xd3Ud3kcTiUw4-73nB9lf8iTETCLRNgbFxOXo9-IHNHi1t8WxIPjI6sBhIT4nBSgn0cXG7kQqOiYpFa\",\"y\":\"AKLMeuNCl7kBx5RTXQv2P2P6lLvRth87pMS3oSDYzP9GA-oS4HoYmHi4NDy4J3Pl5lk6pFKO4QKLqdO8PzPh2Mys\""
/* base64url of the 64-byte test secret below */
#define OCT_K "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg"
static const char secret[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static const char *load(const char *name, apr_size_t *len)
{
    const char *path = apr_pstrcat(pool, keys_dir, "/", name, NULL);
    FILE *fp = fopen(path, "rb");
    char *buf;
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
        exit(2);
    }
    fclose(fp);
    buf[n] = '\0';
    *len = (apr_size_t)n;
    return buf;
}

static const char *sign(jwt_alg_t alg, const char *keyfile, const char *kid)
{
    jwt_t *jwt = NULL;
    apr_size_t len;
    const char *key;
    char *s;
    const char *tok;

    if (keyfile[0] == '=') {
        key = keyfile + 1;
        len = strlen(key);
    }
    else {
        key = load(keyfile, &len);
    }
    if (jwt_new(&jwt) != 0 || jwt_add_grants_json(jwt, CLAIMS) != 0
        || (kid && jwt_add_header(jwt, "kid", kid) != 0)
        || jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)len) != 0
        || (s = jwt_encode_str(jwt)) == NULL) {
        fprintf(stderr, "cannot sign with %s\n", keyfile);
        exit(2);
    }
    jwt_free(jwt);
    tok = apr_pstrdup(pool, s);
    free(s);
    return tok;
}

static upm_jwt_status verify(const upm_jwks_set *set, const char *tok)
{
    upm_jwt_policy pol = { NULL, NULL, 0, "sub" };
    upm_jwt_result res;
    upm_jwt_status st = upm_jwt_verify(pool, tok, set->keys, &pol, NOW, &res);

    if (res.claims) {
        json_decref(res.claims);
    }
    return st;
}

static const char *parse(const char *doc, int allow_hs, upm_jwks_set *set)
{
    return upm_jwks_parse(pool, doc, strlen(doc), allow_hs, set);
}

static void test_rsa_ec(void)
{
    upm_jwks_set set;
    const char *err = parse("{\"keys\":["
        "{\"kty\":\"RSA\",\"kid\":\"r1\",\"use\":\"sig\"," RSA_NE "},"
        "{\"kty\":\"RSA\",\"kid\":\"r384\",\"alg\":\"RS384\"," RSA_NE "},"
        "{\"kty\":\"EC\",\"kid\":\"e256\"," EC256 "},"
        "{\"kty\":\"EC\",\"kid\":\"e384\",\"alg\":\"ES384\"," EC384 "},"
        "{\"kty\":\"EC\",\"kid\":\"e521\",\"key_ops\":[\"verify\"]," EC521 "}]}", 0, &set);

    UPM_CHECK(err == NULL);
    UPM_CHECK_INT(set.keys->nelts, 5);
    UPM_CHECK_INT(set.skipped, 0);
    UPM_CHECK_INT(APR_ARRAY_IDX(set.keys, 0, upm_jwt_key *)->alg, JWT_ALG_RS256);
    UPM_CHECK_INT(APR_ARRAY_IDX(set.keys, 1, upm_jwt_key *)->alg, JWT_ALG_RS384);
    UPM_CHECK_INT(APR_ARRAY_IDX(set.keys, 2, upm_jwt_key *)->alg, JWT_ALG_ES256);
    UPM_CHECK_INT(APR_ARRAY_IDX(set.keys, 4, upm_jwt_key *)->alg, JWT_ALG_ES512);

    UPM_CHECK_INT(verify(&set, sign(JWT_ALG_RS256, "rsa_private.pem", "r1")), UPM_JWT_OK);
    UPM_CHECK_INT(verify(&set, sign(JWT_ALG_RS384, "rsa_private.pem", "r384")), UPM_JWT_OK);
    UPM_CHECK_INT(verify(&set, sign(JWT_ALG_ES256, "ec256_private.pem", "e256")), UPM_JWT_OK);
    UPM_CHECK_INT(verify(&set, sign(JWT_ALG_ES384, "ec384_private.pem", "e384")), UPM_JWT_OK);
    UPM_CHECK_INT(verify(&set, sign(JWT_ALG_ES512, "ec521_private.pem", "e521")), UPM_JWT_OK);

    /* The key's alg holds, whatever the token claims. */
    UPM_CHECK_INT(verify(&set, sign(JWT_ALG_RS512, "rsa_private.pem", "r1")), UPM_JWT_BAD_ALG);
    /* HS256 keyed with the published RSA key: the alg-confusion attack. */
    {
        const upm_jwt_key *k = APR_ARRAY_IDX(set.keys, 0, upm_jwt_key *);
        const char *tok = sign(JWT_ALG_HS256, apr_pstrcat(pool, "=", (const char *)k->key, NULL),
                               "r1");
        UPM_CHECK_INT(verify(&set, tok), UPM_JWT_BAD_ALG);
    }
    UPM_CHECK_INT(verify(&set, sign(JWT_ALG_RS256, "rsa_private.pem", "gone")),
                  UPM_JWT_UNKNOWN_KID);
    /* Signed by another key under a published kid. */
    UPM_CHECK_INT(verify(&set, sign(JWT_ALG_ES256, "ec256_private.pem", "e384")),
                  UPM_JWT_BAD_ALG);
}

static void test_skipped(void)
{
    upm_jwks_set set;
    const char *err = parse("{\"keys\":["
        "{\"kty\":\"RSA\",\"kid\":\"enc\",\"use\":\"enc\"," RSA_NE "},"
        "{\"kty\":\"RSA\",\"kid\":\"ops\",\"key_ops\":[\"encrypt\"]," RSA_NE "},"
        "{\"kty\":\"RSA\",\"kid\":\"es-on-rsa\",\"alg\":\"ES256\"," RSA_NE "},"
        "{\"kty\":\"RSA\",\"kid\":\"ps\",\"alg\":\"PS256\"," RSA_NE "},"
        "{\"kty\":\"RSA\",\"kid\":\"short\"," RSA_1024 "},"
        "{\"kty\":\"EC\",\"kid\":\"wrong-curve\",\"alg\":\"ES384\"," EC256 "},"
        "{\"kty\":\"EC\",\"kid\":\"rs-on-ec\",\"alg\":\"RS256\"," EC256 "},"
        "{\"kty\":\"EC\",\"kid\":\"off-curve\"," EC256_OFF "},"
        "{\"kty\":\"EC\",\"kid\":\"k1\",\"crv\":\"secp256k1\",\"x\":\"AA\",\"y\":\"AA\"},"
        "{\"kty\":\"OKP\",\"kid\":\"ed\",\"crv\":\"Ed25519\",\"x\":\"AA\"},"
        "{\"kty\":\"oct\",\"kid\":\"hs\",\"alg\":\"HS256\",\"k\":\"" OCT_K "\"},"
        "{\"kty\":\"RSA\",\"kid\":\"bad-b64\",\"e\":\"AQAB\",\"n\":\"**\"},"
        "{\"kty\":\"RSA\",\"kid\":5," RSA_NE "},"
        "\"not an object\","
        "{\"kty\":\"RSA\",\"kid\":\"good\"," RSA_NE "},"
        "{\"kty\":\"RSA\",\"kid\":\"good\"," RSA_NE "}]}", 0, &set);
    int i;

    UPM_CHECK(err == NULL);
    UPM_CHECK_INT(set.keys->nelts, 1);
    UPM_CHECK_INT(set.skipped, 15);
    UPM_CHECK(set.first_skip && strstr(set.first_skip, "use is not sig"));
    UPM_CHECK_STR(APR_ARRAY_IDX(set.keys, 0, upm_jwt_key *)->kid, "good");
    for (i = 0; i < set.keys->nelts; i++) {
        UPM_CHECK(APR_ARRAY_IDX(set.keys, i, upm_jwt_key *)->alg != JWT_ALG_HS256);
    }
    UPM_CHECK_INT(verify(&set, sign(JWT_ALG_RS256, "rsa_private.pem", "enc")),
                  UPM_JWT_UNKNOWN_KID);
    UPM_CHECK_INT(verify(&set, sign(JWT_ALG_HS256, "=" "0123456789abcdef0123456789abcdef"
                                    "0123456789abcdef0123456789abcdef", "hs")),
                  UPM_JWT_UNKNOWN_KID);
    UPM_CHECK_INT(verify(&set, sign(JWT_ALG_ES256, "ec256_private.pem", "off-curve")),
                  UPM_JWT_UNKNOWN_KID);
}

static void test_oct(void)
{
    upm_jwks_set set;
    const char *err;

    err = parse("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"hs\",\"alg\":\"HS256\",\"k\":\""
                OCT_K "\"}]}", 0, &set);
    UPM_CHECK(err != NULL && strstr(err, "oct"));

    err = parse("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"hs\",\"alg\":\"HS256\",\"k\":\""
                OCT_K "\"}]}", 1, &set);
    UPM_CHECK(err == NULL);
    UPM_CHECK_INT(verify(&set, sign(JWT_ALG_HS256, apr_pstrcat(pool, "=", secret, NULL), "hs")),
                  UPM_JWT_OK);

    /* No alg, a short secret, an HS alg too big for the secret: refused. */
    err = parse("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"hs\",\"k\":\"" OCT_K "\"}]}", 1, &set);
    UPM_CHECK(err != NULL);
    err = parse("{\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS256\",\"k\":\"c2hvcnQ\"}]}", 1, &set);
    UPM_CHECK(err != NULL && strstr(err, "shorter"));
    err = parse("{\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS512\",\"k\":\""
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}", 1, &set);
    UPM_CHECK(err != NULL);
}

static void test_documents(void)
{
    upm_jwks_set set;
    static const char *const bad[] = {
        "", "not json", "[]", "{}", "{\"keys\":{}}", "{\"keys\":[]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"enc\"," RSA_NE "}]}",
        "{\"keys\":[],\"keys\":[{\"kty\":\"EC\"," EC256 "}]}",
        "{\"keys\":[{\"kty\":\"EC\"," EC256 "}]", NULL
    };
    char *big;
    int i;

    for (i = 0; bad[i]; i++) {
        UPM_CHECK(upm_jwks_parse(pool, bad[i], strlen(bad[i]), 1, &set) != NULL);
    }
    UPM_CHECK(upm_jwks_parse(pool, NULL, 0, 1, &set) != NULL);

    /* Over the size bound: refused before JSON parsing. */
    big = apr_palloc(pool, UPM_JWKS_MAX_DOC + 2);
    memset(big, ' ', UPM_JWKS_MAX_DOC + 1);
    big[0] = '{';
    big[UPM_JWKS_MAX_DOC] = '}';
    UPM_CHECK(upm_jwks_parse(pool, big, UPM_JWKS_MAX_DOC + 1, 0, &set) != NULL);

    /* A 1 MB set: 1,000 keys padded with a member of its own. */
    {
        apr_array_header_t *parts = apr_array_make(pool, 1024, sizeof(char *));
        char pad[900];
        const char *doc;
        apr_size_t len;

        memset(pad, 'x', sizeof(pad) - 1);
        pad[sizeof(pad) - 1] = '\0';
        for (i = 0; i < 1000; i++) {
            APR_ARRAY_PUSH(parts, char *) = apr_psprintf(pool,
                "{\"kty\":\"EC\",\"kid\":\"k%d\",\"x5t\":\"%s\"," EC256 "}", i, pad);
        }
        doc = apr_pstrcat(pool, "{\"keys\":[", apr_array_pstrcat(pool, parts, ','), "]}",
                          NULL);
        len = strlen(doc);
        UPM_CHECK(len > 1000 * 1000);
        UPM_CHECK(upm_jwks_parse(pool, doc, len, 0, &set) == NULL);
        UPM_CHECK_INT(set.keys->nelts, 1000);
        UPM_CHECK_INT(verify(&set, sign(JWT_ALG_ES256, "ec256_private.pem", "k999")),
                      UPM_JWT_OK);
    }
}

static void test_discovery(void)
{
    const char *uri, *doc;

    doc = "{\"issuer\":\"https://id.example\",\"jwks_uri\":\"https://id.example/certs\"}";
    UPM_CHECK(upm_jwks_discovery_uri(pool, doc, strlen(doc), &uri) == NULL);
    UPM_CHECK_STR(uri, "https://id.example/certs");
    doc = "{\"jwks_uri\":\"http://id.example/certs\"}";
    UPM_CHECK(upm_jwks_discovery_uri(pool, doc, strlen(doc), &uri) != NULL);
    UPM_CHECK(uri == NULL);
    doc = "{\"issuer\":\"x\"}";
    UPM_CHECK(upm_jwks_discovery_uri(pool, doc, strlen(doc), &uri) != NULL);
    doc = "[\"jwks_uri\"]";
    UPM_CHECK(upm_jwks_discovery_uri(pool, doc, strlen(doc), &uri) != NULL);
}

static void test_url_check(void)
{
    UPM_CHECK(upm_jwks_url_check(pool, "https://login.example.com/keys") == NULL);
    UPM_CHECK(upm_jwks_url_check(pool, "HTTPS://login.example.com:8443/keys") == NULL);
    UPM_CHECK(upm_jwks_url_check(pool, "http://127.0.0.1:8080/jwks") == NULL);
    UPM_CHECK(upm_jwks_url_check(pool, "http://127.5.6.7/jwks") == NULL);
    UPM_CHECK(upm_jwks_url_check(pool, "http://localhost:9/jwks") == NULL);
    UPM_CHECK(upm_jwks_url_check(pool, "http://[::1]:9/jwks") == NULL);
    UPM_CHECK(upm_jwks_url_check(pool, "http://login.example.com/keys") != NULL);
    UPM_CHECK(upm_jwks_url_check(pool, "http://127.evil.example/keys") != NULL);
    UPM_CHECK(upm_jwks_url_check(pool, "http://localhost.evil.example/keys") != NULL);
    UPM_CHECK(upm_jwks_url_check(pool, "http://127.0.0.1@evil.example/keys") != NULL);
    UPM_CHECK(upm_jwks_url_check(pool, "https://user:pw@login.example.com/") != NULL);
    UPM_CHECK(upm_jwks_url_check(pool, "ftp://login.example.com/keys") != NULL);
    UPM_CHECK(upm_jwks_url_check(pool, "https:///keys") != NULL);
    UPM_CHECK(upm_jwks_url_check(pool, "https://a b/keys") != NULL);
    UPM_CHECK(upm_jwks_url_check(pool, NULL) != NULL);
}

int main(int argc, const char *const argv[])
{
    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&pool, NULL);
    keys_dir = argc > 1 ? argv[1] : getenv("UPM_TEST_KEYS") ? getenv("UPM_TEST_KEYS")
                                                          : "mod_upload_progress/unit/keys";
    test_rsa_ec();
    test_skipped();
    test_oct();
    test_documents();
    test_discovery();
    test_url_check();
    UPM_TEST_DONE("test_jwks");
}
