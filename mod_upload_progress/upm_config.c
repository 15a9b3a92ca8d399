/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_config.h"
#include "upm_jwt.h"
#include "upm_jwks_fetch.h"
#include "upm_event.h"
#include "upm_track_state.h"
#include "upm_ws_frame.h"
#include "upm_msg.h"

#include "http_log.h"
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_file_io.h>
#include <apr_env.h>
#include <stdlib.h>
#include <errno.h>

APLOG_USE_MODULE(upload_progress);

void *upm_create_srv_conf(apr_pool_t *p, server_rec *s)
{
    upm_srv_conf *c = apr_pcalloc(p, sizeof(*c));
    c->event_map = apr_hash_make(p);
    c->redis_stream_maxlen = -1;
    c->redis_timeout_ms = -1;
    c->redis_backoff_min_ms = -1;
    c->redis_backoff_max_ms = -1;
    c->redis_max_message = -1;
    c->redis_standby = -1;
    c->redis_wait_replicas = -1;
    return c;
}

void *upm_merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    upm_srv_conf *base = basev, *add = addv;
    upm_srv_conf *c = apr_pcalloc(p, sizeof(*c));
    c->replay_slots = add->replay_slots ? add->replay_slots : base->replay_slots;
    c->replay_bytes = add->replay_bytes ? add->replay_bytes : base->replay_bytes;
    c->event_map = apr_hash_overlay(p, add->event_map, base->event_map);
    /* Set in the main server only (GLOBAL_ONLY): virtual hosts inherit. */
    c->redis = add->redis ? add->redis : base->redis;
    c->redis_patterns = add->redis_patterns ? add->redis_patterns : base->redis_patterns;
    c->redis_scope_channels = add->redis_scope_channels ? add->redis_scope_channels
                                                        : base->redis_scope_channels;
    c->redis_stream = add->redis_stream ? add->redis_stream : base->redis_stream;
    c->redis_stream_maxlen = add->redis_stream_maxlen >= 0 ? add->redis_stream_maxlen
                                                           : base->redis_stream_maxlen;
    c->redis_timeout_ms = add->redis_timeout_ms >= 0 ? add->redis_timeout_ms
                                                     : base->redis_timeout_ms;
    c->redis_backoff_min_ms = add->redis_backoff_min_ms >= 0 ? add->redis_backoff_min_ms
                                                             : base->redis_backoff_min_ms;
    c->redis_backoff_max_ms = add->redis_backoff_max_ms >= 0 ? add->redis_backoff_max_ms
                                                             : base->redis_backoff_max_ms;
    c->redis_max_message = add->redis_max_message >= 0 ? add->redis_max_message
                                                       : base->redis_max_message;
    c->redis_standby = add->redis_standby >= 0 ? add->redis_standby : base->redis_standby;
    c->redis_tls = add->redis_tls ? add->redis_tls : base->redis_tls;
    c->redis_sentinel = add->redis_sentinel ? add->redis_sentinel : base->redis_sentinel;
    if (add->redis_wait_replicas >= 0) {
        c->redis_wait_replicas = add->redis_wait_replicas;
        c->redis_wait_ms = add->redis_wait_ms;
    }
    else {
        c->redis_wait_replicas = base->redis_wait_replicas;
        c->redis_wait_ms = base->redis_wait_ms;
    }
    c->track_slots = add->track_slots ? add->track_slots : base->track_slots;
    return c;
}

void *upm_create_dir_conf(apr_pool_t *p, char *dir)
{
    upm_dir_conf *c = apr_pcalloc(p, sizeof(*c));
    c->leeway = -1;
    c->require_exp = -1;
    c->max_age = -1;
    c->heartbeat = -1;
    c->throttle = -1;
    c->retry_ms = -1;
    c->max_event_size = -1;
    c->send_queue = -1;
    c->track = -1;
    c->report = -1;
    c->track_expire = -1;
    c->ws_max_message = -1;
    c->ws_resume_wait = -1;
    c->async = -1;
    c->write_timeout = -1;
    c->max_per_user = -1;
    c->require_grant = -1;
    c->h2_streams = -1;
    return c;
}

#define MERGE_PTR(f) c->f = add->f ? add->f : base->f
#define MERGE_NUM(f) c->f = add->f >= 0 ? add->f : base->f

void *upm_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    upm_dir_conf *base = basev, *add = addv;
    upm_dir_conf *c = apr_pcalloc(p, sizeof(*c));
    /* Keys replace rather than accumulate: a location that names its own
     * keys must not silently also trust its parent's. */
    MERGE_PTR(keys);
    MERGE_PTR(jwks);
    MERGE_PTR(issuer);
    MERGE_PTR(publish_rate);
    MERGE_PTR(audience);
    MERGE_PTR(user_claim);
    MERGE_PTR(token_param);
    MERGE_PTR(cookie);
    MERGE_PTR(scope_claim);
    MERGE_PTR(grant_claim);
    MERGE_PTR(id_claims);
    MERGE_NUM(require_grant);
    MERGE_NUM(leeway);
    MERGE_NUM(require_exp);
    MERGE_NUM(max_age);
    MERGE_NUM(heartbeat);
    MERGE_NUM(throttle);
    MERGE_NUM(retry_ms);
    MERGE_NUM(max_event_size);
    MERGE_NUM(send_queue);
    MERGE_NUM(track);
    MERGE_NUM(report);
    MERGE_NUM(track_expire);
    MERGE_NUM(ws_max_message);
    MERGE_NUM(ws_resume_wait);
    /* An inner list replaces the outer one: origins do not accumulate. */
    MERGE_PTR(allow_origin);
    MERGE_NUM(async);
    MERGE_NUM(write_timeout);
    MERGE_NUM(max_per_user);
    c->h2_streams = add->h2_streams != -1 ? add->h2_streams : base->h2_streams;
    return c;
}

