/* SPDX-License-Identifier: Apache-2.0 */
#include <apr_general.h>
#include <apr_strings.h>
#include <jansson.h>
#include <regex.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "upm_stats.h"
#include "upm_status_fmt.h"
#include "upm_test.h"

static void *mem_for(apr_pool_t *p, apr_uint32_t n)
{
    void *m = apr_palloc(p, upm_stats_bytes(n));
    memset(m, 0x5a, upm_stats_bytes(n));
    upm_stats_init(m, n);
    upm_stats_attach(m);
    return m;
}

static apr_int32_t dead_pid(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    return (apr_int32_t)pid;
}

static void test_counters(apr_pool_t *p)
{
    upm_stats_snap s;
    int i;

    mem_for(p, 4);
    UPM_CHECK_INT(upm_stats_get(UPM_ST_DELIVERED), 0);
    upm_stats_add(UPM_ST_EVENTS_ACCEPTED, 5);
    upm_stats_add(UPM_ST_EVENTS_PUBLISHED, 3);
    upm_stats_auth_failure(UPM_JWT_EXPIRED);
    upm_stats_auth_failure(UPM_JWT_EXPIRED);
    upm_stats_auth_failure(UPM_JWT__COUNT);         /* out of range: ignored */
    upm_stats_add(UPM_ST__COUNT, 1);                /* likewise */
    upm_stats_upload_failed(UPM_UF_TIMEOUT);
    upm_stats_redis_link(UPM_REDIS_UP);

    /* Latency buckets: bounds are inclusive. */
    UPM_CHECK_INT(upm_stats_lat_bucket(-5), 0);
    UPM_CHECK_INT(upm_stats_lat_bucket(100), 0);
    UPM_CHECK_INT(upm_stats_lat_bucket(101), 1);
    UPM_CHECK_INT(upm_stats_lat_bucket(5000000), UPM_LAT_BUCKETS - 1);
    UPM_CHECK_INT(upm_stats_lat_bucket(5000001), UPM_LAT_BUCKETS);
    upm_stats_delivered(1, 50);
    upm_stats_delivered(2, 3000);
    upm_stats_delivered(4, -1);                     /* replayed: not timed */
    upm_stats_delivered(1, 60 * APR_USEC_PER_SEC);

    UPM_CHECK_INT(upm_stats_snapshot(p, &s), 0);
    UPM_CHECK_INT(s.v[UPM_ST_DELIVERED], 8);
    UPM_CHECK_INT(s.v[UPM_ST_EVENTS_ACCEPTED], 5);
    UPM_CHECK_INT(s.auth_failures[UPM_JWT_EXPIRED], 2);
    UPM_CHECK_INT(s.upload_failures[UPM_UF_TIMEOUT], 1);
    UPM_CHECK_INT(s.v[UPM_ST_UPLOADS_FAILED], 1);
    UPM_CHECK_INT(s.redis_link, UPM_REDIS_UP);
    UPM_CHECK_INT(s.lat_count[0], 1);
    UPM_CHECK_INT(s.lat_count[upm_stats_lat_bucket(3000)], 2);
    UPM_CHECK_INT(s.lat_count[UPM_LAT_BUCKETS], 1);
    UPM_CHECK_INT(s.lat_sum_us, 50 + 6000 + 60 * APR_USEC_PER_SEC);
    for (i = 1; i < UPM_LAT_BUCKETS; i++) {
        UPM_CHECK(upm_lat_bounds_us[i] > upm_lat_bounds_us[i - 1]);
    }
    UPM_CHECK_STR(upm_stats_name(UPM_ST_REDIS_RECONNECTS), "redis_reconnects");
    UPM_CHECK_STR(upm_stats_upload_failure_name(UPM_UF_INCOMPLETE), "incomplete");
    UPM_CHECK_STR(upm_stats_redis_link_name(UPM_REDIS_DISABLED), "disabled");
    UPM_CHECK_STR(upm_transport_name(UPM_TR_WS), "websocket");
}

