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
    test_refused();
    test_stream_fields();
    apr_pool_destroy(p);
    apr_terminate();
    UPM_TEST_DONE("test_ingest");
}
