/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_track.h"
#include "upm_config.h"
#include "upm_emit.h"
#include "upm_event.h"
#include "upm_handlers.h"
#include "upm_stats.h"

#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"
#include "unixd.h"
#include <apr_global_mutex.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <apr_lib.h>

APLOG_USE_MODULE(upload_progress);

#define UPM_TRACK_RETAINED_KEY "upload_progress_track"
#define UPM_TRACK_FILTER       "UPLOAD_PROGRESS_TRACK"
#define UPM_TRACK_CTX_KEY      "upload_progress_track_ctx"

/* At most this often an upload_progress per upload, whatever the step:
 * a gigabyte read in 8 KB pieces must not become a hundred thousand
 * messages, and ten a second is smoother than any progress bar needs. */
#define UPM_TRACK_MIN_INTERVAL apr_time_from_msec(100)
/* An upload in flight whose byte count has not moved for this long is
 * taken as abandoned when the table needs its slot. */
#define UPM_TRACK_STALE        apr_time_from_sec(600)

typedef struct {
    apr_shm_t *shm;
    apr_global_mutex_t *mutex;
    const char *mutex_file;
    apr_uint32_t nslots;
} upm_track_retained;

static upm_track_retained *kept;
static upm_track_table *table;
static ap_filter_rec_t *track_filter_handle;
/* Races between threads only cost an extra log line. */
static apr_time_t last_full_warning;

typedef struct {
    request_rec *r;             /* the request first tracked: owns the pool */
    apr_pool_t *tmp;            /* cleared after every message */
    const char *id;
    const char *owner;          /* NULL: nobody to send events to */
    const char *job;
    const char *session;
    apr_off_t total;            /* -1: unknown (chunked) */
    apr_off_t received;
    double step;                /* UploadProgressThrottle of the location */
    apr_interval_time_t keep;   /* UploadProgressTrackExpire */
    apr_time_t last_pub;
    double last_pct;            /* -1: no progress sent yet */
    apr_off_t last_pub_bytes;
    int slot;                   /* -1: no report slot */
    apr_uint64_t gen;
    int eos;                    /* the body was read to its end */
    int filter_error;           /* a filter below answered the error itself */
    int finished;
} track_ctx;

/* ---- shared memory --------------------------------------------------- */

int upm_track_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                          server_rec *s)
{
    upm_srv_conf *sc = ap_get_module_config(s->module_config, &upload_progress_module);
    apr_uint32_t nslots = (apr_uint32_t)upm_conf_track_slots(sc);
    apr_pool_t *pkeep = s->process->pool;
    apr_status_t rv;

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    kept = ap_retained_data_get(UPM_TRACK_RETAINED_KEY);
    if (!kept) {
        kept = ap_retained_data_create(UPM_TRACK_RETAINED_KEY, sizeof(*kept));
    }
    if (!kept->mutex) {
        kept->mutex_file = ap_runtime_dir_relative(pkeep, "upload_progress_track.lock");
        rv = apr_global_mutex_create(&kept->mutex, kept->mutex_file, APR_LOCK_DEFAULT,
                                     pkeep);
        if (rv == APR_SUCCESS) {
            rv = ap_unixd_set_global_mutex_perms(kept->mutex);
        }
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(13301)
                         "cannot create the upload report table lock (%s)",
                         kept->mutex_file);
            kept->mutex = NULL;
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if (kept->shm && kept->nslots != nslots) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, APLOGNO(13302)
                     "upload report table resized (%u -> %u slots): reports of "
                     "uploads in flight start over", kept->nslots, nslots);
        apr_shm_destroy(kept->shm);
        kept->shm = NULL;
    }
    if (!kept->shm) {
        apr_size_t size = upm_track_table_bytes(nslots);
        rv = apr_shm_create(&kept->shm, size, NULL, pkeep);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(13303)
                         "cannot create %" APR_SIZE_T_FMT " bytes of shared memory for "
                         "the upload report table", size);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        table = upm_track_table_init(apr_shm_baseaddr_get(kept->shm), nslots);
        kept->nslots = nslots;
    }
    else {
        table = upm_track_table_attach(apr_shm_baseaddr_get(kept->shm), nslots);
        if (!table) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, APLOGNO(13304)
                         "retained upload report table is corrupt");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

