/* SPDX-License-Identifier: Apache-2.0 */
/* A hiredis 0.14 event adapter over poll(2), with timers and a wake-up
 * that another thread may trigger: hiredis 0.14 ships adapters for
 * libevent, libev and friends, none of which httpd has.  One loop drives
 * one redisAsyncContext at a time; it belongs to the thread that runs it. */
#ifndef UPM_REDIS_POLL_H
#define UPM_REDIS_POLL_H

#include <apr_pools.h>
#include <apr_time.h>
#include <hiredis/async.h>

typedef struct upm_rpoll upm_rpoll;
typedef void (*upm_rpoll_fn)(upm_rpoll *lp, void *baton);

#define UPM_RPOLL_TIMERS 8

/* Creates the loop and its wake-up pipe (closed with p).  NULL on error. */
upm_rpoll *upm_rpoll_create(apr_pool_t *p, apr_status_t *rv);

/* Installs the adapter's hooks on ac.  REDIS_ERR when ac already has an
 * adapter or the loop already drives a context. */
int upm_rpoll_attach(upm_rpoll *lp, redisAsyncContext *ac);

/* The socket I/O of the context, when the module does it itself (TLS:
 * upm_redis_tls.c) instead of hiredis: the loop asks `events` which
 * poll(2) events to wait for (0: none) and hands what arrived to
 * `handle` in place of redisAsyncHandleRead/Write; `detach` is called
 * once, as hiredis frees the context.  Set after upm_rpoll_attach. */
typedef struct upm_rpoll_io {
    short (*events)(void *d);
    void (*handle)(void *d, redisAsyncContext *ac, short revents);
    void (*detach)(void *d);
} upm_rpoll_io;
void upm_rpoll_set_io(upm_rpoll *lp, const upm_rpoll_io *io, void *d);

/* Records that bytes arrived now (for an upm_rpoll_io handler). */
void upm_rpoll_mark_read(upm_rpoll *lp);

/* The context the loop drives; NULL once hiredis has freed it (after a
 * disconnect, a failed connect or redisAsyncFree). */
redisAsyncContext *upm_rpoll_context(const upm_rpoll *lp);

/* Calls fn(lp, baton) once at `when` (from run_once, on the loop's
 * thread).  Returns a timer id > 0, or 0 when all slots are taken. */
int upm_rpoll_timer(upm_rpoll *lp, apr_time_t when, upm_rpoll_fn fn, void *baton);
void upm_rpoll_cancel(upm_rpoll *lp, int id);

/* Waits at most max for I/O on the context, a due timer or a wake-up,
 * then handles whatever is ready.  Returns 1 when woken by
 * upm_rpoll_wake, 0 otherwise, -1 on a poll(2) error. */
int upm_rpoll_run_once(upm_rpoll *lp, apr_interval_time_t max);

/* Interrupts run_once from any thread (async-signal-safe). */
void upm_rpoll_wake(upm_rpoll *lp);

/* When bytes last arrived on the context (0: never). */
apr_time_t upm_rpoll_last_read(const upm_rpoll *lp);

#endif
