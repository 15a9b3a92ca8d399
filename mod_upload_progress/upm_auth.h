/* SPDX-License-Identifier: Apache-2.0 */
/* AuthType JWT: the check_authn hook, token sources, RFC 6750 errors and
 * the `Require jwt-claim` provider (DESIGN section 3). */
#ifndef UPM_AUTH_H
#define UPM_AUTH_H

#include "httpd.h"
#include <jansson.h>

typedef struct upm_auth_info {
    const char *user;
    json_t *claims;             /* released with the request pool */
    apr_int64_t exp;            /* seconds since epoch; 0 when none */
    const char *source;         /* "header", "query" or "cookie" */
} upm_auth_info;

/* The verified token of this request, or NULL when it was not
 * authenticated by AuthType JWT. */
upm_auth_info *upm_auth_get(request_rec *r);

/* Does the token grant watching `id` of scope field (UPM_F_PROJECT ...),
 * whose grant-claim list is kind ("projects", "jobs", "sessions" or
 * "files"), through the grant claim or an UploadProgressJWTIdClaim? */
int upm_auth_grants(request_rec *r, const upm_auth_info *ai, int field, const char *kind,
                    const char *id);
/* The same for claims kept beyond their request (grant_claim and
 * id_claims: the location's UploadProgressJWTGrantClaim and
 * UploadProgressJWTIdClaim). */
int upm_auth_claims_grant(apr_pool_t *p, json_t *claims, const char *grant_claim,
                          const apr_array_header_t *id_claims, int field,
                          const char *kind, const char *id);

void upm_auth_register_hooks(apr_pool_t *p);

#endif
