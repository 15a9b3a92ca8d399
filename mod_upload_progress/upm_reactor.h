/* SPDX-License-Identifier: Apache-2.0 */
/* The per-child reactor (DESIGN section 5): one thread owning an
 * apr_pollset and every suspended stream of this child.  A handler
 * prepares a stream on its worker and returns SUSPENDED; the
 * suspend_connection hook then hands the connection over, and no worker
 * thread is parked on it any more.  Writes go through the request's
 * filter chain (so chunking and mod_ssl keep working) and never block:
 * what the socket does not take waits in the core output filter while the
 * reactor watches POLLOUT.
 *
 * A stream whose connection has no filter of its own below the request's
 * protocol filters (plain HTTP/1.x: chunking and the core's socket write,
 * no TLS) is detached once the MPM has let go of it: the request is
 * logged and its pool freed, the connection's pool (with its bucket
 * allocator and the core filter's buffers) is freed, and the stream keeps
 * only the socket and its own small pool, framing chunks itself.  That is
 * what holds an idle stream to a few kilobytes; every other stream keeps
 * the whole filter chain for its lifetime. */
#ifndef UPM_REACTOR_H
#define UPM_REACTOR_H

#include "httpd.h"
#include "upm_timerheap.h"

typedef struct upm_rconn upm_rconn;

typedef struct upm_rconn_ops {
    /* The hub has frames, a reset or a close for this stream. */
    void (*pump)(upm_rconn *rc);
    /* The client socket is readable (or closed). */
    void (*readable)(upm_rconn *rc);
    /* The stream's deadline (upm_reactor_set_deadline) has come. */
    void (*timer)(upm_rconn *rc, apr_time_t now);
    /* The stream is being finalised (last chance to log / count). */
    void (*closed)(upm_rconn *rc, const char *reason);
    /* Non-zero: the stream never reads through the input filters nor
     * touches the request after its hand-over, so it may be detached. */
    int detachable;
} upm_rconn_ops;

struct upm_rconn {
    request_rec *r;             /* NULL once detached */
    conn_rec *c;                /* NULL once detached */
    /* The stream's own pool (and allocator): rc and the stream's state
     * live here, so they outlive the connection's pool when detached.
     * Not detached, it goes with the connection's pool. */
    apr_pool_t *sp;
    server_rec *s;
    const char *client_ip;      /* in sp, for log lines once r is gone */
    apr_socket_t *sock;
    const upm_rconn_ops *ops;
    void *ctx;
    apr_bucket_brigade *bb;     /* output not yet given to the filters */
    apr_bucket_brigade *rest;
    apr_pollfd_t pfd;
    upm_timer timer;
    apr_time_t blocked_since;   /* output waiting for the socket since */
    apr_time_t handed_at;       /* when the suspend hook ran */
    apr_interval_time_t write_timeout;
    int owned;                  /* handed over by the suspend hook */
    int in_pollset;
    int polling_out;
    int queued;                 /* on the ready list */
    int closing;
    int detached;
    int detach_pending;         /* on the reactor's list of streams to detach */
    int hold;                   /* set by the stream: not ready to detach */
    int chunked;                /* detached: frame the output in chunks */
    /* Detached output: pend takes what the stream writes, wire what is
     * framed and partly sent.  Both are freed whenever they drain, so an
     * idle stream holds no buffer. */
    char *pend, *wire;
    apr_size_t pend_len, pend_cap, wire_off, wire_len, wire_cap;
    const char *close_reason;
    upm_rconn *next_detach;
    upm_rconn *next_ready;
    upm_rconn *next_dead;
    upm_rconn *prev, *next;     /* all connections of this reactor */
};

/* Can this request's connection be suspended here (event MPM, HTTP/1.x,
 * UploadProgressAsync On)? */
int upm_reactor_usable(request_rec *r, int async_enabled);

/* A stream that the handler will hand over: allocated first so it can be
 * the hub subscriber's notify baton while the handler still writes (the
 * replay) on its worker.  Whatever must live as long as the stream goes
 * into rc->sp (upm_reactor_pool), not into the request's pool.  ctx may be
 * set later (rc->ctx). */
upm_rconn *upm_reactor_prepare(request_rec *r, const upm_rconn_ops *ops,
                               void *ctx, apr_interval_time_t write_timeout);

/* Last step of the handler: makes the socket non-blocking, drops the
 * filters that would hold data back or time the connection out, and
 * returns SUSPENDED for the handler to return.  The suspend_connection
 * hook then gives the connection to the reactor thread. */
int upm_reactor_suspend(upm_rconn *rc);

/* The pool for what lives as long as the stream. */
#define upm_reactor_pool(rc) ((rc)->sp)

/* The hub's notify callback (baton: the upm_rconn). */
void upm_reactor_notify(void *baton);

/* For ops called on the reactor thread: */
/* Adds data to the stream's pending brigade (sent by upm_reactor_flush). */
void upm_reactor_buffer(upm_rconn *rc, const char *data, apr_size_t len);
/* Sends what is pending without blocking.  Returns 1 when output is still
 * waiting for the socket (the caller should stop taking frames), 0 when
 * all went out, -1 when the connection is broken (it is then closed). */
int upm_reactor_flush(upm_rconn *rc);
void upm_reactor_set_deadline(upm_rconn *rc, apr_time_t when);
/* Bytes the stream has written that the socket has not taken yet, beyond
 * what the core output filter holds. */
apr_size_t upm_reactor_pending(upm_rconn *rc);
/* A pool for what one op call needs only while it runs (reactor thread
 * only): cleared at the end of each turn of the reactor. */
apr_pool_t *upm_reactor_scratch(void);
/* Finalises the request and closes the connection (after a last
 * non-blocking flush). */
void upm_reactor_close(upm_rconn *rc, const char *reason);

/* Streams this child's reactor holds. */
int upm_reactor_count(void);

void upm_reactor_child_init(apr_pool_t *pchild, server_rec *s);
void upm_reactor_register_hooks(apr_pool_t *p);

#endif
