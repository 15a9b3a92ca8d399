/* SPDX-License-Identifier: Apache-2.0 */
/* UploadProgressJWKS: key sets fetched from identity providers.
 *
 * Who does what:
 *   - the parent, in post_config, lays out one shared-memory slot per
 *     source (the raw document of the last good set), carries the slots
 *     of the previous generation over (graceful restart), reads file
 *     sources, and fills slots still empty from the disk cache;
 *   - one child at a time (mod_watchdog's singleton instance) fetches the
 *     URL sources with libcurl when due, checks the document with the
 *     parser, and publishes it into its slot under a sequence counter
 *     (a seqlock: one writer, readers retry), then rewrites the cache;
 *   - every child (a per-child watchdog) notices a new sequence, parses
 *     the document outside any request and swaps its key set in;
 *   - a request takes a reference on the current sets and verifies.
 * So a fetch never holds a request, a failed or malformed fetch leaves
 * the last good set in place, and the set outlives graceful restarts. */

#include "upm_jwks_fetch.h"
#include "upm_jwks.h"
#include "upm_jwt.h"
#include "upm_config.h"

#include "http_log.h"
#include "http_core.h"
#include "mod_watchdog.h"
#include <apr_file_io.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <errno.h>

APLOG_USE_MODULE(upload_progress);

#define SRC_FILE     0
#define SRC_URL      1
#define SRC_DISCOVER 2

#define ID_MAX 1024
#define SEG_KEY "upm_jwks_segment"
#define FETCH_WD "upm-jwks-fetch"
#define LOAD_WD "upm-jwks-load"
/* How often the fetcher looks at what is due, and children at new sets:
 * a rotation is seen within a refresh plus this. */
#define TICK (APR_USEC_PER_SEC / 5)

typedef struct upm_jwks_src {
    int kind;
    const char *id;             /* URL, discovery URL or absolute path */
    int refresh;                /* seconds */
    int min_refresh;            /* seconds */
    int timeout_ms;
    const char *ca;             /* NULL: the system's trust store */
    int allow_hs;
} upm_jwks_src;

/* One source in shared memory.  Only the fetcher writes a slot (the
 * parent before any child exists); `want` is set by any request. */
typedef struct {
    char id[ID_MAX];
    int kind;
    int allow_hs;
    apr_uint32_t seq;           /* odd while the document is rewritten */
    apr_uint32_t len;
    apr_uint32_t want;          /* an unknown kid was seen */
    int failing;                /* the last attempt failed (logged once) */
    apr_time_t attempted;       /* last fetch attempt, 0: never */
    apr_time_t succeeded;       /* last good fetch, 0: none this run */
    char jwks_uri[ID_MAX];      /* discover: the provider's jwks_uri */
    char doc[UPM_JWKS_MAX_DOC];
} jwks_slot;

typedef struct {
    apr_shm_t *shm;
    int n;
    jwks_slot *slots;
} jwks_seg;

/* A child's parsed set; freed when the last request using it ends. */
typedef struct {
    apr_pool_t *pool;
    apr_array_header_t *keys;
    int refs;
} jwks_held;

typedef struct {
    apr_uint32_t seq;           /* sequence parsed into held */
    jwks_held *held;
} jwks_local;

/* Configuration of this generation (reset in pre_config). */
static apr_array_header_t *sources;     /* upm_jwks_src */
static const char *cache_path;
/* The parent's segment; children inherit it. */
static jwks_seg *seg;
/* Per child. */
static jwks_local *local;
static apr_thread_mutex_t *local_lock;

static APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *wd_get_instance;
static APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *wd_register_callback;

/* ---- configuration ---------------------------------------------------- */

static const char *opt_int(apr_pool_t *p, const char *name, const char *v, long min,
                           long max, int *out)
{
    char *end;
    long x;

    errno = 0;
    x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < min || x > max) {
        return apr_psprintf(p, "UploadProgressJWKS: %s must be an integer from %ld to "
                            "%ld, not '%s'", name, min, max, v);
    }
    *out = (int)x;
    return NULL;
}

