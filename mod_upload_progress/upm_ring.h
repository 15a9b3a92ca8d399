/* SPDX-License-Identifier: Apache-2.0 */
/* The replay ring: fixed-size index slots plus a circular data area, laid
 * out in one block of shared memory (DESIGN section 4).  Pure arithmetic on
 * that block; the caller serialises appends and reads with its own lock.
 *
 * Sequence numbers start at 1 and never repeat within an epoch.  A message
 * with sequence s sits in slot s % nslots while no later message has taken
 * that slot and the data area has not wrapped over its bytes; the first of
 * those two evictions makes it unavailable (UPM_RING_GONE). */
#ifndef UPM_RING_H
#define UPM_RING_H

#include <apr.h>
#include <apr_pools.h>

typedef struct upm_ring upm_ring;

typedef enum {
    UPM_RING_OK = 0,
    UPM_RING_GONE,          /* evicted: older than what the ring holds */
    UPM_RING_FUTURE         /* never assigned yet */
} upm_ring_status;

typedef enum {
    UPM_RESUME_OK = 0,      /* every message after the id is still held */
    UPM_RESUME_EXPIRED,     /* some of them were evicted */
    UPM_RESUME_EPOCH,       /* id of another ring generation */
    UPM_RESUME_INVALID      /* malformed, or a sequence not assigned yet */
} upm_resume_status;

/* Bytes of shared memory needed for the geometry. */
apr_size_t upm_ring_bytes(apr_uint32_t nslots, apr_size_t data_size);

/* Lays out an empty ring in mem (upm_ring_bytes() long). */
upm_ring *upm_ring_init(void *mem, apr_uint32_t nslots, apr_size_t data_size,
                        apr_uint64_t epoch);

/* The ring in mem when it was laid out with this geometry, else NULL
 * (a changed geometry means a cold start with a new epoch). */
upm_ring *upm_ring_attach(void *mem, apr_uint32_t nslots, apr_size_t data_size);

/* Appends a record; returns its sequence, or 0 when len is 0 or larger
 * than upm_ring_max_record(). */
apr_uint64_t upm_ring_append(upm_ring *r, const void *data, apr_size_t len);

/* Called for each record the append is about to evict, oldest first,
 * while its bytes are still readable. */
typedef void (*upm_ring_gone_fn)(void *baton, apr_uint64_t seq, const void *data,
                                 apr_size_t len);
/* upm_ring_append that tells gone() about every record it evicts. */
apr_uint64_t upm_ring_append_ex(upm_ring *r, const void *data, apr_size_t len,
                                upm_ring_gone_fn gone, void *baton);

/* The record with sequence seq: a pointer into the ring, valid until the
 * next append (so: while the caller's lock is held). */
upm_ring_status upm_ring_peek(const upm_ring *r, apr_uint64_t seq,
                              const void **data, apr_size_t *len);

apr_uint64_t upm_ring_epoch(const upm_ring *r);
apr_uint64_t upm_ring_last(const upm_ring *r);      /* 0 when empty */
/* Oldest sequence still readable; last + 1 when nothing is. */
apr_uint64_t upm_ring_oldest(const upm_ring *r);
apr_size_t upm_ring_max_record(const upm_ring *r);
apr_uint32_t upm_ring_slots(const upm_ring *r);
apr_size_t upm_ring_data_size(const upm_ring *r);
/* Bytes of the data area currently holding readable records. */
apr_size_t upm_ring_data_used(const upm_ring *r);

/* The 32-bit word bumped after every append, for cross-process wake-ups. */
apr_uint32_t *upm_ring_wake_word(upm_ring *r);

/* Message ids: "<epoch>-<seq>", both decimal. */
const char *upm_id_format(apr_pool_t *p, apr_uint64_t epoch, apr_uint64_t seq);
/* Formats into buf (at least 42 bytes); returns the length. */
apr_size_t upm_id_format_buf(char *buf, apr_uint64_t epoch, apr_uint64_t seq);
/* 0 on success; -1 when s is not of that form. */
int upm_id_parse(const char *s, apr_uint64_t *epoch, apr_uint64_t *seq);

/* Can a client that has seen (epoch, seq) be given everything after it? */
upm_resume_status upm_ring_resume_check(const upm_ring *r, apr_uint64_t epoch,
                                        apr_uint64_t seq);
const char *upm_resume_reason(upm_resume_status st);

#endif
