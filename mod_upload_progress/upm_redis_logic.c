/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_redis_logic.h"

#include <string.h>
#include <stdio.h>
#include <apr_strings.h>

apr_interval_time_t upm_backoff_delay(unsigned attempt, apr_interval_time_t min,
                                      apr_interval_time_t max, apr_uint32_t rnd)
{
    apr_interval_time_t d = min > 0 ? min : 1;
    apr_interval_time_t half;

    if (max < d) {
        max = d;
    }
    while (attempt-- > 0 && d < max) {
        d *= 2;
    }
    if (d > max) {
        d = max;
    }
    half = d / 2;
    return half + (apr_interval_time_t)(rnd % (apr_uint64_t)(d - half + 1));
}

/* ---- channels ---------------------------------------------------------- */

static int glob(const char *p, const char *s, const char *end)
{
    while (*p) {
        switch (*p) {
        case '*':
            while (p[1] == '*') {
                p++;
            }
            if (!p[1]) {
                return 1;
            }
            for (; s <= end; s++) {
                if (glob(p + 1, s, end)) {
                    return 1;
                }
            }
            return 0;
        case '?':
            if (s == end) {
                return 0;
            }
            s++;
            p++;
            break;
        case '[': {
            int neg, match = 0;
            if (s == end) {
                return 0;
            }
            p++;
            neg = *p == '^';
            if (neg) {
                p++;
            }
            for (;;) {
                if (*p == '\\' && p[1]) {
                    p++;
                    if (*p == *s) {
                        match = 1;
                    }
                }
                else if (*p == ']') {
                    break;
                }
                else if (!*p) {
                    p--;    /* unterminated: Redis treats the end as ']' */
                    break;
                }
                else if (p[1] == '-' && p[2] && p[2] != ']') {
                    char lo = p[0], hi = p[2];
                    if (lo > hi) {
                        char t = lo; lo = hi; hi = t;
                    }
                    if (*s >= lo && *s <= hi) {
                        match = 1;
                    }
                    p += 2;
                }
                else if (*p == *s) {
                    match = 1;
                }
                p++;
            }
            if (neg) {
                match = !match;
            }
            if (!match) {
                return 0;
            }
            s++;
            if (*p) {
                p++;
            }
            break;
        }
        case '\\':
            if (p[1]) {
                p++;
            }
            /* fall through */
        default:
            if (s == end || *p != *s) {
                return 0;
            }
            s++;
            p++;
            break;
        }
    }
    return s == end;
}

int upm_redis_glob(const char *pat, const char *s, apr_size_t slen)
{
    return glob(pat, s, s + slen);
}

int upm_patterns_first(const char *const *pats, int n, const char *ch, apr_size_t chlen)
{
    int i;
    for (i = 0; i < n; i++) {
        if (upm_redis_glob(pats[i], ch, chlen)) {
            return i;
        }
    }
    return -1;
}

const char *upm_channel_owner(apr_pool_t *p, const char *ch, apr_size_t chlen)
{
    if (chlen > 5 && memcmp(ch, "user:", 5) == 0) {
        return apr_pstrmemdup(p, ch + 5, chlen - 5);
    }
    return NULL;
}

int upm_channel_scope(apr_pool_t *p, const upm_chan_scope *routes, int n, const char *ch,
                      apr_size_t chlen, const char **id)
{
    int i;
    for (i = 0; i < n; i++) {
        apr_size_t pl = strlen(routes[i].prefix);
        if (chlen > pl && memcmp(ch, routes[i].prefix, pl) == 0) {
            *id = apr_pstrmemdup(p, ch + pl, chlen - pl);
            return routes[i].field;
        }
    }
    *id = NULL;
    return -1;
}

apr_uint64_t upm_msg_hash(const char *ch, apr_size_t chlen, const char *data, apr_size_t dlen)
{
    apr_uint64_t h = 1469598103934665603ULL;
    apr_size_t i;
    for (i = 0; i < chlen; i++) {
        h = (h ^ (unsigned char)ch[i]) * 1099511628211ULL;
    }
    h = (h ^ 0xffu) * 1099511628211ULL;     /* no byte of a channel name */
    for (i = 0; i < dlen; i++) {
        h = (h ^ (unsigned char)data[i]) * 1099511628211ULL;
    }
    return h;
}

/* ---- stream ids -------------------------------------------------------- */

