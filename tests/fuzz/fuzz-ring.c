/* SPDX-License-Identifier: MIT */
/* fuzz-ring.c: the heap side against a hostile client's ring entries and
 * scribbles (libFuzzer target, with a replay/random main for ctest).
 *
 * Overview: shm/overview.h; rings: shm/ring.h; the daemon's dispatch:
 * the serve unit (daemon/serve.c: gs_serve_ring, gs_serve_slot_close),
 * called here as the data plane calls it. Each input runs on
 * a fresh heap (daemon/heap.h: 256 MiB, 4 slots) with two claimed slots, so a
 * failing input replays exactly.
 *
 * Input: a sequence of 64-byte gs_sqe_t entries (a partial last one is
 * zero-padded). The daemon ignores an entry's pad bytes; this fuzzer reads its
 * controls from them, and passes the entry on as it is after the
 * substitutions they ask for:
 *   pad0     bit 0  sid = seen[c0 % nseen]  (ids from earlier completions)
 *            bit 1  back[i] = seen[(back[i] & 0xff) % nseen]
 *            bit 2  scribble client-writable memory first (see scribble())
 *            bit 3  act as a well-behaved client first (see client_act())
 *            bit 4  drain the notice stack after the entry
 *            bit 5  background sweep after (budget c2; scavenge if c7 & 0x80)
 *            bit 6  normalise op, want, nback, spanclass, npages to near-valid
 *            bit 7  the client goes away after the entry: the data plane's
 *                   remove (abandon unread large objects) and
 *                   gs_heap_slot_reclaim, then a new client claims a slot
 *   pad1[8]  c0: index into seen; c1: bit 0 which slot, bits 1-4 scribble
 *            target; c2: word index / budget; c3..c6: a 32-bit value;
 *            c7: bits 0-2 value mode, bit 3 value = a seen id, bits 4-5
 *            client action, bit 6 client does not read its completion,
 *            bit 7 scavenge.
 * After every entry: gs_heap_check() == 0, the stats add up, and the extra
 * invariants of invariants() hold (lists and their links, TLSF bins, the
 * scavenge list, span records, side records not shared, base_off). Each
 * completion is checked against what the client relies on (serve_one). At
 * the end every client goes away, every object is freed, and the heap must be
 * one free run again with every side record back on a free list.
 *
 * Objects' contents and bitmaps may be damaged by a hostile client; the
 * heap side's own structures may not, and nothing may crash.
 *
 * Each client's ring is in its slot's own memfd (shm/segment.h), reached
 * through the heap side's mapping as the data plane does. The T_HEADER
 * scribble writes page 0 of the data memfd (once the layout header, now only
 * the notice head), punches pages of the data memfd (side records, notices,
 * page 0: they read as zero) or fallocates memory the heap never committed,
 * which the reconcile after a background sweep must give back.
 *
 * Options (main or libFuzzer): -no-header leaves page 0 and the memfd's
 * pages alone (triage: corpus/ring/crash-hdr-* date from when the heap side
 * read its layout back from the shared header).
 */
#define _GNU_SOURCE
#include <errno.h>    /* EINVAL */
#include <stdbool.h>  /* bool */
#include <stdint.h>   /* uint*_t */
#include <stdio.h>    /* fprintf */
#include <stdlib.h>   /* abort, qsort */
#include <string.h>   /* memcpy, memset */
#include <fcntl.h>    /* fallocate */
#include <sys/stat.h> /* fstat */

#include "heap_internal.h"
#include "serve.h"
#include "check.h"

#define FZ_HEAP_SIZE (UINT64_C(256) << 20)
#define FZ_MAX_SLOTS 4u
#define FZ_CLIENTS 2u
#define FZ_MAX_ENTRIES 256u /* per input */
#define FZ_SEEN 256u

enum {
    FZ_SUB_SID = 1u << 0,
    FZ_SUB_BACK = 1u << 1,
    FZ_SCRIBBLE = 1u << 2,
    FZ_CLIENT = 1u << 3,
    FZ_DRAIN = 1u << 4,
    FZ_BGSWEEP = 1u << 5,
    FZ_NORMALIZE = 1u << 6,
    FZ_RECLAIM = 1u << 7,
};

enum { /* scribble targets, (c1 >> 1) & 15 */
    T_ALLOC = 0, T_FREED, T_FREEINDEX, T_TINY, T_SLOT, T_SID, T_QUEUED, T_NEXT, T_HEAD, T_CQHEAD,
    T_HEADER, T_STATS, T_RAW, T_ALLOC2, T_FREED2, T_NEXT2,
};

#define FZ_MAX_SPANS ((FZ_HEAP_SIZE >> GS_PAGE_SHIFT) + 2u) /* heap.c: max_pages + 2 */

typedef struct fz_client {
    int slot;           /* heap slot index */
    uint32_t pid;
    uint32_t sq_tail;   /* the client's side of its ring */
    gs_serve_slot_t srv; /* the server's side, as the data plane keeps it */
    /* The spans this client believes it caches, from its completions: the
     * heap side must agree (it may not take one away, nor add one). */
    uint64_t cached[(FZ_MAX_SPANS + 63u) / 64u];
    uint32_t ncached;
} fz_client_t;

typedef struct fz {
    gs_heap_t *h;
    /* The layout as a client copies it at attach, from the meta header
     * (read-only for clients: nothing scribbled can change it). */
    struct { uint64_t side_off, side_size, notice_off, arena_off; } hdr0;
    fz_client_t cl[FZ_CLIENTS];
    uint32_t seen[FZ_SEEN];
    uint32_t nseen, seen_next;
    uint32_t next_pid;
    bool hostile; /* something was scribbled: clients are not all well-behaved */
    bool fallocated; /* a client fallocated: the next reconcile must undo it */
    bool failed;
} fz_t;

static bool fz_no_header; /* -no-header: skip header scribbles (triage) */

/* What the inputs reached, summed over a run (printed by main). */
static struct {
    unsigned long long ok[GS_OP_MAX + 1], err[GS_OP_MAX + 1], spans_got, notices, bad, large_frees, drained,
        detaches, abandoned, skipped, punched, fallocated, reconciled;
} fz_cov;

/* CHECK_MSG (tests/unit/check.h) that also marks the input failed; cond is
 * evaluated once. */
#define FZ_CHECK(f, cond, ...)                                                          \
    do {                                                                                \
        bool fz_ok_ = (cond);                                                           \
        CHECK_MSG(fz_ok_, __VA_ARGS__);                                                 \
        if (!fz_ok_) (f)->failed = true;                                                \
    } while (0)

