/* SPDX-License-Identifier: Apache-2.0 */
/* The module's figures for operators: SetHandler upload-progress-status
 * (JSON, or Prometheus text with ?format=prometheus) and a section in
 * mod_status's /server-status (HTML and ?auto). */
#include "upm_handlers.h"
#include "upm_bus.h"
#include "upm_redis.h"
#include "upm_stats.h"
#include "upm_status_fmt.h"
#include "upm_track.h"

#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_script.h"
#include "mod_status.h"
#include <apr_strings.h>
#include <unistd.h>

APLOG_USE_MODULE(upload_progress);

/* Kept in step with AC_INIT in configure.ac (apxs builds have no
 * config.h to take it from). */
#define UPM_VERSION "0.1.0"

static void gather(apr_pool_t *p, upm_status_data *d)
{
    upm_bus_info_t bi;

    memset(d, 0, sizeof(*d));
    d->version = UPM_VERSION;
    d->now = apr_time_now();
    d->pid = (apr_int32_t)getpid();
    upm_stats_snapshot(p, &d->st);
    upm_bus_info(&bi);
    d->ring_epoch = bi.epoch;
    d->ring_slots = bi.slots;
    d->ring_bytes = bi.data_bytes;
    d->ring_bytes_used = bi.data_used;
    d->ring_max_record = bi.max_record;
    d->ring_last = bi.last;
    d->ring_oldest = bi.oldest;
    d->redis = upm_redis_enabled();
    if (upm_bus_mode() == UPM_BUS_MODE_STREAM) {
        /* Clients see stream ids, not the ring's sequence. */
        if (bi.last) {
            d->last_id = upm_bus_id_of(p, bi.last);
        }
        if (bi.last >= bi.oldest) {
            d->oldest_id = upm_bus_id_of(p, bi.oldest);
        }
    }
    upm_track_table_info(&d->track_slots, &d->track_active);
}

/* Prometheus asks for the text format in Accept (version=0.0.4). */
static int wants_prometheus(request_rec *r, const char *format)
{
    const char *accept;
    if (format) {
        return strcasecmp(format, "prometheus") == 0;
    }
    accept = apr_table_get(r->headers_in, "Accept");
    return accept && ap_strcasestr(accept, "version=0.0.4") != NULL;
}

int upm_status_handler(request_rec *r)
{
    apr_table_t *q = NULL;
    const char *format;
    upm_status_data d;

    if (!r->handler || strcmp(r->handler, "upload-progress-status") != 0) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    ap_args_to_table(r, &q);
    format = apr_table_get(q, "format");
    if (format && strcasecmp(format, "json") != 0 && strcasecmp(format, "prometheus") != 0) {
        return upm_json_error(r, HTTP_BAD_REQUEST, "bad_format",
                              "format must be json or prometheus", -1);
    }
    gather(r->pool, &d);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (wants_prometheus(r, format)) {
        ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
        ap_rputs(upm_status_prometheus(r->pool, &d), r);
    }
    else {
        ap_set_content_type(r, "application/json");
        ap_rputs(upm_status_json(r->pool, &d), r);
    }
    return OK;
}

static int status_section(request_rec *r, int flags)
{
    upm_status_data d;
    gather(r->pool, &d);
    ap_rputs((flags & AP_STATUS_SHORT) ? upm_status_auto(r->pool, &d)
                                       : upm_status_html(r->pool, &d), r);
    return OK;
}

void upm_status_register_hooks(apr_pool_t *p)
{
    /* Optional: runs only when mod_status is loaded. */
    APR_OPTIONAL_HOOK(ap, status_hook, status_section, NULL, NULL, APR_HOOK_MIDDLE);
}
