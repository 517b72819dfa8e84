/* SPDX-License-Identifier: MIT */
/* inproc.h: a heap whose heap side runs inside this process (a test and benchmark helper).
 *
 * Overview: shm/overview.h. The same segment, side tables, offsets, engine
 * and ring dispatch as the service: the seam writes ring entries into the
 * slot's ring and serves them at once with the daemon's serve unit
 * (daemon/serve.c), under a mutex, instead of waiting for the data plane.
 * It sees both halves (libgoshm's internals and the heap side), so it lives
 * above both, like Go's export_test.go; libgoshm and goshmd never link it.
 * For unit tests and engine benchmarks; not installed.
 */
#ifndef GOSHM_INPROC_H
#define GOSHM_INPROC_H

#include "goshm/goshm.h"
#include "heap.h"

/* Create a heap and attach to it in this process. NULL with errno on error. */
goshm_t *gs_local_open(const gs_heap_config_t *cfg);
/* The heap side, for tests: take the lock around any gs_heap_* call. */
gs_heap_t *gs_local_heap(goshm_t *h);
void gs_local_lock(goshm_t *h);
void gs_local_unlock(goshm_t *h);
/* Drain notices and sweep all full spans, under the lock. */
void gs_local_collect(goshm_t *h);

#endif /* GOSHM_INPROC_H */
