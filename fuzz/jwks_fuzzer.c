/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the JWKS parser (upm_jwks.c): what an identity
 * provider, or whoever answers in its place, sends as a key set or as a
 * discovery document.
 *
 * The first input byte chooses: bit 0 whether HS (oct) keys are allowed,
 * bit 1 whether the rest is a discovery document (upm_jwks_discovery_uri)
 * rather than a key set.  Every key the parser returns is then checked to
 * be one the verifier can hold: a known alg, key bytes present, a kid
 * that is a non-empty C string. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_strings.h>
#include "upm_jwks.h"
#include "upm_jwt.h"

static apr_pool_t *root;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apr_initialize();
    apr_pool_create(&root, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    upm_jwks_set set;
    const char *uri;
    int mode, i;

    if (size < 1) {
        return 0;
    }
    mode = data[0];
    apr_pool_create(&p, root);
    if (mode & 2) {
        if (upm_jwks_discovery_uri(p, (const char *)data + 1, size - 1, &uri) == NULL
            && (uri == NULL || upm_jwks_url_check(p, uri) != NULL)) {
            abort();
        }
    }
    else if (upm_jwks_parse(p, (const char *)data + 1, size - 1, mode & 1, &set) == NULL) {
        if (set.keys == NULL || set.keys->nelts == 0) {
            abort();
        }
        for (i = 0; i < set.keys->nelts; i++) {
            const upm_jwt_key *k = APR_ARRAY_IDX(set.keys, i, upm_jwt_key *);
            if (k->alg == JWT_ALG_NONE || k->alg == JWT_ALG_INVAL || !k->key || !k->key_len
                || (k->kid && !*k->kid)
                || (!(mode & 1) && (k->alg == JWT_ALG_HS256 || k->alg == JWT_ALG_HS384
                                    || k->alg == JWT_ALG_HS512))) {
                abort();
            }
        }
    }
    apr_pool_destroy(p);
    return 0;
}
