/* The one way a message enters the bus: a normalised message object
 * (upm_event_normalize's output) becomes a ring record and is appended.
 * The publish handler, upload tracking and (later) the Redis listener all
 * go through here, so every message is framed, measured and counted the
 * same way. */
#ifndef UPM_EMIT_H
#define UPM_EMIT_H

#include <apr_pools.h>
#include <apr_time.h>
#include <jansson.h>
#include "upm_msg.h"

/* Compact JSON with doubles kept readable (45.5, not 45.499999...). */
#define UPM_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* The ring record of a normalised message owned by `owner`, allocated
 * from p.  NULL only when the JSON cannot be serialised. */
upm_msg *upm_emit_make(apr_pool_t *p, json_t *msg, const char *owner,
                       apr_time_t published);

/* Appends the records as one unit (see upm_bus_publish). */
apr_status_t upm_emit_publish(apr_pool_t *p, upm_msg *const *msgs, int n,
                              apr_uint64_t *seqs);

#endif