const char *upm_jwks_fetch_source_add(cmd_parms *cmd, int argc, char *const argv[],
                                      const char *issuer, int *index)
{
    upm_jwks_src s, *o;
    const char *err;
    int i;

    if (argc < 1) {
        return "UploadProgressJWKS takes a source: https://URL, a file, or discover";
    }
    memset(&s, 0, sizeof(s));
    s.refresh = UPM_JWKS_DEFAULT_REFRESH;
    s.min_refresh = UPM_JWKS_DEFAULT_MIN_REFRESH;
    s.timeout_ms = UPM_JWKS_DEFAULT_TIMEOUT_MS;
    if (strcasecmp(argv[0], "discover") == 0) {
        apr_size_t n;

        if (!issuer) {
            return "UploadProgressJWKS discover needs UploadProgressJWTIssuer set before "
                   "it in the same section";
        }
        n = strlen(issuer);
        while (n > 0 && issuer[n - 1] == '/') {
            n--;
        }
        s.kind = SRC_DISCOVER;
        s.id = apr_psprintf(cmd->pool, "%.*s/.well-known/openid-configuration", (int)n,
                            issuer);
        if ((err = upm_jwks_url_check(cmd->temp_pool, s.id))) {
            return apr_psprintf(cmd->pool, "UploadProgressJWKS discover: the issuer %s: %s",
                                issuer, err);
        }
    }
    else if (strncasecmp(argv[0], "https://", 8) == 0
             || strncasecmp(argv[0], "http://", 7) == 0) {
        s.kind = SRC_URL;
        s.id = apr_pstrdup(cmd->pool, argv[0]);
        if ((err = upm_jwks_url_check(cmd->temp_pool, s.id))) {
            return apr_psprintf(cmd->pool, "UploadProgressJWKS %s: %s", argv[0], err);
        }
    }
    else {
        const char *path = strncmp(argv[0], "file:", 5) == 0 ? argv[0] + 5 : argv[0];
        s.kind = SRC_FILE;
        s.id = ap_server_root_relative(cmd->pool, path);
        if (!s.id || !*path) {
            return apr_psprintf(cmd->pool, "UploadProgressJWKS: invalid path '%s'", argv[0]);
        }
    }
    if (strlen(s.id) >= ID_MAX) {
        return "UploadProgressJWKS: the source is longer than 1023 characters";
    }
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        const char *v = eq ? eq + 1 : "";
        apr_size_t kl = eq ? (apr_size_t)(eq - a) : strlen(a);

        if (kl == 7 && !strncasecmp(a, "refresh", 7)) {
            err = opt_int(cmd->pool, "refresh", v, 1, 86400, &s.refresh);
        }
        else if (kl == 11 && !strncasecmp(a, "min-refresh", 11)) {
            err = opt_int(cmd->pool, "min-refresh", v, 1, 3600, &s.min_refresh);
        }
        else if (kl == 7 && !strncasecmp(a, "timeout", 7)) {
            err = opt_int(cmd->pool, "timeout", v, 100, 60000, &s.timeout_ms);
        }
        else if (kl == 2 && !strncasecmp(a, "ca", 2) && *v) {
            s.ca = ap_server_root_relative(cmd->pool, v);
            err = s.ca ? NULL : "UploadProgressJWKS: invalid ca= path";
        }
        else if (kl == 2 && !strncasecmp(a, "hs", 2)
                 && (!strcasecmp(v, "on") || !strcasecmp(v, "off"))) {
            s.allow_hs = !strcasecmp(v, "on");
            err = NULL;
        }
        else {
            err = apr_psprintf(cmd->pool, "UploadProgressJWKS: unknown option '%s' (refresh=S, "
                               "min-refresh=S, timeout=MS, ca=FILE, hs=on|off)", a);
        }
        if (err) {
            return err;
        }
    }
    if (s.allow_hs && s.kind != SRC_FILE) {
        /* A set fetched over the network is published to anyone: an HMAC
         * secret in it signs for everyone who can read it. */
        return "UploadProgressJWKS: hs=on is only allowed for a file source";
    }
    if (!sources) {
        sources = apr_array_make(cmd->pool, 4, sizeof(upm_jwks_src));
    }
    for (i = 0; i < sources->nelts; i++) {
        o = &APR_ARRAY_IDX(sources, i, upm_jwks_src);
        /* hs=on and off of one file are two sets: the same document gives
         * different keys. */
        if (o->kind == s.kind && o->allow_hs == s.allow_hs && strcmp(o->id, s.id) == 0) {
            if (o->refresh != s.refresh || o->min_refresh != s.min_refresh
                || o->timeout_ms != s.timeout_ms
                || (o->ca == NULL) != (s.ca == NULL) || (o->ca && strcmp(o->ca, s.ca))) {
                return apr_psprintf(cmd->pool, "UploadProgressJWKS %s is configured twice "
                                    "with different options", s.id);
            }
            *index = i;
            return NULL;
        }
    }
    APR_ARRAY_PUSH(sources, upm_jwks_src) = s;
    *index = sources->nelts - 1;
    return NULL;
}

