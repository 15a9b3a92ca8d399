/* SPDX-License-Identifier: Apache-2.0 */
/* GET with Upgrade: websocket -> an RFC 6455 connection carrying the
 * user's messages and the subscribe protocol.
 *
 * The worker that takes the handshake sends the 101, the connected
 * message and a URL resume, blocking.  Then, like an SSE stream:
 * - on the event MPM (UploadProgressAsync On) it returns SUSPENDED and the
 *   child's reactor owns the connection (ws_rx_* below): it reads when the
 *   socket is readable, writes without blocking when the hub has frames,
 *   pings and closes from its timer, so an idle connection holds no
 *   thread;
 * - otherwise (prefork, worker, UploadProgressAsync Off) the worker keeps
 *   it and polls its socket together with the pollset's wake-up, which the
 *   hub triggers when frames are queued.
 * Both modes share the reads, the protocol and the writes: all writes go
 * through ws_write()/ws_flush() and the connection's output filters (so
 * mod_ssl keeps working), all reads through its input filters,
 * non-blocking. */
#include "upm_handlers.h"
#include "upm_auth.h"
#include "upm_bus.h"
#include "upm_config.h"
#include "upm_hub.h"
#include "upm_reactor.h"
#include "upm_stats.h"
#include "upm_stream.h"
#include "upm_ws_frame.h"
#include "upm_ws_proto.h"
#include "upm_refusal.h"

#include "http_config.h"
#include "http_connection.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"
#include "util_script.h"
#include <apr_poll.h>
#include <apr_portable.h>
#include <apr_strings.h>
#include <string.h>
#if defined(__linux__)
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif

APLOG_USE_MODULE(upload_progress);

#define WS_TAKE_MAX      64
#define WS_READ_BYTES    16384
#define WS_READS_PER_TURN 16
#define WS_CLOSE_WAIT    apr_time_from_sec(2)
/* Reactor mode: JSON one replay step buffers before the socket must take
 * it, and steps or takes one pump may do before the other connections of
 * the reactor get their turn. */
#define WS_REPLAY_STEP_BYTES (64 * 1024)
#define WS_PUMP_STEPS    16
/* How long a new connection opened without ?lastEventId= holds live
 * messages back waiting for its client's first message (a resume would
 * set where it starts): UploadProgressWSResumeWait for the client's own
 * turnaround, plus two round trips of the connection as TCP measured
 * them, at most WS_START_HOLD_MAX. */
#define WS_START_HOLD_MAX apr_time_from_msec(1500)

typedef struct ws_conn {
    /* The handler's: on the reactor, valid only while rc->r is (a
     * detached stream has neither). */
    request_rec *r;
    conn_rec *c;
    const char *user;               /* in home */
    apr_pool_t *home;               /* what lives as long as the connection */
    json_t *claims;                 /* the token's, for grants (a reference) */
    const char *grant_claim;
    const apr_array_header_t *id_claims;    /* the location's, for grants */
    int require_grant;
    /* Cleared after every turn of the loop; on the reactor thread its
     * scratch pool (ops set it on entry). */
    apr_pool_t *tmp;
    apr_bucket_brigade *ibb, *obb;
    apr_pollset_t *ps;
    upm_ws_parser parser;
    /* Made at the client's first message: most connections never send
     * one, and the state of 64 subscriptions is most of a stream's size. */
    upm_wsp_state *proto;
    upm_sub_spec base;              /* user, URL scope, route, limits, wake-up */
    upm_auth_info *ai;
    /* The hub subscribers: one owner-wide while the client never
     * subscribed (narrowed = 0), else one per entry of proto.subs. */
    upm_sub *subs[UPM_WSP_MAX_SUBS];
    apr_pool_t *sub_pools[UPM_WSP_MAX_SUBS];
    int nsubs;
    int narrowed;
    const char *client_id;
    int failed;                     /* the connection is gone */
    int done;                       /* the close handshake is over */
    int close_sent;
    int close_code;                 /* what we sent, for the log */
    apr_time_t ping_unanswered;     /* when the oldest unanswered ping went out */
    apr_uint64_t delivered;
    int more_input;                 /* input left unread at the end of a turn */
    int counted;                    /* holds a place in the per-user count */
    upm_conn_mode mode;             /* for the connection gauges */
    apr_interval_time_t beat;       /* ping interval (0: none) */
    apr_time_t next_ping;
    apr_time_t expires;             /* the token's exp (0: none) */
    apr_time_t close_until;         /* after our close: the client's is due by */
    const char *end;                /* why the connection ends, for the log */
    /* Reactor mode only: */
    upm_rconn *rc;                  /* NULL while a worker holds the connection */
    int replaying;                  /* a resume's replay is going out in steps */
    upm_resume_steps replay;
    /* Where the connection starts is not known yet (opened without
     * ?lastEventId=): nothing is delivered until the client's first
     * message says (a resume) or hold_until passes; then it starts from
     * start_id, the position `connected` announced. */
    int pending;
    apr_time_t hold_until;
    const char *start_id;           /* in home */
    apr_uint64_t start_seq;         /* its ring sequence */
    int said;                       /* the client sent more than subscriptions */
    /* A subscribe on a connection under way holds delivery (and a replay
     * going out) for the same wait: a client sends the subscribes of a
     * reconnect one frame each, and a message of the second that went
     * out of reach while only the first was in could not follow the
     * first's newer ones.  The catch-up when the wait ends replays from
     * the position with the whole set. */
    int settling;
    apr_time_t settle_until;
    apr_time_t settle_most;         /* the bound of its extensions */
    apr_interval_time_t hold;       /* the wait plus two round trips; 0: no wait */
    const char *from_id;            /* ?lastEventId= (in home): the position until a send */
    /* The id of the last message (or reset) sent: a later resume is exact
     * only from there, or while nothing was sent yet. */
    int sent_any;
    char last_sent[64];
} ws_conn;

/* Log lines: through the request while there is one (a detached stream
 * has none: ws->rc->r is NULL then). */
#define WS_LOG(ws, level, rv, ...) do {                                         \
        request_rec *r_ = (ws)->rc ? (ws)->rc->r : (ws)->r;                     \
        if (r_) {                                                               \
            ap_log_rerror(APLOG_MARK, level, rv, r_, __VA_ARGS__);              \
        } else {                                                                \
            ap_log_error(APLOG_MARK, level, rv, (ws)->rc->s, __VA_ARGS__);      \
        }                                                                       \
    } while (0)

/* ---- output: the one place that writes to the client ----------------- */

/* Worker mode: into our brigade, sent by ws_flush.  Reactor mode: into
 * the reactor's pending brigade.  Both copy: frames may be unreferenced
 * right after. */
static void ws_out(ws_conn *ws, const void *data, apr_size_t len)
{
    if (ws->failed || !len) {
        return;
    }
    if (ws->rc) {
        upm_reactor_buffer(ws->rc, data, len);
    }
    else if (apr_brigade_write(ws->obb, NULL, NULL, data, len) != APR_SUCCESS) {
        ws->failed = 1;
    }
}

