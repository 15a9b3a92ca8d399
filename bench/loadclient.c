/* SPDX-License-Identifier: Apache-2.0 */
/* Subscriber load client: holds many SSE or WebSocket connections with epoll
 * in several processes, each bound to its own 127.0.0.x source address, and
 * records per message the latency from the publisher's timestamp (t_pub, us
 * since the epoch) to its receipt, plus loss, duplicates, reordering and
 * messages of another user (from the per-user sequence n and userId).
 *
 *   loadclient --port P --path '/sse' --conns N --users U --prefix s2u
 *              [--proto sse|ws|mixed [--ws-path /ws]] [--secret FILE | --no-auth] [--procs K]
 *              [--status FILE] [--stop-file FILE] [--sent FILE] [--out FILE]
 *
 * Connection j belongs to user (j mod U), named PREFIX<j mod U>.  The parent
 * writes a status line to --status while it runs and, when told to stop
 * (SIGTERM, SIGINT, the stop file or --max-time), merges the workers'
 * results into one JSON summary.  Loss is counted against the publisher's
 * per-user counts (--sent) read at stop time.  mixed: odd connections speak
 * WebSocket (to --ws-path), even ones SSE.
 *
 *   loadclient ... --cycles C [--cycle-base B] [--publish /publish]
 *
 * The leak soak's mode: --conns slots run C connect / receive / disconnect
 * cycles in all, then exit.  Cycle k is user PREFIX<B+k> with a token of
 * its own; once its stream is open the client publishes one event for that
 * user itself (to --publish, batched with other slots' on one keep-alive
 * connection per process) and waits for it to arrive, then leaves one of
 * three ways in turn: the protocol's goodbye (a WebSocket close handshake;
 * SSE has none, a FIN), a FIN without a close frame, or a reset (RST).  A
 * cycle that does not complete within --cycle-timeout counts as failed. */
#define _GNU_SOURCE
#include "benchlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#define MAX_WORKERS 64
#define READ_CHUNK (64 * 1024)

/* ---- options ------------------------------------------------------ */

static struct {
    const char *host;
    int port;
    const char *path;       /* template: {u} user, {t} token */
    const char *ws_path;    /* mixed: the WebSocket connections' path */
    int ws;
    int conns, users, procs, src_base;
    const char *prefix;
    const char *secret_file;
    int token_in_query;     /* {t} in the path carries the token */
    int connect_rate;       /* new connections per second, all workers */
    int max_pending;        /* handshakes in flight per worker */
    int connect_timeout;    /* s: the connect phase */
    int reconnect;          /* reconnect (with the last id) after a close */
    int ws_resume;          /* send {"type":"resume"} after a reconnect (ours);
                             * else a WebSocket reconnects with ?lastEventId= */
    const char *ws_subscribe; /* "jobId=j0,jobId=j1": subscribe first (ours) */
    const char *status_file, *stop_file, *sent_file, *out_file;
    int max_time;
    const char *label;
    int mixed;              /* odd connections (cycles) WebSocket, even SSE */
    long cycles;            /* > 0: the soak's cycle mode */
    long cycle_base;
    int cycle_timeout;      /* s */
    const char *publish_path;
} opt = {
    .host = "127.0.0.1", .port = 0, .path = "/sse", .conns = 100, .users = 100,
    .procs = 1, .src_base = 2, .prefix = "u", .connect_rate = 4000, .max_pending = 256,
    .connect_timeout = 60, .reconnect = 1, .max_time = 3600, .label = "",
    .cycle_timeout = 10, .publish_path = "/publish",
};

static char secret[512];

/* ---- shared with the parent --------------------------------------- */

typedef struct {
    volatile int streaming;      /* connections currently receiving */
    volatile int established;    /* reached streaming at least once */
    volatile int failed;         /* given up: refused, bad status, timed out */
    volatile int done;
    volatile uint64_t delivered; /* messages carrying t_pub */
    uint64_t lost, dup, reordered, foreign, resets, other, disconnects, reconnects;
    uint64_t bad_status, neg_latency, expected;
    uint64_t ws_errors;          /* WebSocket {"type":"error"} answers */
    uint64_t cycles_ok, cycles_failed, cycles_ws, pub_errors, pub_reconnects;
    uint64_t leaves[3];          /* cycles ended by goodbye, FIN, RST */
    int first_status;
    char first_error[160];
    bl_hist hist;
} wstat;

typedef struct {
    volatile int stop;
    volatile int connect_over;
    wstat w[MAX_WORKERS];
} shared_t;

static shared_t *sh;

/* ---- connections --------------------------------------------------- */

enum { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_STREAM, C_WAIT, C_FAILED, C_CLOSING };

/* How a cycle leaves: see the top of this file. */
enum { LEAVE_GOODBYE, LEAVE_FIN, LEAVE_RST };

typedef struct {
    int fd;
    int state;
    int user;
    int64_t deadline;       /* ms: handshake deadline, or reconnect time */
    bl_buf in;              /* handshake bytes, then undecoded WS frames */
    bl_buf out;             /* bytes not yet written */
    int chunked;
    bl_chunked ch;
    bl_buf line;            /* SSE: partial line */
    bl_buf data;            /* SSE data of the event being read; WS message */
    int sse_event_reset;
    char lastid[64];
    char ws_key[32];
    int ever;               /* streamed before: a reconnect */
    int ws;
    const char *uname;      /* the user's name and token */
    size_t uname_len;
    const char *token;
    /* cycle mode */
    long cycle;
    int leave;
    int64_t cycle_deadline; /* ms */
    int got;                /* its message arrived */
    char cname[48];
    char *ctoken;
    /* per-user sequence numbers seen: a bitmap so duplicates and holes are
     * exact even when messages arrive out of order */
    uint8_t *bits;
    uint32_t bits_cap;
    uint32_t uniq, maxn;
} conn;

static conn *conns;
static int nconns;
static int epfd;
static wstat *me;
static uint64_t rx_now;     /* realtime us of the current read */
static char **user_names;
static size_t *user_name_len;
static char **user_tokens;
static struct sockaddr_in dst, src;
static int pending;

