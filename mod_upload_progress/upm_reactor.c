/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_reactor.h"
#include "upm_config.h"
#include "upm_conn.h"

#include "http_config.h"
#include "http_connection.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_mpm.h"
#include "mpm_common.h"
#include "util_filter.h"
#include <apr_atomic.h>
#include <apr_poll.h>
#include <apr_portable.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <stdlib.h>
#include <apr_thread_proc.h>

APLOG_USE_MODULE(upload_progress);

#define UPM_REACTOR_PASS 16384

static struct {
    apr_pool_t *pool;
    server_rec *s;
    apr_pollset_t *ps;
    apr_thread_mutex_t *lock;   /* guards incoming and ready */
    upm_rconn *incoming;        /* handed over, not yet seen by the thread */
    upm_rconn *ready;           /* the hub has something for these */
    upm_rconn *dead;            /* closed this turn, finalised at its end */
    upm_rconn *graveyard;       /* finalised, pool not yet destroyed */
    upm_rconn *detaching;       /* to detach once the MPM has let go */
    apr_time_t next_detach_scan;
    apr_pool_t *scratch;        /* reactor thread only, cleared every turn */
    apr_uint32_t detached;      /* detached streams open (atomic) */
    upm_timerheap heap;         /* reactor thread only */
    upm_rconn *all;             /* reactor thread only */
    int count;
    volatile int stop;
    apr_thread_t *thread;
} rx;

/* ---- hand-over ------------------------------------------------------- */

int upm_reactor_usable(request_rec *r, int async_enabled)
{
    int async = 0;
    if (!async_enabled || !rx.thread || rx.stop) {
        return 0;
    }
    /* HTTP/2 streams are not connections of their own: they cannot be
     * suspended, and their worker stays with them. */
    if (r->connection->master || !r->connection->cs) {
        return 0;
    }
    if (ap_mpm_query(AP_MPMQ_IS_ASYNC, &async) != APR_SUCCESS || !async) {
        return 0;
    }
    return 1;
}

static void remove_filter_named(ap_filter_t *f, const char *name, int output,
                                conn_rec *c)
{
    for (; f; f = f->next) {
        if (f->frec->name && strcasecmp(f->frec->name, name) == 0) {
            if (output) {
                ap_remove_output_filter(f);
            }
            else {
                ap_remove_input_filter(f);
            }
            return;
        }
    }
}

/* Not detached, the stream's pool goes with the connection's. */
static apr_status_t stream_pool_gone(void *data)
{
    upm_rconn *rc = data;
    apr_pool_destroy(rc->sp);
    return APR_SUCCESS;
}

upm_rconn *upm_reactor_prepare(request_rec *r, const upm_rconn_ops *ops,
                               void *ctx, apr_interval_time_t write_timeout)
{
    conn_rec *c = r->connection;
    apr_pool_t *sp;
    upm_rconn *rc;

    /* Its own allocator, not the connection's: it must outlive the
     * connection's pool.  Blocks it frees go back to malloc at once, so an
     * idle stream keeps one block. */
    if (apr_pool_create_unmanaged_ex(&sp, NULL, NULL) != APR_SUCCESS) {
        return NULL;
    }
    apr_allocator_max_free_set(apr_pool_allocator_get(sp), 1);
    apr_pool_tag(sp, "upm_stream");
    rc = apr_pcalloc(sp, sizeof(*rc));
    rc->sp = sp;
    rc->r = r;
    rc->c = c;
    rc->s = r->server;
    rc->client_ip = apr_pstrdup(sp, c->client_ip);
    rc->sock = ap_get_conn_socket(c);
    rc->ops = ops;
    rc->ctx = ctx;
    rc->write_timeout = write_timeout;
    rc->bb = apr_brigade_create(c->pool, c->bucket_alloc);
    rc->rest = apr_brigade_create(c->pool, c->bucket_alloc);
    rc->pfd.p = sp;
    rc->pfd.desc_type = APR_POLL_SOCKET;
    rc->pfd.desc.s = rc->sock;
    rc->pfd.reqevents = APR_POLLIN;
    rc->pfd.client_data = rc;
    upm_timer_init(&rc->timer, rc);
    apr_pool_cleanup_register(c->pool, rc, stream_pool_gone, apr_pool_cleanup_null);
    return rc;
}