const char *upm_jwks_fetch_set_cache(cmd_parms *cmd, const char *path)
{
    cache_path = ap_server_root_relative(cmd->pool, path);
    return cache_path ? NULL : "UploadProgressJWKSCache: invalid path";
}

static int upm_jwks_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    sources = NULL;
    cache_path = NULL;
    return OK;
}

/* ---- the shared slots ------------------------------------------------- */

static apr_uint32_t seq_load(const jwks_slot *sl)
{
    return __atomic_load_n(&sl->seq, __ATOMIC_ACQUIRE);
}

/* The one writer of a slot's document. */
static void slot_publish(jwks_slot *sl, const char *doc, apr_size_t len)
{
    apr_uint32_t s = sl->seq;

    __atomic_store_n(&sl->seq, s + 1, __ATOMIC_SEQ_CST);
    memcpy(sl->doc, doc, len);
    sl->len = (apr_uint32_t)len;
    __atomic_store_n(&sl->seq, s + 2, __ATOMIC_SEQ_CST);
}

static int slot_same(const jwks_slot *sl, const char *doc, apr_size_t len)
{
    return sl->len == len && memcmp(sl->doc, doc, len) == 0;
}

static const char *read_file(apr_pool_t *p, const char *path, char **doc, apr_size_t *len)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;
    char e[120];
    char *buf;
    apr_size_t n;

    rv = apr_file_open(&f, path, APR_READ | APR_BINARY, 0, p);
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
        if (rv != APR_SUCCESS) {
            apr_file_close(f);
        }
    }
    if (rv != APR_SUCCESS) {
        return apr_psprintf(p, "cannot read %s: %s", path, apr_strerror(rv, e, sizeof(e)));
    }
    if (fi.size > UPM_JWKS_MAX_DOC) {
        apr_file_close(f);
        return apr_psprintf(p, "%s is larger than 2 MB", path);
    }
    n = (apr_size_t)fi.size;
    buf = apr_palloc(p, n + 1);
    rv = apr_file_read_full(f, buf, n, &n);
    apr_file_close(f);
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        return apr_psprintf(p, "cannot read %s", path);
    }
    buf[n] = '\0';
    *doc = buf;
    *len = n;
    return NULL;
}

/* Loads the cache file into the slots a fresh segment left empty. */
static void cache_load(apr_pool_t *p, server_rec *s)
{
    json_t *root;
    json_error_t jerr;
    int i;

    if (!cache_path) {
        return;
    }
    root = json_load_file(cache_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, APLOGNO(13954)
                     "UploadProgressJWKSCache %s not read (%s): fresh fetches only",
                     cache_path, jerr.text);
        return;
    }
    for (i = 0; i < seg->n; i++) {
        jwks_slot *sl = &seg->slots[i];
        json_t *v;
        upm_jwks_set set;
        const char *err;

        if (sl->kind == SRC_FILE || sl->len) {
            continue;
        }
        v = json_object_get(root, sl->id);
        if (!json_is_string(v) || json_string_length(v) > UPM_JWKS_MAX_DOC) {
            continue;
        }
        err = upm_jwks_parse(p, json_string_value(v), json_string_length(v), sl->allow_hs,
                             &set);
        if (err) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, APLOGNO(13955)
                         "UploadProgressJWKS %s: cached set in %s refused: %s", sl->id,
                         cache_path, err);
            continue;
        }
        slot_publish(sl, json_string_value(v), json_string_length(v));
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, APLOGNO(13956)
                     "UploadProgressJWKS %s: starting with the cached set from %s "
                     "(%d keys) until the provider answers", sl->id, cache_path,
                     set.keys->nelts);
    }
    json_decref(root);
}

/* Rewrites the cache with every fetched slot (by the fetcher, the only
 * writer, so the documents are stable here). */
