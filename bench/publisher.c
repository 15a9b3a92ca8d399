/* SPDX-License-Identifier: Apache-2.0 */
/* Open-loop publisher: R events per second to users picked at random (or in
 * turn) for D seconds, on a fixed schedule, so a slow server shows up as
 * latency and not as a lower rate.  Every event carries t_pub (the
 * scheduled time, us since the epoch) and n (its user's sequence number).
 *
 *   publisher --target ours  --port P [--path /publish] [--batch B]
 *   publisher --target nchan --port P [--path '/pub/{u}']
 *   publisher --target redis --port P [--channel 'user:{u}']
 *   common: --users U --prefix S --rate R --duration D [--conns C] [--jobs K]
 *           [--pick random|cycle] [--pad N] [--seed X] --sent FILE [--out FILE]
 *           [--counts-from FILE]
 *   publisher --target ours --mix ...
 *
 * --mix (the leak soak's publish load): R is requests per second; every
 * other request is one event as a bare object, the others arrays of 2 to 8,
 * and the events go through the kinds of bl_event_json in turn, to random
 * users.  --counts-from continues the per-user sequence numbers of an
 * earlier run (its --sent file), so subscribers connected across both runs
 * can account for every message.
 *
 * ours: POST of a JSON array of the events due (at most B) per request;
 * nchan: one POST per event to the user's channel (nchan publishes one
 * message per request); redis: PUBLISH per event.  Requests are pipelined
 * on C keep-alive connections; a user's events always take the same
 * connection, so they reach the server in order.  At the end the per-user
 * counts go to --sent for the subscribers' loss accounting. */
#define _GNU_SOURCE
#include "benchlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { T_OURS, T_NCHAN, T_REDIS };

static struct {
    int target;
    const char *host;
    int port;
    const char *path;
    const char *channel;
    int users;
    const char *prefix;
    double rate;
    double duration;
    int conns;
    int batch;
    int pick_cycle;
    int jobs;           /* > 0: events carry jobId j<n mod jobs> */
    int pad;
    unsigned long long seed;
    const char *sent_file, *out_file;
    int drain_timeout;
    int mix;
    const char *counts_from;
} opt = {
    .target = T_OURS, .host = "127.0.0.1", .path = NULL, .channel = "user:{u}", .users = 100,
    .prefix = "u", .rate = 100, .duration = 10, .conns = 4, .batch = 100, .pad = 32,
    .seed = 42, .drain_timeout = 20,
};

typedef struct req {
    struct req *next;
    char *buf;
    size_t len;
    int nevents;
} req;

typedef struct {
    int fd;
    int idx;
    bl_buf out;          /* bytes not yet written */
    req *head, *tail;    /* requests not yet answered, in order */
    int outstanding;
    bl_buf in;
    bl_resp_reader rr;
    bl_buf batch;        /* ours: events of the current tick */
    int batch_n;
    int64_t retry_at;
} pconn;

static pconn *pc;
static int epfd;
static struct sockaddr_in dst;
static uint64_t acked, errors, retries, reconnects, requests;
static int first_status;
static char first_error[200];
static bl_hist lag;
static char **names;
static char pad_str[4096];

static void note_error(int status, const char *p, size_t n)
{
    size_t i;
    if (first_error[0]) {
        return;
    }
    first_status = status;
    if (n > sizeof(first_error) - 1) {
        n = sizeof(first_error) - 1;
    }
    for (i = 0; i < n; i++) {
        first_error[i] = (p[i] == '"' || p[i] == '\\' || (unsigned char)p[i] < 0x20) ? ' '
                                                                                    : p[i];
    }
    first_error[n] = 0;
}

