/* SPDX-License-Identifier: Apache-2.0 */
/* What every transport does the same way around its subscribers: replay
 * from the ring after a client's last id, the decision between replay and
 * reset, and the reset message (DESIGN section 4). */
#ifndef UPM_STREAM_H
#define UPM_STREAM_H

#include "httpd.h"
#include "upm_auth.h"
#include "upm_config.h"
#include "upm_hub.h"
#include <apr_tables.h>

/* Writes one frame to the client; non-zero stops the replay (the
 * connection failed). */
typedef int (*upm_stream_emit_fn)(void *baton, upm_frame *f);

/* Sends, in order, the ring's messages after `after` that match any of
 * the subscribers (once each, through their throttles), up to the ring's
 * end at the time, which it returns. */
apr_uint64_t upm_stream_replay(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                               apr_uint64_t after, upm_stream_emit_fn emit, void *baton);

/* Resumes after the client's last id: replays what it missed and returns
 * NULL, or returns the reason for a reset when that cannot be done.
 * Either way the subscribers then skip the frames up to where the replay
 * (or the reset) left off, so nothing is delivered twice. */
const char *upm_stream_resume(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                              const char *last_id, upm_stream_emit_fn emit, void *baton);

/* The reset message JSON {"type":"reset","id":...,"reason":...,
 * "timestamp":...}.  Its id is the ring's newest (in *id and *seq): a
 * client that resumes from it is not reset again. */
char *upm_stream_reset_json(apr_pool_t *p, const char *reason, const char **id,
                            apr_uint64_t *seq, apr_size_t *len);

/* Narrows spec to the request's named captures (MATCH_JOBID, ...) and
 * query parameters of the same names; a token grant for one of those ids
 * makes it the subscriber's route (spec->via).  Returns NULL, or the name
 * of a parameter whose value is not a valid id. */
const char *upm_stream_request_scope(request_rec *r, apr_table_t *query,
                                     const upm_auth_info *ai, upm_sub_spec *spec);

/* The subscriber of an SSE stream or a WebSocket before its client says
 * more: the user's own messages, narrowed by the request
 * (upm_stream_request_scope, whose result it returns), with the
 * location's throttle and send queue. */
const char *upm_stream_base_spec(request_rec *r, const upm_dir_conf *d, apr_table_t *query,
                                 const upm_auth_info *ai, upm_sub_spec *spec);

/* UploadProgressRequireGrant On and spec narrowed to a session, job,
 * project or file that the token does not grant (spec->via is still the
 * owner): the name of that field, for the 403.  Else NULL. */
const char *upm_stream_ungranted(const upm_dir_conf *d, const upm_sub_spec *spec);

/* Copies the strings of spec (user, scope) into p: a stream that
 * outlives its request keeps its spec there. */
void upm_stream_spec_copy(apr_pool_t *p, upm_sub_spec *spec);

/* The grant-claim list naming ids of this field ("projects", ...), or NULL
 * when the field cannot be granted. */
const char *upm_stream_grant_kind(int field);

/* upm_stream_resume that also tells where the replay (or the reset) left
 * off: *upto, the ring sequence the subscribers now skip to.  Polling
 * answers with it as the client's next id. */
const char *upm_stream_resume_upto(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                                   const char *last_id, upm_stream_emit_fn emit,
                                   void *baton, apr_uint64_t *upto);

/* A resume that a non-blocking transport sends in steps, so that what it
 * buffers stays bounded (a reactor must neither block nor hold a replay of
 * the whole ring in memory). */
typedef struct upm_resume_steps {
    apr_uint64_t cursor;        /* ring sequence replayed up to */
    upm_xid xid;                /* Streams mode: the client's id ... */
    int have_xid;               /* ... also skipped at the end */
} upm_resume_steps;

/* Starts a resume from last_id.  1: the steps may start (*rs set).
 * -1: the client needs a reset (*reason); the caller's reset makes the
 * subscribers skip.  0: done at once, as upm_stream_resume does (Streams
 * mode with an id older than this server's ring: read back from the
 * stream, which cannot go in steps); *reason NULL or the reset's reason. */
int upm_stream_resume_begin(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                            const char *last_id, upm_stream_emit_fn emit, void *baton,
                            upm_resume_steps *rs, const char **reason);

/* One step: emits, in order, the matching messages after rs->cursor until
 * about max_bytes of JSON went out, 1024 messages were looked at, emit
 * asked to stop or the ring's end.  Returns 0 when there is more; 1 when
 * the replay is over (the subscribers now skip what it covered); -1 when
 * the client needs a reset (*reason: "expired" when the ring evicted
 * messages the steps had not reached yet, "redis" at a gap marker). */
int upm_stream_resume_step(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                           upm_resume_steps *rs, apr_size_t max_bytes,
                           upm_stream_emit_fn emit, void *baton, const char **reason);

/* Where a resume from last_id would start in this server's ring: NULL
 * and *after set when every message after it is still held here, else
 * the reason for a reset ("expired", "epoch", "invalid", "redis"), or, in
 * Streams mode, "uncovered" when only the stream can tell. */
const char *upm_stream_resume_point(const char *last_id, apr_uint64_t *after);

/* Whether the ring holds a message with a sequence in (after, upto] that
 * any of the subscribers matches (throttles untouched).  -1 when part of
 * that range was evicted already (it cannot tell). */
int upm_stream_any_between(apr_pool_t *p, upm_sub *const *subs, int nsubs,
                           apr_uint64_t after, apr_uint64_t upto);

/* The client's last id: the Last-Event-ID header, else the query
 * parameter `param` (lastEventId for SSE, since for polling); NULL when
 * neither is given. */
const char *upm_stream_last_id(request_rec *r, apr_table_t *query, const char *param);

#endif
