/* SPDX-License-Identifier: Apache-2.0 */
/* The Redis listener: one thread per child, exactly one of them feeding
 * the ring at a time (the lease in the bus segment).
 *
 * Pub/sub mode: every child keeps a PSUBSCRIBE link (unless
 * UploadProgressRedisStandby Off) and holds what it receives for a few
 * seconds.  The feeder records in the lease hashes of the last messages it
 * took; a standby that takes over finds that place in what it holds and
 * continues right after it, so a take-over neither loses nor repeats.
 * When it cannot place itself, it marks a gap in the ring and every client
 * gets a reset.  A feeder whose link drops lets the lease go at once.
 *
 * Streams mode: only the feeder holds a link (XREAD BLOCK); the lease
 * records the last entry id taken, under the same lock as the append, so a
 * successor continues exactly there.  Trimmed or vanished entries are
 * marked as a gap. */
#include "upm_redis.h"
#include "upm_redis_poll.h"
#include "upm_redis_tls.h"
#include "upm_redis_sentinel.h"
#include "upm_bus.h"
#include "upm_config.h"
#include "upm_ingest.h"
#include "upm_stats.h"

#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "ap_mpm.h"
#include "scoreboard.h"
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <hiredis/async.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

APLOG_USE_MODULE(upload_progress);

#define LEASE_TTL       apr_time_from_msec(1500)
#define LEASE_TICK      apr_time_from_msec(250)
/* A holder that renewed this recently is alive: no need to ask the kernel. */
#define LEASE_FRESH     apr_time_from_msec(400)
/* A pub/sub standby that cannot place itself after the previous feeder
 * leaves this long (since the last renewal) to one that can. */
#define LEASE_DEFER     apr_time_from_msec(1000)
/* A stopping pub/sub feeder keeps feeding this long at most, waiting for a
 * listening standby to take over: at a graceful restart the next
 * generation's children start about a second later; otherwise only as
 * long as some other child said it listens this recently. */
#define HANDOVER_MAX    apr_time_from_sec(4)
#define STANDBY_FRESH   apr_time_from_msec(600)
#define PING_EVERY      apr_time_from_sec(5)
#define XREAD_BLOCK_MS  1000
#define XREAD_COUNT     256
#define FEED_BATCH      512
#define HOLD_AGE        apr_time_from_sec(5)
#define HOLD_BYTES      ((apr_size_t)8 * 1024 * 1024)
#define LOG_EVERY       apr_time_from_sec(60)

enum { LINK_DOWN = 0, LINK_CONNECTING, LINK_SETUP, LINK_READY };

/* A pub/sub message as received (one malloc with its strings). */
typedef struct held {
    struct held *next;
    apr_uint64_t hash;
    apr_time_t at;
    int too_large;              /* payload not kept */
    apr_size_t chlen, len, full_len;
    char *ch, *data;
} held;

static struct {
    server_rec *s;
    upm_srv_conf *sc;
    apr_pool_t *pool;
    int mode;
    const char *const *pats;
    int npats;
    int standby;                /* pub/sub non-feeders keep a link */
    apr_size_t max;
    apr_interval_time_t timeout;
    upm_rpoll *lp;
    apr_thread_t *thread;
    volatile int stop;
    apr_time_t handover_until;  /* stopping feeder: hand-over deadline */
    int my_gen;                 /* this child's generation (graceful restarts) */
    apr_uint32_t rnd;

    /* the link */
    int link;
    unsigned linkno;            /* tells callbacks of an old link apart */
    int subs_pending;
    int outstanding;            /* commands awaiting a reply */
    apr_time_t deadline;        /* a reply is due by then; 0: none */
    apr_time_t next_ping;
    unsigned attempt;
    apr_time_t next_connect;
    apr_time_t down_since;
    char down_why[160];
    int kill_link;              /* close it once out of hiredis' callbacks */
    unsigned link_epoch;        /* Sentinel: the primary's address it was made to */
    char link_addr[280];
    int tick_lost;

    /* the role */
    int leader;
    apr_uint64_t gen;
    int lead_sync;              /* took the lease without a link: settle at ready */
    upm_lease lead_prev;
    int ready_held;             /* at ready: a feeder held the lease ... */
    apr_uint64_t ready_taken;   /* ... and had taken this many */

    /* pub/sub messages held */
    held *head, *tail;
    apr_size_t nheld, held_bytes;

    /* Streams */
    char cursor[UPM_XID_LEN];

    apr_pool_t *fp;             /* cleared after every feed */
    upm_ratelimit rl_refused[UPM_IN__COUNT];
    upm_ratelimit rl_connect;
    upm_ratelimit rl_ring;
} L;

static int enabled;

int upm_redis_enabled(void)
{
    return enabled;
}

static apr_uint32_t rnd32(void)
{
    /* xorshift32: jitter only needs to differ between children. */
    L.rnd ^= L.rnd << 13;
    L.rnd ^= L.rnd >> 17;
    L.rnd ^= L.rnd << 5;
    return L.rnd;
}

/* ---- the lease ----------------------------------------------------------- */

typedef struct {
    apr_int64_t me;
    apr_time_t now;
    apr_uint64_t gen;
    upm_lease snap;
    const char *xgap;
    /* pub/sub take-over: what this standby holds, and where it continues */
    const apr_uint64_t *held;
    long nheld;
    long start;
    int gap;
} lease_arg;

/* Whether the holding process still exists.  A child killed with -9 stays
 * a zombie until httpd's parent reaps it (up to a second): that is dead. */
static int pid_alive(apr_int64_t pid)
{
    char path[64], buf[256];
    apr_file_t *f;
    apr_size_t n = sizeof(buf) - 1;
    apr_pool_t *p;
    const char *rp;
    int alive = 1;

    if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno != EPERM)) {
        return 0;
    }
    apr_snprintf(path, sizeof(path), "/proc/%" APR_INT64_T_FMT "/stat", pid);
    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return 1;
    }
    if (apr_file_open(&f, path, APR_READ, 0, p) == APR_SUCCESS) {
        if (apr_file_read(f, buf, &n) == APR_SUCCESS) {
            buf[n] = '\0';
            /* "pid (comm) S ...": the state follows the last ')'. */
            rp = strrchr(buf, ')');
            alive = !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
        }
        apr_file_close(f);
    }
    apr_pool_destroy(p);
    return alive;
}

