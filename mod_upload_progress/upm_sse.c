/* GET -> a Server-Sent Events stream of the user's messages. */
#include "upm_handlers.h"
#include "upm_auth.h"
#include "upm_bus.h"
#include "upm_config.h"
#include "upm_event.h"
#include "upm_hub.h"
#include "upm_redis.h"
#include "upm_sse_fmt.h"
#include "upm_stats.h"

#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_script.h"
#include <apr_strings.h>

APLOG_USE_MODULE(upload_progress);

#define UPM_TAKE_MAX   64
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

typedef struct {
    request_rec *r;
    int failed;
    apr_uint64_t delivered;
} sse_out;

static void out_flush(sse_out *o)
{
    if (!o->failed && (ap_rflush(o->r) < 0 || o->r->connection->aborted)) {
        o->failed = 1;
    }
}

static void out_frame(sse_out *o, const upm_frame *f)
{
    if (!o->failed && ap_rvputs(o->r, "id: ", f->id, "\nevent: ", f->type, "\ndata: ",
                                NULL) < 0) {
        o->failed = 1;
    }
    if (!o->failed && (ap_rwrite(f->json, (int)f->json_len, o->r) < 0
                       || ap_rputs("\n\n", o->r) < 0)) {
        o->failed = 1;
    }
    o->delivered++;
}

static void out_reset_id(sse_out *o, const char *reason, const char *id)
{
    json_t *j;
    char *data;
    apr_size_t len;
    char *frame;

    j = json_pack("{s:s,s:s,s:s,s:s}", "type", "reset", "id", id, "reason", reason,
                  "timestamp", upm_iso8601(o->r->pool, apr_time_now()));
    data = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    frame = upm_sse_frame(o->r->pool, id, "reset", data, strlen(data), &len);
    free(data);
    if (!o->failed && ap_rwrite(frame, (int)len, o->r) < 0) {
        o->failed = 1;
    }
    upm_stats_add(UPM_ST_RESETS_SENT, 1);
}

/* A reset at the start of a stream carries the newest id (what follows is
 * newer): a client that reconnects with it resumes from there instead of
 * being reset again. */
static void out_reset(sse_out *o, const char *reason)
{
    out_reset_id(o, reason, upm_bus_newest_id(o->r->pool));
}

static void out_raw(sse_out *o, const char *s, apr_size_t len)
{
    if (!o->failed && ap_rwrite(s, (int)len, o->r) < 0) {
        o->failed = 1;
    }
}

/* Sends what the ring holds for this subscriber after `after`, up to the
 * ring's end at the time; returns that end. */
static apr_uint64_t replay(sse_out *o, upm_sub *sub, apr_uint64_t after)
{
    apr_pool_t *bp;
    upm_msg *msgs;
    apr_uint64_t cursor = after, last = after, oldest;
    apr_uint64_t epoch = upm_bus_epoch();

    apr_pool_create(&bp, o->r->pool);
    msgs = apr_palloc(o->r->pool, sizeof(upm_msg) * UPM_REPLAY_BATCH);
    for (;;) {
        int n = upm_bus_read(bp, cursor, UPM_REPLAY_BATCH, msgs, &last, &oldest);
        int i;
        for (i = 0; i < n && !o->failed; i++) {
            if (msgs[i].flags & UPM_MSG_GAP) {
                /* Messages were lost here: what came before is moot. */
                out_reset_id(o, "redis", *msgs[i].ext ? msgs[i].ext
                             : upm_id_format(o->r->pool, epoch, msgs[i].seq));
            }
            else if (upm_sub_matches(sub, &msgs[i])) {
                upm_frame *f = upm_frame_make(&msgs[i], epoch);
                if (f && upm_sub_throttle_pass(sub, f)) {
                    out_frame(o, f);
                    upm_stats_add(UPM_ST_REPLAYED, 1);
                }
                upm_frame_unref(f);
            }
        }
        apr_pool_clear(bp);
        if (n < UPM_REPLAY_BATCH || o->failed) {
            break;
        }
        cursor = msgs[n - 1].seq;
    }
    apr_pool_destroy(bp);
    return last;
}

