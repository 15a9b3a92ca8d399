/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_hub.h"
#include "upm_bus.h"
#include "upm_event.h"
#include "upm_stats.h"
#include "upm_config.h"
#include "upm_match.h"

#include "http_log.h"
#include "ap_mpm.h"
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <stdlib.h>

APLOG_USE_MODULE(upload_progress);

#define UPM_QUEUE_MAX_FRAMES 4096
#define UPM_FOLLOW_BATCH     256

struct upm_sub {
    upm_sub_spec spec;
    char *key;
    upm_sub *next, *prev;
    apr_thread_cond_t *cond;
    upm_frame **q;
    int qcap, qhead, qlen;
    apr_size_t qbytes;
    int reset;
    const char *reset_reason;
    int closing;
    int disconnect;             /* a disconnect for its user: close once drained */
    int registered;
    apr_uint64_t skip_upto;
    int has_skip_xid;
    upm_xid skip_xid;
    upm_throttle thr;
};

static struct {
    apr_pool_t *pool;
    apr_thread_mutex_t *lock;
    apr_hash_t *idx;
    int count;
    int closing;
    volatile int stop;
    apr_thread_t *follower;
    server_rec *s;
} hub;

/* ---- frames ---------------------------------------------------------- */

upm_frame *upm_frame_make(const upm_msg *m, apr_uint64_t epoch)
{
    /* One allocation holding the struct and its strings: a frame outlives
     * the pool it was built from and is freed by whichever thread drops
     * the last reference, which no APR pool can own. */
    char id[64];
    apr_size_t idl;
    apr_size_t tl = strlen(m->f[UPM_F_TYPE]);
    int empty = m->json_len == 2;
    apr_size_t jl;
    upm_frame *f;
    char *w;
    int has_xid = 0;
    upm_xid xid;

    if (m->ext && *m->ext && strlen(m->ext) < sizeof(id)) {
        idl = strlen(m->ext);
        memcpy(id, m->ext, idl + 1);
        has_xid = upm_xid_parse(id, idl, &xid) == 0;
    }
    else {
        idl = upm_id_format_buf(id, epoch, m->seq);
    }
    jl = m->json_len + idl + 7 + (empty ? 0 : 1);
    f = malloc(sizeof(*f) + idl + 1 + tl + 1 + jl + 1);
    if (!f) {
        return NULL;
    }
    f->refs = 1;
    f->has_xid = has_xid;
    if (has_xid) {
        f->xid = xid;
    }
    f->seq = m->seq;
    f->is_progress = upm_event_is_progress_type(m->f[UPM_F_TYPE]);
    f->pkey = upm_msg_progress_key(m);
    f->percent = m->percent;
    f->published = m->published;
    w = (char *)(f + 1);
    memcpy(w, id, idl + 1);
    f->id = w;
    w += idl + 1;
    memcpy(w, m->f[UPM_F_TYPE], tl + 1);
    f->type = w;
    w += tl + 1;
    memcpy(w, "{\"id\":\"", 7);
    memcpy(w + 7, id, idl);
    w[7 + idl] = '"';
    if (!empty) {
        w[8 + idl] = ',';
    }
    memcpy(w + 7 + idl + (empty ? 1 : 2), m->json + 1, m->json_len - 1);
    w[jl] = '\0';
    f->json = w;
    f->json_len = jl;
    return f;
}

void upm_frame_ref(upm_frame *f)
{
    __atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
}

void upm_frame_unref(upm_frame *f)
{
    if (f && __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        free(f);
    }
}

/* ---- index ----------------------------------------------------------- */

static char via_char(int via)
{
    switch (via) {
    case UPM_F_PROJECT: return 'P';
    case UPM_F_JOB:     return 'J';
    case UPM_F_SESSION: return 'S';
    case UPM_F_FILE:    return 'F';
    default:            return 'o';
    }
}

static void index_unlink(upm_sub *sub)
{
    upm_sub *head = apr_hash_get(hub.idx, sub->key, APR_HASH_KEY_STRING);
    if (sub->prev) {
        sub->prev->next = sub->next;
    }
    if (sub->next) {
        sub->next->prev = sub->prev;
    }
    if (head == sub) {
        /* The hash keeps a pointer to the head's key string, which goes
         * away with this subscriber: re-key under the new head. */
        apr_hash_set(hub.idx, sub->key, APR_HASH_KEY_STRING, NULL);
        if (sub->next) {
            apr_hash_set(hub.idx, sub->next->key, APR_HASH_KEY_STRING, sub->next);
        }
    }
    sub->next = sub->prev = NULL;
}

