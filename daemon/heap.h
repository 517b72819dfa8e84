/* SPDX-License-Identifier: MIT */
/* heap.h: the heap side of goshm (mheap, arenas, mcentrals, scavenger): its API.
 *
 * Overview: shm/overview.h. One gs_heap_t owns the two memfds of one heap and
 * every structure clients cannot be trusted with. It knows nothing of rings
 * or sockets (daemon/serve.c turns ring entries into these calls). It is
 * single-threaded by design: its owner serialises every call with one lock
 * (daemon/heap_internal.h says which fields it guards).
 *
 * Every function that takes a span id, span class, slot or size from a client
 * validates it and returns -EINVAL (or -ENOMEM, -ENOSPC) instead of trusting it.
 */
#ifndef GOSHM_HEAP_H
#define GOSHM_HEAP_H

#include <stdbool.h> /* bool */
#include <stddef.h>  /* size_t */
#include <stdint.h>  /* uint*_t */

#include "segment.h"
#include "owners.h" /* GS_OWNERS_DEPARTED */

typedef struct gs_heap gs_heap_t;

typedef struct gs_heap_config {
    uint64_t size;             /* heap capacity in bytes (rounded up to arenas) */
    uint32_t max_slots;        /* client slots, <= GS_MAX_SLOTS */
    uint64_t scavenge_delay_ns; /* idle free runs older than this are released */
    /* The heap will be adopted by a later goshmd (state directory or
     * systemd's fd store): the meta memfd is not sealed against future
     * writes (a sealed one could never be mapped writable again) but made
     * 0600, so that clients of another uid cannot reopen their read-only
     * descriptor for writing (README: "Restart"). */
    bool persistent;
    /* The state directory's descriptor + 1 (0: none; borrowed for the
     * call, the heap keeps a duplicate): slot memfds become files there
     * (goshm-slot-N), so that an adopter can read the reference records of
     * a client that died while no daemon ran (daemon/bufref.c). */
    int slot_dir_fd1;
} gs_heap_config_t;

/* Create a heap: two memfds, sized and sealed, header written. Returns NULL
 * and sets errno on failure; err (if not NULL) gets a message. */
gs_heap_t *gs_heap_create(const gs_heap_config_t *cfg, char *err, size_t errlen);
void gs_heap_destroy(gs_heap_t *h);
/* The same on two empty files (a state directory, daemon/persist.c): the
 * heap sizes them and owns the descriptors from then on (even on failure). */
gs_heap_t *gs_heap_create_files(const gs_heap_config_t *cfg, int data_fd, int meta_fd, char *err, size_t errlen);
/* Adopt the heap whose two files (or memfds) a previous goshmd left
 * (daemon/adopt.c): check them, finish or undo its last operation, rebuild
 * the private state, reclaim the slots of processes that died, keep those
 * of live ones as orphans. Nothing is written unless every check passes, so
 * a refused heap is left byte for byte as it was. NULL with errno (EPROTO:
 * not a goshm heap or another ABI; EUCLEAN: inconsistent) and err says why;
 * the descriptors are then still the caller's. cfg's size is ignored (the
 * heap keeps its own). */
gs_heap_t *gs_heap_adopt(const gs_heap_config_t *cfg, int data_fd, int meta_fd, char *err, size_t errlen);
/* The heap's identity (shm/segment.h, gs_meta_header_t.heap_id). */
uint64_t gs_heap_id(const gs_heap_t *h);
/* Adoption facts for logs and statistics: 0 if the heap was created by this
 * process; else when (CLOCK_MONOTONIC ns) and how many slots were kept as
 * orphans and reclaimed. */
uint64_t gs_heap_adopted_ns(const gs_heap_t *h, uint32_t *orphans, uint32_t *reclaimed);

int gs_heap_data_fd(const gs_heap_t *h);
int gs_heap_meta_fd(const gs_heap_t *h);
uint64_t gs_heap_data_size(const gs_heap_t *h);
uint64_t gs_heap_meta_size(const gs_heap_t *h);
/* The heap side's mappings (for the in-process seam). */
char *gs_heap_data_ptr(const gs_heap_t *h);
/* The heap size it was configured with (before rounding to arenas). */
uint64_t gs_heap_size(const gs_heap_t *h);
/* The heap's identity: random, made at creation (goshm_heap_id's value). */
uint64_t gs_heap_id(const gs_heap_t *h);
/* The profile region (shm/profregion.h) in the heap side's mapping. */
const char *gs_heap_prof_region(const gs_heap_t *h);
const char *gs_heap_meta_ptr(const gs_heap_t *h);
uint32_t gs_heap_max_slots(const gs_heap_t *h);
uint64_t gs_heap_epoch(const gs_heap_t *h);
/* A claimed slot: its memfd (to pass to its client only; the heap keeps
 * ownership) and the heap side's mapping of it. -1 / NULL if not claimed. */
