#include "upm_emit.h"
#include "upm_redis.h"
#include "upm_bus.h"

#include <string.h>

apr_status_t upm_emit_publish(apr_pool_t *p, upm_msg *const *msgs, int n,
                              apr_uint64_t *seqs)
{
    if (upm_redis_enabled()) {
        /* Through Redis, so that every server sharing it delivers them
         * (and, in Streams mode, they get stream ids like everything else);
         * the listener appends them to this server's ring too. */
        const char *err = NULL;
        apr_status_t rv = upm_redis_send(p, msgs, n, NULL, &err);
        memset(seqs, 0, sizeof(*seqs) * (apr_size_t)n);
        return rv;
    }
    return upm_bus_publish(p, msgs, n, seqs);
}
