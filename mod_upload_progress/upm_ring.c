/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_ring.h"

#include <string.h>
#include <stdio.h>
#include <apr_strings.h>

#define UPM_RING_MAGIC   0x55504d52u   /* "UPMR" */
#define UPM_RING_VERSION 2u   /* 2: records carry flags and an external id */
#define UPM_ALIGN(n)     (((n) + 15) & ~(apr_size_t)15)

typedef struct {
    apr_uint64_t seq;       /* 0: never used */
    apr_uint64_t pos;       /* logical offset of the record in the data area */
    apr_uint64_t len;
} upm_ring_slot;

struct upm_ring {
    apr_uint32_t magic;
    apr_uint32_t version;
    apr_uint32_t nslots;
    apr_uint32_t wake;
    apr_uint64_t data_size;
    apr_uint64_t epoch;
    apr_uint64_t last_seq;
    /* Logical bytes ever written, padding included; never wraps in practice
     * (2^64 bytes), which keeps the eviction test a plain comparison. */
    apr_uint64_t data_head;
    apr_uint64_t reserved[2];
};

static upm_ring_slot *slots(const upm_ring *r)
{
    return (upm_ring_slot *)((char *)r + UPM_ALIGN(sizeof(upm_ring)));
}

static char *data_area(const upm_ring *r)
{
    return (char *)slots(r) + UPM_ALIGN(sizeof(upm_ring_slot) * r->nslots);
}

apr_size_t upm_ring_bytes(apr_uint32_t nslots, apr_size_t data_size)
{
    return UPM_ALIGN(sizeof(upm_ring)) + UPM_ALIGN(sizeof(upm_ring_slot) * nslots)
           + UPM_ALIGN(data_size);
}

upm_ring *upm_ring_init(void *mem, apr_uint32_t nslots, apr_size_t data_size,
                        apr_uint64_t epoch)
{
    upm_ring *r = mem;
    memset(mem, 0, UPM_ALIGN(sizeof(upm_ring))
                   + UPM_ALIGN(sizeof(upm_ring_slot) * nslots));
    r->nslots = nslots;
    r->data_size = data_size;
    r->epoch = epoch;
    r->version = UPM_RING_VERSION;
    r->magic = UPM_RING_MAGIC;
    return r;
}

upm_ring *upm_ring_attach(void *mem, apr_uint32_t nslots, apr_size_t data_size)
{
    upm_ring *r = mem;
    if (r->magic != UPM_RING_MAGIC || r->version != UPM_RING_VERSION
        || r->nslots != nslots || r->data_size != data_size) {
        return NULL;
    }
    return r;
}

apr_size_t upm_ring_max_record(const upm_ring *r)
{
    /* A quarter of the area, so one large record cannot evict more than a
     * fraction of the replay history. */
    return (apr_size_t)(r->data_size / 4);
}

static int record_alive(const upm_ring *r, const upm_ring_slot *sl)
{
    /* Overwritten once later writes reach a full lap past its start. */
    return r->data_head - sl->pos <= r->data_size;
}

/* Tells gone() about the records that an append of seq ending at logical
 * offset head_after evicts: they go oldest first, so the walk stops at the
 * first survivor. */
static void report_evicted(upm_ring *r, apr_uint64_t seq, apr_uint64_t head_after,
                           upm_ring_gone_fn gone, void *baton)
{
    apr_uint64_t s;
    for (s = upm_ring_oldest(r); s < seq; s++) {
        const upm_ring_slot *sl = &slots(r)[s % r->nslots];
        if (sl->seq != s) {
            break;
        }
        if (s + r->nslots > seq && head_after - sl->pos <= r->data_size) {
            break;
        }
        gone(baton, s, data_area(r) + (sl->pos % r->data_size), (apr_size_t)sl->len);
    }
}

apr_uint64_t upm_ring_append(upm_ring *r, const void *data, apr_size_t len)
{
    return upm_ring_append_ex(r, data, len, NULL, NULL);
}

apr_uint64_t upm_ring_append_ex(upm_ring *r, const void *data, apr_size_t len,
                                upm_ring_gone_fn gone, void *baton)
{
    apr_uint64_t off, seq, head;
    upm_ring_slot *sl;

    if (len == 0 || len > upm_ring_max_record(r)) {
        return 0;
    }
    head = r->data_head;
    off = head % r->data_size;
    if (off + len > r->data_size) {
        /* Records are kept contiguous so readers get one pointer: skip the
         * tail and start again at the beginning of the area. */
        head += r->data_size - off;
        off = 0;
    }
    seq = r->last_seq + 1;
    if (gone) {
        report_evicted(r, seq, head + len, gone, baton);
    }
    r->data_head = head;
    sl = &slots(r)[seq % r->nslots];
    sl->seq = seq;
    sl->pos = r->data_head;
    sl->len = len;
    memcpy(data_area(r) + off, data, len);
    r->data_head += len;
    r->last_seq = seq;
    return seq;
}

