/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_track_state.h"
#include "upm_stats.h"

#include <apr_strings.h>
#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define UPM_TRACK_MAGIC 0x55504d54u  /* "UPMT" */

struct upm_track_table {
    apr_uint32_t magic;
    apr_uint32_t nslots;
    apr_uint64_t next_gen;
    upm_track_slot slot[1];     /* nslots of them */
};

apr_size_t upm_track_slot_bytes(void)
{
    return sizeof(upm_track_slot);
}

apr_size_t upm_track_table_bytes(apr_uint32_t nslots)
{
    return offsetof(upm_track_table, slot) + sizeof(upm_track_slot) * (nslots ? nslots : 1);
}

upm_track_table *upm_track_table_init(void *mem, apr_uint32_t nslots)
{
    upm_track_table *t = mem;
    memset(t, 0, upm_track_table_bytes(nslots));
    t->magic = UPM_TRACK_MAGIC;
    t->nslots = nslots;
    t->next_gen = 1;
    return t;
}

upm_track_table *upm_track_table_attach(void *mem, apr_uint32_t nslots)
{
    upm_track_table *t = mem;
    return (t->magic == UPM_TRACK_MAGIC && t->nslots == nslots) ? t : NULL;
}

apr_uint32_t upm_track_table_slots(const upm_track_table *t)
{
    return t->nslots;
}

apr_uint32_t upm_track_table_active(const upm_track_table *t)
{
    apr_uint32_t i, n = 0;
    for (i = 0; i < t->nslots; i++) {
        n += t->slot[i].phase == UPM_TS_ACTIVE;
    }
    return n;
}

static int owner_is(const upm_track_slot *s, const char *owner)
{
    if (!owner || !*owner) {
        return !s->has_owner;
    }
    return s->has_owner && strcmp(s->owner, owner) == 0;
}

static int live(const upm_track_slot *s, apr_time_t now)
{
    return s->phase == UPM_TS_ACTIVE
        || ((s->phase == UPM_TS_DONE || s->phase == UPM_TS_ERROR) && s->expires > now);
}

int upm_track_begin(upm_track_table *t, const char *id, const char *owner,
                    apr_int64_t size, apr_time_t now, apr_interval_time_t stale,
                    apr_uint64_t *gen)
{
    apr_uint32_t i;
    int same = -1, free_slot = -1, expired = -1, lru_done = -1, lru_stale = -1;
    upm_track_slot *s;

    if (!id || !*id || strlen(id) > UPM_TRACK_ID_MAX
        || (owner && strlen(owner) > UPM_TRACK_OWNER_MAX)) {
        return -1;
    }
    for (i = 0; i < t->nslots && same < 0; i++) {
        s = &t->slot[i];
        switch (s->phase) {
        case UPM_TS_FREE:
            if (free_slot < 0) {
                free_slot = (int)i;
            }
            continue;
        case UPM_TS_ACTIVE:
            if (strcmp(s->id, id) == 0 && owner_is(s, owner)) {
                same = (int)i;
            }
            else if (s->updated + stale <= now
                     && (lru_stale < 0 || s->updated < t->slot[lru_stale].updated)) {
                /* Nothing counted for that long: its request is gone
                 * (a child that crashed never finishes its uploads). */
                lru_stale = (int)i;
            }
            continue;
        default:
            if (strcmp(s->id, id) == 0 && owner_is(s, owner)) {
                same = (int)i;
            }
            else if (s->expires <= now) {
                if (expired < 0) {
                    expired = (int)i;
                }
            }
            else if (lru_done < 0 || s->finished < t->slot[lru_done].finished) {
                lru_done = (int)i;
            }
        }
    }
    i = (apr_uint32_t)(same >= 0 ? same : free_slot >= 0 ? free_slot
                       : expired >= 0 ? expired : lru_done >= 0 ? lru_done : lru_stale);
    if ((int)i < 0) {
        return -1;
    }
    s = &t->slot[i];
    memset(s, 0, sizeof(*s));
    s->gen = t->next_gen++;
    s->size = size >= 0 ? size : -1;
    s->started = now;
    s->updated = now;
    s->phase = UPM_TS_ACTIVE;
    s->reason = -1;
    apr_cpystrn(s->id, id, sizeof(s->id));
    if (owner && *owner) {
        s->has_owner = 1;
        apr_cpystrn(s->owner, owner, sizeof(s->owner));
    }
    *gen = s->gen;
    return (int)i;
}

static upm_track_slot *mine(upm_track_table *t, int slot, apr_uint64_t gen)
{
    if (slot < 0 || (apr_uint32_t)slot >= t->nslots || t->slot[slot].gen != gen) {
        return NULL;
    }
    return &t->slot[slot];
}

int upm_track_update(upm_track_table *t, int slot, apr_uint64_t gen,
                     apr_int64_t received, apr_time_t now)
{
    upm_track_slot *s = mine(t, slot, gen);
    if (!s || s->phase != UPM_TS_ACTIVE) {
        return -1;
    }
    s->received = received;
    s->updated = now;
    return 0;
}

int upm_track_finish(upm_track_table *t, int slot, apr_uint64_t gen, int ok,
                     int status, int reason, apr_int64_t received, apr_time_t now,
                     apr_interval_time_t keep)
{
    upm_track_slot *s = mine(t, slot, gen);
    if (!s || s->phase != UPM_TS_ACTIVE) {
        return -1;
    }
    s->received = received;
    if (s->size < 0 && ok) {
        s->size = received;
    }
    s->phase = ok ? UPM_TS_DONE : UPM_TS_ERROR;
    s->status = status;
    s->reason = ok ? -1 : reason;
    /* `updated` stays the time of the last byte read: a finished upload's
     * speed is measured to it, as the old module did. */
    s->finished = now;
    /* At least a microsecond, so that a keep of 0 still tells "expired"
     * apart from "active". */
    s->expires = now + (keep > 0 ? keep : 1);
    return 0;
}

