/* SPDX-License-Identifier: MIT */
/* bufref.c: the heap side of reference-counted buffers: validated lookup and free, its own references, and the repair of a departed client's operation and references.
 *
 * Overview: shm/overview.h; buffers: shm/buf.h; channels: shm/chan.h; the
 * client's half of each protocol: client/buf.c, client/chan.c.
 *
 * Freeing. The heap side frees a buffer's object itself (a dead client's
 * last reference, the directory's): it does not borrow the client's free
 * (client/free.c works through a client's private view of the heap, struct
 * goshm); it has the trusted span records and page map at hand, so the
 * lookup here reads only those, plus the side record's bits, which are
 * client-writable: the object must be allocated there and not freed yet,
 * else nothing is freed. The free itself is the clients' one atomic OR into
 * the freed bitmap, then the span is swept at once if no mcache owns it
 * (gs_heap_notice), or by its owner's sweep (or the reclaim's uncache) if
 * one does.
 *
 * Repair, when a client's slot is reclaimed (gs_heap_bufref_reclaim, first
 * thing in gs_heap_slot_reclaim: the client died, detached, or was found
 * dead at adoption). Its intent record names the one operation it may have
 * been in:
 *   RETAIN / RELEASE: if the buffer's lock holder is the slot, the header
 *     was not updated: the record says whether step 3 happened (count ==
 *     before +- 1); complete ({c +- 1, 0}) or undo ({c, 0}); a release that
 *     reaches 0 frees the buffer. If the holder is not the slot, the header
 *     is consistent already; a release whose intent says the count reached
 *     0 (pos 1) and whose buffer is still live (magic, id, count 0) is
 *     freed here (its releaser died before its free).
 *   ALLOC: an object allocated (intent.off set) that the record does not
 *     have is freed.
 *   SEND: a cell at intent.pos still WRITING by the slot is published with
 *     the intent's message; if the record still counts the reference
 *     (count == before) it is not dropped with the records: it is in the
 *     channel now.
 *   RECV: a cell at intent.pos still READING by the slot is emptied; the
 *     message's reference is dropped unless the record has it already
 *     (intent.msg set and count == before + 1).
 * Then every reference the records name is dropped (records deduplicated
 * by offset, each validated: live, magic, same id; the count saturates at
 * the buffer's). The heap side takes a buffer's lock as GS_BUF_HOLDER_DAEMON
 * with bounded attempts: a live process that keeps it (preempted between
 * its two stores) makes the drop wait in a private list, retried by the
 * housekeeping tick. A lock held by a slot that is not in use, or by
 * DAEMON (a previous goshmd's), is stale: taken over.
 *
 * Known limits: a release that dies between clearing the magic and its
 * free leaks that object (a few instructions); so does an allocation that
 * dies between its malloc and recording the offset in its intent, and a
 * channel drain that dies between taking a message out and dropping its
 * reference. The private retry list is lost if goshmd dies (a leak).
 * With --state-dir, slots are files in the state directory (daemon/slot.c):
 * an adopter maps the previous daemon's file of each claimed slot and drops
 * the records there of a client that died while no daemon ran, or that
 * dies before it resumes its slot. With systemd's fd store (no directory)
 * slot memfds are not kept: such a client's references leak.
 *
 * Limits against a hostile client (tests/ipc/test-chan-attack.c):
 *   - The pending list is finite (GS_BUFREF_PENDING entries, merged with
 *     the last PENDING_DEDUP only). A live client that keeps the locks of
 *     many distinct buffers (its own, or forged headers in any object it
 *     can write) and makes the heap side drop references to them (a drain
 *     of a channel whose messages name them, its own dying child's
 *     records) fills it; a drop that finds a lock busy while it is full is
 *     counted in `lost` and leaks for good, even one a victim's process
 *     held briefly. What it would take: entries charged to the slot that
 *     holds the lock (dropped, or moved to a per-slot list, when that slot
 *     is reclaimed) instead of one shared list.
 *   - The freed and alloc bits of a small object are client-writable: a
 *     client racing a drain can revive a small channel it just freed
 *     (bits, magic, count) before the next message naming it is dropped,
 *     so one drain may drain that channel again per message: at most
 *     cap (1 << 20) times its capacity (about 2000 cells for a small
 *     object) cell visits, seconds of work, not unbounded. A large
 *     object's state is the heap side's own (no revival).
 */