static gs_ring_t *ring_of(fz_t *f, uint32_t slot)
{
    return &gs_heap_slot_ptr(f->h, slot)->ring; /* the slot's own memfd, as its client maps it */
}

/* ---- helpers ----------------------------------------------------------- */

static void seen_add(fz_t *f, uint32_t sid)
{
    f->seen[f->seen_next] = sid;
    f->seen_next = (f->seen_next + 1u) % FZ_SEEN;
    if (f->nseen < FZ_SEEN) f->nseen++;
}

static uint32_t seen_pick(const fz_t *f, uint32_t i, uint32_t dflt) { return f->nseen ? f->seen[i % f->nseen] : dflt; }

/* A span whose side record a client can find (through the read-only meta
 * mapping): in use, side record inside the side region. */
static gs_side_t *side_for(fz_t *f, uint32_t sid, gs_mspan_t **sp)
{
    gs_heap_t *h = f->h;
    if (sid == 0 || sid >= h->span_bump) return NULL;
    gs_mspan_t *s = gs_span(h, sid);
    if (s->state != GS_SPAN_SMALL && s->state != GS_SPAN_LARGE) return NULL;
    uint64_t bytes = sizeof(gs_side_t) + 8u * ((uint64_t)s->awords + s->fwords);
    if (s->side_off < f->hdr0.side_off || s->side_off + bytes > f->hdr0.side_off + f->hdr0.side_size) return NULL;
    if (sp) *sp = s;
    return gs_side_of(h, s);
}

static uint64_t data_backed(const gs_heap_t *h)
{
    struct stat st;
    return fstat(h->data_fd, &st) == 0 ? (uint64_t)st.st_blocks * 512u : 0;
}

static gs_notice_t *notice_for(fz_t *f, uint32_t sid) /* what a client computes from the header */
{
    return gs_notice_in(f->h->data, f->hdr0.notice_off, sid);
}

/* client/free.c gs_notice_push, against the header as created. */
static void client_push(fz_t *f, uint32_t sid)
{
    gs_notice_t *n = notice_for(f, sid);
    uint32_t zero = 0;
    if (!gs_cas_seqcst(&n->xqueued, &zero, 1u)) return;
    uint32_t head = gs_load_relaxed(&f->h->hdr->xnotice_head);
    do {
        gs_store_relaxed(&n->xnext, head);
    } while (!gs_cas_release(&f->h->hdr->xnotice_head, &head, sid));
}

static uint64_t value_of(const fz_t *f, const uint8_t *c, uint64_t old)
{
    uint32_t v32 = (uint32_t)c[3] | (uint32_t)c[4] << 8 | (uint32_t)c[5] << 16 | (uint32_t)c[6] << 24;
    if (c[7] & 8u) return seen_pick(f, v32, v32 & 0xffu);
    switch (c[7] & 7u) {
    case 0: return v32;
    case 1: return ~UINT64_C(0);
    case 2: return 0;
    case 3: return old ^ (UINT64_C(1) << (v32 & 63u));
    case 4: return old | (UINT64_C(1) << (v32 & 63u));
    case 5: return old & ~(UINT64_C(1) << (v32 & 63u));
    case 6: return (uint64_t)v32 << 32 | v32;
    default: return old + (uint64_t)(int64_t)(int32_t)v32;
    }
}

#define SCRIBBLE32(p) gs_store_relaxed((p), (uint32_t)value_of(f, c, gs_load_relaxed(p)))
#define SCRIBBLE64(p) gs_store_relaxed((p), value_of(f, c, gs_load_relaxed(p)))

/* A hostile client writes anywhere it can: side records (bitmaps, freeindex,
 * tiny word, sid, padding), the notice array and head, its ring's
 * completion head, its slot's words and counters, and the segment header. */
static void scribble(fz_t *f, fz_client_t *cl, uint32_t sid, const uint8_t *c)
{
    gs_heap_t *h = f->h;
    uint32_t target = (c[1] >> 1) & 15u;
    gs_mspan_t *s = NULL;
    f->hostile = true;
    gs_side_t *side = side_for(f, sid, &s);
    switch (target) {
    case T_ALLOC: case T_ALLOC2:
        if (side) SCRIBBLE64(&gs_side_alloc(side)[c[2] % s->awords]);
        break;
    case T_FREED: case T_FREED2:
        if (side) SCRIBBLE64(&gs_side_freed(side, s->awords)[c[2] % s->fwords]);
        break;
    case T_FREEINDEX: if (side) SCRIBBLE32(&side->xfreeindex); break;
    case T_TINY: if (side) SCRIBBLE64(&side->xtiny); break;
    case T_SLOT: { /* the slot words the heap side writes (and reads back at claim) */
        gs_slot_t *sl = gs_heap_slot_ptr(h, (uint32_t)cl->slot);
        if (c[2] & 1u) sl->generation = (uint32_t)value_of(f, c, sl->generation);
        else sl->pid = (uint32_t)value_of(f, c, sl->pid);
        break;
    }
    case T_SID: if (side) SCRIBBLE32(&side->xsid); break;
    case T_QUEUED: if (sid < (uint64_t)h->notice_chunks * GS_SPAN_CHUNK) SCRIBBLE32(&notice_for(f, sid)->xqueued); break;
    case T_NEXT: case T_NEXT2: if (sid < (uint64_t)h->notice_chunks * GS_SPAN_CHUNK) SCRIBBLE32(&notice_for(f, sid)->xnext); break;
    case T_HEAD: SCRIBBLE32(&h->hdr->xnotice_head); break;
    case T_CQHEAD: SCRIBBLE32(&ring_of(f, (uint32_t)cl->slot)->xcq_head); break;
    case T_STATS: {
        gs_slot_t *sl = gs_heap_slot_ptr(h, (uint32_t)cl->slot);
        SCRIBBLE64(&sl->stats[c[2] % GS_NUM_SIZE_CLASSES].xallocs);
        SCRIBBLE64(&sl->xlarge_frees);
        break;
    }
    case T_RAW: /* any aligned word of the record, padding included */
        if (side) {
            _Atomic uint64_t *w = (_Atomic uint64_t *)side + c[2] % (sizeof(gs_side_t) / 8u + s->awords + s->fwords);
            SCRIBBLE64(w);
        }
        break;
    case T_HEADER: { /* the data memfd's page 0, and punched or fallocated pages */
        if (fz_no_header) break;
        if (c[2] & 0x80u) {
            /* A client punches a page of the data memfd (issue 7, point 3):
             * a side record's, a notice page, or page 0. It reads as zero. */
            uint64_t off = c[2] & 0x40u ? (side ? s->side_off : 0)
                                        : f->hdr0.notice_off + (uint64_t)sid * sizeof(gs_notice_t);
            off &= ~UINT64_C(4095);
            if (off < f->hdr0.arena_off &&
                fallocate(h->data_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, 4096) == 0)
                fz_cov.punched++;
        } else if (c[2] & 0x40u) {
            /* ... or fallocates memory the heap never committed: from a
             * random page to the end of the memfd, at most 1 MiB. The
             * housekeeping tick's reconcile must give it back. */
            uint64_t off = ((uint64_t)(uint32_t)value_of(f, c, 0) << 12) % h->data_size;
            uint64_t len = h->data_size - off < (UINT64_C(1) << 20) ? h->data_size - off : UINT64_C(1) << 20;
            if (fallocate(h->data_fd, 0, (off_t)off, (off_t)len) == 0) fz_cov.fallocated++;
            f->fallocated = true;
        } else {
            /* Any word of page 0, where the layout used to be: now only the
             * notice head, which the heap side reads as untrusted. */
            _Atomic uint64_t *w = (_Atomic uint64_t *)h->data + c[2] % 512u;
            SCRIBBLE64(w);
        }
        break;
    }
    }
}

