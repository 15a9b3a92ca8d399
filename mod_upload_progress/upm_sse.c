/* SPDX-License-Identifier: Apache-2.0 */
/* GET -> a Server-Sent Events stream of the user's messages. */
#include "upm_handlers.h"
#include "upm_auth.h"
#include "upm_bus.h"
#include "upm_config.h"
#include "upm_event.h"
#include "upm_h2.h"
#include "upm_hub.h"
#include "upm_reactor.h"
#include "upm_sse_fmt.h"
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
#include <apr_poll.h>
#include <apr_portable.h>
#include <errno.h>
#include <sys/socket.h>

APLOG_USE_MODULE(upload_progress);

#define UPM_TAKE_MAX   64

/* One SSE stream, served either by its worker (blocking writes, waiting
 * in the hub) or by the reactor (non-blocking writes, woken by the hub). */
typedef struct sse_stream {
    request_rec *r;             /* the handler's: gone once detached */
    const char *user;           /* in the stream's pool */
    upm_sub *sub;
    upm_rconn *rc;              /* NULL: the worker holds the stream */
    long retry_ms;
    apr_interval_time_t beat;
    apr_time_t next_beat;
    apr_time_t expires;
    int failed;
    int counted;                /* holds a place in the per-user count */
    upm_conn_mode mode;         /* for the connection gauges */
    /* Worker mode: the client's socket and the hub's wake-ups in one
     * wait (NULL: the hub's condition variable alone, as for HTTP/2). */
    apr_pollset_t *ps;
    apr_pollfd_t pfd;
} sse_stream;

static void out_raw(sse_stream *st, const char *s, apr_size_t len)
{
    if (st->rc) {
        upm_reactor_buffer(st->rc, s, len);
    }
    else if (!st->failed && ap_rwrite(s, (int)len, st->r) < 0) {
        st->failed = 1;
    }
}

/* Worker mode: push everything out now.  Reactor mode: write what the
 * socket takes; 1 when output is still waiting, -1 when the stream died. */
static int out_flush(sse_stream *st)
{
    if (st->rc) {
        return upm_reactor_flush(st->rc);
    }
    if (!st->failed && (ap_rflush(st->r) < 0 || st->r->connection->aborted)) {
        st->failed = 1;
    }
    return st->failed ? -1 : 0;
}

/* Counted as it is written, so the status figures are live.  live: taken
 * from the hub as it happened, so its age is delivery latency; a replayed
 * frame's age is only how long the client was away. */
static void out_frame(sse_stream *st, const upm_frame *f, int live)
{
    out_raw(st, "id: ", 4);
    out_raw(st, f->id, strlen(f->id));
    out_raw(st, "\nevent: ", 8);
    out_raw(st, f->type, strlen(f->type));
    out_raw(st, "\ndata: ", 7);
    out_raw(st, f->json, f->json_len);
    out_raw(st, "\n\n", 2);
    if (!st->failed) {
        upm_stats_delivered(1, live ? apr_time_now() - f->published : -1);
    }
}

/* For what one step needs: the request's pool while the handler runs,
 * the reactor's scratch pool after (the request may be gone). */
static apr_pool_t *tmp_pool(sse_stream *st)
{
    return st->rc ? upm_reactor_scratch() : st->r->pool;
}

/* Where log lines of the stream go: the request while the handler or
 * the worker serves it. */
#define SSE_LOG(st, level, ...) do {                                        \
        if ((st)->rc) {                                                     \
            ap_log_error(APLOG_MARK, level, 0, (st)->rc->s, __VA_ARGS__);   \
        } else {                                                            \
            ap_log_rerror(APLOG_MARK, level, 0, (st)->r, __VA_ARGS__);      \
        }                                                                   \
    } while (0)

/* Sends a reset and returns the sequence its id names. */
static apr_uint64_t out_reset(sse_stream *st, const char *reason)
{
    const char *id;
    apr_uint64_t seq;
    apr_size_t dlen, len;
    apr_pool_t *p = tmp_pool(st);
    char *data = upm_stream_reset_json(p, reason, &id, &seq, &dlen);
    char *frame = upm_sse_frame(p, id, "reset", data, dlen, &len);

    out_raw(st, frame, len);
    /* The client re-reads its state now: whatever the ring held up to the
     * reset's id is part of that, and is not sent again (as over
     * WebSocket); a client that reconnects with the id misses nothing. */
    upm_sub_skip_upto(st->sub, seq);
    upm_stats_add(UPM_ST_RESETS_SENT, 1);
    return seq;
}