static int holder_alive(const upm_lease *l, apr_time_t now)
{
    if (l->holder == 0) {
        return 0;
    }
    if (now - l->renewed <= LEASE_FRESH && l->renewed - now <= LEASE_FRESH) {
        return 1;
    }
    return pid_alive(l->holder);
}

/* The lease is ours from now: a new generation, renewed at once. */
static int lease_grant(upm_lease *l, lease_arg *a)
{
    l->holder = a->me;
    l->gen++;
    l->renewed = a->now;
    l->released = 0;
    l->handover = 0;
    a->gen = l->gen;
    return 1;
}

static int lease_take(upm_lease *l, void *b)
{
    lease_arg *a = b;
    if (!upm_lease_is_free(l, a->now, LEASE_TTL, holder_alive(l, a->now))) {
        return 0;
    }
    a->snap = *l;
    return lease_grant(l, a);
}

/* A pub/sub standby with a ready link: says it listens, and takes the
 * lease when it is free or handed over.  Where it continues is decided
 * here, under the lock, against the very marks of the moment: a feeder
 * still feeding until this instant cannot have taken more since. */
static int lease_take_pubsub(upm_lease *l, void *b)
{
    lease_arg *a = b;
    int alive = holder_alive(l, a->now);
    int handed = l->handover && alive && l->holder != a->me;

    l->standby_seen = a->now;
    a->snap = *l;
    if (!handed && !upm_lease_is_free(l, a->now, LEASE_TTL, alive)) {
        return 0;
    }
    a->start = upm_takeover_start(l, a->held, a->nheld, L.ready_held, L.ready_taken);
    a->gap = a->start < 0;
    if (a->gap && (handed || a->now - l->renewed < LEASE_DEFER)) {
        /* Another child (one that was listening all along) may continue
         * without a gap: give it the first chance. */
        return 0;
    }
    if (a->gap) {
        a->start = a->nheld;
    }
    return lease_grant(l, a);
}

static int lease_ask_handover(upm_lease *l, void *b)
{
    lease_arg *a = b;
    if (l->holder != a->me || l->gen != a->gen) {
        return 0;
    }
    l->handover = 1;
    return 1;
}

static int lease_renew(upm_lease *l, void *b)
{
    lease_arg *a = b;
    if (l->holder != a->me || l->gen != a->gen) {
        a->snap = *l;
        return 0;
    }
    l->renewed = a->now;
    return 1;
}

static int lease_release(upm_lease *l, void *b)
{
    lease_arg *a = b;
    if (l->holder == a->me && l->gen == a->gen) {
        l->holder = 0;
        l->released = 1;
        return 1;
    }
    return 0;
}

static int lease_peek(upm_lease *l, void *b)
{
    lease_arg *a = b;
    a->snap = *l;
    return !upm_lease_is_free(l, a->now, LEASE_TTL, holder_alive(l, a->now));
}

static int lease_set_xgap(upm_lease *l, void *b)
{
    lease_arg *a = b;
    if (l->holder != a->me || l->gen != a->gen) {
        return 0;
    }
    apr_cpystrn(l->xgap, a->xgap, sizeof(l->xgap));
    return 1;
}

static lease_arg lease_arg_make(void)
{
    lease_arg a;
    memset(&a, 0, sizeof(a));
    a.me = (apr_int64_t)getpid();
    a.now = apr_time_now();
    a.gen = L.gen;
    return a;
}

static void link_close(const char *why);

static void lost_lease(const upm_lease *now_held)
{
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, L.s, APLOGNO(13210)
                 "Redis listener: pid %" APR_INT64_T_FMT " took over feeding from this "
                 "child (pid %d)", now_held->holder, (int)getpid());
    L.leader = 0;
    L.lead_sync = 0;
    if (L.mode == UPM_BUS_MODE_PUBSUB) {
        /* What this link holds is continuous: it may place itself later. */
        L.ready_held = 1;
        L.ready_taken = now_held->taken;
        if (!L.standby) {
            link_close(NULL);
        }
    }
    else {
        link_close(NULL);
    }
}

/* ---- held pub/sub messages ---------------------------------------------- */

static void held_drop_head(void)
{
    held *h = L.head;
    L.head = h->next;
    if (!L.head) {
        L.tail = NULL;
    }
    L.nheld--;
    L.held_bytes -= sizeof(*h) + h->chlen + h->len + 2;
    free(h);
}

static void held_clear(void)
{
    while (L.head) {
        held_drop_head();
    }
}

static void held_trim(apr_time_t now)
{
    /* Only a standby ages messages out: a feeder takes them all. */
    while (L.head && !L.leader
           && (now - L.head->at > HOLD_AGE || L.held_bytes > HOLD_BYTES)) {
        held_drop_head();
    }
}

static void held_push(const char *ch, apr_size_t chlen, const char *data, apr_size_t len)
{
    int big = len > L.max;
    apr_size_t keep = big ? 0 : len;
    held *h = malloc(sizeof(*h) + chlen + keep + 2);
    if (!h) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, APR_ENOMEM, L.s, APLOGNO(13211)
                     "out of memory holding a Redis message");
        return;
    }
    h->next = NULL;
    h->hash = upm_msg_hash(ch, chlen, data, len);
    h->at = apr_time_now();
    h->too_large = big;
    h->chlen = chlen;
    h->len = keep;
    h->full_len = len;
    h->ch = (char *)(h + 1);
    memcpy(h->ch, ch, chlen);
    h->ch[chlen] = '\0';
    h->data = h->ch + chlen + 1;
    memcpy(h->data, data, keep);
    h->data[keep] = '\0';
    if (L.tail) {
        L.tail->next = h;
    }
    else {
        L.head = h;
    }
    L.tail = h;
    L.nheld++;
    L.held_bytes += sizeof(*h) + chlen + keep + 2;
}

/* ---- feeding ------------------------------------------------------------ */

static void log_refused(upm_ingest_status st, const char *where, const char *why)
{
    apr_uint64_t more = 0;
    upm_stats_add(UPM_ST_REDIS_REFUSED, 1);
    if (upm_ratelimit_pass(&L.rl_refused[st], apr_time_now(), LOG_EVERY, &more)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, L.s, APLOGNO(13212)
                     "skipped a Redis message (%s) from %s: %s%s", upm_ingest_name(st),
                     where, why, more ? apr_psprintf(L.fp, " (and %" APR_UINT64_T_FMT
                                                     " more of this kind in the last "
                                                     "minute)", more) : "");
    }
}

