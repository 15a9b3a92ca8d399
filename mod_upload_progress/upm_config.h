/* SPDX-License-Identifier: Apache-2.0 */
/* Configuration: per-server and per-directory structs, their merges and
 * the directive table. */
#ifndef UPM_CONFIG_H
#define UPM_CONFIG_H

#include "httpd.h"
#include "http_config.h"
#include <apr_hash.h>
#include "upm_redis_url.h"
#include "upm_rate.h"
#include "upm_redis_logic.h"

/* UploadProgressJWTIdClaim: a claim naming one id (or an array of ids) of
 * a scope the token grants. */
typedef struct upm_id_claim {
    int field;                  /* UPM_F_SESSION, _JOB, _PROJECT or _FILE */
    const char *claim;
} upm_id_claim;
#include <apr_thread_mutex.h>

extern module AP_MODULE_DECLARE_DATA upload_progress_module;

#define UPM_DEFAULT_REPLAY        4096
#define UPM_DEFAULT_REPLAY_BYTES  (8 * 1024 * 1024)
#define UPM_DEFAULT_MAX_EVENT     (64 * 1024)
#define UPM_DEFAULT_HEARTBEAT     15
#define UPM_DEFAULT_THROTTLE      1.0
#define UPM_DEFAULT_RETRY_MS      3000
#define UPM_DEFAULT_LEEWAY        30
#define UPM_DEFAULT_REQUIRE_EXP   1
#define UPM_DEFAULT_MAX_AGE       0
#define UPM_DEFAULT_SEND_QUEUE    (256 * 1024)
#define UPM_DEFAULT_TRACK_SLOTS   1024
#define UPM_DEFAULT_TRACK_EXPIRE  60

/* UploadProgressTrack */
#define UPM_TRACK_OFF  0
#define UPM_TRACK_ON   1        /* requests that carry X-Progress-ID */
#define UPM_TRACK_ALL  2        /* every request with a body */
#define UPM_DEFAULT_WS_MAX_MESSAGE (64 * 1024)
#define UPM_DEFAULT_WS_RESUME_WAIT 5    /* ms */
#define UPM_DEFAULT_WRITE_TIMEOUT 30
#define UPM_DEFAULT_MAX_PER_USER  32
#define UPM_H2_STREAMS_AUTO       (-2)
#define UPM_DEFAULT_H2_STREAMS    UPM_H2_STREAMS_AUTO
#define UPM_DEFAULT_REDIS_TIMEOUT_MS   1000
#define UPM_DEFAULT_REDIS_BACKOFF_MIN  100
#define UPM_DEFAULT_REDIS_BACKOFF_MAX  2000
#define UPM_DEFAULT_REDIS_MAX_MESSAGE  (64 * 1024)
#define UPM_DEFAULT_REDIS_STREAM_MAXLEN 100000

typedef struct {
    int replay_slots;           /* 0: unset */
    apr_size_t replay_bytes;    /* 0: unset */
    apr_hash_t *event_map;      /* DomainEvent -> type overrides */
    /* Redis ingest: global (main server) only, read by every child. */
    upm_redis_url *redis;       /* NULL: embedded mode */
    apr_array_header_t *redis_patterns; /* const char *; NULL: the defaults */
    apr_array_header_t *redis_scope_channels; /* upm_chan_scope; NULL: the defaults */
    const char *redis_stream;   /* NULL: pub/sub mode */
    long redis_stream_maxlen;   /* -1: unset; 0: the module does not trim */
    int redis_timeout_ms;       /* -1: unset */
    int redis_backoff_min_ms;   /* -1: unset */
    int redis_backoff_max_ms;   /* -1: unset */
    apr_off_t redis_max_message;/* -1: unset */
    int redis_standby;          /* -1: unset */
    upm_redis_tls_opts *redis_tls; /* NULL: defaults (system CAs, verify on) */
    upm_redis_sentinel_conf *redis_sentinel; /* NULL: the URL's host is the primary */
    int redis_wait_replicas;    /* -1: unset; 0: no WAIT */
    int redis_wait_ms;
    int track_slots;            /* 0: unset */
} upm_srv_conf;

