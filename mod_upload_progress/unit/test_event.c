/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for upm_event.c: the event map, normalisation and progress
 * math of DESIGN section 1. */

#include <math.h>
#include <stdlib.h>

#include <apr_general.h>
#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_time.h>
#include <jansson.h>

#include "upm_event.h"
#include "upm_test.h"

/* 2026-11-21T10:00:00.123Z: a fixed clock keeps the tests deterministic. */
#define NOW_MS APR_INT64_C(1795255200123)
#define NOW_ISO "2026-11-21T10:00:00.123Z"

/* Longest type the module accepts (an SSE "event:" line). */
#define UPM_TYPE_TEST_LEN 64

#define DUMP_FLAGS (JSON_REAL_PRECISION(15) | JSON_COMPACT)

static apr_pool_t *pool;

/* Result of one normalisation, kept together so that every test can look
 * at all of it. */
typedef struct {
    upm_event_status st;
    json_t *msg;
    const char *owner;
    const char *err;
} norm_result;

/* Normalises the event in `text` and checks the invariants that hold for
 * every call: the input is left untouched, an error comes with a
 * single-line reason and no message, success comes with both a message and
 * an owner. */
static const char *sfield(json_t *obj, const char *key);

static norm_result norm_h(const char *text, apr_hash_t *overrides,
                          const char *hint)
{
    norm_result r;
    json_error_t jerr;
    json_t *event = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                               &jerr);
    char *before;

    if (event == NULL) {
        fprintf(stderr, "bad test JSON %s: %s\n", text, jerr.text);
        exit(2);
    }
    before = json_dumps(event, JSON_SORT_KEYS | JSON_ENCODE_ANY);
    r.msg = (json_t *)0x1;
    r.owner = r.err = (const char *)0x1;
    r.st = upm_event_normalize(pool, event, overrides, hint,
                               apr_time_from_msec(NOW_MS),
                               &r.msg, &r.owner, &r.err);
    {
        char *after = json_dumps(event, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        UPM_CHECK_STR(after, before);
        free(after);
    }
    free(before);
    json_decref(event);

    if (r.st == UPM_EV_OK) {
        UPM_CHECK(r.msg != NULL && json_is_object(r.msg));
        /* No owner only for a message to a scope it names. */
        UPM_CHECK(r.owner != NULL
                  || (r.msg && (sfield(r.msg, "sessionId") || sfield(r.msg, "jobId")
                                || sfield(r.msg, "projectId") || sfield(r.msg, "fileId"))));
        UPM_CHECK(r.err == NULL);
    }
    else {
        UPM_CHECK(r.msg == NULL);
        UPM_CHECK(r.owner == NULL);
        UPM_CHECK(r.err != NULL && *r.err != '\0');
        UPM_CHECK(r.err != NULL && strchr(r.err, '\n') == NULL);
    }
    return r;
}

static norm_result norm(const char *text)
{
    return norm_h(text, NULL, NULL);
}

static void done(norm_result *r)
{
    if (r->msg != NULL) {
        json_decref(r->msg);
        r->msg = NULL;
    }
}

