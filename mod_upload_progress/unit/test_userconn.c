/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include "upm_userconn.h"
#include "upm_test.h"

/* Reference model: counts per (user, pid). */
#define U 40
#define P 5
static unsigned model[U][P];

static unsigned model_total(int u)
{
    unsigned s = 0;
    int p;
    for (p = 0; p < P; p++) {
        s += model[u][p];
    }
    return s;
}

int main(void)
{
    apr_uint32_t nslots = 97;
    void *mem = malloc(upm_uc_bytes(nslots));
    upm_uc_table *t = upm_uc_init(mem, nslots);
    apr_uint64_t keys[U];
    int i, ok = 1;

    UPM_CHECK(upm_uc_hash("") != 0);
    UPM_CHECK(upm_uc_hash("alice") != upm_uc_hash("bob"));

    /* Limits: a user at its limit is refused whichever child asks. */
    UPM_CHECK_INT(upm_uc_acquire(t, 7, 100, 2), 1);
    UPM_CHECK_INT(upm_uc_acquire(t, 7, 200, 2), 1);
    UPM_CHECK_INT(upm_uc_acquire(t, 7, 300, 2), 0);
    UPM_CHECK_INT(upm_uc_total(t, 7), 2);
    upm_uc_release(t, 7, 100);
    UPM_CHECK_INT(upm_uc_acquire(t, 7, 300, 2), 1);
    UPM_CHECK_INT(upm_uc_acquire(t, 8, 300, 0), 1);     /* no limit */
    /* A dead child's streams stop counting. */
    upm_uc_drop_pid(t, 300);
    UPM_CHECK_INT(upm_uc_total(t, 7), 1);
    UPM_CHECK_INT(upm_uc_total(t, 8), 0);
    upm_uc_release(t, 7, 200);
    UPM_CHECK_INT(upm_uc_used(t), 0);

    /* Random operations against the model, with keys that collide on
     * their home slot (multiples of nslots plus small offsets). */
    for (i = 0; i < U; i++) {
        keys[i] = (apr_uint64_t)(i % 7 + 1) + (apr_uint64_t)nslots * (apr_uint64_t)(i + 1);
    }
    srand(11);
    for (i = 0; i < 20000; i++) {
        int u = rand() % U, p = rand() % P, op = rand() % 10;
        if (op < 5) {
            int r = upm_uc_acquire(t, keys[u], p + 1, 6);
            if (r == 1) {
                model[u][p]++;
            }
            else if (r == 0 && model_total(u) < 6) {
                ok = 0;
            }
        }
        else if (op < 9) {
            if (model[u][p]) {
                model[u][p]--;
            }
            upm_uc_release(t, keys[u], p + 1);
        }
        else if (rand() % 50 == 0) {
            int q;
            upm_uc_drop_pid(t, p + 1);
            for (q = 0; q < U; q++) {
                model[q][p] = 0;
            }
        }
        if (upm_uc_total(t, keys[u]) != model_total(u)) {
            ok = 0;
        }
    }
    UPM_CHECK(ok);
    for (i = 0, ok = 1; i < U; i++) {
        if (upm_uc_total(t, keys[i]) != model_total(i)) {
            ok = 0;
        }
    }
    UPM_CHECK(ok);

    /* A full table says so instead of looping. */
    t = upm_uc_init(mem, 5);
    for (i = 1; i <= 4; i++) {
        UPM_CHECK_INT(upm_uc_acquire(t, (apr_uint64_t)i * 1000 + 1, 1, 0), 1);
    }
    UPM_CHECK_INT(upm_uc_acquire(t, 99991, 1, 0), -1);
    UPM_CHECK_INT(upm_uc_acquire(t, 1001, 1, 0), 1);    /* existing entry */
    free(mem);
    UPM_TEST_DONE("userconn");
}