static void fail_note(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_note(int status, const char *fmt, ...)
{
    va_list ap;
    if (me->first_error[0]) {
        return;
    }
    me->first_status = status;
    va_start(ap, fmt);
    vsnprintf(me->first_error, sizeof(me->first_error), fmt, ap);
    va_end(ap);
}

/* Connection c is user u's for good. */
static void conn_user(conn *c, int u)
{
    c->user = u;
    c->uname = user_names[u];
    c->uname_len = user_name_len[u];
    if (opt.secret_file && !user_tokens[u]) {
        user_tokens[u] = bl_jwt_hs256(secret, user_names[u], 4 * 3600);
    }
    c->token = opt.secret_file ? user_tokens[u] : NULL;
}

static void ev_set(conn *c, uint32_t events, int op)
{
    struct epoll_event ev;
    ev.events = events;
    ev.data.ptr = c;
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0 && op != EPOLL_CTL_DEL) {
        bl_die("epoll_ctl: %s", strerror(errno));
    }
}

static void conn_close(conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
        pending--;
    }
    if (c->state == C_STREAM) {
        me->streaming--;
    }
    c->state = C_IDLE;
    bl_buf_free(&c->in);
    bl_buf_free(&c->out);
    bl_buf_free(&c->line);
    bl_buf_free(&c->data);
}

/* Cycle mode: the cycle is over, well or not; the slot is free for the
 * next one. */
static void cycle_end(conn *c, int ok, int status, const char *why)
{
    conn_close(c);
    free(c->ctoken);
    c->ctoken = NULL;
    c->token = NULL;
    if (ok) {
        me->cycles_ok++;
        me->leaves[c->leave]++;
        me->cycles_ws += (uint64_t)c->ws;
        return;
    }
    me->cycles_failed++;
    /* The first few by name, to look them up in the server's log. */
    if (me->cycles_failed <= 20) {
        fprintf(stderr, "cycle %ld failed (%s, user %s, event kind %ld, leaving by %s): %s\n",
                c->cycle, c->ws ? "ws" : "sse", c->cname, c->cycle % BL_EVENT_KINDS,
                c->leave == LEAVE_GOODBYE ? "goodbye" : c->leave == LEAVE_FIN ? "FIN" : "RST",
                why);
    }
    if (status >= 400) {
        me->bad_status++;
    }
    fail_note(status, "cycle %ld (%s, user %s): %s", c->cycle, c->ws ? "ws" : "sse", c->cname,
              why);
}

static void conn_fail(conn *c, int status, const char *why)
{
    int was_ever = c->ever;
    if (opt.cycles) {
        cycle_end(c, 0, status, why);
        return;
    }
    conn_close(c);
    if (was_ever && opt.reconnect && !sh->stop) {
        /* A reconnect attempt that failed: try again a little later. */
        c->state = C_WAIT;
        c->deadline = bl_mono_ms() + 500 + rand() % 500;
        return;
    }
    c->state = C_FAILED;
    me->failed++;
    if (status >= 400) {
        me->bad_status++;
    }
    fail_note(status, "%s", why);
}

/* The stream ended or broke after it was established. */
static void conn_lost(conn *c, const char *why)
{
    me->disconnects++;
    if (opt.cycles) {
        cycle_end(c, 0, 0, why);
        return;
    }
    conn_close(c);
    if (opt.reconnect && !sh->stop) {
        c->state = C_WAIT;
        c->deadline = bl_mono_ms() + 250 + rand() % 250;
    }
    else {
        c->state = C_FAILED;
    }
    fail_note(0, "disconnect: %s", why);
}

static int conn_write(conn *c, const char *p, size_t n)
{
    if (!c->out.len) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
            return -1;
        }
        if (w < 0) {
            w = 0;
        }
        p += w;
        n -= (size_t)w;
        if (!n) {
            return 0;
        }
        ev_set(c, EPOLLIN | EPOLLOUT | EPOLLRDHUP, EPOLL_CTL_MOD);
    }
    bl_buf_add(&c->out, p, n);
    return 0;
}

static void send_request(conn *c)
{
    bl_buf req = { 0 };
    const char *tok = c->token;
    char *path = bl_expand(c->ws && opt.ws_path ? opt.ws_path : opt.path, c->uname, tok);
    bl_buf_printf(&req, "GET %s", path);
    if (c->ws && !opt.ws_resume && c->ever && c->lastid[0]) {
        /* The resume in the URL: the replay before any live message. */
        bl_buf_printf(&req, "%slastEventId=%s", strchr(path, '?') ? "&" : "?", c->lastid);
    }
    bl_buf_printf(&req, " HTTP/1.1\r\nHost: %s:%d\r\n", opt.host, opt.port);
    free(path);
    if (tok && !opt.token_in_query) {
        bl_buf_printf(&req, "Authorization: Bearer %s\r\n", tok);
    }
    if (c->ws) {
        unsigned char key[16];
        int i;
        for (i = 0; i < 16; i++) {
            key[i] = (unsigned char)(rand() & 0xff);
        }
        bl_base64(key, 16, c->ws_key);
        bl_buf_printf(&req, "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                      "Origin: http://%s:%d\r\n", c->ws_key, opt.host, opt.port);
    }
    else {
        bl_buf_add(&req, "Accept: text/event-stream\r\nCache-Control: no-cache\r\n", 52);
        if (c->ever && c->lastid[0]) {
            bl_buf_printf(&req, "Last-Event-ID: %s\r\n", c->lastid);
        }
    }
    bl_buf_add(&req, "\r\n", 2);
    if (conn_write(c, req.p, req.len) < 0) {
        bl_buf_free(&req);
        conn_fail(c, 0, "write of the request failed");
        return;
    }
    bl_buf_free(&req);
}

static void conn_start(conn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    char why[96];
    if (fd < 0) {
        snprintf(why, sizeof(why), "socket: %s", strerror(errno));
        conn_fail(c, 0, why);
        return;
    }
    if (opt.cycles) {
        /* 100,000 short connections would run one source address out of
         * ports while the closed ones sit in TIME_WAIT: cycles take turns
         * over 64 addresses. */
        src.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)(opt.src_base + c->cycle % 64));
    }
    /* The port is chosen at connect time, per destination, so one source
     * address serves up to the whole ephemeral range for this server. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
        close(fd);
        snprintf(why, sizeof(why), "bind: %s", strerror(errno));
        conn_fail(c, 0, why);
        return;
    }
    c->fd = fd;
    c->state = C_CONNECTING;
    c->deadline = bl_mono_ms() + (int64_t)opt.connect_timeout * 1000;
    c->chunked = 0;
    memset(&c->ch, 0, sizeof(c->ch));
    pending++;
    if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
        snprintf(why, sizeof(why), "connect: %s", strerror(errno));
        conn_fail(c, 0, why);
        return;
    }
    ev_set(c, EPOLLIN | EPOLLOUT | EPOLLRDHUP, EPOLL_CTL_ADD);
}

/* ---- messages ----------------------------------------------------- */

