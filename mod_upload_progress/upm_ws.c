/* GET with Upgrade: websocket -> an RFC 6455 connection carrying the
 * user's messages and the subscribe protocol.
 *
 * Worker-held like the SSE stream: after the 101 this thread owns the
 * connection and polls its socket together with the pollset's wake-up,
 * which the hub triggers when frames are queued.  All writes go through
 * ws_write()/ws_flush() and the connection's output filters (so mod_ssl
 * keeps working), all reads through its input filters, non-blocking. */
#include "upm_handlers.h"
#include "upm_auth.h"
#include "upm_bus.h"
#include "upm_config.h"
#include "upm_hub.h"
#include "upm_stats.h"
#include "upm_stream.h"
#include "upm_ws_frame.h"
#include "upm_ws_proto.h"

#include "http_config.h"
#include "http_connection.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"
#include "util_script.h"
#include <apr_poll.h>
#include <apr_strings.h>

APLOG_USE_MODULE(upload_progress);

#define WS_TAKE_MAX      64
#define WS_READ_BYTES    16384
#define WS_READS_PER_TURN 16
#define WS_CLOSE_WAIT    apr_time_from_sec(2)

typedef struct ws_conn {
    request_rec *r;
    conn_rec *c;
    apr_pool_t *tmp;                /* cleared after every turn of the loop */
    apr_bucket_brigade *ibb, *obb;
    apr_pollset_t *ps;
    upm_ws_parser parser;
    upm_wsp_state proto;
    upm_sub_spec base;              /* user, URL scope, route, limits, wake-up */
    upm_auth_info *ai;
    /* The hub subscribers: one owner-wide while the client never
     * subscribed (narrowed = 0), else one per entry of proto.subs. */
    upm_sub *subs[UPM_WSP_MAX_SUBS];
    apr_pool_t *sub_pools[UPM_WSP_MAX_SUBS];
    int nsubs;
    int narrowed;
    const char *client_id;
    int failed;                     /* the connection is gone */
    int done;                       /* the close handshake is over */
    int close_sent;
    int close_code;                 /* what we sent, for the log */
    apr_time_t ping_unanswered;     /* when the oldest unanswered ping went out */
    apr_uint64_t delivered;
    int more_input;                 /* input left unread at the end of a turn */
    int counted;                    /* holds a place in the per-user count */
} ws_conn;

/* ---- output: the one place that writes to the client ----------------- */

static void ws_write(ws_conn *ws, int opcode, const void *data, apr_size_t len)
{
    unsigned char hdr[10];
    apr_size_t hl;
    if (ws->failed) {
        return;
    }
    hl = upm_ws_frame_header(hdr, opcode, len);
    /* apr_brigade_write copies: frames may be unreferenced right after. */
    if (apr_brigade_write(ws->obb, NULL, NULL, (const char *)hdr, hl) != APR_SUCCESS
        || (len && apr_brigade_write(ws->obb, NULL, NULL, data, len) != APR_SUCCESS)) {
        ws->failed = 1;
    }
}

static void ws_flush(ws_conn *ws)
{
    apr_status_t rv;
    if (ws->failed) {
        apr_brigade_cleanup(ws->obb);
        return;
    }
    if (APR_BRIGADE_EMPTY(ws->obb)) {
        return;
    }
    APR_BRIGADE_INSERT_TAIL(ws->obb, apr_bucket_flush_create(ws->c->bucket_alloc));
    rv = ap_pass_brigade(ws->c->output_filters, ws->obb);
    apr_brigade_cleanup(ws->obb);
    if (rv != APR_SUCCESS || ws->c->aborted) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, ws->r, APLOGNO(13100)
                      "WebSocket %s: write failed", ws->client_id);
        ws->failed = 1;
    }
}

static void ws_text(ws_conn *ws, const char *json, apr_size_t len)
{
    ws_write(ws, UPM_WS_OP_TEXT, json, len);
}

