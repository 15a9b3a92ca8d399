/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_ws_frame.h"

#include <apr_base64.h>
#include <apr_sha1.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <string.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { ST_HDR = 0, ST_PAYLOAD, ST_DONE };

/* ---- handshake ------------------------------------------------------- */

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int upm_ws_key_valid(const char *key)
{
    int i;
    if (!key || strlen(key) != 24 || key[22] != '=' || key[23] != '=') {
        return 0;
    }
    for (i = 0; i < 22; i++) {
        if (b64_value(key[i]) < 0) {
            return 0;
        }
    }
    /* 16 bytes use 4 bits of the last character; the rest must be zero
     * in a canonical encoding. */
    return (b64_value(key[21]) & 0x0f) == 0;
}

void upm_ws_accept(const char *key, char out[29])
{
    apr_sha1_ctx_t ctx;
    unsigned char digest[APR_SHA1_DIGESTSIZE];

    apr_sha1_init(&ctx);
    apr_sha1_update(&ctx, key, (unsigned int)strlen(key));
    apr_sha1_update(&ctx, WS_GUID, (unsigned int)strlen(WS_GUID));
    apr_sha1_final(digest, &ctx);
    apr_base64_encode_binary(out, digest, APR_SHA1_DIGESTSIZE);
}

int upm_ws_header_has_token(const char *value, const char *token)
{
    apr_size_t tl = strlen(token);
    const char *s = value;

    while (s && *s) {
        const char *end;
        apr_size_t n;
        while (*s == ' ' || *s == '\t' || *s == ',') {
            s++;
        }
        end = s;
        while (*end && *end != ',') {
            end++;
        }
        n = (apr_size_t)(end - s);
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
            n--;
        }
        if (n == tl && strncasecmp(s, token, tl) == 0) {
            return 1;
        }
        s = end;
    }
    return 0;
}

const char *upm_ws_origin_normalize(apr_pool_t *p, const char *origin)
{
    const char *sep, *h, *hend, *port = NULL;
    char *scheme, *host, *out;
    apr_size_t n, i;
    int wild = 0;

    if (!origin) {
        return NULL;
    }
    if (strcmp(origin, "*") == 0) {
        return "*";
    }
    if (strcasecmp(origin, "null") == 0) {
        return "null";
    }
    sep = strstr(origin, "://");
    if (!sep || sep == origin) {
        return NULL;
    }
    scheme = apr_pstrmemdup(p, origin, (apr_size_t)(sep - origin));
    for (i = 0; scheme[i]; i++) {
        if (!(apr_isalnum(scheme[i]) || (i && strchr("+.-", scheme[i])))) {
            return NULL;
        }
        scheme[i] = (char)apr_tolower(scheme[i]);
    }
    if (!apr_isalpha(scheme[0])) {
        return NULL;
    }
    h = sep + 3;
    n = strlen(h);
    if (n && h[n - 1] == '/') {
        n--;                            /* pasted with a trailing slash */
    }
    if (n >= 2 && h[0] == '*' && h[1] == '.') {
        wild = 1;
        h += 2;
        n -= 2;
    }
    if (n && h[0] == '[') {
        hend = memchr(h, ']', n);
        if (!hend) {
            return NULL;
        }
        hend++;
    }
    else {
        hend = h;
        while ((apr_size_t)(hend - h) < n && *hend != ':') {
            hend++;
        }
    }
    if (hend == h) {
        return NULL;
    }
    host = apr_pstrmemdup(p, h, (apr_size_t)(hend - h));
    for (i = 0; host[i]; i++) {
        char c = host[i];
        if (!(apr_isalnum(c) || c == '-' || c == '.'
              || (host[0] == '[' && (c == ':' || c == '[' || c == ']')))) {
            return NULL;
        }
        host[i] = (char)apr_tolower(c);
    }
    if ((apr_size_t)(hend - h) < n) {
        apr_size_t pl = n - (apr_size_t)(hend - h) - 1;
        long v = 0;
        if (*hend != ':' || pl == 0 || pl > 5) {
            return NULL;
        }
        for (i = 0; i < pl; i++) {
            if (!apr_isdigit(hend[1 + i])) {
                return NULL;
            }
            v = v * 10 + (hend[1 + i] - '0');
        }
        if (v < 1 || v > 65535) {
            return NULL;
        }
        port = apr_ltoa(p, v);
        if ((strcmp(port, "80") == 0 && (!strcmp(scheme, "http") || !strcmp(scheme, "ws")))
            || (strcmp(port, "443") == 0
                && (!strcmp(scheme, "https") || !strcmp(scheme, "wss")))) {
            port = NULL;
        }
    }
    out = apr_pstrcat(p, scheme, "://", wild ? "*." : "", host, port ? ":" : "",
                      port ? port : "", NULL);
    return out;
}