int upm_conf_heartbeat(const upm_dir_conf *d)
{ return d->heartbeat >= 0 ? d->heartbeat : UPM_DEFAULT_HEARTBEAT; }
double upm_conf_throttle(const upm_dir_conf *d)
{ return d->throttle >= 0 ? d->throttle : UPM_DEFAULT_THROTTLE; }
int upm_conf_retry_ms(const upm_dir_conf *d)
{ return d->retry_ms >= 0 ? d->retry_ms : UPM_DEFAULT_RETRY_MS; }
apr_off_t upm_conf_max_event(const upm_dir_conf *d)
{ return d->max_event_size >= 0 ? d->max_event_size : UPM_DEFAULT_MAX_EVENT; }
apr_off_t upm_conf_send_queue(const upm_dir_conf *d)
{ return d->send_queue >= 0 ? d->send_queue : UPM_DEFAULT_SEND_QUEUE; }
int upm_conf_ws_resume_wait(const upm_dir_conf *d)
{ return d->ws_resume_wait >= 0 ? d->ws_resume_wait : UPM_DEFAULT_WS_RESUME_WAIT; }
apr_off_t upm_conf_ws_max_message(const upm_dir_conf *d)
{ return d->ws_max_message >= 0 ? d->ws_max_message : UPM_DEFAULT_WS_MAX_MESSAGE; }
int upm_conf_async(const upm_dir_conf *d)
{ return d->async >= 0 ? d->async : 1; }
int upm_conf_write_timeout(const upm_dir_conf *d)
{ return d->write_timeout >= 0 ? d->write_timeout : UPM_DEFAULT_WRITE_TIMEOUT; }
int upm_conf_max_per_user(const upm_dir_conf *d)
{ return d->max_per_user >= 0 ? d->max_per_user : UPM_DEFAULT_MAX_PER_USER; }
int upm_conf_h2_streams(const upm_dir_conf *d)
{ return d->h2_streams != -1 ? d->h2_streams : UPM_DEFAULT_H2_STREAMS; }
int upm_conf_leeway(const upm_dir_conf *d)
{ return d->leeway >= 0 ? d->leeway : UPM_DEFAULT_LEEWAY; }
int upm_conf_require_exp(const upm_dir_conf *d)
{ return d->require_exp >= 0 ? d->require_exp : UPM_DEFAULT_REQUIRE_EXP; }
int upm_conf_max_age(const upm_dir_conf *d)
{ return d->max_age >= 0 ? d->max_age : UPM_DEFAULT_MAX_AGE; }
const char *upm_conf_user_claim(const upm_dir_conf *d)
{ return d->user_claim ? d->user_claim : "sub"; }
const char *upm_conf_token_param(const upm_dir_conf *d)
{ return d->token_param ? d->token_param : "token"; }
const char *upm_conf_cookie(const upm_dir_conf *d)
{ return d->cookie ? d->cookie : "upload_progress_token"; }
const char *upm_conf_scope_claim(const upm_dir_conf *d)
{ return d->scope_claim ? d->scope_claim : "scope"; }
const char *upm_conf_grant_claim(const upm_dir_conf *d)
{ return d->grant_claim ? d->grant_claim : "upl"; }
const apr_array_header_t *upm_conf_id_claims(const upm_dir_conf *d)
{ return d->id_claims; }
int upm_conf_require_grant(const upm_dir_conf *d)
{ return d->require_grant > 0; }

int upm_conf_track(const upm_dir_conf *d)
{ return d->track >= 0 ? d->track : UPM_TRACK_OFF; }
int upm_conf_report(const upm_dir_conf *d)
{ return d->report > 0; }
int upm_conf_report_jsonp(const upm_dir_conf *d)
{ return d->report == 2; }
int upm_conf_track_expire(const upm_dir_conf *d)
{ return d->track_expire >= 0 ? d->track_expire : UPM_DEFAULT_TRACK_EXPIRE; }
int upm_conf_track_slots(const upm_srv_conf *s)
{ return s->track_slots ? s->track_slots : UPM_DEFAULT_TRACK_SLOTS; }

static const char *const default_patterns[] = {
    "upload-session:*", "user:*", "job:*", "project:*"
};

static const upm_chan_scope default_scope_channels[] = {
    { UPM_F_SESSION, "upload-session:" }, { UPM_F_JOB, "job:" }, { UPM_F_PROJECT, "project:" }
};

const upm_chan_scope *upm_conf_redis_scope_channels(const upm_srv_conf *sc, int *n)
{
    if (sc->redis_scope_channels) {
        *n = sc->redis_scope_channels->nelts;
        return (const upm_chan_scope *)sc->redis_scope_channels->elts;
    }
    *n = (int)(sizeof(default_scope_channels) / sizeof(default_scope_channels[0]));
    return default_scope_channels;
}

int upm_conf_redis_mode(const upm_srv_conf *sc)
{
    /* Values of UPM_BUS_MODE_*: embedded 0, pub/sub 1, Streams 2. */
    return !sc->redis ? 0 : sc->redis_stream ? 2 : 1;
}

const char *const *upm_conf_redis_patterns(const upm_srv_conf *sc, int *n)
{
    if (sc->redis_patterns && sc->redis_patterns->nelts) {
        *n = sc->redis_patterns->nelts;
        return (const char *const *)sc->redis_patterns->elts;
    }
    *n = (int)(sizeof(default_patterns) / sizeof(default_patterns[0]));
    return default_patterns;
}

int upm_conf_redis_timeout_ms(const upm_srv_conf *sc)
{ return sc->redis_timeout_ms >= 0 ? sc->redis_timeout_ms : UPM_DEFAULT_REDIS_TIMEOUT_MS; }
int upm_conf_redis_backoff_min_ms(const upm_srv_conf *sc)
{ return sc->redis_backoff_min_ms >= 0 ? sc->redis_backoff_min_ms
                                       : UPM_DEFAULT_REDIS_BACKOFF_MIN; }
int upm_conf_redis_backoff_max_ms(const upm_srv_conf *sc)
{ return sc->redis_backoff_max_ms >= 0 ? sc->redis_backoff_max_ms
                                       : UPM_DEFAULT_REDIS_BACKOFF_MAX; }
apr_size_t upm_conf_redis_max_message(const upm_srv_conf *sc)
{ return sc->redis_max_message >= 0 ? (apr_size_t)sc->redis_max_message
                                    : UPM_DEFAULT_REDIS_MAX_MESSAGE; }
