/* SPDX-License-Identifier: Apache-2.0 */
/* Content handlers: publish, SSE, WebSocket, the old report, polling and
 * status. */
#ifndef UPM_HANDLERS_H
#define UPM_HANDLERS_H

#include "httpd.h"
#include <jansson.h>

int upm_publish_handler(request_rec *r);
int upm_sse_handler(request_rec *r);
int upm_ws_handler(request_rec *r);
/* access_checker: refuses WebSocket handshakes from origins that
 * UploadProgressAllowOrigin does not list, before authentication. */
int upm_ws_access_checker(request_rec *r);
int upm_report_handler(request_rec *r);
int upm_poll_handler(request_rec *r);
int upm_status_handler(request_rec *r);
/* The section in mod_status's /server-status. */
void upm_status_register_hooks(apr_pool_t *p);

/* Writes a JSON error body {"error":code,"message":msg[,"index":i]} with
 * the given status; index < 0 omits it.  Returns OK for the handler. */
/* The 202 of an accepted publish: {"accepted":n,"ids":[...]} (ids left
 * out when NULL; it is consumed). */
int upm_publish_accepted(request_rec *r, apr_size_t n, json_t *ids);

int upm_json_error(request_rec *r, int status, const char *code,
                   const char *msg, int index);

#endif
