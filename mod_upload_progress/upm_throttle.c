/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_throttle.h"

#include <string.h>

void upm_throttle_init(upm_throttle *t)
{
    memset(t, 0, sizeof(*t));
}

static int find(const upm_throttle *t, apr_uint64_t key)
{
    int i;
    for (i = 0; i < UPM_THROTTLE_SLOTS; i++) {
        if (t->key[i] == key) {
            return i;
        }
    }
    return -1;
}

int upm_throttle_pass(upm_throttle *t, apr_uint64_t key, apr_uint64_t seq, int is_progress,
                      double percent, double step)
{
    int i;

    if (key == 0) {
        return 1;
    }
    i = find(t, key);
    if (!is_progress) {
        if (i >= 0) {
            t->key[i] = 0;
        }
        return 1;
    }
    if (percent < 0) {
        return 1;
    }
    if (i >= 0 && seq && seq <= t->seq[i]) {
        /* Passed (or came before one that passed) when the live path
         * queued it; a replay that sends it instead, and makes the queued
         * copy be skipped, must not throttle it against itself. */
        return 1;
    }
    if (i < 0) {
        i = find(t, 0);
        if (i < 0) {
            /* Forgetting a key only lets one extra message through. */
            i = (int)(t->next++ % UPM_THROTTLE_SLOTS);
        }
        t->key[i] = key;
        t->last[i] = percent;
        t->seq[i] = seq;
        return 1;
    }
    /* Going backwards means a new upload under the same id. */
    if (percent <= 0.0 || percent >= 100.0 || percent < t->last[i]
        || percent - t->last[i] >= step - 1e-9) {
        t->last[i] = percent;
        t->seq[i] = seq;
        return 1;
    }
    return 0;
}
