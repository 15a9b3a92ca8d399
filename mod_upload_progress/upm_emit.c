/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_emit.h"
#include "upm_redis.h"
#include "upm_bus.h"

#include <apr_strings.h>
#include <string.h>

apr_status_t upm_emit_publish(apr_pool_t *p, upm_msg *const *msgs, int n,
                              apr_uint64_t *seqs, const char **why)
{
    apr_status_t rv;

    *why = NULL;
    if (upm_redis_enabled()) {
        /* Through Redis, so that every server sharing it delivers them
         * (and, in Streams mode, they get stream ids like everything else);
         * the listener appends them to this server's ring too. */
        const char *err = NULL;
        upm_msg **out = apr_palloc(p, sizeof(*out) * (apr_size_t)n);
        int i;

        for (i = 0; i < n; i++) {
            out[i] = msgs[i];
            if (msgs[i]->flags & UPM_MSG_CLIENT) {
                /* Redis carries the JSON only: the flag travels in it. */
                out[i] = apr_pmemdup(p, msgs[i], sizeof(*msgs[i]));
                out[i]->json = apr_pstrcat(p, "{\"" UPM_MSG_CLIENT_MEMBER "\":\"client\",",
                                           msgs[i]->json + 1, NULL);
                out[i]->json_len = strlen(out[i]->json);
            }
        }
        rv = upm_redis_send(p, out, n, NULL, &err);
        memset(seqs, 0, sizeof(*seqs) * (apr_size_t)n);
        if (rv != APR_SUCCESS) {
            *why = apr_pstrcat(p, "Redis is unavailable (", err ? err : "unknown error",
                               ")", NULL);
        }
        return rv;
    }
    rv = upm_bus_publish(p, msgs, n, seqs);
    if (rv == APR_ENOSPC) {
        *why = "the message is larger than the replay ring's largest record "
               "(raise UploadProgressReplayMemory)";
    }
    else if (rv != APR_SUCCESS) {
        *why = "the event ring is not available";
    }
    return rv;
}
