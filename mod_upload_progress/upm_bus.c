/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_bus.h"
#include "upm_config.h"
#include "upm_redis_logic.h"
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
    apr_size_t layout;          /* what the module that made the segment laid out */
    int mode;                   /* UPM_BUS_MODE_* the ring was made for */
} upm_bus_retained;

/* State shared by the children beside the ring: the Redis feeder lease. */
typedef struct {
    upm_lease lease;
    apr_uint64_t gap_seq;       /* ring sequence of the newest gap marker */
} upm_bus_ctl;

static upm_bus_retained *bus;
static upm_ring *ring;
static upm_bus_ctl *ctl;
static int bus_mode;

#define ALIGN64(n) (((n) + 63) & ~(apr_size_t)63)
/* Room for this many (user, child) pairs with open streams. */
#define UC_SLOTS    16384
#define UC_BYTES    ALIGN64(upm_uc_bytes(UC_SLOTS))
#define CTL_BYTES   ALIGN64(sizeof(upm_bus_ctl))
/* Changes whenever a module build lays the segment out differently, so a
 * graceful restart into a new build starts afresh instead of misreading. */
#define BUS_CTL_VERSION 2u
#define BUS_LAYOUT  (CTL_BYTES * 101u + UC_BYTES * 7u + BUS_CTL_VERSION)

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
    int mode = upm_conf_redis_mode(sc);

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
    if (bus->shm && (bus->layout != BUS_LAYOUT || bus->mode != mode)) {
        /* Streams mode numbers messages with stream ids, the others with
         * the ring's own: a ring of one kind means nothing to the other. */
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, APLOGNO(13200)
                     "%s: starting a new replay ring and epoch",
                     bus->mode != mode ? "Redis ingest mode changed"
                                       : "shared memory layout changed");
        apr_shm_destroy(bus->shm);
        bus->shm = NULL;
    }
    if (!bus->shm) {
        apr_size_t size = stats_bytes + UC_BYTES + CTL_BYTES + upm_ring_bytes(nslots, data);
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
        memset((char *)base + stats_bytes + UC_BYTES, 0, CTL_BYTES);
        ring = upm_ring_init((char *)base + stats_bytes + UC_BYTES + CTL_BYTES, nslots, data,
                             new_epoch());
        bus->nslots = nslots;
        bus->data_bytes = data;
        bus->layout = BUS_LAYOUT;
        bus->mode = mode;
        bus->stats_bytes = stats_bytes;
        bus->nchildren = nchildren;
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, APLOGNO(13014)
                     "replay ring created: %u messages, %" APR_SIZE_T_FMT
                     " bytes, epoch %" APR_UINT64_T_FMT, nslots, data, upm_ring_epoch(ring));
    }
    else {
        base = apr_shm_baseaddr_get(bus->shm);
        userconn = (upm_uc_table *)((char *)base + stats_bytes);
        ring = upm_ring_attach((char *)base + stats_bytes + UC_BYTES + CTL_BYTES, nslots,
                               data);
        if (!ring) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, APLOGNO(13015)
                         "retained replay ring is corrupt");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    ctl = (upm_bus_ctl *)((char *)base + stats_bytes + UC_BYTES);
    bus_mode = mode;
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

/* ---- Redis ingest: the feeder lease and fenced appends ---------------- */

int upm_bus_mode(void)
{
    return bus_mode;
}

int upm_bus_with_lease(int (*fn)(upm_lease *l, void *baton), void *baton)
{
    int rc;
    if (!ctl || !bus->mutex || apr_global_mutex_lock(bus->mutex) != APR_SUCCESS) {
        return -1;
    }
    rc = fn(&ctl->lease, baton);
    apr_global_mutex_unlock(bus->mutex);
    return rc;
}

