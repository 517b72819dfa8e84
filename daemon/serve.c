/* SPDX-License-Identifier: MIT */
/* serve.c: the serve unit: decode and validate a ring entry, call the heap, encode the completion.
 *
 * Overview: shm/overview.h; API and callers: daemon/serve.h. Every entry is
 * copied out of shared memory once and validated before use: indices that
 * cannot be right are resynchronised, unknown ops and bad arguments get an
 * error completion (the heap side validates span ids, classes and sizes
 * against its own records), and nothing a client writes can make the server
 * crash or corrupt the heap.
 */
#include "serve.h"

#include <errno.h>  /* EINVAL */
#include <string.h> /* memcpy, memset */

#include "futex.h"

int32_t gs_serve_entry(gs_heap_t *h, uint32_t slot, const gs_sqe_t *e, gs_cqe_t *c)
{
    switch (e->op) {
    case GS_OP_NOP: return 0;
    case GS_OP_REFILL:
        if (e->want > GS_RING_MAX_BATCH || e->nback > GS_RING_MAX_BATCH) return -EINVAL;
        return gs_heap_refill_batch(h, slot, e->spanclass, e->back, e->nback, e->want, c->sids);
    case GS_OP_RELEASE: return gs_heap_release(h, slot, e->sid);
    case GS_OP_LARGE_ALLOC: return gs_heap_large_alloc_tagged(h, slot, e->npages, e->want, e->tag, &c->sid);
    case GS_OP_NOTICE:
        if (e->sid) return gs_heap_notice(h, e->sid);
        gs_heap_drain_notices(h);
        return 0;
    default: return -EINVAL;
    }
}

void gs_serve_slot_open(gs_heap_t *h, uint32_t slot, gs_serve_slot_t *s)
{
    gs_slot_t *sl = gs_heap_slot_ptr(h, slot); /* the slot's own memfd */
    s->ring = sl ? &sl->ring : NULL;
    s->sq_head = s->cq_tail = s->landed = 0;
    memset(s->large, 0, sizeof s->large);
}

/* The client has read every completion below head: the large objects they
 * named are its own now (gs_heap_large_land). head is the client's, so it
 * is taken only if it lies in [landed, cq_tail]; a head that went back or
 * beyond what was answered lands nothing (the objects stay in flight until
 * the slot closes: at worst a leak, never a span freed under its owner). */
static void land(gs_heap_t *h, uint32_t slot, gs_serve_slot_t *s, uint32_t head)
{
    if (head - s->landed > s->cq_tail - s->landed) return;
    for (; s->landed != head; s->landed++) {
        uint32_t *sid = &s->large[s->landed % GS_RING_ENTRIES];
        if (*sid) gs_heap_large_land(h, slot, *sid);
        *sid = 0;
    }
}

void gs_serve_slot_close(gs_heap_t *h, uint32_t slot, gs_serve_slot_t *s)
{
    /* Its head is untrusted: an impossible one counts as "read everything",
     * since freeing an object the client did get could hurt other processes,
     * while keeping one it did not get only leaks it. */
    uint32_t head = gs_load_acquire(&s->ring->xcq_head);
    if (s->cq_tail - head > GS_RING_ENTRIES) head = s->cq_tail;
    land(h, slot, s, head);
    for (uint32_t k = head; k != s->cq_tail; k++) {
        uint32_t sid = s->large[k % GS_RING_ENTRIES];
        if (sid) gs_heap_large_abandon(h, slot, sid);
    }
    memset(s->large, 0, sizeof s->large);
}

static void count_bad(_Atomic uint64_t *bad)
{
    if (bad) gs_fetch_add_relaxed(bad, 1);
}

bool gs_serve_ring(gs_heap_t *h, uint32_t slot, gs_serve_slot_t *s, _Atomic uint64_t *bad)
{
    gs_ring_t *r = s->ring;
    /* One read of the client's head serves both: landing, then the room
     * left, so no completion's memo (large[]) is overwritten before it
     * landed. */
    uint32_t cq_head = gs_load_acquire(&r->xcq_head);
    if (s->landed != s->cq_tail) land(h, slot, s, cq_head);
    uint32_t tail = gs_load_acquire(&r->xsq_tail);
    uint32_t n = tail - s->sq_head;
    if (n == 0) return false;
    if (n > GS_RING_ENTRIES) {
        /* Not a tail a well-behaved client can write: skip to it. */
        count_bad(bad);
        s->sq_head = tail;
        gs_store_release(&r->xsq_head, tail);
        return true;
    }
    uint32_t used = s->cq_tail - cq_head;
    if (used > GS_RING_ENTRIES) {
        count_bad(bad);
        used = 0; /* an impossible head: treat everything as consumed */
    }
    uint32_t room = GS_RING_ENTRIES - used;
    if (n > room) n = room;
    if (n == 0) return false; /* the client is not reading its completions */
    for (uint32_t k = 0; k < n; k++) {
        gs_sqe_t e;
        memcpy(&e, &r->sq[(s->sq_head + k) % GS_RING_ENTRIES], sizeof e); /* read once */
        gs_cqe_t c;
        memset(&c, 0, sizeof c);
        c.tag = e.tag;
        c.result = gs_serve_entry(h, slot, &e, &c);
        if (c.result == -EINVAL) count_bad(bad);
        s->large[s->cq_tail % GS_RING_ENTRIES] = e.op == GS_OP_LARGE_ALLOC && c.result == 0 ? c.sid : 0;
        memcpy(&r->cq[s->cq_tail % GS_RING_ENTRIES], &c, sizeof c);
        s->cq_tail++;
    }
    s->sq_head += n;
    gs_store_release(&r->xsq_head, s->sq_head);
    gs_store_release(&r->xcq_tail, s->cq_tail);
    /* Dekker with the client's xwaiting store before it sleeps. */
    atomic_fetch_add_explicit(&r->xcq_seq, 1, memory_order_seq_cst);
    if (gs_load_seqcst(&r->xwaiting)) gs_futex_wake(&r->xcq_seq);
    return true;
}
