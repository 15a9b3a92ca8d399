/* SPDX-License-Identifier: Apache-2.0 */
/* The module's slot on a connection (conn_config): what the reactor hands
 * over at suspension, and the count of an HTTP/2 connection's streams
 * that keep their worker (upm_h2.c). */
#ifndef UPM_CONN_H
#define UPM_CONN_H

#include "httpd.h"
#include <apr_atomic.h>

struct upm_rconn;

typedef struct upm_conn {
    struct upm_rconn *rc;       /* being suspended by the reactor */
    apr_uint32_t h2_held;       /* atomic: counted by the streams' threads */
} upm_conn;

/* Every connection's, created before any module takes it over: the
 * streams of an HTTP/2 connection run in threads that must not allocate
 * from its pool.  NULL for a secondary connection (an HTTP/2 stream). */
upm_conn *upm_conn_get(conn_rec *c);
void upm_conn_register_hooks(apr_pool_t *p);

#endif
