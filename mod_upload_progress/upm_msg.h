/* SPDX-License-Identifier: Apache-2.0 */
/* The record a message occupies in the ring: the routing fields the
 * fan-out needs (so it never parses JSON per recipient) followed by the
 * message JSON without its id (the id is derived from the sequence and
 * spliced in when a frame is built). */
#ifndef UPM_MSG_H
#define UPM_MSG_H

#include <apr.h>
#include <apr_pools.h>
#include <apr_time.h>
#include <jansson.h>

enum {
    UPM_F_TYPE = 0, UPM_F_OWNER, UPM_F_PHOTO, UPM_F_FILE, UPM_F_JOB,
    UPM_F_SESSION, UPM_F_PROJECT, UPM_F__COUNT
};

/* upm_msg.flags */
#define UPM_MSG_GAP 0x01        /* not a message: messages may be missing
                                 * here; every client gets a reset */
#define UPM_MSG_CLIENT 0x02     /* made from a client's own request (upload
                                 * tracking): its ids are the client's word,
                                 * so it reaches its owner's streams only */

/* The member that carries UPM_MSG_CLIENT through Redis, where a message is
 * its JSON only; taken out again when the message is read back. */
#define UPM_MSG_CLIENT_MEMBER "_upmOrigin"

typedef struct upm_msg {
    apr_uint64_t seq;           /* set by the reader, not stored */
    unsigned flags;             /* UPM_MSG_* */
    /* The id clients see when it is not "<epoch>-<seq>": the Redis stream
     * entry id in Streams mode.  "" (or NULL when packing) when none.  A
     * gap marker carries the id of the last entry before the gap. */
    const char *ext;
    apr_time_t published;       /* when the module accepted it */
    double percent;             /* progress percent, or < 0 when none */
    const char *f[UPM_F__COUNT];/* "" when absent; NUL-terminated */
    const char *json;           /* NUL-terminated, starts with '{' */
    apr_size_t json_len;
} upm_msg;

/* Compact JSON with doubles kept readable (45.5, not 45.499999...). */
#define UPM_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* The record of a normalised message (upm_event_normalize's output)
 * owned by `owner`, allocated from p.  NULL only when the JSON cannot be
 * serialised. */
upm_msg *upm_msg_make(apr_pool_t *p, json_t *msg, const char *owner,
                      apr_time_t published);

/* Serialises m into one pool buffer. */
char *upm_msg_pack(apr_pool_t *p, const upm_msg *m, apr_size_t *len);

/* Points m's strings into buf.  0 on success, -1 on a corrupt record. */
int upm_msg_unpack(const char *buf, apr_size_t len, upm_msg *m);

/* The message JSON with "id":"<id>" as its first member. */
char *upm_msg_json_with_id(apr_pool_t *p, const upm_msg *m, const char *id,
                           apr_size_t *len);

/* Key under which progress messages are throttled/coalesced:
 * type + the first of photoId, fileId, jobId, sessionId.  0 when the
 * message carries none of them. */
apr_uint64_t upm_msg_progress_key(const upm_msg *m);

/* Routing fields come as the names used in message JSON. */
const char *upm_msg_field_name(int f);

#endif
