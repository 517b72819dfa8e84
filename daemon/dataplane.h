/* SPDX-License-Identifier: MIT */
/* dataplane.h: the daemon's data plane: per-client rings, polled while busy,
 * asleep on doorbells (io_uring, or epoll as the fallback) when idle.
 *
 * Overview: shm/overview.h; ring layout: shm/ring.h. The data plane runs in its
 * own thread. It and the control plane share the heap under `heap_lock`
 * (daemon/heap.h is single-threaded): the data plane takes it per batch of
 * ring entries; the control plane takes it to claim, reclaim and report.
 */
#ifndef GOSHM_DATAPLANE_H
#define GOSHM_DATAPLANE_H

#include <pthread.h> /* pthread_mutex_t */
#include <stdbool.h> /* bool */
#include <stddef.h>  /* size_t */
#include <stdint.h>  /* uint32_t */

#include "heap.h"

typedef struct gs_dataplane gs_dataplane_t;

typedef struct gs_dataplane_config {
    bool force_epoll;        /* do not try io_uring */
    uint32_t spin_us;        /* poll this long after the last work before sleeping */
} gs_dataplane_config_t;

/* Start the data-plane thread. NULL with errno on failure, err gets why. */
gs_dataplane_t *gs_dp_start(gs_heap_t *heap, pthread_mutex_t *heap_lock, const gs_dataplane_config_t *cfg,
                            char *err, size_t errlen);
/* Stop the thread and free everything (slots must have been removed). */
void gs_dp_stop(gs_dataplane_t *dp);
/* Start serving a slot just claimed: resets its ring and creates its
 * doorbell. *doorbell gets an eventfd to pass to the client (the data plane
 * keeps its own copy; the caller closes the one it got after sending it).
 * 0 or -errno. Call without heap_lock held. */
int gs_dp_add_slot(gs_dataplane_t *dp, uint32_t slot, int *doorbell);
/* Stop serving a slot (its client is gone); returns when the data plane no
 * longer touches it, so the caller may reclaim it. Call without heap_lock. */
void gs_dp_remove_slot(gs_dataplane_t *dp, uint32_t slot);
/* Stop serving a slot whose client lives on (the daemon stops and the
 * heap outlives it): unlike remove, nothing the client has not read yet is
 * taken back. Call without heap_lock. */
void gs_dp_forget_slot(gs_dataplane_t *dp, uint32_t slot);
/* "io_uring" or "epoll". */
const char *gs_dp_backend(const gs_dataplane_t *dp);
/* Malformed ring entries answered with an error so far. */
uint64_t gs_dp_bad_entries(const gs_dataplane_t *dp);

#endif /* GOSHM_DATAPLANE_H */
