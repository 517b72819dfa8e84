/* SPDX-License-Identifier: MIT */
/* client.h: libgoshm's private state: the attached heap, mcaches, the seam.
 *
 * Overview: shm/overview.h. The cache side reaches the heap side only through
 * the seam (client/seam.h): refill a span class, hand a span back, allocate a
 * large object. Frees need no seam call at all: they set bits in side records
 * and push span ids on the notice stack, both in shared memory.
 */
#ifndef GOSHM_CLIENT_H
#define GOSHM_CLIENT_H

#include <pthread.h>   /* pthread_key_t, pthread_mutex_t */
#include <stdbool.h>   /* bool */
#include <sys/types.h> /* pid_t */

#include "mspan.h"
#include "report.h"
#include "seam.h"
#include "goshm/goshm.h"
#include "profile.h" /* gs_prof_view_t */


#define GS_BATCH GS_RING_MAX_BATCH
#define GS_KEPT 4u
#define GS_KEPT_IDLE 32u

typedef struct gs_mcache {
    gs_cspan_t alloc[GS_NUM_SPAN_CLASSES];
    /* Spans got by a batched refill and not yet used, and spans used up and
     * not yet handed back (they go with the next refill of their class). All
     * belong to this process's slot, so a crash returns them too. */
    uint32_t stash[GS_NUM_SPAN_CLASSES][GS_BATCH];
    uint32_t back[GS_NUM_SPAN_CLASSES][GS_BATCH];
    uint8_t nstash[GS_NUM_SPAN_CLASSES];
    uint8_t nback[GS_NUM_SPAN_CLASSES];
    /* The refill sent ahead for each class (a seam ticket; 0: none), and
     * how many refills the class has needed (saturating): only a class
     * that needed one before gets its next sent ahead, so a class used
     * once holds no second span (client/mcache.c). */
    uint32_t ahead[GS_NUM_SPAN_CLASSES];
    uint8_t nrefills[GS_NUM_SPAN_CLASSES];
    /* Used-up spans the class keeps a while instead of handing back at once
     * (their objects were still live when they ran out), oldest first, and
     * the refill count (epoch) when each class last kept one: a class idle
     * for GS_KEPT_IDLE refills hands its kept spans back (client/mcache.c). */
    uint32_t kept[GS_NUM_SPAN_CLASSES][GS_KEPT];
    uint32_t kept_at[GS_NUM_SPAN_CLASSES];
    uint8_t nkept[GS_NUM_SPAN_CLASSES];
    uint32_t epoch;
    /* The last small object this thread allocated (not tiny), and the view
     * of the span it came from: freeing it at once only steps freeindex back
     * (gs_mcache_undo). GS_NO_LAST, never NULL, when there is none, so that
     * goshm_free's fast path needs no NULL test (free(NULL) never matches).
     * The span's view counts such pairs for the statistics (undone). */
    char *last;
    gs_cspan_t *last_span;
    /* The tiny allocator: the current 16-byte block and whether its second
     * half is still to be handed out. */
    char *tiny_next;     /* second half of the current block, or NULL */
    uint32_t tiny_block; /* its index in the tiny span */
    /* The heap profile's countdown (client/profile.c): bytes until the next
     * sample; INT64_MAX when sampling is off. rng: its random state. */
    int64_t next_sample;
    int64_t debug_sample_left; /* the profile's countdown while GOSHM_DEBUG fires next_sample */
    uint64_t rng;
    /* This thread's stack, [stack_lo, stack_hi), for the profile's
     * frame-pointer walk (client/profile.c): 0/0 until its first sample;
     * stack_hi 1 if unknown (then that thread's samples use backtrace()). */
    uintptr_t stack_lo, stack_hi;
    struct goshm *heap;
    struct gs_mcache *next, *prev; /* the heap's list, under heap->lock */
    /* Every mcache of the process and the thread each belongs to, under
     * client/attach.c's lock of that list (see thread_exit there). */
    struct gs_mcache *all_next, *all_prev;
    pthread_t owner;
} gs_mcache_t;

