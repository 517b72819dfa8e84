/* SPDX-License-Identifier: MIT */
/* largealloc.c: large objects: one span each (Go's mheap.allocLarge path).
 *
 * Overview: shm/overview.h. A large object is a span of its own, state
 * GS_SPAN_LARGE, with one allocated slot. Its owner frees it like any object
 * (the freed bit, then a notice); daemon/sweep.c gives the span back. Until
 * its client has read the completion the span is in flight: owned by the
 * client's slot, out of reach of every free (gs_heap_large_land). An
 * object whose allocation its client never read (it died first) is
 * abandoned with its slot (daemon/slot.c).
 *
 * A freed large object reaches us through the notice stack, but a freer
 * pushes only if it wins the span's xqueued flag, which any client can
 * write (shm/segment.h): a client that keeps every flag set suppresses
 * every notice, and the pages would wait for the background sweep, a tick
 * or more, while their owner's next allocations fail. So before answering
 * ENOMEM, a large allocation takes back every large object found freed
 * (reclaim_freed; a walk that finds nothing waits GS_LARGE_RECLAIM_NS).
 */
#include "heap_internal.h"

#include <errno.h> /* ENOMEM */

/* One walk of the span table: a state test and one load per span (well
 * under a millisecond for 100k spans). A walk that found nothing is not
 * repeated within this interval, so that a client that makes its own
 * allocations fail cannot hold the heap lock with walks; one that gave
 * pages back may be repeated at once (each needs a large object freed and
 * unnoticed since: an allocation of its own). */
#define GS_LARGE_RECLAIM_NS (5u * 1000u * 1000u)

/* Give back every landed large span whose object is freed (its freed bit is
 * client-writable too: a wrong bit frees an object early, which any client
 * can do by freeing it; bgsweep trusts it the same way). Spans given back. */
static uint32_t reclaim_freed(gs_heap_t *h)
{
    uint64_t now = gs_now_ns();
    if (h->large_reclaim_ns && now - h->large_reclaim_ns < GS_LARGE_RECLAIM_NS) return 0;
    uint32_t n = 0;
    for (uint32_t sid = 1; sid < h->span_bump; sid++) {
        gs_mspan_t *s = gs_span(h, sid);
        if (s->state != GS_SPAN_LARGE || s->list == GS_LIST_INFLIGHT) continue;
        if (!(gs_load_relaxed(&gs_side_freed(gs_side_of(h, s), s->awords)[0]) & 1u)) continue;
        gs_sweep_large(h, sid);
        n++;
    }
    h->large_reclaim_ns = n ? 0 : now; /* 0: no fruitless walk to wait for */
    return n;
}

int gs_heap_large_alloc(gs_heap_t *h, uint32_t slot, uint64_t npages, uint32_t *out)
{
    return gs_heap_large_alloc_aligned(h, slot, npages, 0, out);
}

int gs_heap_large_alloc_aligned(gs_heap_t *h, uint32_t slot, uint64_t npages, uint32_t align_shift, uint32_t *out)
{
    return gs_heap_large_alloc_tagged(h, slot, npages, align_shift, 0, out);
}

int gs_heap_large_alloc_tagged(gs_heap_t *h, uint32_t slot, uint64_t npages, uint32_t align_shift, uint32_t tag,
                               uint32_t *out)
{
    if (!gs_heap_slot_in_use(h, slot) || align_shift > GS_LARGE_MAX_ALIGN_SHIFT) return gs_heap_bad(h);
    if (npages == 0 || npages > h->max_pages) return -ENOMEM;
    uint32_t sid;
    int rc = gs_quota_check(h, slot, npages << GS_PAGE_SHIFT); /* daemon/quota.c */
    if (rc) return rc;
    /* A second attempt only after reclaim_freed gave pages back, outside
     * the transaction (each span it frees is a transaction of its own). */
    for (int attempt = 0;; attempt++) {
        gs_txn_begin(h); /* the span, its owner and list, the slot's last large allocation: one transaction */
        rc = gs_mheap_alloc_span(h, 0, npages, UINT64_C(1) << align_shift, true, &sid);
        if (!rc) {
            /* In flight until the client has read the completion (the serve unit
             * sees its completion head pass it, gs_heap_large_land): owned by its
             * slot like a cached span, so a free that another client makes meanwhile
             * (setting the freed bit of every fresh large span and pushing a notice)
             * cannot give the pages back before the requester even saw the answer,
             * and the completion it reads names a span that is still its own. Such
             * a free pushes no notice (xowner is set); landing sweeps it. */
            gs_mspan_t *s = gs_span(h, sid);
            s->owner = slot + 1u;
            gs_store_seqcst(&s->xowner, slot + 1u);
            gs_list_push(h, &h->slots[slot].inflight, sid, GS_LIST_INFLIGHT);
            s->client = gs_owners_ticket(&h->owners, slot); /* daemon/owners.h */
            gs_txn_pslot(h, slot);
            h->pslots[slot].large_sid = sid;
            h->pslots[slot].large_tag = tag;
        }
        gs_killpoint("large-alloc");
        gs_txn_end(h);
        if (rc != -ENOMEM || attempt || !reclaim_freed(h)) break;
    }
    if (rc) return rc;
    gs_quota_span_take(h, slot, gs_span(h, sid)); /* charged until freed */
    h->large_allocs++;
    *out = sid;
    return 0;
}

void gs_heap_large_land(gs_heap_t *h, uint32_t slot, uint32_t sid)
{
    if (!gs_heap_slot_in_use(h, slot) || sid == 0 || sid >= h->span_bump) return;
    gs_mspan_t *s = gs_span(h, sid);
    if (s->state != GS_SPAN_LARGE || s->list != GS_LIST_INFLIGHT || s->owner != slot + 1u) return;
    gs_txn_begin(h);
    gs_txn_span(h, sid);
    gs_list_remove(h, &h->slots[slot].inflight, sid);
    s->list = GS_LIST_LARGE;
    s->owner = 0;
    /* seq_cst store, then the sweep's loads: pairs with a freer's seq_cst OR
     * and its seq_cst load of xowner (shm/segment.h): either the freer saw
     * 0 and pushes a notice, or this sweep sees its bit. */
    gs_store_seqcst(&s->xowner, 0);
    gs_fence_seqcst();
    gs_sweep_large(h, sid);
    gs_txn_end(h);
}
