/* SPDX-License-Identifier: Apache-2.0 */
/* What the replay ring has evicted, remembered per bucket of routing keys
 * (a user, or a session / job / project / file id): the newest position
 * of a message that left the ring, per bucket.  A client whose last id is
 * older than the ring then needs a reset only when its own bucket lost a
 * message after that id; otherwise the ring's start is exact for it.
 * Pure: APR only.  Fixed size, laid out in the bus's shared memory. */
#ifndef UPM_EVICT_H
#define UPM_EVICT_H

#include <apr.h>
#include "upm_msg.h"

/* Buckets per kind of key (docs/reliability.md gives the false-reset
 * probability these sizes buy). */
#define UPM_EVICT_USER_BUCKETS  32768u
#define UPM_EVICT_SCOPE_BUCKETS 32768u
#define UPM_EVICT_BUCKETS (UPM_EVICT_USER_BUCKETS + UPM_EVICT_SCOPE_BUCKETS)

/* A position: (0, ring sequence), or a Redis stream id (ms, seq) in
 * Streams mode.  Ordered as the pair. */
typedef struct upm_evict_pos {
    apr_uint64_t hi, lo;
} upm_evict_pos;

typedef struct upm_evict upm_evict;

apr_size_t upm_evict_bytes(void);
/* Lays out an empty table in mem (upm_evict_bytes() long). */
upm_evict *upm_evict_init(void *mem);

/* The bucket of the messages a subscriber routed via `via` can see:
 * its user's (via UPM_F_OWNER), else the granted id's (scope[via]).
 * A message it can see is noted in that bucket (upm_evict_note). */
apr_uint32_t upm_evict_key(const char *user, const char *const *scope, int via);

/* Message m, at position pos, has left the ring: raises the buckets of
 * its owner and of each of its session, job, project and file ids. */
void upm_evict_note(upm_evict *e, const upm_msg *m, upm_evict_pos pos);

/* The newest position noted in bucket key ({0, 0}: none). */
upm_evict_pos upm_evict_newest(const upm_evict *e, apr_uint32_t key);

/* -1, 0, 1 as a is before, equal to, after b. */
int upm_evict_cmp(upm_evict_pos a, upm_evict_pos b);

#endif
