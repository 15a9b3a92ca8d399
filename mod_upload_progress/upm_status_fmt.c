/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_status_fmt.h"
#include "upm_jwt.h"

#include <apr_strings.h>
#include <apr_tables.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>

typedef struct {
    apr_pool_t *p;
    apr_array_header_t *parts;
} sbuf;

static void sb_init(sbuf *b, apr_pool_t *p)
{
    b->p = p;
    b->parts = apr_array_make(p, 128, sizeof(char *));
}

static void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    APR_ARRAY_PUSH(b->parts, char *) = apr_pvsprintf(b->p, fmt, ap);
    va_end(ap);
}

static char *sb_done(sbuf *b)
{
    return apr_array_pstrcat(b->p, b->parts, 0);
}

#define U64 "%" APR_UINT64_T_FMT
#define I64 "%" APR_INT64_T_FMT

apr_uint64_t upm_status_ring_held(const upm_status_data *d)
{
    return d->ring_last >= d->ring_oldest ? d->ring_last - d->ring_oldest + 1 : 0;
}

static apr_int64_t conns_total(const upm_stats_snap *s)
{
    apr_int64_t n = 0;
    int t, m;
    for (t = 0; t < UPM_TR__COUNT; t++) {
        for (m = 0; m < UPM_MODE__COUNT; m++) {
            n += s->conns[t][m];
        }
    }
    return n;
}

static apr_uint64_t auth_total(const upm_stats_snap *s)
{
    apr_uint64_t n = 0;
    int i;
    for (i = 1; i < UPM_JWT__COUNT; i++) {
        n += s->auth_failures[i];
    }
    return n;
}

static const char *id_text(apr_pool_t *p, apr_uint64_t epoch, apr_uint64_t seq)
{
    return apr_psprintf(p, U64 "-" U64, epoch, seq);
}

/* Received by where they came from.  Embedded: the Redis listener (or
 * anything else that appends) is what is left after the two in-process
 * sources.  With Redis, the handlers' events reach the ring through the
 * listener: publish and track count what they sent to Redis, and every
 * append is the listener's. */
static void sources(const upm_status_data *d, apr_uint64_t out[3])
{
    const upm_stats_snap *s = &d->st;
    apr_uint64_t all = s->v[UPM_ST_EVENTS_ACCEPTED];
    out[0] = s->v[UPM_ST_EVENTS_PUBLISHED];
    out[1] = s->v[UPM_ST_EVENTS_TRACKED];
    if (d->redis) {
        out[2] = all;
    }
    else {
        out[2] = all > out[0] + out[1] ? all - out[0] - out[1] : 0;
    }
}

static const char *last_id_text(apr_pool_t *p, const upm_status_data *d)
{
    return d->last_id ? d->last_id : id_text(p, d->ring_epoch, d->ring_last);
}

static const char *oldest_id_text(apr_pool_t *p, const upm_status_data *d)
{
    return d->oldest_id ? d->oldest_id : id_text(p, d->ring_epoch, d->ring_oldest);
}
static const char *const source_names[3] = { "publish", "track", "redis" };

static apr_uint64_t dropped(const upm_stats_snap *s, int which)
{
    static const upm_stat st[3] = {
        UPM_ST_DROPPED_THROTTLE, UPM_ST_DROPPED_OVERFLOW, UPM_ST_DISPATCH_LAG
    };
    return s->v[st[which]];
}
static const char *const drop_names[3] = { "throttle", "overflow", "lag" };

static apr_uint64_t lat_count(const upm_stats_snap *s)
{
    apr_uint64_t n = 0;
    int i;
    for (i = 0; i <= UPM_LAT_BUCKETS; i++) {
        n += s->lat_count[i];
    }
    return n;
}

/* ---- JSON ------------------------------------------------------------ */

static json_t *ji(apr_int64_t v) { return json_integer((json_int_t)v); }
static json_t *ju(apr_uint64_t v) { return json_integer((json_int_t)v); }

static json_t *conns_json(const apr_int64_t c[UPM_TR__COUNT][UPM_MODE__COUNT])
{
    json_t *o = json_object();
    apr_int64_t total = 0;
    int t, m;
    for (t = 0; t < UPM_TR__COUNT; t++) {
        json_t *tr = json_object();
        for (m = 0; m < UPM_MODE__COUNT; m++) {
            json_object_set_new(tr, upm_conn_mode_name(m), ji(c[t][m]));
            total += c[t][m];
        }
        json_object_set_new(o, upm_transport_name(t), tr);
    }
    json_object_set_new(o, "total", ji(total));
    return o;
}