static void check_seqs(const apr_uint64_t *seqs, int n)
{
    int i;
    apr_uint64_t more = 0;
    for (i = 0; i < n; i++) {
        if (seqs[i] == 0 && upm_ratelimit_pass(&L.rl_ring, apr_time_now(), LOG_EVERY,
                                               &more)) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, L.s, APLOGNO(13213)
                         "a message from Redis is larger than the replay ring's largest "
                         "record: raise UploadProgressReplayMemory");
        }
    }
}

static upm_msg *gap_marker(apr_pool_t *p, const char *ext)
{
    upm_msg *m = apr_pcalloc(p, sizeof(*m));
    int f;
    m->flags = UPM_MSG_GAP;
    m->published = apr_time_now();
    m->percent = -1;
    m->ext = ext;
    for (f = 0; f < UPM_F__COUNT; f++) {
        m->f[f] = "";
    }
    m->json = "{\"reason\":\"redis\"}";
    m->json_len = strlen(m->json);
    return m;
}

/* Appends through the fence; 0 on success, -1 when the lease was lost
 * (then this child is a standby again). */
static int feed(upm_msg *const *msgs, int n, const apr_uint64_t *marks, apr_size_t nmarks,
                const char *xid)
{
    apr_uint64_t *seqs = apr_pcalloc(L.fp, sizeof(apr_uint64_t) * (n ? n : 1));
    apr_status_t rv = upm_bus_feed(L.fp, L.gen, msgs, n, marks, nmarks, xid, seqs);
    if (rv == APR_EBUSY) {
        lease_arg a = lease_arg_make();
        upm_bus_with_lease(lease_peek, &a);
        lost_lease(&a.snap);
        return -1;
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, L.s, APLOGNO(13214)
                     "cannot append Redis messages to the ring");
        return -1;
    }
    check_seqs(seqs, n);
    return 0;
}

static void feed_gap(const char *ext, const char *why)
{
    upm_msg *m = gap_marker(L.fp, ext);
    if (feed(&m, 1, NULL, 0, NULL) == 0) {
        upm_stats_add(UPM_ST_REDIS_GAPS, 1);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, L.s, APLOGNO(13215)
                     "Redis ingest gap (%s): connected clients get a reset", why);
    }
}

/* The feeder takes what it holds, in batches, each batch one append. */
static void feed_held(void)
{
    while (L.leader && L.head && L.link == LINK_READY) {
        upm_msg **msgs = apr_palloc(L.fp, sizeof(upm_msg *) * FEED_BATCH);
        apr_uint64_t *marks = apr_palloc(L.fp, sizeof(apr_uint64_t) * FEED_BATCH);
        upm_ingest_status *st = apr_palloc(L.fp, sizeof(*st) * FEED_BATCH);
        const char **why = apr_palloc(L.fp, sizeof(char *) * FEED_BATCH);
        int nm = 0, nh = 0, i;
        apr_time_t now = apr_time_now();
        held *h;

        for (h = L.head; h && nh < FEED_BATCH; h = h->next, nh++) {
            upm_msg *m = apr_palloc(L.fp, sizeof(*m));
            marks[nh] = h->hash;
            if (h->too_large) {
                st[nh] = UPM_IN_TOO_LARGE;
                why[nh] = apr_psprintf(L.fp, "%" APR_SIZE_T_FMT " bytes, more than the %"
                                       APR_SIZE_T_FMT " taken (UploadProgressRedisMaxMessage)",
                                       h->full_len, L.max);
                continue;
            }
            {
                /* user:{id} names the owner; upload-session:{id} (and the
                 * other scope channels) the scope of an owner-less message. */
                int nsc, sf;
                const upm_chan_scope *scs = upm_conf_redis_scope_channels(L.sc, &nsc);
                const char *sid;
                sf = upm_channel_scope(L.fp, scs, nsc, h->ch, h->chlen, &sid);
                st[nh] = upm_ingest_routed(L.fp, h->data, h->len,
                                           upm_channel_owner(L.fp, h->ch, h->chlen), sf, sid,
                                           L.sc->event_map, L.max, now, m, &why[nh]);
            }
            if (st[nh] == UPM_IN_OK) {
                msgs[nm++] = m;
            }
        }
        if (feed(msgs, nm, marks, (apr_size_t)nh, NULL) != 0) {
            apr_pool_clear(L.fp);
            return;
        }
        upm_stats_add(UPM_ST_REDIS_RECEIVED, (apr_uint64_t)nh);
        for (i = 0; i < nh; i++) {
            if (st[i] != UPM_IN_OK) {
                log_refused(st[i], apr_psprintf(L.fp, "channel %s", L.head->ch), why[i]);
            }
            held_drop_head();
        }
        apr_pool_clear(L.fp);
    }
}

/* ---- taking the lease ----------------------------------------------------- */

static void log_taken(const upm_lease *prev, int gap)
{
    const char *back = "";
    upm_stats_redis_link(UPM_REDIS_UP);
    if (L.down_since) {
        upm_stats_add(UPM_ST_REDIS_RECONNECTS, 1);
        back = apr_psprintf(L.fp, "; the Redis link is back after %.1f s down (%s)",
                            (double)(apr_time_now() - L.down_since) / APR_USEC_PER_SEC,
                            L.down_why);
        L.down_since = 0;
    }
    if (prev->gen) {
        upm_stats_add(UPM_ST_REDIS_TAKEOVERS, 1);
    }
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, L.s, APLOGNO(13216)
                 "Redis listener: this child (pid %d) now feeds the ring (lease %"
                 APR_UINT64_T_FMT "%s%s)%s", (int)getpid(), L.gen,
                 prev->gen == 0 ? ", first feeder" :
                 prev->holder == 0 ? ", released by its last holder" :
                 prev->handover ? apr_psprintf(L.fp, ", handed over by pid %" APR_INT64_T_FMT,
                                               prev->holder)
                                : apr_psprintf(L.fp, ", taken from pid %" APR_INT64_T_FMT,
                                               prev->holder),
                 gap ? ", after a gap" : "", back);
}

/* Pub/sub, with a ready link: take the lease when it is free (or handed
 * over) and continue exactly after the last message the previous feeder
 * took. */
