/* SPDX-License-Identifier: MIT */
/* free.c: freeing from any thread of any process, and object lookup.
 *
 * Overview: shm/overview.h ("Freeing"). The lookup reads only the read-only
 * meta mapping and the side record; every step is range-checked, so a pointer
 * that is not a live object is reported, never followed into the heap's
 * structures. The one write is an atomic OR (or, for tiny halves, an atomic
 * AND) into the side record, plus a notice push when no mcache owns the span.
 */
#include "client.h"

#include <errno.h> /* errno */

static inline const char *lookup(struct goshm *h, const void *p, gs_lookup_t *out)
{
    const char *cp = p;
    out->off = 0;
    out->sid = 0;
    out->span = NULL;
    if (cp < h->data + h->arena_off || cp >= h->data + h->data_size) return "pointer outside the heap";
    uint64_t off = (uint64_t)(cp - h->data);
    out->off = off;
    uint64_t page = (off - h->arena_off) >> GS_PAGE_SHIFT;
    if (page >= gs_load_acquire(&h->mhdr->xheap_pages)) return "pointer beyond the grown heap";
    /* Acquire: pairs with the heap side's release store of the page map, so
     * the span record's first line is complete. */
    uint32_t sid = gs_load_acquire(&h->pagemap[page]);
    if (sid == 0 || sid >= h->max_spans) return "no span at this page";
    const gs_mspan_t *m = &h->spans[sid];
    out->sid = sid;
    out->span = m;
    if (m->state != GS_SPAN_SMALL && m->state != GS_SPAN_LARGE) return "pointer into free pages";
    uint64_t span_bytes = (uint64_t)m->npages << GS_PAGE_SHIFT;
    if (off < m->base_off || off - m->base_off >= span_bytes || m->side_off < h->side_off ||
        m->side_off >= h->side_off + h->side_size)
        return "pointer outside its span";
    uint64_t rel = off - m->base_off;
    out->side = (gs_side_t *)(h->data + m->side_off);
    if (m->state == GS_SPAN_LARGE) {
        if (rel != 0) return "interior pointer into a large object";
        out->idx = 0;
        return NULL;
    }
    if (gs_spanclass_tiny(m->spanclass)) {
        if (rel % GS_TINY_HALF != 0 || rel / GS_TINY_HALF >= 2u * (uint64_t)m->nelems) return "interior pointer";
        out->idx = (uint32_t)(rel / GS_TINY_HALF);
        return NULL;
    }
    uint32_t idx = gs_divide(rel, m->divmagic);
    if (idx >= m->nelems || (uint64_t)idx * m->elemsize != rel) return "interior pointer";
    out->idx = idx;
    return NULL;
}

const char *gs_lookup(struct goshm *h, const void *p, gs_lookup_t *out) { return lookup(h, p, out); }

void gs_notice_push(struct goshm *h, uint32_t sid)
{
    gs_notice_t *n = gs_notice_in(h->data, h->notice_off, sid);
    uint32_t zero = 0;
    /* Once per sweep: the heap side clears xqueued (seq_cst) before it
     * sweeps. Most frees into a span nobody caches find it queued already,
     * so look before the locked CAS: a free that reads 1 here (seq_cst,
     * after its seq_cst OR) has the clear after it in the single total
     * order, so the sweep that follows the clear sees its bit. W2's free
     * phase is such frees, one after another. */
    if (gs_load_seqcst(&n->xqueued) || !gs_cas_seqcst(&n->xqueued, &zero, 1u)) return;
    uint32_t head = gs_load_relaxed(&h->hdr->xnotice_head);
    do {
        gs_store_relaxed(&n->xnext, head);
        /* Release: the heap side's acquire exchange then sees xnext. */
    } while (!gs_cas_release(&h->hdr->xnotice_head, &head, sid));
    /* No wakeup: the heap side drains the stack before every refill. */
}

/* The byte size of the objects of l's span, as far as the lookup got (0:
 * not known). Reads only the read-only span record. */
static uint64_t object_size(const gs_lookup_t *l)
{
    const gs_mspan_t *m = l->span;
    if (!m) return 0;
    if (m->state == GS_SPAN_LARGE) return m->npages64 << GS_PAGE_SHIFT;
    if (m->state != GS_SPAN_SMALL) return 0;
    if (gs_spanclass_tiny(m->spanclass)) return GS_TINY_HALF;
    return m->elemsize;
}

void gs_bad_free(const char *why, const void *p, const gs_lookup_t *l)
{
    gs_report_bad_free(why, p, l->off, l->sid, object_size(l));
}

static void free_slow(goshm_t *h, void *p);

/* The fast path: freeing the object this thread allocated last steps its
 * span's freeindex back (gs_mcache_undo). It makes no call but the tail call
 * to free_slow, so it saves no register. */
void goshm_free(goshm_t *h, void *p)
{
    if (gs_likely(gs_tls.id == h->id)) {
        gs_mcache_t *c = gs_tls.cache;
        /* c->last is never NULL (GS_NO_LAST): free(NULL) goes on. */
        if (p == c->last && gs_mcache_undo(c)) return;
    }
    free_slow(h, p);
}

static void free_object(goshm_t *h, void *p, bool buffer_check);

static __attribute__((noinline)) void free_slow(goshm_t *h, void *p) { free_object(h, p, true); }