/* The frames taken along with a reset that its id already covers. */
static void drop_covered(upm_frame **frames, int n, apr_uint64_t seq)
{
    int i;
    for (i = 0; i < n; i++) {
        if (frames[i] && frames[i]->seq <= seq) {
            upm_frame_unref(frames[i]);
            frames[i] = NULL;
        }
    }
}

static void out_retry_jitter(sse_stream *st)
{
    apr_size_t len;
    /* Spread the reconnects of a stopping child over a few seconds. */
    const char *s = upm_sse_retry(tmp_pool(st), st->retry_ms
                                  + (long)(apr_time_now() % 2000), &len);
    out_raw(st, s, len);
}

static void out_token_expired(sse_stream *st)
{
    apr_size_t len;
    const char *s = upm_sse_frame(tmp_pool(st), NULL, "token_expired",
                                  "{\"type\":\"token_expired\"}", 24, &len);
    out_raw(st, s, len);
    SSE_LOG(st, APLOG_INFO, APLOGNO(13042) "token of user %s expired: stream closed"
            "%s%s", st->user, st->rc ? ", client " : "",
            st->rc ? st->rc->client_ip : "");
}

static int emit_frame(void *baton, upm_frame *f)
{
    sse_stream *st = baton;
    out_frame(st, f, 0);
    return st->failed;
}

static void finish(sse_stream *st)
{
    if (st->counted) {
        upm_bus_user_release(st->user);
        st->counted = 0;
    }
    if (st->sub) {
        upm_hub_remove(st->sub);
        st->sub = NULL;
        upm_stats_conn(UPM_TR_SSE, st->mode, -1);
        upm_stats_add(UPM_ST_SSE_CLOSED, 1);
    }
}

/* ---- reactor mode ---------------------------------------------------- */

#define UPM_PUMP_BYTES (32 * 1024)

static void reschedule(sse_stream *st)
{
    apr_time_t when = st->next_beat;
    if (st->expires && (!when || st->expires < when)) {
        when = st->expires;
    }
    if (st->rc->blocked_since) {
        apr_time_t wt = st->rc->blocked_since + st->rc->write_timeout;
        if (!when || wt < when) {
            when = wt;
        }
    }
    upm_reactor_set_deadline(st->rc, when);
}

static void sse_pump(upm_rconn *rc)
{
    sse_stream *st = rc->ctx;
    upm_frame *frames[UPM_TAKE_MAX];

    /* While the socket has not taken the last batch, messages wait in the
     * hub queue, where slow consumers are coalesced and bounded. */
    while (!rc->blocked_since) {
        upm_sub_state state;
        const char *reason = NULL;
        int n, i;

        n = upm_sub_take(st->sub, 0, frames, UPM_TAKE_MAX, UPM_PUMP_BYTES, &state,
                         &reason);
        if (state == UPM_SUB_RESET) {
            drop_covered(frames, n, out_reset(st, reason));
        }
        for (i = 0; i < n; i++) {
            if (frames[i]) {
                out_frame(st, frames[i], 1);
                upm_frame_unref(frames[i]);
            }
        }
        if (state == UPM_SUB_DISCONNECT) {
            /* The disconnect event was the last one written above. */
            upm_reactor_close(rc, "disconnected by the application");
            return;
        }
        if (state == UPM_SUB_CLOSING) {
            out_retry_jitter(st);
            upm_reactor_close(rc, "server stopping");
            return;
        }
        if (!n && state == UPM_SUB_OK) {
            break;
        }
        if (out_flush(st) < 0) {
            return;                     /* closed */
        }
    }
    reschedule(st);
}

static void sse_readable(upm_rconn *rc)
{
    char buf[256];
    apr_size_t len = sizeof(buf);
    /* A stream's client sends nothing after its request: this is the
     * close (or data we discard). */
    apr_status_t rv = apr_socket_recv(rc->sock, buf, &len);
    if (APR_STATUS_IS_EOF(rv) || (rv != APR_SUCCESS && !APR_STATUS_IS_EAGAIN(rv))
        || (rv == APR_SUCCESS && len == 0)) {
        upm_reactor_close(rc, "client closed");
    }
}

