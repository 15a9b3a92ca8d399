/* SPDX-License-Identifier: Apache-2.0 */
/* The hiredis 0.14 poll adapter against an in-process fake Redis: timers,
 * the cross-thread wake-up, commands and replies, a server that hangs up,
 * and a refused connect. */
#include <apr_general.h>
#include <apr_thread_proc.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "upm_redis_poll.h"
#include <poll.h>
#include "upm_test.h"

static apr_pool_t *p;

/* ---- timers and wake-up ------------------------------------------------ */

static int fired[8], nfired;

static void mark(upm_rpoll *lp, void *baton)
{
    fired[nfired++] = (int)(apr_uintptr_t)baton;
}

static int rearms;

static void rearm(upm_rpoll *lp, void *baton)
{
    if (++rearms < 3) {
        UPM_CHECK(upm_rpoll_timer(lp, apr_time_now() + 1000, rearm, NULL) > 0);
    }
}

static void test_timers(void)
{
    apr_status_t rv;
    upm_rpoll *lp = upm_rpoll_create(p, &rv);
    apr_time_t t0 = apr_time_now();
    int id, i, n = 0;

    UPM_CHECK(lp != NULL);
    upm_rpoll_timer(lp, t0 + 30000, mark, (void *)3);
    upm_rpoll_timer(lp, t0 + 10000, mark, (void *)1);
    id = upm_rpoll_timer(lp, t0 + 15000, mark, (void *)9);
    upm_rpoll_timer(lp, t0 + 20000, mark, (void *)2);
    upm_rpoll_cancel(lp, id);
    while (nfired < 3 && apr_time_now() - t0 < 2000000) {
        upm_rpoll_run_once(lp, 500000);
    }
    UPM_CHECK_INT(nfired, 3);
    UPM_CHECK(fired[0] == 1 && fired[1] == 2 && fired[2] == 3);
    /* Run_once waited for the timers, not for its 500 ms maximum. */
    UPM_CHECK(apr_time_now() - t0 < 300000);
    UPM_CHECK(apr_time_now() - t0 >= 30000);

    /* A callback may arm its timer again. */
    upm_rpoll_timer(lp, apr_time_now(), rearm, NULL);
    for (i = 0; i < 50 && rearms < 3; i++) {
        upm_rpoll_run_once(lp, 100000);
    }
    UPM_CHECK_INT(rearms, 3);

    /* Slots are limited: arming reports it. */
    for (i = 0; i < UPM_RPOLL_TIMERS + 2; i++) {
        n += upm_rpoll_timer(lp, apr_time_now() + apr_time_from_sec(60), mark, NULL) > 0;
    }
    UPM_CHECK_INT(n, UPM_RPOLL_TIMERS);
}

static void *APR_THREAD_FUNC waker(apr_thread_t *t, void *d)
{
    apr_sleep(50000);
    upm_rpoll_wake(d);
    return NULL;
}

static void test_wake(void)
{
    apr_status_t rv;
    upm_rpoll *lp = upm_rpoll_create(p, &rv);
    apr_thread_t *t;
    apr_time_t t0 = apr_time_now();
    int woke;

    apr_thread_create(&t, NULL, waker, lp, p);
    woke = upm_rpoll_run_once(lp, apr_time_from_sec(5));
    UPM_CHECK_INT(woke, 1);
    UPM_CHECK(apr_time_now() - t0 < 1000000);
    apr_thread_join(&rv, t);
    /* Several wake-ups before the loop runs collapse into one. */
    upm_rpoll_wake(lp);
    upm_rpoll_wake(lp);
    UPM_CHECK_INT(upm_rpoll_run_once(lp, 0), 1);
    UPM_CHECK_INT(upm_rpoll_run_once(lp, 0), 0);
}

/* ---- against a fake server ----------------------------------------------- */

static int listen_any(int *port)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(s, (struct sockaddr *)&a, sizeof(a));
    listen(s, 4);
    getsockname(s, (struct sockaddr *)&a, &al);
    *port = ntohs(a.sin_port);
    fcntl(s, F_SETFL, O_NONBLOCK);
    return s;
}

static int connected = -1, disconnected = -1;
static char replies[4][32];
static int nreplies;

static void on_connect(const redisAsyncContext *ac, int status) { connected = status; }
static void on_disconnect(const redisAsyncContext *ac, int status) { disconnected = status; }

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *rep = r;
    if (rep && nreplies < 4) {
        snprintf(replies[nreplies++], sizeof(replies[0]), "%s:%s", (char *)priv,
                 rep->str ? rep->str : "?");
    }
}