static void cache_save(apr_pool_t *p, server_rec *s)
{
    json_t *root = json_object();
    const char *tmp;
    int i, fails = 0;

    if (!cache_path || !root) {
        json_decref(root);
        return;
    }
    for (i = 0; i < seg->n; i++) {
        jwks_slot *sl = &seg->slots[i];
        if (sl->kind != SRC_FILE && sl->len) {
            json_object_set_new(root, sl->id, json_stringn(sl->doc, sl->len));
        }
    }
    /* rename() makes the new file appear whole: a crash mid-write never
     * leaves a cold start with half a cache. */
    tmp = apr_psprintf(p, "%s.%" APR_PID_T_FMT ".tmp", cache_path, getpid());
    if (json_dump_file(root, tmp, JSON_COMPACT) != 0) {
        fails = 1;
    }
    else if (rename(tmp, cache_path) != 0) {
        fails = 1;
        unlink(tmp);
    }
    if (fails) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, errno, s, APLOGNO(13953)
                     "UploadProgressJWKSCache: cannot write %s (the directory must be "
                     "writable by the server's User)", cache_path);
    }
    json_decref(root);
}

static apr_status_t fetch_tick(int state, void *data, apr_pool_t *p);
static apr_status_t load_tick(int state, void *data, apr_pool_t *p);

static int start_watchdogs(apr_pool_t *pconf, server_rec *s)
{
    ap_watchdog_t *fetch_wd, *load_wd;

    /* The fetcher: one child at a time (singleton); the loader: each. */
    if (wd_get_instance(&fetch_wd, FETCH_WD, 0, 1, pconf) != APR_SUCCESS
        || wd_register_callback(fetch_wd, TICK, s, fetch_tick) != APR_SUCCESS
        || wd_get_instance(&load_wd, LOAD_WD, 0, 0, pconf) != APR_SUCCESS
        || wd_register_callback(load_wd, TICK, s, load_tick) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, APLOGNO(13963)
                     "UploadProgressJWKS: cannot start the background watchdogs");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

static int upm_jwks_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                server_rec *s)
{
    apr_pool_t *keep = s->process->pool;
    jwks_seg *old = NULL, *neu;
    apr_size_t size;
    apr_status_t rv;
    int i, j;

    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    apr_pool_userdata_get((void **)&old, SEG_KEY, keep);
    if (!sources || sources->nelts == 0) {
        seg = NULL;
        return OK;
    }
    wd_get_instance = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    wd_register_callback = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    if (!wd_get_instance || !wd_register_callback) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, APLOGNO(13957)
                     "UploadProgressJWKS needs mod_watchdog (LoadModule watchdog_module) "
                     "to fetch key sets in the background");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    {
        static int curl_ready;
        if (!curl_ready) {
            /* Before any thread exists: curl_global_init is not thread-safe. */
            if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, APLOGNO(13958)
                             "UploadProgressJWKS: libcurl failed to initialise");
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            curl_ready = 1;
        }
    }

    neu = apr_pcalloc(keep, sizeof(*neu));
    neu->n = sources->nelts;
    size = sizeof(jwks_slot) * (apr_size_t)neu->n;
    rv = apr_shm_create(&neu->shm, size, NULL, keep);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, APLOGNO(13959)
                     "UploadProgressJWKS: cannot create %" APR_SIZE_T_FMT " bytes of shared "
                     "memory", size);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    neu->slots = apr_shm_baseaddr_get(neu->shm);
    memset(neu->slots, 0, size);
    for (i = 0; i < neu->n; i++) {
        const upm_jwks_src *src = &APR_ARRAY_IDX(sources, i, upm_jwks_src);
        jwks_slot *sl = &neu->slots[i];

        apr_cpystrn(sl->id, src->id, sizeof(sl->id));
        sl->kind = src->kind;
        sl->allow_hs = src->allow_hs;
        /* The last good set of the previous generation, with its fetch
         * times, so a graceful restart neither loses keys nor refetches. */
        for (j = 0; old && j < old->n; j++) {
            jwks_slot *o = &old->slots[j];
            if (o->kind == sl->kind && o->allow_hs == sl->allow_hs
                && strcmp(o->id, sl->id) == 0 && !(seq_load(o) & 1) && o->len) {
                memcpy(sl->jwks_uri, o->jwks_uri, sizeof(sl->jwks_uri));
                sl->attempted = o->attempted;
                sl->succeeded = o->succeeded;
                sl->failing = o->failing;
                slot_publish(sl, o->doc, o->len);
                break;
            }
        }
        if (src->kind == SRC_FILE) {
            char *doc;
            apr_size_t len;
            upm_jwks_set set;
            const char *err = read_file(ptemp, src->id, &doc, &len);

            if (!err) {
                err = upm_jwks_parse(ptemp, doc, len, src->allow_hs, &set);
            }
            if (err) {
                ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, APLOGNO(13960)
                             "UploadProgressJWKS %s: %s", src->id, err);
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            if (!slot_same(sl, doc, len)) {
                slot_publish(sl, doc, len);
            }
            sl->attempted = sl->succeeded = apr_time_now();
        }
    }
    if (old) {
        /* Children of the old generation keep their own mapping. */
        apr_shm_destroy(old->shm);
    }
    seg = neu;
    apr_pool_userdata_set(seg, SEG_KEY, apr_pool_cleanup_null, keep);
    cache_load(ptemp, s);

    return start_watchdogs(pconf, s);
}

