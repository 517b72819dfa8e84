/* mcentral.c: one mcentral per span class, large objects, the notice stack.
 *
 * Overview: shm/malloc.h. Go's mcentral keeps swept and unswept sets of
 * partial and full spans per sweep generation; with explicit frees there is
 * no generation, so each mcentral has two lists of uncached spans:
 *   partial  free slots at the last sweep (refills take these first),
 *   full     no free slot at the last sweep.
 * A full span that gains frees reaches us through the notice stack (a freer
 * pushes its id, once per sweep, when no mcache owns it), so a refill never
 * scans for it. A span whose last object is freed goes back to the mheap.
 *
 * Everything read from side records here is client-writable: gs_span_sweep
 * clamps and masks it, and the span records (ours) decide what a span is.
 */
#include "heap_internal.h"

#include <errno.h> /* EINVAL */

void gs_list_push(gs_heap_t *h, gs_list_t *l, uint32_t sid, uint32_t which)
{
    gs_mspan_t *s = gs_span(h, sid);
    s->prev = 0;
    s->next = l->head;
    if (l->head) gs_span(h, l->head)->prev = sid;
    l->head = sid;
    l->count++;
    s->list = which;
}

void gs_list_remove(gs_heap_t *h, gs_list_t *l, uint32_t sid)
{
    gs_mspan_t *s = gs_span(h, sid);
    if (s->prev) gs_span(h, s->prev)->next = s->next;
    else l->head = s->next;
    if (s->next) gs_span(h, s->next)->prev = s->prev;
    s->next = s->prev = 0;
    s->list = GS_LIST_NONE;
    l->count--;
}

static gs_list_t *list_of(gs_heap_t *h, gs_mspan_t *s)
{
    switch (s->list) {
    case GS_LIST_PARTIAL: return &h->central[s->spanclass].partial;
    case GS_LIST_FULL: return &h->central[s->spanclass].full;
    case GS_LIST_CACHED: return &h->slots[s->owner - 1u].cached;
    default: return NULL;
    }
}

static void span_to_heap(gs_heap_t *h, uint32_t sid)
{
    gs_mspan_t *s = gs_span(h, sid);
    gs_side_t *side = gs_side_of(h, s);
    gs_store_relaxed(&side->xsid, 0);
    gs_sidefree(h, s->side_off, s->awords, s->fwords);
    if (s->state == GS_SPAN_LARGE) h->large_frees++;
    gs_mheap_free(h, sid);
}

/* Put an uncached, swept small span where `live` says it belongs. */
static void place(gs_heap_t *h, uint32_t sid, uint32_t live)
{
    gs_mspan_t *s = gs_span(h, sid);
    s->allocated = live;
    if (live == 0) span_to_heap(h, sid);
    else if (live >= s->nelems) gs_list_push(h, &h->central[s->spanclass].full, sid, GS_LIST_FULL);
    else gs_list_push(h, &h->central[s->spanclass].partial, sid, GS_LIST_PARTIAL);
}

static uint32_t sweep(gs_heap_t *h, gs_mspan_t *s)
{
    gs_side_t *side = gs_side_of(h, s);
    uint32_t merged = 0;
    uint32_t live = gs_span_sweep(side, s->nelems, s->awords, gs_spanclass_tiny(s->spanclass),
                                  gs_load_relaxed(&side->xfreeindex), &merged);
    if (s->state == GS_SPAN_SMALL) h->central[s->spanclass].daemon_frees += merged;
    return live;
}

