/* SPDX-License-Identifier: Apache-2.0 */
/* POST an event (or an array of events) -> normalised messages in the ring. */
#include "upm_handlers.h"
#include "upm_auth.h"
#include "upm_bus.h"
#include "upm_config.h"
#include "upm_emit.h"
#include "upm_event.h"
#include "upm_jwt.h"
#include "upm_msg.h"
#include "upm_publish_body.h"
#include "upm_redis.h"
#include "upm_stats.h"

#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include <apr_strings.h>
#include <apr_lib.h>
#include <jansson.h>

APLOG_USE_MODULE(upload_progress);

#define UPM_PUBLISH_SCOPE "progress:publish"

int upm_json_error(request_rec *r, int status, const char *code,
                   const char *msg, int index)
{
    json_t *o = json_pack("{s:s,s:s}", "error", code, "message", msg ? msg : code);
    char *body;
    if (index >= 0) {
        json_object_set_new(o, "index", json_integer(index));
    }
    body = json_dumps(o, UPM_DUMP_FLAGS);
    json_decref(o);
    /* The body of a refused request must not be read as the next one. */
    ap_discard_request_body(r);
    r->status = status;
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (body) {
        ap_rputs(body, r);
        ap_rputs("\n", r);
        free(body);
    }
    if (r->handler && strcmp(r->handler, "upload-progress-publish") == 0) {
        upm_stats_add(UPM_ST_EVENTS_REJECTED, 1);
    }
    return OK;
}

static int is_json_type(const char *ct)
{
    const char *semi;
    apr_size_t n;
    if (!ct) {
        return 0;
    }
    while (*ct == ' ') {
        ct++;
    }
    semi = strchr(ct, ';');
    n = semi ? (apr_size_t)(semi - ct) : strlen(ct);
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) {
        n--;
    }
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