static void ws_write(ws_conn *ws, int opcode, const void *data, apr_size_t len)
{
    unsigned char hdr[10];
    apr_size_t hl = upm_ws_frame_header(hdr, opcode, len);
    ws_out(ws, hdr, hl);
    ws_out(ws, data, len);
}

/* Worker mode: pushes everything out now, blocking.  Reactor mode: sends
 * what the socket takes (no FLUSH bucket, which would make the core output
 * filter block); 1 when output is still waiting for the socket, which the
 * reactor then watches.  -1: the connection is gone (in reactor mode it is
 * then closed already). */
static int ws_flush(ws_conn *ws)
{
    apr_status_t rv;
    if (ws->rc) {
        int st = ws->failed ? -1 : upm_reactor_flush(ws->rc);
        if (st < 0) {
            ws->failed = 1;
        }
        return st;
    }
    if (ws->failed) {
        apr_brigade_cleanup(ws->obb);
        return -1;
    }
    if (APR_BRIGADE_EMPTY(ws->obb)) {
        return 0;
    }
    APR_BRIGADE_INSERT_TAIL(ws->obb, apr_bucket_flush_create(ws->c->bucket_alloc));
    rv = ap_pass_brigade(ws->c->output_filters, ws->obb);
    apr_brigade_cleanup(ws->obb);
    if (rv != APR_SUCCESS || ws->c->aborted) {
        WS_LOG(ws, APLOG_DEBUG, rv, APLOGNO(13100)
                      "WebSocket %s: write failed", ws->client_id);
        ws->failed = 1;
    }
    return ws->failed ? -1 : 0;
}

static void ws_text(ws_conn *ws, const char *json, apr_size_t len)
{
    ws_write(ws, UPM_WS_OP_TEXT, json, len);
}

/* A message (or reset) with this id went out. */
static void ws_sent_id(ws_conn *ws, const char *id)
{
    ws->sent_any = 1;
    apr_cpystrn(ws->last_sent, id, sizeof(ws->last_sent));
}

static void ws_close(ws_conn *ws, int code, const char *reason)
{
    apr_size_t len;
    unsigned char *f;
    if (ws->close_sent) {
        return;
    }
    f = upm_ws_close_frame(ws->tmp, code, reason, &len);
    ws_out(ws, f, len);             /* the frame is built whole; send it raw */
    ws->close_sent = 1;
    ws->close_code = code;
    /* RFC 6455: wait a little for the client's close before the TCP one */
    ws->close_until = apr_time_now() + WS_CLOSE_WAIT;
    ws_flush(ws);
}

/* Sends a reset and returns the sequence its id names. */
static apr_uint64_t ws_reset(ws_conn *ws, const char *reason)
{
    const char *id;
    apr_uint64_t seq;
    apr_size_t len;
    char *json = upm_stream_reset_json(ws->tmp, reason, &id, &seq, &len);
    int i;

    ws_text(ws, json, len);
    ws_sent_id(ws, id);
    /* The client re-reads its state now: whatever the ring held up to the
     * reset's id is part of that, and is not sent again. */
    for (i = 0; i < ws->nsubs; i++) {
        upm_sub_skip_upto(ws->subs[i], seq);
    }
    upm_stats_add(UPM_ST_RESETS_SENT, 1);
    return seq;
}

static int emit_frame(void *baton, upm_frame *f)
{
    ws_conn *ws = baton;
    ws_text(ws, f->json, f->json_len);
    ws_sent_id(ws, f->id);
    ws->delivered++;
    /* Replayed: its age is how long the client was away, not latency. */
    upm_stats_delivered(1, -1);
    /* A long replay must not pile up in memory: a worker sends it as it
     * goes; the reactor bounds it by replay steps instead. */
    if (!ws->failed && !ws->rc && !APR_BRIGADE_EMPTY(ws->obb)) {
        apr_off_t n = 0;
        apr_brigade_length(ws->obb, 0, &n);
        if (n > 65536) {
            ws_flush(ws);
        }
    }
    return ws->failed;
}

/* ---- subscribers ----------------------------------------------------- */

static void ws_notify(void *baton)
{
    apr_pollset_wakeup(baton);
}

static upm_sub *sub_open(ws_conn *ws, int field, const char *id, apr_pool_t **pool)
{
    upm_sub_spec spec = ws->base;
    char kind_id[UPM_WSP_ID_MAX + 1];
    upm_sub *sub;

    if (ws->nsubs == 0 && field < 0) {
        /* The first, owner-wide subscriber lives in home: an idle stream
         * then needs no pool of its own for it. */
        *pool = NULL;
        return upm_hub_add(ws->home, &spec);
    }
    apr_pool_create(pool, ws->home);
    if (field >= 0) {
        const char *grant = upm_stream_grant_kind(field);
        apr_cpystrn(kind_id, id, sizeof(kind_id));
        spec.scope[field] = apr_pstrdup(*pool, kind_id);
        /* A token grant for exactly this id routes the subscriber through
         * it, as an SSE stream narrowed to it would be; otherwise it stays
         * on the user's own messages (narrowing never widens). */
        if (spec.via == UPM_F_OWNER && grant
            && upm_auth_claims_grant(ws->tmp, ws->claims, ws->grant_claim, ws->id_claims,
                                     field, grant, spec.scope[field])) {
            spec.via = field;
        }
    }
    sub = upm_hub_add(*pool, &spec);
    if (ws->nsubs > 0) {
        upm_sub_skip_copy(sub, ws->subs[0]);
    }
    return sub;
}

/* UploadProgressRequireGrant: a subscription to a grantable id the token
 * does not grant is refused rather than left on the user's own messages. */
static int sub_granted(void *baton, int field, const char *id)
{
    ws_conn *ws = baton;
    const char *grant = upm_stream_grant_kind(field);
    if (!grant || ws->base.via != UPM_F_OWNER) {
        /* photoId is never granted, it only narrows; and on a connection
         * the URL already routes through a granted id, a subscription
         * only narrows that. */
        return 1;
    }
    return upm_auth_claims_grant(ws->tmp, ws->claims, ws->grant_claim, ws->id_claims, field,
                                 grant, id);
}

static void sub_close(ws_conn *ws, int i)
{
    /* destroying the pool runs upm_hub_remove */
    if (ws->sub_pools[i]) {
        apr_pool_destroy(ws->sub_pools[i]);
    }
    else {
        upm_hub_remove(ws->subs[i]);
    }
    ws->subs[i] = NULL;
    ws->sub_pools[i] = NULL;
}

