/* SPDX-License-Identifier: Apache-2.0 */
/* Key sets from identity providers (UploadProgressJWKS): fetched in the
 * background by one child at a time (mod_watchdog's singleton), shared
 * with every child through shared memory that outlives graceful
 * restarts, cached on disk for a cold start while the provider is down.
 * Requests only ever read the set a child already holds. */
#ifndef UPM_JWKS_FETCH_H
#define UPM_JWKS_FETCH_H

#include "httpd.h"
#include "http_config.h"
#include <apr_tables.h>

#define UPM_JWKS_DEFAULT_REFRESH     300     /* seconds */
#define UPM_JWKS_DEFAULT_MIN_REFRESH 10      /* seconds: early refetch floor */
#define UPM_JWKS_DEFAULT_TIMEOUT_MS  5000

/* UploadProgressJWKS SOURCE [options]: registers the source (the same
 * source named in several places is fetched once) and returns its index
 * for the directory configuration.  issuer: the section's
 * UploadProgressJWTIssuer, for "discover".  NULL or an error message. */
const char *upm_jwks_fetch_source_add(cmd_parms *cmd, int argc, char *const argv[],
                                      const char *issuer, int *index);

/* UploadProgressJWKSCache FILE */
const char *upm_jwks_fetch_set_cache(cmd_parms *cmd, const char *path);

/* The keys a request verifies against: base (the static keys, may be
 * NULL) followed by the current keys of each source in sources (int
 * indexes).  The sets stay alive until p is cleared.  Never waits on a
 * fetch. */
const apr_array_header_t *upm_jwks_fetch_keys(apr_pool_t *p, const apr_array_header_t *base,
                                              const apr_array_header_t *sources);

/* A token named a kid no key has: asks for an early refetch of the URL
 * sources, which happens at most once per source's min-refresh. */
void upm_jwks_fetch_unknown_kid(const apr_array_header_t *sources);

void upm_jwks_fetch_register_hooks(apr_pool_t *p);

#endif