char *upm_status_json(apr_pool_t *p, const upm_status_data *d)
{
    const upm_stats_snap *s = &d->st;
    json_t *root = json_object(), *o, *a;
    apr_uint64_t src[3], lat_n = lat_count(s), cum = 0;
    char *text, *out;
    int i;

    json_object_set_new(root, "module", json_string("mod_upload_progress"));
    json_object_set_new(root, "version", json_string(d->version ? d->version : ""));
    json_object_set_new(root, "time", ji(apr_time_sec(d->now)));
    json_object_set_new(root, "pid", ji(d->pid));

    json_object_set_new(root, "connections", conns_json(s->conns));

    sources(d, src);
    o = json_object();
    json_object_set_new(o, "total", ju(s->v[UPM_ST_EVENTS_ACCEPTED]));
    for (i = 0; i < 3; i++) {
        json_object_set_new(o, source_names[i], ju(src[i]));
    }
    json_object_set_new(o, "rejected", ju(s->v[UPM_ST_EVENTS_REJECTED]));
    json_object_set_new(root, "events", o);

    o = json_object();
    json_object_set_new(o, "delivered", ju(s->v[UPM_ST_DELIVERED]));
    json_object_set_new(o, "replayed", ju(s->v[UPM_ST_REPLAYED]));
    json_object_set_new(o, "resets", ju(s->v[UPM_ST_RESETS_SENT]));
    a = json_object();
    for (i = 0; i < 3; i++) {
        json_object_set_new(a, drop_names[i], ju(dropped(s, i)));
    }
    json_object_set_new(o, "dropped", a);
    json_object_set_new(root, "messages", o);

    o = json_object();
    json_object_set_new(o, "sse_opened", ju(s->v[UPM_ST_SSE_OPENED]));
    json_object_set_new(o, "sse_closed", ju(s->v[UPM_ST_SSE_CLOSED]));
    json_object_set_new(o, "slow_closed", ju(s->v[UPM_ST_SLOW_CLOSED]));
    json_object_set_new(o, "poll", ju(s->v[UPM_ST_POLL_REQUESTS]));
    json_object_set_new(o, "report", ju(s->v[UPM_ST_REPORT_REQUESTS]));
    json_object_set_new(root, "requests", o);

    o = json_object();
    json_object_set_new(o, "total", ju(auth_total(s)));
    for (i = 1; i < UPM_JWT__COUNT; i++) {
        json_object_set_new(o, upm_jwt_status_label((upm_jwt_status)i),
                            ju(s->auth_failures[i]));
    }
    json_object_set_new(root, "auth_failures", o);

    o = json_object();
    json_object_set_new(o, "link", json_string(upm_stats_redis_link_name(s->redis_link)));
    json_object_set_new(o, "reconnects", ju(s->v[UPM_ST_REDIS_RECONNECTS]));
    json_object_set_new(o, "link_lost", ju(s->v[UPM_ST_REDIS_LINK_LOST]));
    json_object_set_new(o, "received", ju(s->v[UPM_ST_REDIS_RECEIVED]));
    json_object_set_new(o, "refused", ju(s->v[UPM_ST_REDIS_REFUSED]));
    json_object_set_new(o, "gaps", ju(s->v[UPM_ST_REDIS_GAPS]));
    json_object_set_new(o, "takeovers", ju(s->v[UPM_ST_REDIS_TAKEOVERS]));
    json_object_set_new(o, "published", ju(s->v[UPM_ST_REDIS_PUBLISHED]));
    json_object_set_new(o, "publish_failed", ju(s->v[UPM_ST_REDIS_PUBLISH_FAILED]));
    json_object_set_new(root, "redis", o);

    o = json_object();
    json_object_set_new(o, "epoch", ju(d->ring_epoch));
    json_object_set_new(o, "slots", ju(d->ring_slots));
    json_object_set_new(o, "messages", ju(upm_status_ring_held(d)));
    json_object_set_new(o, "bytes", ju(d->ring_bytes));
    json_object_set_new(o, "bytes_used", ju(d->ring_bytes_used));
    json_object_set_new(o, "max_record_bytes", ju(d->ring_max_record));
    json_object_set_new(o, "last_id", d->ring_last
                        ? json_string(last_id_text(p, d)) : json_null());
    json_object_set_new(o, "oldest_id", upm_status_ring_held(d)
                        ? json_string(oldest_id_text(p, d))
                        : json_null());
    json_object_set_new(root, "ring", o);

    o = json_object();
    json_object_set_new(o, "count", ju(lat_n));
    json_object_set_new(o, "sum_seconds", json_real((double)s->lat_sum_us / 1e6));
    a = json_array();
    for (i = 0; i <= UPM_LAT_BUCKETS; i++) {
        json_t *b = json_object();
        cum += s->lat_count[i];
        json_object_set_new(b, "le", i < UPM_LAT_BUCKETS
                            ? json_real((double)upm_lat_bounds_us[i] / 1e6)
                            : json_string("+Inf"));
        json_object_set_new(b, "count", ju(cum));
        json_array_append_new(a, b);
    }
    json_object_set_new(o, "buckets", a);
    json_object_set_new(root, "latency", o);

    o = json_object();
    json_object_set_new(o, "active", ji(s->uploads_active));
    json_object_set_new(o, "started", ju(s->v[UPM_ST_UPLOADS_STARTED]));
    json_object_set_new(o, "completed", ju(s->v[UPM_ST_UPLOADS_COMPLETED]));
    json_object_set_new(o, "failed", ju(s->v[UPM_ST_UPLOADS_FAILED]));
    a = json_object();
    for (i = 0; i < UPM_UF__COUNT; i++) {
        json_object_set_new(a, upm_stats_upload_failure_name(i), ju(s->upload_failures[i]));
    }
    json_object_set_new(o, "failed_by_reason", a);
    json_object_set_new(o, "bytes", ju(s->v[UPM_ST_UPLOAD_BYTES]));
    json_object_set_new(o, "untracked", ju(s->v[UPM_ST_UPLOADS_UNTRACKED]));
    json_object_set_new(o, "report_slots", ju(d->track_slots));
    json_object_set_new(o, "report_slots_active", ju(d->track_active));
    json_object_set_new(root, "uploads", o);

    a = json_array();
    for (i = 0; i < s->nchildren; i++) {
        const upm_child_stats *c = &s->child[i];
        o = json_object();
        json_object_set_new(o, "pid", ji(c->pid));
        json_object_set_new(o, "generation", ji(c->generation));
        json_object_set_new(o, "started", ji(apr_time_sec(c->started)));
        json_object_set_new(o, "connections", conns_json(c->conns));
        json_object_set_new(o, "uploads_active", ji(c->uploads_active));
        json_object_set_new(o, "delivered", ju(c->delivered));
        json_array_append_new(a, o);
    }
    json_object_set_new(root, "children", a);

    text = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
    json_decref(root);
    out = apr_pstrcat(p, text ? text : "{}", "\n", NULL);
    free(text);
    return out;
}

