/* SPDX-License-Identifier: MIT */
/* segment.h: the layout of the two shared memfds, pinned by static asserts.
 *
 * Overview: shm/overview.h. Every structure here is shared between processes.
 * Each field says who writes it, how it is ordered and what a writer that
 * dies halfway leaves behind. Bump GS_ABI_VERSION whenever a layout changes.
 *
 * Data memfd (read-write for every client; sealed against shrink, grow and
 * new seals, but any client can write, fallocate or punch any byte of it):
 *   [0, 64 KiB)                 gs_seg_header_t: the notice stack head only
 *   [side_off, +side_size)      side records, one per span id (daemon/fixalloc.c)
 *   [notice_off, ...)           gs_notice_t per span id
 *   [arena_off, data_size)      arenas; arena_off is 64 MiB aligned
 * Nothing the heap side needs lives here, and no client reads its layout
 * from here: the layout is in the meta header (read-only for clients), which
 * each client copies into its private struct goshm once, at attach.
 *
 * Meta memfd (read-write for the heap side, O_RDONLY for clients):
 *   [0, 4 KiB)                  gs_meta_header_t: the layout of both memfds
 *   [pagemap_off, ...)          uint32_t span id per heap page (0: none)
 *   [spans_off, ...)            gs_mspan_t per span id (id 0 unused)
 *   [pslots_off, ...)           gs_pslot_t per client slot
 *   [undo_off, ...)             gs_undo_log_t (daemon/intent.c)
 *   [dir_off, ...)              gs_dirent_t[dir_cap]: the names directory (shm/names.h)
 *
 * Slot memfds, one per attached client (gs_slot_t): created by the heap side
 * at claim, passed only to that client (SCM_RIGHTS in its AttachReply), and
 * closed and unmapped by the heap side at reclaim. No other client holds a
 * descriptor or a mapping of it, so a request that arrives on a slot's ring
 * comes from that slot's client (or from a process of its uid that can
 * ptrace it or open its /proc/PID/fd: the same trust domain).
 *
 * The data and meta memfds may be files in a state directory instead (goshmd --state-dir,
 * daemon/persist.c), or sit in systemd's fd store: a later goshmd adopts
 * them (daemon/adopt.c). Everything the heap side needs to rebuild its
 * private state is in the meta memfd, written only by the heap side. Slot
 * memfds are transient: a client that resumes its slot under the adopting
 * daemon gets a fresh one (client/reconnect.c).
 */
#ifndef GOSHM_SEGMENT_H
#define GOSHM_SEGMENT_H

#include <stddef.h> /* offsetof */
#include <stdint.h> /* uint*_t */
#include <string.h> /* memset */

#include "atomic.h"
#include "overview.h"
#include "names.h"  /* gs_dirent_t, in the meta memfd */
#include "ring.h"   /* gs_ring_t, in each slot */
#include "buf.h"    /* gs_holdings_t, in each slot */

#define GS_META_MAGIC UINT64_C(0x4154454d4853534f) /* "OSSHMETA" */
#define GS_ABI_VERSION 5u /* 3: layout in the meta header, a memfd per slot; 4: slot table, undo log;
                           * 5: names directory, buffer holdings */

#define GS_HEADER_SIZE   (64u * 1024u)
#define GS_SLOT_SIZE     (256u * 1024u)
#define GS_MAX_SLOTS     128u
#define GS_META_HDR_SIZE 4096u

/* ---- data memfd: header ------------------------------------------------ */

/* What clients must write and nothing else. The layout used to live here too;
 * any client could rewrite it under the others (issue 7, point 6), so it moved
 * to the meta header (gs_meta_header_t below).
 *
 * The notice stack: span ids (0 = empty) of spans that gained frees while no
 * mcache owned them. Multi-producer (any freer, any process), single consumer
 * (the heap side), Treiber push with a release CAS, pop of the whole chain
 * with one acquire exchange, so there is no ABA. Links and "queued" flags
 * live in the notice array (gs_notice_t), indexed by span id, not in side
 * records: a freer may push a span that the heap side has meanwhile given
 * back to the mheap (it saw no owner, then lost the race), and such a stale
 * entry must not break the chain. The heap side skips it, or sweeps the span
 * that now has that id: harmless. A pusher that dies after its CAS has pushed
 * completely; one that dies between setting the flag and the push leaves the
 * flag set: the background sweep (daemon/mcentral.c) sweeps full spans anyway
 * and clears a flag it finds set on two visits in a row.
 * Trust: any client can write any value (or punch the page: it reads 0, an
 * empty stack). The heap side bounds every id it pops and every link it
 * follows; garbage costs at most a sweep of a span that did not need one, or
 * a lost notice that the background sweep makes up for. */
