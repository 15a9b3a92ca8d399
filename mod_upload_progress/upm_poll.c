/* SPDX-License-Identifier: Apache-2.0 */
/* The polling fallback: GET ?since=<id> -> {"events":[...],"lastEventId":..,
 * "more":..} with the user's messages after that id, or a reset when they
 * are no longer held; ?wait=N (at most 30 s) holds the request until a
 * message arrives (long-poll).  Same authentication, isolation, scopes
 * and throttling as the SSE stream. */
#include "upm_handlers.h"
#include "upm_auth.h"
#include "upm_bus.h"
#include "upm_config.h"
#include "upm_hub.h"
#include "upm_h2.h"
#include "upm_stats.h"
#include "upm_stream.h"
#include "upm_refusal.h"

#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_script.h"
#include <apr_strings.h>

APLOG_USE_MODULE(upload_progress);

#define UPM_POLL_MAX_EVENTS 256
#define UPM_POLL_MAX_WAIT   30

typedef struct {
    apr_pool_t *p;
    apr_array_header_t *parts;  /* message JSON texts, comma-joined later */
    int n;
    int full;                   /* UPM_POLL_MAX_EVENTS taken: the rest next time */
    apr_uint64_t last_seq;      /* of the last message taken */
    int has_xid;                /* Streams mode: the newest stream id taken */
    upm_xid last_xid;
} poll_out;

static void add(poll_out *o, const char *json, apr_size_t len)
{
    if (o->n++) {
        APR_ARRAY_PUSH(o->parts, const char *) = ",";
    }
    APR_ARRAY_PUSH(o->parts, const char *) = apr_pstrmemdup(o->p, json, len);
}

/* A replayed message; stops the replay once the answer is full. */
static int collect(void *baton, upm_frame *f)
{
    poll_out *o = baton;
    add(o, f->json, f->json_len);
    o->last_seq = f->seq;
    if (f->has_xid && (!o->has_xid || upm_xid_cmp(f->xid, o->last_xid) > 0)) {
        o->has_xid = 1;
        o->last_xid = f->xid;
    }
    upm_stats_delivered(1, -1);
    if (o->n == UPM_POLL_MAX_EVENTS) {
        o->full = 1;
    }
    return o->full;
}

static void add_reset(poll_out *o, const char *reason, const char **id)
{
    apr_size_t len;
    apr_uint64_t seq;
    char *json = upm_stream_reset_json(o->p, reason, id, &seq, &len);
    add(o, json, len);
    upm_stats_add(UPM_ST_RESETS_SENT, 1);
}

/* wait=N: seconds, clamped to 0..UPM_POLL_MAX_WAIT; -1 when not a number. */
static int parse_wait(const char *s)
{
    char *end;
    long v;
    if (!s || !*s) {
        return 0;
    }
    v = strtol(s, &end, 10);
    if (*end || end == s) {
        return -1;
    }
    return v < 0 ? 0 : v > UPM_POLL_MAX_WAIT ? UPM_POLL_MAX_WAIT : (int)v;
}

