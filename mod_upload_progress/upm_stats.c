#include "upm_stats.h"

static upm_stats_shm *stats;

static const char *const names[UPM_ST__COUNT] = {
    "events_accepted", "events_rejected", "delivered", "dropped_throttle",
    "dropped_overflow", "resets_sent", "replayed", "dispatch_lag",
    "sse_opened", "sse_closed", "slow_closed", "redis_received", "redis_refused",
    "redis_connects", "redis_link_lost", "redis_gaps", "redis_takeovers", "redis_published",
    "redis_publish_failed"
};

void upm_stats_attach(upm_stats_shm *shm)
{
    stats = shm;
}

void upm_stats_add(upm_stat st, apr_uint64_t n)
{
    if (stats) {
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
    return stats ? __atomic_load_n(&stats->v[st], __ATOMIC_RELAXED) : 0;
}

const char *upm_stats_name(upm_stat st)
{
    return st < UPM_ST__COUNT ? names[st] : "unknown";
}
