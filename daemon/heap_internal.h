/* SPDX-License-Identifier: MIT */
/* heap_internal.h: the heap side's private state and the calls between its files.
 *
 * Overview: shm/overview.h. Everything here is private memory of the process
 * that owns the heap (the daemon), except what `data`/`meta` point into.
 *
 * Locking (as Go's mheap.go annotates its fields): the heap side is not
 * thread-safe by itself. Its owner serialises every call with one lock, the
 * "heap lock": goshmd's heap_lock (daemon/main.c), taken by the control
 * plane, the housekeeping tick and the data plane per serve pass; the
 * in-process seam's mutex (tests/lib/inproc.c). Fields marked [heap lock]
 * are read and written only under it; [immutable] ones are set by
 * gs_heap_create and never change; [shared] ones live in client-writable
 * memory and are read as untrusted input.
 */
#ifndef GOSHM_HEAP_INTERNAL_H
#define GOSHM_HEAP_INTERNAL_H

#include <errno.h>   /* EINVAL */
#include <stdbool.h> /* bool */
#include <stdint.h>  /* uint*_t */

#include "heap.h"
#include "owners.h" /* gs_owners_t */
#include "mspan.h"  /* bitmaps, sweeping */
#include "clock.h"  /* gs_now_ns */
#include "report.h" /* gs_throw */
#include "spanlist.h" /* gs_spanlist_t */
#include "namedir.h" /* gs_names_state_t */

#define GS_TLSF_SL_LOG 4
#define GS_TLSF_SL     (1u << GS_TLSF_SL_LOG)
#define GS_TLSF_FL     32u

/* Side record per span id (daemon/fixalloc.c): the header line and the
 * largest bitmaps (the 8-byte class: 1024 slots, 16 + 16 words). */
#define GS_SIDE_RECORD  320u
#define GS_SPAN_CHUNK   512u /* span ids whose records are committed together */

enum { /* gs_mspan_t.list */
    GS_LIST_NONE = 0,
    GS_LIST_BIN,      /* a free run in the mheap's bins */
    GS_LIST_PARTIAL,  /* mcentral: uncached, has free slots */
    GS_LIST_FULL,     /* mcentral: uncached, no free slot at the last sweep */
    GS_LIST_CACHED,   /* cached by the slot in .owner */
    GS_LIST_LARGE,    /* a large object in use */
    GS_LIST_INFLIGHT, /* a large object not known to have reached its owner yet */
};

enum { /* per-page state, gs_heap.pagestate */
    GS_PAGE_RELEASED = 0, /* Prepared: not backed; reads as zero */
    GS_PAGE_READY = 1,    /* Ready: backed by fallocate; may be dirty */
};


/* A chunk of GS_SPAN_CHUNK span ids (daemon/fixalloc.c). */
typedef struct gs_idchunk {
    uint32_t free;  /* free list of ids through the span records' .next */
    uint16_t bump;  /* ids [bump, cap) were never handed out since commit */
    uint16_t live;  /* ids handed out and not freed */
    uint64_t idle_since_ns; /* when live last dropped to 0 */
} gs_idchunk_t;

typedef struct gs_central {
    gs_spanlist_t partial, full;
    uint64_t daemon_frees;  /* frees merged by heap-side sweeps */
    uint64_t departed_allocs, departed_frees; /* from reclaimed slots */
} gs_central_t;

typedef struct gs_slot_state {
    bool in_use;
    /* Claimed by a process of a previous daemon that may still run (it was
     * alive at adoption): its spans stay cached until it resumes the slot
     * (gs_heap_slot_resume) or dies (gs_heap_orphans_reap). */
    bool orphan;
    uint32_t pid;
    uint32_t generation;        /* claims of this slot index so far */
    int fd;                     /* the slot's memfd while in use, else -1 */
    gs_slot_t *map;             /* our mapping of it ([shared]: the client writes it) */
    gs_spanlist_t cached;       /* spans this slot caches */
    /* Large spans allocated for this slot whose completion it may not have
     * read yet (daemon/largealloc.c): owned by the slot (owner, xowner),
     * so no free makes the heap side take them back before they land. */
    gs_spanlist_t inflight;
    /* Adoption with a state directory: the previous daemon's slot file,
     * mapped ([shared], the client's old records) until the client resumes
     * the slot (it moves its records into the new one) or its slot is
     * reclaimed (daemon/bufref.c drops them). NULL: none. */
    gs_slot_t *old_map;
} gs_slot_state_t;

