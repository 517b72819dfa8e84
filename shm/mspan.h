/* SPDX-License-Identifier: MIT */
/* mspan.h: span bitmaps, allocCache and sweeping, shared by both sides.
 *
 * Overview: shm/overview.h ("Sweeping", "Tiny objects"). The client's fast path
 * (gs_cspan_next_free_fast) is inline here; the rest is in shm/mspan.c.
 */
#ifndef GOSHM_MSPAN_H
#define GOSHM_MSPAN_H

#include <stdbool.h> /* bool */
#include <stddef.h>  /* size_t */
#include <stdint.h>  /* uint*_t */

#include "segment.h"

/* A client's private view of a span it caches: one per span class in each
 * mcache. Never shared. The empty sentinel (all zero, nelems 0) makes the fast
 * path fall through to the slow path without a NULL test. */
typedef struct gs_cspan {
    uint64_t   alloc_cache;  /* bit k: slot freeindex + k is free */
    uint32_t   freeindex;    /* next slot to look at; mirrored in side->xfreeindex */
    uint32_t   nelems;
    uint32_t   elemsize;
    uint32_t   sid;          /* span id, 0 for the empty sentinel */
    char      *base;         /* slot 0 in this process */
    gs_side_t *side;
    _Atomic uint64_t *freed; /* the side record's freed words (the undo checks one) */
    uint32_t   free_at_pass;  /* free slots when this pass began (statistics) */
    uint32_t   undone;        /* malloc/free pairs undone in this pass (client/client.h, statistics) */
    uint8_t    needzero;
    uint8_t    spanclass;
    uint8_t    pad[6];
} gs_cspan_t;

/* 64 bytes, so that the fast path finds a class's view with one shift. */
_Static_assert(sizeof(gs_cspan_t) == 64, "gs_cspan_t is one cache line");

static inline _Atomic uint64_t *gs_side_alloc(gs_side_t *s) { return s->bits; }
static inline _Atomic uint64_t *gs_side_freed(gs_side_t *s, uint32_t awords) { return s->bits + awords; }

/* Go's nextFreeFast: the allocation fast path. Returns NULL when allocCache
 * is empty. One relaxed store publishes freeindex before the slot leaves the
 * allocator (crash story: slots below the published freeindex are never
 * given to anyone else).
 *
 * No test against nelems or the window's end: allocCache never has a bit
 * for a slot at or above nelems (every window is masked with the trusted
 * nelems, shm/mspan.c), nor beyond the 64-slot window of freeindex, so the
 * slot a set bit names is always one to hand out, and handing out a
 * window's last slot leaves allocCache 0 (the next call takes the slow
 * path, which loads the next window). The shift is done in two steps
 * because bit + 1 may be 64. */
static inline void *gs_cspan_next_free_fast(gs_cspan_t *s)
{
    uint64_t c = s->alloc_cache;
    if (gs_likely(c != 0)) {
        unsigned bit = (unsigned)__builtin_ctzll(c);
        uint32_t idx = s->freeindex + bit;
        s->alloc_cache = (c >> bit) >> 1;
        s->freeindex = idx + 1u;
        gs_store_relaxed(&s->side->xfreeindex, idx + 1u);
        return s->base + (size_t)idx * s->elemsize;
    }
    return NULL;
}

/* Go's nextFree minus the refill: the next free slot index at or after
 * freeindex, loading allocCache windows from allocBits; nelems if none. */
uint32_t gs_cspan_next_free_index(gs_cspan_t *s);

/* Fill in a client view for span record `m` whose side record is `side` and
 * whose slot 0 is at `base`. */
void gs_cspan_init(gs_cspan_t *s, const gs_mspan_t *m, gs_side_t *side, char *base, uint32_t sid);

/* Slots handed out in the current pass (for statistics). */
uint32_t gs_cspan_handed_out(const gs_cspan_t *s);

/* Sweep a span: fold slots below `freeindex` into allocBits, publish
 * freeindex = 0, merge the freed bits. Used by an mcache on the span it
 * caches and by the heap side on spans no mcache caches. Every bitmap word is
 * read as untrusted: bits at or above nelems are forced to "allocated".
 * Returns the number of allocated slots; *merged (may be NULL) gets the
 * number of frees merged. */
uint32_t gs_span_sweep(gs_side_t *side, uint32_t nelems, uint32_t awords, bool tiny,
                       uint32_t freeindex, uint32_t *merged);

/* Initialise the bitmaps of a fresh span: nothing allocated, nothing freed. */
void gs_span_bitmaps_clear(gs_side_t *side, uint32_t nelems, uint32_t awords, uint32_t fwords);

/* Allocated slots according to allocBits | below(freeindex) minus freed bits:
 * a racy snapshot, for statistics. */
uint32_t gs_span_count_live(gs_side_t *side, uint32_t nelems, uint32_t awords, bool tiny,
                            uint32_t freeindex);

/* The side record's xtiny word (shm/segment.h), encoded and decoded here
 * only: bits 32..63 hold the owner's current tiny block + 1 (0: none), bit h
 * of the low word says half h of it has been handed out. */
static inline uint64_t gs_tiny_word(uint32_t block, uint32_t handed)
{
    return ((uint64_t)block + 1u) << 32 | handed;
}
/* The block the word names, if it is one of a span of nelems blocks. */
static inline bool gs_tiny_word_block(uint64_t t, uint32_t nelems, uint32_t *block)
{
    uint64_t b = t >> 32;
    if (b == 0 || b - 1u >= nelems) return false;
    *block = (uint32_t)(b - 1u);
    return true;
}
static inline bool gs_tiny_word_handed(uint64_t t, uint32_t half) { return (t >> half) & 1u; }

/* Mask of valid bits in word w of an nbits bitmap. */
static inline uint64_t gs_word_mask(uint32_t w, uint32_t nbits)
{
    uint32_t lo = w * 64u;
    if (nbits >= lo + 64u) return ~UINT64_C(0);
    if (nbits <= lo) return 0;
    return (UINT64_C(1) << (nbits - lo)) - 1;
}

/* Bits of word w below bit index `limit`. */
static inline uint64_t gs_word_below(uint32_t w, uint32_t limit) { return gs_word_mask(w, limit); }

/* The two live bits of each 16-byte tiny block, folded: bit b of the result
 * is set when block b (of the 32 covered by this word) has a live half. */
static inline uint32_t gs_tiny_fold(uint64_t live)
{
    uint64_t x = (live | (live >> 1)) & UINT64_C(0x5555555555555555);
    x = (x | (x >> 1)) & UINT64_C(0x3333333333333333);
    x = (x | (x >> 2)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
    x = (x | (x >> 4)) & UINT64_C(0x00ff00ff00ff00ff);
    x = (x | (x >> 8)) & UINT64_C(0x0000ffff0000ffff);
    x = (x | (x >> 16)) & UINT64_C(0x00000000ffffffff);
    return (uint32_t)x;
}

#endif /* GOSHM_MSPAN_H */
