/* SPDX-License-Identifier: Apache-2.0 */
/* Who receives a message: the one predicate every delivery path applies
 * (live fan-out, ring replay, polling, every child).  Pure: APR only. */
#ifndef UPM_MATCH_H
#define UPM_MATCH_H

#include "upm_msg.h"

/* Does message m reach a subscriber of user `user`, narrowed to scope[]
 * (scope[f] non-NULL: the message's field f must equal it), routed via
 * `via`?
 *  - via UPM_F_OWNER: only the user's own messages (m's owner is user);
 *    a message with no owner (addressed to a scope) never matches;
 *  - via UPM_F_SESSION / _JOB / _PROJECT / _FILE: the token grants
 *    scope[via]; every message whose field via is that id matches,
 *    whoever owns it, and messages addressed to that scope;
 *  - then every narrowing of scope[] must hold.
 * The hub indexes subscribers by (via, id) so that it only ever asks this
 * of the subscribers a message can reach. */
int upm_match(const char *user, const char *const *scope, int via, const upm_msg *m);

#endif