long upm_conf_redis_stream_maxlen(const upm_srv_conf *sc)
{ return sc->redis_stream_maxlen >= 0 ? sc->redis_stream_maxlen
                                      : UPM_DEFAULT_REDIS_STREAM_MAXLEN; }
int upm_conf_redis_standby(const upm_srv_conf *sc)
{ return sc->redis_standby >= 0 ? sc->redis_standby : 1; }

static const char *parse_int(const char *arg, long min, long max, long *out,
                             const char *what, apr_pool_t *p)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < min || v > max) {
        return apr_psprintf(p, "%s must be an integer from %ld to %ld, not '%s'",
                            what, min, max, arg);
    }
    *out = v;
    return NULL;
}

/* Sizes accept a K/M/G suffix: replay memory is naturally given in MB. */
static const char *parse_size(const char *arg, apr_off_t min, apr_off_t max,
                              apr_off_t *out, const char *what, apr_pool_t *p)
{
    char *end;
    apr_int64_t v;
    errno = 0;
    v = apr_strtoi64(arg, &end, 10);
    if (!errno && end != arg) {
        switch (*end) {
        case 'k': case 'K': v *= 1024; end++; break;
        case 'm': case 'M': v *= 1024 * 1024; end++; break;
        case 'g': case 'G': v *= 1024 * 1024 * 1024; end++; break;
        }
    }
    if (errno || end == arg || *end || v < min || v > max) {
        return apr_psprintf(p, "%s must be a size from %" APR_OFF_T_FMT " to %"
                            APR_OFF_T_FMT " bytes (K/M/G suffix allowed), not '%s'",
                            what, min, max, arg);
    }
    *out = (apr_off_t)v;
    return NULL;
}

static upm_srv_conf *srv(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &upload_progress_module);
}

static const char *set_replay(cmd_parms *cmd, void *dummy, const char *arg)
{
    long v;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    if ((err = parse_int(arg, 16, 1 << 22, &v, "UploadProgressReplay", cmd->pool))) {
        return err;
    }
    srv(cmd)->replay_slots = (int)v;
    return NULL;
}

static const char *set_replay_bytes(cmd_parms *cmd, void *dummy, const char *arg)
{
    apr_off_t v;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    if ((err = parse_size(arg, 256 * 1024, (apr_off_t)4 << 30, &v,
                          "UploadProgressReplayMemory", cmd->pool))) {
        return err;
    }
    srv(cmd)->replay_bytes = (apr_size_t)v;
    return NULL;
}

static const char *set_event_map(cmd_parms *cmd, void *dummy, const char *ev,
                                 const char *type)
{
    const char *c;
    if (!*ev || !*type || strlen(type) > 64) {
        return "UploadProgressEventMap takes a domain event name and a message type";
    }
    for (c = type; *c; c++) {
        if (!apr_isalnum(*c) && !strchr("_.:-", *c)) {
            return apr_psprintf(cmd->pool, "UploadProgressEventMap: message type '%s' "
                                "may only contain letters, digits and _ . : -", type);
        }
    }
    apr_hash_set(srv(cmd)->event_map, apr_pstrdup(cmd->pool, ev),
                 APR_HASH_KEY_STRING, apr_pstrdup(cmd->pool, type));
    return NULL;
}

static const char *set_dir_int(cmd_parms *cmd, void *dv, const char *arg)
{
    upm_dir_conf *d = dv;
    long v;
    const char *err;
    int which = (int)(apr_uintptr_t)cmd->info;
    switch (which) {
    case 0:
        if (!(err = parse_int(arg, 0, 86400, &v, cmd->cmd->name, cmd->pool)))
            d->heartbeat = (int)v;
        return err;
    case 1:
        if (!(err = parse_int(arg, 0, 3600000, &v, cmd->cmd->name, cmd->pool)))
            d->retry_ms = (int)v;
        return err;
    case 3:
        if (!(err = parse_int(arg, 1, 86400, &v, cmd->cmd->name, cmd->pool)))
            d->write_timeout = (int)v;
        return err;
    case 4:
        if (!(err = parse_int(arg, 0, 1000000, &v, cmd->cmd->name, cmd->pool)))
            d->max_per_user = (int)v;
        return err;
    case 5:
        /* Up to a year: longer is no bound worth the name. */
        if (!(err = parse_int(arg, 0, 366 * 86400, &v, cmd->cmd->name, cmd->pool)))
            d->max_age = (int)v;
        return err;
    case 6:
        if (!(err = parse_int(arg, 0, 1000, &v, cmd->cmd->name, cmd->pool)))
            d->ws_resume_wait = (int)v;
        return err;
    default:
        if (!(err = parse_int(arg, 0, 86400, &v, cmd->cmd->name, cmd->pool)))
            d->leeway = (int)v;
        return err;
    }
}

static const char *set_require_exp(cmd_parms *cmd, void *dv, int on)
{
    ((upm_dir_conf *)dv)->require_exp = on;
    return NULL;
}

static const char *set_h2_streams(cmd_parms *cmd, void *dv, const char *arg)
{
    long v;
    const char *err;
    if (strcasecmp(arg, "auto") == 0) {
        ((upm_dir_conf *)dv)->h2_streams = UPM_H2_STREAMS_AUTO;
        return NULL;
    }
    if (!(err = parse_int(arg, 0, 1000, &v, cmd->cmd->name, cmd->pool))) {
        ((upm_dir_conf *)dv)->h2_streams = (int)v;
    }
    return err;
}

static const char *set_async(cmd_parms *cmd, void *dv, int on)
{
    ((upm_dir_conf *)dv)->async = on;
    return NULL;
}

static const char *set_throttle(cmd_parms *cmd, void *dv, const char *arg)
{
    upm_dir_conf *d = dv;
    char *end;
    double v = strtod(arg, &end);
    if (end == arg || *end || !(v >= 0 && v <= 100)) {
        return apr_psprintf(cmd->pool, "UploadProgressThrottle must be a percentage "
                            "from 0 to 100, not '%s'", arg);
    }
    d->throttle = v;
    return NULL;
}