static void sse_timer(upm_rconn *rc, apr_time_t now)
{
    sse_stream *st = rc->ctx;

    if (st->expires && now >= st->expires) {
        out_token_expired(st);
        upm_reactor_close(rc, "token expired");
        return;
    }
    if (rc->blocked_since && now - rc->blocked_since >= rc->write_timeout) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, rc->s, APLOGNO(13043)
                     "closing the stream of user %s, client %s: the client has not "
                     "read for %" APR_TIME_T_FMT " s (UploadProgressWriteTimeout)",
                     st->user, rc->client_ip, apr_time_sec(now - rc->blocked_since));
        upm_stats_add(UPM_ST_SLOW_CLOSED, 1);
        upm_reactor_close(rc, "slow consumer");
        return;
    }
    if (st->next_beat && now >= st->next_beat) {
        st->next_beat = now + st->beat;
        if (!rc->blocked_since) {
            out_raw(st, ": heartbeat\n\n", 13);
            if (out_flush(st) < 0) {
                return;
            }
        }
    }
    reschedule(st);
}

static void sse_closed(upm_rconn *rc, const char *reason)
{
    sse_stream *st = rc->ctx;
    /* A detached stream's access log line was written when it detached:
     * this is where its end shows. */
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, rc->s, APLOGNO(13064)
                 "SSE stream of user %s, client %s closed (%s)", st->user,
                 rc->client_ip, reason);
    finish(st);
}

/* Detachable: after the hand-over an SSE stream only writes, and reads
 * the socket only to see it close. */
static const upm_rconn_ops sse_ops = { sse_pump, sse_readable, sse_timer, sse_closed, 1 };

/* ---- worker mode ----------------------------------------------------- */

/* Blocking: the socket's timeout (UploadProgressWriteTimeout here) bounds
 * how long a client may leave what was written unread.  A flush that
 * failed after waiting that long failed for that reason: logged as the
 * reactor logs it. */
static void worker_flush(sse_stream *st, apr_interval_time_t write_timeout)
{
    apr_time_t t0 = apr_time_now(), took;

    if (st->failed || out_flush(st) == 0) {
        return;
    }
    took = apr_time_now() - t0;
    /* (poll()'s milliseconds may end the wait a little early) */
    if (took + apr_time_from_msec(50) >= write_timeout) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, st->r, APLOGNO(13045)
                      "closing the stream of user %s: the client has not read "
                      "for %" APR_TIME_T_FMT " s (UploadProgressWriteTimeout)",
                      st->r->user, apr_time_sec(took));
        upm_stats_add(UPM_ST_SLOW_CLOSED, 1);
    }
}

static void sse_wake(void *baton)
{
    apr_pollset_wakeup(baton);
}

/* Worker mode: watching the socket is what frees the worker of a client
 * that left at once, rather than at the next write that fails (a
 * heartbeat, up to two intervals later).  A peek, so that nothing is taken
 * from under mod_ssl; a client that sends data instead is left to the
 * writes (unwatched, or the level-triggered poll would spin). */
static void watch_client(sse_stream *st, apr_time_t until)
{
    apr_interval_time_t wait = until - apr_time_now();
    apr_int32_t num = 0;
    const apr_pollfd_t *out = NULL;
    apr_os_sock_t fd;
    char c;
    ssize_t got;

    if (wait <= 0) {
        return;
    }
    wait = (wait + 999) / 1000 * 1000;      /* poll() counts milliseconds */
    if (apr_pollset_poll(st->ps, wait, &num, &out) != APR_SUCCESS || num < 1
        || apr_os_sock_get(&fd, st->pfd.desc.s) != APR_SUCCESS) {
        return;
    }
    got = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        st->failed = 1;                     /* the client closed */
    }
    else if (got > 0) {
        apr_pollset_remove(st->ps, &st->pfd);
    }
}

