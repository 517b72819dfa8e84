/* SPDX-License-Identifier: MIT */
/* mspan.c: allocCache windows, sweeping and live counts of a span's bitmaps.
 *
 * Overview: shm/overview.h ("Sweeping", "Tiny objects"). Used by both sides:
 * an mcache sweeps the span it caches, the heap side sweeps spans nobody
 * caches, and the heap side reclaims a dead client's spans with the same
 * code. Everything read from the side record is untrusted: bits at or above
 * nelems are ignored, freeindex is clamped.
 */
#include "mspan.h"

#include <string.h> /* memset */

static inline uint64_t free_window(gs_side_t *side, uint32_t nelems, uint32_t w)
{
    return ~gs_load_relaxed(&gs_side_alloc(side)[w]) & gs_word_mask(w, nelems);
}

void gs_cspan_init(gs_cspan_t *s, const gs_mspan_t *m, gs_side_t *side, char *base, uint32_t sid)
{
    s->sid = sid;
    s->nelems = m->nelems;
    s->elemsize = m->elemsize;
    s->base = base;
    s->side = side;
    s->freed = gs_side_freed(side, m->awords);
    s->needzero = m->needzero;
    s->spanclass = m->spanclass;
    s->freeindex = gs_load_relaxed(&side->xfreeindex);
    if (s->freeindex > s->nelems) s->freeindex = s->nelems;
    uint32_t nfree = 0;
    for (uint32_t w = 0; w < m->awords; w++)
        nfree += (uint32_t)__builtin_popcountll(free_window(side, s->nelems, w) & ~gs_word_below(w, s->freeindex));
    s->free_at_pass = nfree;
    s->alloc_cache = 0;
    if (s->freeindex < s->nelems && (s->freeindex & 63u) != 0)
        s->alloc_cache = free_window(side, s->nelems, s->freeindex / 64u) >> (s->freeindex & 63u);
    else if (s->freeindex == 0)
        s->alloc_cache = free_window(side, s->nelems, 0);
}

uint32_t gs_cspan_next_free_index(gs_cspan_t *s)
{
    uint32_t fi = s->freeindex;
    while (fi < s->nelems) {
        uint32_t w = fi / 64u;
        uint64_t win = free_window(s->side, s->nelems, w) >> (fi & 63u);
        if (win == 0) {
            fi = (w + 1u) * 64u;
            continue;
        }
        uint32_t idx = fi + (uint32_t)__builtin_ctzll(win);
        uint32_t nfi = idx + 1u;
        s->freeindex = nfi;
        /* Publish before the slot leaves: see gs_cspan_next_free_fast. */
        gs_store_relaxed(&s->side->xfreeindex, nfi);
        s->alloc_cache = (nfi & 63u) == 0 || nfi >= s->nelems
                             ? 0
                             : free_window(s->side, s->nelems, w) >> (nfi & 63u);
        return idx;
    }
    s->freeindex = s->nelems;
    s->alloc_cache = 0;
    gs_store_relaxed(&s->side->xfreeindex, s->nelems);
    return s->nelems;
}

uint32_t gs_cspan_handed_out(const gs_cspan_t *s)
{
    if (s->nelems == 0) return 0;
    uint32_t left = 0;
    for (uint32_t w = s->freeindex / 64u; w < gs_bitmap_words(s->nelems); w++)
        left += (uint32_t)__builtin_popcountll(free_window(s->side, s->nelems, w) &
                                               ~gs_word_below(w, s->freeindex));
    return s->free_at_pass > left ? s->free_at_pass - left : 0;
}

void gs_span_bitmaps_clear(gs_side_t *side, uint32_t nelems, uint32_t awords, uint32_t fwords)
{
    (void)nelems;
    for (uint32_t w = 0; w < awords + fwords; w++) gs_store_relaxed(&side->bits[w], 0);
    gs_store_relaxed(&side->xfreeindex, 0);
    gs_store_relaxed(&side->xtiny, 0);
}

/* For a tiny span: the allocated blocks of alloc word w whose two live bits
 * are both clear, i.e. blocks every sub-object of which has been freed. */
static uint64_t tiny_empty(_Atomic uint64_t *live, uint32_t w, uint64_t allocated)
{
    uint64_t lo = gs_load_acquire(&live[2u * w]);
    uint64_t hi = gs_load_acquire(&live[2u * w + 1u]);
    uint64_t occupied = (uint64_t)gs_tiny_fold(lo) | ((uint64_t)gs_tiny_fold(hi) << 32);
    return allocated & ~occupied;
}

uint32_t gs_span_sweep(gs_side_t *side, uint32_t nelems, uint32_t awords, bool tiny,
                       uint32_t freeindex, uint32_t *merged)
{
    _Atomic uint64_t *alloc = gs_side_alloc(side);
    _Atomic uint64_t *freed = gs_side_freed(side, awords);
    if (freeindex > nelems) freeindex = nelems;

    /* 1. Slots below freeindex were handed out: record them in allocBits. */
    for (uint32_t w = 0; w < awords && w * 64u < freeindex; w++) {
        uint64_t a = gs_load_relaxed(&alloc[w]);
        uint64_t b = gs_word_below(w, freeindex);
        if ((a | b) != a) gs_store_relaxed(&alloc[w], a | b);
    }
    /* 2. Only now may freeindex drop to 0 (release: a freer that reads 0 with
     *    acquire sees the bits of step 1). Dying between 1 and 2 is harmless:
     *    step 1 is idempotent. */
    gs_store_release(&side->xfreeindex, 0);

    /* 3. Merge frees. The AND clears exactly the bits merged, so frees that
     *    land meanwhile stay for the next sweep; dying between the store and
     *    the AND leaves bits that the next sweep merges again, harmlessly. */
    uint32_t live = 0, nmerged = 0;
    for (uint32_t w = 0; w < awords; w++) {
        uint64_t mask = gs_word_mask(w, nelems);
        uint64_t a = gs_load_relaxed(&alloc[w]) & mask;
        if (tiny) {
            uint64_t empty = tiny_empty(freed, w, a);
            if (empty) gs_store_relaxed(&alloc[w], a & ~empty);
            nmerged += (uint32_t)__builtin_popcountll(empty);
            live += (uint32_t)__builtin_popcountll(a & ~empty);
        } else {
            uint64_t f = gs_load_acquire(&freed[w]);
            if (f) {
                gs_store_relaxed(&alloc[w], a & ~f);
                gs_fetch_and_acqrel(&freed[w], ~f);
            }
            nmerged += (uint32_t)__builtin_popcountll(a & f);
            live += (uint32_t)__builtin_popcountll(a & ~f);
        }
    }
    if (merged) *merged = nmerged;
    return live;
}

uint32_t gs_span_count_live(gs_side_t *side, uint32_t nelems, uint32_t awords, bool tiny,
                            uint32_t freeindex)
{
    _Atomic uint64_t *alloc = gs_side_alloc(side);
    _Atomic uint64_t *freed = gs_side_freed(side, awords);
    if (freeindex > nelems) freeindex = nelems;
    uint32_t live = 0;
    for (uint32_t w = 0; w < awords; w++) {
        uint64_t a = (gs_load_relaxed(&alloc[w]) | gs_word_below(w, freeindex)) & gs_word_mask(w, nelems);
        uint64_t gone = tiny ? tiny_empty(freed, w, a) : (gs_load_relaxed(&freed[w]) & a);
        live += (uint32_t)__builtin_popcountll(a & ~gone);
    }
    return live;
}