static int span_init(gs_heap_t *h, uint32_t sid, uint32_t spanclass, bool large)
{
    gs_mspan_t *s = gs_span(h, sid);
    uint32_t sizeclass = gs_spanclass_sizeclass(spanclass);
    bool tiny = gs_spanclass_tiny(spanclass);
    s->spanclass = (uint8_t)spanclass;
    if (large) {
        s->nelems = 1;
        uint64_t bytes = s->npages64 << GS_PAGE_SHIFT;
        s->elemsize = bytes > UINT32_MAX ? 0 : (uint32_t)bytes; /* 0: use npages64 */
        s->divmagic = 0;
    } else {
        s->nelems = gs_class_nelems[sizeclass];
        s->elemsize = gs_class_size[sizeclass];
        s->divmagic = gs_class_divmagic[sizeclass];
    }
    s->awords = (uint8_t)gs_bitmap_words(s->nelems);
    s->fwords = (uint8_t)gs_bitmap_words(tiny ? 2u * s->nelems : s->nelems);
    s->side_off = gs_sidealloc(h, s->awords, s->fwords);
    if (!s->side_off) return -ENOMEM;
    gs_side_t *side = gs_side_of(h, s);
    gs_span_bitmaps_clear(side, s->nelems, s->awords, s->fwords);
    if (large) gs_store_relaxed(&gs_side_alloc(side)[0], 1); /* the one object is allocated */
    gs_store_relaxed(&s->xowner, 0);
    gs_store_relaxed(&side->xsid, sid);
    /* The id's notice entry is left alone: a stale push may still be on the
     * stack, and its flag keeps the id from being pushed twice. */
    s->state = large ? GS_SPAN_LARGE : GS_SPAN_SMALL;
    gs_mheap_publish(h, sid);
    return 0;
}

static int new_span(gs_heap_t *h, uint32_t spanclass, uint64_t npages, bool large, uint32_t *out)
{
    uint32_t sid;
    int rc = gs_mheap_alloc(h, npages, &sid);
    if (rc) return rc;
    rc = span_init(h, sid, spanclass, large);
    if (rc) {
        gs_mheap_free(h, sid);
        return rc;
    }
    *out = sid;
    return 0;
}

static bool slot_ok(const gs_heap_t *h, uint32_t slot)
{
    return slot < h->cfg.max_slots && h->slots[slot].in_use;
}

static int bad(gs_heap_t *h)
{
    h->bad_requests++;
    return -EINVAL;
}

int gs_heap_refill(gs_heap_t *h, uint32_t slot, uint32_t spanclass, uint32_t *out)
{
    if (!slot_ok(h, slot) || spanclass >= GS_NUM_SPAN_CLASSES) return bad(h);
    uint32_t sizeclass = gs_spanclass_sizeclass(spanclass);
    if (sizeclass == 0 || (gs_spanclass_tiny(spanclass) && sizeclass != GS_TINY_CLASS)) return bad(h);
    gs_heap_drain_notices(h);

    gs_central_t *c = &h->central[spanclass];
    uint32_t sid = 0;
    while (c->partial.head) {
        uint32_t cand = c->partial.head;
        gs_list_remove(h, &c->partial, cand);
        gs_mspan_t *s = gs_span(h, cand);
        uint32_t live = sweep(h, s);
        s->allocated = live;
        if (live < s->nelems) {
            s->needzero = 1; /* recycled slots are dirty */
            sid = cand;
            break;
        }
        gs_list_push(h, &c->full, cand, GS_LIST_FULL);
    }
    if (!sid) {
        int rc = new_span(h, spanclass, gs_class_npages[sizeclass], false, &sid);
        if (rc) return rc;
    }
    gs_mspan_t *s = gs_span(h, sid);
    s->owner = slot + 1u;
    gs_list_push(h, &h->slots[slot].cached, sid, GS_LIST_CACHED);
    /* seq_cst: pairs with freers' seq_cst load of xowner after their OR. */
    gs_store_seqcst(&s->xowner, slot + 1u);
    *out = sid;
    return 0;
}

/* Take a cached span back from its owner (release, or reclaim of a dead
 * client): finish the owner's tiny block, then sweep with the freeindex the
 * owner published, so the slots it had not handed out become free again. */
static void uncache(gs_heap_t *h, uint32_t sid)
{
    gs_mspan_t *s = gs_span(h, sid);
    gs_side_t *side = gs_side_of(h, s);
    gs_list_remove(h, &h->slots[s->owner - 1u].cached, sid);
    s->owner = 0;
    /* Dekker with freers: clear the owner, then sweep. A freer either sees
     * owner 0 (and sends a notice) or its bit is seen by this sweep. */
    gs_store_seqcst(&s->xowner, 0);
    if (gs_spanclass_tiny(s->spanclass)) {
        uint64_t t = gs_load_relaxed(&side->xtiny);
        uint64_t block = (t >> 32) ? (t >> 32) - 1u : UINT64_MAX;
        if (block < s->nelems) {
            _Atomic uint64_t *live = gs_side_freed(side, s->awords);
            for (uint32_t half = 0; half < 2; half++) {
                if (t & (1u << half)) continue; /* handed out: stays live */
                uint64_t bit = 2u * block + half;
                gs_fetch_and_seqcst(&live[bit / 64u], ~(UINT64_C(1) << (bit % 64u)));
            }
        }
        gs_store_relaxed(&side->xtiny, 0);
    }
    place(h, sid, sweep(h, s));
}

