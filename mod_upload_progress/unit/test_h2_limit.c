/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the HTTP/2 stream limits derived from mod_http2's. */
#include "upm_h2_limit.h"
#include "upm_test.h"

int main(void)
{
    upm_h2_conf c = { 0, 0, 25, 0 };

    /* Debian's defaults with ThreadsPerChild 25: 37 h2 workers; a
     * connection's limit may fall to 2: one held, one free. */
    UPM_CHECK_INT(upm_h2_workers(&c), 37);
    UPM_CHECK_INT(upm_h2_limit_per_conn(&c), 1);
    /* Each stream's connection may keep an MPM worker: half of 25. */
    UPM_CHECK_INT(upm_h2_limit_per_child(&c), 12);
    c.threads_per_child = 200;
    UPM_CHECK_INT(upm_h2_limit_per_child(&c), 100);
    c.threads_per_child = 25;

    /* H2MinWorkers sets the base of the default maximum. */
    c.min_workers = 10;
    UPM_CHECK_INT(upm_h2_workers(&c), 15);
    UPM_CHECK_INT(upm_h2_limit_per_child(&c), 9);

    /* H2MaxWorkers wins. */
    c.max_workers = 12;
    UPM_CHECK_INT(upm_h2_limit_per_conn(&c), 1);
    UPM_CHECK_INT(upm_h2_limit_per_child(&c), 6);
    c.max_workers = 4;
    UPM_CHECK_INT(upm_h2_limit_per_conn(&c), 1);
    UPM_CHECK_INT(upm_h2_limit_per_child(&c), 1);

    /* A tiny child: mod_http2's floor of 4 workers. */
    c.min_workers = 0;
    c.max_workers = 0;
    c.threads_per_child = 1;
    UPM_CHECK_INT(upm_h2_workers(&c), 4);
    UPM_CHECK_INT(upm_h2_limit_per_conn(&c), 1);

    /* One stream per session: never fewer than one place. */
    c.threads_per_child = 25;
    c.max_session_streams = 1;
    UPM_CHECK_INT(upm_h2_limit_per_conn(&c), 1);
    UPM_TEST_DONE("h2_limit");
}