#include "bufref.h"
#include "heap_internal.h"

#include <stdlib.h> /* malloc, qsort */
#include <string.h> /* memcpy */
#include <sys/mman.h> /* munmap */
#include <unistd.h>   /* write */

#include "buf.h"
#include "chan.h"

#define LOCK_ATTEMPTS 4096u
/* Spins on locks held by live processes, in all, per operation (a
 * reclaim, a tick, a retain or release for the directory): about a
 * millisecond of CPU. Without it, one operation could spin LOCK_ATTEMPTS
 * times for each of a million references: a channel of capacity 1 << 20
 * whose cells all carry a reference to a buffer that a live attacker keeps
 * locked made one ChanUnlink (or a reclaim) spin for minutes under the
 * heap lock (tests/ipc/test-chan-attack.c, "spin"). Once it is spent, a
 * busy lock is tried once and the drop waits in the pending list (retried
 * by the tick), which costs the same as any other drop. Per operation, not
 * per tick: a budget shared by a whole tick sent ordinary brief waits to
 * the pending list much more often, and the opt-in churn attack of that
 * test then leaked several times more often (some path through the
 * pending list loses a reference; not found in time). */
#define SPIN_BUDGET 65536u
#define PENDING_DEDUP 16u /* pending_add merges with the last few entries only: O(1) per drop */
#define MAX_DEPTH 4 /* channels carrying channels carrying ...: deeper ones leak */

typedef struct bobj {
    gs_buf_hdr_t *hd;
    uint32_t sid, idx;
    uint64_t objsize;
} bobj_t;

/* Is the object at obj_off the start of an allocated, not freed object?
 * Reads the trusted records and the side record's bits. */
static bool object_live(gs_heap_t *h, uint64_t obj_off, bobj_t *b)
{
    if (obj_off < h->lay.arena_off || obj_off >= h->data_size) return false;
    uint64_t page = (obj_off - h->lay.arena_off) >> GS_PAGE_SHIFT;
    if (page >= h->heap_pages) return false;
    uint32_t sid = gs_load_relaxed(&h->pagemap[page]);
    if (sid == 0 || sid >= h->span_bump) return false;
    gs_mspan_t *s = gs_span(h, sid);
    if (s->state != GS_SPAN_SMALL && s->state != GS_SPAN_LARGE) return false;
    if (obj_off < s->base_off) return false;
    uint64_t rel = obj_off - s->base_off;
    uint32_t idx;
    uint64_t size;
    if (s->state == GS_SPAN_LARGE) {
        if (rel != 0) return false;
        idx = 0;
        size = s->npages64 << GS_PAGE_SHIFT;
    } else {
        if (gs_spanclass_tiny(s->spanclass) || s->elemsize == 0) return false;
        if (rel % s->elemsize != 0 || rel / s->elemsize >= s->nelems) return false;
        idx = (uint32_t)(rel / s->elemsize);
        size = s->elemsize;
    }
    gs_side_t *side = gs_side_of(h, s);
    _Atomic uint64_t *alloc = gs_side_alloc(side);
    _Atomic uint64_t *freed = gs_side_freed(side, s->awords);
    uint64_t bit = UINT64_C(1) << (idx % 64u);
    if (gs_load_acquire(&freed[idx / 64u]) & bit) return false;
    if (s->state == GS_SPAN_SMALL && !(gs_load_relaxed(&alloc[idx / 64u]) & bit)) {
        /* Below the freeindex of its owner (client-published, clamped), or
         * the one the next sweep folds in while no mcache owns it. */
        uint32_t fi = s->owner ? gs_load_acquire(&side->xfreeindex) : s->freeindex;
        if (fi > s->nelems) fi = s->nelems;
        if (idx >= fi) return false;
    }
    b->hd = (gs_buf_hdr_t *)(h->data + obj_off);
    b->sid = sid;
    b->idx = idx;
    b->objsize = size;
    return true;
}