static void test_children(apr_pool_t *p)
{
    upm_stats_shm *shm = mem_for(p, 3);
    upm_stats_snap s;
    apr_int32_t gone = dead_pid();
    int a, b;

    /* Not claimed: gauges go nowhere, totals still count. */
    upm_stats_conn(UPM_TR_SSE, UPM_MODE_WORKER, 1);
    upm_stats_delivered(2, 10);
    upm_stats_snapshot(p, &s);
    UPM_CHECK_INT(s.nchildren, 0);
    UPM_CHECK_INT(s.conns[UPM_TR_SSE][UPM_MODE_WORKER], 0);
    UPM_CHECK_INT(s.v[UPM_ST_DELIVERED], 2);

    /* A slot of a process that died without giving it back is reused. */
    shm->child[0].pid = gone;
    shm->child[0].conns[UPM_TR_SSE][0] = 7;
    shm->child[1].pid = (apr_int32_t)getppid();
    shm->child[1].conns[UPM_TR_POLL][0] = 2;
    upm_stats_snapshot(p, &s);
    UPM_CHECK_INT(s.nchildren, 1);                  /* the dead one is left out */
    UPM_CHECK_INT(s.conns[UPM_TR_SSE][0], 0);
    UPM_CHECK_INT(s.conns[UPM_TR_POLL][0], 2);

    a = upm_stats_child_claim((apr_int32_t)getpid(), 3, 1234 * APR_USEC_PER_SEC);
    UPM_CHECK_INT(a, 2);                            /* free slots first */
    upm_stats_conn(UPM_TR_SSE, UPM_MODE_WORKER, 1);
    upm_stats_conn(UPM_TR_SSE, UPM_MODE_WORKER, 1);
    upm_stats_conn(UPM_TR_SSE, UPM_MODE_WORKER, -1);
    upm_stats_conn(UPM_TR_WS, UPM_MODE_ASYNC, 1);
    upm_stats_uploads_active(1);
    upm_stats_delivered(3, 10);
    upm_stats_snapshot(p, &s);
    UPM_CHECK_INT(s.nchildren, 2);
    UPM_CHECK_INT(s.conns[UPM_TR_SSE][UPM_MODE_WORKER], 1);
    UPM_CHECK_INT(s.conns[UPM_TR_WS][UPM_MODE_ASYNC], 1);
    UPM_CHECK_INT(s.conns[UPM_TR_POLL][UPM_MODE_WORKER], 2);
    UPM_CHECK_INT(s.uploads_active, 1);
    UPM_CHECK_INT(s.v[UPM_ST_DELIVERED], 5);
    UPM_CHECK_INT(shm->child[2].delivered, 3);
    UPM_CHECK_INT(shm->child[2].generation, 3);

    /* Table full of live processes apart from the dead one's slot. */
    b = upm_stats_child_claim(12345678, 3, 0);      /* no such pid, but claimable */
    UPM_CHECK_INT(b, 0);
    UPM_CHECK_INT(shm->child[0].conns[UPM_TR_SSE][0], 0);   /* zeroed for the new one */
    shm->child[0].pid = (apr_int32_t)getppid();
    UPM_CHECK_INT(upm_stats_child_claim(87654321, 3, 0), -1);

    /* Release gives back this process's (last claimed) slot. */
    upm_stats_child_release();
    UPM_CHECK_INT(shm->child[0].pid, 0);
    UPM_CHECK_INT(shm->child[2].pid, (apr_int32_t)getpid());
    upm_stats_snapshot(p, &s);
    UPM_CHECK_INT(s.nchildren, 2);
}

