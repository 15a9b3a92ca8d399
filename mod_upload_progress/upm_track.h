/* SPDX-License-Identifier: Apache-2.0 */
/* Native upload tracking: an input filter counts request-body bytes as the
 * handler (proxy, CGI, PHP, WebDAV ...) reads them and publishes
 * upload_started / upload_progress / upload_completed / upload_failed to
 * the authenticated user, and keeps the old module's per-upload state in
 * shared memory for its JSON report. */
#ifndef UPM_TRACK_H
#define UPM_TRACK_H

#include "httpd.h"
#include "upm_track_state.h"

#define UPM_PROGRESS_ID_NAME "X-Progress-ID"
/* Set on tracked uploads for the application behind: the uploader. */
#define UPM_PROGRESS_USER_NAME "X-Progress-User"

/* post_config: attaches to (or creates) the report table. */
int upm_track_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                          server_rec *s);
/* child_init: re-opens the table's lock in the child. */
void upm_track_child_init(apr_pool_t *pchild, server_rec *s);
/* The filter, insert_filter and log_transaction hooks. */
void upm_track_register_hooks(apr_pool_t *p);

/* The progress id a request names: the X-Progress-ID header, else the
 * X-Progress-ID query parameter (name matched without regard to case, as
 * the old module did).  NULL when none. */
const char *upm_track_progress_id(request_rec *r);

/* The report slot of id that reader may see (see upm_track_lookup).
 * *other is set when an upload under that id belongs to someone else. */
int upm_track_report_lookup(const char *id, const char *reader, upm_track_slot *out,
                            int *other);

/* Size of the report table and uploads in flight in it. */
void upm_track_table_info(apr_uint32_t *slots, apr_uint32_t *active);

#endif
