/* SPDX-License-Identifier: MIT */
/* buf.c: reference-counted buffers on the client side: alloc, retain, release, refs, and goshm_free of a buffer.
 *
 * Overview: shm/overview.h; the header, records and intent: shm/buf.h; the
 * heap side's repair when a process dies: daemon/bufref.c.
 *
 * One process-private mutex (h->buf_lock) serialises this process's buffer
 * and channel operations, so the slot has one intent record, not one per
 * thread. It is never held while sleeping (a blocked send or receive drops
 * it between attempts: client/chan.c).
 *
 * A count change (retain, release), crash-exact:
 *   1. intent = {op, off, id, before = my record's count} (op stored last);
 *   2. lock the header: CAS xword {c, 0} -> {c, me} (seq_cst);
 *   3. my record: before -> before +- 1;
 *   4. xword = {c +- 1, 0}: count and unlock in one release store;
 *   5. release reaching 0: intent.pos = 1, magic 0, free the object (a
 *      channel is drained first);
 *   6. intent = none.
 * A process that dies anywhere in there leaves either an unlocked header
 * and a record that agree, or a header locked by its slot, which the heap
 * side completes (record says done) or unlocks unchanged (record says not
 * done): see daemon/bufref.c. The lock is only ever held between two
 * stores of one thread; a contender spins a little, then sleeps in short
 * steps, and gives up with EBUSY after $GOSHM_TIMEOUT_MS.
 */
#define _GNU_SOURCE
#include "client.h"

#include <errno.h>  /* errno */
#include <stdlib.h> /* getenv, strtoul */
#include <string.h> /* memcpy */
#include <time.h>   /* nanosleep */
#include <signal.h> /* raise */

#include "buf.h"
#include "chan.h"
#include "clock.h"

/* The records of this process, in the slot memfd mapped now. After a
 * daemon restart the slot memfd is a fresh one (client/reconnect.c): the
 * records and intent move into it from the old mapping (kept mapped), here
 * or at the reconnection itself (gs_buf_carry_over). Caller holds
 * buf_lock. */
gs_holdings_t *gs_buf_holdings(struct goshm *h)
{
    gs_slot_t *now = h->slotp;
    if (gs_unlikely(h->hold_slot != now)) {
        if (h->hold_slot && now) memcpy(&now->holdings, &h->hold_slot->holdings, sizeof now->holdings);
        h->hold_slot = now;
    }
    return &now->holdings;
}

void gs_buf_carry_over(struct goshm *h)
{
    /* Only if no buffer operation runs: one that does (perhaps this very
     * thread, reconnecting from inside a malloc) moves them at its next
     * step. */
    if (pthread_mutex_trylock(&h->buf_lock) != 0) return;
    gs_buf_holdings(h);
    pthread_mutex_unlock(&h->buf_lock);
}

static inline uint32_t me(const struct goshm *h) { return h->slot + 1u; }

/* Fault injection for the crash-exactness tests (tests/ipc/test-crashpoints.c):
 * GOSHM_CLIENT_KILLPOINT=NAME:N makes this process SIGKILL itself at the
 * Nth pass through point NAME (the points sit between the shared writes of
 * each operation). Read once; one compare per point when unset. */
_Atomic int gs_kp_state; /* 0: not read, 1: armed, 2: off (client.h: the inline test) */
static char kp_name[48];
static _Atomic long kp_left;

void gs_buf_killpoint_slow(const char *point)
{
    int st = atomic_load_explicit(&gs_kp_state, memory_order_relaxed);
    if (st == 2) return;
    if (st == 0) {
        const char *e = getenv("GOSHM_CLIENT_KILLPOINT");
        const char *colon = e ? strchr(e, ':') : NULL;
        long n = colon ? strtol(colon + 1, NULL, 10) : 0;
        if (!colon || (size_t)(colon - e) >= sizeof kp_name || n <= 0) {
            atomic_store(&gs_kp_state, 2);
            return;
        }
        memcpy(kp_name, e, (size_t)(colon - e));
        kp_name[colon - e] = '\0';
        atomic_store(&kp_left, n);
        atomic_store(&gs_kp_state, 1);
    }
    if (strcmp(kp_name, point) == 0 && atomic_fetch_sub(&kp_left, 1) == 1) raise(SIGKILL);
}