/* A live buffer at payload offset off (id 0: any), of kind `kind` (0: any). */
static bool buf_at(gs_heap_t *h, uint64_t off, uint64_t id, uint8_t kind, bobj_t *b)
{
    if (off < GS_BUF_HDR || (off & 15u) != 0 || !object_live(h, off - GS_BUF_HDR, b)) return false;
    if (b->objsize < GS_BUF_HDR) return false;
    if (gs_load_acquire(&b->hd->xmagic) != GS_BUF_MAGIC) return false;
    uint8_t k = *(volatile uint8_t *)&b->hd->kind;
    if (k != GS_BUF_PLAIN && k != GS_BUF_CHAN) return false;
    if (kind && k != kind) return false;
    if (id && *(volatile uint64_t *)&b->hd->id != id) return false;
    return true;
}

/* The channel in buffer b, and its capacity checked against the object
 * size (the header's cap is client-writable). NULL if it is not one. */
static gs_chan_t *chan_of(const bobj_t *b, uint32_t *cap)
{
    if (b->hd->kind != GS_BUF_CHAN || b->objsize < GS_BUF_HDR + sizeof(gs_chan_t)) return NULL;
    gs_chan_t *c = (gs_chan_t *)(b->hd + 1);
    uint32_t k = *(volatile uint32_t *)&c->cap;
    if (*(volatile uint32_t *)&c->magic != GS_CHAN_MAGIC || k == 0 || (k & (k - 1u)) != 0 || k > GS_CHAN_MAX_CAP ||
        GS_BUF_HDR + gs_chan_bytes(k) > b->objsize)
        return NULL;
    *cap = k;
    return c;
}

/* Free the object: the OR, then sweep it now if nobody caches its span. */
static void free_obj(gs_heap_t *h, const bobj_t *b)
{
    gs_mspan_t *s = gs_span(h, b->sid);
    _Atomic uint64_t *freed = gs_side_freed(gs_side_of(h, s), s->awords);
    uint64_t bit = UINT64_C(1) << (b->idx % 64u);
    if (gs_fetch_or_seqcst(&freed[b->idx / 64u], bit) & bit) return; /* freed meanwhile by someone */
    if (s->list == GS_LIST_CACHED || s->list == GS_LIST_INFLIGHT) return; /* its owner's sweep, or landing */
    gs_heap_notice(h, b->sid);
}

static bool holder_stale(gs_heap_t *h, uint32_t holder)
{
    if (holder == GS_BUF_HOLDER_DAEMON) return true; /* only we are the heap side: a previous goshmd's */
    if (holder == 0 || holder > h->cfg.max_slots) return true; /* garbage */
    return !h->slots[holder - 1u].in_use;
}

/* Lock a buffer as the heap side. A holder that is a live process gets
 * LOCK_ATTEMPTS spins while the operation's budget lasts, one look after. The
 * CAS loop on an unlocked or stale word is bounded too: each failed CAS
 * counts as an attempt (a scribbler rewriting the word in a loop). */
static int dlock(gs_heap_t *h, gs_buf_hdr_t *hd, uint32_t *count)
{
    gs_bufref_state_t *st = &h->bufref;
    for (uint32_t i = 0; i < LOCK_ATTEMPTS; i++) {
        uint64_t w = gs_load_acquire(&hd->xword);
        uint32_t holder = gs_bufw_holder(w);
        if (holder == 0 || holder_stale(h, holder)) {
            if (gs_cas_seqcst(&hd->xword, &w, gs_bufw(gs_bufw_count(w), GS_BUF_HOLDER_DAEMON))) {
                *count = gs_bufw_count(w);
                return 0;
            }
            continue;
        }
        if (st->spin_left == 0) break;
        st->spin_left--;
        gs_cpu_relax();
    }
    return -EBUSY;
}

