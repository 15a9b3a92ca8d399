/* SPDX-License-Identifier: Apache-2.0 */
/* Blocking Redis connections for request threads (publish, Streams
 * resume): a small per-child pool, so a request pays a connect only when
 * every pooled connection is busy. */
#include "upm_redis.h"
#include "upm_config.h"
#include "upm_ingest.h"
#include "upm_redis_tls.h"
#include "upm_redis_sentinel.h"

#include "http_config.h"
#include "http_log.h"
#include <apr_reslist.h>
#include <apr_strings.h>

APLOG_USE_MODULE(upload_progress);

struct upm_redis_conn {
    redisContext *ctx;
    SSL *ssl;                   /* rediss://: the socket speaks TLS */
    unsigned epoch;             /* Sentinel: the primary's address it was made to */
    int uses;
};

static struct {
    apr_reslist_t *rl;
    server_rec *s;
    upm_srv_conf *sc;
    const upm_redis_url *url;
    int timeout_ms;
    /* A refused connect makes the next ones fail fast for a moment, so a
     * Redis outage costs requests microseconds, not a timeout each. */
    volatile apr_time_t failed_until;
    const char *volatile last_err;
} pool;

static const char *ctx_error(apr_pool_t *p, const redisContext *c)
{
    return apr_psprintf(p, "%s", c->errstr[0] ? c->errstr : "connection failed");
}

static apr_status_t rconn_make(void **res, void *params, apr_pool_t *p)
{
    struct timeval tv;
    upm_redis_conn *rc;
    redisContext *c;
    redisReply *rep;

    const char *host = pool.url->host;
    int port = pool.url->port;
    unsigned epoch = 0;

    tv.tv_sec = pool.timeout_ms / 1000;
    tv.tv_usec = (pool.timeout_ms % 1000) * 1000;
    if (upm_redis_sentinel_enabled()) {
        const char *err = upm_redis_sentinel_primary(p, &host, &port, &epoch);
        if (err) {
            pool.last_err = apr_pstrdup(p, err);
            return APR_ECONNREFUSED;
        }
    }
    c = pool.url->is_unix ? redisConnectUnixWithTimeout(pool.url->path, tv)
                          : redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        pool.last_err = c ? apr_psprintf(p, "cannot connect to %s:%d: %s", host, port,
                                         c->errstr)
                          : "cannot connect: out of memory";
        if (c) {
            redisFree(c);
        }
        upm_redis_sentinel_stale(epoch);
        return APR_ECONNREFUSED;
    }
    redisSetTimeout(c, tv);
    redisEnableKeepAlive(c);
    rc = apr_pcalloc(p, sizeof(*rc));
    rc->ctx = c;
    rc->epoch = epoch;
    if (pool.url->tls && !(rc->ssl = upm_redis_tls_connect(c, host))) {
        pool.last_err = apr_psprintf(p, "cannot connect: %s", ctx_error(p, c));
        redisFree(c);
        return APR_ECONNREFUSED;
    }
    if (pool.url->password) {
        rep = pool.url->user
            ? upm_redis_conn_command(rc, "AUTH %s %s", pool.url->user, pool.url->password)
            : upm_redis_conn_command(rc, "AUTH %s", pool.url->password);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            pool.last_err = rep ? apr_psprintf(p, "AUTH refused: %s", rep->str)
                                : apr_psprintf(p, "AUTH failed: %s", ctx_error(p, c));
            if (rep) {
                freeReplyObject(rep);
            }
            upm_redis_tls_free(rc->ssl);
            redisFree(c);
            return APR_EACCES;
        }
        freeReplyObject(rep);
    }
    if (upm_redis_sentinel_enabled()) {
        rep = upm_redis_conn_command(rc, "ROLE");
        if (!upm_redis_sentinel_is_primary(rep)) {
            pool.last_err = apr_psprintf(p, "%s:%d is not the primary (ROLE: %s)", host, port,
                                         !rep ? ctx_error(p, c)
                                         : rep->type == REDIS_REPLY_ERROR ? rep->str
                                         : rep->type == REDIS_REPLY_ARRAY && rep->elements
                                           && rep->element[0]->type == REDIS_REPLY_STRING
                                         ? rep->element[0]->str : "?");
            pool.last_err = apr_pstrdup(p, pool.last_err);
            if (rep) {
                freeReplyObject(rep);
            }
            upm_redis_sentinel_stale(epoch);
            upm_redis_tls_free(rc->ssl);
            redisFree(c);
            return APR_ECONNREFUSED;
        }
        freeReplyObject(rep);
    }
    if (pool.url->db) {
        rep = upm_redis_conn_command(rc, "SELECT %d", pool.url->db);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            pool.last_err = rep ? apr_psprintf(p, "SELECT %d refused: %s", pool.url->db,
                                               rep->str)
                                : apr_psprintf(p, "SELECT failed: %s", ctx_error(p, c));
            if (rep) {
                freeReplyObject(rep);
            }
            upm_redis_tls_free(rc->ssl);
            redisFree(c);
            return APR_EINVAL;
        }
        freeReplyObject(rep);
    }
    *res = rc;
    return APR_SUCCESS;
}