gs_buf_hdr_t *gs_buf_hdr_of(struct goshm *h, const void *p, uint64_t *objsize)
{
    const char *cp = p;
    if (!p || cp < h->data + h->arena_off + GS_BUF_HDR || cp >= h->data + h->data_size) return NULL;
    if (((uintptr_t)cp & 15u) != 0) return NULL;
    gs_lookup_t l;
    const char *obj = cp - GS_BUF_HDR;
    if (gs_lookup(h, obj, &l) != NULL || !gs_obj_live(&l)) return NULL;
    const gs_mspan_t *m = l.span;
    uint64_t size = m->state == GS_SPAN_LARGE ? m->npages64 << GS_PAGE_SHIFT : m->elemsize;
    if (gs_spanclass_tiny(m->spanclass) && m->state == GS_SPAN_SMALL) return NULL;
    gs_buf_hdr_t *hd = (gs_buf_hdr_t *)obj;
    if (gs_load_acquire(&hd->xmagic) != GS_BUF_MAGIC) return NULL;
    if (hd->kind != GS_BUF_PLAIN && hd->kind != GS_BUF_CHAN) return NULL;
    if (objsize) *objsize = size;
    return hd;
}

/* $GOSHM_TIMEOUT_MS as client/ring.c reads it (default 10 s; 0: none).
 * Read here too: this file is part of the engine objects, which do not
 * link the service's. */
static uint32_t timeout_ms(void)
{
    static _Atomic int64_t cached = -1;
    int64_t v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v >= 0) return (uint32_t)v;
    int e = errno;
    const char *s = getenv("GOSHM_TIMEOUT_MS");
    v = 10000;
    if (s && *s && s[0] != '-') {
        char *end;
        errno = 0;
        unsigned long ms = strtoul(s, &end, 10);
        if (!errno && !*end && ms <= 86400000ul) v = (int64_t)ms;
    }
    errno = e;
    atomic_store_explicit(&cached, v, memory_order_relaxed);
    return (uint32_t)v;
}

static uint64_t deadline_ns(void)
{
    uint32_t ms = timeout_ms();
    return ms ? gs_now_ns() + (uint64_t)ms * 1000000u : UINT64_MAX;
}

/* Lock the header (step 2). The count then is *count. -EINVAL: not live
 * any more (count 0, magic gone or id changed); -EBUSY: held past the
 * deadline. *dl is the deadline (0: $GOSHM_TIMEOUT_MS from the first
 * wait, set then): a drain shares one across all its messages, so that a
 * channel whose messages name buffers someone keeps locked costs its
 * closer one timeout, not one per message (tests/ipc/test-chan-attack.c,
 * "drain"). */
static int lock_hdr_until(struct goshm *h, gs_buf_hdr_t *hd, uint64_t id, uint32_t *count, uint64_t *dl)
{
    uint64_t deadline = *dl;
    for (uint32_t spins = 0;; spins++) {
        if (gs_load_acquire(&hd->xmagic) != GS_BUF_MAGIC || hd->id != id) return -EINVAL;
        uint64_t w = gs_load_acquire(&hd->xword);
        if (gs_bufw_holder(w) == 0) {
            if (gs_bufw_count(w) == 0) return -EINVAL;
            if (gs_cas_seqcst(&hd->xword, &w, gs_bufw(gs_bufw_count(w), me(h)))) {
                *count = gs_bufw_count(w);
                return 0;
            }
            continue;
        }
        if (spins < 200) {
            gs_cpu_relax();
            continue;
        }
        if (!deadline) *dl = deadline = deadline_ns();
        if (gs_now_ns() >= deadline) return -EBUSY;
        struct timespec ts = {0, 50000}; /* the holder was preempted, or died (the daemon repairs it) */
        nanosleep(&ts, NULL);
    }
}

static int lock_hdr(struct goshm *h, gs_buf_hdr_t *hd, uint64_t id, uint32_t *count)
{
    uint64_t dl = 0;
    return lock_hdr_until(h, hd, id, count, &dl);
}

static inline void unlock_hdr(gs_buf_hdr_t *hd, uint32_t count)
{
    gs_store_release(&hd->xword, gs_bufw(count, 0));
}

static inline void intent_set(gs_intent_t *in, uint32_t op, uint64_t off, uint64_t id, uint32_t before)
{
    gs_store_release(&in->xop, GS_INTENT_NONE);
    gs_store_release(&in->xoff, off);
    gs_store_release(&in->xid, id);
    gs_store_release(&in->xbefore, before);
    gs_store_release(&in->xpos, 0);
    gs_store_release(&in->xmsg, 0);
    gs_store_release(&in->xop, op);
}

static inline void intent_clear(gs_intent_t *in) { gs_store_release(&in->xop, GS_INTENT_NONE); }

static void free_buffer(struct goshm *h, gs_buf_hdr_t *hd, uint64_t objsize, int depth, uint64_t *dl);

/* A reference that is not in any record of ours: one a message carried
 * into a channel being drained. Dropped under the same lock. */
static void drop_unrecorded(struct goshm *h, uint64_t off, int depth, uint64_t *dl)
{
    uint64_t objsize;
    gs_buf_hdr_t *hd = gs_buf_hdr_of(h, h->data + off, &objsize);
    if (!hd) return;
    uint32_t c;
    if (lock_hdr_until(h, hd, hd->id, &c, dl) != 0) return; /* busy past the deadline: leaked */
    unlock_hdr(hd, c - 1u);
    if (c == 1u) free_buffer(h, hd, objsize, depth + 1, dl);
}

