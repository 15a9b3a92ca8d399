/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_auth.h"
#include "upm_config.h"
#include "upm_jwt.h"
#include "upm_jwks_fetch.h"
#include "upm_stats.h"
#include "upm_refusal.h"

#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_auth.h"
#include "util_cookies.h"
#include <apr_strings.h>

APLOG_USE_MODULE(upload_progress);

#define UPM_REALM "upload-progress"

static apr_status_t release_claims(void *data)
{
    upm_auth_info *ai = data;
    if (ai->claims) {
        json_decref(ai->claims);
        ai->claims = NULL;
    }
    return APR_SUCCESS;
}

upm_auth_info *upm_auth_get(request_rec *r)
{
    /* Subrequests and internal redirects look at the main request's token. */
    while (r->main) {
        r = r->main;
    }
    while (r->prev) {
        r = r->prev;
    }
    return ap_get_module_config(r->request_config, &upload_progress_module);
}

int upm_auth_grants(request_rec *r, const upm_auth_info *ai, int field, const char *kind,
                    const char *id)
{
    upm_dir_conf *d = ap_get_module_config(r->per_dir_config, &upload_progress_module);
    return upm_auth_claims_grant(r->pool, ai ? ai->claims : NULL, upm_conf_grant_claim(d),
                                 upm_conf_id_claims(d), field, kind, id);
}

int upm_auth_claims_grant(apr_pool_t *p, json_t *claims, const char *grant_claim,
                          const apr_array_header_t *id_claims, int field,
                          const char *kind, const char *id)
{
    int i;
    if (!claims || !id) {
        return 0;
    }
    if (kind && upm_jwt_claim_has(claims, apr_pstrcat(p, grant_claim, ".", kind, NULL), id)) {
        return 1;
    }
    for (i = 0; id_claims && i < id_claims->nelts; i++) {
        const upm_id_claim *ic = &APR_ARRAY_IDX(id_claims, i, upm_id_claim);
        int g;
        if (ic->field != field) {
            continue;
        }
        g = upm_jwt_id_claim_grants(claims, ic->claim, id);
        if (g > 0) {
            return 1;
        }
        if (g < 0) {
            ap_log_perror(APLOG_MARK, APLOG_DEBUG, 0, p, APLOGNO(13700)
                          "claim %s is neither a string nor an array of strings: it "
                          "grants no %s", ic->claim, kind ? kind : "id");
        }
    }
    return 0;
}

/* Removes `name` from a query string; returns its (decoded) value or NULL. */
static char *take_query_param(apr_pool_t *p, char **args, const char *name)
{
    char *q = *args, *found = NULL;
    apr_array_header_t *kept;
    apr_size_t nl = strlen(name);
    char *tok, *last;

    if (!q || !*q) {
        return NULL;
    }
    kept = apr_array_make(p, 4, sizeof(char *));
    for (tok = apr_strtok(apr_pstrdup(p, q), "&", &last); tok;
         tok = apr_strtok(NULL, "&", &last)) {
        if (strncmp(tok, name, nl) == 0 && tok[nl] == '=') {
            if (!found) {
                found = apr_pstrdup(p, tok + nl + 1);
                if (ap_unescape_urlencoded(found) != OK) {
                    found = "";
                }
            }
            continue;   /* every copy is removed from what gets logged */
        }
        APR_ARRAY_PUSH(kept, char *) = tok;
    }
    if (found) {
        *args = kept->nelts ? apr_array_pstrcat(p, kept, '&') : NULL;
    }
    return found;
}

/* The access log records r->the_request: rebuild it without the token so a
 * credential never lands in a log file. */
static void scrub_logged_request(request_rec *r)
{
    const char *proto = r->protocol ? r->protocol : "HTTP/1.1";
    r->unparsed_uri = r->args ? apr_pstrcat(r->pool, r->uri, "?", r->args, NULL)
                              : apr_pstrdup(r->pool, r->uri);
    r->parsed_uri.query = r->args;
    if (r->the_request) {
        r->the_request = r->assbackwards
            ? apr_pstrcat(r->pool, r->method, " ", r->unparsed_uri, NULL)
            : apr_pstrcat(r->pool, r->method, " ", r->unparsed_uri, " ", proto, NULL);
    }
}

