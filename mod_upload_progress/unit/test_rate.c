/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the UploadProgressPublishRate token bucket. */
#include "upm_rate.h"
#include "upm_test.h"

#define S(x) ((apr_time_t)((x) * APR_USEC_PER_SEC))

int main(void)
{
    upm_rate b;
    int retry = 0, i, passed;

    /* Off: everything passes. */
    upm_rate_init(&b, 0);
    for (i = 0; i < 5; i++) {
        UPM_CHECK(upm_rate_take(&b, 1000, S(1), NULL));
    }

    /* 10/s: a burst of 10, the 11th within the same second waits 1 s. */
    upm_rate_init(&b, 10);
    passed = 0;
    for (i = 0; i < 20; i++) {
        passed += upm_rate_take(&b, 1, S(100), &retry);
    }
    UPM_CHECK_INT(passed, 10);
    UPM_CHECK_INT(retry, 1);
    /* Half a second later: five more. */
    passed = 0;
    for (i = 0; i < 20; i++) {
        passed += upm_rate_take(&b, 1, S(100.5), NULL);
    }
    UPM_CHECK_INT(passed, 5);
    /* Long idle: never more than the burst. */
    passed = 0;
    for (i = 0; i < 50; i++) {
        passed += upm_rate_take(&b, 1, S(1000), NULL);
    }
    UPM_CHECK_INT(passed, 10);

    /* A batch larger than the burst passes on a full bucket and leaves a
     * debt: 35 events at 10/s, then nothing for 2.5 s. */
    upm_rate_init(&b, 10);
    UPM_CHECK(upm_rate_take(&b, 35, S(5), NULL));
    UPM_CHECK(!upm_rate_take(&b, 1, S(7), &retry));
    UPM_CHECK_INT(retry, 1);
    UPM_CHECK(upm_rate_take(&b, 1, S(7.6), NULL));
    /* ... and a batch refused on an empty bucket says how long until full. */
    upm_rate_init(&b, 10);
    UPM_CHECK(upm_rate_take(&b, 10, S(1), NULL));
    UPM_CHECK(!upm_rate_take(&b, 100, S(1), &retry));
    UPM_CHECK_INT(retry, 1);
    /* Under one event a second: one event every two seconds. */
    upm_rate_init(&b, 0.5);
    UPM_CHECK(upm_rate_take(&b, 1, S(1), NULL));
    UPM_CHECK(!upm_rate_take(&b, 1, S(2), &retry));
    UPM_CHECK_INT(retry, 1);     /* at 3 s the bucket holds half a token again */
    UPM_CHECK(upm_rate_take(&b, 1, S(3), NULL));

    /* A clock that steps back does not mint tokens. */
    upm_rate_init(&b, 10);
    UPM_CHECK(upm_rate_take(&b, 10, S(50), NULL));
    UPM_CHECK(!upm_rate_take(&b, 1, S(40), NULL));
    UPM_CHECK(!upm_rate_take(&b, 1, S(50), NULL));

    UPM_TEST_DONE("rate");
}
