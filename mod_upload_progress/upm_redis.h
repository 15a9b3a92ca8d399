/* SPDX-License-Identifier: Apache-2.0 */
/* Redis ingest glue (DESIGN sections 1, 2, 4 and 5): the per-child
 * listener that feeds the ring, the request threads' blocking connections
 * (publish, Streams resume) and what they share. */
#ifndef UPM_REDIS_H
#define UPM_REDIS_H

#include "httpd.h"
#include <hiredis/hiredis.h>
#include <jansson.h>
#include "upm_config.h"
#include "upm_redis_logic.h"
#include "upm_msg.h"

/* post_config: checks that the configuration hangs together. */
int upm_redis_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                          server_rec *s);
/* child_init: the blocking connection pool and the listener thread. */
void upm_redis_child_init(apr_pool_t *pchild, server_rec *s);

/* Is Redis ingest configured (pub/sub or Streams)? */
int upm_redis_enabled(void);

/* ---- blocking connections (upm_redis_sync.c) -------------------------- */

typedef struct upm_redis_conn upm_redis_conn;

void upm_redis_sync_child_init(apr_pool_t *pchild, server_rec *s);
/* A connection from this child's pool, or NULL (then *err says why) when
 * Redis cannot be reached within UploadProgressRedisTimeout. */
upm_redis_conn *upm_redis_acquire(const char **err);
/* Returns it; broken: it failed and must be closed. */
void upm_redis_release(upm_redis_conn *c, int broken);
/* Whether this connection had served an earlier request (a failure on it
 * may just be an idle connection the server closed). */
int upm_redis_conn_reused(const upm_redis_conn *c);
redisContext *upm_redis_conn_ctx(upm_redis_conn *c);
/* redisCommand and redisGetReply on a pooled connection: over TLS when it
 * is one (commands may still be queued with redisAppendCommand* on its
 * context).  Use these, never hiredis' own, on a pooled connection. */
void *upm_redis_conn_command(upm_redis_conn *c, const char *fmt, ...);
int upm_redis_conn_get_reply(upm_redis_conn *c, void **reply);
/* The connection's read/write timeout (0: UploadProgressRedisTimeout again). */
void upm_redis_conn_set_timeout(upm_redis_conn *c, int ms);
/* The main server and its configuration, as the child was started with. */
server_rec *upm_redis_server(void);
upm_srv_conf *upm_redis_conf(void);

/* ---- replies ----------------------------------------------------------- */

/* 0 when reply is a usable XINFO STREAM reply or the "no such key" error;
 * -1 otherwise. */
int upm_redis_parse_xinfo(const redisReply *reply, upm_xinfo *out);

/* One XRANGE / XREAD entry [id, [field, value, ...]] -> its id and the
 * payload and owner hint (upm_ingest_stream_fields).  -1 when malformed;
 * *data is NULL when the entry has no payload field. */
int upm_redis_parse_entry(apr_pool_t *p, const redisReply *e, const char **id,
                          upm_xid *xid, const char **data, apr_size_t *dlen,
                          const char **owner_hint);

/* ---- used by the handlers ---------------------------------------------- */

/* Sends normalised messages to Redis in one MULTI/EXEC: PUBLISH to
 * user:{owner}, or XADD to the stream (*ids: their stream ids, when ids is
 * not NULL).  All or nothing; *err says why on failure. */
apr_status_t upm_redis_send(apr_pool_t *p, upm_msg *const *msgs, int n, json_t **ids,
                            const char **err);

/* The publish handler's branch in Redis mode: upm_redis_send, and the
 * answer (202, 413, or 503 with Retry-After). */
int upm_redis_publish(request_rec *r, upm_msg *const *msgs, int n);

/* Streams mode: passes the entries after `after` (exclusive), read from
 * the stream itself and normalised as the listener does, to emit (which
 * returns non-zero to stop).  *upto receives the newest id read.  Returns
 * NULL, or the reason clients get in a reset ("expired", "invalid",
 * "redis"). */
typedef int (*upm_redis_emit_fn)(void *baton, const upm_msg *m);
const char *upm_redis_stream_replay(apr_pool_t *p, const char *after,
                                    upm_redis_emit_fn emit, void *baton, upm_xid *upto);

#endif