static int parse_u64(const char *s, apr_size_t n, apr_uint64_t *out)
{
    apr_uint64_t v = 0;
    apr_size_t i;
    if (n == 0 || n > 20) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        apr_uint64_t d;
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        d = (apr_uint64_t)(s[i] - '0');
        if (v > (APR_UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int upm_xid_parse(const char *s, apr_size_t len, upm_xid *out)
{
    const char *dash = s ? memchr(s, '-', len) : NULL;
    if (!dash || parse_u64(s, (apr_size_t)(dash - s), &out->ms) != 0
        || parse_u64(dash + 1, len - (apr_size_t)(dash - s) - 1, &out->seq) != 0) {
        return -1;
    }
    return 0;
}

apr_time_t upm_xid_time(upm_xid x)
{
    /* Beyond what apr_time_t holds: not a time anybody stamped. */
    if (x.ms > (apr_uint64_t)(APR_INT64_MAX / 1000)) {
        return 0;
    }
    return (apr_time_t)x.ms * 1000;
}

int upm_xid_cmp(upm_xid a, upm_xid b)
{
    if (a.ms != b.ms) {
        return a.ms < b.ms ? -1 : 1;
    }
    if (a.seq != b.seq) {
        return a.seq < b.seq ? -1 : 1;
    }
    return 0;
}

apr_size_t upm_xid_format(char *buf, upm_xid x)
{
    return (apr_size_t)snprintf(buf, UPM_XID_LEN, "%" APR_UINT64_T_FMT "-%" APR_UINT64_T_FMT,
                                x.ms, x.seq);
}

int upm_xinfo_lost_after(const upm_xinfo *xi, upm_xid id)
{
    static const upm_xid zero = { 0, 0 };
    int from_start = upm_xid_cmp(id, zero) == 0;

    if (!xi->exists) {
        /* No stream: nothing lost for a reader that has seen nothing. */
        return !from_start;
    }
    if (from_start && xi->has_entries_added && xi->entries_added == xi->length
        && !(xi->has_max_deleted && upm_xid_cmp(xi->max_deleted, zero) > 0)) {
        return 0;       /* nothing was ever removed */
    }
    if (xi->has_max_deleted && upm_xid_cmp(xi->max_deleted, id) > 0) {
        return 1;       /* XDEL after the id */
    }
    if (xi->length > 0) {
        return upm_xid_cmp(xi->first_entry, id) > 0;
    }
    /* Empty: everything after the id is gone, if there was any. */
    return upm_xid_cmp(xi->last_generated, id) > 0;
}

/* ---- the feeder lease -------------------------------------------------- */

int upm_lease_is_free(const upm_lease *l, apr_time_t now, apr_interval_time_t ttl,
                      int holder_alive)
{
    if (l->holder == 0 || !holder_alive) {
        return 1;
    }
    return now - l->renewed > ttl || l->renewed - now > ttl;
}

void upm_lease_push_marks(upm_lease *l, const apr_uint64_t *h, apr_size_t n)
{
    apr_size_t i;
    if (n >= UPM_LEASE_MARKS) {
        memcpy(l->marks, h + n - UPM_LEASE_MARKS, sizeof(l->marks));
        l->nmarks = UPM_LEASE_MARKS;
        return;
    }
    for (i = 0; i < n; i++) {
        if (l->nmarks == UPM_LEASE_MARKS) {
            memmove(l->marks, l->marks + 1, sizeof(l->marks[0]) * (UPM_LEASE_MARKS - 1));
            l->nmarks--;
        }
        l->marks[l->nmarks++] = h[i];
    }
}

long upm_align(const apr_uint64_t *buf, long n, const apr_uint64_t *marks, int nmarks)
{
    long i;
    int k;

    if (nmarks <= 0) {
        return 0;
    }
    /* Newest full match first: a later copy of the same window is the
     * position nearest to where the feeder stopped, so nothing it took is
     * taken twice (an identical earlier window could be re-taken). */
    for (i = n - nmarks; i >= 0; i--) {
        if (memcmp(buf + i, marks, sizeof(*marks) * (apr_size_t)nmarks) == 0) {
            return i + nmarks;
        }
    }
    /* The standby's buffer may begin inside the window. */
    for (k = nmarks - 1; k >= 1; k--) {
        if (k <= n && memcmp(buf, marks + nmarks - k, sizeof(*marks) * (apr_size_t)k) == 0) {
            return k;
        }
    }
    return -1;
}

long upm_takeover_start(const upm_lease *l, const apr_uint64_t *held, long n, int ready_held,
                        apr_uint64_t ready_taken)
{
    long start;
    if (l->gen == 0) {
        return 0;           /* the first feeder ever: nothing was taken */
    }
    start = upm_align(held, n, l->marks, (int)l->nmarks);
    if (start >= 0) {
        return start;
    }
    /* None of what is held matches what was taken; if nothing was taken
     * since this subscription became active, all of it is untaken. */
    return ready_held && l->taken == ready_taken ? 0 : -1;
}

/* ---- log rate limiting ------------------------------------------------- */

int upm_ratelimit_pass(upm_ratelimit *rl, apr_time_t now, apr_interval_time_t every,
                       apr_uint64_t *suppressed)
{
    if (now >= rl->next || rl->next - now > every) {
        *suppressed = rl->suppressed;
        rl->suppressed = 0;
        rl->next = now + every;
        return 1;
    }
    rl->suppressed++;
    return 0;
}
