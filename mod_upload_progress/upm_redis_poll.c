/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_redis_poll.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

typedef struct {
    int id;                     /* 0: free slot */
    apr_time_t when;
    upm_rpoll_fn fn;
    void *baton;
} rp_timer;

struct upm_rpoll {
    redisAsyncContext *ac;
    int reading, writing;
    int wake_rd, wake_wr;
    int next_id;
    apr_time_t last_read;
    const upm_rpoll_io *io;
    void *io_data;
    rp_timer timers[UPM_RPOLL_TIMERS];
};

/* ---- hooks hiredis calls --------------------------------------------- */

static void add_read(void *d)  { ((upm_rpoll *)d)->reading = 1; }
static void del_read(void *d)  { ((upm_rpoll *)d)->reading = 0; }
static void add_write(void *d) { ((upm_rpoll *)d)->writing = 1; }
static void del_write(void *d) { ((upm_rpoll *)d)->writing = 0; }

static void cleanup(void *d)
{
    /* Called from inside hiredis as it frees the context: from here on the
     * loop must not touch it. */
    upm_rpoll *lp = d;
    const upm_rpoll_io *io = lp->io;
    lp->ac = NULL;
    lp->reading = lp->writing = 0;
    lp->io = NULL;
    if (io && io->detach) {
        io->detach(lp->io_data);
    }
    lp->io_data = NULL;
}

/* ---- the loop ---------------------------------------------------------- */

static apr_status_t close_pipe(void *d)
{
    upm_rpoll *lp = d;
    if (lp->wake_rd >= 0) {
        close(lp->wake_rd);
    }
    if (lp->wake_wr >= 0) {
        close(lp->wake_wr);
    }
    lp->wake_rd = lp->wake_wr = -1;
    return APR_SUCCESS;
}

upm_rpoll *upm_rpoll_create(apr_pool_t *p, apr_status_t *rv)
{
    upm_rpoll *lp = apr_pcalloc(p, sizeof(*lp));
    int fds[2];

    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        *rv = APR_FROM_OS_ERROR(errno);
        return NULL;
    }
    lp->wake_rd = fds[0];
    lp->wake_wr = fds[1];
    lp->next_id = 1;
    apr_pool_cleanup_register(p, lp, close_pipe, apr_pool_cleanup_null);
    *rv = APR_SUCCESS;
    return lp;
}

int upm_rpoll_attach(upm_rpoll *lp, redisAsyncContext *ac)
{
    if (ac->ev.data != NULL || lp->ac != NULL) {
        return REDIS_ERR;
    }
    lp->ac = ac;
    lp->reading = lp->writing = 0;
    lp->last_read = 0;
    ac->ev.data = lp;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return REDIS_OK;
}

void upm_rpoll_set_io(upm_rpoll *lp, const upm_rpoll_io *io, void *d)
{
    lp->io = io;
    lp->io_data = d;
}

void upm_rpoll_mark_read(upm_rpoll *lp)
{
    lp->last_read = apr_time_now();
}

redisAsyncContext *upm_rpoll_context(const upm_rpoll *lp)
{
    return lp->ac;
}

apr_time_t upm_rpoll_last_read(const upm_rpoll *lp)
{
    return lp->last_read;
}

int upm_rpoll_timer(upm_rpoll *lp, apr_time_t when, upm_rpoll_fn fn, void *baton)
{
    int i;
    for (i = 0; i < UPM_RPOLL_TIMERS; i++) {
        if (lp->timers[i].id == 0) {
            lp->timers[i].id = lp->next_id++;
            if (lp->next_id <= 0) {
                lp->next_id = 1;
            }
            lp->timers[i].when = when;
            lp->timers[i].fn = fn;
            lp->timers[i].baton = baton;
            return lp->timers[i].id;
        }
    }
    return 0;
}

void upm_rpoll_cancel(upm_rpoll *lp, int id)
{
    int i;
    if (id <= 0) {
        return;
    }
    for (i = 0; i < UPM_RPOLL_TIMERS; i++) {
        if (lp->timers[i].id == id) {
            lp->timers[i].id = 0;
        }
    }
}

void upm_rpoll_wake(upm_rpoll *lp)
{
    char c = 1;
    /* A full pipe already holds a wake-up. */
    if (write(lp->wake_wr, &c, 1) < 0) {
        return;
    }
}

static void fire_timers(upm_rpoll *lp)
{
    apr_time_t now = apr_time_now();
    int i;
    for (i = 0; i < UPM_RPOLL_TIMERS; i++) {
        rp_timer t = lp->timers[i];
        if (t.id && t.when <= now) {
            /* Freed before the call: the callback may arm it again. */
            lp->timers[i].id = 0;
            t.fn(lp, t.baton);
        }
    }
}

int upm_rpoll_run_once(upm_rpoll *lp, apr_interval_time_t max)
{
    struct pollfd pf[2];
    apr_time_t now = apr_time_now(), until = now + max;
    int n = 1, rc, woke = 0, i, ms;

    for (i = 0; i < UPM_RPOLL_TIMERS; i++) {
        if (lp->timers[i].id && lp->timers[i].when < until) {
            until = lp->timers[i].when;
        }
    }
    ms = until <= now ? 0 : (int)((until - now + 999) / 1000);
    pf[0].fd = lp->wake_rd;
    pf[0].events = POLLIN;
    pf[0].revents = 0;
    if (lp->ac && lp->io) {
        pf[1].events = lp->io->events(lp->io_data);
        if (pf[1].events) {
            pf[1].fd = lp->ac->c.fd;
            pf[1].revents = 0;
            n = 2;
        }
    }
    else if (lp->ac && (lp->reading || lp->writing)) {
        pf[1].fd = lp->ac->c.fd;
        pf[1].events = (short)((lp->reading ? POLLIN : 0) | (lp->writing ? POLLOUT : 0));
        pf[1].revents = 0;
        n = 2;
    }
    rc = poll(pf, (nfds_t)n, ms);
    if (rc < 0 && errno != EINTR) {
        return -1;
    }
    if (rc > 0) {
        if (pf[0].revents & POLLIN) {
            char buf[64];
            while (read(lp->wake_rd, buf, sizeof(buf)) > 0) {
            }
            woke = 1;
        }
        if (n == 2 && lp->ac && lp->io && pf[1].revents) {
            lp->io->handle(lp->io_data, lp->ac, pf[1].revents);
        }
        else if (n == 2 && !lp->io) {
            short ev = pf[1].revents;
            /* Errors and hang-ups go to whichever handler hiredis waits
             * in: it reads the socket error and disconnects. */
            if (lp->ac && lp->reading && (ev & (POLLIN | POLLERR | POLLHUP))) {
                lp->last_read = apr_time_now();
                redisAsyncHandleRead(lp->ac);
            }
            if (lp->ac && lp->writing && (ev & (POLLOUT | POLLERR | POLLHUP))) {
                redisAsyncHandleWrite(lp->ac);
            }
        }
    }
    fire_timers(lp);
    return woke;
}