typedef struct {
    apr_array_header_t *keys;   /* upm_jwt_key *; NULL: unset */
    apr_array_header_t *jwks;   /* int: UploadProgressJWKS source indexes; NULL: unset */
    const char *issuer;
    const char *audience;
    int leeway;                 /* -1: unset */
    int require_exp;            /* -1: unset */
    int max_age;                /* seconds; -1: unset; 0: no bound */
    const char *user_claim;
    const char *token_param;
    const char *cookie;
    const char *scope_claim;
    const char *grant_claim;
    apr_array_header_t *id_claims;      /* upm_id_claim; NULL: unset */
    int require_grant;          /* -1: unset */
    int heartbeat;              /* seconds; -1: unset */
    double throttle;            /* percent; < 0: unset */
    int retry_ms;               /* -1: unset */
    apr_off_t max_event_size;   /* -1: unset */
    apr_off_t send_queue;       /* -1: unset */
    int track;                  /* UPM_TRACK_*; -1: unset */
    int report;                 /* ReportUploads: 0 Off, 1 On, 2 On JSONP; -1: unset */
    int track_expire;           /* seconds; -1: unset */
    apr_off_t ws_max_message;   /* -1: unset */
    int ws_resume_wait;         /* ms; -1: unset */
    apr_array_header_t *allow_origin;   /* const char *; NULL: unset */
    int async;                  /* -1: unset */
    int write_timeout;          /* seconds; -1: unset */
    int max_per_user;           /* -1: unset; 0: no limit */
    int h2_streams;             /* -1: unset; UPM_H2_STREAMS_AUTO; 0: no limit */
    /* UploadProgressPublishRate: one bucket per <Location> that sets it,
     * per child (each child has its own copy after the fork). */
    struct upm_rate_bucket *publish_rate;   /* NULL: unset */
} upm_dir_conf;

typedef struct upm_rate_bucket {
    upm_rate rate;
    apr_thread_mutex_t *lock;
} upm_rate_bucket;

void *upm_create_srv_conf(apr_pool_t *p, server_rec *s);
void *upm_merge_srv_conf(apr_pool_t *p, void *base, void *add);
void *upm_create_dir_conf(apr_pool_t *p, char *dir);
void *upm_merge_dir_conf(apr_pool_t *p, void *base, void *add);
extern const command_rec upm_cmds[];

/* Effective values with defaults applied. */
int upm_conf_heartbeat(const upm_dir_conf *d);
double upm_conf_throttle(const upm_dir_conf *d);
int upm_conf_retry_ms(const upm_dir_conf *d);
apr_off_t upm_conf_max_event(const upm_dir_conf *d);
apr_off_t upm_conf_send_queue(const upm_dir_conf *d);
apr_off_t upm_conf_ws_max_message(const upm_dir_conf *d);
int upm_conf_ws_resume_wait(const upm_dir_conf *d);
int upm_conf_leeway(const upm_dir_conf *d);
int upm_conf_require_exp(const upm_dir_conf *d);
int upm_conf_max_age(const upm_dir_conf *d);
int upm_conf_async(const upm_dir_conf *d);
int upm_conf_write_timeout(const upm_dir_conf *d);
int upm_conf_max_per_user(const upm_dir_conf *d);
/* UploadProgressHTTP2Streams: N, 0 (no limit) or < 0: derived from
 * mod_http2's settings (upm_h2.c). */
int upm_conf_h2_streams(const upm_dir_conf *d);
const char *upm_conf_user_claim(const upm_dir_conf *d);
const char *upm_conf_token_param(const upm_dir_conf *d);
/* "token" and every name UploadProgressJWTTokenParam was given in the main
 * configuration (not .htaccess). */
const char *const *upm_conf_token_params(int *n);
const char *upm_conf_cookie(const upm_dir_conf *d);
const char *upm_conf_scope_claim(const upm_dir_conf *d);
const char *upm_conf_grant_claim(const upm_dir_conf *d);
/* The location's UploadProgressJWTIdClaim list (NULL: none). */
const apr_array_header_t *upm_conf_id_claims(const upm_dir_conf *d);
int upm_conf_require_grant(const upm_dir_conf *d);
int upm_conf_track(const upm_dir_conf *d);
int upm_conf_report(const upm_dir_conf *d);
int upm_conf_report_jsonp(const upm_dir_conf *d);
int upm_conf_track_expire(const upm_dir_conf *d);
int upm_conf_track_slots(const upm_srv_conf *s);

/* UPM_BUS_MODE_EMBEDDED, _PUBSUB or _STREAM (see upm_bus.h). */
int upm_conf_redis_mode(const upm_srv_conf *sc);
/* The subscribed patterns (the defaults when none were configured). */
const char *const *upm_conf_redis_patterns(const upm_srv_conf *sc, int *n);
/* The channel prefixes that address messages to a scope (defaults:
 * upload-session: job: project:). */
const upm_chan_scope *upm_conf_redis_scope_channels(const upm_srv_conf *sc, int *n);
int upm_conf_redis_timeout_ms(const upm_srv_conf *sc);
int upm_conf_redis_backoff_min_ms(const upm_srv_conf *sc);
int upm_conf_redis_backoff_max_ms(const upm_srv_conf *sc);
apr_size_t upm_conf_redis_max_message(const upm_srv_conf *sc);
long upm_conf_redis_stream_maxlen(const upm_srv_conf *sc);
int upm_conf_redis_standby(const upm_srv_conf *sc);

#endif
