/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "benchlib.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

uint64_t bl_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t bl_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t bl_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void bl_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* ---- histogram ---------------------------------------------------- */

static int bucket_of(uint64_t v)
{
    int e, sub;
    if (v < 128) {
        return (int)v;
    }
    e = 63 - __builtin_clzll(v);
    if (e > 40) {
        return BL_HIST_BUCKETS - 1;
    }
    sub = (int)((v >> (e - 6)) & 63);
    return 128 + (e - 7) * 64 + sub;
}

static uint64_t bucket_top(int i)
{
    int e, sub;
    if (i < 128) {
        return (uint64_t)i;
    }
    e = (i - 128) / 64 + 7;
    sub = (i - 128) % 64;
    return (((uint64_t)(64 + sub + 1)) << (e - 6)) - 1;
}

void bl_hist_add(bl_hist *h, uint64_t v)
{
    h->b[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max) {
        h->max = v;
    }
}

void bl_hist_merge(bl_hist *into, const bl_hist *from)
{
    int i;
    for (i = 0; i < BL_HIST_BUCKETS; i++) {
        into->b[i] += from->b[i];
    }
    into->count += from->count;
    into->sum += from->sum;
    if (from->max > into->max) {
        into->max = from->max;
    }
}

uint64_t bl_hist_quantile(const bl_hist *h, double q)
{
    uint64_t want, seen = 0;
    int i;
    if (!h->count) {
        return 0;
    }
    want = (uint64_t)(q * (double)h->count);
    if (want >= h->count) {
        want = h->count - 1;
    }
    for (i = 0; i < BL_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen > want) {
            uint64_t top = bucket_top(i);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}

/* ---- buffers ------------------------------------------------------ */

void bl_buf_add(bl_buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        b->p = realloc(b->p, cap);
        if (!b->p) {
            bl_die("out of memory");
        }
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
}

void bl_buf_printf(bl_buf *b, const char *fmt, ...)
{
    char tmp[4096];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n < sizeof(tmp)) {
        bl_buf_add(b, tmp, (size_t)n);
    }
    else {
        char *big = malloc((size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        bl_buf_add(b, big, (size_t)n);
        free(big);
    }
}

void bl_buf_consume(bl_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    }
    else {
        memmove(b->p, b->p + n, b->len - n);
        b->len -= n;
    }
    if (b->p) {
        b->p[b->len] = 0;
    }
}

void bl_buf_free(bl_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- chunked decoding --------------------------------------------- */

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER, CH_TRAILER_LINE,
       CH_DONE };

int bl_chunked_feed(bl_chunked *d, const char *p, size_t n, size_t *used,
                    bl_chunk_out out, void *ctx)
{
    size_t i = 0;
    while (i < n) {
        char c = p[i];
        switch (d->state) {
        case CH_SIZE:
            if (isxdigit((unsigned char)c)) {
                int v = isdigit((unsigned char)c) ? c - '0' : (tolower(c) - 'a' + 10);
                if (++d->digits > 15) {
                    return -1;
                }
                d->remaining = d->remaining * 16 + (uint64_t)v;
                i++;
            }
            else if (c == ';' || c == ' ' || c == '\t') {
                d->state = CH_EXT;
                i++;
            }
            else if (c == '\r') {
                d->state = CH_SIZE_LF;
                i++;
            }
            else if (c == '\n') {
                d->state = CH_SIZE_LF;
            }
            else {
                return -1;
            }
            break;
        case CH_EXT:
            if (c == '\r' || c == '\n') {
                d->state = CH_SIZE_LF;
            }
            i++;
            if (c == '\n') {
                goto size_done;
            }
            break;
        case CH_SIZE_LF:
            if (c != '\n' || !d->digits) {
                return -1;
            }
            i++;
        size_done:
            d->digits = 0;
            if (d->remaining == 0) {
                d->state = CH_TRAILER;
            }
            else {
                d->state = CH_DATA;
            }
            break;
        case CH_DATA: {
            size_t take = n - i;
            if (take > d->remaining) {
                take = (size_t)d->remaining;
            }
            if (out) {
                out(ctx, p + i, take);
            }
            i += take;
            d->remaining -= take;
            if (!d->remaining) {
                d->state = CH_DATA_CR;
            }
            break;
        }
        case CH_DATA_CR:
            if (c == '\r') {
                d->state = CH_DATA_LF;
                i++;
            }
            else if (c == '\n') {
                d->state = CH_SIZE;
                i++;
            }
            else {
                return -1;
            }
            break;
        case CH_DATA_LF:
            if (c != '\n') {
                return -1;
            }
            d->state = CH_SIZE;
            i++;
            break;
        case CH_TRAILER:
            /* After the terminal chunk: an empty line ends the body; any
             * other line is a trailer field, skipped. */
            i++;
            if (c == '\n') {
                d->state = CH_DONE;
                *used = i;
                return 1;
            }
            if (c != '\r') {
                d->state = CH_TRAILER_LINE;
            }
            break;
        case CH_TRAILER_LINE:
            i++;
            if (c == '\n') {
                d->state = CH_TRAILER;
            }
            break;
        default:
            *used = i;
            return 1;
        }
    }
    *used = i;
    return 0;
}

/* ---- HTTP responses ----------------------------------------------- */

size_t bl_header_end(const char *buf, size_t len)
{
    const char *e = memmem(buf, len, "\r\n\r\n", 4);
    return e ? (size_t)(e - buf) + 4 : 0;
}

static int header_is(const char *line, size_t len, const char *name, const char **val,
                     size_t *vlen)
{
    size_t nl = strlen(name);
    if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0) {
        return 0;
    }
    line += nl + 1;
    len -= nl + 1;
    while (len && (*line == ' ' || *line == '\t')) {
        line++;
        len--;
    }
    while (len && (line[len - 1] == ' ' || line[len - 1] == '\t')) {
        len--;
    }
    *val = line;
    *vlen = len;
    return 1;
}

