/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_userconn.h"

#include <string.h>

typedef struct {
    apr_uint64_t user;          /* 0: empty */
    apr_int32_t pid;
    apr_uint32_t count;
} upm_uc_slot;

struct upm_uc_table {
    apr_uint32_t nslots;
    apr_uint32_t used;
    upm_uc_slot s[1];
};

apr_size_t upm_uc_bytes(apr_uint32_t nslots)
{
    return sizeof(upm_uc_table) + sizeof(upm_uc_slot) * (nslots ? nslots - 1 : 0);
}

upm_uc_table *upm_uc_init(void *mem, apr_uint32_t nslots)
{
    upm_uc_table *t = mem;
    memset(mem, 0, upm_uc_bytes(nslots));
    t->nslots = nslots;
    return t;
}

apr_uint64_t upm_uc_hash(const char *user)
{
    apr_uint64_t h = 1469598103934665603ULL;
    for (; *user; user++) {
        h = (h ^ (unsigned char)*user) * 1099511628211ULL;
    }
    return h ? h : 1;
}

static apr_uint32_t home(const upm_uc_table *t, apr_uint64_t user)
{
    return (apr_uint32_t)(user % t->nslots);
}

apr_uint32_t upm_uc_total(const upm_uc_table *t, apr_uint64_t user)
{
    apr_uint32_t i = home(t, user), n, total = 0;
    for (n = 0; n < t->nslots && t->s[i].user; n++, i = (i + 1) % t->nslots) {
        if (t->s[i].user == user) {
            total += t->s[i].count;
        }
    }
    return total;
}

int upm_uc_acquire(upm_uc_table *t, apr_uint64_t user, apr_int32_t pid,
                   apr_uint32_t limit)
{
    apr_uint32_t i = home(t, user), n, total = 0;
    upm_uc_slot *mine = NULL;

    for (n = 0; n < t->nslots && t->s[i].user; n++, i = (i + 1) % t->nslots) {
        if (t->s[i].user == user) {
            total += t->s[i].count;
            if (t->s[i].pid == pid) {
                mine = &t->s[i];
            }
        }
    }
    if (limit && total >= limit) {
        return 0;
    }
    if (!mine) {
        /* Keep one slot free so every probe run ends at an empty slot. */
        if (n == t->nslots || t->used + 1 >= t->nslots) {
            return -1;
        }
        mine = &t->s[i];
        mine->user = user;
        mine->pid = pid;
        mine->count = 0;
        t->used++;
    }
    mine->count++;
    return 1;
}

/* Backward-shift deletion: later entries of the run move up so that no
 * entry is ever cut off from its home slot by a hole. */
static void delete_at(upm_uc_table *t, apr_uint32_t i)
{
    apr_uint32_t j = i;
    for (;;) {
        apr_uint32_t h;
        j = (j + 1) % t->nslots;
        if (!t->s[j].user) {
            break;
        }
        h = home(t, t->s[j].user);
        /* Move j to the hole at i unless its home lies cyclically in (i, j]. */
        if ((i <= j) ? (i < h && h <= j) : (i < h || h <= j)) {
            continue;
        }
        t->s[i] = t->s[j];
        i = j;
    }
    memset(&t->s[i], 0, sizeof(t->s[i]));
    t->used--;
}

void upm_uc_release(upm_uc_table *t, apr_uint64_t user, apr_int32_t pid)
{
    apr_uint32_t i = home(t, user), n;
    for (n = 0; n < t->nslots && t->s[i].user; n++, i = (i + 1) % t->nslots) {
        if (t->s[i].user == user && t->s[i].pid == pid) {
            if (t->s[i].count > 1) {
                t->s[i].count--;
            }
            else {
                delete_at(t, i);
            }
            return;
        }
    }
}

void upm_uc_drop_pid(upm_uc_table *t, apr_int32_t pid)
{
    apr_uint32_t i = 0;
    while (i < t->nslots) {
        if (t->s[i].user && t->s[i].pid == pid) {
            delete_at(t, i);    /* a later entry may have moved into i */
        }
        else {
            i++;
        }
    }
}

apr_uint32_t upm_uc_used(const upm_uc_table *t)
{
    return t->used;
}