static void pending_add(gs_heap_t *h, uint64_t off, uint64_t id, uint32_t n)
{
    gs_bufref_state_t *st = &h->bufref;
    /* Merge with a recent entry only (a drain adds the same buffer many
     * times in a row): a full scan per drop made a drain of a million
     * references to distinct locked buffers quadratic. Unmerged
     * duplicates are separate entries, each with its own count. */
    uint32_t from = st->npending > PENDING_DEDUP ? st->npending - PENDING_DEDUP : 0;
    for (uint32_t i = from; i < st->npending; i++)
        if (st->pending[i].off == off && st->pending[i].id == id) {
            st->pending[i].count += n;
            return;
        }
    if (st->npending < GS_BUFREF_PENDING) {
        st->pending[st->npending].off = off;
        st->pending[st->npending].id = id;
        st->pending[st->npending].count = n;
        st->npending++;
    } else {
        st->lost += n;
    }
}

static int drop(gs_heap_t *h, uint64_t off, uint64_t id, uint32_t n, int depth);

typedef struct drain_ctx {
    gs_heap_t *h;
    int depth;
} drain_ctx_t;

static void drain_drop(void *arg, uint64_t off)
{
    drain_ctx_t *d = arg;
    bobj_t b;
    if (!buf_at(d->h, off, 0, 0, &b)) return; /* garbage, or gone */
    uint64_t id = b.hd->id;
    if (d->depth >= MAX_DEPTH) {
        d->h->bufref.lost++;
        return;
    }
    if (drop(d->h, off, id, 1, d->depth + 1) == -EBUSY) pending_add(d->h, off, id, 1);
}

/* The count of b reached 0: nobody can reach it any more. */
static void free_buf(gs_heap_t *h, const bobj_t *b, int depth)
{
    uint32_t cap;
    gs_chan_t *c = chan_of(b, &cap);
    if (c) {
        drain_ctx_t d = {h, depth};
        gs_chan_drain(c, cap, drain_drop, &d);
    }
    gs_store_release(&b->hd->xmagic, 0);
    free_obj(h, b);
}

/* Drop n references to the buffer at off (id 0: any). 0, -EINVAL, -EBUSY. */
static int drop(gs_heap_t *h, uint64_t off, uint64_t id, uint32_t n, int depth)
{
    bobj_t b;
    if (!buf_at(h, off, id, 0, &b)) return -EINVAL;
    uint32_t c;
    int rc = dlock(h, b.hd, &c);
    if (rc) return rc;
    uint32_t k = n < c ? n : c; /* saturate: never below 0 */
    gs_store_release(&b.hd->xword, gs_bufw(c - k, 0));
    if (c > 0 && c - k == 0) free_buf(h, &b, depth);
    return 0;
}

int gs_heap_buf_retain(gs_heap_t *h, uint64_t off, uint64_t id)
{
    h->bufref.spin_left = SPIN_BUDGET;
    bobj_t b;
    if (!buf_at(h, off, id, 0, &b)) return -EINVAL;
    uint32_t c;
    int rc = dlock(h, b.hd, &c);
    if (rc) return rc;
    if (c == 0 || c == UINT32_MAX) {
        gs_store_release(&b.hd->xword, gs_bufw(c, 0));
        return -EINVAL;
    }
    gs_store_release(&b.hd->xword, gs_bufw(c + 1u, 0));
    return 0;
}

int gs_heap_buf_release(gs_heap_t *h, uint64_t off, uint64_t id)
{
    h->bufref.spin_left = SPIN_BUDGET;
    return drop(h, off, id, 1, 0);
}

bool gs_heap_chan_valid(gs_heap_t *h, uint64_t off, uint64_t id, uint32_t cap)
{
    bobj_t b;
    uint32_t k;
    if (!buf_at(h, off, id, GS_BUF_CHAN, &b)) return false;
    return chan_of(&b, &k) && k == cap;
}