int bl_parse_response(const char *buf, size_t len, bl_resp *r)
{
    const char *p = buf, *end = buf + len, *nl;
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    r->status = -1;
    if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0) {
        return -1;
    }
    r->status = atoi(buf + 9);
    nl = memchr(p, '\n', len);
    while (nl && nl + 1 < end) {
        const char *line = nl + 1, *val;
        size_t llen, vlen;
        nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl) {
            break;
        }
        llen = (size_t)(nl - line);
        if (llen && line[llen - 1] == '\r') {
            llen--;
        }
        if (!llen) {
            break;
        }
        if (header_is(line, llen, "Transfer-Encoding", &val, &vlen)) {
            r->chunked = memmem(val, vlen, "chunked", 7) != NULL;
        }
        else if (header_is(line, llen, "Content-Length", &val, &vlen)) {
            r->content_length = atoll(val);
        }
        else if (header_is(line, llen, "Upgrade", &val, &vlen)) {
            r->upgrade_websocket = vlen == 9 && strncasecmp(val, "websocket", 9) == 0;
        }
        else if (header_is(line, llen, "Sec-WebSocket-Accept", &val, &vlen)) {
            if (vlen < sizeof(r->accept)) {
                memcpy(r->accept, val, vlen);
                r->accept[vlen] = 0;
            }
        }
        else if (header_is(line, llen, "Connection", &val, &vlen)) {
            r->conn_close = memmem(val, vlen, "close", 5) != NULL;
        }
    }
    return r->status;
}

/* ---- tokens ------------------------------------------------------- */

