/* SPDX-License-Identifier: MIT */
/* chan.c: the channel queue's steps (claim, publish, consume, drain), shared by libgoshm and the heap side.
 *
 * Overview: shm/overview.h; the layout, orderings and crash story:
 * shm/chan.h. Every loop here is bounded or makes progress on each turn
 * (a failed CAS means someone else moved a position); none sleeps.
 */
#include "chan.h"

#include <string.h> /* memset */

#include "futex.h"

void gs_chan_init(gs_chan_t *c, uint32_t cap)
{
    memset(c, 0, sizeof *c);
    c->magic = GS_CHAN_MAGIC;
    c->cap = cap;
    for (uint32_t i = 0; i < cap; i++) {
        gs_store_relaxed(&c->cells[i].xstate, gs_cell(i, 0, GS_CELL_EMPTY));
        gs_store_relaxed(&c->cells[i].xmsg, 0);
    }
}

/* Help a position hint past pos (CAS: only if it is still there). */
static inline void help(_Atomic uint64_t *x, uint64_t pos)
{
    uint64_t want = pos;
    atomic_compare_exchange_strong_explicit(x, &want, pos + 1u, memory_order_seq_cst, memory_order_relaxed);
}

int gs_chan_claim_send(gs_chan_t *c, uint32_t cap, uint32_t holder, _Atomic uint64_t *intent_pos, uint64_t *pos)
{
    uint64_t mask = (uint64_t)cap - 1u;
    uint32_t skips = 0;
    for (;;) {
        uint64_t t = gs_load_seqcst(&c->xtail);
        gs_cell_t *cell = &c->cells[t & mask];
        uint64_t s = gs_load_acquire(&cell->xstate);
        uint64_t p = gs_cell_pos(s);
        if (p == t && gs_cell_phase(s) == GS_CELL_EMPTY) {
            if (intent_pos) gs_store_release(intent_pos, t);
            uint64_t want = s;
            if (gs_cas_seqcst(&cell->xstate, &want, gs_cell(t, holder, GS_CELL_WRITING))) {
                help(&c->xtail, t);
                *pos = t;
                return GS_CHAN_OK;
            }
            continue;
        }
        if (p == t) { /* claimed at t by someone: help the hint on */
            help(&c->xtail, t);
            continue;
        }
        if (p < t) {
            /* The cell still holds (or is being read for) position t - cap:
             * full, if the tail did not move meanwhile. */
            if (gs_load_seqcst(&c->xtail) == t) return GS_CHAN_FULL;
            continue;
        }
        /* p > t: the cell is at a later lap than the tail. Either the tail
         * we read was stale (reload), or the cell at t was sent and
         * received before anyone helped the tail past t (help it on), or
         * someone wrote garbage into the cell. The garbage case must not
         * spin us for ever (the cell never changes, the tail stays): help
         * the tail at most cap times in one call, then report the channel
         * full (the caller sleeps and times out: the channel is broken,
         * nothing else is). */
        if (gs_load_seqcst(&c->xtail) != t) continue;
        if (++skips > cap) return GS_CHAN_FULL;
        help(&c->xtail, t);
    }
}

void gs_chan_publish(gs_chan_t *c, uint32_t cap, uint64_t pos, uint64_t msg)
{
    gs_cell_t *cell = &c->cells[pos & ((uint64_t)cap - 1u)];
    gs_store_relaxed(&cell->xmsg, msg);
    gs_store_seqcst(&cell->xstate, gs_cell(pos, 0, GS_CELL_FULL));
    /* Only when a receiver announced it may sleep: in the steady state the
     * line of futex words stays read-only, shared by both sides, instead
     * of bouncing between them on every message (bench/README.md, W5). */
    if (gs_load_seqcst(&c->xrwait) != 0) {
        atomic_fetch_add_explicit(&c->xposted, 1u, memory_order_seq_cst);
        gs_futex_wake(&c->xposted);
    }
}

