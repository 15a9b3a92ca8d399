/* SPDX-License-Identifier: Apache-2.0 */
/* The bus between children: the replay ring and the counters in one
 * shared memory segment that survives graceful restarts, its lock, and
 * the cross-process wake-up (DESIGN sections 4 and 5). */
#ifndef UPM_BUS_H
#define UPM_BUS_H

#include "httpd.h"
#include "upm_ring.h"
#include "upm_msg.h"
#include "upm_redis_logic.h"

/* post_config: attaches to (or creates) the segment. */
int upm_bus_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                        server_rec *s);
/* child_init: re-opens the lock in the child. */
void upm_bus_child_init(apr_pool_t *pchild, server_rec *s);

apr_uint64_t upm_bus_epoch(void);

/* Appends n messages as one unit: either all get consecutive sequence
 * numbers (written to seqs) or none is appended.  APR_EGENERAL when the
 * bus is not ready, APR_ENOSPC when a record is larger than the ring's
 * largest record. */
apr_status_t upm_bus_publish(apr_pool_t *p, upm_msg *const *msgs, int n,
                             apr_uint64_t *seqs);

/* Largest packed record the ring takes. */
apr_size_t upm_bus_max_record(void);

/* Copies messages with sequence in (after, after + max] into pool memory.
 * *last receives the ring's last sequence, *oldest its oldest readable one
 * (so the caller can tell a gap).  Returns the number copied into out. */
int upm_bus_read(apr_pool_t *p, apr_uint64_t after, int max, upm_msg *out,
                 apr_uint64_t *last, apr_uint64_t *oldest);

/* The ring's state, read under the lock. */
void upm_bus_state(apr_uint64_t *last, apr_uint64_t *oldest);

/* Resume check of a client-supplied id against the ring. */
upm_resume_status upm_bus_resume_check(const char *id, apr_uint64_t *seq);

/* The ring's geometry and fill, read under the lock (status pages). */
typedef struct upm_bus_info_t {
    apr_uint64_t epoch;
    apr_uint32_t slots;
    apr_size_t data_bytes;
    apr_size_t data_used;
    apr_size_t max_record;
    apr_uint64_t last;          /* 0: nothing appended yet */
    apr_uint64_t oldest;        /* last + 1 when nothing is held */
} upm_bus_info_t;
void upm_bus_info(upm_bus_info_t *info);

/* Blocks until the ring may have moved past `seen_wake` or timeout. */
apr_uint32_t upm_bus_wake_value(void);
void upm_bus_wait(apr_uint32_t seen_wake, apr_interval_time_t timeout);
/* Wakes every waiter (used to stop this child's own threads). */
void upm_bus_wake_all(void);

/* Open streams per user (UploadProgressMaxConnectionsPerUser): 1 counted,
 * 0 over limit, -1 not counted (table full or bus down: let it through). */
int upm_bus_user_acquire(const char *user, apr_uint32_t limit);
void upm_bus_user_release(const char *user);
/* In the parent, when a child has exited. */
void upm_bus_child_gone(pid_t pid);

/* ---- Redis ingest ------------------------------------------------------ */

#define UPM_BUS_MODE_EMBEDDED 0     /* no Redis: the publish handler appends */
#define UPM_BUS_MODE_PUBSUB   1     /* Redis pub/sub feeds the ring */
#define UPM_BUS_MODE_STREAM   2     /* a Redis stream feeds it; ids are stream ids */

/* The mode the ring was laid out for (the main server's configuration). */
int upm_bus_mode(void);

/* Runs fn on the feeder lease under the bus lock; returns what fn returns,
 * or -1 when the bus is not ready. */
int upm_bus_with_lease(int (*fn)(upm_lease *l, void *baton), void *baton);

/* The lease holder's append: when this process still holds the lease of
 * generation gen, appends the messages (seqs[i] = 0 for one too large for
 * the ring), records marks (hashes of the pub/sub messages taken) and xid
 * (the last stream id taken), and renews the lease, all as one step.
 * APR_EBUSY when the lease has moved on: nothing was appended. */
apr_status_t upm_bus_feed(apr_pool_t *p, apr_uint64_t gen, upm_msg *const *msgs, int n,
                          const apr_uint64_t *marks, apr_size_t nmarks, const char *xid,
                          apr_uint64_t *seqs);

typedef enum {
    UPM_XFIND_COVERED = 0,      /* the ring holds everything after the id */
    UPM_XFIND_UNCOVERED,        /* it does not (or the id is past its end): read the stream */
    UPM_XFIND_INVALID           /* not a stream id */
} upm_bus_xfind;

/* Streams mode resume: *after = the ring sequence after which the messages
 * newer than stream id `id` start (COVERED); *last = the ring's end. */
upm_bus_xfind upm_bus_find_xid(const char *id, apr_uint64_t *after, apr_uint64_t *last);

/* The id of the newest message as clients see it, and its ring sequence
 * (a reset carries it, so that a client reconnecting with it is not reset
 * again).  In Streams mode, the newest stream id this node has taken. */
const char *upm_bus_newest(apr_pool_t *p, apr_uint64_t *seq);

/* Ring sequence of the newest gap marker (0: none): a client whose last id
 * lies before it missed messages that no replay can give. */
apr_uint64_t upm_bus_gap_seq(void);

/* The id clients see for ring sequence seq: "<epoch>-<seq>", or in Streams
 * mode the stream id of that record (the newest id when it has none). */
const char *upm_bus_id_of(apr_pool_t *p, apr_uint64_t seq);

#endif
