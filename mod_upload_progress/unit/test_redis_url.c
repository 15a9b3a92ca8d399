/* SPDX-License-Identifier: Apache-2.0 */
#include <apr_general.h>
#include <apr_strings.h>
#include "upm_redis_url.h"
#include "upm_test.h"

static apr_pool_t *p;

static const char *ok(const char *s, upm_redis_url *u)
{
    const char *err = upm_redis_url_parse(p, s, u);
    if (err) {
        fprintf(stderr, "unexpected refusal of %s: %s\n", s, err);
    }
    return err;
}

static void test_tcp(void)
{
    upm_redis_url u;
    UPM_CHECK(ok("redis://127.0.0.1:6391/2", &u) == NULL);
    UPM_CHECK_INT(u.is_unix, 0);
    UPM_CHECK_STR(u.host, "127.0.0.1");
    UPM_CHECK_INT(u.port, 6391);
    UPM_CHECK_INT(u.db, 2);
    UPM_CHECK(u.password == NULL && u.user == NULL);

    UPM_CHECK(ok("redis://redis.internal", &u) == NULL);
    UPM_CHECK_STR(u.host, "redis.internal");
    UPM_CHECK_INT(u.port, 6379);
    UPM_CHECK_INT(u.db, 0);

    UPM_CHECK(ok("REDIS://h:1/", &u) == NULL);
    UPM_CHECK_INT(u.port, 1);
    UPM_CHECK_INT(u.db, 0);

    UPM_CHECK(ok("redis://", &u) == NULL);
    UPM_CHECK_STR(u.host, "127.0.0.1");

    /* Password alone, user and password, escapes, '@' in the password. */
    UPM_CHECK(ok("redis://:s3cret@h:7000/1", &u) == NULL);
    UPM_CHECK(u.user == NULL);
    UPM_CHECK_STR(u.password, "s3cret");
    UPM_CHECK(ok("redis://app:pa%40ss%2Fw@h", &u) == NULL);
    UPM_CHECK_STR(u.user, "app");
    UPM_CHECK_STR(u.password, "pa@ss/w");
    UPM_CHECK(ok("redis://a:b@c@h:9", &u) == NULL);
    UPM_CHECK_STR(u.password, "b@c");
    UPM_CHECK_STR(u.host, "h");
    UPM_CHECK(ok("redis://token@h", &u) == NULL);
    UPM_CHECK_STR(u.password, "token");
    UPM_CHECK(ok("redis://:@h", &u) == NULL);
    UPM_CHECK(u.password == NULL);

    /* IPv6. */
    UPM_CHECK(ok("redis://[::1]:6390/3", &u) == NULL);
    UPM_CHECK_STR(u.host, "::1");
    UPM_CHECK_INT(u.port, 6390);
    UPM_CHECK_INT(u.db, 3);
    UPM_CHECK_STR(upm_redis_url_display(p, &u), "redis://[::1]:6390/3");

    /* The password never shows in logs. */
    UPM_CHECK(ok("redis://app:topsecret@h:1/4", &u) == NULL);
    UPM_CHECK_STR(upm_redis_url_display(p, &u), "redis://app:***@h:1/4");
    UPM_CHECK(strstr(upm_redis_url_display(p, &u), "topsecret") == NULL);

    /* db as a query parameter works for TCP too. */
    UPM_CHECK(ok("redis://h?db=5", &u) == NULL);
    UPM_CHECK_INT(u.db, 5);
}

static void test_unix(void)
{
    upm_redis_url u;
    UPM_CHECK(ok("unix:/run/redis/redis.sock", &u) == NULL);
    UPM_CHECK_INT(u.is_unix, 1);
    UPM_CHECK_STR(u.path, "/run/redis/redis.sock");
    UPM_CHECK_INT(u.db, 0);
    UPM_CHECK(ok("unix:///tmp/r.sock?db=3", &u) == NULL);
    UPM_CHECK_STR(u.path, "/tmp/r.sock");
    UPM_CHECK_INT(u.db, 3);
    UPM_CHECK(ok("unix:/tmp/r.sock?db=1&password=p%26q&user=u", &u) == NULL);
    UPM_CHECK_STR(u.password, "p&q");
    UPM_CHECK_STR(u.user, "u");
    UPM_CHECK_STR(upm_redis_url_display(p, &u), "unix:/tmp/r.sock?db=1&password=***");
}

static void test_refused(void)
{
    upm_redis_url u;
    const char *e;
    static const char *const bad[] = {
        "", "http://h", "h:6379", "redis://h:0", "redis://h:65536", "redis://h:x",
        "redis://h:/", "redis://h/db", "redis://h/-1", "redis://h/1x", "redis://[::1",
        "redis://[]:1", "redis://h h", "redis://h/1#x", "redis://:p%4@h", "redis://:p%zz@h",
        "redis://:p%00@h", "redis://h?foo=1", "redis://h?db", "unix:relative.sock",
        "unix:", "unix:/", "unix:/s?db=x", "redis://[::1]x:1", NULL
    };
    int i;
    for (i = 0; bad[i]; i++) {
        e = upm_redis_url_parse(p, bad[i], &u);
        if (!e) {
            fprintf(stderr, "accepted bad URL '%s'\n", bad[i]);
        }
        UPM_CHECK(e != NULL);
    }
    UPM_CHECK(upm_redis_url_parse(p, NULL, &u) != NULL);
    e = upm_redis_url_parse(p, "redis://h:70000", &u);
    UPM_CHECK(e && strstr(e, "1 to 65535"));
}

