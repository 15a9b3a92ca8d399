/* SPDX-License-Identifier: Apache-2.0 */
#include <apr_general.h>
#include <apr_strings.h>
#include "upm_redis_logic.h"
#include "upm_test.h"

static apr_pool_t *p;

static void test_backoff(void)
{
    apr_interval_time_t min = 100000, max = 2000000, prev_hi = 0;
    unsigned a;
    apr_uint32_t r;
    int ok = 1;

    for (a = 0; a < 40; a++) {
        apr_interval_time_t lo = -1, hi = -1, d = min;
        unsigned k;
        for (k = 0; k < a && d < max; k++) {
            d *= 2;
        }
        if (d > max) {
            d = max;
        }
        for (r = 0; r < 2000; r += 7) {
            apr_interval_time_t v = upm_backoff_delay(a, min, max, r * 2654435761u);
            if (v < d / 2 || v > d || v > max) {
                ok = 0;
            }
            if (lo < 0 || v < lo) lo = v;
            if (v > hi) hi = v;
        }
        /* Grows until the cap, never beyond it, and is spread out. */
        if (hi < prev_hi || hi - lo < d / 4) {
            ok = 0;
        }
        prev_hi = hi;
    }
    UPM_CHECK(ok);
    UPM_CHECK_INT(upm_backoff_delay(0, min, max, 0), 50000);
    UPM_CHECK_INT(upm_backoff_delay(0, min, max, 50000), 100000);
    UPM_CHECK_INT(upm_backoff_delay(1000000, min, max, 0), 1000000);
    UPM_CHECK(upm_backoff_delay(3, min, max, 0xffffffffu) <= 800000);
    /* Silly bounds do not break it. */
    UPM_CHECK(upm_backoff_delay(5, 0, 0, 12345) <= 1);
    UPM_CHECK(upm_backoff_delay(5, 500, 100, 12345) <= 500);
}

static int g(const char *pat, const char *s)
{
    return upm_redis_glob(pat, s, strlen(s));
}

/* A stream entry's timestamp is its id's time, whoever reads it when. */
static void test_xid_time(void)
{
    upm_xid x;
    UPM_CHECK(upm_xid_parse("1795303935706-7", 15, &x) == 0);
    UPM_CHECK(upm_xid_time(x) == (apr_time_t)1795303935706LL * 1000);
    x.ms = 0;
    UPM_CHECK(upm_xid_time(x) == 0);
    x.ms = (apr_uint64_t)-1;
    UPM_CHECK(upm_xid_time(x) == 0);
}

static void test_glob(void)
{
    UPM_CHECK(g("user:*", "user:42"));
    UPM_CHECK(g("user:*", "user:"));
    UPM_CHECK(!g("user:*", "users:42"));
    UPM_CHECK(!g("user:*", "xuser:42"));
    UPM_CHECK(g("upload-session:*", "upload-session:abc-1"));
    UPM_CHECK(g("*", ""));
    UPM_CHECK(g("a*b*c", "aXXbYYc"));
    UPM_CHECK(!g("a*b*c", "aXXbYY"));
    UPM_CHECK(g("h?llo", "hello"));
    UPM_CHECK(!g("h?llo", "hllo"));
    UPM_CHECK(g("h[ae]llo", "hallo"));
    UPM_CHECK(!g("h[ae]llo", "hillo"));
    UPM_CHECK(g("h[^e]llo", "hallo"));
    UPM_CHECK(!g("h[^e]llo", "hello"));
    UPM_CHECK(g("h[a-c]llo", "hbllo"));
    UPM_CHECK(g("h[c-a]llo", "hbllo"));
    UPM_CHECK(!g("h[a-c]llo", "hdllo"));
    UPM_CHECK(g("a\\*b", "a*b"));
    UPM_CHECK(!g("a\\*b", "aXb"));
    UPM_CHECK(g("exact", "exact"));
    UPM_CHECK(!g("exact", "exactly"));
    /* Channel names may hold NULs: the length counts, not the string. */
    UPM_CHECK(!upm_redis_glob("user:a", "user:a\0b", 8));
    UPM_CHECK(upm_redis_glob("user:*", "user:a\0b", 8));
}