static const char *set_publish_rate(cmd_parms *cmd, void *dv, const char *arg)
{
    upm_dir_conf *d = dv;
    char *end;
    double v = strtod(arg, &end);
    upm_rate_bucket *b;
    if (end == arg || *end || !(v >= 0) || v > 1e9) {
        return apr_psprintf(cmd->pool, "UploadProgressPublishRate must be a number of "
                            "events per second (0 = no limit), not '%s'", arg);
    }
    b = apr_pcalloc(cmd->pool, sizeof(*b));
    upm_rate_init(&b->rate, v);
    if (apr_thread_mutex_create(&b->lock, APR_THREAD_MUTEX_DEFAULT, cmd->pool)
        != APR_SUCCESS) {
        return "UploadProgressPublishRate: cannot create a mutex";
    }
    d->publish_rate = b;
    return NULL;
}

static const char *set_dir_size(cmd_parms *cmd, void *dv, const char *arg)
{
    upm_dir_conf *d = dv;
    apr_off_t v;
    const char *err;
    if ((int)(apr_uintptr_t)cmd->info == 0) {
        if (!(err = parse_size(arg, 256, 16 * 1024 * 1024, &v, cmd->cmd->name, cmd->pool)))
            d->max_event_size = v;
    }
    else if ((int)(apr_uintptr_t)cmd->info == 2) {
        if (!(err = parse_size(arg, 128, 16 * 1024 * 1024, &v, cmd->cmd->name, cmd->pool)))
            d->ws_max_message = v;
    }
    else {
        if (!(err = parse_size(arg, 4096, (apr_off_t)1 << 30, &v, cmd->cmd->name, cmd->pool)))
            d->send_queue = v;
    }
    return err;
}

static const char *add_origin(cmd_parms *cmd, void *dv, const char *arg)
{
    upm_dir_conf *d = dv;
    const char *o = upm_ws_origin_normalize(cmd->pool, arg);
    if (!o) {
        return apr_psprintf(cmd->pool, "UploadProgressAllowOrigin: '%s' is not an origin: "
                            "give scheme://host[:port] (host may start with '*.'), "
                            "'null' or '*'", arg);
    }
    /* Each occurrence of the directive in one section adds to its list. */
    if (!d->allow_origin) {
        d->allow_origin = apr_array_make(cmd->pool, 4, sizeof(const char *));
    }
    APR_ARRAY_PUSH(d->allow_origin, const char *) = o;
    return NULL;
}

/* Every token parameter name of the main configuration: the logged request
 * line is scrubbed of them before the request's location is known. */
static apr_array_header_t *token_params;

static apr_status_t token_params_gone(void *data)
{
    token_params = NULL;
    return APR_SUCCESS;
}

const char *const *upm_conf_token_params(int *n)
{
    static const char *const dflt[] = { "token" };

    if (!token_params) {
        *n = 1;
        return dflt;
    }
    *n = token_params->nelts;
    return (const char *const *)token_params->elts;
}

static const char *set_token_param(cmd_parms *cmd, void *dv, const char *arg)
{
    upm_dir_conf *d = dv;

    d->token_param = apr_pstrdup(cmd->pool, arg);
    /* .htaccess files are read per request, into the request's pool: their
     * names are scrubbed once the location is known (find_token). */
    if (cmd->pool == cmd->server->process->pconf) {
        if (!token_params) {
            token_params = apr_array_make(cmd->pool, 4, sizeof(const char *));
            APR_ARRAY_PUSH(token_params, const char *) = "token";
            apr_pool_cleanup_register(cmd->pool, NULL, token_params_gone,
                                      apr_pool_cleanup_null);
        }
        APR_ARRAY_PUSH(token_params, const char *) = d->token_param;
    }
    return NULL;
}

static const char *set_dir_str(cmd_parms *cmd, void *dv, const char *arg)
{
    /* cmd->info is the offset of the field in upm_dir_conf. */
    return ap_set_string_slot(cmd, dv, apr_pstrdup(cmd->pool, arg));
}

static const char *read_key_source(cmd_parms *cmd, const char *src,
                                   const unsigned char **data, apr_size_t *len)
{
    if (strncmp(src, "env:", 4) == 0) {
        char *val = NULL;
        if (apr_env_get(&val, src + 4, cmd->temp_pool) != APR_SUCCESS || !val || !*val) {
            return apr_psprintf(cmd->pool, "UploadProgressJWTKey: environment variable "
                                "'%s' is not set or empty", src + 4);
        }
        *data = (const unsigned char *)apr_pstrdup(cmd->pool, val);
        *len = strlen(val);
        return NULL;
    }
    else {
        const char *path = strncmp(src, "file:", 5) == 0 ? src + 5 : src;
        apr_file_t *f;
        apr_finfo_t fi;
        apr_status_t rv;
        char *buf;
        apr_size_t n;

        path = ap_server_root_relative(cmd->temp_pool, path);
        if (!path) {
            return apr_psprintf(cmd->pool, "UploadProgressJWTKey: invalid path '%s'", src);
        }
        rv = apr_file_open(&f, path, APR_READ | APR_BINARY, 0, cmd->temp_pool);
        if (rv == APR_SUCCESS) {
            rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
        }
        if (rv != APR_SUCCESS) {
            char e[120];
            return apr_psprintf(cmd->pool, "UploadProgressJWTKey: cannot read '%s': %s",
                                path, apr_strerror(rv, e, sizeof(e)));
        }
        if (fi.size > 1024 * 1024) {
            return apr_psprintf(cmd->pool, "UploadProgressJWTKey: '%s' is larger "
                                "than 1 MB; is it really a key?", path);
        }
        n = (apr_size_t)fi.size;
        buf = apr_palloc(cmd->pool, n + 1);
        rv = apr_file_read_full(f, buf, n, &n);
        apr_file_close(f);
        if (rv != APR_SUCCESS && rv != APR_EOF) {
            return apr_psprintf(cmd->pool, "UploadProgressJWTKey: cannot read '%s'", path);
        }
        buf[n] = '\0';
        *data = (const unsigned char *)buf;
        *len = n;
        return NULL;
    }
}

