/* SPDX-License-Identifier: Apache-2.0 */
#include <apr_general.h>
#include <apr_strings.h>
#include "upm_ingest.h"
#include "upm_test.h"

static apr_pool_t *p;

static upm_ingest_status in(const char *s, const char *hint, upm_msg *m, const char **err)
{
    return upm_ingest(p, s, strlen(s), hint, NULL, 1024, 1700000000000000LL, m, err);
}

static void test_ok(void)
{
    upm_msg m;
    const char *err = NULL;
    UPM_CHECK_INT(in("{\"event\":\"PhotoUploadProgressed\",\"userId\":\"u1\",\"photoId\":"
                     "\"ph-1\",\"bytesUploaded\":455,\"totalBytes\":1000}", NULL, &m, &err),
                  UPM_IN_OK);
    UPM_CHECK_STR(m.f[UPM_F_TYPE], "upload_progress");
    UPM_CHECK_STR(m.f[UPM_F_OWNER], "u1");
    UPM_CHECK_STR(m.f[UPM_F_PHOTO], "ph-1");
    UPM_CHECK_STR(m.f[UPM_F_JOB], "");
    UPM_CHECK_DBL(m.percent, 45.5);
    UPM_CHECK_STR(m.ext, "");
    UPM_CHECK(strstr(m.json, "\"progress\":45.5") != NULL);
    UPM_CHECK(strstr(m.json, "\"timestamp\":\"2023-11-14T22:13:20.000Z\"") != NULL);
    UPM_CHECK_INT(m.json_len, strlen(m.json));

    /* The owner from a user:{id} channel. */
    UPM_CHECK_INT(in("{\"type\":\"session_created\",\"sessionId\":\"s1\"}", "u7", &m, &err),
                  UPM_IN_OK);
    UPM_CHECK_STR(m.f[UPM_F_OWNER], "u7");
    UPM_CHECK(strstr(m.json, "\"userId\":\"u7\"") != NULL);
    UPM_CHECK_DBL(m.percent, -1.0);
    /* ... agreeing with the event's own userId (integers count). */
    UPM_CHECK_INT(in("{\"type\":\"progress\",\"userId\":42,\"progress\":3}", "42", &m, &err),
                  UPM_IN_OK);
    UPM_CHECK_STR(m.f[UPM_F_OWNER], "42");
    UPM_CHECK_DBL(m.percent, 3.0);
    UPM_CHECK(!(m.flags & UPM_MSG_CLIENT));

    /* The client-origin marker of tracked uploads sent through Redis: the
     * flag comes back, the member does not reach clients. */
    UPM_CHECK_INT(in("{\"" UPM_MSG_CLIENT_MEMBER "\":\"client\",\"type\":"
                     "\"upload_started\",\"userId\":\"u1\",\"sessionId\":\"s1\"}",
                     NULL, &m, &err), UPM_IN_OK);
    UPM_CHECK(m.flags & UPM_MSG_CLIENT);
    UPM_CHECK_STR(m.f[UPM_F_SESSION], "s1");
    UPM_CHECK(strstr(m.json, UPM_MSG_CLIENT_MEMBER) == NULL);
}

static upm_ingest_status in_scope(const char *s, int field, const char *id, upm_msg *m,
                                  const char **err)
{
    return upm_ingest_routed(p, s, strlen(s), NULL, field, id, NULL, 1024,
                             1700000000000000LL, m, err);
}

