/* SPDX-License-Identifier: Apache-2.0 */
#include <apr_general.h>
#include <stdlib.h>
#include "upm_ws_frame.h"
#include "upm_test.h"

static apr_pool_t *pool;

/* A client frame: masked with a fixed key unless mask == 0; lenform forces
 * the 16- or 64-bit length encoding (0: shortest). */
static apr_size_t mk(unsigned char *out, int b0, const void *data, apr_size_t len,
                     int mask, int lenform)
{
    static const unsigned char key[4] = { 0x37, 0xfa, 0x21, 0x3d };
    apr_size_t o = 0, i;
    out[o++] = (unsigned char)b0;
    if (lenform == 0 && len < 126) {
        out[o++] = (unsigned char)((mask ? 0x80 : 0) | len);
    }
    else if (lenform <= 16 && len <= 0xffff) {
        out[o++] = (unsigned char)((mask ? 0x80 : 0) | 126);
        out[o++] = (unsigned char)(len >> 8);
        out[o++] = (unsigned char)len;
    }
    else {
        out[o++] = (unsigned char)((mask ? 0x80 : 0) | 127);
        for (i = 0; i < 8; i++) {
            out[o++] = (unsigned char)((apr_uint64_t)len >> (56 - 8 * i));
        }
    }
    if (mask) {
        memcpy(out + o, key, 4);
        o += 4;
    }
    for (i = 0; i < len; i++) {
        out[o + i] = ((const unsigned char *)data)[i] ^ (mask ? key[i & 3] : 0);
    }
    return o + len;
}

/* Feeds everything in chunks of `step` bytes and returns the first event
 * that is not NONE (kind NONE when there was none); *used gets the bytes
 * consumed up to it. */
static upm_ws_event feed(upm_ws_parser *ps, const unsigned char *in, apr_size_t len,
                         apr_size_t step, apr_size_t *used)
{
    upm_ws_event ev;
    apr_size_t pos = 0;
    memset(&ev, 0, sizeof(ev));
    while (pos < len) {
        apr_size_t n = len - pos < step ? len - pos : step;
        apr_size_t c = upm_ws_parse(ps, in + pos, n, &ev);
        pos += c;
        if (ev.kind != UPM_WS_EV_NONE) {
            break;
        }
    }
    if (used) {
        *used = pos;
    }
    return ev;
}

/* The close code the parser fails with on this input, 0 when it reports
 * nothing, or minus the kind of the first other event. */
static int fail_code(const unsigned char *in, apr_size_t len)
{
    upm_ws_parser ps;
    upm_ws_event ev;
    upm_ws_parser_init(&ps, pool, 65536);
    ev = feed(&ps, in, len, len, NULL);
    if (ev.kind == UPM_WS_EV_FAIL) {
        return ev.code;
    }
    return -(int)ev.kind;
}

