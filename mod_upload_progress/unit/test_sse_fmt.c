/* SPDX-License-Identifier: Apache-2.0 */
#include <apr_general.h>
#include "upm_sse_fmt.h"
#include "upm_test.h"

int main(void)
{
    apr_pool_t *p;
    apr_size_t len;
    char *s;
    upm_msg m = { 0 };

    apr_initialize();
    apr_pool_create(&p, NULL);

    s = upm_sse_frame(p, "1-2", "upload_progress", "{\"a\":1}", 7, &len);
    UPM_CHECK_STR(s, "id: 1-2\nevent: upload_progress\ndata: {\"a\":1}\n\n");
    UPM_CHECK_INT(len, strlen(s));

    /* Line breaks in data become several data: lines; CRLF counts once. */
    s = upm_sse_frame(p, NULL, "reset", "a\nb\r\nc\rd", 8, &len);
    UPM_CHECK_STR(s, "event: reset\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
    UPM_CHECK_INT(len, strlen(s));

    s = upm_sse_frame(p, NULL, NULL, "x", 1, &len);
    UPM_CHECK_STR(s, "data: x\n\n");

    s = upm_sse_comment(p, "heart\nbeat", &len);
    UPM_CHECK_STR(s, ": heart beat\n\n");
    UPM_CHECK_INT(len, 14);

    s = upm_sse_retry(p, 3000, &len);
    UPM_CHECK_STR(s, "retry: 3000\n\n");
    UPM_CHECK_INT(len, 13);

    m.f[UPM_F_TYPE] = "job_progress";
    m.json = "{\"type\":\"job_progress\"}";
    m.json_len = strlen(m.json);
    s = upm_sse_msg_frame(p, &m, "9-9", &len);
    UPM_CHECK_STR(s, "id: 9-9\nevent: job_progress\n"
                     "data: {\"id\":\"9-9\",\"type\":\"job_progress\"}\n\n");

    apr_pool_destroy(p);
    apr_terminate();
    UPM_TEST_DONE("sse_fmt");
}