/* What a well-behaved client does between its requests: allocate from a span
 * it caches (publishing freeindex, or a tiny block), sweep a span it caches,
 * free objects of any span (the freed bit or live half, then a notice when no
 * mcache owns it), or push a notice. Reads only what a client can read. */
static void client_act(fz_t *f, fz_client_t *cl, uint32_t sid, const uint8_t *c)
{
    gs_mspan_t *s;
    gs_side_t *side = side_for(f, sid, &s);
    if (!side) return;
    bool tiny = gs_spanclass_tiny(s->spanclass);
    _Atomic uint64_t *alloc = gs_side_alloc(side), *freed = gs_side_freed(side, s->awords);
    uint32_t n = s->nelems, start = ((uint32_t)c[2] | (uint32_t)c[3] << 8) % n;
    uint32_t count = 1u + (c[4] & 15u), stride = (uint32_t)c[5] | 1u;
    switch ((c[7] >> 4) & 3u) {
    case 0: /* free objects: goshm_free */
    case 2: /* free every object: count = all */
        if ((c[7] >> 4 & 3u) == 2) { count = tiny ? 2u * n : n; start = 0; stride = 1; }
        for (uint32_t k = 0; k < count; k++) {
            if (tiny) {
                uint32_t half = (start * 2u + k * stride) % (2u * n);
                uint64_t bit = UINT64_C(1) << (half % 64u);
                uint64_t old = gs_fetch_and_seqcst(&freed[half / 64u], ~bit);
                if (!(old & bit)) continue;
                uint64_t partner = UINT64_C(1) << ((half ^ 1u) % 64u);
                if (!(old & partner) && gs_mspan_owner(s) == 0) client_push(f, sid);
                continue;
            }
            uint32_t idx = (start + k * stride) % n, w = idx / 64u;
            uint64_t bit = UINT64_C(1) << (idx % 64u);
            if (!(gs_load_relaxed(&alloc[w]) & bit) && idx >= gs_load_acquire(&side->xfreeindex)) continue;
            if (gs_fetch_or_seqcst(&freed[w], bit) & bit) continue;
            if (gs_mspan_owner(s) == 0) client_push(f, sid);
        }
        break;
    case 1: { /* allocate from a span this client caches */
        if (gs_mspan_owner(s) != (uint32_t)cl->slot + 1u || s->state != GS_SPAN_SMALL) break;
        uint32_t fi = gs_load_relaxed(&side->xfreeindex);
        if (fi > n) fi = n;
        for (uint32_t k = 0; k < count && fi < n; fi++) {
            if (gs_load_relaxed(&alloc[fi / 64u]) & (UINT64_C(1) << (fi % 64u))) continue;
            k++;
            if (tiny) { /* client/tiny.c: name the block, both halves live, halves handed out */
                uint64_t bit = 2u * (uint64_t)fi;
                gs_store_relaxed(&side->xtiny, ((uint64_t)fi + 1u) << 32);
                gs_fetch_or_acqrel(&freed[bit / 64u], UINT64_C(3) << (bit % 64u));
                gs_store_relaxed(&side->xtiny, ((uint64_t)fi + 1u) << 32 | (c[6] & 3u));
            }
        }
        gs_store_relaxed(&side->xfreeindex, fi);
        break;
    }
    case 3:
        if ((c[6] & 4u) && gs_mspan_owner(s) == (uint32_t)cl->slot + 1u && s->state == GS_SPAN_SMALL) {
            /* client/mcache.c sweep_local: the owner merges its span's frees */
            gs_span_sweep(side, n, s->awords, tiny, gs_load_relaxed(&side->xfreeindex), NULL);
        } else {
            client_push(f, sid);
        }
        break;
    }
}

static void normalize(gs_sqe_t *e)
{
    e->op %= GS_OP_MAX + 1u; /* GS_OP_MAX itself: an unknown op */
    e->want %= GS_RING_MAX_BATCH + 2u;
    e->nback %= GS_RING_MAX_BATCH + 2u;
    e->spanclass %= GS_NUM_SPAN_CLASSES + 1u;
    if ((e->npages >> 8) & 15u) e->npages = (e->npages & 0xffu) + 1u;
    else e->npages %= (FZ_HEAP_SIZE >> GS_PAGE_SHIFT) + 2u;
}

/* ---- checks ---------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void tlsf_mapping(uint64_t n, uint32_t *fl, uint32_t *sl) /* daemon/mheap.c mapping() */
{
    if (n < GS_TLSF_SL) {
        *fl = 0;
        *sl = (uint32_t)n;
    } else {
        uint32_t fb = 63u - (uint32_t)__builtin_clzll(n);
        *fl = fb - GS_TLSF_SL_LOG + 1u;
        *sl = (uint32_t)(n >> (fb - GS_TLSF_SL_LOG)) - GS_TLSF_SL;
    }
}

/* A private list (next/prev through span records) of `count` spans. */
static bool list_ok(gs_heap_t *h, const gs_spanlist_t *l, uint32_t list, uint32_t owner, uint32_t sc)
{
    uint32_t n = 0, prev = 0;
    for (uint32_t sid = l->head; sid; sid = gs_span(h, sid)->next, n++) {
        if (sid >= h->span_bump || n > l->count) return false;
        gs_mspan_t *s = gs_span(h, sid);
        if (s->state != GS_SPAN_SMALL || s->list != list || s->prev != prev || s->owner != owner) return false;
        if (sc != UINT32_MAX && s->spanclass != sc) return false;
        prev = sid;
    }
    return n == l->count;
}

