/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <apr_general.h>
#include "upm_ring.h"
#include "upm_test.h"

static upm_ring *make(apr_uint32_t nslots, apr_size_t data, void **mem)
{
    *mem = calloc(1, upm_ring_bytes(nslots, data));
    return upm_ring_init(*mem, nslots, data, 77);
}

static void test_basic(void)
{
    void *mem;
    upm_ring *r = make(8, 1024, &mem);
    const void *d;
    apr_size_t len;

    UPM_CHECK_INT(upm_ring_last(r), 0);
    UPM_CHECK_INT(upm_ring_oldest(r), 1);
    UPM_CHECK_INT(upm_ring_peek(r, 1, &d, &len), UPM_RING_FUTURE);
    UPM_CHECK_INT(upm_ring_append(r, "hello", 5), 1);
    UPM_CHECK_INT(upm_ring_append(r, "world!", 6), 2);
    UPM_CHECK_INT(upm_ring_peek(r, 2, &d, &len), UPM_RING_OK);
    UPM_CHECK_INT(len, 6);
    UPM_CHECK(memcmp(d, "world!", 6) == 0);
    UPM_CHECK_INT(upm_ring_oldest(r), 1);
    UPM_CHECK_INT(upm_ring_peek(r, 0, &d, &len), UPM_RING_GONE);
    UPM_CHECK_INT(upm_ring_append(r, "", 0), 0);
    UPM_CHECK_INT(upm_ring_append(r, mem, 257), 0);   /* > a quarter */
    UPM_CHECK_INT(upm_ring_last(r), 2);
    UPM_CHECK_INT(upm_ring_data_used(r), 11);
    /* Attach with the same geometry keeps the content; another refuses. */
    UPM_CHECK(upm_ring_attach(mem, 8, 1024) == r);
    UPM_CHECK(upm_ring_attach(mem, 16, 1024) == NULL);
    UPM_CHECK(upm_ring_attach(mem, 8, 2048) == NULL);
    free(mem);
}

static void test_slot_eviction(void)
{
    void *mem;
    upm_ring *r = make(4, 4096, &mem);
    const void *d;
    apr_size_t len;
    apr_uint64_t i;
    for (i = 1; i <= 10; i++) {
        char buf[16];
        int n = snprintf(buf, sizeof(buf), "m%llu", (unsigned long long)i);
        UPM_CHECK_INT(upm_ring_append(r, buf, (apr_size_t)n), i);
    }
    /* Only the last 4 slots survive. */
    UPM_CHECK_INT(upm_ring_oldest(r), 7);
    UPM_CHECK_INT(upm_ring_peek(r, 6, &d, &len), UPM_RING_GONE);
    UPM_CHECK_INT(upm_ring_peek(r, 7, &d, &len), UPM_RING_OK);
    UPM_CHECK(len == 2 && memcmp(d, "m7", 2) == 0);
    UPM_CHECK_INT(upm_ring_peek(r, 10, &d, &len), UPM_RING_OK);
    UPM_CHECK(len == 3 && memcmp(d, "m10", 3) == 0);
    UPM_CHECK_INT(upm_ring_peek(r, 11, &d, &len), UPM_RING_FUTURE);
    free(mem);
}

static void test_data_eviction(void)
{
    /* Many slots, small data area: bytes run out before slots do. */
    void *mem;
    upm_ring *r = make(1000, 400, &mem);
    char rec[100];
    const void *d;
    apr_size_t len;
    apr_uint64_t i;

    for (i = 1; i <= 20; i++) {
        memset(rec, (int)('a' + i % 26), sizeof(rec));
        UPM_CHECK_INT(upm_ring_append(r, rec, sizeof(rec)), i);
        /* Whatever is readable must be intact. */
        {
            apr_uint64_t s, oldest = upm_ring_oldest(r);
            int ok = 1;
            for (s = oldest; s <= i; s++) {
                if (upm_ring_peek(r, s, &d, &len) != UPM_RING_OK || len != 100
                    || ((const char *)d)[0] != (char)('a' + s % 26)
                    || ((const char *)d)[99] != (char)('a' + s % 26)) {
                    ok = 0;
                }
            }
            UPM_CHECK(ok);
            UPM_CHECK(i - oldest + 1 <= 4);
            UPM_CHECK(upm_ring_data_used(r) <= 400);
        }
    }
    UPM_CHECK_INT(upm_ring_oldest(r), 17);
    UPM_CHECK_INT(upm_ring_peek(r, 16, &d, &len), UPM_RING_GONE);

    /* A record that does not fit in the tail starts again at 0 and evicts
     * everything it overlaps. */
    free(mem);
    r = make(1000, 400, &mem);
    UPM_CHECK_INT(upm_ring_append(r, rec, 90), 1);      /* [0,90)   */
    UPM_CHECK_INT(upm_ring_append(r, rec, 90), 2);      /* [90,180) */
    UPM_CHECK_INT(upm_ring_append(r, rec, 90), 3);      /* [180,270) */
    UPM_CHECK_INT(upm_ring_append(r, rec, 90), 4);      /* [270,360) */
    UPM_CHECK_INT(upm_ring_append(r, rec, 95), 5);      /* skip 40, phys [0,95) */
    /* #5 overlaps #1 and the first bytes of #2. */
    UPM_CHECK_INT(upm_ring_oldest(r), 3);
    UPM_CHECK_INT(upm_ring_peek(r, 2, &d, &len), UPM_RING_GONE);
    UPM_CHECK_INT(upm_ring_peek(r, 3, &d, &len), UPM_RING_OK);
    UPM_CHECK_INT(upm_ring_append(r, rec, 10), 6);      /* phys [95,105): no overlap */
    UPM_CHECK_INT(upm_ring_oldest(r), 3);
    UPM_CHECK_INT(upm_ring_append(r, rec, 80), 7);      /* phys [105,185) hits #3 */
    UPM_CHECK_INT(upm_ring_oldest(r), 4);
    free(mem);
}

