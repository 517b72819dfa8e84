/* SPDX-License-Identifier: MIT */
/* heapstats.c: heap statistics: walks the span table for goshmctl (mimalloc's stats.c).
 *
 * Overview: shm/overview.h; API: daemon/heap.h (gs_heap_stats_t). Linear in
 * the span table; not hot, but it runs under the heap lock, so the control
 * plane walks the table in pieces (gs_heap_stats_spans) and lets go of the
 * lock between them: a stats request then delays a client's refill by one
 * piece at most, not by the whole table (issue 7, point 8). Client-written
 * counters are reported, never used for a decision. Live bytes are also
 * attributed to their owners, attached or departed (daemon/owners.h).
 */
#include "heap_internal.h"

#include <string.h> /* memset, memcpy */

static uint32_t tiny_live_halves(gs_side_t *side, const gs_mspan_t *s)
{
    _Atomic uint64_t *live = gs_side_freed(side, s->awords);
    uint32_t halves = 0, nbits = 2u * s->nelems;
    for (uint32_t w = 0; w < s->fwords; w++)
        halves += (uint32_t)__builtin_popcountll(gs_load_relaxed(&live[w]) & gs_word_mask(w, nbits));
    uint64_t t = s->list == GS_LIST_CACHED ? gs_load_relaxed(&side->xtiny) : 0;
    uint32_t block;
    if (gs_tiny_word_block(t, s->nelems, &block)) {
        for (uint32_t half = 0; half < 2; half++) {
            uint64_t bit = 2u * (uint64_t)block + half;
            if (!gs_tiny_word_handed(t, half) && (gs_load_relaxed(&live[bit / 64u]) & (UINT64_C(1) << (bit % 64u))) && halves)
                halves--;
        }
    }
    return halves;
}

/* Live bytes of in-use span s (a racy snapshot, for statistics). */
static uint64_t span_live_bytes(gs_heap_t *h, gs_mspan_t *s)
{
    gs_side_t *side = gs_side_of(h, s);
    if (s->state == GS_SPAN_SMALL && gs_spanclass_tiny(s->spanclass))
        return (uint64_t)tiny_live_halves(side, s) * GS_TINY_HALF;
    uint32_t fi = s->list == GS_LIST_CACHED ? gs_load_relaxed(&side->xfreeindex) : 0;
    uint32_t live = gs_span_count_live(side, s->nelems, s->awords, gs_spanclass_tiny(s->spanclass), fi);
    if (s->state == GS_SPAN_LARGE) return live ? s->npages64 << GS_PAGE_SHIFT : 0;
    return (uint64_t)live * s->elemsize;
}

void gs_heap_owner_walk(void *arg, gs_owner_tally_t *t)
{
    gs_heap_t *h = arg;
    for (uint32_t sid = 1; sid < h->span_bump; sid++) {
        gs_mspan_t *s = gs_span(h, sid);
        if (s->state != GS_SPAN_SMALL && s->state != GS_SPAN_LARGE) continue;
        gs_owners_count(&h->owners, t, s->client, span_live_bytes(h, s));
    }
}

/* The O(slots) part: sizes, page counts, counters. */
void gs_heap_stats_begin(gs_heap_t *h, gs_heap_stats_t *st, gs_owner_tally_t *tally)
{
    memset(st, 0, sizeof *st);
    memset(tally, 0, sizeof *tally);
    st->reserved_bytes = h->max_pages << GS_PAGE_SHIFT;
    st->grown_bytes = h->heap_pages << GS_PAGE_SHIFT;
    st->committed_bytes = h->ready_pages << GS_PAGE_SHIFT;
    st->idle_bytes = h->idle_ready_pages << GS_PAGE_SHIFT;
    st->released_bytes = (h->free_pages - h->idle_ready_pages) << GS_PAGE_SHIFT;
    st->span_bytes = (h->heap_pages - h->free_pages) << GS_PAGE_SHIFT;
    uint32_t used_slots = 0;
    for (uint32_t i = 0; i < h->cfg.max_slots; i++) used_slots += h->slots[i].in_use;
    st->metadata_bytes = 4096 + (uint64_t)used_slots * gs_slot_committed_size() +
                         h->side_committed + h->meta_committed;
    for (uint32_t c = 0; c < GS_NUM_SIZE_CLASSES; c++) st->classes[c].size = gs_class_size[c];
    for (uint32_t sc = 0; sc < GS_NUM_SPAN_CLASSES; sc++) {
        gs_class_stats_t *cs = &st->classes[gs_spanclass_sizeclass(sc)];
        cs->allocs += h->central[sc].departed_allocs;
        cs->frees += h->central[sc].departed_frees + h->central[sc].daemon_frees;
    }
    for (uint32_t i = 0; i < h->cfg.max_slots; i++) {
        if (!h->slots[i].in_use) continue;
        gs_slot_t *sl = gs_slot_at(h, i);
        for (uint32_t c = 0; c < GS_NUM_SIZE_CLASSES; c++) {
            st->classes[c].allocs += gs_load_relaxed(&sl->stats[c].xallocs);
            st->classes[c].frees += gs_load_relaxed(&sl->stats[c].xfrees);
        }
    }
    st->large_allocs = h->large_allocs;
    st->large_frees = h->large_frees;
    st->notices = h->notices;
    st->bad_requests = h->bad_requests;
}

