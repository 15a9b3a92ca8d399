#include "upm_reactor.h"
#include "upm_config.h"

#include "http_config.h"
#include "http_connection.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_mpm.h"
#include "mpm_common.h"
#include "util_filter.h"
#include <apr_poll.h>
#include <apr_thread_mutex.h>
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

upm_rconn *upm_reactor_prepare(request_rec *r, const upm_rconn_ops *ops,
                               void *ctx, apr_interval_time_t write_timeout)
{
    conn_rec *c = r->connection;
    upm_rconn *rc = apr_pcalloc(c->pool, sizeof(*rc));

    rc->r = r;
    rc->c = c;
    rc->sock = ap_get_conn_socket(c);
    rc->ops = ops;
    rc->ctx = ctx;
    rc->write_timeout = write_timeout;
    rc->bb = apr_brigade_create(c->pool, c->bucket_alloc);
    rc->rest = apr_brigade_create(c->pool, c->bucket_alloc);
    rc->pfd.p = c->pool;
    rc->pfd.desc_type = APR_POLL_SOCKET;
    rc->pfd.desc.s = rc->sock;
    rc->pfd.reqevents = APR_POLLIN;
    rc->pfd.client_data = rc;
    upm_timer_init(&rc->timer, rc);
    return rc;
}

int upm_reactor_suspend(upm_rconn *rc)
{
    conn_rec *c = rc->c;
    request_rec *r = rc->r;

    /* mod_reqtimeout would cut an idle stream; mod_ssl's coalescing filter
     * would hold small messages back until a FLUSH we never send. */
    remove_filter_named(c->input_filters, "reqtimeout", 0, c);
    remove_filter_named(c->output_filters, "SSL/TLS Coalescing Filter", 1, c);
    remove_filter_named(r->output_filters, "SSL/TLS Coalescing Filter", 1, c);
    apr_socket_timeout_set(rc->sock, 0);
    ap_set_module_config(c->conn_config, &upload_progress_module, rc);
    return SUSPENDED;
}

static void upm_suspend_connection(conn_rec *c, request_rec *r)
{
    upm_rconn *rc = ap_get_module_config(c->conn_config, &upload_progress_module);
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

void upm_reactor_buffer(upm_rconn *rc, const char *data, apr_size_t len)
{
    apr_brigade_write(rc->bb, NULL, NULL, data, len);
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

int upm_reactor_flush(upm_rconn *rc)
{
    apr_status_t rv = APR_SUCCESS;
    conn_rec *c = rc->c;

    if (rc->closing) {
        return -1;
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

static void finalize(upm_rconn *rc)
{
    conn_rec *c = rc->c;
    request_rec *r = rc->r;

    /* Finish the response (last chunk), log it and free the request, then
     * close.  Everything here writes without blocking: a client that does
     * not take the last bytes loses only those. */
    if (!APR_BRIGADE_EMPTY(rc->bb) && !c->aborted) {
        ap_pass_brigade(r->output_filters, rc->bb);
    }
    ap_finalize_request_protocol(r);
    ap_process_request_after_handler(r);
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
            apr_interval_time_t d = t->when - apr_time_now();
            timeout = d < 0 ? 0 : (d < timeout ? d : timeout);
        }
        if (rx.graveyard && timeout > apr_time_from_msec(100)) {
            timeout = apr_time_from_msec(100);
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
        finalize_dead();
        empty_graveyard();
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

static apr_status_t reactor_cleanup(void *data)
{
    apr_status_t rv;
    if (rx.thread) {
        rx.stop = 1;
        apr_pollset_wakeup(rx.ps);
        apr_thread_join(&rv, rx.thread);
        rx.thread = NULL;
    }
    upm_timerheap_free(&rx.heap);
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