static int origin_matches(const char *origin, const char *pattern)
{
    const char *star = strstr(pattern, "://*.");
    apr_size_t pre, ol, sl;
    const char *suffix;

    if (strcmp(pattern, "*") == 0 || strcmp(pattern, origin) == 0) {
        return 1;
    }
    if (!star) {
        return 0;
    }
    pre = (apr_size_t)(star - pattern) + 3;
    if (strncmp(origin, pattern, pre) != 0) {
        return 0;
    }
    /* "*.example.com" covers every name under example.com, not
     * example.com itself and not evil-example.com. */
    suffix = star + 4;                  /* ".example.com[:port]" */
    ol = strlen(origin + pre);
    sl = strlen(suffix);
    return ol > sl && strcmp(origin + pre + ol - sl, suffix) == 0
           && !memchr(origin + pre, ':', ol - sl);
}

int upm_ws_origin_allowed(apr_pool_t *p, const char *origin,
                          const apr_array_header_t *allowed, const char *host)
{
    const char *o;
    int i;

    if (!origin) {
        return 1;
    }
    o = upm_ws_origin_normalize(p, origin);
    if (!o || strcmp(o, "*") == 0) {
        return 0;
    }
    if (!allowed) {
        const char *sep = strstr(o, "://"), *self;
        if (!sep || !host || !*host) {
            return 0;
        }
        self = upm_ws_origin_normalize(p, apr_pstrcat(p, apr_pstrmemdup(p, o, (apr_size_t)
                                       (sep - o)), "://", host, NULL));
        return self && strncmp(self, "*.", 2) != 0 && strcmp(self, o) == 0
               && !strstr(self, "://*.");
    }
    if (strstr(o, "://*.")) {
        return 0;                       /* a pattern is not an origin */
    }
    for (i = 0; i < allowed->nelts; i++) {
        if (origin_matches(o, APR_ARRAY_IDX(allowed, i, const char *))) {
            return 1;
        }
    }
    return 0;
}

/* ---- UTF-8 ----------------------------------------------------------- */

void upm_utf8_init(upm_utf8 *u)
{
    u->need = 0;
    u->lo = 0x80;
    u->hi = 0xBF;
}

int upm_utf8_feed(upm_utf8 *u, const unsigned char *s, apr_size_t n)
{
    apr_size_t i;
    for (i = 0; i < n; i++) {
        unsigned char b = s[i];
        if (u->need == 0) {
            if (b < 0x80) {
                continue;
            }
            u->lo = 0x80;
            u->hi = 0xBF;
            if (b >= 0xC2 && b <= 0xDF) {
                u->need = 1;
            }
            else if (b >= 0xE0 && b <= 0xEF) {
                u->need = 2;
                if (b == 0xE0) {
                    u->lo = 0xA0;       /* overlong */
                }
                else if (b == 0xED) {
                    u->hi = 0x9F;       /* UTF-16 surrogates */
                }
            }
            else if (b >= 0xF0 && b <= 0xF4) {
                u->need = 3;
                if (b == 0xF0) {
                    u->lo = 0x90;       /* overlong */
                }
                else if (b == 0xF4) {
                    u->hi = 0x8F;       /* beyond U+10FFFF */
                }
            }
            else {
                return -1;
            }
        }
        else {
            if (b < u->lo || b > u->hi) {
                return -1;
            }
            u->need--;
            u->lo = 0x80;
            u->hi = 0xBF;
        }
    }
    return 0;
}

