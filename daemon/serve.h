/* SPDX-License-Identifier: MIT */
/* serve.h: the serve unit: ring entries in, heap calls, completions out; transport-neutral.
 *
 * Overview: shm/overview.h ("Processes, threads and the ring"); ring layout:
 * shm/ring.h; the heap: daemon/heap.h. One slot's ring is served by whoever
 * holds the heap lock: the daemon's data plane (daemon/dataplane.c), the
 * ring fuzzer (tests/fuzz/fuzz-ring.c) and the in-process seam of the engine
 * tests and benchmarks (tests/lib/inproc.c). None of them decodes an entry
 * itself. Doorbells, threads and sleeping are the caller's business.
 */
#ifndef GOSHM_SERVE_H
#define GOSHM_SERVE_H

#include <stdbool.h> /* bool */
#include <stdint.h>  /* uint*_t */

#include "heap.h"
#include "ring.h"

/* The server's private state for one slot's ring. Never in shared memory:
 * the indices are our copies, never read back from the ring. */
typedef struct gs_serve_slot {
    gs_ring_t *ring;
    uint32_t sq_head;
    uint32_t cq_tail;
    /* The large-object crash memo: the large object each completion carries
     * (0: none), by completion index. A client that dies before reading its
     * completion never got the object, so closing the slot frees it. */
    uint32_t large[GS_RING_ENTRIES];
    /* Completions below this index were read by the client and their large
     * objects landed (gs_heap_large_land); large[] is 0 there. */
    uint32_t landed;
} gs_serve_slot_t;

/* Decode and validate one entry (already copied out of shared memory), call
 * the heap, encode the answer into c (sids/sid). Returns c's result. */
int32_t gs_serve_entry(gs_heap_t *h, uint32_t slot, const gs_sqe_t *e, gs_cqe_t *c);

/* Start serving a slot just claimed (the heap side zeroed its ring). */
void gs_serve_slot_open(gs_heap_t *h, uint32_t slot, gs_serve_slot_t *s);
/* The client is gone: free the large objects in completions it never read.
 * The caller reclaims the slot afterwards (gs_heap_slot_reclaim). */
void gs_serve_slot_close(gs_heap_t *h, uint32_t slot, gs_serve_slot_t *s);

/* Serve what the slot's ring holds, as far as the completion ring has room;
 * publish the completions and wake a client asleep on them. *bad (if not
 * NULL) counts malformed entries and impossible indices. True if it did
 * anything. The caller drains the notice stack once per pass over its slots
 * (gs_heap_drain_notices), before serving them. */
bool gs_serve_ring(gs_heap_t *h, uint32_t slot, gs_serve_slot_t *s, _Atomic uint64_t *bad);

#endif /* GOSHM_SERVE_H */