static void ws_close(ws_conn *ws, int code, const char *reason)
{
    apr_size_t len;
    unsigned char *f;
    if (ws->close_sent) {
        return;
    }
    f = upm_ws_close_frame(ws->tmp, code, reason, &len);
    /* the frame is built whole; send it raw */
    if (!ws->failed && apr_brigade_write(ws->obb, NULL, NULL, (const char *)f, len)
                       != APR_SUCCESS) {
        ws->failed = 1;
    }
    ws->close_sent = 1;
    ws->close_code = code;
    ws_flush(ws);
}

/* Sends a reset and returns the sequence its id names. */
static apr_uint64_t ws_reset(ws_conn *ws, const char *reason)
{
    const char *id;
    apr_uint64_t seq;
    apr_size_t len;
    char *json = upm_stream_reset_json(ws->tmp, reason, &id, &seq, &len);
    int i;

    ws_text(ws, json, len);
    /* The client re-reads its state now: whatever the ring held up to the
     * reset's id is part of that, and is not sent again. */
    for (i = 0; i < ws->nsubs; i++) {
        upm_sub_skip_upto(ws->subs[i], seq);
    }
    upm_stats_add(UPM_ST_RESETS_SENT, 1);
    return seq;
}

static int emit_frame(void *baton, upm_frame *f)
{
    ws_conn *ws = baton;
    ws_text(ws, f->json, f->json_len);
    ws->delivered++;
    /* Replayed: its age is how long the client was away, not latency. */
    upm_stats_delivered(1, -1);
    /* a long replay must not pile up in memory */
    if (!ws->failed && ws->obb && !APR_BRIGADE_EMPTY(ws->obb)) {
        apr_off_t n = 0;
        apr_brigade_length(ws->obb, 0, &n);
        if (n > 65536) {
            ws_flush(ws);
        }
    }
    return ws->failed;
}

/* ---- subscribers ----------------------------------------------------- */

static void ws_notify(void *baton)
{
    apr_pollset_wakeup(baton);
}

static upm_sub *sub_open(ws_conn *ws, int field, const char *id, apr_pool_t **pool)
{
    upm_sub_spec spec = ws->base;
    char kind_id[UPM_WSP_ID_MAX + 1];

    apr_pool_create(pool, ws->r->pool);
    if (field >= 0) {
        const char *grant = upm_stream_grant_kind(field);
        apr_cpystrn(kind_id, id, sizeof(kind_id));
        spec.scope[field] = apr_pstrdup(*pool, kind_id);
        /* A token grant for exactly this id routes the subscriber through
         * it, as an SSE stream narrowed to it would be; otherwise it stays
         * on the user's own messages (narrowing never widens). */
        if (spec.via == UPM_F_OWNER && grant
            && upm_auth_grants(ws->r, ws->ai, grant, spec.scope[field])) {
            spec.via = field;
        }
    }
    return upm_hub_add(*pool, &spec);
}

static void sub_close(ws_conn *ws, int i)
{
    /* destroying the pool runs upm_hub_remove */
    apr_pool_destroy(ws->sub_pools[i]);
    ws->subs[i] = NULL;
    ws->sub_pools[i] = NULL;
}

/* Sends what the subscribers hold; returns how many frames were taken. */
static int deliver(ws_conn *ws)
{
    upm_frame *frames[WS_TAKE_MAX];
    upm_sub_state state;
    const char *reason = NULL;
    int n, i;

    if (!ws->nsubs || ws->close_sent) {
        return 0;
    }
    n = upm_sub_take_merged(ws->subs, ws->nsubs, frames, WS_TAKE_MAX, &state, &reason);
    if (state == UPM_SUB_RESET) {
        apr_uint64_t seq = ws_reset(ws, reason);
        for (i = 0; i < n; i++) {
            if (frames[i]->seq <= seq) {
                upm_frame_unref(frames[i]);
                frames[i] = NULL;
            }
        }
    }
    for (i = 0; i < n; i++) {
        if (frames[i]) {
            ws_text(ws, frames[i]->json, frames[i]->json_len);
            ws->delivered++;
            upm_stats_delivered(1, apr_time_now() - frames[i]->published);
            upm_frame_unref(frames[i]);
        }
    }
    if (state == UPM_SUB_CLOSING) {
        ws_close(ws, UPM_WS_CLOSE_GOING_AWAY, "server restarting");
    }
    return n;
}