/* Invariants beyond gs_heap_check: what it does not walk. */
static void invariants(fz_t *f)
{
    gs_heap_t *h = f->h;
    FZ_CHECK(f, gs_heap_check(h) == 0, "gs_heap_check failed");
    if (f->failed) return;

    gs_heap_stats_t st;
    gs_heap_stats(h, &st);
    FZ_CHECK(f, st.span_bytes + st.idle_bytes + st.released_bytes == st.grown_bytes,
             "stats: span %llu + idle %llu + released %llu != grown %llu", (unsigned long long)st.span_bytes,
             (unsigned long long)st.idle_bytes, (unsigned long long)st.released_bytes,
             (unsigned long long)st.grown_bytes);
    FZ_CHECK(f, st.committed_bytes == st.span_bytes + st.idle_bytes, "stats: committed %llu != span + idle",
             (unsigned long long)st.committed_bytes);

    /* Cached lists: every CACHED span is on its owner's list, nowhere else. */
    uint32_t per_slot[FZ_MAX_SLOTS] = {0};
    uint64_t live = 0, frees = 0, free_ready = 0;
    static uint64_t offs[65536]; /* side records: offset << 16 | size */
    uint32_t noffs = 0;
    for (uint32_t sid = 1; sid < h->span_bump; sid++) {
        gs_mspan_t *s = gs_span(h, sid);
        if (s->state != GS_SPAN_DEAD) live++;
        if (s->state == GS_SPAN_FREE) {
            frees++;
            free_ready += s->ready_pages != 0;
            continue;
        }
        if (s->state != GS_SPAN_SMALL && s->state != GS_SPAN_LARGE) continue;
        FZ_CHECK(f, s->side_off >= f->hdr0.side_off && s->side_off < f->hdr0.side_off + f->hdr0.side_size,
                 "span %u: side record at %llu outside the side region", sid, (unsigned long long)s->side_off);
        uint64_t bytes = sizeof(gs_side_t) + 8u * ((uint64_t)s->awords + s->fwords);
        FZ_CHECK(f, bytes <= GS_SIDE_RECORD && s->side_off == gs_side_off_of(&h->lay, sid),
                 "span %u: side record at %llu (%llu bytes) is not its id's", sid, (unsigned long long)s->side_off,
                 (unsigned long long)bytes);
        if (noffs < sizeof offs / sizeof offs[0]) offs[noffs++] = s->side_off << 16 | bytes;
        /* Clients find objects from base_off: it must be the span's pages. */
        FZ_CHECK(f, s->base_off == f->hdr0.arena_off + ((uint64_t)s->start << GS_PAGE_SHIFT),
                 "span %u: base_off %llu is not page %u of the arenas", sid, (unsigned long long)s->base_off,
                 s->start);
        if (s->state == GS_SPAN_LARGE) {
            FZ_CHECK(f, s->nelems == 1 && s->npages64 == s->npages, "large span %u malformed", sid);
            /* In flight (its completion not read yet) to an attached slot,
             * owned by it; landed: nobody's. */
            FZ_CHECK(f, gs_mspan_owner(s) == s->owner && (s->list == GS_LIST_INFLIGHT) == (s->owner != 0) &&
                            (s->owner == 0 || (s->owner <= FZ_MAX_SLOTS && h->slots[s->owner - 1u].in_use)),
                     "large span %u: list %u, owner %u, xowner %u", sid, s->list, s->owner, gs_mspan_owner(s));
            continue;
        }
        FZ_CHECK(f, gs_mspan_owner(s) == s->owner, "span %u: xowner %u, owner %u", sid, gs_mspan_owner(s), s->owner);
        if (s->list == GS_LIST_CACHED) {
            FZ_CHECK(f, s->owner >= 1 && s->owner <= FZ_MAX_SLOTS && h->slots[s->owner - 1u].in_use,
                     "span %u cached by slot %u, not in use", sid, s->owner);
            if (s->owner >= 1 && s->owner <= FZ_MAX_SLOTS) per_slot[s->owner - 1u]++;
        } else {
            FZ_CHECK(f, s->owner == 0, "uncached span %u has owner %u", sid, s->owner);
        }
    }
    for (uint32_t i = 0; i < FZ_MAX_SLOTS; i++) {
        const gs_slot_state_t *ss = &h->slots[i];
        FZ_CHECK(f, ss->in_use || ss->cached.count == 0, "free slot %u caches %u spans", i, ss->cached.count);
        FZ_CHECK(f, per_slot[i] == ss->cached.count && list_ok(h, &ss->cached, GS_LIST_CACHED, i + 1u, UINT32_MAX),
                 "slot %u: cached list broken (%u spans say cached, count %u)", i, per_slot[i], ss->cached.count);
    }
    for (uint32_t sc = 0; sc < GS_NUM_SPAN_CLASSES; sc++) {
        FZ_CHECK(f, list_ok(h, &h->central[sc].partial, GS_LIST_PARTIAL, 0, sc), "mcentral %u partial: links", sc);
        FZ_CHECK(f, list_ok(h, &h->central[sc].full, GS_LIST_FULL, 0, sc), "mcentral %u full: links", sc);
    }

    /* Span records: live ones counted, the free list all dead. */
    FZ_CHECK(f, live == h->spans_live, "span records: %llu live, spans_live %llu", (unsigned long long)live,
             (unsigned long long)h->spans_live);
    uint32_t nfree = 0;
    for (uint32_t c = 0; c < h->chunks_committed; c++) {
        uint32_t n = 0;
        for (uint32_t sid = h->chunks[c].free; sid && n <= GS_SPAN_CHUNK; sid = gs_span(h, sid)->next, n++) {
            if (sid >= h->span_bump || sid / GS_SPAN_CHUNK != c || gs_span(h, sid)->state != GS_SPAN_DEAD) {
                FZ_CHECK(f, false, "span record free list of chunk %u: id %u not dead", c, sid);
                break;
            }
        }
        FZ_CHECK(f, h->chunks[c].live + n == h->chunks[c].bump - (c == 0u ? 1u : 0u), "chunk %u: %u live + %u free != %u", c,
                 h->chunks[c].live, n, h->chunks[c].bump);
        nfree += n;
    }
    uint64_t below = 0;
    for (uint32_t c = 0; c < h->chunks_committed; c++) below += h->chunks[c].bump - (c == 0u ? 1u : 0u);
    FZ_CHECK(f, nfree + live == below, "span records: %u free + %llu live != %llu", nfree,
             (unsigned long long)live, (unsigned long long)below);
    FZ_CHECK(f, h->chunks_committed == 0 || h->span_bump == (h->chunks_committed - 1u) * GS_SPAN_CHUNK +
                                                               h->chunks[h->chunks_committed - 1u].bump,
             "span_bump %u is not the top chunk's bump", h->span_bump);

    /* TLSF bins: exactly the free runs, each in the bin its size says. */
    uint64_t inbins = 0, warm = 0;
    for (uint32_t w = 0; w < 2; w++)
        for (uint32_t fl = 0; fl < GS_TLSF_FL; fl++) {
            bool flbit = (h->fl_bitmap[w] >> fl) & 1u;
            FZ_CHECK(f, flbit == (h->sl_bitmap[w][fl] != 0), "bins[%u]: fl bitmap bit %u", w, fl);
            for (uint32_t sl = 0; sl < GS_TLSF_SL; sl++) {
                uint32_t head = h->bins[w][fl][sl].head;
                FZ_CHECK(f, (head != 0) == ((h->sl_bitmap[w][fl] >> sl) & 1u), "bins[%u][%u][%u]: bitmap", w, fl, sl);
                uint32_t prev = 0, n = 0;
                for (uint32_t sid = head; sid; sid = gs_span(h, sid)->next, n++) {
                    gs_mspan_t *s = sid < h->span_bump ? gs_span(h, sid) : NULL;
                    uint32_t efl = 0, esl = 0;
                    if (s) tlsf_mapping(s->npages, &efl, &esl);
                    if (!s || n > h->span_bump || s->state != GS_SPAN_FREE || s->list != GS_LIST_BIN ||
                        s->prev != prev || (s->ready_pages != 0) != w || efl != fl || esl != sl) {
                        FZ_CHECK(f, false, "bins[%u][%u][%u]: bad entry %u", w, fl, sl, sid);
                        return;
                    }
                    prev = sid;
                    inbins++;
                    warm += w;
                }
            }
        }
    FZ_CHECK(f, inbins == frees && warm == free_ready, "bins hold %llu runs (%llu warm), %llu free runs (%llu warm)",
             (unsigned long long)inbins, (unsigned long long)warm, (unsigned long long)frees,
             (unsigned long long)free_ready);
    /* Scavenge list: the free runs with ready pages. */
    uint32_t nscav = 0, prev = 0;
    for (uint32_t sid = h->scav.head; sid; sid = gs_span(h, sid)->scav_next, nscav++) {
        gs_mspan_t *s = sid < h->span_bump ? gs_span(h, sid) : NULL;
        if (!s || nscav > h->span_bump || s->state != GS_SPAN_FREE || !s->ready_pages || s->scav_prev != prev) {
            FZ_CHECK(f, false, "scavenge list: bad entry %u", sid);
            return;
        }
        prev = sid;
    }
    FZ_CHECK(f, nscav == free_ready && h->scav.tail == prev, "scavenge list: %u runs, %llu with ready pages", nscav,
             (unsigned long long)free_ready);

    /* Side records: each in-use span has its own. */
    qsort(offs, noffs, sizeof offs[0], cmp_u64);
    for (uint32_t i = 1; i < noffs; i++)
        FZ_CHECK(f, (offs[i - 1] >> 16) + (offs[i - 1] & 0xffffu) <= offs[i] >> 16,
                 "side records at %llu (%llu bytes) and %llu overlap (in use or free)",
                 (unsigned long long)(offs[i - 1] >> 16), (unsigned long long)(offs[i - 1] & 0xffffu),
                 (unsigned long long)(offs[i] >> 16));
}

