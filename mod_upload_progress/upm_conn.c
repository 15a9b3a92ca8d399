/* SPDX-License-Identifier: Apache-2.0 */
/* The module's per-connection slot (see upm_conn.h). */
#include "upm_conn.h"

#include "http_config.h"
#include "http_connection.h"
#include "http_log.h"

APLOG_USE_MODULE(upload_progress);

static int conn_pre_connection(conn_rec *c, void *csd)
{
    if (!c->master) {
        ap_set_module_config(c->conn_config, &upload_progress_module,
                             apr_pcalloc(c->pool, sizeof(upm_conn)));
    }
    return OK;
}

upm_conn *upm_conn_get(conn_rec *c)
{
    return c->master ? NULL : ap_get_module_config(c->conn_config, &upload_progress_module);
}

void upm_conn_register_hooks(apr_pool_t *p)
{
    /* First: mod_http2 takes connections over in its own pre_connection
     * hook (and mod_ssl sets its filters up in it). */
    ap_hook_pre_connection(conn_pre_connection, NULL, NULL, APR_HOOK_REALLY_FIRST);
}