static void try_lead_pubsub(void)
{
    lease_arg a = lease_arg_make();
    apr_uint64_t *hs = apr_palloc(L.fp, sizeof(apr_uint64_t) * (L.nheld + 1));
    long i, n = 0;
    held *h;

    if (L.stop) {
        return;     /* a stopping child takes nothing over */
    }
    for (h = L.head; h; h = h->next) {
        hs[n++] = h->hash;
    }
    a.held = hs;
    a.nheld = n;
    if (upm_bus_with_lease(lease_take_pubsub, &a) != 1) {
        return;
    }
    L.leader = 1;
    L.gen = a.gen;
    if (a.gap) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, L.s, APLOGNO(13228)
                     "Redis listener: cannot place %ld held messages after the "
                     "feeder's last %u (taken %" APR_UINT64_T_FMT ", %" APR_UINT64_T_FMT
                     " when this link came up%s)", n, a.snap.nmarks, a.snap.taken,
                     L.ready_taken, L.ready_held ? "" : " with no feeder");
    }
    log_taken(&a.snap, a.gap);
    for (i = 0; i < a.start && L.head; i++) {
        held_drop_head();
    }
    if (a.gap) {
        feed_gap("", "the previous feeder's last messages are not among those this "
                 "child holds");
    }
    apr_pool_clear(L.fp);
    feed_held();
}

/* Streams mode, or pub/sub without standby links: take the lease first,
 * connect afterwards. */
static void try_lead_unlinked(void)
{
    lease_arg a = lease_arg_make();
    if (upm_bus_with_lease(lease_take, &a) != 1) {
        return;
    }
    L.leader = 1;
    L.gen = a.gen;
    L.lead_sync = 1;
    L.lead_prev = a.snap;
    L.next_connect = 0;
    L.attempt = 0;
}

/* ---- the link ------------------------------------------------------------ */

#define LINKNO(priv) ((unsigned)(apr_uintptr_t)(priv))
#define PRIV()       ((void *)(apr_uintptr_t)L.linkno)

static void expect_reply(apr_interval_time_t within)
{
    apr_time_t d = apr_time_now() + within;
    L.outstanding++;
    if (d > L.deadline) {
        L.deadline = d;
    }
}

static void got_reply(void)
{
    if (L.outstanding > 0 && --L.outstanding == 0) {
        L.deadline = 0;
    }
}

static void link_lost(const char *why)
{
    int was_ready = L.link == LINK_READY;
    apr_interval_time_t d;

    L.link = LINK_DOWN;
    L.outstanding = 0;
    L.deadline = 0;
    L.subs_pending = 0;
    if (!L.down_since) {
        L.down_since = apr_time_now();
        apr_cpystrn(L.down_why, why ? why : "lost", sizeof(L.down_why));
    }
    d = upm_backoff_delay(L.attempt++, apr_time_from_msec(upm_conf_redis_backoff_min_ms(L.sc)),
                         apr_time_from_msec(upm_conf_redis_backoff_max_ms(L.sc)), rnd32());
    L.next_connect = apr_time_now() + d;
    if (L.leader) {
        /* The server's link is the feeder's. */
        upm_stats_redis_link(UPM_REDIS_DOWN);
    }
    if (was_ready) {
        if (L.leader) {
            upm_stats_add(UPM_ST_REDIS_LINK_LOST, 1);
        }
        ap_log_error(APLOG_MARK, L.leader ? APLOG_WARNING : APLOG_INFO, 0, L.s,
                     APLOGNO(13217) "Redis link lost (%s)%s; reconnecting in %d ms",
                     why ? why : "closed", L.leader ? " while feeding the ring" : "",
                     (int)(d / 1000));
    }
    else {
        apr_uint64_t more = 0;
        if (upm_ratelimit_pass(&L.rl_connect, apr_time_now(), LOG_EVERY, &more)) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, L.s, APLOGNO(13218)
                         "cannot reach Redis at %s: %s; retrying with backoff (up to %d ms)"
                         "%s", upm_redis_url_display(L.fp, L.sc->redis), why ? why : "failed",
                         upm_conf_redis_backoff_max_ms(L.sc),
                         more ? apr_psprintf(L.fp, " (%" APR_UINT64_T_FMT " failed attempts "
                                             "not logged)", more) : "");
        }
    }
    /* Pub/sub: a feeder without a link lets go at once, so a standby whose
     * link is still up takes over without losing anything.  What it held
     * is not continuous with the next link's messages. */
    if (L.mode == UPM_BUS_MODE_PUBSUB) {
        if (L.leader && L.standby) {
            lease_arg a = lease_arg_make();
            upm_bus_with_lease(lease_release, &a);
            L.leader = 0;
            L.lead_sync = 0;
        }
        else if (L.leader) {
            /* No standby could do better: keep the lease, and mark the gap
             * once the link is back. */
            L.lead_sync = 1;
            memset(&L.lead_prev, 0, sizeof(L.lead_prev));
            L.lead_prev.gen = L.gen;
            L.lead_prev.holder = (apr_int64_t)getpid();
        }
        held_clear();
        L.ready_held = 0;
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    if (L.link != LINK_DOWN) {
        const char *why = ac->errstr && ac->errstr[0] ? ac->errstr
                          : status == REDIS_OK ? "closed" : "error";
        if (L.link == LINK_SETUP && !L.sc->redis->tls && !L.sc->redis->is_unix) {
            /* A TLS port drops a plain-text client at its first command. */
            why = apr_pstrcat(L.fp, why, " before answering the link's setup (if that port "
                              "speaks TLS, use a rediss:// URL)", NULL);
        }
        link_lost(why);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        /* hiredis frees the context after this: no disconnect callback. */
        link_lost(ac->errstr[0] ? ac->errstr : "connect failed");
        return;
    }
    L.link = LINK_SETUP;
}

static void link_close(const char *why)
{
    redisAsyncContext *ac = upm_rpoll_context(L.lp);
    if (L.link != LINK_DOWN) {
        if (why) {
            link_lost(why);
        }
        else {
            /* A deliberate close (lease lost, no longer wanted) is no
             * outage: nothing to log, no backoff. */
            L.link = LINK_DOWN;
            L.outstanding = 0;
            L.deadline = 0;
            L.subs_pending = 0;
            if (L.mode == UPM_BUS_MODE_PUBSUB) {
                held_clear();
                L.ready_held = 0;
            }
        }
    }
    if (ac) {
        /* The disconnect callback finds the link down and stays quiet.
         * Inside a hiredis callback the free is deferred until it returns. */
        redisAsyncFree(ac);
    }
}

