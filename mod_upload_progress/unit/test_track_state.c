/* SPDX-License-Identifier: Apache-2.0 */
#include <apr_general.h>
#include <apr_strings.h>
#include <jansson.h>
#include <stdlib.h>
#include "upm_track_state.h"
#include "upm_stats.h"
#include "upm_test.h"

#define SEC(n) ((apr_time_t)(n) * APR_USEC_PER_SEC)
#define STALE SEC(3600)

static upm_track_table *make(apr_pool_t *p, apr_uint32_t n)
{
    void *mem = apr_palloc(p, upm_track_table_bytes(n));
    memset(mem, 0xa5, upm_track_table_bytes(n));     /* not zeroed: init must */
    return upm_track_table_init(mem, n);
}

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    if (!j) {
        fprintf(stderr, "bad JSON: %s\n", s);
    }
    return j;
}

static void test_lifecycle(apr_pool_t *p)
{
    upm_track_table *t = make(p, 16);
    upm_track_slot s;
    apr_uint64_t g1, g2;
    apr_time_t t0 = SEC(1000000);
    int i1, i2;

    UPM_CHECK(upm_track_table_attach(t, 16) == t);
    UPM_CHECK(upm_track_table_attach(t, 17) == NULL);
    UPM_CHECK_INT(upm_track_table_slots(t), 16);
    UPM_CHECK_INT(upm_track_lookup(t, "up-1", "alice", t0, &s), 0);

    i1 = upm_track_begin(t, "up-1", "alice", 1000, t0, STALE, &g1);
    UPM_CHECK(i1 >= 0);
    UPM_CHECK_INT(upm_track_table_active(t), 1);
    UPM_CHECK_INT(upm_track_lookup(t, "up-1", "alice", t0, &s), 1);
    UPM_CHECK_INT(s.phase, UPM_TS_ACTIVE);
    UPM_CHECK_INT(s.size, 1000);
    UPM_CHECK_INT(s.received, 0);

    UPM_CHECK_INT(upm_track_update(t, i1, g1, 400, t0 + SEC(2)), 0);
    UPM_CHECK_INT(upm_track_lookup(t, "up-1", "alice", t0 + SEC(2), &s), 1);
    UPM_CHECK_INT(s.received, 400);

    /* Isolation: another user and an anonymous reader do not see it. */
    UPM_CHECK_INT(upm_track_lookup(t, "up-1", "bob", t0, &s), 0);
    UPM_CHECK_INT(upm_track_lookup(t, "up-1", NULL, t0, &s), 0);
    UPM_CHECK_INT(upm_track_lookup(t, "up-1", "", t0, &s), 0);
    UPM_CHECK_INT(upm_track_owned_by_other(t, "up-1", "bob", t0), 1);
    UPM_CHECK_INT(upm_track_owned_by_other(t, "up-1", "alice", t0), 0);

    /* The same id for another user is a separate upload. */
    i2 = upm_track_begin(t, "up-1", "bob", 50, t0, STALE, &g2);
    UPM_CHECK(i2 >= 0 && i2 != i1);
    UPM_CHECK_INT(upm_track_lookup(t, "up-1", "bob", t0, &s), 1);
    UPM_CHECK_INT(s.size, 50);
    UPM_CHECK_INT(upm_track_lookup(t, "up-1", "alice", t0, &s), 1);
    UPM_CHECK_INT(s.size, 1000);

    /* Finish: done, readable until it expires. */
    UPM_CHECK_INT(upm_track_finish(t, i1, g1, 1, 200, -1, 1000, t0 + SEC(4), SEC(60)), 0);
    UPM_CHECK_INT(upm_track_lookup(t, "up-1", "alice", t0 + SEC(5), &s), 1);
    UPM_CHECK_INT(s.phase, UPM_TS_DONE);
    UPM_CHECK_INT(s.status, 200);
    UPM_CHECK_INT(upm_track_lookup(t, "up-1", "alice", t0 + SEC(64) + 1, &s), 0);
    /* Finishing twice, or updating a finished upload, is refused. */
    UPM_CHECK_INT(upm_track_finish(t, i1, g1, 0, 500, 0, 1000, t0 + SEC(5), SEC(60)), -1);
    UPM_CHECK_INT(upm_track_update(t, i1, g1, 5, t0 + SEC(5)), -1);
    UPM_CHECK_INT(upm_track_table_active(t), 1);
}