/* ---- fetching (the singleton child) ----------------------------------- */

typedef struct {
    char *data;
    apr_size_t len;
    int too_big;
} body_buf;

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    body_buf *b = userdata;
    size_t n = size * nmemb;
    char *grown;

    if (b->len + n > UPM_JWKS_MAX_DOC) {
        b->too_big = 1;
        return 0;               /* aborts the transfer */
    }
    grown = realloc(b->data, b->len + n + 1);
    if (!grown) {
        return 0;
    }
    b->data = grown;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* GET url: NULL and the body in pool memory, or why not. */
static const char *http_get(apr_pool_t *p, const upm_jwks_src *src, const char *url,
                            char **doc, apr_size_t *len)
{
    CURL *h = curl_easy_init();
    body_buf b = { NULL, 0, 0 };
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    const char *why = NULL;
    long code = 0;
    CURLcode rc;

    if (!h) {
        return "libcurl could not start a transfer";
    }
    hdrs = curl_slist_append(hdrs, "Accept: application/json, application/jwk-set+json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
    /* A redirect may only lead to https: the loopback exception is for
     * the URL the administrator wrote, not for where a server points. */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)src->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)src->timeout_ms);
    /* Threads: no SIGALRM-based resolver timeouts. */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (src->ca) {
        curl_easy_setopt(h, CURLOPT_CAINFO, src->ca);
    }
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE, (long)UPM_JWKS_MAX_DOC);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mod_upload_progress");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (b.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        why = "the document is larger than 2 MB";
    }
    else if (rc != CURLE_OK) {
        why = apr_psprintf(p, "%s", *errbuf ? errbuf : curl_easy_strerror(rc));
    }
    else if (code != 200) {
        why = apr_psprintf(p, "HTTP status %ld", code);
    }
    else {
        *doc = apr_pstrmemdup(p, b.data ? b.data : "", b.len);
        *len = b.len;
    }
    free(b.data);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return why;
}

static const char *fetch_source(apr_pool_t *p, const upm_jwks_src *src, jwks_slot *sl,
                                char **doc, apr_size_t *len, int *nkeys, upm_jwks_set *set)
{
    const char *url = src->id, *err;

    if (src->kind == SRC_FILE) {
        err = read_file(p, src->id, doc, len);
    }
    else {
        if (src->kind == SRC_DISCOVER) {
            char *ddoc;
            apr_size_t dlen;
            const char *uri;

            /* The configuration is fetched on each refresh as well: a
             * provider may move its jwks_uri. */
            if ((err = http_get(p, src, src->id, &ddoc, &dlen))
                || (err = upm_jwks_discovery_uri(p, ddoc, dlen, &uri))) {
                if (!sl->jwks_uri[0]) {
                    return apr_pstrcat(p, "discovery: ", err, NULL);
                }
                uri = sl->jwks_uri;
            }
            apr_cpystrn(sl->jwks_uri, uri, sizeof(sl->jwks_uri));
            url = sl->jwks_uri;
        }
        err = http_get(p, src, url, doc, len);
    }
    if (!err) {
        err = upm_jwks_parse(p, *doc, *len, src->allow_hs, set);
    }
    if (!err) {
        *nkeys = set->keys->nelts;
    }
    return err;
}

