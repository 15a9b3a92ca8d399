/* SPDX-License-Identifier: Apache-2.0 */
/* The old module's progress report: GET with X-Progress-ID (header or
 * query) -> its JSON, key for key (upm_track_report_json), or JSONP with
 * ?callback=.  Unlike the old module, an upload made by an authenticated
 * user is reported to that user only. */
#include "upm_handlers.h"
#include "upm_auth.h"
#include "upm_config.h"
#include "upm_event.h"
#include "upm_stats.h"
#include "upm_track.h"

#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_script.h"
#include <apr_strings.h>
#include <apr_lib.h>

APLOG_USE_MODULE(upload_progress);

/* The old module's limit: a longer name got a 400 there too. */
#define UPM_CALLBACK_MAX 64

/* A JSONP callback is executed by the page that asked for it: only names
 * and dotted paths, never an expression. */
static int valid_callback(const char *s)
{
    apr_size_t n = 0;
    for (; s[n]; n++) {
        if (n >= UPM_CALLBACK_MAX
            || !(apr_isalnum(s[n]) || s[n] == '_' || s[n] == '.' || s[n] == '$')) {
            return 0;
        }
    }
    return n > 0;
}

static const char *query_value(request_rec *r, const char *name)
{
    apr_table_t *q = NULL;
    ap_args_to_table(r, &q);
    return q ? apr_table_get(q, name) : NULL;
}

int upm_report_handler(request_rec *r)
{
    upm_dir_conf *d;
    const char *id, *cb, *json;
    upm_track_slot slot;
    int found, other;

    d = ap_get_module_config(r->per_dir_config, &upload_progress_module);
    if (!(r->handler && strcmp(r->handler, "upload-progress-report") == 0)
        && !upm_conf_report(d)) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    id = upm_track_progress_id(r);
    if (!id) {
        return upm_json_error(r, HTTP_BAD_REQUEST, "missing_id",
                              "name the upload with the " UPM_PROGRESS_ID_NAME
                              " header or query parameter", -1);
    }
    if (!upm_valid_id(id)) {
        return upm_json_error(r, HTTP_BAD_REQUEST, "bad_id",
                              UPM_PROGRESS_ID_NAME " must be 1 to 128 of "
                              "A-Z a-z 0-9 . _ : @ -", -1);
    }
    cb = query_value(r, "callback");
    if (cb && !upm_conf_report_jsonp(d)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13750)
                      "JSONP report refused: ReportUploads On JSONP is not set here");
        return upm_json_error(r, HTTP_BAD_REQUEST, "jsonp_disabled",
                              "JSONP is not enabled here (ReportUploads On JSONP)", -1);
    }
    if (cb && !valid_callback(cb)) {
        return upm_json_error(r, HTTP_BAD_REQUEST, "bad_callback",
                              "callback must be 1 to 64 of A-Z a-z 0-9 _ . $", -1);
    }
    if (cb) {
        upm_auth_info *ai = upm_auth_get(r);

        /* A page of any site can include the script, and the browser
         * sends the user's cookies with it. */
        if (ai && ai->source && strcmp(ai->source, "cookie") == 0) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13751)
                          "JSONP report refused to %s: token from a cookie", ai->user);
            return upm_json_error(r, HTTP_FORBIDDEN, "jsonp_cookie",
                                  "JSONP is not served to cookie-authenticated "
                                  "requests: send the token in the Authorization "
                                  "header or the query", -1);
        }
    }

    found = upm_track_report_lookup(id, r->user, &slot, &other);
    if (!found && other) {
        /* Answered as unknown so the id's existence does not leak; the
         * log tells the administrator why a report stays "starting". */
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13320)
                      "report of upload %s withheld from %s: another user made it",
                      id, r->user ? r->user : "an anonymous client");
    }
    json = upm_track_report_json(r->pool, id, found ? &slot : NULL, apr_time_now());
    upm_stats_add(UPM_ST_REPORT_REQUESTS, 1);

    apr_table_setn(r->headers_out, "Cache-Control", "no-cache, no-store");
    apr_table_setn(r->headers_out, "Expires", "Mon, 28 Sep 1970 06:00:00 GMT");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    if (cb) {
        ap_set_content_type(r, "application/javascript; charset=utf-8");
        /* The leading comment keeps a crafted callback from making the
         * response start with bytes another content type would sniff. */
        ap_rvputs(r, "/**/", cb, "(", json, ");\r\n", NULL);
    }
    else {
        ap_set_content_type(r, "application/json");
        ap_rvputs(r, json, "\r\n", NULL);
    }
    return OK;
}