/* Filters a detached stream can do without: the request's protocol
 * filters that are done once the headers are out (chunking the detached
 * stream does itself).  Anything else (TLS, compression, a filter of
 * another module) keeps the stream on the filter chain. */
static const char *const request_filters_done[] = {
    "chunk", "http_outerror", "content_length", "old_write", "byterange", NULL
};
/* Below the request: the socket write, and mod_reqtimeout's pass-through
 * that only notes the end of a request. */
static const char *const connection_filters_known[] = { "core", "reqtimeout", NULL };

static int named_in(const char *name, const char *const *list)
{
    int i;
    for (i = 0; name && list[i]; i++) {
        if (strcmp(name, list[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static int detachable(upm_rconn *rc)
{
    request_rec *r = rc->r;
    conn_rec *c = rc->c;
    ap_filter_t *f;

    if (!rc->ops->detachable || r->header_only || !c->cs) {
        return 0;
    }
    for (f = r->output_filters; f && f != c->output_filters; f = f->next) {
        if (!named_in(f->frec->name, request_filters_done)) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, APLOGNO(13060)
                          "stream stays on the filter chain: output filter %s",
                          f->frec->name ? f->frec->name : "(unnamed)");
            return 0;
        }
    }
    for (f = c->output_filters; f; f = f->next) {
        if (!named_in(f->frec->name, connection_filters_known)) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, APLOGNO(13061)
                          "stream stays on the filter chain: connection filter %s",
                          f->frec->name ? f->frec->name : "(unnamed)");
            return 0;
        }
    }
    return 1;
}

int upm_reactor_suspend(upm_rconn *rc)
{
    conn_rec *c = rc->c;
    request_rec *r = rc->r;
    upm_conn *uc;

    /* mod_reqtimeout would cut an idle stream; mod_ssl's coalescing filter
     * would hold small messages back until a FLUSH we never send. */
    remove_filter_named(c->input_filters, "reqtimeout", 0, c);
    remove_filter_named(c->output_filters, "SSL/TLS Coalescing Filter", 1, c);
    remove_filter_named(r->output_filters, "SSL/TLS Coalescing Filter", 1, c);
    apr_socket_timeout_set(rc->sock, 0);
    rc->detach_pending = detachable(rc);
    if (!(uc = upm_conn_get(c))) {
        uc = apr_pcalloc(c->pool, sizeof(*uc));
        ap_set_module_config(c->conn_config, &upload_progress_module, uc);
    }
    uc->rc = rc;
    return SUSPENDED;
}

static void upm_suspend_connection(conn_rec *c, request_rec *r)
{
    upm_conn *uc = upm_conn_get(c);
    upm_rconn *rc = uc ? uc->rc : NULL;
    if (!rc || rc->owned || !rx.lock) {
        return;
    }
    /* From here on the MPM has let go of the connection, but for a few
     * stores the worker makes into its connection state after this hook
     * returns: see bury(). */
    rc->handed_at = apr_time_now();
    apr_thread_mutex_lock(rx.lock);
    /* next_ready is not touched: a hub notify during the greeting or the
     * replay may already have put rc on the ready list, and clearing its
     * link would cut off every stream queued behind it, each left marked
     * queued and so never woken again. */
    rc->next = rx.incoming;
    rx.incoming = rc;
    apr_thread_mutex_unlock(rx.lock);
    apr_pollset_wakeup(rx.ps);
}

void upm_reactor_notify(void *baton)
{
    upm_rconn *rc = baton;
    int wake = 0;
    apr_thread_mutex_lock(rx.lock);
    if (!rc->queued && !rc->closing) {
        rc->queued = 1;
        rc->next_ready = rx.ready;
        rx.ready = rc;
        wake = 1;
    }
    apr_thread_mutex_unlock(rx.lock);
    if (wake) {
        apr_pollset_wakeup(rx.ps);
    }
}

/* ---- I/O ------------------------------------------------------------- */

/* Detached buffers are the stream's own memory: they grow and drain on
 * the reactor thread while the stream's pool would keep every size it
 * ever had. */
static int grow(char **buf, apr_size_t *cap, apr_size_t need)
{
    apr_size_t ncap = *cap ? *cap : 512;
    char *nb;
    while (ncap < need) {
        ncap *= 2;
    }
    if (ncap == *cap) {
        return 1;
    }
    nb = realloc(*buf, ncap);
    if (!nb) {
        return 0;
    }
    *buf = nb;
    *cap = ncap;
    return 1;
}

static void drop_buffers(upm_rconn *rc)
{
    free(rc->pend);
    free(rc->wire);
    rc->pend = rc->wire = NULL;
    rc->pend_len = rc->pend_cap = rc->wire_off = rc->wire_len = rc->wire_cap = 0;
}

static void pend_add(upm_rconn *rc, const char *data, apr_size_t len)
{
    if (!len) {
        return;
    }
    if (!grow(&rc->pend, &rc->pend_cap, rc->pend_len + len)) {
        rc->close_reason = "out of memory";
        return;
    }
    memcpy(rc->pend + rc->pend_len, data, len);
    rc->pend_len += len;
}

void upm_reactor_buffer(upm_rconn *rc, const char *data, apr_size_t len)
{
    if (rc->detached) {
        pend_add(rc, data, len);
    }
    else {
        apr_brigade_write(rc->bb, NULL, NULL, data, len);
    }
}

apr_size_t upm_reactor_pending(upm_rconn *rc)
{
    apr_off_t n = 0;
    if (rc->detached) {
        return rc->pend_len + (rc->wire_len - rc->wire_off);
    }
    apr_brigade_length(rc->bb, 0, &n);
    return (apr_size_t)n;
}

apr_pool_t *upm_reactor_scratch(void)
{
    return rx.scratch;
}

static void set_pollout(upm_rconn *rc, int on)
{
    if (rc->polling_out == on || !rc->in_pollset) {
        return;
    }
    /* apr_pollset has no "modify": remove and add with the new events. */
    apr_pollset_remove(rx.ps, &rc->pfd);
    rc->pfd.reqevents = on ? (APR_POLLIN | APR_POLLOUT) : APR_POLLIN;
    if (apr_pollset_add(rx.ps, &rc->pfd) != APR_SUCCESS) {
        rc->in_pollset = 0;
    }
    rc->polling_out = on;
}

static apr_status_t core_write_pending(conn_rec *c)
{
    /* The MPM's write completion does the same: calling the core output
     * filter with no brigade sends what it set aside, without blocking. */
    ap_filter_t *f = c->output_filters;
    while (f->next) {
        f = f->next;
    }
    return f->frec->filter_func.out_func(f, NULL);
}

/* Detached: moves what the stream wrote to the wire buffer (as one chunk
 * when the response is chunked) and sends without blocking.  APR_SUCCESS
 * when all went out, EAGAIN when the socket is full. */
static apr_status_t send_detached(upm_rconn *rc)
{
    for (;;) {
        apr_size_t len;
        apr_status_t rv;

        if (rc->wire_off == rc->wire_len) {
            rc->wire_off = rc->wire_len = 0;
            if (!rc->pend_len) {
                return APR_SUCCESS;
            }
            if (rc->chunked) {
                char hdr[24];
                int hl = apr_snprintf(hdr, sizeof(hdr), "%" APR_UINT64_T_HEX_FMT "\r\n",
                                      (apr_uint64_t)rc->pend_len);
                if (!grow(&rc->wire, &rc->wire_cap, hl + rc->pend_len + 2)) {
                    return APR_ENOMEM;
                }
                memcpy(rc->wire, hdr, hl);
                memcpy(rc->wire + hl, rc->pend, rc->pend_len);
                memcpy(rc->wire + hl + rc->pend_len, "\r\n", 2);
                rc->wire_len = hl + rc->pend_len + 2;
                rc->pend_len = 0;
            }
            else {
                char *b = rc->wire;
                apr_size_t cap = rc->wire_cap;
                rc->wire = rc->pend;
                rc->wire_cap = rc->pend_cap;
                rc->wire_len = rc->pend_len;
                rc->pend = b;
                rc->pend_cap = cap;
                rc->pend_len = 0;
            }
        }
        len = rc->wire_len - rc->wire_off;
        rv = apr_socket_send(rc->sock, rc->wire + rc->wire_off, &len);
        rc->wire_off += len;
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
}

static int flush_detached(upm_rconn *rc)
{
    apr_status_t rv = rc->close_reason ? APR_ENOMEM : send_detached(rc);

    if (rv != APR_SUCCESS && !APR_STATUS_IS_EAGAIN(rv)) {
        upm_reactor_close(rc, rc->close_reason ? rc->close_reason
                                               : "write failed (client gone)");
        return -1;
    }
    if (APR_STATUS_IS_EAGAIN(rv)) {
        if (!rc->blocked_since) {
            rc->blocked_since = apr_time_now();
        }
        set_pollout(rc, 1);
        return 1;
    }
    drop_buffers(rc);
    rc->blocked_since = 0;
    set_pollout(rc, 0);
    return 0;
}

int upm_reactor_flush(upm_rconn *rc)
{
    apr_status_t rv = APR_SUCCESS;
    conn_rec *c = rc->c;

    if (rc->closing) {
        return -1;
    }
    if (rc->detached) {
        return flush_detached(rc);
    }
    if (c->data_in_output_filters) {
        rv = core_write_pending(c);
    }
    /* Hand the filters small pieces and only while the core has nothing
     * set aside: a large backlog passed at once would make the core output
     * filter insist on a blocking write (FlushMaxThreshold). */
    while (rv == APR_SUCCESS && !c->aborted && !APR_BRIGADE_EMPTY(rc->bb)
           && !c->data_in_output_filters) {
        apr_bucket *e;
        apr_status_t prv = apr_brigade_partition(rc->bb, UPM_REACTOR_PASS, &e);
        if (prv == APR_SUCCESS && e != APR_BRIGADE_SENTINEL(rc->bb)) {
            apr_brigade_split_ex(rc->bb, e, rc->rest);
        }
        rv = ap_pass_brigade(rc->r->output_filters, rc->bb);
        apr_brigade_cleanup(rc->bb);
        APR_BRIGADE_CONCAT(rc->bb, rc->rest);
        if (rv == APR_SUCCESS && !c->aborted) {
            rv = core_write_pending(c);
        }
    }
    if (rv != APR_SUCCESS || c->aborted) {
        upm_reactor_close(rc, "write failed (client gone)");
        return -1;
    }
    if (c->data_in_output_filters || !APR_BRIGADE_EMPTY(rc->bb)) {
        if (!rc->blocked_since) {
            rc->blocked_since = apr_time_now();
        }
        set_pollout(rc, 1);
        return 1;
    }
    rc->blocked_since = 0;
    set_pollout(rc, 0);
    return 0;
}

void upm_reactor_set_deadline(upm_rconn *rc, apr_time_t when)
{
    if (rc->closing) {
        return;
    }
    if (when) {
        upm_timerheap_set(&rx.heap, &rc->timer, when);
    }
    else {
        upm_timerheap_remove(&rx.heap, &rc->timer);
    }
}

/* ---- closing --------------------------------------------------------- */

void upm_reactor_close(upm_rconn *rc, const char *reason)
{
    upm_rconn **pp;

    if (rc->closing) {
        return;
    }
    rc->closing = 1;
    rc->close_reason = reason;
    if (rc->ops->closed) {
        rc->ops->closed(rc, reason);    /* leaves the hub: no more notifies */
    }
    apr_thread_mutex_lock(rx.lock);
    for (pp = &rx.ready; *pp; pp = &(*pp)->next_ready) {
        if (*pp == rc) {
            *pp = rc->next_ready;
            break;
        }
    }
    apr_thread_mutex_unlock(rx.lock);
    upm_timerheap_remove(&rx.heap, &rc->timer);
    if (rc->detach_pending) {
        for (pp = &rx.detaching; *pp; pp = &(*pp)->next_detach) {
            if (*pp == rc) {
                *pp = rc->next_detach;
                break;
            }
        }
        rc->detach_pending = 0;
    }
    if (rc->in_pollset) {
        apr_pollset_remove(rx.ps, &rc->pfd);
        rc->in_pollset = 0;
    }
    if (rc->owned) {
        if (rc->prev) {
            rc->prev->next = rc->next;
        }
        else {
            rx.all = rc->next;
        }
        if (rc->next) {
            rc->next->prev = rc->prev;
        }
        rx.count--;
    }

    /* The memory of rc goes with the connection's pool: finalise at the
     * end of the reactor's turn, once nothing refers to rc any more. */
    rc->next_dead = rx.dead;
    rx.dead = rc;
}

/* The worker that suspended a connection still writes into the MPM's
 * state for it (which lives in the connection's pool) right after the
 * suspend_connection hook returns, clearing c->sbh first.  A stream that
 * ends at once (a token already expired, a client already gone) must not
 * destroy that pool under it: it waits until c->sbh is cleared and a grace
 * period has passed, far longer than those few stores take. */
#define UPM_BURY_GRACE apr_time_from_msec(1000)

static int may_destroy(const upm_rconn *rc, apr_time_t now)
{
    return rc->c->sbh == NULL && now - rc->handed_at >= UPM_BURY_GRACE;
}

/* Destroying the connection's pool also destroys the stream's
 * (stream_pool_gone): rc is gone after this. */
static void bury(upm_rconn *rc)
{
    if (may_destroy(rc, apr_time_now())) {
        apr_pool_destroy(rc->c->pool);
        return;
    }
    rc->next_dead = rx.graveyard;
    rx.graveyard = rc;
}

static void empty_graveyard(void)
{
    upm_rconn **pp = &rx.graveyard;
    apr_time_t now = apr_time_now();
    while (*pp) {
        upm_rconn *rc = *pp;
        if (may_destroy(rc, now)) {
            *pp = rc->next_dead;
            apr_pool_destroy(rc->c->pool);
        }
        else {
            pp = &rc->next_dead;
        }
    }
}

/* A detached stream ends as the chunk filter and the MPM would end it:
 * the last chunk, then a half close; a client that does not take the
 * last bytes loses only those. */
static void finalize_detached(upm_rconn *rc)
{
    if (!rc->close_reason || strcmp(rc->close_reason, "out of memory") != 0) {
        if (rc->chunked) {
            /* after what is pending, as its own chunk ("0" closes the body) */
            send_detached(rc);
            if (rc->wire_off == rc->wire_len && !rc->pend_len) {
                rc->chunked = 0;
                pend_add(rc, "0\r\n\r\n", 5);
            }
        }
        send_detached(rc);
        apr_socket_shutdown(rc->sock, APR_SHUTDOWN_WRITE);
    }
    apr_socket_close(rc->sock);
    drop_buffers(rc);
    apr_atomic_dec32(&rx.detached);
    apr_pool_destroy(rc->sp);
}

static void finalize(upm_rconn *rc)
{
    conn_rec *c = rc->c;
    request_rec *r = rc->r;

    if (rc->detached) {
        finalize_detached(rc);
        return;
    }
    /* Finish the response (last chunk), log it and free the request, then
     * close.  Everything here writes without blocking: a client that does
     * not take the last bytes loses only those.  (No request: a detaching
     * that could not complete already ended it.) */
    if (r) {
        if (!APR_BRIGADE_EMPTY(rc->bb) && !c->aborted) {
            ap_pass_brigade(r->output_filters, rc->bb);
        }
        ap_finalize_request_protocol(r);
        ap_process_request_after_handler(r);
    }
    if (!c->aborted) {
        core_write_pending(c);
        ap_prep_lingering_close(c);
        core_write_pending(c);
        apr_socket_shutdown(rc->sock, APR_SHUTDOWN_WRITE);
    }
    /* The MPM counts this connection as suspended: keep the state it
     * knows so its pool cleanup decrements the right counter. */
    c->cs->state = CONN_STATE_SUSPENDED;
    bury(rc);
}

/* ---- detaching -------------------------------------------------------- */

static apr_status_t note_gone(void *data)
{
    *(int *)data = 1;
    return APR_SUCCESS;
}

/* Frees the request and the connection, keeping the socket.  Called once
 * the MPM has let go (may_destroy) and the core holds no output. */
static void detach(upm_rconn *rc)
{
    conn_rec *c = rc->c;
    request_rec *r = rc->r;
    apr_bucket_brigade *bb;
    apr_os_sock_t fd, none = -1;
    apr_socket_t *ns = NULL;
    int gone = 0;

    if (apr_os_sock_get(&fd, rc->sock) != APR_SUCCESS
        || apr_os_sock_put(&ns, &fd, rc->sp) != APR_SUCCESS) {
        return;                         /* stays on the filter chain */
    }
    apr_socket_timeout_set(ns, 0);
    rc->chunked = r->chunked;

    /* The request ends here for httpd: the EOR bucket logs it (the access
     * log line of a stream is written when it is detached, about a second
     * after it opened) and destroys its pool.  With only the core filter
     * below and nothing held back, the core deletes it at once. */
    apr_pool_cleanup_register(r->pool, &gone, note_gone, apr_pool_cleanup_null);
    bb = apr_brigade_create(c->pool, c->bucket_alloc);
    APR_BRIGADE_INSERT_TAIL(bb, ap_bucket_eor_create(c->bucket_alloc, r));
    ap_pass_brigade(c->output_filters, bb);
    apr_brigade_cleanup(bb);
    rc->r = NULL;
    if (!gone) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, rc->s, APLOGNO(13062)
                     "client %s: stream not detached, the connection held its end "
                     "of request back; closing it", rc->client_ip);
        upm_reactor_close(rc, "cannot detach");
        return;
    }

    if (rc->in_pollset) {
        apr_pollset_remove(rx.ps, &rc->pfd);
        rc->in_pollset = 0;
    }
    /* The connection's socket object goes with its pool and would close
     * the descriptor the stream keeps. */
    apr_os_sock_put(&rc->sock, &none, c->pool);
    rc->sock = ns;
    rc->pfd.desc.s = ns;
    rc->bb = rc->rest = NULL;
    apr_pool_cleanup_kill(c->pool, rc, stream_pool_gone);
    /* As bury(): the MPM counts it as suspended until its pool goes. */
    c->cs->state = CONN_STATE_SUSPENDED;
    apr_pool_destroy(c->pool);
    rc->c = NULL;
    rc->detached = 1;
    apr_atomic_inc32(&rx.detached);
    ap_log_error(APLOG_MARK, APLOG_TRACE1, 0, rc->s, APLOGNO(13063)
                 "stream of client %s detached from its request and connection",
                 rc->client_ip);
    if (apr_pollset_add(rx.ps, &rc->pfd) == APR_SUCCESS) {
        rc->in_pollset = 1;
    }
    else {
        upm_reactor_close(rc, "cannot watch the socket");
    }
}