static apr_status_t fetch_tick(int state, void *data, apr_pool_t *p)
{
    server_rec *s = data;
    apr_time_t now;
    int i, saved = 0;

    if (state != AP_WATCHDOG_STATE_RUNNING || !seg) {
        return APR_SUCCESS;
    }
    for (i = 0; i < seg->n && i < sources->nelts; i++) {
        const upm_jwks_src *src = &APR_ARRAY_IDX(sources, i, upm_jwks_src);
        jwks_slot *sl = &seg->slots[i];
        apr_time_t floor_at, due;
        upm_jwks_set set;
        char *doc = NULL;
        apr_size_t len = 0;
        int nkeys = 0;
        const char *err;

        now = apr_time_now();
        floor_at = sl->attempted + apr_time_from_sec(src->min_refresh);
        /* A failure is retried at the floor, not after a whole refresh. */
        due = sl->attempted == 0 ? 0
            : sl->failing ? floor_at
            : sl->attempted + apr_time_from_sec(src->refresh);
        if (__atomic_load_n(&sl->want, __ATOMIC_RELAXED) && floor_at < due) {
            due = floor_at;
        }
        if (now < due) {
            continue;
        }
        __atomic_store_n(&sl->want, 0, __ATOMIC_RELAXED);
        sl->attempted = now;
        err = fetch_source(p, src, sl, &doc, &len, &nkeys, &set);
        if (err) {
            if (!sl->failing) {
                ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, APLOGNO(13950)
                             "UploadProgressJWKS %s: %s; the last good set (%s) stays in "
                             "use, retrying every %d s; logged once until it recovers",
                             src->id, err, sl->len ? "kept" : "none yet", src->min_refresh);
                sl->failing = 1;
            }
            continue;
        }
        if (sl->failing) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, APLOGNO(13951)
                         "UploadProgressJWKS %s: recovered", src->id);
            sl->failing = 0;
        }
        sl->succeeded = now;
        if (!slot_same(sl, doc, len)) {
            slot_publish(sl, doc, len);
            saved = 1;
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, APLOGNO(13952)
                         "UploadProgressJWKS %s: new set of %d keys%s%s", src->id, nkeys,
                         set.skipped ? "; ignored " : "",
                         set.skipped ? set.first_skip : "");
        }
    }
    if (saved) {
        cache_save(p, s);
    }
    return APR_SUCCESS;
}

/* ---- loading (every child) -------------------------------------------- */

static void held_release(jwks_held *h)
{
    if (h && --h->refs == 0) {
        apr_pool_destroy(h->pool);
    }
}

static apr_status_t load_tick(int state, void *data, apr_pool_t *p)
{
    server_rec *s = data;
    int i;

    if (state == AP_WATCHDOG_STATE_STOPPING || !seg || !local) {
        return APR_SUCCESS;
    }
    for (i = 0; i < seg->n; i++) {
        jwks_slot *sl = &seg->slots[i];
        apr_uint32_t s1 = seq_load(sl), s2, len;
        apr_pool_t *hp;
        jwks_held *h;
        upm_jwks_set set;
        char *copy;
        const char *err;

        if ((s1 & 1) || s1 == local[i].seq) {
            continue;
        }
        len = sl->len;
        if (len == 0 || len > UPM_JWKS_MAX_DOC) {
            continue;
        }
        /* Unmanaged: freed by whichever thread drops the last reference,
         * without touching the child pool's allocator. */
        if (apr_pool_create_unmanaged_ex(&hp, NULL, NULL) != APR_SUCCESS) {
            continue;
        }
        copy = apr_palloc(hp, len + 1);
        memcpy(copy, sl->doc, len);
        copy[len] = '\0';
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        s2 = seq_load(sl);
        if (s1 != s2) {
            apr_pool_destroy(hp);   /* rewritten meanwhile: next tick */
            continue;
        }
        err = upm_jwks_parse(hp, copy, len, sl->allow_hs, &set);
        if (err) {
            /* Checked before it was published, so only a parser change
             * between generations could get here. */
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, APLOGNO(13961)
                         "UploadProgressJWKS %s: shared set refused: %s", sl->id, err);
            apr_pool_destroy(hp);
            local[i].seq = s1;
            continue;
        }
        h = apr_pcalloc(hp, sizeof(*h));
        h->pool = hp;
        h->keys = set.keys;
        h->refs = 1;            /* the child's own reference */
        apr_thread_mutex_lock(local_lock);
        held_release(local[i].held);
        local[i].held = h;
        local[i].seq = s1;
        apr_thread_mutex_unlock(local_lock);
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, APLOGNO(13962)
                     "UploadProgressJWKS %s: %d keys in use", sl->id, set.keys->nelts);
    }
    return APR_SUCCESS;
}