/* ---- the client's messages ------------------------------------------- */

static void on_text(ws_conn *ws, const unsigned char *data, apr_size_t len)
{
    upm_wsp_result res;
    apr_size_t rlen;
    char *reply;

    upm_wsp_handle(&ws->proto, ws->tmp, (const char *)data, len, apr_time_now(), &res);
    switch (res.action) {
    case UPM_WSP_SUBSCRIBED:
        if (res.existed) {
            break;
        }
        if (!ws->narrowed) {
            /* From everything to this subscription: what the owner-wide
             * subscriber already holds was published before the request
             * and goes out first. */
            upm_sub *sp = sub_open(ws, res.field, res.id, &ws->sub_pools[1]);
            ws->subs[1] = sp;
            ws->nsubs = 2;
            deliver(ws);
            sub_close(ws, 0);
            ws->subs[0] = sp;
            ws->sub_pools[0] = ws->sub_pools[1];
            ws->subs[1] = NULL;
            ws->nsubs = 1;
            ws->narrowed = 1;
        }
        else {
            ws->subs[res.index] = sub_open(ws, res.field, res.id, &ws->sub_pools[res.index]);
            ws->nsubs = ws->proto.nsubs;
        }
        break;
    case UPM_WSP_UNSUBSCRIBED: {
        int last = ws->nsubs - 1;
        sub_close(ws, res.index);
        if (res.index != last) {
            ws->subs[res.index] = ws->subs[last];
            ws->sub_pools[res.index] = ws->sub_pools[last];
            ws->subs[last] = NULL;
            ws->sub_pools[last] = NULL;
        }
        ws->nsubs = ws->proto.nsubs;
        break;
    }
    case UPM_WSP_RESUME: {
        const char *reason;
        /* Frames queued so far are older than the replay's end or
         * duplicates of it: the resume's skip drops them. */
        reason = upm_stream_resume(ws->tmp, ws->subs, ws->nsubs, res.last_event_id,
                                   emit_frame, ws);
        if (reason) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, ws->r, APLOGNO(13101)
                          "WebSocket %s: cannot resume user %s from %s: %s",
                          ws->client_id, ws->r->user, res.last_event_id, reason);
            ws_reset(ws, reason);
        }
        return;
    }
    case UPM_WSP_ERROR:
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, ws->r, APLOGNO(13102)
                      "WebSocket %s: refused a client message: %s", ws->client_id,
                      res.code);
        break;
    default:
        break;
    }
    reply = upm_wsp_reply(ws->tmp, &res, &rlen);
    if (reply) {
        ws_text(ws, reply, rlen);
    }
}

static void on_event(ws_conn *ws, const upm_ws_event *ev)
{
    switch (ev->kind) {
    case UPM_WS_EV_TEXT:
        if (!ws->close_sent) {
            on_text(ws, ev->data, ev->len);
        }
        break;
    case UPM_WS_EV_PING:
        if (!ws->close_sent) {
            ws_write(ws, UPM_WS_OP_PONG, ev->data, ev->len);
        }
        break;
    case UPM_WS_EV_PONG:
        ws->ping_unanswered = 0;
        break;
    case UPM_WS_EV_CLOSE:
        if (!ws->close_sent) {
            char reason[UPM_WS_CONTROL_MAX + 1];
            memcpy(reason, ev->data, ev->len);
            reason[ev->len] = '\0';
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, ws->r, APLOGNO(13103)
                          "WebSocket %s: client closed with %d", ws->client_id, ev->code);
            /* Echo the code; the TCP close follows when the handler returns. */
            ws_close(ws, ev->code, NULL);
        }
        ws->done = 1;
        break;
    case UPM_WS_EV_FAIL:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, ws->r, APLOGNO(13104)
                      "WebSocket %s of user %s: %s; closing with %d", ws->client_id,
                      ws->r->user, ev->reason, ev->code);
        ws_close(ws, ev->code, ev->reason);
        ws->done = 1;
        break;
    default:
        break;
    }
}