/* ---- Prometheus ------------------------------------------------------ */

#define PM "upload_progress_"

static void head(sbuf *b, const char *name, const char *type, const char *help)
{
    sb_add(b, "# HELP " PM "%s %s\n# TYPE " PM "%s %s\n", name, help, name, type);
}

static const char *le_text(apr_pool_t *p, apr_uint64_t us)
{
    /* Exact decimal seconds: 100 us is 0.0001, 5 s is 5. */
    char *s = apr_psprintf(p, "%" APR_UINT64_T_FMT ".%06" APR_UINT64_T_FMT,
                           us / 1000000, us % 1000000);
    char *e = s + strlen(s) - 1;
    while (*e == '0') {
        *e-- = '\0';
    }
    if (*e == '.') {
        *e = '\0';
    }
    return s;
}

char *upm_status_prometheus(apr_pool_t *p, const upm_status_data *d)
{
    const upm_stats_snap *s = &d->st;
    apr_uint64_t src[3], cum = 0;
    sbuf b;
    int i, t, m;

    sb_init(&b, p);
    head(&b, "info", "gauge", "Module version and replay ring epoch.");
    sb_add(&b, PM "info{version=\"%s\",epoch=\"" U64 "\"} 1\n",
           d->version ? d->version : "", d->ring_epoch);

    head(&b, "connections", "gauge", "Open push connections by transport and mode.");
    for (t = 0; t < UPM_TR__COUNT; t++) {
        for (m = 0; m < UPM_MODE__COUNT; m++) {
            sb_add(&b, PM "connections{transport=\"%s\",mode=\"%s\"} " I64 "\n",
                   upm_transport_name(t), upm_conn_mode_name(m), s->conns[t][m]);
        }
    }
    head(&b, "sse_streams_opened_total", "counter", "SSE streams opened.");
    sb_add(&b, PM "sse_streams_opened_total " U64 "\n", s->v[UPM_ST_SSE_OPENED]);
    head(&b, "sse_streams_closed_total", "counter", "SSE streams closed.");
    sb_add(&b, PM "sse_streams_closed_total " U64 "\n", s->v[UPM_ST_SSE_CLOSED]);
    head(&b, "slow_consumers_closed_total", "counter",
         "Streams closed because their client stopped reading (UploadProgressWriteTimeout).");
    sb_add(&b, PM "slow_consumers_closed_total " U64 "\n", s->v[UPM_ST_SLOW_CLOSED]);
    head(&b, "poll_requests_total", "counter", "Poll and long-poll requests answered.");
    sb_add(&b, PM "poll_requests_total " U64 "\n", s->v[UPM_ST_POLL_REQUESTS]);
    head(&b, "report_requests_total", "counter", "Old-style JSON progress reports answered.");
    sb_add(&b, PM "report_requests_total " U64 "\n", s->v[UPM_ST_REPORT_REQUESTS]);

    sources(d, src);
    head(&b, "events_received_total", "counter",
         "Messages appended to the replay ring, by source.");
    for (i = 0; i < 3; i++) {
        sb_add(&b, PM "events_received_total{source=\"%s\"} " U64 "\n", source_names[i],
               src[i]);
    }
    head(&b, "events_rejected_total", "counter", "Publish requests refused.");
    sb_add(&b, PM "events_rejected_total " U64 "\n", s->v[UPM_ST_EVENTS_REJECTED]);
    head(&b, "messages_delivered_total", "counter", "Messages written to clients.");
    sb_add(&b, PM "messages_delivered_total " U64 "\n", s->v[UPM_ST_DELIVERED]);
    head(&b, "messages_replayed_total", "counter",
         "Of the delivered: sent from the ring after a client's last id.");
    sb_add(&b, PM "messages_replayed_total " U64 "\n", s->v[UPM_ST_REPLAYED]);
    head(&b, "resets_sent_total", "counter", "In-band reset messages sent.");
    sb_add(&b, PM "resets_sent_total " U64 "\n", s->v[UPM_ST_RESETS_SENT]);
    head(&b, "messages_dropped_total", "counter", "Messages not delivered, by reason.");
    for (i = 0; i < 3; i++) {
        sb_add(&b, PM "messages_dropped_total{reason=\"%s\"} " U64 "\n", drop_names[i],
               dropped(s, i));
    }

    head(&b, "auth_failures_total", "counter", "Requests refused by AuthType JWT, by reason.");
    for (i = 1; i < UPM_JWT__COUNT; i++) {
        sb_add(&b, PM "auth_failures_total{reason=\"%s\"} " U64 "\n",
               upm_jwt_status_label((upm_jwt_status)i), s->auth_failures[i]);
    }

    head(&b, "redis_link", "gauge", "State of the Redis link (1 for the current state).");
    for (i = 0; i < UPM_REDIS__COUNT; i++) {
        sb_add(&b, PM "redis_link{state=\"%s\"} %d\n", upm_stats_redis_link_name(i),
               s->redis_link == (upm_redis_link)i);
    }
    head(&b, "redis_reconnects_total", "counter", "Reconnections to Redis.");
    sb_add(&b, PM "redis_reconnects_total " U64 "\n", s->v[UPM_ST_REDIS_RECONNECTS]);
    {
        static const struct { upm_stat st; const char *name, *help; } rc[] = {
            { UPM_ST_REDIS_LINK_LOST, "redis_link_lost_total",
              "Times the feeding child's Redis link was lost." },
            { UPM_ST_REDIS_RECEIVED, "redis_received_total",
              "Messages the feeding child took from Redis." },
            { UPM_ST_REDIS_REFUSED, "redis_refused_total",
              "Of those, refused (invalid JSON, no owner, too large ...)." },
            { UPM_ST_REDIS_GAPS, "redis_gaps_total",
              "Gaps in the Redis ingest: connected clients were reset." },
            { UPM_ST_REDIS_TAKEOVERS, "redis_takeovers_total",
              "Times another child took over feeding the ring." },
            { UPM_ST_REDIS_PUBLISHED, "redis_published_total",
              "Messages sent to Redis by the publish handler and upload tracking." },
            { UPM_ST_REDIS_PUBLISH_FAILED, "redis_publish_failed_total",
              "Sends to Redis that failed (Redis unreachable)." },
        };
        for (i = 0; i < (int)(sizeof(rc) / sizeof(rc[0])); i++) {
            head(&b, rc[i].name, "counter", rc[i].help);
            sb_add(&b, PM "%s " U64 "\n", rc[i].name, s->v[rc[i].st]);
        }
    }

    head(&b, "ring_slots", "gauge", "Messages the replay ring can hold.");
    sb_add(&b, PM "ring_slots %u\n", d->ring_slots);
    head(&b, "ring_messages", "gauge", "Messages the replay ring holds now.");
    sb_add(&b, PM "ring_messages " U64 "\n", upm_status_ring_held(d));
    head(&b, "ring_bytes", "gauge", "Bytes of the ring's message area.");
    sb_add(&b, PM "ring_bytes " U64 "\n", d->ring_bytes);
    head(&b, "ring_bytes_used", "gauge", "Bytes of the ring's message area in use.");
    sb_add(&b, PM "ring_bytes_used " U64 "\n", d->ring_bytes_used);
    head(&b, "ring_max_record_bytes", "gauge", "Largest message the ring takes.");
    sb_add(&b, PM "ring_max_record_bytes " U64 "\n", d->ring_max_record);
    head(&b, "ring_last_seq", "gauge", "Sequence of the newest message (id <epoch>-<seq>).");
    sb_add(&b, PM "ring_last_seq " U64 "\n", d->ring_last);
    head(&b, "ring_oldest_seq", "gauge", "Sequence of the oldest message still replayable.");
    sb_add(&b, PM "ring_oldest_seq " U64 "\n", d->ring_oldest);

    head(&b, "delivery_latency_seconds", "histogram",
         "Time from publication to the write of a live message.");
    for (i = 0; i <= UPM_LAT_BUCKETS; i++) {
        cum += s->lat_count[i];
        sb_add(&b, PM "delivery_latency_seconds_bucket{le=\"%s\"} " U64 "\n",
               i < UPM_LAT_BUCKETS ? le_text(p, upm_lat_bounds_us[i]) : "+Inf", cum);
    }
    sb_add(&b, PM "delivery_latency_seconds_sum %.6f\n", (double)s->lat_sum_us / 1e6);
    sb_add(&b, PM "delivery_latency_seconds_count " U64 "\n", cum);

    head(&b, "uploads_active", "gauge", "Tracked request bodies being read now.");
    sb_add(&b, PM "uploads_active " I64 "\n", s->uploads_active);
    head(&b, "uploads_started_total", "counter", "Tracked uploads started.");
    sb_add(&b, PM "uploads_started_total " U64 "\n", s->v[UPM_ST_UPLOADS_STARTED]);
    head(&b, "uploads_completed_total", "counter", "Tracked uploads completed.");
    sb_add(&b, PM "uploads_completed_total " U64 "\n", s->v[UPM_ST_UPLOADS_COMPLETED]);
    head(&b, "uploads_failed_total", "counter", "Tracked uploads failed, by reason.");
    for (i = 0; i < UPM_UF__COUNT; i++) {
        sb_add(&b, PM "uploads_failed_total{reason=\"%s\"} " U64 "\n",
               upm_stats_upload_failure_name(i), s->upload_failures[i]);
    }
    head(&b, "upload_bytes_total", "counter", "Request-body bytes counted by tracking.");
    sb_add(&b, PM "upload_bytes_total " U64 "\n", s->v[UPM_ST_UPLOAD_BYTES]);
    head(&b, "uploads_untracked_total", "counter",
         "Uploads without a report slot (table full); their events still flow.");
    sb_add(&b, PM "uploads_untracked_total " U64 "\n", s->v[UPM_ST_UPLOADS_UNTRACKED]);
    head(&b, "report_slots", "gauge", "Uploads the report table can hold.");
    sb_add(&b, PM "report_slots %u\n", d->track_slots);
    head(&b, "report_slots_active", "gauge", "Report slots of uploads in flight.");
    sb_add(&b, PM "report_slots_active %u\n", d->track_active);

    head(&b, "children", "gauge", "Server processes with per-child figures.");
    sb_add(&b, PM "children %d\n", s->nchildren);
    head(&b, "child_connections", "gauge", "Open push connections of one child.");
    for (i = 0; i < s->nchildren; i++) {
        const upm_child_stats *c = &s->child[i];
        for (t = 0; t < UPM_TR__COUNT; t++) {
            for (m = 0; m < UPM_MODE__COUNT; m++) {
                sb_add(&b, PM "child_connections{pid=\"%d\",transport=\"%s\",mode=\"%s\"} "
                       I64 "\n", (int)c->pid, upm_transport_name(t), upm_conn_mode_name(m),
                       c->conns[t][m]);
            }
        }
    }
    head(&b, "child_messages_delivered_total", "counter",
         "Messages written to clients by one child since it started.");
    for (i = 0; i < s->nchildren; i++) {
        sb_add(&b, PM "child_messages_delivered_total{pid=\"%d\"} " U64 "\n",
               (int)s->child[i].pid, s->child[i].delivered);
    }
    head(&b, "child_uploads_active", "gauge", "Tracked uploads being read by one child.");
    for (i = 0; i < s->nchildren; i++) {
        sb_add(&b, PM "child_uploads_active{pid=\"%d\"} " I64 "\n",
               (int)s->child[i].pid, s->child[i].uploads_active);
    }
    head(&b, "child_start_time_seconds", "gauge", "When one child started.");
    for (i = 0; i < s->nchildren; i++) {
        sb_add(&b, PM "child_start_time_seconds{pid=\"%d\",generation=\"%d\"} " I64 "\n",
               (int)s->child[i].pid, (int)s->child[i].generation,
               (apr_int64_t)apr_time_sec(s->child[i].started));
    }
    return sb_done(&b);
}

