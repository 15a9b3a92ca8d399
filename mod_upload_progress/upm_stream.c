/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_stream.h"
#include "upm_bus.h"
#include "upm_redis.h"
#include "upm_event.h"
#include "upm_stats.h"
#include "upm_handlers.h"

#include <apr_strings.h>
#include <jansson.h>
#include <stdlib.h>

#define UPM_REPLAY_BATCH 256

/* Scope names as they appear in queries, captures and messages. */
static const struct { int field; const char *name; const char *env; const char *grant; }
scopes[] = {
    { UPM_F_JOB,     "jobId",     "MATCH_JOBID",     "jobs" },
    { UPM_F_SESSION, "sessionId", "MATCH_SESSIONID", "sessions" },
    { UPM_F_PROJECT, "projectId", "MATCH_PROJECTID", "projects" },
    { UPM_F_FILE,    "fileId",    "MATCH_FILEID",    "files" },
    { UPM_F_PHOTO,   "photoId",   "MATCH_PHOTOID",   NULL },
};
#define NSCOPES (sizeof(scopes) / sizeof(scopes[0]))

const char *upm_stream_grant_kind(int field)
{
    unsigned i;
    for (i = 0; i < NSCOPES; i++) {
        if (scopes[i].field == field) {
            return scopes[i].grant;
        }
    }
    return NULL;
}

const char *upm_stream_request_scope(request_rec *r, apr_table_t *query,
                                     const upm_auth_info *ai, upm_sub_spec *spec)
{
    unsigned i;
    for (i = 0; i < NSCOPES; i++) {
        const char *v = apr_table_get(r->subprocess_env, scopes[i].env);
        if (!v || !*v) {
            v = query ? apr_table_get(query, scopes[i].name) : NULL;
        }
        if (!v) {
            continue;
        }
        if (!upm_valid_id(v)) {
            return scopes[i].name;
        }
        spec->scope[scopes[i].field] = v;
        /* A grant widens what the user may watch only for the id it names,
         * and only when the stream asks for exactly that id. */
        if (spec->via == UPM_F_OWNER && scopes[i].grant
            && upm_auth_grants(r, ai, scopes[i].field, scopes[i].grant, v)) {
            spec->via = scopes[i].field;
        }
    }
    return NULL;
}

const char *upm_stream_ungranted(const upm_dir_conf *d, const upm_sub_spec *spec)
{
    unsigned i;
    if (!upm_conf_require_grant(d) || spec->via != UPM_F_OWNER) {
        return NULL;
    }
    for (i = 0; i < NSCOPES; i++) {
        if (scopes[i].grant && spec->scope[scopes[i].field]) {
            return scopes[i].name;
        }
    }
    return NULL;
}

/* Passes m to emit when any subscriber matches it (once, through every
 * matching subscriber's throttle).  Returns what emit returned (0 when not
 * emitted). */
static int emit_matching(upm_sub *const *subs, int nsubs, const upm_msg *m,
                         apr_uint64_t epoch, upm_stream_emit_fn emit, void *baton)
{
    upm_frame *f = NULL;
    int j, pass = 0, stop = 0;
    for (j = 0; j < nsubs; j++) {
        if (!upm_sub_matches(subs[j], m)) {
            continue;
        }
        if (!f && !(f = upm_frame_make(m, epoch))) {
            break;
        }
        /* Every matching subscriber's throttle sees the frame, so their
         * states stay what live delivery would have made. */
        pass |= upm_sub_throttle_pass(subs[j], f);
    }
    if (f && pass) {
        stop = emit(baton, f);
        upm_stats_add(UPM_ST_REPLAYED, 1);
    }
    upm_frame_unref(f);
    return stop;
}

/* The replay; *gap is set (and the replay stops) at a gap marker: the
 * client missed messages no replay can give. */
