/* SPDX-License-Identifier: Apache-2.0 */
#include <apr_general.h>
#include <apr_strings.h>
#include "upm_ws_proto.h"
#include "upm_test.h"

static apr_pool_t *pool;

static upm_wsp_result run(upm_wsp_state *st, const char *text, apr_time_t now)
{
    upm_wsp_result res;
    upm_wsp_handle(st, pool, text, strlen(text), now, &res);
    return res;
}

static const char *reply(const upm_wsp_result *res)
{
    apr_size_t len;
    const char *s = upm_wsp_reply(pool, res, &len);
    return s ? s : "(none)";
}

#define T0 ((apr_time_t)1700000000 * APR_USEC_PER_SEC)
#define SEC(n) ((apr_time_t)(n) * APR_USEC_PER_SEC)

static void test_errors(void)
{
    upm_wsp_state st;
    upm_wsp_result r;

    upm_wsp_init(&st, NULL);
    r = run(&st, "{\"type\":", T0);
    UPM_CHECK_INT(r.action, UPM_WSP_ERROR);
    UPM_CHECK_STR(r.code, "invalid_json");
    r = run(&st, "[1,2]", T0);
    UPM_CHECK_STR(r.code, "invalid_message");
    r = run(&st, "{\"projectId\":\"p\"}", T0);
    UPM_CHECK_STR(r.code, "invalid_message");
    r = run(&st, "{\"type\":7}", T0);
    UPM_CHECK_STR(r.code, "invalid_message");
    r = run(&st, "{\"type\":\"hello\"}", T0);
    UPM_CHECK_STR(r.code, "unknown_type");
    UPM_CHECK_STR(reply(&r), "{\"type\":\"error\",\"code\":\"unknown_type\",\"message\":"
                  "\"unknown message type \\\"hello\\\": use subscribe, unsubscribe, "
                  "resume or ping\"}");
    r = run(&st, "{\"type\":\"subscribe\"}", T0);
    UPM_CHECK_STR(r.code, "invalid_message");
    r = run(&st, "{\"type\":\"subscribe\",\"jobId\":\"a\",\"fileId\":\"b\"}", T0);
    UPM_CHECK_STR(r.code, "invalid_message");
    r = run(&st, "{\"type\":\"subscribe\",\"jobId\":\"a b\"}", T0);
    UPM_CHECK_STR(r.code, "invalid_id");
    r = run(&st, "{\"type\":\"subscribe\",\"jobId\":\"a@b\"}", T0);
    UPM_CHECK_STR(r.code, "invalid_id");
    r = run(&st, "{\"type\":\"subscribe\",\"jobId\":12}", T0);
    UPM_CHECK_STR(r.code, "invalid_id");
    r = run(&st, "{\"type\":\"subscribe\",\"jobId\":\"\"}", T0);
    UPM_CHECK_STR(r.code, "invalid_id");
    {
        char *id = apr_pstrcat(pool, "{\"type\":\"subscribe\",\"jobId\":\"",
                               apr_psprintf(pool, "%0129d", 0), "\"}", NULL);
        r = run(&st, id, T0);
        UPM_CHECK_STR(r.code, "invalid_id");
        id = apr_pstrcat(pool, "{\"type\":\"subscribe\",\"jobId\":\"",
                         apr_psprintf(pool, "%0128d", 0), "\"}", NULL);
        r = run(&st, id, T0 + SEC(1));
        UPM_CHECK_INT(r.action, UPM_WSP_SUBSCRIBED);
    }
    r = run(&st, "{\"type\":\"subscribe\",\"jobId\":\"x\",\"jobId\":\"y\"}", T0 + SEC(1));
    UPM_CHECK_STR(r.code, "invalid_json");        /* duplicate keys are ambiguous */
    r = run(&st, "{\"type\":\"resume\"}", T0 + SEC(1));
    UPM_CHECK_STR(r.code, "invalid_message");
    r = run(&st, "{\"type\":\"resume\",\"lastEventId\":5}", T0 + SEC(1));
    UPM_CHECK_STR(r.code, "invalid_message");
    r = run(&st, "{\"type\":\"unsubscribe\",\"jobId\":\"nope\"}", T0 + SEC(1));
    UPM_CHECK_STR(r.code, "not_subscribed");
    /* an error changes nothing */
    UPM_CHECK_INT(st.nsubs, 1);
}