int upm_poll_handler(request_rec *r)
{
    upm_dir_conf *d;
    upm_auth_info *ai;
    upm_sub_spec spec;
    upm_sub *sub;
    apr_table_t *q = NULL;
    const char *since, *bad, *last_id = NULL;
    apr_uint64_t upto, oldest, cursor;
    poll_out o;
    int wait, reset = 0;

    if (!r->handler || strcmp(r->handler, "upload-progress-poll") != 0) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (!r->user || !*r->user) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, APLOGNO(13330)
                      "%s polling needs an authenticated user: configure AuthType JWT "
                      "and Require valid-user", r->uri);
        upm_refusal_json(r, "forbidden", "no_user", "no authenticated user");
        return HTTP_FORBIDDEN;
    }
    d = ap_get_module_config(r->per_dir_config, &upload_progress_module);
    ai = upm_auth_get(r);
    ap_args_to_table(r, &q);
    memset(&spec, 0, sizeof(spec));
    spec.user = r->user;
    spec.via = UPM_F_OWNER;
    if ((bad = upm_stream_request_scope(r, q, ai, &spec)) != NULL) {
        return upm_json_error(r, HTTP_BAD_REQUEST, "bad_scope",
                              apr_psprintf(r->pool, "%s must be 1 to 128 of "
                                           "A-Z a-z 0-9 . _ : @ -", bad), -1);
    }
    if ((bad = upm_stream_ungranted(d, &spec)) != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13702)
                      "%s: refused a poll for %s (%s): the token does not grant it "
                      "(UploadProgressRequireGrant)", r->uri, r->user, bad);
        return upm_json_error(r, HTTP_FORBIDDEN, "forbidden",
                              apr_psprintf(r->pool, "the token does not grant this %s", bad),
                              -1);
    }
    wait = parse_wait(apr_table_get(q, "wait"));
    if (wait < 0) {
        return upm_json_error(r, HTTP_BAD_REQUEST, "bad_wait",
                              "wait must be a number of seconds (at most 30)", -1);
    }
    since = upm_stream_last_id(r, q, "since");
    spec.throttle_step = upm_conf_throttle(d);
    spec.max_queue_bytes = (apr_size_t)upm_conf_send_queue(d);
    upm_stats_add(UPM_ST_POLL_REQUESTS, 1);
    /* A long poll over HTTP/2 keeps its h2 worker as an SSE stream does. */
    if (wait > 0 && r->connection->master && !upm_h2_hold(r, d, "long poll")) {
        return OK;
    }

    memset(&o, 0, sizeof(o));
    o.p = r->pool;
    o.parts = apr_array_make(r->pool, 16, sizeof(const char *));

    /* Registered before the ring is read, so that a message published
     * between the read and the wait is queued rather than missed. */
    sub = upm_hub_add(r->pool, &spec);
    if (since) {
        const char *reason = upm_stream_resume_upto(r->pool, &sub, 1, since, collect, &o,
                                                    &upto);
        if (reason) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, APLOGNO(13331)
                          "cannot resume poll of user %s from %s: %s", r->user, since,
                          reason);
            add_reset(&o, reason, &last_id);
            reset = 1;
        }
    }
    else {
        /* No id yet: start from now, as a new SSE stream does. */
        upm_bus_state(&upto, &oldest);
        upm_sub_skip_upto(sub, upto);
    }
    /* The replay covered the ring up to its end, or, when the answer
     * filled up, up to the last message in it. */
    cursor = o.full ? o.last_seq : upto;

    if (!o.n && wait > 0) {
        apr_time_t until = apr_time_now() + apr_time_from_sec(wait);
        upm_frame *frames[64];
        if (ai && ai->exp && apr_time_from_sec(ai->exp) < until) {
            until = apr_time_from_sec(ai->exp);
        }
        upm_stats_conn(UPM_TR_POLL, UPM_MODE_WORKER, 1);
        while (o.n == 0 && !reset && apr_time_now() < until) {
            upm_sub_state state;
            const char *reason = NULL;
            apr_time_t step = until;
            int n, i;
            if (r->connection->master && step > apr_time_now() + UPM_H2_ABORT_CHECK) {
                step = apr_time_now() + UPM_H2_ABORT_CHECK;     /* see upm_sse.c */
            }
            n = upm_sub_take(sub, step, frames, 64, APR_SIZE_MAX, &state, &reason);
            if (state == UPM_SUB_RESET) {
                /* Messages were lost on the way: the client re-reads. */
                add_reset(&o, reason, &last_id);
                reset = 1;
            }
            for (i = 0; i < n; i++) {
                apr_time_t now = apr_time_now();
                if (!reset) {
                    add(&o, frames[i]->json, frames[i]->json_len);
                    cursor = frames[i]->seq;
                    if (frames[i]->has_xid) {
                        o.has_xid = 1;
                        o.last_xid = frames[i]->xid;
                    }
                    upm_stats_delivered(1, now - frames[i]->published);
                }
                upm_frame_unref(frames[i]);
            }
            if (state == UPM_SUB_CLOSING || state == UPM_SUB_DISCONNECT ||
                r->connection->aborted) {
                break;
            }
        }
        upm_stats_conn(UPM_TR_POLL, UPM_MODE_WORKER, -1);
    }
    upm_hub_remove(sub);

    if (!last_id) {
        /* In Streams mode the ids are stream ids; messages read back from
         * the stream itself may lie past this server's ring. */
        upm_xid x;
        last_id = upm_bus_id_of(r->pool, cursor);
        /* A full answer ends at its last message, the rest comes next time. */
        if (o.has_xid && (o.full || upm_xid_parse(last_id, strlen(last_id), &x) != 0
                          || upm_xid_cmp(o.last_xid, x) > 0)) {
            char buf[UPM_XID_LEN];
            upm_xid_format(buf, o.last_xid);
            last_id = apr_pstrdup(r->pool, buf);
        }
    }
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_rputs("{\"events\":[", r);
    if (o.n) {
        ap_rputs(apr_array_pstrcat(r->pool, o.parts, 0), r);
    }
    ap_rvputs(r, "],\"lastEventId\":\"", last_id, "\",\"more\":",
              o.full ? "true" : "false", "}\n", NULL);
    return OK;
}