static void test_ids(void)
{
    apr_pool_t *p;
    apr_uint64_t e, s;
    void *mem;
    upm_ring *r;
    apr_size_t i;

    apr_pool_create(&p, NULL);
    UPM_CHECK_STR(upm_id_format(p, 1763769600123ULL, 42), "1763769600123-42");
    UPM_CHECK_INT(upm_id_parse("1763769600123-42", &e, &s), 0);
    UPM_CHECK(e == 1763769600123ULL && s == 42);
    UPM_CHECK_INT(upm_id_parse("18446744073709551615-0", &e, &s), 0);
    UPM_CHECK(e == APR_UINT64_MAX && s == 0);
    UPM_CHECK_INT(upm_id_parse("18446744073709551616-0", &e, &s), -1);
    UPM_CHECK_INT(upm_id_parse("", &e, &s), -1);
    UPM_CHECK_INT(upm_id_parse("12", &e, &s), -1);
    UPM_CHECK_INT(upm_id_parse("-12", &e, &s), -1);
    UPM_CHECK_INT(upm_id_parse("12-", &e, &s), -1);
    UPM_CHECK_INT(upm_id_parse("1-2-3", &e, &s), -1);
    UPM_CHECK_INT(upm_id_parse("1- 2", &e, &s), -1);
    UPM_CHECK_INT(upm_id_parse("0x1-2", &e, &s), -1);
    UPM_CHECK_INT(upm_id_parse(NULL, &e, &s), -1);

    r = make(4, 1024, &mem);
    UPM_CHECK_INT(upm_ring_resume_check(r, 77, 0), UPM_RESUME_OK);
    UPM_CHECK_INT(upm_ring_resume_check(r, 76, 0), UPM_RESUME_EPOCH);
    UPM_CHECK_INT(upm_ring_resume_check(r, 77, 1), UPM_RESUME_INVALID);
    for (i = 0; i < 6; i++) {
        upm_ring_append(r, "x", 1);
    }
    /* Holds 3..6: a client that saw 2 misses nothing, one that saw 1 does. */
    UPM_CHECK_INT(upm_ring_resume_check(r, 77, 2), UPM_RESUME_OK);
    UPM_CHECK_INT(upm_ring_resume_check(r, 77, 6), UPM_RESUME_OK);
    UPM_CHECK_INT(upm_ring_resume_check(r, 77, 1), UPM_RESUME_EXPIRED);
    UPM_CHECK_INT(upm_ring_resume_check(r, 77, 0), UPM_RESUME_EXPIRED);
    UPM_CHECK_INT(upm_ring_resume_check(r, 77, 7), UPM_RESUME_INVALID);
    UPM_CHECK_STR(upm_resume_reason(UPM_RESUME_EXPIRED), "expired");
    UPM_CHECK_STR(upm_resume_reason(UPM_RESUME_EPOCH), "epoch");
    UPM_CHECK_STR(upm_resume_reason(UPM_RESUME_INVALID), "invalid");
    free(mem);
    apr_pool_destroy(p);
}

/* append_ex reports exactly the records that stop being readable, once
 * each, in order, with their bytes intact: slot reuse and data wrap mixed. */
typedef struct { apr_uint64_t next; int bad; } gone_seen;

static void on_gone(void *baton, apr_uint64_t seq, const void *data, apr_size_t len)
{
    gone_seen *g = baton;
    char want[32];
    int n = snprintf(want, sizeof(want), "r%llu-", (unsigned long long)seq);
    if (seq != g->next || len < (apr_size_t)n || memcmp(data, want, (apr_size_t)n) != 0) {
        g->bad++;
    }
    g->next = seq + 1;
}

static void test_gone_callback(void)
{
    void *mem;
    upm_ring *r = make(16, 2048, &mem);
    gone_seen g = { 1, 0 };
    apr_uint64_t i;
    unsigned rnd = 12345;
    for (i = 1; i <= 2000; i++) {
        char buf[512];
        apr_uint64_t before = upm_ring_oldest(r);
        apr_size_t len;
        rnd = rnd * 1103515245u + 12345u;
        len = (apr_size_t)snprintf(buf, sizeof(buf), "r%llu-", (unsigned long long)i);
        memset(buf + len, 'x', (rnd >> 16) % 400);
        len += (rnd >> 16) % 400;
        UPM_CHECK_INT(upm_ring_append_ex(r, buf, len, on_gone, &g), i);
        /* Everything before the new oldest was reported, nothing after. */
        if (g.next != upm_ring_oldest(r) && !(g.next == 1 && before == 1
                                                && upm_ring_oldest(r) == 1)) {
            g.bad++;
        }
    }
    UPM_CHECK_INT(g.bad, 0);
    UPM_CHECK(g.next > 1000);
    free(mem);
}

int main(void)
{
    apr_initialize();
    test_basic();
    test_slot_eviction();
    test_data_eviction();
    test_ids();
    test_gone_callback();
    apr_terminate();
    UPM_TEST_DONE("ring");
}