static apr_status_t rconn_free(void *res, void *params, apr_pool_t *p)
{
    upm_redis_conn *rc = res;
    upm_redis_tls_free(rc->ssl);
    rc->ssl = NULL;
    if (rc->ctx) {
        redisFree(rc->ctx);
        rc->ctx = NULL;
    }
    return APR_SUCCESS;
}

void upm_redis_sync_child_init(apr_pool_t *pchild, server_rec *s)
{
    upm_srv_conf *sc = ap_get_module_config(s->module_config, &upload_progress_module);
    apr_status_t rv;

    if (!sc->redis) {
        return;
    }
    pool.s = s;
    pool.sc = sc;
    pool.url = sc->redis;
    pool.timeout_ms = upm_conf_redis_timeout_ms(sc);
    /* Up to 2 idle connections kept, 64 at once; idle ones closed after a
     * minute so a quiet server holds nothing open for long. */
    rv = apr_reslist_create(&pool.rl, 0, 2, 64, apr_time_from_sec(60), rconn_make,
                            rconn_free, NULL, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(13201)
                     "cannot create the Redis connection pool");
        pool.rl = NULL;
        return;
    }
    apr_reslist_timeout_set(pool.rl, apr_time_from_msec(pool.timeout_ms));
}

upm_redis_conn *upm_redis_acquire(const char **err)
{
    void *res;
    apr_status_t rv;
    apr_time_t now = apr_time_now();

    if (!pool.rl) {
        *err = "Redis is not configured in this child";
        return NULL;
    }
    if (now < pool.failed_until) {
        *err = pool.last_err ? pool.last_err : "Redis is unreachable";
        return NULL;
    }
    rv = apr_reslist_acquire(pool.rl, &res);
    if (rv == APR_SUCCESS && upm_redis_sentinel_enabled()
        && ((upm_redis_conn *)res)->epoch != upm_redis_sentinel_epoch()) {
        /* Made to a primary that has been replaced since. */
        apr_reslist_invalidate(pool.rl, res);
        rv = apr_reslist_acquire(pool.rl, &res);
    }
    if (rv != APR_SUCCESS) {
        if (rv == APR_ETIMEDOUT || APR_STATUS_IS_TIMEUP(rv)) {
            *err = "every Redis connection of this child is busy";
            return NULL;
        }
        pool.failed_until = apr_time_now() + apr_time_from_msec(500);
        *err = pool.last_err ? pool.last_err : "Redis is unreachable";
        return NULL;
    }
    return res;
}

void upm_redis_release(upm_redis_conn *c, int broken)
{
    if (broken || c->ctx->err) {
        /* A primary that fails may have been replaced. */
        upm_redis_sentinel_stale(c->epoch);
        apr_reslist_invalidate(pool.rl, c);
        return;
    }
    c->uses++;
    apr_reslist_release(pool.rl, c);
}

int upm_redis_conn_reused(const upm_redis_conn *c)
{
    return c->uses > 0;
}

redisContext *upm_redis_conn_ctx(upm_redis_conn *c)
{
    return c->ctx;
}

void upm_redis_conn_set_timeout(upm_redis_conn *c, int ms)
{
    struct timeval tv;
    ms = ms > 0 ? ms : pool.timeout_ms;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    redisSetTimeout(c->ctx, tv);
}