/* Sends what the subscribers hold; returns how many frames were taken. */
static int deliver(ws_conn *ws)
{
    upm_frame *frames[WS_TAKE_MAX];
    upm_sub_state state;
    const char *reason = NULL;
    int n, i;

    /* During a replay, live frames wait queued: they are newer than what
     * the replay sends, or duplicates its end makes the subscribers skip. */
    if (!ws->nsubs || ws->close_sent || ws->replaying || ws->pending || ws->settling) {
        return 0;
    }
    n = upm_sub_take_merged(ws->subs, ws->nsubs, frames, WS_TAKE_MAX, &state, &reason);
    if (state == UPM_SUB_RESET) {
        apr_uint64_t seq = ws_reset(ws, reason);
        for (i = 0; i < n; i++) {
            if (frames[i]->seq <= seq) {
                upm_frame_unref(frames[i]);
                frames[i] = NULL;
            }
        }
    }
    for (i = 0; i < n; i++) {
        if (frames[i]) {
            ws_text(ws, frames[i]->json, frames[i]->json_len);
            ws_sent_id(ws, frames[i]->id);
            ws->delivered++;
            upm_stats_delivered(1, apr_time_now() - frames[i]->published);
            upm_frame_unref(frames[i]);
        }
    }
    if (state == UPM_SUB_DISCONNECT) {
        ws_close(ws, UPM_WS_CLOSE_DISCONNECTED, "disconnected");
        ws->end = "disconnected by the application";
    }
    else if (state == UPM_SUB_CLOSING) {
        ws_close(ws, UPM_WS_CLOSE_GOING_AWAY, "server restarting");
        ws->end = "server stopping";
    }
    return n;
}

/* ---- resume ---------------------------------------------------------- */

static void resume_refused(ws_conn *ws, const char *last_id, const char *reason)
{
    WS_LOG(ws, APLOG_DEBUG, 0, APLOGNO(13101)
                  "WebSocket %s: cannot resume user %s from %s: %s",
                  ws->client_id, ws->user, last_id, reason);
    ws_reset(ws, reason);
}

/* Reactor mode: one step of the replay a resume started.  The steps go
 * out while the socket takes them (rx_output), so a replay of the whole
 * ring never sits in memory at once. */
static void replay_more(ws_conn *ws)
{
    const char *reason;
    int st = upm_stream_resume_step(ws->tmp, ws->subs, ws->nsubs, &ws->replay,
                                    WS_REPLAY_STEP_BYTES, emit_frame, ws, &reason);
    if (st == 0) {
        return;
    }
    /* Over: the subscribers skip what it sent, and their frames follow. */
    ws->replaying = 0;
    if (st < 0) {
        WS_LOG(ws, APLOG_DEBUG, 0, APLOGNO(13500)
                      "WebSocket %s of user %s: replay cut short (%s); resetting",
                      ws->client_id, ws->user, reason);
        ws_reset(ws, reason);
    }
}

static void ws_resume(ws_conn *ws, const char *last_id)
{
    const char *reason;
    int st;

    if (!ws->rc) {
        /* Frames queued so far are older than the replay's end or
         * duplicates of it: the resume's skip drops them. */
        reason = upm_stream_resume(ws->tmp, ws->subs, ws->nsubs, last_id, emit_frame, ws);
        if (reason) {
            resume_refused(ws, last_id, reason);
        }
        return;
    }
    /* On the reactor thread: a replay started here goes on in steps, and
     * what it reaches replaces any replay still going out. */
    ws->replaying = 0;
    st = upm_stream_resume_begin(ws->tmp, ws->subs, ws->nsubs, last_id, emit_frame, ws,
                                 &ws->replay, &reason);
    if (st <= 0) {
        if (reason) {
            resume_refused(ws, last_id, reason);
        }
        return;
    }
    ws->replaying = 1;
    /* A short replay is over at once, before the client's next message,
     * as on a worker. */
    if (!ws->rc->blocked_since) {
        replay_more(ws);
    }
}

/* A subscription added to a connection already under way: a message it
 * matches that was published after the connection's position, but before
 * the subscription reached the hub, sits in no queue (the owner-wide
 * subscriber a first subscribe replaces is closed with it).  Replaying from
 * the position with the new set covers it, in id order and once: the
 * replay's skip drops what the live queues hold of it.  Only while the
 * position is in the ring: from an older one the subscription starts now,
 * as it always did, rather than with a reset. */
static void ws_catch_up(ws_conn *ws)
{
    const char *pos = ws->sent_any ? ws->last_sent
                      : ws->start_id ? ws->start_id : ws->from_id;
    apr_uint64_t after = 0;

    if (ws->pending || !pos || upm_stream_resume_point(pos, &after)) {
        return;
    }
    ws_resume(ws, pos);
}

/* A subscribe on a connection under way: wait for the others (see
 * settling).  Each one extends the wait, never past WS_START_HOLD_MAX
 * from the first. */
static void ws_settle(ws_conn *ws, apr_time_t now)
{
    static const apr_interval_time_t most = WS_START_HOLD_MAX;
    if (ws->pending) {
        return;                     /* the start's hold covers it */
    }
    if (!ws->hold) {
        ws_catch_up(ws);
        return;
    }
    if (!ws->settling) {
        ws->settling = 1;
        ws->settle_until = now + ws->hold;
        ws->settle_most = now + most;
    }
    else if (now + ws->hold < ws->settle_most) {
        ws->settle_until = now + ws->hold;
    }
    else {
        ws->settle_until = ws->settle_most;
    }
}

/* The subscriptions are in: what they match since the position goes out. */
static void ws_settled(ws_conn *ws)
{
    if (ws->settling) {
        ws->settling = 0;
        ws_catch_up(ws);
    }
}

/* The connection's start is known: from last_id (the client's first
 * message was a resume) or from where `connected` said it starts.  Live
 * messages held so far are either in the replay or skipped by it, so
 * everything goes out once, in id order. */
static void ws_start(ws_conn *ws, const char *last_id)
{
    ws->pending = 0;
    ws_resume(ws, last_id ? last_id : ws->start_id);
}

/* A resume once the connection has started.  Exact (a replay from
 * last_id) while nothing was sent yet, or from the id of the last message
 * sent; a reset when last_id cannot be resumed from at all (as at connect
 * time).  Otherwise messages newer than last_id went out already:
 * - a first message (after subscribes) that came after the hold: exact
 *   when the client missed nothing of the current subscriptions before
 *   the connection's start (what came after it went out, or will, in
 *   order), so there is nothing to do; else a reset, reason "late" (the
 *   missed ones would have to follow newer ones);
 * - any later one: refused, error resume_too_late, nothing changes.
 * Returns the error code, or NULL when the resume was dealt with. */
static const char *ws_resume_started(ws_conn *ws, const char *last_id)
{
    apr_uint64_t after = 0;
    const char *reason;
    int any;

    if (!ws->sent_any || strcmp(last_id, ws->last_sent) == 0) {
        ws_resume(ws, last_id);
        return NULL;
    }
    reason = upm_stream_resume_point(last_id, &after);
    if (reason && strcmp(reason, "uncovered") != 0) {
        resume_refused(ws, last_id, reason);
        return NULL;
    }
    if (reason || ws->said || !ws->start_id || after >= ws->start_seq) {
        WS_LOG(ws, APLOG_DEBUG, 0, APLOGNO(13800)
                      "WebSocket %s of user %s: resume from %s refused, %s was sent "
                      "already", ws->client_id, ws->user, last_id, ws->last_sent);
        return "resume_too_late";
    }
    any = upm_stream_any_between(ws->tmp, ws->subs, ws->nsubs, after, ws->start_seq);
    WS_LOG(ws, APLOG_DEBUG, 0, APLOGNO(13801)
                  "WebSocket %s of user %s: first-message resume from %s came %"
                  APR_TIME_T_FMT " ms after the hold, when messages had gone out: %s",
                  ws->client_id, ws->user, last_id,
                  apr_time_as_msec(apr_time_now() - ws->hold_until),
                  any == 0 ? "it missed nothing before the start" : "resetting");
    if (any != 0) {
        ws_reset(ws, any < 0 ? "expired" : "late");
    }
    return NULL;
}