static void seen(conn *c, uint64_t n)
{
    uint32_t byte, bit;
    if (n == 0 || n > 50000000u) {
        me->other++;
        return;
    }
    if (n >= c->bits_cap) {
        uint32_t cap = c->bits_cap ? c->bits_cap : 256;
        while (cap <= n) {
            cap *= 2;
        }
        c->bits = realloc(c->bits, cap / 8);
        memset(c->bits + c->bits_cap / 8, 0, (cap - c->bits_cap) / 8);
        c->bits_cap = cap;
    }
    byte = (uint32_t)(n >> 3);
    bit = 1u << (n & 7);
    if (c->bits[byte] & bit) {
        me->dup++;
        return;
    }
    c->bits[byte] |= (uint8_t)bit;
    c->uniq++;
    if (n < c->maxn) {
        me->reordered++;
    }
    else {
        c->maxn = (uint32_t)n;
    }
}

static void on_message(conn *c, const char *json, size_t len)
{
    uint64_t t_pub, n;
    const char *v;
    size_t vl;
    if (!bl_json_u64(json, len, "\"t_pub\"", &t_pub)) {
        if (memmem(json, len, "\"reset\"", 7)) {
            me->resets++;
        }
        else if (c->ws && !c->lastid[0] && memmem(json, len, "\"connected\"", 11)
                 && bl_json_str(json, len, "\"lastEventId\"", &v, &vl)
                 && vl < sizeof(c->lastid)) {
            /* Where the stream starts: a client dropped before its first
             * message resumes from there. */
            memcpy(c->lastid, v, vl);
            c->lastid[vl] = 0;
            return;
        }
        else if (memmem(json, len, "\"error\"", 7)) {
            me->ws_errors++;
        }
        else {
            me->other++;
        }
        if (c->ws && bl_json_str(json, len, "\"id\"", &v, &vl) && vl < sizeof(c->lastid)) {
            memcpy(c->lastid, v, vl);
            c->lastid[vl] = 0;
        }
        return;
    }
    /* The address: the user, or (ADDRESS=scope) the session. */
    if (bl_json_str(json, len, bl_scope_address ? "\"sessionId\"" : "\"userId\"", &v, &vl)) {
        if (vl != c->uname_len || memcmp(v, c->uname, vl) != 0) {
            me->foreign++;
            return;
        }
    }
    if (c->ws && bl_json_str(json, len, "\"id\"", &v, &vl) && vl < sizeof(c->lastid)) {
        memcpy(c->lastid, v, vl);
        c->lastid[vl] = 0;
    }
    c->got = 1;
    if (rx_now >= t_pub) {
        bl_hist_add(&me->hist, rx_now - t_pub);
    }
    else {
        me->neg_latency++;
        bl_hist_add(&me->hist, 0);
    }
    me->delivered++;
    if (bl_json_u64(json, len, "\"n\"", &n)) {
        seen(c, n);
    }
}

/* SSE: one line of the stream (without its end of line). */
static void sse_line(conn *c, const char *l, size_t n)
{
    if (!n) {
        if (c->data.len) {
            on_message(c, c->data.p, c->data.len);
            c->data.len = 0;
        }
        return;
    }
    if (n >= 5 && memcmp(l, "data:", 5) == 0) {
        l += 5;
        n -= 5;
        if (n && *l == ' ') {
            l++;
            n--;
        }
        if (c->data.len) {
            bl_buf_add(&c->data, "\n", 1);
        }
        bl_buf_add(&c->data, l, n);
    }
    else if (n >= 3 && memcmp(l, "id:", 3) == 0) {
        l += 3;
        n -= 3;
        if (n && *l == ' ') {
            l++;
            n--;
        }
        if (n < sizeof(c->lastid)) {
            memcpy(c->lastid, l, n);
            c->lastid[n] = 0;
        }
    }
}

static void sse_feed(void *ctx, const char *p, size_t n)
{
    conn *c = ctx;
    while (n) {
        const char *nl = memchr(p, '\n', n);
        const char *l;
        size_t seg, ll;
        if (!nl) {
            bl_buf_add(&c->line, p, n);
            return;
        }
        seg = (size_t)(nl - p);
        if (c->line.len) {
            bl_buf_add(&c->line, p, seg);
            l = c->line.p;
            ll = c->line.len;
        }
        else {
            l = p;
            ll = seg;
        }
        if (ll && l[ll - 1] == '\r') {
            ll--;
        }
        sse_line(c, l, ll);
        c->line.len = 0;
        p = nl + 1;
        n -= seg + 1;
    }
}

static void ws_send_frame(conn *c, int opcode, const char *payload, size_t n)
{
    unsigned char hdr[14];
    unsigned char mask[4];
    size_t h = 0, i;
    char *masked;
    hdr[h++] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        hdr[h++] = (unsigned char)(0x80 | n);
    }
    else {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(n >> 8);
        hdr[h++] = (unsigned char)n;
    }
    for (i = 0; i < 4; i++) {
        mask[i] = (unsigned char)(rand() & 0xff);
        hdr[h++] = mask[i];
    }
    masked = malloc(h + n + 1);
    memcpy(masked, hdr, h);
    for (i = 0; i < n; i++) {
        masked[h + i] = (char)(payload[i] ^ mask[i & 3]);
    }
    if (conn_write(c, masked, h + n) < 0) {
        free(masked);
        conn_lost(c, "write failed");
        return;
    }
    free(masked);
}