static upm_status_data sample(apr_pool_t *p)
{
    upm_status_data d;
    memset(&d, 0, sizeof(d));
    mem_for(p, 4);
    upm_stats_child_claim((apr_int32_t)getpid(), 1, 100 * APR_USEC_PER_SEC);
    upm_stats_conn(UPM_TR_SSE, UPM_MODE_WORKER, 2);
    upm_stats_conn(UPM_TR_POLL, UPM_MODE_WORKER, 1);
    upm_stats_add(UPM_ST_EVENTS_ACCEPTED, 10);
    upm_stats_add(UPM_ST_EVENTS_PUBLISHED, 6);
    upm_stats_add(UPM_ST_EVENTS_TRACKED, 3);
    upm_stats_add(UPM_ST_DROPPED_THROTTLE, 4);
    upm_stats_add(UPM_ST_UPLOADS_STARTED, 2);
    upm_stats_upload_failed(UPM_UF_ABORTED);
    upm_stats_auth_failure(UPM_JWT_BAD_SIGNATURE);
    upm_stats_delivered(3, 200);
    upm_stats_delivered(1, 2000);
    d.version = "9.9.9";
    d.now = 1700000000 * APR_USEC_PER_SEC;
    d.pid = 42;
    upm_stats_snapshot(p, &d.st);
    d.ring_epoch = 1700000000123ULL;
    d.ring_slots = 4096;
    d.ring_bytes = 8388608;
    d.ring_bytes_used = 2000;
    d.ring_max_record = 2097152;
    d.ring_last = 10;
    d.ring_oldest = 1;
    d.track_slots = 1024;
    d.track_active = 1;
    return d;
}

/* Every sample line of the exposition: name{labels} value, under a TYPE
 * line of its family; returns the value of `want` (exact text before the
 * value) or -1. */
static double prom_value(const char *text, const char *want, int *bad)
{
    regex_t re;
    const char *line = text;
    double found = -1;
    char family[128] = "";
    regcomp(&re, "^upload_progress_[a-z_]+(\\{([a-z_]+=\"[^\"\\\\]*\",?)*\\})? "
            "[-+]?[0-9]+(\\.[0-9]+)?$", REG_EXTENDED | REG_NOSUB);
    while (*line) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        char buf[512];
        if (n >= sizeof(buf)) {
            (*bad)++;
            break;
        }
        memcpy(buf, line, n);
        buf[n] = '\0';
        if (strncmp(buf, "# TYPE ", 7) == 0) {
            sscanf(buf + 7, "%127s", family);
        }
        else if (buf[0] != '#') {
            if (regexec(&re, buf, 0, NULL, 0) != 0
                || strncmp(buf, family, strlen(family)) != 0) {
                fprintf(stderr, "bad exposition line: %s (family %s)\n", buf, family);
                (*bad)++;
            }
            if (strncmp(buf, want, strlen(want)) == 0 && buf[strlen(want)] == ' ') {
                found = atof(buf + strlen(want) + 1);
            }
        }
        line += n + (nl ? 1 : 0);
    }
    regfree(&re);
    return found;
}

