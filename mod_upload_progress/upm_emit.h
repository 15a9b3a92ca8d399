/* SPDX-License-Identifier: Apache-2.0 */
/* The one way a message enters the bus: the records of normalised
 * messages (upm_msg_make) are appended, locally or through Redis.  The
 * publish handler and upload tracking both go through here, so every
 * message is framed, measured and counted the same way. */
#ifndef UPM_EMIT_H
#define UPM_EMIT_H

#include <apr_pools.h>
#include "upm_msg.h"

/* Appends the records as one unit (see upm_bus_publish).  On failure
 * *why names the cause for the error log (Redis unreachable, or the ring). */
apr_status_t upm_emit_publish(apr_pool_t *p, upm_msg *const *msgs, int n,
                              apr_uint64_t *seqs, const char **why);

#endif
