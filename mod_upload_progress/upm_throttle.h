/* SPDX-License-Identifier: Apache-2.0 */
/* Per-connection progress throttling (DESIGN section 1): progress messages
 * for one photo/file/job reach a connection in steps of at least `step`
 * percent; 0 and 100 always pass, and so does anything that is not a
 * progress message.  A fixed table of key hashes keeps the per-connection
 * cost small and bounded. */
#ifndef UPM_THROTTLE_H
#define UPM_THROTTLE_H

#include <apr.h>

#define UPM_THROTTLE_SLOTS 16

typedef struct upm_throttle {
    apr_uint64_t key[UPM_THROTTLE_SLOTS];
    double last[UPM_THROTTLE_SLOTS];
    apr_uint64_t seq[UPM_THROTTLE_SLOTS];   /* of the message that passed last */
    unsigned next;              /* round-robin victim when full */
} upm_throttle;

void upm_throttle_init(upm_throttle *t);

/* key: from upm_msg_progress_key (0: not throttled).  seq: the message's
 * ring sequence (0: unknown); a message no newer than the last one that
 * passed for its key was decided already (a replay going over messages the
 * live path queued) and passes again.  percent < 0: the message carries no
 * percentage (passes).  is_progress: a progress type; otherwise the key's
 * state is forgotten (a finished upload's id may be reused).  Returns 1
 * when the message should be delivered. */
int upm_throttle_pass(upm_throttle *t, apr_uint64_t key, apr_uint64_t seq, int is_progress,
                      double percent, double step);

#endif