/* Runs before every other hook of the request: anything that ends it early
 * (an Origin refusal, a bad handshake, another module's 4xx) logs a
 * request line without the token.  Only the logged line changes here:
 * r->args still carries the token for find_token, and for whatever else
 * the server runs at other locations. */
static int scrub_post_read_request(request_rec *r)
{
    int n;
    const char *const *names = upm_conf_token_params(&n);

    if (r->args) {
        r->the_request = (char *)upm_jwt_scrub_query(r->pool, r->the_request, names, n);
    }
    return DECLINED;
}

/* Before mod_log_config: %q and %U%q formats read the query itself, which
 * still holds the token when the request ended before authentication. */
static int scrub_log_transaction(request_rec *r)
{
    int n;
    const char *const *names = upm_conf_token_params(&n);

    if (r->args) {
        const char *u = upm_jwt_scrub_query(r->pool, r->unparsed_uri, names, n);

        if (u != r->unparsed_uri) {
            const char *q = strchr(u, '?');

            r->unparsed_uri = (char *)u;
            r->args = q ? apr_pstrdup(r->pool, q + 1) : NULL;
            r->parsed_uri.query = r->args;
        }
    }
    return DECLINED;
}

static const char *find_token(request_rec *r, const upm_dir_conf *d,
                              const char **source)
{
    const char *h = apr_table_get(r->headers_in, "Authorization");
    const char *tok;

    /* The query token is taken out first, whatever else the request
     * carries, so it is never logged. */
    tok = take_query_param(r->pool, &r->args, upm_conf_token_param(d));
    if (tok) {
        scrub_logged_request(r);
    }
    if ((h = upm_jwt_bearer(h)) != NULL) {
        *source = "header";
        return h;
    }
    if (tok) {
        *source = "query";
        return tok;
    }
    if (ap_cookie_read(r, upm_conf_cookie(d), &tok, 0) == APR_SUCCESS && tok && *tok) {
        *source = "cookie";
        return tok;
    }
    return NULL;
}

static int deny(request_rec *r, upm_jwt_status st, const char *source)
{
    apr_uint64_t held;
    /* The first of each kind a minute at warn: visible at LogLevel warn. */
    int level = upm_refusal_level((upm_refusal_kind)st, &held);

    if (st == UPM_JWT_MISSING) {
        apr_table_setn(r->err_headers_out, "WWW-Authenticate",
                       "Bearer realm=\"" UPM_REALM "\"");
        ap_log_rerror(APLOG_MARK, level, 0, r, APLOGNO(13001)
                      "no bearer token (header, query or cookie) for %s%s", r->uri,
                      upm_refusal_more(r->pool, held));
        upm_refusal_json(r, "unauthorized", NULL,
                         "a bearer token is required (Authorization header, query "
                         "parameter or cookie)");
    }
    else {
        apr_table_setn(r->err_headers_out, "WWW-Authenticate",
                       apr_psprintf(r->pool, "Bearer realm=\"" UPM_REALM "\", "
                                    "error=\"invalid_token\", error_description=\"%s\"",
                                    upm_jwt_status_text(st)));
        ap_log_rerror(APLOG_MARK, level, 0, r, APLOGNO(13002)
                      "token from %s refused for %s: %s%s", source, r->uri,
                      upm_jwt_status_label(st), upm_refusal_more(r->pool, held));
        upm_refusal_json(r, "invalid_token", upm_jwt_status_label(st),
                         upm_jwt_status_text(st));
    }
    upm_stats_auth_failure(st);
    return HTTP_UNAUTHORIZED;
}