static void serve_on_worker(sse_stream *st, apr_interval_time_t write_timeout)
{
    upm_frame *frames[UPM_TAKE_MAX];

    /* Instead of the core's Timeout, as on the reactor. */
    apr_socket_timeout_set(ap_get_conn_socket(st->r->connection), write_timeout);
    while (!st->failed) {
        apr_time_t until = apr_time_now() + apr_time_from_sec(3600), now;
        upm_sub_state state;
        const char *reason = NULL;
        int n, i;

        if (st->next_beat && st->next_beat < until) {
            until = st->next_beat;
        }
        if (st->expires && st->expires < until) {
            until = st->expires;
        }
        if (st->r->connection->master && until > apr_time_now() + UPM_H2_ABORT_CHECK) {
            until = apr_time_now() + UPM_H2_ABORT_CHECK;
        }
        n = upm_sub_take(st->sub, st->ps ? 0 : until, frames, UPM_TAKE_MAX, APR_SIZE_MAX,
                         &state, &reason);
        if (st->ps && !n && state == UPM_SUB_OK) {
            watch_client(st, until);
            if (st->failed) {
                break;
            }
        }
        /* mod_http2 marks a stream its client reset (or whose connection
         * went) aborted and wakes nobody: seen here within a second, so
         * the worker and the connection's place come back. */
        if (st->r->connection->aborted) {
            st->failed = 1;
            break;
        }
        if (state == UPM_SUB_RESET) {
            drop_covered(frames, n, out_reset(st, reason));
        }
        for (i = 0; i < n; i++) {
            if (frames[i]) {
                out_frame(st, frames[i], 1);
                upm_frame_unref(frames[i]);
            }
        }
        now = apr_time_now();
        if (state == UPM_SUB_DISCONNECT) {
            worker_flush(st, write_timeout);
            st->r->connection->keepalive = AP_CONN_CLOSE;
            break;
        }
        if (state == UPM_SUB_CLOSING) {
            out_retry_jitter(st);
            worker_flush(st, write_timeout);
            st->r->connection->keepalive = AP_CONN_CLOSE;
            break;
        }
        if (st->expires && now >= st->expires) {
            out_token_expired(st);
            worker_flush(st, write_timeout);
            st->r->connection->keepalive = AP_CONN_CLOSE;
            break;
        }
        if (st->next_beat && now >= st->next_beat) {
            out_raw(st, ": heartbeat\n\n", 13);
            st->next_beat = now + st->beat;
        }
        worker_flush(st, write_timeout);
    }
}