int upm_utf8_complete(const upm_utf8 *u)
{
    return u->need == 0;
}

/* ---- parser ---------------------------------------------------------- */

void upm_ws_parser_init(upm_ws_parser *ps, apr_pool_t *p, apr_size_t max_message)
{
    memset(ps, 0, sizeof(*ps));
    ps->pool = p;
    ps->max_message = max_message;
    ps->state = ST_HDR;
    ps->hdr_need = 2;
}

static apr_size_t fail(upm_ws_parser *ps, upm_ws_event *ev, int code, const char *why,
                       apr_size_t consumed)
{
    ps->state = ST_DONE;
    ev->kind = UPM_WS_EV_FAIL;
    ev->code = code;
    ev->reason = why;
    return consumed;
}

static int is_control(int op)
{
    return (op & 0x8) != 0;
}

/* Checks what the first two header bytes alone decide, so a violation is
 * refused before its payload arrives.  Returns 0 or a close code. */
static int check_first(upm_ws_parser *ps, const char **why)
{
    unsigned char b0 = ps->hdr[0], b1 = ps->hdr[1];
    int op = b0 & 0x0f;

    if (b0 & 0x70) {
        *why = "reserved bits set without a negotiated extension";
        return UPM_WS_CLOSE_PROTOCOL;
    }
    if (op != UPM_WS_OP_CONT && op != UPM_WS_OP_TEXT && op != UPM_WS_OP_BINARY
        && op != UPM_WS_OP_CLOSE && op != UPM_WS_OP_PING && op != UPM_WS_OP_PONG) {
        *why = "reserved opcode";
        return UPM_WS_CLOSE_PROTOCOL;
    }
    if (is_control(op) && !(b0 & 0x80)) {
        *why = "fragmented control frame";
        return UPM_WS_CLOSE_PROTOCOL;
    }
    if (is_control(op) && (b1 & 0x7f) > UPM_WS_CONTROL_MAX) {
        *why = "control frame payload over 125 bytes";
        return UPM_WS_CLOSE_PROTOCOL;
    }
    if (!(b1 & 0x80)) {
        *why = "unmasked client frame";
        return UPM_WS_CLOSE_PROTOCOL;
    }
    if (op == UPM_WS_OP_CONT && !ps->msg_op) {
        *why = "continuation frame without a message to continue";
        return UPM_WS_CLOSE_PROTOCOL;
    }
    if ((op == UPM_WS_OP_TEXT || op == UPM_WS_OP_BINARY) && ps->msg_op) {
        *why = "new data frame before the fragmented message ended";
        return UPM_WS_CLOSE_PROTOCOL;
    }
    if (op == UPM_WS_OP_BINARY) {
        *why = "binary messages are not accepted";
        return UPM_WS_CLOSE_UNACCEPTABLE;
    }
    return 0;
}

static int reserve(upm_ws_parser *ps, apr_size_t need)
{
    apr_size_t cap;
    unsigned char *nb;
    if (need <= ps->msg_cap && ps->msg) {
        return 0;
    }
    cap = ps->msg_cap ? ps->msg_cap * 2 : 256;
    if (cap < need) {
        cap = need;
    }
    if (cap > ps->max_message) {
        cap = ps->max_message;
    }
    /* Growth doubles and stops at max_message, so what stays behind in the
     * pool is bounded by about twice that. */
    nb = apr_palloc(ps->pool, cap ? cap : 1);
    if (!nb) {
        return -1;
    }
    if (ps->msg_len) {
        memcpy(nb, ps->msg, ps->msg_len);
    }
    ps->msg = nb;
    ps->msg_cap = cap;
    return 0;
}

