/* SPDX-License-Identifier: Apache-2.0 */
/* Limits of worker-holding streams over HTTP/2 (see upm_h2_limit.h). */
#include "upm_h2_limit.h"

#define UPM_H2_DEFAULT_SESSION_STREAMS 100      /* H2MaxSessionStreams */

int upm_h2_workers(const upm_h2_conf *c)
{
    int minw = c->min_workers > 0 ? c->min_workers : c->threads_per_child;
    int maxw = c->max_workers;

    if (maxw <= 0) {
        maxw = 3 * minw / 2;
        if (maxw < 4) {
            maxw = 4;
        }
    }
    return maxw;
}

int upm_h2_limit_per_conn(const upm_h2_conf *c)
{
    int streams = c->max_session_streams > 0 ? c->max_session_streams
                                             : UPM_H2_DEFAULT_SESSION_STREAMS;
    int workers = upm_h2_workers(c);
    int n = UPM_H2_FLOOR_LIMIT;

    if (workers < n) {
        n = workers;
    }
    if (streams < n) {
        n = streams;
    }
    return n > 1 ? n - 1 : 1;
}

int upm_h2_limit_per_child(const upm_h2_conf *c)
{
    int n = upm_h2_workers(c) - UPM_H2_FIRST_LIMIT;
    int half = c->threads_per_child / 2;

    if (half < n) {
        n = half;
    }
    return n > 1 ? n : 1;
}
