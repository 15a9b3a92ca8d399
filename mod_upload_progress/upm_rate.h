/* SPDX-License-Identifier: Apache-2.0 */
/* Token bucket for UploadProgressPublishRate: `rate` events per second with
 * a burst of one second's worth.  Pure: the caller owns the lock and the
 * clock.  A batch larger than the burst passes when the bucket is full and
 * leaves it in debt, so a large batch is slowed down instead of refused
 * forever. */
#ifndef UPM_RATE_H
#define UPM_RATE_H

#include <apr.h>
#include <apr_time.h>

typedef struct upm_rate {
    double rate;                /* events per second; <= 0: no limit */
    double tokens;
    apr_time_t last;            /* 0: never used (starts full) */
} upm_rate;

void upm_rate_init(upm_rate *b, double rate);

/* Takes n tokens at `now`.  Returns 1 when the events may pass; otherwise 0
 * and *retry_s (if not NULL) is the whole number of seconds (>= 1) after
 * which they would. */
int upm_rate_take(upm_rate *b, double n, apr_time_t now, int *retry_s);

#endif