static const char *add_key(cmd_parms *cmd, void *dv, const char *alg,
                           const char *src, const char *kid)
{
    upm_dir_conf *d = dv;
    const unsigned char *data;
    apr_size_t len;
    const char *err;
    upm_jwt_key *key;
    int i;

    if ((err = read_key_source(cmd, src, &data, &len))) {
        return err;
    }
    key = upm_jwt_key_make(cmd->pool, alg, data, len, kid, &err);
    if (!key) {
        return apr_psprintf(cmd->pool, "UploadProgressJWTKey %s %s: %s", alg, src, err);
    }
    if (!d->keys) {
        d->keys = apr_array_make(cmd->pool, 2, sizeof(upm_jwt_key *));
    }
    for (i = 0; i < d->keys->nelts; i++) {
        const upm_jwt_key *k = APR_ARRAY_IDX(d->keys, i, upm_jwt_key *);
        if (kid && k->kid && strcmp(kid, k->kid) == 0) {
            return apr_psprintf(cmd->pool, "UploadProgressJWTKey: kid '%s' is "
                                "configured twice here", kid);
        }
    }
    APR_ARRAY_PUSH(d->keys, upm_jwt_key *) = key;
    return NULL;
}

static const char *add_jwks(cmd_parms *cmd, void *dv, int argc, char *const argv[])
{
    upm_dir_conf *d = dv;
    const char *err;
    int ix, i;

    if ((err = upm_jwks_fetch_source_add(cmd, argc, argv, d->issuer, &ix))) {
        return err;
    }
    if (!d->jwks) {
        d->jwks = apr_array_make(cmd->pool, 2, sizeof(int));
    }
    for (i = 0; i < d->jwks->nelts; i++) {
        if (APR_ARRAY_IDX(d->jwks, i, int) == ix) {
            return NULL;
        }
    }
    APR_ARRAY_PUSH(d->jwks, int) = ix;
    return NULL;
}

static const char *set_jwks_cache(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    return err ? err : upm_jwks_fetch_set_cache(cmd, arg);
}

/* ---- upload tracking and the old module's directives ---------------- */

static const char *set_track(cmd_parms *cmd, void *dv, const char *arg)
{
    upm_dir_conf *d = dv;
    if (strcasecmp(arg, "on") == 0) {
        d->track = UPM_TRACK_ON;
    }
    else if (strcasecmp(arg, "off") == 0) {
        d->track = UPM_TRACK_OFF;
    }
    else if (strcasecmp(arg, "all") == 0) {
        d->track = UPM_TRACK_ALL;
    }
    else {
        return apr_psprintf(cmd->pool, "UploadProgressTrack takes On, Off or All, not '%s'",
                            arg);
    }
    return NULL;
}

/* TrackUploads On|Off: the old module's spelling of UploadProgressTrack. */
static const char *set_track_flag(cmd_parms *cmd, void *dv, int on)
{
    ((upm_dir_conf *)dv)->track = on ? UPM_TRACK_ON : UPM_TRACK_OFF;
    return NULL;
}

/* ReportUploads On|Off [JSONP]: a JSONP answer is a script any page may
 * include, so it is served only where it is asked for by name. */
static const char *set_report_flag(cmd_parms *cmd, void *dv, const char *flag,
                                   const char *opt)
{
    upm_dir_conf *d = dv;
    int on;

    if (!strcasecmp(flag, "On")) {
        on = 1;
    }
    else if (!strcasecmp(flag, "Off")) {
        on = 0;
    }
    else {
        return "ReportUploads must be On or Off, optionally followed by JSONP";
    }
    if (opt && strcasecmp(opt, "JSONP") != 0) {
        return apr_psprintf(cmd->pool, "ReportUploads: unknown option '%s' "
                            "(the only one is JSONP)", opt);
    }
    if (opt && !on) {
        return "ReportUploads Off takes no JSONP option";
    }
    d->report = on ? (opt ? 2 : 1) : 0;
    return NULL;
}

static const char *set_track_expire(cmd_parms *cmd, void *dv, const char *arg)
{
    long v;
    const char *err = parse_int(arg, 0, 86400, &v, cmd->cmd->name, cmd->pool);
    if (!err) {
        ((upm_dir_conf *)dv)->track_expire = (int)v;
    }
    return err;
}

static const char *set_track_slots(cmd_parms *cmd, void *dummy, const char *arg)
{
    long v;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    if ((err = parse_int(arg, UPM_TRACK_MIN_SLOTS, UPM_TRACK_MAX_SLOTS, &v,
                         "UploadProgressTrackSlots", cmd->pool))) {
        return err;
    }
    srv(cmd)->track_slots = (int)v;
    return NULL;
}

/* The old module sized its table in bytes; the same budget buys a number
 * of our (larger) slots, at least the minimum. */
static const char *set_track_shm_size(cmd_parms *cmd, void *dummy, const char *arg)
{
    apr_off_t v;
    apr_off_t slots;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    if ((err = parse_size(arg, 1, (apr_off_t)1 << 30, &v,
                          "UploadProgressSharedMemorySize", cmd->pool))) {
        return err;
    }
    slots = v / (apr_off_t)upm_track_slot_bytes();
    if (slots < UPM_TRACK_MIN_SLOTS) {
        slots = UPM_TRACK_MIN_SLOTS;
    }
    if (slots > UPM_TRACK_MAX_SLOTS) {
        slots = UPM_TRACK_MAX_SLOTS;
    }
    srv(cmd)->track_slots = (int)slots;
    return NULL;
}

static const char *set_redis(cmd_parms *cmd, void *dummy, const char *arg)
{
    upm_redis_url *u;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    u = apr_pcalloc(cmd->pool, sizeof(*u));
    if ((err = upm_redis_url_parse(cmd->pool, arg, u))) {
        return apr_pstrcat(cmd->pool, "UploadProgressRedis: ", err, NULL);
    }
    srv(cmd)->redis = u;
    return NULL;
}

static const char *set_redis_tls(cmd_parms *cmd, void *dummy, int argc, char *const argv[])
{
    upm_redis_tls_opts *o;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    int i;
    if (err) {
        return err;
    }
    o = apr_pcalloc(cmd->pool, sizeof(*o));
    if ((err = upm_redis_tls_opts_parse(cmd->pool, argc, argv, o))) {
        return apr_pstrcat(cmd->pool, "UploadProgressRedisTLS: ", err, NULL);
    }
    /* Relative to ServerRoot, as httpd's own file directives. */
    for (i = 0; i < 3; i++) {
        const char **f = i == 0 ? &o->ca : i == 1 ? &o->cert : &o->key;
        if (*f && !(*f = ap_server_root_relative(cmd->pool, *f))) {
            return "UploadProgressRedisTLS: invalid file path";
        }
    }
    srv(cmd)->redis_tls = o;
    return NULL;
}

