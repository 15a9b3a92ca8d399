/* SPDX-License-Identifier: Apache-2.0 */
/* A publish request body -> the ring records of its events, or why the
 * request is refused (status, error code, message, event index).  Pure:
 * jansson, APR, upm_event and upm_msg, so the unit tests and the fuzzer
 * run exactly what the publish handler runs. */
#ifndef UPM_PUBLISH_BODY_H
#define UPM_PUBLISH_BODY_H

#include <apr_pools.h>
#include <apr_hash.h>
#include <apr_time.h>
#include "upm_msg.h"

#define UPM_PUBLISH_MAX_BATCH 1000  /* events per request */

typedef struct upm_publish_refusal {
    int status;                 /* HTTP status: 400, 413 or 422 */
    const char *code;           /* the body's "error" member */
    const char *message;        /* printable ASCII: for the body and the log */
    int index;                  /* the refused event, -1 for the body */
    int line, column, position; /* where the JSON broke (400 only) */
} upm_publish_refusal;

/* Parses body (an event object or an array of 1..UPM_PUBLISH_MAX_BATCH of
 * them), normalises every event (upm_event_normalize with event_map) and
 * makes its record, refusing any whose JSON is over max_event bytes.
 * Everything is checked before anything is returned: 0 with *msgs (count
 * *n, pool memory), or -1 with *why filled in. */
int upm_publish_body(apr_pool_t *p, const char *body, apr_size_t len,
                     apr_hash_t *event_map, apr_off_t max_event,
                     apr_time_t now, upm_msg ***msgs, int *n,
                     upm_publish_refusal *why);

#endif
