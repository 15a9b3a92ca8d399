/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_redis_url.h"

#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, s+n): passwords may hold '@', ':' or '/'. */
static const char *pct_decode(apr_pool_t *p, const char *s, apr_size_t n, const char **err)
{
    char *out = apr_palloc(p, n + 1), *w = out;
    apr_size_t i;
    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= n) {
                *err = "a '%' escape in the URL is cut short";
                return NULL;
            }
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                *err = "the URL holds an invalid '%' escape";
                return NULL;
            }
            *w++ = (char)(hi * 16 + lo);
            i += 2;
        }
        else {
            *w++ = s[i];
        }
    }
    *w = '\0';
    return out;
}

static int parse_num(const char *s, apr_size_t n, long max, long *out)
{
    long v = 0;
    apr_size_t i;
    if (n == 0 || n > 10) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (!apr_isdigit(s[i])) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* "db=N&password=P&user=U" (unix sockets have no other place for them). */
static const char *parse_query(apr_pool_t *p, const char *q, upm_redis_url *u)
{
    const char *err = NULL;
    while (*q) {
        const char *amp = strchr(q, '&');
        apr_size_t n = amp ? (apr_size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        apr_size_t kl = eq ? (apr_size_t)(eq - q) : n;
        const char *v = eq ? eq + 1 : q + n;
        apr_size_t vl = eq ? n - kl - 1 : 0;

        if (!eq) {
            return apr_psprintf(p, "URL parameter '%.*s' has no value", (int)n, q);
        }
        if (kl == 2 && strncmp(q, "db", 2) == 0) {
            long db;
            if (parse_num(v, vl, 2147483647L, &db) != 0) {
                return apr_psprintf(p, "db must be a number, not '%.*s'", (int)vl, v);
            }
            u->db = (int)db;
        }
        else if (kl == 8 && strncmp(q, "password", 8) == 0) {
            if (!(u->password = pct_decode(p, v, vl, &err))) {
                return err;
            }
        }
        else if (kl == 4 && strncmp(q, "user", 4) == 0) {
            if (!(u->user = pct_decode(p, v, vl, &err))) {
                return err;
            }
        }
        else {
            return apr_psprintf(p, "unknown URL parameter '%.*s' (known: db, password, "
                                "user)", (int)kl, q);
        }
        q += n;
        if (*q == '&') {
            q++;
        }
    }
    return NULL;
}

static const char *parse_unix(apr_pool_t *p, const char *rest, upm_redis_url *u)
{
    const char *qm;
    /* unix:/path and unix:///path are both common spellings. */
    if (strncmp(rest, "//", 2) == 0) {
        rest += 2;
    }
    if (*rest != '/') {
        return "a unix: URL needs an absolute socket path, e.g. unix:/run/redis/redis.sock";
    }
    qm = strchr(rest, '?');
    u->is_unix = 1;
    u->path = qm ? apr_pstrmemdup(p, rest, (apr_size_t)(qm - rest)) : apr_pstrdup(p, rest);
    if (strlen(u->path) < 2) {
        return "a unix: URL needs an absolute socket path, e.g. unix:/run/redis/redis.sock";
    }
    return qm ? parse_query(p, qm + 1, u) : NULL;
}

static const char *parse_tcp(apr_pool_t *p, const char *rest, upm_redis_url *u)
{
    const char *end = rest + strcspn(rest, "/?#");
    const char *at = NULL, *c, *hp, *err = NULL;
    long v;

    if (*end == '#') {
        return "a Redis URL has no fragment ('#'); percent-encode it as %23 in a password";
    }
    for (c = rest; c < end; c++) {
        if (*c == '@') {
            at = c;         /* the last '@' ends the user info */
        }
    }
    if (at) {
        const char *colon = memchr(rest, ':', (apr_size_t)(at - rest));
        if (!colon) {
            /* redis://secret@host: Redis has a password before users. */
            if (!(u->password = pct_decode(p, rest, (apr_size_t)(at - rest), &err))) {
                return err;
            }
        }
        else {
            if (colon > rest
                && !(u->user = pct_decode(p, rest, (apr_size_t)(colon - rest), &err))) {
                return err;
            }
            if (!(u->password = pct_decode(p, colon + 1, (apr_size_t)(at - colon - 1),
                                           &err))) {
                return err;
            }
        }
        if (u->password && !*u->password) {
            u->password = NULL;
        }
        hp = at + 1;
    }
    else {
        hp = rest;
    }

    if (*hp == '[') {
        const char *rb = memchr(hp, ']', (apr_size_t)(end - hp));
        if (!rb || rb == hp + 1) {
            return "an IPv6 address in a Redis URL needs its closing ']'";
        }
        u->host = apr_pstrmemdup(p, hp + 1, (apr_size_t)(rb - hp - 1));
        c = rb + 1;
        if (c < end && *c != ':') {
            return "unexpected text after the IPv6 address in the Redis URL";
        }
    }
    else {
        c = memchr(hp, ':', (apr_size_t)(end - hp));
        if (!c) {
            c = end;
        }
        u->host = apr_pstrmemdup(p, hp, (apr_size_t)(c - hp));
        for (hp = u->host; *hp; hp++) {
            if (!apr_isalnum(*hp) && *hp != '.' && *hp != '-' && *hp != '_') {
                return apr_psprintf(p, "invalid host name '%s' in the Redis URL", u->host);
            }
        }
    }
    if (!*u->host) {
        u->host = "127.0.0.1";
    }
    if (c < end && *c == ':') {
        if (parse_num(c + 1, (apr_size_t)(end - c - 1), 65535, &v) != 0 || v == 0) {
            return apr_psprintf(p, "the port in the Redis URL must be 1 to 65535, not '%.*s'",
                                (int)(end - c - 1), c + 1);
        }
        u->port = (int)v;
    }
    if (*end == '/') {
        const char *db = end + 1;
        apr_size_t n = strcspn(db, "?");
        if (n) {
            if (parse_num(db, n, 2147483647L, &v) != 0) {
                return apr_psprintf(p, "the database in the Redis URL must be a number, "
                                    "not '%.*s'", (int)n, db);
            }
            u->db = (int)v;
        }
        end = db + n;
    }
    if (*end == '?') {
        return parse_query(p, end + 1, u);
    }
    return NULL;
}

const char *upm_redis_url_parse(apr_pool_t *p, const char *s, upm_redis_url *u)
{
    memset(u, 0, sizeof(*u));
    u->port = UPM_REDIS_DEFAULT_PORT;
    if (!s || !*s) {
        return "the Redis URL is empty";
    }
    if (strncasecmp(s, "rediss://", 9) == 0) {
        u->tls = 1;
        return parse_tcp(p, s + 9, u);
    }
    if (strncasecmp(s, "redis://", 8) == 0) {
        return parse_tcp(p, s + 8, u);
    }
    if (strncasecmp(s, "unix:", 5) == 0) {
        return parse_unix(p, s + 5, u);
    }
    return apr_psprintf(p, "'%s' is not a Redis URL: use redis://host:port/db or "
                        "unix:/path/to/socket", s);
}

const char *upm_redis_url_display(apr_pool_t *p, const upm_redis_url *u)
{
    const char *auth = "";
    if (u->password) {
        auth = u->user ? apr_pstrcat(p, u->user, ":***@", NULL) : ":***@";
    }
    if (u->is_unix) {
        return apr_psprintf(p, "unix:%s?db=%d%s", u->path, u->db,
                            u->password ? "&password=***" : "");
    }
    return apr_psprintf(p, "%s://%s%s%s%s:%d/%d", u->tls ? "rediss" : "redis", auth, strchr(u->host, ':') ? "[" : "",
                        u->host, strchr(u->host, ':') ? "]" : "", u->port, u->db);
}

const char *upm_redis_tls_opts_parse(apr_pool_t *p, int argc, char *const *argv,
                                     upm_redis_tls_opts *o)
{
    int i;
    memset(o, 0, sizeof(*o));
    o->verify = 1;
    for (i = 0; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        const char *v = eq ? eq + 1 : NULL;
        apr_size_t kl = eq ? (apr_size_t)(eq - a) : strlen(a);
        const char **slot = NULL;

        if (!eq || !*v) {
            return apr_psprintf(p, "'%s' is not KEY=VALUE (keys: ca, cert, key, servername, "
                                "verify)", a);
        }
        if (kl == 2 && strncmp(a, "ca", 2) == 0) {
            slot = &o->ca;
        }
        else if (kl == 4 && strncmp(a, "cert", 4) == 0) {
            slot = &o->cert;
        }
        else if (kl == 3 && strncmp(a, "key", 3) == 0) {
            slot = &o->key;
        }
        else if (kl == 10 && strncmp(a, "servername", 10) == 0) {
            slot = &o->servername;
        }
        else if (kl == 6 && strncmp(a, "verify", 6) == 0) {
            if (strcasecmp(v, "on") == 0) {
                o->verify = 1;
            }
            else if (strcasecmp(v, "off") == 0) {
                o->verify = 0;
            }
            else {
                return apr_psprintf(p, "verify is on or off, not '%s'", v);
            }
            continue;
        }
        else {
            return apr_psprintf(p, "unknown option '%.*s' (keys: ca, cert, key, servername, "
                                "verify)", (int)kl, a);
        }
        if (*slot) {
            return apr_psprintf(p, "%.*s is given twice", (int)kl, a);
        }
        *slot = apr_pstrdup(p, v);
    }
    if (!o->cert != !o->key) {
        return "cert= and key= go together (a client certificate and its private key)";
    }
    return NULL;
}

const char *upm_redis_sentinel_parse(apr_pool_t *p, int argc, char *const *argv,
                                     upm_redis_sentinel_conf *o)
{
    int i;
    memset(o, 0, sizeof(*o));
    if (argc < 2) {
        return "needs the master name and at least one sentinel host:port";
    }
    if (!*argv[0] || strlen(argv[0]) > 128 || strpbrk(argv[0], " \t\r\n=:")) {
        return apr_psprintf(p, "'%s' is not a master name", argv[0]);
    }
    o->master = apr_pstrdup(p, argv[0]);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '='), *err = NULL;
        if (eq) {
            apr_size_t kl = (apr_size_t)(eq - a);
            const char *v = eq + 1;
            if (kl == 4 && strncmp(a, "user", 4) == 0 && *v) {
                o->user = apr_pstrdup(p, v);
            }
            else if (kl == 8 && strncmp(a, "password", 8) == 0 && *v) {
                o->password = apr_pstrdup(p, v);
            }
            else if (kl == 3 && strncmp(a, "tls", 3) == 0
                     && (strcasecmp(v, "on") == 0 || strcasecmp(v, "off") == 0)) {
                o->tls = strcasecmp(v, "on") == 0;
            }
            else {
                return apr_psprintf(p, "unknown or empty option '%s' (user=, password=, "
                                    "tls=on|off)", a);
            }
            continue;
        }
        if (o->n == UPM_SENTINEL_MAX) {
            return apr_psprintf(p, "at most %d sentinels", UPM_SENTINEL_MAX);
        }
        {
            /* host[:port], IPv6 in []: the URL parser knows these. */
            upm_redis_url u;
            memset(&u, 0, sizeof(u));
            u.port = UPM_SENTINEL_DEFAULT_PORT;
            if ((err = parse_tcp(p, a, &u)) || u.password || u.db || strchr(a, '/')) {
                return apr_psprintf(p, "'%s' is not a sentinel host:port", a);
            }
            o->host[o->n] = u.host;
            o->port[o->n] = u.port;
            o->n++;
        }
    }
    if (o->n == 0) {
        return "needs at least one sentinel host:port";
    }
    if (o->user && !o->password) {
        return "user= needs password=";
    }
    return NULL;
}