static const char *set_redis_sentinel(cmd_parms *cmd, void *dummy, int argc,
                                      char *const argv[])
{
    upm_redis_sentinel_conf *o;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    o = apr_pcalloc(cmd->pool, sizeof(*o));
    if ((err = upm_redis_sentinel_parse(cmd->pool, argc, argv, o))) {
        return apr_pstrcat(cmd->pool, "UploadProgressRedisSentinel: ", err, NULL);
    }
    srv(cmd)->redis_sentinel = o;
    return NULL;
}

static const char *set_redis_wait(cmd_parms *cmd, void *dummy, const char *n,
                                  const char *ms)
{
    upm_srv_conf *sc = srv(cmd);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    long r, t;
    if (err) {
        return err;
    }
    if ((err = parse_int(n, 0, 64, &r, "UploadProgressRedisWait REPLICAS", cmd->pool))
        || (err = parse_int(ms, 1, 60000, &t, "UploadProgressRedisWait TIMEOUT_MS",
                            cmd->pool))) {
        return err;
    }
    sc->redis_wait_replicas = (int)r;
    sc->redis_wait_ms = (int)t;
    return NULL;
}

static const char *add_redis_pattern(cmd_parms *cmd, void *dummy, const char *arg)
{
    upm_srv_conf *sc = srv(cmd);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    if (!*arg || strlen(arg) > 256 || strpbrk(arg, " \t\r\n")) {
        return "UploadProgressRedisSubscribe: a pattern is 1 to 256 characters without "
               "white space";
    }
    if (!sc->redis_patterns) {
        sc->redis_patterns = apr_array_make(cmd->pool, 4, sizeof(const char *));
    }
    APR_ARRAY_PUSH(sc->redis_patterns, const char *) = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

/* The scope field a directive argument names: "session" or "sessionId". */
static int scope_field_named(const char *a)
{
    static const struct { const char *n1, *n2; int f; } names[] = {
        { "session", "sessionId", UPM_F_SESSION }, { "job", "jobId", UPM_F_JOB },
        { "project", "projectId", UPM_F_PROJECT }, { "file", "fileId", UPM_F_FILE }
    };
    unsigned i;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strcasecmp(a, names[i].n1) || !strcasecmp(a, names[i].n2)) {
            return names[i].f;
        }
    }
    return -1;
}

static const char *add_scope_channel(cmd_parms *cmd, void *dummy, const char *scope,
                                     const char *prefix)
{
    upm_srv_conf *sc = srv(cmd);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    upm_chan_scope *cs;
    int f;
    if (err) {
        return err;
    }
    if (!strcasecmp(scope, "none") && !prefix) {
        /* No channel addresses a scope: owner-less messages on them are
         * refused, as before scopes were addressable. */
        if (!sc->redis_scope_channels) {
            sc->redis_scope_channels = apr_array_make(cmd->pool, 1, sizeof(upm_chan_scope));
        }
        return NULL;
    }
    if ((f = scope_field_named(scope)) < 0 || !prefix) {
        return "UploadProgressRedisScopeChannel: SCOPE PREFIX, SCOPE one of session, job, "
               "project, file (or the single word none)";
    }
    if (!*prefix || strlen(prefix) > 256 || strpbrk(prefix, " \t\r\n*?[\\")) {
        return "UploadProgressRedisScopeChannel: a prefix is 1 to 256 characters without "
               "white space or glob characters";
    }
    if (!strcmp(prefix, "user:")) {
        return "UploadProgressRedisScopeChannel: user: is the owner's channel";
    }
    if (!sc->redis_scope_channels) {
        sc->redis_scope_channels = apr_array_make(cmd->pool, 4, sizeof(upm_chan_scope));
    }
    cs = apr_array_push(sc->redis_scope_channels);
    cs->field = f;
    cs->prefix = apr_pstrdup(cmd->pool, prefix);
    return NULL;
}

static const char *add_id_claim(cmd_parms *cmd, void *dv, const char *scope,
                                const char *claim)
{
    upm_dir_conf *d = dv;
    upm_id_claim *ic;
    apr_array_header_t *a;
    int f = scope_field_named(scope);
    if (f < 0) {
        return "UploadProgressJWTIdClaim: SCOPE CLAIM, SCOPE one of session, job, project, "
               "file";
    }
    if (!*claim || strlen(claim) > 128) {
        return "UploadProgressJWTIdClaim: a claim name is 1 to 128 characters";
    }
    /* A location's list adds to nothing inherited (like the keys, it
     * replaces the parent's), so what a token grants is read in one place. */
    a = d->id_claims ? d->id_claims : apr_array_make(cmd->pool, 2, sizeof(upm_id_claim));
    ic = apr_array_push(a);
    ic->field = f;
    ic->claim = apr_pstrdup(cmd->pool, claim);
    d->id_claims = a;
    return NULL;
}

static const char *set_require_grant(cmd_parms *cmd, void *dv, int on)
{
    ((upm_dir_conf *)dv)->require_grant = on;
    return NULL;
}

static const char *set_redis_stream(cmd_parms *cmd, void *dummy, const char *key,
                                    const char *maxlen)
{
    upm_srv_conf *sc = srv(cmd);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    long v;
    if (err) {
        return err;
    }
    if (!*key || strlen(key) > 512 || strpbrk(key, " \t\r\n")) {
        return "UploadProgressRedisStream: the key is 1 to 512 characters without white space";
    }
    sc->redis_stream = apr_pstrdup(cmd->pool, key);
    if (maxlen) {
        if ((err = parse_int(maxlen, 0, 2000000000L, &v,
                             "UploadProgressRedisStream MAXLEN", cmd->pool))) {
            return err;
        }
        sc->redis_stream_maxlen = v;
    }
    return NULL;
}