static void test_formats(apr_pool_t *p)
{
    upm_status_data d = sample(p);
    char *prom = upm_status_prometheus(p, &d);
    char *js = upm_status_json(p, &d);
    char *au = upm_status_auto(p, &d);
    char *html = upm_status_html(p, &d);
    json_error_t e;
    json_t *j = json_loads(js, 0, &e), *b;
    int bad = 0;

    UPM_CHECK(j != NULL);
    UPM_CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "connections"),
                                                     "total")), 3);
    UPM_CHECK_INT(json_integer_value(json_object_get(json_object_get(
        json_object_get(j, "connections"), "sse"), "worker")), 2);
    UPM_CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "events"), "redis")),
                  1);
    UPM_CHECK_STR(json_string_value(json_object_get(json_object_get(j, "redis"), "link")),
                  "disabled");
    UPM_CHECK_STR(json_string_value(json_object_get(json_object_get(j, "ring"), "oldest_id")),
                  "1700000000123-1");
    UPM_CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "ring"), "messages")),
                  10);
    b = json_object_get(json_object_get(j, "latency"), "buckets");
    UPM_CHECK_INT(json_array_size(b), UPM_LAT_BUCKETS + 1);
    UPM_CHECK_INT(json_integer_value(json_object_get(json_array_get(b, UPM_LAT_BUCKETS),
                                                     "count")), 4);
    UPM_CHECK_INT(json_array_size(json_object_get(j, "children")), 1);
    UPM_CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "auth_failures"),
                                                     "total")), 1);
    UPM_CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "auth_failures"),
                                                     "bad_signature")), 1);
    json_decref(j);

    UPM_CHECK_DBL(prom_value(prom, "upload_progress_connections{transport=\"sse\",mode=\"worker\"}",
                             &bad), 2);
    UPM_CHECK_DBL(prom_value(prom, "upload_progress_events_received_total{source=\"track\"}",
                             &bad), 3);
    UPM_CHECK_DBL(prom_value(prom, "upload_progress_events_received_total{source=\"redis\"}",
                             &bad), 1);
    UPM_CHECK_DBL(prom_value(prom, "upload_progress_messages_dropped_total{reason=\"throttle\"}",
                             &bad), 4);
    UPM_CHECK_DBL(prom_value(prom, "upload_progress_uploads_failed_total{reason=\"aborted\"}",
                             &bad), 1);
    UPM_CHECK_DBL(prom_value(prom, "upload_progress_redis_link{state=\"disabled\"}", &bad), 1);
    UPM_CHECK_DBL(prom_value(prom, "upload_progress_redis_link{state=\"up\"}", &bad), 0);
    UPM_CHECK_DBL(prom_value(prom, "upload_progress_delivery_latency_seconds_bucket{le=\"0.0001\"}",
                             &bad), 0);
    UPM_CHECK_DBL(prom_value(prom, "upload_progress_delivery_latency_seconds_bucket{le=\"0.00025\"}",
                             &bad), 3);
    UPM_CHECK_DBL(prom_value(prom, "upload_progress_delivery_latency_seconds_bucket{le=\"5\"}",
                             &bad), 4);
    UPM_CHECK_DBL(prom_value(prom, "upload_progress_delivery_latency_seconds_bucket{le=\"+Inf\"}",
                             &bad), 4);
    UPM_CHECK_DBL(prom_value(prom, "upload_progress_delivery_latency_seconds_count", &bad), 4);
    UPM_CHECK_DBL(prom_value(prom, "upload_progress_delivery_latency_seconds_sum", &bad), 0.0026);
    UPM_CHECK_DBL(prom_value(prom, "upload_progress_ring_messages", &bad), 10);
    UPM_CHECK(prom_value(prom, apr_psprintf(p, "upload_progress_child_connections{pid=\"%d\","
                                            "transport=\"poll\",mode=\"worker\"}", (int)getpid()),
                         &bad) == 1);
    UPM_CHECK(prom_value(prom, "upload_progress_auth_failures_total{reason=\"bad_signature\"}",
                         &bad) == 1);
    UPM_CHECK_INT(bad, 0);

    UPM_CHECK(strstr(au, "UploadProgressConnections: 3\n") != NULL);
    UPM_CHECK(strstr(au, "UploadProgressRedisLink: disabled\n") != NULL);
    UPM_CHECK(strstr(au, "UploadProgressRingOldestId: 1700000000123-1\n") != NULL);
    UPM_CHECK(strstr(au, "UploadProgressMessagesDelivered: 4\n") != NULL);
    UPM_CHECK(strstr(html, "<table") != NULL && strstr(html, "</table>") != NULL);

    /* An empty ring has no ids. */
    d.ring_last = 0;
    d.ring_oldest = 1;
    j = json_loads(upm_status_json(p, &d), 0, &e);
    UPM_CHECK(json_is_null(json_object_get(json_object_get(j, "ring"), "last_id")));
    UPM_CHECK(json_is_null(json_object_get(json_object_get(j, "ring"), "oldest_id")));
    UPM_CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "ring"), "messages")),
                  0);
    json_decref(j);
}

/* Every figure distinct and non-zero, two children with fixed pids: the
 * four renderings of it are compared byte for byte with the files in
 * unit/golden/, so a change to the metric list shows in the diff of what a
 * scraper, a dashboard or mod_status reads.  After an intended change:
 * UPM_GOLDEN_WRITE=1 unit/test_stats, and review the diff of the files. */
