/* SPDX-License-Identifier: Apache-2.0 */
/* mod_upload_progress: live upload and job progress for browsers and apps,
 * pushed over Server-Sent Events, WebSocket (or polling) from events an
 * application publishes and from request bodies Apache itself receives.
 * This file only wires each concern's hooks together. */
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "ap_mpm.h"
#include "mpm_common.h"
#include "http_request.h"

#include "upm_auth.h"
#include "upm_bus.h"
#include "upm_config.h"
#include "upm_handlers.h"
#include "upm_hub.h"
#include "upm_jwks_fetch.h"
#include "upm_conn.h"
#include "upm_h2.h"
#include "upm_track.h"
#include "upm_reactor.h"
#include "upm_redis.h"
#include "upm_refusal.h"


static int upm_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                           server_rec *s)
{
    int rc = upm_bus_post_config(pconf, plog, ptemp, s);
    if (rc == OK) {
        rc = upm_track_post_config(pconf, plog, ptemp, s);
    }
    if (rc == OK) {
        rc = upm_redis_post_config(pconf, plog, ptemp, s);
    }
    if (rc == OK) {
        rc = upm_h2_post_config(pconf, plog, ptemp, s);
    }
    return rc;
}

static void upm_child_init(apr_pool_t *pchild, server_rec *s)
{
    upm_bus_child_init(pchild, s);
    upm_track_child_init(pchild, s);
    upm_hub_child_init(pchild, s);
    upm_reactor_child_init(pchild, s);
    /* After the hub: pre-cleanups run in reverse order, so the listener
     * stops before the hub it feeds. */
    upm_redis_child_init(pchild, s);
}

static void upm_child_stopping(apr_pool_t *pchild, int graceful)
{
    /* Streams would otherwise keep an exiting child alive indefinitely. */
    upm_hub_close_all();
}

static void upm_child_status(server_rec *s, pid_t pid, ap_generation_t gen,
                             int slot, mpm_child_status state)
{
    if (state == MPM_CHILD_EXITED) {
        upm_bus_child_gone(pid);
    }
}

static void upm_register_hooks(apr_pool_t *p)
{
    upm_auth_register_hooks(p);
    upm_refusal_register_hooks(p);
    upm_jwks_fetch_register_hooks(p);
    upm_reactor_register_hooks(p);
    upm_conn_register_hooks(p);
    ap_hook_post_config(upm_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(upm_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_stopping(upm_child_stopping, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_status(upm_child_status, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(upm_publish_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(upm_sse_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(upm_poll_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(upm_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* ReportUploads On answers whatever else would handle the location,
     * as the old module did. */
    ap_hook_handler(upm_report_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    upm_track_register_hooks(p);
    upm_status_register_hooks(p);
    ap_hook_handler(upm_ws_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_access_checker(upm_ws_access_checker, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(upload_progress) = {
    STANDARD20_MODULE_STUFF,
    upm_create_dir_conf,
    upm_merge_dir_conf,
    upm_create_srv_conf,
    upm_merge_srv_conf,
    upm_cmds,
    upm_register_hooks
};
