/* Where Redis is: parsing of the UploadProgressRedis URL.  Pure (APR only).
 *
 *   redis://[[user]:password@]host[:port][/db]
 *   unix:/path/to/redis.sock[?db=N][&password=P][&user=U]
 *
 * rediss:// is refused: hiredis 0.14 speaks no TLS, so a TLS link to Redis
 * goes through a local proxy (stunnel, haproxy) that this URL points at. */
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
} upm_redis_url;

/* NULL on success, else why the URL is refused (a sentence for the
 * configuration error). */
const char *upm_redis_url_parse(apr_pool_t *p, const char *s, upm_redis_url *out);

/* The URL for log lines, the password replaced by "***". */
const char *upm_redis_url_display(apr_pool_t *p, const upm_redis_url *u);

#endif