static void on_reply_check(redisAsyncContext *ac, void *r, void *priv);
static void on_sub(redisAsyncContext *ac, void *r, void *priv);
static void on_ping(redisAsyncContext *ac, void *r, void *priv);
static void stream_begin(void);

static void link_ready(void)
{
    lease_arg a = lease_arg_make();

    L.link = LINK_READY;
    L.attempt = 0;
    L.next_ping = apr_time_now() + PING_EVERY;
    if (L.mode == UPM_BUS_MODE_STREAM) {
        if (L.leader && !L.lead_sync) {
            upm_stats_redis_link(UPM_REDIS_UP);
        }
        if (L.leader && !L.lead_sync && L.down_since) {
            upm_stats_add(UPM_ST_REDIS_RECONNECTS, 1);
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, L.s, APLOGNO(13229)
                         "Redis listener: the Redis link is back after %.1f s down (%s); "
                         "reading stream %s on from %s", (double)(apr_time_now()
                         - L.down_since) / APR_USEC_PER_SEC, L.down_why,
                         L.sc->redis_stream, L.cursor[0] ? L.cursor : "its end");
            L.down_since = 0;
        }
        stream_begin();
        return;
    }
    L.ready_held = upm_bus_with_lease(lease_peek, &a) == 1;
    L.ready_taken = a.snap.taken;
    if (L.leader && L.lead_sync) {
        /* Took the lease before having a link (no standby links): only the
         * very first feeder can know it missed nothing. */
        int gap = L.lead_prev.gen != 0;
        L.lead_sync = 0;
        log_taken(&L.lead_prev, gap);
        if (gap) {
            feed_gap("", "the feeder changed while no link was up");
        }
        feed_held();
    }
    else if (!L.leader) {
        if (L.down_since) {
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, L.s, APLOGNO(13219)
                         "Redis link back after %.1f s (standby)",
                         (double)(apr_time_now() - L.down_since) / APR_USEC_PER_SEC);
        }
        try_lead_pubsub();
        if (!L.leader) {
            L.down_since = 0;
        }
    }
}

static void on_sub(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *rep = r;
    if (!rep || LINKNO(priv) != L.linkno) {
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        link_lost(apr_psprintf(L.fp, "PSUBSCRIBE refused: %s", rep->str));
        L.kill_link = 1;
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3
        || rep->element[0]->type != REDIS_REPLY_STRING) {
        return;
    }
    if (strcasecmp(rep->element[0]->str, "psubscribe") == 0) {
        got_reply();
        if (L.link == LINK_SETUP && --L.subs_pending == 0) {
            link_ready();
        }
        return;
    }
    if (strcasecmp(rep->element[0]->str, "pmessage") == 0 && rep->elements == 4
        && rep->element[1]->type == REDIS_REPLY_STRING
        && rep->element[2]->type == REDIS_REPLY_STRING
        && rep->element[3]->type == REDIS_REPLY_STRING) {
        const redisReply *pat = rep->element[1], *ch = rep->element[2];
        int first = upm_patterns_first(L.pats, L.npats, ch->str, ch->len);
        /* A channel matching several patterns arrives once per pattern. */
        if (first < 0 || strlen(L.pats[first]) != pat->len
            || memcmp(L.pats[first], pat->str, pat->len) != 0) {
            return;
        }
        held_push(ch->str, ch->len, rep->element[3]->str, rep->element[3]->len);
    }
}

static void on_reply_check(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *rep = r;
    if (!rep || LINKNO(priv) != L.linkno) {
        return;
    }
    got_reply();
    if (rep->type == REDIS_REPLY_ERROR) {
        link_lost(apr_psprintf(L.fp, "Redis refused the link's setup: %s", rep->str));
        L.kill_link = 1;
    }
}

/* Sentinel: what the link reached must be the primary (a sentinel's
 * answer may be a moment old, and a demoted primary keeps answering). */
static void on_role(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *rep = r;
    if (!rep || LINKNO(priv) != L.linkno) {
        return;
    }
    got_reply();
    if (!upm_redis_sentinel_is_primary(rep)) {
        upm_redis_sentinel_stale(L.link_epoch);
        link_lost(apr_psprintf(L.fp, "%s is not the primary (ROLE: %s)", L.link_addr,
                               rep->type == REDIS_REPLY_ERROR ? rep->str
                               : rep->type == REDIS_REPLY_ARRAY && rep->elements
                                 && rep->element[0]->type == REDIS_REPLY_STRING
                               ? rep->element[0]->str : "?"));
        L.kill_link = 1;
    }
}

static void link_open(void)
{
    const upm_redis_url *u = L.sc->redis;
    redisAsyncContext *ac;

    const char *host = u->host;
    int port = u->port;

    L.linkno++;
    L.kill_link = 0;
    if (upm_redis_sentinel_enabled()) {
        const char *err;
        if (L.attempt > 0) {
            /* The last link failed: the primary may have moved. */
            upm_redis_sentinel_stale(L.link_epoch);
        }
        if ((err = upm_redis_sentinel_primary(L.fp, &host, &port, &L.link_epoch))) {
            L.link = LINK_CONNECTING;
            link_lost(err);
            return;
        }
    }
    apr_snprintf(L.link_addr, sizeof(L.link_addr), "%s:%d", host, port);
    ac = u->is_unix ? redisAsyncConnectUnix(u->path) : redisAsyncConnect(host, port);
    if (!ac) {
        link_lost("out of memory");
        return;
    }
    if (ac->err) {
        char *why = apr_pstrdup(L.fp, ac->errstr);
        redisAsyncFree(ac);
        L.link = LINK_CONNECTING;
        link_lost(why);
        return;
    }
    upm_rpoll_attach(L.lp, ac);
    if (u->tls && upm_redis_tls_attach(L.lp, ac, host) != REDIS_OK) {
        redisAsyncFree(ac);
        L.link = LINK_CONNECTING;
        link_lost("TLS is not set up in this child");
        return;
    }
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Set after attaching: it arms the write event that tells a finished
     * connect. */
    redisAsyncSetConnectCallback(ac, on_connect);
    redisEnableKeepAlive(&ac->c);
    L.link = LINK_CONNECTING;
    L.outstanding = 0;
    L.deadline = 0;

    if (u->password) {
        if (u->user) {
            redisAsyncCommand(ac, on_reply_check, PRIV(), "AUTH %s %s", u->user, u->password);
        }
        else {
            redisAsyncCommand(ac, on_reply_check, PRIV(), "AUTH %s", u->password);
        }
        expect_reply(L.timeout);
    }
    if (upm_redis_sentinel_enabled()) {
        /* Before any subscription (which allows no other command). */
        redisAsyncCommand(ac, on_role, PRIV(), "ROLE");
        expect_reply(L.timeout);
    }
    if (L.mode == UPM_BUS_MODE_STREAM) {
        if (u->db) {
            redisAsyncCommand(ac, on_reply_check, PRIV(), "SELECT %d", u->db);
            expect_reply(L.timeout);
        }
        /* Ready once the connect completes and setup is answered: a PING
         * closes the setup. */
        redisAsyncCommand(ac, on_ping, PRIV(), "PING");
        expect_reply(L.timeout);
        L.subs_pending = -1;
    }
    else {
        const char **argv = apr_palloc(L.fp, sizeof(char *) * (L.npats + 1));
        int i;
        argv[0] = "PSUBSCRIBE";
        for (i = 0; i < L.npats; i++) {
            argv[i + 1] = L.pats[i];
        }
        redisAsyncCommandArgv(ac, on_sub, PRIV(), L.npats + 1, argv, NULL);
        L.subs_pending = L.npats;
        for (i = 0; i < L.npats; i++) {
            expect_reply(L.timeout);
        }
    }
}