typedef struct drain_arg {
    struct goshm *h;
    int depth;
    uint64_t *dl; /* one deadline for the whole drain, nested ones included */
} drain_arg_t;

static void drain_drop(void *arg, uint64_t off)
{
    drain_arg_t *a = arg;
    if (off < a->h->arena_off || off >= a->h->data_size) return;
    if (a->depth >= 4) return; /* channels of channels of ...: leaked, not recursed into for ever */
    drop_unrecorded(a->h, off, a->depth, a->dl);
}

/* The count reached 0 (step 5): nobody else can reach the buffer. */
static void free_buffer(struct goshm *h, gs_buf_hdr_t *hd, uint64_t objsize, int depth, uint64_t *dl)
{
    if (hd->kind == GS_BUF_CHAN && objsize >= GS_BUF_HDR + sizeof(gs_chan_t)) {
        gs_chan_t *c = (gs_chan_t *)(hd + 1);
        uint32_t cap = c->cap;
        if (cap && (cap & (cap - 1u)) == 0 && cap <= GS_CHAN_MAX_CAP && GS_BUF_HDR + gs_chan_bytes(cap) <= objsize) {
            drain_arg_t a = {h, depth, dl};
            gs_chan_drain(c, cap, drain_drop, &a);
        }
    }
    gs_store_release(&hd->xmagic, 0);
    gs_free_object(h, hd);
}

void *goshm_buf_alloc(goshm_t *h, size_t size)
{
    if (size > (SIZE_MAX >> 1)) {
        errno = ENOMEM;
        return NULL;
    }
    return gs_buf_alloc_kind(h, size, GS_BUF_PLAIN);
}

void *gs_buf_alloc_kind(struct goshm *h, size_t size, uint8_t kind)
{
    pthread_mutex_lock(&h->buf_lock);
    gs_holdings_t *t = gs_buf_holdings(h);
    if (gs_load_relaxed(&t->xused) >= GS_HOLD_MAX) {
        pthread_mutex_unlock(&h->buf_lock);
        errno = ENOSPC;
        return NULL;
    }
    uint64_t id = gs_buf_new_id();
    /* goshm_malloc publishes the slot's freeindex before it returns it, and
     * we may die before xoff below: the intent names the span this thread
     * will most likely take it from (its cached span of the class) and
     * that span's freeindex now, so the heap side can find the slot
     * (daemon/bufref.c, alloc_unrecorded). */
    uint32_t peek_sid = 0, peek_fi = 0;
    if (gs_tls.id == h->id && size + GS_BUF_HDR <= GS_MAX_SMALL_SIZE) {
        const gs_cspan_t *cs = &gs_tls.cache->alloc[gs_spanclass(gs_size_to_class(size + GS_BUF_HDR), 0)];
        peek_sid = cs->sid;
        peek_fi = cs->freeindex;
    }
    gs_intent_t *pin = &t->intent;
    gs_store_release(&pin->xop, GS_INTENT_NONE);
    gs_store_release(&pin->xchan, peek_sid);
    gs_store_release(&pin->xchan_id, 0);
    gs_store_release(&pin->xoff, 0);
    gs_store_release(&pin->xid, id);
    gs_store_release(&pin->xbefore, 0);
    gs_store_release(&pin->xpos, peek_fi);
    gs_store_release(&pin->xmsg, 0);
    gs_store_release(&pin->xop, GS_INTENT_ALLOC);
    char *obj = goshm_malloc(h, size + GS_BUF_HDR);
    int err = errno;
    if (obj) gs_buf_killpoint("alloc-handed");
    t = gs_buf_holdings(h); /* the malloc may have reconnected */
    if (!obj) {
        intent_clear(&t->intent);
        pthread_mutex_unlock(&h->buf_lock);
        errno = err;
        return NULL;
    }
    uint64_t off = (uint64_t)(obj + GS_BUF_HDR - h->data);
    /* The object is ours from here: the heap side frees it if we die
     * before the record has it. */
    gs_store_release(&t->intent.xoff, off);
    gs_buf_killpoint("alloc-malloced");
    gs_buf_hdr_t *hd = (gs_buf_hdr_t *)obj;
    hd->kind = kind;
    memset(hd->pad, 0, sizeof hd->pad);
    hd->id = id;
    hd->size = size;
    gs_store_relaxed(&hd->xword, gs_bufw(1, 0));
    gs_store_release(&hd->xmagic, GS_BUF_MAGIC);
    gs_buf_killpoint("alloc-header");
    gs_hold_add(t, off, id, 1);
    intent_clear(&t->intent);
    pthread_mutex_unlock(&h->buf_lock);
    return obj + GS_BUF_HDR;
}

