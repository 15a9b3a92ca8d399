/* SPDX-License-Identifier: Apache-2.0 */
/* With Redis configured, published events go to Redis rather than into
 * this server's ring, so that every node sharing that Redis delivers them
 * (each node's listener feeds its own ring).  Also the Streams resume
 * path: entries a node's ring does not hold are read back from the stream. */
#include "upm_redis.h"
#include "upm_config.h"
#include "upm_handlers.h"
#include "upm_ingest.h"
#include "upm_stats.h"
#include "upm_redis_sentinel.h"

#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"
#include <apr_strings.h>
#include <jansson.h>

APLOG_USE_MODULE(upload_progress);

#define UPM_XRANGE_BATCH 512
/* A resume that would read more than this from the stream gets a reset
 * instead: re-reading state is cheaper than a replay that long. */
#define UPM_XRANGE_MAX   100000

static int unavailable(request_rec *r, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, APLOGNO(13202)
                  "publish refused: Redis is unavailable (%s)", why);
    apr_table_setn(r->err_headers_out, "Retry-After", "1");
    return upm_json_error(r, HTTP_SERVICE_UNAVAILABLE, "unavailable",
                          apr_psprintf(r->pool, "Redis is unavailable: %s", why), -1);
}

/* Sends MULTI, the n commands and EXEC in one write and reads the replies;
 * returns EXEC's reply (caller frees), or NULL with *err set. */
static redisReply *transact(apr_pool_t *p, upm_redis_conn *c, int n, const int *argc,
                            const char ***argv, size_t **lens, const char **err)
{
    redisContext *ctx = upm_redis_conn_ctx(c);
    redisReply *rep = NULL;
    int i;

    redisAppendCommand(ctx, "MULTI");
    for (i = 0; i < n; i++) {
        redisAppendCommandArgv(ctx, argc[i], argv[i], lens[i]);
    }
    redisAppendCommand(ctx, "EXEC");
    for (i = 0; i < n + 2; i++) {
        void *v = NULL;
        if (upm_redis_conn_get_reply(c, &v) != REDIS_OK) {
            *err = apr_psprintf(p, "%s", ctx->errstr[0] ? ctx->errstr : "I/O error");
            if (rep) {
                freeReplyObject(rep);
            }
            return NULL;
        }
        if (i == n + 1) {
            rep = v;
        }
        else {
            redisReply *q = v;
            if (q->type == REDIS_REPLY_ERROR && !*err) {
                *err = apr_pstrdup(p, q->str);
            }
            freeReplyObject(q);
        }
    }
    return rep;
}

/* The channel of an owner-less message: the first scope channel whose
 * field the message names.  Else "user:", which the default user:*
 * pattern receives and which names nobody: the JSON's own ids route it. */
static const char *scope_channel(apr_pool_t *p, const upm_srv_conf *sc, const upm_msg *m)
{
    int n, i;
    const upm_chan_scope *cs = upm_conf_redis_scope_channels(sc, &n);
    for (i = 0; i < n; i++) {
        if (*m->f[cs[i].field]) {
            return apr_pstrcat(p, cs[i].prefix, m->f[cs[i].field], NULL);
        }
    }
    return "user:";
}