static const char *set_redis_int(cmd_parms *cmd, void *dummy, const char *arg)
{
    upm_srv_conf *sc = srv(cmd);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    long v;
    if (err) {
        return err;
    }
    if ((err = parse_int(arg, 10, 60000, &v, cmd->cmd->name, cmd->pool))) {
        return err;
    }
    sc->redis_timeout_ms = (int)v;
    return NULL;
}

static const char *set_redis_backoff(cmd_parms *cmd, void *dummy, const char *a,
                                     const char *b)
{
    upm_srv_conf *sc = srv(cmd);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    long lo, hi;
    if (err) {
        return err;
    }
    if ((err = parse_int(a, 10, 600000, &lo, "UploadProgressRedisBackoff MIN_MS", cmd->pool))
        || (err = parse_int(b, 10, 600000, &hi, "UploadProgressRedisBackoff MAX_MS",
                            cmd->pool))) {
        return err;
    }
    if (hi < lo) {
        return "UploadProgressRedisBackoff: MAX_MS must not be below MIN_MS";
    }
    sc->redis_backoff_min_ms = (int)lo;
    sc->redis_backoff_max_ms = (int)hi;
    return NULL;
}

static const char *set_redis_max_message(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    apr_off_t v;
    if (err) {
        return err;
    }
    if ((err = parse_size(arg, 256, 16 * 1024 * 1024, &v, cmd->cmd->name, cmd->pool))) {
        return err;
    }
    srv(cmd)->redis_max_message = v;
    return NULL;
}

static const char *set_redis_standby(cmd_parms *cmd, void *dummy, int on)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err) {
        return err;
    }
    srv(cmd)->redis_standby = on ? 1 : 0;
    return NULL;
}

#define DIR_STR(name, field, help) \
    AP_INIT_TAKE1(name, set_dir_str, (void *)APR_OFFSETOF(upm_dir_conf, field), \
                  OR_AUTHCFG | RSRC_CONF, help)