static void queue_clear(upm_sub *sub)
{
    while (sub->qlen) {
        upm_frame_unref(sub->q[sub->qhead]);
        sub->qhead = (sub->qhead + 1) % sub->qcap;
        sub->qlen--;
    }
    sub->qhead = 0;
    sub->qbytes = 0;
}

static apr_status_t sub_cleanup(void *data)
{
    upm_hub_remove(data);
    return APR_SUCCESS;
}

upm_sub *upm_hub_add(apr_pool_t *p, const upm_sub_spec *spec)
{
    upm_sub *sub = apr_pcalloc(p, sizeof(*sub));
    upm_sub *head;
    const char *id;

    sub->spec = *spec;
    id = spec->via == UPM_F_OWNER ? spec->user : spec->scope[spec->via];
    sub->key = apr_psprintf(p, "%c:%s", via_char(spec->via), id);
    /* The queue grows on the follower thread while the connection's own
     * thread allocates from p: a pool cannot serve both, so the queue is
     * the subscriber's own memory, freed when it leaves the hub. */
    sub->qcap = 16;
    sub->q = malloc(sizeof(upm_frame *) * sub->qcap);
    if (!sub->q) {
        sub->qcap = 0;
    }
    upm_throttle_init(&sub->thr);
    apr_thread_cond_create(&sub->cond, p);

    apr_thread_mutex_lock(hub.lock);
    head = apr_hash_get(hub.idx, sub->key, APR_HASH_KEY_STRING);
    if (head) {
        /* Insert after the head: the hash key stays valid. */
        sub->next = head->next;
        sub->prev = head;
        if (head->next) {
            head->next->prev = sub;
        }
        head->next = sub;
    }
    else {
        apr_hash_set(hub.idx, sub->key, APR_HASH_KEY_STRING, sub);
    }
    sub->registered = 1;
    sub->closing = hub.closing;
    hub.count++;
    apr_thread_mutex_unlock(hub.lock);
    apr_pool_cleanup_register(p, sub, sub_cleanup, apr_pool_cleanup_null);
    return sub;
}

void upm_hub_remove(upm_sub *sub)
{
    apr_thread_mutex_lock(hub.lock);
    if (sub->registered) {
        index_unlink(sub);
        queue_clear(sub);
        free(sub->q);
        sub->q = NULL;
        sub->qcap = 0;
        sub->registered = 0;
        hub.count--;
    }
    apr_thread_mutex_unlock(hub.lock);
}

int upm_hub_count(void)
{
    return hub.count;
}

/* ---- matching and queueing ------------------------------------------- */

int upm_sub_matches(const upm_sub *sub, const upm_msg *m)
{
    return upm_match(sub->spec.user, sub->spec.scope, sub->spec.via, m);
}

static int throttle_pass(upm_sub *sub, const upm_frame *f)
{
    if (upm_throttle_pass(&sub->thr, f->pkey, f->seq, f->is_progress, f->percent,
                          sub->spec.throttle_step)) {
        return 1;
    }
    upm_stats_add(UPM_ST_DROPPED_THROTTLE, 1);
    return 0;
}

int upm_sub_throttle_pass(upm_sub *sub, const upm_frame *f)
{
    int pass;
    apr_thread_mutex_lock(hub.lock);
    pass = throttle_pass(sub, f);
    apr_thread_mutex_unlock(hub.lock);
    return pass;
}

void upm_sub_skip_upto(upm_sub *sub, apr_uint64_t upto)
{
    apr_thread_mutex_lock(hub.lock);
    sub->skip_upto = upto;
    apr_thread_mutex_unlock(hub.lock);
}

void upm_sub_skip_copy(upm_sub *to, const upm_sub *from)
{
    apr_thread_mutex_lock(hub.lock);
    if (from->skip_upto > to->skip_upto) {
        to->skip_upto = from->skip_upto;
    }
    if (from->has_skip_xid && (!to->has_skip_xid
                               || upm_xid_cmp(from->skip_xid, to->skip_xid) > 0)) {
        to->has_skip_xid = 1;
        to->skip_xid = from->skip_xid;
    }
    apr_thread_mutex_unlock(hub.lock);
}

void upm_sub_skip_xid(upm_sub *sub, upm_xid xid)
{
    apr_thread_mutex_lock(hub.lock);
    sub->has_skip_xid = 1;
    sub->skip_xid = xid;
    apr_thread_mutex_unlock(hub.lock);
}

/* Sent by a replay already (from the ring, or read back from a Redis
 * stream), or covered by a reset.  Hub lock held. */
