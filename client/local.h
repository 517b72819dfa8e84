/* local.h: a heap whose heap side runs inside this process.
 *
 * Overview: shm/malloc.h. The same segment, side tables, offsets and engine
 * as the service, with the seam as a direct call under a mutex instead of the
 * shared ring. For unit tests and engine benchmarks; not installed.
 */
#ifndef GOSHM_LOCAL_H
#define GOSHM_LOCAL_H

#include "../daemon/heap.h"
#include "goshm/goshm.h"

/* Create a heap and attach to it in this process. NULL with errno on error. */
goshm_t *gs_local_open(const gs_heap_config_t *cfg);
/* The heap side, for tests: take the lock around any gs_heap_* call. */
gs_heap_t *gs_local_heap(goshm_t *h);
void gs_local_lock(goshm_t *h);
void gs_local_unlock(goshm_t *h);
/* Drain notices and sweep all full spans, under the lock. */
void gs_local_collect(goshm_t *h);

#endif /* GOSHM_LOCAL_H */
