/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_publish_body.h"
#include "upm_event.h"

#include <string.h>
#include <apr_strings.h>
#include <jansson.h>

/* The statuses, without httpd.h: this file runs outside the server. */
#define ST_BAD_REQUEST 400
#define ST_TOO_LARGE 413
#define ST_UNPROCESSABLE 422

static int refuse(upm_publish_refusal *why, int status, const char *code,
                  const char *message, int index)
{
    why->status = status;
    why->code = code;
    why->message = message;
    why->index = index;
    return -1;
}

/* jansson's error text quotes up to 20 bytes of the body near the error,
 * cut wherever the parser stopped: not necessarily UTF-8, which json_pack
 * then refuses, leaving the handler no body to write. */
static const char *printable(apr_pool_t *p, const char *s)
{
    char *q = apr_pstrdup(p, s), *c;

    for (c = q; *c; c++) {
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) {
            *c = '?';
        }
    }
    return q;
}

int upm_publish_body(apr_pool_t *p, const char *body, apr_size_t len,
                     apr_hash_t *event_map, apr_off_t max_event,
                     apr_time_t now, upm_msg ***msgs, int *n,
                     upm_publish_refusal *why)
{
    static const char *const codes[] = {
        "ok", "not_an_object", "no_type", "no_owner", "bad_field"
    };
    json_error_t jerr;
    json_t *root;
    upm_msg **out;
    size_t i, count;

    memset(why, 0, sizeof(*why));
    root = json_loadb(body, len, 0, &jerr);
    if (!root) {
        why->line = jerr.line;
        why->column = jerr.column;
        why->position = jerr.position;
        return refuse(why, ST_BAD_REQUEST, "invalid_json",
                      printable(p, jerr.text), -1);
    }
    if (json_is_object(root)) {
        json_t *arr = json_array();
        json_array_append_new(arr, root);
        root = arr;
    }
    if (!json_is_array(root)) {
        json_decref(root);
        return refuse(why, ST_UNPROCESSABLE, "not_an_event",
                      "the body must be an event object or an array of them", -1);
    }
    count = json_array_size(root);
    if (count == 0 || count > UPM_PUBLISH_MAX_BATCH) {
        json_decref(root);
        return refuse(why, ST_UNPROCESSABLE, "bad_batch",
                      count ? "at most 1000 events per request"
                            : "the array holds no event", -1);
    }

    /* Everything is checked before anything is published: a request is
     * accepted whole or not at all. */
    out = apr_pcalloc(p, sizeof(upm_msg *) * count);
    for (i = 0; i < count; i++) {
        json_t *ev = json_array_get(root, i), *msg = NULL;
        const char *owner = NULL, *err = NULL;
        upm_event_status st;

        st = upm_event_normalize(p, ev, event_map, NULL, now, &msg, &owner, &err);
        if (st != UPM_EV_OK) {
            json_decref(root);
            return refuse(why, ST_UNPROCESSABLE, codes[st], err, (int)i);
        }
        out[i] = upm_msg_make(p, msg, owner, now);
        json_decref(msg);
        if (!out[i] || (apr_off_t)out[i]->json_len > max_event) {
            json_decref(root);
            return refuse(why, ST_TOO_LARGE, "too_large",
                          apr_psprintf(p, "the event is larger than %" APR_OFF_T_FMT
                                       " bytes", max_event), (int)i);
        }
    }
    json_decref(root);
    *msgs = out;
    *n = (int)count;
    return 0;
}
