#include "upm_bus.h"
#include "upm_config.h"
#include "upm_futex.h"
#include "upm_stats.h"
#include "upm_userconn.h"

#include "http_config.h"
#include "http_log.h"
#include "http_core.h"
#include "ap_mpm.h"
#include "unixd.h"
#include <apr_shm.h>
#include <apr_global_mutex.h>
#include <apr_strings.h>
#include <unistd.h>

APLOG_USE_MODULE(upload_progress);

#define UPM_RETAINED_KEY "upload_progress_bus"

/* Lives in the parent's retained data, so a graceful restart finds the same
 * segment (and so the same epoch and history) it had before. */
typedef struct {
    apr_shm_t *shm;
    apr_global_mutex_t *mutex;
    const char *mutex_file;
    apr_uint32_t nslots;
    apr_size_t data_bytes;
    apr_size_t stats_bytes;     /* differs when ServerLimit or the module changed */
    apr_uint32_t nchildren;
} upm_bus_retained;

static upm_bus_retained *bus;
static upm_ring *ring;

#define ALIGN64(n) (((n) + 63) & ~(apr_size_t)63)
/* Room for this many (user, child) pairs with open streams. */
#define UC_SLOTS    16384
#define UC_BYTES    ALIGN64(upm_uc_bytes(UC_SLOTS))

static upm_uc_table *userconn;

/* One counter slot per process the MPM may run at once (ServerLimit also
 * bounds the children of an old generation still finishing after a
 * graceful restart), and a few spare for children that died without
 * giving theirs back before the parent noticed. */
static apr_uint32_t child_slots(void)
{
    int limit = 0;
    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &limit) != APR_SUCCESS || limit < 1) {
        limit = 16;
    }
    return (apr_uint32_t)limit + 8;
}

static apr_uint64_t new_epoch(void)
{
    /* Milliseconds: distinct across cold starts, readable by a person. */
    return (apr_uint64_t)(apr_time_now() / 1000);
}

int upm_bus_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                        server_rec *s)
{
    upm_srv_conf *sc = ap_get_module_config(s->module_config, &upload_progress_module);
    apr_uint32_t nslots = sc->replay_slots ? (apr_uint32_t)sc->replay_slots
                                           : UPM_DEFAULT_REPLAY;
    apr_size_t data = sc->replay_bytes ? sc->replay_bytes : UPM_DEFAULT_REPLAY_BYTES;
    apr_uint32_t nchildren = child_slots();
    apr_size_t stats_bytes = ALIGN64(upm_stats_bytes(nchildren));
    apr_pool_t *keep = s->process->pool;
    apr_status_t rv;
    void *base;

    /* The first post_config of a start only checks the configuration. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    bus = ap_retained_data_get(UPM_RETAINED_KEY);
    if (!bus) {
        bus = ap_retained_data_create(UPM_RETAINED_KEY, sizeof(*bus));
    }
    if (!bus->mutex) {
        bus->mutex_file = ap_runtime_dir_relative(keep, "upload_progress.lock");
        rv = apr_global_mutex_create(&bus->mutex, bus->mutex_file, APR_LOCK_DEFAULT, keep);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(13010)
                         "cannot create the event ring lock (%s)", bus->mutex_file);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        rv = ap_unixd_set_global_mutex_perms(bus->mutex);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(13011)
                         "cannot set permissions on the event ring lock");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if (bus->shm && (bus->nslots != nslots || bus->data_bytes != data
                     || bus->stats_bytes != stats_bytes)) {
        /* Children of the old generation keep their own mapping; the new
         * one starts a new epoch so stale ids are recognised. */
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, APLOGNO(13012)
                     "replay ring resized (%u -> %u slots, %" APR_SIZE_T_FMT " -> %"
                     APR_SIZE_T_FMT " bytes, %u -> %u child counters): starting a new epoch",
                     bus->nslots, nslots, bus->data_bytes, data, bus->nchildren, nchildren);
        apr_shm_destroy(bus->shm);
        bus->shm = NULL;
    }
    if (!bus->shm) {
        apr_size_t size = stats_bytes + UC_BYTES + upm_ring_bytes(nslots, data);
        rv = apr_shm_create(&bus->shm, size, NULL, keep);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(13013)
                         "cannot create %" APR_SIZE_T_FMT " bytes of shared memory "
                         "for the replay ring", size);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        base = apr_shm_baseaddr_get(bus->shm);
        upm_stats_init(base, nchildren);
        userconn = upm_uc_init((char *)base + stats_bytes, UC_SLOTS);
        ring = upm_ring_init((char *)base + stats_bytes + UC_BYTES, nslots, data,
                             new_epoch());
        bus->nslots = nslots;
        bus->data_bytes = data;
        bus->stats_bytes = stats_bytes;
        bus->nchildren = nchildren;
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, APLOGNO(13014)
                     "replay ring created: %u messages, %" APR_SIZE_T_FMT
                     " bytes, epoch %" APR_UINT64_T_FMT, nslots, data, upm_ring_epoch(ring));
    }
    else {
        base = apr_shm_baseaddr_get(bus->shm);
        userconn = (upm_uc_table *)((char *)base + stats_bytes);
        ring = upm_ring_attach((char *)base + stats_bytes + UC_BYTES, nslots, data);
        if (!ring) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, APLOGNO(13015)
                         "retained replay ring is corrupt");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    upm_stats_attach(base);
    return OK;
}

