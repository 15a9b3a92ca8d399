/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_ws_proto.h"

#include <apr_strings.h>
#include <apr_lib.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

static const int sub_fields[] = {
    UPM_F_PROJECT, UPM_F_JOB, UPM_F_SESSION, UPM_F_FILE, UPM_F_PHOTO
};
#define NFIELDS (int)(sizeof(sub_fields) / sizeof(sub_fields[0]))

const char *upm_wsp_field_name(int field)
{
    return upm_msg_field_name(field);
}

int upm_wsp_valid_id(const char *s)
{
    apr_size_t n;
    if (!s) {
        return 0;
    }
    for (n = 0; s[n]; n++) {
        char c = s[n];
        if (n >= UPM_WSP_ID_MAX
            || !(apr_isalnum(c) || c == '.' || c == '_' || c == ':' || c == '-')) {
            return 0;
        }
    }
    return n > 0;
}

void upm_wsp_init(upm_wsp_state *st, const char *const *base)
{
    int f;
    memset(st, 0, sizeof(*st));
    for (f = 0; base && f < UPM_F__COUNT; f++) {
        st->base[f] = base[f];
    }
}

static void error(upm_wsp_result *res, const char *code, const char *message)
{
    res->action = UPM_WSP_ERROR;
    res->code = code;
    res->message = message;
}

/* A sliding window: the op is allowed when the UPM_WSP_RATE-th most recent
 * accepted one is at least a second old. */
static int rate_take(upm_wsp_state *st, apr_time_t now)
{
    apr_time_t oldest = st->ops[st->ops_next];
    if (oldest && now - oldest < APR_USEC_PER_SEC) {
        return 0;
    }
    st->ops[st->ops_next] = now ? now : 1;
    st->ops_next = (st->ops_next + 1) % UPM_WSP_RATE;
    return 1;
}

static int find_sub(const upm_wsp_state *st, int field, const char *id)
{
    int i;
    for (i = 0; i < st->nsubs; i++) {
        if (st->subs[i].field == field && strcmp(st->subs[i].id, id) == 0) {
            return i;
        }
    }
    return -1;
}

/* Finds the one id field of a subscribe/unsubscribe; 0 or an error set. */
static int take_target(json_t *msg, apr_pool_t *p, upm_wsp_result *res)
{
    int i, found = -1;
    json_t *v = NULL;
    for (i = 0; i < NFIELDS; i++) {
        json_t *x = json_object_get(msg, upm_wsp_field_name(sub_fields[i]));
        if (x && !json_is_null(x)) {
            if (found >= 0) {
                error(res, "invalid_message", "give exactly one of projectId, jobId, "
                      "sessionId, fileId, photoId");
                return -1;
            }
            found = i;
            v = x;
        }
    }
    if (found < 0) {
        error(res, "invalid_message", "give exactly one of projectId, jobId, "
              "sessionId, fileId, photoId");
        return -1;
    }
    res->field = sub_fields[found];
    if (!json_is_string(v) || !upm_wsp_valid_id(json_string_value(v))) {
        error(res, "invalid_id", apr_psprintf(p, "%s must be 1 to %d of "
              "A-Z a-z 0-9 . _ : -", upm_wsp_field_name(res->field), UPM_WSP_ID_MAX));
        return -1;
    }
    res->id = apr_pstrdup(p, json_string_value(v));
    return 0;
}

static void subscribe(upm_wsp_state *st, apr_pool_t *p, upm_wsp_result *res)
{
    const char *base = st->base[res->field];
    int i;

    if (base && strcmp(base, res->id) != 0) {
        error(res, "out_of_scope", apr_psprintf(p, "this connection is limited to "
              "%s %s", upm_wsp_field_name(res->field), base));
        return;
    }
    res->action = UPM_WSP_SUBSCRIBED;
    if ((i = find_sub(st, res->field, res->id)) >= 0) {
        res->index = i;
        res->existed = 1;
        return;
    }
    if (st->allow && !st->allow(st->allow_baton, res->field, res->id)) {
        error(res, "forbidden", apr_psprintf(p, "the token does not grant %s %s",
              upm_wsp_field_name(res->field), res->id));
        return;
    }
    if (st->nsubs == UPM_WSP_MAX_SUBS) {
        error(res, "too_many_subscriptions", apr_psprintf(p, "at most %d subscriptions "
              "per connection", UPM_WSP_MAX_SUBS));
        return;
    }
    i = st->nsubs++;
    st->subs[i].field = res->field;
    apr_cpystrn(st->subs[i].id, res->id, sizeof(st->subs[i].id));
    res->index = i;
}

