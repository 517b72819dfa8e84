/* SPDX-License-Identifier: MIT */
/* largealloc.c: large objects: one span each (Go's mheap.allocLarge path).
 *
 * Overview: shm/overview.h. A large object is a span of its own, state
 * GS_SPAN_LARGE, with one allocated slot. Its owner frees it like any object
 * (the freed bit, then a notice); daemon/sweep.c gives the span back. An
 * object whose allocation its client never read (it died first) is
 * abandoned with its slot (daemon/slot.c).
 */
#include "heap_internal.h"

#include <errno.h> /* ENOMEM */

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
    gs_txn_begin(h); /* the span, its list tag and the slot's last large allocation: one transaction */
    rc = gs_mheap_alloc_span(h, 0, npages, UINT64_C(1) << align_shift, true, &sid);
    if (!rc) {
        gs_span(h, sid)->list = GS_LIST_LARGE;
        gs_span(h, sid)->client = gs_owners_ticket(&h->owners, slot); /* daemon/owners.h */
        gs_txn_pslot(h, slot);
        h->pslots[slot].large_sid = sid;
        h->pslots[slot].large_tag = tag;
    }
    gs_killpoint("large-alloc");
    gs_txn_end(h);
    if (rc) return rc;
    gs_quota_span_take(h, slot, gs_span(h, sid)); /* charged until freed */
    h->large_allocs++;
    *out = sid;
    return 0;
}