/* Reads what the client sent, without blocking, and acts on it.
 * Returns -1 when the connection ended. */
static int ws_read(ws_conn *ws)
{
    int reads;
    ws->more_input = 0;
    for (reads = 0; reads < WS_READS_PER_TURN && !ws->done && !ws->failed; reads++) {
        apr_status_t rv;
        apr_bucket *b;

        apr_brigade_cleanup(ws->ibb);
        rv = ap_get_brigade(ws->c->input_filters, ws->ibb, AP_MODE_READBYTES,
                            APR_NONBLOCK_READ, WS_READ_BYTES);
        if (APR_STATUS_IS_EAGAIN(rv) || (rv == APR_SUCCESS && APR_BRIGADE_EMPTY(ws->ibb))) {
            return 0;
        }
        if (rv != APR_SUCCESS) {
            if (!APR_STATUS_IS_EOF(rv)) {
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, ws->r, APLOGNO(13105)
                              "WebSocket %s: read failed", ws->client_id);
            }
            ws->failed = 1;
            return -1;
        }
        for (b = APR_BRIGADE_FIRST(ws->ibb); b != APR_BRIGADE_SENTINEL(ws->ibb)
             && !ws->done; b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t len, pos = 0;
            if (APR_BUCKET_IS_EOS(b)) {
                ws->failed = 1;
                return -1;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            if (apr_bucket_read(b, &data, &len, APR_BLOCK_READ) != APR_SUCCESS) {
                ws->failed = 1;
                return -1;
            }
            while (pos < len && !ws->done) {
                upm_ws_event ev;
                pos += upm_ws_parse(&ws->parser, (const unsigned char *)data + pos,
                                    len - pos, &ev);
                on_event(ws, &ev);
            }
        }
    }
    ws->more_input = !ws->done && !ws->failed;
    return ws->failed ? -1 : 0;
}

/* After our close frame: waits a little for the client's, as RFC 6455
 * asks, then lets httpd close the TCP connection. */
static void ws_finish(ws_conn *ws)
{
    apr_time_t until = apr_time_now() + WS_CLOSE_WAIT;
    ws_flush(ws);
    while (!ws->done && !ws->failed) {
        apr_int32_t num;
        const apr_pollfd_t *out;
        apr_time_t now = apr_time_now();
        if (now >= until) {
            break;
        }
        apr_pollset_poll(ws->ps, until - now, &num, &out);
        ws_read(ws);
        apr_pool_clear(ws->tmp);
    }
}

/* ---- handshake and the loop ------------------------------------------ */

static int refuse(request_rec *r, int status, const char *code, const char *msg)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13106)
                  "WebSocket handshake for %s refused (%d %s): %s", r->uri, status, code,
                  msg);
    return upm_json_error(r, status, code, msg, -1);
}

static int origin_refused(request_rec *r, const upm_dir_conf *d)
{
    const char *origin = apr_table_get(r->headers_in, "Origin");
    if (upm_ws_origin_allowed(r->pool, origin, d->allow_origin,
                              apr_table_get(r->headers_in, "Host"))) {
        return DECLINED;
    }
    /* A page on another site must not open the user's stream with the
     * user's cookie (cross-site WebSocket hijacking). */
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13107)
                  "WebSocket handshake for %s from origin %s refused: not in "
                  "UploadProgressAllowOrigin (default: this host only)", r->uri, origin);
    return HTTP_FORBIDDEN;
}