/* WS: decodes the frames held in c->in; returns -1 when the connection ended. */
static int ws_frames(conn *c)
{
    size_t off = 0;
    while (c->in.len - off >= 2) {
        const unsigned char *f = (const unsigned char *)c->in.p + off;
        size_t avail = c->in.len - off, h = 2;
        uint64_t plen = f[1] & 0x7f;
        int fin = f[0] & 0x80, op = f[0] & 0x0f, masked = f[1] & 0x80;
        const char *pl;
        if (plen == 126) {
            if (avail < 4) {
                break;
            }
            plen = ((uint64_t)f[2] << 8) | f[3];
            h = 4;
        }
        else if (plen == 127) {
            int i;
            if (avail < 10) {
                break;
            }
            plen = 0;
            for (i = 0; i < 8; i++) {
                plen = (plen << 8) | f[2 + i];
            }
            h = 10;
        }
        if (masked) {
            conn_lost(c, "server sent a masked frame");
            return -1;
        }
        if (plen > 16u * 1024 * 1024) {
            conn_lost(c, "frame too large");
            return -1;
        }
        if (avail < h + plen) {
            break;
        }
        pl = (const char *)f + h;
        off += h + (size_t)plen;
        switch (op) {
        case 0x1:
        case 0x0:
            if (fin && !c->data.len) {
                on_message(c, pl, (size_t)plen);
            }
            else {
                bl_buf_add(&c->data, pl, (size_t)plen);
                if (fin) {
                    on_message(c, c->data.p, c->data.len);
                    c->data.len = 0;
                }
            }
            break;
        case 0x8:
            if (c->state == C_CLOSING) {
                /* The answer to our close: the cycle's goodbye is done. */
                cycle_end(c, 1, 0, NULL);
                return -1;
            }
            ws_send_frame(c, 0x8, pl, plen >= 2 ? 2 : 0);
            if (c->fd >= 0) {
                conn_lost(c, "close frame");
            }
            return -1;
        case 0x9:
            ws_send_frame(c, 0xA, pl, (size_t)plen);
            if (c->fd < 0) {
                return -1;
            }
            break;
        default:
            break;
        }
    }
    bl_buf_consume(&c->in, off);
    return 0;
}

static int ws_accept_ok(conn *c, const char *accept)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char cat[128];
    unsigned char sha[SHA_DIGEST_LENGTH];
    char want[64];
    snprintf(cat, sizeof(cat), "%s%s", c->ws_key, guid);
    SHA1((const unsigned char *)cat, strlen(cat), sha);
    bl_base64(sha, sizeof(sha), want);
    return strcmp(want, accept) == 0;
}

/* Bytes of the body, after the headers: returns -1 when the stream ended. */
static int body_feed(conn *c, const char *p, size_t n)
{
    if (c->ws) {
        bl_buf_add(&c->in, p, n);
        return ws_frames(c);
    }
    if (c->chunked) {
        size_t used = 0;
        int rc = bl_chunked_feed(&c->ch, p, n, &used, sse_feed, c);
        if (rc < 0) {
            conn_lost(c, "bad chunked encoding");
            return -1;
        }
        if (rc > 0) {
            conn_lost(c, "end of the stream");
            return -1;
        }
        return 0;
    }
    sse_feed(c, p, n);
    return 0;
}

/* ---- cycle mode: the publish connection and leaving ---------------- */

/* One keep-alive connection per process to the publish endpoint; the
 * events of the cycles whose streams opened since the last flush go out in
 * one request (a bare object when there is one). */
#define PUB_MAX_UNANSWERED 4096
static struct {
    int fd;
    bl_buf out, in, batch;
    int batch_n;
    bl_resp_reader rr;
    /* Requests not answered yet, in order: sent again after a close. */
    bl_buf unanswered;
    size_t len[PUB_MAX_UNANSWERED];
    int head, n;
} pub = { .fd = -1 };

/* The event MPM closes idle keep-alive connections whenever all its
 * workers are busy (so they may go to another child), which a burst of
 * handshakes causes: requests it did not answer were not processed and go
 * out again on a new connection. */
static void pub_close(void)
{
    close(pub.fd);
    pub.fd = -1;
    pub.in.len = 0;
    pub.rr.in_body = 0;
    pub.out.len = 0;
    bl_buf_add(&pub.out, pub.unanswered.p, pub.unanswered.len);
    me->pub_reconnects++;
}

static void pub_done(void *ctx, int status)
{
    bl_buf_consume(&pub.unanswered, pub.len[pub.head]);
    pub.head = (pub.head + 1) % PUB_MAX_UNANSWERED;
    pub.n--;
    if (status < 200 || status >= 300) {
        me->pub_errors++;
        fail_note(status, "publish: status %d", status);
    }
}

static void pub_event(uint32_t events)
{
    char buf[16384];
    ssize_t r;
    if ((events & EPOLLOUT) && pub.out.len) {
        ssize_t w = send(pub.fd, pub.out.p, pub.out.len, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
            pub_close();
            return;
        }
        bl_buf_consume(&pub.out, w > 0 ? (size_t)w : 0);
    }
    while ((r = recv(pub.fd, buf, sizeof(buf), 0)) > 0) {
        bl_buf_add(&pub.in, buf, (size_t)r);
    }
    /* Answers that came before a close count. */
    if (bl_resp_parse(&pub.rr, &pub.in, NULL, pub_done, NULL) < 0) {
        pub_close();
        return;
    }
    if (r == 0 || (r < 0 && errno != EAGAIN)) {
        pub_close();
        return;
    }
    if (!pub.out.len) {
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = &pub };
        epoll_ctl(epfd, EPOLL_CTL_MOD, pub.fd, &ev);
    }
}

static void pub_flush(void)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = &pub };
    bl_buf req = { 0 };
    if (pub.fd < 0 && (pub.batch_n || pub.out.len)) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        if (fd < 0 || connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
            /* Tried again at the next turn; the cycles waiting for it time
             * out if it never works. */
            if (fd >= 0) {
                close(fd);
            }
            fail_note(0, "publish connection: %s", strerror(errno));
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        pub.fd = fd;
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    }
    if (pub.batch_n && pub.n < PUB_MAX_UNANSWERED) {
        bl_buf_printf(&req, "POST %s HTTP/1.1\r\nHost: %s:%d\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                      opt.publish_path, opt.host, opt.port,
                      pub.batch.len + (pub.batch_n > 1) * 2, pub.batch_n > 1 ? "[" : "");
        bl_buf_add(&req, pub.batch.p, pub.batch.len);
        bl_buf_add(&req, "]", pub.batch_n > 1);
        pub.batch.len = 0;
        pub.batch_n = 0;
        bl_buf_add(&pub.out, req.p, req.len);
        bl_buf_add(&pub.unanswered, req.p, req.len);
        pub.len[(pub.head + pub.n) % PUB_MAX_UNANSWERED] = req.len;
        pub.n++;
        bl_buf_free(&req);
    }
    if (!pub.out.len) {
        return;
    }
    ev.events |= EPOLLOUT;
    epoll_ctl(epfd, EPOLL_CTL_MOD, pub.fd, &ev);
}

/* The cycle's stream is open: its event goes out with the next flush,
 * through the kinds of bl_event_json in turn. */