static apr_status_t release_child_stats(void *data)
{
    upm_stats_child_release();
    return APR_SUCCESS;
}

void upm_bus_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;
    int gen = 0;
    if (!bus || !bus->mutex) {
        return;
    }
    ap_mpm_query(AP_MPMQ_GENERATION, &gen);
    if (upm_stats_child_claim((apr_int32_t)getpid(), gen, apr_time_now()) < 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, APLOGNO(13300)
                     "no free per-child counter slot (%u): this child's connections "
                     "are left out of the status figures", bus->nchildren);
    }
    apr_pool_cleanup_register(pchild, NULL, release_child_stats, apr_pool_cleanup_null);
    rv = apr_global_mutex_child_init(&bus->mutex, bus->mutex_file, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(13016)
                     "cannot attach to the event ring lock in this child");
    }
}

void upm_bus_info(upm_bus_info_t *info)
{
    memset(info, 0, sizeof(*info));
    info->oldest = 1;
    if (ring && apr_global_mutex_lock(bus->mutex) == APR_SUCCESS) {
        info->epoch = upm_ring_epoch(ring);
        info->slots = upm_ring_slots(ring);
        info->data_bytes = upm_ring_data_size(ring);
        info->data_used = upm_ring_data_used(ring);
        info->max_record = upm_ring_max_record(ring);
        info->last = upm_ring_last(ring);
        info->oldest = upm_ring_oldest(ring);
        apr_global_mutex_unlock(bus->mutex);
    }
}

apr_uint64_t upm_bus_epoch(void)
{
    return ring ? upm_ring_epoch(ring) : 0;
}

apr_size_t upm_bus_max_record(void)
{
    return ring ? upm_ring_max_record(ring) : 0;
}