/* ---- reclaim ------------------------------------------------------------------ */

typedef struct rec {
    uint64_t off, id;
    uint32_t count;
    int32_t adjust; /* references the repair moved out of (< 0) or into (> 0) this record */
} rec_t;

static int rec_cmp(const void *a, const void *b)
{
    uint64_t x = ((const rec_t *)a)->off, y = ((const rec_t *)b)->off;
    return x < y ? -1 : x > y;
}

static rec_t *rec_find(rec_t *r, uint32_t n, uint64_t off)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2u;
        if (r[mid].off < off) lo = mid + 1u;
        else hi = mid;
    }
    return lo < n && r[lo].off == off ? &r[lo] : NULL;
}

static uint32_t rec_count(rec_t *r, uint32_t n, uint64_t off)
{
    rec_t *e = rec_find(r, n, off);
    return e ? e->count : 0;
}

/* The records of the slot, copied out once (the memory is the client's),
 * sorted and deduplicated by offset. */
static uint32_t snapshot(const gs_holdings_t *t, rec_t *r)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < GS_HOLD_SLOTS; i++) {
        uint64_t off = gs_load_relaxed((_Atomic uint64_t *)&t->hold[i].xoff);
        uint32_t c = gs_load_relaxed((_Atomic uint32_t *)&t->hold[i].xcount);
        if (off == 0 || c == 0) continue;
        r[n].off = off;
        r[n].id = gs_load_relaxed((_Atomic uint64_t *)&t->hold[i].xid);
        r[n].count = c;
        r[n].adjust = 0;
        n++;
    }
    qsort(r, n, sizeof *r, rec_cmp);
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (k == 0 || r[k - 1].off != r[i].off) r[k++] = r[i];
    return k;
}

/* A message the repair published: wake the channel's pollers too, as its
 * sender would have (the eventfd of its directory entry, daemon/names.c),
 * if any handle polls it. The directory is the heap side's own memory. */
static void signal_pollers(gs_heap_t *h, gs_chan_t *c, uint64_t chan_off)
{
    if (gs_load_seqcst(&c->xfdwait) == 0) return;
    for (uint32_t b = 0; b < GS_DIR_CAP; b++) {
        if (h->dir[b].kind != GS_DIR_CHAN || h->dir[b].off != chan_off || h->names.efd1[b] <= 0) continue;
        uint64_t one = 1;
        ssize_t n = write(h->names.efd1[b] - 1, &one, sizeof one);
        (void)n; /* EAGAIN: saturated, readable anyway */
    }
}

/* An allocation that died before it recorded its object (intent ALLOC,
 * xoff 0): goshm_malloc may have handed the slot out already. The intent
 * names the span the allocating thread had cached for the class (xchan) and
 * its freeindex then (xpos). If that span is still this slot's and its
 * published freeindex moved, the slot just below it is the one handed out
 * (a hand-out publishes idx + 1): free it. Untrusted input all along (the
 * span must be this slot's own, the object live, a header, if any, ours), so
 * a lying client can only free an object of a span it caches, which it
 * could free anyway. Not found (a refill gave it a new span): the slot
 * stays allocated, the leak goshm(3) names. */
static void alloc_unrecorded(gs_heap_t *h, uint32_t slot, gs_intent_t *in, uint64_t id)
{
    uint64_t sid = gs_load_relaxed(&in->xchan), fi0 = gs_load_relaxed(&in->xpos);
    if (sid == 0 || sid >= h->span_bump) return;
    gs_mspan_t *s = gs_span(h, (uint32_t)sid);
    if (s->state != GS_SPAN_SMALL || s->owner != slot + 1u || gs_spanclass_tiny(s->spanclass) || s->elemsize == 0)
        return;
    uint32_t fi = gs_load_acquire(&gs_side_of(h, s)->xfreeindex);
    if (fi > s->nelems) fi = s->nelems;
    if (fi == 0 || fi == fi0) return; /* nothing handed out since */
    bobj_t b;
    if (!object_live(h, s->base_off + (uint64_t)(fi - 1u) * s->elemsize, &b)) return;
    if (gs_load_acquire(&b.hd->xmagic) == GS_BUF_MAGIC && *(volatile uint64_t *)&b.hd->id != id) return;
    gs_store_release(&b.hd->xmagic, 0);
    free_obj(h, &b);
    h->bufref.repaired++;
}