static const char *sfield(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static double nfield(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : -12345.0;
}

static int has(json_t *obj, const char *key)
{
    return json_object_get(obj, key) != NULL;
}

static int dump_contains(json_t *obj, const char *needle)
{
    char *s = json_dumps(obj, DUMP_FLAGS);
    int found = s != NULL && strstr(s, needle) != NULL;

    if (!found) {
        fprintf(stderr, "  %s not in %s\n", needle, s ? s : "(null)");
    }
    free(s);
    return found;
}

static int err_contains(const norm_result *r, const char *needle)
{
    int found = r->err != NULL && strstr(r->err, needle) != NULL;

    if (!found) {
        fprintf(stderr, "  \"%s\" not in error \"%s\"\n", needle,
                r->err ? r->err : "(null)");
    }
    return found;
}

static const char *const builtin_rows[][2] = {
    { "PhotoUploadStarted",          "upload_started"    },
    { "PhotoUploadProgressed",       "upload_progress"   },
    { "PhotoUploadCompleted",        "upload_completed"  },
    { "PhotoUploadFailed",           "upload_failed"     },
    { "UploadJobProgressed",         "job_progress"      },
    { "UploadJobCompleted",          "job_completed"     },
    { "PhotoUploadedEvent",          "PHOTO_UPLOADED"    },
    { "PhotoUploadFailedEvent",      "PHOTO_FAILED"      },
    { "UploadSessionCompletedEvent", "SESSION_COMPLETED" },
};

static void test_builtin_map(void)
{
    size_t i;

    for (i = 0; i < sizeof(builtin_rows) / sizeof(builtin_rows[0]); i++) {
        const char *ev = builtin_rows[i][0], *type = builtin_rows[i][1];
        char *text = apr_psprintf(pool, "{\"event\":\"%s\",\"userId\":\"u1\","
                                  "\"photoId\":\"p1\"}", ev);
        norm_result r;

        UPM_CHECK_STR(upm_event_map_lookup(NULL, ev), type);

        r = norm(text);
        UPM_CHECK_INT(r.st, UPM_EV_OK);
        UPM_CHECK_STR(sfield(r.msg, "type"), type);
        /* A mapped event name is replaced by its type, not kept. */
        UPM_CHECK(!has(r.msg, "event"));
        UPM_CHECK_STR(sfield(r.msg, "photoId"), "p1");
        UPM_CHECK_STR(r.owner, "u1");
        done(&r);
    }

    UPM_CHECK(upm_event_map_lookup(NULL, "Foo") == NULL);
    UPM_CHECK(upm_event_map_lookup(NULL, NULL) == NULL);
    UPM_CHECK(upm_event_map_lookup(NULL, "") == NULL);
    /* Names are case-sensitive, as the publishers' class names are. */
    UPM_CHECK(upm_event_map_lookup(NULL, "photouploadstarted") == NULL);
    /* Message types are not event names. */
    UPM_CHECK(upm_event_map_lookup(NULL, "upload_started") == NULL);
}

static void test_override_map(void)
{
    apr_hash_t *ov = apr_hash_make(pool);
    norm_result r;

    apr_hash_set(ov, "PhotoUploadStarted", APR_HASH_KEY_STRING,
                 "custom_started");
    apr_hash_set(ov, "Foo", APR_HASH_KEY_STRING, "foo");

    UPM_CHECK_STR(upm_event_map_lookup(ov, "PhotoUploadStarted"),
                  "custom_started");
    UPM_CHECK_STR(upm_event_map_lookup(ov, "Foo"), "foo");
    /* Rows not overridden still come from the built-in table. */
    UPM_CHECK_STR(upm_event_map_lookup(ov, "PhotoUploadCompleted"),
                  "upload_completed");
    UPM_CHECK(upm_event_map_lookup(ov, "Bar") == NULL);
    UPM_CHECK(upm_event_map_lookup(ov, NULL) == NULL);

    r = norm_h("{\"event\":\"PhotoUploadStarted\",\"userId\":\"u1\"}", ov,
               NULL);
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(sfield(r.msg, "type"), "custom_started");
    UPM_CHECK(!has(r.msg, "event"));
    done(&r);

    r = norm_h("{\"event\":\"Foo\",\"userId\":\"u1\",\"x\":1}", ov, NULL);
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(sfield(r.msg, "type"), "foo");
    UPM_CHECK(!has(r.msg, "event"));
    UPM_CHECK_DBL(nfield(r.msg, "x"), 1);
    done(&r);

    r = norm_h("{\"event\":\"PhotoUploadFailed\",\"userId\":\"u1\"}", ov,
               NULL);
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(sfield(r.msg, "type"), "upload_failed");
    done(&r);

    /* Without the overrides, Foo is unknown again. */
    r = norm("{\"event\":\"Foo\",\"userId\":\"u1\"}");
    UPM_CHECK_INT(r.st, UPM_EV_NO_TYPE);
    done(&r);

    /* A configured type is held to the same rules as a published one. */
    apr_hash_set(ov, "Bad", APR_HASH_KEY_STRING, "bad type");
    r = norm_h("{\"event\":\"Bad\",\"userId\":\"u1\"}", ov, NULL);
    UPM_CHECK_INT(r.st, UPM_EV_NO_TYPE);
    done(&r);
}

static void test_type_passthrough(void)
{
    static const char *const types[] = {
        "session_created", "file_registered", "part_uploaded",
        "file_completed", "session_finalized", "progress", "job_complete",
        "job_failed", "anything_else", "with.dots:and-dashes"
    };
    const char *text =
        "{\"type\":\"file_completed\",\"userId\":\"u1\",\"id\":\"pub-7\","
        "\"sessionId\":\"s1\",\"fileId\":\"f1\",\"projectId\":\"pr1\","
        "\"timestamp\":\"2026-01-02T03:04:05.678Z\","
        "\"status\":\"done\",\"uploadedCount\":3,\"totalCount\":10,"
        "\"progressPercent\":30,\"reason\":\"because\","
        "\"metadata\":{\"name\":\"a.jpg\",\"tags\":[\"x\",\"y\"],"
        "\"size\":12.5,\"none\":null},"
        "\"progress\":{\"partsCompleted\":3,\"partsTotal\":10,"
        "\"bytesCompleted\":300,\"bytesTotal\":1000},"
        "\"result\":{\"url\":\"https://example.org/a.jpg\"},"
        "\"error\":{\"code\":\"E1\",\"message\":\"m\"},"
        "\"unicode\":\"\\u00e9\\u4e2d\"}";
    static const char *const same[] = {
        "type", "userId", "sessionId", "fileId", "projectId", "timestamp",
        "status", "uploadedCount", "totalCount", "progressPercent",
        "reason", "metadata", "progress", "result", "error", "unicode"
    };
    json_t *in = json_loads(text, 0, NULL);
    norm_result r;
    size_t i;

    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        char *t = apr_psprintf(pool, "{\"type\":\"%s\",\"userId\":\"u1\","
                               "\"jobId\":\"j1\"}", types[i]);
        r = norm(t);
        UPM_CHECK_INT(r.st, UPM_EV_OK);
        UPM_CHECK_STR(sfield(r.msg, "type"), types[i]);
        UPM_CHECK_STR(sfield(r.msg, "jobId"), "j1");
        UPM_CHECK_STR(sfield(r.msg, "timestamp"), NOW_ISO);
        UPM_CHECK(!has(r.msg, "event"));
        UPM_CHECK(!has(r.msg, "progress"));
        done(&r);
    }

    r = norm(text);
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    for (i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        int eq = json_equal(json_object_get(r.msg, same[i]),
                            json_object_get(in, same[i]));
        if (!eq) {
            fprintf(stderr, "  field %s changed\n", same[i]);
        }
        UPM_CHECK(eq);
    }
    /* The publisher's id is dropped; nothing else is added or removed
     * (the nested progress already has a progressPercent next to it). */
    UPM_CHECK(!has(r.msg, "id"));
    UPM_CHECK_INT(json_object_size(r.msg), json_object_size(in) - 1);
    done(&r);
    json_decref(in);
}

