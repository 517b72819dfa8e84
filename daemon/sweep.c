/* SPDX-License-Identifier: MIT */
/* sweep.c: heap-side sweeping: one span, the notice stack, background sweep (Go's mgcsweep.go).
 *
 * Overview: shm/overview.h ("Sweeping"). A freer that frees into a span no
 * mcache owns pushes the span's id on the notice stack (once per sweep: its
 * notice entry's xqueued flag). The heap side drains the stack once per serve
 * pass (daemon/serve.c) and once per housekeeping tick (gs_heap_bgsweep), and
 * sweeps each span named: partial and full spans move between the mcentral's
 * lists or go back to the mheap, large ones are freed. The stack's links are
 * client-written: a drain does GS_DRAIN_BUDGET ids at most per call (the
 * rest of the chain waits for the next call) and stops at an id the chain
 * visited already, so a looping or endless chain costs a bounded time under
 * the heap lock (issue 7, point 8). Background sweep walks
 * the span table for frees whose notice was lost with a dying freer.
 */
#include "heap_internal.h"

/* Notice ids handled per drain call: ~1 us each at most. */
#define GS_DRAIN_BUDGET 256u

uint32_t gs_sweep_span(gs_heap_t *h, gs_mspan_t *s)
{
    gs_side_t *side = gs_side_of(h, s);
    uint32_t merged = 0;
    /* The trusted freeindex (gs_mspan_t.freeindex), never the side
     * record's: the heap side sweeps only spans no mcache owns. */
    uint32_t fi = s->freeindex;
    s->freeindex = 0; /* folded below; step 1 is idempotent if we die */
    uint32_t live = gs_span_sweep(side, s->nelems, s->awords, gs_spanclass_tiny(s->spanclass), fi, &merged);
    if (s->state == GS_SPAN_SMALL) h->central[s->spanclass].daemon_frees += merged;
    return live;
}

/* A large span: give it back if its object is free. */
void gs_sweep_large(gs_heap_t *h, uint32_t sid)
{
    if (gs_sweep_span(h, gs_span(h, sid)) == 0) gs_mheap_free_span(h, sid); /* one transaction */
}

/* A span that gained frees: sweep it if no mcache owns it. */
static int notice(gs_heap_t *h, uint32_t sid, bool from_stack)
{
    if (sid == 0 || sid >= h->span_bump) return gs_heap_bad(h);
    gs_mspan_t *s = gs_span(h, sid);
    if (s->state != GS_SPAN_SMALL && s->state != GS_SPAN_LARGE) return gs_heap_bad(h);
    /* Only the drain, which just took the id off the stack, may clear its
     * flag, and it clears it before sweeping: a freer whose CAS fails saw it
     * set, so its OR came before this store and thus before the sweep below.
     * Clearing it for an id still on the stack would let it be pushed twice. */
    if (from_stack) gs_store_seqcst(&gs_notice_of(h, sid)->xqueued, 0);
    h->notices++;
    if (s->list == GS_LIST_CACHED || s->list == GS_LIST_INFLIGHT) return 0; /* its owner / landing sweeps it */
    if (s->state == GS_SPAN_LARGE) {
        gs_sweep_large(h, sid);
        return 0;
    }
    gs_spanlist_t *l = gs_list_of(h, s);
    if (!l) return 0;
    gs_txn_begin(h);
    gs_list_remove(h, l, sid);
    gs_mcentral_place(h, sid, gs_sweep_span(h, s));
    gs_txn_end(h);
    return 0;
}

int gs_heap_notice(gs_heap_t *h, uint32_t sid) { return notice(h, sid, false); }

