/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_redis_tls.h"

#include "http_log.h"
#include <apr_strings.h>
#include <hiredis/sds.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

APLOG_USE_MODULE(upload_progress);

/* Exported by libhiredis 0.14 (what redisAsyncHandleRead calls once bytes
 * are in the reader) but missing from its async.h. */
void redisProcessCallbacks(redisAsyncContext *ac);

/* One client context per server: the Redis directives are server-wide.
 * Made in the parent, inherited by every child (OpenSSL's contexts are
 * safe to share between threads once set up). */
static struct {
    SSL_CTX *ctx;
    const char *servername;
    int verify;
} T;

static apr_status_t ctx_free(void *d)
{
    if (T.ctx) {
        SSL_CTX_free(T.ctx);
        T.ctx = NULL;
    }
    return APR_SUCCESS;
}

static const char *ossl_reason(apr_pool_t *p)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? apr_pstrdup(p, r) : "unknown OpenSSL error";
}

const char *upm_redis_tls_setup(apr_pool_t *pconf, server_rec *s,
                                const upm_redis_tls_opts *o)
{
    upm_redis_tls_opts none;
    SSL_CTX *ctx;

    if (!o) {
        memset(&none, 0, sizeof(none));
        none.verify = 1;
        o = &none;
    }
    ctx_free(NULL);
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        return apr_psprintf(pconf, "cannot create a TLS context: %s", ossl_reason(pconf));
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (o->ca) {
        if (SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1) {
            const char *why = ossl_reason(pconf);
            SSL_CTX_free(ctx);
            return apr_psprintf(pconf, "cannot load the CA certificates ca=%s: %s", o->ca, why);
        }
    }
    else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        const char *why = ossl_reason(pconf);
        SSL_CTX_free(ctx);
        return apr_psprintf(pconf, "cannot load the system's CA certificates: %s", why);
    }
    if (o->cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1) {
            const char *why = ossl_reason(pconf);
            SSL_CTX_free(ctx);
            return apr_psprintf(pconf, "cannot load the client certificate cert=%s: %s",
                                o->cert, why);
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1
            || SSL_CTX_check_private_key(ctx) != 1) {
            const char *why = ossl_reason(pconf);
            SSL_CTX_free(ctx);
            return apr_psprintf(pconf, "cannot use the private key key=%s with cert=%s: %s",
                                o->key, o->cert, why);
        }
    }
    SSL_CTX_set_verify(ctx, o->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (!o->verify) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, APLOGNO(14050)
                     "UploadProgressRedisTLS verify=off: the Redis server's certificate "
                     "is not checked, so anyone on the path can read and forge every "
                     "event; use it for tests only");
    }
    T.ctx = ctx;
    T.servername = o->servername ? apr_pstrdup(pconf, o->servername) : NULL;
    T.verify = o->verify;
    apr_pool_cleanup_register(pconf, NULL, ctx_free, apr_pool_cleanup_null);
    return NULL;
}

/* A new connection's TLS state, bound to fd and to the name its
 * certificate must carry. */
