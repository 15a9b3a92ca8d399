/* SPDX-License-Identifier: Apache-2.0 */
/* Domain events -> messages (DESIGN section 1).
 *
 * Everything here is a pure function of its arguments (the clock comes in
 * as `now`), so the unit tests run exactly the code the module runs and
 * the publish handler and the Redis listener normalise identically. */

#include <math.h>
#include <string.h>

#include <apr_strings.h>

#include "upm_event.h"

/* The type ends up on an SSE "event:" line and in metric labels, so it is
 * kept short and free of anything that could break a line or a label. */
#define UPM_TYPE_MAX 64

/* A publisher's timestamp string is passed to clients untouched; the cap
 * only stops a publisher from inflating every message it sends. */
#define UPM_TIMESTAMP_MAX 64

/* Longest piece of publisher text quoted back in an error message. */
#define UPM_ERR_QUOTE_MAX 64

/* Epoch milliseconds of 0001-01-01T00:00:00.000Z and of
 * 9999-12-31T23:59:59.999Z: outside these the four-digit year of the ISO
 * form no longer holds, and the conversion to microseconds could overflow. */
#define UPM_MS_MIN (-62135596800000.0)
#define UPM_MS_MAX (253402300799999.0)

typedef struct {
    const char *event;
    const char *type;
} upm_event_row;

static const upm_event_row upm_builtin_map[] = {
    { "PhotoUploadStarted",          "upload_started"    },
    { "PhotoUploadProgressed",       "upload_progress"   },
    { "PhotoUploadCompleted",        "upload_completed"  },
    { "PhotoUploadFailed",           "upload_failed"     },
    { "UploadJobProgressed",         "job_progress"      },
    { "UploadJobCompleted",          "job_completed"     },
    { "PhotoUploadedEvent",          "PHOTO_UPLOADED"    },
    { "PhotoUploadFailedEvent",      "PHOTO_FAILED"      },
    { "UploadSessionCompletedEvent", "SESSION_COMPLETED" },
    { NULL, NULL }
};

static const char *const upm_progress_types[] = {
    "upload_progress", "job_progress", "progress", NULL
};

static const char *const upm_terminal_types[] = {
    "upload_completed", "upload_failed", "job_completed", "job_complete",
    "job_failed", "file_completed", "session_finalized",
    "PHOTO_UPLOADED", "PHOTO_FAILED", "SESSION_COMPLETED", NULL
};

/* The terminal types that end in success.  Only these count as "complete"
 * for the progress of a 0-byte upload: a 0-byte upload that completed is
 * 100 %, one that failed stays at 0 % so that no client shows a full bar
 * next to an error. */
static const char *const upm_success_types[] = {
    "upload_completed", "job_completed", "job_complete", "file_completed",
    "session_finalized", "PHOTO_UPLOADED", "SESSION_COMPLETED", NULL
};

/* Id fields that become routing keys (owner, scope narrowing) and end up
 * in query strings; userId is handled with them and then again as owner. */
static const char *const upm_id_fields[] = {
    "photoId", "fileId", "jobId", "sessionId", "projectId", "userId", NULL
};

static int in_list(const char *const *list, const char *s)
{
    if (s == NULL) {
        return 0;
    }
    for (; *list; list++) {
        if (strcmp(*list, s) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Publisher text quoted in an error must not break the error body or a
 * log line, whatever bytes it holds. */
static const char *quote_for_err(apr_pool_t *p, const char *s)
{
    apr_size_t len = strlen(s);
    apr_size_t n = len > UPM_ERR_QUOTE_MAX ? UPM_ERR_QUOTE_MAX : len;
    char *q = apr_palloc(p, n + 4);
    apr_size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        q[i] = (c < 0x20 || c > 0x7e || c == '"' || c == '\\') ? '?'
                                                               : (char)c;
    }
    if (n < len) {
        memcpy(q + n, "...", 4);
    }
    else {
        q[n] = '\0';
    }
    return q;
}

static int is_type_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9')
        || c == '_' || c == '.' || c == ':' || c == '-';
}

static int is_id_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9')
        || c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
}

int upm_valid_id(const char *s)
{
    apr_size_t n;

    if (s == NULL) {
        return 0;
    }
    for (n = 0; s[n]; n++) {
        if (n >= UPM_ID_MAX || !is_id_char((unsigned char)s[n])) {
            return 0;
        }
    }
    return n > 0;
}

/* NULL when the type may be sent, else the reason. */
static const char *check_type(apr_pool_t *p, const char *type)
{
    const char *c;

    if (strlen(type) > UPM_TYPE_MAX) {
        return apr_psprintf(p, "type \"%s\" is longer than %d bytes",
                            quote_for_err(p, type), UPM_TYPE_MAX);
    }
    for (c = type; *c; c++) {
        if (!is_type_char((unsigned char)*c)) {
            return apr_psprintf(p, "type \"%s\" contains characters outside "
                                "[A-Za-z0-9_.:-]", quote_for_err(p, type));
        }
    }
    return NULL;
}