int gs_chan_claim_recv(gs_chan_t *c, uint32_t cap, uint32_t holder, _Atomic uint64_t *intent_pos, uint64_t *pos, uint64_t *msg)
{
    uint64_t mask = (uint64_t)cap - 1u;
    for (;;) {
        uint64_t hd = gs_load_seqcst(&c->xhead);
        gs_cell_t *cell = &c->cells[hd & mask];
        uint64_t s = gs_load_acquire(&cell->xstate);
        uint64_t p = gs_cell_pos(s);
        uint32_t ph = gs_cell_phase(s);
        if (p == hd && ph == GS_CELL_FULL) {
            if (intent_pos) gs_store_release(intent_pos, hd);
            uint64_t want = s;
            if (gs_cas_seqcst(&cell->xstate, &want, gs_cell(hd, holder, GS_CELL_READING))) {
                help(&c->xhead, hd);
                *pos = hd;
                *msg = gs_load_relaxed(&cell->xmsg);
                return GS_CHAN_OK;
            }
            continue;
        }
        if ((p == hd && ph == GS_CELL_READING) || (p == hd + cap && ph == GS_CELL_EMPTY)) {
            help(&c->xhead, hd); /* taken at hd already */
            continue;
        }
        if (p == hd) { /* EMPTY(hd) or WRITING(hd): nothing to take yet */
            if (gs_load_seqcst(&c->xhead) == hd) return GS_CHAN_EMPTY;
            continue;
        }
        if (p < hd) {
            /* A cell behind the head: garbage written by someone, or a
             * stale head read. */
            if (gs_load_seqcst(&c->xhead) == hd) return GS_CHAN_EMPTY;
            continue;
        }
        /* p > hd (a later lap): the head we read was stale. If it is not,
         * the cell was skipped over by garbage: nothing to take. */
        if (gs_load_seqcst(&c->xhead) == hd) return GS_CHAN_EMPTY;
    }
}

void gs_chan_consume(gs_chan_t *c, uint32_t cap, uint64_t pos)
{
    gs_cell_t *cell = &c->cells[pos & ((uint64_t)cap - 1u)];
    gs_store_seqcst(&cell->xstate, gs_cell(pos + cap, 0, GS_CELL_EMPTY));
    if (gs_load_seqcst(&c->xswait) != 0) { /* as in gs_chan_publish */
        atomic_fetch_add_explicit(&c->xtaken, 1u, memory_order_seq_cst);
        gs_futex_wake(&c->xtaken);
    }
}

/* Would a receive find a message? Exact, like gs_chan_claim_recv without
 * the claim: a head left behind by another receiver is helped on and
 * looked at again, so a message past it is not missed. seq_cst loads: the
 * waiter's half of the Dekker pairing (shm/chan.h, "Sleeping"). */
bool gs_chan_ready(gs_chan_t *c, uint32_t cap)
{
    uint64_t mask = (uint64_t)cap - 1u;
    for (;;) {
        uint64_t hd = gs_load_seqcst(&c->xhead);
        uint64_t s = gs_load_seqcst(&c->cells[hd & mask].xstate);
        uint64_t p = gs_cell_pos(s);
        uint32_t ph = gs_cell_phase(s);
        if (p == hd && ph == GS_CELL_FULL) return true;
        if ((p == hd && ph == GS_CELL_READING) || (p == hd + cap && ph == GS_CELL_EMPTY)) {
            help(&c->xhead, hd);
            continue;
        }
        if (gs_load_seqcst(&c->xhead) == hd) return false; /* EMPTY or WRITING at hd, or garbage */
    }
}

/* Would a send find a free cell? The same for the tail. */
bool gs_chan_room(gs_chan_t *c, uint32_t cap)
{
    uint64_t mask = (uint64_t)cap - 1u;
    uint32_t skips = 0;
    for (;;) {
        uint64_t t = gs_load_seqcst(&c->xtail);
        uint64_t s = gs_load_seqcst(&c->cells[t & mask].xstate);
        uint64_t p = gs_cell_pos(s);
        if (p == t && gs_cell_phase(s) == GS_CELL_EMPTY) return true;
        if (p == t) { /* claimed at t: the tail is behind */
            help(&c->xtail, t);
            continue;
        }
        if (gs_load_seqcst(&c->xtail) != t) continue;
        if (p < t) return false; /* full */
        /* p > t: a tail nobody helped on, or garbage: as in
         * gs_chan_claim_send, help it at most cap times, then say "no
         * room", so that a sender facing garbage sleeps until its deadline
         * instead of spinning. */
        if (++skips > cap) return false;
        help(&c->xtail, t);
    }
}

void gs_chan_drain(gs_chan_t *c, uint32_t cap, void (*drop)(void *arg, uint64_t off), void *arg)
{
    for (uint32_t i = 0; i < cap; i++) {
        uint64_t s = gs_load_acquire(&c->cells[i].xstate);
        if (gs_cell_phase(s) == GS_CELL_FULL) {
            uint64_t msg = gs_xchg_acqrel(&c->cells[i].xmsg, 0);
            /* Taken out first (the exchange): a drain run twice drops it once. */
            gs_store_release(&c->cells[i].xstate, gs_cell(gs_cell_pos(s), 0, GS_CELL_EMPTY));
            if (msg & GS_MSG_REF) drop(arg, msg & ~GS_MSG_REF);
        }
    }
}
