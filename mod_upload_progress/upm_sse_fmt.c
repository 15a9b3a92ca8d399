/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_sse_fmt.h"

#include <string.h>
#include <apr_strings.h>

char *upm_sse_frame(apr_pool_t *p, const char *id, const char *type,
                    const char *data, apr_size_t data_len, apr_size_t *len)
{
    apr_size_t idl = id ? strlen(id) : 0, tl = type ? strlen(type) : 0;
    apr_size_t i, extra = 0, n;
    char *out, *w;

    for (i = 0; i < data_len; i++) {
        if (data[i] == '\n' || data[i] == '\r') {
            extra += 6;         /* "\ndata: " replaces one byte */
        }
    }
    n = (idl ? 5 + idl : 0) + (tl ? 8 + tl : 0) + 6 + data_len + extra + 2;
    w = out = apr_palloc(p, n + 1);
    if (idl) {
        memcpy(w, "id: ", 4); w += 4;
        memcpy(w, id, idl); w += idl;
        *w++ = '\n';
    }
    if (tl) {
        memcpy(w, "event: ", 7); w += 7;
        memcpy(w, type, tl); w += tl;
        *w++ = '\n';
    }
    memcpy(w, "data: ", 6); w += 6;
    for (i = 0; i < data_len; i++) {
        if (data[i] == '\r' && i + 1 < data_len && data[i + 1] == '\n') {
            continue;           /* CRLF is one line break */
        }
        if (data[i] == '\n' || data[i] == '\r') {
            memcpy(w, "\ndata: ", 7); w += 7;
        }
        else {
            *w++ = data[i];
        }
    }
    *w++ = '\n';
    *w++ = '\n';
    *w = '\0';
    *len = (apr_size_t)(w - out);
    return out;
}

char *upm_sse_msg_frame(apr_pool_t *p, const upm_msg *m, const char *id,
                        apr_size_t *len)
{
    apr_size_t jl;
    char *json = upm_msg_json_with_id(p, m, id, &jl);
    return upm_sse_frame(p, id, m->f[UPM_F_TYPE], json, jl, len);
}

char *upm_sse_comment(apr_pool_t *p, const char *text, apr_size_t *len)
{
    char *out = apr_pstrcat(p, ": ", text, "\n\n", NULL), *c;
    apr_size_t n = strlen(out);
    for (c = out + 2; c < out + n - 2; c++) {
        if (*c == '\n' || *c == '\r') {
            *c = ' ';
        }
    }
    *len = n;
    return out;
}

char *upm_sse_retry(apr_pool_t *p, long ms, apr_size_t *len)
{
    char *out = apr_psprintf(p, "retry: %ld\n\n", ms);
    *len = strlen(out);
    return out;
}
