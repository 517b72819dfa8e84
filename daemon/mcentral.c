/* SPDX-License-Identifier: MIT */
/* mcentral.c: the mcentrals: one per span class, refill and uncache (Go's mcentral.go).
 *
 * Overview: shm/overview.h. Go's mcentral keeps swept and unswept sets of
 * partial and full spans per sweep generation; with explicit frees there is
 * no generation, so each mcentral has two lists of uncached spans:
 *   partial  free slots at the last sweep (refills take these first),
 *   full     no free slot at the last sweep.
 * A full span that gains frees reaches us through the notice stack
 * (daemon/sweep.c), so a refill never scans for it. A span whose last object
 * is freed goes back to the mheap.
 *
 * Everything read from side records here is client-writable: gs_span_sweep
 * clamps and masks it, and the span records (ours) decide what a span is.
 * Notices are not drained here: the caller drains once per serve pass
 * (daemon/serve.c) or housekeeping tick.
 */
#include "heap_internal.h"

#include <errno.h> /* EINVAL */

/* ---- span lists on the mcentrals and owners ------------------------------- */

/* The span lists proper are daemon/spanlist.h; these also say which list
 * (gs_mspan_t.list) the span is on. */
void gs_list_push(gs_heap_t *h, gs_spanlist_t *l, uint32_t sid, uint32_t which)
{
    gs_spanlist_push(h->spans, l, sid, GS_LINK_LIST);
    gs_span(h, sid)->list = which;
}

void gs_list_remove(gs_heap_t *h, gs_spanlist_t *l, uint32_t sid)
{
    gs_assert_internal(l->count > 0 && gs_span(h, sid)->list != GS_LIST_NONE);
    gs_spanlist_remove(h->spans, l, sid, GS_LINK_LIST);
    gs_span(h, sid)->list = GS_LIST_NONE;
}

gs_spanlist_t *gs_list_of(gs_heap_t *h, const gs_mspan_t *s)
{
    switch (s->list) {
    case GS_LIST_PARTIAL: return &h->central[s->spanclass].partial;
    case GS_LIST_FULL: return &h->central[s->spanclass].full;
    case GS_LIST_CACHED: return &h->slots[s->owner - 1u].cached;
    default: return NULL;
    }
}

/* ---- placing, refilling, uncaching ----------------------------------------- */

void gs_mcentral_place(gs_heap_t *h, uint32_t sid, uint32_t live)
{
    gs_mspan_t *s = gs_span(h, sid);
    gs_txn_span(h, sid);
    s->allocated = live;
    if (live == 0) gs_mheap_free_span(h, sid);
    else if (live >= s->nelems) gs_list_push(h, &h->central[s->spanclass].full, sid, GS_LIST_FULL);
    else gs_list_push(h, &h->central[s->spanclass].partial, sid, GS_LIST_PARTIAL);
}

static bool spanclass_ok(uint32_t spanclass)
{
    if (spanclass >= GS_NUM_SPAN_CLASSES) return false;
    uint32_t sizeclass = gs_spanclass_sizeclass(spanclass);
    return sizeclass != 0 && (!gs_spanclass_tiny(spanclass) || sizeclass == GS_TINY_CLASS);
}

/* Go's mcentral.cacheSpan: one span with a free slot, cached by `slot`.
 * slot and spanclass are valid (the callers check). */
static int cache_span(gs_heap_t *h, uint32_t slot, uint32_t spanclass, uint32_t *out)
{
    gs_central_t *c = &h->central[spanclass];
    uint64_t bytes = (uint64_t)gs_class_npages[gs_spanclass_sizeclass(spanclass)] << GS_PAGE_SHIFT;
    int qrc = gs_quota_check(h, slot, bytes); /* daemon/quota.c */
    if (qrc) return qrc;
    uint32_t sid = 0;
    gs_txn_begin(h);
    while (c->partial.head) {
        uint32_t cand = c->partial.head;
        gs_list_remove(h, &c->partial, cand);
        gs_mspan_t *s = gs_span(h, cand);
        gs_txn_span(h, cand);
        uint32_t live = gs_sweep_span(h, s);
        s->allocated = live;
        if (live < s->nelems) {
            s->needzero = 1; /* recycled slots are dirty */
            sid = cand;
            break;
        }
        gs_list_push(h, &c->full, cand, GS_LIST_FULL);
    }
    if (!sid) {
        int rc = gs_mheap_alloc_span(h, spanclass, gs_class_npages[gs_spanclass_sizeclass(spanclass)], 1, false, &sid);
        if (rc) {
            gs_txn_end(h);
            return rc;
        }
    }
    gs_mspan_t *s = gs_span(h, sid);
    gs_txn_span(h, sid);
    gs_killpoint("cache-owner");
    gs_quota_span_take(h, slot, s); /* charged to this client until it empties */
    s->owner = slot + 1u;
    s->client = gs_owners_ticket(&h->owners, slot); /* who holds its live bytes: daemon/owners.h */
    gs_list_push(h, &h->slots[slot].cached, sid, GS_LIST_CACHED);
    /* seq_cst: pairs with freers' seq_cst load of xowner after their OR. */
    gs_store_seqcst(&s->xowner, slot + 1u);
    gs_txn_end(h);
    *out = sid;
    return 0;
}