int gs_heap_slot_fd(const gs_heap_t *h, uint32_t slot);
gs_slot_t *gs_heap_slot_ptr(const gs_heap_t *h, uint32_t slot);

/* Client slots. claim creates the slot's own memfd (sealed, committed) and
 * returns a slot index, or -ENOSPC (-ENOMEM, -EMFILE); reclaim returns every
 * span the slot cached to its mcentral (slots the client had not handed out,
 * known from its published freeindex, become free again), then unmaps and
 * closes the slot's memfd: its pages go away with the client's last
 * reference. */
int gs_heap_slot_claim(gs_heap_t *h, uint32_t pid);
/* Quotas (daemon/quota.c): the limits in bytes (0: none), and the uid a
 * slot just claimed belongs to (call after gs_heap_slot_claim). A refill or
 * large allocation past a limit fails with -EDQUOT. */
void gs_heap_set_quotas(gs_heap_t *h, uint64_t client_bytes, uint64_t uid_bytes);
void gs_heap_slot_set_uid(gs_heap_t *h, uint32_t slot, uint32_t uid);
uint64_t gs_heap_slot_charged(const gs_heap_t *h, uint32_t slot);
int gs_heap_slot_reclaim(gs_heap_t *h, uint32_t slot);
bool gs_heap_slot_in_use(const gs_heap_t *h, uint32_t slot);
/* A process that held `slot` under a previous daemon asks for it back: 0 if
 * the slot is an orphan claimed by that very process (pid and start time),
 * which then owns its cached spans again; -ESRCH otherwise. last_tag: the
 * tag of the last completion it read (a large object allocated for a later
 * request is freed: the client never got it). */
int gs_heap_slot_resume(gs_heap_t *h, uint32_t slot, uint32_t pid, uint32_t last_tag);
bool gs_heap_slot_orphan(const gs_heap_t *h, uint32_t slot);
uint32_t gs_heap_slot_pid(const gs_heap_t *h, uint32_t slot);
/* After a resume, charge the spans the slot caches to it again (quotas). */
void gs_heap_slot_recharge(gs_heap_t *h, uint32_t slot);
/* Reclaim the orphans whose process is gone; returns how many. */
uint32_t gs_heap_orphans_reap(gs_heap_t *h);
/* Per-client statistics: spans the slot caches, and the counters the client
 * publishes in its slot (client-written: reported, never trusted). */
uint32_t gs_heap_slot_cached_spans(gs_heap_t *h, uint32_t slot);
void gs_heap_slot_counts(gs_heap_t *h, uint32_t slot, uint64_t *allocs, uint64_t *frees, uint64_t *large_allocs,
                         uint64_t *large_frees);

/* The requests daemon/serve.c decodes from ring entries (gs_heap_refill:
 * one span, for tests). Each returns 0 or -errno. None drains the notice
 * stack: the caller drains once per serve pass. */
int gs_heap_refill(gs_heap_t *h, uint32_t slot, uint32_t spanclass, uint32_t *sid);
int gs_heap_release(gs_heap_t *h, uint32_t slot, uint32_t sid);
/* Hand back back[0..nback), then get up to `want` spans into sids[]: the
 * number got, or -errno when none could be had (want 0: 0). Invalid spans
 * handed back are counted as bad requests and skipped. */
int gs_heap_refill_batch(gs_heap_t *h, uint32_t slot, uint32_t spanclass, const uint32_t *back, uint32_t nback,
                         uint32_t want, uint32_t *sids);
int gs_heap_large_alloc(gs_heap_t *h, uint32_t slot, uint64_t npages, uint32_t *sid);
/* The same, the span starting on a multiple of 2^align_shift pages
 * (0..GS_LARGE_MAX_ALIGN_SHIFT; above: -EINVAL, a bad request). */
int gs_heap_large_alloc_aligned(gs_heap_t *h, uint32_t slot, uint64_t npages, uint32_t align_shift, uint32_t *sid);
/* The same for the ring request whose tag is `tag`: remembered with the
 * slot, so that a client resuming the slot after a daemon restart without
 * having read the answer does not leak the object (gs_heap_slot_resume). */
int gs_heap_large_alloc_tagged(gs_heap_t *h, uint32_t slot, uint64_t npages, uint32_t align_shift, uint32_t tag,
                               uint32_t *sid);
/* The client of slot has read the completion that named large span sid:
 * it is its owner's now, and frees may take it back (a free that came
 * while it was in flight is swept here). Ids that are not in flight for
 * this slot are ignored. */
void gs_heap_large_land(gs_heap_t *h, uint32_t slot, uint32_t sid);
/* A large object whose allocation the client never read (it died first):
 * free it. Returns 0 or -EINVAL. */
