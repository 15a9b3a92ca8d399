/* SPDX-License-Identifier: Apache-2.0 */
/* The decisions of the Redis ingest that need no socket: reconnect backoff,
 * channel patterns and owner routing, stream ids, the feeder lease, the
 * hand-over alignment of pub/sub standbys and log rate limiting.  Pure
 * (APR only), unit-tested in make check. */
#ifndef UPM_REDIS_LOGIC_H
#define UPM_REDIS_LOGIC_H

#include <apr.h>
#include <apr_pools.h>
#include <apr_time.h>

/* ---- backoff ----------------------------------------------------------- */

/* Delay before reconnect attempt `attempt` (0 for the first retry):
 * min * 2^attempt capped at max, then drawn from [d/2, d] by rnd so that
 * the children of every node do not hammer a returning Redis in step. */
apr_interval_time_t upm_backoff_delay(unsigned attempt, apr_interval_time_t min,
                                      apr_interval_time_t max, apr_uint32_t rnd);

/* ---- channels ---------------------------------------------------------- */

/* Redis glob matching as PSUBSCRIBE does it: * ? [abc] [^a] [a-z] \x. */
int upm_redis_glob(const char *pat, const char *s, apr_size_t slen);

/* Index of the first of n patterns that matches the channel, or -1.  A
 * message whose channel matches several patterns arrives once per pattern;
 * only the copy of the first one is taken. */
int upm_patterns_first(const char *const *pats, int n, const char *ch, apr_size_t chlen);

/* The owner a channel names: "user:{id}" gives id (a pool copy), any
 * other channel NULL (the event must then carry userId itself). */
const char *upm_channel_owner(apr_pool_t *p, const char *ch, apr_size_t chlen);

/* A channel prefix that addresses messages to a scope: "upload-session:"
 * for field UPM_F_SESSION (upm_msg.h), say. */
typedef struct upm_chan_scope {
    int field;
    const char *prefix;
} upm_chan_scope;

/* The scope a channel names: the field of the first of n prefixes the
 * channel starts with, followed by at least one byte (the id, a pool copy
 * in *id); -1 when none matches. */
int upm_channel_scope(apr_pool_t *p, const upm_chan_scope *routes, int n, const char *ch,
                      apr_size_t chlen, const char **id);

/* FNV-1a 64 of channel and payload: identifies a pub/sub message for the
 * hand-over between feeders. */
apr_uint64_t upm_msg_hash(const char *ch, apr_size_t chlen, const char *data, apr_size_t dlen);

/* ---- stream ids -------------------------------------------------------- */

typedef struct upm_xid {
    apr_uint64_t ms, seq;
} upm_xid;

#define UPM_XID_LEN 44          /* "<20 digits>-<20 digits>" and a NUL */

/* "<ms>-<seq>", both decimal: 0 on success, -1 otherwise. */
int upm_xid_parse(const char *s, apr_size_t len, upm_xid *out);
int upm_xid_cmp(upm_xid a, upm_xid b);
/* The time an entry id carries (its milliseconds: when XADD * made it),
 * as the timestamp of a message that has none, so that the entry has the
 * same timestamp on every server, live and replayed. */
apr_time_t upm_xid_time(upm_xid x);
apr_size_t upm_xid_format(char *buf, upm_xid x);

/* XINFO STREAM: what the resume and the listener need. */
typedef struct upm_xinfo {
    int exists;                 /* 0: no such key */
    int has_max_deleted;        /* Redis >= 7 reports it (XDEL only, not trims) */
    upm_xid max_deleted;
    upm_xid last_generated;
    upm_xid first_entry;        /* valid when length > 0 */
    apr_uint64_t length;
    int has_entries_added;      /* Redis >= 7 */
    apr_uint64_t entries_added;
} upm_xinfo;

/* May entries newer than id have been removed from the stream (trimmed,
 * deleted, or the stream itself lost)?  Conservative: an id whose own
 * entry was trimmed away counts, as nothing tells whether its successors
 * went with it. */
int upm_xinfo_lost_after(const upm_xinfo *xi, upm_xid id);

/* ---- the feeder lease -------------------------------------------------- */

#define UPM_LEASE_MARKS 8

/* Lives in the bus segment, read and written under the bus lock. */
typedef struct upm_lease {
    apr_int64_t holder;         /* pid of the feeding child; 0: nobody */
    apr_uint64_t gen;           /* bumped at every take-over: fences a stale feeder */
    apr_int64_t renewed;        /* apr_time_t of the holder's last renewal */
    apr_uint32_t released;      /* the last holder let go cleanly */
    apr_uint32_t nmarks;        /* valid entries of marks */
    /* Hashes of the last pub/sub messages the feeders took (fed or
     * refused), oldest first: a standby finds its place after them. */
    apr_uint64_t marks[UPM_LEASE_MARKS];
    apr_uint64_t taken;         /* messages taken under every holder */
    char xid[UPM_XID_LEN];      /* Streams: last entry id taken; "" none */
    char xgap[UPM_XID_LEN];     /* Streams: newest loss already marked as a gap */
    apr_uint32_t handover;      /* the holder is stopping: a standby may take over */
    apr_int64_t standby_seen;   /* when a listening pub/sub standby last said so */
} upm_lease;

/* May a listener take the lease now?  holder_alive: whether the holder's
 * pid still exists (kill(pid, 0)).  A lease not renewed within ttl, or
 * renewed "in the future" by more than ttl (the clock went back), is
 * free. */
int upm_lease_is_free(const upm_lease *l, apr_time_t now, apr_interval_time_t ttl,
                      int holder_alive);

/* Appends hashes (oldest first) to the marks window. */
void upm_lease_push_marks(upm_lease *l, const apr_uint64_t *h, apr_size_t n);

/* Where a standby continues after the feeder it replaces.  buf: hashes of
 * what the standby received, oldest first; marks: the lease's window.
 * Returns the index of the first message in buf nobody has taken, or -1
 * when buf cannot be placed (then messages may be lost: a gap).  The
 * newest full match of the window wins; a match may be only a suffix of
 * the window when it lies at the very start of buf (the standby started
 * listening while those messages were being taken).  nmarks 0: 0. */
long upm_align(const apr_uint64_t *buf, long n, const apr_uint64_t *marks, int nmarks);

/* Where a pub/sub standby taking over the lease l continues among the
 * messages it holds (hashes held[0..n), oldest first): the index of the
 * first one nobody took, or -1 when that cannot be known (a gap).
 * ready_held / ready_taken: whether a feeder held the lease when this
 * standby's subscription became active, and l->taken then. */
long upm_takeover_start(const upm_lease *l, const apr_uint64_t *held, long n, int ready_held,
                        apr_uint64_t ready_taken);

/* ---- log rate limiting ------------------------------------------------- */

typedef struct upm_ratelimit {
    apr_time_t next;
    apr_uint64_t suppressed;
} upm_ratelimit;

/* 1 when a line may be logged now (then *suppressed is how many were held
 * back since the last one), 0 when it is held back. */
int upm_ratelimit_pass(upm_ratelimit *rl, apr_time_t now, apr_interval_time_t every,
                       apr_uint64_t *suppressed);

#endif