static void test_event_and_type(void)
{
    norm_result r;

    /* Mapped event: the map wins over a type the publisher also sent. */
    r = norm("{\"event\":\"PhotoUploadCompleted\",\"type\":\"other\","
             "\"userId\":\"u1\"}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(sfield(r.msg, "type"), "upload_completed");
    UPM_CHECK(!has(r.msg, "event"));
    done(&r);

    /* Unknown event with a type: the type is used, event passes through. */
    r = norm("{\"event\":\"SomethingNew\",\"type\":\"job_progress\","
             "\"userId\":\"u1\"}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(sfield(r.msg, "type"), "job_progress");
    UPM_CHECK_STR(sfield(r.msg, "event"), "SomethingNew");
    done(&r);

    /* Unknown event and no type. */
    r = norm("{\"event\":\"Foo\",\"userId\":\"u1\"}");
    UPM_CHECK_INT(r.st, UPM_EV_NO_TYPE);
    UPM_CHECK(err_contains(&r, "unknown event \"Foo\" and no type"));
    done(&r);

    /* Publisher text quoted in the error is made safe for one line. */
    r = norm("{\"event\":\"Fo\\n\\\"o\",\"userId\":\"u1\"}");
    UPM_CHECK_INT(r.st, UPM_EV_NO_TYPE);
    UPM_CHECK(err_contains(&r, "unknown event \"Fo??o\""));
    done(&r);

    /* Neither. */
    r = norm("{\"userId\":\"u1\",\"photoId\":\"p\"}");
    UPM_CHECK_INT(r.st, UPM_EV_NO_TYPE);
    done(&r);

    /* event / type that are not non-empty strings. */
    r = norm("{\"event\":7,\"userId\":\"u1\"}");
    UPM_CHECK_INT(r.st, UPM_EV_NO_TYPE);
    UPM_CHECK(err_contains(&r, "\"event\""));
    done(&r);
    r = norm("{\"event\":\"\",\"type\":\"progress\",\"userId\":\"u1\"}");
    UPM_CHECK_INT(r.st, UPM_EV_NO_TYPE);
    done(&r);
    r = norm("{\"event\":null,\"type\":\"progress\",\"userId\":\"u1\"}");
    UPM_CHECK_INT(r.st, UPM_EV_NO_TYPE);
    done(&r);
    r = norm("{\"type\":\"\",\"userId\":\"u1\"}");
    UPM_CHECK_INT(r.st, UPM_EV_NO_TYPE);
    UPM_CHECK(err_contains(&r, "\"type\""));
    done(&r);
    r = norm("{\"type\":[\"progress\"],\"userId\":\"u1\"}");
    UPM_CHECK_INT(r.st, UPM_EV_NO_TYPE);
    done(&r);
    r = norm("{\"type\":{},\"userId\":\"u1\"}");
    UPM_CHECK_INT(r.st, UPM_EV_NO_TYPE);
    done(&r);
}

static void test_bad_type(void)
{
    static const char *const bad[] = {
        "a b", "line\\nbreak", "cr\\r", "semi;colon", "slash/x", "quote\\\"",
        "caf\\u00e9", "tab\\t", "nul\\u0000x"
    };
    char longtype[UPM_TYPE_TEST_LEN + 2];
    norm_result r;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *t = apr_psprintf(pool, "{\"type\":\"%s\",\"userId\":\"u1\"}",
                               bad[i]);
        r = norm(t);
        UPM_CHECK_INT(r.st, UPM_EV_NO_TYPE);
        UPM_CHECK(err_contains(&r, "type"));
        done(&r);
    }

    r = norm("{\"type\":\"a b\",\"userId\":\"u1\"}");
    UPM_CHECK(err_contains(&r, "type \"a b\" contains characters outside "
                           "[A-Za-z0-9_.:-]"));
    done(&r);

    /* An embedded NUL must not shorten a name into a known one. */
    r = norm("{\"event\":\"PhotoUploadStarted\\u0000x\","
             "\"userId\":\"u1\"}");
    UPM_CHECK_INT(r.st, UPM_EV_NO_TYPE);
    done(&r);
    r = norm("{\"type\":\"progress\\u0000\\n\",\"userId\":\"u1\"}");
    UPM_CHECK_INT(r.st, UPM_EV_NO_TYPE);
    done(&r);

    /* 64 bytes is the most an SSE event line gets. */
    memset(longtype, 'a', UPM_TYPE_TEST_LEN);
    longtype[UPM_TYPE_TEST_LEN] = '\0';
    r = norm(apr_psprintf(pool, "{\"type\":\"%s\",\"userId\":\"u1\"}",
                          longtype));
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(sfield(r.msg, "type"), longtype);
    done(&r);

    longtype[UPM_TYPE_TEST_LEN] = 'a';
    longtype[UPM_TYPE_TEST_LEN + 1] = '\0';
    r = norm(apr_psprintf(pool, "{\"type\":\"%s\",\"userId\":\"u1\"}",
                          longtype));
    UPM_CHECK_INT(r.st, UPM_EV_NO_TYPE);
    UPM_CHECK(err_contains(&r, "longer than 64"));
    done(&r);
}

static void test_not_object(void)
{
    static const char *const texts[] = {
        "[]", "[{\"type\":\"progress\"}]", "\"progress\"", "42", "null",
        "true"
    };
    const char *owner = "x", *err = NULL;
    json_t *out = (json_t *)0x1;
    size_t i;

    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        norm_result r = norm_h(texts[i], NULL, "u1");
        UPM_CHECK_INT(r.st, UPM_EV_NOT_OBJECT);
        done(&r);
    }

    UPM_CHECK_INT(upm_event_normalize(pool, NULL, NULL, "u1", 0, &out,
                                      &owner, &err), UPM_EV_NOT_OBJECT);
    UPM_CHECK(out == NULL);
    UPM_CHECK(owner == NULL);
    UPM_CHECK_STR(err, "event is not a JSON object");
}