/* The hold of a connection whose client said nothing is over. */
static void ws_hold_check(ws_conn *ws, apr_time_t now)
{
    if (ws->pending && now >= ws->hold_until) {
        ws_start(ws, NULL);
    }
    if (ws->settling && now >= ws->settle_until) {
        ws_settled(ws);
    }
}

/* The connection's smoothed round-trip time as TCP measured it (0 when
 * the platform does not tell). */
static apr_interval_time_t ws_rtt(conn_rec *c)
{
#if defined(__linux__) && defined(TCP_INFO)
    apr_socket_t *s = ap_get_conn_socket(c);
    apr_os_sock_t fd;
    struct tcp_info ti;
    socklen_t tl = sizeof(ti);
    if (s && apr_os_sock_get(&fd, s) == APR_SUCCESS
        && getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0) {
        return (apr_interval_time_t)ti.tcpi_rtt;        /* microseconds */
    }
#else
    (void)c;
#endif
    return 0;
}

/* ---- the client's messages ------------------------------------------- */

static void on_text(ws_conn *ws, const unsigned char *data, apr_size_t len)
{
    upm_wsp_result res;
    apr_size_t rlen;
    char *reply;

    if (!ws->proto) {
        ws->proto = apr_palloc(ws->home, sizeof(*ws->proto));
        upm_wsp_init(ws->proto, ws->base.scope);
        if (ws->require_grant) {
            ws->proto->allow = sub_granted;
            ws->proto->allow_baton = ws;
        }
    }
    upm_wsp_handle(ws->proto, ws->tmp, (const char *)data, len, apr_time_now(), &res);
    if (ws->pending && res.action == UPM_WSP_RESUME) {
        /* The first message (after any subscribes) is a resume: the
         * connection starts there, and nothing newer went out before. */
        ws->said = 1;
        ws_start(ws, res.last_event_id);
        return;
    }
    if (ws->pending && res.action != UPM_WSP_SUBSCRIBED
        && res.action != UPM_WSP_UNSUBSCRIBED) {
        /* Anything else: this client does not resume by message. */
        ws_start(ws, NULL);
    }
    if (ws->settling && res.action != UPM_WSP_SUBSCRIBED
        && res.action != UPM_WSP_UNSUBSCRIBED) {
        /* The client is past its subscribes. */
        ws_settled(ws);
    }
    if (res.action == UPM_WSP_RESUME) {
        const char *code = ws_resume_started(ws, res.last_event_id);
        ws->said = 1;
        if (!code) {
            return;
        }
        res.action = UPM_WSP_ERROR;
        res.code = code;
        res.message = apr_psprintf(ws->tmp, "messages up to %s were sent on this "
                                   "connection already: resume from that id, or "
                                   "reconnect with ?lastEventId=", ws->last_sent);
    }
    if (res.action != UPM_WSP_SUBSCRIBED && res.action != UPM_WSP_UNSUBSCRIBED) {
        ws->said = 1;
    }
    switch (res.action) {
    case UPM_WSP_SUBSCRIBED:
        if (res.existed) {
            break;
        }
        if (!ws->narrowed) {
            /* From everything to this subscription: what the owner-wide
             * subscriber already holds was published before the request
             * and goes out first. */
            upm_sub *sp = sub_open(ws, res.field, res.id, &ws->sub_pools[1]);
            ws->subs[1] = sp;
            ws->nsubs = 2;
            deliver(ws);
            sub_close(ws, 0);
            ws->subs[0] = sp;
            ws->sub_pools[0] = ws->sub_pools[1];
            ws->subs[1] = NULL;
            ws->nsubs = 1;
            ws->narrowed = 1;
        }
        else {
            ws->subs[res.index] = sub_open(ws, res.field, res.id, &ws->sub_pools[res.index]);
            ws->nsubs = ws->proto->nsubs;
        }
        ws_settle(ws, apr_time_now());
        break;
    case UPM_WSP_UNSUBSCRIBED: {
        int last = ws->nsubs - 1;
        sub_close(ws, res.index);
        if (res.index != last) {
            ws->subs[res.index] = ws->subs[last];
            ws->sub_pools[res.index] = ws->sub_pools[last];
            ws->subs[last] = NULL;
            ws->sub_pools[last] = NULL;
        }
        ws->nsubs = ws->proto->nsubs;
        break;
    }
    case UPM_WSP_ERROR:
        WS_LOG(ws, APLOG_DEBUG, 0, APLOGNO(13102)
                      "WebSocket %s: refused a client message: %s", ws->client_id,
                      res.code);
        break;
    default:
        break;
    }
    reply = upm_wsp_reply(ws->tmp, &res, &rlen);
    if (reply) {
        ws_text(ws, reply, rlen);
    }
}

static void on_event(ws_conn *ws, const upm_ws_event *ev)
{
    if (ws->failed) {
        return;                     /* gone (and in reactor mode released) */
    }
    switch (ev->kind) {
    case UPM_WS_EV_TEXT:
        if (!ws->close_sent) {
            on_text(ws, ev->data, ev->len);
        }
        break;
    case UPM_WS_EV_PING:
        if (!ws->close_sent) {
            ws_write(ws, UPM_WS_OP_PONG, ev->data, ev->len);
        }
        break;
    case UPM_WS_EV_PONG:
        ws->ping_unanswered = 0;
        break;
    case UPM_WS_EV_CLOSE:
        if (!ws->close_sent) {
            char reason[UPM_WS_CONTROL_MAX + 1];
            memcpy(reason, ev->data, ev->len);
            reason[ev->len] = '\0';
            WS_LOG(ws, APLOG_DEBUG, 0, APLOGNO(13103)
                          "WebSocket %s: client closed with %d", ws->client_id, ev->code);
            /* Echo the code; the TCP close follows. */
            ws_close(ws, ev->code, NULL);
        }
        if (!ws->end) {
            ws->end = "closed by the client";
        }
        ws->done = 1;
        break;
    case UPM_WS_EV_FAIL:
        WS_LOG(ws, APLOG_INFO, 0, APLOGNO(13104)
                      "WebSocket %s of user %s: %s; closing with %d", ws->client_id,
                      ws->user, ev->reason, ev->code);
        ws_close(ws, ev->code, ev->reason);
        if (!ws->end) {
            ws->end = "protocol error";
        }
        ws->done = 1;
        break;
    default:
        break;
    }
}

/* Reads what the client sent, without blocking, and acts on it.
 * Returns -1 when the connection ended. */