void upm_track_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;
    if (!kept || !kept->mutex) {
        return;
    }
    rv = apr_global_mutex_child_init(&kept->mutex, kept->mutex_file, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(13305)
                     "cannot attach to the upload report table lock in this child");
        table = NULL;
    }
}

static int lock(void)
{
    return table && kept->mutex && apr_global_mutex_lock(kept->mutex) == APR_SUCCESS;
}

static void unlock(void)
{
    apr_global_mutex_unlock(kept->mutex);
}

int upm_track_report_lookup(const char *id, const char *reader, upm_track_slot *out,
                            int *other)
{
    int found = 0;
    apr_time_t now = apr_time_now();
    *other = 0;
    if (lock()) {
        found = upm_track_lookup(table, id, reader, now, out);
        if (!found) {
            *other = upm_track_owned_by_other(table, id, reader, now);
        }
        unlock();
    }
    return found;
}

void upm_track_table_info(apr_uint32_t *slots, apr_uint32_t *active)
{
    *slots = 0;
    *active = 0;
    if (lock()) {
        *slots = upm_track_table_slots(table);
        *active = upm_track_table_active(table);
        unlock();
    }
}

/* ---- request side ---------------------------------------------------- */

/* Value of the query parameter `name` (compared without regard to case),
 * URL-decoded; NULL when absent. */
static const char *query_param(request_rec *r, const char *name)
{
    apr_size_t nl = strlen(name);
    const char *a = r->args;

    while (a && *a) {
        const char *end = strchr(a, '&');
        apr_size_t len = end ? (apr_size_t)(end - a) : strlen(a);
        if (len > nl && a[nl] == '=' && strncasecmp(a, name, nl) == 0) {
            char *v = apr_pstrmemdup(r->pool, a + nl + 1, len - nl - 1);
            return ap_unescape_urlencoded(v) == OK ? v : NULL;
        }
        a = end ? end + 1 : NULL;
    }
    return NULL;
}

const char *upm_track_progress_id(request_rec *r)
{
    const char *id = apr_table_get(r->headers_in, UPM_PROGRESS_ID_NAME);
    if (!id || !*id) {
        id = query_param(r, UPM_PROGRESS_ID_NAME);
    }
    return (id && *id) ? id : NULL;
}

/* jobId / sessionId of the upload: a <LocationMatch> capture, a query
 * parameter or a header, in that order. */
static const char *scope_of(request_rec *r, const char *param, const char *env,
                            const char *header)
{
    const char *v = apr_table_get(r->subprocess_env, env);
    if (!v || !*v) {
        v = query_param(r, param);
    }
    if (!v || !*v) {
        v = apr_table_get(r->headers_in, header);
    }
    if (v && *v && !upm_valid_id(v)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13306)
                      "upload %s: ignoring %s, which is not 1 to 128 of "
                      "A-Z a-z 0-9 . _ : @ -", r->uri, param);
        return NULL;
    }
    return (v && *v) ? v : NULL;
}

/* Does the request carry a body, and of what length (-1: chunked)? */
static int body_length(request_rec *r, apr_off_t *total)
{
    const char *te = apr_table_get(r->headers_in, "Transfer-Encoding");
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    char *end;
    apr_off_t v;

    if (te && *te) {
        /* The core refused every coding but chunked before we got here. */
        *total = -1;
        return 1;
    }
    if (!cl || apr_strtoff(&v, cl, &end, 10) != APR_SUCCESS || *end || v <= 0) {
        return 0;
    }
    *total = v;
    return 1;
}

