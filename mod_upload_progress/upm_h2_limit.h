/* SPDX-License-Identifier: Apache-2.0 */
/* How many streams that keep their worker (SSE, long polls) one HTTP/2
 * connection and one child may hold, derived from what mod_http2 will
 * process.  No httpd needed: unit-tested.
 *
 * mod_http2 2.0.x (httpd 2.4.71 ships 2.0.42) runs each stream it
 * processes on an h2 worker of its own until the handler returns, and
 * processes at most m->processing_limit streams of one connection at a
 * time (h2_mplx.c: s_next_c2); the others wait in its queue.  That limit
 * starts at 6 (h2_mplx.c: h2_mplx_c1_create), doubles when a stream
 * completes (s_mplx_be_happy), never goes above processing_max =
 * min(H2MaxWorkers, H2MaxSessionStreams), and halves, down to 2, at every
 * client RST_STREAM of a running stream (m_be_annoyed, called by
 * h2_mplx_c1_client_rst: reset_is_acceptable() refuses any stream whose
 * rst_error is set, and a browser cancels a closed tab's stream with
 * CANCEL).  A connection whose held streams reach the current limit runs
 * nothing else, and nothing then completes to raise it again: only fewer
 * held streams than the floor of 2 are always safe.  All of a child's
 * connections share its H2MaxWorkers workers (h2_workers.c), H2MaxWorkers
 * defaulting to max(4, 3/2 x H2MinWorkers) and H2MinWorkers to
 * ThreadsPerChild (h2_config.c: h2_get_workers_config).  And a connection
 * with an open stream keeps one of the MPM's ThreadsPerChild workers as
 * well, polling for its streams (h2_session.c: h2_session_process, state
 * WAIT with open_streams > 0: h2_mplx_c1_poll): once they are all taken,
 * the child serves no new connection at all. */
#ifndef UPM_H2_LIMIT_H
#define UPM_H2_LIMIT_H

/* mod_http2's first processing_limit of a connection, and its floor. */
#define UPM_H2_FIRST_LIMIT 6
#define UPM_H2_FLOOR_LIMIT 2

typedef struct {
    int min_workers;            /* H2MinWorkers; <= 0: not set */
    int max_workers;            /* H2MaxWorkers; <= 0: not set */
    int threads_per_child;      /* the MPM's ThreadsPerChild */
    int max_session_streams;    /* smallest H2MaxSessionStreams; <= 0: not set (100) */
} upm_h2_conf;

/* The child's h2 workers, as mod_http2 computes them. */
int upm_h2_workers(const upm_h2_conf *c);

/* Streams holding a worker that one connection may have with a worker
 * still free for its other requests whatever mod_http2's mood: one less
 * than the floor of its limit (or than H2MaxWorkers or
 * H2MaxSessionStreams, when lower), at least 1. */
int upm_h2_limit_per_conn(const upm_h2_conf *c);

/* The same for all connections of a child: the h2 workers less one
 * connection's first processing window, and at most half of the MPM's
 * workers (each such stream's connection may hold one), at least 1. */
int upm_h2_limit_per_child(const upm_h2_conf *c);

#endif