/* Gives the parser what was read and acts on each event. */
static void ws_feed(ws_conn *ws, const char *data, apr_size_t len)
{
    apr_size_t pos = 0;
    while (pos < len && !ws->done && !ws->failed) {
        upm_ws_event ev;
        pos += upm_ws_parse(&ws->parser, (const unsigned char *)data + pos, len - pos, &ev);
        on_event(ws, &ev);
    }
}

/* The client is gone (EOF) or the read failed: -1 for the caller. */
static int ws_read_lost(ws_conn *ws, apr_status_t rv)
{
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EOF(rv)) {
        WS_LOG(ws, APLOG_DEBUG, rv, APLOGNO(13105) "WebSocket %s: read failed",
               ws->client_id);
    }
    ws->end = "connection lost";
    ws->failed = 1;
    return -1;
}

/* Detached: straight from the socket (no filter is left to read through). */
static int ws_read_socket(ws_conn *ws)
{
    char buf[WS_READ_BYTES];
    int reads;
    ws->more_input = 0;
    for (reads = 0; reads < WS_READS_PER_TURN && !ws->done && !ws->failed; reads++) {
        apr_size_t len = sizeof(buf);
        apr_status_t rv = apr_socket_recv(ws->rc->sock, buf, &len);
        if (APR_STATUS_IS_EAGAIN(rv) && !len) {
            return 0;
        }
        if ((rv != APR_SUCCESS && !APR_STATUS_IS_EAGAIN(rv)) || !len) {
            return ws_read_lost(ws, rv);
        }
        ws_feed(ws, buf, len);
    }
    ws->more_input = !ws->done && !ws->failed;
    return ws->failed ? -1 : 0;
}

static int ws_read(ws_conn *ws)
{
    int reads;
    if (ws->rc && ws->rc->detached) {
        return ws_read_socket(ws);
    }
    ws->more_input = 0;
    for (reads = 0; reads < WS_READS_PER_TURN && !ws->done && !ws->failed; reads++) {
        apr_status_t rv;
        apr_bucket *b;

        apr_brigade_cleanup(ws->ibb);
        rv = ap_get_brigade(ws->c->input_filters, ws->ibb, AP_MODE_READBYTES,
                            APR_NONBLOCK_READ, WS_READ_BYTES);
        if (APR_STATUS_IS_EAGAIN(rv) || (rv == APR_SUCCESS && APR_BRIGADE_EMPTY(ws->ibb))) {
            return 0;
        }
        if (rv != APR_SUCCESS) {
            return ws_read_lost(ws, rv);
        }
        for (b = APR_BRIGADE_FIRST(ws->ibb); b != APR_BRIGADE_SENTINEL(ws->ibb)
             && !ws->done && !ws->failed; b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t len;
            if (APR_BUCKET_IS_EOS(b)) {
                return ws_read_lost(ws, APR_EOF);
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            if (apr_bucket_read(b, &data, &len, APR_BLOCK_READ) != APR_SUCCESS) {
                ws->failed = 1;
                return -1;
            }
            ws_feed(ws, data, len);
        }
    }
    ws->more_input = !ws->done && !ws->failed;
    return ws->failed ? -1 : 0;
}

/* After our close frame: waits a little for the client's, as RFC 6455
 * asks, then lets httpd close the TCP connection. */
static void ws_finish(ws_conn *ws)
{
    apr_time_t until = apr_time_now() + WS_CLOSE_WAIT;
    ws_flush(ws);
    while (!ws->done && !ws->failed) {
        apr_int32_t num;
        const apr_pollfd_t *out;
        apr_time_t now = apr_time_now();
        if (now >= until) {
            break;
        }
        apr_pollset_poll(ws->ps, until - now, &num, &out);
        ws_read(ws);
        apr_pool_clear(ws->tmp);
    }
}

/* ---- handshake and the loop ------------------------------------------ */

static int refuse(request_rec *r, int status, const char *code, const char *msg)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, APLOGNO(13106)
                  "WebSocket handshake for %s refused (%d %s): %s", r->uri, status, code,
                  msg);
    return upm_json_error(r, status, code, msg, -1);
}

static int origin_refused(request_rec *r, const upm_dir_conf *d)
{
    const char *origin = apr_table_get(r->headers_in, "Origin");
    if (upm_ws_origin_allowed(r->pool, origin, d->allow_origin,
                              apr_table_get(r->headers_in, "Host"))) {
        return DECLINED;
    }
    /* A page on another site must not open the user's stream with the
     * user's cookie (cross-site WebSocket hijacking). */
    {
        apr_uint64_t held;
        int level = upm_refusal_level(UPM_REFUSE_ORIGIN, &held);
        ap_log_rerror(APLOG_MARK, level, 0, r, APLOGNO(13107)
                      "WebSocket handshake for %s from origin %s refused: not in "
                      "UploadProgressAllowOrigin (default: this host only)%s", r->uri,
                      origin, upm_refusal_more(r->pool, held));
    }
    upm_refusal_json(r, "forbidden_origin", NULL,
                     "this page's Origin may not open the stream (UploadProgressAllowOrigin)");
    return HTTP_FORBIDDEN;
}

int upm_ws_access_checker(request_rec *r)
{
    upm_dir_conf *d;
    const char *upgrade;

    if (r->main || !(upgrade = apr_table_get(r->headers_in, "Upgrade"))
        || !upm_ws_header_has_token(upgrade, "websocket")) {
        return DECLINED;
    }
    /* Only where the list is configured: the handler is not known yet at
     * this stage, and other modules' WebSockets are not ours to police.
     * Refusing here, before authentication, means a hijacking page learns
     * nothing about the token its request carried. */
    d = ap_get_module_config(r->per_dir_config, &upload_progress_module);
    if (!d->allow_origin) {
        return DECLINED;
    }
    return origin_refused(r, d);
}

static apr_status_t release_claims(void *data)
{
    json_decref(data);
    return APR_SUCCESS;
}

static apr_status_t release_count(void *data)
{
    ws_conn *ws = data;
    if (ws->counted) {
        upm_bus_user_release(ws->user);
        ws->counted = 0;
    }
    return APR_SUCCESS;
}

static const char *make_client_id(apr_pool_t *p)
{
    unsigned char rnd[8];
    char *hex = apr_palloc(p, 17);
    int i;
    if (apr_generate_random_bytes(rnd, sizeof(rnd)) != APR_SUCCESS) {
        apr_uint64_t t = (apr_uint64_t)apr_time_now() ^ (apr_uint64_t)(apr_uintptr_t)hex;
        memcpy(rnd, &t, sizeof(rnd));
    }
    for (i = 0; i < 8; i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    }
    return hex;
}

/* ---- what both modes do on time and at the end ---------------------- */

/* Token expiry, unanswered pings and the next ping.  Returns non-zero when
 * the connection is closing (done set too when it gets no close wait). */