/* The segment's layout, as the heap side set it. The copy in the meta
 * header is for clients (read-only for them); the heap side never reads
 * either memfd's header for its layout. */
typedef struct gs_layout {
    uint64_t side_off, side_size;
    uint64_t notice_off;
    uint64_t prof_off, prof_size;
    uint64_t arena_off;
} gs_layout_t;

/* Quota accounting (daemon/quota.c): per slot, and per uid (a uid's entry
 * lives while it has slots or bytes charged). */
#define GS_QUOTA_UIDS (2 * GS_MAX_SLOTS - 1) /* entry + 1 fits gs_mspan_t.charge_uidx */
typedef struct gs_quota_slot {
    uint64_t bytes;             /* charged to this client */
    uint32_t uidx;              /* its uid's entry + 1; 0: none */
    uint32_t gen;               /* bumped when a client takes or leaves the slot */
} gs_quota_slot_t;
typedef struct gs_quota_uid {
    uint32_t uid, refs;         /* refs: slots of this uid */
    uint64_t bytes;             /* charged to this uid */
} gs_quota_uid_t;

/* References of departed clients that could not be dropped at once (a live
 * process held the buffer's lock): retried from the housekeeping tick
 * (daemon/bufref.c). Private; lost with the daemon (a leak, not a double
 * drop: a crash-restart adopter does not know them). */
#define GS_BUFREF_PENDING 1024u
typedef struct gs_bufref_state {
    struct { uint64_t off, id; uint32_t count, pad; } pending[GS_BUFREF_PENDING];
    uint32_t npending;
    /* Spins on buffer locks held by live processes left in the current
     * operation (daemon/bufref.c, dlock, SPIN_BUDGET): a hostile client
     * that keeps locks held cannot make one operation spin more than
     * that, however many references it makes it drop. */
    uint32_t spin_left;
    uint64_t dropped, repaired, lost;
} gs_bufref_state_t;

struct gs_heap {
    gs_heap_config_t cfg;       /* [immutable] */
    gs_layout_t lay;            /* [immutable] the layout; the meta header's copy is clients' */
    uint64_t epoch;             /* [immutable] */
    int data_fd, meta_fd;       /* [immutable] */
    char *data;                 /* [immutable] data memfd, read-write; what it holds is [shared] */
    char *meta;                 /* [immutable] meta memfd, read-write (sealed for others) */
    uint64_t data_size, meta_size; /* [immutable] */
    gs_seg_header_t *hdr;       /* [immutable] pointer; xnotice_head is [shared] */
    gs_meta_header_t *mhdr;     /* [immutable] pointer; written under the heap lock */
    _Atomic uint32_t *pagemap;  /* [heap lock] span id per heap page; clients read with acquire */
    gs_mspan_t *spans;          /* [heap lock] records; clients read some fields (shm/segment.h) */
    uint64_t max_pages, max_spans; /* [immutable] */
    uint64_t heap_pages;        /* [heap lock] grown */

    /* fixalloc of span ids and their records, by chunks: side records of
     * chunks [0, chunks_committed), span records and notice entries of
     * chunks [0, notice_chunks) are committed. Ids below span_bump are in
     * committed chunks. [heap lock] */
    gs_idchunk_t *chunks;
    uint32_t nchunks, chunks_committed, notice_chunks, chunk_hint;
    uint32_t span_bump;
    uint64_t spans_live;
    uint64_t side_committed;    /* [heap lock] bytes of side records committed */