/* ---- Streams ------------------------------------------------------------- */

static void stream_read(void);

static void on_xread(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *rep = r;
    const redisReply *entries;
    upm_msg **msgs;
    apr_uint64_t taken = 0;
    const char *last = NULL;
    apr_time_t now = apr_time_now();
    size_t i;
    int nm = 0;

    if (!rep || LINKNO(priv) != L.linkno) {
        return;
    }
    got_reply();
    if (!L.leader) {
        return;
    }
    if (rep->type == REDIS_REPLY_NIL) {
        stream_read();
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        link_lost(apr_psprintf(L.fp, "XREAD refused: %s", rep->str));
        L.kill_link = 1;
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1
        || rep->element[0]->type != REDIS_REPLY_ARRAY || rep->element[0]->elements != 2
        || rep->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
        link_lost("unexpected XREAD reply");
        L.kill_link = 1;
        return;
    }
    entries = rep->element[0]->element[1];
    msgs = apr_palloc(L.fp, sizeof(upm_msg *) * (entries->elements + 1));
    for (i = 0; i < entries->elements; i++) {
        const char *id, *data, *hint, *why = NULL;
        apr_size_t dlen;
        upm_xid x;
        upm_msg *m = apr_palloc(L.fp, sizeof(*m));
        upm_ingest_status st;

        if (upm_redis_parse_entry(L.fp, entries->element[i], &id, &x, &data, &dlen,
                                  &hint) != 0) {
            continue;
        }
        last = id;
        taken++;
        if (!data) {
            st = UPM_IN_NO_PAYLOAD;
            why = "the entry has no \"data\" field";
        }
        else {
            st = upm_ingest(L.fp, data, dlen, hint, L.sc->event_map, L.max,
                            upm_xid_time(x), m, &why);
            /* Latency is measured from the append, not from the XADD. */
            m->published = now;
        }
        if (st == UPM_IN_OK) {
            m->ext = id;
            msgs[nm++] = m;
        }
        else {
            log_refused(st, apr_psprintf(L.fp, "stream entry %s", id), why);
        }
    }
    if (last) {
        if (feed(msgs, nm, NULL, 0, last) != 0) {
            apr_pool_clear(L.fp);
            return;
        }
        apr_cpystrn(L.cursor, last, sizeof(L.cursor));
        upm_stats_add(UPM_ST_REDIS_RECEIVED, taken);
    }
    apr_pool_clear(L.fp);
    if (entries->elements >= XREAD_COUNT) {
        /* Behind: make sure trimming has not overtaken the cursor. */
        stream_begin();
    }
    else {
        stream_read();
    }
}

static void stream_read(void)
{
    redisAsyncContext *ac = upm_rpoll_context(L.lp);
    if (!ac || L.link != LINK_READY || !L.leader) {
        return;
    }
    redisAsyncCommand(ac, on_xread, PRIV(), "XREAD BLOCK %d COUNT %d STREAMS %s %s",
                      XREAD_BLOCK_MS, XREAD_COUNT, L.sc->redis_stream, L.cursor);
    expect_reply(apr_time_from_msec(XREAD_BLOCK_MS) + L.timeout);
}

static void on_xinfo(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *rep = r;
    upm_xinfo xi;
    upm_xid c, gap_seen = { 0, 0 }, w = { 0, 0 };
    lease_arg a = lease_arg_make();
    const char *why = NULL;

    if (!rep || LINKNO(priv) != L.linkno) {
        return;
    }
    got_reply();
    if (!L.leader) {
        return;
    }
    if (upm_redis_parse_xinfo(rep, &xi) != 0) {
        link_lost(apr_psprintf(L.fp, "XINFO STREAM failed: %s",
                               rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply"));
        L.kill_link = 1;
        return;
    }
    upm_xid_parse(L.cursor, strlen(L.cursor), &c);
    upm_bus_with_lease(lease_peek, &a);
    if (a.snap.xgap[0]) {
        upm_xid_parse(a.snap.xgap, strlen(a.snap.xgap), &gap_seen);
    }
    if ((c.ms || c.seq) && upm_xinfo_lost_after(&xi, c)) {
        why = !xi.exists ? "the stream no longer exists"
              : "entries after the last one read are no longer in the stream (trimmed, "
                "deleted, or the stream was recreated)";
        /* What the loss is remembered by, so that it is marked once. */
        w = xi.exists && xi.length && upm_xid_cmp(xi.first_entry, c) > 0 ? xi.first_entry
            : xi.has_max_deleted && upm_xid_cmp(xi.max_deleted, c) > 0 ? xi.max_deleted : c;
        if (!xi.exists) {
            w = c;
        }
    }
    if (why && upm_xid_cmp(w, gap_seen) > 0) {
        /* The marker sits right after the cursor: a client that saw the
         * cursor's entry is reset, one that resumes from the marker's id
         * is not. */
        char ext[UPM_XID_LEN], wb[UPM_XID_LEN];
        upm_xid after = c;
        after.seq++;
        upm_xid_format(ext, after);
        upm_xid_format(wb, w);
        a = lease_arg_make();
        a.xgap = wb;
        upm_bus_with_lease(lease_set_xgap, &a);
        feed_gap(apr_pstrdup(L.fp, ext), why);
    }
    apr_pool_clear(L.fp);
    stream_read();
}

static void on_xtop(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *rep = r;
    char top[UPM_XID_LEN] = "0-0";
    if (!rep || LINKNO(priv) != L.linkno) {
        return;
    }
    got_reply();
    if (!L.leader) {
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        link_lost(apr_psprintf(L.fp, "XREVRANGE refused: %s", rep->str));
        L.kill_link = 1;
        return;
    }
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1
        && rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2
        && rep->element[0]->element[0]->type == REDIS_REPLY_STRING) {
        apr_cpystrn(top, rep->element[0]->element[0]->str, sizeof(top));
    }
    /* Recorded at once: a successor continues from here too. */
    if (feed(NULL, 0, NULL, 0, top) != 0) {
        return;
    }
    apr_cpystrn(L.cursor, top, sizeof(L.cursor));
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, L.s, APLOGNO(13220)
                 "Redis stream %s: starting after entry %s", L.sc->redis_stream, top);
    stream_begin();
}

