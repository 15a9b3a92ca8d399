/* SPDX-License-Identifier: Apache-2.0 */
/* TLS to Redis (rediss://).  hiredis 0.14 has none, so hiredis keeps
 * formatting commands and parsing replies (its redisReader), and this
 * file moves the bytes through OpenSSL on the socket instead of hiredis'
 * read(2)/write(2): for the listener inside the poll adapter (never
 * blocking), for request threads' connections within their timeouts. */
#ifndef UPM_REDIS_TLS_H
#define UPM_REDIS_TLS_H

#include "httpd.h"
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <openssl/ssl.h>
#include "upm_redis_url.h"
#include "upm_redis_poll.h"

/* post_config: the client context (trust anchors, client certificate)
 * every child inherits.  o may be NULL (the system's trust store, names
 * verified).  NULL on success, else why (for a start-up error). */
const char *upm_redis_tls_setup(apr_pool_t *pconf, server_rec *s,
                                const upm_redis_tls_opts *o);

/* Listener: TLS on ac, which redisAsyncConnect has just begun to connect
 * and upm_rpoll_attach has put in lp.  hiredis sees the link connected
 * once the handshake is done; a refused handshake fails the connect with
 * the reason in ac->errstr.  host: the name or address connected to
 * (the certificate must name it, unless servername= says otherwise). */
int upm_redis_tls_attach(upm_rpoll *lp, redisAsyncContext *ac, const char *host);

/* Request threads: the handshake on c's connected blocking socket, within
 * its timeouts.  NULL (c->err and c->errstr set) on failure. */
SSL *upm_redis_tls_connect(redisContext *c, const char *host);

/* redisGetReply for a context whose socket speaks TLS: sends what is
 * buffered, reads until a reply is complete. */
int upm_redis_tls_get_reply(SSL *ssl, redisContext *c, void **reply);

/* Before redisFree(c) (which closes the socket). */
void upm_redis_tls_free(SSL *ssl);

#endif