static void cycle_publish(conn *c)
{
    if (pub.batch_n++) {
        bl_buf_add(&pub.batch, ",", 1);
    }
    bl_event_json(&pub.batch, (int)(c->cycle % BL_EVENT_KINDS), c->cname, 1, bl_now_us(), NULL);
}

/* The cycle's message arrived: leave as this cycle's turn says. */
static void cycle_leave(conn *c)
{
    struct linger lg = { 1, 0 };
    switch (c->leave) {
    case LEAVE_GOODBYE:
        if (c->ws) {
            ws_send_frame(c, 0x8, "\x03\xe8", 2);
            if (c->fd >= 0) {
                me->streaming--;
                c->state = C_CLOSING;
            }
            return;
        }
        break;
    case LEAVE_RST:
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        break;
    default:
        break;
    }
    cycle_end(c, 1, 0, NULL);
}

/* --ws-subscribe: one subscribe per FIELD=VALUE, before any resume. */
static void ws_subscribe(conn *c)
{
    const char *p = opt.ws_subscribe;
    while (p && *p) {
        const char *end = strchr(p, ','), *eq;
        size_t n = end ? (size_t)(end - p) : strlen(p);
        eq = memchr(p, '=', n);
        if (eq) {
            char msg[256];
            int m = snprintf(msg, sizeof(msg), "{\"type\":\"subscribe\",\"%.*s\":\"%.*s\"}",
                             (int)(eq - p), p, (int)(n - (size_t)(eq - p) - 1), eq + 1);
            if (m > 0 && (size_t)m < sizeof(msg)) {
                ws_send_frame(c, 0x1, msg, (size_t)m);
            }
        }
        p = end ? end + 1 : NULL;
    }
}

static void on_established(conn *c)
{
    pending--;
    c->state = C_STREAM;
    me->streaming++;
    if (opt.cycles) {
        me->established++;
        cycle_publish(c);
    }
    else if (!c->ever) {
        me->established++;
        c->ever = 1;
        if (c->ws) {
            ws_subscribe(c);
        }
    }
    else {
        me->reconnects++;
        if (c->ws) {
            ws_subscribe(c);
        }
        if (c->ws && opt.ws_resume && c->lastid[0]) {
            char msg[128];
            int n = snprintf(msg, sizeof(msg), "{\"type\":\"resume\",\"lastEventId\":\"%s\"}",
                             c->lastid);
            ws_send_frame(c, 0x1, msg, (size_t)n);
        }
    }
}

static void handshake_feed(conn *c, const char *p, size_t n)
{
    size_t end;
    bl_resp r;
    bl_buf_add(&c->in, p, n);
    end = bl_header_end(c->in.p, c->in.len);
    if (!end) {
        if (c->in.len > 64 * 1024) {
            conn_fail(c, 0, "response headers too large");
        }
        return;
    }
    bl_parse_response(c->in.p, end, &r);
    if (c->ws) {
        if (r.status != 101 || !ws_accept_ok(c, r.accept)) {
            char why[160];
            snprintf(why, sizeof(why), "handshake: status %d%s: %.80s", r.status,
                     r.status == 101 ? " with a wrong Sec-WebSocket-Accept" : "",
                     c->in.p + end);
            conn_fail(c, r.status, why);
            return;
        }
    }
    else if (r.status != 200) {
        char why[160];
        snprintf(why, sizeof(why), "status %d: %.100s", r.status, c->in.p + end);
        conn_fail(c, r.status, why);
        return;
    }
    c->chunked = r.chunked;
    bl_buf_consume(&c->in, end);
    on_established(c);
    if (c->in.len) {
        bl_buf rest = c->in;
        memset(&c->in, 0, sizeof(c->in));
        body_feed(c, rest.p, rest.len);
        bl_buf_free(&rest);
    }
}

static void on_event(conn *c, uint32_t events)
{
    static char rbuf[READ_CHUNK];
    int rounds;
    if (c->fd < 0) {
        return;
    }
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            char why[96];
            snprintf(why, sizeof(why), "connect: %s", strerror(err));
            conn_fail(c, 0, why);
            return;
        }
        if (!(events & EPOLLOUT)) {
            return;
        }
        c->state = C_HANDSHAKE;
        ev_set(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
        send_request(c);
        return;
    }
    if ((events & EPOLLOUT) && c->out.len) {
        ssize_t w = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
            if (c->state == C_STREAM) {
                conn_lost(c, "write failed");
            }
            else {
                conn_fail(c, 0, "write failed");
            }
            return;
        }
        if (w > 0) {
            bl_buf_consume(&c->out, (size_t)w);
        }
        if (!c->out.len) {
            ev_set(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
        }
    }
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        return;
    }
    for (rounds = 0; rounds < 8 && c->fd >= 0; rounds++) {
        ssize_t r = recv(c->fd, rbuf, sizeof(rbuf), 0);
        if (r < 0) {
            if (errno == EAGAIN) {
                return;
            }
            if (c->state == C_STREAM) {
                conn_lost(c, strerror(errno));
            }
            else {
                conn_fail(c, 0, strerror(errno));
            }
            return;
        }
        if (r == 0) {
            if (c->state == C_CLOSING) {
                conn_lost(c, "closed without a close frame in answer to ours");
            }
            else if (c->state == C_STREAM) {
                conn_lost(c, "closed by the server");
            }
            else {
                conn_fail(c, 0, "closed by the server before the response");
            }
            return;
        }
        rx_now = bl_now_us();
        if (c->state == C_HANDSHAKE) {
            handshake_feed(c, rbuf, (size_t)r);
        }
        else if (body_feed(c, rbuf, (size_t)r) < 0) {
            return;
        }
        if (opt.cycles && c->got && c->state == C_STREAM) {
            cycle_leave(c);
            return;
        }
        if ((size_t)r < sizeof(rbuf)) {
            return;
        }
    }
}

/* ---- worker ------------------------------------------------------- */