static int already_sent(const upm_sub *sub, const upm_frame *f)
{
    return f->seq <= sub->skip_upto
           || (sub->has_skip_xid && f->has_xid && upm_xid_cmp(f->xid, sub->skip_xid) <= 0);
}

static void notify(upm_sub *sub)
{
    if (sub->spec.notify) {
        sub->spec.notify(sub->spec.baton);
    }
    else {
        apr_thread_cond_signal(sub->cond);
    }
}

static void set_reset(upm_sub *sub, const char *reason)
{
    queue_clear(sub);
    sub->reset = 1;
    sub->reset_reason = reason;
    notify(sub);
}

/* Called with the hub lock held. */
static void enqueue(upm_sub *sub, upm_frame *f)
{
    if (sub->closing) {
        return;
    }
    if (sub->qlen && (sub->qbytes + f->json_len > sub->spec.max_queue_bytes
                      || sub->qlen == UPM_QUEUE_MAX_FRAMES)) {
        /* A slow reader gets the latest progress, not a backlog. */
        if (f->is_progress && f->pkey) {
            int i;
            for (i = sub->qlen - 1; i >= 0; i--) {
                upm_frame **slot = &sub->q[(sub->qhead + i) % sub->qcap];
                if ((*slot)->pkey == f->pkey) {
                    if ((*slot)->is_progress) {
                        sub->qbytes += f->json_len - (*slot)->json_len;
                        upm_frame_unref(*slot);
                        upm_frame_ref(f);
                        *slot = f;
                        upm_stats_add(UPM_ST_DROPPED_THROTTLE, 1);
                        notify(sub);
                        return;
                    }
                    break;
                }
            }
        }
        /* Anything else would be lost silently: drop the backlog and tell
         * the client to re-read its state instead. */
        upm_stats_add(UPM_ST_DROPPED_OVERFLOW, (apr_uint64_t)sub->qlen);
        set_reset(sub, "overflow");
    }
    if (sub->qlen == sub->qcap) {
        int ncap = sub->qcap ? sub->qcap * 2 : 16, i;
        upm_frame **nq = malloc(sizeof(upm_frame *) * ncap);
        if (!nq) {
            upm_stats_add(UPM_ST_DROPPED_OVERFLOW, 1);
            set_reset(sub, "overflow");
            return;
        }
        for (i = 0; i < sub->qlen; i++) {
            nq[i] = sub->q[(sub->qhead + i) % sub->qcap];
        }
        free(sub->q);
        sub->q = nq;
        sub->qcap = ncap;
        sub->qhead = 0;
    }
    upm_frame_ref(f);
    sub->q[(sub->qhead + sub->qlen) % sub->qcap] = f;
    sub->qlen++;
    sub->qbytes += f->json_len;
    notify(sub);
}

int upm_sub_take(upm_sub *sub, apr_time_t until, upm_frame **out, int max,
                 apr_size_t max_bytes, upm_sub_state *state, const char **reason)
{
    int n = 0;
    apr_size_t bytes = 0;

    *state = UPM_SUB_OK;
    apr_thread_mutex_lock(hub.lock);
    for (;;) {
        apr_time_t now;
        while (sub->qlen && n < max && (n == 0 || bytes < max_bytes)) {
            upm_frame *f = sub->q[sub->qhead];
            sub->qhead = (sub->qhead + 1) % sub->qcap;
            sub->qlen--;
            sub->qbytes -= f->json_len;
            if (already_sent(sub, f)) {
                upm_frame_unref(f);     /* already sent by the replay */
                continue;
            }
            out[n++] = f;
            bytes += f->json_len;
        }
        if (sub->reset) {
            /* Frames queued before the reset were cleared with it; those
             * taken above came after and stay valid. */
            sub->reset = 0;
            *state = UPM_SUB_RESET;
            *reason = sub->reset_reason;
            break;
        }
        if (sub->disconnect && !sub->qlen) {
            *state = UPM_SUB_DISCONNECT;
            break;
        }
        if (sub->closing) {
            *state = UPM_SUB_CLOSING;
            break;
        }
        now = apr_time_now();
        if (n || until == 0 || now >= until) {
            break;
        }
        apr_thread_cond_timedwait(sub->cond, hub.lock, until - now);
    }
    apr_thread_mutex_unlock(hub.lock);
    return n;
}