int upm_sse_handler(request_rec *r)
{
    upm_dir_conf *d;
    upm_auth_info *ai;
    upm_sub_spec spec;
    apr_table_t *q = NULL;
    const char *resume, *s, *start_id = NULL;
    sse_stream *st;
    upm_rconn *rc = NULL;
    apr_pool_t *home;
    apr_size_t len;
    int got = 0;

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
        upm_refusal_json(r, "forbidden", "no_user", "no authenticated user");
        return HTTP_FORBIDDEN;
    }
    d = ap_get_module_config(r->per_dir_config, &upload_progress_module);
    ai = upm_auth_get(r);
    ap_args_to_table(r, &q);

    if ((s = upm_stream_base_spec(r, d, q, ai, &spec)) != NULL) {
        return upm_json_error(r, HTTP_BAD_REQUEST, "bad_scope",
                              apr_psprintf(r->pool, "%s must be 1 to 128 of "
                                           "A-Z a-z 0-9 . _ : @ -", s), -1);
    }
    if ((s = upm_stream_ungranted(d, &spec)) != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13701)
                      "%s: refused a stream for %s (%s): the token does not grant it "
                      "(UploadProgressRequireGrant)", r->uri, r->user, s);
        return upm_json_error(r, HTTP_FORBIDDEN, "forbidden",
                              apr_psprintf(r->pool, "the token does not grant this %s", s), -1);
    }
    resume = apr_table_get(r->headers_in, "Last-Event-ID");
    if (!resume || !*resume) {
        resume = apr_table_get(q, "lastEventId");
    }

    /* Over HTTP/2 the stream keeps its h2 worker, and mod_http2 runs only
     * a few of a connection's streams at once: the one that took the last
     * of them would stop every other request of the connection. */
    if (r->connection->master && !upm_h2_hold(r, d, "SSE stream")) {
        return OK;
    }
    if (upm_conf_max_per_user(d)) {
        got = upm_bus_user_acquire(r->user, (apr_uint32_t)upm_conf_max_per_user(d));
        if (got == 0) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13044)
                          "user %s already holds %d streams "
                          "(UploadProgressMaxConnectionsPerUser)", r->user,
                          upm_conf_max_per_user(d));
            apr_table_setn(r->err_headers_out, "Retry-After", "5");
            return upm_json_error(r, HTTP_TOO_MANY_REQUESTS, "too_many_connections",
                                  "this user holds the most streams allowed", -1);
        }
    }
    if (upm_reactor_usable(r, upm_conf_async(d))) {
        rc = upm_reactor_prepare(r, &sse_ops, NULL,
                                 apr_time_from_sec(upm_conf_write_timeout(d)));
    }
    /* On the reactor the stream may outlive the request: what it keeps
     * lives in the stream's pool. */
    home = rc ? upm_reactor_pool(rc) : r->pool;
    st = apr_pcalloc(home, sizeof(*st));
    st->r = r;
    st->user = apr_pstrdup(home, r->user);
    st->counted = got == 1;
    upm_stream_spec_copy(home, &spec);

    ap_set_content_type(r, "text/event-stream; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    apr_table_setn(r->headers_out, "X-Accel-Buffering", "no");
    /* Compression would hold messages back until a buffer fills. */
    apr_table_setn(r->subprocess_env, "no-gzip", "1");
    apr_table_unset(r->headers_in, "Accept-Encoding");

    st->retry_ms = upm_conf_retry_ms(d);
    if (rc) {
        rc->ctx = st;
        st->rc = rc;
        spec.notify = upm_reactor_notify;
        spec.baton = rc;
    }
    else if (!r->connection->master
             && apr_pollset_create_ex(&st->ps, 1, r->pool, APR_POLLSET_WAKEABLE,
                                      APR_POLLSET_POLL) == APR_SUCCESS) {
        /* (An HTTP/2 stream's socket is its session's: not ours to watch.) */
        st->pfd.p = r->pool;
        st->pfd.desc_type = APR_POLL_SOCKET;
        st->pfd.desc.s = ap_get_conn_socket(r->connection);
        st->pfd.reqevents = APR_POLLIN;
        if (st->pfd.desc.s && apr_pollset_add(st->ps, &st->pfd) == APR_SUCCESS) {
            spec.notify = sse_wake;
            spec.baton = st->ps;
        }
        else {
            st->ps = NULL;
        }
    }
    if (!resume || !*resume) {
        /* Where the stream starts, taken before the subscriber exists:
         * whatever is published from here on reaches the client either
         * live or by the replay from here below. */
        apr_uint64_t start;
        /* The newest id as clients see it: a stream id in Streams mode. */
        start_id = upm_bus_newest(r->pool, &start);
    }
    st->sub = upm_hub_add(home, &spec);
    upm_stats_add(UPM_ST_SSE_OPENED, 1);
    st->mode = st->rc ? UPM_MODE_ASYNC : UPM_MODE_WORKER;
    upm_stats_conn(UPM_TR_SSE, st->mode, 1);

    /* The greeting and the replay go out from this worker, blocking, before
     * the stream is handed over. */
    {
        st->rc = NULL;
        s = upm_sse_retry(r->pool, st->retry_ms, &len);
        out_raw(st, s, len);
        if (start_id) {
            /* An id without data sets the client's last event id without
             * an event (WHATWG HTML, 9.2.6): a client dropped before its
             * first message resumes from here instead of losing what was
             * published while it reconnected. */
            s = apr_pstrcat(r->pool, "id: ", start_id, "\n\n", NULL);
            out_raw(st, s, strlen(s));
            upm_stream_resume(r->pool, &st->sub, 1, start_id, emit_frame, st);
        }
        else if (resume && *resume) {
            const char *reason = upm_stream_resume(r->pool, &st->sub, 1, resume,
                                                   emit_frame, st);
            if (reason) {
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, APLOGNO(13041)
                              "cannot resume user %s from %s: %s", r->user, resume, reason);
                out_reset(st, reason);
            }
        }
        out_flush(st);
        st->rc = rc;
    }

    st->beat = apr_time_from_sec(upm_conf_heartbeat(d));
    st->next_beat = st->beat ? apr_time_now() + st->beat : 0;
    if (ai && ai->exp) {
        st->expires = apr_time_from_sec(ai->exp);
    }
    if (st->rc) {
        /* Handed over even when the greeting already failed: a hub notify
         * may have queued rc on the reactor, which must then own it (and
         * close it) rather than find it freed with the request. */
        return upm_reactor_suspend(st->rc);
    }
    if (st->failed) {
        finish(st);
        return OK;
    }
    serve_on_worker(st, apr_time_from_sec(upm_conf_write_timeout(d)));
    finish(st);
    return OK;
}
