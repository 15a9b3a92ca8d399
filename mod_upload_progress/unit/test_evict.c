/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <apr_general.h>
#include "upm_evict.h"
#include "upm_match.h"
#include "upm_test.h"
#include "upm_test_msg.h"

static upm_msg msg(const char *owner, const char *job, const char *session)
{
    return upm_test_msg("job_progress", owner, "", "", job, session, "");
}

static upm_evict_pos at(apr_uint64_t seq)
{
    upm_evict_pos p = { 0, seq };
    return p;
}

static void test_buckets(void)
{
    upm_evict *e = upm_evict_init(malloc(upm_evict_bytes()));
    const char *none[UPM_F__COUNT] = { 0 };
    const char *job[UPM_F__COUNT] = { 0 };
    apr_uint32_t ka = upm_evict_key("alice", none, UPM_F_OWNER);
    apr_uint32_t kb = upm_evict_key("bob", none, UPM_F_OWNER);
    apr_uint32_t kj;
    upm_msg m;

    job[UPM_F_JOB] = "j1";
    kj = upm_evict_key("carol", job, UPM_F_JOB);
    UPM_CHECK(ka != kb);
    UPM_CHECK(kj >= UPM_EVICT_USER_BUCKETS && kj < UPM_EVICT_BUCKETS);
    /* A narrowing without a grant is still the user's own messages. */
    UPM_CHECK_INT(upm_evict_key("alice", job, UPM_F_OWNER), ka);
    UPM_CHECK_INT(upm_evict_newest(e, ka).lo, 0);

    m = msg("alice", "j1", "");
    upm_evict_note(e, &m, at(10));
    UPM_CHECK_INT(upm_evict_newest(e, ka).lo, 10);
    UPM_CHECK_INT(upm_evict_newest(e, kj).lo, 10);      /* via its job too */
    UPM_CHECK_INT(upm_evict_newest(e, kb).lo, 0);       /* not bob's */
    /* Never lowered. */
    upm_evict_note(e, &m, at(4));
    UPM_CHECK_INT(upm_evict_newest(e, ka).lo, 10);
    /* A message to a scope alone has no owner bucket to raise. */
    m = msg("", "", "s9");
    upm_evict_note(e, &m, at(11));
    UPM_CHECK_INT(upm_evict_newest(e, ka).lo, 10);
    {
        const char *sess[UPM_F__COUNT] = { 0 };
        sess[UPM_F_SESSION] = "s9";
        UPM_CHECK_INT(upm_evict_newest(e, upm_evict_key("x", sess, UPM_F_SESSION)).lo, 11);
        /* The same id as a job is another key. */
        sess[UPM_F_JOB] = "s9";
        UPM_CHECK(upm_evict_key("x", sess, UPM_F_JOB)
                  != upm_evict_key("x", sess, UPM_F_SESSION));
    }
    /* Stream ids order as (ms, seq). */
    {
        upm_evict_pos a = { 5, 9 }, b = { 6, 0 }, c = { 6, 1 };
        UPM_CHECK_INT(upm_evict_cmp(a, b), -1);
        UPM_CHECK_INT(upm_evict_cmp(c, b), 1);
        UPM_CHECK_INT(upm_evict_cmp(c, c), 0);
    }
    free(e);
}

/* The property resume relies on: for random messages and random
 * subscribers, whenever a message the subscriber matches (upm_match) was
 * evicted at position p, its bucket holds at least p.  And the buckets
 * are spread: of 4,000 users, few share one. */
static void test_conservative(void)
{
    upm_evict *e = upm_evict_init(malloc(upm_evict_bytes()));
    static char names[400][16];
    unsigned rnd = 99, i, shared = 0;
    static unsigned char used[UPM_EVICT_USER_BUCKETS];
    int bad = 0, s;
    for (i = 0; i < 400; i++) {
        snprintf(names[i], sizeof(names[i]), "%s%u", i % 2 ? "u" : "j", i);
    }
    for (i = 1; i <= 20000; i++) {
        upm_msg m;
        rnd = rnd * 1103515245u + 12345u;
        m = msg((rnd >> 8) % 3 ? names[(rnd >> 12) % 400] : "",
                (rnd >> 4) % 2 ? names[(rnd >> 20) % 400] : "",
                (rnd >> 6) % 2 ? names[(rnd >> 16) % 400] : "");
        upm_evict_note(e, &m, at(i));
        for (s = 0; s < 30; s++) {
            const char *scope[UPM_F__COUNT] = { 0 };
            int via = s % 3 == 0 ? UPM_F_OWNER : s % 3 == 1 ? UPM_F_JOB : UPM_F_SESSION;
            const char *user = names[(s * 37 + 1) % 400];
            if (via != UPM_F_OWNER) {
                scope[via] = names[(s * 53 + i) % 400];
            }
            if (upm_match(user, scope, via, &m)
                && upm_evict_newest(e, upm_evict_key(user, scope, via)).lo < i) {
                bad++;
            }
        }
    }
    UPM_CHECK_INT(bad, 0);
    for (i = 0; i < 4000; i++) {
        char u[16];
        const char *none[UPM_F__COUNT] = { 0 };
        apr_uint32_t k;
        snprintf(u, sizeof(u), "user%u", i);
        k = upm_evict_key(u, none, UPM_F_OWNER);
        shared += used[k]++ > 0;
    }
    /* Expected about 4000^2 / (2 * 32768) = 244 collisions. */
    UPM_CHECK(shared < 320);
    free(e);
}

int main(void)
{
    apr_initialize();
    test_buckets();
    test_conservative();
    apr_terminate();
    UPM_TEST_DONE("evict");
}
