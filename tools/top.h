/* SPDX-License-Identifier: MIT */
/* top.h: goshmctl top, a live view of a heap.
 *
 * Overview: shm/overview.h; the figures: proto/goshm.proto (StatsReply). Every
 * interval (1 s) top asks the daemon for its statistics through `fetch` and
 * shows the heap totals, the busiest size classes and clients, and rates of
 * allocation and free: the difference of the counters between two
 * refreshes, divided by the time between them.
 *
 * On a terminal it redraws the screen and reads single keys (raw mode): q
 * quits, and so does Ctrl-C; the terminal's settings are restored on every
 * way out (return, signal, error). When stdout is not a terminal it prints
 * one plain-text snapshot per interval, without escape codes, separated by
 * blank lines, so scripts can read it (with --iterations N to stop).
 */
#ifndef GOSHM_TOP_H
#define GOSHM_TOP_H

#include <stddef.h> /* size_t */

#include "goshm.pb-c.h" /* Goshm__Reply */

/* Ask the daemon once: 0 with *out set (an unpacked Reply, freed by top
 * with goshm__reply__free_unpacked), or -1 with err set. */
typedef int (*gs_top_fetch_fn)(void *arg, Goshm__Reply **out, char *err, size_t errlen);

typedef struct gs_top_options {
    unsigned interval_ms;   /* between refreshes; 1000 */
    unsigned iterations;    /* snapshots to show, 0: until q or Ctrl-C */
    unsigned rows;          /* classes and clients shown, each; 10 */
    const char *where;      /* the socket, for the title */
} gs_top_options_t;

/* Run the view. Exit status: 0 (q, Ctrl-C or iterations done), 1 (the
 * daemon stopped answering or refused). */
int gs_top_run(gs_top_fetch_fn fetch, void *arg, const gs_top_options_t *opt);

#endif /* GOSHM_TOP_H */