static int ws_checks(ws_conn *ws, apr_time_t now)
{
    if (ws->expires && now >= ws->expires) {
        WS_LOG(ws, APLOG_INFO, 0, APLOGNO(13112)
                      "WebSocket %s: token of user %s expired; closing",
                      ws->client_id, ws->user);
        ws_close(ws, UPM_WS_CLOSE_TOKEN_EXPIRED, "token expired");
        ws->end = "token expired";
        return 1;
    }
    if (ws->beat && ws->ping_unanswered && now >= ws->ping_unanswered + 2 * ws->beat) {
        WS_LOG(ws, APLOG_INFO, 0, APLOGNO(13113)
                      "WebSocket %s of user %s answered no ping for %d s; closing",
                      ws->client_id, ws->user, (int)apr_time_sec(2 * ws->beat));
        ws_close(ws, UPM_WS_CLOSE_NO_PONG, "no pong");
        ws->end = "no pong";
        ws->done = 1;               /* an unresponsive peer gets no grace */
        return 1;
    }
    if (ws->beat && now >= ws->next_ping) {
        /* A client that does not read gets no more pings: its write
         * timeout (reactor mode) deals with it. */
        if (!ws->rc || !ws->rc->blocked_since) {
            char payload[24];
            apr_size_t pl = (apr_size_t)apr_snprintf(payload, sizeof(payload), "%"
                                                     APR_TIME_T_FMT, now);
            ws_write(ws, UPM_WS_OP_PING, payload, pl);
            ws_flush(ws);
            if (!ws->ping_unanswered) {
                ws->ping_unanswered = now;
            }
        }
        ws->next_ping = now + ws->beat;
    }
    return 0;
}

/* Leaves the hub and the per-user count; logs the end. */
static void ws_release(ws_conn *ws, const char *how)
{
    while (ws->nsubs > 0) {
        sub_close(ws, --ws->nsubs);
    }
    release_count(ws);
    upm_stats_conn(UPM_TR_WS, ws->mode, -1);
    WS_LOG(ws, APLOG_DEBUG, 0, APLOGNO(13114)
                  "WebSocket %s of user %s closed (%s, code %d, %" APR_UINT64_T_FMT
                  " messages)", ws->client_id, ws->user, how, ws->close_code,
                  ws->delivered);
}

/* ---- reactor mode ---------------------------------------------------- */

/* Everything below runs on the reactor thread, one op at a time; ws->tmp
 * is cleared at the end of each op. */

static void rx_reschedule(ws_conn *ws)
{
    upm_rconn *rc = ws->rc;
    apr_time_t when = 0;
#define EARLIER(t) do { apr_time_t t_ = (t); if (t_ && (!when || t_ < when)) when = t_; } while (0)
    if (ws->more_input) {
        /* Input the filters hold (mod_ssl's decrypted bytes, or frames
         * that came with the handshake) raises no POLLIN: read it from the
         * timer, at once. */
        EARLIER(apr_time_now() + 1);
    }
    if (ws->close_sent) {
        EARLIER(ws->close_until);
    }
    else {
        if (ws->pending) {
            EARLIER(ws->hold_until);
        }
        if (ws->settling) {
            EARLIER(ws->settle_until);
        }
        if (ws->beat) {
            EARLIER(ws->next_ping);
            if (ws->ping_unanswered) {
                EARLIER(ws->ping_unanswered + 2 * ws->beat);
            }
        }
        EARLIER(ws->expires);
    }
    if (rc->blocked_since) {
        EARLIER(rc->blocked_since + rc->write_timeout);
    }
#undef EARLIER
    upm_reactor_set_deadline(rc, when);
}

/* Sends what is waiting (a replay's next steps, the subscribers' frames)
 * while the socket takes it. */
static void rx_output(ws_conn *ws)
{
    upm_rconn *rc = ws->rc;
    int steps;

    for (steps = 0; steps < WS_PUMP_STEPS; steps++) {
        int more = 0;
        if (rc->closing || rc->blocked_since) {
            return;                 /* POLLOUT brings us back */
        }
        if (!ws->close_sent && !ws->settling) {
            if (ws->replaying) {
                replay_more(ws);
                more = 1;
            }
            else {
                more = deliver(ws) > 0;
            }
        }
        if (ws_flush(ws) != 0 || !more) {
            return;
        }
    }
    /* More is waiting: the reactor's other connections go first. */
    upm_reactor_notify(rc);
}

/* Reads what the client sent and acts on it. */
static void rx_input(ws_conn *ws)
{
    upm_rconn *rc = ws->rc;
    apr_size_t pending;

    ws_read(ws);
    if (rc->closing) {
        return;
    }
    if (ws->failed || ws->done) {
        /* The client left, or the close handshake is over, or the client
         * broke the protocol and has our close: what is written goes out
         * with the last flush of the close. */
        upm_reactor_close(rc, ws->end ? ws->end : "connection lost");
        return;
    }
    if (rc->blocked_since) {
        /* Answers (pongs, replies) to a client that sends but does not
         * read would pile up: bounded like its queue of messages. */
        pending = upm_reactor_pending(rc);
        if (pending > ws->base.max_queue_bytes + WS_REPLAY_STEP_BYTES) {
            WS_LOG(ws, APLOG_INFO, 0, APLOGNO(13501)
                          "closing WebSocket %s of user %s: it sends but does not "
                          "read (%" APR_SIZE_T_FMT " bytes of answers wait)",
                          ws->client_id, ws->user, pending);
            upm_stats_add(UPM_ST_SLOW_CLOSED, 1);
            upm_reactor_close(rc, "sends but does not read");
            return;
        }
    }
    rx_output(ws);
}

/* Every op: passing allocations go to the reactor's scratch pool. */
static ws_conn *rx_enter(upm_rconn *rc)
{
    ws_conn *ws = rc->ctx;
    ws->tmp = upm_reactor_scratch();
    return ws;
}

/* Input the filters may still hold keeps the stream from being detached
 * (it would read the socket past it). */
static void rx_leave(ws_conn *ws)
{
    ws->rc->hold = ws->more_input;
    apr_pool_clear(ws->tmp);
}

static void ws_rx_pump(upm_rconn *rc)
{
    ws_conn *ws = rx_enter(rc);
    if (ws->failed) {
        /* the worker's writes failed before the hand-over */
        upm_reactor_close(rc, "connection lost");
    }
    else {
        rx_output(ws);
        if (!rc->closing) {
            rx_reschedule(ws);
        }
    }
    rx_leave(ws);
}

static void ws_rx_readable(upm_rconn *rc)
{
    ws_conn *ws = rx_enter(rc);
    rx_input(ws);
    if (!rc->closing) {
        rx_reschedule(ws);
    }
    rx_leave(ws);
}