apr_status_t upm_redis_send(apr_pool_t *p, upm_msg *const *msgs, int n, json_t **ids,
                            const char **err)
{
    upm_srv_conf *sc = upm_redis_conf();
    int stream, i, attempt;
    long maxlen;
    const char ***argv;
    size_t **lens;
    int *argc;
    redisReply *rep = NULL;
    int wait_n, wait_ms;
    long confirmed = -1;
    const char *wait_err = NULL;

    *err = NULL;
    if (ids) {
        *ids = NULL;
    }
    if (!sc || n <= 0) {
        *err = "Redis is not configured";
        return APR_EGENERAL;
    }
    stream = sc->redis_stream != NULL;
    wait_n = stream && sc->redis_wait_replicas > 0 ? sc->redis_wait_replicas : 0;
    wait_ms = sc->redis_wait_ms;
    maxlen = upm_conf_redis_stream_maxlen(sc);
    argv = apr_palloc(p, sizeof(*argv) * n);
    lens = apr_palloc(p, sizeof(*lens) * n);
    argc = apr_palloc(p, sizeof(*argc) * n);
    for (i = 0; i < n; i++) {
        const char **a = apr_palloc(p, sizeof(char *) * 8);
        size_t *l = apr_palloc(p, sizeof(size_t) * 8);
        int k = 0, j;
        if (stream) {
            a[k++] = "XADD";
            a[k++] = sc->redis_stream;
            if (maxlen > 0) {
                a[k++] = "MAXLEN";
                a[k++] = "~";
                a[k++] = apr_ltoa(p, maxlen);
            }
            a[k++] = "*";
            a[k++] = "data";
        }
        else {
            /* user:{id} is the channel the owner routing knows; the message
             * carries userId as well.  An owner-less one goes to its
             * scope's channel; its JSON names the same id, so every
             * listener routes it as this server would have. */
            a[k++] = "PUBLISH";
            a[k++] = *msgs[i]->f[UPM_F_OWNER]
                     ? apr_pstrcat(p, "user:", msgs[i]->f[UPM_F_OWNER], NULL)
                     : scope_channel(p, sc, msgs[i]);
        }
        a[k++] = msgs[i]->json;
        for (j = 0; j < k; j++) {
            l[j] = j == k - 1 ? msgs[i]->json_len : strlen(a[j]);
        }
        argv[i] = a;
        lens[i] = l;
        argc[i] = k;
    }

    /* A pooled connection may have been closed by the server while idle:
     * one retry on a fresh one.  The whole batch is one MULTI/EXEC, so a
     * failure publishes none of it. */
    for (attempt = 0; attempt < 2; attempt++) {
        upm_redis_conn *c = upm_redis_acquire(err);
        int reused;
        if (!c) {
            upm_stats_add(UPM_ST_REDIS_PUBLISH_FAILED, 1);
            return APR_ECONNREFUSED;
        }
        reused = upm_redis_conn_reused(c);
        *err = NULL;
        rep = transact(p, c, n, argc, argv, lens, err);
        if (rep && wait_n > 0 && rep->type == REDIS_REPLY_ARRAY) {
            /* The events are on the primary: wait until enough replicas
             * have them too, so a failover cannot lose what gets a 202. */
            redisReply *w;
            upm_redis_conn_set_timeout(c, wait_ms + upm_conf_redis_timeout_ms(sc));
            w = upm_redis_conn_command(c, "WAIT %d %d", wait_n, wait_ms);
            upm_redis_conn_set_timeout(c, 0);
            confirmed = w && w->type == REDIS_REPLY_INTEGER ? (long)w->integer : -1;
            if (!w || w->type != REDIS_REPLY_INTEGER) {
                wait_err = !w ? apr_psprintf(p, "WAIT failed: %s",
                                             upm_redis_conn_ctx(c)->errstr)
                           : w->type == REDIS_REPLY_ERROR
                           ? apr_psprintf(p, "WAIT refused: %s", w->str) : "WAIT failed";
            }
            if (w) {
                freeReplyObject(w);
            }
            upm_redis_release(c, upm_redis_conn_ctx(c)->err != 0);
            break;
        }
        upm_redis_release(c, rep == NULL);
        if (rep || !reused) {
            break;
        }
    }
    if (*err && strstr(*err, "READONLY")) {
        /* Written to a demoted primary: ask the sentinels again. */
        upm_redis_sentinel_stale(0);
    }
    if (!rep) {
        *err = *err ? *err : "no reply";
        upm_stats_add(UPM_ST_REDIS_PUBLISH_FAILED, 1);
        return APR_EGENERAL;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != (size_t)n) {
        /* EXECABORT says only that a queued command was refused: the
         * refusal (NOPERM of an ACL user, say) is the reason to give. */
        *err = *err ? *err : rep->type == REDIS_REPLY_ERROR ? apr_pstrdup(p, rep->str)
               : "the transaction was aborted";
        freeReplyObject(rep);
        upm_stats_add(UPM_ST_REDIS_PUBLISH_FAILED, 1);
        return APR_EGENERAL;
    }
    for (i = 0; i < n; i++) {
        if (rep->element[i]->type == REDIS_REPLY_ERROR) {
            /* E.g. the stream key holds another type: a configuration
             * problem, reported rather than half-hidden. */
            *err = apr_psprintf(p, "%s refused: %s", argv[i][0], rep->element[i]->str);
            freeReplyObject(rep);
            upm_stats_add(UPM_ST_REDIS_PUBLISH_FAILED, 1);
            return APR_EGENERAL;
        }
    }
    if (wait_n > 0 && confirmed < wait_n) {
        *err = wait_err ? wait_err
               : apr_psprintf(p, "only %ld of %d replicas confirmed the events within %d ms "
                              "(UploadProgressRedisWait); they are on the primary and may "
                              "still be delivered", confirmed, wait_n, wait_ms);
        freeReplyObject(rep);
        upm_stats_add(UPM_ST_REDIS_PUBLISH_FAILED, 1);
        return APR_TIMEUP;
    }
    if (stream && ids) {
        *ids = json_array();
        for (i = 0; i < n; i++) {
            const redisReply *e = rep->element[i];
            if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) {
                json_array_append_new(*ids, json_stringn(e->str, e->len));
            }
        }
    }
    else if (!stream && rep->elements && rep->element[0]->type == REDIS_REPLY_INTEGER
             && rep->element[0]->integer == 0) {
        /* Accepted by Redis, heard by nobody: no server is listening. */
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, upm_redis_server(), APLOGNO(13203)
                     "published to Redis but no listener is subscribed to %s",
                     argv[0][1]);
    }
    freeReplyObject(rep);
    upm_stats_add(UPM_ST_REDIS_PUBLISHED, (apr_uint64_t)n);
    return APR_SUCCESS;
}