static void want_out(pconn *c, int on)
{
    struct epoll_event ev;
    ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0);
    ev.data.ptr = c;
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int pc_connect(pconn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct epoll_event ev;
    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    c->fd = fd;
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = c;
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

/* The server closed the connection: requests it did not answer were not
 * processed (HTTP/1.1 pipelining), so they are sent again, in order. */
static void pc_reset(pconn *c, const char *why)
{
    req *r;
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    reconnects++;
    c->in.len = 0;
    c->rr.in_body = 0;
    c->out.len = 0;
    for (r = c->head; r; r = r->next) {
        bl_buf_add(&c->out, r->buf, r->len);
        retries++;
    }
    if (!first_error[0]) {
        note_error(0, why, strlen(why));
    }
    c->retry_at = bl_mono_ms() + 100;
}

static void pc_flush(pconn *c)
{
    ssize_t w;
    if (c->fd < 0 || !c->out.len) {
        return;
    }
    w = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN) {
            pc_reset(c, "write failed");
            return;
        }
        w = 0;
    }
    bl_buf_consume(&c->out, (size_t)w);
    want_out(c, c->out.len > 0);
}

static void pc_queue(pconn *c, bl_buf *b, int nevents)
{
    req *r = malloc(sizeof(*r));
    r->next = NULL;
    r->buf = b->p;
    r->len = b->len;
    r->nevents = nevents;
    if (c->tail) {
        c->tail->next = r;
    }
    else {
        c->head = r;
    }
    c->tail = r;
    c->outstanding++;
    requests++;
    bl_buf_add(&c->out, b->p, b->len);
    memset(b, 0, sizeof(*b));
}

static void complete(pconn *c, int status)
{
    req *r = c->head;
    if (!r) {
        note_error(status, "response without a request", 26);
        return;
    }
    c->head = r->next;
    if (!c->head) {
        c->tail = NULL;
    }
    c->outstanding--;
    if (status >= 200 && status < 300) {
        acked += (uint64_t)r->nevents;
    }
    else {
        errors += (uint64_t)r->nevents;
    }
    free(r->buf);
    free(r);
}

static void nop_out(void *ctx, const char *p, size_t n)
{
    pconn *c = ctx;
    if ((c->rr.status < 200 || c->rr.status >= 300) && !first_error[0]) {
        note_error(c->rr.status, p, n);
    }
}

static void http_done(void *ctx, int status)
{
    complete(ctx, status);
}

/* Parses as many complete responses as c->in holds. */
static void parse_responses(pconn *c)
{
    if (opt.target != T_REDIS) {
        if (bl_resp_parse(&c->rr, &c->in, nop_out, http_done, c) < 0) {
            pc_reset(c, "bad chunked response");
        }
        return;
    }
    for (;;) {
        char *nl = memchr(c->in.p, '\n', c->in.len);
        size_t used;
        if (!c->in.len || !nl) {
            return;
        }
        used = (size_t)(nl - c->in.p) + 1;
        if (c->in.p[0] == '-') {
            note_error(500, c->in.p, used);
            complete(c, 500);
        }
        else {
            complete(c, 200);
        }
        bl_buf_consume(&c->in, used);
    }
}

static void pc_read(pconn *c)
{
    char buf[65536];
    for (;;) {
        ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
        if (r < 0 && errno == EAGAIN) {
            break;
        }
        if (r <= 0) {
            pc_reset(c, r == 0 ? "publisher connection closed by the server"
                               : "publisher connection failed");
            return;
        }
        bl_buf_add(&c->in, buf, (size_t)r);
        if ((size_t)r < sizeof(buf)) {
            break;
        }
    }
    parse_responses(c);
}

static void event_json(bl_buf *b, int u, uint32_t n, uint64_t t_pub)
{
    if (opt.jobs) {
        /* --jobs K: in turn for jobs j0..jK-1, for subscribers that narrow
         * to them. */
        bl_buf_printf(b, "{\"type\":\"bench\",\"userId\":\"%s\",\"jobId\":\"j%u\","
                      "\"n\":%u,\"t_pub\":%llu}", names[u], n % (uint32_t)opt.jobs, n,
                      (unsigned long long)t_pub);
        return;
    }
    bl_event_json(b, 0, names[u], n, t_pub, pad_str);
}

static void http_post(pconn *c, const char *path, const char *body, size_t len, int nevents)
{
    bl_buf b = { 0 };
    bl_buf_printf(&b, "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\n\r\n", path, opt.host, opt.port, len);
    bl_buf_add(&b, body, len);
    pc_queue(c, &b, nevents);
}