static void test_channel_scope(void)
{
    static const upm_chan_scope r[] = {
        { 5, "upload-session:" }, { 4, "job:" }, { 6, "project:" }
    };
    const char *id;
    UPM_CHECK_INT(upm_channel_scope(p, r, 3, "upload-session:s1", 17, &id), 5);
    UPM_CHECK_STR(id, "s1");
    UPM_CHECK_INT(upm_channel_scope(p, r, 3, "job:a:b", 7, &id), 4);
    UPM_CHECK_STR(id, "a:b");
    UPM_CHECK_INT(upm_channel_scope(p, r, 3, "project:p", 9, &id), 6);
    UPM_CHECK_INT(upm_channel_scope(p, r, 3, "project:", 8, &id), -1);
    UPM_CHECK(id == NULL);
    UPM_CHECK_INT(upm_channel_scope(p, r, 3, "user:1", 6, &id), -1);
    UPM_CHECK_INT(upm_channel_scope(p, r, 3, "jobs:1", 6, &id), -1);
    UPM_CHECK_INT(upm_channel_scope(p, r, 0, "job:1", 5, &id), -1);
    /* the length given, not the NUL */
    UPM_CHECK_INT(upm_channel_scope(p, r, 3, "job:12345", 5, &id), 4);
    UPM_CHECK_STR(id, "1");
}

static void test_channels(void)
{
    static const char *const pats[] = { "user:*", "*", "job:*" };
    UPM_CHECK_INT(upm_patterns_first(pats, 3, "user:1", 6), 0);
    UPM_CHECK_INT(upm_patterns_first(pats, 3, "job:1", 5), 1);
    UPM_CHECK_INT(upm_patterns_first(pats + 2, 1, "user:1", 6), -1);
    UPM_CHECK_STR(upm_channel_owner(p, "user:42", 7), "42");
    UPM_CHECK_STR(upm_channel_owner(p, "user:a:b", 8), "a:b");
    UPM_CHECK(upm_channel_owner(p, "user:", 5) == NULL);
    UPM_CHECK(upm_channel_owner(p, "users:42", 8) == NULL);
    UPM_CHECK(upm_channel_owner(p, "upload-session:s1", 17) == NULL);
    UPM_CHECK(upm_channel_owner(p, "job:1", 5) == NULL);
    /* The hash tells channel from payload. */
    UPM_CHECK(upm_msg_hash("ab", 2, "c", 1) != upm_msg_hash("a", 1, "bc", 2));
    UPM_CHECK(upm_msg_hash("a", 1, "b", 1) == upm_msg_hash("a", 1, "b", 1));
}

static void test_xid(void)
{
    upm_xid a, b;
    char buf[UPM_XID_LEN];
    UPM_CHECK_INT(upm_xid_parse("1700000000000-5", 15, &a), 0);
    UPM_CHECK(a.ms == 1700000000000ULL && a.seq == 5);
    UPM_CHECK_INT(upm_xid_parse("0-0", 3, &b), 0);
    UPM_CHECK(upm_xid_cmp(a, b) > 0 && upm_xid_cmp(b, a) < 0 && upm_xid_cmp(a, a) == 0);
    UPM_CHECK_INT(upm_xid_parse("5-10", 4, &a), 0);
    UPM_CHECK_INT(upm_xid_parse("5-9", 3, &b), 0);
    UPM_CHECK(upm_xid_cmp(a, b) > 0);      /* numeric, not lexical */
    UPM_CHECK_INT(upm_xid_parse("6-0", 3, &b), 0);
    UPM_CHECK(upm_xid_cmp(a, b) < 0);
    UPM_CHECK_INT(upm_xid_parse("18446744073709551615-18446744073709551615", 41, &a), 0);
    upm_xid_format(buf, a);
    UPM_CHECK_STR(buf, "18446744073709551615-18446744073709551615");
    UPM_CHECK_INT(upm_xid_parse("18446744073709551616-0", 22, &a), -1);
    UPM_CHECK_INT(upm_xid_parse("5", 1, &a), -1);
    UPM_CHECK_INT(upm_xid_parse("5-", 2, &a), -1);
    UPM_CHECK_INT(upm_xid_parse("-5", 2, &a), -1);
    UPM_CHECK_INT(upm_xid_parse("5-x", 3, &a), -1);
    UPM_CHECK_INT(upm_xid_parse("5-5-5", 5, &a), -1);
    UPM_CHECK_INT(upm_xid_parse("+", 1, &a), -1);
    UPM_CHECK_INT(upm_xid_parse(NULL, 0, &a), -1);
    /* Only len bytes count. */
    UPM_CHECK_INT(upm_xid_parse("12-34xyz", 5, &a), 0);
    UPM_CHECK(a.ms == 12 && a.seq == 34);
}