struct goshm {
    char *data;                      /* data memfd, read-write */
    uint64_t data_size;
    const char *meta;                /* meta memfd, read-only */
    uint64_t meta_size;
    gs_seg_header_t *hdr;            /* data memfd: the notice stack head only */
    const gs_meta_header_t *mhdr;    /* read for xheap_pages only, after attach */
    const _Atomic uint32_t *pagemap;
    const gs_mspan_t *spans;
    /* The layout, copied once at attach from the meta header (read-only for
     * every client) and never read from shared memory again: no other
     * process can change where this one looks (issue 7, point 6). */
    uint64_t arena_off, max_spans, max_pages;
    uint64_t side_off, side_size, notice_off;
    uint64_t epoch, prof_off;
    /* The names directory (shm/names.h) in the read-only meta mapping: its
     * place copied at attach (checked by gs_meta_usable), its entries read
     * lock-free by goshm_name_get (client/name.c). */
    const gs_dirent_t *dir;
    uint32_t dir_cap;
    uint32_t max_slots;
    uint32_t slot;
    gs_slot_t *slotp;                /* this client's own slot memfd */
    bool owns_slot;                  /* slotp is our mapping, to unmap */
    const gs_seam_ops_t *ops;
    void *seam;
    uint64_t id;                     /* unique per attach in this process */
    pthread_key_t key;               /* this thread's mcache */
    pthread_mutex_t lock;            /* guards caches */
    gs_mcache_t *caches;
    int (*detach)(struct goshm *h);  /* the seam's way to detach */
    bool owns_mapping;               /* data/meta are ours to unmap */
    uint32_t debug;                  /* GS_DEBUG_* of GOSHM_DEBUG, read at attach */
    gs_prof_view_t prof;             /* the heap profile region (client/profile.h) */
    /* Buffers and channels (client/buf.c, client/chan.c): one operation
     * at a time per process (the slot has one intent record), never held
     * while sleeping. hold_slot: the slot mapping the reference records are
     * in (after a daemon restart they move to the new slotp). */
    pthread_mutex_t buf_lock;
    gs_slot_t *hold_slot;
    /* Reconnections to an adopting daemon so far (client/reconnect.c):
     * channel handles refresh their eventfd when it changed (client/chan.c). */
    _Atomic uint32_t reconnects;
};

/* "attach.c": map a heap's memfds (data read-write, meta read-only) and
 * check the meta header. 0 or -errno. */
int gs_client_map(struct goshm *h, int data_fd, int meta_fd);
/* Map this client's slot memfd (read-write, exactly slot_size bytes: the
 * meta header's, which the attach reply's must equal) as h->slotp, in place
 * of any slot mapped before. 0 or -errno (-EPROTO: wrong size). */
int gs_client_map_slot(struct goshm *h, int slot_fd, uint64_t slot_size);
void gs_client_unmap(struct goshm *h);
/* Check the meta header of data/meta already set in h (data_size, meta_size
 * too), copy the layout into h and fill in the derived pointers. 0 or
 * -EPROTO. */
int gs_client_adopt(struct goshm *h);
/* Set up the per-thread machinery once the mapping and seam are in place. */
int gs_client_init(struct goshm *h);
void gs_client_fini(struct goshm *h);
/* Put a new mcache of the calling thread on h's list and the process's
 * (client/attach.c). */
void gs_client_link_cache(struct goshm *h, gs_mcache_t *c);
/* The process's mcache list lock, held across fork() (client/fork.c). */
void gs_client_caches_lock(void);
void gs_client_caches_unlock(void);
void gs_client_caches_child(void);

/* "mcache.c" */
gs_mcache_t *gs_mcache_slow(struct goshm *h);
void *gs_mcache_next_free(struct goshm *h, gs_mcache_t *c, uint32_t spanclass);
void gs_mcache_flush(struct goshm *h, gs_mcache_t *c);