/* The intent's operation: finish or undo it (see the top of this file). */
static void repair(gs_heap_t *h, uint32_t slot, gs_intent_t *in, rec_t *r, uint32_t n)
{
    uint32_t op = gs_load_acquire(&in->xop);
    uint32_t me = slot + 1u;
    uint64_t off = gs_load_relaxed(&in->xoff), id = gs_load_relaxed(&in->xid);
    uint32_t before = gs_load_relaxed(&in->xbefore);
    uint64_t pos = gs_load_relaxed(&in->xpos);
    bobj_t b;
    switch (op) {
    case GS_INTENT_RETAIN:
    case GS_INTENT_RELEASE: {
        if (!buf_at(h, off, id, 0, &b)) return;
        uint64_t w = gs_load_acquire(&b.hd->xword);
        uint32_t c = gs_bufw_count(w);
        if (gs_bufw_holder(w) == me) {
            uint32_t rec = rec_count(r, n, off);
            uint32_t nc = c;
            if (op == GS_INTENT_RETAIN && rec == before + 1u && c < UINT32_MAX) nc = c + 1u;
            if (op == GS_INTENT_RELEASE && rec + 1u == before && c > 0) nc = c - 1u;
            gs_store_release(&b.hd->xword, gs_bufw(nc, 0));
            h->bufref.repaired++;
            if (c > 0 && nc == 0) free_buf(h, &b, 0);
        } else if (op == GS_INTENT_RELEASE && pos == 1 && gs_bufw_holder(w) == 0 && c == 0) {
            /* It dropped the last reference and died before freeing. */
            h->bufref.repaired++;
            free_buf(h, &b, 0);
        }
        return;
    }
    case GS_INTENT_ALLOC:
        if (off == 0) {
            alloc_unrecorded(h, slot, in, id);
            return;
        }
        if (off < GS_BUF_HDR || rec_count(r, n, off) != 0 || !object_live(h, off - GS_BUF_HDR, &b)) return;
        if (gs_load_acquire(&b.hd->xmagic) == GS_BUF_MAGIC && *(volatile uint64_t *)&b.hd->id != id) return;
        gs_store_release(&b.hd->xmagic, 0);
        free_obj(h, &b);
        h->bufref.repaired++;
        return;
    case GS_INTENT_SEND:
    case GS_INTENT_RECV: {
        uint32_t cap;
        gs_chan_t *c;
        if (!buf_at(h, gs_load_relaxed(&in->xchan), gs_load_relaxed(&in->xchan_id), GS_BUF_CHAN, &b) ||
            !(c = chan_of(&b, &cap)) || pos == UINT64_MAX || pos >= (UINT64_C(1) << 46))
            return;
        gs_cell_t *cell = &c->cells[pos & (cap - 1u)];
        uint64_t s = gs_load_acquire(&cell->xstate);
        if (op == GS_INTENT_SEND && s == gs_cell(pos, me, GS_CELL_WRITING)) {
            bool carry = before >= 1u;
            if (carry) {
                rec_t *e = rec_find(r, n, off);
                if (e && e->count == before) e->adjust -= 1; /* the reference is in the channel now */
            }
            gs_chan_publish(c, cap, pos, (off & ~GS_MSG_REF) | (carry ? GS_MSG_REF : 0));
            if (!h->dry_run) signal_pollers(h, c, gs_load_relaxed(&in->xchan));
            h->bufref.repaired++;
        } else if (op == GS_INTENT_RECV && s == gs_cell(pos, me, GS_CELL_READING)) {
            uint64_t msg = gs_load_relaxed(&cell->xmsg);
            if (msg & GS_MSG_REF) {
                uint64_t o = msg & ~GS_MSG_REF;
                bool recorded = gs_load_relaxed(&in->xmsg) == msg && rec_count(r, n, o) == before + 1u;
                if (!recorded) {
                    bobj_t mb;
                    if (buf_at(h, o, 0, 0, &mb)) {
                        uint64_t mid = mb.hd->id;
                        if (drop(h, o, mid, 1, 0) == -EBUSY) pending_add(h, o, mid, 1);
                    }
                }
            }
            gs_chan_consume(c, cap, pos);
            h->bufref.repaired++;
        }
        return;
    }
    default:
        return;
    }
}

