/* SPDX-License-Identifier: Apache-2.0 */
/* Domain events -> messages: mapping, normalisation and progress math
 * (DESIGN section 1).  Pure: jansson and APR only. */
#ifndef UPM_EVENT_H
#define UPM_EVENT_H

#include <apr_pools.h>
#include <apr_hash.h>
#include <apr_time.h>
#include <jansson.h>

#define UPM_ID_MAX 128          /* longest owner / scope id accepted */

typedef enum {
    UPM_EV_OK = 0,
    UPM_EV_NOT_OBJECT,          /* event is not a JSON object */
    UPM_EV_NO_TYPE,             /* neither a known `event` nor a `type` */
    UPM_EV_NO_OWNER,            /* no userId, no owner hint and no scope */
    UPM_EV_BAD_FIELD            /* an id field of the wrong type or too long */
} upm_event_status;

/* Is s a valid scope/owner id: 1..UPM_ID_MAX of [A-Za-z0-9._:@-]?  The
 * rule upm_event_normalize applies to the id fields of a message. */
int upm_valid_id(const char *s);

/* The message type for a domain event name: overrides (apr_hash of
 * const char* -> const char*, may be NULL) first, then the built-in table.
 * NULL when unknown. */
const char *upm_event_map_lookup(apr_hash_t *overrides, const char *event);

/* Percentage of done/total, rounded to 2 decimals, clamped to 0..100.
 * total <= 0 gives 0, or 100 when complete is true.  Never NaN. */
double upm_progress_percent(double done, double total, int complete);

/* ISO 8601 UTC with milliseconds, e.g. 2026-11-21T10:00:00.123Z. */
const char *upm_iso8601(apr_pool_t *p, apr_time_t t);

/* True for the message types that are throttled/coalesced
 * (upload_progress, job_progress, progress). */
int upm_event_is_progress_type(const char *type);

/* True for types that end something (completed / failed / finalized ...):
 * progress derived for them is 100 when total is 0. */
int upm_event_is_terminal_type(const char *type);

/* Normalises one event into a new message object (*out, caller decrefs):
 *  - type from `event` via the map (the `event` key is then removed), or
 *    `type` as it is when there is no `event`; an `event` that maps to
 *    nothing and no `type` gives UPM_EV_NO_TYPE;
 *  - owner: string `userId` (integers rendered in decimal), else owner_hint
 *    (channel user:{id}); kept in the message as `userId`.  Without
 *    either, the event is a message to the scopes it names (a non-empty
 *    sessionId, jobId, projectId or fileId) and *owner is NULL; naming
 *    none gives UPM_EV_NO_OWNER;
 *  - photoId, fileId, jobId, sessionId, projectId: strings (integers
 *    rendered in decimal), at most UPM_ID_MAX bytes, else UPM_EV_BAD_FIELD;
 *  - timestamp kept when the publisher gave a string; a number is taken as
 *    epoch milliseconds and rendered as ISO 8601; absent: now;
 *  - progress: when bytesUploaded+totalBytes or bytesCompleted+bytesTotal
 *    are numbers at the top level, `progress` = upm_progress_percent(...)
 *    (complete when the type is terminal), unless `progress` is already an
 *    object (then `progressPercent` is set instead);
 *  - `id` from the publisher is dropped (ids are server-assigned);
 *  - everything else passes through unchanged.
 * On error *err names the problem in words fit for a 422 body. */
upm_event_status upm_event_normalize(apr_pool_t *p, json_t *event,
                                     apr_hash_t *overrides,
                                     const char *owner_hint,
                                     apr_time_t now,
                                     json_t **out, const char **owner,
                                     const char **err);

/* The same, for an event whose channel addresses it to a scope
 * (scope_hint non-zero): then it needs neither an owner nor scope ids of
 * its own (the caller routes it to the channel's scope). */
upm_event_status upm_event_normalize_scoped(apr_pool_t *p, json_t *event,
                                            apr_hash_t *overrides,
                                            const char *owner_hint, int scope_hint,
                                            apr_time_t now,
                                            json_t **out, const char **owner,
                                            const char **err);

#endif
