/* SPDX-License-Identifier: Apache-2.0 */
/* Open streams per user across all children, for
 * UploadProgressMaxConnectionsPerUser.  A table in shared memory of
 * (user, child pid) -> count with linear probing, so one user's entries
 * sit in one run from the user's home slot: the total is summed over that
 * run, and a dead child's entries can be dropped by pid.  Pure; the caller
 * holds the bus lock. */
#ifndef UPM_USERCONN_H
#define UPM_USERCONN_H

#include <apr.h>

typedef struct upm_uc_table upm_uc_table;

apr_size_t upm_uc_bytes(apr_uint32_t nslots);
upm_uc_table *upm_uc_init(void *mem, apr_uint32_t nslots);

apr_uint64_t upm_uc_hash(const char *user);     /* never 0 */

/* Counts one more stream of user for pid when the user's total is below
 * limit (limit 0: no limit).  1: counted; 0: over the limit; -1: the
 * table is full (the caller lets the stream through uncounted). */
int upm_uc_acquire(upm_uc_table *t, apr_uint64_t user, apr_int32_t pid,
                   apr_uint32_t limit);
void upm_uc_release(upm_uc_table *t, apr_uint64_t user, apr_int32_t pid);
/* Streams of user across every child. */
apr_uint32_t upm_uc_total(const upm_uc_table *t, apr_uint64_t user);
/* Forgets every stream counted for a child that is gone. */
void upm_uc_drop_pid(upm_uc_table *t, apr_int32_t pid);
apr_uint32_t upm_uc_used(const upm_uc_table *t);

#endif