static void test_handshake(void)
{
    char acc[29];
    upm_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", acc);
    UPM_CHECK_STR(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    UPM_CHECK(upm_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=="));
    UPM_CHECK(!upm_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ"));      /* no padding */
    UPM_CHECK(!upm_ws_key_valid("dGhlIHNhbXBsZSBub25jZR=="));    /* not canonical */
    UPM_CHECK(!upm_ws_key_valid("dGhlIHNhbXBsZSBub25j*Q=="));
    UPM_CHECK(!upm_ws_key_valid("c2hvcnQ="));                    /* 5 bytes */
    UPM_CHECK(!upm_ws_key_valid(""));
    UPM_CHECK(!upm_ws_key_valid(NULL));
    UPM_CHECK(upm_ws_header_has_token("keep-alive, Upgrade", "upgrade"));
    UPM_CHECK(upm_ws_header_has_token("upgrade", "upgrade"));
    UPM_CHECK(upm_ws_header_has_token(" UPGRADE ,x", "upgrade"));
    UPM_CHECK(!upm_ws_header_has_token("upgrades", "upgrade"));
    UPM_CHECK(!upm_ws_header_has_token("keep-alive", "upgrade"));
    UPM_CHECK(!upm_ws_header_has_token("", "upgrade"));
}

static void test_origin(void)
{
    apr_array_header_t *a = apr_array_make(pool, 4, sizeof(const char *));
#define N(x) upm_ws_origin_normalize(pool, x)
    UPM_CHECK_STR(N("HTTPS://App.Example.COM"), "https://app.example.com");
    UPM_CHECK_STR(N("https://app.example.com:443"), "https://app.example.com");
    UPM_CHECK_STR(N("https://app.example.com:8443/"), "https://app.example.com:8443");
    UPM_CHECK_STR(N("http://127.0.0.1:80"), "http://127.0.0.1");
    UPM_CHECK_STR(N("http://[::1]:8080"), "http://[::1]:8080");
    UPM_CHECK_STR(N("https://*.example.com"), "https://*.example.com");
    UPM_CHECK_STR(N("null"), "null");
    UPM_CHECK_STR(N("*"), "*");
    UPM_CHECK(N("example.com") == NULL);
    UPM_CHECK(N("https://") == NULL);
    UPM_CHECK(N("https://a.com:0") == NULL);
    UPM_CHECK(N("https://a.com:99999") == NULL);
    UPM_CHECK(N("https://a.com/path") == NULL);
    UPM_CHECK(N("https://user@a.com") == NULL);
    UPM_CHECK(N("https://a b.com") == NULL);
#undef N
    APR_ARRAY_PUSH(a, const char *) = "https://app.example.com";
    APR_ARRAY_PUSH(a, const char *) = "https://*.tenant.example.com";
    APR_ARRAY_PUSH(a, const char *) = "http://localhost:3000";
#define OK(o) upm_ws_origin_allowed(pool, o, a, "push.example.com")
    UPM_CHECK(OK(NULL));                                /* not a browser */
    UPM_CHECK(OK("https://app.example.com"));
    UPM_CHECK(OK("https://APP.example.com:443"));
    UPM_CHECK(OK("https://a.tenant.example.com"));
    UPM_CHECK(OK("https://x.y.tenant.example.com"));
    UPM_CHECK(OK("http://localhost:3000"));
    UPM_CHECK(!OK("https://tenant.example.com"));
    UPM_CHECK(!OK("https://eviltenant.example.com"));
    UPM_CHECK(!OK("https://a.tenant.example.com:8443"));
    UPM_CHECK(!OK("http://app.example.com"));           /* scheme counts */
    UPM_CHECK(!OK("https://app.example.com.evil.net"));
    UPM_CHECK(!OK("https://evil.net"));
    UPM_CHECK(!OK("null"));
    UPM_CHECK(!OK("*"));
    UPM_CHECK(!OK("https://*.tenant.example.com"));
    UPM_CHECK(!OK("garbage"));
#undef OK
    /* unset: only the request's own host */
    UPM_CHECK(upm_ws_origin_allowed(pool, "https://push.example.com", NULL, "push.example.com"));
    UPM_CHECK(upm_ws_origin_allowed(pool, "https://push.example.com", NULL,
                                    "push.example.com:443"));
    UPM_CHECK(upm_ws_origin_allowed(pool, "http://127.0.0.1:8610", NULL, "127.0.0.1:8610"));
    UPM_CHECK(!upm_ws_origin_allowed(pool, "http://127.0.0.1:8611", NULL, "127.0.0.1:8610"));
    UPM_CHECK(!upm_ws_origin_allowed(pool, "https://evil.net", NULL, "push.example.com"));
    UPM_CHECK(!upm_ws_origin_allowed(pool, "https://push.example.com", NULL, NULL));
    UPM_CHECK(!upm_ws_origin_allowed(pool, "https://x.push.example.com", NULL,
                                     "*.push.example.com"));
    /* "*" allows any browser origin */
    a = apr_array_make(pool, 1, sizeof(const char *));
    APR_ARRAY_PUSH(a, const char *) = "*";
    UPM_CHECK(upm_ws_origin_allowed(pool, "https://evil.net", a, "push.example.com"));
}

static void test_utf8(void)
{
    upm_utf8 u;
    const unsigned char good[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xf0\x9f\x98\x80";
    apr_size_t i;

    upm_utf8_init(&u);
    UPM_CHECK_INT(upm_utf8_feed(&u, good, sizeof(good) - 1), 0);
    UPM_CHECK(upm_utf8_complete(&u));
    /* byte by byte gives the same answer */
    upm_utf8_init(&u);
    for (i = 0; i + 1 < sizeof(good); i++) {
        UPM_CHECK_INT(upm_utf8_feed(&u, good + i, 1), 0);
    }
    UPM_CHECK(upm_utf8_complete(&u));
    upm_utf8_init(&u);
    UPM_CHECK_INT(upm_utf8_feed(&u, (const unsigned char *)"\xf0\x9f", 2), 0);
    UPM_CHECK(!upm_utf8_complete(&u));
#define BAD(s) do { upm_utf8_init(&u); \
    UPM_CHECK_INT(upm_utf8_feed(&u, (const unsigned char *)(s), sizeof(s) - 1), -1); } while (0)
    BAD("\xc0\xaf");             /* overlong '/' */
    BAD("\xe0\x80\xaf");         /* overlong */
    BAD("\xed\xa0\x80");         /* surrogate U+D800 */
    BAD("\xf4\x90\x80\x80");     /* U+110000 */
    BAD("\xf5\x80\x80\x80");
    BAD("\xff");
    BAD("\x80");                 /* lone continuation */
    BAD("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64");
#undef BAD
}

static void test_text(void)
{
    upm_ws_parser ps;
    upm_ws_event ev;
    unsigned char buf[200000];
    apr_size_t n, used, step;
    /* RFC 6455 5.7: a single-frame masked text message "Hello" */
    static const unsigned char hello[] = {
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
    };

    for (step = 1; step <= sizeof(hello); step++) {
        upm_ws_parser_init(&ps, pool, 65536);
        ev = feed(&ps, hello, sizeof(hello), step, &used);
        UPM_CHECK_INT(ev.kind, UPM_WS_EV_TEXT);
        UPM_CHECK_INT(ev.len, 5);
        UPM_CHECK(ev.len == 5 && memcmp(ev.data, "Hello", 5) == 0);
        UPM_CHECK_INT(used, sizeof(hello));
    }

    /* Two messages in one buffer: the first event stops at its frame end. */
    upm_ws_parser_init(&ps, pool, 65536);
    n = mk(buf, 0x81, "ab", 2, 1, 0);
    n += mk(buf + n, 0x81, "cde", 3, 1, 0);
    used = upm_ws_parse(&ps, buf, n, &ev);
    UPM_CHECK_INT(ev.kind, UPM_WS_EV_TEXT);
    UPM_CHECK_INT(used, 8);
    used += upm_ws_parse(&ps, buf + used, n - used, &ev);
    UPM_CHECK_INT(ev.kind, UPM_WS_EV_TEXT);
    UPM_CHECK(ev.len == 3 && memcmp(ev.data, "cde", 3) == 0);
    UPM_CHECK_INT(used, n);
    UPM_CHECK_INT(upm_ws_parse(&ps, buf, 0, &ev), 0);
    UPM_CHECK_INT(ev.kind, UPM_WS_EV_NONE);

    /* empty text message */
    upm_ws_parser_init(&ps, pool, 65536);
    n = mk(buf, 0x81, "", 0, 1, 0);
    ev = feed(&ps, buf, n, n, NULL);
    UPM_CHECK_INT(ev.kind, UPM_WS_EV_TEXT);
    UPM_CHECK_INT(ev.len, 0);

    /* 16-bit and 64-bit lengths, also for short payloads */
    {
        static char big[70000];
        memset(big, 'x', sizeof(big));
        upm_ws_parser_init(&ps, pool, 65536);
        n = mk(buf, 0x81, big, 300, 1, 0);
        UPM_CHECK_INT(buf[1] & 0x7f, 126);
        ev = feed(&ps, buf, n, 7, NULL);
        UPM_CHECK_INT(ev.kind, UPM_WS_EV_TEXT);
        UPM_CHECK_INT(ev.len, 300);
        n = mk(buf, 0x81, "hi", 2, 1, 64);
        UPM_CHECK_INT(buf[1] & 0x7f, 127);
        ev = feed(&ps, buf, n, 3, NULL);
        UPM_CHECK_INT(ev.kind, UPM_WS_EV_TEXT);
        UPM_CHECK_INT(ev.len, 2);
        n = mk(buf, 0x81, big, 65536, 1, 64);
        ev = feed(&ps, buf, n, 4096, NULL);
        UPM_CHECK_INT(ev.kind, UPM_WS_EV_TEXT);
        UPM_CHECK_INT(ev.len, 65536);
        /* one byte over the limit: 1009 as soon as the header is known */
        upm_ws_parser_init(&ps, pool, 65536);
        n = mk(buf, 0x81, big, 65537, 1, 0);
        ev = feed(&ps, buf, 14, 14, NULL);
        UPM_CHECK_INT(ev.kind, UPM_WS_EV_FAIL);
        UPM_CHECK_INT(ev.code, UPM_WS_CLOSE_TOO_BIG);
    }
}

static void test_fragments(void)
{
    upm_ws_parser ps;
    upm_ws_event ev;
    unsigned char buf[4096];
    apr_size_t n, used, pos;

    /* "Hel" + ping + "lo": the ping is reported in between. */
    upm_ws_parser_init(&ps, pool, 65536);
    n = mk(buf, 0x01, "Hel", 3, 1, 0);
    n += mk(buf + n, 0x89, "p!", 2, 1, 0);
    n += mk(buf + n, 0x80, "lo", 2, 1, 0);
    pos = 0;
    used = upm_ws_parse(&ps, buf, n, &ev);
    UPM_CHECK_INT(ev.kind, UPM_WS_EV_PING);
    UPM_CHECK(ev.len == 2 && memcmp(ev.data, "p!", 2) == 0);
    pos += used;
    used = upm_ws_parse(&ps, buf + pos, n - pos, &ev);
    UPM_CHECK_INT(ev.kind, UPM_WS_EV_TEXT);
    UPM_CHECK(ev.len == 5 && memcmp(ev.data, "Hello", 5) == 0);
    UPM_CHECK_INT(pos + used, n);

    /* A code point split across two fragments is fine... */
    upm_ws_parser_init(&ps, pool, 65536);
    n = mk(buf, 0x01, "a\xe2\x82", 3, 1, 0);
    n += mk(buf + n, 0x80, "\xac", 1, 1, 0);
    ev = feed(&ps, buf, n, 1, NULL);
    UPM_CHECK_INT(ev.kind, UPM_WS_EV_TEXT);
    UPM_CHECK_INT(ev.len, 4);
    /* ...a message ending inside one is not (1007) */
    upm_ws_parser_init(&ps, pool, 65536);
    n = mk(buf, 0x01, "a", 1, 1, 0);
    n += mk(buf + n, 0x80, "\xe2\x82", 2, 1, 0);
    ev = feed(&ps, buf, n, n, NULL);
    UPM_CHECK_INT(ev.kind, UPM_WS_EV_FAIL);
    UPM_CHECK_INT(ev.code, UPM_WS_CLOSE_BAD_DATA);
    /* and invalid bytes fail in the first fragment, before the message ends */
    upm_ws_parser_init(&ps, pool, 65536);
    n = mk(buf, 0x01, "\xed\xa0\x80", 3, 1, 0);
    ev = feed(&ps, buf, n, n, NULL);
    UPM_CHECK_INT(ev.kind, UPM_WS_EV_FAIL);
    UPM_CHECK_INT(ev.code, UPM_WS_CLOSE_BAD_DATA);

    /* fragments add up against the limit */
    upm_ws_parser_init(&ps, pool, 10);
    n = mk(buf, 0x01, "123456", 6, 1, 0);
    n += mk(buf + n, 0x80, "78901", 5, 1, 0);
    ev = feed(&ps, buf, n, n, NULL);
    UPM_CHECK_INT(ev.kind, UPM_WS_EV_FAIL);
    UPM_CHECK_INT(ev.code, UPM_WS_CLOSE_TOO_BIG);

    /* empty fragments */
    upm_ws_parser_init(&ps, pool, 65536);
    n = mk(buf, 0x01, "", 0, 1, 0);
    n += mk(buf + n, 0x00, "", 0, 1, 0);
    n += mk(buf + n, 0x80, "x", 1, 1, 0);
    ev = feed(&ps, buf, n, 2, NULL);
    UPM_CHECK_INT(ev.kind, UPM_WS_EV_TEXT);
    UPM_CHECK_INT(ev.len, 1);
}

static void test_violations(void)
{
    unsigned char buf[512], pl[200];
    apr_size_t n;
    memset(pl, 'a', sizeof(pl));

    n = mk(buf, 0x81, "x", 1, 0, 0);
    UPM_CHECK_INT(fail_code(buf, n), UPM_WS_CLOSE_PROTOCOL);        /* unmasked */
    n = mk(buf, 0xC1, "x", 1, 1, 0);
    UPM_CHECK_INT(fail_code(buf, n), UPM_WS_CLOSE_PROTOCOL);        /* RSV1 */
    n = mk(buf, 0xA1, "x", 1, 1, 0);
    UPM_CHECK_INT(fail_code(buf, n), UPM_WS_CLOSE_PROTOCOL);        /* RSV2 */
    n = mk(buf, 0x91, "x", 1, 1, 0);
    UPM_CHECK_INT(fail_code(buf, n), UPM_WS_CLOSE_PROTOCOL);        /* RSV3 */
    n = mk(buf, 0x83, "x", 1, 1, 0);
    UPM_CHECK_INT(fail_code(buf, n), UPM_WS_CLOSE_PROTOCOL);        /* opcode 3 */
    n = mk(buf, 0x8B, "x", 1, 1, 0);
    UPM_CHECK_INT(fail_code(buf, n), UPM_WS_CLOSE_PROTOCOL);        /* opcode B */
    n = mk(buf, 0x82, "x", 1, 1, 0);
    UPM_CHECK_INT(fail_code(buf, n), UPM_WS_CLOSE_UNACCEPTABLE);    /* binary */
    n = mk(buf, 0x09, "x", 1, 1, 0);
    UPM_CHECK_INT(fail_code(buf, n), UPM_WS_CLOSE_PROTOCOL);        /* fragmented ping */
    n = mk(buf, 0x89, pl, 126, 1, 0);
    UPM_CHECK_INT(fail_code(buf, n), UPM_WS_CLOSE_PROTOCOL);        /* ping > 125 */
    n = mk(buf, 0x89, pl, 125, 1, 0);
    UPM_CHECK_INT(fail_code(buf, n), -UPM_WS_EV_PING);              /* 125 is fine */
    n = mk(buf, 0x80, "x", 1, 1, 0);
    UPM_CHECK_INT(fail_code(buf, n), UPM_WS_CLOSE_PROTOCOL);        /* stray continuation */
    n = mk(buf, 0x01, "a", 1, 1, 0);
    n += mk(buf + n, 0x81, "b", 1, 1, 0);
    {
        upm_ws_parser ps;
        upm_ws_event ev;
        upm_ws_parser_init(&ps, pool, 65536);
        ev = feed(&ps, buf, n, n, NULL);
        UPM_CHECK_INT(ev.kind, UPM_WS_EV_FAIL);                     /* text inside text */
        UPM_CHECK_INT(ev.code, UPM_WS_CLOSE_PROTOCOL);
        /* failure is sticky: later input is swallowed */
        UPM_CHECK_INT(upm_ws_parse(&ps, buf, n, &ev), n);
        UPM_CHECK_INT(ev.kind, UPM_WS_EV_NONE);
    }
    /* 64-bit length with the top bit set */
    buf[0] = 0x81; buf[1] = 0xFF;
    memset(buf + 2, 0, 8);
    buf[2] = 0x80;
    memset(buf + 10, 0, 4);
    UPM_CHECK_INT(fail_code(buf, 14), UPM_WS_CLOSE_PROTOCOL);
}

static void test_close(void)
{
    upm_ws_parser ps;
    upm_ws_event ev;
    unsigned char buf[256], *f;
    apr_size_t n;
    static const int good[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                3000, 3999, 4000, 4999 };
    static const int bad[] = { 0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999,
                               5000, 65535 };
    unsigned i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        UPM_CHECK(upm_ws_close_code_valid(good[i]));
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned char pl[2] = { (unsigned char)(bad[i] >> 8), (unsigned char)bad[i] };
        UPM_CHECK(!upm_ws_close_code_valid(bad[i]));
        n = mk(buf, 0x88, pl, 2, 1, 0);
        UPM_CHECK_INT(fail_code(buf, n), UPM_WS_CLOSE_PROTOCOL);
    }

    upm_ws_parser_init(&ps, pool, 65536);
    n = mk(buf, 0x88, "\x03\xe8" "bye", 5, 1, 0);
    ev = feed(&ps, buf, n, 1, NULL);
    UPM_CHECK_INT(ev.kind, UPM_WS_EV_CLOSE);
    UPM_CHECK_INT(ev.code, 1000);
    UPM_CHECK(ev.len == 3 && memcmp(ev.data, "bye", 3) == 0);
    /* after a close, nothing more is parsed */
    n = mk(buf, 0x81, "x", 1, 1, 0);
    UPM_CHECK_INT(upm_ws_parse(&ps, buf, n, &ev), n);
    UPM_CHECK_INT(ev.kind, UPM_WS_EV_NONE);

    upm_ws_parser_init(&ps, pool, 65536);
    n = mk(buf, 0x88, "", 0, 1, 0);
    ev = feed(&ps, buf, n, n, NULL);
    UPM_CHECK_INT(ev.kind, UPM_WS_EV_CLOSE);
    UPM_CHECK_INT(ev.code, 0);

    n = mk(buf, 0x88, "\x03", 1, 1, 0);
    UPM_CHECK_INT(fail_code(buf, n), UPM_WS_CLOSE_PROTOCOL);        /* 1-byte payload */
    n = mk(buf, 0x88, "\x03\xe8\xff", 3, 1, 0);
    UPM_CHECK_INT(fail_code(buf, n), UPM_WS_CLOSE_BAD_DATA);        /* bad reason */

    /* encoders */
    f = upm_ws_close_frame(pool, 4001, "token expired", &n);
    UPM_CHECK_INT(n, 2 + 2 + 13);
    UPM_CHECK(f[0] == 0x88 && f[1] == 15 && f[2] == 0x0f && f[3] == 0xa1);
    f = upm_ws_close_frame(pool, 0, NULL, &n);
    UPM_CHECK(n == 2 && f[0] == 0x88 && f[1] == 0);
    {
        char longr[300];
        upm_utf8 u;
        memset(longr, 'a', sizeof(longr));
        /* a 2-byte character straddling the 123-byte cut is left out whole */
        longr[122] = '\xc3';
        longr[123] = '\xa9';
        longr[299] = '\0';
        f = upm_ws_close_frame(pool, 1000, longr, &n);
        UPM_CHECK_INT(f[1], 124);
        upm_utf8_init(&u);
        UPM_CHECK(upm_utf8_feed(&u, f + 4, f[1] - 2) == 0 && upm_utf8_complete(&u));
    }
    f = upm_ws_frame(pool, UPM_WS_OP_TEXT, "abc", 3, &n);
    UPM_CHECK(n == 5 && f[0] == 0x81 && f[1] == 3 && memcmp(f + 2, "abc", 3) == 0);
    UPM_CHECK_INT(upm_ws_frame_header(buf, UPM_WS_OP_TEXT, 125), 2);
    UPM_CHECK_INT(upm_ws_frame_header(buf, UPM_WS_OP_TEXT, 126), 4);
    UPM_CHECK(buf[1] == 126 && buf[2] == 0 && buf[3] == 126);
    UPM_CHECK_INT(upm_ws_frame_header(buf, UPM_WS_OP_TEXT, 65535), 4);
    UPM_CHECK_INT(upm_ws_frame_header(buf, UPM_WS_OP_PONG, 65536), 10);
    UPM_CHECK(buf[0] == 0x8A && buf[1] == 127 && buf[7] == 1 && buf[8] == 0 && buf[9] == 0);
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    test_handshake();
    test_origin();
    test_utf8();
    test_text();
    test_fragments();
    test_violations();
    test_close();
    apr_pool_destroy(pool);
    apr_terminate();
    UPM_TEST_DONE("ws_frame");
}