const command_rec upm_cmds[] = {
    AP_INIT_TAKE1("UploadProgressReplay", set_replay, NULL, RSRC_CONF,
                  "Number of messages kept for replay in shared memory (default 4096)"),
    AP_INIT_TAKE1("UploadProgressReplayMemory", set_replay_bytes, NULL, RSRC_CONF,
                  "Bytes of shared memory for replayed message bodies (default 8M)"),
    AP_INIT_TAKE2("UploadProgressEventMap", set_event_map, NULL, RSRC_CONF,
                  "Maps a domain event name to a message type"),
    AP_INIT_TAKE1("UploadProgressRedis", set_redis, NULL, RSRC_CONF,
                  "Redis to ingest events from: redis[s]://[[user]:password@]host[:port][/db] "
                  "or unix:/path[?db=N]"),
    AP_INIT_TAKE_ARGV("UploadProgressRedisTLS", set_redis_tls, NULL, RSRC_CONF,
                      "TLS for rediss:// URLs: [ca=FILE] [cert=FILE key=FILE] "
                      "[servername=NAME] [verify=on|off]"),
    AP_INIT_TAKE_ARGV("UploadProgressRedisSentinel", set_redis_sentinel, NULL, RSRC_CONF,
                      "MASTER-NAME host:port [host:port ...] [user=U] [password=P] "
                      "[tls=on]: find the Redis primary through these sentinels"),
    AP_INIT_TAKE2("UploadProgressRedisWait", set_redis_wait, NULL, RSRC_CONF,
                  "REPLICAS TIMEOUT_MS: Streams mode, the publish endpoint answers 202 only "
                  "once this many replicas have the events (WAIT)"),
    AP_INIT_ITERATE("UploadProgressRedisSubscribe", add_redis_pattern, NULL, RSRC_CONF,
                    "Channel patterns to PSUBSCRIBE (default upload-session:* user:* "
                    "job:* project:*)"),
    AP_INIT_TAKE12("UploadProgressRedisStream", set_redis_stream, NULL, RSRC_CONF,
                   "KEY [MAXLEN]: read events from this Redis stream instead of pub/sub"),
    AP_INIT_TAKE1("UploadProgressRedisTimeout", set_redis_int, NULL, RSRC_CONF,
                  "Milliseconds allowed to connect to Redis and for a command (default 1000)"),
    AP_INIT_TAKE2("UploadProgressRedisBackoff", set_redis_backoff, NULL, RSRC_CONF,
                  "MIN_MS MAX_MS: reconnect delays of the listener (default 100 2000)"),
    AP_INIT_TAKE1("UploadProgressRedisMaxMessage", set_redis_max_message, NULL, RSRC_CONF,
                  "Largest message taken from Redis (default 64K)"),
    AP_INIT_FLAG("UploadProgressRedisStandby", set_redis_standby, NULL, RSRC_CONF,
                 "Whether children that do not feed keep a pub/sub link for a lossless "
                 "take-over (default On)"),
    AP_INIT_TAKE1("UploadProgressHeartbeat", set_dir_int, (void *)0, OR_ALL,
                  "Seconds between heartbeats on idle streams (default 15, 0 = none)"),
    AP_INIT_TAKE1("UploadProgressRetry", set_dir_int, (void *)1, OR_ALL,
                  "Reconnect delay advertised to SSE clients, in ms (default 3000)"),
    AP_INIT_TAKE1("UploadProgressThrottle", set_throttle, NULL, OR_ALL,
                  "Smallest progress step, in percent, sent to a connection (default 1)"),
    AP_INIT_TAKE1("UploadProgressPublishRate", set_publish_rate, NULL, OR_ALL,
                  "Events per second one child accepts on a publish location before "
                  "answering 429 (default 0 = no limit)"),
    AP_INIT_TAKE1("UploadProgressMaxEventSize", set_dir_size, (void *)0, OR_ALL,
                  "Largest accepted event in bytes (default 64K)"),
    AP_INIT_TAKE1("UploadProgressSendQueue", set_dir_size, (void *)1, OR_ALL,
                  "Bytes queued for one connection before it is treated as slow (default 256K)"),
    AP_INIT_TAKE1("UploadProgressWSMaxMessage", set_dir_size, (void *)2, OR_ALL,
                  "Largest WebSocket message a client may send, in bytes (default 64K)"),
    AP_INIT_TAKE1("UploadProgressWSResumeWait", set_dir_int, (void *)6, OR_ALL,
                  "Milliseconds (plus two round trips) a new WebSocket holds live "
                  "messages for a first-message resume (default 5, 0 = none)"),
    AP_INIT_ITERATE("UploadProgressAllowOrigin", add_origin, NULL, OR_AUTHCFG | RSRC_CONF,
                    "Origins (scheme://host[:port], *.domain wildcards, null, or *) "
                    "allowed to open WebSockets; default: the request's own host"),
    AP_INIT_FLAG("UploadProgressAsync", set_async, NULL, OR_ALL,
                 "On: streams are handed to the per-child reactor where the MPM can "
                 "suspend them (default); Off: each stream keeps its worker thread"),
    AP_INIT_TAKE1("UploadProgressWriteTimeout", set_dir_int, (void *)3, OR_ALL,
                  "Seconds a stream's client may leave output unread before it is "
                  "closed (default 30)"),
    AP_INIT_TAKE1("UploadProgressMaxConnectionsPerUser", set_dir_int, (void *)4, OR_ALL,
                  "Open streams one user may hold across the server (default 32, "
                  "0 = no limit); more get 429"),
    AP_INIT_TAKE1("UploadProgressHTTP2Streams", set_h2_streams, NULL, OR_ALL,
                  "SSE streams and long polls one HTTP/2 connection may hold: auto "
                  "(default: one less than mod_http2 processes of a connection), N, "
                  "or 0 = no limit; more get 503 http2_streams_busy"),
    AP_INIT_TAKE23("UploadProgressJWTKey", add_key, NULL, OR_AUTHCFG | RSRC_CONF,
                   "ALG SOURCE [KID]: a verification key; SOURCE is file:PATH, env:NAME or a path"),
    AP_INIT_TAKE_ARGV("UploadProgressJWKS", add_jwks, NULL, OR_AUTHCFG | RSRC_CONF,
                      "SOURCE [refresh=S] [min-refresh=S] [timeout=MS] [ca=FILE] [hs=on]: "
                      "verification keys from a JWKS (https:// URL, loopback http:// URL, "
                      "file, or discover)"),
    AP_INIT_TAKE1("UploadProgressJWKSCache", set_jwks_cache, NULL, RSRC_CONF,
                  "File keeping the last good JWKS of each URL source for a cold start"),
    DIR_STR("UploadProgressJWTIssuer", issuer, "Required iss claim"),
    DIR_STR("UploadProgressJWTAudience", audience, "Required aud claim"),
    AP_INIT_TAKE1("UploadProgressJWTLeeway", set_dir_int, (void *)2, OR_AUTHCFG | RSRC_CONF,
                  "Seconds of clock skew allowed on exp and nbf (default 30)"),
    AP_INIT_FLAG("UploadProgressJWTRequireExp", set_require_exp, NULL, OR_AUTHCFG | RSRC_CONF,
                 "On (default): tokens without an exp claim are refused"),
    AP_INIT_TAKE1("UploadProgressJWTMaxAge", set_dir_int, (void *)5, OR_AUTHCFG | RSRC_CONF,
                  "Longest lifetime in seconds a token may have (exp - iat), and the "
                  "longest it is accepted after iat (default 0 = no bound)"),
    DIR_STR("UploadProgressJWTUserClaim", user_claim, "Claim naming the user (default sub)"),
    AP_INIT_TAKE1("UploadProgressJWTTokenParam", set_token_param, NULL,
                  OR_AUTHCFG | RSRC_CONF, "Query parameter carrying the token (default token)"),
    DIR_STR("UploadProgressJWTCookie", cookie,
            "Cookie carrying the token (default upload_progress_token)"),
    DIR_STR("UploadProgressJWTScopeClaim", scope_claim,
            "Claim holding scopes such as progress:publish (default scope)"),
    DIR_STR("UploadProgressJWTGrantClaim", grant_claim,
            "Claim listing extra projects/jobs/sessions/files the user may watch (default upl)"),
    AP_INIT_TAKE2("UploadProgressJWTIdClaim", add_id_claim, NULL, OR_AUTHCFG | RSRC_CONF,
                  "SCOPE CLAIM: the claim CLAIM (a string, or an array of strings) grants "
                  "those ids of SCOPE (session, job, project or file); several allowed"),
    AP_INIT_FLAG("UploadProgressRequireGrant", set_require_grant, NULL, OR_ALL,
                 "On: a stream narrowed to a session/job/project/file its token does not "
                 "grant is refused (403; WebSocket subscribe: forbidden); Off (default): it "
                 "carries the user's own messages of that id"),
    AP_INIT_TAKE12("UploadProgressRedisScopeChannel", add_scope_channel, NULL, RSRC_CONF,
                   "SCOPE PREFIX: channels PREFIX{id} address owner-less messages to that "
                   "session/job/project/file (default upload-session: job: project:); none: "
                   "no channel does"),
    AP_INIT_TAKE1("UploadProgressTrack", set_track, NULL, OR_ALL,
                  "On: count request bodies carrying X-Progress-ID; All: every request "
                  "body; Off (default)"),
    AP_INIT_FLAG("TrackUploads", set_track_flag, NULL, OR_ALL,
                 "Old module's directive: same as UploadProgressTrack On|Off"),
    AP_INIT_TAKE12("ReportUploads", set_report_flag, NULL, OR_ALL,
                   "Old module's directive: On answers here with the JSON progress "
                   "report; On JSONP also answers ?callback= requests"),
    AP_INIT_TAKE1("UploadProgressTrackExpire", set_track_expire, NULL, OR_ALL,
                  "Seconds a finished upload's report stays readable (default 60)"),
    AP_INIT_TAKE1("UploadProgressTrackSlots", set_track_slots, NULL, RSRC_CONF,
                  "Uploads whose report is kept at once in shared memory (default 1024)"),
    AP_INIT_TAKE1("UploadProgressSharedMemorySize", set_track_shm_size, NULL, RSRC_CONF,
                  "Old module's directive: bytes of shared memory for upload reports"),
    { NULL }
};