static void test_reuse(apr_pool_t *p)
{
    upm_track_table *t = make(p, 16);
    upm_track_slot s;
    apr_uint64_t g1, g2;
    apr_time_t t0 = SEC(2000000);
    int i1, i2;

    /* A reused id after the first upload finished: a new upload. */
    i1 = upm_track_begin(t, "same", "u", 10, t0, STALE, &g1);
    UPM_CHECK_INT(upm_track_finish(t, i1, g1, 1, 201, -1, 10, t0, SEC(60)), 0);
    i2 = upm_track_begin(t, "same", "u", 99, t0 + SEC(1), STALE, &g2);
    UPM_CHECK_INT(i2, i1);
    UPM_CHECK(g2 != g1);
    UPM_CHECK_INT(upm_track_lookup(t, "same", "u", t0 + SEC(1), &s), 1);
    UPM_CHECK_INT(s.phase, UPM_TS_ACTIVE);
    UPM_CHECK_INT(s.size, 99);
    UPM_CHECK_INT(s.received, 0);

    /* Reused while the first is still running: the newer one wins and the
     * older request can no longer write into it. */
    {
        apr_uint64_t g3;
        int i3 = upm_track_begin(t, "same", "u", 7, t0 + SEC(2), STALE, &g3);
        UPM_CHECK_INT(i3, i2);
        UPM_CHECK_INT(upm_track_update(t, i2, g2, 50, t0 + SEC(2)), -1);
        UPM_CHECK_INT(upm_track_finish(t, i2, g2, 0, 400, UPM_UF_ABORTED, 50, t0, SEC(60)), -1);
        UPM_CHECK_INT(upm_track_update(t, i3, g3, 3, t0 + SEC(2)), 0);
        UPM_CHECK_INT(upm_track_lookup(t, "same", "u", t0 + SEC(2), &s), 1);
        UPM_CHECK_INT(s.size, 7);
        UPM_CHECK_INT(s.received, 3);
        UPM_CHECK_INT(upm_track_table_active(t), 1);
    }

    /* Anonymous uploads are keyed apart from owned ones. */
    {
        apr_uint64_t ga;
        int ia = upm_track_begin(t, "same", NULL, 5, t0, STALE, &ga);
        UPM_CHECK(ia >= 0 && ia != i2);
        UPM_CHECK_INT(upm_track_lookup(t, "same", NULL, t0, &s), 1);
        UPM_CHECK_INT(s.size, 5);
        UPM_CHECK_INT(s.has_owner, 0);
        /* An owner reads its own upload rather than the anonymous one;
         * any other user reads the anonymous one (public by nature). */
        UPM_CHECK_INT(upm_track_lookup(t, "same", "u", t0, &s), 1);
        UPM_CHECK_INT(s.size, 7);
        UPM_CHECK_INT(upm_track_lookup(t, "same", "zed", t0, &s), 1);
        UPM_CHECK_INT(s.size, 5);
        UPM_CHECK_INT(upm_track_owned_by_other(t, "same", "zed", t0), 1);
        UPM_CHECK_INT(upm_track_owned_by_other(t, "same", "u", t0), 0);
    }

    /* Too long ids or owners are not tracked. */
    {
        char longid[UPM_TRACK_ID_MAX + 2], longowner[UPM_TRACK_OWNER_MAX + 2];
        apr_uint64_t g;
        memset(longid, 'a', sizeof(longid) - 1);
        longid[sizeof(longid) - 1] = '\0';
        memset(longowner, 'o', sizeof(longowner) - 1);
        longowner[sizeof(longowner) - 1] = '\0';
        UPM_CHECK_INT(upm_track_begin(t, longid, "u", 1, t0, STALE, &g), -1);
        UPM_CHECK_INT(upm_track_begin(t, "x", longowner, 1, t0, STALE, &g), -1);
        UPM_CHECK_INT(upm_track_begin(t, "", "u", 1, t0, STALE, &g), -1);
        longid[UPM_TRACK_ID_MAX] = '\0';
        UPM_CHECK(upm_track_begin(t, longid, "u", 1, t0, STALE, &g) >= 0);
    }
}