static void test_owner(void)
{
    norm_result r;

    r = norm("{\"type\":\"progress\",\"userId\":\"alice@example.org\"}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(r.owner, "alice@example.org");
    UPM_CHECK_STR(sfield(r.msg, "userId"), "alice@example.org");
    done(&r);

    /* The event's userId wins over the channel's. */
    r = norm_h("{\"type\":\"progress\",\"userId\":\"u1\"}", NULL, "u2");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(r.owner, "u1");
    UPM_CHECK_STR(sfield(r.msg, "userId"), "u1");
    done(&r);

    r = norm_h("{\"type\":\"progress\"}", NULL, "u2");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(r.owner, "u2");
    UPM_CHECK_STR(sfield(r.msg, "userId"), "u2");
    done(&r);

    /* null userId counts as absent. */
    r = norm_h("{\"type\":\"progress\",\"userId\":null}", NULL, "u3");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(r.owner, "u3");
    UPM_CHECK_STR(sfield(r.msg, "userId"), "u3");
    done(&r);

    r = norm("{\"type\":\"progress\",\"userId\":12345}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(r.owner, "12345");
    UPM_CHECK_STR(sfield(r.msg, "userId"), "12345");
    done(&r);

    r = norm("{\"type\":\"progress\",\"userId\":9007199254740993}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(r.owner, "9007199254740993");
    done(&r);

    r = norm("{\"type\":\"progress\",\"userId\":-9223372036854775808}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(r.owner, "-9223372036854775808");
    done(&r);

    r = norm("{\"type\":\"progress\"}");
    UPM_CHECK_INT(r.st, UPM_EV_NO_OWNER);
    UPM_CHECK_STR(r.err, "event has no owner (userId) and names no sessionId, jobId, "
                  "projectId or fileId");
    done(&r);

    r = norm("{\"type\":\"progress\",\"userId\":null}");
    UPM_CHECK_INT(r.st, UPM_EV_NO_OWNER);
    done(&r);

    r = norm_h("{\"type\":\"progress\"}", NULL, "");
    UPM_CHECK_INT(r.st, UPM_EV_NO_OWNER);
    done(&r);

    /* The hint is a routing key like any other id. */
    r = norm_h("{\"type\":\"progress\"}", NULL, "u 2");
    UPM_CHECK_INT(r.st, UPM_EV_BAD_FIELD);
    UPM_CHECK(err_contains(&r, "owner"));
    done(&r);

    /* A bad userId is not rescued by a good hint. */
    r = norm_h("{\"type\":\"progress\",\"userId\":\"a/b\"}", NULL, "u2");
    UPM_CHECK_INT(r.st, UPM_EV_BAD_FIELD);
    UPM_CHECK(err_contains(&r, "userId"));
    done(&r);

    r = norm_h("{\"type\":\"progress\",\"userId\":true}", NULL, "u2");
    UPM_CHECK_INT(r.st, UPM_EV_BAD_FIELD);
    done(&r);
}

static void test_id_fields(void)
{
    static const char *const fields[] = {
        "photoId", "fileId", "jobId", "sessionId", "projectId", "userId"
    };
    static const char *const bad_values[] = {
        "{}", "{\"id\":1}", "[]", "[\"a\"]", "true", "false", "1.5", "1e3",
        "\"\"", "\"a b\"", "\"a/b\"", "\"a&b=c\"", "\"a?b\"", "\"a\\nb\"",
        "\"a#b\"", "\"a%20b\"", "\"caf\\u00e9\"", "\"a\\u0000b\""
    };
    char id_max[UPM_ID_MAX + 2];
    size_t f, v;
    norm_result r;

    memset(id_max, 'x', UPM_ID_MAX);
    id_max[UPM_ID_MAX] = '\0';

    for (f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        const char *name = fields[f];
        char *text;

        for (v = 0; v < sizeof(bad_values) / sizeof(bad_values[0]); v++) {
            text = apr_psprintf(pool, "{\"type\":\"progress\","
                                "\"userId\":\"u1\",\"%s\":%s}",
                                name, bad_values[v]);
            r = norm_h(text, NULL, "u9");
            UPM_CHECK_INT(r.st, UPM_EV_BAD_FIELD);
            UPM_CHECK(err_contains(&r, name));
            done(&r);
        }

        /* UPM_ID_MAX bytes is accepted, one more is not. */
        text = apr_psprintf(pool, "{\"type\":\"progress\",\"userId\":\"u1\","
                            "\"%s\":\"%s\"}", name, id_max);
        r = norm(text);
        UPM_CHECK_INT(r.st, UPM_EV_OK);
        UPM_CHECK_STR(sfield(r.msg, name), id_max);
        done(&r);

        text = apr_psprintf(pool, "{\"type\":\"progress\",\"userId\":\"u1\","
                            "\"%s\":\"%sx\"}", name, id_max);
        r = norm(text);
        UPM_CHECK_INT(r.st, UPM_EV_BAD_FIELD);
        UPM_CHECK(err_contains(&r, "longer than"));
        done(&r);

        /* Every allowed character class. */
        text = apr_psprintf(pool, "{\"type\":\"progress\",\"userId\":\"u1\","
                            "\"%s\":\"Az09._:@-\"}", name);
        r = norm(text);
        UPM_CHECK_INT(r.st, UPM_EV_OK);
        UPM_CHECK_STR(sfield(r.msg, name), "Az09._:@-");
        done(&r);

        /* Integers become decimal strings. */
        text = apr_psprintf(pool, "{\"type\":\"progress\",\"userId\":\"u1\","
                            "\"%s\":42}", name);
        r = norm(text);
        UPM_CHECK_INT(r.st, UPM_EV_OK);
        UPM_CHECK_STR(sfield(r.msg, name), "42");
        done(&r);

        text = apr_psprintf(pool, "{\"type\":\"progress\",\"userId\":\"u1\","
                            "\"%s\":-7}", name);
        r = norm(text);
        UPM_CHECK_INT(r.st, UPM_EV_OK);
        UPM_CHECK_STR(sfield(r.msg, name), "-7");
        done(&r);
    }

    /* null optional ids are dropped. */
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\",\"photoId\":null,"
             "\"fileId\":null,\"jobId\":null,\"sessionId\":null,"
             "\"projectId\":null}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK(!has(r.msg, "photoId"));
    UPM_CHECK(!has(r.msg, "fileId"));
    UPM_CHECK(!has(r.msg, "jobId"));
    UPM_CHECK(!has(r.msg, "sessionId"));
    UPM_CHECK(!has(r.msg, "projectId"));
    done(&r);

    /* Fields that merely look like ids are not checked. */
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\",\"partId\":{},"
             "\"photoid\":\"a b\"}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK(json_is_object(json_object_get(r.msg, "partId")));
    UPM_CHECK_STR(sfield(r.msg, "photoid"), "a b");
    done(&r);

    /* The publisher's id is removed whatever its type. */
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\",\"id\":{\"x\":1}}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK(!has(r.msg, "id"));
    done(&r);
}

static void test_timestamp(void)
{
    char ts64[65], ts65[66];
    norm_result r;

    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"timestamp\":\"2025-01-01T00:00:00Z\"}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(sfield(r.msg, "timestamp"), "2025-01-01T00:00:00Z");
    done(&r);

    /* Strings are not reinterpreted, whatever they hold. */
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"timestamp\":\"yesterday\"}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(sfield(r.msg, "timestamp"), "yesterday");
    done(&r);

    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"timestamp\":1763719200456}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(sfield(r.msg, "timestamp"), "2025-11-21T10:00:00.456Z");
    done(&r);

    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"timestamp\":1763719200456.9}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(sfield(r.msg, "timestamp"), "2025-11-21T10:00:00.456Z");
    done(&r);

    r = norm("{\"type\":\"progress\",\"userId\":\"u1\",\"timestamp\":0}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(sfield(r.msg, "timestamp"), "1970-01-01T00:00:00.000Z");
    done(&r);

    r = norm("{\"type\":\"progress\",\"userId\":\"u1\"}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(sfield(r.msg, "timestamp"), NOW_ISO);
    done(&r);

    r = norm("{\"type\":\"progress\",\"userId\":\"u1\",\"timestamp\":null}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(sfield(r.msg, "timestamp"), NOW_ISO);
    done(&r);

    memset(ts64, '1', 64);
    ts64[64] = '\0';
    r = norm(apr_psprintf(pool, "{\"type\":\"progress\",\"userId\":\"u1\","
                          "\"timestamp\":\"%s\"}", ts64));
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(sfield(r.msg, "timestamp"), ts64);
    done(&r);

    memset(ts65, '1', 65);
    ts65[65] = '\0';
    r = norm(apr_psprintf(pool, "{\"type\":\"progress\",\"userId\":\"u1\","
                          "\"timestamp\":\"%s\"}", ts65));
    UPM_CHECK_INT(r.st, UPM_EV_BAD_FIELD);
    UPM_CHECK(err_contains(&r, "timestamp"));
    done(&r);

    r = norm("{\"type\":\"progress\",\"userId\":\"u1\",\"timestamp\":true}");
    UPM_CHECK_INT(r.st, UPM_EV_BAD_FIELD);
    UPM_CHECK(err_contains(&r, "timestamp"));
    done(&r);

    r = norm("{\"type\":\"progress\",\"userId\":\"u1\",\"timestamp\":{}}");
    UPM_CHECK_INT(r.st, UPM_EV_BAD_FIELD);
    done(&r);

    /* Beyond year 9999 the millisecond count is refused, not wrapped. */
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"timestamp\":1e300}");
    UPM_CHECK_INT(r.st, UPM_EV_BAD_FIELD);
    done(&r);
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"timestamp\":9223372036854775807}");
    UPM_CHECK_INT(r.st, UPM_EV_BAD_FIELD);
    done(&r);
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"timestamp\":253402300799999}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(sfield(r.msg, "timestamp"), "9999-12-31T23:59:59.999Z");
    done(&r);
}

static void test_iso8601(void)
{
    UPM_CHECK_STR(upm_iso8601(pool, apr_time_from_msec(NOW_MS)), NOW_ISO);
    UPM_CHECK_STR(upm_iso8601(pool, 0), "1970-01-01T00:00:00.000Z");
    /* Sub-millisecond digits are cut, never rounded up into the next
     * second. */
    UPM_CHECK_STR(upm_iso8601(pool, APR_INT64_C(999999)),
                  "1970-01-01T00:00:00.999Z");
    UPM_CHECK_STR(upm_iso8601(pool, APR_INT64_C(1000)),
                  "1970-01-01T00:00:00.001Z");
    UPM_CHECK_STR(upm_iso8601(pool, APR_INT64_C(-1)),
                  "1969-12-31T23:59:59.999Z");
    UPM_CHECK_STR(upm_iso8601(pool, APR_INT64_C(-1000000)),
                  "1969-12-31T23:59:59.000Z");
    /* 2024-02-29T23:59:59.050Z: leap day. */
    UPM_CHECK_STR(upm_iso8601(pool, APR_INT64_C(1709251199050000)),
                  "2024-02-29T23:59:59.050Z");
}

static void test_percent_math(void)
{
    UPM_CHECK_DBL(upm_progress_percent(455, 1000, 0), 45.5);
    UPM_CHECK(upm_progress_percent(455, 1000, 0) == 45.5);
    UPM_CHECK_DBL(upm_progress_percent(1, 3, 0), 33.33);
    UPM_CHECK_DBL(upm_progress_percent(2, 3, 0), 66.67);
    UPM_CHECK_DBL(upm_progress_percent(0, 0, 0), 0);
    UPM_CHECK_DBL(upm_progress_percent(0, 0, 1), 100);
    UPM_CHECK_DBL(upm_progress_percent(5, 0, 0), 0);
    UPM_CHECK_DBL(upm_progress_percent(5, 0, 1), 100);
    UPM_CHECK_DBL(upm_progress_percent(1500, 1000, 0), 100);
    UPM_CHECK_DBL(upm_progress_percent(1000, 1000, 0), 100);
    UPM_CHECK_DBL(upm_progress_percent(0, 1000, 0), 0);
    UPM_CHECK_DBL(upm_progress_percent(-5, 1000, 0), 0);
    UPM_CHECK_DBL(upm_progress_percent(-5, 1000, 1), 0);
    UPM_CHECK_DBL(upm_progress_percent(5, -10, 0), 0);
    UPM_CHECK_DBL(upm_progress_percent(5, -10, 1), 100);
    /* "complete" matters only when there is no total to divide by. */
    UPM_CHECK_DBL(upm_progress_percent(500, 1000, 1), 50);
    UPM_CHECK_DBL(upm_progress_percent(1, 8, 0), 12.5);
    /* Half away from zero at the second decimal: 1/800 = 0.125 %. */
    UPM_CHECK_DBL(upm_progress_percent(1, 800, 0), 0.13);
    UPM_CHECK_DBL(upm_progress_percent(3, 800, 0), 0.38);
    UPM_CHECK_DBL(upm_progress_percent(1, 1000000, 0), 0);
    UPM_CHECK_DBL(upm_progress_percent(999999, 1000000, 0), 100);
    UPM_CHECK_DBL(upm_progress_percent(9999, 1000000, 0), 1);
    /* Byte counts far beyond 2^53 do not overflow. */
    UPM_CHECK_DBL(upm_progress_percent(1e308, 1.6e308, 0), 62.5);
    UPM_CHECK_DBL(upm_progress_percent(1.7e308, 1.7e308, 0), 100);

    UPM_CHECK_DBL(upm_progress_percent(NAN, 1000, 0), 0);
    UPM_CHECK_DBL(upm_progress_percent(NAN, 1000, 1), 0);
    UPM_CHECK_DBL(upm_progress_percent(5, NAN, 0), 0);
    UPM_CHECK_DBL(upm_progress_percent(5, NAN, 1), 0);
    UPM_CHECK_DBL(upm_progress_percent(NAN, NAN, 1), 0);
    UPM_CHECK_DBL(upm_progress_percent(NAN, 0, 1), 100);
    UPM_CHECK_DBL(upm_progress_percent(NAN, 0, 0), 0);
    UPM_CHECK_DBL(upm_progress_percent(INFINITY, 1000, 0), 0);
    UPM_CHECK_DBL(upm_progress_percent(-INFINITY, 1000, 0), 0);
    UPM_CHECK_DBL(upm_progress_percent(5, INFINITY, 0), 0);
    UPM_CHECK_DBL(upm_progress_percent(5, INFINITY, 1), 0);
    UPM_CHECK_DBL(upm_progress_percent(INFINITY, INFINITY, 0), 0);
    UPM_CHECK_DBL(upm_progress_percent(5, -INFINITY, 0), 0);
    UPM_CHECK_DBL(upm_progress_percent(5, -INFINITY, 1), 100);

    /* Never NaN and never outside 0..100, across a sweep. */
    {
        int d, bad = 0;
        for (d = -10; d <= 1010; d++) {
            double v = upm_progress_percent(d, 1000, d & 1);
            if (isnan(v) || v < 0 || v > 100) {
                bad++;
            }
        }
        UPM_CHECK_INT(bad, 0);
    }
}

static void test_type_classes(void)
{
    static const char *const progress[] = {
        "upload_progress", "job_progress", "progress"
    };
    static const char *const terminal[] = {
        "upload_completed", "upload_failed", "job_completed", "job_complete",
        "job_failed", "file_completed", "session_finalized",
        "PHOTO_UPLOADED", "PHOTO_FAILED", "SESSION_COMPLETED"
    };
    static const char *const neither[] = {
        "upload_started", "session_created", "file_registered",
        "part_uploaded", "foo", "", "PROGRESS", "upload_progress "
    };
    size_t i;

    for (i = 0; i < sizeof(progress) / sizeof(progress[0]); i++) {
        UPM_CHECK(upm_event_is_progress_type(progress[i]));
        UPM_CHECK(!upm_event_is_terminal_type(progress[i]));
    }
    for (i = 0; i < sizeof(terminal) / sizeof(terminal[0]); i++) {
        UPM_CHECK(upm_event_is_terminal_type(terminal[i]));
        UPM_CHECK(!upm_event_is_progress_type(terminal[i]));
    }
    for (i = 0; i < sizeof(neither) / sizeof(neither[0]); i++) {
        UPM_CHECK(!upm_event_is_progress_type(neither[i]));
        UPM_CHECK(!upm_event_is_terminal_type(neither[i]));
    }
    UPM_CHECK(!upm_event_is_progress_type(NULL));
    UPM_CHECK(!upm_event_is_terminal_type(NULL));
}

static void test_valid_id(void)
{
    char max[UPM_ID_MAX + 2];

    UPM_CHECK(upm_valid_id("u1"));
    UPM_CHECK(upm_valid_id("A-z.0_9:x@example.com"));
    UPM_CHECK(!upm_valid_id(NULL));
    UPM_CHECK(!upm_valid_id(""));
    UPM_CHECK(!upm_valid_id("a b"));
    UPM_CHECK(!upm_valid_id("a/b"));
    UPM_CHECK(!upm_valid_id("a\n"));
    UPM_CHECK(!upm_valid_id("caf\xc3\xa9"));
    memset(max, 'x', UPM_ID_MAX);
    max[UPM_ID_MAX] = '\0';
    UPM_CHECK(upm_valid_id(max));
    max[UPM_ID_MAX] = 'x';
    max[UPM_ID_MAX + 1] = '\0';
    UPM_CHECK(!upm_valid_id(max));
}

static void test_progress_normalize(void)
{
    norm_result r;

    r = norm("{\"event\":\"PhotoUploadProgressed\",\"userId\":\"u1\","
             "\"photoId\":\"p1\",\"bytesUploaded\":455,\"totalBytes\":1000}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK(json_is_real(json_object_get(r.msg, "progress")));
    UPM_CHECK(nfield(r.msg, "progress") == 45.5);
    UPM_CHECK(dump_contains(r.msg, "\"progress\":45.5"));
    /* The byte counts themselves pass through. */
    UPM_CHECK_DBL(nfield(r.msg, "bytesUploaded"), 455);
    UPM_CHECK_DBL(nfield(r.msg, "totalBytes"), 1000);
    done(&r);

    r = norm("{\"type\":\"upload_progress\",\"userId\":\"u1\","
             "\"bytesUploaded\":1,\"totalBytes\":3}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK(dump_contains(r.msg, "\"progress\":33.33"));
    done(&r);

    r = norm("{\"type\":\"upload_progress\",\"userId\":\"u1\","
             "\"bytesUploaded\":2.0,\"totalBytes\":3.0}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK(dump_contains(r.msg, "\"progress\":66.67"));
    done(&r);

    /* 0-byte uploads: complete is 100, in progress or failed is 0. */
    r = norm("{\"event\":\"PhotoUploadCompleted\",\"userId\":\"u1\","
             "\"bytesUploaded\":0,\"totalBytes\":0}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_DBL(nfield(r.msg, "progress"), 100);
    done(&r);

    r = norm("{\"event\":\"PhotoUploadProgressed\",\"userId\":\"u1\","
             "\"bytesUploaded\":0,\"totalBytes\":0}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_DBL(nfield(r.msg, "progress"), 0);
    done(&r);

    r = norm("{\"event\":\"PhotoUploadFailed\",\"userId\":\"u1\","
             "\"bytesUploaded\":0,\"totalBytes\":0}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_DBL(nfield(r.msg, "progress"), 0);
    done(&r);

    {
        static const char *const success[] = {
            "upload_completed", "job_completed", "job_complete",
            "file_completed", "session_finalized", "PHOTO_UPLOADED",
            "SESSION_COMPLETED"
        };
        static const char *const failed[] = {
            "upload_failed", "job_failed", "PHOTO_FAILED", "upload_started",
            "progress"
        };
        size_t i;

        for (i = 0; i < sizeof(success) / sizeof(success[0]); i++) {
            r = norm(apr_psprintf(pool, "{\"type\":\"%s\",\"userId\":\"u1\","
                                  "\"bytesCompleted\":0,\"bytesTotal\":0}",
                                  success[i]));
            UPM_CHECK_INT(r.st, UPM_EV_OK);
            UPM_CHECK_DBL(nfield(r.msg, "progress"), 100);
            done(&r);
        }
        for (i = 0; i < sizeof(failed) / sizeof(failed[0]); i++) {
            r = norm(apr_psprintf(pool, "{\"type\":\"%s\",\"userId\":\"u1\","
                                  "\"bytesCompleted\":0,\"bytesTotal\":0}",
                                  failed[i]));
            UPM_CHECK_INT(r.st, UPM_EV_OK);
            UPM_CHECK_DBL(nfield(r.msg, "progress"), 0);
            done(&r);
        }
    }

    /* The bytesCompleted / bytesTotal spelling. */
    r = norm("{\"type\":\"job_progress\",\"userId\":\"u1\",\"jobId\":\"j\","
             "\"bytesCompleted\":250,\"bytesTotal\":1000}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_DBL(nfield(r.msg, "progress"), 25);
    UPM_CHECK(dump_contains(r.msg, "\"progress\":25"));
    done(&r);

    /* bytesUploaded/totalBytes is preferred when both spellings exist. */
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"bytesUploaded\":100,\"totalBytes\":1000,"
             "\"bytesCompleted\":900,\"bytesTotal\":1000}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_DBL(nfield(r.msg, "progress"), 10);
    done(&r);

    /* Half a pair falls back to the other spelling. */
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"bytesUploaded\":100,"
             "\"bytesCompleted\":900,\"bytesTotal\":1000}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_DBL(nfield(r.msg, "progress"), 90);
    done(&r);

    /* Oversized and negative counts are clamped. */
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"bytesUploaded\":1500,\"totalBytes\":1000}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_DBL(nfield(r.msg, "progress"), 100);
    done(&r);
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"bytesUploaded\":-1,\"totalBytes\":1000}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_DBL(nfield(r.msg, "progress"), 0);
    done(&r);

    /* The computed figure replaces a publisher's plain progress number. */
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\",\"progress\":7,"
             "\"bytesUploaded\":455,\"totalBytes\":1000}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_DBL(nfield(r.msg, "progress"), 45.5);
    done(&r);

    /* Non-numeric byte fields: nothing is derived, nothing is changed. */
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\",\"progress\":7,"
             "\"bytesUploaded\":\"455\",\"totalBytes\":1000}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_DBL(nfield(r.msg, "progress"), 7);
    UPM_CHECK(!has(r.msg, "progressPercent"));
    done(&r);
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"bytesUploaded\":null,\"totalBytes\":null}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK(!has(r.msg, "progress"));
    done(&r);

    /* A nested progress object stays as it is; the top-level bytes give
     * progressPercent next to it. */
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"progress\":{\"partsCompleted\":1,\"partsTotal\":4},"
             "\"bytesUploaded\":455,\"totalBytes\":1000}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK(json_is_object(json_object_get(r.msg, "progress")));
    UPM_CHECK_INT(json_object_size(json_object_get(r.msg, "progress")), 2);
    UPM_CHECK_DBL(nfield(r.msg, "progressPercent"), 45.5);
    UPM_CHECK(dump_contains(r.msg, "\"progressPercent\":45.5"));
    done(&r);

    /* Nested bytes alone also give progressPercent. */
    r = norm("{\"type\":\"file_completed\",\"userId\":\"u1\","
             "\"progress\":{\"partsCompleted\":3,\"partsTotal\":3,"
             "\"bytesCompleted\":1,\"bytesTotal\":3}}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_DBL(nfield(r.msg, "progressPercent"), 33.33);
    UPM_CHECK_DBL(nfield(json_object_get(r.msg, "progress"),
                         "bytesCompleted"), 1);
    UPM_CHECK(!has(json_object_get(r.msg, "progress"), "progressPercent"));
    done(&r);

    r = norm("{\"type\":\"file_completed\",\"userId\":\"u1\","
             "\"progress\":{\"bytesCompleted\":0,\"bytesTotal\":0}}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_DBL(nfield(r.msg, "progressPercent"), 100);
    done(&r);

    /* Top-level bytes win over nested ones. */
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"progress\":{\"bytesCompleted\":1,\"bytesTotal\":4},"
             "\"bytesCompleted\":3,\"bytesTotal\":4}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_DBL(nfield(r.msg, "progressPercent"), 75);
    done(&r);

    /* A publisher's progressPercent is never overwritten. */
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"progressPercent\":12,"
             "\"progress\":{\"bytesCompleted\":1,\"bytesTotal\":4}}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK(json_is_integer(json_object_get(r.msg, "progressPercent")));
    UPM_CHECK_DBL(nfield(r.msg, "progressPercent"), 12);
    done(&r);
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"progressPercent\":12,\"progress\":{},"
             "\"bytesUploaded\":3,\"totalBytes\":4}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_DBL(nfield(r.msg, "progressPercent"), 12);
    done(&r);

    /* Nested object without byte counts: nothing derived. */
    r = norm("{\"type\":\"progress\",\"userId\":\"u1\","
             "\"progress\":{\"partsCompleted\":1,\"partsTotal\":4}}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK(!has(r.msg, "progressPercent"));
    done(&r);
}

/* Ties the pieces together the way the publish handler sees them. */
static void test_full_message(void)
{
    norm_result r;
    char *s;

    r = norm_h("{\"event\":\"PhotoUploadProgressed\",\"id\":\"x\","
               "\"photoId\":17,\"sessionId\":\"s-1\","
               "\"bytesUploaded\":455,\"totalBytes\":1000,"
               "\"timestamp\":1795255200123}", NULL, "42");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(r.owner, "42");
    s = json_dumps(r.msg, DUMP_FLAGS | JSON_SORT_KEYS);
    UPM_CHECK_STR(s, "{\"bytesUploaded\":455,\"photoId\":\"17\","
                  "\"progress\":45.5,\"sessionId\":\"s-1\","
                  "\"timestamp\":\"2026-11-21T10:00:00.123Z\","
                  "\"totalBytes\":1000,\"type\":\"upload_progress\","
                  "\"userId\":\"42\"}");
    free(s);
    done(&r);

    /* NULL out-pointers are tolerated (status-only callers). */
    {
        json_t *ev = json_loads("{\"type\":\"progress\",\"userId\":\"u\"}",
                                0, NULL);
        UPM_CHECK_INT(upm_event_normalize(pool, ev, NULL, NULL, 0, NULL,
                                          NULL, NULL), UPM_EV_OK);
        json_decref(ev);
    }
}

/* No owner, but a session, job, project or file: a message to that
 * scope, with the publisher's fields as they were (no userId added). */
static void test_scope_addressed(void)
{
    static const char *const ok[] = {
        "{\"type\":\"PHOTO_UPLOADED\",\"sessionId\":\"s-1\",\"photoId\":\"p\"}",
        "{\"type\":\"progress\",\"jobId\":\"j\"}",
        "{\"type\":\"job_failed\",\"projectId\":\"pr\",\"error\":\"x\"}",
        "{\"type\":\"file_completed\",\"fileId\":\"f\"}",
        "{\"type\":\"progress\",\"jobId\":42}",
        NULL
    };
    static const char *const refused[] = {
        "{\"type\":\"progress\",\"photoId\":\"p\"}",
        "{\"type\":\"progress\",\"sessionId\":\"\"}",
        "{\"type\":\"progress\",\"sessionId\":null}",
        "{\"type\":\"progress\",\"userId\":null,\"jobId\":null}",
        NULL
    };
    int i;
    norm_result r;
    for (i = 0; ok[i]; i++) {
        r = norm(ok[i]);
        UPM_CHECK_INT(r.st, UPM_EV_OK);
        UPM_CHECK(r.owner == NULL);
        UPM_CHECK(r.msg && json_object_get(r.msg, "userId") == NULL);
        UPM_CHECK(r.msg && json_object_get(r.msg, "timestamp") != NULL);
        done(&r);
    }
    for (i = 0; refused[i]; i++) {
        r = norm(refused[i]);
        /* "" is not an id at all (UPM_EV_BAD_FIELD); the rest name no scope */
        UPM_CHECK(r.st == UPM_EV_NO_OWNER || (i == 1 && r.st == UPM_EV_BAD_FIELD));
        done(&r);
    }
    /* The seed's message keeps every field and its own timestamp. */
    r = norm("{\"type\":\"PHOTO_UPLOADED\",\"sessionId\":\"uuid\",\"photoId\":\"uuid\","
             "\"uploadedCount\":47,\"totalCount\":100,\"progressPercent\":47.0,"
             "\"timestamp\":\"2025-11-11T10:30:00Z\"}");
    UPM_CHECK_INT(r.st, UPM_EV_OK);
    UPM_CHECK_STR(sfield(r.msg, "timestamp"), "2025-11-11T10:30:00Z");
    UPM_CHECK_INT(json_object_size(r.msg), 7);
    done(&r);
    /* A scope channel's message needs no ids of its own. */
    {
        json_t *ev = json_loads("{\"type\":\"x\"}", 0, NULL), *msg = NULL;
        const char *owner = "z", *err = NULL;
        UPM_CHECK_INT(upm_event_normalize_scoped(pool, ev, NULL, NULL, 1, 0, &msg, &owner,
                                                 &err), UPM_EV_OK);
        UPM_CHECK(owner == NULL);
        json_decref(msg);
        msg = NULL;
        UPM_CHECK_INT(upm_event_normalize_scoped(pool, ev, NULL, NULL, 0, 0, &msg, &owner,
                                                 &err), UPM_EV_NO_OWNER);
        json_decref(ev);
    }
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);

    test_builtin_map();
    test_override_map();
    test_type_passthrough();
    test_event_and_type();
    test_bad_type();
    test_not_object();
    test_owner();
    test_scope_addressed();
    test_id_fields();
    test_timestamp();
    test_iso8601();
    test_percent_math();
    test_type_classes();
    test_valid_id();
    test_progress_normalize();
    test_full_message();

    apr_pool_destroy(pool);
    apr_terminate();
    UPM_TEST_DONE("event");
}
