/* Server-wide counters in shared memory, bumped with atomics so every
 * child adds to the same figures. */
#ifndef UPM_STATS_H
#define UPM_STATS_H

#include <apr.h>
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
    UPM_ST_REDIS_RECEIVED,          /* payloads the feeding listener took */
    UPM_ST_REDIS_REFUSED,           /* ... of which refused (bad JSON, no owner ...) */
    UPM_ST_REDIS_CONNECTS,          /* listener links established */
    UPM_ST_REDIS_LINK_LOST,         /* listener links lost */
    UPM_ST_REDIS_GAPS,              /* gaps marked in the ring (clients reset) */
    UPM_ST_REDIS_TAKEOVERS,         /* feeder lease changes of hands */
    UPM_ST_REDIS_PUBLISHED,         /* events the publish handler sent to Redis */
    UPM_ST_REDIS_PUBLISH_FAILED,    /* publish requests refused: Redis unreachable */
    UPM_ST__COUNT
} upm_stat;

typedef struct upm_stats_shm {
    apr_uint64_t v[UPM_ST__COUNT];
    apr_uint64_t auth_failures[UPM_JWT__COUNT];
} upm_stats_shm;

void upm_stats_attach(upm_stats_shm *shm);
void upm_stats_add(upm_stat st, apr_uint64_t n);
void upm_stats_auth_failure(upm_jwt_status st);
apr_uint64_t upm_stats_get(upm_stat st);
const char *upm_stats_name(upm_stat st);

#endif