int upm_redis_conn_get_reply(upm_redis_conn *c, void **reply)
{
    return c->ssl ? upm_redis_tls_get_reply(c->ssl, c->ctx, reply)
                  : redisGetReply(c->ctx, reply);
}

void *upm_redis_conn_command(upm_redis_conn *c, const char *fmt, ...)
{
    va_list ap;
    void *reply = NULL;

    va_start(ap, fmt);
    if (!c->ssl) {
        reply = redisvCommand(c->ctx, fmt, ap);
        va_end(ap);
        return reply;
    }
    if (redisvAppendCommand(c->ctx, fmt, ap) != REDIS_OK) {
        va_end(ap);
        return NULL;
    }
    va_end(ap);
    if (upm_redis_tls_get_reply(c->ssl, c->ctx, &reply) != REDIS_OK) {
        return NULL;
    }
    return reply;
}

server_rec *upm_redis_server(void)
{
    return pool.s;
}

upm_srv_conf *upm_redis_conf(void)
{
    return pool.sc;
}

/* ---- replies ----------------------------------------------------------- */

static int reply_str_is(const redisReply *r, const char *s)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
           && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

static int reply_xid(const redisReply *r, upm_xid *x)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
           && upm_xid_parse(r->str, r->len, x) == 0;
}

int upm_redis_parse_xinfo(const redisReply *reply, upm_xinfo *out)
{
    size_t i;
    memset(out, 0, sizeof(*out));
    if (!reply) {
        return -1;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        /* "ERR no such key": the stream does not exist (yet, or any more). */
        return strstr(reply->str, "no such key") ? 0 : -1;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
        return -1;
    }
    out->exists = 1;
    for (i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i], *v = reply->element[i + 1];
        if (reply_str_is(k, "length") && v->type == REDIS_REPLY_INTEGER) {
            out->length = (apr_uint64_t)v->integer;
        }
        else if (reply_str_is(k, "last-generated-id")) {
            reply_xid(v, &out->last_generated);
        }
        else if (reply_str_is(k, "entries-added") && v->type == REDIS_REPLY_INTEGER) {
            out->has_entries_added = 1;
            out->entries_added = (apr_uint64_t)v->integer;
        }
        else if (reply_str_is(k, "max-deleted-entry-id")) {
            out->has_max_deleted = reply_xid(v, &out->max_deleted);
        }
        else if (reply_str_is(k, "first-entry") && v->type == REDIS_REPLY_ARRAY
                 && v->elements >= 1) {
            reply_xid(v->element[0], &out->first_entry);
        }
    }
    return 0;
}

int upm_redis_parse_entry(apr_pool_t *p, const redisReply *e, const char **id,
                          upm_xid *xid, const char **data, apr_size_t *dlen,
                          const char **owner_hint)
{
    const redisReply *kv;
    const char **nm, **vl;
    apr_size_t *nl, *vll, n, i;

    *data = NULL;
    *owner_hint = NULL;
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements != 2
        || !reply_xid(e->element[0], xid)) {
        return -1;
    }
    *id = apr_pstrmemdup(p, e->element[0]->str, e->element[0]->len);
    kv = e->element[1];
    if (kv->type != REDIS_REPLY_ARRAY || kv->elements % 2) {
        return kv->type == REDIS_REPLY_NIL ? 0 : -1;    /* deleted entry */
    }
    n = kv->elements / 2;
    nm = apr_palloc(p, sizeof(char *) * (n + 1));
    vl = apr_palloc(p, sizeof(char *) * (n + 1));
    nl = apr_palloc(p, sizeof(apr_size_t) * (n + 1));
    vll = apr_palloc(p, sizeof(apr_size_t) * (n + 1));
    for (i = 0; i < n; i++) {
        const redisReply *k = kv->element[2 * i], *v = kv->element[2 * i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            return -1;
        }
        nm[i] = k->str;
        nl[i] = k->len;
        vl[i] = v->str;
        vll[i] = v->len;
    }
    if (upm_ingest_stream_fields(p, n, nm, nl, vl, vll, data, dlen, owner_hint) != 0) {
        *data = NULL;
    }
    return 0;
}
