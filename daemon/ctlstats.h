/* SPDX-License-Identifier: MIT */
/* ctlstats.h: the Stats reply's contents, marshalled from the heap's statistics.
 *
 * Overview: shm/overview.h; the message: proto/goshm.proto (StatsReply);
 * who sends it: daemon/ctl.c.
 */
#ifndef GOSHM_CTLSTATS_H
#define GOSHM_CTLSTATS_H

#include <pthread.h> /* pthread_mutex_t */
#include <stdint.h>  /* int64_t, uint64_t */

#include "dataplane.h"
#include "goshm.pb-c.h"
#include "heap.h"

/* A Reply{stats} of the heap now (read under heap_lock) and of the attached
 * clients: pid_of[slot] is the pid attached at each slot, -1 for none;
 * nattached of them. NULL if out of memory; free with gs_ctl_stats_free. */
Goshm__Reply *gs_ctl_stats_reply(gs_heap_t *heap, pthread_mutex_t *heap_lock, gs_dataplane_t *dp,
                                 const int64_t pid_of[GS_MAX_SLOTS], unsigned nattached, uint64_t uptime_ms);
void gs_ctl_stats_free(Goshm__Reply *rep);

#endif /* GOSHM_CTLSTATS_H */
