/* SPDX-License-Identifier: Apache-2.0 */
/* Cross-process wake-up on a 32-bit word in shared memory.  On Linux a
 * shared (non-private) futex: waiters sleep in the kernel until a publisher
 * in any child bumps the word, so idle children cost nothing.  Elsewhere a
 * short sleep stands in (correct, only slower to react). */
#ifndef UPM_FUTEX_H
#define UPM_FUTEX_H

#include <apr.h>
#include <apr_time.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <limits.h>
#include <time.h>

static inline void upm_futex_wait(apr_uint32_t *word, apr_uint32_t seen,
                                  apr_interval_time_t timeout)
{
    struct timespec ts;
    ts.tv_sec = (time_t)apr_time_sec(timeout);
    ts.tv_nsec = (long)apr_time_usec(timeout) * 1000;
    syscall(SYS_futex, word, FUTEX_WAIT, seen, &ts, NULL, 0);
}

static inline void upm_futex_wake_all(apr_uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}
#else
static inline void upm_futex_wait(apr_uint32_t *word, apr_uint32_t seen,
                                  apr_interval_time_t timeout)
{
    if (__atomic_load_n(word, __ATOMIC_ACQUIRE) == seen) {
        apr_sleep(timeout < 10000 ? timeout : 10000);
    }
}

static inline void upm_futex_wake_all(apr_uint32_t *word) { (void)word; }
#endif

#endif