/* The header is complete: decode length and mask, check sizes. */
static int header_done(upm_ws_parser *ps, const char **why)
{
    unsigned char *h = ps->hdr;
    unsigned len7 = h[1] & 0x7f, off = 2;

    ps->fin = (h[0] & 0x80) != 0;
    ps->opcode = h[0] & 0x0f;
    if (len7 == 126) {
        ps->plen = ((apr_uint64_t)h[2] << 8) | h[3];
        off = 4;
    }
    else if (len7 == 127) {
        int i;
        if (h[2] & 0x80) {
            *why = "64-bit payload length with the high bit set";
            return UPM_WS_CLOSE_PROTOCOL;
        }
        ps->plen = 0;
        for (i = 0; i < 8; i++) {
            ps->plen = (ps->plen << 8) | h[2 + i];
        }
        off = 10;
    }
    else {
        ps->plen = len7;
    }
    memcpy(ps->mask, h + off, 4);
    ps->pgot = 0;
    if (!is_control(ps->opcode)) {
        if (ps->opcode != UPM_WS_OP_CONT) {
            ps->msg_op = ps->opcode;
            ps->msg_len = 0;
            upm_utf8_init(&ps->utf8);
        }
        if (ps->plen > ps->max_message || ps->msg_len + ps->plen > ps->max_message) {
            *why = "message larger than the configured maximum";
            return UPM_WS_CLOSE_TOO_BIG;
        }
        if (reserve(ps, (apr_size_t)(ps->msg_len + ps->plen)) != 0) {
            *why = "out of memory";
            return UPM_WS_CLOSE_INTERNAL;
        }
    }
    return 0;
}

/* The frame's payload is complete.  Returns 1 when it produced an event. */
static int frame_done(upm_ws_parser *ps, upm_ws_event *ev)
{
    if (is_control(ps->opcode)) {
        ev->data = ps->ctl;
        ev->len = (apr_size_t)ps->plen;
        switch (ps->opcode) {
        case UPM_WS_OP_PING:
            ev->kind = UPM_WS_EV_PING;
            return 1;
        case UPM_WS_OP_PONG:
            ev->kind = UPM_WS_EV_PONG;
            return 1;
        default: {
            upm_utf8 u;
            ps->state = ST_DONE;
            if (ps->plen == 0) {
                ev->kind = UPM_WS_EV_CLOSE;
                ev->code = 0;
                return 1;
            }
            if (ps->plen == 1) {
                ev->kind = UPM_WS_EV_FAIL;
                ev->code = UPM_WS_CLOSE_PROTOCOL;
                ev->reason = "close frame with a one-byte payload";
                return 1;
            }
            ev->code = (ps->ctl[0] << 8) | ps->ctl[1];
            if (!upm_ws_close_code_valid(ev->code)) {
                ev->kind = UPM_WS_EV_FAIL;
                ev->code = UPM_WS_CLOSE_PROTOCOL;
                ev->reason = "invalid close code";
                return 1;
            }
            upm_utf8_init(&u);
            if (upm_utf8_feed(&u, ps->ctl + 2, ev->len - 2) != 0 || !upm_utf8_complete(&u)) {
                ev->kind = UPM_WS_EV_FAIL;
                ev->code = UPM_WS_CLOSE_BAD_DATA;
                ev->reason = "close reason is not valid UTF-8";
                return 1;
            }
            ev->kind = UPM_WS_EV_CLOSE;
            ev->data = ps->ctl + 2;
            ev->len -= 2;
            return 1;
        }
        }
    }
    if (!ps->fin) {
        return 0;
    }
    /* Only text messages get here: binary ones were refused at once. */
    if (!upm_utf8_complete(&ps->utf8)) {
        ps->state = ST_DONE;
        ev->kind = UPM_WS_EV_FAIL;
        ev->code = UPM_WS_CLOSE_BAD_DATA;
        ev->reason = "text message ends inside a UTF-8 sequence";
        return 1;
    }
    ev->kind = UPM_WS_EV_TEXT;
    ev->data = ps->msg_len ? ps->msg : (const unsigned char *)"";
    ev->len = ps->msg_len;
    ps->msg_op = 0;
    return 1;
}