/* After connecting (and now and then): where to read from, and whether
 * entries were lost meanwhile. */
static void stream_begin(void)
{
    redisAsyncContext *ac = upm_rpoll_context(L.lp);
    lease_arg a = lease_arg_make();

    if (!ac || !L.leader) {
        return;
    }
    if (L.lead_sync) {
        L.lead_sync = 0;
        log_taken(&L.lead_prev, 0);
    }
    upm_bus_with_lease(lease_peek, &a);
    if (!a.snap.xid[0]) {
        /* The first feeder ever: start at the stream's end. */
        redisAsyncCommand(ac, on_xtop, PRIV(), "XREVRANGE %s + - COUNT 1",
                          L.sc->redis_stream);
        expect_reply(L.timeout);
        return;
    }
    apr_cpystrn(L.cursor, a.snap.xid, sizeof(L.cursor));
    redisAsyncCommand(ac, on_xinfo, PRIV(), "XINFO STREAM %s", L.sc->redis_stream);
    expect_reply(L.timeout);
}

static void on_ping(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *rep = r;
    if (!rep || LINKNO(priv) != L.linkno) {
        return;
    }
    got_reply();
    if (L.link == LINK_SETUP && L.mode == UPM_BUS_MODE_STREAM) {
        link_ready();
    }
}

/* ---- the thread ---------------------------------------------------------- */

static int wants_link(void)
{
    if (L.mode == UPM_BUS_MODE_PUBSUB && L.standby) {
        return 1;
    }
    return L.leader;
}

static void tick(apr_time_t now)
{
    redisAsyncContext *ac = upm_rpoll_context(L.lp);

    if (L.leader) {
        lease_arg a = lease_arg_make();
        if (upm_bus_with_lease(lease_renew, &a) == 0) {
            lost_lease(&a.snap);
        }
    }
    else if (L.mode == UPM_BUS_MODE_STREAM || !L.standby) {
        try_lead_unlinked();
    }
    else if (L.link == LINK_READY) {
        try_lead_pubsub();
    }

    if (ac && L.link != LINK_DOWN && L.deadline && now > L.deadline) {
        link_close(apr_psprintf(L.fp, "no reply from Redis within %d ms",
                                upm_conf_redis_timeout_ms(L.sc)));
        return;
    }
    if (ac && L.link == LINK_READY && L.mode == UPM_BUS_MODE_PUBSUB && now >= L.next_ping) {
        /* A subscribed link cannot PING without leaking a callback in
         * hiredis 0.14; subscribing again to a pattern it has is answered
         * and changes nothing. */
        redisAsyncCommand(ac, on_sub, PRIV(), "PSUBSCRIBE %s", L.pats[0]);
        expect_reply(L.timeout);
        L.next_ping = now + PING_EVERY;
    }
    if (!L.leader) {
        held_trim(now);
    }
}

static void on_tick(upm_rpoll *lp, void *baton)
{
    apr_time_t now = apr_time_now();
    tick(now);
    if (!upm_rpoll_timer(lp, now + LEASE_TICK, on_tick, NULL)) {
        /* Cannot happen with the few timers used here; never stop ticking. */
        L.tick_lost = 1;
    }
}

/* A stopping pub/sub feeder goes on feeding until a listening standby
 * (typically a child of the next generation, at a graceful restart) takes
 * the lease over, so that the change of hands loses nothing; bounded by
 * HANDOVER_MAX, and only while some standby says it listens. */
static int handing_over(void)
{
    apr_time_t now = apr_time_now();
    lease_arg a = lease_arg_make();

    if (!L.leader || L.mode != UPM_BUS_MODE_PUBSUB || !L.standby || L.link != LINK_READY) {
        return 0;
    }
    if (!L.handover_until) {
        L.handover_until = now + HANDOVER_MAX;
        if (upm_bus_with_lease(lease_ask_handover, &a) != 1) {
            return 0;
        }
    }
    upm_bus_with_lease(lease_peek, &a);
    if (now >= L.handover_until) {
        return 0;
    }
    /* A newer generation is running: a graceful restart, whose children
     * will listen shortly. */
    if (ap_scoreboard_image
        && ap_scoreboard_image->global->running_generation != L.my_gen) {
        return 1;
    }
    return now - a.snap.standby_seen <= STANDBY_FRESH;
}