static bool cached_has(const fz_client_t *cl, uint32_t sid)
{
    return sid < FZ_MAX_SPANS && (cl->cached[sid / 64u] >> (sid % 64u) & 1u);
}

static void cached_set(fz_client_t *cl, uint32_t sid, bool on)
{
    if (sid >= FZ_MAX_SPANS || cached_has(cl, sid) == on) return;
    cl->cached[sid / 64u] ^= UINT64_C(1) << (sid % 64u);
    cl->ncached += on ? 1u : (uint32_t)-1;
}

/* The clients' view of what they cache against the heap side's. */
static void check_cached(fz_t *f)
{
    gs_heap_t *h = f->h;
    for (uint32_t i = 0; i < FZ_CLIENTS; i++) {
        fz_client_t *cl = &f->cl[i];
        if (cl->slot < 0) continue;
        FZ_CHECK(f, cl->ncached == h->slots[cl->slot].cached.count,
                 "slot %d: the client caches %u spans, the heap side says %u", cl->slot, cl->ncached,
                 h->slots[cl->slot].cached.count);
        for (uint32_t w = 0; w < (FZ_MAX_SPANS + 63u) / 64u; w++)
            for (uint64_t m = cl->cached[w]; m; m &= m - 1u) {
                uint32_t sid = w * 64u + (uint32_t)__builtin_ctzll(m);
                gs_mspan_t *s = sid < h->span_bump ? gs_span(h, sid) : NULL;
                FZ_CHECK(f, s && s->state == GS_SPAN_SMALL && s->list == GS_LIST_CACHED &&
                                s->owner == (uint32_t)cl->slot + 1u,
                         "slot %d caches span %u, but the heap side took it (state %u list %u owner %u)", cl->slot,
                         sid, s ? s->state : 0, s ? s->list : 0, s ? s->owner : 0);
            }
    }
}

/* After a drain, with well-behaved clients only: the stack is empty and no
 * notice flag is left set (one left set would stop that span's notices). */
static void check_drained(fz_t *f)
{
    gs_heap_t *h = f->h;
    FZ_CHECK(f, gs_load_relaxed(&h->hdr->xnotice_head) == 0, "notice stack not empty after a drain");
    for (uint32_t sid = 1; sid < (uint64_t)h->notice_chunks * GS_SPAN_CHUNK && sid < h->max_spans; sid++)
        FZ_CHECK(f, gs_load_relaxed(&notice_for(f, sid)->xqueued) == 0,
                 "span %u (state %u): notice flag still set after a drain", sid,
                 sid < h->span_bump ? gs_span(h, sid)->state : 0);
}

/* ---- the data plane's parts ------------------------------------------------ */

/* One entry through the ring, as a client submits it and the data plane
 * serves it (gs_serve_ring); then what the client relies on. A client waits
 * while its completion ring is full: then the entry is taken back. */
