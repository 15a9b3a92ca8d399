/* SPDX-License-Identifier: Apache-2.0 */
/* The old module's per-upload state, kept for its JSON report: a table of
 * fixed slots in shared memory keyed by progress id and owner.  Finished
 * uploads stay readable until they expire; a full table gives way to the
 * least recently updated finished (then abandoned) upload.  Pure
 * arithmetic on that block; the caller serialises access with its lock. */
#ifndef UPM_TRACK_STATE_H
#define UPM_TRACK_STATE_H

#include <apr.h>
#include <apr_pools.h>
#include <apr_time.h>

#define UPM_TRACK_MIN_SLOTS 16
#define UPM_TRACK_MAX_SLOTS (1 << 20)
#define UPM_TRACK_ID_MAX    128
#define UPM_TRACK_OWNER_MAX 255

typedef enum {
    UPM_TS_FREE = 0,
    UPM_TS_ACTIVE,              /* the body is being read */
    UPM_TS_DONE,                /* read whole, final status < 400 */
    UPM_TS_ERROR                /* aborted, refused or status >= 400 */
} upm_track_phase;

typedef struct upm_track_slot {
    apr_uint64_t gen;           /* changes at every reuse of the slot */
    apr_int64_t size;           /* Content-Length; -1: unknown (chunked) */
    apr_int64_t received;
    apr_int64_t started;        /* apr_time_t */
    apr_int64_t updated;        /* last byte read: staleness, the speed */
    apr_int64_t finished;       /* 0 while active; LRU order of finished ones */
    apr_int64_t expires;        /* 0 while active */
    apr_int32_t phase;          /* upm_track_phase */
    apr_int32_t status;         /* final HTTP status, 0 while active */
    apr_int32_t reason;         /* upm_upload_failure of an error; -1 */
    apr_int32_t has_owner;
    char id[UPM_TRACK_ID_MAX + 1];
    char owner[UPM_TRACK_OWNER_MAX + 1];
} upm_track_slot;

typedef struct upm_track_table upm_track_table;

apr_size_t upm_track_slot_bytes(void);
apr_size_t upm_track_table_bytes(apr_uint32_t nslots);
/* Lays out an empty table in mem (upm_track_table_bytes() long). */
upm_track_table *upm_track_table_init(void *mem, apr_uint32_t nslots);
/* The table in mem when laid out with nslots, else NULL. */
upm_track_table *upm_track_table_attach(void *mem, apr_uint32_t nslots);
apr_uint32_t upm_track_table_slots(const upm_track_table *t);
/* Slots holding an upload in flight. */
apr_uint32_t upm_track_table_active(const upm_track_table *t);

/* Starts an upload of `size` bytes (-1: unknown) under id for owner (NULL
 * or "": anonymous).  An earlier upload with the same id and owner,
 * finished or not, is replaced: a reused id is a new upload.  Returns the
 * slot and its generation (*gen), or -1 when every slot holds an upload
 * updated within `stale`, or the id or owner is too long. */
int upm_track_begin(upm_track_table *t, const char *id, const char *owner,
                    apr_int64_t size, apr_time_t now, apr_interval_time_t stale,
                    apr_uint64_t *gen);

/* Sets the bytes received so far (and the time of the last read, which
 * the report's speed is measured to).  0 on success; -1 when the slot no longer
 * belongs to this upload (replaced by a newer one). */
int upm_track_update(upm_track_table *t, int slot, apr_uint64_t gen,
                     apr_int64_t received, apr_time_t now);

/* Ends the upload: done (ok) or error with the final status and reason;
 * the report stays readable for `keep`.  A body of unknown size gets its
 * size from what was received.  -1 when the slot was replaced. */
int upm_track_finish(upm_track_table *t, int slot, apr_uint64_t gen, int ok,
                     int status, int reason, apr_int64_t received, apr_time_t now,
                     apr_interval_time_t keep);

/* Copies the upload under id that `reader` may see: one it owns, else an
 * anonymous one (anyone with the id may read those, as with the old
 * module); NULL or "" reads anonymous ones only.  Expired ones are not
 * found.  1 when found, 0 when not. */
int upm_track_lookup(const upm_track_table *t, const char *id, const char *reader,
                     apr_time_t now, upm_track_slot *out);

/* Does an upload under id exist owned by someone other than reader?  (For a
 * log line explaining a report that looks unknown.) */
int upm_track_owned_by_other(const upm_track_table *t, const char *id,
                             const char *reader, apr_time_t now);

/* Bytes per second over the upload's duration so far (to `now` while it
 * runs), 0 before a millisecond has passed. */
apr_int64_t upm_track_speed(apr_int64_t received, apr_time_t started, apr_time_t end);
/* Seconds left at that speed, rounded up; -1 when it cannot be told
 * (unknown size or no speed yet). */
apr_int64_t upm_track_eta(apr_int64_t received, apr_int64_t size, apr_int64_t speed);

/* The old module's figures.  speed: bytes per second over the whole
 * seconds from the start to the last byte read (0 within the first
 * second); eta: the Unix time the upload ends at that speed, never before
 * now + 1. */
apr_int64_t upm_track_old_speed(apr_int64_t received, apr_time_t started,
                                apr_time_t last_read);
apr_int64_t upm_track_old_eta(apr_int64_t size, apr_int64_t speed, apr_time_t started,
                              apr_time_t now);

/* The old module's report for id (slot NULL when unknown), with its keys
 * in its order, state by state:
 *   {"state":"starting","uuid":..}
 *   {"state":"uploading","received","size","speed","started_at","eta",
 *    "seconds_left","uuid"}
 *   {"state":"done","received","size","speed","started_at","completed_at","uuid"}
 *   {"state":"error","status","reason","received","size","uuid"}
 * (seconds_left, reason and done's received are ours; docs/tracking.md).
 * id must be a valid progress id (no escaping needed, but it is escaped
 * anyway). */
char *upm_track_report_json(apr_pool_t *p, const char *id, const upm_track_slot *slot,
                            apr_time_t now);

#endif