typedef struct gs_seg_header {
    _Alignas(GS_CACHELINE) _Atomic uint32_t xnotice_head;
    uint8_t pad1[GS_CACHELINE - 4];
} gs_seg_header_t;

_Static_assert(offsetof(gs_seg_header_t, xnotice_head) == 0, "header layout");
_Static_assert(sizeof(gs_seg_header_t) == GS_CACHELINE, "header layout");

/* ---- slot memfds: one per client --------------------------------------- */

/* Per-class counters a client publishes. Written by the client (relaxed
 * adds), read by the heap side for statistics only: values are untrusted and
 * never feed any decision. A dying client leaves them as they were. */
typedef struct gs_slot_class_stats {
    _Atomic uint64_t xallocs;   /* objects handed out */
    _Atomic uint64_t xfrees;    /* freed bits merged by this client's sweeps */
} gs_slot_class_stats_t;

/* A client slot, alone in its own memfd (see the top of this file). Only
 * its client and the heap side map it; the client can write all of it, and
 * the heap side reads it as that client's untrusted input. */
typedef struct gs_slot {
    /* Written by the heap side when it creates the slot (before the client
     * gets the descriptor); informational. */
    uint32_t pid;
    uint32_t generation;
    uint8_t  pad0[GS_CACHELINE - 8];
    gs_slot_class_stats_t stats[GS_NUM_SIZE_CLASSES];
    _Atomic uint64_t xlarge_allocs;
    _Atomic uint64_t xlarge_frees;
    /* The slot's rings (shm/ring.h), reset by the heap side before the slot
     * is handed to a client. */
    _Alignas(4096) gs_ring_t ring;
    /* The client's reference records and its one buffer/channel operation
     * in progress (shm/buf.h): written only by the client, read by the heap
     * side when it reclaims the slot (the client dead or detached), as that
     * client's untrusted word (daemon/bufref.c). A fresh memfd (claim,
     * adoption) reads as no records and no intent. */
    _Alignas(4096) gs_holdings_t holdings;
} gs_slot_t;

_Static_assert(sizeof(gs_slot_t) <= GS_SLOT_SIZE, "slot too large");
/* The size of a slot memfd: the gs_slot_t, in whole OS pages. */
#define GS_SLOT_MAP_SIZE ((uint32_t)((sizeof(gs_slot_t) + 4095u) & ~(size_t)4095u))

/* ---- data memfd: side records ---------------------------------------- */

/* One per span id, at side_off + sid * 320 (daemon/fixalloc.c), in
 * client-writable memory. The heap side reads every
 * field as untrusted input: indices are clamped, bitmaps are masked to nelems,
 * and the span id is checked against the trusted span record. A record whose
 * page a client punched reads as zero ("nothing allocated, nothing freed"):
 * its span's objects may be handed out again (lost), the heap side goes on
 * (daemon/reconcile.c).
 *
 * Bitmaps follow the header: alloc[words], then freed[fwords].
 *   alloc  bit i: slot i was allocated at the last sweep. Written only by the
 *          span's current owner (the mcache caching it, or the heap side
 *          while no mcache does), with relaxed atomic stores so that a
 *          concurrent free's validity check reads whole words.
 *   freed  bit i: slot i was freed since the last sweep. Set by any freer
 *          with one atomic OR; cleared by the owner's sweep with an atomic AND
 *          of exactly the bits it merged. For tiny spans it is the live-half
 *          bitmap (two bits per 16-byte block), see shm/overview.h.
 */
typedef struct gs_side {
    /* Line 0: written by the owner only. xfreeindex is published with one
     * relaxed store before each slot is handed out: slots below it may be in
     * use, so after a crash the heap side frees exactly the slots at or above
     * it that allocBits does not mark. xtiny is the owner's current tiny block
     * (index + 1 in the high 32 bits; halves handed out in bits 0-1). */
    _Atomic uint32_t xfreeindex;
    /* The span id, written by the heap side when it sets the record up, for
     * cross-checking. */
    _Atomic uint32_t xsid;
    _Atomic uint64_t xtiny;
    uint8_t  pad1[GS_CACHELINE - 16];

    /* Then the bitmaps, from the next cache line: freers write the freed
     * words, never the owner's line above. */
    _Alignas(GS_CACHELINE) _Atomic uint64_t bits[]; /* alloc words, then freed words */
} gs_side_t;