/* NULL when the id may be used as a routing key, else the reason.
 * `what` names the source in the message ("field \"jobId\"", ...). */
static const char *check_id(apr_pool_t *p, const char *what, const char *id)
{
    apr_size_t len = strlen(id);
    const char *c;

    if (len == 0) {
        return apr_psprintf(p, "%s is empty", what);
    }
    if (len > UPM_ID_MAX) {
        return apr_psprintf(p, "%s is longer than %d bytes", what,
                            UPM_ID_MAX);
    }
    for (c = id; *c; c++) {
        if (!is_id_char((unsigned char)*c)) {
            return apr_psprintf(p, "%s contains characters outside "
                                "[A-Za-z0-9._:@-]", what);
        }
    }
    return NULL;
}

/* Brings one id field of msg to its canonical form: a checked string.
 * Integers are rendered in decimal because clients and the owner check
 * compare ids as strings; null means "not given" and is dropped so that
 * clients never see an id that routes nowhere.  *value is a pool copy,
 * NULL when the field is absent. */
static upm_event_status normalize_id(apr_pool_t *p, json_t *msg,
                                     const char *name, const char **value,
                                     const char **err)
{
    json_t *v = json_object_get(msg, name);
    const char *what = apr_psprintf(p, "field \"%s\"", name);
    const char *s;

    *value = NULL;
    if (v == NULL) {
        return UPM_EV_OK;
    }
    if (json_is_null(v)) {
        json_object_del(msg, name);
        return UPM_EV_OK;
    }
    if (json_is_string(v)) {
        s = json_string_value(v);
        /* An embedded NUL would make the routing key shorter than the
         * id the client sees. */
        if (strlen(s) != json_string_length(v)) {
            *err = apr_psprintf(p, "%s contains a NUL character", what);
            return UPM_EV_BAD_FIELD;
        }
        s = apr_pstrdup(p, s);
    }
    else if (json_is_integer(v)) {
        /* APR's formatter has no "ll": go through its own 64-bit type. */
        s = apr_psprintf(p, "%" APR_INT64_T_FMT,
                         (apr_int64_t)json_integer_value(v));
        json_object_set_new(msg, name, json_string(s));
    }
    else {
        *err = apr_psprintf(p, "%s must be a string or an integer", what);
        return UPM_EV_BAD_FIELD;
    }
    if ((*err = check_id(p, what, s)) != NULL) {
        return UPM_EV_BAD_FIELD;
    }
    *value = s;
    return UPM_EV_OK;
}

static upm_event_status normalize_timestamp(apr_pool_t *p, json_t *msg,
                                            apr_time_t now, const char **err)
{
    json_t *v = json_object_get(msg, "timestamp");
    apr_time_t t;

    if (v == NULL || json_is_null(v)) {
        t = now;
    }
    else if (json_is_string(v)) {
        if (json_string_length(v) > UPM_TIMESTAMP_MAX) {
            *err = apr_psprintf(p, "field \"timestamp\" is longer than %d "
                                "bytes", UPM_TIMESTAMP_MAX);
            return UPM_EV_BAD_FIELD;
        }
        return UPM_EV_OK;
    }
    else if (json_is_number(v)) {
        double ms = json_number_value(v);

        if (!(ms >= UPM_MS_MIN && ms <= UPM_MS_MAX)) {
            *err = "field \"timestamp\" is out of range for epoch "
                   "milliseconds";
            return UPM_EV_BAD_FIELD;
        }
        if (json_is_integer(v)) {
            t = (apr_time_t)json_integer_value(v) * 1000;
        }
        else {
            t = (apr_time_t)floor(ms * 1000.0);
        }
    }
    else {
        *err = "field \"timestamp\" must be a string or a number of epoch "
               "milliseconds";
        return UPM_EV_BAD_FIELD;
    }
    json_object_set_new(msg, "timestamp", json_string(upm_iso8601(p, t)));
    return UPM_EV_OK;
}

static int number_pair(json_t *obj, const char *a, const char *b,
                       double *da, double *db)
{
    json_t *va = json_object_get(obj, a);
    json_t *vb = json_object_get(obj, b);

    if (!json_is_number(va) || !json_is_number(vb)) {
        return 0;
    }
    *da = json_number_value(va);
    *db = json_number_value(vb);
    return 1;
}

/* progressPercent is only added, never replaced: a publisher that sends
 * its own figure knows better (e.g. parts rather than bytes). */