static void ws_rx_timer(upm_rconn *rc, apr_time_t now)
{
    ws_conn *ws = rx_enter(rc);

    if (ws->more_input) {
        rx_input(ws);
        if (rc->closing) {
            goto out;
        }
    }
    if (rc->blocked_since && now - rc->blocked_since >= rc->write_timeout) {
        WS_LOG(ws, APLOG_INFO, 0, APLOGNO(13502)
                      "closing WebSocket %s of user %s: the client has not read for %"
                      APR_TIME_T_FMT " s (UploadProgressWriteTimeout)", ws->client_id,
                      ws->user, apr_time_sec(now - rc->blocked_since));
        upm_stats_add(UPM_ST_SLOW_CLOSED, 1);
        upm_reactor_close(rc, "slow consumer");
        goto out;
    }
    if (!ws->close_sent && ws->pending && now >= ws->hold_until) {
        /* The client's first message may be in the socket already, its
         * POLLIN not handled yet: it decides, not the order of our events. */
        rx_input(ws);
        if (rc->closing) {
            goto out;
        }
        if (ws->pending && !ws->close_sent) {
            ws_start(ws, NULL);
            rx_output(ws);
            if (rc->closing) {
                goto out;
            }
        }
    }
    if (!ws->close_sent && ws->settling && now >= ws->settle_until) {
        /* As above: a subscribe already in the socket joins the set. */
        rx_input(ws);
        if (rc->closing) {
            goto out;
        }
        if (ws->settling && !ws->close_sent) {
            ws_settled(ws);
            rx_output(ws);
            if (rc->closing) {
                goto out;
            }
        }
    }
    if (ws->close_sent) {
        if (now >= ws->close_until) {
            /* RFC 6455 lets the server close TCP once it waited enough */
            upm_reactor_close(rc, ws->end ? ws->end : "no close frame from the client");
            goto out;
        }
    }
    else if (ws_checks(ws, now) && ws->done) {
        upm_reactor_close(rc, ws->end);
        goto out;
    }
    if (!rc->closing) {
        rx_reschedule(ws);
    }
out:
    rx_leave(ws);
}

static void ws_rx_closed(upm_rconn *rc, const char *reason)
{
    ws_conn *ws = rc->ctx;
    ws_release(ws, reason);
    /* Whatever op is still on the stack stops here: no more writes, and
     * no subscriber opens after the release. */
    ws->failed = 1;
}

/* Detachable: once the handshake is over the connection speaks only
 * WebSocket, which a detached stream reads from the socket itself. */
static const upm_rconn_ops ws_rx_ops = {
    ws_rx_pump, ws_rx_readable, ws_rx_timer, ws_rx_closed, 1
};