_Static_assert(offsetof(gs_side_t, bits) == 64, "side layout");
_Static_assert(sizeof(gs_side_t) == 64, "side layout");

/* One per span id, in the data memfd at notice_off (see xnotice_head).
 * xqueued: 1 while the id is on the notice stack or about to be (CAS 0->1 by
 * a freer, cleared seq_cst by the heap side before it sweeps the span).
 * xnext: the next id on the stack, written by the pusher before its release
 * CAS. Client-writable: the heap side bounds and checks every id it reads. */
typedef struct gs_notice {
    _Atomic uint32_t xqueued;
    _Atomic uint32_t xnext;
} gs_notice_t;

/* Where a notice entry is: `data` is the data memfd's mapping, notice_off
 * the layout (the heap side's own, or a client's private copy of the meta
 * header's). */
static inline gs_notice_t *gs_notice_in(char *data, uint64_t notice_off, uint32_t sid)
{
    return (gs_notice_t *)(data + notice_off) + sid;
}

/* ---- meta memfd ----------------------------------------------------- */

enum {
    GS_SPAN_DEAD  = 0, /* record not in use */
    GS_SPAN_FREE  = 1, /* a free run owned by the mheap */
    GS_SPAN_SMALL = 2, /* split into slots of one span class */
    GS_SPAN_LARGE = 3, /* one large object */
};

/* A span record. The first line is what clients read (to find and check the
 * object on free and to build their cache on refill): the heap side writes it
 * while the span is not reachable from the page map or any mcache, then
 * publishes the span with release stores of the page map entries. It does not
 * change while the span is in use, except xowner: the slot index + 1 of the
 * mcache caching the span, 0 while its mcentral has it. The heap side stores
 * it seq_cst (and only ever atomically: a freer may read it after the span
 * was recycled); freers load it seq_cst after their OR, a Dekker pairing with
 * the heap side's sweep after it clears the owner. It sits here, in the line
 * every free reads anyway, rather than in the side record: one cache miss
 * less per free, and out of client-writable memory. The second line is the
 * heap side's own bookkeeping and is never read by clients. */
typedef struct gs_mspan {
    uint32_t start;      /* first heap page */
    uint32_t npages;
    uint8_t  state;      /* GS_SPAN_* */
    uint8_t  spanclass;  /* gs_spanclass(); 0 for large */
    uint8_t  needzero;   /* at hand-out: some slot may be dirty */
    uint8_t  awords;     /* 64-bit words of the alloc bitmap */
    uint16_t nelems;     /* slots (1 for large) */
    uint8_t  fwords;     /* 64-bit words of the freed bitmap */
    uint8_t  pad0;
    uint32_t elemsize;   /* bytes per slot (span bytes for large) */
    uint32_t divmagic;   /* (off * divmagic) >> 32 == off / elemsize */
    uint64_t base_off;   /* offset of slot 0 */
    uint64_t side_off;   /* offset of the side record, 0 for free runs */
    uint64_t npages64;   /* npages for large spans that do not fit 32 bits */
    _Atomic uint32_t xowner; /* see above */
    uint32_t pad1;

    /* Heap side only. */
    uint32_t next, prev;   /* free-run bin, mcentral list or owner list */
    uint32_t owner;        /* slot + 1 caching it; plain copy of xowner */
    uint32_t list;         /* which list it is on (daemon/mcentral.c) */
    uint32_t ready_pages;  /* free runs: pages committed (scavengeable) */
    uint32_t scav_next, scav_prev;
    uint32_t allocated;    /* objects allocated at the last sweep */
    uint64_t freed_at_ns;  /* free runs: when it became idle */
    uint8_t  suspect;      /* its notice flag was set at the last background sweep */
    uint8_t  charge_slot;  /* slot + 1 charged for it (daemon/quota.c), 0: none */
    uint8_t  charge_uidx;  /* uid table entry + 1 charged for it, 0: none */
    uint8_t  pad2;
    uint32_t client;       /* ticket of the client that cached it last, or
                            * allocated it (large): daemon/owners.h */
    uint32_t drain_gen;    /* the notice chain that last visited it (daemon/sweep.c) */
    /* The freeindex the next sweep folds in, while no mcache owns the span:
     * the owner's published xfreeindex, read once (clamped to nelems) when
     * the span was taken back, and 0 once a sweep folded it. The side
     * record's xfreeindex of an uncached span is never read again: a
     * client could write it to pin the span as full (daemon/sweep.c). */
    uint16_t freeindex;
    /* The charged slot's generation then (mod 2^16: a slot reused 65536
     * times while the span stays charged could have an old charge debited
     * from its new client, never the other way round). */
    uint16_t charge_gen;
} gs_mspan_t;