/* "debug.c": GOSHM_DEBUG's modes in this process (shm/debug.h). The hooks
 * run only when h->debug is set. */
enum { GS_DEBUG_POISON = 1u, GS_DEBUG_TRACE = 2u };
uint32_t gs_debug_flags(void);
void gs_debug_on_alloc(struct goshm *h, const char *what, void *p, size_t size);
void gs_debug_on_free(struct goshm *h, const void *p);
/* Fill a small object's slot before the free's OR (size: the slot's). */
void gs_poison_fill(void *p, uint32_t size, uint64_t off);

/* "tiny.c" */
void *gs_tiny_alloc(struct goshm *h, gs_mcache_t *c, bool *zero);
void gs_tiny_retire(struct goshm *h, gs_mcache_t *c);

/* "free.c" */
typedef struct gs_lookup {
    uint64_t off;
    uint32_t sid;
    const gs_mspan_t *span;
    gs_side_t *side;
    uint32_t idx;       /* slot index (tiny: half index) */
} gs_lookup_t;
/* Find the live object p points to the start of; NULL reason on success,
 * else why it is not one (for the bad-free report). */
const char *gs_lookup(struct goshm *h, const void *p, gs_lookup_t *out);
void gs_notice_push(struct goshm *h, uint32_t sid);
/* Report p as a bad free with what the lookup found (shm/report.h). */
void gs_bad_free(const char *why, const void *p, const gs_lookup_t *l);
/* Is the object a successful lookup found allocated and not freed? */
bool gs_obj_live(const gs_lookup_t *l);
/* Free the object at obj (its start), as goshm_free does, without the
 * buffer check: buffers free their objects with it (client/buf.c). */
void gs_free_object(struct goshm *h, void *obj);

/* "buf.c": reference-counted buffers (shm/buf.h). */
typedef struct gs_buf_hdr gs_buf_hdr_t;
typedef struct gs_holdings gs_holdings_t;
/* This process's records, moved into the current slot mapping if it
 * changed (a daemon restart). Caller holds buf_lock. */
gs_holdings_t *gs_buf_holdings(struct goshm *h);
/* The same, from the reconnection: only if no buffer operation runs. */
void gs_buf_carry_over(struct goshm *h);
/* The live buffer whose payload is p (NULL: not one); *objsize (if not
 * NULL) gets its object's size. */
gs_buf_hdr_t *gs_buf_hdr_of(struct goshm *h, const void *p, uint64_t *objsize);
void *gs_buf_alloc_kind(struct goshm *h, size_t size, uint8_t kind);
/* retain / release with buf_lock held: 0 or -errno. */
int gs_buf_retain_locked(struct goshm *h, const void *p);
int gs_buf_release_locked(struct goshm *h, const void *p);
/* goshm_free's check: is p a buffer's payload? Then it is released (our
 * only reference) or reported as a bad free; true. false: not a buffer. */
bool gs_buf_free_hook(struct goshm *h, void *p);
/* Fault injection: SIGKILL at the Nth pass through point (see client/buf.c).
 * Inline, so that with GOSHM_CLIENT_KILLPOINT unset (read once) a point
 * costs one load and a predicted branch, not a call (bench/README.md, W5). */
extern _Atomic int gs_kp_state;
void gs_buf_killpoint_slow(const char *point);
static inline void gs_buf_killpoint(const char *point)
{
    if (gs_likely(atomic_load_explicit(&gs_kp_state, memory_order_relaxed) == 2)) return;
    gs_buf_killpoint_slow(point);
}

/* "name.c": the directory's requests to goshmd (issue 10 design, section 3).
 * ChanOpen: 0, or -errno (-ENOENT: no such channel and create_off == 0;
 * -ENOTSUP: h is not attached to a goshmd). On success *off, *id, *cap_out
 * describe the registered channel and *efd is a new descriptor (the caller
 * owns it: the channel's eventfd). ChanUnlink: 0 or -errno (-ENOENT). */
