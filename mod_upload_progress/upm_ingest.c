/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_ingest.h"
#include "upm_event.h"
#include "upm_redis_logic.h"

#include <string.h>
#include <apr_strings.h>
#include <jansson.h>

static const char *const names[UPM_IN__COUNT] = {
    "ok", "too_large", "invalid_json", "not_an_object", "no_owner",
    "owner_conflict", "bad_event", "no_payload", "scope_conflict"
};

const char *upm_ingest_name(upm_ingest_status st)
{
    return st < UPM_IN__COUNT ? names[st] : "unknown";
}

upm_ingest_status upm_ingest(apr_pool_t *p, const char *data, apr_size_t len,
                             const char *owner_hint, apr_hash_t *event_map,
                             apr_size_t max, apr_time_t now, upm_msg *out,
                             const char **err)
{
    return upm_ingest_routed(p, data, len, owner_hint, -1, NULL, event_map, max, now,
                             out, err);
}

upm_ingest_status upm_ingest_routed(apr_pool_t *p, const char *data, apr_size_t len,
                                    const char *owner_hint, int scope_field,
                                    const char *scope_id, apr_hash_t *event_map,
                                    apr_size_t max, apr_time_t now, upm_msg *out,
                                    const char **err)
{
    /* Only the scopes a token can grant address a message: photoId not. */
    int scoped = (scope_field == UPM_F_SESSION || scope_field == UPM_F_JOB
                  || scope_field == UPM_F_PROJECT || scope_field == UPM_F_FILE) && scope_id;
    json_t *ev, *msg = NULL;
    json_error_t jerr;
    const char *owner = NULL;
    upm_event_status st;
    upm_msg *m;
    int client;

    if (len > max) {
        *err = apr_psprintf(p, "%" APR_SIZE_T_FMT " bytes, more than the %" APR_SIZE_T_FMT
                            " taken", len, max);
        return UPM_IN_TOO_LARGE;
    }
    /* REJECT_DUPLICATES: which of two "userId" members would win is
     * exactly the kind of ambiguity isolation cannot afford. */
    ev = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!ev) {
        *err = apr_psprintf(p, "invalid JSON at position %d: %s", jerr.position, jerr.text);
        return UPM_IN_BAD_JSON;
    }
    if (!json_is_object(ev)) {
        json_decref(ev);
        *err = "the payload is JSON but not an object";
        return UPM_IN_NOT_OBJECT;
    }
    /* Set by this module's own upload tracking (upm_emit.c); from anyone
     * else it only narrows who receives the message. */
    client = json_object_get(ev, UPM_MSG_CLIENT_MEMBER) != NULL;
    json_object_del(ev, UPM_MSG_CLIENT_MEMBER);
    if (scoped && !upm_valid_id(scope_id)) {
        json_decref(ev);
        *err = apr_psprintf(p, "the channel's %s is not 1 to 128 of A-Z a-z 0-9 . _ : @ -",
                            upm_msg_field_name(scope_field));
        return UPM_IN_BAD_EVENT;
    }
    st = upm_event_normalize_scoped(p, ev, event_map, owner_hint, scoped, now, &msg,
                                    &owner, err);
    json_decref(ev);
    if (st == UPM_EV_NO_OWNER) {
        return UPM_IN_NO_OWNER;
    }
    if (st != UPM_EV_OK) {
        return st == UPM_EV_NOT_OBJECT ? UPM_IN_NOT_OBJECT : UPM_IN_BAD_EVENT;
    }
    if (owner_hint && *owner_hint && strcmp(owner, owner_hint) != 0) {
        /* An event on user:alice that names bob is a publisher bug; taking
         * either side could show one user's event to another. */
        json_decref(msg);
        *err = apr_psprintf(p, "userId \"%s\" differs from the channel's user \"%s\"",
                            owner, owner_hint);
        return UPM_IN_OWNER_CONFLICT;
    }
    /* The record the publish handler makes too, so a message is byte for
     * byte the same whichever way it came in. */
    m = upm_msg_make(p, msg, owner, now);
    json_decref(msg);
    if (!m) {
        *err = "out of memory";
        return UPM_IN_BAD_EVENT;
    }
    if (scoped && !*m->f[UPM_F_OWNER]) {
        /* The channel is the address: a body naming another id of the
         * same kind is a publisher bug that could reach the wrong
         * watchers either way. */
        if (*m->f[scope_field] && strcmp(m->f[scope_field], scope_id) != 0) {
            *err = apr_psprintf(p, "%s \"%s\" differs from the channel's \"%s\"",
                                upm_msg_field_name(scope_field), m->f[scope_field], scope_id);
            return UPM_IN_SCOPE_CONFLICT;
        }
        m->f[scope_field] = scope_id;
    }
    *out = *m;
    out->ext = "";
    if (client) {
        out->flags |= UPM_MSG_CLIENT;
    }
    if (out->json_len > max) {
        /* Normalisation adds a little (type, timestamp, progress). */
        *err = apr_psprintf(p, "%" APR_SIZE_T_FMT " bytes once normalised, more than the %"
                            APR_SIZE_T_FMT " taken", out->json_len, max);
        return UPM_IN_TOO_LARGE;
    }
    return UPM_IN_OK;
}

static int is(const char *s, apr_size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

int upm_ingest_stream_fields(apr_pool_t *p, apr_size_t n, const char *const *nm,
                             const apr_size_t *nl, const char *const *v,
                             const apr_size_t *vl, const char **data,
                             apr_size_t *dlen, const char **owner_hint)
{
    const char *payload = NULL, *user = NULL, *chan_user = NULL;
    apr_size_t plen = 0, i;
    int prio = 0;

    for (i = 0; i < n; i++) {
        if (is(nm[i], nl[i], "data")) {
            payload = v[i];
            plen = vl[i];
            prio = 2;
        }
        else if (prio < 2 && is(nm[i], nl[i], "payload")) {
            payload = v[i];
            plen = vl[i];
            prio = 1;
        }
        else if (is(nm[i], nl[i], "userId") && vl[i] > 0) {
            user = apr_pstrmemdup(p, v[i], vl[i]);
        }
        else if (is(nm[i], nl[i], "channel")) {
            chan_user = upm_channel_owner(p, v[i], vl[i]);
        }
    }
    *owner_hint = user ? user : chan_user;
    if (!payload) {
        return -1;
    }
    *data = payload;
    *dlen = plen;
    return 0;
}
