/* SPDX-License-Identifier: Apache-2.0 */
/* A message for the tests that route messages (matching, eviction): only
 * its routing fields matter, its JSON does not. */
#ifndef UPM_TEST_MSG_H
#define UPM_TEST_MSG_H

#include <string.h>
#include "upm_msg.h"

/* "" for a field the message does not carry, as the ingest makes it. */
static inline upm_msg upm_test_msg(const char *type, const char *owner, const char *photo,
                                   const char *file, const char *job, const char *session,
                                   const char *project)
{
    upm_msg m;
    memset(&m, 0, sizeof(m));
    m.f[UPM_F_TYPE] = type;
    m.f[UPM_F_OWNER] = owner;
    m.f[UPM_F_PHOTO] = photo;
    m.f[UPM_F_FILE] = file;
    m.f[UPM_F_JOB] = job;
    m.f[UPM_F_SESSION] = session;
    m.f[UPM_F_PROJECT] = project;
    m.json = "{}";
    m.json_len = 2;
    return m;
}

#endif