int upm_ws_handler(request_rec *r)
{
    upm_dir_conf *d;
    apr_table_t *q = NULL;
    const char *h, *key, *bad, *resume, *start_id = NULL;
    char accept[29];
    ws_conn *ws;
    conn_rec *c = r->connection;
    apr_pollfd_t pfd;
    apr_status_t rv;
    upm_rconn *rc = NULL;
    upm_auth_info *ai;
    upm_sub_spec base;
    apr_pool_t *home;
    apr_size_t len;
    const char *s;
    int got = 0;

    if (!r->handler || strcmp(r->handler, "upload-progress-websocket") != 0) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (!r->user || !*r->user) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, APLOGNO(13108)
                      "%s WebSockets need an authenticated user: configure AuthType JWT "
                      "and Require valid-user", r->uri);
        upm_refusal_json(r, "forbidden", "no_user", "no authenticated user");
        return HTTP_FORBIDDEN;
    }
    d = ap_get_module_config(r->per_dir_config, &upload_progress_module);
    if (origin_refused(r, d) != DECLINED) {
        return HTTP_FORBIDDEN;
    }
    h = apr_table_get(r->headers_in, "Upgrade");
    if (r->header_only || !h || !upm_ws_header_has_token(h, "websocket")
        || !(h = apr_table_get(r->headers_in, "Connection"))
        || !upm_ws_header_has_token(h, "upgrade")) {
        apr_table_setn(r->err_headers_out, "Upgrade", "websocket");
        apr_table_setn(r->err_headers_out, "Sec-WebSocket-Version", "13");
        return refuse(r, HTTP_UPGRADE_REQUIRED, "upgrade_required",
                      "this is a WebSocket endpoint: send Upgrade: websocket and "
                      "Connection: Upgrade");
    }
    if (c->master || r->proto_num < HTTP_VERSION(1, 1)) {
        return refuse(r, HTTP_BAD_REQUEST, "bad_protocol",
                      "WebSocket needs HTTP/1.1 (configure Protocols http/1.1 here)");
    }
    h = apr_table_get(r->headers_in, "Sec-WebSocket-Version");
    if (!h || strcmp(h, "13") != 0) {
        apr_table_setn(r->err_headers_out, "Sec-WebSocket-Version", "13");
        return refuse(r, HTTP_UPGRADE_REQUIRED, "unsupported_version",
                      "only WebSocket version 13 is supported");
    }
    key = apr_table_get(r->headers_in, "Sec-WebSocket-Key");
    if (!upm_ws_key_valid(key)) {
        return refuse(r, HTTP_BAD_REQUEST, "bad_key",
                      "Sec-WebSocket-Key must be the base64 of 16 bytes");
    }

    ai = upm_auth_get(r);
    ap_args_to_table(r, &q);
    if ((bad = upm_stream_base_spec(r, d, q, ai, &base)) != NULL) {
        return refuse(r, HTTP_BAD_REQUEST, "bad_scope",
                      apr_psprintf(r->pool, "%s must be 1 to 128 of "
                                   "A-Z a-z 0-9 . _ : @ -", bad));
    }
    if ((bad = upm_stream_ungranted(d, &base)) != NULL) {
        return refuse(r, HTTP_FORBIDDEN, "forbidden",
                      apr_psprintf(r->pool, "the token does not grant this %s", bad));
    }
    resume = apr_table_get(q, "lastEventId");

    if (upm_conf_max_per_user(d)) {
        /* A WebSocket is one of the user's streams, like an SSE one. */
        got = upm_bus_user_acquire(r->user, (apr_uint32_t)upm_conf_max_per_user(d));
        if (got == 0) {
            apr_table_setn(r->err_headers_out, "Retry-After", "5");
            return refuse(r, HTTP_TOO_MANY_REQUESTS, "too_many_connections",
                          "this user holds the most streams allowed");
        }
    }
    if (upm_reactor_usable(r, upm_conf_async(d))) {
        /* Prepared before the subscribers exist: they wake the reactor. */
        rc = upm_reactor_prepare(r, &ws_rx_ops, NULL,
                                 apr_time_from_sec(upm_conf_write_timeout(d)));
    }
    /* On the reactor the connection may outlive its request: what it
     * keeps lives in the stream's pool. */
    home = rc ? upm_reactor_pool(rc) : r->pool;
    ws = apr_pcalloc(home, sizeof(*ws));
    ws->r = r;
    ws->c = c;
    ws->home = home;
    ws->ai = ai;
    ws->base = base;
    upm_stream_spec_copy(home, &ws->base);
    ws->user = apr_pstrdup(home, r->user);
    ws->grant_claim = apr_pstrdup(home, upm_conf_grant_claim(d));
    /* The per-directory configuration lives as long as this child. */
    ws->id_claims = upm_conf_id_claims(d);
    ws->require_grant = upm_conf_require_grant(d);
    if (ai && ai->claims) {
        ws->claims = json_incref(ai->claims);
        apr_pool_cleanup_register(home, ws->claims, release_claims, apr_pool_cleanup_null);
    }
    ws->counted = got == 1;
    /* every way out of the handler gives the place back */
    apr_pool_cleanup_register(home, ws, release_count, apr_pool_cleanup_null);

    /* Everything that can fail is set up before the 101. */
    if (rc) {
        rc->ctx = ws;
        ws->base.notify = upm_reactor_notify;
        ws->base.baton = rc;
    }
    else {
        rv = apr_pollset_create_ex(&ws->ps, 1, r->pool, APR_POLLSET_WAKEABLE,
                                   APR_POLLSET_POLL);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, APLOGNO(13109)
                          "cannot create the WebSocket pollset");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        memset(&pfd, 0, sizeof(pfd));
        pfd.p = r->pool;
        pfd.desc_type = APR_POLL_SOCKET;
        pfd.desc.s = ap_get_conn_socket(c);
        pfd.reqevents = APR_POLLIN;
        if (!pfd.desc.s || (rv = apr_pollset_add(ws->ps, &pfd)) != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, APLOGNO(13110)
                          "cannot poll the client connection");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        ws->base.notify = ws_notify;
        ws->base.baton = ws->ps;
    }
    apr_pool_create(&ws->tmp, r->pool);
    ws->ibb = apr_brigade_create(r->pool, c->bucket_alloc);
    ws->obb = apr_brigade_create(r->pool, c->bucket_alloc);
    upm_ws_parser_init(&ws->parser, home, (apr_size_t)upm_conf_ws_max_message(d));
    ws->client_id = make_client_id(home);

    if (!resume || !*resume) {
        /* Where the stream starts, taken before the subscriber exists:
         * what is published from here on arrives live or by the replay
         * below, and the client learns the id to resume from.  Taken
         * before the 101 too: a client may act on the open (a browser's
         * onopen) and publish at once, and that event must not fall
         * before the start. */
        apr_uint64_t start;
        /* The newest id as clients see it: a stream id in Streams mode. */
        start_id = upm_bus_newest(r->pool, &start);
        ws->start_seq = start;
    }

    upm_ws_accept(key, accept);
    apr_table_clear(r->headers_out);
    apr_table_setn(r->headers_out, "Upgrade", "websocket");
    apr_table_setn(r->headers_out, "Connection", "Upgrade");
    apr_table_setn(r->headers_out, "Sec-WebSocket-Accept", apr_pstrdup(r->pool, accept));
    r->status = HTTP_SWITCHING_PROTOCOLS;
    r->status_line = NULL;
    ap_send_interim_response(r, 1);

    /* From here on the connection speaks WebSocket: only connection-level
     * filters, no request read timeout (a quiet client is normal), no
     * coalescing that would hold small frames back, no keep-alive. */
    ap_remove_input_filter_byhandle(c->input_filters, "reqtimeout");
    ap_remove_output_filter_byhandle(c->output_filters, "SSL/TLS Coalescing Filter");
    r->input_filters = r->proto_input_filters = c->input_filters;
    r->output_filters = r->proto_output_filters = c->output_filters;
    c->keepalive = AP_CONN_CLOSE;
    r->sent_bodyct = 1;

    ws->subs[0] = sub_open(ws, -1, NULL, &ws->sub_pools[0]);
    ws->nsubs = 1;
    ws->mode = rc ? UPM_MODE_ASYNC : UPM_MODE_WORKER;
    upm_stats_conn(UPM_TR_WS, ws->mode, 1);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, APLOGNO(13111)
                  "WebSocket %s open for user %s (%s)", ws->client_id, r->user,
                  rc ? "on the reactor" : "on its worker");
    s = upm_wsp_connected(ws->tmp, ws->client_id, start_id, &len);
    ws_text(ws, s, len);
    {
        int wait = upm_conf_ws_resume_wait(d);
        apr_interval_time_t hold = apr_time_from_msec(wait) + 2 * ws_rtt(c);
        ws->hold = !wait ? 0 : hold < WS_START_HOLD_MAX ? hold : WS_START_HOLD_MAX;
    }
    if (start_id) {
        /* Nothing goes out until the client's first message or the hold:
         * a client that resumes by message (as the first one) gets the
         * same order as one that resumes in the URL, and one that says
         * nothing waits only the hold. */
        ws->start_id = apr_pstrdup(home, start_id);
        ws->hold_until = apr_time_now() + ws->hold;
        if (ws->hold) {
            ws->pending = 1;
        }
        else {
            ws_start(ws, NULL);
        }
    }
    else if (resume && *resume) {
        const char *reason = upm_stream_resume(ws->tmp, ws->subs, ws->nsubs, resume,
                                               emit_frame, ws);
        ws->from_id = apr_pstrdup(home, resume);
        if (reason) {
            ws_reset(ws, reason);
        }
    }
    ws_flush(ws);
    apr_pool_clear(ws->tmp);

    ws->beat = apr_time_from_sec(upm_conf_heartbeat(d));
    if (ws->beat) {
        ws->next_ping = apr_time_now() + ws->beat;
    }
    if (ws->ai && ws->ai->exp) {
        ws->expires = apr_time_from_sec(ws->ai->exp);
    }
    if (rc) {
        /* From here on the reactor owns the connection (and closes it,
         * also when the writes above failed).  Frames that came with the
         * handshake may wait in the input filters: read at once. */
        ws->rc = rc;
        ws->more_input = 1;
        rc->hold = 1;
        return upm_reactor_suspend(rc);
    }
    while (!ws->failed && !ws->done && !ws->close_sent) {
        apr_time_t now, wait;
        apr_int32_t num;
        const apr_pollfd_t *out;
        int taken;

        if (ws_read(ws) < 0) {
            break;
        }
        if (!ws->close_sent) {
            ws_hold_check(ws, apr_time_now());
        }
        taken = deliver(ws);
        ws_flush(ws);
        if (ws->done || ws->failed || ws->close_sent) {
            break;
        }
        now = apr_time_now();
        if (ws_checks(ws, now)) {
            break;
        }
        apr_pool_clear(ws->tmp);
        if (taken == WS_TAKE_MAX || ws->more_input) {
            continue;               /* more is waiting: do not sleep */
        }
        wait = apr_time_from_sec(3600);
        if (ws->beat) {
            wait = ws->next_ping - now;
            if (ws->ping_unanswered && ws->ping_unanswered + 2 * ws->beat - now < wait) {
                wait = ws->ping_unanswered + 2 * ws->beat - now;
            }
        }
        if (ws->expires && ws->expires - now < wait) {
            wait = ws->expires - now;
        }
        if (ws->pending && ws->hold_until - now < wait) {
            wait = ws->hold_until - now;
        }
        if (ws->settling && ws->settle_until - now < wait) {
            wait = ws->settle_until - now;
        }
        if (wait < 0) {
            wait = 0;
        }
        apr_pollset_poll(ws->ps, wait, &num, &out);
    }
    if (ws->close_sent && !ws->done && !ws->failed) {
        ws_finish(ws);
    }
    ws_release(ws, ws->failed ? "connection lost" : ws->end ? ws->end : "closed");
    apr_pool_destroy(ws->tmp);
    return OK;
}
