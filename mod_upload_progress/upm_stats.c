/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_stats.h"

#include <apr_strings.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>

static upm_stats_shm *stats;
/* This process's child slot; NULL in the parent and when none was free. */
static upm_child_stats *mine;

static const char *const names[UPM_ST__COUNT] = {
    "events_accepted", "events_rejected", "delivered", "dropped_throttle",
    "dropped_overflow", "resets_sent", "replayed", "dispatch_lag",
    "sse_opened", "sse_closed", "slow_closed", "events_published", "events_tracked",
    "uploads_started", "uploads_completed", "uploads_failed", "upload_bytes",
    "uploads_untracked", "poll_requests", "report_requests", "redis_reconnects",
    "redis_received", "redis_refused", "redis_link_lost", "redis_gaps", "redis_takeovers",
    "redis_published", "redis_publish_failed"
};

static const char *const failure_names[UPM_UF__COUNT] = {
    "aborted", "timeout", "too_large", "bad_body", "http_error", "incomplete"
};

static const char *const redis_names[UPM_REDIS__COUNT] = {
    "disabled", "connecting", "up", "down"
};

static const char *const transport_names[UPM_TR__COUNT] = { "sse", "websocket", "poll" };
static const char *const mode_names[UPM_MODE__COUNT] = { "worker", "async" };

/* 100 us .. 5 s: sub-millisecond is what a healthy server delivers, the
 * upper buckets show a stalled child or a slow consumer. */
const apr_uint64_t upm_lat_bounds_us[UPM_LAT_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
    250000, 500000, 1000000, 5000000
};

apr_size_t upm_stats_bytes(apr_uint32_t nchildren)
{
    if (nchildren == 0) {
        nchildren = 1;
    }
    return offsetof(upm_stats_shm, child) + sizeof(upm_child_stats) * nchildren;
}

void upm_stats_init(void *mem, apr_uint32_t nchildren)
{
    upm_stats_shm *s = mem;
    if (nchildren == 0) {
        nchildren = 1;
    }
    memset(s, 0, upm_stats_bytes(nchildren));
    s->nchildren = nchildren;
}

void upm_stats_attach(upm_stats_shm *shm)
{
    stats = shm;
    mine = NULL;
}

void upm_stats_add(upm_stat st, apr_uint64_t n)
{
    if (stats && st < UPM_ST__COUNT) {
        __atomic_add_fetch(&stats->v[st], n, __ATOMIC_RELAXED);
    }
}

void upm_stats_auth_failure(upm_jwt_status st)
{
    if (stats && st < UPM_JWT__COUNT) {
        __atomic_add_fetch(&stats->auth_failures[st], 1, __ATOMIC_RELAXED);
    }
}

apr_uint64_t upm_stats_get(upm_stat st)
{
    return (stats && st < UPM_ST__COUNT) ? __atomic_load_n(&stats->v[st], __ATOMIC_RELAXED)
                                         : 0;
}

const char *upm_stats_name(upm_stat st)
{
    return st < UPM_ST__COUNT ? names[st] : "unknown";
}

int upm_stats_lat_bucket(apr_interval_time_t latency)
{
    int i;
    apr_uint64_t us = latency > 0 ? (apr_uint64_t)latency : 0;
    for (i = 0; i < UPM_LAT_BUCKETS; i++) {
        if (us <= upm_lat_bounds_us[i]) {
            return i;
        }
    }
    return UPM_LAT_BUCKETS;
}

void upm_stats_delivered(apr_uint64_t n, apr_interval_time_t latency)
{
    if (!stats || n == 0) {
        return;
    }
    __atomic_add_fetch(&stats->v[UPM_ST_DELIVERED], n, __ATOMIC_RELAXED);
    if (mine) {
        __atomic_add_fetch(&mine->delivered, n, __ATOMIC_RELAXED);
    }
    if (latency >= 0) {
        /* A clock step backwards must not wrap the sum. */
        __atomic_add_fetch(&stats->lat_count[upm_stats_lat_bucket(latency)], n,
                           __ATOMIC_RELAXED);
        __atomic_add_fetch(&stats->lat_sum_us, (apr_uint64_t)latency * n, __ATOMIC_RELAXED);
    }
}

void upm_stats_conn(upm_transport t, upm_conn_mode m, int delta)
{
    if (mine && t < UPM_TR__COUNT && m < UPM_MODE__COUNT) {
        __atomic_add_fetch(&mine->conns[t][m], (apr_int64_t)delta, __ATOMIC_RELAXED);
    }
}

void upm_stats_uploads_active(int delta)
{
    if (mine) {
        __atomic_add_fetch(&mine->uploads_active, (apr_int64_t)delta, __ATOMIC_RELAXED);
    }
}

