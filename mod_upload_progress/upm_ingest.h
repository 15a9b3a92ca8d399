/* SPDX-License-Identifier: Apache-2.0 */
/* A payload taken from Redis (a pub/sub message or a stream entry) ->
 * the ring message, or the reason it is refused.  Pure: jansson, APR and
 * upm_event; the listener and the Streams resume path share it, so a
 * message replayed from the stream is exactly the one fed live. */
#ifndef UPM_INGEST_H
#define UPM_INGEST_H

#include <apr_pools.h>
#include <apr_hash.h>
#include <apr_time.h>
#include "upm_msg.h"

typedef enum {
    UPM_IN_OK = 0,
    UPM_IN_TOO_LARGE,           /* payload over the configured maximum */
    UPM_IN_BAD_JSON,            /* not JSON */
    UPM_IN_NOT_OBJECT,          /* JSON, but not an object */
    UPM_IN_NO_OWNER,            /* no userId and no user:{id} channel */
    UPM_IN_OWNER_CONFLICT,      /* userId differs from the user:{id} channel */
    UPM_IN_BAD_EVENT,           /* no usable type, or a bad id field */
    UPM_IN_NO_PAYLOAD,          /* a stream entry without a data field */
    UPM_IN_SCOPE_CONFLICT,      /* an owner-less message whose id differs from
                                 * the scope its channel names */
    UPM_IN__COUNT
} upm_ingest_status;

/* Normalises one payload into *out (strings in p).  owner_hint: the owner
 * the channel names, or NULL.  max: largest payload taken, in bytes.
 * *err says why on refusal. */
upm_ingest_status upm_ingest(apr_pool_t *p, const char *data, apr_size_t len,
                             const char *owner_hint, apr_hash_t *event_map,
                             apr_size_t max, apr_time_t now, upm_msg *out,
                             const char **err);

/* The same for a message whose channel names a scope (scope_field, a
 * UPM_F_* scope field of upm_msg.h, and scope_id; scope_field < 0: none)
 * as well as, or instead of, an owner.  An event with a userId (or an
 * owner hint) is its owner's as upm_ingest makes it; one without is a
 * message to the channel's scope, routed by scope_id even when its JSON
 * leaves the field out (the JSON stays as the publisher wrote it). */
upm_ingest_status upm_ingest_routed(apr_pool_t *p, const char *data, apr_size_t len,
                                    const char *owner_hint, int scope_field,
                                    const char *scope_id, apr_hash_t *event_map,
                                    apr_size_t max, apr_time_t now, upm_msg *out,
                                    const char **err);

/* Short name of a status for counters and log lines. */
const char *upm_ingest_name(upm_ingest_status st);

/* A stream entry's fields: the payload is field "data" (or "payload"),
 * the owner hint field "userId", else field "channel" when it is
 * user:{id}.  Returns 0, or -1 when the entry has no payload field. */
int upm_ingest_stream_fields(apr_pool_t *p, apr_size_t n, const char *const *names,
                             const apr_size_t *nlens, const char *const *vals,
                             const apr_size_t *vlens, const char **data,
                             apr_size_t *dlen, const char **owner_hint);

#endif