static const char *new_progress_id(apr_pool_t *p)
{
    unsigned char b[16];
    if (apr_generate_random_bytes(b, sizeof(b)) != APR_SUCCESS) {
        apr_uint64_t t = (apr_uint64_t)apr_time_now();
        memcpy(b, &t, 8);
        memcpy(b + 8, &p, sizeof(p) < 8 ? sizeof(p) : 8);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);  /* UUID version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    return apr_psprintf(p, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                        "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
                        b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static track_ctx *ctx_of(request_rec *r)
{
    void *v = NULL;
    /* Internal redirects share the first request's pool, so one lookup
     * finds the upload whatever request of the chain asks. */
    apr_pool_userdata_get(&v, UPM_TRACK_CTX_KEY, r->pool);
    return v;
}

/* ---- messages -------------------------------------------------------- */

static json_t *jsize(apr_off_t n)
{
    return n >= 0 ? json_integer((json_int_t)n) : json_null();
}

/* Publishes one upload_* message for the upload's owner.  final: the body
 * is complete, so an unknown total is now known. */
static void emit(track_ctx *ctx, const char *type, int final, int status,
                 const char *reason)
{
    apr_time_t now = apr_time_now();
    apr_off_t total = ctx->total >= 0 ? ctx->total : (final ? ctx->received : -1);
    json_t *ev, *msg = NULL;
    const char *owner = NULL, *err = NULL, *cause = NULL;
    upm_msg *m;
    apr_uint64_t seq;
    apr_status_t rv;

    if (!ctx->owner) {
        return;
    }
    ev = json_object();
    json_object_set_new(ev, "type", json_string(type));
    json_object_set_new(ev, "userId", json_string(ctx->owner));
    json_object_set_new(ev, "photoId", json_string(ctx->id));
    if (ctx->job) {
        json_object_set_new(ev, "jobId", json_string(ctx->job));
    }
    if (ctx->session) {
        json_object_set_new(ev, "sessionId", json_string(ctx->session));
    }
    json_object_set_new(ev, "bytesUploaded", json_integer((json_int_t)ctx->received));
    json_object_set_new(ev, "totalBytes", jsize(total));
    if (total < 0) {
        /* Nothing to divide by yet: say so rather than guess. */
        json_object_set_new(ev, "progress", json_null());
    }
    if (status) {
        json_object_set_new(ev, "status", json_integer(status));
    }
    if (reason) {
        json_object_set_new(ev, "reason", json_string(reason));
    }
    if (upm_event_normalize(ctx->tmp, ev, NULL, NULL, now, &msg, &owner, &err) != UPM_EV_OK
        || !(m = upm_msg_make(ctx->tmp, msg, owner, now))) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, ctx->r, APLOGNO(13307)
                      "upload %s: cannot build %s: %s", ctx->id, type, err ? err : "JSON");
    }
    else if ((m->flags |= UPM_MSG_CLIENT,
              rv = upm_emit_publish(ctx->tmp, &m, 1, &seq, &cause)) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, ctx->r, APLOGNO(13308)
                      "upload %s: cannot publish %s: %s", ctx->id, type, cause);
    }
    else {
        upm_stats_add(UPM_ST_EVENTS_TRACKED, 1);
    }
    json_decref(msg);
    json_decref(ev);
    apr_pool_clear(ctx->tmp);
}

static void finish(track_ctx *ctx, int ok, int status, upm_upload_failure why)
{
    if (ctx->finished) {
        return;
    }
    ctx->finished = 1;
    if (ctx->slot >= 0 && lock()) {
        upm_track_finish(table, ctx->slot, ctx->gen, ok, status, (int)why,
                         (apr_int64_t)ctx->received, apr_time_now(), ctx->keep);
        unlock();
    }
    if (ok) {
        upm_stats_add(UPM_ST_UPLOADS_COMPLETED, 1);
        emit(ctx, "upload_completed", 1, status, NULL);
    }
    else {
        upm_stats_upload_failed(why);
        emit(ctx, "upload_failed", ctx->eos, status, upm_stats_upload_failure_name(why));
    }
    upm_stats_uploads_active(-1);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, ctx->r, APLOGNO(13309)
                  "upload %s of user %s %s after %" APR_OFF_T_FMT " bytes (status %d%s%s)",
                  ctx->id, ctx->owner ? ctx->owner : "-", ok ? "completed" : "failed",
                  ctx->received, status, ok ? "" : ", ",
                  ok ? "" : upm_stats_upload_failure_name(why));
}