static void reclaim_one(gs_heap_t *h, uint32_t slot, gs_slot_t *sl);

void gs_heap_bufref_reclaim(gs_heap_t *h, uint32_t slot)
{
    h->bufref.spin_left = SPIN_BUDGET;
    /* The previous daemon's slot file first (an adopted slot whose client
     * never resumed: its records are there, the new slot is empty). */
    gs_slot_t *old = h->slots[slot].old_map;
    if (old) {
        reclaim_one(h, slot, old);
        munmap(old, GS_SLOT_MAP_SIZE);
        h->slots[slot].old_map = NULL;
    }
    gs_slot_t *sl = gs_slot_at(h, slot);
    if (sl) reclaim_one(h, slot, sl);
}

static void reclaim_one(gs_heap_t *h, uint32_t slot, gs_slot_t *sl)
{
    gs_holdings_t *t = &sl->holdings;
    rec_t *r = malloc(sizeof *r * GS_HOLD_SLOTS);
    if (!r) return; /* no memory: its references leak */
    uint32_t n = snapshot(t, r);
    repair(h, slot, &t->intent, r, n);
    gs_store_release(&t->intent.xop, GS_INTENT_NONE);
    for (uint32_t i = 0; i < n; i++) {
        int64_t k = (int64_t)r[i].count + r[i].adjust;
        if (k <= 0) continue;
        int rc = drop(h, r[i].off, r[i].id, (uint32_t)k, 0);
        if (rc == -EBUSY) pending_add(h, r[i].off, r[i].id, (uint32_t)k);
        else if (rc == 0) h->bufref.dropped += (uint64_t)k;
        /* -EINVAL: not a live buffer of that id (freed, or a lie): nothing to drop */
    }
    free(r);
}

uint32_t gs_heap_bufref_tick(gs_heap_t *h)
{
    gs_bufref_state_t *st = &h->bufref;
    st->spin_left = SPIN_BUDGET;
    /* The list is taken out first and each drop that is still busy goes
     * back through pending_add: a drop may add to the list itself (a
     * channel freed here drains its messages), and pending_add merges
     * into existing entries, which an in-place pass would be overwriting
     * behind its cursor (a merged count lost: a leak). */
    static struct { uint64_t off, id; uint32_t count, pad; } work[GS_BUFREF_PENDING];
    uint32_t n = st->npending;
    memcpy(work, st->pending, sizeof work[0] * n);
    st->npending = 0;
    for (uint32_t i = 0; i < n; i++) {
        int rc = drop(h, work[i].off, work[i].id, work[i].count, 0);
        if (rc == -EBUSY) pending_add(h, work[i].off, work[i].id, work[i].count);
        else if (rc == 0) st->dropped += work[i].count;
    }
    return st->npending;
}

void gs_heap_bufref_counts(const gs_heap_t *h, uint64_t *dropped, uint64_t *repaired, uint32_t *waiting,
                           uint64_t *lost)
{
    *dropped = h->bufref.dropped;
    *repaired = h->bufref.repaired;
    *waiting = h->bufref.npending;
    *lost = h->bufref.lost;
}
