/* SPDX-License-Identifier: Apache-2.0 */
/* A binary min-heap of deadlines with O(log n) insert, update and remove:
 * the reactor keeps one deadline per connection (the earliest of its next
 * heartbeat, token expiry and write timeout), so finding what is due never
 * walks every connection. */
#ifndef UPM_TIMERHEAP_H
#define UPM_TIMERHEAP_H

#include <apr.h>
#include <apr_pools.h>
#include <apr_time.h>

typedef struct upm_timer {
    apr_time_t when;
    int idx;                    /* position in the heap; -1 when not in it */
    void *data;
} upm_timer;

typedef struct upm_timerheap {
    upm_timer **v;
    int n, cap;
} upm_timerheap;

void upm_timerheap_init(upm_timerheap *h);
void upm_timerheap_free(upm_timerheap *h);
void upm_timer_init(upm_timer *t, void *data);
/* Inserts, or moves when already in the heap.  0, or -1 out of memory. */
int upm_timerheap_set(upm_timerheap *h, upm_timer *t, apr_time_t when);
void upm_timerheap_remove(upm_timerheap *h, upm_timer *t);
/* The earliest timer, or NULL. */
upm_timer *upm_timerheap_peek(const upm_timerheap *h);

#endif
