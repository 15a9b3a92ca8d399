/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the WebSocket client-message handling
 * (upm_ws_proto.c).  The input is a sequence of client messages separated
 * by newlines, each preceded in time by a step taken from its first byte;
 * it checks the subscription set's invariants and that every reply is
 * JSON with a type. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <jansson.h>
#include "upm_ws_proto.h"

static void check_state(const upm_wsp_state *st)
{
    int i, j;
    if (st->nsubs < 0 || st->nsubs > UPM_WSP_MAX_SUBS) abort();
    for (i = 0; i < st->nsubs; i++) {
        if (!upm_wsp_valid_id(st->subs[i].id)) abort();
        if (st->base[st->subs[i].field]
            && strcmp(st->base[st->subs[i].field], st->subs[i].id) != 0) abort();
        for (j = 0; j < i; j++) {
            if (st->subs[j].field == st->subs[i].field
                && strcmp(st->subs[j].id, st->subs[i].id) == 0) abort();
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apr_initialize();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    upm_wsp_state st;
    const char *base[UPM_F__COUNT] = { 0 };
    apr_time_t now = (apr_time_t)1700000000 * APR_USEC_PER_SEC;
    size_t pos = 0;
    int ops = 0;

    apr_pool_create(&p, NULL);
    if (size && data[0] == 1) {
        base[UPM_F_SESSION] = "s1";
    }
    upm_wsp_init(&st, base);
    while (pos < size && ops < 512) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (data + pos)) : size - pos;
        upm_wsp_result res;
        int before = st.nsubs;
        apr_size_t rlen;
        char *reply;

        if (len) {
            now += (apr_time_t)(data[pos] % 64) * 20000;   /* 0 to 1.26 s */
        }
        upm_wsp_handle(&st, p, (const char *)data + pos, len, now, &res);
        check_state(&st);
        switch (res.action) {
        case UPM_WSP_SUBSCRIBED:
            if (st.nsubs != before + (res.existed ? 0 : 1)) abort();
            if (res.index < 0 || res.index >= st.nsubs) abort();
            if (st.subs[res.index].field != res.field
                || strcmp(st.subs[res.index].id, res.id) != 0) abort();
            break;
        case UPM_WSP_UNSUBSCRIBED:
            if (st.nsubs != before - 1 || res.index < 0 || res.index > st.nsubs) abort();
            break;
        case UPM_WSP_ERROR:
            if (st.nsubs != before || !res.code) abort();
            break;
        case UPM_WSP_RESUME:
            if (!res.last_event_id || !*res.last_event_id) abort();
            break;
        default:
            break;
        }
        reply = upm_wsp_reply(p, &res, &rlen);
        if (res.action != UPM_WSP_RESUME) {
            json_t *j;
            if (!reply) abort();
            j = json_loadb(reply, rlen, 0, NULL);
            if (!j || !json_is_string(json_object_get(j, "type"))) abort();
            json_decref(j);
        }
        pos += len + 1;
        ops++;
    }
    apr_pool_destroy(p);
    return 0;
}