static void serve_one(fz_t *f, fz_client_t *cl, const gs_sqe_t *e, bool client_reads)
{
    gs_heap_t *h = f->h;
    gs_ring_t *r = ring_of(f, (uint32_t)cl->slot);
    uint32_t cq_tail = cl->srv.cq_tail;
    memcpy(&r->sq[cl->sq_tail % GS_RING_ENTRIES], e, sizeof *e);
    gs_store_release(&r->xsq_tail, cl->sq_tail + 1u);
    /* No drain here: the data plane drains once per pass, before it serves;
     * what client_act pushed stands for notices that arrived since. The
     * entry's FZ_DRAIN bit and background sweeps drain. */
    uint64_t bad0 = h->bad_requests;
    gs_serve_ring(h, (uint32_t)cl->slot, &cl->srv, NULL);
    if (cl->srv.cq_tail == cq_tail) { /* the client is not reading its completions */
        gs_store_release(&r->xsq_tail, cl->sq_tail);
        fz_cov.skipped++;
        return;
    }
    FZ_CHECK(f, cl->srv.cq_tail == cq_tail + 1u && cl->srv.sq_head == cl->sq_tail + 1u,
             "one entry, %u completions", cl->srv.cq_tail - cq_tail);
    cl->sq_tail++;
    gs_cqe_t c;
    memcpy(&c, &r->cq[cq_tail % GS_RING_ENTRIES], sizeof c);
    FZ_CHECK(f, c.tag == e->tag && gs_load_acquire(&r->xcq_tail) == cl->srv.cq_tail, "completion not published");
    unsigned op = e->op < GS_OP_MAX ? e->op : GS_OP_MAX;
    if (c.result >= 0) fz_cov.ok[op]++;
    else fz_cov.err[op]++;
    if (e->op == GS_OP_REFILL && c.result > 0) fz_cov.spans_got += (unsigned)c.result;

    /* What the client relies on. */
    if (e->op == GS_OP_REFILL) {
        if (e->want > GS_RING_MAX_BATCH || e->nback > GS_RING_MAX_BATCH) {
            FZ_CHECK(f, c.result == -EINVAL, "REFILL want %u nback %u: result %d", e->want, e->nback, c.result);
        } else {
            for (uint32_t i = 0; i < e->nback; i++) cached_set(cl, e->back[i], false); /* handed back */
            FZ_CHECK(f, c.result <= (int32_t)e->want && (e->want == 0 || c.result != 0),
                     "REFILL want %u: result %d", e->want, c.result);
            for (int32_t i = 0; i < c.result && i <= (int32_t)GS_RING_MAX_BATCH - 1; i++) {
                uint32_t sid = c.sids[i];
                gs_mspan_t *s = sid && sid < h->span_bump ? gs_span(h, sid) : NULL;
                bool ok = s && s->state == GS_SPAN_SMALL && s->list == GS_LIST_CACHED &&
                          s->owner == (uint32_t)cl->slot + 1u && s->spanclass == e->spanclass;
                for (int32_t j = 0; j < i; j++) ok = ok && c.sids[j] != sid;
                FZ_CHECK(f, ok, "REFILL handed out span %u that is not a fresh cached span of class %u", sid,
                         e->spanclass);
                if (!ok) continue;
                gs_side_t *side = gs_side_of(h, s);
                uint32_t fi = gs_load_relaxed(&side->xfreeindex);
                FZ_CHECK(f, gs_span_count_live(side, s->nelems, s->awords, gs_spanclass_tiny(s->spanclass), fi) <
                                s->nelems,
                         "REFILL handed out span %u without a free slot", sid);
                FZ_CHECK(f, gs_mspan_owner(s) == (uint32_t)cl->slot + 1u, "span %u: xowner not set", sid);
                FZ_CHECK(f, !cached_has(cl, sid), "REFILL handed out span %u, which the client caches already", sid);
                cached_set(cl, sid, true);
                seen_add(f, sid);
            }
        }
    } else if (e->op == GS_OP_LARGE_ALLOC) {
        if (c.result == 0) {
            gs_mspan_t *s = c.sid && c.sid < h->span_bump ? gs_span(h, c.sid) : NULL;
            FZ_CHECK(f, s && s->state == GS_SPAN_LARGE && s->npages64 == e->npages, "LARGE_ALLOC %llu pages: span %u",
                     (unsigned long long)e->npages, c.sid);
            FZ_CHECK(f, e->want <= GS_LARGE_MAX_ALIGN_SHIFT && s && s->start % (1u << e->want) == 0,
                     "LARGE_ALLOC aligned to 2^%u pages: span %u starts at page %u", e->want, c.sid, s ? s->start : 0);
            if (s) seen_add(f, c.sid);
        } else {
            FZ_CHECK(f, c.result < 0 && c.sid == 0, "LARGE_ALLOC: result %d sid %u", c.result, c.sid);
        }
    } else if (e->op == GS_OP_RELEASE) {
        FZ_CHECK(f, (c.result == 0) == cached_has(cl, e->sid), "RELEASE of span %u (%s cached here): result %d",
                 e->sid, cached_has(cl, e->sid) ? "" : "not", c.result);
        if (c.result == 0) cached_set(cl, e->sid, false);
    } else if (e->op >= GS_OP_MAX) {
        FZ_CHECK(f, c.result == -EINVAL && h->bad_requests == bad0, "unknown op %u: result %d", e->op, c.result);
    } else {
        FZ_CHECK(f, c.result <= 0, "op %u: result %d", e->op, c.result);
    }
    if (client_reads) gs_store_release(&r->xcq_head, cl->srv.cq_tail);
}

static void client_attach(fz_t *f, fz_client_t *cl)
{
    cl->pid = f->next_pid++;
    cl->slot = gs_heap_slot_claim(f->h, cl->pid);
    cl->sq_tail = 0;
    if (cl->slot >= 0) gs_serve_slot_open(f->h, (uint32_t)cl->slot, &cl->srv);
    memset(cl->cached, 0, sizeof cl->cached);
    cl->ncached = 0;
}

/* ctl.c conn_detach: the data plane's remove (gs_serve_slot_close: abandon
 * unread large objects), then gs_heap_slot_reclaim. */
static void client_detach(fz_t *f, fz_client_t *cl)
{
    if (cl->slot < 0) return;
    uint64_t frees0 = f->h->large_frees;
    gs_serve_slot_close(f->h, (uint32_t)cl->slot, &cl->srv);
    fz_cov.abandoned += f->h->large_frees - frees0;
    fz_cov.detaches++;
    FZ_CHECK(f, gs_heap_slot_reclaim(f->h, (uint32_t)cl->slot) == 0, "reclaim of slot %d failed", cl->slot);
    FZ_CHECK(f, f->h->slots[cl->slot].cached.count == 0, "slot %d still caches spans", cl->slot);
    memset(cl->cached, 0, sizeof cl->cached);
    cl->ncached = 0;
    cl->slot = -1;
}

