/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_redis_sentinel.h"
#include "upm_redis_tls.h"
#include "upm_config.h"

#include "http_config.h"
#include "http_log.h"
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>

APLOG_USE_MODULE(upload_progress);

/* A sentinel that does not answer within this is skipped: the listener
 * asks on its own thread, which also renews the feeder's lease. */
#define ASK_TIMEOUT_MS 500
#define WATCH_POLL_MS  250
#define WATCH_RETRY    apr_time_from_msec(500)

static struct {
    server_rec *s;
    const upm_redis_sentinel_conf *cf;
    apr_thread_mutex_t *mu;
    char host[256];
    int port;
    int known, stale;
    volatile unsigned epoch;
    unsigned next;              /* the sentinel to try first */
    void (*moved)(void *);
    void *baton;
    apr_thread_t *thread;
    int timeout_ms;
    volatile int stop;
} S;

int upm_redis_sentinel_enabled(void)
{
    return S.cf != NULL;
}

unsigned upm_redis_sentinel_epoch(void)
{
    return S.epoch;
}

int upm_redis_sentinel_is_primary(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1
           && r->element[0]->type == REDIS_REPLY_STRING
           && strcmp(r->element[0]->str, "master") == 0;
}

/* ---- one sentinel -------------------------------------------------------- */

typedef struct {
    redisContext *c;
    SSL *ssl;
} sconn;

static void sconn_close(sconn *k)
{
    upm_redis_tls_free(k->ssl);
    if (k->c) {
        redisFree(k->c);
    }
    k->c = NULL;
    k->ssl = NULL;
}

static redisReply *scmd(sconn *k, const char *fmt, ...)
{
    va_list ap;
    void *r = NULL;
    va_start(ap, fmt);
    if (!k->ssl) {
        r = redisvCommand(k->c, fmt, ap);
    }
    else if (redisvAppendCommand(k->c, fmt, ap) != REDIS_OK
             || upm_redis_tls_get_reply(k->ssl, k->c, &r) != REDIS_OK) {
        r = NULL;
    }
    va_end(ap);
    return r;
}

static const char *sconn_open(apr_pool_t *p, int i, int ms, sconn *k)
{
    const upm_redis_sentinel_conf *cf = S.cf;
    struct timeval tv;
    redisReply *r;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    memset(k, 0, sizeof(*k));
    k->c = redisConnectWithTimeout(cf->host[i], cf->port[i], tv);
    if (!k->c || k->c->err) {
        const char *why = k->c ? apr_pstrdup(p, k->c->errstr) : "out of memory";
        sconn_close(k);
        return why;
    }
    redisSetTimeout(k->c, tv);
    if (cf->tls && !(k->ssl = upm_redis_tls_connect(k->c, cf->host[i]))) {
        const char *why = apr_pstrdup(p, k->c->errstr);
        sconn_close(k);
        return why;
    }
    if (cf->password) {
        r = cf->user ? scmd(k, "AUTH %s %s", cf->user, cf->password)
                     : scmd(k, "AUTH %s", cf->password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            const char *why = apr_psprintf(p, "AUTH refused: %s", r ? r->str : k->c->errstr);
            if (r) {
                freeReplyObject(r);
            }
            sconn_close(k);
            return why;
        }
        freeReplyObject(r);
    }
    return NULL;
}