apr_size_t upm_ws_parse(upm_ws_parser *ps, const unsigned char *in, apr_size_t len,
                        upm_ws_event *ev)
{
    apr_size_t pos = 0;

    memset(ev, 0, sizeof(*ev));
    ev->kind = UPM_WS_EV_NONE;
    if (ps->state == ST_DONE) {
        return len;
    }
    while (pos < len) {
        if (ps->state == ST_HDR) {
            const char *why = NULL;
            int code;
            while (pos < len && ps->hdr_len < ps->hdr_need) {
                ps->hdr[ps->hdr_len++] = in[pos++];
            }
            if (ps->hdr_len < ps->hdr_need) {
                break;
            }
            if (ps->hdr_need == 2) {
                unsigned len7 = ps->hdr[1] & 0x7f;
                if ((code = check_first(ps, &why)) != 0) {
                    return fail(ps, ev, code, why, len);
                }
                ps->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
                continue;
            }
            if ((code = header_done(ps, &why)) != 0) {
                return fail(ps, ev, code, why, len);
            }
            ps->hdr_len = 0;
            ps->hdr_need = 2;
            ps->state = ST_PAYLOAD;
        }
        if (ps->state == ST_PAYLOAD) {
            apr_uint64_t left = ps->plen - ps->pgot;
            apr_size_t n = (apr_size_t)((apr_uint64_t)(len - pos) < left ? len - pos : left);
            unsigned char *dst = is_control(ps->opcode) ? ps->ctl + ps->pgot
                                                         : ps->msg + ps->msg_len;
            apr_size_t i;
            for (i = 0; i < n; i++) {
                dst[i] = in[pos + i] ^ ps->mask[(ps->pgot + i) & 3];
            }
            pos += n;
            ps->pgot += n;
            if (!is_control(ps->opcode)) {
                ps->msg_len += n;
                /* Fail fast: the first bad byte decides, not the message end. */
                if (upm_utf8_feed(&ps->utf8, dst, n) != 0) {
                    return fail(ps, ev, UPM_WS_CLOSE_BAD_DATA,
                                "text message is not valid UTF-8", len);
                }
            }
            if (ps->pgot == ps->plen) {
                ps->state = ST_HDR;
                if (frame_done(ps, ev)) {
                    if (ps->state == ST_DONE) {
                        return len;
                    }
                    return pos;
                }
            }
        }
    }
    return pos;
}

/* ---- encoders and close codes ---------------------------------------- */

apr_size_t upm_ws_frame_header(unsigned char *out, int opcode, apr_uint64_t len)
{
    out[0] = (unsigned char)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        return 4;
    }
    else {
        int i;
        out[1] = 127;
        for (i = 0; i < 8; i++) {
            out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
        }
        return 10;
    }
}

unsigned char *upm_ws_frame(apr_pool_t *p, int opcode, const void *data, apr_size_t len,
                            apr_size_t *out_len)
{
    unsigned char *f = apr_palloc(p, len + 10);
    apr_size_t h = upm_ws_frame_header(f, opcode, len);
    if (len) {
        memcpy(f + h, data, len);
    }
    *out_len = h + len;
    return f;
}

unsigned char *upm_ws_close_frame(apr_pool_t *p, int code, const char *reason,
                                  apr_size_t *out_len)
{
    unsigned char payload[UPM_WS_CONTROL_MAX];
    apr_size_t n = 0;

    if (code) {
        apr_size_t rl = reason ? strlen(reason) : 0;
        payload[0] = (unsigned char)(code >> 8);
        payload[1] = (unsigned char)code;
        if (rl > UPM_WS_CONTROL_MAX - 2) {
            rl = UPM_WS_CONTROL_MAX - 2;
            /* Back up to the start of a code point. */
            while (rl && ((unsigned char)reason[rl] & 0xC0) == 0x80) {
                rl--;
            }
        }
        if (rl) {
            memcpy(payload + 2, reason, rl);
        }
        n = 2 + rl;
    }
    return upm_ws_frame(p, UPM_WS_OP_CLOSE, payload, n, out_len);
}

int upm_ws_close_code_valid(int code)
{
    if (code >= 1000 && code <= 1003) {
        return 1;
    }
    if (code >= 1007 && code <= 1014) {
        return 1;
    }
    return code >= 3000 && code <= 4999;
}