int gs_heap_release(gs_heap_t *h, uint32_t slot, uint32_t sid)
{
    if (!slot_ok(h, slot) || sid == 0 || sid >= h->span_bump) return bad(h);
    gs_mspan_t *s = gs_span(h, sid);
    if (s->state != GS_SPAN_SMALL || s->list != GS_LIST_CACHED || s->owner != slot + 1u) return bad(h);
    uncache(h, sid);
    return 0;
}

int gs_heap_refill_batch(gs_heap_t *h, uint32_t slot, uint32_t spanclass, const uint32_t *back, uint32_t nback,
                         uint32_t want, uint32_t *sids)
{
    for (uint32_t i = 0; i < nback; i++) gs_heap_release(h, slot, back[i]);
    uint32_t got = 0;
    while (got < want) {
        int rc = gs_heap_refill(h, slot, spanclass, &sids[got]);
        if (rc) return got ? (int)got : rc;
        got++;
    }
    return (int)got;
}

int gs_heap_large_alloc(gs_heap_t *h, uint32_t slot, uint64_t npages, uint32_t *out)
{
    if (!slot_ok(h, slot)) return bad(h);
    if (npages == 0 || npages > h->max_pages) return -ENOMEM;
    gs_heap_drain_notices(h);
    uint32_t sid;
    int rc = new_span(h, 0, npages, true, &sid);
    if (rc) return rc;
    gs_span(h, sid)->list = GS_LIST_LARGE;
    h->large_allocs++;
    *out = sid;
    return 0;
}

int gs_heap_large_abandon(gs_heap_t *h, uint32_t slot, uint32_t sid)
{
    if (sid == 0 || sid >= h->span_bump || gs_span(h, sid)->state != GS_SPAN_LARGE) return bad(h);
    gs_mspan_t *s = gs_span(h, sid);
    /* As if freed: if some process did free it meanwhile, the bit is set
     * already and this changes nothing. */
    gs_fetch_or_seqcst(&gs_side_freed(gs_side_of(h, s), s->awords)[0], UINT64_C(1));
    if (sweep(h, s) == 0) span_to_heap(h, sid);
    (void)slot;
    return 0;
}

/* A span that gained frees: sweep it if no mcache owns it. */
static int notice(gs_heap_t *h, uint32_t sid, bool from_stack)
{
    if (sid == 0 || sid >= h->span_bump) return bad(h);
    gs_mspan_t *s = gs_span(h, sid);
    if (s->state != GS_SPAN_SMALL && s->state != GS_SPAN_LARGE) return bad(h);
    /* Only the drain, which just took the id off the stack, may clear its
     * flag, and it clears it before sweeping: a freer whose CAS fails saw it
     * set, so its OR came before this store and thus before the sweep below.
     * Clearing it for an id still on the stack would let it be pushed twice. */
    if (from_stack) gs_store_seqcst(&gs_notice_of(h, sid)->xqueued, 0);
    h->notices++;
    if (s->list == GS_LIST_CACHED) return 0; /* its owner sweeps it */
    if (s->state == GS_SPAN_LARGE) {
        if (sweep(h, s) == 0) span_to_heap(h, sid);
        return 0;
    }
    gs_list_t *l = list_of(h, s);
    if (!l) return 0;
    gs_list_remove(h, l, sid);
    place(h, sid, sweep(h, s));
    return 0;
}

int gs_heap_notice(gs_heap_t *h, uint32_t sid) { return notice(h, sid, false); }

