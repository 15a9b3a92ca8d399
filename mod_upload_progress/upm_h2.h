/* SPDX-License-Identifier: Apache-2.0 */
/* Streams that keep their worker over HTTP/2 (SSE, long polls): counted
 * per connection and per child, so that they never take the last of what
 * mod_http2 processes of a connection (see upm_h2_limit.h). */
#ifndef UPM_H2_H
#define UPM_H2_H

#include "httpd.h"
#include "upm_config.h"

/* Reads mod_http2's worker and stream settings from the configuration. */
int upm_h2_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                       server_rec *s);

/* 1 when r may keep its worker: not an HTTP/2 stream, no limit, or a
 * place taken until r's pool goes.  0: refused, and the refusal (503
 * http2_streams_busy) is written: the handler returns OK. */
int upm_h2_hold(request_rec *r, const upm_dir_conf *d, const char *what);

/* How often a stream on an h2 worker looks whether mod_http2 aborted it
 * (a client's RST_STREAM or a closed connection wake nobody up). */
#define UPM_H2_ABORT_CHECK apr_time_from_sec(1)

#endif