    /* mheap: TLSF bins of free runs, one set for runs with committed
     * pages ([1], "warm") and one for fully released runs ([0]). [heap lock] */
    uint32_t fl_bitmap[2];
    uint32_t sl_bitmap[2][GS_TLSF_FL];
    gs_spanlist_t bins[2][GS_TLSF_FL][GS_TLSF_SL];
    uint32_t bgsweep_cursor;    /* [heap lock] gs_heap_bgsweep's place in the span table */
    /* [heap lock] The notice chain being drained: what is left of the chain
     * last taken off the stack (0: none), drained GS_DRAIN_BUDGET ids per
     * call; and that chain's generation, stamped on each span it visits
     * (gs_mspan_t.drain_gen) so that an id seen twice (a loop a client wrote
     * into the xnext links) ends the chain. daemon/sweep.c. */
    uint32_t notice_rest;
    uint32_t drain_gen;
    /* [heap lock] When a large allocation last walked the span table for
     * freed large objects before answering ENOMEM (daemon/largealloc.c). */
    uint64_t large_reclaim_ns;
    uint8_t *pagestate;         /* [heap lock] GS_PAGE_* per heap page */
    gs_spanlist_t scav;         /* [heap lock] free runs with ready pages, oldest first (scav links) */
    uint64_t ready_pages;       /* [heap lock] pages in state READY (in use or idle) */
    uint64_t idle_ready_pages;  /* [heap lock] READY pages in free runs */
    uint64_t free_pages;        /* [heap lock] pages in free runs */
    /* [heap lock] The scavenger's goal (gs_heap_scavenge_tick): the peak of
     * in-use READY pages over its recent calls, and when it was seen. */
    uint64_t scav_peak_pages, scav_peak_ns;
    uint64_t meta_committed;    /* [heap lock] bytes committed in the meta memfd */

    gs_central_t central[GS_NUM_SPAN_CLASSES]; /* [heap lock] */
    gs_slot_state_t slots[GS_MAX_SLOTS];       /* [heap lock] */

    uint64_t large_allocs, large_frees, notices, bad_requests; /* [heap lock] */

    uint64_t heap_id;           /* [immutable] random, at creation; the meta header holds a copy */
    uint64_t prof_off, prof_size; /* [immutable] the profile region (shm/profregion.h), data memfd */
    gs_owners_t owners;         /* [heap lock] who holds live bytes (daemon/owners.h) */

    /* Persistence (daemon/persist.c, adopt.c, intent.c). */
    gs_pslot_t *pslots;         /* [immutable] pointer into meta; entries [heap lock] */
    gs_undo_log_t *undo;        /* [immutable] pointer into meta; [heap lock] */
    uint32_t txn_depth;         /* [heap lock] nesting of gs_txn_begin */
    bool dry_run;               /* [immutable] adoption's trial on private copies: no syscalls on the files */
    bool is_memfd;              /* [immutable] sealable memfds (not state-directory files) */
    uint64_t adopted_ns;        /* [immutable] when this heap was adopted (0: created) */
    uint32_t adopted_orphans, adopted_reclaimed; /* [immutable] slots found at adoption */
    /* Quotas (daemon/quota.c). [heap lock] */
    uint64_t quota_client, quota_uid;          /* bytes; 0: no limit */
    gs_quota_slot_t qslot[GS_MAX_SLOTS];
    gs_quota_uid_t quid[GS_QUOTA_UIDS];
    /* The names directory (daemon/names.c): the table in the meta memfd
     * ([immutable] pointer; entries [heap lock]) and its private counts. */
    gs_dirent_t *dir;
    gs_names_state_t names;     /* [heap lock] */
    /* Buffer references of departed clients still to drop (daemon/bufref.c). */
    gs_bufref_state_t bufref;   /* [heap lock] */
    int slotdir_fd1;            /* [immutable] cfg.slot_dir_fd1's duplicate + 1; 0: slot memfds */
};

/* "heap.c": a sealed memfd (see there). 0 or -errno. */
int gs_make_memfd(const char *name, uint64_t size, bool final, int *fd_out);
/* "quota.c": would `bytes` more take the slot or its uid past a quota
 * (-EDQUOT)? Charge a span to the slot now taking it (moving the charge
 * from whoever had it); drop a span's charge when it returns to the page
 * heap; end a slot's charges when its client goes. */
int gs_quota_check(const gs_heap_t *h, uint32_t slot, uint64_t bytes);
void gs_quota_span_take(gs_heap_t *h, uint32_t slot, gs_mspan_t *s);
void gs_quota_span_drop(gs_heap_t *h, gs_mspan_t *s);
void gs_quota_slot_close(gs_heap_t *h, uint32_t slot);

/* The meta memfd's layout, a function of the heap's size and slot count
 * (daemon/heap.c): creation writes it, adoption recomputes and compares. */
