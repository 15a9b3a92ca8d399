/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_refusal.h"

#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"
#include <apr_strings.h>
#include <jansson.h>

#define NOTE "upm-refusal-json"
#define FILTER "UPM_REFUSAL_JSON"
#define WARN_EVERY apr_time_from_sec(60)

/* Per child and lock-free: the time of the last warning of each kind and
 * the refusals logged at info since. */
static apr_time_t last_warn[UPM_REFUSE__COUNT];
static apr_uint64_t held_back[UPM_REFUSE__COUNT];

int upm_refusal_level(upm_refusal_kind kind, apr_uint64_t *held)
{
    apr_time_t now = apr_time_now(), last;

    *held = 0;
    if ((int)kind < 0 || kind >= UPM_REFUSE__COUNT) {
        return APLOG_INFO;
    }
    last = __atomic_load_n(&last_warn[kind], __ATOMIC_RELAXED);
    if ((last == 0 || now - last >= WARN_EVERY)
        && __atomic_compare_exchange_n(&last_warn[kind], &last, now, 0,
                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        *held = __atomic_exchange_n(&held_back[kind], 0, __ATOMIC_RELAXED);
        return APLOG_WARNING;
    }
    __atomic_add_fetch(&held_back[kind], 1, __ATOMIC_RELAXED);
    return APLOG_INFO;
}

const char *upm_refusal_more(apr_pool_t *p, apr_uint64_t held)
{
    return held ? apr_psprintf(p, " (and %" APR_UINT64_T_FMT " more of this kind, "
                               "logged at info, in the last minute)", held) : "";
}

void upm_refusal_json(request_rec *r, const char *error, const char *reason,
                      const char *message)
{
    json_t *o = json_pack("{s:s,s:s}", "error", error, "message", message ? message : error);
    char *t;

    if (!o) {
        return;
    }
    if (reason) {
        json_object_set_new(o, "reason", json_string(reason));
    }
    t = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (t) {
        apr_table_set(r->notes, NOTE, apr_pstrcat(r->pool, t, "\n", NULL));
        free(t);
    }
}

/* Replaces Apache's HTML error page by the JSON body.  Runs only on the
 * error response (insert_error_filter), before the headers are written. */
static apr_status_t refusal_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    const char *body = apr_table_get(r->notes, NOTE);
    apr_bucket *e;
    int eos = 0;

    if (!body) {
        ap_remove_output_filter(f);
        return ap_pass_brigade(f->next, bb);
    }
    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb); e = APR_BUCKET_NEXT(e)) {
        if (APR_BUCKET_IS_EOS(e)) {
            eos = 1;
        }
    }
    apr_brigade_cleanup(bb);
    if (!f->ctx) {
        f->ctx = f;
        ap_set_content_type(r, "application/json");
        apr_table_unset(r->headers_out, "Content-Length");
        apr_table_setn(r->headers_out, "Cache-Control", "no-store");
        if (!r->header_only) {
            APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_pool_create(body, strlen(body), r->pool,
                                                               f->c->bucket_alloc));
        }
    }
    if (eos) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(f->c->bucket_alloc));
    }
    return APR_BRIGADE_EMPTY(bb) ? APR_SUCCESS : ap_pass_brigade(f->next, bb);
}

static void insert_error_filter(request_rec *r)
{
    if (apr_table_get(r->notes, NOTE)) {
        ap_add_output_filter(FILTER, NULL, r, r->connection);
    }
}

void upm_refusal_register_hooks(apr_pool_t *p)
{
    ap_register_output_filter(FILTER, refusal_filter, NULL, AP_FTYPE_CONTENT_SET);
    ap_hook_insert_error_filter(insert_error_filter, NULL, NULL, APR_HOOK_MIDDLE);
}