_Static_assert(sizeof(gs_mspan_t) == 112, "mspan layout");
_Static_assert(offsetof(gs_mspan_t, xowner) < 64, "xowner is in the line clients read");

/* Zero a span record, storing xowner atomically (see above). */
static inline void gs_mspan_clear(gs_mspan_t *s)
{
    size_t at = offsetof(gs_mspan_t, xowner), after = at + sizeof s->xowner;
    memset(s, 0, at);
    gs_store_relaxed(&s->xowner, 0);
    memset((char *)s + after, 0, sizeof *s - after);
}

static inline uint32_t gs_mspan_owner(const gs_mspan_t *s)
{
    /* A read-only mapping: an atomic load is a plain load on every target. */
    return gs_load_seqcst((_Atomic uint32_t *)&s->xowner);
}

typedef struct gs_meta_header {
    /* Written once by the heap side before any client can map the memfd;
     * read-only afterwards (clients hold an O_RDONLY descriptor of a memfd
     * sealed with F_SEAL_FUTURE_WRITE). Clients check it at attach, copy the
     * layout into their private struct goshm and never read it again. */
    uint64_t magic;
    uint32_t abi_version;
    uint32_t page_size;      /* GS_PAGE_SIZE */
    uint64_t arena_size;     /* GS_ARENA_SIZE */
    uint64_t data_size;      /* size of the data memfd */
    uint64_t meta_size;      /* size of this memfd */
    uint64_t pagemap_off;
    uint64_t spans_off;
    uint64_t max_spans;
    uint64_t side_off;       /* data memfd: side records */
    uint64_t side_size;
    uint64_t notice_off;     /* data memfd: gs_notice_t per span id */
    uint64_t arena_off;      /* data memfd: heap page 0 */
    uint64_t max_pages;      /* heap pages the reservation can hold */
    uint32_t max_slots;      /* client slots */
    uint32_t slot_size;      /* bytes of a slot memfd (GS_SLOT_MAP_SIZE) */
    uint64_t epoch;          /* changes with every heap instance */
    uint64_t heap_id;        /* random, made at creation (daemon/heap.h) */
    uint64_t prof_off;       /* data memfd: the profile region (shm/profregion.h) */
    /* Heap pages grown so far (arenas * GS_PAGES_PER_ARENA). Written with a
     * release store by the heap side after the arena's page map is
     * committed; clients load it with acquire before indexing the page map.
     * Crash story: grow logs it in the undo log first (daemon/intent.c). */
    _Alignas(GS_CACHELINE) _Atomic uint64_t xheap_pages;
    uint64_t pslots_off;     /* gs_pslot_t[max_slots] */
    uint64_t undo_off;       /* gs_undo_log_t */
    /* The names directory (shm/names.h): gs_dirent_t[dir_cap] at dir_off,
     * written only by the heap side (daemon/names.c); clients read it
     * lock-free through their read-only mapping (client/name.c). */
    uint64_t dir_off;
    uint32_t dir_cap;        /* GS_DIR_CAP */
    uint32_t pad_dir;
} gs_meta_header_t;

_Static_assert(sizeof(gs_meta_header_t) <= GS_META_HDR_SIZE, "meta header layout");

/* The persistent slot table: which process owns each client slot, so that a
 * goshmd adopting the heap knows whose spans are cached where. Written only
 * by the heap side (meta memfd): pid and starttime first, then xstate with a
 * release store on claim; xstate 0 (release) after a reclaim has given every
 * span back. A crash between leaves either a free slot that owns no span
 * (claim) or a claimed one whose remaining spans the adopter reclaims
 * (reclaim). starttime (/proc/PID/stat field 22; 0 if unknown) tells a live
 * owner from a later process that reuses the pid. */
typedef struct gs_pslot {
    _Atomic uint32_t xstate;  /* 0 free, 1 claimed */
    uint32_t pid;
    uint64_t starttime;
    uint32_t generation;
    /* The slot's last large allocation and the tag of its request, written
     * in the allocation's transaction (undo-logged): a client resuming the
     * slot says which completion it read last, and a later one it never
     * got is freed (daemon/slot.c, gs_heap_slot_resume). */
    uint32_t large_sid;
    uint32_t large_tag;
    uint32_t pad;
} gs_pslot_t;

_Static_assert(sizeof(gs_pslot_t) == 32, "pslot layout");