static int upm_check_authn(request_rec *r)
{
    upm_dir_conf *d;
    const char *type = ap_auth_type(r), *token, *source = "none";
    upm_jwt_policy pol;
    upm_jwt_result res;
    upm_jwt_status st;
    upm_auth_info *ai;

    if (!type || strcasecmp(type, "JWT") != 0) {
        return DECLINED;
    }
    d = ap_get_module_config(r->per_dir_config, &upload_progress_module);
    if ((!d->keys || d->keys->nelts == 0) && (!d->jwks || d->jwks->nelts == 0)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, APLOGNO(13003)
                      "AuthType JWT for %s but no UploadProgressJWTKey or UploadProgressJWKS "
                      "configured", r->uri);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    token = find_token(r, d, &source);
    if (!token || !*token) {
        return deny(r, UPM_JWT_MISSING, source);
    }
    pol.issuer = d->issuer;
    pol.audience = d->audience;
    pol.leeway = upm_conf_leeway(d);
    pol.user_claim = upm_conf_user_claim(d);
    pol.allow_no_exp = !upm_conf_require_exp(d);
    pol.max_age = upm_conf_max_age(d);
    memset(&res, 0, sizeof(res));
    st = upm_jwt_verify(r->pool, token, upm_jwks_fetch_keys(r->pool, d->keys, d->jwks),
                        &pol, apr_time_sec(apr_time_now()), &res);
    if (st == UPM_JWT_UNKNOWN_KID) {
        /* Perhaps the provider rotated since the last fetch: this request
         * is refused now, the next one may find the new key. */
        upm_jwks_fetch_unknown_kid(d->jwks);
    }
    if (st != UPM_JWT_OK) {
        return deny(r, st, source);
    }
    ai = apr_pcalloc(r->pool, sizeof(*ai));
    ai->user = res.user;
    ai->claims = res.claims;
    ai->exp = res.exp;
    ai->source = source;
    apr_pool_cleanup_register(r->pool, ai, release_claims, apr_pool_cleanup_null);
    ap_set_module_config(r->request_config, &upload_progress_module, ai);
    r->user = (char *)ai->user;
    r->ap_auth_type = "JWT";
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, APLOGNO(13004)
                  "token from %s accepted for user %s (kid %s)", source, ai->user,
                  res.kid ? res.kid : "-");
    return OK;
}

static authz_status jwt_claim_check(request_rec *r, const char *require_args,
                                    const void *parsed)
{
    upm_auth_info *ai;
    const char *args = require_args, *name, *value;

    if (!r->user) {
        return AUTHZ_DENIED_NO_USER;
    }
    ai = upm_auth_get(r);
    if (!ai || !ai->claims) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, APLOGNO(13005)
                      "Require jwt-claim needs AuthType JWT for %s", r->uri);
        return AUTHZ_DENIED;
    }
    name = ap_getword_conf(r->pool, &args);
    while (*(value = ap_getword_conf(r->pool, &args))) {
        if (upm_jwt_claim_has(ai->claims, name, value)) {
            return AUTHZ_GRANTED;
        }
    }
    {
        apr_uint64_t held;
        int level = upm_refusal_level(UPM_REFUSE_CLAIM, &held);
        ap_log_rerror(APLOG_MARK, level, 0, r, APLOGNO(13006)
                      "user %s: claim %s does not allow %s%s", r->user, name, r->uri,
                      upm_refusal_more(r->pool, held));
    }
    upm_refusal_json(r, "forbidden", "claim",
                     apr_psprintf(r->pool, "the token's %s claim does not allow this "
                                  "location", name));
    return AUTHZ_DENIED;
}

static const char *jwt_claim_parse(cmd_parms *cmd, const char *require_line,
                                   const void **parsed)
{
    const char *args = require_line;
    const char *name = ap_getword_conf(cmd->temp_pool, &args);
    const char *value = ap_getword_conf(cmd->temp_pool, &args);
    if (!*name || !*value) {
        return "Require jwt-claim takes a claim name and one or more values";
    }
    return NULL;
}

static const authz_provider jwt_claim_provider = {
    &jwt_claim_check,
    &jwt_claim_parse,
};

void upm_auth_register_hooks(apr_pool_t *p)
{
    ap_hook_post_read_request(scrub_post_read_request, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_log_transaction(scrub_log_transaction, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_check_authn(upm_check_authn, NULL, NULL, APR_HOOK_MIDDLE,
                        AP_AUTH_INTERNAL_PER_CONF);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "jwt-claim",
                              AUTHZ_PROVIDER_VERSION, &jwt_claim_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
}