uint32_t gs_heap_drain_notices(gs_heap_t *h)
{
    uint32_t sid = h->notice_rest;
    if (!sid) {
        if (!gs_load_relaxed(&h->hdr->xnotice_head)) return 0;
        /* Acquire: pairs with the pushers' release CAS, so their xnext is seen. */
        sid = gs_xchg_acqrel(&h->hdr->xnotice_head, 0);
        if (++h->drain_gen == 0) h->drain_gen = 1; /* 0: never visited */
    }
    uint32_t n = 0;
    /* The chain lives in client-writable memory: check each id before
     * reading its link, stop at an id this chain visited already (a loop),
     * and do GS_DRAIN_BUDGET ids per call at most: the rest waits for the
     * next pass (the data plane's next loop, or the next tick), so a long
     * chain never holds the heap lock for long. Ids left in the rest keep
     * their xqueued flag, so no freer can push them again meanwhile. */
    while (sid && n < GS_DRAIN_BUDGET) {
        if (sid >= h->span_bump) {
            h->bad_requests++;
            sid = 0;
            break;
        }
        gs_mspan_t *s = gs_span(h, sid);
        if (s->drain_gen == h->drain_gen) {
            h->bad_requests++; /* seen twice in one chain: a loop */
            sid = 0;
            break;
        }
        s->drain_gen = h->drain_gen;
        uint32_t next = gs_load_relaxed(&gs_notice_of(h, sid)->xnext);
        if (s->state == GS_SPAN_SMALL || s->state == GS_SPAN_LARGE) {
            notice(h, sid, true);
        } else {
            /* Given back to the mheap after the freer saw no owner: stale. */
            gs_store_seqcst(&gs_notice_of(h, sid)->xqueued, 0);
        }
        sid = next;
        n++;
    }
    h->notice_rest = sid;
    return n;
}

uint32_t gs_heap_bgsweep(gs_heap_t *h, uint32_t budget, uint32_t *notices)
{
    uint32_t swept = 0;
    /* The tick's one drain: what is on the stack is not lost, and the flag
     * test below needs an empty stack. */
    uint32_t drained = gs_heap_drain_notices(h);
    if (notices) *notices = drained;
    if (budget > h->span_bump - 1u) budget = h->span_bump - 1u; /* one lap at most */
    for (uint32_t i = 0; i < budget; i++) {
        if (h->bgsweep_cursor == 0 || h->bgsweep_cursor >= h->span_bump) h->bgsweep_cursor = 1;
        uint32_t sid = h->bgsweep_cursor++;
        gs_mspan_t *s = gs_span(h, sid);
        /* The stack was just drained: an id still flagged is being pushed
         * right now, or its pusher died between flag and push. A flag seen
         * on two visits in a row (a lap apart, 100 ms or more) is the
         * latter: clear it, or the id would never be pushed again. */
        if (h->notice_rest) {
            /* A chain is still being drained: its ids are rightly flagged
             * and off the stack. Judge the flags when it is done. */
        } else if (gs_load_relaxed(&gs_notice_of(h, sid)->xqueued)) {
            if (s->suspect) {
                gs_store_seqcst(&gs_notice_of(h, sid)->xqueued, 0);
                s->suspect = 0;
                /* While the flag was stuck, frees into the span sent no
                 * notice (a dead pusher, or a daemon killed between popping
                 * the stack and handling it): a partial span is swept now,
                 * full ones are below. */
                if (s->state == GS_SPAN_SMALL && s->list == GS_LIST_PARTIAL) {
                    gs_txn_begin(h);
                    gs_list_remove(h, &h->central[s->spanclass].partial, sid);
                    gs_mcentral_place(h, sid, gs_sweep_span(h, s));
                    gs_txn_end(h);
                    swept++;
                    continue;
                }
            } else {
                s->suspect = 1;
            }
        } else {
            s->suspect = 0;
        }
        if (s->state == GS_SPAN_SMALL && s->list == GS_LIST_FULL) {
            gs_txn_begin(h);
            gs_list_remove(h, &h->central[s->spanclass].full, sid);
            gs_mcentral_place(h, sid, gs_sweep_span(h, s));
            gs_txn_end(h);
            swept++;
        } else if (s->state == GS_SPAN_LARGE && s->list != GS_LIST_INFLIGHT) {
            /* Freed, but no notice reached us (yet): sweeping is harmless. */
            if (!(gs_load_relaxed(&gs_side_freed(gs_side_of(h, s), s->awords)[0]) & 1u)) continue;
            gs_sweep_large(h, sid);
            swept++;
        }
    }
    gs_assert_expensive(h);
    return swept;
}
