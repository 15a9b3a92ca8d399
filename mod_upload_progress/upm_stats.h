/* SPDX-License-Identifier: Apache-2.0 */
/* Server-wide counters in shared memory, bumped with atomics so every
 * child adds to the same figures, plus one slot per live child for its
 * gauges (open connections, uploads in flight) and its own share of the
 * deliveries.  Pure: the caller supplies the memory (upm_bus puts it at
 * the start of its segment). */
#ifndef UPM_STATS_H
#define UPM_STATS_H

#include <apr.h>
#include <apr_time.h>
#include "upm_jwt.h"

typedef enum {
    UPM_ST_EVENTS_ACCEPTED = 0,     /* messages appended to the ring */
    UPM_ST_EVENTS_REJECTED,         /* publish requests refused */
    UPM_ST_DELIVERED,               /* message frames written to clients */
    UPM_ST_DROPPED_THROTTLE,        /* progress coalesced by the throttle */
    UPM_ST_DROPPED_OVERFLOW,        /* queue overflow: client got reset */
    UPM_ST_RESETS_SENT,
    UPM_ST_REPLAYED,
    UPM_ST_DISPATCH_LAG,            /* a child's fan-out fell behind the ring */
    UPM_ST_SSE_OPENED,
    UPM_ST_SSE_CLOSED,
    UPM_ST_SLOW_CLOSED,             /* streams closed for not reading */
    UPM_ST_EVENTS_PUBLISHED,        /* of the accepted: from the publish handler */
    UPM_ST_EVENTS_TRACKED,          /* of the accepted: from upload tracking */
    UPM_ST_UPLOADS_STARTED,
    UPM_ST_UPLOADS_COMPLETED,
    UPM_ST_UPLOADS_FAILED,
    UPM_ST_UPLOAD_BYTES,            /* request-body bytes counted by tracking */
    UPM_ST_UPLOADS_UNTRACKED,       /* state table full: no report for it */
    UPM_ST_POLL_REQUESTS,
    UPM_ST_REPORT_REQUESTS,
    UPM_ST_REDIS_RECONNECTS,        /* the feeder's link re-established after a loss */
    UPM_ST_REDIS_RECEIVED,          /* payloads the feeding listener took */
    UPM_ST_REDIS_REFUSED,           /* ... of which refused (bad JSON, no owner ...) */
    UPM_ST_REDIS_LINK_LOST,         /* the feeder's link lost */
    UPM_ST_REDIS_GAPS,              /* gaps marked in the ring (clients reset) */
    UPM_ST_REDIS_TAKEOVERS,         /* feeder lease changes of hands */
    UPM_ST_REDIS_PUBLISHED,         /* events sent to Redis (publish handler, tracking) */
    UPM_ST_REDIS_PUBLISH_FAILED,    /* sends refused: Redis unreachable */
    UPM_ST__COUNT
} upm_stat;

/* How a push connection is carried... */
typedef enum {
    UPM_TR_SSE = 0,
    UPM_TR_WS,
    UPM_TR_POLL,
    UPM_TR__COUNT
} upm_transport;

/* ...and whether it holds a worker thread or sits in the reactor. */
typedef enum {
    UPM_MODE_WORKER = 0,
    UPM_MODE_ASYNC,
    UPM_MODE__COUNT
} upm_conn_mode;

typedef enum {
    UPM_REDIS_DISABLED = 0,         /* embedded mode: no Redis configured */
    UPM_REDIS_CONNECTING,
    UPM_REDIS_UP,
    UPM_REDIS_DOWN,
    UPM_REDIS__COUNT
} upm_redis_link;

/* Why a tracked upload failed (the `reason` of upload_failed). */
typedef enum {
    UPM_UF_ABORTED = 0,             /* the client went away mid-body */
    UPM_UF_TIMEOUT,                 /* the client stopped sending */
    UPM_UF_TOO_LARGE,               /* over LimitRequestBody */
    UPM_UF_BAD_BODY,                /* malformed chunked encoding */
    UPM_UF_HTTP_ERROR,              /* final status >= 400 */
    UPM_UF_INCOMPLETE,              /* the handler left part of the body unread */
    UPM_UF__COUNT
} upm_upload_failure;