void upm_stats_upload_failed(upm_upload_failure why)
{
    if (stats && why < UPM_UF__COUNT) {
        __atomic_add_fetch(&stats->upload_failures[why], 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&stats->v[UPM_ST_UPLOADS_FAILED], 1, __ATOMIC_RELAXED);
    }
}

const char *upm_stats_upload_failure_name(upm_upload_failure why)
{
    return why < UPM_UF__COUNT ? failure_names[why] : "unknown";
}

void upm_stats_redis_link(upm_redis_link st)
{
    if (stats && st < UPM_REDIS__COUNT) {
        __atomic_store_n(&stats->redis_link, (apr_uint32_t)st, __ATOMIC_RELAXED);
    }
}

const char *upm_stats_redis_link_name(upm_redis_link st)
{
    return st < UPM_REDIS__COUNT ? redis_names[st] : "unknown";
}

const char *upm_transport_name(upm_transport t)
{
    return t < UPM_TR__COUNT ? transport_names[t] : "unknown";
}

const char *upm_conn_mode_name(upm_conn_mode m)
{
    return m < UPM_MODE__COUNT ? mode_names[m] : "unknown";
}

static int pid_alive(apr_int32_t pid)
{
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

int upm_stats_child_claim(apr_int32_t pid, apr_int32_t generation, apr_time_t now)
{
    apr_uint32_t i;
    if (!stats) {
        return -1;
    }
    /* Two passes: free slots first, then slots of crashed children (a
     * child killed by a signal never gives its slot back). */
    for (i = 0; i < stats->nchildren * 2; i++) {
        upm_child_stats *c = &stats->child[i % stats->nchildren];
        apr_int32_t cur = __atomic_load_n(&c->pid, __ATOMIC_ACQUIRE);
        /* A slot left behind under our own pid (a dead child whose pid
         * came back) is ours to take. */
        if (cur != pid && (i < stats->nchildren ? cur != 0 : pid_alive(cur))) {
            continue;
        }
        if (__atomic_compare_exchange_n(&c->pid, &cur, pid, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            c->generation = generation;
            c->started = now;
            memset(c->conns, 0, sizeof(c->conns));
            c->uploads_active = 0;
            c->delivered = 0;
            mine = c;
            return (int)(i % stats->nchildren);
        }
    }
    return -1;
}

void upm_stats_child_release(void)
{
    if (mine) {
        __atomic_store_n(&mine->pid, 0, __ATOMIC_RELEASE);
        mine = NULL;
    }
}

int upm_stats_snapshot(apr_pool_t *p, upm_stats_snap *out)
{
    apr_uint32_t i;
    int t, m;

    memset(out, 0, sizeof(*out));
    if (!stats) {
        return -1;
    }
    for (i = 0; i < UPM_ST__COUNT; i++) {
        out->v[i] = __atomic_load_n(&stats->v[i], __ATOMIC_RELAXED);
    }
    for (i = 0; i < UPM_JWT__COUNT; i++) {
        out->auth_failures[i] = __atomic_load_n(&stats->auth_failures[i], __ATOMIC_RELAXED);
    }
    for (i = 0; i < UPM_UF__COUNT; i++) {
        out->upload_failures[i] = __atomic_load_n(&stats->upload_failures[i],
                                                  __ATOMIC_RELAXED);
    }
    for (i = 0; i <= UPM_LAT_BUCKETS; i++) {
        out->lat_count[i] = __atomic_load_n(&stats->lat_count[i], __ATOMIC_RELAXED);
    }
    out->lat_sum_us = __atomic_load_n(&stats->lat_sum_us, __ATOMIC_RELAXED);
    out->redis_link = (upm_redis_link)__atomic_load_n(&stats->redis_link, __ATOMIC_RELAXED);
    if (out->redis_link >= UPM_REDIS__COUNT) {
        out->redis_link = UPM_REDIS_DISABLED;
    }
    out->child = apr_pcalloc(p, sizeof(upm_child_stats) * stats->nchildren);
    for (i = 0; i < stats->nchildren; i++) {
        upm_child_stats *c = &stats->child[i], *o;
        apr_int32_t pid = __atomic_load_n(&c->pid, __ATOMIC_ACQUIRE);
        if (!pid_alive(pid)) {
            continue;
        }
        o = &out->child[out->nchildren++];
        o->pid = pid;
        o->generation = c->generation;
        o->started = c->started;
        for (t = 0; t < UPM_TR__COUNT; t++) {
            for (m = 0; m < UPM_MODE__COUNT; m++) {
                o->conns[t][m] = __atomic_load_n(&c->conns[t][m], __ATOMIC_RELAXED);
                out->conns[t][m] += o->conns[t][m];
            }
        }
        o->uploads_active = __atomic_load_n(&c->uploads_active, __ATOMIC_RELAXED);
        out->uploads_active += o->uploads_active;
        o->delivered = __atomic_load_n(&c->delivered, __ATOMIC_RELAXED);
    }
    return 0;
}
