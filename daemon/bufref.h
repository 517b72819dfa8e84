/* SPDX-License-Identifier: MIT */
/* bufref.h: the daemon's own references on reference-counted buffers (the names directory's reference on a channel).
 *
 * Overview: shm/overview.h; the design: issue 10, section 1 (helper
 * "bufchan" implements these; daemon/bufref.c is a TEMPORARY stand-in,
 * replaced by the buffers commit). Called with the heap lock held, from the
 * main thread.
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
 * release frees at zero (draining a channel's messages first). Called with
 * the heap lock held, from the main thread. */
int gs_heap_buf_retain(gs_heap_t *h, uint64_t off, uint64_t id);
int gs_heap_buf_release(gs_heap_t *h, uint64_t off, uint64_t id);
/* Is off a live GS_BUF_CHAN buffer with this id whose object is big enough
 * for a channel of capacity cap? */
bool gs_heap_chan_valid(gs_heap_t *h, uint64_t off, uint64_t id, uint32_t cap);

#endif /* GOSHM_BUFREF_H */