typedef struct gs_meta_layout {
    uint64_t pagemap_off, spans_off, pslots_off, undo_off, dir_off, meta_size;
    uint32_t dir_cap;
} gs_meta_layout_t;
void gs_heap_layout(uint64_t max_pages, uint32_t max_slots, gs_layout_t *lay, uint64_t *data_size,
                    gs_meta_layout_t *ml);
/* Write the layout fields of the meta header (creation; adoption restates them). */
void gs_heap_write_meta_header(gs_heap_t *h, const gs_meta_layout_t *ml);
/* Map the two files read-write (dry: private copies), set the pointers of h. 0 or -errno. */
int gs_heap_map(gs_heap_t *h, bool dry);

/* "intent.c": the undo log (shm/segment.h, gs_undo_log_t). Every heap
 * operation that changes the meta memfd runs between gs_txn_begin and
 * gs_txn_end (nestable: only the outermost end commits) and records the
 * before-image of each span record, page map entry or heap page count
 * before its first change. */
void gs_txn_begin(gs_heap_t *h);
void gs_txn_end(gs_heap_t *h);
void gs_txn_span(gs_heap_t *h, uint32_t sid);
void gs_txn_page(gs_heap_t *h, uint64_t page);
void gs_txn_heap_pages(gs_heap_t *h);
void gs_txn_pslot(gs_heap_t *h, uint32_t slot);
void gs_txn_dirent(gs_heap_t *h, uint32_t bucket);
/* Put the before-images of an unfinished operation back; returns how many. */
uint32_t gs_undo_replay(gs_heap_t *h);

/* "killpoint.c": GOSHM_KILLPOINT=NAME:N (or any:N) makes the daemon SIGKILL
 * itself at the Nth pass through kill point NAME: the fault-injection test
 * of crash consistency (tests/restart). Compiled in with GOSHM_KILLPOINTS. */
#ifdef GOSHM_KILLPOINTS
void gs_killpoint(const char *name);
#else
#define gs_killpoint(name) ((void)0)
#endif

/* "slot.c": a fresh slot memfd for slot i (claim, and adoption's orphans). 0 or -errno. */
int gs_slot_memfd_open(gs_heap_t *h, uint32_t i, uint32_t pid);
/* "slot.c": adoption with a state directory: map the previous daemon's
 * file of slot i as slots[i].old_map (nothing if there is none). */
void gs_slot_old_open(gs_heap_t *h, uint32_t i);
/* "slot.c": the persistent owner of a slot. */
uint64_t gs_proc_starttime(uint32_t pid); /* 0: unknown */
bool gs_proc_alive(uint32_t pid, uint64_t starttime);

/* "sysmem.c": the memory state transitions on a memfd. */
int gs_sys_commit(int fd, uint64_t off, uint64_t len);   /* Prepared -> Ready; -ENOMEM */
int gs_sys_release(int fd, uint64_t off, uint64_t len);  /* Ready -> Prepared */

/* "fixalloc.c" */
uint32_t gs_span_record_alloc(gs_heap_t *h);             /* 0: ENOMEM */
void gs_span_record_free(gs_heap_t *h, uint32_t sid);
int gs_fixalloc_init(gs_heap_t *h);                      /* -ENOMEM */
/* Adoption: rebuild the id chunks from the live ids (daemon/fixalloc.c). 0 or -errno. */
int gs_fixalloc_adopt(gs_heap_t *h, const uint8_t *seen, bool dry);
void gs_fixalloc_fini(gs_heap_t *h);
/* Punch the chunks at the top of the span ids idle for min_idle_ns; bytes
 * released. */
uint64_t gs_fixalloc_trim(gs_heap_t *h, uint64_t min_idle_ns);
/* Where span id sid's side record is. */
static inline uint64_t gs_side_off_of(const gs_layout_t *lay, uint32_t sid)
{
    return lay->side_off + (uint64_t)sid * GS_SIDE_RECORD;
}

/* "mheap.c" */
int gs_mheap_alloc(gs_heap_t *h, uint64_t npages, uint32_t *sid);   /* sets .needzero */
/* The same, starting on a heap page that is a multiple of `align` (a power
 * of two; 1: any). */
int gs_mheap_alloc_aligned(gs_heap_t *h, uint64_t npages, uint64_t align, uint32_t *sid);
void gs_mheap_free(gs_heap_t *h, uint32_t sid);
void gs_mheap_publish(gs_heap_t *h, uint32_t sid);                  /* page map -> sid */

