/* SPDX-License-Identifier: Apache-2.0 */
/* Places for worker-holding streams over HTTP/2 (see upm_h2.h). */
#include "upm_h2.h"
#include "upm_h2_limit.h"
#include "upm_conn.h"
#include "upm_handlers.h"

#include "http_config.h"
#include "http_connection.h"
#include "http_log.h"
#include "ap_mpm.h"
#include <apr_atomic.h>
#include <apr_strings.h>
#include <stdlib.h>

APLOG_USE_MODULE(upload_progress);

typedef struct {
    apr_uint32_t *counter;
} h2_place;

static int limit_conn = 1, limit_child = 1, workers;
static apr_uint32_t held_child;        /* this child's, all connections */
static apr_uint32_t warned;

/* The smallest value of a directive anywhere in the configuration. */
static void tree_min(const ap_directive_t *d, const char *name, int *out)
{
    for (; d; d = d->next) {
        if (d->directive && strcasecmp(d->directive, name) == 0 && d->args) {
            int v = atoi(d->args);
            if (v > 0 && (*out <= 0 || v < *out)) {
                *out = v;
            }
        }
        tree_min(d->first_child, name, out);
    }
}

int upm_h2_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                       server_rec *s)
{
    upm_h2_conf c = { 0, 0, 0, 0 };

    /* mod_http2 keeps its settings to itself: read what it will read. */
    tree_min(ap_conftree, "H2MinWorkers", &c.min_workers);
    tree_min(ap_conftree, "H2MaxWorkers", &c.max_workers);
    tree_min(ap_conftree, "H2MaxSessionStreams", &c.max_session_streams);
    ap_mpm_query(AP_MPMQ_MAX_THREADS, &c.threads_per_child);
    workers = upm_h2_workers(&c);
    limit_conn = upm_h2_limit_per_conn(&c);
    limit_child = upm_h2_limit_per_child(&c);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, APLOGNO(14002)
                 "HTTP/2: %d h2 workers per child; streams holding one: %d per "
                 "connection (UploadProgressHTTP2Streams auto), %d per child",
                 workers, limit_conn, limit_child);
    return OK;
}

static apr_status_t release_place(void *data)
{
    h2_place *pl = data;
    apr_atomic_dec32(pl->counter);
    apr_atomic_dec32(&held_child);
    return APR_SUCCESS;
}

static int refuse(request_rec *r, const char *what, int per_conn, int limit,
                  apr_uint32_t held)
{
    const char *msg = per_conn
        ? "this HTTP/2 connection holds the most streams it can: use WebSocket"
        : "this server's HTTP/2 workers hold the most streams they can: use WebSocket";

    if (apr_atomic_cas32(&warned, 1, 0) == 0) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, APLOGNO(14000)
                      "%s of user %s refused (503 http2_streams_busy): %s %u of the %d "
                      "streams that may keep an h2 worker (%s); one more could leave "
                      "mod_http2 no worker for other requests.  Serve the push endpoints over "
                      "HTTP/1.1 (WebSocket, or Protocols http/1.1 on their host), see "
                      "docs/deployment.md; logged once per child",
                      what, r->user, per_conn ? "the connection holds" : "the child holds",
                      (unsigned)held, limit,
                      per_conn ? "UploadProgressHTTP2Streams"
                      : "min(H2MaxWorkers - 6, ThreadsPerChild / 2)");
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, APLOGNO(14001)
                      "%s of user %s refused: %u of %d HTTP/2 places held%s", what,
                      r->user, (unsigned)held, limit, per_conn ? "" : " in the child");
    }
    /* Not Retry-After: the same connection stays full while its streams
     * are open; the client moves to WebSocket (HTTP/1.1). */
    upm_json_error(r, HTTP_SERVICE_UNAVAILABLE, "http2_streams_busy", msg, -1);
    return 0;
}

int upm_h2_hold(request_rec *r, const upm_dir_conf *d, const char *what)
{
    conn_rec *c1 = r->connection->master;
    upm_conn *cc;
    h2_place *pl;
    int limit = upm_conf_h2_streams(d);
    apr_uint32_t n;

    if (!c1 || !limit) {
        return 1;
    }
    if (limit < 0) {
        limit = limit_conn;
    }
    while (c1->master) {
        c1 = c1->master;
    }
    cc = upm_conn_get(c1);
    if (!cc) {
        return 1;       /* a connection this module did not see open */
    }
    n = apr_atomic_inc32(&cc->h2_held);
    if (n >= (apr_uint32_t)limit) {
        apr_atomic_dec32(&cc->h2_held);
        return refuse(r, what, 1, limit, n);
    }
    n = apr_atomic_inc32(&held_child);
    if (n >= (apr_uint32_t)limit_child) {
        apr_atomic_dec32(&held_child);
        apr_atomic_dec32(&cc->h2_held);
        return refuse(r, what, 0, limit_child, n);
    }
    pl = apr_palloc(r->pool, sizeof(*pl));
    pl->counter = &cc->h2_held;
    apr_pool_cleanup_register(r->pool, pl, release_place, apr_pool_cleanup_null);
    return 1;
}