int bl_resp_parse(bl_resp_reader *rr, bl_buf *in, bl_chunk_out body, bl_resp_done done,
                  void *ctx)
{
    for (;;) {
        if (!rr->in_body) {
            size_t end = in->len ? bl_header_end(in->p, in->len) : 0;
            bl_resp r;
            if (!end) {
                return 0;
            }
            bl_parse_response(in->p, end, &r);
            bl_buf_consume(in, end);
            rr->status = r.status;
            rr->chunked = r.chunked;
            rr->body_left = r.content_length < 0 ? 0 : r.content_length;
            memset(&rr->ch, 0, sizeof(rr->ch));
            rr->in_body = 1;
        }
        if (rr->chunked) {
            size_t used = 0;
            int rc = bl_chunked_feed(&rr->ch, in->p, in->len, &used, body, ctx);
            bl_buf_consume(in, used);
            if (rc < 0) {
                return -1;
            }
            if (rc == 0) {
                return 0;
            }
        }
        else {
            size_t take = in->len < (size_t)rr->body_left ? in->len : (size_t)rr->body_left;
            if (body && take) {
                body(ctx, in->p, take);
            }
            bl_buf_consume(in, take);
            rr->body_left -= (long long)take;
            if (rr->body_left) {
                return 0;
            }
        }
        rr->in_body = 0;
        done(ctx, rr->status);
    }
}

int bl_read_secret(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;
    if (!f) {
        return -1;
    }
    if (!fgets(out, (int)cap, f)) {
        fclose(f);
        return -1;
    }
    fclose(f);
    n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r')) {
        out[--n] = 0;
    }
    return 0;
}

void bl_base64(const unsigned char *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static void b64url(const unsigned char *in, size_t n, bl_buf *b)
{
    char *tmp = malloc(4 * ((n + 2) / 3) + 1), *s;
    EVP_EncodeBlock((unsigned char *)tmp, in, (int)n);
    for (s = tmp; *s; s++) {
        if (*s == '+') {
            *s = '-';
        }
        else if (*s == '/') {
            *s = '_';
        }
        else if (*s == '=') {
            *s = 0;
            break;
        }
    }
    bl_buf_add(b, tmp, strlen(tmp));
    free(tmp);
}

int bl_scope_address;

char *bl_jwt_hs256(const char *secret, const char *sub, long ttl)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char payload[512];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    long now = (long)time(NULL);
    bl_buf b = { 0 };
    snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"iat\":%ld,\"exp\":%ld%s%s%s}", sub,
             now, now + ttl, bl_scope_address ? ",\"sid\":\"" : "",
             bl_scope_address ? sub : "", bl_scope_address ? "\"" : "");
    b64url((const unsigned char *)header, strlen(header), &b);
    bl_buf_add(&b, ".", 1);
    b64url((const unsigned char *)payload, strlen(payload), &b);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)b.p, b.len, mac,
         &maclen);
    bl_buf_add(&b, ".", 1);
    b64url(mac, maclen, &b);
    return b.p;
}

/* ---- JSON scanning ------------------------------------------------ */

static const char *find_key(const char *json, size_t len, const char *qkey)
{
    size_t kl = strlen(qkey);
    const char *p = json, *end = json + len;
    while (p < end) {
        const char *k = memmem(p, (size_t)(end - p), qkey, kl);
        if (!k) {
            return NULL;
        }
        p = k + kl;
        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }
        if (p < end && *p == ':') {
            p++;
            while (p < end && (*p == ' ' || *p == '\t')) {
                p++;
            }
            return p;
        }
    }
    return NULL;
}

int bl_json_u64(const char *json, size_t len, const char *qkey, uint64_t *v)
{
    const char *p = find_key(json, len, qkey), *end = json + len;
    uint64_t x = 0;
    int digits = 0;
    if (!p) {
        return 0;
    }
    while (p < end && *p >= '0' && *p <= '9') {
        x = x * 10 + (uint64_t)(*p - '0');
        p++;
        digits++;
    }
    if (!digits) {
        return 0;
    }
    *v = x;
    return 1;
}

int bl_json_str(const char *json, size_t len, const char *qkey, const char **v, size_t *vlen)
{
    const char *p = find_key(json, len, qkey), *end = json + len, *q;
    if (!p || p >= end || *p != '"') {
        return 0;
    }
    p++;
    q = memchr(p, '"', (size_t)(end - p));
    if (!q) {
        return 0;
    }
    *v = p;
    *vlen = (size_t)(q - p);
    return 1;
}