void gs_free_object(struct goshm *h, void *obj) { free_object(h, obj, false); }

static void free_object(goshm_t *h, void *p, bool buffer_check)
{
    /* With a GOSHM_DEBUG mode on, c->last is always GS_NO_LAST (the
     * allocation hook forgets it), so every free gets here. */
    if (!p) return;
    if (gs_unlikely(h->debug)) gs_debug_on_free(h, p);
    gs_lookup_t l;
    const char *why = lookup(h, p, &l);
    if (gs_unlikely(why != NULL)) {
        /* A buffer's payload is 32 bytes into its object (an interior
         * pointer): goshm_free of a buffer is a release, or a bad free
         * (client/buf.c). */
        if (buffer_check && gs_buf_free_hook(h, p)) return;
        gs_bad_free(why, p, &l);
        return;
    }
    const gs_mspan_t *m = l.span;
    gs_side_t *side = l.side;
    _Atomic uint64_t *alloc = gs_side_alloc(side);
    _Atomic uint64_t *freed = gs_side_freed(side, m->awords);

    if (gs_spanclass_tiny(m->spanclass)) {
        uint64_t bit = UINT64_C(1) << (l.idx % 64u);
        uint64_t old = gs_fetch_and_seqcst(&freed[l.idx / 64u], ~bit);
        if (!(old & bit)) {
            /* Not live: nothing was changed, the record is as it was. */
            gs_bad_free("double free (tiny object not live)", p, &l);
            return;
        }
        uint64_t partner = UINT64_C(1) << ((l.idx ^ 1u) % 64u);
        if (!(old & partner) && gs_mspan_owner(m) == 0) gs_notice_push(h, l.sid);
        return;
    }

    uint32_t w = l.idx / 64u;
    uint64_t bit = UINT64_C(1) << (l.idx % 64u);
    /* Is the slot allocated? Either allocBits says so, or it is below the
     * owner's published freeindex (acquire: pairs with the sweep's release
     * store of freeindex = 0 after it folded those slots into allocBits). */
    if (!(gs_load_relaxed(&alloc[w]) & bit)) {
        uint32_t fi = gs_load_acquire(&side->xfreeindex);
        if (l.idx >= fi && !(gs_load_relaxed(&alloc[w]) & bit)) {
            gs_bad_free("double free (slot not allocated)", p, &l);
            return;
        }
    }
    /* After the OR the object is gone: the heap side may sweep the span,
     * give it back and reuse its record. Read the record before. */
    bool large = m->state == GS_SPAN_LARGE;
    uint64_t objsize = object_size(&l);
    /* Still ours: retire its profile sample, poison it (client/profile.c,
     * client/debug.c). Each is one predictable branch when unused. */
    if (gs_unlikely(gs_prof_maybe_sampled(&h->prof, l.sid))) gs_prof_free(h, l.off, l.sid);
    if (gs_unlikely(h->debug & GS_DEBUG_POISON) && !large) gs_poison_fill(p, m->elemsize, l.off);
    uint64_t old = gs_fetch_or_seqcst(&freed[w], bit);
    if (old & bit) {
        gs_report_bad_free("double free", p, l.off, l.sid, objsize);
        return;
    }
    if (large) gs_fetch_add_relaxed(&h->slotp->xlarge_frees, 1);
    /* seq_cst after the seq_cst OR: either we see the owner's clearing store
     * (and notify), or the heap side's sweep that follows it sees our bit. */
    if (gs_mspan_owner(m) == 0) gs_notice_push(h, l.sid);
}

/* Is the object l found live? The same tests as goshm_free makes, without
 * changing anything: a tiny half's bit in the freed words is set while it
 * is live; a slot is allocated when allocBits or the owner's freeindex says
 * so, and live when its freed bit is clear. */
bool gs_obj_live(const gs_lookup_t *l)
{
    const gs_mspan_t *m = l->span;
    gs_side_t *side = l->side;
    _Atomic uint64_t *alloc = gs_side_alloc(side);
    _Atomic uint64_t *freed = gs_side_freed(side, m->awords);
    uint32_t w = l->idx / 64u;
    uint64_t bit = UINT64_C(1) << (l->idx % 64u);
    if (gs_spanclass_tiny(m->spanclass)) return (gs_load_acquire(&freed[w]) & bit) != 0;
    if (!(gs_load_relaxed(&alloc[w]) & bit)) {
        uint32_t fi = gs_load_acquire(&side->xfreeindex);
        if (l->idx >= fi && !(gs_load_relaxed(&alloc[w]) & bit)) return false;
    }
    return (gs_load_acquire(&freed[w]) & bit) == 0;
}

size_t goshm_usable_size(goshm_t *h, const void *p)
{
    if (!p) return 0;
    gs_lookup_t l;
    const char *why = gs_lookup(h, p, &l);
    if (!why && !gs_obj_live(&l)) why = "not a live object (freed?)";
    if (why) {
        /* Not an object of ours: no size to give; EINVAL like a bad free,
         * but not reported (asking is not freeing). */
        errno = EINVAL;
        return 0;
    }
    if (l.span->state == GS_SPAN_LARGE) return (size_t)(l.span->npages64 << GS_PAGE_SHIFT);
    if (gs_spanclass_tiny(l.span->spanclass)) return GS_TINY_HALF;
    return l.span->elemsize;
}