static void flush_batch(pconn *c)
{
    if (!c->batch_n) {
        return;
    }
    bl_buf_add(&c->batch, "]", 1);
    http_post(c, opt.path, c->batch.p, c->batch.len, c->batch_n);
    c->batch.len = 0;
    c->batch_n = 0;
}

static void emit(int u, uint32_t n, uint64_t t_pub)
{
    pconn *c = &pc[u % opt.conns];
    if (opt.target == T_OURS) {
        if (c->batch_n >= opt.batch) {
            flush_batch(c);
        }
        bl_buf_add(&c->batch, c->batch_n ? "," : "[", 1);
        event_json(&c->batch, u, n, t_pub);
        c->batch_n++;
    }
    else if (opt.target == T_NCHAN) {
        bl_buf body = { 0 };
        char *path = bl_expand(opt.path, names[u], NULL);
        event_json(&body, u, n, t_pub);
        http_post(c, path, body.p, body.len, 1);
        free(path);
        bl_buf_free(&body);
    }
    else {
        bl_buf body = { 0 }, b = { 0 };
        char *ch = bl_expand(opt.channel, names[u], NULL);
        event_json(&body, u, n, t_pub);
        bl_buf_printf(&b, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%zu\r\n", strlen(ch), ch,
                      body.len);
        bl_buf_add(&b, body.p, body.len);
        bl_buf_add(&b, "\r\n", 2);
        pc_queue(c, &b, 1);
        free(ch);
        bl_buf_free(&body);
    }
}