static upm_xid X(apr_uint64_t ms, apr_uint64_t seq)
{
    upm_xid x;
    x.ms = ms;
    x.seq = seq;
    return x;
}

static void test_xinfo(void)
{
    upm_xinfo xi;
    memset(&xi, 0, sizeof(xi));
    /* No stream. */
    UPM_CHECK(!upm_xinfo_lost_after(&xi, X(0, 0)));
    UPM_CHECK(upm_xinfo_lost_after(&xi, X(5, 0)));

    /* Entries 10-0 .. 20-0, nothing removed. */
    xi.exists = 1;
    xi.length = 11;
    xi.first_entry = X(10, 0);
    xi.last_generated = X(20, 0);
    xi.has_max_deleted = 1;
    xi.has_entries_added = 1;
    xi.entries_added = 11;
    UPM_CHECK(!upm_xinfo_lost_after(&xi, X(0, 0)));
    UPM_CHECK(!upm_xinfo_lost_after(&xi, X(10, 0)));
    UPM_CHECK(!upm_xinfo_lost_after(&xi, X(15, 0)));
    UPM_CHECK(!upm_xinfo_lost_after(&xi, X(20, 0)));

    /* Trimmed to 15-0 .. 20-0 (trims do not set max-deleted-entry-id). */
    xi.first_entry = X(15, 0);
    xi.length = 6;
    UPM_CHECK(upm_xinfo_lost_after(&xi, X(0, 0)));
    UPM_CHECK(upm_xinfo_lost_after(&xi, X(10, 0)));
    UPM_CHECK(upm_xinfo_lost_after(&xi, X(14, 9)));
    UPM_CHECK(!upm_xinfo_lost_after(&xi, X(15, 0)));
    UPM_CHECK(!upm_xinfo_lost_after(&xi, X(18, 0)));

    /* An XDEL after the id. */
    xi.max_deleted = X(17, 0);
    UPM_CHECK(upm_xinfo_lost_after(&xi, X(16, 0)));
    UPM_CHECK(!upm_xinfo_lost_after(&xi, X(17, 0)));
    xi.max_deleted = X(0, 0);

    /* Trimmed empty. */
    xi.length = 0;
    UPM_CHECK(upm_xinfo_lost_after(&xi, X(19, 0)));
    UPM_CHECK(!upm_xinfo_lost_after(&xi, X(20, 0)));

    /* Redis 6: neither max-deleted nor entries-added. */
    memset(&xi, 0, sizeof(xi));
    xi.exists = 1;
    xi.length = 3;
    xi.first_entry = X(10, 0);
    xi.last_generated = X(12, 0);
    UPM_CHECK(upm_xinfo_lost_after(&xi, X(0, 0)));
    UPM_CHECK(!upm_xinfo_lost_after(&xi, X(10, 0)));
}

static void test_lease(void)
{
    upm_lease l;
    apr_uint64_t h[12];
    int i;
    memset(&l, 0, sizeof(l));
    UPM_CHECK(upm_lease_is_free(&l, 1000000, 1500000, 0));
    l.holder = 77;
    l.renewed = 1000000;
    UPM_CHECK(!upm_lease_is_free(&l, 1000000 + 1500000, 1500000, 1));
    UPM_CHECK(upm_lease_is_free(&l, 1000000 + 1500001, 1500000, 1));
    /* A holder whose pid is gone frees it at once. */
    UPM_CHECK(upm_lease_is_free(&l, 1000001, 1500000, 0));
    /* A clock that jumped back does not pin the lease. */
    UPM_CHECK(upm_lease_is_free(&l, 1000000 - 1600000, 1500000, 1));

    for (i = 0; i < 12; i++) {
        h[i] = 100 + i;
    }
    upm_lease_push_marks(&l, h, 3);
    UPM_CHECK_INT(l.nmarks, 3);
    UPM_CHECK(l.marks[0] == 100 && l.marks[2] == 102);
    upm_lease_push_marks(&l, h + 3, 7);
    UPM_CHECK_INT(l.nmarks, UPM_LEASE_MARKS);
    UPM_CHECK(l.marks[0] == 102 && l.marks[7] == 109);
    upm_lease_push_marks(&l, h, 12);
    UPM_CHECK(l.marks[0] == 104 && l.marks[7] == 111);
}