/* The status the client got: the last request of an internal redirect
 * chain answered it. */
static int final_status(request_rec *r)
{
    while (r->next) {
        r = r->next;
    }
    return r->status;
}

/* After the response: completed when the body was read whole and the
 * answer was not an error.  413 and 408 say why whoever refused the body
 * (the core's LimitRequestBody, mod_reqtimeout, or the application) did. */
static void conclude(track_ctx *ctx, int status)
{
    int whole = ctx->eos || (ctx->total >= 0 && ctx->received >= ctx->total);
    if (status == HTTP_REQUEST_ENTITY_TOO_LARGE) {
        finish(ctx, 0, status, UPM_UF_TOO_LARGE);
    }
    else if (status == HTTP_REQUEST_TIME_OUT) {
        finish(ctx, 0, status, UPM_UF_TIMEOUT);
    }
    else if (status >= 400) {
        finish(ctx, 0, status, ctx->filter_error && !whole ? UPM_UF_BAD_BODY
                                                           : UPM_UF_HTTP_ERROR);
    }
    else if (!whole) {
        finish(ctx, 0, status, UPM_UF_INCOMPLETE);
    }
    else {
        finish(ctx, 1, status, UPM_UF__COUNT);
    }
}

static int track_log_transaction(request_rec *r)
{
    track_ctx *ctx = r->main ? NULL : ctx_of(r);
    if (ctx && !ctx->finished) {
        conclude(ctx, final_status(ctx->r));
    }
    return DECLINED;
}

/* Should the log hook not run (the request pool going away otherwise),
 * the upload is still concluded, so that no upload_started is left
 * without its end. */
static apr_status_t track_cleanup(void *data)
{
    track_ctx *ctx = data;
    if (!ctx->finished) {
        apr_pool_t *tmp;
        /* ctx->tmp is a child of the pool being destroyed: use one that
         * is not. */
        apr_pool_create(&tmp, ctx->r->connection->pool);
        ctx->tmp = tmp;
        conclude(ctx, final_status(ctx->r));
        apr_pool_destroy(tmp);
    }
    return APR_SUCCESS;
}

/* ---- the filter ------------------------------------------------------ */

static upm_upload_failure classify(apr_status_t rv, int *status)
{
    if (rv == APR_ENOSPC) {
        *status = HTTP_REQUEST_ENTITY_TOO_LARGE;
        return UPM_UF_TOO_LARGE;
    }
    if (APR_STATUS_IS_TIMEUP(rv) || APR_STATUS_IS_ETIMEDOUT(rv)) {
        *status = HTTP_REQUEST_TIME_OUT;
        return UPM_UF_TIMEOUT;
    }
    if (rv == APR_EINVAL || APR_STATUS_IS_EGENERAL(rv)) {
        *status = HTTP_BAD_REQUEST;
        return UPM_UF_BAD_BODY;
    }
    *status = HTTP_BAD_REQUEST;
    return UPM_UF_ABORTED;
}

static void maybe_progress(track_ctx *ctx, int force)
{
    apr_time_t now = apr_time_now();
    double pct = ctx->total >= 0
        ? upm_progress_percent((double)ctx->received, (double)ctx->total, 0) : -1;

    if (ctx->received == ctx->last_pub_bytes) {
        return;
    }
    if (!force) {
        if (now - ctx->last_pub < UPM_TRACK_MIN_INTERVAL) {
            return;
        }
        if (pct >= 0 && ctx->last_pct >= 0 && pct - ctx->last_pct < ctx->step - 1e-9) {
            return;
        }
    }
    ctx->last_pub = now;
    ctx->last_pct = pct;
    ctx->last_pub_bytes = ctx->received;
    emit(ctx, "upload_progress", force, 0, NULL);
}

