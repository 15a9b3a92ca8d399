/* SPDX-License-Identifier: Apache-2.0 */
#include "upm_match.h"

#include <string.h>

int upm_match(const char *user, const char *const *scope, int via, const upm_msg *m)
{
    int f;
    /* A client named the ids of its own upload (upload tracking): a stream
     * watching them through another user's grant must not take its word
     * for them, so such a message reaches its owner's streams only. */
    if ((m->flags & UPM_MSG_CLIENT) && (!user || strcmp(m->f[UPM_F_OWNER], user) != 0)) {
        return 0;
    }
    if (via == UPM_F_OWNER) {
        /* An owner-less message has "" as its owner, which no
         * authenticated user is. */
        if (!user || !*user || strcmp(m->f[UPM_F_OWNER], user) != 0) {
            return 0;
        }
    }
    else if (via <= UPM_F_OWNER || via >= UPM_F__COUNT || via == UPM_F_PHOTO
             || !scope[via] || !*scope[via] || strcmp(m->f[via], scope[via]) != 0) {
        return 0;
    }
    for (f = UPM_F_PHOTO; f < UPM_F__COUNT; f++) {
        if (scope[f] && strcmp(m->f[f], scope[f]) != 0) {
            return 0;
        }
    }
    return 1;
}
