/* GET -> a Server-Sent Events stream of the user's messages. */
#include "upm_handlers.h"
#include "upm_auth.h"
#include "upm_bus.h"
#include "upm_config.h"
#include "upm_event.h"
#include "upm_hub.h"
#include "upm_sse_fmt.h"
#include "upm_stats.h"
#include "upm_stream.h"

#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_script.h"
#include <apr_strings.h>

APLOG_USE_MODULE(upload_progress);

#define UPM_TAKE_MAX   64

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

static void out_reset(sse_out *o, const char *reason)
{
    const char *id;
    apr_uint64_t seq;
    apr_size_t dlen, len;
    char *data = upm_stream_reset_json(o->r->pool, reason, &id, &seq, &dlen);
    char *frame = upm_sse_frame(o->r->pool, id, "reset", data, dlen, &len);

    if (!o->failed && ap_rwrite(frame, (int)len, o->r) < 0) {
        o->failed = 1;
    }
    upm_stats_add(UPM_ST_RESETS_SENT, 1);
}

static void out_raw(sse_out *o, const char *s, apr_size_t len)
{
    if (!o->failed && ap_rwrite(s, (int)len, o->r) < 0) {
        o->failed = 1;
    }
}

static int emit_frame(void *baton, upm_frame *f)
{
    sse_out *o = baton;
    out_frame(o, f);
    return o->failed;
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
    int i;

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
    if ((s = upm_stream_request_scope(r, q, ai, &spec)) != NULL) {
        return upm_json_error(r, HTTP_BAD_REQUEST, "bad_scope",
                              apr_psprintf(r->pool, "%s must be 1 to 128 of "
                                           "A-Z a-z 0-9 . _ : @ -", s), -1);
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

    if (resume && *resume) {
        const char *reason = upm_stream_resume(r->pool, &sub, 1, resume, emit_frame, &o);
        if (reason) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, APLOGNO(13041)
                          "cannot resume user %s from %s: %s", r->user, resume, reason);
            out_reset(&o, reason);
        }
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
            out_reset(&o, reason);
        }
        for (i = 0; i < n; i++) {
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
