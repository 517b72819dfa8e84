/* SPDX-License-Identifier: MIT */
/* ring.h: the data plane's per-client rings in shared memory.
 *
 * Overview: shm/overview.h. Each client slot holds one submission ring (client
 * -> daemon) and one completion ring (daemon -> client), single producer and
 * single consumer each, 64 entries of 64 bytes, every index on its own cache
 * line. Indices are free-running uint32_t; an entry's place is index % 64.
 *
 * Ownership, ordering and crash story of each field:
 *   xsq_tail  written by the client (seq_cst: a release after the entry,
 *             and the store half of the doorbell's Dekker pairing below);
 *             read by the daemon (acquire). The daemon never trusts it: tail - head > 64
 *             is a protocol violation, answered by resynchronising.
 *   xsq_head  written by the daemon (release, after it copied the entries
 *             out); read by the client to know free space. The daemon keeps
 *             its own copy and never reads this back.
 *   xcq_tail  written by the daemon (release, after the entry); read by the
 *             client (acquire). The daemon keeps its own copy.
 *   xcq_head  written by the client (release, after it read the entry); read
 *             by the daemon (acquire) to know free space; an impossible value
 *             is treated as "client consumed everything".
 *   xflags    GS_RING_NEED_WAKEUP, written by the daemon (seq_cst) before it
 *             sleeps; the client reads it (seq_cst) after publishing its tail
 *             (or later, when it starts waiting for a request it sent
 *             without ringing) and rings the doorbell (an eventfd) only when
 *             it is set. Dekker pairing: the daemon re-checks every tail
 *             after setting it. A request sent without ringing is served at
 *             the daemon's next pass or self wake-up (daemon/dataplane.c).
 *   xcq_seq   futex word: the daemon increments it (seq_cst) after
 *             publishing completions, then wakes the client if xwaiting.
 *   xwaiting  set by a client (seq_cst) before it sleeps on xcq_seq.
 * A client that dies mid-entry leaves an entry the daemon never sees (tail
 * not published) or a complete one (published): either way the daemon stays
 * consistent, and the connection's close reclaims the slot. The daemon's
 * writes are its own; if it dies, clients notice the control socket closing.
 */
#ifndef GOSHM_RING_H
#define GOSHM_RING_H

#include <errno.h>  /* EINVAL */
#include <stdint.h> /* uint*_t */
#include <string.h> /* memcpy, memset */

#include "atomic.h"

#define GS_RING_ENTRIES 64u
#define GS_RING_NEED_WAKEUP 1u
#define GS_RING_MAX_BATCH 8u  /* spans per REFILL, each way */

enum {
    GS_OP_NOP = 0,
    /* Hand back back[0..nback) (spans this slot caches), then get up to
     * `want` spans of `spanclass` with free slots (want 0: only hand back).
     * Result: spans got, in sids[]; or -errno. Batching is what makes a
     * round trip pay for itself: classes above 1 KiB hold 2 to 8 objects
     * per span. */
    GS_OP_REFILL = 1,
    GS_OP_RELEASE = 2,     /* sid: hand a cached span back */
    GS_OP_LARGE_ALLOC = 3, /* npages, want = log2(alignment in pages) -> sid */
    GS_OP_NOTICE = 4,      /* sid: a span gained frees (also: drain the stack) */
    GS_OP_MAX = 5,
};

/* The largest alignment of a large object: 2^13 pages of 8 KiB = one 64 MiB
 * arena (the data mapping is arena aligned in every process, so an aligned
 * offset is an aligned address). */
#define GS_LARGE_MAX_ALIGN_SHIFT 13u

typedef struct gs_sqe {
    uint8_t  op;
    uint8_t  want;       /* REFILL: spans wanted, 0..GS_RING_MAX_BATCH;
                          * LARGE_ALLOC: the span starts on a multiple of
                          * 2^want pages, 0..GS_LARGE_MAX_ALIGN_SHIFT */
    uint8_t  nback;      /* REFILL: spans handed back in back[] */
    uint8_t  pad0;
    uint32_t tag;        /* echoed in the completion */
    uint32_t spanclass;  /* REFILL */
    uint32_t sid;        /* RELEASE, NOTICE */
    uint64_t npages;     /* LARGE_ALLOC */
    uint32_t back[GS_RING_MAX_BATCH];
    uint8_t  pad1[8];
} gs_sqe_t;

typedef struct gs_cqe {
    uint32_t tag;
    int32_t  result;     /* REFILL: spans got; others 0; or -errno */
    uint32_t sid;        /* LARGE_ALLOC */
    uint32_t pad0;
    uint32_t sids[GS_RING_MAX_BATCH]; /* REFILL */
    uint8_t  pad1[16];
} gs_cqe_t;

_Static_assert(sizeof(gs_sqe_t) == 64 && sizeof(gs_cqe_t) == 64, "ring entries are one cache line");

typedef struct gs_ring {
    _Alignas(GS_CACHELINE) _Atomic uint32_t xsq_tail;
    _Alignas(GS_CACHELINE) _Atomic uint32_t xsq_head;
    _Alignas(GS_CACHELINE) _Atomic uint32_t xcq_tail;
    _Alignas(GS_CACHELINE) _Atomic uint32_t xcq_head;
    _Alignas(GS_CACHELINE) _Atomic uint32_t xflags;
    _Atomic uint32_t xcq_seq;
    _Atomic uint32_t xwaiting;
    _Alignas(GS_CACHELINE) gs_sqe_t sq[GS_RING_ENTRIES];
    gs_cqe_t cq[GS_RING_ENTRIES];
} gs_ring_t;

_Static_assert(sizeof(gs_ring_t) == 5 * GS_CACHELINE + 2 * GS_RING_ENTRIES * 64, "ring layout");

/* A client's REFILL entry (the one encoding: libgoshm's ring, client/ring.c,
 * and the in-process seam, tests/lib/inproc.c). 0, or -EINVAL when the
 * batch does not fit an entry. */
static inline int gs_sqe_refill(gs_sqe_t *e, uint32_t spanclass, const uint32_t *back, uint32_t nback, uint32_t want)
{
    if (nback > GS_RING_MAX_BATCH || want > GS_RING_MAX_BATCH) return -EINVAL;
    memset(e, 0, sizeof *e);
    e->op = GS_OP_REFILL;
    e->spanclass = spanclass;
    e->want = (uint8_t)want;
    e->nback = (uint8_t)nback;
    memcpy(e->back, back, nback * sizeof *back);
    return 0;
}

/* A client's LARGE_ALLOC entry. */
static inline void gs_sqe_large(gs_sqe_t *e, uint64_t npages, uint32_t align_shift)
{
    memset(e, 0, sizeof *e);
    e->op = GS_OP_LARGE_ALLOC;
    e->npages = npages;
    e->want = (uint8_t)align_shift;
}

#endif /* GOSHM_RING_H */