int gs_heap_refill(gs_heap_t *h, uint32_t slot, uint32_t spanclass, uint32_t *out)
{
    if (!gs_heap_slot_in_use(h, slot) || !spanclass_ok(spanclass)) return gs_heap_bad(h);
    return cache_span(h, slot, spanclass, out);
}

/* Go's mcentral.uncacheSpan: take a cached span back from its owner
 * (release, or reclaim of a dead client): finish the owner's tiny block,
 * then sweep with the freeindex the owner published, so the slots it had not
 * handed out become free again. */
void gs_mcentral_uncache(gs_heap_t *h, uint32_t sid)
{
    gs_mspan_t *s = gs_span(h, sid);
    gs_side_t *side = gs_side_of(h, s);
    gs_assert_internal(s->list == GS_LIST_CACHED && s->owner != 0);
    gs_txn_begin(h);
    gs_txn_span(h, sid);
    gs_list_remove(h, &h->slots[s->owner - 1u].cached, sid);
    s->owner = 0;
    /* Dekker with freers: clear the owner, then sweep. A freer either sees
     * owner 0 (and sends a notice) or its bit is seen by this sweep. */
    gs_store_seqcst(&s->xowner, 0);
    /* The owner's published freeindex, read once and clamped: the trusted
     * copy the sweep below folds in (and the only read of it). */
    uint32_t fi = gs_load_relaxed(&side->xfreeindex);
    s->freeindex = (uint16_t)(fi < s->nelems ? fi : s->nelems);
    if (gs_spanclass_tiny(s->spanclass)) {
        uint64_t t = gs_load_relaxed(&side->xtiny);
        uint32_t block;
        if (gs_tiny_word_block(t, s->nelems, &block)) {
            _Atomic uint64_t *live = gs_side_freed(side, s->awords);
            for (uint32_t half = 0; half < 2; half++) {
                if (gs_tiny_word_handed(t, half)) continue; /* handed out: stays live */
                uint64_t bit = 2u * block + half;
                gs_fetch_and_seqcst(&live[bit / 64u], ~(UINT64_C(1) << (bit % 64u)));
            }
        }
        gs_store_relaxed(&side->xtiny, 0);
    }
    gs_killpoint("uncache-swept");
    gs_mcentral_place(h, sid, gs_sweep_span(h, s));
    gs_txn_end(h);
}

int gs_heap_release(gs_heap_t *h, uint32_t slot, uint32_t sid)
{
    if (!gs_heap_slot_in_use(h, slot) || sid == 0 || sid >= h->span_bump) return gs_heap_bad(h);
    gs_mspan_t *s = gs_span(h, sid);
    if (s->state != GS_SPAN_SMALL || s->list != GS_LIST_CACHED || s->owner != slot + 1u) return gs_heap_bad(h);
    gs_mcentral_uncache(h, sid);
    return 0;
}

/* The batch is validated once: a bad slot or class fails the whole request
 * (as the first of the single refills it stood for did), each span handed
 * back is checked on its own. */
int gs_heap_refill_batch(gs_heap_t *h, uint32_t slot, uint32_t spanclass, const uint32_t *back, uint32_t nback,
                         uint32_t want, uint32_t *sids)
{
    for (uint32_t i = 0; i < nback; i++) gs_heap_release(h, slot, back[i]);
    if (want == 0) return 0;
    if (!gs_heap_slot_in_use(h, slot) || !spanclass_ok(spanclass)) return gs_heap_bad(h);
    uint32_t got = 0;
    int rc = 0;
    while (got < want && (rc = cache_span(h, slot, spanclass, &sids[got])) == 0) got++;
    gs_assert_expensive(h);
    return got ? (int)got : rc;
}
