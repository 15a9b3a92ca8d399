#include "upm_stream.h"
#include "upm_bus.h"
#include "upm_event.h"
#include "upm_stats.h"
#include "upm_handlers.h"

#include <apr_strings.h>
#include <jansson.h>
#include <stdlib.h>

#define UPM_REPLAY_BATCH 256
/* Messages one replay step looks at, sent or not: a step over messages
 * that are all for others must not hold the reactor either. */
#define UPM_REPLAY_STEP_LOOK 1024

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
            && upm_auth_grants(r, ai, scopes[i].grant, v)) {
            spec->via = scopes[i].field;
        }
    }
    return NULL;
}

/* Emits one ring message when it is for any of the subscribers (through
 * their throttles).  Returns the bytes of JSON emitted; *stop is set when
 * emit asks to stop. */
static apr_size_t replay_one(upm_sub *const *subs, int nsubs, const upm_msg *m,
                             apr_uint64_t epoch, upm_stream_emit_fn emit, void *baton,
                             int *stop)
{
    upm_frame *f = NULL;
    apr_size_t bytes = 0;
    int j, pass = 0;

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
        *stop = emit(baton, f);
        bytes = f->json_len;
        upm_stats_add(UPM_ST_REPLAYED, 1);
    }
    upm_frame_unref(f);
    return bytes;
}

apr_uint64_t upm_stream_replay(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                               apr_uint64_t after, upm_stream_emit_fn emit, void *baton)
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
            replay_one(subs, nsubs, &msgs[i], epoch, emit, baton, &stop);
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

int upm_stream_replay_step(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                           apr_uint64_t *cursor, apr_size_t max_bytes,
                           upm_stream_emit_fn emit, void *baton)
{
    apr_pool_t *bp;
    upm_msg *msgs;
    apr_uint64_t last, oldest, epoch = upm_bus_epoch();
    apr_size_t bytes = 0;
    int looked = 0, stop = 0, ret = 0;

    apr_pool_create(&bp, p);
    msgs = apr_palloc(bp, sizeof(upm_msg) * UPM_REPLAY_BATCH);
    while (!ret) {
        int n, i;

        n = upm_bus_read(bp, *cursor, UPM_REPLAY_BATCH, msgs, &last, &oldest);
        if (*cursor + 1 < oldest && *cursor < last) {
            /* The ring moved on while earlier steps waited for the client:
             * what it evicted cannot be sent any more. */
            ret = -1;
            break;
        }
        for (i = 0; i < n && !stop && bytes < max_bytes; i++) {
            bytes += replay_one(subs, nsubs, &msgs[i], epoch, emit, baton, &stop);
            *cursor = msgs[i].seq;
        }
        looked += i;
        if (i == n && n < UPM_REPLAY_BATCH) {
            /* Caught up.  What the ring holds beyond the last message read
             * could not be read (skipped, as a replay does). */
            if (*cursor < last) {
                *cursor = last;
            }
            ret = 1;
            break;
        }
        if (stop || bytes >= max_bytes || looked >= UPM_REPLAY_STEP_LOOK) {
            break;
        }
        apr_pool_clear(bp);
        msgs = apr_palloc(bp, sizeof(upm_msg) * UPM_REPLAY_BATCH);
    }
    apr_pool_destroy(bp);
    return ret;
}

const char *upm_stream_resume(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                              const char *last_id, upm_stream_emit_fn emit, void *baton)
{
    apr_uint64_t seq = 0, upto, oldest;
    upm_resume_status st = upm_bus_resume_check(last_id, &seq);
    const char *reason = NULL;
    int i;

    if (st == UPM_RESUME_OK) {
        upto = upm_stream_replay(p, subs, nsubs, seq, emit, baton);
    }
    else {
        upm_bus_state(&upto, &oldest);
        reason = upm_resume_reason(st);
    }
    for (i = 0; i < nsubs; i++) {
        upm_sub_skip_upto(subs[i], upto);
    }
    return reason;
}

char *upm_stream_reset_json(apr_pool_t *p, const char *reason, const char **id,
                            apr_uint64_t *seq, apr_size_t *len)
{
    apr_uint64_t last, oldest;
    json_t *j;
    char *s, *out;

    upm_bus_state(&last, &oldest);
    *seq = last;
    *id = upm_id_format(p, upm_bus_epoch(), last);
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