/* Every client gone, every object freed: the heap must be whole again. */
static void free_everything(fz_t *f)
{
    gs_heap_t *h = f->h;
    for (uint32_t i = 0; i < FZ_CLIENTS; i++) client_detach(f, &f->cl[i]);
    if (f->failed) return;
    if (!f->hostile) {
        /* Well-behaved clients free every object (goshm_free: freed bits and
         * notices); the notice stack alone must bring every span back. */
        fz_client_t freer = {.slot = 0};
        const uint8_t all[8] = {0, 0, 0, 0, 0, 0, 0, 2u << 4};
        for (uint32_t sid = 1; sid < h->span_bump; sid++) client_act(f, &freer, sid, all);
        gs_heap_drain_notices(h);
        check_drained(f);
    } else {
        /* Damaged bitmaps: clear them and notice every span. */
        for (uint32_t sid = 1; sid < h->span_bump; sid++) {
            gs_mspan_t *s;
            gs_side_t *side = side_for(f, sid, &s);
            if (!side) continue;
            for (uint32_t w = 0; w < (uint32_t)s->awords + s->fwords; w++) gs_store_relaxed(&side->bits[w], 0);
            gs_store_relaxed(&side->xfreeindex, 0);
            gs_store_relaxed(&side->xtiny, 0);
            gs_heap_notice(h, sid);
        }
    }
    invariants(f);
    if (f->failed) return;
    for (uint32_t sid = 1; sid < h->span_bump; sid++) {
        uint8_t state = gs_span(h, sid)->state;
        FZ_CHECK(f, state == GS_SPAN_DEAD || state == GS_SPAN_FREE, "span %u (state %u, list %u) never came back",
                 sid, state, gs_span(h, sid)->list);
    }
    FZ_CHECK(f, h->free_pages == h->heap_pages, "all freed: %llu of %llu pages free",
             (unsigned long long)h->free_pages, (unsigned long long)h->heap_pages);
    FZ_CHECK(f, h->heap_pages == 0 || h->spans_live == 1, "all freed: %llu span records, not one free run",
             (unsigned long long)h->spans_live);
    gs_heap_scavenge(h, 0);
    FZ_CHECK(f, h->chunks_committed <= 1, "all freed: %u chunks of span records still committed after a scavenge",
             h->chunks_committed);
    for (uint32_t sc = 0; sc < GS_NUM_SPAN_CLASSES; sc++)
        FZ_CHECK(f, !h->central[sc].partial.count && !h->central[sc].full.count, "all freed: mcentral %u not empty",
                 sc);
}

/* ---- one input ------------------------------------------------------------- */

static void one_entry(fz_t *f, gs_sqe_t e)
{
    uint8_t c0 = e.pad0;
    uint8_t c[8];
    memcpy(c, e.pad1, sizeof c);
    fz_client_t *cl = &f->cl[c[1] & 1u];
    if (cl->slot < 0) return;
    if (c0 & FZ_NORMALIZE) normalize(&e);
    if ((c0 & FZ_SUB_SID) && f->nseen) e.sid = seen_pick(f, c[0], 0);
    if ((c0 & FZ_SUB_BACK) && f->nseen)
        for (uint32_t i = 0; i < GS_RING_MAX_BATCH; i++) e.back[i] = seen_pick(f, e.back[i] & 0xffu, 0);
    uint32_t target = seen_pick(f, c[0], e.sid);
    if (c0 & FZ_SCRIBBLE) scribble(f, cl, target, c);
    if (c0 & FZ_CLIENT) client_act(f, cl, target, c);
    serve_one(f, cl, &e, !(c[7] & 0x40u));
    if (c0 & FZ_DRAIN) {
        fz_cov.drained += gs_heap_drain_notices(f->h);
        if (!f->hostile) check_drained(f);
    }
    if (c0 & FZ_BGSWEEP) {
        gs_heap_bgsweep(f->h, c[2], NULL);
        if (c[7] & 0x80u) gs_heap_scavenge(f->h, 0);
        /* The tick's reconcile: afterwards the data memfd holds no more than
         * the heap side committed. */
        if (gs_heap_reconcile(f->h)) fz_cov.reconciled++;
        if (f->fallocated) {
            uint64_t want = gs_heap_expected_data_bytes(f->h), held = data_backed(f->h);
            FZ_CHECK(f, held <= want, "after reconcile the data memfd holds %llu bytes, the heap committed %llu",
                     (unsigned long long)held, (unsigned long long)want);
            f->fallocated = false;
        }
    }
    if (c0 & FZ_RECLAIM) {
        client_detach(f, cl);
        client_attach(f, cl);
    }
}

static int run_input(const uint8_t *data, size_t size)
{
    static fz_t fz;
    fz_t *f = &fz;
    memset(f, 0, sizeof *f);
    gs_heap_config_t cfg = {.size = FZ_HEAP_SIZE, .max_slots = FZ_MAX_SLOTS, .scavenge_delay_ns = 0};
    char err[256];
    f->h = gs_heap_create(&cfg, err, sizeof err);
    if (!f->h) {
        fprintf(stderr, "fuzz-ring: gs_heap_create: %s\n", err);
        abort();
    }
    f->hdr0.side_off = f->h->mhdr->side_off;
    f->hdr0.side_size = f->h->mhdr->side_size;
    f->hdr0.notice_off = f->h->mhdr->notice_off;
    f->hdr0.arena_off = f->h->mhdr->arena_off;
    f->next_pid = 1000;
    for (uint32_t i = 0; i < FZ_CLIENTS; i++) client_attach(f, &f->cl[i]);
    size_t n = (size + sizeof(gs_sqe_t) - 1u) / sizeof(gs_sqe_t);
    if (n > FZ_MAX_ENTRIES) n = FZ_MAX_ENTRIES;
    for (size_t i = 0; i < n && !f->failed; i++) {
        gs_sqe_t e;
        memset(&e, 0, sizeof e);
        size_t len = size - i * sizeof e < sizeof e ? size - i * sizeof e : sizeof e;
        memcpy(&e, data + i * sizeof e, len);
        one_entry(f, e);
        if (!f->failed) invariants(f);
        if (!f->failed) check_cached(f);
        if (f->failed) fprintf(stderr, "fuzz-ring: entry %zu (op %u) broke the heap side\n", i, e.op);
    }
    fz_cov.notices += f->h->notices;
    fz_cov.bad += f->h->bad_requests;
    fz_cov.large_frees += f->h->large_frees;
    if (!f->failed) free_everything(f);
    gs_heap_destroy(f->h);
    return f->failed ? -1 : 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    for (int i = 1; i < *argc; i++)
        if (!strcmp((*argv)[i], "-no-header")) fz_no_header = true;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (run_input(data, size) != 0) abort(); /* libFuzzer saves the input */
    return 0;
}

