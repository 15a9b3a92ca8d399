#include "upm_emit.h"
#include "upm_redis.h"
#include "upm_bus.h"

#include <apr_strings.h>
#include <stdlib.h>

/* The percentage the fan-out throttles on: `progress` when it is a
 * number, else `progressPercent` (set when `progress` is an object). */
static double message_percent(json_t *msg)
{
    json_t *v = json_object_get(msg, "progress");
    if (!json_is_number(v)) {
        v = json_object_get(msg, "progressPercent");
    }
    return json_is_number(v) ? json_number_value(v) : -1.0;
}

static const char *field_str(json_t *msg, const char *name)
{
    const char *s = json_string_value(json_object_get(msg, name));
    return s ? s : "";
}

upm_msg *upm_emit_make(apr_pool_t *p, json_t *msg, const char *owner,
                       apr_time_t published)
{
    upm_msg *m;
    char *text = json_dumps(msg, UPM_DUMP_FLAGS);
    int f;

    if (!text) {
        return NULL;
    }
    m = apr_pcalloc(p, sizeof(*m));
    m->published = published;
    m->percent = message_percent(msg);
    for (f = 0; f < UPM_F__COUNT; f++) {
        m->f[f] = apr_pstrdup(p, field_str(msg, upm_msg_field_name(f)));
    }
    m->f[UPM_F_OWNER] = apr_pstrdup(p, owner ? owner : "");
    m->json_len = strlen(text);
    m->json = apr_pstrmemdup(p, text, m->json_len);
    free(text);
    return m;
}

apr_status_t upm_emit_publish(apr_pool_t *p, upm_msg *const *msgs, int n,
                              apr_uint64_t *seqs)
{
    if (upm_redis_enabled()) {
        /* Through Redis, so that every server sharing it delivers them
         * (and, in Streams mode, they get stream ids like everything else);
         * the listener appends them to this server's ring too. */
        const char *err = NULL;
        apr_status_t rv = upm_redis_send(p, msgs, n, NULL, &err);
        memset(seqs, 0, sizeof(*seqs) * (apr_size_t)n);
        return rv;
    }
    return upm_bus_publish(p, msgs, n, seqs);
}