int gs_heap_large_abandon(gs_heap_t *h, uint32_t slot, uint32_t sid);
/* A client says span sid gained frees (the ring's NOTICE): sweep it if it
 * is uncached. */
int gs_heap_notice(gs_heap_t *h, uint32_t sid);
/* Drain the notice stack; returns the number of spans handled: at most a
 * bounded budget per call (the rest of the chain taken off the stack waits
 * for the next call), and a chain that loops ends at the repeated id
 * (daemon/sweep.c). Its owner drains once per serve pass and once per tick:
 * refills and large allocations do not drain on their own. */
uint32_t gs_heap_drain_notices(gs_heap_t *h);
/* The housekeeping tick's sweep: drain the notice stack (*notices, if not
 * NULL, gets how many), then sweep up to `budget` spans of the full lists
 * (finds frees whose notice was lost with a dying freer). Returns spans swept. */
uint32_t gs_heap_bgsweep(gs_heap_t *h, uint32_t budget, uint32_t *notices);
/* Release idle free runs that have been idle at least `min_idle_ns`;
 * returns bytes released. */
uint64_t gs_heap_scavenge(gs_heap_t *h, uint64_t min_idle_ns);
/* The same for goshmd's housekeeping tick, keeping the recent peak of
 * in-use pages plus 10 % committed (daemon/mheap.c). */
uint64_t gs_heap_scavenge_tick(gs_heap_t *h, uint64_t min_idle_ns);
uint64_t gs_heap_scavenge_delay(const gs_heap_t *h);

typedef struct gs_class_stats {
    uint32_t size;
    uint64_t objects_in_use;
    uint64_t allocs;
    uint64_t frees;
    uint64_t spans;
} gs_class_stats_t;

typedef struct gs_heap_stats {
    uint64_t reserved_bytes;   /* heap capacity (the reservation) */
    uint64_t grown_bytes;      /* arenas grown */
    uint64_t committed_bytes;  /* heap pages backed by memory */
    uint64_t in_use_bytes;     /* bytes in live objects' slots and large spans */
    uint64_t span_bytes;       /* pages in in-use spans */
    uint64_t idle_bytes;       /* free pages still backed */
    uint64_t released_bytes;   /* free pages given back (grown but unbacked) */
    uint64_t metadata_bytes;   /* committed header, slots, side records, meta memfd */
    uint64_t large_objects;
    uint64_t large_allocs, large_frees;
    uint64_t spans_in_use;
    uint64_t notices;          /* notice-stack entries handled */
    uint64_t bad_requests;     /* malformed client requests rejected */
    gs_class_stats_t classes[GS_NUM_SIZE_CLASSES];
    /* Live bytes by owner (daemon/owners.h): attached clients by slot,
     * departed ones by former pid, oldest first. */
    uint64_t slot_in_use[GS_MAX_SLOTS];
    uint32_t ndeparted;
    struct {
        uint32_t pid;
        uint64_t in_use_bytes;
        uint64_t gone_ns;       /* how long ago it departed */
    } departed[GS_OWNERS_DEPARTED];
    uint64_t departed_other_bytes;
} gs_heap_stats_t;

/* Statistics: walks the in-use spans (linear, for goshmctl; not hot). */
void gs_heap_stats(gs_heap_t *h, gs_heap_stats_t *st);
/* The same in pieces, each under the heap lock, the lock free in between:
 * begin (O(slots)), then span ids [from, from + budget) per call (returns
 * where to go on, 0 when the table is done), then end (by owner). Spans
 * that change between pieces are counted as each piece saw them: a snapshot
 * that is exact when the heap is quiet, and never more than one piece of
 * work under the lock. */
void gs_heap_stats_begin(gs_heap_t *h, gs_heap_stats_t *st, gs_owner_tally_t *tally);
uint32_t gs_heap_stats_spans(gs_heap_t *h, gs_heap_stats_t *st, gs_owner_tally_t *tally, uint32_t from,
                             uint32_t budget);
void gs_heap_stats_end(gs_heap_t *h, gs_heap_stats_t *st, gs_owner_tally_t *tally);

/* Check every invariant of the page heap and the mcentrals; returns 0 or
 * -EFAULT after printing what is broken. Linear; for tests. */
int gs_heap_check(gs_heap_t *h);

/* Memfd bytes actually backed (st_blocks * 512), data and meta. */
uint64_t gs_heap_backed_bytes(const gs_heap_t *h);

/* Any client can fallocate() inside the data memfd (a seal cannot forbid it
 * without forbidding writes). If the memfd holds more than the heap side
 * committed, punch again every range the heap believes not backed. Returns
 * the bytes the data memfd held beyond the expected (0: nothing to do), or
 * -errno cast (never for a healthy heap). Called by the housekeeping tick. */
uint64_t gs_heap_reconcile(gs_heap_t *h);

#endif /* GOSHM_HEAP_H */