int upm_sub_take_merged(upm_sub *const *subs, int nsubs, upm_frame **out, int max,
                        upm_sub_state *state, const char **reason)
{
    int n = 0, i, closing = 0, disconnect = 0, queued = 0;

    *state = UPM_SUB_OK;
    apr_thread_mutex_lock(hub.lock);
    while (n < max) {
        upm_sub *best = NULL;
        apr_uint64_t bseq = 0;
        for (i = 0; i < nsubs; i++) {
            upm_sub *s = subs[i];
            while (s->qlen && already_sent(s, s->q[s->qhead])) {
                upm_frame *f = s->q[s->qhead];   /* already sent by a replay */
                s->qhead = (s->qhead + 1) % s->qcap;
                s->qlen--;
                s->qbytes -= f->json_len;
                upm_frame_unref(f);
            }
            if (s->qlen && (!best || s->q[s->qhead]->seq < bseq)) {
                best = s;
                bseq = s->q[s->qhead]->seq;
            }
        }
        if (!best) {
            break;
        }
        for (i = 0; i < nsubs; i++) {
            upm_sub *s = subs[i];
            if (s->qlen && s->q[s->qhead]->seq == bseq) {
                upm_frame *f = s->q[s->qhead];
                s->qhead = (s->qhead + 1) % s->qcap;
                s->qlen--;
                s->qbytes -= f->json_len;
                if (s == best) {
                    out[n++] = f;
                }
                else {
                    upm_frame_unref(f);         /* the same message again */
                }
            }
        }
    }
    for (i = 0; i < nsubs; i++) {
        if (subs[i]->reset) {
            subs[i]->reset = 0;
            *state = UPM_SUB_RESET;
            *reason = subs[i]->reset_reason;
        }
        closing |= subs[i]->closing;
        disconnect |= subs[i]->disconnect;
        queued |= subs[i]->qlen;
    }
    if (*state == UPM_SUB_OK && disconnect && !queued) {
        *state = UPM_SUB_DISCONNECT;
    }
    else if (*state == UPM_SUB_OK && closing) {
        *state = UPM_SUB_CLOSING;
    }
    apr_thread_mutex_unlock(hub.lock);
    return n;
}

static void deliver_key(apr_pool_t *p, char kind, const char *id,
                        const upm_msg *m, upm_frame *f)
{
    upm_sub *sub;
    const char *key;
    if (!id || !*id) {
        return;
    }
    key = apr_psprintf(p, "%c:%s", kind, id);
    for (sub = apr_hash_get(hub.idx, key, APR_HASH_KEY_STRING); sub; sub = sub->next) {
        if (upm_sub_matches(sub, m) && throttle_pass(sub, f)) {
            enqueue(sub, f);
        }
    }
}

static void reset_all(const char *reason);

/* A disconnect message: every connection of its user in this child gets it
 * (whatever it is narrowed to: it is about the connection, not about an
 * upload) and then closes.  Connections narrowed through a grant are
 * indexed by the granted id, not the user, so this walks the child's
 * subscribers once: a disconnect is rare (a revoked token), never part of
 * the fan-out of ordinary messages.  Called with the hub lock held. */
static void disconnect_user(const char *user, upm_frame *f)
{
    apr_hash_index_t *hi;
    for (hi = apr_hash_first(NULL, hub.idx); hi; hi = apr_hash_next(hi)) {
        upm_sub *sub;
        for (sub = apr_hash_this_val(hi); sub; sub = sub->next) {
            if (sub->spec.user && strcmp(sub->spec.user, user) == 0 && !sub->disconnect) {
                enqueue(sub, f);
                sub->disconnect = 1;
                notify(sub);
            }
        }
    }
}

static void dispatch(apr_pool_t *p, const upm_msg *m, apr_uint64_t epoch)
{
    upm_frame *f;
    if (m->flags & UPM_MSG_GAP) {
        /* The Redis ingest lost messages here (link down, feeder lost, or
         * stream entries trimmed before they were read). */
        reset_all("redis");
        return;
    }
    f = upm_frame_make(m, epoch);
    if (!f) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, APR_ENOMEM, hub.s, APLOGNO(13020)
                     "out of memory building message %" APR_UINT64_T_FMT, m->seq);
        return;
    }
    apr_thread_mutex_lock(hub.lock);
    if (hub.count && *m->f[UPM_F_OWNER] && strcmp(m->f[UPM_F_TYPE], UPM_DISCONNECT_TYPE) == 0) {
        disconnect_user(m->f[UPM_F_OWNER], f);
    }
    else if (hub.count) {
        deliver_key(p, 'o', m->f[UPM_F_OWNER], m, f);
        deliver_key(p, 'P', m->f[UPM_F_PROJECT], m, f);
        deliver_key(p, 'J', m->f[UPM_F_JOB], m, f);
        deliver_key(p, 'S', m->f[UPM_F_SESSION], m, f);
        deliver_key(p, 'F', m->f[UPM_F_FILE], m, f);
    }
    apr_thread_mutex_unlock(hub.lock);
    upm_frame_unref(f);
}