static void set_percent_if_absent(json_t *obj, double pct)
{
    if (json_object_get(obj, "progressPercent") == NULL) {
        json_object_set_new(obj, "progressPercent", json_real(pct));
    }
}

static void derive_progress(json_t *msg, const char *type)
{
    int complete = in_list(upm_success_types, type);
    json_t *nested = json_object_get(msg, "progress");
    double done, total;

    if (number_pair(msg, "bytesUploaded", "totalBytes", &done, &total)
        || number_pair(msg, "bytesCompleted", "bytesTotal", &done, &total)) {
        double pct = upm_progress_percent(done, total, complete);

        /* An object under `progress` is the publisher's own structure
         * (parts, bytes ...) and passes through; the figure goes next to
         * it instead of replacing it. */
        if (json_is_object(nested)) {
            set_percent_if_absent(msg, pct);
        }
        else {
            json_object_set_new(msg, "progress", json_real(pct));
        }
    }
    else if (json_is_object(nested)
             && number_pair(nested, "bytesCompleted", "bytesTotal",
                            &done, &total)) {
        set_percent_if_absent(msg, upm_progress_percent(done, total,
                                                        complete));
    }
}

const char *upm_event_map_lookup(apr_hash_t *overrides, const char *event)
{
    const upm_event_row *row;

    if (event == NULL) {
        return NULL;
    }
    if (overrides != NULL) {
        const char *type = apr_hash_get(overrides, event,
                                        APR_HASH_KEY_STRING);
        if (type != NULL) {
            return type;
        }
    }
    for (row = upm_builtin_map; row->event; row++) {
        if (strcmp(row->event, event) == 0) {
            return row->type;
        }
    }
    return NULL;
}

/* Rule: anything that is not a finite number yields 0, except that a
 * complete transfer with total <= 0 (including -inf; NaN compares false)
 * is 100.  With a finite total > 0: done <= 0 gives 0, done >= total gives
 * 100, else done / total * 100 rounded half away from zero to two
 * decimals.  Dividing first keeps the ratio in 0..1, so no byte count is
 * large enough to overflow the multiplication. */
double upm_progress_percent(double done, double total, int complete)
{
    double pct;

    if (isnan(total) || total <= 0) {
        return (complete && total <= 0) ? 100.0 : 0.0;
    }
    if (!isfinite(total) || !isfinite(done) || done <= 0) {
        return 0.0;
    }
    if (done >= total) {
        return 100.0;
    }
    pct = done / total * 100.0;
    if (pct < 0.0) {
        pct = 0.0;
    }
    else if (pct > 100.0) {
        pct = 100.0;
    }
    return round(pct * 100.0) / 100.0;
}

const char *upm_iso8601(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;
    apr_time_t secs = t / APR_USEC_PER_SEC;
    apr_time_t usec = t % APR_USEC_PER_SEC;

    /* apr_time_exp_gmt truncates towards zero; before 1970 that would give
     * a negative fraction, so floor to the second ourselves. */
    if (usec < 0) {
        usec += APR_USEC_PER_SEC;
        secs -= 1;
    }
    apr_time_exp_gmt(&tm, secs * APR_USEC_PER_SEC);
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                        tm.tm_hour, tm.tm_min, tm.tm_sec,
                        (int)(usec / 1000));
}

int upm_event_is_progress_type(const char *type)
{
    return in_list(upm_progress_types, type);
}

int upm_event_is_terminal_type(const char *type)
{
    return in_list(upm_terminal_types, type);
}

/* Reads `event` or `type`: absent gives OK with *value NULL, anything but
 * a non-empty string is an error. */
static upm_event_status get_name(apr_pool_t *p, json_t *event,
                                 const char *key, const char **value,
                                 const char **err)
{
    json_t *v = json_object_get(event, key);

    *value = NULL;
    if (v == NULL) {
        return UPM_EV_OK;
    }
    if (!json_is_string(v) || json_string_length(v) == 0) {
        *err = apr_psprintf(p, "field \"%s\" must be a non-empty string",
                            key);
        return UPM_EV_NO_TYPE;
    }
    /* A parser that allows \u0000 would otherwise let "Name\u0000junk"
     * be looked up, and sent, as "Name". */
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        *err = apr_psprintf(p, "field \"%s\" contains a NUL character",
                            key);
        return UPM_EV_NO_TYPE;
    }
    *value = json_string_value(v);
    return UPM_EV_OK;
}

/* The fields that address a message to a scope when it has no owner:
 * those a token can grant (photoId cannot). */
static const char *const upm_scope_fields[] = {
    "sessionId", "jobId", "projectId", "fileId", NULL
};

