/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include "upm_timerheap.h"
#include "upm_test.h"

static int heap_ok(const upm_timerheap *h)
{
    int i;
    for (i = 0; i < h->n; i++) {
        if (h->v[i]->idx != i) {
            return 0;
        }
        if (i > 0 && h->v[(i - 1) / 2]->when > h->v[i]->when) {
            return 0;
        }
    }
    return 1;
}

int main(void)
{
    upm_timerheap h;
    upm_timer t[1000];
    int i, ok = 1;
    apr_time_t prev = -1;

    upm_timerheap_init(&h);
    UPM_CHECK(upm_timerheap_peek(&h) == NULL);
    srand(7);
    for (i = 0; i < 1000; i++) {
        upm_timer_init(&t[i], &t[i]);
        UPM_CHECK_INT(upm_timerheap_set(&h, &t[i], rand() % 100000), 0);
    }
    UPM_CHECK_INT(h.n, 1000);
    UPM_CHECK(heap_ok(&h));
    /* Moves in both directions keep the heap valid. */
    for (i = 0; i < 1000; i += 3) {
        upm_timerheap_set(&h, &t[i], rand() % 100000);
    }
    UPM_CHECK(heap_ok(&h));
    /* Removing from the middle. */
    for (i = 0; i < 1000; i += 7) {
        upm_timerheap_remove(&h, &t[i]);
        if (t[i].idx != -1) {
            ok = 0;
        }
    }
    UPM_CHECK(ok);
    UPM_CHECK(heap_ok(&h));
    upm_timerheap_remove(&h, &t[0]);        /* twice: harmless */
    UPM_CHECK(heap_ok(&h));
    /* Popping yields non-decreasing deadlines. */
    ok = 1;
    while (upm_timerheap_peek(&h)) {
        upm_timer *m = upm_timerheap_peek(&h);
        if (m->when < prev) {
            ok = 0;
        }
        prev = m->when;
        upm_timerheap_remove(&h, m);
    }
    UPM_CHECK(ok);
    UPM_CHECK_INT(h.n, 0);
    /* Equal deadlines, and a single element. */
    upm_timerheap_set(&h, &t[1], 5);
    upm_timerheap_set(&h, &t[2], 5);
    upm_timerheap_set(&h, &t[3], 4);
    UPM_CHECK(upm_timerheap_peek(&h) == &t[3]);
    upm_timerheap_set(&h, &t[3], 6);
    UPM_CHECK(upm_timerheap_peek(&h)->when == 5);
    upm_timerheap_free(&h);
    UPM_TEST_DONE("timerheap");
}