static void test_subscriptions(void)
{
    upm_wsp_state st;
    upm_wsp_result r;
    int i;

    upm_wsp_init(&st, NULL);
    r = run(&st, "{\"type\":\"subscribe\",\"projectId\":\"p1\"}", T0);
    UPM_CHECK_INT(r.action, UPM_WSP_SUBSCRIBED);
    UPM_CHECK_INT(r.field, UPM_F_PROJECT);
    UPM_CHECK_STR(r.id, "p1");
    UPM_CHECK_INT(r.index, 0);
    UPM_CHECK_INT(r.existed, 0);
    UPM_CHECK_STR(reply(&r), "{\"type\":\"subscribed\",\"projectId\":\"p1\"}");
    r = run(&st, "{\"type\":\"subscribe\",\"jobId\":\"j1\",\"requestId\":3}", T0);
    UPM_CHECK_INT(r.index, 1);
    r = run(&st, "{\"type\":\"subscribe\",\"projectId\":\"p1\"}", T0);
    UPM_CHECK_INT(r.action, UPM_WSP_SUBSCRIBED);
    UPM_CHECK_INT(r.existed, 1);
    UPM_CHECK_INT(r.index, 0);
    UPM_CHECK_INT(st.nsubs, 2);
    r = run(&st, "{\"type\":\"subscribe\",\"sessionId\":\"s-1:x.y_z\"}", T0);
    r = run(&st, "{\"type\":\"subscribe\",\"fileId\":\"f1\"}", T0);
    r = run(&st, "{\"type\":\"subscribe\",\"photoId\":\"ph1\"}", T0);
    UPM_CHECK_INT(st.nsubs, 5);
    /* unsubscribing moves the last entry into the freed slot */
    r = run(&st, "{\"type\":\"unsubscribe\",\"projectId\":\"p1\"}", T0);
    UPM_CHECK_INT(r.action, UPM_WSP_UNSUBSCRIBED);
    UPM_CHECK_INT(r.index, 0);
    UPM_CHECK_STR(reply(&r), "{\"type\":\"unsubscribed\",\"projectId\":\"p1\"}");
    UPM_CHECK_INT(st.nsubs, 4);
    UPM_CHECK_INT(st.subs[0].field, UPM_F_PHOTO);
    UPM_CHECK_STR(st.subs[0].id, "ph1");

    /* 64 at most (paced under the rate limit) */
    upm_wsp_init(&st, NULL);
    for (i = 0; i < 64; i++) {
        r = run(&st, apr_psprintf(pool, "{\"type\":\"subscribe\",\"jobId\":\"j%d\"}", i),
                T0 + SEC(i / 20));
        UPM_CHECK_INT(r.action, UPM_WSP_SUBSCRIBED);
    }
    r = run(&st, "{\"type\":\"subscribe\",\"jobId\":\"one-more\"}", T0 + SEC(10));
    UPM_CHECK_STR(r.code, "too_many_subscriptions");
    r = run(&st, "{\"type\":\"subscribe\",\"jobId\":\"j5\"}", T0 + SEC(10));
    UPM_CHECK_INT(r.action, UPM_WSP_SUBSCRIBED);   /* re-subscribing is fine */
    r = run(&st, "{\"type\":\"unsubscribe\",\"jobId\":\"j5\"}", T0 + SEC(10));
    r = run(&st, "{\"type\":\"subscribe\",\"jobId\":\"one-more\"}", T0 + SEC(10));
    UPM_CHECK_INT(r.action, UPM_WSP_SUBSCRIBED);

    /* app-level ping */
    r = run(&st, "{\"type\":\"ping\"}", T0);
    UPM_CHECK_INT(r.action, UPM_WSP_PONG);
    UPM_CHECK_STR(reply(&r), "{\"type\":\"pong\"}");
    r = run(&st, "{\"type\":\"resume\",\"lastEventId\":\"17-4\"}", T0 + SEC(20));
    UPM_CHECK_INT(r.action, UPM_WSP_RESUME);
    UPM_CHECK_STR(r.last_event_id, "17-4");
    UPM_CHECK_STR(reply(&r), "(none)");
}