static apr_status_t track_filter(ap_filter_t *f, apr_bucket_brigade *bb,
                                 ap_input_mode_t mode, apr_read_type_e block,
                                 apr_off_t readbytes)
{
    track_ctx *ctx = f->ctx;
    apr_status_t rv = ap_get_brigade(f->next, bb, mode, block, readbytes);
    apr_bucket *e;
    apr_off_t n = 0;
    int error_status = 0;

    if (ctx->finished || ctx->eos || ctx->filter_error || mode == AP_MODE_SPECULATIVE
        || mode == AP_MODE_INIT) {
        return rv;
    }
    if (rv == AP_FILTER_ERROR) {
        /* HTTP_IN has sent the error response (413 over LimitRequestBody,
         * 400 for a broken chunk): the final status tells which. */
        ctx->filter_error = 1;
        return rv;
    }
    if (rv != APR_SUCCESS) {
        if (!APR_STATUS_IS_EAGAIN(rv)) {
            int status;
            upm_upload_failure why = classify(rv, &status);
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, f->r, APLOGNO(13310)
                          "upload %s: reading the body failed", ctx->id);
            finish(ctx, 0, status, why);
        }
        return rv;
    }
    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb); e = APR_BUCKET_NEXT(e)) {
        if (APR_BUCKET_IS_EOS(e)) {
            ctx->eos = 1;
        }
        else if (AP_BUCKET_IS_ERROR(e)) {
            error_status = ((ap_bucket_error *)e->data)->status;
        }
        else if (!APR_BUCKET_IS_METADATA(e)) {
            if (e->length == (apr_size_t)-1) {
                const char *data;
                apr_size_t len;
                if (apr_bucket_read(e, &data, &len, APR_BLOCK_READ) != APR_SUCCESS) {
                    continue;
                }
            }
            n += (apr_off_t)e->length;
        }
    }
    if (n) {
        ctx->received += n;
        upm_stats_add(UPM_ST_UPLOAD_BYTES, (apr_uint64_t)n);
        if (ctx->slot >= 0 && lock()) {
            if (upm_track_update(table, ctx->slot, ctx->gen, (apr_int64_t)ctx->received,
                                 apr_time_now()) != 0) {
                /* A newer upload under the same id took the slot. */
                ctx->slot = -1;
            }
            unlock();
        }
    }
    if (error_status) {
        upm_upload_failure why = error_status == HTTP_REQUEST_ENTITY_TOO_LARGE
            ? UPM_UF_TOO_LARGE : error_status == HTTP_REQUEST_TIME_OUT
            ? UPM_UF_TIMEOUT : UPM_UF_BAD_BODY;
        ctx->eos = 0;
        finish(ctx, 0, error_status, why);
    }
    else if (ctx->eos || (ctx->total >= 0 && ctx->received >= ctx->total)) {
        /* The whole body is in: 100 % now, completion once the handler
         * has answered. */
        ctx->eos = 1;
        maybe_progress(ctx, 1);
    }
    else if (n) {
        maybe_progress(ctx, 0);
    }
    return rv;
}

