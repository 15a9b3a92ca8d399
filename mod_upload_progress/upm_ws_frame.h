/* SPDX-License-Identifier: Apache-2.0 */
/* The server side of RFC 6455 framing, without I/O: the handshake key
 * check, an incremental parser of client frames (unmasking, fragmented
 * messages, control frames, UTF-8 checked as bytes arrive, size limits),
 * the frame encoders and the close-code rules.  The parser is fed whatever
 * bytes the connection produced and reports one event at a time, so it
 * works the same for a worker thread and for a reactor. */
#ifndef UPM_WS_FRAME_H
#define UPM_WS_FRAME_H

#include <apr.h>
#include <apr_pools.h>
#include <apr_tables.h>

enum {
    UPM_WS_OP_CONT = 0x0, UPM_WS_OP_TEXT = 0x1, UPM_WS_OP_BINARY = 0x2,
    UPM_WS_OP_CLOSE = 0x8, UPM_WS_OP_PING = 0x9, UPM_WS_OP_PONG = 0xA
};

/* Close codes (RFC 6455 7.4.1) and ours. */
enum {
    UPM_WS_CLOSE_NORMAL = 1000, UPM_WS_CLOSE_GOING_AWAY = 1001,
    UPM_WS_CLOSE_PROTOCOL = 1002, UPM_WS_CLOSE_UNACCEPTABLE = 1003,
    UPM_WS_CLOSE_BAD_DATA = 1007, UPM_WS_CLOSE_POLICY = 1008,
    UPM_WS_CLOSE_TOO_BIG = 1009, UPM_WS_CLOSE_INTERNAL = 1011,
    UPM_WS_CLOSE_TOKEN_EXPIRED = 4001, UPM_WS_CLOSE_NO_PONG = 4002,
    UPM_WS_CLOSE_DISCONNECTED = 4004   /* the application disconnected the user */
};

#define UPM_WS_CONTROL_MAX 125

/* ---- handshake ------------------------------------------------------- */

/* Is key a Sec-WebSocket-Key: base64 of exactly 16 bytes (24 characters,
 * canonical padding)? */
int upm_ws_key_valid(const char *key);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), 28 characters
 * and a NUL written to out. */
void upm_ws_accept(const char *key, char out[29]);

/* Does a comma-separated header value contain token (case-insensitive)? */
int upm_ws_header_has_token(const char *value, const char *token);

/* Canonical form of an origin: lower-case scheme://host[:port] without the
 * scheme's default port (80 for http/ws, 443 for https/wss); "null" and
 * "*" stay as they are; a host may start with "*." (a pattern for
 * configuration).  NULL when it is not an origin. */
const char *upm_ws_origin_normalize(apr_pool_t *p, const char *origin);

/* May a handshake carrying this Origin header proceed?  No Origin: not a
 * browser, yes.  allowed: canonical origins and patterns (see above);
 * NULL means only the request's own host (the Host header) may. */
int upm_ws_origin_allowed(apr_pool_t *p, const char *origin,
                          const apr_array_header_t *allowed, const char *host);

/* ---- UTF-8 ----------------------------------------------------------- */

/* Validator state that carries a partial code point from one chunk to the
 * next (a text message may be split anywhere across frames). */
typedef struct {
    unsigned char need;         /* continuation bytes still expected */
    unsigned char lo, hi;       /* range allowed for the next one */
} upm_utf8;

void upm_utf8_init(upm_utf8 *u);
/* 0 while the bytes so far are a valid prefix; -1 at the first byte that
 * makes them invalid (no later input can repair it). */
int upm_utf8_feed(upm_utf8 *u, const unsigned char *s, apr_size_t n);
/* Does the input end on a code point boundary? */
int upm_utf8_complete(const upm_utf8 *u);

/* ---- parser ---------------------------------------------------------- */

typedef enum {
    UPM_WS_EV_NONE = 0,         /* everything given was consumed; feed more */
    UPM_WS_EV_TEXT,             /* a complete text message: data, len */
    UPM_WS_EV_PING,             /* data, len: answer with a pong of it */
    UPM_WS_EV_PONG,
    UPM_WS_EV_CLOSE,            /* code (0: none given), data/len: reason */
    UPM_WS_EV_FAIL              /* protocol violation: close with code */
} upm_ws_ev_kind;

typedef struct {
    upm_ws_ev_kind kind;
    const unsigned char *data;  /* valid until the next upm_ws_parse call */
    apr_size_t len;
    int code;
    const char *reason;         /* FAIL: what was wrong, for the log */
} upm_ws_event;

typedef struct upm_ws_parser {
    apr_pool_t *pool;
    apr_size_t max_message;
    int state;
    unsigned char hdr[14];
    unsigned hdr_len, hdr_need;
    int fin, opcode;
    unsigned char mask[4];
    apr_uint64_t plen, pgot;
    /* the data message being assembled (possibly over several frames) */
    int msg_op;                 /* 0: none in progress */
    unsigned char *msg;
    apr_size_t msg_len, msg_cap;
    upm_utf8 utf8;
    unsigned char ctl[UPM_WS_CONTROL_MAX];
} upm_ws_parser;

/* Data messages larger than max_message (the sum of their fragments) are
 * refused with 1009.  The message buffer grows from p as needed, up to
 * max_message, and is reused for later messages. */
void upm_ws_parser_init(upm_ws_parser *ps, apr_pool_t *p, apr_size_t max_message);

/* Consumes bytes of in up to the end of the next event (or all of them)
 * and returns how many.  Call again with the rest until it returns
 * UPM_WS_EV_NONE having consumed everything.  After FAIL or CLOSE the
 * parser consumes and ignores all further input. */
apr_size_t upm_ws_parse(upm_ws_parser *ps, const unsigned char *in, apr_size_t len,
                        upm_ws_event *ev);

/* ---- encoders and close codes ---------------------------------------- */

/* Header of an unmasked server frame with FIN set; out has room for 10
 * bytes.  Returns the header length (2, 4 or 10). */
apr_size_t upm_ws_frame_header(unsigned char *out, int opcode, apr_uint64_t len);

/* A whole server frame (header + payload) in pool memory. */
unsigned char *upm_ws_frame(apr_pool_t *p, int opcode, const void *data, apr_size_t len,
                            apr_size_t *out_len);

/* A close frame with code (0: empty payload) and a reason, which is cut so
 * the payload stays within 125 bytes without splitting a code point. */
unsigned char *upm_ws_close_frame(apr_pool_t *p, int code, const char *reason,
                                  apr_size_t *out_len);

/* May a peer send this code in a close frame (RFC 6455 7.4, IANA
 * registry: 1000-1003, 1007-1014 and 3000-4999)? */
int upm_ws_close_code_valid(int code);

#endif
