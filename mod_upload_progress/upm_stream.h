/* What every push transport (SSE, long-poll, WebSocket) does the same
 * way: which messages a request may receive (owner, scope narrowing,
 * grants: DESIGN section 2), the replay of the ring after a client's last
 * id, and the in-band reset when that is no longer possible (section 4). */
#ifndef UPM_STREAM_H
#define UPM_STREAM_H

#include "httpd.h"
#include "upm_hub.h"

/* Fills spec (zeroed first) for r's authenticated user: scope from
 * <LocationMatch> named captures or query parameters (q), grants from
 * the token.  Returns NULL, or the text of a 400 for a malformed scope
 * id.  The caller sets throttle_step, max_queue_bytes and notify. */
const char *upm_stream_spec(request_rec *r, apr_table_t *q, upm_sub_spec *spec);

/* The client's last id: Last-Event-ID, else the query parameter named
 * param (lastEventId for SSE, since for polling).  NULL when none. */
const char *upm_stream_last_id(request_rec *r, apr_table_t *q, const char *param);

/* Called for every replayed frame, in order. */
typedef void (*upm_stream_emit_fn)(void *baton, const upm_frame *f);
/* Non-zero when the client is gone and replay should stop. */
typedef int (*upm_stream_stop_fn)(void *baton);

/* Emits the ring's messages for sub after sequence `after`, throttled
 * like live ones.  max > 0 stops after that many frames (*more is then
 * set when the ring held more).  Returns the sequence the replay covered:
 * the ring's end when it read everything, else the last emitted frame's. */
apr_uint64_t upm_stream_replay(apr_pool_t *p, upm_sub *sub, apr_uint64_t after,
                               int max, upm_stream_emit_fn emit,
                               upm_stream_stop_fn stop, void *baton, int *more);

/* The reset message {"type":"reset","id":..,"reason":..,"timestamp":..}
 * carrying the ring's current id (a client that resumes from it is not
 * reset again).  *id receives that id; counts a reset sent. */
char *upm_stream_reset(apr_pool_t *p, const char *reason, const char **id,
                       apr_size_t *len);

#endif
