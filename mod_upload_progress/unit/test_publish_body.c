/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for upm_publish_body.c: what a publish body becomes, and the
 * status, code and index of every refusal (t/publish.t sees the same
 * through the server). */
#include <apr_general.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include "upm_publish_body.h"
#include "upm_test.h"

/* 2023-11-14T22:13:20Z */
#define NOW ((apr_time_t)1700000000 * APR_USEC_PER_SEC)

static apr_pool_t *p;

static int body(const char *s, apr_off_t max, upm_msg ***msgs, int *n,
                upm_publish_refusal *why)
{
    return upm_publish_body(p, s, strlen(s), NULL, max, NOW, msgs, n, why);
}

/* The refusal of s (or -1 when it is accepted). */
static upm_publish_refusal refused(const char *s, apr_off_t max)
{
    upm_publish_refusal why;
    upm_msg **msgs;
    int n;

    if (body(s, max, &msgs, &n, &why) == 0) {
        why.status = -1;
        why.code = "accepted";
    }
    return why;
}

static void test_single(void)
{
    upm_publish_refusal why;
    upm_msg **m = NULL;
    int n = 0;

    UPM_CHECK_INT(body("{\"event\":\"PhotoUploadProgressed\",\"userId\":\"u1\","
                       "\"photoId\":7,\"bytesUploaded\":455,\"totalBytes\":1000,"
                       "\"id\":\"x\"}", 65536, &m, &n, &why), 0);
    UPM_CHECK_INT(n, 1);
    UPM_CHECK_STR(m[0]->f[UPM_F_TYPE], "upload_progress");
    UPM_CHECK_STR(m[0]->f[UPM_F_OWNER], "u1");
    UPM_CHECK_STR(m[0]->f[UPM_F_PHOTO], "7");
    UPM_CHECK_STR(m[0]->f[UPM_F_JOB], "");
    UPM_CHECK_DBL(m[0]->percent, 45.5);
    UPM_CHECK_INT(m[0]->published, NOW);
    UPM_CHECK_INT(m[0]->json_len, strlen(m[0]->json));
    UPM_CHECK(strstr(m[0]->json, "\"progress\":45.5") != NULL);
    UPM_CHECK(strstr(m[0]->json, "\"timestamp\":\"2023-11-14T22:13:20.000Z\"") != NULL);
    /* Ids are the server's. */
    UPM_CHECK(strstr(m[0]->json, "\"id\"") == NULL);
    UPM_CHECK(strstr(m[0]->json, "\"event\"") == NULL);
}

static void test_array(void)
{
    upm_publish_refusal why;
    upm_msg **m = NULL;
    int n = 0;

    UPM_CHECK_INT(body("[{\"type\":\"file_registered\",\"userId\":\"a\",\"fileId\":\"f\"},"
                       " {\"event\":\"UploadJobCompleted\",\"userId\":\"b\",\"jobId\":\"j\"}]",
                       65536, &m, &n, &why), 0);
    UPM_CHECK_INT(n, 2);
    UPM_CHECK_STR(m[0]->f[UPM_F_TYPE], "file_registered");
    UPM_CHECK_STR(m[0]->f[UPM_F_FILE], "f");
    UPM_CHECK_DBL(m[0]->percent, -1.0);
    UPM_CHECK_STR(m[1]->f[UPM_F_TYPE], "job_completed");
    UPM_CHECK_STR(m[1]->f[UPM_F_OWNER], "b");
    UPM_CHECK_STR(m[1]->f[UPM_F_JOB], "j");
}

static void test_event_map(void)
{
    apr_hash_t *map = apr_hash_make(p);
    upm_publish_refusal why;
    upm_msg **m = NULL;
    int n = 0;
    const char *s = "{\"event\":\"Custom\",\"userId\":\"u\"}";

    apr_hash_set(map, "Custom", APR_HASH_KEY_STRING, "custom_type");
    UPM_CHECK_INT(upm_publish_body(p, s, strlen(s), map, 65536, NOW, &m, &n, &why), 0);
    UPM_CHECK_STR(m[0]->f[UPM_F_TYPE], "custom_type");
    UPM_CHECK_INT(upm_publish_body(p, s, strlen(s), NULL, 65536, NOW, &m, &n, &why), -1);
    UPM_CHECK_STR(why.code, "no_type");
}