static upm_ring_status lookup(const upm_ring *r, apr_uint64_t seq,
                              const upm_ring_slot **out)
{
    const upm_ring_slot *sl;
    if (seq == 0 || seq > r->last_seq) {
        return seq == 0 ? UPM_RING_GONE : UPM_RING_FUTURE;
    }
    sl = &slots(r)[seq % r->nslots];
    if (sl->seq != seq || !record_alive(r, sl)) {
        return UPM_RING_GONE;
    }
    *out = sl;
    return UPM_RING_OK;
}

upm_ring_status upm_ring_peek(const upm_ring *r, apr_uint64_t seq,
                              const void **data, apr_size_t *len)
{
    const upm_ring_slot *sl = NULL;
    upm_ring_status st = lookup(r, seq, &sl);
    if (st == UPM_RING_OK) {
        *data = data_area(r) + (sl->pos % r->data_size);
        *len = (apr_size_t)sl->len;
    }
    return st;
}

apr_uint64_t upm_ring_oldest(const upm_ring *r)
{
    /* Availability is monotonic in seq (evictions go oldest first), so
     * binary-search the window the slots can still hold. */
    apr_uint64_t lo, hi;
    const upm_ring_slot *sl;

    if (r->last_seq == 0) {
        return 1;
    }
    lo = r->last_seq > r->nslots ? r->last_seq - r->nslots + 1 : 1;
    hi = r->last_seq + 1;
    while (lo < hi) {
        apr_uint64_t mid = lo + (hi - lo) / 2;
        if (lookup(r, mid, &sl) == UPM_RING_OK) {
            hi = mid;
        }
        else {
            lo = mid + 1;
        }
    }
    return lo;
}

apr_size_t upm_ring_data_used(const upm_ring *r)
{
    apr_uint64_t oldest = upm_ring_oldest(r);
    const upm_ring_slot *sl;
    if (oldest > r->last_seq || lookup(r, oldest, &sl) != UPM_RING_OK) {
        return 0;
    }
    return (apr_size_t)(r->data_head - sl->pos);
}

apr_uint64_t upm_ring_epoch(const upm_ring *r) { return r->epoch; }
apr_uint64_t upm_ring_last(const upm_ring *r) { return r->last_seq; }
apr_uint32_t upm_ring_slots(const upm_ring *r) { return r->nslots; }
apr_size_t upm_ring_data_size(const upm_ring *r) { return (apr_size_t)r->data_size; }
apr_uint32_t *upm_ring_wake_word(upm_ring *r) { return &r->wake; }

apr_size_t upm_id_format_buf(char *buf, apr_uint64_t epoch, apr_uint64_t seq)
{
    return (apr_size_t)snprintf(buf, 42, "%" APR_UINT64_T_FMT "-%" APR_UINT64_T_FMT,
                                epoch, seq);
}

const char *upm_id_format(apr_pool_t *p, apr_uint64_t epoch, apr_uint64_t seq)
{
    char *buf = apr_palloc(p, 42);
    upm_id_format_buf(buf, epoch, seq);
    return buf;
}

static int parse_u64(const char *s, const char *end, apr_uint64_t *out)
{
    apr_uint64_t v = 0;
    if (s == end || end - s > 20) {
        return -1;
    }
    for (; s < end; s++) {
        apr_uint64_t d;
        if (*s < '0' || *s > '9') {
            return -1;
        }
        d = (apr_uint64_t)(*s - '0');
        if (v > (APR_UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int upm_id_parse(const char *s, apr_uint64_t *epoch, apr_uint64_t *seq)
{
    const char *dash;
    if (!s) {
        return -1;
    }
    dash = strchr(s, '-');
    if (!dash || parse_u64(s, dash, epoch) != 0
        || parse_u64(dash + 1, dash + 1 + strlen(dash + 1), seq) != 0) {
        return -1;
    }
    return 0;
}

upm_resume_status upm_ring_resume_check(const upm_ring *r, apr_uint64_t epoch,
                                        apr_uint64_t seq)
{
    if (epoch != r->epoch) {
        return UPM_RESUME_EPOCH;
    }
    if (seq > r->last_seq) {
        return UPM_RESUME_INVALID;
    }
    if (seq + 1 < upm_ring_oldest(r)) {
        return UPM_RESUME_EXPIRED;
    }
    return UPM_RESUME_OK;
}

const char *upm_resume_reason(upm_resume_status st)
{
    switch (st) {
    case UPM_RESUME_OK:      return "ok";
    case UPM_RESUME_EXPIRED: return "expired";
    case UPM_RESUME_EPOCH:   return "epoch";
    default:                 return "invalid";
    }
}
