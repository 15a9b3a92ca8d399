/* SPDX-License-Identifier: Apache-2.0 */
#include <apr_general.h>
#include <apr_strings.h>
#include "upm_msg.h"
#include "upm_throttle.h"
#include "upm_test.h"

static void test_pack(apr_pool_t *p)
{
    upm_msg m = { 0 }, u;
    apr_size_t len, jl;
    char *buf, *j;

    m.published = 1234567;
    m.percent = 45.5;
    m.f[UPM_F_TYPE] = "upload_progress";
    m.f[UPM_F_OWNER] = "u1";
    m.f[UPM_F_PHOTO] = "ph-1";
    m.json = "{\"type\":\"upload_progress\",\"progress\":45.5}";
    m.json_len = strlen(m.json);
    buf = upm_msg_pack(p, &m, &len);
    UPM_CHECK_INT(upm_msg_unpack(buf, len, &u), 0);
    UPM_CHECK_INT(u.published, 1234567);
    UPM_CHECK_DBL(u.percent, 45.5);
    UPM_CHECK_STR(u.f[UPM_F_TYPE], "upload_progress");
    UPM_CHECK_STR(u.f[UPM_F_OWNER], "u1");
    UPM_CHECK_STR(u.f[UPM_F_PHOTO], "ph-1");
    UPM_CHECK_STR(u.f[UPM_F_JOB], "");
    UPM_CHECK_STR(u.json, m.json);
    UPM_CHECK_INT(u.json_len, m.json_len);

    /* Any truncation or corruption is refused, never read past the end. */
    {
        apr_size_t cut;
        int all = 1;
        for (cut = 0; cut < len; cut++) {
            if (upm_msg_unpack(buf, cut, &u) != -1) {
                all = 0;
            }
        }
        UPM_CHECK(all);
        buf[0] = 9;
        UPM_CHECK_INT(upm_msg_unpack(buf, len, &u), -1);
    }

    /* Flags and the external (stream) id travel with the record. */
    UPM_CHECK_INT(u.flags, 0);
    UPM_CHECK_STR(u.ext, "");
    m.flags = UPM_MSG_GAP;
    m.ext = "1700000000000-5";
    buf = upm_msg_pack(p, &m, &len);
    UPM_CHECK_INT(upm_msg_unpack(buf, len, &u), 0);
    UPM_CHECK_INT(u.flags, UPM_MSG_GAP);
    UPM_CHECK_STR(u.ext, "1700000000000-5");
    UPM_CHECK_STR(u.json, m.json);
    m.flags = 0;
    m.ext = NULL;

    j = upm_msg_json_with_id(p, &m, "17-5", &jl);
    UPM_CHECK_STR(j, "{\"id\":\"17-5\",\"type\":\"upload_progress\",\"progress\":45.5}");
    UPM_CHECK_INT(jl, strlen(j));
    m.json = "{}";
    m.json_len = 2;
    UPM_CHECK_STR(upm_msg_json_with_id(p, &m, "1-1", NULL), "{\"id\":\"1-1\"}");
}

static void test_key(void)
{
    upm_msg a = { 0 }, b = { 0 };
    const char *e = "";
    int i;
    for (i = 0; i < UPM_F__COUNT; i++) {
        a.f[i] = b.f[i] = e;
    }
    a.f[UPM_F_TYPE] = b.f[UPM_F_TYPE] = "upload_progress";
    UPM_CHECK_INT(upm_msg_progress_key(&a), 0);
    a.f[UPM_F_PHOTO] = "p1";
    b.f[UPM_F_PHOTO] = "p2";
    UPM_CHECK(upm_msg_progress_key(&a) != 0);
    UPM_CHECK(upm_msg_progress_key(&a) != upm_msg_progress_key(&b));
    b.f[UPM_F_PHOTO] = "p1";
    UPM_CHECK(upm_msg_progress_key(&a) == upm_msg_progress_key(&b));
    /* The same id as a photo and as a job are different keys. */
    b.f[UPM_F_PHOTO] = e;
    b.f[UPM_F_JOB] = "p1";
    UPM_CHECK(upm_msg_progress_key(&a) != upm_msg_progress_key(&b));
    /* Another type, another key. */
    b.f[UPM_F_JOB] = e;
    b.f[UPM_F_PHOTO] = "p1";
    b.f[UPM_F_TYPE] = "upload_completed";
    UPM_CHECK(upm_msg_progress_key(&a) != upm_msg_progress_key(&b));
    UPM_CHECK_STR(upm_msg_field_name(UPM_F_SESSION), "sessionId");
}

