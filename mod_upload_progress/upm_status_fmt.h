/* SPDX-License-Identifier: Apache-2.0 */
/* The figures of the status handler and the mod_status section, rendered
 * as JSON, Prometheus text exposition format (0.0.4), mod_status's
 * ?auto lines and an HTML table.  Pure: the caller gathers the data. */
#ifndef UPM_STATUS_FMT_H
#define UPM_STATUS_FMT_H

#include <apr_pools.h>
#include "upm_stats.h"

typedef struct upm_status_data {
    const char *version;
    apr_time_t now;
    apr_int32_t pid;                /* the process answering */
    upm_stats_snap st;
    /* the replay ring */
    apr_uint64_t ring_epoch;
    apr_uint32_t ring_slots;
    apr_uint64_t ring_bytes;
    apr_uint64_t ring_bytes_used;
    apr_uint64_t ring_max_record;
    apr_uint64_t ring_last;         /* 0: empty */
    apr_uint64_t ring_oldest;       /* last + 1 when nothing is held */
    /* The ids clients see for ring_last / ring_oldest when they are not
     * <epoch>-<seq> (Redis Streams mode: stream ids); NULL otherwise. */
    const char *last_id;
    const char *oldest_id;
    /* Redis ingest: every ring append is the listener's, and the publish
     * and track counts are what this server's handlers sent to Redis. */
    int redis;
    /* the upload report table */
    apr_uint32_t track_slots;
    apr_uint32_t track_active;
} upm_status_data;

/* Messages the ring holds now. */
apr_uint64_t upm_status_ring_held(const upm_status_data *d);

char *upm_status_json(apr_pool_t *p, const upm_status_data *d);
char *upm_status_prometheus(apr_pool_t *p, const upm_status_data *d);
char *upm_status_auto(apr_pool_t *p, const upm_status_data *d);
char *upm_status_html(apr_pool_t *p, const upm_status_data *d);

#endif