static apr_status_t local_release_all(void *data)
{
    int i;

    if (!seg || !local) {
        return APR_SUCCESS;
    }
    apr_thread_mutex_lock(local_lock);
    for (i = 0; i < seg->n; i++) {
        held_release(local[i].held);
        local[i].held = NULL;
    }
    apr_thread_mutex_unlock(local_lock);
    return APR_SUCCESS;
}

static void upm_jwks_child_init(apr_pool_t *pchild, server_rec *s)
{
    if (!seg) {
        return;
    }
    if (apr_thread_mutex_create(&local_lock, APR_THREAD_MUTEX_DEFAULT, pchild)
        != APR_SUCCESS) {
        return;
    }
    local = apr_pcalloc(pchild, sizeof(*local) * (apr_size_t)seg->n);
    /* The sets the parent already had (files, cache, previous
     * generation) are usable from the first request on. */
    load_tick(AP_WATCHDOG_STATE_RUNNING, s, pchild);
    apr_pool_cleanup_register(pchild, NULL, local_release_all, apr_pool_cleanup_null);
}

/* ---- requests --------------------------------------------------------- */

typedef struct {
    jwks_held **held;
    int n;
} req_refs;

static apr_status_t req_release(void *data)
{
    req_refs *rr = data;
    int i;

    apr_thread_mutex_lock(local_lock);
    for (i = 0; i < rr->n; i++) {
        held_release(rr->held[i]);
    }
    apr_thread_mutex_unlock(local_lock);
    return APR_SUCCESS;
}

const apr_array_header_t *upm_jwks_fetch_keys(apr_pool_t *p, const apr_array_header_t *base,
                                              const apr_array_header_t *srcs)
{
    apr_array_header_t *all;
    req_refs *rr;
    int i, total = base ? base->nelts : 0;

    if (!srcs || !srcs->nelts || !seg || !local) {
        return base;
    }
    rr = apr_palloc(p, sizeof(*rr));
    rr->held = apr_palloc(p, sizeof(jwks_held *) * (apr_size_t)srcs->nelts);
    rr->n = 0;
    apr_thread_mutex_lock(local_lock);
    for (i = 0; i < srcs->nelts; i++) {
        int ix = APR_ARRAY_IDX(srcs, i, int);
        jwks_held *h = (ix >= 0 && ix < seg->n) ? local[ix].held : NULL;
        if (h) {
            h->refs++;
            rr->held[rr->n++] = h;
            total += h->keys->nelts;
        }
    }
    apr_thread_mutex_unlock(local_lock);
    apr_pool_cleanup_register(p, rr, req_release, apr_pool_cleanup_null);

    all = apr_array_make(p, total + 1, sizeof(upm_jwt_key *));
    if (base) {
        apr_array_cat(all, base);
    }
    for (i = 0; i < rr->n; i++) {
        apr_array_cat(all, rr->held[i]->keys);
    }
    return all;
}

void upm_jwks_fetch_unknown_kid(const apr_array_header_t *srcs)
{
    int i;

    if (!srcs || !seg) {
        return;
    }
    for (i = 0; i < srcs->nelts; i++) {
        int ix = APR_ARRAY_IDX(srcs, i, int);
        if (ix >= 0 && ix < seg->n && seg->slots[ix].kind != SRC_FILE) {
            __atomic_store_n(&seg->slots[ix].want, 1, __ATOMIC_RELAXED);
        }
    }
}

void upm_jwks_fetch_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(upm_jwks_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* Before mod_watchdog's own post_config (APR_HOOK_LAST), which starts
     * the instances that have callbacks. */
    ap_hook_post_config(upm_jwks_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(upm_jwks_child_init, NULL, NULL, APR_HOOK_MIDDLE);
}