#define UPM_DETACH_SCAN apr_time_from_msec(100)

static void detach_ready(apr_time_t now)
{
    upm_rconn **pp = &rx.detaching;

    if (now < rx.next_detach_scan) {
        return;
    }
    rx.next_detach_scan = now + UPM_DETACH_SCAN;
    while (*pp) {
        upm_rconn *rc = *pp;
        /* A stream whose output waits for the socket detaches once it
         * drained: the core filter holds that output. */
        if (!may_destroy(rc, now) || rc->hold || rc->c->data_in_output_filters
            || !APR_BRIGADE_EMPTY(rc->bb)) {
            pp = &rc->next_detach;
            continue;
        }
        *pp = rc->next_detach;
        rc->detach_pending = 0;
        detach(rc);
    }
}

static void finalize_dead(void)
{
    while (rx.dead) {
        upm_rconn *rc = rx.dead;
        rx.dead = rc->next_dead;
        finalize(rc);
    }
}

/* ---- the thread ------------------------------------------------------ */

static void *APR_THREAD_FUNC reactor_main(apr_thread_t *thd, void *data)
{
    while (!rx.stop) {
        apr_interval_time_t timeout = apr_time_from_sec(1);
        apr_int32_t num = 0, i;
        const apr_pollfd_t *descs = NULL;
        upm_rconn *inc, *rdy, *rc, *nx;
        upm_timer *t;
        apr_time_t now;
        apr_status_t rv;
        int guard;

        t = upm_timerheap_peek(&rx.heap);
        if (t) {
            /* Rounded up to the millisecond epoll counts in: rounded down,
             * a deadline less than 1 ms away made the loop spin until it
             * came, and with thousands of streams one nearly always is. */
            apr_interval_time_t d = t->when - apr_time_now();
            if (d > 0) {
                d = (d + 999) / 1000 * 1000;
            }
            timeout = d < 0 ? 0 : (d < timeout ? d : timeout);
        }
        if ((rx.graveyard || rx.detaching) && timeout > UPM_DETACH_SCAN) {
            timeout = UPM_DETACH_SCAN;
        }
        rv = apr_pollset_poll(rx.ps, timeout, &num, &descs);
        if (rv == APR_SUCCESS) {
            for (i = 0; i < num; i++) {
                rc = descs[i].client_data;
                if (!rc || rc->closing) {
                    continue;
                }
                if (descs[i].rtnevents & (APR_POLLIN | APR_POLLHUP | APR_POLLERR)) {
                    rc->ops->readable(rc);
                }
                if (!rc->closing && (descs[i].rtnevents & APR_POLLOUT)) {
                    if (upm_reactor_flush(rc) == 0) {
                        rc->ops->pump(rc);      /* take what waited meanwhile */
                    }
                }
            }
        }

        apr_thread_mutex_lock(rx.lock);
        inc = rx.incoming;
        rx.incoming = NULL;
        rdy = rx.ready;
        rx.ready = NULL;
        apr_thread_mutex_unlock(rx.lock);

        /* Ready ones first: a stream not handed over yet is skipped here
         * and pumped below once it is.  Each leaves the list under the lock
         * just before its pump: a notify during the pump then queues it
         * again (onto the next list), and can never rewrite the link this
         * walk still has to follow. */
        for (rc = rdy; rc; rc = nx) {
            apr_thread_mutex_lock(rx.lock);
            nx = rc->next_ready;
            rc->next_ready = NULL;
            rc->queued = 0;
            apr_thread_mutex_unlock(rx.lock);
            if (rc->owned && !rc->closing) {
                rc->ops->pump(rc);
            }
        }
        for (rc = inc; rc; rc = nx) {
            nx = rc->next;
            rc->owned = 1;
            rc->prev = NULL;
            rc->next = rx.all;
            if (rx.all) {
                rx.all->prev = rc;
            }
            rx.all = rc;
            rx.count++;
            if (rc->detach_pending) {
                rc->next_detach = rx.detaching;
                rx.detaching = rc;
            }
            if (apr_pollset_add(rx.ps, &rc->pfd) == APR_SUCCESS) {
                rc->in_pollset = 1;
            }
            else {
                upm_reactor_close(rc, "cannot watch the socket");
                continue;
            }
            rc->ops->pump(rc);
        }

        now = apr_time_now();
        for (guard = 0; guard < 100000 && (t = upm_timerheap_peek(&rx.heap))
                        && t->when <= now; guard++) {
            rc = t->data;
            upm_timerheap_remove(&rx.heap, t);
            rc->ops->timer(rc, now);
        }
        if (rx.detaching) {
            detach_ready(now);
        }
        finalize_dead();
        empty_graveyard();
        apr_pool_clear(rx.scratch);
    }
    finalize_dead();
    /* The child is exiting without a graceful stop (those close every
     * stream first): only drop the sockets, since the MPM is tearing down
     * the structures a full finalisation would touch. */
    while (rx.all) {
        upm_rconn *rc = rx.all;
        rx.all = rc->next;
        if (rc->ops->closed) {
            rc->ops->closed(rc, "server stopping");
        }
        apr_socket_close(rc->sock);
    }
    apr_thread_exit(thd, APR_SUCCESS);
    return NULL;
}

