/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_msg.h"

#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>

#define UPM_MSG_VERSION 2
#define UPM_EXT_MAX 63

static const char *const field_names[UPM_F__COUNT] = {
    "type", "userId", "photoId", "fileId", "jobId", "sessionId", "projectId"
};

const char *upm_msg_field_name(int f)
{
    return (f >= 0 && f < UPM_F__COUNT) ? field_names[f] : NULL;
}

/* The percentage the fan-out throttles on: `progress` when it is a
 * number, else `progressPercent` (set when `progress` is an object). */
static double message_percent(json_t *msg)
{
    json_t *v = json_object_get(msg, "progress");
    if (!json_is_number(v)) {
        v = json_object_get(msg, "progressPercent");
    }
    return json_is_number(v) ? json_number_value(v) : -1.0;
}

static const char *field_str(json_t *msg, const char *name)
{
    const char *s = json_string_value(json_object_get(msg, name));
    return s ? s : "";
}

upm_msg *upm_msg_make(apr_pool_t *p, json_t *msg, const char *owner,
                      apr_time_t published)
{
    upm_msg *m;
    char *text = json_dumps(msg, UPM_DUMP_FLAGS);
    int f;

    if (!text) {
        return NULL;
    }
    m = apr_pcalloc(p, sizeof(*m));
    m->published = published;
    m->percent = message_percent(msg);
    for (f = 0; f < UPM_F__COUNT; f++) {
        m->f[f] = apr_pstrdup(p, field_str(msg, field_names[f]));
    }
    m->f[UPM_F_OWNER] = apr_pstrdup(p, owner ? owner : "");
    m->json_len = strlen(text);
    m->json = apr_pstrmemdup(p, text, m->json_len);
    free(text);
    return m;
}

/* Layout: u8 version, u8 flags, i64 published, f64 percent, u8 length and
 * the external id with its NUL, then per field a u16 length and the bytes
 * with their NUL, then u32 length and the JSON with its NUL.  Native byte
 * order: the ring never leaves this host. */
char *upm_msg_pack(apr_pool_t *p, const upm_msg *m, apr_size_t *len)
{
    const char *ext = m->ext ? m->ext : "";
    apr_size_t elen = strlen(ext) > UPM_EXT_MAX ? UPM_EXT_MAX : strlen(ext);
    apr_size_t n = 2 + sizeof(apr_int64_t) + sizeof(double) + 1 + elen + 1;
    apr_size_t flen[UPM_F__COUNT];
    char *buf, *w;
    apr_uint32_t jl = (apr_uint32_t)m->json_len;
    int i;

    for (i = 0; i < UPM_F__COUNT; i++) {
        const char *s = m->f[i] ? m->f[i] : "";
        flen[i] = strlen(s) + 1;
        if (flen[i] > 0xffff) {
            flen[i] = 0xffff;
        }
        n += 2 + flen[i];
    }
    n += 4 + m->json_len + 1;
    w = buf = apr_palloc(p, n);
    *w++ = UPM_MSG_VERSION;
    *w++ = (char)(m->flags & 0xff);
    memcpy(w, &m->published, sizeof(apr_int64_t));
    w += sizeof(apr_int64_t);
    memcpy(w, &m->percent, sizeof(double));
    w += sizeof(double);
    *w++ = (char)(elen + 1);
    memcpy(w, ext, elen);
    w[elen] = '\0';
    w += elen + 1;
    for (i = 0; i < UPM_F__COUNT; i++) {
        apr_uint16_t l = (apr_uint16_t)flen[i];
        memcpy(w, &l, 2);
        w += 2;
        memcpy(w, m->f[i] ? m->f[i] : "", flen[i] - 1);
        w[flen[i] - 1] = '\0';
        w += flen[i];
    }
    memcpy(w, &jl, 4);
    w += 4;
    memcpy(w, m->json, m->json_len);
    w[m->json_len] = '\0';
    *len = n;
    return buf;
}

int upm_msg_unpack(const char *buf, apr_size_t len, upm_msg *m)
{
    const char *r = buf, *end = buf + len;
    apr_uint32_t jl;
    int i;

    if (len < 3 + sizeof(apr_int64_t) + sizeof(double) || *r != UPM_MSG_VERSION) {
        return -1;
    }
    r++;
    m->flags = (unsigned char)*r++;
    memcpy(&m->published, r, sizeof(apr_int64_t));
    r += sizeof(apr_int64_t);
    memcpy(&m->percent, r, sizeof(double));
    r += sizeof(double);
    {
        unsigned char el = (unsigned char)*r++;
        if (el == 0 || end - r < el || r[el - 1] != '\0') {
            return -1;
        }
        m->ext = r;
        r += el;
    }
    for (i = 0; i < UPM_F__COUNT; i++) {
        apr_uint16_t l;
        if (end - r < 2) {
            return -1;
        }
        memcpy(&l, r, 2);
        r += 2;
        if (l == 0 || end - r < l || r[l - 1] != '\0') {
            return -1;
        }
        m->f[i] = r;
        r += l;
    }
    if (end - r < 4) {
        return -1;
    }
    memcpy(&jl, r, 4);
    r += 4;
    if ((apr_size_t)(end - r) != (apr_size_t)jl + 1 || r[jl] != '\0' || jl < 2
        || r[0] != '{') {
        return -1;
    }
    m->json = r;
    m->json_len = jl;
    return 0;
}

char *upm_msg_json_with_id(apr_pool_t *p, const upm_msg *m, const char *id,
                           apr_size_t *len)
{
    /* Ids are digits and a dash: no escaping needed. */
    apr_size_t idl = strlen(id);
    int empty = m->json_len == 2;   /* "{}" */
    apr_size_t n = m->json_len + idl + 7 + (empty ? 0 : 1);
    char *out = apr_palloc(p, n + 1), *w = out;

    memcpy(w, "{\"id\":\"", 7);
    w += 7;
    memcpy(w, id, idl);
    w += idl;
    *w++ = '"';
    if (!empty) {
        *w++ = ',';
    }
    memcpy(w, m->json + 1, m->json_len - 1);
    w += m->json_len - 1;
    *w = '\0';
    if (len) {
        *len = (apr_size_t)(w - out);
    }
    return out;
}

apr_uint64_t upm_msg_progress_key(const upm_msg *m)
{
    static const int order[] = { UPM_F_PHOTO, UPM_F_FILE, UPM_F_JOB, UPM_F_SESSION };
    apr_uint64_t h = 1469598103934665603ULL;    /* FNV-1a */
    const char *s;
    apr_size_t i;

    for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (m->f[order[i]] && *m->f[order[i]]) {
            break;
        }
    }
    if (i == sizeof(order) / sizeof(order[0])) {
        return 0;
    }
    for (s = m->f[UPM_F_TYPE]; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    h = (h ^ (unsigned char)('0' + order[i])) * 1099511628211ULL;
    for (s = m->f[order[i]]; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    return h ? h : 1;
}
