/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the publish body (upm_publish_body.c): the input
 * is a request body, taken through what the publish handler does with it
 * (jansson with the handler's flags, upm_event_normalize with an event
 * map, the record and its size limit), then each record is packed,
 * unpacked and appended to a replay ring and read back.  It checks the
 * routing fields of every accepted message against its JSON, and that
 * every refusal gives the handler a status, a code and a body it can
 * serialise. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <jansson.h>
#include "upm_event.h"
#include "upm_msg.h"
#include "upm_publish_body.h"
#include "upm_ring.h"

/* Small enough that the 413 of one event is reachable; the handler
 * reads at most 16 times this. */
#define MAX_EVENT 4096
#define RING_SLOTS 16
#define RING_DATA (64 * 1024)

static apr_pool_t *root;
static apr_hash_t *map;
static void *ring_mem;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apr_initialize();
    apr_pool_create(&root, NULL);
    map = apr_hash_make(root);
    apr_hash_set(map, "Custom", APR_HASH_KEY_STRING, "custom_type");
    apr_hash_set(map, "PhotoUploadFailed", APR_HASH_KEY_STRING, "photo_failed");
    ring_mem = malloc(upm_ring_bytes(RING_SLOTS, RING_DATA));
    return 0;
}

static int printable(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) {
            return 0;
        }
    }
    return 1;
}

/* The error body the handler writes for a refusal. */
static void check_refusal(const upm_publish_refusal *why)
{
    json_t *o;
    char *t;

    if (why->status != 400 && why->status != 413 && why->status != 422) abort();
    if (!why->code || !*why->code || !why->message || !*why->message
        || !printable(why->message)) abort();
    if (why->index < -1 || why->index >= UPM_PUBLISH_MAX_BATCH) abort();
    if (why->status == 400 && why->index != -1) abort();
    if (why->status == 413 && why->index < 0) abort();
    if (why->status == 400) {
        o = json_pack("{s:s,s:s,s:i,s:i,s:i}", "error", why->code, "message",
                      why->message, "line", why->line, "column", why->column,
                      "position", why->position);
    }
    else {
        o = json_pack("{s:s,s:s}", "error", why->code, "message", why->message);
    }
    if (!o) abort();
    t = json_dumps(o, UPM_DUMP_FLAGS);
    if (!t) abort();
    free(t);
    json_decref(o);
}

static void check_id_field(json_t *msg, int f, const char *routed)
{
    json_t *v = json_object_get(msg, upm_msg_field_name(f));

    if (!v) {
        if (*routed) abort();
        return;
    }
    if (!json_is_string(v) || strcmp(json_string_value(v), routed) != 0) abort();
    if (!upm_valid_id(routed)) abort();
}

static void check_message(apr_pool_t *p, const upm_msg *m, upm_ring *ring)
{
    json_t *msg, *v, *w;
    upm_msg u;
    const void *rec;
    apr_size_t plen, rlen, idlen;
    apr_uint64_t seq;
    char *packed, *with_id;
    int f;

    if (!m->json || m->json_len != strlen(m->json) || m->json_len > MAX_EVENT
        || m->json[0] != '{') abort();
    msg = json_loadb(m->json, m->json_len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(msg)) abort();

    v = json_object_get(msg, "type");
    if (!json_is_string(v) || strcmp(json_string_value(v), m->f[UPM_F_TYPE]) != 0
        || !*m->f[UPM_F_TYPE] || strlen(m->f[UPM_F_TYPE]) > 64
        || !printable(m->f[UPM_F_TYPE]) || strchr(m->f[UPM_F_TYPE], ' ')) abort();
    /* A message has an owner, or (addressed to a scope) no owner and at
     * least one of the ids that address a scope; photoId is none. */
    if (*m->f[UPM_F_OWNER] ? !upm_valid_id(m->f[UPM_F_OWNER])
        : !(*m->f[UPM_F_FILE] || *m->f[UPM_F_JOB] || *m->f[UPM_F_SESSION]
            || *m->f[UPM_F_PROJECT])) abort();
    for (f = UPM_F_OWNER; f < UPM_F__COUNT; f++) {
        check_id_field(msg, f, m->f[f]);
    }
    if (json_object_get(msg, "id") || !json_is_string(json_object_get(msg, "timestamp"))) abort();
    if (json_is_number(json_object_get(msg, "bytesUploaded"))
        && json_is_number(json_object_get(msg, "totalBytes"))
        && !json_is_object(json_object_get(msg, "progress"))) {
        double pct = json_number_value(json_object_get(msg, "progress"));
        if (!(pct >= 0.0 && pct <= 100.0) || m->percent != pct) abort();
    }
    if (isnan(m->percent)) abort();

    /* The ring record gives back exactly the message. */
    packed = upm_msg_pack(p, m, &plen);
    memset(&u, 0, sizeof(u));
    if (upm_msg_unpack(packed, plen, &u) != 0) abort();
    if (u.json_len != m->json_len || memcmp(u.json, m->json, m->json_len) != 0
        || memcmp(&u.percent, &m->percent, sizeof(double)) != 0
        || u.published != m->published || *u.ext) abort();
    for (f = 0; f < UPM_F__COUNT; f++) {
        if (strcmp(u.f[f], m->f[f]) != 0) abort();
    }
    seq = upm_ring_append(ring, packed, plen);
    if (plen <= upm_ring_max_record(ring)) {
        if (!seq || upm_ring_peek(ring, seq, &rec, &rlen) != UPM_RING_OK
            || rlen != plen || memcmp(rec, packed, plen) != 0) abort();
    }
    else if (seq) {
        abort();
    }

    /* What clients get: the id spliced in as the first member. */
    with_id = upm_msg_json_with_id(p, &u, "1700000000-42", &idlen);
    w = json_loadb(with_id, idlen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(w) || json_object_size(w) != json_object_size(msg) + 1
        || strcmp(json_string_value(json_object_get(w, "id")), "1700000000-42") != 0) abort();
    json_decref(w);
    (void)upm_msg_progress_key(&u);
    json_decref(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    upm_publish_refusal why;
    upm_msg **msgs = NULL;
    upm_ring *ring;
    apr_time_t now = (apr_time_t)1700000000 * APR_USEC_PER_SEC;
    int n = 0, i;

    /* The handler refuses a larger body before parsing it. */
    if (size > 16 * MAX_EVENT) {
        return 0;
    }
    apr_pool_create(&p, root);
    ring = upm_ring_init(ring_mem, RING_SLOTS, RING_DATA, 1700000000);
    if (upm_publish_body(p, (const char *)data, size, map, MAX_EVENT, now,
                         &msgs, &n, &why) == 0) {
        if (n < 1 || n > UPM_PUBLISH_MAX_BATCH || !msgs) abort();
        for (i = 0; i < n; i++) {
            check_message(p, msgs[i], ring);
        }
    }
    else {
        check_refusal(&why);
    }
    apr_pool_destroy(p);
    return 0;
}