static void test_scope(void)
{
    upm_wsp_state st;
    upm_wsp_result r;
    const char *base[UPM_F__COUNT] = { 0 };

    base[UPM_F_SESSION] = "s1";
    upm_wsp_init(&st, base);
    r = run(&st, "{\"type\":\"subscribe\",\"sessionId\":\"s2\"}", T0);
    UPM_CHECK_STR(r.code, "out_of_scope");
    r = run(&st, "{\"type\":\"subscribe\",\"sessionId\":\"s1\"}", T0);
    UPM_CHECK_INT(r.action, UPM_WSP_SUBSCRIBED);
    r = run(&st, "{\"type\":\"subscribe\",\"fileId\":\"f\"}", T0);
    UPM_CHECK_INT(r.action, UPM_WSP_SUBSCRIBED);
}

static void test_rate(void)
{
    upm_wsp_state st;
    upm_wsp_result r;
    int i, ok = 0, limited = 0;

    upm_wsp_init(&st, NULL);
    /* 25 within 100 ms: 20 pass, 5 are refused */
    for (i = 0; i < 25; i++) {
        r = run(&st, apr_psprintf(pool, "{\"type\":\"subscribe\",\"fileId\":\"f%d\"}", i),
                T0 + i * 4000);
        if (r.action == UPM_WSP_SUBSCRIBED) {
            ok++;
        }
        else if (strcmp(r.code, "rate_limited") == 0) {
            limited++;
        }
    }
    UPM_CHECK_INT(ok, 20);
    UPM_CHECK_INT(limited, 5);
    UPM_CHECK_INT(st.nsubs, 20);
    /* pings and bad messages do not count, and are not limited */
    r = run(&st, "{\"type\":\"ping\"}", T0 + 100000);
    UPM_CHECK_INT(r.action, UPM_WSP_PONG);
    /* a second after the first op, one slot is free again */
    r = run(&st, "{\"type\":\"unsubscribe\",\"fileId\":\"f0\"}", T0 + SEC(1) - 1);
    UPM_CHECK_STR(r.code, "rate_limited");
    r = run(&st, "{\"type\":\"unsubscribe\",\"fileId\":\"f0\"}", T0 + SEC(1));
    UPM_CHECK_INT(r.action, UPM_WSP_UNSUBSCRIBED);
    r = run(&st, "{\"type\":\"unsubscribe\",\"fileId\":\"f1\"}", T0 + SEC(1));
    UPM_CHECK_STR(r.code, "rate_limited");
    r = run(&st, "{\"type\":\"unsubscribe\",\"fileId\":\"f1\"}", T0 + SEC(1) + 4000);
    UPM_CHECK_INT(r.action, UPM_WSP_UNSUBSCRIBED);
    /* resume counts too */
    for (i = 0; i < 20; i++) {
        r = run(&st, "{\"type\":\"resume\",\"lastEventId\":\"1-1\"}", T0 + SEC(5));
        UPM_CHECK_INT(r.action, UPM_WSP_RESUME);
    }
    r = run(&st, "{\"type\":\"resume\",\"lastEventId\":\"1-1\"}", T0 + SEC(5));
    UPM_CHECK_STR(r.code, "rate_limited");
}

static void test_misc(void)
{
    apr_size_t len;
    upm_wsp_result r;
    UPM_CHECK_STR(upm_wsp_connected(pool, "abc123", NULL, &len),
                  "{\"type\":\"connected\",\"clientId\":\"abc123\"}");
    UPM_CHECK_STR(upm_wsp_connected(pool, "abc123", "17-4", &len),
                  "{\"type\":\"connected\",\"clientId\":\"abc123\",\"lastEventId\":\"17-4\"}");
    UPM_CHECK(upm_wsp_valid_id("A-z_0.9:x"));
    UPM_CHECK(!upm_wsp_valid_id("a/b"));
    UPM_CHECK(!upm_wsp_valid_id(""));
    UPM_CHECK(!upm_wsp_valid_id(NULL));
    /* a detail that cannot be encoded falls back to the code */
    memset(&r, 0, sizeof(r));
    r.action = UPM_WSP_ERROR;
    r.code = "unknown_type";
    r.message = "bad \xc3";
    UPM_CHECK_STR(upm_wsp_reply(pool, &r, &len),
                  "{\"type\":\"error\",\"code\":\"unknown_type\",\"message\":\"unknown_type\"}");
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    test_errors();
    test_subscriptions();
    test_scope();
    test_rate();
    test_misc();
    apr_pool_destroy(pool);
    apr_terminate();
    UPM_TEST_DONE("ws_proto");
}
