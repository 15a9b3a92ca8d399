/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the WebSocket frame parser (upm_ws_frame.c).
 *
 * Byte 0 of the input picks how the rest is cut into reads and the message
 * size limit; the rest is what a client sends.  Besides the sanitizers'
 * checks it asserts the parser's contract: it always makes progress, an
 * event's data respects the protocol's limits, text is valid UTF-8, and
 * the events do not depend on how the bytes were split into reads. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_strings.h>
#include "upm_ws_frame.h"

#define MAX_EVENTS 4096

typedef struct {
    int kind, code;
    apr_size_t len;
    unsigned long hash;
} rec;

static unsigned long hash(const unsigned char *d, apr_size_t n)
{
    unsigned long h = 5381;
    apr_size_t i;
    for (i = 0; i < n; i++) {
        h = h * 33 + d[i];
    }
    return h;
}

static void check_event(const upm_ws_event *ev, apr_size_t max)
{
    upm_utf8 u;
    switch (ev->kind) {
    case UPM_WS_EV_TEXT:
        if (ev->len > max) abort();
        upm_utf8_init(&u);
        if (upm_utf8_feed(&u, ev->data, ev->len) != 0 || !upm_utf8_complete(&u)) abort();
        break;
    case UPM_WS_EV_PING:
    case UPM_WS_EV_PONG:
        if (ev->len > UPM_WS_CONTROL_MAX) abort();
        break;
    case UPM_WS_EV_CLOSE:
        if (ev->code && !upm_ws_close_code_valid(ev->code)) abort();
        if (ev->len > UPM_WS_CONTROL_MAX - 2) abort();
        break;
    case UPM_WS_EV_FAIL:
        if (ev->code != 1002 && ev->code != 1003 && ev->code != 1007 && ev->code != 1009
            && ev->code != 1011) abort();
        if (!ev->reason) abort();
        break;
    default:
        break;
    }
}

/* Parses data in reads of `step` bytes; records the events. */
static int run(apr_pool_t *p, const unsigned char *data, size_t size, size_t step,
               apr_size_t max, rec *out)
{
    upm_ws_parser ps;
    size_t pos = 0;
    int n = 0;

    upm_ws_parser_init(&ps, p, max);
    while (pos < size) {
        size_t chunk = size - pos < step ? size - pos : step, off = 0;
        while (off < chunk) {
            upm_ws_event ev;
            apr_size_t c = upm_ws_parse(&ps, data + pos + off, chunk - off, &ev);
            if (c == 0 || c > chunk - off) abort();          /* always progresses */
            if (ev.kind == UPM_WS_EV_NONE && c != chunk - off) abort();
            check_event(&ev, max);
            if (ev.kind != UPM_WS_EV_NONE && n < MAX_EVENTS) {
                out[n].kind = ev.kind;
                out[n].code = ev.code;
                out[n].len = ev.len;
                out[n].hash = ev.data ? hash(ev.data, ev.len) : 0;
                n++;
            }
            off += c;
        }
        pos += chunk;
    }
    return n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apr_initialize();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rec a[MAX_EVENTS], b[MAX_EVENTS];
    apr_pool_t *p;
    size_t step;
    apr_size_t max;
    int na, nb, i;

    if (size < 1) {
        return 0;
    }
    step = (size_t)(data[0] & 0x1f) + 1;
    max = (data[0] & 0x80) ? 200 : 65536;
    data++;
    size--;
    apr_pool_create(&p, NULL);
    na = run(p, data, size, size ? size : 1, max, a);
    nb = run(p, data, size, step, max, b);
    if (na != nb) abort();
    for (i = 0; i < na; i++) {
        if (a[i].kind != b[i].kind || a[i].code != b[i].code || a[i].len != b[i].len
            || a[i].hash != b[i].hash) abort();
    }
    /* The handshake and close-frame helpers take client-controlled text. */
    {
        char *s = apr_pstrmemdup(p, (const char *)data, size > 300 ? 300 : size);
        apr_size_t len;
        unsigned char *f = upm_ws_close_frame(p, 1000, s, &len);
        char acc[29];
        if (len > 2 + UPM_WS_CONTROL_MAX || f[1] > UPM_WS_CONTROL_MAX) abort();
        if (upm_ws_key_valid(s)) {
            upm_ws_accept(s, acc);
            if (strlen(acc) != 28) abort();
        }
        upm_ws_header_has_token(s, "upgrade");
        upm_ws_origin_allowed(p, s, NULL, "example.com");
        if (upm_ws_origin_normalize(p, s)) {
            const char *n = upm_ws_origin_normalize(p, s);
            /* normalising is idempotent */
            const char *n2 = upm_ws_origin_normalize(p, n);
            if (!n2 || strcmp(n, n2) != 0) abort();
        }
    }
    apr_pool_destroy(p);
    return 0;
}