int upm_ws_access_checker(request_rec *r)
{
    upm_dir_conf *d;
    const char *upgrade;

    if (r->main || !(upgrade = apr_table_get(r->headers_in, "Upgrade"))
        || !upm_ws_header_has_token(upgrade, "websocket")) {
        return DECLINED;
    }
    /* Only where the list is configured: the handler is not known yet at
     * this stage, and other modules' WebSockets are not ours to police.
     * Refusing here, before authentication, means a hijacking page learns
     * nothing about the token its request carried. */
    d = ap_get_module_config(r->per_dir_config, &upload_progress_module);
    if (!d->allow_origin) {
        return DECLINED;
    }
    return origin_refused(r, d);
}

static apr_status_t release_count(void *data)
{
    ws_conn *ws = data;
    if (ws->counted) {
        upm_bus_user_release(ws->r->user);
        ws->counted = 0;
    }
    return APR_SUCCESS;
}

static const char *make_client_id(apr_pool_t *p)
{
    unsigned char rnd[8];
    char *hex = apr_palloc(p, 17);
    int i;
    if (apr_generate_random_bytes(rnd, sizeof(rnd)) != APR_SUCCESS) {
        apr_uint64_t t = (apr_uint64_t)apr_time_now() ^ (apr_uint64_t)(apr_uintptr_t)hex;
        memcpy(rnd, &t, sizeof(rnd));
    }
    for (i = 0; i < 8; i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    }
    return hex;
}

