/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_evict.h"

#include <string.h>

struct upm_evict {
    upm_evict_pos b[UPM_EVICT_BUCKETS];
};

apr_size_t upm_evict_bytes(void)
{
    return sizeof(upm_evict);
}

upm_evict *upm_evict_init(void *mem)
{
    memset(mem, 0, sizeof(upm_evict));
    return mem;
}

/* FNV-1a over the field's kind and the id: the same id as a job and as
 * a session are different keys. */
static apr_uint64_t hash(int kind, const char *s)
{
    apr_uint64_t h = 1469598103934665603ULL;
    h = (h ^ (unsigned char)kind) * 1099511628211ULL;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    /* Fold the high bits in: FNV's low bits alone mix poorly. */
    return h ^ (h >> 29);
}

static apr_uint32_t user_key(const char *user)
{
    return (apr_uint32_t)(hash(UPM_F_OWNER, user) % UPM_EVICT_USER_BUCKETS);
}

static apr_uint32_t scope_key(int field, const char *id)
{
    return UPM_EVICT_USER_BUCKETS
           + (apr_uint32_t)(hash(field, id) % UPM_EVICT_SCOPE_BUCKETS);
}

apr_uint32_t upm_evict_key(const char *user, const char *const *scope, int via)
{
    if (via != UPM_F_OWNER && via > UPM_F_OWNER && via < UPM_F__COUNT
        && scope && scope[via]) {
        return scope_key(via, scope[via]);
    }
    return user_key(user ? user : "");
}

int upm_evict_cmp(upm_evict_pos a, upm_evict_pos b)
{
    if (a.hi != b.hi) {
        return a.hi < b.hi ? -1 : 1;
    }
    return a.lo < b.lo ? -1 : a.lo > b.lo;
}

static void raise_bucket(upm_evict *e, apr_uint32_t key, upm_evict_pos pos)
{
    if (upm_evict_cmp(e->b[key], pos) < 0) {
        e->b[key] = pos;
    }
}

void upm_evict_note(upm_evict *e, const upm_msg *m, upm_evict_pos pos)
{
    static const int scoped[] = { UPM_F_FILE, UPM_F_JOB, UPM_F_SESSION, UPM_F_PROJECT };
    unsigned i;
    if (m->f[UPM_F_OWNER] && *m->f[UPM_F_OWNER]) {
        raise_bucket(e, user_key(m->f[UPM_F_OWNER]), pos);
    }
    for (i = 0; i < sizeof(scoped) / sizeof(scoped[0]); i++) {
        const char *v = m->f[scoped[i]];
        if (v && *v) {
            raise_bucket(e, scope_key(scoped[i], v), pos);
        }
    }
}

upm_evict_pos upm_evict_newest(const upm_evict *e, apr_uint32_t key)
{
    upm_evict_pos none = { 0, 0 };
    return key < UPM_EVICT_BUCKETS ? e->b[key] : none;
}
