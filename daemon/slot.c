/* SPDX-License-Identifier: MIT */
/* slot.c: client slots: claim, abandon, reclaim, and what a slot reports (the life of a slot on the heap side).
 *
 * Overview: shm/overview.h; the slot's shared record: shm/segment.h
 * (gs_slot_t). A client claims a slot when it attaches; the slot owns the
 * spans its mcaches cache. Reclaim, when the client detaches or dies, takes
 * every cached span back with the freeindex the client published, so the
 * slots it had not handed out become free again. Before that, the large
 * objects a dead client never read are abandoned: the serve unit, which
 * remembers which completions carried one (daemon/serve.c,
 * gs_serve_slot_close), names them to gs_heap_large_abandon.
 */
#include "heap_internal.h"

#include <errno.h>  /* ENOSPC */
#include <string.h> /* memset */

int gs_heap_slot_claim(gs_heap_t *h, uint32_t pid)
{
    for (uint32_t i = 0; i < h->cfg.max_slots; i++) {
        if (h->slots[i].in_use) continue;
        int rc = gs_sys_commit(h->data_fd, gs_slot_off(&h->lay, i), gs_slot_committed_size());
        if (rc) return rc;
        gs_slot_t *s = gs_slot_at(h, i);
        uint32_t gen = s->generation + 1u;
        memset(s, 0, sizeof *s);
        s->pid = pid;
        s->generation = gen;
        h->slots[i].in_use = true;
        h->slots[i].pid = pid;
        h->slots[i].cached.head = 0;
        h->slots[i].cached.count = 0;
        gs_owners_attach(&h->owners, i, pid);
        return (int)i;
    }
    return -ENOSPC;
}

bool gs_heap_slot_in_use(const gs_heap_t *h, uint32_t slot)
{
    return slot < h->cfg.max_slots && h->slots[slot].in_use;
}

/* A large object whose allocation the client never read: free it. */
int gs_heap_large_abandon(gs_heap_t *h, uint32_t slot, uint32_t sid)
{
    if (sid == 0 || sid >= h->span_bump || gs_span(h, sid)->state != GS_SPAN_LARGE) return gs_heap_bad(h);
    gs_mspan_t *s = gs_span(h, sid);
    /* As if freed: if some process did free it meanwhile, the bit is set
     * already and this changes nothing. */
    gs_fetch_or_seqcst(&gs_side_freed(gs_side_of(h, s), s->awords)[0], UINT64_C(1));
    gs_sweep_large(h, sid);
    (void)slot;
    return 0;
}

int gs_heap_slot_reclaim(gs_heap_t *h, uint32_t slot)
{
    if (!gs_heap_slot_in_use(h, slot)) return gs_heap_bad(h);
    while (h->slots[slot].cached.head) gs_mcentral_uncache(h, h->slots[slot].cached.head);
    gs_slot_t *sl = gs_slot_at(h, slot);
    for (uint32_t c = 0; c < GS_NUM_SIZE_CLASSES; c++) {
        /* Untrusted counters, for statistics only. */
        h->central[c * 2u].departed_allocs += gs_load_relaxed(&sl->stats[c].xallocs);
        h->central[c * 2u].departed_frees += gs_load_relaxed(&sl->stats[c].xfrees);
    }
    /* Its live bytes are now a departed client's (daemon/owners.h). */
    gs_owners_depart(&h->owners, slot, gs_now_ns(), gs_heap_owner_walk, h);
    h->slots[slot].in_use = false;
    h->slots[slot].pid = 0;
    gs_quota_slot_close(h, slot); /* its uid keeps its large objects' charge */
    /* A removal is a serve pass of its own: frees the dead client made into
     * spans it no longer owns are swept now, not at the next tick. */
    gs_heap_drain_notices(h);
    gs_assert_expensive(h);
    return 0;
}

/* Per-client statistics for the control plane (daemon/ctl.c). The counters
 * live in the client's slot and are client-written: reported as they are,
 * never used for a decision. */
uint32_t gs_heap_slot_cached_spans(gs_heap_t *h, uint32_t slot)
{
    if (!gs_heap_slot_in_use(h, slot)) return 0;
    return h->slots[slot].cached.count;
}

void gs_heap_slot_counts(gs_heap_t *h, uint32_t slot, uint64_t *allocs, uint64_t *frees, uint64_t *large_allocs,
                         uint64_t *large_frees)
{
    *allocs = *frees = *large_allocs = *large_frees = 0;
    if (!gs_heap_slot_in_use(h, slot)) return;
    gs_slot_t *s = gs_slot_at(h, slot);
    for (uint32_t c = 0; c < GS_NUM_SIZE_CLASSES; c++) {
        *allocs += gs_load_relaxed(&s->stats[c].xallocs);
        *frees += gs_load_relaxed(&s->stats[c].xfrees);
    }
    *large_allocs = gs_load_relaxed(&s->xlarge_allocs);
    *large_frees = gs_load_relaxed(&s->xlarge_frees);
}