static void test_eviction(apr_pool_t *p)
{
    upm_track_table *t = make(p, 16);
    upm_track_slot s;
    apr_uint64_t g[16], gx;
    int idx[16], i;
    apr_time_t t0 = SEC(3000000);
    char id[32];

    for (i = 0; i < 16; i++) {
        apr_snprintf(id, sizeof(id), "e%d", i);
        idx[i] = upm_track_begin(t, id, "u", 100, t0 + i, STALE, &g[i]);
        UPM_CHECK(idx[i] >= 0);
    }
    /* Full of uploads in flight: no room. */
    UPM_CHECK_INT(upm_track_begin(t, "new", "u", 1, t0 + SEC(1), STALE, &gx), -1);

    /* Finished ones give way, least recently updated first, even before
     * they expire. */
    UPM_CHECK_INT(upm_track_finish(t, idx[5], g[5], 1, 200, -1, 100, t0 + SEC(3), SEC(60)), 0);
    UPM_CHECK_INT(upm_track_finish(t, idx[9], g[9], 1, 200, -1, 100, t0 + SEC(2), SEC(60)), 0);
    UPM_CHECK_INT(upm_track_begin(t, "new1", "u", 1, t0 + SEC(4), STALE, &gx), idx[9]);
    UPM_CHECK_INT(upm_track_lookup(t, "e9", "u", t0 + SEC(4), &s), 0);
    UPM_CHECK_INT(upm_track_lookup(t, "e5", "u", t0 + SEC(4), &s), 1);
    UPM_CHECK_INT(upm_track_begin(t, "new2", "u", 1, t0 + SEC(4), STALE, &gx), idx[5]);

    /* An expired one goes before an unexpired, more recently used one. */
    UPM_CHECK_INT(upm_track_finish(t, idx[1], g[1], 1, 200, -1, 100, t0 + SEC(10), SEC(60)), 0);
    UPM_CHECK_INT(upm_track_finish(t, idx[2], g[2], 1, 200, -1, 100, t0 + SEC(5), SEC(1)), 0);
    UPM_CHECK_INT(upm_track_begin(t, "new3", "u", 1, t0 + SEC(20), STALE, &gx), idx[2]);

    /* An upload in flight with no progress for `stale` is abandoned. */
    UPM_CHECK_INT(upm_track_begin(t, "new4", "u", 1, t0 + SEC(30), STALE, &gx), idx[1]);
    UPM_CHECK_INT(upm_track_begin(t, "new5", "u", 1, t0 + SEC(40), STALE, &gx), -1);
    UPM_CHECK_INT(upm_track_update(t, idx[0], g[0], 50, t0 + SEC(3000)), 0);
    i = upm_track_begin(t, "new5", "u", 1, t0 + STALE + SEC(10), STALE, &gx);
    UPM_CHECK_INT(i, idx[3]);       /* e3: oldest untouched; e0 was updated */
    UPM_CHECK_INT(upm_track_update(t, idx[3], g[3], 60, t0 + STALE + SEC(11)), -1);
}