/* The undo log: the before-images of the meta words one heap operation
 * changes (daemon/intent.c). Each entry is written, then counted with a
 * release store of xcount; the operation's own writes follow. xcount is set
 * to 0 (release) when the operation is complete. An adopter that finds
 * xcount != 0 puts the before-images back, newest first: the meta memfd is
 * then as it was before the operation began. */
enum { GS_UNDO_SPAN = 1, GS_UNDO_PAGE = 2, GS_UNDO_HEAP_PAGES = 3, GS_UNDO_PSLOT = 4, GS_UNDO_DIRENT = 5 };
#define GS_UNDO_MAX 256u

typedef struct gs_undo_entry {
    uint32_t kind;           /* GS_UNDO_* */
    uint32_t idx;            /* span id or heap page */
    uint64_t val;            /* page map entry or heap page count */
    uint8_t  rec[112];       /* GS_UNDO_SPAN: the gs_mspan_t before; GS_UNDO_PSLOT: the gs_pslot_t;
                              * GS_UNDO_DIRENT: the gs_dirent_t (idx: its bucket) */
} gs_undo_entry_t;

typedef struct gs_undo_log {
    _Atomic uint32_t xcount;
    uint8_t pad[GS_CACHELINE - 4];
    gs_undo_entry_t e[GS_UNDO_MAX];
} gs_undo_log_t;

_Static_assert(sizeof(gs_undo_entry_t) == 128, "undo layout");
_Static_assert(sizeof(gs_mspan_t) == sizeof(((gs_undo_entry_t *)0)->rec), "undo holds a span record");
_Static_assert(sizeof(gs_dirent_t) <= sizeof(((gs_undo_entry_t *)0)->rec), "undo holds a directory entry");

/* A client's check of the meta header (mapped read-only) against the sizes
 * of its two mappings, before it copies the layout: every region must fit
 * where it is said to be. 1 if it is a layout this library can use. */
static inline int gs_meta_usable(const gs_meta_header_t *m, uint64_t data_size, uint64_t meta_size)
{
    return m->magic == GS_META_MAGIC && m->abi_version == GS_ABI_VERSION && m->page_size == GS_PAGE_SIZE &&
           m->arena_size == GS_ARENA_SIZE && m->data_size == data_size && m->meta_size == meta_size &&
           m->arena_off % GS_ARENA_SIZE == 0 && m->max_pages <= (data_size >> GS_PAGE_SHIFT) &&
           m->arena_off <= data_size && m->arena_off + (m->max_pages << GS_PAGE_SHIFT) <= data_size &&
           m->side_off >= sizeof(gs_seg_header_t) && m->side_size <= data_size && m->side_off <= data_size &&
           m->side_off + m->side_size <= m->notice_off && m->notice_off <= data_size &&
           m->max_spans <= meta_size / sizeof(gs_mspan_t) &&
           m->notice_off + m->max_spans * sizeof(gs_notice_t) <= m->arena_off && m->pagemap_off <= meta_size &&
           m->pagemap_off + m->max_pages * 4u <= meta_size && m->spans_off <= meta_size &&
           m->spans_off + m->max_spans * sizeof(gs_mspan_t) <= meta_size && m->max_slots != 0 &&
           m->max_slots <= GS_MAX_SLOTS && m->slot_size == GS_SLOT_MAP_SIZE && m->dir_cap == GS_DIR_CAP &&
           m->dir_off % 64u == 0 && m->dir_off <= meta_size &&
           m->dir_off + (uint64_t)m->dir_cap * sizeof(gs_dirent_t) <= meta_size;
}

/* Does an AttachReply's layout agree with the meta header it came with?
 * The client uses the header's values; a reply that disagrees is refused
 * (EPROTO): it comes from a daemon that is not the heap's, or is broken. */
static inline int gs_attach_agrees(const gs_meta_header_t *m, uint32_t slot, uint32_t max_slots, uint64_t data_size,
                                   uint64_t meta_size, uint64_t slot_size, uint64_t epoch)
{
    return max_slots == m->max_slots && slot < max_slots && data_size == m->data_size &&
           meta_size == m->meta_size && slot_size == m->slot_size && epoch == m->epoch;
}

/* Object index of byte offset `rel` inside a span, without a division. */
static inline uint32_t gs_divide(uint64_t rel, uint32_t divmagic)
{
    return (uint32_t)((rel * (uint64_t)divmagic) >> 32);
}

static inline uint32_t gs_bitmap_words(uint32_t nbits) { return (nbits + 63u) / 64u; }

#endif /* GOSHM_SEGMENT_H */
