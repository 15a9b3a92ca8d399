/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_timerheap.h"

#include <stdlib.h>

void upm_timerheap_init(upm_timerheap *h)
{
    h->v = NULL;
    h->n = h->cap = 0;
}

void upm_timerheap_free(upm_timerheap *h)
{
    free(h->v);
    upm_timerheap_init(h);
}

void upm_timer_init(upm_timer *t, void *data)
{
    t->when = 0;
    t->idx = -1;
    t->data = data;
}

static void place(upm_timerheap *h, int i, upm_timer *t)
{
    h->v[i] = t;
    t->idx = i;
}

static void sift_up(upm_timerheap *h, int i)
{
    upm_timer *t = h->v[i];
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (h->v[parent]->when <= t->when) {
            break;
        }
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(upm_timerheap *h, int i)
{
    upm_timer *t = h->v[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) {
            break;
        }
        if (c + 1 < h->n && h->v[c + 1]->when < h->v[c]->when) {
            c++;
        }
        if (t->when <= h->v[c]->when) {
            break;
        }
        place(h, i, h->v[c]);
        i = c;
    }
    place(h, i, t);
}

int upm_timerheap_set(upm_timerheap *h, upm_timer *t, apr_time_t when)
{
    if (t->idx >= 0) {
        apr_time_t old = t->when;
        t->when = when;
        if (when < old) {
            sift_up(h, t->idx);
        }
        else {
            sift_down(h, t->idx);
        }
        return 0;
    }
    if (h->n == h->cap) {
        /* The heap is the reactor's own structure, not a request's: it
         * grows with the connections of the whole child. */
        int ncap = h->cap ? h->cap * 2 : 64;
        upm_timer **nv = realloc(h->v, sizeof(*nv) * (size_t)ncap);
        if (!nv) {
            return -1;
        }
        h->v = nv;
        h->cap = ncap;
    }
    t->when = when;
    place(h, h->n++, t);
    sift_up(h, t->idx);
    return 0;
}

void upm_timerheap_remove(upm_timerheap *h, upm_timer *t)
{
    int i = t->idx;
    upm_timer *last;
    if (i < 0 || i >= h->n || h->v[i] != t) {
        return;
    }
    t->idx = -1;
    last = h->v[--h->n];
    if (i == h->n) {
        return;
    }
    place(h, i, last);
    if (i > 0 && last->when < h->v[(i - 1) / 2]->when) {
        sift_up(h, i);
    }
    else {
        sift_down(h, i);
    }
}

upm_timer *upm_timerheap_peek(const upm_timerheap *h)
{
    return h->n ? h->v[0] : NULL;
}