static apr_uint64_t replay(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                           apr_uint64_t after, upm_stream_emit_fn emit, void *baton,
                           int *gap)
{
    apr_pool_t *bp;
    upm_msg *msgs;
    apr_uint64_t cursor = after, last = after, oldest;
    apr_uint64_t epoch = upm_bus_epoch();
    int stop = 0;

    apr_pool_create(&bp, p);
    msgs = apr_palloc(bp, sizeof(upm_msg) * UPM_REPLAY_BATCH);
    for (;;) {
        apr_pool_t *rp;
        int n, i;

        apr_pool_create(&rp, bp);
        n = upm_bus_read(rp, cursor, UPM_REPLAY_BATCH, msgs, &last, &oldest);
        for (i = 0; i < n && !stop; i++) {
            if (msgs[i].flags & UPM_MSG_GAP) {
                *gap = stop = 1;
                break;
            }
            stop = emit_matching(subs, nsubs, &msgs[i], epoch, emit, baton);
        }
        if (n) {
            cursor = msgs[n - 1].seq;
        }
        apr_pool_destroy(rp);
        if (n < UPM_REPLAY_BATCH || stop) {
            break;
        }
    }
    apr_pool_destroy(bp);
    return last;
}

apr_uint64_t upm_stream_replay(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                               apr_uint64_t after, upm_stream_emit_fn emit, void *baton)
{
    int gap = 0;
    return replay(p, subs, nsubs, after, emit, baton, &gap);
}

/* Entries read back from a Redis stream. */
typedef struct {
    upm_sub *const *subs;
    int nsubs;
    upm_stream_emit_fn emit;
    void *baton;
} xemit;

static int xemit_one(void *baton, const upm_msg *m)
{
    xemit *x = baton;
    return emit_matching(x->subs, x->nsubs, m, 0, x->emit, x->baton);
}

/* Streams mode: ids are stream ids, valid on every server sharing the
 * stream.  From this server's ring when it holds everything after the id,
 * else from the stream itself; either way the live frames up to what was
 * replayed are dropped.  *upto: the ring sequence the subscribers now skip
 * to (frames newer than it may still be skipped by stream id). */
static const char *resume_stream(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                                 const char *last_id, upm_stream_emit_fn emit,
                                 void *baton, apr_uint64_t *upto)
{
    apr_uint64_t after, oldest;
    upm_bus_xfind fs = upm_bus_find_xid(last_id, &after, upto);
    const char *reason = NULL;
    upm_xid x = { 0, 0 };
    int i, gap = 0, have_x = 0;

    if (fs == UPM_XFIND_INVALID) {
        reason = "invalid";
    }
    else if (fs == UPM_XFIND_COVERED) {
        *upto = replay(p, subs, nsubs, after, emit, baton, &gap);
        reason = gap ? "redis" : NULL;
        /* The client may be ahead of what this server has dispatched. */
        have_x = upm_xid_parse(last_id, strlen(last_id), &x) == 0;
    }
    else {
        xemit xe = { subs, nsubs, emit, baton };
        reason = upm_redis_stream_replay(p, last_id, xemit_one, &xe, &x);
        have_x = !reason;
        if (!reason) {
            /* Only the stream-id skip: ring frames newer than what was read
             * back must still come. */
            for (i = 0; i < nsubs; i++) {
                upm_sub_skip_xid(subs[i], x);
            }
            return NULL;
        }
    }
    if (reason) {
        upm_bus_state(upto, &oldest);
    }
    for (i = 0; i < nsubs; i++) {
        upm_sub_skip_upto(subs[i], *upto);
        if (have_x) {
            upm_sub_skip_xid(subs[i], x);
        }
    }
    return reason;
}

const char *upm_stream_resume_upto(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                                   const char *last_id, upm_stream_emit_fn emit,
                                   void *baton, apr_uint64_t *upto)
{
    apr_uint64_t seq = 0, oldest;
    upm_resume_status st;
    const char *reason = NULL;
    int i, gap = 0;

    if (upm_bus_mode() == UPM_BUS_MODE_STREAM) {
        return resume_stream(p, subs, nsubs, last_id, emit, baton, upto);
    }
    st = upm_bus_resume_check(last_id, &seq);
    if (st == UPM_RESUME_OK && seq < upm_bus_gap_seq()) {
        /* The Redis ingest lost messages after this id. */
        upm_bus_state(upto, &oldest);
        reason = "redis";
    }
    else if (st == UPM_RESUME_OK) {
        *upto = replay(p, subs, nsubs, seq, emit, baton, &gap);
        if (gap) {
            upm_bus_state(upto, &oldest);
            reason = "redis";
        }
    }
    else {
        upm_bus_state(upto, &oldest);
        reason = upm_resume_reason(st);
    }
    for (i = 0; i < nsubs; i++) {
        upm_sub_skip_upto(subs[i], *upto);
    }
    return reason;
}