static SSL *ssl_new(int fd, const char *host)
{
    const char *name = T.servername ? T.servername : host;
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    SSL *ssl;

    if (!T.ctx || !(ssl = SSL_new(T.ctx))) {
        return NULL;
    }
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (is_ip) {
        /* No SNI for an address (RFC 6066); the certificate's IP SAN is
         * what is checked. */
        if (T.verify && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1) {
            SSL_free(ssl);
            return NULL;
        }
    }
    else {
        SSL_set_tlsext_host_name(ssl, name);
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (T.verify && SSL_set1_host(ssl, name) != 1) {
            SSL_free(ssl);
            return NULL;
        }
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

/* Why an SSL call failed, short enough for hiredis' 128-byte errstr. */
static void tls_why(SSL *ssl, int rc, const char *when, char *buf, size_t n)
{
    int se = SSL_get_error(ssl, rc);
    long vr = SSL_get_verify_result(ssl);
    unsigned long e = ERR_peek_last_error();
    int hs = strcmp(when, "handshake") == 0;

    if (hs && T.verify && vr != X509_V_OK) {
        snprintf(buf, n, "TLS: the server's certificate is refused (%s)",
                 X509_verify_cert_error_string(vr));
    }
    else if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
        snprintf(buf, n, "TLS %s timed out%s", when, hs ? " (does that port speak TLS?)" : "");
    }
    else if (se == SSL_ERROR_ZERO_RETURN || (se == SSL_ERROR_SYSCALL && !e && !errno)
             || (e && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
        snprintf(buf, n, "TLS %s: the server closed the connection%s", when,
                 hs ? " (does that port speak TLS?)" : "");
    }
    else if (se == SSL_ERROR_SYSCALL && !e) {
        snprintf(buf, n, "TLS %s: %s", when, strerror(errno));
    }
    else {
        const char *r = e ? ERR_reason_error_string(e) : NULL;
        snprintf(buf, n, "TLS %s failed: %s%s", when, r ? r : "unknown error",
                 hs ? " (does that port speak TLS?)" : "");
    }
    ERR_clear_error();
}

static void ctx_error(redisContext *c, const char *why)
{
    c->err = REDIS_ERR_IO;
    apr_cpystrn(c->errstr, why, sizeof(c->errstr));
}

/* ---- the listener (non-blocking, in the poll adapter) -------------------- */

enum { A_TCP = 0, A_HANDSHAKE, A_UP };

/* Bytes read per SSL_read, and chunks handled before poll(2) runs again
 * (timers and wake-ups keep their turn under a flood). */
#define A_CHUNK 16384
#define A_CHUNKS 64

typedef struct {
    upm_rpoll *lp;
    redisAsyncContext *ac;
    SSL *ssl;
    int state;
    short want;                 /* what OpenSSL waits for, beyond reading */
    int more;                   /* decrypted bytes may wait inside OpenSSL */
    char host[256];
} atls;

static short a_events(void *d)
{
    atls *a = d;
    switch (a->state) {
    case A_TCP:
        return POLLOUT;
    case A_HANDSHAKE:
        return a->want ? a->want : POLLIN;
    default:
        /* `more`: poll must return at once (the socket is writable). */
        return (short)(POLLIN | (a->want | (sdslen(a->ac->c.obuf) || a->more ? POLLOUT : 0)));
    }
}

static void a_detach(void *d)
{
    atls *a = d;
    if (a->ssl) {
        SSL_free(a->ssl);
    }
    free(a);
}

/* hiredis' own way out for a link in error: the reader in error makes
 * redisProcessCallbacks disconnect (pending callbacks get NULL, the
 * disconnect callback the reason).  a is freed on return. */
static void a_fail(atls *a, const char *why)
{
    redisAsyncContext *ac = a->ac;
    redisReader *r = ac->c.reader;
    if (!r->err) {
        r->err = REDIS_ERR_IO;
        apr_cpystrn(r->errstr, why, sizeof(r->errstr));
    }
    redisProcessCallbacks(ac);
}

/* A refused handshake: what hiredis does for a failed connect. */
static void a_fail_connect(atls *a, const char *why)
{
    redisAsyncContext *ac = a->ac;
    ctx_error(&ac->c, why);
    ac->err = ac->c.err;
    ac->errstr = ac->c.errstr;
    if (ac->onConnect) {
        ac->onConnect(ac, REDIS_ERR);
    }
    a_fail(a, why);
}

static int alive(atls *a, redisAsyncContext *ac)
{
    return upm_rpoll_context(a->lp) == ac;
}

static void a_pump(atls *a)
{
    redisAsyncContext *ac = a->ac;
    redisContext *c = &ac->c;
    char buf[A_CHUNK], why[128];
    int chunks = 0;

    a->want = 0;
    a->more = 0;
    /* Requests first: their replies are what there is to read. */
    while (sdslen(c->obuf) > 0) {
        size_t len = sdslen(c->obuf);
        int n = SSL_write(a->ssl, c->obuf, len > INT_MAX ? INT_MAX : (int)len);
        if (n > 0) {
            sdsrange(c->obuf, n, -1);
            continue;
        }
        switch (SSL_get_error(a->ssl, n)) {
        case SSL_ERROR_WANT_WRITE:
            a->want = POLLOUT;
            break;
        case SSL_ERROR_WANT_READ:
            a->want = POLLIN;
            break;
        default:
            tls_why(a->ssl, n, "write", why, sizeof(why));
            a_fail(a, why);
            return;
        }
        break;
    }
    for (;;) {
        int n;
        if (++chunks > A_CHUNKS) {
            a->more = 1;
            return;
        }
        ERR_clear_error();
        errno = 0;
        n = SSL_read(a->ssl, buf, sizeof(buf));
        if (n > 0) {
            upm_rpoll_mark_read(a->lp);
            if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
                a_fail(a, "out of memory reading a Redis reply");
                return;
            }
            redisProcessCallbacks(ac);
            if (!alive(a, ac)) {
                return;         /* a callback closed the link */
            }
            continue;
        }
        switch (SSL_get_error(a->ssl, n)) {
        case SSL_ERROR_WANT_READ:
            return;
        case SSL_ERROR_WANT_WRITE:
            a->want = POLLOUT;
            return;
        case SSL_ERROR_ZERO_RETURN:
            a_fail(a, "Server closed the connection");
            return;
        default:
            tls_why(a->ssl, n, "read", why, sizeof(why));
            a_fail(a, why);
            return;
        }
    }
}

static void a_handle(void *d, redisAsyncContext *ac, short rev)
{
    atls *a = d;
    char why[128];

    if (a->state == A_TCP) {
        int err = 0;
        socklen_t l = sizeof(err);
        if (getsockopt(ac->c.fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0 || err != 0) {
            /* hiredis tells a failed connect itself (and frees ac). */
            redisAsyncHandleWrite(ac);
            return;
        }
        if (!(a->ssl = ssl_new(ac->c.fd, a->host))) {
            ERR_clear_error();
            a_fail_connect(a, "TLS: cannot set up the connection (out of memory?)");
            return;
        }
        a->state = A_HANDSHAKE;
    }
    if (a->state == A_HANDSHAKE) {
        int rc;
        ERR_clear_error();
        errno = 0;
        rc = SSL_do_handshake(a->ssl);
        if (rc != 1) {
            switch (SSL_get_error(a->ssl, rc)) {
            case SSL_ERROR_WANT_READ:
                a->want = POLLIN;
                return;
            case SSL_ERROR_WANT_WRITE:
                a->want = POLLOUT;
                return;
            default:
                tls_why(a->ssl, rc, "handshake", why, sizeof(why));
                a_fail_connect(a, why);
                return;
            }
        }
        a->state = A_UP;
        a->want = 0;
        ac->c.flags |= REDIS_CONNECTED;
        if (ac->onConnect) {
            ac->onConnect(ac, REDIS_OK);
        }
        if (!alive(a, ac)) {
            return;
        }
    }
    a_pump(a);
}

static const upm_rpoll_io a_io = { a_events, a_handle, a_detach };

int upm_redis_tls_attach(upm_rpoll *lp, redisAsyncContext *ac, const char *host)
{
    atls *a;
    if (!T.ctx || !(a = calloc(1, sizeof(*a)))) {
        return REDIS_ERR;
    }
    a->lp = lp;
    a->ac = ac;
    apr_cpystrn(a->host, host, sizeof(a->host));
    upm_rpoll_set_io(lp, &a_io, a);
    return REDIS_OK;
}

/* ---- request threads (blocking, within the socket's timeouts) ------------ */

SSL *upm_redis_tls_connect(redisContext *c, const char *host)
{
    char why[128];
    SSL *ssl = ssl_new(c->fd, host);
    int rc;

    if (!ssl) {
        ERR_clear_error();
        ctx_error(c, "TLS: cannot set up the connection (out of memory?)");
        return NULL;
    }
    ERR_clear_error();
    errno = 0;
    rc = SSL_connect(ssl);
    if (rc != 1) {
        tls_why(ssl, rc, "handshake", why, sizeof(why));
        ctx_error(c, why);
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

int upm_redis_tls_get_reply(SSL *ssl, redisContext *c, void **reply)
{
    char buf[A_CHUNK], why[128];
    void *aux = NULL;

    if (redisGetReplyFromReader(c, &aux) == REDIS_ERR) {
        return REDIS_ERR;
    }
    if (!aux) {
        while (sdslen(c->obuf) > 0) {
            size_t len = sdslen(c->obuf);
            int n;
            ERR_clear_error();
            errno = 0;
            n = SSL_write(ssl, c->obuf, len > INT_MAX ? INT_MAX : (int)len);
            if (n <= 0) {
                tls_why(ssl, n, "write", why, sizeof(why));
                ctx_error(c, why);
                return REDIS_ERR;
            }
            sdsrange(c->obuf, n, -1);
        }
        do {
            int n;
            ERR_clear_error();
            errno = 0;
            n = SSL_read(ssl, buf, sizeof(buf));
            if (n <= 0) {
                tls_why(ssl, n, "read", why, sizeof(why));
                ctx_error(c, why);
                return REDIS_ERR;
            }
            if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
                ctx_error(c, "out of memory reading a Redis reply");
                return REDIS_ERR;
            }
            if (redisGetReplyFromReader(c, &aux) == REDIS_ERR) {
                return REDIS_ERR;
            }
        } while (!aux);
    }
    if (reply) {
        *reply = aux;
    }
    else {
        freeReplyObject(aux);
    }
    return REDIS_OK;
}

void upm_redis_tls_free(SSL *ssl)
{
    if (ssl) {
        SSL_free(ssl);
    }
}