static upm_status_data golden_data(int redis)
{
    static upm_child_stats kids[2];
    upm_status_data d;
    int i, t, m;

    memset(&d, 0, sizeof(d));
    memset(kids, 0, sizeof(kids));
    for (i = 0; i < UPM_ST__COUNT; i++) {
        d.st.v[i] = 1000 + 7 * (apr_uint64_t)i;
    }
    for (i = 0; i < UPM_JWT__COUNT; i++) {
        d.st.auth_failures[i] = 50 + (apr_uint64_t)i;
    }
    for (i = 0; i < UPM_UF__COUNT; i++) {
        d.st.upload_failures[i] = 20 + (apr_uint64_t)i;
    }
    for (i = 0; i <= UPM_LAT_BUCKETS; i++) {
        d.st.lat_count[i] = 3 + (apr_uint64_t)i;
    }
    d.st.lat_sum_us = 1234567;
    d.st.redis_link = redis ? UPM_REDIS_UP : UPM_REDIS_DISABLED;
    for (t = 0; t < UPM_TR__COUNT; t++) {
        for (m = 0; m < UPM_MODE__COUNT; m++) {
            kids[0].conns[t][m] = 1 + t * 2 + m;
            kids[1].conns[t][m] = 10 + t * 2 + m;
            d.st.conns[t][m] = kids[0].conns[t][m] + kids[1].conns[t][m];
        }
    }
    kids[0].pid = 4001;
    kids[0].generation = 2;
    kids[0].started = 1700000100 * APR_USEC_PER_SEC;
    kids[0].uploads_active = 2;
    kids[0].delivered = 777;
    kids[1].pid = 4002;
    kids[1].generation = 3;
    kids[1].started = 1700000200 * APR_USEC_PER_SEC;
    kids[1].uploads_active = 1;
    kids[1].delivered = 888;
    d.st.uploads_active = 3;
    d.st.nchildren = 2;
    d.st.child = kids;
    d.version = "9.9.9";
    d.now = 1700000300 * APR_USEC_PER_SEC;
    d.pid = 4001;
    d.ring_epoch = 1700000000123ULL;
    d.ring_slots = 4096;
    d.ring_bytes = 8388608;
    d.ring_bytes_used = 2000;
    d.ring_max_record = 2097152;
    d.ring_last = 300;
    d.ring_oldest = 42;
    if (redis) {
        d.redis = 1;
        d.last_id = "1700000000999-3";
        d.oldest_id = "1700000000001-0";
    }
    d.track_slots = 1024;
    d.track_active = 5;
    return d;
}

static void check_golden(apr_pool_t *p, const char *name, const char *text)
{
    const char *top = getenv("UPM_TOP");
    const char *path = apr_psprintf(p, "%s/mod_upload_progress/unit/golden/%s",
                                    top ? top : ".", name);
    FILE *f;
    char *want;
    long n;

    if (getenv("UPM_GOLDEN_WRITE")) {
        f = fopen(path, "w");
        UPM_CHECK(f != NULL);
        if (f) {
            fputs(text, f);
            fclose(f);
        }
        return;
    }
    f = fopen(path, "r");
    UPM_CHECK(f != NULL);
    if (!f) {
        fprintf(stderr, "cannot read %s\n", path);
        return;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    want = apr_palloc(p, (apr_size_t)n + 1);
    want[fread(want, 1, (size_t)n, f)] = '\0';
    fclose(f);
    if (strcmp(want, text) != 0) {
        fprintf(stderr, "%s differs from this rendering:\n%s\n", path, text);
    }
    UPM_CHECK(strcmp(want, text) == 0);
}

static void test_golden(apr_pool_t *p)
{
    int redis;
    for (redis = 0; redis <= 1; redis++) {
        upm_status_data d = golden_data(redis);
        const char *base = redis ? "redis" : "embedded";
        check_golden(p, apr_pstrcat(p, base, ".json", NULL), upm_status_json(p, &d));
        check_golden(p, apr_pstrcat(p, base, ".prom", NULL), upm_status_prometheus(p, &d));
        check_golden(p, apr_pstrcat(p, base, ".auto", NULL), upm_status_auto(p, &d));
        check_golden(p, apr_pstrcat(p, base, ".html", NULL), upm_status_html(p, &d));
    }
}

int main(void)
{
    apr_pool_t *p;
    apr_initialize();
    apr_pool_create(&p, NULL);
    test_counters(p);
    test_children(p);
    test_formats(p);
    test_golden(p);
    apr_pool_destroy(p);
    apr_terminate();
    UPM_TEST_DONE("stats");
}