int upm_reactor_count(void)
{
    return rx.count;
}

/* Detached streams are not the MPM's connections any more, so a stopping
 * child does not wait for them: the reactor closes them (child_stopping
 * closed the hub, which tells every stream), and the child waits here,
 * briefly, for their last words (retry hint, close frame) to go out. */
#define UPM_STOP_WAIT apr_time_from_msec(2500)

static apr_status_t reactor_cleanup(void *data)
{
    apr_status_t rv;
    if (rx.thread) {
        apr_time_t until = apr_time_now() + UPM_STOP_WAIT;
        while (apr_atomic_read32(&rx.detached) > 0 && apr_time_now() < until) {
            apr_sleep(apr_time_from_msec(10));
        }
        rx.stop = 1;
        apr_pollset_wakeup(rx.ps);
        apr_thread_join(&rv, rx.thread);
        rx.thread = NULL;
    }
    upm_timerheap_free(&rx.heap);
    if (rx.scratch) {
        apr_pool_destroy(rx.scratch);
        rx.scratch = NULL;
    }
    return APR_SUCCESS;
}

void upm_reactor_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;
    int async = 0;
    apr_threadattr_t *ta;

    if (ap_mpm_query(AP_MPMQ_IS_ASYNC, &async) != APR_SUCCESS || !async) {
        return;     /* prefork / worker: streams stay on their worker */
    }
    rx.pool = pchild;
    rx.s = s;
    /* The reactor thread's alone: not a sub-pool of pchild, whose
     * allocator other threads use. */
    if (apr_pool_create_unmanaged_ex(&rx.scratch, NULL, NULL) != APR_SUCCESS) {
        return;
    }
    upm_timerheap_init(&rx.heap);
    rv = apr_thread_mutex_create(&rx.lock, APR_THREAD_MUTEX_DEFAULT, pchild);
    if (rv == APR_SUCCESS) {
        rv = apr_pollset_create_ex(&rx.ps, 1024, pchild,
                                   APR_POLLSET_WAKEABLE | APR_POLLSET_NOCOPY,
                                   APR_POLLSET_DEFAULT);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(13050)
                     "cannot create the stream reactor's pollset; streams will "
                     "hold a worker thread each");
        return;
    }
    apr_threadattr_create(&ta, pchild);
    apr_threadattr_stacksize_set(ta, 512 * 1024);
    rv = apr_thread_create(&rx.thread, ta, reactor_main, NULL, pchild);
    if (rv != APR_SUCCESS) {
        rx.thread = NULL;
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(13051)
                     "cannot start the stream reactor thread; streams will hold "
                     "a worker thread each");
        return;
    }
    /* Before pchild's sub-pools go: the thread still uses the child. */
    apr_pool_pre_cleanup_register(pchild, NULL, reactor_cleanup);
}

void upm_reactor_register_hooks(apr_pool_t *p)
{
    ap_hook_suspend_connection(upm_suspend_connection, NULL, NULL, APR_HOOK_MIDDLE);
}