uint32_t gs_heap_drain_notices(gs_heap_t *h)
{
    if (!gs_load_relaxed(&h->hdr->xnotice_head)) return 0;
    /* Acquire: pairs with the pushers' release CAS, so their xnext is seen. */
    uint32_t sid = gs_xchg_acqrel(&h->hdr->xnotice_head, 0);
    uint32_t n = 0;
    while (sid) {
        /* The chain lives in client-writable memory: bound it, and check each
         * id before reading its link. */
        if (sid >= h->span_bump || n > h->span_bump) {
            h->bad_requests++;
            break;
        }
        uint32_t next = gs_load_relaxed(&gs_notice_of(h, sid)->xnext);
        gs_mspan_t *s = gs_span(h, sid);
        if (s->state == GS_SPAN_SMALL || s->state == GS_SPAN_LARGE) {
            notice(h, sid, true);
        } else {
            /* Given back to the mheap after the freer saw no owner: stale. */
            gs_store_seqcst(&gs_notice_of(h, sid)->xqueued, 0);
        }
        sid = next;
        n++;
    }
    return n;
}

uint32_t gs_heap_bgsweep(gs_heap_t *h, uint32_t budget)
{
    uint32_t swept = 0;
    gs_heap_drain_notices(h); /* what is on the stack is not lost */
    if (budget > h->span_bump - 1u) budget = h->span_bump - 1u; /* one lap at most */
    for (uint32_t i = 0; i < budget; i++) {
        if (h->bgsweep_cursor == 0 || h->bgsweep_cursor >= h->span_bump) h->bgsweep_cursor = 1;
        uint32_t sid = h->bgsweep_cursor++;
        gs_mspan_t *s = gs_span(h, sid);
        /* The stack was just drained: an id still flagged is being pushed
         * right now, or its pusher died between flag and push. A flag seen
         * on two visits in a row (a lap apart, 100 ms or more) is the
         * latter: clear it, or the id would never be pushed again. */
        if (gs_load_relaxed(&gs_notice_of(h, sid)->xqueued)) {
            if (s->suspect) {
                gs_store_seqcst(&gs_notice_of(h, sid)->xqueued, 0);
                s->suspect = 0;
            } else {
                s->suspect = 1;
            }
        } else {
            s->suspect = 0;
        }
        if (s->state == GS_SPAN_SMALL && s->list == GS_LIST_FULL) {
            gs_list_remove(h, &h->central[s->spanclass].full, sid);
            place(h, sid, sweep(h, s));
            swept++;
        } else if (s->state == GS_SPAN_LARGE) {
            /* Freed, but no notice reached us (yet): sweeping is harmless. */
            if (!(gs_load_relaxed(&gs_side_freed(gs_side_of(h, s), s->awords)[0]) & 1u)) continue;
            if (sweep(h, s) == 0) span_to_heap(h, sid);
            swept++;
        }
    }
    return swept;
}

int gs_heap_slot_reclaim(gs_heap_t *h, uint32_t slot)
{
    if (!slot_ok(h, slot)) return bad(h);
    while (h->slots[slot].cached.head) uncache(h, h->slots[slot].cached.head);
    gs_slot_t *sl = gs_slot_at(h, slot);
    for (uint32_t c = 0; c < GS_NUM_SIZE_CLASSES; c++) {
        /* Untrusted counters, for statistics only. */
        h->central[c * 2u].departed_allocs += gs_load_relaxed(&sl->stats[c].xallocs);
        h->central[c * 2u].departed_frees += gs_load_relaxed(&sl->stats[c].xfrees);
    }
    h->slots[slot].in_use = false;
    h->slots[slot].pid = 0;
    gs_heap_drain_notices(h);
    return 0;
}

int32_t gs_heap_serve_entry(gs_heap_t *h, uint32_t slot, const gs_sqe_t *e, gs_cqe_t *c)
{
    switch (e->op) {
    case GS_OP_NOP: return 0;
    case GS_OP_REFILL:
        if (e->want > GS_RING_MAX_BATCH || e->nback > GS_RING_MAX_BATCH) return -EINVAL;
        return gs_heap_refill_batch(h, slot, e->spanclass, e->back, e->nback, e->want, c->sids);
    case GS_OP_RELEASE: return gs_heap_release(h, slot, e->sid);
    case GS_OP_LARGE_ALLOC: return gs_heap_large_alloc(h, slot, e->npages, &c->sid);
    case GS_OP_NOTICE:
        if (e->sid) return gs_heap_notice(h, e->sid);
        gs_heap_drain_notices(h);
        return 0;
    default: return -EINVAL;
    }
}