static void track_insert_filter(request_rec *r)
{
    upm_dir_conf *d = ap_get_module_config(r->per_dir_config, &upload_progress_module);
    int mode = upm_conf_track(d);
    apr_off_t total;
    const char *id;
    track_ctx *ctx;

    if (mode == UPM_TRACK_OFF || r->main) {
        return;
    }
    if ((ctx = ctx_of(r)) != NULL) {
        /* An internal redirect: still the same upload and uploader. */
        if (ctx->owner) {
            apr_table_setn(r->headers_in, UPM_PROGRESS_USER_NAME, ctx->owner);
        }
        return;
    }
    /* Only the module says who uploaded: a client's own value never
     * reaches the application. */
    apr_table_unset(r->headers_in, UPM_PROGRESS_USER_NAME);
    if (!body_length(r, &total)) {
        return;
    }
    id = upm_track_progress_id(r);
    if (!id) {
        if (mode != UPM_TRACK_ALL) {
            return;
        }
        id = new_progress_id(r->pool);
        /* The application behind (proxy, CGI) sees the id too. */
        apr_table_setn(r->headers_in, UPM_PROGRESS_ID_NAME, id);
    }
    else if (!upm_valid_id(id)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13311)
                      "upload to %s not tracked: " UPM_PROGRESS_ID_NAME " must be 1 to "
                      "128 of A-Z a-z 0-9 . _ : @ -", r->uri);
        return;
    }
    apr_table_setn(r->err_headers_out, UPM_PROGRESS_ID_NAME, id);

    ctx = apr_pcalloc(r->pool, sizeof(*ctx));
    ctx->r = r;
    apr_pool_create(&ctx->tmp, r->pool);
    apr_pool_tag(ctx->tmp, "upm_track");
    ctx->id = id;
    ctx->owner = (r->user && *r->user) ? r->user : NULL;
    if (ctx->owner) {
        /* The application behind learns whom the upload's events are for,
         * to publish its own events (processing, completion) to them. */
        apr_table_setn(r->headers_in, UPM_PROGRESS_USER_NAME, ctx->owner);
    }
    ctx->job = scope_of(r, "jobId", "MATCH_JOBID", "X-Job-ID");
    ctx->session = scope_of(r, "sessionId", "MATCH_SESSIONID", "X-Session-ID");
    ctx->total = total;
    ctx->step = upm_conf_throttle(d);
    ctx->keep = apr_time_from_sec(upm_conf_track_expire(d));
    ctx->last_pct = -1;
    ctx->slot = -1;

    if (ctx->owner && strlen(ctx->owner) > UPM_TRACK_OWNER_MAX) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13315)
                      "upload %s has no report: its user name is longer than %d bytes "
                      "(its events still flow)", id, UPM_TRACK_OWNER_MAX);
    }
    else if (lock()) {
        ctx->slot = upm_track_begin(table, id, ctx->owner, (apr_int64_t)total,
                                    apr_time_now(), UPM_TRACK_STALE, &ctx->gen);
        unlock();
        if (ctx->slot < 0) {
            apr_time_t now = apr_time_now();
            upm_stats_add(UPM_ST_UPLOADS_UNTRACKED, 1);
            /* Once a minute per child: a full table under load would
             * otherwise write a line per upload. */
            if (now - last_full_warning > apr_time_from_sec(60)) {
                last_full_warning = now;
                ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, APLOGNO(13312)
                              "upload %s has no report slot (all %u hold uploads in "
                              "flight; raise UploadProgressTrackSlots): its events "
                              "still flow", id, kept ? kept->nslots : 0);
            }
        }
    }
    if (!ctx->owner) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, APLOGNO(13313)
                      "upload %s to %s is anonymous: report only, no events", id, r->uri);
    }
    apr_pool_userdata_setn(ctx, UPM_TRACK_CTX_KEY, NULL, r->pool);
    apr_pool_cleanup_register(r->pool, ctx, track_cleanup, apr_pool_cleanup_null);
    ap_add_input_filter_handle(track_filter_handle, ctx, r, r->connection);

    upm_stats_add(UPM_ST_UPLOADS_STARTED, 1);
    upm_stats_uploads_active(1);
    emit(ctx, "upload_started", 0, 0, NULL);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, APLOGNO(13314)
                  "tracking upload %s of user %s: %" APR_OFF_T_FMT " bytes", id,
                  ctx->owner ? ctx->owner : "-", total);
}

void upm_track_register_hooks(apr_pool_t *p)
{
    /* Above the HTTP_IN (protocol) filter: dechunked body bytes, what the
     * handler actually consumes. */
    track_filter_handle = ap_register_input_filter(UPM_TRACK_FILTER, track_filter, NULL,
                                                   AP_FTYPE_RESOURCE);
    ap_hook_insert_filter(track_insert_filter, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(track_log_transaction, NULL, NULL, APR_HOOK_FIRST);
}