const char *upm_stream_resume(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                              const char *last_id, upm_stream_emit_fn emit, void *baton)
{
    apr_uint64_t upto;
    return upm_stream_resume_upto(p, subs, nsubs, last_id, emit, baton, &upto);
}

/* ---- a resume in steps ----------------------------------------------- */

/* Messages one step looks at, sent or not: a step over messages that are
 * all for others must not hold a reactor either. */
#define UPM_STEP_LOOK 1024

typedef struct {
    upm_stream_emit_fn emit;
    void *baton;
    apr_size_t bytes;
} step_emit;

static int step_emit_one(void *baton, upm_frame *f)
{
    step_emit *se = baton;
    se->bytes += f->json_len;
    return se->emit(se->baton, f);
}

int upm_stream_resume_begin(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                            const char *last_id, upm_stream_emit_fn emit, void *baton,
                            upm_resume_steps *rs, const char **reason)
{
    apr_uint64_t seq = 0, upto = 0;
    upm_resume_status st;

    memset(rs, 0, sizeof(*rs));
    *reason = NULL;
    if (upm_bus_mode() == UPM_BUS_MODE_STREAM) {
        upm_bus_xfind fs = upm_bus_find_xid(last_id, &seq, &upto);
        if (fs == UPM_XFIND_INVALID) {
            *reason = "invalid";
            return -1;
        }
        if (fs == UPM_XFIND_UNCOVERED) {
            /* Older than this server's ring: read back from the stream at
             * once, as on a worker (hiredis gives no way to do it in
             * steps). */
            *reason = upm_stream_resume(p, subs, nsubs, last_id, emit, baton);
            return 0;
        }
        /* The client may be ahead of what this server has dispatched. */
        rs->have_xid = upm_xid_parse(last_id, strlen(last_id), &rs->xid) == 0;
        rs->cursor = seq;
        return 1;
    }
    st = upm_bus_resume_check(last_id, &seq);
    if (st != UPM_RESUME_OK) {
        *reason = upm_resume_reason(st);
        return -1;
    }
    if (seq < upm_bus_gap_seq()) {
        *reason = "redis";              /* the Redis ingest lost messages after it */
        return -1;
    }
    rs->cursor = seq;
    return 1;
}

int upm_stream_resume_step(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                           upm_resume_steps *rs, apr_size_t max_bytes,
                           upm_stream_emit_fn emit, void *baton, const char **reason)
{
    apr_pool_t *bp;
    upm_msg *msgs;
    apr_uint64_t last, oldest, epoch = upm_bus_epoch();
    step_emit se = { emit, baton, 0 };
    int looked = 0, stop = 0, ret = 0, i;

    *reason = NULL;
    apr_pool_create(&bp, p);
    for (;;) {
        int n;

        msgs = apr_palloc(bp, sizeof(upm_msg) * UPM_REPLAY_BATCH);
        n = upm_bus_read(bp, rs->cursor, UPM_REPLAY_BATCH, msgs, &last, &oldest);
        if (rs->cursor + 1 < oldest && rs->cursor < last) {
            /* The ring moved on while earlier steps waited for the client:
             * what it evicted cannot be sent any more. */
            *reason = "expired";
            ret = -1;
            break;
        }
        for (i = 0; i < n && !stop && se.bytes < max_bytes; i++) {
            if (msgs[i].flags & UPM_MSG_GAP) {
                *reason = "redis";      /* messages no replay can give */
                ret = -1;
                break;
            }
            stop = emit_matching(subs, nsubs, &msgs[i], epoch, step_emit_one, &se);
            rs->cursor = msgs[i].seq;
        }
        looked += i;
        if (ret) {
            break;
        }
        if (i == n && n < UPM_REPLAY_BATCH) {
            /* Caught up.  What the ring holds beyond the last message read
             * could not be read (skipped, as a replay does). */
            if (rs->cursor < last) {
                rs->cursor = last;
            }
            for (i = 0; i < nsubs; i++) {
                upm_sub_skip_upto(subs[i], rs->cursor);
                if (rs->have_xid) {
                    upm_sub_skip_xid(subs[i], rs->xid);
                }
            }
            ret = 1;
            break;
        }
        if (stop || se.bytes >= max_bytes || looked >= UPM_STEP_LOOK) {
            break;
        }
        apr_pool_clear(bp);
    }
    apr_pool_destroy(bp);
    return ret;
}