static void worker(int k)
{
    int mine = 0, started = 0, j;
    int64_t t0, last_scan = 0;
    struct epoll_event evs[512];
    me = &sh->w[k];
    srand((unsigned)(getpid() ^ bl_now_us()));
    for (j = k; j < opt.conns; j += opt.procs) {
        mine++;
    }
    conns = calloc((size_t)(mine ? mine : 1), sizeof(conn));
    nconns = mine;
    for (j = 0; j < mine; j++) {
        conns[j].fd = -1;
        conn_user(&conns[j], (k + j * opt.procs) % opt.users);
        conns[j].ws = opt.mixed ? (k + j * opt.procs) & 1 : opt.ws;
        conns[j].state = C_IDLE;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)(opt.src_base + k));
    t0 = bl_mono_ms();
    while (!sh->stop) {
        int64_t now = bl_mono_ms();
        int n, i;
        /* Open connections at the configured rate, with a bounded number of
         * handshakes in flight, during the connect phase only. */
        if (!sh->connect_over && started < mine) {
            long allowed = (long)((now - t0) * (opt.connect_rate / opt.procs + 1) / 1000) + 1;
            while (started < mine && started < allowed && pending < opt.max_pending) {
                conn_start(&conns[started++]);
            }
        }
        if (now - last_scan >= 100) {
            last_scan = now;
            for (i = 0; i < nconns; i++) {
                conn *c = &conns[i];
                if ((c->state == C_CONNECTING || c->state == C_HANDSHAKE)
                    && (now > c->deadline || (sh->connect_over && !c->ever))) {
                    conn_fail(c, 0, c->state == C_CONNECTING ? "connect timed out"
                                                             : "no response in time");
                }
                else if (c->state == C_WAIT && now >= c->deadline) {
                    conn_start(c);
                }
                else if (c->state == C_IDLE && sh->connect_over) {
                    c->state = C_FAILED;
                    me->failed++;
                    fail_note(0, "not connected within the connect phase");
                }
            }
        }
        n = epoll_wait(epfd, evs, 512, 20);
        for (i = 0; i < n; i++) {
            on_event(evs[i].data.ptr, evs[i].events);
        }
    }
}

/* ---- cycle mode worker ---------------------------------------------- */

static void cycle_start(conn *c, long id)
{
    c->cycle = id;
    c->ws = opt.mixed ? (int)(id & 1) : opt.ws;
    c->leave = (int)((id >> 1) % 3);
    snprintf(c->cname, sizeof(c->cname), "%s%ld", opt.prefix, id);
    c->uname = c->cname;
    c->uname_len = strlen(c->cname);
    c->ctoken = opt.secret_file ? bl_jwt_hs256(secret, c->cname, 3600) : NULL;
    c->token = c->ctoken;
    c->got = 0;
    c->uniq = c->maxn = 0;
    if (c->bits) {
        memset(c->bits, 0, c->bits_cap / 8);
    }
    c->lastid[0] = 0;
    c->cycle_deadline = bl_mono_ms() + (int64_t)opt.cycle_timeout * 1000;
    conn_start(c);
}

static const char *cycle_stuck(const conn *c)
{
    switch (c->state) {
    case C_CONNECTING: return "connect timed out";
    case C_HANDSHAKE:  return "no response in time";
    case C_CLOSING:    return "no close frame in answer to ours in time";
    default:           return "its message did not arrive in time";
    }
}

/* This process's share of the slots and of the cycles; returns when its
 * cycles are all over (or at stop). */