/* upload-session:{id} and the other scope channels. */
static void test_scope_routed(void)
{
    upm_msg m;
    const char *err = NULL;
    const char *seed = "{\"type\":\"PHOTO_UPLOADED\",\"sessionId\":\"s-9\",\"photoId\":\"p\","
                       "\"uploadedCount\":47,\"totalCount\":100,\"progressPercent\":47.0,"
                       "\"timestamp\":\"2025-11-11T10:30:00Z\"}";
    UPM_CHECK_INT(in_scope(seed, UPM_F_SESSION, "s-9", &m, &err), UPM_IN_OK);
    UPM_CHECK_STR(m.f[UPM_F_OWNER], "");
    UPM_CHECK_STR(m.f[UPM_F_SESSION], "s-9");
    /* The JSON as published: no userId added, the timestamp kept. */
    UPM_CHECK(strstr(m.json, "userId") == NULL);
    UPM_CHECK(strstr(m.json, "\"timestamp\":\"2025-11-11T10:30:00Z\"") != NULL);
    UPM_CHECK(strstr(m.json, "\"progressPercent\":47.0") != NULL);

    /* A body without the id: routed by the channel, JSON unchanged. */
    UPM_CHECK_INT(in_scope("{\"type\":\"progress\",\"jobId\":\"j1\",\"progress\":5}",
                           UPM_F_PROJECT, "pr-1", &m, &err), UPM_IN_OK);
    UPM_CHECK_STR(m.f[UPM_F_PROJECT], "pr-1");
    UPM_CHECK_STR(m.f[UPM_F_JOB], "j1");
    UPM_CHECK(strstr(m.json, "projectId") == NULL);
    UPM_CHECK_INT(in_scope("{\"type\":\"x\"}", UPM_F_JOB, "j2", &m, &err), UPM_IN_OK);
    UPM_CHECK_STR(m.f[UPM_F_JOB], "j2");

    /* Another id of the same kind than the channel's: refused. */
    UPM_CHECK_INT(in_scope("{\"type\":\"x\",\"sessionId\":\"s-8\"}", UPM_F_SESSION, "s-9",
                           &m, &err), UPM_IN_SCOPE_CONFLICT);
    UPM_CHECK(err && strstr(err, "s-8") && strstr(err, "s-9"));
    UPM_CHECK_STR(upm_ingest_name(UPM_IN_SCOPE_CONFLICT), "scope_conflict");
    /* A channel id that is no id. */
    UPM_CHECK_INT(in_scope("{\"type\":\"x\"}", UPM_F_SESSION, "a b", &m, &err),
                  UPM_IN_BAD_EVENT);

    /* With a userId it is its owner's, as on any channel. */
    UPM_CHECK_INT(in_scope("{\"type\":\"x\",\"userId\":\"u1\"}", UPM_F_SESSION, "s-9", &m, &err),
                  UPM_IN_OK);
    UPM_CHECK_STR(m.f[UPM_F_OWNER], "u1");
    UPM_CHECK_STR(m.f[UPM_F_SESSION], "");

    /* Not a scope channel, no owner: a scope the JSON names, or refused. */
    UPM_CHECK_INT(in("{\"type\":\"x\",\"fileId\":\"f1\"}", NULL, &m, &err), UPM_IN_OK);
    UPM_CHECK_STR(m.f[UPM_F_FILE], "f1");
    UPM_CHECK_STR(m.f[UPM_F_OWNER], "");
    UPM_CHECK_INT(in("{\"type\":\"x\",\"photoId\":\"p1\"}", NULL, &m, &err), UPM_IN_NO_OWNER);
    UPM_CHECK_INT(in_scope("{\"type\":\"x\"}", -1, NULL, &m, &err), UPM_IN_NO_OWNER);
    /* photoId is no scope a channel can name. */
    UPM_CHECK_INT(in_scope("{\"type\":\"x\"}", UPM_F_PHOTO, "p1", &m, &err), UPM_IN_NO_OWNER);
}