const char *upm_stream_resume_point(const char *last_id, apr_uint64_t *after)
{
    apr_uint64_t upto = 0;
    upm_resume_status st;

    if (upm_bus_mode() == UPM_BUS_MODE_STREAM) {
        upm_bus_xfind fs = upm_bus_find_xid(last_id, after, &upto);
        return fs == UPM_XFIND_COVERED ? NULL : fs == UPM_XFIND_INVALID ? "invalid"
                                                                         : "uncovered";
    }
    st = upm_bus_resume_check(last_id, after);
    if (st != UPM_RESUME_OK) {
        return upm_resume_reason(st);
    }
    return *after < upm_bus_gap_seq() ? "redis" : NULL;
}

int upm_stream_any_between(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                           apr_uint64_t after, apr_uint64_t upto)
{
    apr_pool_t *bp;
    upm_msg *msgs;
    apr_uint64_t cursor = after, last, oldest;
    int found = 0;

    apr_pool_create(&bp, p);
    while (cursor < upto && !found) {
        int n, i, j;
        msgs = apr_palloc(bp, sizeof(upm_msg) * UPM_REPLAY_BATCH);
        n = upm_bus_read(bp, cursor, UPM_REPLAY_BATCH, msgs, &last, &oldest);
        if (cursor + 1 < oldest) {
            found = -1;
            break;
        }
        for (i = 0; i < n && msgs[i].seq <= upto && !found; i++) {
            if (msgs[i].flags & UPM_MSG_GAP) {
                found = -1;
                break;
            }
            for (j = 0; j < nsubs && !found; j++) {
                found = upm_sub_matches(subs[j], &msgs[i]);
            }
        }
        if (n < UPM_REPLAY_BATCH || (n && msgs[n - 1].seq >= upto)) {
            break;
        }
        cursor = msgs[n - 1].seq;
        apr_pool_clear(bp);
    }
    apr_pool_destroy(bp);
    return found;
}

const char *upm_stream_last_id(request_rec *r, apr_table_t *query, const char *param)
{
    const char *id = apr_table_get(r->headers_in, "Last-Event-ID");
    if (!id || !*id) {
        id = query ? apr_table_get(query, param) : NULL;
    }
    return (id && *id) ? id : NULL;
}

char *upm_stream_reset_json(apr_pool_t *p, const char *reason, const char **id,
                            apr_uint64_t *seq, apr_size_t *len)
{
    json_t *j;
    char *s, *out;

    /* In Streams mode the newest stream id this server has taken. */
    *id = upm_bus_newest(p, seq);
    j = json_pack("{s:s,s:s,s:s,s:s}", "type", "reset", "id", *id, "reason", reason,
                  "timestamp", upm_iso8601(p, apr_time_now()));
    s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) {
        out = apr_psprintf(p, "{\"type\":\"reset\",\"id\":\"%s\",\"reason\":\"%s\"}",
                           *id, reason);
    }
    else {
        out = apr_pstrdup(p, s);
        free(s);
    }
    *len = strlen(out);
    return out;
}

void upm_stream_spec_copy(apr_pool_t *p, upm_sub_spec *spec)
{
    int i;
    spec->user = spec->user ? apr_pstrdup(p, spec->user) : NULL;
    for (i = 0; i < UPM_F__COUNT; i++) {
        if (spec->scope[i]) {
            spec->scope[i] = apr_pstrdup(p, spec->scope[i]);
        }
    }
}

const char *upm_stream_base_spec(request_rec *r, const upm_dir_conf *d, apr_table_t *query,
                                 const upm_auth_info *ai, upm_sub_spec *spec)
{
    memset(spec, 0, sizeof(*spec));
    spec->user = r->user;
    spec->via = UPM_F_OWNER;
    spec->throttle_step = upm_conf_throttle(d);
    spec->max_queue_bytes = (apr_size_t)upm_conf_send_queue(d);
    return upm_stream_request_scope(r, query, ai, spec);
}