int upm_redis_publish(request_rec *r, upm_msg *const *msgs, int n)
{
    upm_srv_conf *sc = upm_redis_conf();
    apr_size_t max = sc ? upm_conf_redis_max_message(sc) : UPM_DEFAULT_REDIS_MAX_MESSAGE;
    json_t *ids = NULL;
    const char *err = NULL;
    int i;

    for (i = 0; i < n; i++) {
        if (msgs[i]->json_len > max) {
            /* The listeners would refuse it: better say so now. */
            return upm_json_error(r, HTTP_REQUEST_ENTITY_TOO_LARGE, "too_large",
                                  apr_psprintf(r->pool, "the event is larger than "
                                               "UploadProgressRedisMaxMessage (%"
                                               APR_SIZE_T_FMT " bytes)", max), i);
        }
    }
    if (upm_redis_send(r->pool, msgs, n, &ids, &err) != APR_SUCCESS) {
        return unavailable(r, err ? err : "unknown error");
    }
    /* Counted where they were accepted: the ring appends they become are
     * the listener's (source redis) on every server. */
    upm_stats_add(UPM_ST_EVENTS_PUBLISHED, (apr_uint64_t)n);
    return upm_publish_accepted(r, n, ids);
}

/* ---- Streams resume ------------------------------------------------------ */

const char *upm_redis_stream_replay(apr_pool_t *p, const char *after,
                                    upm_redis_emit_fn emit, void *baton, upm_xid *upto)
{
    upm_srv_conf *sc = upm_redis_conf();
    server_rec *s = upm_redis_server();
    apr_size_t max;
    const char *err = NULL, *reason = NULL;
    upm_redis_conn *c;
    redisReply *rep;
    upm_xinfo xi;
    upm_xid from;
    char cursor[UPM_XID_LEN];
    apr_pool_t *bp;
    unsigned total = 0;
    int stop = 0;

    if (upm_xid_parse(after, strlen(after), &from) != 0) {
        return "invalid";
    }
    *upto = from;
    if (!sc || !sc->redis_stream) {
        return "redis";
    }
    max = upm_conf_redis_max_message(sc);
    c = upm_redis_acquire(&err);
    if (!c) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, APLOGNO(13204)
                     "cannot resume %s from the stream: %s", after, err);
        return "redis";
    }
    rep = upm_redis_conn_command(c, "XINFO STREAM %s", sc->redis_stream);
    if (upm_redis_parse_xinfo(rep, &xi) != 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, APLOGNO(13205)
                     "cannot resume %s: XINFO STREAM %s failed: %s", after,
                     sc->redis_stream, rep && rep->type == REDIS_REPLY_ERROR ? rep->str
                     : upm_redis_conn_ctx(c)->errstr);
        if (rep) {
            freeReplyObject(rep);
        }
        upm_redis_release(c, rep == NULL);
        return "redis";
    }
    freeReplyObject(rep);
    if (xi.exists && upm_xid_cmp(from, xi.last_generated) > 0) {
        /* An id the stream never gave out. */
        upm_redis_release(c, 0);
        return "invalid";
    }
    if (upm_xinfo_lost_after(&xi, from)) {
        /* Beyond the stream's retention (or the stream is gone). */
        upm_redis_release(c, 0);
        return "expired";
    }
    if (!xi.exists) {
        upm_redis_release(c, 0);
        return NULL;
    }

    upm_xid_format(cursor, from);
    apr_pool_create(&bp, p);
    while (!stop) {
        size_t i;
        rep = upm_redis_conn_command(c, "XRANGE %s (%s + COUNT %d",
                                     sc->redis_stream, cursor, UPM_XRANGE_BATCH);
        if (!rep || rep->type != REDIS_REPLY_ARRAY) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, APLOGNO(13206)
                         "cannot resume %s: XRANGE failed: %s", after,
                         rep && rep->type == REDIS_REPLY_ERROR ? rep->str
                         : upm_redis_conn_ctx(c)->errstr);
            reason = "redis";
            break;
        }
        for (i = 0; i < rep->elements && !stop; i++) {
            const char *id, *data, *hint, *why;
            apr_size_t dlen;
            upm_xid x;
            upm_msg m;
            if (upm_redis_parse_entry(bp, rep->element[i], &id, &x, &data, &dlen,
                                      &hint) != 0) {
                continue;
            }
            *upto = x;
            apr_cpystrn(cursor, id, sizeof(cursor));
            if (data && upm_ingest(bp, data, dlen, hint, sc->event_map, max,
                                   upm_xid_time(x), &m, &why) == UPM_IN_OK) {
                m.ext = id;
                stop = emit(baton, &m);
            }
        }
        total += (unsigned)rep->elements;
        i = rep->elements;
        freeReplyObject(rep);
        rep = NULL;
        apr_pool_clear(bp);
        if (i < UPM_XRANGE_BATCH) {
            break;
        }
        if (total >= UPM_XRANGE_MAX) {
            reason = "expired";
            break;
        }
    }
    apr_pool_destroy(bp);
    if (rep) {
        freeReplyObject(rep);
    }
    upm_redis_release(c, reason && strcmp(reason, "redis") == 0);
    return reason;
}