static void test_refused(void)
{
    upm_msg m;
    const char *err = NULL;
    char big[2048];

    UPM_CHECK_INT(in("{\"type\":", "u", &m, &err), UPM_IN_BAD_JSON);
    UPM_CHECK(err && strstr(err, "invalid JSON"));
    UPM_CHECK_INT(in("not json", "u", &m, &err), UPM_IN_BAD_JSON);
    UPM_CHECK_INT(in("", "u", &m, &err), UPM_IN_BAD_JSON);
    UPM_CHECK_INT(in("[1,2]", "u", &m, &err), UPM_IN_NOT_OBJECT);
    UPM_CHECK_INT(in("\"str\"", "u", &m, &err), UPM_IN_NOT_OBJECT);
    UPM_CHECK_INT(in("42", "u", &m, &err), UPM_IN_NOT_OBJECT);
    UPM_CHECK_INT(in("{\"type\":\"progress\"}", NULL, &m, &err), UPM_IN_NO_OWNER);
    UPM_CHECK_INT(in("{\"type\":\"progress\"}", "", &m, &err), UPM_IN_NO_OWNER);
    UPM_CHECK_INT(in("{\"type\":\"progress\",\"userId\":\"bob\"}", "alice", &m, &err),
                  UPM_IN_OWNER_CONFLICT);
    UPM_CHECK(err && strstr(err, "bob") && strstr(err, "alice"));
    UPM_CHECK_INT(in("{\"userId\":\"u\"}", NULL, &m, &err), UPM_IN_BAD_EVENT);
    UPM_CHECK_INT(in("{\"event\":\"Nope\",\"userId\":\"u\"}", NULL, &m, &err),
                  UPM_IN_BAD_EVENT);
    UPM_CHECK_INT(in("{\"type\":\"progress\",\"userId\":\"u\",\"jobId\":[1]}", NULL, &m,
                     &err), UPM_IN_BAD_EVENT);
    UPM_CHECK_INT(in("{\"type\":\"progress\"}", "bad owner!", &m, &err), UPM_IN_BAD_EVENT);
    /* Two userId members: which one wins is not left to chance. */
    UPM_CHECK_INT(in("{\"type\":\"progress\",\"userId\":\"a\",\"userId\":\"b\"}", NULL, &m,
                     &err), UPM_IN_BAD_JSON);

    memset(big, ' ', sizeof(big));
    memcpy(big, "{\"type\":\"progress\",\"userId\":\"u\"}", 32);
    big[sizeof(big) - 1] = '\0';
    UPM_CHECK_INT(upm_ingest(p, big, strlen(big), NULL, NULL, 1024, 0, &m, &err),
                  UPM_IN_TOO_LARGE);
    UPM_CHECK_INT(upm_ingest(p, big, strlen(big), NULL, NULL, 4096, 0, &m, &err), UPM_IN_OK);
    UPM_CHECK_STR(upm_ingest_name(UPM_IN_NO_OWNER), "no_owner");
    UPM_CHECK_STR(upm_ingest_name(UPM_IN__COUNT), "unknown");
}

static void test_stream_fields(void)
{
    const char *nm[] = { "channel", "payload", "data", "userId" };
    apr_size_t nl[] = { 7, 7, 4, 6 };
    const char *v[] = { "user:ch", "{\"p\":1}", "{\"d\":1}", "uid" };
    apr_size_t vl[] = { 7, 7, 7, 3 };
    const char *data, *hint;
    apr_size_t dlen;

    UPM_CHECK_INT(upm_ingest_stream_fields(p, 4, nm, nl, v, vl, &data, &dlen, &hint), 0);
    UPM_CHECK(dlen == 7 && strncmp(data, "{\"d\":1}", 7) == 0);
    UPM_CHECK_STR(hint, "uid");
    UPM_CHECK_INT(upm_ingest_stream_fields(p, 2, nm, nl, v, vl, &data, &dlen, &hint), 0);
    UPM_CHECK(strncmp(data, "{\"p\":1}", 7) == 0);
    UPM_CHECK_STR(hint, "ch");
    UPM_CHECK_INT(upm_ingest_stream_fields(p, 1, nm, nl, v, vl, &data, &dlen, &hint), -1);
    UPM_CHECK_STR(hint, "ch");
    UPM_CHECK_INT(upm_ingest_stream_fields(p, 0, nm, nl, v, vl, &data, &dlen, &hint), -1);
    UPM_CHECK(hint == NULL);
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&p, NULL);
    test_ok();
    test_scope_routed();
    test_refused();
    test_stream_fields();
    apr_pool_destroy(p);
    apr_terminate();
    UPM_TEST_DONE("test_ingest");
}