/* Delivery latency buckets (publish to write), upper bounds in
 * microseconds; one more bucket counts everything above the last. */
#define UPM_LAT_BUCKETS 14
extern const apr_uint64_t upm_lat_bounds_us[UPM_LAT_BUCKETS];

typedef struct upm_child_stats {
    apr_int32_t pid;                /* 0: free */
    apr_int32_t generation;
    apr_int64_t started;            /* apr_time_t */
    apr_int64_t conns[UPM_TR__COUNT][UPM_MODE__COUNT];
    apr_int64_t uploads_active;
    apr_uint64_t delivered;
} upm_child_stats;

typedef struct upm_stats_shm {
    apr_uint64_t v[UPM_ST__COUNT];
    apr_uint64_t auth_failures[UPM_JWT__COUNT];
    apr_uint64_t upload_failures[UPM_UF__COUNT];
    apr_uint64_t lat_count[UPM_LAT_BUCKETS + 1];
    apr_uint64_t lat_sum_us;
    apr_uint32_t redis_link;
    apr_uint32_t nchildren;
    upm_child_stats child[1];       /* nchildren of them */
} upm_stats_shm;

/* Bytes of shared memory for the counters and nchildren child slots. */
apr_size_t upm_stats_bytes(apr_uint32_t nchildren);
/* Lays out zeroed counters in mem (upm_stats_bytes() long). */
void upm_stats_init(void *mem, apr_uint32_t nchildren);
/* Uses mem as laid out by upm_stats_init (possibly by an earlier
 * generation of the server). */
void upm_stats_attach(upm_stats_shm *shm);

void upm_stats_add(upm_stat st, apr_uint64_t n);
void upm_stats_auth_failure(upm_jwt_status st);
apr_uint64_t upm_stats_get(upm_stat st);
const char *upm_stats_name(upm_stat st);

/* A message written to a client: counts it for the server and this
 * child.  latency >= 0 also records publish-to-write time (live
 * deliveries; replays pass -1 since their age says nothing of speed). */
void upm_stats_delivered(apr_uint64_t n, apr_interval_time_t latency);
/* The bucket a latency falls into (UPM_LAT_BUCKETS for the overflow). */
int upm_stats_lat_bucket(apr_interval_time_t latency);

/* Gauges of this child: +1 when a connection opens, -1 when it closes. */
void upm_stats_conn(upm_transport t, upm_conn_mode m, int delta);
void upm_stats_uploads_active(int delta);
void upm_stats_upload_failed(upm_upload_failure why);
const char *upm_stats_upload_failure_name(upm_upload_failure why);

void upm_stats_redis_link(upm_redis_link st);
const char *upm_stats_redis_link_name(upm_redis_link st);

/* Takes a free child slot for pid (or one whose process is gone), zeroed.
 * Returns its index, or -1 when every slot is taken by a live process
 * (the child's figures then only go to the server-wide totals). */
int upm_stats_child_claim(apr_int32_t pid, apr_int32_t generation, apr_time_t now);
/* Gives this process's slot back (child exit). */
void upm_stats_child_release(void);

/* A consistent-enough copy for reporting: counters are read one by one
 * with atomics, children whose process is gone are left out. */
typedef struct upm_stats_snap {
    apr_uint64_t v[UPM_ST__COUNT];
    apr_uint64_t auth_failures[UPM_JWT__COUNT];
    apr_uint64_t upload_failures[UPM_UF__COUNT];
    apr_uint64_t lat_count[UPM_LAT_BUCKETS + 1];
    apr_uint64_t lat_sum_us;
    upm_redis_link redis_link;
    apr_int64_t conns[UPM_TR__COUNT][UPM_MODE__COUNT];  /* sum of children */
    apr_int64_t uploads_active;
    int nchildren;                  /* live children in child[] */
    upm_child_stats *child;         /* pool memory */
} upm_stats_snap;

#include <apr_pools.h>
/* 0 on success, -1 when no counters are attached. */
int upm_stats_snapshot(apr_pool_t *p, upm_stats_snap *out);

const char *upm_transport_name(upm_transport t);
const char *upm_conn_mode_name(upm_conn_mode m);

#endif