/* Reads the whole body, refusing more than limit bytes. */
static int read_body(request_rec *r, apr_off_t limit, char **out, apr_size_t *len)
{
    int rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);
    apr_size_t cap, n = 0;
    char *buf;

    if (rc != OK) {
        return rc;
    }
    if (r->remaining > limit) {
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    cap = r->remaining > 0 ? (apr_size_t)r->remaining : 8192;
    buf = apr_palloc(r->pool, cap + 1);
    if (ap_should_client_block(r)) {
        for (;;) {
            long got;
            if (n == cap) {
                char *nb;
                if ((apr_off_t)cap >= limit) {
                    return HTTP_REQUEST_ENTITY_TOO_LARGE;
                }
                cap = (apr_off_t)(cap * 2) > limit ? (apr_size_t)limit : cap * 2;
                nb = apr_palloc(r->pool, cap + 1);
                memcpy(nb, buf, n);
                buf = nb;
            }
            got = ap_get_client_block(r, buf + n, cap - n);
            if (got < 0) {
                return HTTP_BAD_REQUEST;
            }
            if (got == 0) {
                break;
            }
            n += (apr_size_t)got;
        }
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return OK;
}

int upm_publish_handler(request_rec *r)
{
    upm_dir_conf *d;
    upm_srv_conf *sc;
    upm_auth_info *ai;
    json_t *ids;
    upm_publish_refusal why;
    char *body;
    apr_size_t blen;
    apr_off_t max_event;
    int i, count;
    upm_msg **msgs;
    apr_uint64_t *seqs;
    apr_time_t now = apr_time_now();
    apr_status_t rv;
    const char *cause = NULL;
    int rc;

    if (!r->handler || strcmp(r->handler, "upload-progress-publish") != 0) {
        return DECLINED;
    }
    if (r->method_number != M_POST) {
        ap_allow_methods(r, REPLACE_ALLOW, "POST", NULL);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    d = ap_get_module_config(r->per_dir_config, &upload_progress_module);
    sc = ap_get_module_config(r->server->module_config, &upload_progress_module);

    ai = upm_auth_get(r);
    if (ai && !upm_jwt_claim_has(ai->claims, upm_conf_scope_claim(d), UPM_PUBLISH_SCOPE)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13030)
                      "user %s may not publish: claim %s lacks " UPM_PUBLISH_SCOPE,
                      ai->user, upm_conf_scope_claim(d));
        return upm_json_error(r, HTTP_FORBIDDEN, "forbidden",
                              "the token lacks the " UPM_PUBLISH_SCOPE " scope", -1);
    }
    if (!is_json_type(apr_table_get(r->headers_in, "Content-Type"))) {
        return upm_json_error(r, HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                              "Content-Type must be application/json", -1);
    }
    max_event = upm_conf_max_event(d);
    rc = read_body(r, max_event * 16, &body, &blen);
    if (rc == HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return upm_json_error(r, rc, "too_large",
                              apr_psprintf(r->pool, "the body is larger than %" APR_OFF_T_FMT
                                           " bytes", max_event * 16), -1);
    }
    if (rc != OK) {
        return rc;
    }

    if (upm_publish_body(r->pool, body, blen, sc->event_map, max_event, now,
                         &msgs, &count, &why) != 0) {
        if (why.status == HTTP_BAD_REQUEST) {
            json_t *o = json_pack("{s:s,s:s,s:i,s:i,s:i}", "error", why.code,
                                  "message", why.message, "line", why.line,
                                  "column", why.column, "position", why.position);
            char *t = json_dumps(o, UPM_DUMP_FLAGS);
            json_decref(o);
            r->status = HTTP_BAD_REQUEST;
            ap_set_content_type(r, "application/json");
            if (t) {
                ap_rputs(t, r);
                ap_rputs("\n", r);
                free(t);
            }
            upm_stats_add(UPM_ST_EVENTS_REJECTED, 1);
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13031)
                          "publish refused: invalid JSON at line %d column %d: %s",
                          why.line, why.column, why.message);
            return OK;
        }
        if (why.status == HTTP_UNPROCESSABLE_ENTITY && why.index >= 0) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13032)
                          "publish refused: event %d: %s", why.index, why.message);
        }
        return upm_json_error(r, why.status, why.code, why.message, why.index);
    }
    seqs = apr_pcalloc(r->pool, sizeof(apr_uint64_t) * (apr_size_t)count);

    if (d->publish_rate) {
        int retry = 1, ok;
        apr_thread_mutex_lock(d->publish_rate->lock);
        ok = upm_rate_take(&d->publish_rate->rate, (double)count, now, &retry);
        apr_thread_mutex_unlock(d->publish_rate->lock);
        if (!ok) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13600)
                          "publish refused: more than %g events per second "
                          "(UploadProgressPublishRate), retry after %d s",
                          d->publish_rate->rate.rate, retry);
            apr_table_setn(r->err_headers_out, "Retry-After",
                           apr_itoa(r->pool, retry));
            return upm_json_error(r, HTTP_TOO_MANY_REQUESTS, "rate_limited",
                                  "too many events: retry after the Retry-After "
                                  "header's seconds", -1);
        }
    }

    if (upm_redis_enabled()) {
        /* Through Redis, so every server sharing it delivers the events. */
        return upm_redis_publish(r, msgs, count);
    }
    rv = upm_emit_publish(r->pool, msgs, count, seqs, &cause);
    if (rv == APR_ENOSPC) {
        return upm_json_error(r, HTTP_REQUEST_ENTITY_TOO_LARGE, "too_large",
                              "an event is larger than the replay ring's largest "
                              "record (raise UploadProgressReplayMemory)", -1);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, APLOGNO(13033)
                      "publish failed: %s", cause);
        apr_table_setn(r->err_headers_out, "Retry-After", "1");
        return upm_json_error(r, HTTP_SERVICE_UNAVAILABLE, "unavailable",
                              "the event ring is not available", -1);
    }

    upm_stats_add(UPM_ST_EVENTS_PUBLISHED, (apr_uint64_t)count);
    ids = json_array();
    for (i = 0; i < count; i++) {
        json_array_append_new(ids, json_string(upm_id_format(r->pool, upm_bus_epoch(),
                                                             seqs[i])));
    }
    return upm_publish_accepted(r, count, ids);
}

int upm_publish_accepted(request_rec *r, apr_size_t n, json_t *ids)
{
    json_t *resp = json_pack("{s:i}", "accepted", (json_int_t)n);
    char *text;

    if (ids) {
        json_object_set_new(resp, "ids", ids);
    }
    text = json_dumps(resp, UPM_DUMP_FLAGS);
    json_decref(resp);
    r->status = HTTP_ACCEPTED;
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_rputs(text, r);
    ap_rputs("\n", r);
    free(text);
    return OK;
}