int gs_ctl_chan_open(struct goshm *h, const char *name, uint32_t cap, uint64_t create_off, uint64_t create_id,
                     uint64_t *off, uint64_t *id, uint32_t *cap_out, int *efd);
int gs_ctl_chan_unlink(struct goshm *h, const char *name);

/* c->last when the thread has no object to undo. Never a pointer malloc
 * returns, and not NULL (see gs_mcache_t). */
#define GS_NO_LAST ((char *)1)
static inline void gs_mcache_forget(gs_mcache_t *c) { c->last = GS_NO_LAST; }

/* This thread's mcache and the id of the heap it belongs to (h->id; 0:
 * none): one initial-exec struct, 16 bytes of static TLS, so that the fast
 * paths find both with one GOT load (%fs:off and %fs:off+8). */
typedef struct gs_tls {
    uint64_t id;
    gs_mcache_t *cache;
} gs_tls_t;
extern __thread __attribute__((tls_model("initial-exec"))) gs_tls_t gs_tls;

static inline gs_mcache_t *gs_mcache_get(struct goshm *h)
{
    if (gs_likely(gs_tls.id == h->id)) return gs_tls.cache;
    return gs_mcache_slow(h);
}

/* "malloc.c": size -> span class (not tiny) for every small size, one table indexed
 * by (size + 7) / 8 (the two tables of shm/sizeclasses.h folded into one,
 * 4 KiB), filled by gs_size_lut_init before the first attach returns. */
#define GS_SIZE_LUT_LEN (GS_MAX_SMALL_SIZE / 8u + 1u)
extern uint8_t gs_size_lut[GS_SIZE_LUT_LEN];
void gs_size_lut_init(void);

/* Free p, the object this thread allocated last (p == c->last), by stepping
 * its span's freeindex back: no atomic, and the slot is reused at once
 * (temporary buffers, W1). Crash story: the republished freeindex says the
 * slot is free, which it is. allocCache gets the slot back as its lowest bit:
 * the window starts one slot earlier, and the bit shifted out at the top was
 * 0 (allocCache has no bit beyond its 64-slot window, shm/mspan.h).
 *
 * p is slot freeindex - 1 of c->last_span: c->last is set only by the
 * malloc that handed p out of that view, and everything else that moves the
 * view's freeindex or reloads it (a later malloc, a sweep or refill, which
 * only a malloc triggers, a flush, fork, a sampled or debugged allocation)
 * sets c->last again or forgets it first. So no address check is needed.
 *
 * Returns false if p's freed bit is set: another thread or process freed p
 * already (A allocates p, B frees it, A frees it), and stepping freeindex
 * back would hand the slot out again while the sweep still holds that bit.
 * The ordinary free reports the double free. One relaxed load of a word the
 * span's owner reads anyway at its next sweep. A free that races with this
 * very check (B's OR lands after the load) cannot be told from B freeing a
 * slot that is free: B's own lookup reports it as "slot not allocated" when
 * it sees the stepped-back freeindex, but two frees at the same instant may
 * both pass. */
static inline bool gs_mcache_undo(gs_mcache_t *c)
{
    gs_cspan_t *s = c->last_span;
    gs_mcache_forget(c);
    uint32_t idx = s->freeindex - 1u;
    if (gs_load_relaxed(&s->freed[idx / 64u]) & (UINT64_C(1) << (idx % 64u))) return false;
    s->freeindex = idx;
    gs_store_relaxed(&s->side->xfreeindex, idx);
    s->alloc_cache = (s->alloc_cache << 1) | 1u;
    s->needzero = 1; /* the slot is dirty now */
    s->undone++;
    return true;
}

#endif /* GOSHM_CLIENT_H */