/* Streams mode: entries read back from the stream itself. */
typedef struct {
    sse_out *o;
    upm_sub *sub;
} stream_emit;

static int stream_wants(void *baton, const upm_msg *m)
{
    stream_emit *se = baton;
    return !se->o->failed && upm_sub_matches(se->sub, m);
}

static void stream_out(void *baton, const upm_msg *m)
{
    stream_emit *se = baton;
    upm_frame *f = upm_frame_make(m, 0);
    if (f && upm_sub_throttle_pass(se->sub, f)) {
        out_frame(se->o, f);
        upm_stats_add(UPM_ST_REPLAYED, 1);
    }
    upm_frame_unref(f);
}

/* Streams mode resume: ids are stream ids, valid on every node sharing the
 * stream.  From this node's ring when it holds everything after the id,
 * else from the stream; live frames up to what was replayed are dropped. */
static void stream_resume(sse_out *o, upm_sub *sub, const char *resume)
{
    apr_uint64_t after, last;
    upm_xid x;
    upm_bus_xfind st = upm_bus_find_xid(resume, &after, &last);

    if (st == UPM_XFIND_INVALID) {
        out_reset(o, "invalid");
        upm_bus_state(&last, &after);
        upm_sub_skip_upto(sub, last);
        return;
    }
    upm_xid_parse(resume, strlen(resume), &x);
    if (st == UPM_XFIND_COVERED) {
        upm_sub_skip_upto(sub, replay(o, sub, after));
        /* The client may be ahead of this node's ring (it read on a node
         * that took the entries a moment earlier). */
        upm_sub_skip_xid(sub, x);
    }
    else {
        stream_emit se = { o, sub };
        upm_xid upto;
        const char *reason = upm_redis_stream_replay(o->r, resume, stream_wants,
                                                     stream_out, &se, &upto);
        if (reason) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, o->r, APLOGNO(13207)
                          "cannot resume user %s from %s: %s", o->r->user, resume, reason);
            out_reset(o, reason);
            upm_bus_state(&last, &after);
            upm_sub_skip_upto(sub, last);
        }
        else {
            upm_sub_skip_xid(sub, upto);
        }
    }
}

static const char *scope_value(request_rec *r, apr_table_t *q, const char *name,
                               const char *env)
{
    const char *v = apr_table_get(r->subprocess_env, env);
    return (v && *v) ? v : apr_table_get(q, name);
}

