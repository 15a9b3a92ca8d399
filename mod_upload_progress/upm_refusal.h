/* SPDX-License-Identifier: Apache-2.0 */
/* How the module answers and logs the requests it refuses before a handler
 * runs (a missing or bad token, a foreign origin, a claim that does not
 * allow the location): a JSON body with an `error` field instead of
 * Apache's HTML page (the status and WWW-Authenticate stay), and a log
 * line at warn for the first refusal of each kind per minute per child
 * (the rest at info), so that Debian's default LogLevel warn shows why
 * clients are refused. */
#ifndef UPM_REFUSAL_H
#define UPM_REFUSAL_H

#include "httpd.h"
#include "upm_jwt.h"

typedef enum {
    /* 0 .. UPM_JWT__COUNT - 1: token refusals, by upm_jwt_status */
    UPM_REFUSE_ORIGIN = UPM_JWT__COUNT,
    UPM_REFUSE_CLAIM,
    UPM_REFUSE__COUNT
} upm_refusal_kind;

/* The level to log this refusal at: APLOG_WARNING for the first of its
 * kind in a minute (then *held is how many were logged at info since the
 * last warning), else APLOG_INFO. */
int upm_refusal_level(upm_refusal_kind kind, apr_uint64_t *held);

/* Formats the " (and N more ...)" suffix of a warning; "" when none. */
const char *upm_refusal_more(apr_pool_t *p, apr_uint64_t held);

/* The error response of this request (whatever status httpd gives it)
 * carries {"error":ERROR,"message":MESSAGE[,"reason":REASON]} as
 * application/json. */
void upm_refusal_json(request_rec *r, const char *error, const char *reason,
                      const char *message);

void upm_refusal_register_hooks(apr_pool_t *p);

#endif