/* SENTINEL get-master-addr-by-name from the first sentinel that knows. */
static const char *ask(apr_pool_t *p, char *host, apr_size_t hlen, int *port)
{
    const upm_redis_sentinel_conf *cf = S.cf;
    const char *whys = "";
    int k;

    for (k = 0; k < cf->n; k++) {
        int i = (int)((S.next + (unsigned)k) % (unsigned)cf->n);
        sconn c;
        redisReply *r;
        const char *why = sconn_open(p, i, ASK_TIMEOUT_MS, &c);
        if (!why) {
            r = scmd(&c, "SENTINEL get-master-addr-by-name %s", cf->master);
            if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2
                && r->element[0]->type == REDIS_REPLY_STRING
                && r->element[1]->type == REDIS_REPLY_STRING && atoi(r->element[1]->str) > 0) {
                apr_cpystrn(host, r->element[0]->str, hlen);
                *port = atoi(r->element[1]->str);
                freeReplyObject(r);
                sconn_close(&c);
                S.next = (unsigned)i;
                return NULL;
            }
            why = !r ? apr_pstrdup(p, c.c->errstr)
                  : r->type == REDIS_REPLY_ERROR ? apr_pstrdup(p, r->str)
                  : r->type == REDIS_REPLY_NIL ? apr_psprintf(p, "does not know master %s",
                                                              cf->master)
                  : "unexpected reply";
            if (r) {
                freeReplyObject(r);
            }
            sconn_close(&c);
        }
        whys = apr_psprintf(p, "%s%s%s:%d: %s", whys, *whys ? "; " : "", cf->host[i],
                            cf->port[i], why);
    }
    return apr_psprintf(p, "no sentinel gave the primary of %s (%s)", cf->master, whys);
}

/* A new address from a sentinel: a new epoch, when it differs. */
static void learn(const char *host, int port, const char *how)
{
    int changed;
    char old[300];

    apr_thread_mutex_lock(S.mu);
    changed = !S.known || S.port != port || strcmp(S.host, host) != 0;
    apr_snprintf(old, sizeof(old), S.known ? "%s:%d" : "unknown", S.host, S.port);
    if (changed) {
        apr_cpystrn(S.host, host, sizeof(S.host));
        S.port = port;
        S.known = 1;
        S.epoch++;
    }
    S.stale = 0;
    apr_thread_mutex_unlock(S.mu);
    if (changed) {
        ap_log_error(APLOG_MARK, old[0] == 'u' ? APLOG_INFO : APLOG_NOTICE, 0, S.s,
                     APLOGNO(14053) "Redis Sentinel: the primary of %s is %s:%d (%s; was %s)",
                     S.cf->master, host, port, how, old);
        if (S.moved) {
            S.moved(S.baton);
        }
    }
}

const char *upm_redis_sentinel_primary(apr_pool_t *p, const char **host, int *port,
                                       unsigned *epoch)
{
    char h[256];
    int pt = 0;
    const char *err;

    apr_thread_mutex_lock(S.mu);
    if (S.known && !S.stale) {
        *host = apr_pstrdup(p, S.host);
        *port = S.port;
        *epoch = S.epoch;
        apr_thread_mutex_unlock(S.mu);
        return NULL;
    }
    apr_thread_mutex_unlock(S.mu);
    if ((err = ask(p, h, sizeof(h), &pt))) {
        return err;
    }
    learn(h, pt, "asked");
    apr_thread_mutex_lock(S.mu);
    *host = apr_pstrdup(p, S.host);
    *port = S.port;
    *epoch = S.epoch;
    apr_thread_mutex_unlock(S.mu);
    return NULL;
}

void upm_redis_sentinel_stale(unsigned epoch)
{
    if (!S.cf) {
        return;
    }
    apr_thread_mutex_lock(S.mu);
    if (epoch == 0 || epoch == S.epoch) {
        S.stale = 1;
    }
    apr_thread_mutex_unlock(S.mu);
}

/* ---- following +switch-master ----------------------------------------- */

static void nap(apr_interval_time_t t)
{
    apr_time_t until = apr_time_now() + t;
    while (!S.stop && apr_time_now() < until) {
        apr_sleep(apr_time_from_msec(50));
    }
}

/* "+switch-master <name> <old-ip> <old-port> <new-ip> <new-port>" */
static void on_switch(const char *msg)
{
    char name[160], oh[256], nh[256];
    int op, np;
    if (sscanf(msg, "%159s %255s %d %255s %d", name, oh, &op, nh, &np) == 5
        && strcmp(name, S.cf->master) == 0 && np > 0) {
        learn(nh, np, "+switch-master");
    }
}

