/* SPDX-License-Identifier: Apache-2.0 */
/* Server-Sent Events framing (WHATWG HTML, "server-sent events"). */
#ifndef UPM_SSE_FMT_H
#define UPM_SSE_FMT_H

#include <apr_pools.h>
#include "upm_msg.h"

/* "id: <id>\nevent: <type>\ndata: <json>\n\n".  Newlines inside data
 * are split into several data: lines, as the format requires, so a frame
 * never ends early whatever the JSON looks like. */
char *upm_sse_frame(apr_pool_t *p, const char *id, const char *type,
                    const char *data, apr_size_t data_len, apr_size_t *len);

/* The frame of a ring message: its JSON gets the id spliced in. */
char *upm_sse_msg_frame(apr_pool_t *p, const upm_msg *m, const char *id,
                        apr_size_t *len);

/* ": <text>\n\n" with newlines in text replaced by spaces. */
char *upm_sse_comment(apr_pool_t *p, const char *text, apr_size_t *len);

/* "retry: <ms>\n\n". */
char *upm_sse_retry(apr_pool_t *p, long ms, apr_size_t *len);

#endif