uint32_t gs_heap_stats_spans(gs_heap_t *h, gs_heap_stats_t *st, gs_owner_tally_t *tally, uint32_t from,
                             uint32_t budget)
{
    if (from == 0) from = 1;
    uint32_t end = h->span_bump;
    if (from >= end) return 0;
    if (budget < end - from) end = from + budget;
    for (uint32_t sid = from; sid < end; sid++) {
        gs_mspan_t *s = gs_span(h, sid);
        if (s->state != GS_SPAN_SMALL && s->state != GS_SPAN_LARGE) continue;
        st->spans_in_use++;
        gs_owners_count(&h->owners, tally, s->client, span_live_bytes(h, s));
        gs_side_t *side = gs_side_of(h, s);
        uint32_t fi = s->list == GS_LIST_CACHED ? gs_load_relaxed(&side->xfreeindex) : 0;
        uint32_t live = gs_span_count_live(side, s->nelems, s->awords, gs_spanclass_tiny(s->spanclass), fi);
        if (s->state == GS_SPAN_LARGE) {
            st->large_objects += live;
            st->in_use_bytes += live ? s->npages64 << GS_PAGE_SHIFT : 0;
            continue;
        }
        gs_class_stats_t *cs = &st->classes[gs_spanclass_sizeclass(s->spanclass)];
        cs->spans++;
        if (gs_spanclass_tiny(s->spanclass)) {
            /* Tiny objects: live halves, less the half the owner reserved
             * in its current block but has not handed out. */
            live = tiny_live_halves(side, s);
            cs->objects_in_use += live;
            st->in_use_bytes += (uint64_t)live * GS_TINY_HALF;
            continue;
        }
        cs->objects_in_use += live;
        st->in_use_bytes += (uint64_t)live * s->elemsize;
    }
    return end < h->span_bump ? end : 0;
}

void gs_heap_stats_end(gs_heap_t *h, gs_heap_stats_t *st, gs_owner_tally_t *tally)
{
    /* By owner (daemon/owners.h); departed entries with nothing live go.
     * A departed owner's spans only ever empty, so a tally gathered in
     * pieces never finds one empty that still holds something. */
    gs_owners_prune(&h->owners, tally);
    memcpy(st->slot_in_use, tally->slot_bytes, sizeof st->slot_in_use);
    uint64_t now = gs_now_ns();
    st->ndeparted = h->owners.ndeparted;
    for (uint32_t i = 0; i < h->owners.ndeparted; i++) {
        st->departed[i].pid = h->owners.departed[i].pid;
        st->departed[i].in_use_bytes = tally->departed_bytes[i];
        st->departed[i].gone_ns = now - h->owners.departed[i].gone_ns;
    }
    st->departed_other_bytes = tally->departed_other;
}

void gs_heap_stats(gs_heap_t *h, gs_heap_stats_t *st)
{
    gs_owner_tally_t tally;
    gs_heap_stats_begin(h, st, &tally);
    gs_heap_stats_spans(h, st, &tally, 1, UINT32_MAX);
    gs_heap_stats_end(h, st, &tally);
}