int upm_track_lookup(const upm_track_table *t, const char *id, const char *reader,
                     apr_time_t now, upm_track_slot *out)
{
    apr_uint32_t i;
    const upm_track_slot *best = NULL;
    int best_own = 0;
    for (i = 0; i < t->nslots; i++) {
        const upm_track_slot *s = &t->slot[i];
        int own;
        if (!live(s, now) || strcmp(s->id, id) != 0) {
            continue;
        }
        own = s->has_owner && owner_is(s, reader);
        if (!own && s->has_owner) {
            continue;
        }
        /* The reader's own upload before an anonymous one under the same
         * id, then the most recent. */
        if (!best || own > best_own || (own == best_own && s->started > best->started)) {
            best = s;
            best_own = own;
        }
    }
    if (best) {
        *out = *best;
        return 1;
    }
    return 0;
}

int upm_track_owned_by_other(const upm_track_table *t, const char *id,
                             const char *reader, apr_time_t now)
{
    apr_uint32_t i;
    for (i = 0; i < t->nslots; i++) {
        const upm_track_slot *s = &t->slot[i];
        if (live(s, now) && strcmp(s->id, id) == 0 && s->has_owner && !owner_is(s, reader)) {
            return 1;
        }
    }
    return 0;
}

apr_int64_t upm_track_speed(apr_int64_t received, apr_time_t started, apr_time_t end)
{
    apr_int64_t us = (apr_int64_t)(end - started);
    if (us < 1000 || received <= 0) {
        return 0;
    }
    /* received * 1e6 overflows only past 9 TB: divide first then. */
    if (received > APR_INT64_MAX / 1000000) {
        return received / (us / 1000000 ? us / 1000000 : 1);
    }
    return received * 1000000 / us;
}

apr_int64_t upm_track_eta(apr_int64_t received, apr_int64_t size, apr_int64_t speed)
{
    if (size < 0 || speed <= 0) {
        return -1;
    }
    if (received >= size) {
        return 0;
    }
    return (size - received + speed - 1) / speed;
}

apr_int64_t upm_track_old_speed(apr_int64_t received, apr_time_t started,
                                apr_time_t last_read)
{
    apr_int64_t secs = (apr_int64_t)apr_time_sec(last_read) - (apr_int64_t)apr_time_sec(started);
    return (secs > 0 && received > 0) ? received / secs : 0;
}

apr_int64_t upm_track_old_eta(apr_int64_t size, apr_int64_t speed, apr_time_t started,
                              apr_time_t now)
{
    apr_int64_t eta = 0, t = (apr_int64_t)apr_time_sec(now);
    if (speed > 0) {
        eta = (apr_int64_t)apr_time_sec(started) + size / speed;
    }
    /* Never in the past, so that "eta - now" stays positive on a page. */
    return eta <= t ? t + 1 : eta;
}

char *upm_track_report_json(apr_pool_t *p, const char *id, const upm_track_slot *s,
                            apr_time_t now)
{
    json_t *o = json_object();
    char *text, *out;
    /* An unknown size reads as what arrived so far, as the old module
     * reported a chunked upload. */
    apr_int64_t size = s ? (s->size >= 0 ? s->size : s->received) : 0;

    /* The old module's keys and their order, state by state; the extras
     * (reason, received where it had none, seconds_left) are names it never
     * sent, so its pages do not see them. */
    if (!s || (s->phase == UPM_TS_ACTIVE && s->received <= 0)) {
        json_object_set_new(o, "state", json_string("starting"));
    }
    else if (s->phase == UPM_TS_ERROR) {
        json_object_set_new(o, "state", json_string("error"));
        json_object_set_new(o, "status", json_integer(s->status));
        if (s->reason >= 0) {
            json_object_set_new(o, "reason", json_string(
                upm_stats_upload_failure_name((upm_upload_failure)s->reason)));
        }
        json_object_set_new(o, "received", json_integer(s->received));
        json_object_set_new(o, "size", json_integer(size));
    }
    else {
        int done = s->phase == UPM_TS_DONE;
        apr_int64_t speed = upm_track_old_speed(s->received, (apr_time_t)s->started,
                                                (apr_time_t)s->updated);
        json_object_set_new(o, "state", json_string(done ? "done" : "uploading"));
        json_object_set_new(o, "received", json_integer(s->received));
        json_object_set_new(o, "size", json_integer(size));
        json_object_set_new(o, "speed", json_integer(speed));
        json_object_set_new(o, "started_at",
                            json_integer((json_int_t)apr_time_sec((apr_time_t)s->started)));
        if (done) {
            json_object_set_new(o, "completed_at",
                                json_integer((json_int_t)apr_time_sec((apr_time_t)s->finished)));
        }
        else {
            /* seconds_left from the exact rate (microseconds, not whole
             * seconds); null while it cannot be told. */
            apr_int64_t left = upm_track_eta(s->received, s->size,
                                             upm_track_speed(s->received,
                                                             (apr_time_t)s->started, now));
            json_object_set_new(o, "eta", json_integer(
                upm_track_old_eta(size, speed, (apr_time_t)s->started, now)));
            json_object_set_new(o, "seconds_left", left >= 0 ? json_integer(left) : json_null());
        }
    }
    json_object_set_new(o, "uuid", json_string(id));
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    out = apr_pstrdup(p, text ? text : "{\"state\":\"starting\"}");
    free(text);
    return out;
}