int gs_buf_retain_locked(struct goshm *h, const void *p)
{
    gs_holdings_t *t = gs_buf_holdings(h);
    gs_buf_hdr_t *hd = gs_buf_hdr_of(h, p, NULL);
    if (!hd) return -EINVAL;
    uint64_t off = (uint64_t)((const char *)p - h->data);
    if (!gs_hold_room(t, off)) return -ENOSPC;
    uint64_t id = hd->id;
    intent_set(&t->intent, GS_INTENT_RETAIN, off, id, gs_hold_count(t, off));
    uint32_t c;
    int rc = lock_hdr(h, hd, id, &c);
    if (rc) {
        intent_clear(&t->intent);
        return rc;
    }
    if (c == UINT32_MAX) {
        unlock_hdr(hd, c);
        intent_clear(&t->intent);
        return -EOVERFLOW;
    }
    gs_buf_killpoint("retain-locked");
    gs_hold_add(t, off, id, 1);
    gs_buf_killpoint("retain-recorded");
    unlock_hdr(hd, c + 1u);
    intent_clear(&t->intent);
    return 0;
}

int gs_buf_release_locked(struct goshm *h, const void *p)
{
    gs_holdings_t *t = gs_buf_holdings(h);
    uint64_t objsize;
    gs_buf_hdr_t *hd = gs_buf_hdr_of(h, p, &objsize);
    if (!hd) return -EINVAL;
    uint64_t off = (uint64_t)((const char *)p - h->data);
    int i = gs_hold_find(t, off);
    uint32_t before = i < 0 ? 0 : gs_load_relaxed(&t->hold[i].xcount);
    uint64_t id = i < 0 ? 0 : gs_load_relaxed(&t->hold[i].xid);
    if (before == 0 || id != hd->id) return -EINVAL; /* we hold no reference to this buffer */
    intent_set(&t->intent, GS_INTENT_RELEASE, off, id, before);
    uint32_t c;
    int rc = lock_hdr(h, hd, id, &c);
    if (rc) {
        intent_clear(&t->intent);
        return rc;
    }
    gs_buf_killpoint("release-locked");
    gs_hold_add(t, off, id, -1);
    gs_buf_killpoint("release-recorded");
    /* pos 1 ("the free is ours, and under way") before the unlock that
     * makes the count 0: a process killed between the two used to leave
     * a buffer of count 0, unlocked, that the repair did not free. */
    if (c == 1u) gs_store_release(&t->intent.xpos, 1);
    unlock_hdr(hd, c - 1u);
    if (c == 1u) {
        gs_buf_killpoint("release-zero");
        uint64_t dl = 0;
        free_buffer(h, hd, objsize, 0, &dl);
    }
    intent_clear(&t->intent);
    return 0;
}

int goshm_buf_retain(goshm_t *h, const void *p)
{
    pthread_mutex_lock(&h->buf_lock);
    int rc = gs_buf_retain_locked(h, p);
    pthread_mutex_unlock(&h->buf_lock);
    if (rc) {
        errno = -rc;
        return -1;
    }
    return 0;
}

int goshm_buf_release(goshm_t *h, const void *p)
{
    pthread_mutex_lock(&h->buf_lock);
    int rc = gs_buf_release_locked(h, p);
    pthread_mutex_unlock(&h->buf_lock);
    if (rc) {
        errno = -rc;
        return -1;
    }
    return 0;
}

uint32_t goshm_buf_refs(goshm_t *h, const void *p)
{
    gs_buf_hdr_t *hd = gs_buf_hdr_of(h, p, NULL);
    uint32_t c = hd ? gs_bufw_count(gs_load_acquire(&hd->xword)) : 0;
    if (!c) errno = EINVAL;
    return c;
}

bool gs_buf_free_hook(struct goshm *h, void *p)
{
    gs_buf_hdr_t *hd = gs_buf_hdr_of(h, p, NULL);
    if (!hd) return false;
    pthread_mutex_lock(&h->buf_lock);
    gs_holdings_t *t = gs_buf_holdings(h);
    uint64_t off = (uint64_t)((char *)p - h->data);
    uint32_t mine = gs_hold_count(t, off);
    uint32_t all = gs_bufw_count(gs_load_acquire(&hd->xword));
    int rc = -EINVAL;
    if (mine == 1u && all == 1u) rc = gs_buf_release_locked(h, p);
    pthread_mutex_unlock(&h->buf_lock);
    if (rc) {
        gs_lookup_t l;
        gs_lookup(h, (char *)hd, &l);
        gs_bad_free(mine == 0 ? "free of a buffer this process holds no reference to"
                              : "free of a buffer other references still hold (use goshm_buf_release)",
                    p, &l);
    }
    return true;
}