static void test_refusals(void)
{
    upm_publish_refusal why;
    char *big;
    int i;

    why = refused("{\"type\":", 65536);
    UPM_CHECK_INT(why.status, 400);
    UPM_CHECK_STR(why.code, "invalid_json");
    UPM_CHECK(why.message && *why.message);
    UPM_CHECK_INT(why.index, -1);
    UPM_CHECK_INT(why.line, 1);
    UPM_CHECK_INT(why.position, 8);
    why = refused("{\"type\":\"x\",\n\"userId\":}", 65536);
    UPM_CHECK_INT(why.status, 400);
    UPM_CHECK_INT(why.line, 2);
    UPM_CHECK_STR(refused("", 65536).code, "invalid_json");
    /* The quoted bytes near the error end in a cut UTF-8 sequence. */
    why = refused("[\"\\u\xc3\xa9\"]", 65536);
    UPM_CHECK_STR(why.code, "invalid_json");
    UPM_CHECK(why.message && strchr(why.message, '\xc3') == NULL);
    UPM_CHECK(strstr(why.message, "near '\"\\u?'") != NULL);
    UPM_CHECK_STR(refused("42", 65536).code, "invalid_json");

    why = refused("[1]", 65536);
    UPM_CHECK_INT(why.status, 422);
    UPM_CHECK_STR(why.code, "not_an_object");
    UPM_CHECK_INT(why.index, 0);
    why = refused("[]", 65536);
    UPM_CHECK_INT(why.status, 422);
    UPM_CHECK_STR(why.code, "bad_batch");
    UPM_CHECK_INT(why.index, -1);

    big = apr_pstrdup(p, "[");
    for (i = 0; i < UPM_PUBLISH_MAX_BATCH; i++) {
        big = apr_pstrcat(p, big, i ? "," : "", "{\"type\":\"t\",\"userId\":\"u\"}", NULL);
    }
    UPM_CHECK_INT(refused(apr_pstrcat(p, big, "]", NULL), 65536).status, -1);
    why = refused(apr_pstrcat(p, big, ",{\"type\":\"t\",\"userId\":\"u\"}]", NULL), 65536);
    UPM_CHECK_STR(why.code, "bad_batch");
    UPM_CHECK_INT(why.index, -1);

    why = refused("[{\"type\":\"t\",\"userId\":\"u\"},{\"userId\":\"u\"}]", 65536);
    UPM_CHECK_INT(why.status, 422);
    UPM_CHECK_STR(why.code, "no_type");
    UPM_CHECK_INT(why.index, 1);
    why = refused("{\"type\":\"t\"}", 65536);
    UPM_CHECK_STR(why.code, "no_owner");
    UPM_CHECK_INT(why.index, 0);
    why = refused("{\"type\":\"t\",\"userId\":\"u\",\"jobId\":\"a b\"}", 65536);
    UPM_CHECK_STR(why.code, "bad_field");
    UPM_CHECK(strstr(why.message, "jobId") != NULL);

    /* The limit applies to the event once normalised (type, timestamp). */
    why = refused("[{\"type\":\"t\",\"userId\":\"u\"},"
                  "{\"type\":\"t\",\"userId\":\"u\",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}]", 80);
    UPM_CHECK_INT(why.status, 413);
    UPM_CHECK_STR(why.code, "too_large");
    UPM_CHECK_INT(why.index, 1);
    UPM_CHECK(strstr(why.message, "80 bytes") != NULL);
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&p, NULL);
    test_single();
    test_array();
    test_event_map();
    test_refusals();
    apr_pool_destroy(p);
    apr_terminate();
    UPM_TEST_DONE("test_publish_body");
}