static unsigned long long rng;
static uint64_t xorshift(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* --mix: request i and its events (see the top of this file).  A user's
 * events all take the connection u mod C, as elsewhere, so they stay in
 * order. */
static void emit_mix(uint64_t i, uint32_t *counts, uint64_t t_pub)
{
    static uint64_t kind;
    pconn *c = &pc[i % (uint64_t)opt.conns];
    int k = (i & 1) ? 2 + (int)(xorshift() % 7) : 1, j;
    uint64_t per = (uint64_t)(opt.users / opt.conns);
    bl_buf body = { 0 };
    if (k > 1) {
        bl_buf_add(&body, "[", 1);
    }
    for (j = 0; j < k; j++) {
        int u = c->idx + opt.conns * (int)(xorshift() % per);
        counts[u]++;
        if (j) {
            bl_buf_add(&body, ",", 1);
        }
        bl_event_json(&body, (int)(kind++ % BL_EVENT_KINDS), names[u], counts[u], t_pub, pad_str);
    }
    if (k > 1) {
        bl_buf_add(&body, "]", 1);
    }
    http_post(c, opt.path, body.p, body.len, k);
    bl_buf_free(&body);
}

static volatile sig_atomic_t interrupted;
static void on_signal(int s)
{
    (void)s;
    interrupted = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: publisher --target ours|nchan|redis --port P --users U --rate R "
                    "--duration D --sent FILE\n  [--path P] [--channel C] [--prefix S] "
                    "[--conns C] [--batch B] [--pick random|cycle]\n  [--pad N] [--seed X] "
                    "[--out FILE] [--drain-timeout S]\n  [--mix] [--counts-from FILE] [--jobs K]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "target", 1, 0, 'T' }, { "host", 1, 0, 'h' }, { "port", 1, 0, 'p' },
        { "path", 1, 0, 'P' }, { "channel", 1, 0, 'C' }, { "users", 1, 0, 'u' },
        { "prefix", 1, 0, 'x' }, { "rate", 1, 0, 'r' }, { "duration", 1, 0, 'd' },
        { "conns", 1, 0, 'c' }, { "batch", 1, 0, 'b' }, { "pick", 1, 0, 'k' },
        { "pad", 1, 0, 'a' }, { "seed", 1, 0, 's' }, { "sent", 1, 0, 'S' },
        { "out", 1, 0, 'o' }, { "drain-timeout", 1, 0, 'D' }, { "mix", 0, 0, 'M' },
        { "counts-from", 1, 0, 'F' }, { "address", 1, 0, 'A' }, { "jobs", 1, 0, 'J' },
        { 0, 0, 0, 0 }
    };
    int ch, i;
    uint32_t *counts;
    uint64_t total, next = 0, rt0, m0, gen_end_us = 0;
    int64_t drain_deadline = 0;
    struct epoll_event evs[64];
    struct sigaction sa;
    FILE *out;
    int drained = 0;

    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'T':
            opt.target = !strcmp(optarg, "nchan") ? T_NCHAN
                         : !strcmp(optarg, "redis") ? T_REDIS
                         : !strcmp(optarg, "ours") ? T_OURS : -1;
            break;
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'P': opt.path = optarg; break;
        case 'C': opt.channel = optarg; break;
        case 'u': opt.users = atoi(optarg); break;
        case 'x': opt.prefix = optarg; break;
        case 'A': bl_scope_address = strcmp(optarg, "scope") == 0; break;
        case 'r': opt.rate = atof(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'c': opt.conns = atoi(optarg); break;
        case 'b': opt.batch = atoi(optarg); break;
        case 'k': opt.pick_cycle = !strcmp(optarg, "cycle"); break;
        case 'a': opt.pad = atoi(optarg); break;
        case 's': opt.seed = strtoull(optarg, NULL, 10); break;
        case 'S': opt.sent_file = optarg; break;
        case 'o': opt.out_file = optarg; break;
        case 'D': opt.drain_timeout = atoi(optarg); break;
        case 'M': opt.mix = 1; break;
        case 'F': opt.counts_from = optarg; break;
        case 'J': opt.jobs = atoi(optarg); break;
        default: usage();
        }
    }
    if (opt.target < 0 || opt.port <= 0 || opt.users <= 0 || opt.rate <= 0
        || opt.duration <= 0 || opt.conns <= 0 || opt.batch <= 0 || !opt.sent_file
        || opt.pad < 0 || opt.pad >= (int)sizeof(pad_str)
        || (opt.mix && (opt.target != T_OURS || opt.users < opt.conns))) {
        usage();
    }
    if (!opt.path) {
        opt.path = opt.target == T_NCHAN ? "/pub/{u}" : "/publish";
    }
    memset(pad_str, 'x', (size_t)opt.pad);
    rng = opt.seed * 2654435761u + 88172645463325252ull;
    names = calloc((size_t)opt.users, sizeof(char *));
    if (opt.counts_from) {
        uint32_t had = 0;
        counts = bl_sent_read(opt.counts_from, &had);
        if (!counts || had != (uint32_t)opt.users) {
            bl_die("%s: no counts for %d users", opt.counts_from, opt.users);
        }
    }
    else {
        counts = calloc((size_t)opt.users, sizeof(uint32_t));
    }
    for (i = 0; i < opt.users; i++) {
        char nm[128];
        snprintf(nm, sizeof(nm), "%s%d", opt.prefix, i);
        names[i] = strdup(nm);
    }
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1
        || (ntohl(dst.sin_addr.s_addr) >> 24) != 127) {
        bl_die("--host must be a loopback IPv4 address");
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    pc = calloc((size_t)opt.conns, sizeof(pconn));
    for (i = 0; i < opt.conns; i++) {
        pc[i].idx = i;
        pc[i].fd = -1;
        if (pc_connect(&pc[i]) < 0) {
            bl_die("cannot connect to %s:%d: %s", opt.host, opt.port, strerror(errno));
        }
    }

    total = (uint64_t)(opt.rate * opt.duration + 0.5);
    rt0 = bl_now_us();
    m0 = bl_mono_us();
    while (!interrupted) {
        uint64_t now = bl_mono_us();
        int n, busy = 0;
        if (next < total) {
            uint64_t due = (uint64_t)((double)(now - m0) * opt.rate / 1e6) + 1;
            uint64_t rt_now = rt0 + (now - m0);
            if (due > total) {
                due = total;
            }
            for (; next < due && opt.mix; next++) {
                uint64_t t_pub = rt0 + (uint64_t)((double)next * 1e6 / opt.rate);
                emit_mix(next, counts, t_pub);
                bl_hist_add(&lag, rt_now > t_pub ? rt_now - t_pub : 0);
            }
            for (; next < due; next++) {
                int u = opt.pick_cycle ? (int)(next % (uint64_t)opt.users)
                                       : (int)(xorshift() % (uint64_t)opt.users);
                uint64_t t_pub = rt0 + (uint64_t)((double)next * 1e6 / opt.rate);
                counts[u]++;
                emit(u, counts[u], t_pub);
                bl_hist_add(&lag, rt_now > t_pub ? rt_now - t_pub : 0);
            }
            if (next >= total) {
                gen_end_us = now;
                drain_deadline = bl_mono_ms() + (int64_t)opt.drain_timeout * 1000;
            }
        }
        for (i = 0; i < opt.conns; i++) {
            pconn *c = &pc[i];
            flush_batch(c);
            if (c->fd < 0 && bl_mono_ms() >= c->retry_at) {
                if (pc_connect(c) < 0) {
                    c->retry_at = bl_mono_ms() + 200;
                }
            }
            pc_flush(c);
            busy += c->outstanding;
        }
        if (next >= total && !busy) {
            drained = 1;
            break;
        }
        if (next >= total && bl_mono_ms() > drain_deadline) {
            break;
        }
        {
            /* Sleep until the next event is due (at most 1 ms), to the
             * microsecond: a coarser wake-up would add its slack to every
             * measured latency. */
            struct timespec ts = { 0, 1000000 };
            if (next < total) {
                uint64_t at = m0 + (uint64_t)((double)next * 1e6 / opt.rate);
                uint64_t t = bl_mono_us();
                uint64_t wait = at > t ? at - t : 0;
                ts.tv_nsec = (long)(wait < 1000 ? wait : 1000) * 1000;
            }
            n = epoll_pwait2(epfd, evs, 64, &ts, NULL);
        }
        for (i = 0; i < n; i++) {
            pconn *c = evs[i].data.ptr;
            if (c->fd < 0) {
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                pc_flush(c);
            }
            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
                pc_read(c);
            }
        }
    }
    if (bl_sent_write(opt.sent_file, counts, (uint32_t)opt.users) < 0) {
        bl_die("cannot write %s", opt.sent_file);
    }
    {
        uint64_t unanswered = 0;
        double gen_s = gen_end_us ? (double)(gen_end_us - m0) / 1e6 : 0;
        for (i = 0; i < opt.conns; i++) {
            req *r;
            for (r = pc[i].head; r; r = r->next) {
                unanswered += (uint64_t)r->nevents;
            }
        }
        struct rusage ru;
        double cpu_s;
        getrusage(RUSAGE_SELF, &ru);
        cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
                + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
        out = opt.out_file ? fopen(opt.out_file, "w") : stdout;
        if (!out) {
            bl_die("cannot write %s", opt.out_file);
        }
        fprintf(out, "{\"target\":\"%s\",\"rate\":%.1f,\"duration\":%.1f,\"scheduled\":%llu,"
                "\"published\":%llu,\"requests\":%llu,\"acked\":%llu,\"errors\":%llu,\"unanswered\":%llu,"
                "\"retries\":%llu,\"reconnects\":%llu,\"drained\":%d,\"interrupted\":%d,"
                "\"generation_s\":%.3f,\"lag_p50_ms\":%.3f,\"lag_p99_ms\":%.3f,"
                "\"lag_max_ms\":%.3f,\"cpu_s\":%.3f,\"first_status\":%d,\"first_error\":\"%s\"}\n",
                opt.target == T_OURS ? "ours" : opt.target == T_NCHAN ? "nchan" : "redis",
                opt.rate, opt.duration, (unsigned long long)total, (unsigned long long)next,
                (unsigned long long)requests, (unsigned long long)acked, (unsigned long long)errors,
                (unsigned long long)unanswered, (unsigned long long)retries,
                (unsigned long long)reconnects, drained, (int)interrupted, gen_s,
                bl_hist_quantile(&lag, 0.5) / 1000.0, bl_hist_quantile(&lag, 0.99) / 1000.0,
                lag.max / 1000.0, cpu_s, first_status, first_error);
        if (out != stdout) {
            fclose(out);
        }
    }
    return (errors || !drained) ? 1 : 0;
}