static void unsubscribe(upm_wsp_state *st, apr_pool_t *p, upm_wsp_result *res)
{
    int i = find_sub(st, res->field, res->id);
    if (i < 0) {
        error(res, "not_subscribed", apr_psprintf(p, "no subscription to %s %s",
              upm_wsp_field_name(res->field), res->id));
        return;
    }
    st->nsubs--;
    if (i != st->nsubs) {
        st->subs[i] = st->subs[st->nsubs];
    }
    res->action = UPM_WSP_UNSUBSCRIBED;
    res->index = i;
}

void upm_wsp_handle(upm_wsp_state *st, apr_pool_t *p, const char *text, apr_size_t len,
                    apr_time_t now, upm_wsp_result *res)
{
    json_t *msg;
    json_error_t err;
    const char *type;

    memset(res, 0, sizeof(*res));
    msg = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!msg) {
        error(res, "invalid_json", apr_psprintf(p, "invalid JSON at line %d, column %d: %s",
                                                err.line, err.column, err.text));
        return;
    }
    if (!json_is_object(msg)) {
        error(res, "invalid_message", "a message must be a JSON object");
        goto done;
    }
    type = json_string_value(json_object_get(msg, "type"));
    if (!type) {
        error(res, "invalid_message", "a message needs a string \"type\"");
        goto done;
    }
    if (strcmp(type, "ping") == 0) {
        res->action = UPM_WSP_PONG;
        goto done;
    }
    if (strcmp(type, "subscribe") != 0 && strcmp(type, "unsubscribe") != 0
        && strcmp(type, "resume") != 0) {
        error(res, "unknown_type", apr_psprintf(p, "unknown message type \"%.64s\": use "
              "subscribe, unsubscribe, resume or ping", type));
        goto done;
    }
    if (!rate_take(st, now)) {
        error(res, "rate_limited", apr_psprintf(p, "more than %d subscribe, unsubscribe "
              "or resume messages in one second", UPM_WSP_RATE));
        goto done;
    }
    if (type[0] == 'r') {
        const char *id = json_string_value(json_object_get(msg, "lastEventId"));
        if (!id || !*id || strlen(id) > 64) {
            error(res, "invalid_message", "resume needs a string \"lastEventId\"");
            goto done;
        }
        res->action = UPM_WSP_RESUME;
        res->last_event_id = apr_pstrdup(p, id);
        goto done;
    }
    if (take_target(msg, p, res) != 0) {
        goto done;
    }
    if (type[0] == 's') {
        subscribe(st, p, res);
    }
    else {
        unsubscribe(st, p, res);
    }
done:
    json_decref(msg);
}

static char *dump(apr_pool_t *p, json_t *o, apr_size_t *len)
{
    char *s = json_dumps(o, DUMP_FLAGS), *out = NULL;
    json_decref(o);
    if (s) {
        *len = strlen(s);
        out = apr_pmemdup(p, s, *len + 1);
        free(s);
    }
    else {
        *len = 0;
    }
    return out;
}

char *upm_wsp_reply(apr_pool_t *p, const upm_wsp_result *res, apr_size_t *len)
{
    json_t *o;
    switch (res->action) {
    case UPM_WSP_SUBSCRIBED:
    case UPM_WSP_UNSUBSCRIBED:
        o = json_pack("{s:s,s:s}", "type", res->action == UPM_WSP_SUBSCRIBED
                      ? "subscribed" : "unsubscribed",
                      upm_wsp_field_name(res->field), res->id);
        break;
    case UPM_WSP_PONG:
        o = json_pack("{s:s}", "type", "pong");
        break;
    case UPM_WSP_ERROR:
        o = json_pack("{s:s,s:s,s:s}", "type", "error", "code", res->code,
                      "message", res->message ? res->message : res->code);
        if (!o) {
            /* The detail quoted bytes of the input cut inside a code point. */
            o = json_pack("{s:s,s:s,s:s}", "type", "error", "code", res->code,
                          "message", res->code);
        }
        break;
    default:
        *len = 0;
        return NULL;
    }
    return o ? dump(p, o, len) : NULL;
}

char *upm_wsp_connected(apr_pool_t *p, const char *client_id, const char *last_event_id,
                        apr_size_t *len)
{
    json_t *o = json_pack("{s:s,s:s}", "type", "connected", "clientId", client_id);
    if (o && last_event_id) {
        json_object_set_new(o, "lastEventId", json_string(last_event_id));
    }
    return o ? dump(p, o, len) : NULL;
}