apr_status_t upm_bus_publish(apr_pool_t *p, upm_msg *const *msgs, int n,
                             apr_uint64_t *seqs)
{
    char **recs;
    apr_size_t *lens;
    int i;

    if (!ring || !bus->mutex) {
        return APR_EGENERAL;
    }
    recs = apr_palloc(p, sizeof(char *) * n);
    lens = apr_palloc(p, sizeof(apr_size_t) * n);
    for (i = 0; i < n; i++) {
        recs[i] = upm_msg_pack(p, msgs[i], &lens[i]);
        if (lens[i] > upm_ring_max_record(ring)) {
            return APR_ENOSPC;
        }
    }
    if (apr_global_mutex_lock(bus->mutex) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (i = 0; i < n; i++) {
        seqs[i] = upm_ring_append(ring, recs[i], lens[i]);
    }
    apr_global_mutex_unlock(bus->mutex);
    upm_stats_add(UPM_ST_EVENTS_ACCEPTED, (apr_uint64_t)n);
    __atomic_add_fetch(upm_ring_wake_word(ring), 1, __ATOMIC_RELEASE);
    upm_futex_wake_all(upm_ring_wake_word(ring));
    return APR_SUCCESS;
}

int upm_bus_read(apr_pool_t *p, apr_uint64_t after, int max, upm_msg *out,
                 apr_uint64_t *last, apr_uint64_t *oldest)
{
    int n = 0;
    apr_uint64_t seq;

    *last = 0;
    *oldest = 1;
    if (!ring || apr_global_mutex_lock(bus->mutex) != APR_SUCCESS) {
        return 0;
    }
    *last = upm_ring_last(ring);
    *oldest = upm_ring_oldest(ring);
    seq = after + 1 < *oldest ? *oldest : after + 1;
    for (; seq <= *last && n < max; seq++) {
        const void *data;
        apr_size_t len;
        char *copy;
        if (upm_ring_peek(ring, seq, &data, &len) != UPM_RING_OK) {
            continue;
        }
        copy = apr_pmemdup(p, data, len);
        if (upm_msg_unpack(copy, len, &out[n]) == 0) {
            out[n].seq = seq;
            n++;
        }
    }
    apr_global_mutex_unlock(bus->mutex);
    return n;
}

void upm_bus_state(apr_uint64_t *last, apr_uint64_t *oldest)
{
    *last = 0;
    *oldest = 1;
    if (ring && apr_global_mutex_lock(bus->mutex) == APR_SUCCESS) {
        *last = upm_ring_last(ring);
        *oldest = upm_ring_oldest(ring);
        apr_global_mutex_unlock(bus->mutex);
    }
}

upm_resume_status upm_bus_resume_check(const char *id, apr_uint64_t *seq)
{
    apr_uint64_t epoch;
    upm_resume_status st = UPM_RESUME_INVALID;
    if (upm_id_parse(id, &epoch, seq) != 0 || !ring) {
        return UPM_RESUME_INVALID;
    }
    if (apr_global_mutex_lock(bus->mutex) == APR_SUCCESS) {
        st = upm_ring_resume_check(ring, epoch, *seq);
        apr_global_mutex_unlock(bus->mutex);
    }
    return st;
}

apr_uint32_t upm_bus_wake_value(void)
{
    return ring ? __atomic_load_n(upm_ring_wake_word(ring), __ATOMIC_ACQUIRE) : 0;
}

void upm_bus_wait(apr_uint32_t seen_wake, apr_interval_time_t timeout)
{
    if (ring) {
        upm_futex_wait(upm_ring_wake_word(ring), seen_wake, timeout);
    }
    else {
        apr_sleep(timeout);
    }
}

void upm_bus_wake_all(void)
{
    if (ring) {
        __atomic_add_fetch(upm_ring_wake_word(ring), 1, __ATOMIC_RELEASE);
        upm_futex_wake_all(upm_ring_wake_word(ring));
    }
}

int upm_bus_user_acquire(const char *user, apr_uint32_t limit)
{
    int rc = -1;
    if (userconn && apr_global_mutex_lock(bus->mutex) == APR_SUCCESS) {
        rc = upm_uc_acquire(userconn, upm_uc_hash(user), (apr_int32_t)getpid(), limit);
        apr_global_mutex_unlock(bus->mutex);
    }
    return rc;
}

void upm_bus_user_release(const char *user)
{
    if (userconn && apr_global_mutex_lock(bus->mutex) == APR_SUCCESS) {
        upm_uc_release(userconn, upm_uc_hash(user), (apr_int32_t)getpid());
        apr_global_mutex_unlock(bus->mutex);
    }
}

void upm_bus_child_gone(pid_t pid)
{
    /* A child that was killed never released its streams' counts. */
    if (userconn && apr_global_mutex_lock(bus->mutex) == APR_SUCCESS) {
        upm_uc_drop_pid(userconn, (apr_int32_t)pid);
        apr_global_mutex_unlock(bus->mutex);
    }
}