static void test_math(void)
{
    UPM_CHECK_INT(upm_track_speed(1000, SEC(10), SEC(12)), 500);
    UPM_CHECK_INT(upm_track_speed(1000, SEC(10), SEC(10)), 0);
    UPM_CHECK_INT(upm_track_speed(1000, SEC(10), SEC(10) + 999), 0);
    UPM_CHECK_INT(upm_track_speed(1000, SEC(10), SEC(10) + 1000), 1000000);
    UPM_CHECK_INT(upm_track_speed(0, SEC(10), SEC(20)), 0);
    UPM_CHECK_INT(upm_track_speed(1000, SEC(10), SEC(9)), 0);  /* clock went back */
    /* No overflow for huge bodies. */
    UPM_CHECK_INT(upm_track_speed((apr_int64_t)1 << 50, SEC(0), SEC(1024)),
                  ((apr_int64_t)1 << 50) / 1024);

    UPM_CHECK_INT(upm_track_eta(500, 1000, 100), 5);
    UPM_CHECK_INT(upm_track_eta(500, 1000, 300), 2);   /* 1.67 rounds up */
    UPM_CHECK_INT(upm_track_eta(1000, 1000, 300), 0);
    UPM_CHECK_INT(upm_track_eta(1200, 1000, 300), 0);
    UPM_CHECK_INT(upm_track_eta(500, -1, 100), -1);
    UPM_CHECK_INT(upm_track_eta(500, 1000, 0), -1);
}

static void test_report(apr_pool_t *p)
{
    upm_track_table *t = make(p, 16);
    upm_track_slot s;
    apr_uint64_t g;
    apr_time_t t0 = SEC(1700000000);
    json_t *j;
    int i;

    /* Unknown id: the old module's "starting". */
    j = parse(upm_track_report_json(p, "abc", NULL, t0));
    UPM_CHECK_STR(json_string_value(json_object_get(j, "state")), "starting");
    UPM_CHECK_STR(json_string_value(json_object_get(j, "uuid")), "abc");
    UPM_CHECK_INT(json_object_size(j), 2);
    json_decref(j);

    /* Begun, no byte yet: the old module's bare "starting". */
    i = upm_track_begin(t, "abc", "u", 1000, t0, STALE, &g);
    upm_track_lookup(t, "abc", "u", t0, &s);
    UPM_CHECK_STR(upm_track_report_json(p, "abc", &s, t0),
                  "{\"state\":\"starting\",\"uuid\":\"abc\"}");

    /* 250 of 1000 bytes, read last and asked at 1.5 s:
     * speed over whole seconds (250 / 1), eta the Unix time of the end at
     * that speed (t0 + 1000 / 250), seconds_left from the exact rate
     * (750 / 166.67 = 4.5, rounded up). */
    upm_track_update(t, i, g, 250, t0 + SEC(1) + 500000);
    upm_track_lookup(t, "abc", "u", t0 + SEC(1) + 900000, &s);
    UPM_CHECK_STR(upm_track_report_json(p, "abc", &s, t0 + SEC(1) + 500000),
                  "{\"state\":\"uploading\",\"received\":250,\"size\":1000,\"speed\":250,"
                  "\"started_at\":1700000000,\"eta\":1700000004,\"seconds_left\":5,"
                  "\"uuid\":\"abc\"}");
    /* An eta already past reads now + 1, as in the old module. */
    j = parse(upm_track_report_json(p, "abc", &s, t0 + SEC(9)));
    UPM_CHECK_INT(json_integer_value(json_object_get(j, "eta")), 1700000010);
    json_decref(j);

    /* Done: completed_at is when the request ended (2.7 s), speed is to
     * the last byte read (2.2 s: 1000 / 2); no eta. */
    upm_track_update(t, i, g, 1000, t0 + SEC(2) + 200000);
    upm_track_finish(t, i, g, 1, 200, -1, 1000, t0 + SEC(2) + 700000, SEC(60));
    upm_track_lookup(t, "abc", "u", t0 + SEC(30), &s);
    UPM_CHECK_STR(upm_track_report_json(p, "abc", &s, t0 + SEC(30)),
                  "{\"state\":\"done\",\"received\":1000,\"size\":1000,\"speed\":500,"
                  "\"started_at\":1700000000,\"completed_at\":1700000002,\"uuid\":\"abc\"}");

    /* Within the first second the old module's speed is 0 and its eta
     * now + 1. */
    i = upm_track_begin(t, "fst", "u", 1000, t0, STALE, &g);
    upm_track_update(t, i, g, 100, t0 + 300000);
    upm_track_lookup(t, "fst", "u", t0 + 400000, &s);
    j = parse(upm_track_report_json(p, "fst", &s, t0 + 400000));
    UPM_CHECK_INT(json_integer_value(json_object_get(j, "speed")), 0);
    UPM_CHECK_INT(json_integer_value(json_object_get(j, "eta")), 1700000001);
    UPM_CHECK_INT(json_integer_value(json_object_get(j, "seconds_left")), 4);
    json_decref(j);

    /* Chunked: size is what arrived, so the end is now (eta now + 1) and
     * seconds_left unknown; at the end the size. */
    i = upm_track_begin(t, "chk", "u", -1, t0, STALE, &g);
    upm_track_update(t, i, g, 300, t0 + SEC(2));
    upm_track_lookup(t, "chk", "u", t0 + SEC(2), &s);
    j = parse(upm_track_report_json(p, "chk", &s, t0 + SEC(2)));
    UPM_CHECK_STR(json_string_value(json_object_get(j, "state")), "uploading");
    UPM_CHECK_INT(json_integer_value(json_object_get(j, "size")), 300);
    UPM_CHECK_INT(json_integer_value(json_object_get(j, "speed")), 150);
    UPM_CHECK_INT(json_integer_value(json_object_get(j, "eta")), 1700000003);
    UPM_CHECK(json_is_null(json_object_get(j, "seconds_left")));
    json_decref(j);
    upm_track_finish(t, i, g, 1, 201, -1, 700, t0 + SEC(2), SEC(60));
    upm_track_lookup(t, "chk", "u", t0 + SEC(2), &s);
    UPM_CHECK_INT(s.size, 700);

    /* Error: the old module's status, then our reason and figures; no
     * speed, times or eta. */
    i = upm_track_begin(t, "err", "u", 5000, t0, STALE, &g);
    upm_track_finish(t, i, g, 0, 413, UPM_UF_TOO_LARGE, 0, t0 + SEC(1), SEC(60));
    upm_track_lookup(t, "err", "u", t0 + SEC(1), &s);
    UPM_CHECK_STR(upm_track_report_json(p, "err", &s, t0 + SEC(1)),
                  "{\"state\":\"error\",\"status\":413,\"reason\":\"too_large\","
                  "\"received\":0,\"size\":5000,\"uuid\":\"err\"}");
}

