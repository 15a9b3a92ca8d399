/* SPDX-License-Identifier: Apache-2.0 */
/* Token bucket of UploadProgressPublishRate (see upm_rate.h). */
#include "upm_rate.h"

#include <math.h>

void upm_rate_init(upm_rate *b, double rate)
{
    b->rate = rate;
    b->tokens = rate;
    b->last = 0;
}

int upm_rate_take(upm_rate *b, double n, apr_time_t now, int *retry_s)
{
    double burst = b->rate, need;

    if (b->rate <= 0) {
        return 1;
    }
    if (b->last == 0) {
        b->tokens = burst;
    }
    else if (now > b->last) {
        b->tokens += b->rate * (double)(now - b->last) / (double)APR_USEC_PER_SEC;
        if (b->tokens > burst) {
            b->tokens = burst;
        }
    }
    if (now > b->last) {
        b->last = now;
    }
    need = n < burst ? n : burst;
    if (b->tokens >= need) {
        b->tokens -= n;
        return 1;
    }
    if (retry_s) {
        double s = ceil((need - b->tokens) / b->rate);
        *retry_s = s < 1 ? 1 : s > 3600 ? 3600 : (int)s;
    }
    return 0;
}