static void test_align(void)
{
    apr_uint64_t buf[20], marks[4];
    int i;
    for (i = 0; i < 20; i++) {
        buf[i] = 1000 + i;
    }
    /* The feeder took up to 1007: continue at index 8. */
    for (i = 0; i < 4; i++) {
        marks[i] = 1004 + i;
    }
    UPM_CHECK_INT(upm_align(buf, 20, marks, 4), 8);
    UPM_CHECK_INT(upm_align(buf, 20, marks + 3, 1), 8);
    /* Took everything held. */
    for (i = 0; i < 4; i++) {
        marks[i] = 1016 + i;
    }
    UPM_CHECK_INT(upm_align(buf, 20, marks, 4), 20);
    /* The standby started listening in the middle of the window. */
    marks[0] = 998; marks[1] = 999; marks[2] = 1000; marks[3] = 1001;
    UPM_CHECK_INT(upm_align(buf, 20, marks, 4), 2);
    /* Nothing of what it holds was taken, or it cannot tell: -1. */
    marks[0] = 1; marks[1] = 2; marks[2] = 3; marks[3] = 4;
    UPM_CHECK_INT(upm_align(buf, 20, marks, 4), -1);
    UPM_CHECK_INT(upm_align(buf, 0, marks, 4), -1);
    /* A window that matches inside but not at its end is no match. */
    marks[0] = 1003; marks[1] = 1004; marks[2] = 1005; marks[3] = 4242;
    UPM_CHECK_INT(upm_align(buf, 20, marks, 4), -1);
    /* Repeated content: the newest match wins (nothing taken twice). */
    buf[10] = 1004; buf[11] = 1005; buf[12] = 1006; buf[13] = 1007;
    marks[0] = 1004; marks[1] = 1005; marks[2] = 1006; marks[3] = 1007;
    UPM_CHECK_INT(upm_align(buf, 20, marks, 4), 14);
    UPM_CHECK_INT(upm_align(buf, 20, marks, 0), 0);
}

static void test_takeover(void)
{
    upm_lease l;
    apr_uint64_t held[6] = { 11, 12, 13, 14, 15, 16 };
    memset(&l, 0, sizeof(l));
    /* First feeder ever: everything held is untaken. */
    UPM_CHECK_INT(upm_takeover_start(&l, held, 6, 0, 0), 0);
    l.gen = 3;
    l.taken = 40;
    l.marks[0] = 12; l.marks[1] = 13;
    l.nmarks = 2;
    UPM_CHECK_INT(upm_takeover_start(&l, held, 6, 0, 0), 3);
    /* Marks not held: untaken only if nothing was taken since the link
     * came up while a feeder held the lease. */
    l.marks[0] = 1; l.marks[1] = 2;
    UPM_CHECK_INT(upm_takeover_start(&l, held, 6, 1, 40), 0);
    UPM_CHECK_INT(upm_takeover_start(&l, held, 6, 1, 39), -1);
    UPM_CHECK_INT(upm_takeover_start(&l, held, 6, 0, 40), -1);
    /* Leaders existed but took nothing: all of it is untaken. */
    l.nmarks = 0;
    UPM_CHECK_INT(upm_takeover_start(&l, held, 6, 0, 0), 0);
}

static void test_ratelimit(void)
{
    upm_ratelimit rl = { 0, 0 };
    apr_uint64_t more = 99;
    apr_time_t t = 1000000000;
    int i, passed = 0;
    UPM_CHECK(upm_ratelimit_pass(&rl, t, 60000000, &more));
    UPM_CHECK_INT(more, 0);
    for (i = 1; i <= 100; i++) {
        passed += upm_ratelimit_pass(&rl, t + i * 100000, 60000000, &more);
    }
    UPM_CHECK_INT(passed, 0);
    UPM_CHECK(upm_ratelimit_pass(&rl, t + 60000000, 60000000, &more));
    UPM_CHECK_INT(more, 100);
    /* A clock that went back does not silence it for long. */
    UPM_CHECK(upm_ratelimit_pass(&rl, t - 100000000, 60000000, &more));
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&p, NULL);
    test_backoff();
    test_glob();
    test_xid_time();
    test_channels();
    test_channel_scope();
    test_xid();
    test_xinfo();
    test_lease();
    test_align();
    test_takeover();
    test_ratelimit();
    apr_pool_destroy(p);
    apr_terminate();
    UPM_TEST_DONE("test_redis_logic");
}
