/* SPDX-License-Identifier: MIT */
/* tiny.c: the tiny allocator: objects of 1..8 bytes in halves of 16-byte blocks.
 *
 * Overview: shm/overview.h ("Tiny objects"). Go packs tiny pointer-free
 * objects into 16-byte blocks and never frees them individually. Users of
 * goshm free explicitly, and C requires 8-byte alignment of every malloc
 * result, so a block holds two halves and its span's freed bitmap holds one
 * live bit per half. The crash story of the block being filled is published
 * in the side record's xtiny word (block + halves handed out): the heap side
 * clears the halves a dead client never handed out.
 */
#include "client.h"

static inline _Atomic uint64_t *live_bits(gs_cspan_t *s)
{
    return gs_side_freed(s->side, gs_bitmap_words(s->nelems));
}

void gs_tiny_retire(struct goshm *h, gs_mcache_t *c)
{
    (void)h;
    if (!c->tiny_next) return;
    gs_cspan_t *s = &c->alloc[GS_TINY_SPANCLASS];
    uint64_t bit = 2u * (uint64_t)c->tiny_block + 1u; /* the unused second half */
    gs_fetch_and_seqcst(&live_bits(s)[bit / 64u], ~(UINT64_C(1) << (bit % 64u)));
    gs_store_relaxed(&s->side->xtiny, 0);
    c->tiny_next = NULL;
}

void *gs_tiny_alloc(struct goshm *h, gs_mcache_t *c, bool *zero)
{
    gs_cspan_t *s = &c->alloc[GS_TINY_SPANCLASS];
    if (c->tiny_next) {
        char *p = c->tiny_next;
        c->tiny_next = NULL;
        /* Both halves handed out: publish before the pointer leaves. */
        gs_store_relaxed(&s->side->xtiny, gs_tiny_word(c->tiny_block, 3u));
        *zero = !s->needzero;
        return p;
    }
    char *b = gs_cspan_next_free_fast(s);
    if (!b) {
        b = gs_mcache_next_free(h, c, GS_TINY_SPANCLASS);
        if (!b) return NULL;
    }
    uint32_t idx = (uint32_t)((size_t)(b - s->base) / GS_TINY_SIZE);
    /* Crash story, in order: name the block with no half handed out; mark
     * both halves live; name the first half handed out. Dying after any step
     * leaves the heap side able to clear exactly the unused halves. */
    gs_store_relaxed(&s->side->xtiny, gs_tiny_word(idx, 0));
    uint64_t bit = 2u * (uint64_t)idx;
    gs_fetch_or_acqrel(&live_bits(s)[bit / 64u], UINT64_C(3) << (bit % 64u));
    gs_store_relaxed(&s->side->xtiny, gs_tiny_word(idx, 1u));
    c->tiny_block = idx;
    c->tiny_next = b + GS_TINY_HALF;
    *zero = !s->needzero;
    return b;
}