/* ---- mod_status ------------------------------------------------------ */

typedef struct { const char *key; const char *label; const char *value; } row;

static apr_array_header_t *rows(apr_pool_t *p, const upm_status_data *d)
{
    const upm_stats_snap *s = &d->st;
    apr_array_header_t *a = apr_array_make(p, 48, sizeof(row));
    apr_uint64_t src[3], n = lat_count(s);
    int i;
#define ROW(k, l, ...) do { row *r_ = apr_array_push(a); r_->key = k; r_->label = l; \
        r_->value = apr_psprintf(p, __VA_ARGS__); } while (0)

    ROW("Connections", "Open connections", I64, conns_total(s));
    ROW("ConnectionsSSE", "SSE (worker / async)", I64 " / " I64,
        s->conns[UPM_TR_SSE][UPM_MODE_WORKER], s->conns[UPM_TR_SSE][UPM_MODE_ASYNC]);
    ROW("ConnectionsWebSocket", "WebSocket (worker / async)", I64 " / " I64,
        s->conns[UPM_TR_WS][UPM_MODE_WORKER], s->conns[UPM_TR_WS][UPM_MODE_ASYNC]);
    ROW("ConnectionsPoll", "Long-poll waiting", I64,
        s->conns[UPM_TR_POLL][UPM_MODE_WORKER] + s->conns[UPM_TR_POLL][UPM_MODE_ASYNC]);
    sources(d, src);
    ROW("EventsReceived", "Events received", U64, s->v[UPM_ST_EVENTS_ACCEPTED]);
    ROW("EventsPublished", "from publish", U64, src[0]);
    ROW("EventsTracked", "from upload tracking", U64, src[1]);
    ROW("EventsRedis", "from Redis", U64, src[2]);
    ROW("EventsRejected", "Publish requests refused", U64, s->v[UPM_ST_EVENTS_REJECTED]);
    ROW("MessagesDelivered", "Messages delivered", U64, s->v[UPM_ST_DELIVERED]);
    ROW("MessagesReplayed", "of them replayed", U64, s->v[UPM_ST_REPLAYED]);
    ROW("ResetsSent", "Resets sent", U64, s->v[UPM_ST_RESETS_SENT]);
    ROW("SlowClosed", "Streams closed for not reading", U64, s->v[UPM_ST_SLOW_CLOSED]);
    for (i = 0; i < 3; i++) {
        static const char *const k[3] = {
            "DroppedThrottle", "DroppedOverflow", "DroppedLag"
        };
        ROW(k[i], apr_pstrcat(p, "Dropped (", drop_names[i], ")", NULL), U64, dropped(s, i));
    }
    ROW("AuthFailures", "Auth failures", U64, auth_total(s));
    ROW("RedisLink", "Redis link", "%s", upm_stats_redis_link_name(s->redis_link));
    ROW("RedisReconnects", "Redis reconnects", U64, s->v[UPM_ST_REDIS_RECONNECTS]);
    ROW("RingSlots", "Ring slots", "%u", d->ring_slots);
    ROW("RingMessages", "Ring messages held", U64, upm_status_ring_held(d));
    ROW("RingBytes", "Ring bytes", U64, d->ring_bytes);
    ROW("RingBytesUsed", "Ring bytes used", U64, d->ring_bytes_used);
    ROW("RingLastId", "Ring last id", "%s",
        d->ring_last ? last_id_text(p, d) : "-");
    ROW("RingOldestId", "Ring oldest id", "%s",
        upm_status_ring_held(d) ? oldest_id_text(p, d) : "-");
    ROW("LatencyCount", "Live deliveries timed", U64, n);
    ROW("LatencyAvgMs", "Average delivery latency (ms)", "%.3f",
        n ? (double)s->lat_sum_us / 1000.0 / (double)n : 0.0);
    ROW("UploadsActive", "Uploads in flight", I64, s->uploads_active);
    ROW("UploadsStarted", "Uploads started", U64, s->v[UPM_ST_UPLOADS_STARTED]);
    ROW("UploadsCompleted", "Uploads completed", U64, s->v[UPM_ST_UPLOADS_COMPLETED]);
    ROW("UploadsFailed", "Uploads failed", U64, s->v[UPM_ST_UPLOADS_FAILED]);
    ROW("UploadBytes", "Upload bytes counted", U64, s->v[UPM_ST_UPLOAD_BYTES]);
    ROW("Children", "Children", "%d", s->nchildren);
    for (i = 0; i < s->nchildren; i++) {
        const upm_child_stats *c = &s->child[i];
        apr_int64_t cn = 0;
        int t, m;
        for (t = 0; t < UPM_TR__COUNT; t++) {
            for (m = 0; m < UPM_MODE__COUNT; m++) {
                cn += c->conns[t][m];
            }
        }
        ROW("Child", apr_psprintf(p, "Child %d", (int)c->pid),
            "pid=%d generation=%d connections=" I64 " sse=" I64 " websocket=" I64
            " poll=" I64 " uploads=" I64 " delivered=" U64,
            (int)c->pid, (int)c->generation, cn,
            c->conns[UPM_TR_SSE][0] + c->conns[UPM_TR_SSE][1],
            c->conns[UPM_TR_WS][0] + c->conns[UPM_TR_WS][1],
            c->conns[UPM_TR_POLL][0] + c->conns[UPM_TR_POLL][1],
            c->uploads_active, c->delivered);
    }
#undef ROW
    return a;
}

char *upm_status_auto(apr_pool_t *p, const upm_status_data *d)
{
    apr_array_header_t *a = rows(p, d);
    sbuf b;
    int i;
    sb_init(&b, p);
    for (i = 0; i < a->nelts; i++) {
        const row *r = &APR_ARRAY_IDX(a, i, row);
        sb_add(&b, "UploadProgress%s: %s\n", r->key, r->value);
    }
    return sb_done(&b);
}

char *upm_status_html(apr_pool_t *p, const upm_status_data *d)
{
    apr_array_header_t *a = rows(p, d);
    sbuf b;
    int i;
    sb_init(&b, p);
    sb_add(&b, "<hr />\n<h2>mod_upload_progress %s</h2>\n<table border=\"0\">\n",
           d->version ? d->version : "");
    for (i = 0; i < a->nelts; i++) {
        const row *r = &APR_ARRAY_IDX(a, i, row);
        /* Every value is a number, an id or a fixed word: nothing to escape. */
        sb_add(&b, "<tr><th align=\"left\">%s</th><td>%s</td></tr>\n", r->label, r->value);
    }
    sb_add(&b, "</table>\n");
    return sb_done(&b);
}
