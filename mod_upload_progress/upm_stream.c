#include "upm_stream.h"
#include "upm_auth.h"
#include "upm_bus.h"
#include "upm_event.h"
#include "upm_handlers.h"
#include "upm_stats.h"

#include "http_log.h"
#include <apr_strings.h>
#include <jansson.h>
#include <stdlib.h>

APLOG_USE_MODULE(upload_progress);

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

static const char *scope_value(request_rec *r, apr_table_t *q, const char *name,
                               const char *env)
{
    const char *v = apr_table_get(r->subprocess_env, env);
    return (v && *v) ? v : apr_table_get(q, name);
}

const char *upm_stream_spec(request_rec *r, apr_table_t *q, upm_sub_spec *spec)
{
    upm_auth_info *ai = upm_auth_get(r);
    unsigned i;

    memset(spec, 0, sizeof(*spec));
    spec->user = r->user;
    spec->via = UPM_F_OWNER;
    for (i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++) {
        const char *v = scope_value(r, q, scopes[i].name, scopes[i].env);
        if (!v) {
            continue;
        }
        if (!upm_valid_id(v)) {
            return apr_psprintf(r->pool, "%s must be 1 to 128 of A-Z a-z 0-9 . _ : @ -",
                                scopes[i].name);
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

const char *upm_stream_last_id(request_rec *r, apr_table_t *q, const char *param)
{
    const char *id = apr_table_get(r->headers_in, "Last-Event-ID");
    if (!id || !*id) {
        id = q ? apr_table_get(q, param) : NULL;
    }
    return (id && *id) ? id : NULL;
}

apr_uint64_t upm_stream_replay(apr_pool_t *p, upm_sub *sub, apr_uint64_t after,
                               int max, upm_stream_emit_fn emit,
                               upm_stream_stop_fn stop, void *baton, int *more)
{
    apr_pool_t *bp;
    upm_msg *msgs;
    apr_uint64_t cursor = after, last = after, oldest;
    apr_uint64_t epoch = upm_bus_epoch();
    int sent = 0, stopped = 0;

    if (more) {
        *more = 0;
    }
    apr_pool_create(&bp, p);
    msgs = apr_palloc(p, sizeof(upm_msg) * UPM_REPLAY_BATCH);
    while (!stopped) {
        int n = upm_bus_read(bp, cursor, UPM_REPLAY_BATCH, msgs, &last, &oldest);
        int i;
        for (i = 0; i < n && !stopped; i++) {
            if (upm_sub_matches(sub, &msgs[i])) {
                upm_frame *f;
                if ((max > 0 && sent == max) || (stop && stop(baton))) {
                    /* Covered up to the frame before: the client resumes
                     * from there. */
                    if (more && max > 0 && sent == max) {
                        *more = 1;
                    }
                    stopped = 1;
                    break;
                }
                f = upm_frame_make(&msgs[i], epoch);
                if (f && upm_sub_throttle_pass(sub, f)) {
                    emit(baton, f);
                    sent++;
                    upm_stats_add(UPM_ST_REPLAYED, 1);
                }
                upm_frame_unref(f);
            }
            cursor = msgs[i].seq;
        }
        apr_pool_clear(bp);
        if (n < UPM_REPLAY_BATCH) {
            break;
        }
    }
    apr_pool_destroy(bp);
    /* Read to the end: everything up to the ring's last id was seen (what
     * upm_bus_read skipped was evicted or not for this subscriber). */
    return stopped ? cursor : (last > cursor ? last : cursor);
}

char *upm_stream_reset(apr_pool_t *p, const char *reason, const char **id,
                       apr_size_t *len)
{
    apr_uint64_t last, oldest;
    json_t *j;
    char *data, *out;

    upm_bus_state(&last, &oldest);
    *id = upm_id_format(p, upm_bus_epoch(), last);
    j = json_pack("{s:s,s:s,s:s,s:s}", "type", "reset", "id", *id, "reason", reason,
                  "timestamp", upm_iso8601(p, apr_time_now()));
    data = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    out = apr_pstrdup(p, data ? data : "{\"type\":\"reset\"}");
    free(data);
    *len = strlen(out);
    upm_stats_add(UPM_ST_RESETS_SENT, 1);
    return out;
}
