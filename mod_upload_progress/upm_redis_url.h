/* SPDX-License-Identifier: Apache-2.0 */
/* Where Redis is: parsing of the UploadProgressRedis URL.  Pure (APR only).
 *
 *   redis://[[user]:password@]host[:port][/db]
 *   rediss://... (the same, over TLS: upm_redis_tls.c)
 *   unix:/path/to/redis.sock[?db=N][&password=P][&user=U]
 *
 * Also the options of UploadProgressRedisTLS. */
#ifndef UPM_REDIS_URL_H
#define UPM_REDIS_URL_H

#include <apr_pools.h>

#define UPM_REDIS_DEFAULT_PORT 6379

typedef struct upm_redis_url {
    int is_unix;
    const char *host;           /* TCP: name or address (IPv6 without []) */
    int port;
    const char *path;           /* unix: socket path */
    const char *user;           /* NULL: AUTH with the password alone */
    const char *password;       /* NULL: no AUTH */
    int db;                     /* SELECT; 0 is Redis' own default */
    int tls;                    /* rediss:// */
} upm_redis_url;

/* UploadProgressRedisTLS ca=FILE [cert=FILE key=FILE] [servername=NAME]
 * [verify=on|off] */
typedef struct upm_redis_tls_opts {
    const char *ca;             /* NULL: the system's trust store */
    const char *cert, *key;     /* a client certificate: both or neither */
    const char *servername;     /* NULL: the host of the URL */
    int verify;                 /* 1 unless verify=off */
} upm_redis_tls_opts;

/* NULL on success, else why the options are refused. */
const char *upm_redis_tls_opts_parse(apr_pool_t *p, int argc, char *const *argv,
                                     upm_redis_tls_opts *out);

/* NULL on success, else why the URL is refused (a sentence for the
 * configuration error). */
const char *upm_redis_url_parse(apr_pool_t *p, const char *s, upm_redis_url *out);

/* The URL for log lines, the password replaced by "***". */
const char *upm_redis_url_display(apr_pool_t *p, const upm_redis_url *u);

/* UploadProgressRedisSentinel MASTER-NAME host:port [host:port ...]
 * [user=U] [password=P] [tls=on|off] */
#define UPM_SENTINEL_MAX 16
#define UPM_SENTINEL_DEFAULT_PORT 26379
typedef struct upm_redis_sentinel_conf {
    const char *master;
    int n;
    const char *host[UPM_SENTINEL_MAX];
    int port[UPM_SENTINEL_MAX];
    const char *user, *password;    /* the sentinels' own AUTH */
    int tls;                        /* the sentinels speak TLS (UploadProgressRedisTLS) */
} upm_redis_sentinel_conf;

const char *upm_redis_sentinel_parse(apr_pool_t *p, int argc, char *const *argv,
                                     upm_redis_sentinel_conf *out);

#endif