int upm_ws_handler(request_rec *r)
{
    upm_dir_conf *d;
    apr_table_t *q = NULL;
    const char *h, *key, *bad, *resume;
    char accept[29];
    ws_conn *ws;
    conn_rec *c = r->connection;
    apr_pollfd_t pfd;
    apr_status_t rv;
    apr_interval_time_t beat;
    apr_time_t next_ping = 0, expires = 0;
    apr_size_t len;
    const char *s;

    if (!r->handler || strcmp(r->handler, "upload-progress-websocket") != 0) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (!r->user || !*r->user) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, APLOGNO(13108)
                      "%s WebSockets need an authenticated user: configure AuthType JWT "
                      "and Require valid-user", r->uri);
        return HTTP_FORBIDDEN;
    }
    d = ap_get_module_config(r->per_dir_config, &upload_progress_module);
    if (origin_refused(r, d) != DECLINED) {
        return HTTP_FORBIDDEN;
    }
    h = apr_table_get(r->headers_in, "Upgrade");
    if (r->header_only || !h || !upm_ws_header_has_token(h, "websocket")
        || !(h = apr_table_get(r->headers_in, "Connection"))
        || !upm_ws_header_has_token(h, "upgrade")) {
        apr_table_setn(r->err_headers_out, "Upgrade", "websocket");
        apr_table_setn(r->err_headers_out, "Sec-WebSocket-Version", "13");
        return refuse(r, HTTP_UPGRADE_REQUIRED, "upgrade_required",
                      "this is a WebSocket endpoint: send Upgrade: websocket and "
                      "Connection: Upgrade");
    }
    if (c->master || r->proto_num < HTTP_VERSION(1, 1)) {
        return refuse(r, HTTP_BAD_REQUEST, "bad_protocol",
                      "WebSocket needs HTTP/1.1 (configure Protocols http/1.1 here)");
    }
    h = apr_table_get(r->headers_in, "Sec-WebSocket-Version");
    if (!h || strcmp(h, "13") != 0) {
        apr_table_setn(r->err_headers_out, "Sec-WebSocket-Version", "13");
        return refuse(r, HTTP_UPGRADE_REQUIRED, "unsupported_version",
                      "only WebSocket version 13 is supported");
    }
    key = apr_table_get(r->headers_in, "Sec-WebSocket-Key");
    if (!upm_ws_key_valid(key)) {
        return refuse(r, HTTP_BAD_REQUEST, "bad_key",
                      "Sec-WebSocket-Key must be the base64 of 16 bytes");
    }

    ws = apr_pcalloc(r->pool, sizeof(*ws));
    ws->r = r;
    ws->c = c;
    ws->ai = upm_auth_get(r);
    ap_args_to_table(r, &q);
    ws->base.user = r->user;
    ws->base.via = UPM_F_OWNER;
    ws->base.throttle_step = upm_conf_throttle(d);
    ws->base.max_queue_bytes = (apr_size_t)upm_conf_send_queue(d);
    if ((bad = upm_stream_request_scope(r, q, ws->ai, &ws->base)) != NULL) {
        return refuse(r, HTTP_BAD_REQUEST, "bad_scope",
                      apr_psprintf(r->pool, "%s must be 1 to 128 of "
                                   "A-Z a-z 0-9 . _ : @ -", bad));
    }
    resume = apr_table_get(q, "lastEventId");

    if (upm_conf_max_per_user(d)) {
        /* A WebSocket is one of the user's streams, like an SSE one. */
        int got = upm_bus_user_acquire(r->user, (apr_uint32_t)upm_conf_max_per_user(d));
        if (got == 0) {
            apr_table_setn(r->err_headers_out, "Retry-After", "5");
            return refuse(r, HTTP_TOO_MANY_REQUESTS, "too_many_connections",
                          "this user holds the most streams allowed");
        }
        ws->counted = got == 1;
        /* every way out of the handler gives the place back */
        apr_pool_cleanup_register(r->pool, ws, release_count, apr_pool_cleanup_null);
    }

    /* Everything that can fail is set up before the 101. */
    rv = apr_pollset_create_ex(&ws->ps, 1, r->pool, APR_POLLSET_WAKEABLE, APR_POLLSET_POLL);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, APLOGNO(13109)
                      "cannot create the WebSocket pollset");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    memset(&pfd, 0, sizeof(pfd));
    pfd.p = r->pool;
    pfd.desc_type = APR_POLL_SOCKET;
    pfd.desc.s = ap_get_conn_socket(c);
    pfd.reqevents = APR_POLLIN;
    if (!pfd.desc.s || (rv = apr_pollset_add(ws->ps, &pfd)) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, APLOGNO(13110)
                      "cannot poll the client connection");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ws->base.notify = ws_notify;
    ws->base.baton = ws->ps;
    apr_pool_create(&ws->tmp, r->pool);
    ws->ibb = apr_brigade_create(r->pool, c->bucket_alloc);
    ws->obb = apr_brigade_create(r->pool, c->bucket_alloc);
    upm_ws_parser_init(&ws->parser, r->pool, (apr_size_t)upm_conf_ws_max_message(d));
    upm_wsp_init(&ws->proto, ws->base.scope);
    ws->client_id = make_client_id(r->pool);

    upm_ws_accept(key, accept);
    apr_table_clear(r->headers_out);
    apr_table_setn(r->headers_out, "Upgrade", "websocket");
    apr_table_setn(r->headers_out, "Connection", "Upgrade");
    apr_table_setn(r->headers_out, "Sec-WebSocket-Accept", apr_pstrdup(r->pool, accept));
    r->status = HTTP_SWITCHING_PROTOCOLS;
    r->status_line = NULL;
    ap_send_interim_response(r, 1);

    /* From here on the connection speaks WebSocket: only connection-level
     * filters, no request read timeout (a quiet client is normal), no
     * coalescing that would hold small frames back, no keep-alive. */
    ap_remove_input_filter_byhandle(c->input_filters, "reqtimeout");
    ap_remove_output_filter_byhandle(c->output_filters, "SSL/TLS Coalescing Filter");
    r->input_filters = r->proto_input_filters = c->input_filters;
    r->output_filters = r->proto_output_filters = c->output_filters;
    c->keepalive = AP_CONN_CLOSE;
    r->sent_bodyct = 1;

    ws->subs[0] = sub_open(ws, -1, NULL, &ws->sub_pools[0]);
    ws->nsubs = 1;
    upm_stats_conn(UPM_TR_WS, UPM_MODE_WORKER, 1);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, APLOGNO(13111)
                  "WebSocket %s open for user %s", ws->client_id, r->user);
    s = upm_wsp_connected(ws->tmp, ws->client_id, &len);
    ws_text(ws, s, len);
    if (resume && *resume) {
        const char *reason = upm_stream_resume(ws->tmp, ws->subs, ws->nsubs, resume,
                                               emit_frame, ws);
        if (reason) {
            ws_reset(ws, reason);
        }
    }
    ws_flush(ws);
    apr_pool_clear(ws->tmp);

    beat = apr_time_from_sec(upm_conf_heartbeat(d));
    if (beat) {
        next_ping = apr_time_now() + beat;
    }
    if (ws->ai && ws->ai->exp) {
        expires = apr_time_from_sec(ws->ai->exp);
    }
    while (!ws->failed && !ws->done && !ws->close_sent) {
        apr_time_t now, wait;
        apr_int32_t num;
        const apr_pollfd_t *out;
        int taken;

        if (ws_read(ws) < 0) {
            break;
        }
        taken = deliver(ws);
        ws_flush(ws);
        if (ws->done || ws->failed || ws->close_sent) {
            break;
        }
        now = apr_time_now();
        if (expires && now >= expires) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13112)
                          "WebSocket %s: token of user %s expired; closing",
                          ws->client_id, r->user);
            ws_close(ws, UPM_WS_CLOSE_TOKEN_EXPIRED, "token expired");
            break;
        }
        if (beat && ws->ping_unanswered && now >= ws->ping_unanswered + 2 * beat) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13113)
                          "WebSocket %s of user %s answered no ping for %d s; closing",
                          ws->client_id, r->user, (int)apr_time_sec(2 * beat));
            ws_close(ws, UPM_WS_CLOSE_NO_PONG, "no pong");
            ws->done = 1;           /* an unresponsive peer gets no grace */
            break;
        }
        if (beat && now >= next_ping) {
            char payload[24];
            apr_size_t pl = (apr_size_t)apr_snprintf(payload, sizeof(payload), "%"
                                                     APR_TIME_T_FMT, now);
            ws_write(ws, UPM_WS_OP_PING, payload, pl);
            ws_flush(ws);
            if (!ws->ping_unanswered) {
                ws->ping_unanswered = now;
            }
            next_ping = now + beat;
        }
        apr_pool_clear(ws->tmp);
        if (taken == WS_TAKE_MAX || ws->more_input) {
            continue;               /* more is waiting: do not sleep */
        }
        wait = apr_time_from_sec(3600);
        if (beat) {
            wait = next_ping - now;
            if (ws->ping_unanswered && ws->ping_unanswered + 2 * beat - now < wait) {
                wait = ws->ping_unanswered + 2 * beat - now;
            }
        }
        if (expires && expires - now < wait) {
            wait = expires - now;
        }
        if (wait < 0) {
            wait = 0;
        }
        apr_pollset_poll(ws->ps, wait, &num, &out);
    }
    if (ws->close_sent && !ws->done && !ws->failed) {
        ws_finish(ws);
    }
    while (ws->nsubs > 0) {
        sub_close(ws, --ws->nsubs);
    }
    release_count(ws);
    apr_pool_destroy(ws->tmp);
    upm_stats_conn(UPM_TR_WS, UPM_MODE_WORKER, -1);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, APLOGNO(13114)
                  "WebSocket %s of user %s closed (%s, code %d, %" APR_UINT64_T_FMT
                  " messages)", ws->client_id, r->user,
                  ws->failed ? "connection lost" : "closed", ws->close_code, ws->delivered);
    return OK;
}
