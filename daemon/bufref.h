/* SPDX-License-Identifier: MIT */
/* bufref.h: the heap side's part in reference-counted buffers and channels: its own references, and the repair of a departed client's.
 *
 * Overview: shm/overview.h; buffers: shm/buf.h; channels: shm/chan.h; the
 * implementation and its crash story: daemon/bufref.c. Every function is
 * called with the heap lock held, from the thread that holds it; none
 * blocks on a lock a client holds (bounded attempts; what cannot be done
 * now is retried from the housekeeping tick).
 */
#ifndef GOSHM_BUFREF_H
#define GOSHM_BUFREF_H

#include <stdbool.h> /* bool */
#include <stdint.h>  /* uint*_t */

#include "heap.h"

/* Take / drop one reference held by the daemon itself (the names directory's
 * reference on a channel). Validates the object at payload offset off
 * (allocated, magic, id, kind). retain: 0, or -EINVAL (not a live buffer of
 * that id), -EBUSY (locked by a live process past the deadline: retry later).
 * release frees at zero (draining a channel's messages first). */
int gs_heap_buf_retain(gs_heap_t *h, uint64_t off, uint64_t id);
int gs_heap_buf_release(gs_heap_t *h, uint64_t off, uint64_t id);
/* Is off a live GS_BUF_CHAN buffer with this id whose object is big enough
 * for a channel of capacity cap? */
bool gs_heap_chan_valid(gs_heap_t *h, uint64_t off, uint64_t id, uint32_t cap);

/* The client of `slot` is gone (dead, detached, or found dead at
 * adoption): finish or undo the one buffer/channel operation its intent
 * names, then drop every reference its records hold. Called by
 * gs_heap_slot_reclaim before anything else, while the slot memfd is still
 * mapped. References that cannot be dropped now (a live process holds the
 * buffer's lock) are kept in a private list and retried by
 * gs_heap_bufref_tick. */
void gs_heap_bufref_reclaim(gs_heap_t *h, uint32_t slot);
/* The housekeeping tick: retry the references left over. Returns how many
 * are still waiting. */
uint32_t gs_heap_bufref_tick(gs_heap_t *h);
/* Statistics: references dropped for departed clients, operations
 * repaired, references waiting for a retry, references given up. */
void gs_heap_bufref_counts(const gs_heap_t *h, uint64_t *dropped, uint64_t *repaired, uint32_t *waiting,
                           uint64_t *lost);

#endif /* GOSHM_BUFREF_H */