static int names_scope(json_t *msg)
{
    int i;
    for (i = 0; upm_scope_fields[i]; i++) {
        const char *v = json_string_value(json_object_get(msg, upm_scope_fields[i]));
        if (v && *v) {
            return 1;
        }
    }
    return 0;
}

static upm_event_status normalize(apr_pool_t *p, json_t *event,
                                  apr_hash_t *overrides,
                                  const char *owner_hint, int scope_hint,
                                  apr_time_t now,
                                  json_t **out, const char **owner,
                                  const char **err)
{
    const char *name, *given_type, *type, *mapped, *user = NULL;
    upm_event_status st;
    json_t *msg;
    int i;

    if (!json_is_object(event)) {
        *err = "event is not a JSON object";
        return UPM_EV_NOT_OBJECT;
    }
    if ((st = get_name(p, event, "event", &name, err)) != UPM_EV_OK
        || (st = get_name(p, event, "type", &given_type, err)) != UPM_EV_OK) {
        return st;
    }

    mapped = upm_event_map_lookup(overrides, name);
    if (mapped != NULL) {
        type = mapped;
    }
    else if (given_type != NULL) {
        /* An unknown `event` next to a `type` is publisher data the
         * module does not understand, so it passes through like any other
         * field; the `type` says what the message is. */
        type = given_type;
    }
    else if (name != NULL) {
        *err = apr_psprintf(p, "unknown event \"%s\" and no type",
                            quote_for_err(p, name));
        return UPM_EV_NO_TYPE;
    }
    else {
        *err = "event has neither \"event\" nor \"type\"";
        return UPM_EV_NO_TYPE;
    }
    if ((*err = check_type(p, type)) != NULL) {
        return UPM_EV_NO_TYPE;
    }

    msg = json_deep_copy(event);
    if (msg == NULL) {
        /* Only allocation failure gets here; there is no status of its
         * own for that and the event is dropped either way. */
        *err = "out of memory copying the event";
        return UPM_EV_NOT_OBJECT;
    }
    json_object_set_new(msg, "type", json_string(type));
    if (mapped != NULL) {
        json_object_del(msg, "event");
    }
    /* Ids are server-assigned (DESIGN 4): a publisher's id would collide
     * with the sequence clients resume from. */
    json_object_del(msg, "id");

    for (i = 0; upm_id_fields[i]; i++) {
        const char *value;

        st = normalize_id(p, msg, upm_id_fields[i], &value, err);
        if (st != UPM_EV_OK) {
            json_decref(msg);
            return st;
        }
        if (strcmp(upm_id_fields[i], "userId") == 0) {
            user = value;
        }
    }

    /* The event's own userId wins: the channel name is only a fallback
     * for publishers that route by channel and omit it from the body. */
    if (user == NULL && (owner_hint == NULL || *owner_hint == '\0')) {
        /* No owner: a message to the scope the channel or its own ids
         * name, seen only by streams whose token grants that scope. */
        if (!scope_hint && !names_scope(msg)) {
            json_decref(msg);
            *err = "event has no owner (userId) and names no sessionId, jobId, "
                   "projectId or fileId";
            return UPM_EV_NO_OWNER;
        }
    }
    else if (user == NULL) {
        if ((*err = check_id(p, "owner (channel user id)", owner_hint))
            != NULL) {
            json_decref(msg);
            return UPM_EV_BAD_FIELD;
        }
        user = apr_pstrdup(p, owner_hint);
        json_object_set_new(msg, "userId", json_string(user));
    }

    if ((st = normalize_timestamp(p, msg, now, err)) != UPM_EV_OK) {
        json_decref(msg);
        return st;
    }

    derive_progress(msg, type);

    *out = msg;
    *owner = user;
    return UPM_EV_OK;
}

upm_event_status upm_event_normalize(apr_pool_t *p, json_t *event,
                                     apr_hash_t *overrides,
                                     const char *owner_hint,
                                     apr_time_t now,
                                     json_t **out, const char **owner,
                                     const char **err)
{
    return upm_event_normalize_scoped(p, event, overrides, owner_hint, 0, now, out,
                                      owner, err);
}

upm_event_status upm_event_normalize_scoped(apr_pool_t *p, json_t *event,
                                            apr_hash_t *overrides,
                                            const char *owner_hint, int scope_hint,
                                            apr_time_t now,
                                            json_t **out, const char **owner,
                                            const char **err)
{
    json_t *msg = NULL;
    const char *user = NULL, *reason = NULL;
    upm_event_status st;

    st = normalize(p, event, overrides, owner_hint, scope_hint, now, &msg, &user,
                   &reason);
    if (out != NULL) {
        *out = msg;
    }
    else if (msg != NULL) {
        json_decref(msg);
    }
    if (owner != NULL) {
        *owner = user;
    }
    if (err != NULL) {
        *err = reason;
    }
    return st;
}