static void test_old_math(void)
{
    UPM_CHECK_INT(upm_track_old_speed(1000, SEC(10), SEC(12)), 500);
    /* Whole seconds: 10.9 -> 12.1 is 2 s, 10.1 -> 10.9 is 0 s. */
    UPM_CHECK_INT(upm_track_old_speed(1000, SEC(10) + 900000, SEC(12) + 100000), 500);
    UPM_CHECK_INT(upm_track_old_speed(1000, SEC(10) + 100000, SEC(10) + 900000), 0);
    UPM_CHECK_INT(upm_track_old_speed(0, SEC(10), SEC(20)), 0);
    UPM_CHECK_INT(upm_track_old_speed(1000, SEC(10), SEC(9)), 0);  /* clock went back */
    UPM_CHECK_INT(upm_track_old_eta(1000, 100, SEC(50), SEC(52)), 60);
    UPM_CHECK_INT(upm_track_old_eta(1000, 100, SEC(50), SEC(60)), 61);
    UPM_CHECK_INT(upm_track_old_eta(1000, 0, SEC(50), SEC(52)), 53);
}

int main(void)
{
    apr_pool_t *p;
    apr_initialize();
    apr_pool_create(&p, NULL);
    test_lifecycle(p);
    test_reuse(p);
    test_eviction(p);
    test_math();
    test_report(p);
    test_old_math();
    apr_pool_destroy(p);
    apr_terminate();
    UPM_TEST_DONE("track_state");
}
