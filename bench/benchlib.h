/* SPDX-License-Identifier: Apache-2.0 */
/* Shared pieces of the benchmark tools (load client, publisher, procstat):
 * clocks, a latency histogram, HTTP response and chunked-body parsing,
 * HS256 tokens and small string helpers.  Not part of the module. */
#ifndef BENCHLIB_H
#define BENCHLIB_H

#include <stddef.h>
#include <stdint.h>

/* Wall clock in microseconds: publish timestamps and receipt times must be
 * comparable across processes, so CLOCK_REALTIME, not MONOTONIC. */
uint64_t bl_now_us(void);
/* Monotonic milliseconds, for deadlines and pacing. */
int64_t bl_mono_ms(void);
uint64_t bl_mono_us(void);

/* Log-linear histogram of microsecond values: exact below 128 us, then 64
 * sub-buckets per power of two (about 1.5 % resolution) up to 2^40 us. */
#define BL_HIST_BUCKETS (128 + 34 * 64)
typedef struct {
    uint64_t count;
    uint64_t max;
    uint64_t sum;
    uint64_t b[BL_HIST_BUCKETS];
} bl_hist;

void bl_hist_add(bl_hist *h, uint64_t v);
void bl_hist_merge(bl_hist *into, const bl_hist *from);
/* Value at quantile q (0..1): the upper edge of the bucket holding it. */
uint64_t bl_hist_quantile(const bl_hist *h, double q);

/* Growable byte buffer. */
typedef struct {
    char *p;
    size_t len, cap;
} bl_buf;
void bl_buf_add(bl_buf *b, const void *data, size_t n);
void bl_buf_printf(bl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bl_buf_consume(bl_buf *b, size_t n);
void bl_buf_free(bl_buf *b);

/* Incremental decoder of an HTTP/1.1 chunked body.  Feeding it bytes calls
 * `out` with the payload pieces; returns -1 on a malformed stream, 1 once
 * the terminal chunk and the empty line after it were seen, else 0.
 * *used says how many input bytes were consumed (all of them unless the
 * body ended earlier). */
typedef struct {
    int state;
    uint64_t remaining;
    int digits;
} bl_chunked;
typedef void (*bl_chunk_out)(void *ctx, const char *p, size_t n);
int bl_chunked_feed(bl_chunked *d, const char *p, size_t n, size_t *used,
                    bl_chunk_out out, void *ctx);

/* Parses response headers held in buf[0..len) that end with CRLFCRLF.
 * Returns the status code (or -1) and fills the fields it finds. */
typedef struct {
    int status;
    int chunked;
    long long content_length; /* -1: absent */
    int upgrade_websocket;
    char accept[64];          /* Sec-WebSocket-Accept */
    int conn_close;
} bl_resp;
int bl_parse_response(const char *buf, size_t len, bl_resp *r);
/* Position just past CRLFCRLF in buf[0..len), or 0 when absent. */
size_t bl_header_end(const char *buf, size_t len);

/* Reader of pipelined responses on one keep-alive connection: parses as
 * many complete responses as `in` holds and consumes them, passing body
 * bytes to `body` (may be NULL) and calling `done` with the status of each
 * complete one.  Returns -1 on a malformed body, else 0.  Zero it (or
 * reset in_body) when the connection is opened again. */
typedef struct {
    int in_body;
    int status;
    int chunked;
    long long body_left;
    bl_chunked ch;
} bl_resp_reader;
typedef void (*bl_resp_done)(void *ctx, int status);
int bl_resp_parse(bl_resp_reader *rr, bl_buf *in, bl_chunk_out body, bl_resp_done done,
                  void *ctx);

/* HS256 JWT for `sub`, valid for ttl seconds; the secret is the first line
 * of the file (what scripts/jwt.sh signs with). */
int bl_read_secret(const char *path, char *out, size_t cap);
/* ADDRESS=scope: messages go to sessions (sessionId, no userId) and
 * tokens grant their subject's session (claim "sid"); 0: to users. */
extern int bl_scope_address;

char *bl_jwt_hs256(const char *secret, const char *sub, long ttl);

/* base64 (standard alphabet) of n bytes into out (NUL-terminated). */
void bl_base64(const unsigned char *in, size_t n, char *out);

/* Finds "key": in a JSON text and parses the unsigned integer after it.
 * Returns 1 when found.  Compact or spaced output of any producer. */
int bl_json_u64(const char *json, size_t len, const char *quoted_key, uint64_t *v);
/* Finds "key":"value" and returns a pointer to value and its length. */
int bl_json_str(const char *json, size_t len, const char *quoted_key,
                const char **v, size_t *vlen);

/* An event for the publish endpoint, carrying its user's sequence number n
 * and t_pub (pad: NULL or a filler string).  Kind 0 is the benchmark's
 * plain "bench" message; kinds 1 to BL_EVENT_KINDS - 1 are the domain
 * events and message types of docs/events.md, so a soak goes through the
 * mapping and progress paths too.  Progress events name a photo or job of
 * their own per n: the per-connection throttle would otherwise coalesce
 * them and a subscriber could not account for every one. */
#define BL_EVENT_KINDS 7
void bl_event_json(bl_buf *b, int kind, const char *user, uint32_t n, uint64_t t_pub,
                   const char *pad);

/* Replaces {u} with the user name and {t} with the token in a template. */
char *bl_expand(const char *tmpl, const char *user, const char *token);

/* Per-user sequence counts written by the publisher at its end: the
 * subscribers compute loss from them.  Format: "UPMSENT1", u32 users,
 * u32 count[users]. */
int bl_sent_write(const char *path, const uint32_t *counts, uint32_t users);
uint32_t *bl_sent_read(const char *path, uint32_t *users);

void bl_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