int upm_sse_handler(request_rec *r)
{
    upm_dir_conf *d;
    upm_auth_info *ai;
    upm_sub_spec spec;
    upm_sub *sub;
    apr_table_t *q = NULL;
    const char *resume, *s;
    sse_out o;
    apr_size_t len;
    apr_time_t next_beat, expires = 0;
    apr_interval_time_t beat;
    upm_frame *frames[UPM_TAKE_MAX];
    unsigned i;

    if (!r->handler || strcmp(r->handler, "upload-progress-sse") != 0) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (!r->user || !*r->user) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, APLOGNO(13040)
                      "%s streams need an authenticated user: configure AuthType JWT "
                      "and Require valid-user", r->uri);
        return HTTP_FORBIDDEN;
    }
    d = ap_get_module_config(r->per_dir_config, &upload_progress_module);
    ai = upm_auth_get(r);
    ap_args_to_table(r, &q);

    memset(&spec, 0, sizeof(spec));
    spec.user = r->user;
    spec.via = UPM_F_OWNER;
    spec.throttle_step = upm_conf_throttle(d);
    spec.max_queue_bytes = (apr_size_t)upm_conf_send_queue(d);
    for (i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++) {
        const char *v = scope_value(r, q, scopes[i].name, scopes[i].env);
        if (!v) {
            continue;
        }
        if (!upm_valid_id(v)) {
            return upm_json_error(r, HTTP_BAD_REQUEST, "bad_scope",
                                  apr_psprintf(r->pool, "%s must be 1 to 128 of "
                                               "A-Z a-z 0-9 . _ : @ -", scopes[i].name), -1);
        }
        spec.scope[scopes[i].field] = v;
        /* A grant widens what the user may watch only for the id it names,
         * and only when the stream asks for exactly that id. */
        if (spec.via == UPM_F_OWNER && scopes[i].grant
            && upm_auth_grants(r, ai, scopes[i].grant, v)) {
            spec.via = scopes[i].field;
        }
    }
    resume = apr_table_get(r->headers_in, "Last-Event-ID");
    if (!resume || !*resume) {
        resume = apr_table_get(q, "lastEventId");
    }

    ap_set_content_type(r, "text/event-stream; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    apr_table_setn(r->headers_out, "X-Accel-Buffering", "no");
    /* Compression would hold messages back until a buffer fills. */
    apr_table_setn(r->subprocess_env, "no-gzip", "1");
    apr_table_unset(r->headers_in, "Accept-Encoding");

    sub = upm_hub_add(r->pool, &spec);
    upm_stats_add(UPM_ST_SSE_OPENED, 1);
    memset(&o, 0, sizeof(o));
    o.r = r;
    s = upm_sse_retry(r->pool, upm_conf_retry_ms(d), &len);
    out_raw(&o, s, len);

    if (resume && *resume && upm_bus_mode() == UPM_BUS_MODE_STREAM) {
        stream_resume(&o, sub, resume);
    }
    else if (resume && *resume) {
        apr_uint64_t seq = 0, upto;
        upm_resume_status st = upm_bus_resume_check(resume, &seq);
        if (st == UPM_RESUME_OK) {
            upto = replay(&o, sub, seq);
        }
        else {
            apr_uint64_t oldest;
            upm_bus_state(&upto, &oldest);
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, APLOGNO(13041)
                          "cannot resume user %s from %s: %s", r->user, resume,
                          upm_resume_reason(st));
            out_reset(&o, upm_resume_reason(st));
        }
        upm_sub_skip_upto(sub, upto);
    }
    out_flush(&o);

    beat = apr_time_from_sec(upm_conf_heartbeat(d));
    next_beat = beat ? apr_time_now() + beat : 0;
    if (ai && ai->exp) {
        expires = apr_time_from_sec(ai->exp);
    }
    while (!o.failed) {
        apr_time_t until = apr_time_now() + apr_time_from_sec(3600), now;
        upm_sub_state state;
        const char *reason = NULL;
        int n;

        if (next_beat && next_beat < until) {
            until = next_beat;
        }
        if (expires && expires < until) {
            until = expires;
        }
        n = upm_sub_take(sub, until, frames, UPM_TAKE_MAX, &state, &reason);
        if (state == UPM_SUB_RESET) {
            const char *rid = upm_sub_reset_id(sub);
            out_reset_id(&o, reason, rid ? rid : upm_bus_newest_id(r->pool));
        }
        for (i = 0; i < (unsigned)n; i++) {
            out_frame(&o, frames[i]);
            upm_frame_unref(frames[i]);
        }
        now = apr_time_now();
        if (state == UPM_SUB_CLOSING) {
            /* Spread the reconnects of a stopping child over a few seconds. */
            s = upm_sse_retry(r->pool, upm_conf_retry_ms(d)
                              + (long)(apr_time_now() % 2000), &len);
            out_raw(&o, s, len);
            out_flush(&o);
            r->connection->keepalive = AP_CONN_CLOSE;
            break;
        }
        if (expires && now >= expires) {
            s = upm_sse_frame(r->pool, NULL, "token_expired",
                              "{\"type\":\"token_expired\"}", 24, &len);
            out_raw(&o, s, len);
            out_flush(&o);
            r->connection->keepalive = AP_CONN_CLOSE;
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13042)
                          "token of user %s expired: stream closed", r->user);
            break;
        }
        if (next_beat && now >= next_beat) {
            out_raw(&o, ": heartbeat\n\n", 13);
            next_beat = now + beat;
        }
        out_flush(&o);
    }
    upm_hub_remove(sub);
    upm_stats_add(UPM_ST_DELIVERED, o.delivered);
    upm_stats_add(UPM_ST_SSE_CLOSED, 1);
    return OK;
}