static void worker_cycles(int k)
{
    long mine = opt.cycles / opt.procs + (k < opt.cycles % opt.procs), next = 0;
    int j;
    struct epoll_event evs[512];
    me = &sh->w[k];
    srand((unsigned)(getpid() ^ bl_now_us()));
    for (j = k; j < opt.conns; j += opt.procs) {
        nconns++;
    }
    conns = calloc((size_t)(nconns ? nconns : 1), sizeof(conn));
    for (j = 0; j < nconns; j++) {
        conns[j].fd = -1;
        conns[j].state = C_IDLE;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    src.sin_family = AF_INET;
    while (!sh->stop) {
        int64_t now = bl_mono_ms();
        int n, i, active = 0;
        for (i = 0; i < nconns; i++) {
            conn *c = &conns[i];
            if (c->state == C_IDLE && next < mine) {
                cycle_start(c, opt.cycle_base + k + next++ * opt.procs);
            }
            if (c->state != C_IDLE && now > c->cycle_deadline) {
                cycle_end(c, 0, 0, cycle_stuck(c));
            }
            active += c->state != C_IDLE;
        }
        if (!active && next >= mine) {
            break;
        }
        pub_flush();
        n = epoll_wait(epfd, evs, 512, 20);
        for (i = 0; i < n; i++) {
            if (evs[i].data.ptr == &pub) {
                pub_event(evs[i].events);
            }
            else {
                on_event(evs[i].data.ptr, evs[i].events);
            }
        }
        pub_flush();
    }
}

static void worker_finish(void)
{
    uint32_t users = 0, *sent = opt.sent_file ? bl_sent_read(opt.sent_file, &users) : NULL;
    int i;
    for (i = 0; i < nconns; i++) {
        conn *c = &conns[i];
        if (c->ever && sent && (uint32_t)c->user < users) {
            uint32_t want = sent[c->user];
            me->expected += want;
            if (want > c->uniq) {
                me->lost += want - c->uniq;
            }
        }
        if (c->fd >= 0) {
            close(c->fd);
        }
    }
    if (opt.sent_file && !sent) {
        fail_note(0, "no publisher counts in %s: loss not computed", opt.sent_file);
        me->lost = (uint64_t)-1;
    }
    free(sent);
    me->done = 1;
}

/* ---- parent ------------------------------------------------------- */

static volatile sig_atomic_t got_stop;
static void on_signal(int s)
{
    (void)s;
    got_stop = 1;
}

static void write_status(int64_t t0, int final)
{
    char tmp[4096], line[512];
    int i, streaming = 0, established = 0, failed = 0;
    uint64_t delivered = 0, cycles_ok = 0, cycles_failed = 0;
    FILE *f;
    if (!opt.status_file) {
        return;
    }
    for (i = 0; i < opt.procs; i++) {
        streaming += sh->w[i].streaming;
        established += sh->w[i].established;
        failed += sh->w[i].failed;
        delivered += sh->w[i].delivered;
    }
    for (i = 0; i < opt.procs; i++) {
        cycles_ok += sh->w[i].cycles_ok;
        cycles_failed += sh->w[i].cycles_failed;
    }
    snprintf(line, sizeof(line),
             "streaming=%d established=%d failed=%d target=%d delivered=%llu elapsed_ms=%lld "
             "cycles_ok=%llu cycles_failed=%llu final=%d\n",
             streaming, established, failed, opt.conns, (unsigned long long)delivered,
             (long long)(bl_mono_ms() - t0), (unsigned long long)cycles_ok,
             (unsigned long long)cycles_failed, final);
    snprintf(tmp, sizeof(tmp), "%s.tmp", opt.status_file);
    f = fopen(tmp, "w");
    if (f) {
        fputs(line, f);
        fclose(f);
        rename(tmp, opt.status_file);
    }
}

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

static void print_summary(int64_t connect_ms)
{
    wstat tot;
    int i;
    FILE *out = opt.out_file ? fopen(opt.out_file, "w") : stdout;
    const char *err = "";
    int lost_unknown = 0;
    memset(&tot, 0, sizeof(tot));
    for (i = 0; i < opt.procs; i++) {
        wstat *w = &sh->w[i];
        tot.established += w->established;
        tot.streaming += w->streaming;
        tot.failed += w->failed;
        tot.delivered += w->delivered;
        if (w->lost == (uint64_t)-1) {
            lost_unknown = 1;
        }
        else {
            tot.lost += w->lost;
        }
        tot.dup += w->dup;
        tot.reordered += w->reordered;
        tot.foreign += w->foreign;
        tot.resets += w->resets;
        tot.other += w->other;
        tot.disconnects += w->disconnects;
        tot.reconnects += w->reconnects;
        tot.bad_status += w->bad_status;
        tot.neg_latency += w->neg_latency;
        tot.expected += w->expected;
        tot.ws_errors += w->ws_errors;
        tot.cycles_ok += w->cycles_ok;
        tot.cycles_failed += w->cycles_failed;
        tot.cycles_ws += w->cycles_ws;
        tot.pub_errors += w->pub_errors;
        tot.pub_reconnects += w->pub_reconnects;
        tot.leaves[LEAVE_GOODBYE] += w->leaves[LEAVE_GOODBYE];
        tot.leaves[LEAVE_FIN] += w->leaves[LEAVE_FIN];
        tot.leaves[LEAVE_RST] += w->leaves[LEAVE_RST];
        if (!*err && w->first_error[0]) {
            err = w->first_error;
        }
        bl_hist_merge(&tot.hist, &w->hist);
    }
    if (!out) {
        bl_die("cannot write %s", opt.out_file);
    }
    fprintf(out, "{\"label\":\"%s\",\"proto\":\"%s\",\"target\":%d,\"established\":%d,"
            "\"streaming_at_end\":%d,\"failed\":%d,\"connect_ms\":%lld,"
            "\"delivered\":%llu,\"expected\":%llu,\"lost\":%lld,\"dup\":%llu,\"reordered\":%llu,"
            "\"foreign\":%llu,\"resets\":%llu,\"other\":%llu,\"disconnects\":%llu,"
            "\"reconnects\":%llu,\"bad_status\":%llu,\"negative_latency\":%llu,"
            "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
            "\"mean_ms\":%.3f,\"cycles\":%ld,\"cycles_ok\":%llu,\"cycles_failed\":%llu,"
            "\"cycles_ws\":%llu,\"left_goodbye\":%llu,\"left_fin\":%llu,\"left_rst\":%llu,"
            "\"pub_errors\":%llu,\"pub_reconnects\":%llu,\"ws_errors\":%llu,\"first_error\":\"",
            opt.label, opt.mixed ? "mixed" : opt.ws ? "ws" : "sse", opt.conns, tot.established, tot.streaming,
            tot.failed, (long long)connect_ms, (unsigned long long)tot.delivered,
            (unsigned long long)tot.expected, lost_unknown ? -1LL : (long long)tot.lost,
            (unsigned long long)tot.dup, (unsigned long long)tot.reordered,
            (unsigned long long)tot.foreign, (unsigned long long)tot.resets,
            (unsigned long long)tot.other, (unsigned long long)tot.disconnects,
            (unsigned long long)tot.reconnects, (unsigned long long)tot.bad_status,
            (unsigned long long)tot.neg_latency, ms(bl_hist_quantile(&tot.hist, 0.50)),
            ms(bl_hist_quantile(&tot.hist, 0.90)), ms(bl_hist_quantile(&tot.hist, 0.99)),
            ms(bl_hist_quantile(&tot.hist, 0.999)), ms(tot.hist.max),
            tot.hist.count ? ms(tot.hist.sum / tot.hist.count) : 0.0, opt.cycles,
            (unsigned long long)tot.cycles_ok, (unsigned long long)tot.cycles_failed,
            (unsigned long long)tot.cycles_ws, (unsigned long long)tot.leaves[LEAVE_GOODBYE],
            (unsigned long long)tot.leaves[LEAVE_FIN], (unsigned long long)tot.leaves[LEAVE_RST],
            (unsigned long long)tot.pub_errors, (unsigned long long)tot.pub_reconnects,
            (unsigned long long)tot.ws_errors);
    for (; *err; err++) {
        if (*err == '"' || *err == '\\') {
            fputc('\\', out);
        }
        fputc((unsigned char)*err < 0x20 ? ' ' : *err, out);
    }
    fprintf(out, "\"}\n");
    if (out != stdout) {
        fclose(out);
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadclient --port P [--host H] [--path TEMPLATE] [--proto sse|ws|mixed]\n"
            "  [--ws-path TEMPLATE]\n"
            "  [--conns N] [--users U] [--prefix P] [--procs K] [--src-base B]\n"
            "  [--secret FILE] [--connect-rate R] [--max-pending M] [--connect-timeout S]\n"
            "  [--no-reconnect] [--ws-resume] [--ws-subscribe F=V,...] [--status FILE]\n"
            "  [--stop-file FILE]\n"
            "  [--sent FILE] [--out FILE] [--max-time S] [--label L]\n"
            "  [--cycles C [--cycle-base B] [--cycle-timeout S] [--publish PATH]]\n"
            "PATH may hold {u} (user name) and {t} (token; then no Authorization header).\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "host", 1, 0, 'h' }, { "port", 1, 0, 'p' }, { "path", 1, 0, 'P' },
        { "proto", 1, 0, 'w' }, { "conns", 1, 0, 'n' }, { "users", 1, 0, 'u' },
        { "prefix", 1, 0, 'x' }, { "procs", 1, 0, 'k' }, { "src-base", 1, 0, 'b' },
        { "address", 1, 0, 'A' },
        { "secret", 1, 0, 's' }, { "connect-rate", 1, 0, 'r' }, { "max-pending", 1, 0, 'm' },
        { "connect-timeout", 1, 0, 'T' }, { "no-reconnect", 0, 0, 'R' },
        { "ws-resume", 0, 0, 'W' }, { "status", 1, 0, 'S' }, { "stop-file", 1, 0, 'X' },
        { "sent", 1, 0, 'c' }, { "out", 1, 0, 'o' }, { "max-time", 1, 0, 't' },
        { "label", 1, 0, 'l' }, { "cycles", 1, 0, 'C' }, { "cycle-base", 1, 0, 'B' },
        { "cycle-timeout", 1, 0, 'O' }, { "publish", 1, 0, 'U' }, { "ws-path", 1, 0, 'Y' },
        { "ws-subscribe", 1, 0, 'Z' },
        { 0, 0, 0, 0 }
    };
    int ch, i, alive;
    pid_t pids[MAX_WORKERS];
    int64_t t0, connect_done = -1, stop_at = -1;
    struct sigaction sa;
    struct rlimit rl;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'P': opt.path = optarg; break;
        case 'w':
            opt.ws = strcmp(optarg, "ws") == 0;
            opt.mixed = strcmp(optarg, "mixed") == 0;
            break;
        case 'n': opt.conns = atoi(optarg); break;
        case 'u': opt.users = atoi(optarg); break;
        case 'x': opt.prefix = optarg; break;
        case 'A': bl_scope_address = strcmp(optarg, "scope") == 0; break;
        case 'k': opt.procs = atoi(optarg); break;
        case 'b': opt.src_base = atoi(optarg); break;
        case 's': opt.secret_file = optarg; break;
        case 'r': opt.connect_rate = atoi(optarg); break;
        case 'm': opt.max_pending = atoi(optarg); break;
        case 'T': opt.connect_timeout = atoi(optarg); break;
        case 'R': opt.reconnect = 0; break;
        case 'W': opt.ws_resume = 1; break;
        case 'S': opt.status_file = optarg; break;
        case 'X': opt.stop_file = optarg; break;
        case 'c': opt.sent_file = optarg; break;
        case 'o': opt.out_file = optarg; break;
        case 't': opt.max_time = atoi(optarg); break;
        case 'l': opt.label = optarg; break;
        case 'C': opt.cycles = atol(optarg); break;
        case 'B': opt.cycle_base = atol(optarg); break;
        case 'O': opt.cycle_timeout = atoi(optarg); break;
        case 'U': opt.publish_path = optarg; break;
        case 'Y': opt.ws_path = optarg; break;
        case 'Z': opt.ws_subscribe = optarg; break;
        default: usage();
        }
    }
    if (opt.port <= 0 || opt.conns <= 0 || opt.users <= 0 || opt.procs <= 0
        || opt.procs > MAX_WORKERS || opt.src_base < 1 || opt.src_base + opt.procs > 254
        || opt.connect_rate <= 0 || opt.max_pending <= 0 || opt.cycles < 0
        || (opt.cycles && (opt.src_base + 64 > 254 || opt.cycle_timeout <= 0))) {
        usage();
    }
    if (opt.secret_file && bl_read_secret(opt.secret_file, secret, sizeof(secret)) < 0) {
        bl_die("cannot read the secret %s", opt.secret_file);
    }
    opt.token_in_query = strstr(opt.path, "{t}") != NULL;
    if (opt.ws_path && (strstr(opt.ws_path, "{t}") != NULL) != opt.token_in_query) {
        bl_die("--path and --ws-path must both carry {t}, or neither");
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)(opt.conns / opt.procs + 64) > rl.rlim_cur) {
        bl_die("%d connections in %d processes need %d open files each; the limit is %llu: "
               "use more --procs", opt.conns, opt.procs, opt.conns / opt.procs + 64,
               (unsigned long long)rl.rlim_cur);
    }
    user_names = calloc((size_t)opt.users, sizeof(char *));
    user_name_len = calloc((size_t)opt.users, sizeof(size_t));
    user_tokens = calloc((size_t)opt.users, sizeof(char *));
    for (i = 0; i < opt.users; i++) {
        char nm[128];
        snprintf(nm, sizeof(nm), "%s%d", opt.prefix, i);
        user_names[i] = strdup(nm);
        user_name_len[i] = strlen(nm);
    }
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1) {
        bl_die("--host must be an IPv4 address");
    }
    if ((ntohl(dst.sin_addr.s_addr) >> 24) != 127) {
        bl_die("only loopback targets (127.0.0.0/8)");
    }
    sh = mmap(NULL, sizeof(shared_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
              0);
    if (sh == MAP_FAILED) {
        bl_die("mmap: %s", strerror(errno));
    }
    memset(sh, 0, sizeof(*sh));
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    t0 = bl_mono_ms();
    for (i = 0; i < opt.procs; i++) {
        pid_t p = fork();
        if (p < 0) {
            bl_die("fork: %s", strerror(errno));
        }
        if (p == 0) {
            signal(SIGTERM, SIG_IGN);
            signal(SIGINT, SIG_IGN);
            signal(SIGUSR1, SIG_IGN);
            if (opt.cycles) {
                worker_cycles(i);
            }
            else {
                worker(i);
            }
            worker_finish();
            _exit(0);
        }
        pids[i] = p;
    }
    alive = opt.procs;
    while (alive) {
        int st, est = 0, failed = 0;
        int64_t now = bl_mono_ms();
        struct stat sb;
        pid_t p;
        for (i = 0; i < opt.procs; i++) {
            est += sh->w[i].established;
            failed += sh->w[i].failed;
        }
        if (connect_done < 0 && est + failed >= opt.conns) {
            connect_done = now - t0;
            sh->connect_over = 1;
        }
        if (connect_done < 0 && now - t0 > (int64_t)opt.connect_timeout * 1000 + 1000) {
            connect_done = now - t0;
            sh->connect_over = 1;
        }
        if (!sh->stop && (got_stop || (opt.stop_file && stat(opt.stop_file, &sb) == 0)
                          || now - t0 > (int64_t)opt.max_time * 1000)) {
            sh->connect_over = 1;
            sh->stop = 1;
            stop_at = now;
        }
        if (stop_at > 0 && now - stop_at > 30000) {
            for (i = 0; i < opt.procs; i++) {
                if (pids[i] > 0) {
                    kill(pids[i], SIGKILL);
                }
            }
        }
        write_status(t0, 0);
        while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
            for (i = 0; i < opt.procs; i++) {
                if (pids[i] == p) {
                    pids[i] = 0;
                    alive--;
                }
            }
        }
        if (alive) {
            usleep(100000);
        }
    }
    write_status(t0, 1);
    print_summary(connect_done < 0 ? -1 : connect_done);
    return 0;
}