#ifndef GOSHM_LIBFUZZER
/* ---- replay and random inputs for ctest ----------------------------------- */

#include "fuzz-main.h"

/* Structured random inputs: mostly well-formed entries (so spans get
 * allocated, cached, freed and noticed), some hostile bytes. */
static size_t gen_input(unsigned long long *rs, uint8_t *buf, size_t cap)
{
    uint32_t n = 1u + (uint32_t)(test_rand(rs) % 48u);
    bool hostile = test_rand(rs) % 10u < 6; /* else: no scribbles, well-behaved clients only */
    if (n * sizeof(gs_sqe_t) > cap) n = (uint32_t)(cap / sizeof(gs_sqe_t));
    for (uint32_t i = 0; i < n; i++) {
        gs_sqe_t e;
        unsigned long long r = test_rand(rs);
        memset(&e, 0, sizeof e);
        unsigned opr = (unsigned)(r % 100u);
        e.op = opr < 38 ? GS_OP_REFILL : opr < 55 ? GS_OP_RELEASE : opr < 67 ? GS_OP_LARGE_ALLOC
             : opr < 90 ? GS_OP_NOTICE : opr < 95 ? GS_OP_NOP : (uint8_t)test_rand(rs);
        r = test_rand(rs);
        e.want = r % 10u == 0 ? (uint8_t)(r >> 8) : (uint8_t)((r >> 8) % 4u);
        e.nback = r % 10u == 1 ? (uint8_t)(r >> 16) : (uint8_t)((r >> 16) % 3u);
        uint32_t sc = 1u + (uint32_t)((r >> 24) % (GS_NUM_SIZE_CLASSES - 1u));
        if ((r >> 32) % 4u == 0) sc = r % 3u ? 1u : GS_TINY_CLASS; /* hot classes: spans fill up */
        e.spanclass = gs_spanclass(sc, sc == GS_TINY_CLASS && (r >> 40) % 2u);
        if ((r >> 44) % 20u == 0) e.spanclass = (uint32_t)test_rand(rs) % (GS_NUM_SPAN_CLASSES + 4u);
        r = test_rand(rs);
        e.sid = (uint32_t)(r % 40u);
        if ((r >> 8) % 50u == 0) e.sid = (uint32_t)(r >> 16);
        unsigned np = (unsigned)((r >> 40) % 1000u);
        /* Committing pages costs (fallocate zeroes them): few large ones,
         * but some cross an arena or want more than the heap. */
        e.npages = np < 930 ? 1u + (r >> 48) % 24u : np < 990 ? 1u + (r >> 48) % 300u
                 : np < 992 ? 1u + (r >> 48) % ((FZ_HEAP_SIZE >> GS_PAGE_SHIFT) + 1u)
                 : np < 996 ? (FZ_HEAP_SIZE >> GS_PAGE_SHIFT) + (r >> 48) % 4u : test_rand(rs);
        e.tag = (uint32_t)test_rand(rs);
        for (uint32_t k = 0; k < GS_RING_MAX_BATCH; k++) e.back[k] = (uint32_t)(test_rand(rs) % 64u);
        r = test_rand(rs);
        uint8_t c0 = 0;
        if (r % 100u < 60) c0 |= FZ_SUB_SID;
        if ((r >> 8) % 100u < 50) c0 |= FZ_SUB_BACK;
        if (hostile && (r >> 16) % 100u < 25) c0 |= FZ_SCRIBBLE;
        if ((r >> 24) % 100u < 55) c0 |= FZ_CLIENT;
        if ((r >> 32) % 100u < 20) c0 |= FZ_DRAIN;
        if ((r >> 40) % 100u < 8) c0 |= FZ_BGSWEEP;
        if ((r >> 48) % 100u < 5) c0 |= FZ_NORMALIZE;
        if ((r >> 56) % 100u < 3) c0 |= FZ_RECLAIM;
        e.pad0 = c0;
        r = test_rand(rs);
        memcpy(e.pad1, &r, sizeof e.pad1);
        /* c7: scavenge rarely, unread completions sometimes. */
        e.pad1[7] &= 0x3f;
        if (test_rand(rs) % 20u == 0) e.pad1[7] |= 0x40;
        if (test_rand(rs) % 8u == 0) e.pad1[7] |= 0x80;
        r = test_rand(rs);
        if (hostile && r % 30u == 0) ((uint8_t *)&e)[(r >> 8) % sizeof e] = (uint8_t)(r >> 16); /* a stray byte */
        memcpy(buf + i * sizeof e, &e, sizeof e);
    }
    size_t len = n * sizeof(gs_sqe_t);
    unsigned long long r = test_rand(rs);
    if (r % 16u == 0 && len) len -= 1u + (r >> 8) % 63u; /* a torn last entry */
    return len;
}

int main(int argc, char **argv)
{
    fz_main_opts_t o;
    fz_parse(&o, argc, argv, 20000 / TEST_SCALE);
    LLVMFuzzerInitialize(&argc, &argv);
    int rc = fz_main(&o, "fuzz-ring", run_input, gen_input, FZ_MAX_ENTRIES * sizeof(gs_sqe_t), sizeof(gs_sqe_t));
    static const char *names[] = {"nop", "refill", "release", "large", "notice", "bad op"};
    for (unsigned i = 0; i <= GS_OP_MAX; i++)
        fprintf(stderr, "%s%s %llu ok / %llu err", i ? ", " : "fuzz-ring: reached: ", names[i], fz_cov.ok[i],
                fz_cov.err[i]);
    fprintf(stderr, "; %llu spans refilled, %llu notices handled (%llu by explicit drains), %llu large freed, "
                    "%llu abandoned, %llu bad requests, %llu detaches, %llu entries not served (ring full)\n",
            fz_cov.spans_got, fz_cov.notices, fz_cov.drained, fz_cov.large_frees, fz_cov.abandoned, fz_cov.bad,
            fz_cov.detaches, fz_cov.skipped);
    fprintf(stderr, "fuzz-ring: data memfd: %llu pages punched, %llu fallocates, %llu reconciles that gave memory back\n",
            fz_cov.punched, fz_cov.fallocated, fz_cov.reconciled);
    return rc;
}
#endif