static void test_tls(void)
{
    upm_redis_url u;
    upm_redis_tls_opts o;
    const char *e;
    char *full[] = { "ca=/etc/ca.pem", "cert=/c.pem", "key=/k.pem", "servername=r.example",
                     "verify=off" };
    char *only_cert[] = { "cert=/c.pem" };
    char *twice[] = { "ca=/a", "ca=/b" };
    char *bad_verify[] = { "verify=maybe" };
    char *unknown[] = { "cafile=/a" };
    char *novalue[] = { "ca" };
    char *empty[] = { "ca=" };

    UPM_CHECK(ok("rediss://u:p%40w@redis.example:6380/3", &u) == NULL);
    UPM_CHECK_INT(u.tls, 1);
    UPM_CHECK_STR(u.host, "redis.example");
    UPM_CHECK_INT(u.port, 6380);
    UPM_CHECK_INT(u.db, 3);
    UPM_CHECK_STR(u.user, "u");
    UPM_CHECK_STR(u.password, "p@w");
    UPM_CHECK_STR(upm_redis_url_display(p, &u), "rediss://u:***@redis.example:6380/3");
    UPM_CHECK(ok("REDISS://[::1]", &u) == NULL);
    UPM_CHECK_INT(u.tls, 1);
    UPM_CHECK_INT(u.port, 6379);
    UPM_CHECK(ok("redis://h", &u) == NULL);
    UPM_CHECK_INT(u.tls, 0);
    UPM_CHECK_STR(upm_redis_url_display(p, &u), "redis://h:6379/0");
    UPM_CHECK(upm_redis_url_parse(p, "rediss://h:0", &u) != NULL);

    UPM_CHECK(upm_redis_tls_opts_parse(p, 0, NULL, &o) == NULL);
    UPM_CHECK(o.ca == NULL && o.cert == NULL && o.servername == NULL);
    UPM_CHECK_INT(o.verify, 1);
    UPM_CHECK(upm_redis_tls_opts_parse(p, 5, full, &o) == NULL);
    UPM_CHECK_STR(o.ca, "/etc/ca.pem");
    UPM_CHECK_STR(o.cert, "/c.pem");
    UPM_CHECK_STR(o.key, "/k.pem");
    UPM_CHECK_STR(o.servername, "r.example");
    UPM_CHECK_INT(o.verify, 0);
    e = upm_redis_tls_opts_parse(p, 1, only_cert, &o);
    UPM_CHECK(e && strstr(e, "go together"));
    e = upm_redis_tls_opts_parse(p, 2, twice, &o);
    UPM_CHECK(e && strstr(e, "twice"));
    e = upm_redis_tls_opts_parse(p, 1, bad_verify, &o);
    UPM_CHECK(e && strstr(e, "on or off"));
    e = upm_redis_tls_opts_parse(p, 1, unknown, &o);
    UPM_CHECK(e && strstr(e, "unknown option 'cafile'"));
    UPM_CHECK(upm_redis_tls_opts_parse(p, 1, novalue, &o) != NULL);
    UPM_CHECK(upm_redis_tls_opts_parse(p, 1, empty, &o) != NULL);
}

static void test_sentinel(void)
{
    upm_redis_sentinel_conf o;
    const char *e;
    char *good[] = { "mymaster", "127.0.0.1:26480", "s2.example", "[::1]:26481",
                     "password=pw", "tls=on" };
    char *none[] = { "mymaster", "password=pw" };
    char *badport[] = { "mymaster", "h:99999" };
    char *badname[] = { "my master", "h:1" };
    char *useronly[] = { "m", "h:1", "user=u" };
    char *unknown[] = { "m", "h:1", "auth=x" };

    UPM_CHECK(upm_redis_sentinel_parse(p, 6, good, &o) == NULL);
    UPM_CHECK_STR(o.master, "mymaster");
    UPM_CHECK_INT(o.n, 3);
    UPM_CHECK_STR(o.host[0], "127.0.0.1");
    UPM_CHECK_INT(o.port[0], 26480);
    UPM_CHECK_STR(o.host[1], "s2.example");
    UPM_CHECK_INT(o.port[1], 26379);
    UPM_CHECK_STR(o.host[2], "::1");
    UPM_CHECK_INT(o.port[2], 26481);
    UPM_CHECK_STR(o.password, "pw");
    UPM_CHECK(o.user == NULL);
    UPM_CHECK_INT(o.tls, 1);
    e = upm_redis_sentinel_parse(p, 2, none, &o);
    UPM_CHECK(e && strstr(e, "at least one sentinel"));
    UPM_CHECK(upm_redis_sentinel_parse(p, 2, badport, &o) != NULL);
    UPM_CHECK(upm_redis_sentinel_parse(p, 2, badname, &o) != NULL);
    UPM_CHECK(upm_redis_sentinel_parse(p, 3, useronly, &o) != NULL);
    e = upm_redis_sentinel_parse(p, 3, unknown, &o);
    UPM_CHECK(e && strstr(e, "auth=x"));
    UPM_CHECK(upm_redis_sentinel_parse(p, 1, good, &o) != NULL);
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&p, NULL);
    test_tcp();
    test_unix();
    test_refused();
    test_tls();
    test_sentinel();
    apr_pool_destroy(p);
    apr_terminate();
    UPM_TEST_DONE("test_redis_url");
}