static void reset_all(const char *reason)
{
    apr_hash_index_t *hi;
    apr_thread_mutex_lock(hub.lock);
    for (hi = apr_hash_first(NULL, hub.idx); hi; hi = apr_hash_next(hi)) {
        upm_sub *sub;
        for (sub = apr_hash_this_val(hi); sub; sub = sub->next) {
            set_reset(sub, reason);
        }
    }
    apr_thread_mutex_unlock(hub.lock);
}

void upm_hub_close_all(void)
{
    apr_hash_index_t *hi;
    if (!hub.lock) {
        return;
    }
    apr_thread_mutex_lock(hub.lock);
    hub.closing = 1;
    for (hi = apr_hash_first(NULL, hub.idx); hi; hi = apr_hash_next(hi)) {
        upm_sub *sub;
        for (sub = apr_hash_this_val(hi); sub; sub = sub->next) {
            sub->closing = 1;
            notify(sub);
        }
    }
    apr_thread_mutex_unlock(hub.lock);
}

/* ---- the ring follower ----------------------------------------------- */

static void *APR_THREAD_FUNC follow(apr_thread_t *thd, void *data)
{
    apr_pool_t *bp;
    upm_msg *msgs;
    apr_uint64_t cursor, last, oldest;
    apr_uint64_t epoch = upm_bus_epoch();

    bp = data;
    msgs = apr_palloc(bp, sizeof(upm_msg) * UPM_FOLLOW_BATCH);
    upm_bus_state(&cursor, &oldest);

    while (!hub.stop) {
        apr_uint32_t seen = upm_bus_wake_value();
        int n, i, state;

        n = upm_bus_read(bp, cursor, UPM_FOLLOW_BATCH, msgs, &last, &oldest);
        if (last > cursor && oldest > cursor + 1) {
            /* Publishers outran this child by more than the ring holds. */
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, hub.s, APLOGNO(13021)
                         "fan-out fell behind the replay ring by %" APR_UINT64_T_FMT
                         " messages; resetting this child's clients", oldest - cursor - 1);
            upm_stats_add(UPM_ST_DISPATCH_LAG, oldest - cursor - 1);
            reset_all("lag");
        }
        for (i = 0; i < n; i++) {
            dispatch(bp, &msgs[i], epoch);
        }
        if (n == UPM_FOLLOW_BATCH) {
            cursor = msgs[n - 1].seq;
        }
        else if (last > cursor) {
            cursor = last;
        }
        apr_pool_clear(bp);
        msgs = apr_palloc(bp, sizeof(upm_msg) * UPM_FOLLOW_BATCH);
        if (ap_mpm_query(AP_MPMQ_MPM_STATE, &state) == APR_SUCCESS
            && state == AP_MPMQ_STOPPING) {
            upm_hub_close_all();
        }
        if (n < UPM_FOLLOW_BATCH && !hub.stop) {
            upm_bus_wait(seen, apr_time_from_sec(1));
        }
    }
    apr_thread_exit(thd, APR_SUCCESS);
    return NULL;
}

static apr_status_t hub_child_cleanup(void *data)
{
    apr_status_t rv;
    upm_hub_close_all();
    if (hub.follower) {
        hub.stop = 1;
        upm_bus_wake_all();
        apr_thread_join(&rv, hub.follower);
        hub.follower = NULL;
    }
    return APR_SUCCESS;
}

void upm_hub_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;
    apr_threadattr_t *ta;
    apr_pool_t *bp;

    hub.pool = pchild;
    hub.s = s;
    hub.idx = apr_hash_make(pchild);
    rv = apr_thread_mutex_create(&hub.lock, APR_THREAD_MUTEX_DEFAULT, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(13022)
                     "cannot create the fan-out lock");
        return;
    }
    apr_threadattr_create(&ta, pchild);
    apr_threadattr_stacksize_set(ta, 256 * 1024);
    /* The follower's scratch pool is made here: sub-pools of pchild are
     * not to be created from another thread while workers create theirs. */
    apr_pool_create(&bp, pchild);
    apr_pool_tag(bp, "upm_follow");
    rv = apr_thread_create(&hub.follower, ta, follow, bp, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(13023)
                     "cannot start the ring follower thread");
        hub.follower = NULL;
        return;
    }
    /* A pre-cleanup: it must stop the thread before pchild's sub-pools
     * (the thread's scratch pool among them) are destroyed. */
    apr_pool_pre_cleanup_register(pchild, NULL, hub_child_cleanup);
}