static void *APR_THREAD_FUNC listener(apr_thread_t *thd, void *data)
{
    upm_rpoll_timer(L.lp, apr_time_now(), on_tick, NULL);
    while (!L.stop || handing_over()) {
        apr_time_t now = apr_time_now();
        apr_interval_time_t wait = LEASE_TICK;

        if (L.tick_lost) {
            L.tick_lost = 0;
            on_tick(L.lp, NULL);
        }
        if (L.link == LINK_DOWN && wants_link()) {
            if (now >= L.next_connect) {
                link_open();
            }
            else if (L.next_connect - now < wait) {
                wait = L.next_connect - now;
            }
        }
        /* The tick timer bounds the wait as well. */
        upm_rpoll_run_once(L.lp, wait);
        if (L.kill_link) {
            L.kill_link = 0;
            if (upm_rpoll_context(L.lp)) {
                redisAsyncFree(upm_rpoll_context(L.lp));
            }
        }
        if (L.mode == UPM_BUS_MODE_PUBSUB) {
            feed_held();
        }
        if (!wants_link() && L.link != LINK_DOWN) {
            link_close(NULL);
        }
        else if (L.link != LINK_DOWN && upm_redis_sentinel_enabled()
                 && L.link_epoch != upm_redis_sentinel_epoch()) {
            link_close(apr_psprintf(L.fp, "the primary moved away from %s (Sentinel)",
                                    L.link_addr));
        }
        apr_pool_clear(L.fp);
    }

    /* Stopping: take what is held, then let the lease go so that another
     * child (of this generation or the next) takes over at once. */
    if (L.mode == UPM_BUS_MODE_PUBSUB) {
        feed_held();
    }
    if (L.leader) {
        lease_arg a = lease_arg_make();
        upm_bus_with_lease(lease_release, &a);
        L.leader = 0;
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, L.s, APLOGNO(13221)
                     "Redis listener: this child (pid %d) stops feeding", (int)getpid());
    }
    if (upm_rpoll_context(L.lp)) {
        L.link = LINK_DOWN;     /* no outage to report */
        redisAsyncFree(upm_rpoll_context(L.lp));
    }
    held_clear();
    apr_thread_exit(thd, APR_SUCCESS);
    return NULL;
}

static apr_status_t listener_stop(void *data)
{
    apr_status_t rv;
    if (L.thread) {
        L.stop = 1;
        upm_rpoll_wake(L.lp);
        apr_thread_join(&rv, L.thread);
        L.thread = NULL;
    }
    return APR_SUCCESS;
}

static void sentinel_moved(void *baton)
{
    if (L.lp) {
        upm_rpoll_wake(L.lp);
    }
}

void upm_redis_child_init(apr_pool_t *pchild, server_rec *s)
{
    upm_srv_conf *sc = ap_get_module_config(s->module_config, &upload_progress_module);
    apr_threadattr_t *ta;
    apr_status_t rv;

    if (!sc->redis) {
        return;
    }
    enabled = 1;
    upm_redis_sentinel_child_init(pchild, s, sentinel_moved, NULL);
    upm_redis_sync_child_init(pchild, s);

    memset(&L, 0, sizeof(L));
    L.s = s;
    L.sc = sc;
    L.mode = upm_bus_mode();
    if (L.mode == UPM_BUS_MODE_EMBEDDED) {
        return;
    }
    ap_mpm_query(AP_MPMQ_GENERATION, &L.my_gen);
    L.pats = upm_conf_redis_patterns(sc, &L.npats);
    L.standby = upm_conf_redis_standby(sc);
    L.max = upm_conf_redis_max_message(sc);
    L.timeout = apr_time_from_msec(upm_conf_redis_timeout_ms(sc));
    apr_pool_create(&L.pool, pchild);
    apr_pool_tag(L.pool, "upm_redis");
    apr_pool_create(&L.fp, L.pool);
    if (apr_generate_random_bytes((unsigned char *)&L.rnd, sizeof(L.rnd)) != APR_SUCCESS
        || L.rnd == 0) {
        L.rnd = (apr_uint32_t)getpid() * 2654435761u + 1;
    }
    L.lp = upm_rpoll_create(L.pool, &rv);
    if (!L.lp) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(13222)
                     "cannot create the Redis listener's wake-up pipe");
        return;
    }
    apr_threadattr_create(&ta, pchild);
    apr_threadattr_stacksize_set(ta, 256 * 1024);
    rv = apr_thread_create(&L.thread, ta, listener, NULL, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(13223)
                     "cannot start the Redis listener thread");
        L.thread = NULL;
        return;
    }
    /* A pre-cleanup: pchild destroys its sub-pools (the thread's and
     * L.pool) before running ordinary cleanups, and the thread must be
     * gone by then. */
    apr_pool_pre_cleanup_register(pchild, NULL, listener_stop);
}

int upm_redis_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                          server_rec *s)
{
    upm_srv_conf *sc = ap_get_module_config(s->module_config, &upload_progress_module);
    const char *const *pats;
    apr_array_header_t *list;
    int n, i;

    if (!sc->redis || ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (sc->redis_wait_replicas > 0 && !sc->redis_stream) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, APLOGNO(14058)
                     "UploadProgressRedisWait is ignored in pub/sub mode (a PUBLISH is "
                     "not kept by replicas): use UploadProgressRedisStream");
    }
    if (sc->redis->tls || (sc->redis_sentinel && sc->redis_sentinel->tls)) {
        const char *err = upm_redis_tls_setup(pconf, s, sc->redis_tls);
        if (err) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, APLOGNO(14051)
                         "UploadProgressRedis %s: %s", upm_redis_url_display(ptemp, sc->redis),
                         err);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    else if (sc->redis_tls) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, APLOGNO(14052)
                     "UploadProgressRedisTLS is ignored: UploadProgressRedis %s is not a "
                     "rediss:// URL", upm_redis_url_display(ptemp, sc->redis));
    }
    upm_stats_redis_link(UPM_REDIS_CONNECTING);
    pats = upm_conf_redis_patterns(sc, &n);
    if (sc->redis_stream) {
        if (sc->redis_patterns) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, APLOGNO(13224)
                         "UploadProgressRedisSubscribe is ignored in Streams mode "
                         "(UploadProgressRedisStream %s)", sc->redis_stream);
        }
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, APLOGNO(13225)
                     "Redis ingest: stream %s at %s", sc->redis_stream,
                     upm_redis_url_display(ptemp, sc->redis));
        return OK;
    }
    if (upm_patterns_first(pats, n, "user:0", 6) < 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, APLOGNO(13226)
                     "no UploadProgressRedisSubscribe pattern matches user:{id}, the "
                     "channel the publish handler publishes to: events POSTed to this "
                     "server will not come back from Redis");
    }
    list = apr_array_make(ptemp, n, sizeof(char *));
    for (i = 0; i < n; i++) {
        APR_ARRAY_PUSH(list, const char *) = pats[i];
    }
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, APLOGNO(13227)
                 "Redis ingest: pub/sub at %s, patterns %s",
                 upm_redis_url_display(ptemp, sc->redis), apr_array_pstrcat(ptemp, list, ' '));
    return OK;
}