apr_status_t upm_bus_feed(apr_pool_t *p, apr_uint64_t gen, upm_msg *const *msgs, int n,
                          const apr_uint64_t *marks, apr_size_t nmarks, const char *xid,
                          apr_uint64_t *seqs)
{
    char **recs = NULL;
    apr_size_t *lens = NULL;
    apr_size_t max;
    int i;

    if (!ring || !ctl || !bus->mutex) {
        return APR_EGENERAL;
    }
    max = upm_ring_max_record(ring);
    if (n > 0) {
        recs = apr_palloc(p, sizeof(char *) * n);
        lens = apr_palloc(p, sizeof(apr_size_t) * n);
    }
    for (i = 0; i < n; i++) {
        /* Packed before the lock: the critical section only copies. */
        recs[i] = upm_msg_pack(p, msgs[i], &lens[i]);
    }
    if (apr_global_mutex_lock(bus->mutex) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (ctl->lease.holder != (apr_int64_t)getpid() || ctl->lease.gen != gen) {
        /* Another child took over: whatever this one holds is its now. */
        apr_global_mutex_unlock(bus->mutex);
        return APR_EBUSY;
    }
    /* The marks first: should this process die between the two, a
     * successor skips these messages rather than appending them twice. */
    if (nmarks) {
        upm_lease_push_marks(&ctl->lease, marks, nmarks);
        ctl->lease.taken += nmarks;
    }
    if (xid && *xid) {
        apr_cpystrn(ctl->lease.xid, xid, sizeof(ctl->lease.xid));
    }
    ctl->lease.renewed = apr_time_now();
    for (i = 0; i < n; i++) {
        seqs[i] = lens[i] <= max ? upm_ring_append(ring, recs[i], lens[i]) : 0;
        if (seqs[i] && (msgs[i]->flags & UPM_MSG_GAP)) {
            ctl->gap_seq = seqs[i];
        }
    }
    apr_global_mutex_unlock(bus->mutex);
    if (n > 0) {
        upm_stats_add(UPM_ST_EVENTS_ACCEPTED, (apr_uint64_t)n);
        __atomic_add_fetch(upm_ring_wake_word(ring), 1, __ATOMIC_RELEASE);
        upm_futex_wake_all(upm_ring_wake_word(ring));
    }
    return APR_SUCCESS;
}

/* The stream id of ring record seq; 0 when it has none.  Lock held. */
static int record_xid(apr_uint64_t seq, upm_xid *x)
{
    const void *data;
    apr_size_t len;
    upm_msg m;
    if (upm_ring_peek(ring, seq, &data, &len) != UPM_RING_OK
        || upm_msg_unpack(data, len, &m) != 0 || !*m.ext) {
        return 0;
    }
    return upm_xid_parse(m.ext, strlen(m.ext), x) == 0;
}

upm_bus_xfind upm_bus_find_xid(const char *id, apr_uint64_t *after, apr_uint64_t *last)
{
    upm_xid s, x;
    apr_uint64_t lo, hi, oldest;
    upm_bus_xfind st;

    *after = *last = 0;
    if (upm_xid_parse(id, strlen(id), &s) != 0) {
        return UPM_XFIND_INVALID;
    }
    if (!ring || apr_global_mutex_lock(bus->mutex) != APR_SUCCESS) {
        return UPM_XFIND_UNCOVERED;
    }
    *last = upm_ring_last(ring);
    oldest = upm_ring_oldest(ring);
    if (oldest > *last || !record_xid(oldest, &x) || upm_xid_cmp(x, s) > 0) {
        /* Empty, or its oldest record is already past the id: what lies
         * between is only in the stream. */
        st = UPM_XFIND_UNCOVERED;
    }
    else {
        /* Stream ids never decrease along the ring: find the first record
         * past the id. */
        lo = oldest;
        hi = *last + 1;
        while (lo < hi) {
            apr_uint64_t mid = lo + (hi - lo) / 2;
            if (record_xid(mid, &x) && upm_xid_cmp(x, s) > 0) {
                hi = mid;
            }
            else {
                lo = mid + 1;
            }
        }
        *after = lo - 1;
        st = UPM_XFIND_COVERED;
        if (lo > *last && record_xid(*last, &x) && upm_xid_cmp(x, s) < 0) {
            /* Past everything this node took: the client read on a node
             * that is ahead, or the id is made up.  The stream knows. */
            st = UPM_XFIND_UNCOVERED;
        }
    }
    apr_global_mutex_unlock(bus->mutex);
    return st;
}

apr_uint64_t upm_bus_gap_seq(void)
{
    return ctl ? __atomic_load_n(&ctl->gap_seq, __ATOMIC_ACQUIRE) : 0;
}

const char *upm_bus_newest(apr_pool_t *p, apr_uint64_t *seq)
{
    apr_uint64_t last;
    upm_xid x;
    char buf[UPM_XID_LEN];

    *seq = 0;
    if (!ring || apr_global_mutex_lock(bus->mutex) != APR_SUCCESS) {
        return upm_id_format(p, upm_bus_epoch(), 0);
    }
    last = *seq = upm_ring_last(ring);
    if (bus_mode == UPM_BUS_MODE_STREAM) {
        /* The newest stream id this node has taken: the ring's own end, or
         * the lease's mark when the ring has nothing yet. */
        if (last && record_xid(last, &x)) {
            upm_xid_format(buf, x);
        }
        else {
            apr_cpystrn(buf, ctl->lease.xid[0] ? ctl->lease.xid : "0-0", sizeof(buf));
        }
        apr_global_mutex_unlock(bus->mutex);
        return apr_pstrdup(p, buf);
    }
    apr_global_mutex_unlock(bus->mutex);
    return upm_id_format(p, upm_bus_epoch(), last);
}

const char *upm_bus_id_of(apr_pool_t *p, apr_uint64_t seq)
{
    upm_xid x;
    char buf[UPM_XID_LEN];
    int found = 0;

    if (bus_mode != UPM_BUS_MODE_STREAM) {
        return upm_id_format(p, upm_bus_epoch(), seq);
    }
    if (ring && apr_global_mutex_lock(bus->mutex) == APR_SUCCESS) {
        found = seq && record_xid(seq, &x);
        apr_global_mutex_unlock(bus->mutex);
    }
    if (!found) {
        apr_uint64_t newest;
        return upm_bus_newest(p, &newest);
    }
    upm_xid_format(buf, x);
    return apr_pstrdup(p, buf);
}
