/* SPDX-License-Identifier: Apache-2.0 */
/* Redis Sentinel (UploadProgressRedisSentinel): where the primary is.
 * Asked with SENTINEL get-master-addr-by-name when a link is made after
 * a failure, and followed between: a thread per child keeps a SUBSCRIBE
 * +switch-master on one of the sentinels, and every change of address
 * bumps an epoch that the listener and the request threads' pool compare
 * their links against.  What a link reaches is checked with ROLE. */
#ifndef UPM_REDIS_SENTINEL_H
#define UPM_REDIS_SENTINEL_H

#include "httpd.h"
#include <hiredis/hiredis.h>

/* child_init: the watcher thread.  moved(baton) is called (from it) when
 * the primary's address changed. */
void upm_redis_sentinel_child_init(apr_pool_t *pchild, server_rec *s,
                                   void (*moved)(void *), void *baton);

int upm_redis_sentinel_enabled(void);

/* The primary's address (host in p) and the epoch it belongs to: the one
 * known, or asked from the sentinels when none is known or it was marked
 * stale (blocking: at most 500 ms per sentinel; never on a thread that
 * serves connections).  NULL on success, else why. */
const char *upm_redis_sentinel_primary(apr_pool_t *p, const char **host, int *port,
                                       unsigned *epoch);

/* What was reached at this epoch (0: the current one) is not the primary,
 * or cannot be reached: ask the sentinels again before the next link. */
void upm_redis_sentinel_stale(unsigned epoch);

unsigned upm_redis_sentinel_epoch(void);

/* Whether a ROLE reply is a primary's. */
int upm_redis_sentinel_is_primary(const redisReply *r);

#endif