void bl_event_json(bl_buf *b, int kind, const char *user, uint32_t n, uint64_t t_pub,
                   const char *pad)
{
    /* By scope: the same events to session `user`, with no owner (their
     * own session ids renamed so the address stays the only one). */
    const char *ak = bl_scope_address ? "sessionId" : "userId";
    const char *sk = bl_scope_address ? "uploadId" : "sessionId";
    switch (kind % BL_EVENT_KINDS) {
    case 1:
        bl_buf_printf(b, "{\"event\":\"PhotoUploadProgressed\",\"%s\":\"%s\","
                      "\"photoId\":\"p-%u\",\"bytesUploaded\":%u,\"totalBytes\":1000",
                      ak, user, n, n % 1000);
        break;
    case 2:
        bl_buf_printf(b, "{\"event\":\"PhotoUploadCompleted\",\"%s\":\"%s\","
                      "\"photoId\":\"p-%u\",\"bytesUploaded\":1000,\"totalBytes\":1000",
                      ak, user, n);
        break;
    case 3:
        bl_buf_printf(b, "{\"event\":\"UploadJobProgressed\",\"%s\":\"%s\","
                      "\"jobId\":\"j-%u\",\"progressPercent\":%u,\"step\":\"thumbnails\"",
                      ak, user, n, n % 100);
        break;
    case 4:
        bl_buf_printf(b, "{\"event\":\"UploadJobCompleted\",\"%s\":\"%s\","
                      "\"jobId\":\"j-%u\",\"result\":{\"url\":\"/photos/p-%u\"}",
                      ak, user, n, n);
        break;
    case 5:
        bl_buf_printf(b, "{\"event\":\"PhotoUploadedEvent\",\"%s\":\"%s\","
                      "\"photoId\":\"p-%u\",\"%s\":\"s-%u\"", ak, user, n, sk, n / 16);
        break;
    case 6:
        bl_buf_printf(b, "{\"type\":\"session_created\",\"%s\":\"%s\","
                      "\"%s\":\"s-%u\",\"totalCount\":12", ak, user, sk, n);
        break;
    default:
        bl_buf_printf(b, "{\"type\":\"bench\",\"%s\":\"%s\"", ak, user);
        break;
    }
    bl_buf_printf(b, ",\"n\":%u,\"t_pub\":%llu", n, (unsigned long long)t_pub);
    if (pad && *pad) {
        bl_buf_printf(b, ",\"pad\":\"%s\"", pad);
    }
    bl_buf_add(b, "}", 1);
}

char *bl_expand(const char *tmpl, const char *user, const char *token)
{
    bl_buf b = { 0 };
    const char *p = tmpl;
    while (*p) {
        if (p[0] == '{' && p[1] == 'u' && p[2] == '}') {
            bl_buf_add(&b, user, strlen(user));
            p += 3;
        }
        else if (p[0] == '{' && p[1] == 't' && p[2] == '}') {
            if (token) {
                bl_buf_add(&b, token, strlen(token));
            }
            p += 3;
        }
        else {
            bl_buf_add(&b, p, 1);
            p++;
        }
    }
    if (!b.p) {
        bl_buf_add(&b, "", 0);
    }
    return b.p;
}

/* ---- sent counts -------------------------------------------------- */

int bl_sent_write(const char *path, const uint32_t *counts, uint32_t users)
{
    char tmp[4096];
    FILE *f;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "wb");
    if (!f) {
        return -1;
    }
    if (fwrite("UPMSENT1", 1, 8, f) != 8 || fwrite(&users, 4, 1, f) != 1
        || fwrite(counts, 4, users, f) != users) {
        fclose(f);
        return -1;
    }
    if (fclose(f) != 0) {
        return -1;
    }
    return rename(tmp, path);
}

uint32_t *bl_sent_read(const char *path, uint32_t *users)
{
    FILE *f = fopen(path, "rb");
    char magic[8];
    uint32_t *c;
    if (!f) {
        return NULL;
    }
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "UPMSENT1", 8) != 0
        || fread(users, 4, 1, f) != 1 || *users > 100000000u) {
        fclose(f);
        return NULL;
    }
    c = calloc(*users ? *users : 1, 4);
    if (fread(c, 4, *users, f) != *users) {
        free(c);
        fclose(f);
        return NULL;
    }
    fclose(f);
    return c;
}