/* "mheap.c": spans carved from free runs, and given back. */
/* A span of npages starting on a multiple of `align` pages, set up for
 * spanclass (or as one large object) and published in the page map. */
int gs_mheap_alloc_span(gs_heap_t *h, uint32_t spanclass, uint64_t npages, uint64_t align, bool large,
                        uint32_t *sid);
void gs_mheap_free_span(gs_heap_t *h, uint32_t sid); /* side record too */
/* Adoption (daemon/adopt.c): file the free run sid (its record complete,
 * its tags set) in its bin, and on the scavenge list if it has ready pages. */
void gs_mheap_adopt_run(gs_heap_t *h, uint32_t sid);

/* "mcentral.c": span lists (Go's mSpanList) and the mcentrals. */
void gs_list_push(gs_heap_t *h, gs_spanlist_t *l, uint32_t sid, uint32_t which);
void gs_list_remove(gs_heap_t *h, gs_spanlist_t *l, uint32_t sid);
gs_spanlist_t *gs_list_of(gs_heap_t *h, const gs_mspan_t *s); /* NULL: on none */
/* Put an uncached, swept small span where `live` says it belongs. */
void gs_mcentral_place(gs_heap_t *h, uint32_t sid, uint32_t live);
/* Take a cached span back from its owner and sweep it. */
void gs_mcentral_uncache(gs_heap_t *h, uint32_t sid);

/* "heapstats.c" */
/* A gs_owners_walk_fn (daemon/owners.h): live bytes of every in-use span,
 * by the ticket stamped on it. arg is the heap. */
void gs_heap_owner_walk(void *arg, gs_owner_tally_t *t);

/* "sweep.c" */
uint32_t gs_sweep_span(gs_heap_t *h, gs_mspan_t *s); /* live slots after the sweep */
void gs_sweep_large(gs_heap_t *h, uint32_t sid);      /* free it if its object is */

/* A client request that cannot be right: counted, -EINVAL. */
static inline int gs_heap_bad(gs_heap_t *h)
{
    h->bad_requests++;
    return -EINVAL;
}

/* Graded assertions (mimalloc's mi_assert_internal / mi_assert_expensive):
 * GOSHM_DEBUG_LEVEL (CMake option GOSHM_DEBUG_LEVEL) 0 compiles them out, 1
 * checks cheap internal invariants, 2 also runs the whole heap check
 * (daemon/heapcheck.c) where a caller asks for it. A failure throws. */
#ifndef GOSHM_DEBUG_LEVEL
#define GOSHM_DEBUG_LEVEL 0
#endif
#define gs_assert_internal(cond)                                                   \
    do {                                                                           \
        if (GOSHM_DEBUG_LEVEL >= 1 && !(cond)) gs_throw("assertion failed: " #cond); \
    } while (0)
#define gs_assert_expensive(h)                                                     \
    do {                                                                           \
        if (GOSHM_DEBUG_LEVEL >= 2 && gs_heap_check(h) != 0) gs_throw("heap check failed"); \
    } while (0)

static inline gs_mspan_t *gs_span(gs_heap_t *h, uint32_t sid) { return &h->spans[sid]; }
static inline gs_side_t *gs_side_of(gs_heap_t *h, const gs_mspan_t *s)
{
    return (gs_side_t *)(h->data + s->side_off);
}
static inline gs_notice_t *gs_notice_of(gs_heap_t *h, uint32_t sid)
{
    return gs_notice_in(h->data, h->lay.notice_off, sid);
}
static inline uint64_t gs_page_off(const gs_heap_t *h, uint64_t page)
{
    return h->lay.arena_off + (page << GS_PAGE_SHIFT);
}
/* A claimed slot's record, through the heap side's own mapping of its memfd. */
static inline gs_slot_t *gs_slot_at(gs_heap_t *h, uint32_t slot) { return h->slots[slot].map; }
/* Bytes of a slot memfd (the gs_slot_t, page-rounded). */
static inline uint64_t gs_slot_committed_size(void) { return GS_SLOT_MAP_SIZE; }

/* "reconcile.c": what the data memfd really holds against what the heap
 * side committed; re-punches what a client fallocated behind its back. */
uint64_t gs_heap_expected_data_bytes(const gs_heap_t *h);

#endif /* GOSHM_HEAP_INTERNAL_H */