static void test_throttle(void)
{
    upm_throttle t;
    int i, sent = 0;
    double last = -1;
    int nondecreasing = 1;

    upm_throttle_init(&t);
    UPM_CHECK_INT(upm_throttle_pass(&t, 7, 0, 1, 45.5, 1), 1);
    UPM_CHECK_INT(upm_throttle_pass(&t, 7, 0, 1, 45.9, 1), 0);
    UPM_CHECK_INT(upm_throttle_pass(&t, 7, 0, 1, 46.4, 1), 0);
    UPM_CHECK_INT(upm_throttle_pass(&t, 7, 0, 1, 46.5, 1), 1);
    UPM_CHECK_INT(upm_throttle_pass(&t, 8, 0, 1, 46.6, 1), 1);   /* other key */
    UPM_CHECK_INT(upm_throttle_pass(&t, 7, 0, 1, 46.6, 1), 0);
    UPM_CHECK_INT(upm_throttle_pass(&t, 7, 0, 1, 100, 1), 1);    /* 100 always */
    UPM_CHECK_INT(upm_throttle_pass(&t, 7, 0, 1, 100, 1), 1);
    UPM_CHECK_INT(upm_throttle_pass(&t, 7, 0, 1, 0, 1), 1);      /* 0 always */
    UPM_CHECK_INT(upm_throttle_pass(&t, 7, 0, 1, 0.5, 1), 0);
    UPM_CHECK_INT(upm_throttle_pass(&t, 7, 0, 1, -1, 1), 1);     /* no percent */
    UPM_CHECK_INT(upm_throttle_pass(&t, 0, 0, 1, 0.6, 1), 1);    /* no key */
    UPM_CHECK_INT(upm_throttle_pass(&t, 7, 0, 0, 50, 1), 1);     /* terminal */
    UPM_CHECK_INT(upm_throttle_pass(&t, 7, 0, 1, 0.7, 1), 1);    /* state forgotten */
    /* Two-decimal steps that do not add up exactly in binary still pass. */
    UPM_CHECK_INT(upm_throttle_pass(&t, 9, 0, 1, 33.33, 1), 1);
    UPM_CHECK_INT(upm_throttle_pass(&t, 9, 0, 1, 34.33, 1), 1);
    UPM_CHECK_INT(upm_throttle_pass(&t, 9, 0, 1, 35.32, 1), 0);

    /* 10,000 steps from 0 to 100 give at most 101 messages, ending at 100. */
    upm_throttle_init(&t);
    for (i = 0; i <= 10000; i++) {
        double pc = i / 100.0;
        if (upm_throttle_pass(&t, 42, 0, 1, pc, 1)) {
            sent++;
            if (pc < last) {
                nondecreasing = 0;
            }
            last = pc;
        }
    }
    UPM_CHECK(sent <= 101);
    UPM_CHECK(sent >= 100);
    UPM_CHECK(nondecreasing);
    UPM_CHECK_DBL(last, 100);

    /* A replay goes over messages the live path queued (and throttled)
     * already: each is decided as it was, never against itself. */
    upm_throttle_init(&t);
    UPM_CHECK_INT(upm_throttle_pass(&t, 5, 10, 1, 0.1, 1), 1);   /* live */
    UPM_CHECK_INT(upm_throttle_pass(&t, 5, 11, 1, 0.5, 1), 0);   /* live, throttled */
    UPM_CHECK_INT(upm_throttle_pass(&t, 5, 10, 1, 0.1, 1), 1);   /* replay of 10 */
    UPM_CHECK_INT(upm_throttle_pass(&t, 5, 11, 1, 0.5, 1), 0);   /* replay of 11 */
    UPM_CHECK_INT(upm_throttle_pass(&t, 5, 12, 1, 1.1, 1), 1);
    UPM_CHECK_INT(upm_throttle_pass(&t, 5, 12, 1, 1.1, 1), 1);   /* replay of 12 */
    UPM_CHECK_INT(upm_throttle_pass(&t, 5, 13, 1, 1.2, 1), 0);

    /* More keys than slots: never blocks a new key's first message. */
    upm_throttle_init(&t);
    for (i = 1; i <= 3 * UPM_THROTTLE_SLOTS; i++) {
        UPM_CHECK_INT(upm_throttle_pass(&t, (apr_uint64_t)i, 0, 1, 10, 1), 1);
    }
}

int main(void)
{
    apr_pool_t *p;
    apr_initialize();
    apr_pool_create(&p, NULL);
    test_pack(p);
    test_key();
    test_throttle();
    apr_pool_destroy(p);
    apr_terminate();
    UPM_TEST_DONE("msg");
}
