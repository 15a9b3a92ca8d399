/* SPDX-License-Identifier: Apache-2.0 */
/* The WebSocket subscribe protocol, without I/O: parsing and validation of
 * the client's JSON messages, the connection's subscription set and its
 * rate limit, as functions of (state, message, now), and the JSON of the
 * replies.  The handler mirrors the subscription set with hub
 * subscribers; this file decides what is allowed. */
#ifndef UPM_WS_PROTO_H
#define UPM_WS_PROTO_H

#include <apr.h>
#include <apr_pools.h>
#include <apr_time.h>
#include "upm_msg.h"

#define UPM_WSP_MAX_SUBS   64      /* subscriptions per connection */
#define UPM_WSP_RATE       20      /* subscribe/unsubscribe/resume per second */
#define UPM_WSP_ID_MAX     128

typedef struct {
    int field;                     /* UPM_F_PROJECT, _JOB, _SESSION, _FILE, _PHOTO */
    char id[UPM_WSP_ID_MAX + 1];
} upm_wsp_sub;

typedef struct {
    /* What the connection is already narrowed to (URL captures, query):
     * a subscription may not ask for another value of those fields. */
    const char *base[UPM_F__COUNT];
    upm_wsp_sub subs[UPM_WSP_MAX_SUBS];
    int nsubs;
    /* times of the last UPM_WSP_RATE accepted operations (a ring) */
    apr_time_t ops[UPM_WSP_RATE];
    int ops_next;
    /* May the client subscribe to this id?  NULL: any.  0 refuses a new
     * subscription with `forbidden` (UploadProgressRequireGrant and a
     * token that does not grant the id). */
    int (*allow)(void *baton, int field, const char *id);
    void *allow_baton;
} upm_wsp_state;

typedef enum {
    UPM_WSP_ERROR = 0,             /* reply with code/message, nothing changed */
    UPM_WSP_SUBSCRIBED,            /* subs[index] added (or already there) */
    UPM_WSP_UNSUBSCRIBED,          /* subs[index] removed: the last entry moved there */
    UPM_WSP_RESUME,                /* replay after last_event_id */
    UPM_WSP_PONG                   /* application-level {"type":"ping"} */
} upm_wsp_action;

typedef struct {
    upm_wsp_action action;
    int field;
    const char *id;
    int index;
    int existed;                   /* SUBSCRIBED: was already subscribed */
    const char *last_event_id;
    const char *code;              /* ERROR */
    const char *message;
} upm_wsp_result;

/* base[f] non-NULL: the connection is fixed to that value of field f. */
void upm_wsp_init(upm_wsp_state *st, const char *const *base);

/* Handles one text message.  Strings in *res live in p. */
void upm_wsp_handle(upm_wsp_state *st, apr_pool_t *p, const char *text, apr_size_t len,
                    apr_time_t now, upm_wsp_result *res);

/* The reply to send for res (NULL for RESUME, which answers with the
 * replayed messages or a reset). */
char *upm_wsp_reply(apr_pool_t *p, const upm_wsp_result *res, apr_size_t *len);

/* {"type":"connected","clientId":...,"lastEventId":...}: lastEventId (where
 * the stream starts, so that a client dropped before its first message
 * resumes from there) is left out when NULL. */
char *upm_wsp_connected(apr_pool_t *p, const char *client_id, const char *last_event_id,
                        apr_size_t *len);

/* Is s 1..128 of [A-Za-z0-9._:-]? */
int upm_wsp_valid_id(const char *s);

/* The message field name of a subscribable field ("projectId", ...). */
const char *upm_wsp_field_name(int field);

#endif