static void test_redis(void)
{
    apr_status_t rv;
    upm_rpoll *lp = upm_rpoll_create(p, &rv);
    int port, ls = listen_any(&port), cs = -1, i;
    char req[256];
    size_t got = 0;
    redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", port);
    const char *want = "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";

    UPM_CHECK(ac && !ac->err);
    UPM_CHECK_INT(upm_rpoll_attach(lp, ac), REDIS_OK);
    UPM_CHECK_INT(upm_rpoll_attach(lp, ac), REDIS_ERR);
    UPM_CHECK(upm_rpoll_context(lp) == ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    redisAsyncCommand(ac, on_reply, "ping", "PING");
    redisAsyncCommand(ac, on_reply, "get", "GET %s", "k");

    for (i = 0; i < 200 && got < strlen(want); i++) {
        upm_rpoll_run_once(lp, 10000);
        if (cs < 0) {
            cs = accept(ls, NULL, NULL);
        }
        if (cs >= 0) {
            ssize_t n = recv(cs, req + got, sizeof(req) - 1 - got, MSG_DONTWAIT);
            if (n > 0) {
                got += (size_t)n;
            }
        }
    }
    req[got] = '\0';
    UPM_CHECK_INT(connected, REDIS_OK);
    UPM_CHECK_STR(req, want);
    UPM_CHECK(upm_rpoll_last_read(lp) == 0);

    /* Replies, split across writes as a network may deliver them. */
    (void)!write(cs, "+PONG\r\n$3\r\nb", 12);
    for (i = 0; i < 5; i++) {
        upm_rpoll_run_once(lp, 10000);
    }
    UPM_CHECK_INT(nreplies, 1);
    (void)!write(cs, "ar\r\n", 4);
    for (i = 0; i < 50 && nreplies < 2; i++) {
        upm_rpoll_run_once(lp, 10000);
    }
    UPM_CHECK_INT(nreplies, 2);
    UPM_CHECK_STR(replies[0], "ping:PONG");
    UPM_CHECK_STR(replies[1], "get:bar");
    UPM_CHECK(upm_rpoll_last_read(lp) > 0);

    /* The server hangs up: disconnect callback, and the loop forgets the
     * context hiredis freed. */
    close(cs);
    for (i = 0; i < 50 && upm_rpoll_context(lp); i++) {
        upm_rpoll_run_once(lp, 10000);
    }
    UPM_CHECK(upm_rpoll_context(lp) == NULL);
    UPM_CHECK_INT(disconnected, REDIS_ERR);

    /* Nobody listening: the connect callback reports the failure. */
    close(ls);
    connected = -1;
    ac = redisAsyncConnect("127.0.0.1", port);
    if (ac && !ac->err) {
        UPM_CHECK_INT(upm_rpoll_attach(lp, ac), REDIS_OK);
        redisAsyncSetConnectCallback(ac, on_connect);
        for (i = 0; i < 50 && upm_rpoll_context(lp); i++) {
            upm_rpoll_run_once(lp, 10000);
        }
        UPM_CHECK_INT(connected, REDIS_ERR);
        UPM_CHECK(upm_rpoll_context(lp) == NULL);
    }
    else {
        /* Refused at once: hiredis says so without the loop. */
        UPM_CHECK(ac != NULL);
        redisAsyncFree(ac);
    }
}

/* The module's own socket I/O (TLS): the loop polls what the hook asks
 * for, hands it what arrived instead of calling hiredis, and says when
 * hiredis frees the context. */
static int io_handled, io_detached;
static short io_want = POLLOUT, io_last;
static short io_events(void *d) { return io_want; }
static void io_handle(void *d, redisAsyncContext *ac, short rev)
{
    io_handled++;
    io_last = rev;
    io_want = 0;                /* nothing more wanted: poll only the wake-up */
}
static void io_detach(void *d) { io_detached++; }

static void test_io_hook(void)
{
    static const upm_rpoll_io io = { io_events, io_handle, io_detach };
    apr_status_t rv;
    upm_rpoll *lp = upm_rpoll_create(p, &rv);
    int port, ls = listen_any(&port), i;
    redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", port);

    UPM_CHECK(ac && !ac->err);
    UPM_CHECK_INT(upm_rpoll_attach(lp, ac), REDIS_OK);
    upm_rpoll_set_io(lp, &io, NULL);
    connected = -1;
    redisAsyncSetConnectCallback(ac, on_connect);
    for (i = 0; i < 20 && !io_handled; i++) {
        upm_rpoll_run_once(lp, 10000);
    }
    UPM_CHECK_INT(io_handled, 1);
    UPM_CHECK(io_last & POLLOUT);
    /* hiredis never saw the connect: the hook owns the socket. */
    UPM_CHECK_INT(connected, -1);
    UPM_CHECK(!(ac->c.flags & REDIS_CONNECTED));
    upm_rpoll_run_once(lp, 1000);
    UPM_CHECK_INT(io_handled, 1);   /* events 0: the socket is not polled */
    upm_rpoll_mark_read(lp);
    UPM_CHECK(upm_rpoll_last_read(lp) > 0);
    redisAsyncFree(ac);
    UPM_CHECK_INT(io_detached, 1);
    UPM_CHECK(upm_rpoll_context(lp) == NULL);
    close(ls);
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&p, NULL);
    test_timers();
    test_wake();
    test_redis();
    test_io_hook();
    apr_pool_destroy(p);
    apr_terminate();
    UPM_TEST_DONE("test_redis_poll");
}
