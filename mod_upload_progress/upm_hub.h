/* SPDX-License-Identifier: Apache-2.0 */
/* The per-child fan-out: an index from owner (and granted project, job,
 * session or file) to the connections of this child that want those
 * messages, each with a bounded queue of shared frames.  One thread per
 * child follows the ring and feeds the hub; cost per message is
 * O(recipients), never O(connections). */
#ifndef UPM_HUB_H
#define UPM_HUB_H

/* The message type that closes its user's connections (docs/events.md). */
#define UPM_DISCONNECT_TYPE "disconnect"

#include "httpd.h"
#include <apr_thread_cond.h>
#include "upm_msg.h"
#include "upm_throttle.h"
#include "upm_redis_logic.h"

/* A message as every transport of this child writes it: built once per
 * message and shared (reference-counted) by all its recipients. */
typedef struct upm_frame {
    apr_uint32_t refs;
    apr_uint64_t seq;
    apr_uint64_t pkey;          /* progress key; 0 when not throttled */
    int is_progress;
    double percent;
    apr_time_t published;
    int has_xid;                /* Streams mode: xid is the id */
    upm_xid xid;
    const char *id;             /* "<epoch>-<seq>", or the stream id */
    const char *type;
    const char *json;           /* message JSON with its id */
    apr_size_t json_len;
} upm_frame;

/* Creates a frame from a message (one malloc; reference count 1).  The id
 * is the message's external id when it has one, else "<epoch>-<seq>". */
upm_frame *upm_frame_make(const upm_msg *m, apr_uint64_t epoch);
void upm_frame_ref(upm_frame *f);
void upm_frame_unref(upm_frame *f);

typedef enum {
    UPM_SUB_OK = 0,
    UPM_SUB_RESET,              /* messages were lost: tell the client */
    UPM_SUB_CLOSING,            /* the child is stopping */
    UPM_SUB_DISCONNECT          /* a disconnect for the user was delivered:
                                 * close (SSE: after it; WebSocket: 4003) */
} upm_sub_state;

typedef struct upm_sub upm_sub;

/* What a connection listens to.  scope[f] non-NULL: the message's field f
 * must equal it.  via: UPM_F_OWNER for the user's own messages, or
 * UPM_F_PROJECT / UPM_F_JOB / UPM_F_SESSION / UPM_F_FILE when the token
 * grants that id (then scope[via] is that id and owner is not checked). */
typedef struct upm_sub_spec {
    const char *user;
    const char *scope[UPM_F__COUNT];
    int via;
    double throttle_step;
    apr_size_t max_queue_bytes;
    /* How the connection's owner learns that frames (or a reset or close)
     * are waiting.  NULL: upm_sub_take's own condition variable, for a
     * worker thread that blocks in it.  Otherwise called with the hub lock
     * held, so it must only wake something up (write to a pipe or an
     * eventfd, wake a pollset) and never call back into the hub. */
    void (*notify)(void *baton);
    void *baton;
} upm_sub_spec;

/* Registers a subscriber, allocated from p (which must outlive it:
 * upm_hub_remove is registered as a cleanup of p). */
upm_sub *upm_hub_add(apr_pool_t *p, const upm_sub_spec *spec);
void upm_hub_remove(upm_sub *sub);

/* Whether a message is for this subscriber (owner/grant and scope). */
int upm_sub_matches(const upm_sub *sub, const upm_msg *m);
/* Throttle decision for this subscriber; updates its state. */
int upm_sub_throttle_pass(upm_sub *sub, const upm_frame *f);

/* Frames with seq <= upto were already sent by a replay: dropped. */
void upm_sub_skip_upto(upm_sub *sub, apr_uint64_t upto);
/* A subscriber added to a connection after a replay: it skips what the
 * connection's replay (from's skip) covered, since the fan-out may still
 * hand it frames the replay sent already. */
void upm_sub_skip_copy(upm_sub *to, const upm_sub *from);
/* Frames with a stream id <= xid were already sent (read from the stream
 * itself): dropped. */
void upm_sub_skip_xid(upm_sub *sub, upm_xid xid);

/* Waits until frames are queued, a reset or close is pending, or until
 * `until` (0: does not wait).  Moves up to max queued frames, and no more
 * than max_bytes of JSON (but always at least one), to out (the caller
 * unrefs them) and returns their number; *state tells a reset or close. */
int upm_sub_take(upm_sub *sub, apr_time_t until, upm_frame **out, int max,
                 apr_size_t max_bytes, upm_sub_state *state, const char **reason);

/* For a connection made of several subscribers (one per subscription):
 * takes up to max queued frames from all of them at once, without waiting,
 * in sequence order, and a message that several of them hold only once.
 * Taking under one lock is what makes the merge safe: every frame left
 * queued is newer than every frame taken.  *state: UPM_SUB_RESET when any
 * of them was reset (their reset flags are cleared), else UPM_SUB_CLOSING
 * when any is closing. */
int upm_sub_take_merged(upm_sub *const *subs, int nsubs, upm_frame **out, int max,
                        upm_sub_state *state, const char **reason);

/* Per-child lifetime: starts the ring follower thread. */
void upm_hub_child_init(apr_pool_t *pchild, server_rec *s);
/* Asks every subscriber of this child to close (graceful stop). */
void upm_hub_close_all(void);

/* Subscribers held by this child. */
int upm_hub_count(void);

#endif