static void *APR_THREAD_FUNC watcher(apr_thread_t *thd, void *data)
{
    apr_pool_t *p;
    int i = 0;
    apr_uint64_t fails = 0;

    apr_pool_create(&p, NULL);
    while (!S.stop) {
        sconn c;
        const char *why;
        redisReply *r;
        char h[256];
        int pt;

        apr_pool_clear(p);
        why = sconn_open(p, i, S.timeout_ms, &c);
        if (!why) {
            r = scmd(&c, "SUBSCRIBE +switch-master");
            if (!r || r->type == REDIS_REPLY_ERROR) {
                why = r ? apr_pstrdup(p, r->str) : apr_pstrdup(p, c.c->errstr);
            }
            if (r) {
                freeReplyObject(r);
            }
        }
        if (why) {
            if (fails++ % 20 == 0) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, S.s, APLOGNO(14054)
                             "Redis Sentinel %s:%d: %s; trying the next", S.cf->host[i],
                             S.cf->port[i], why);
            }
            sconn_close(&c);
            i = (i + 1) % S.cf->n;
            nap(WATCH_RETRY);
            continue;
        }
        fails = 0;
        /* A switch while nobody listened: ask once subscribed. */
        if (!ask(p, h, sizeof(h), &pt)) {
            learn(h, pt, "asked");
        }
        while (!S.stop) {
            struct pollfd pf;
            void *rep = NULL;
            redisReply *m;
            int rc;
            if (!(c.ssl && SSL_pending(c.ssl) > 0)) {
                pf.fd = c.c->fd;
                pf.events = POLLIN;
                pf.revents = 0;
                rc = poll(&pf, 1, WATCH_POLL_MS);
                if (rc == 0 || (rc < 0 && errno == EINTR)) {
                    continue;
                }
                if (rc < 0) {
                    break;
                }
            }
            if ((c.ssl ? upm_redis_tls_get_reply(c.ssl, c.c, &rep)
                       : redisGetReply(c.c, &rep)) != REDIS_OK) {
                ap_log_error(APLOG_MARK, APLOG_INFO, 0, S.s, APLOGNO(14055)
                             "Redis Sentinel %s:%d: link lost (%s)", S.cf->host[i],
                             S.cf->port[i], c.c->errstr);
                break;
            }
            m = rep;
            if (m->type == REDIS_REPLY_ARRAY && m->elements == 3
                && m->element[0]->type == REDIS_REPLY_STRING
                && strcmp(m->element[0]->str, "message") == 0
                && m->element[2]->type == REDIS_REPLY_STRING) {
                on_switch(m->element[2]->str);
            }
            freeReplyObject(m);
        }
        sconn_close(&c);
        i = (i + 1) % S.cf->n;
    }
    apr_pool_destroy(p);
    apr_thread_exit(thd, APR_SUCCESS);
    return NULL;
}

static apr_status_t watcher_stop(void *d)
{
    apr_status_t rv;
    if (S.thread) {
        S.stop = 1;
        apr_thread_join(&rv, S.thread);
        S.thread = NULL;
    }
    S.cf = NULL;
    return APR_SUCCESS;
}

void upm_redis_sentinel_child_init(apr_pool_t *pchild, server_rec *s,
                                   void (*moved)(void *), void *baton)
{
    upm_srv_conf *sc = ap_get_module_config(s->module_config, &upload_progress_module);
    apr_status_t rv;

    memset(&S, 0, sizeof(S));
    if (!sc->redis || !sc->redis_sentinel) {
        return;
    }
    S.s = s;
    S.timeout_ms = upm_conf_redis_timeout_ms(sc);
    S.moved = moved;
    S.baton = baton;
    if ((rv = apr_thread_mutex_create(&S.mu, APR_THREAD_MUTEX_DEFAULT, pchild))
        != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(14056)
                     "cannot create the Redis Sentinel lock");
        return;
    }
    S.cf = sc->redis_sentinel;
    rv = apr_thread_create(&S.thread, NULL, watcher, NULL, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(14057)
                     "cannot start the Redis Sentinel thread: failovers are noticed only "
                     "when a link fails");
        S.thread = NULL;
    }
    apr_pool_pre_cleanup_register(pchild, NULL, watcher_stop);
}
