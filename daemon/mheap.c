/* SPDX-License-Identifier: MIT */
/* mheap.c: the page heap: free runs of 8 KiB pages, arenas, commit, scavenging.
 *
 * Overview: shm/overview.h. Go finds free pages with a radix tree of summaries
 * over a bitmap (mpagealloc.go): O(log) searches that prefer low addresses,
 * which Go needs because its scavenger and heap growth work by address. We
 * keep free runs as span records in two-level segregated-fit bins (TLSF: a
 * first level per power of two, 16 linear sub-bins per level, a bitmap for
 * each), which gives O(1) allocation and free with bounded waste (a run found
 * is at most 1/16 larger than asked for before the split), and coalesce
 * neighbours in O(1) through boundary tags: the page map entries of a free
 * run's first and last page name its record. Nothing scans the heap. Our
 * scavenger works on whole free runs, oldest first, so address order buys us
 * nothing that would pay for the radix tree's extra levels.
 *
 * Arenas of 64 MiB are grown contiguously from heap page 0, so a new arena
 * coalesces with a free run at the top of the previous one and large spans can
 * cross arenas. The page map (meta memfd) is the arena index: heap page ->
 * span id; it is committed an arena at a time before the arena is used.
 *
 * Page states (GS_PAGE_*) follow Go's memory states: a page is RELEASED
 * (Prepared) until a span is carved over it, when it is committed with
 * fallocate; a freed span's pages stay READY (idle) until the scavenger
 * punches them out again. needzero is derived from this: a span all of whose
 * pages were RELEASED is zero.
 */
#include "heap_internal.h"

#include <errno.h>  /* ENOMEM */
#include <string.h> /* memset */

/* ---- TLSF bins ---------------------------------------------------------- */

static void mapping(uint64_t n, uint32_t *fl, uint32_t *sl)
{
    if (n < GS_TLSF_SL) {
        *fl = 0;
        *sl = (uint32_t)n;
    } else {
        uint32_t f = 63u - (uint32_t)__builtin_clzll(n);
        *fl = f - GS_TLSF_SL_LOG + 1u;
        *sl = (uint32_t)(n >> (f - GS_TLSF_SL_LOG)) - GS_TLSF_SL;
    }
}

/* A free run lives in the warm set while it has committed pages. Its
 * ready_pages must not change while it is in a bin: remove, change, insert. */
static void bin_insert(gs_heap_t *h, uint32_t sid)
{
    gs_mspan_t *s = gs_span(h, sid);
    uint32_t fl, sl, w = s->ready_pages != 0;
    mapping(s->npages, &fl, &sl);
    gs_spanlist_push(h->spans, &h->bins[w][fl][sl], sid, GS_LINK_LIST);
    h->fl_bitmap[w] |= 1u << fl;
    h->sl_bitmap[w][fl] |= 1u << sl;
    s->list = GS_LIST_BIN;
}

static void bin_remove(gs_heap_t *h, uint32_t sid)
{
    gs_mspan_t *s = gs_span(h, sid);
    uint32_t fl, sl, w = s->ready_pages != 0;
    mapping(s->npages, &fl, &sl);
    gs_spanlist_remove(h->spans, &h->bins[w][fl][sl], sid, GS_LINK_LIST);
    if (!h->bins[w][fl][sl].head) {
        h->sl_bitmap[w][fl] &= ~(1u << sl);
        if (!h->sl_bitmap[w][fl]) h->fl_bitmap[w] &= ~(1u << fl);
    }
    s->list = GS_LIST_NONE;
}

static uint32_t bin_find_in(gs_heap_t *h, uint32_t w, uint32_t fl, uint32_t sl)
{
    uint32_t slmap = h->sl_bitmap[w][fl] & (~0u << sl);
    if (!slmap) {
        uint32_t flmap = fl + 1u < GS_TLSF_FL ? h->fl_bitmap[w] & (~0u << (fl + 1u)) : 0;
        if (!flmap) return 0;
        fl = (uint32_t)__builtin_ctz(flmap);
        slmap = h->sl_bitmap[w][fl];
    }
    sl = (uint32_t)__builtin_ctz(slmap);
    return h->bins[w][fl][sl].head;
}

/* A free run of at least n pages, or 0. Rounds n up to the next sub-bin
 * boundary so that any run in the bin found is large enough. Runs with
 * committed pages come first: reusing them costs no fallocate and no new
 * memory (measured on W2: preferring the smallest fit regardless left
 * 21 MiB committed and idle at the peak while fresh pages were committed). */
static uint32_t bin_find(gs_heap_t *h, uint64_t n)
{
    if (n >= GS_TLSF_SL) {
        uint32_t f = 63u - (uint32_t)__builtin_clzll(n);
        n += (UINT64_C(1) << (f - GS_TLSF_SL_LOG)) - 1u;
    }
    uint32_t fl, sl;
    mapping(n, &fl, &sl);
    if (fl >= GS_TLSF_FL) return 0;
    uint32_t sid = bin_find_in(h, 1, fl, sl);
    return sid ? sid : bin_find_in(h, 0, fl, sl);
}

/* The free run at the top of the grown heap if it holds n pages, or 0.
 * bin_find rounds up to a sub-bin boundary, so it can miss a run that is
 * large enough but sits in the bin of n itself: after grow() that is the run
 * grow just made (top free pages + the new arenas), and without this check a
 * request the heap can serve would fail, or grow the heap for nothing. */
static uint32_t top_run(gs_heap_t *h, uint64_t n)
{
    if (h->heap_pages == 0) return 0;
    uint32_t sid = gs_load_relaxed(&h->pagemap[h->heap_pages - 1u]);
    if (!sid) return 0;
    const gs_mspan_t *s = gs_span(h, sid);
    return s->state == GS_SPAN_FREE && s->start + s->npages == h->heap_pages && s->npages >= n ? sid : 0;
}

/* ---- scavenge list: free runs with READY pages, oldest first ----------- */

static void scav_append(gs_heap_t *h, uint32_t sid) { gs_spanlist_append(h->spans, &h->scav, sid, GS_LINK_SCAV); }

static void scav_remove(gs_heap_t *h, uint32_t sid)
{
    gs_mspan_t *s = gs_span(h, sid);
    if (!s->ready_pages) return;
    gs_spanlist_remove(h->spans, &h->scav, sid, GS_LINK_SCAV);
}

void gs_mheap_adopt_run(gs_heap_t *h, uint32_t sid)
{
    bin_insert(h, sid);
    if (gs_span(h, sid)->ready_pages) scav_append(h, sid);
}

/* ---- free runs --------------------------------------------------------- */

static void set_tags(gs_heap_t *h, uint32_t sid)
{
    gs_mspan_t *s = gs_span(h, sid);
    gs_txn_page(h, s->start);
    gs_txn_page(h, s->start + s->npages - 1u);
    gs_store_release(&h->pagemap[s->start], sid);
    gs_store_release(&h->pagemap[s->start + s->npages - 1u], sid);
}

/* Two records for one run: keep the lower id, free the other, so that high
 * chunks of span ids empty out and can be trimmed (daemon/fixalloc.c). */
static uint32_t keep_lower(gs_heap_t *h, uint32_t a, uint32_t b)
{
    if (!a) return b;
    if (b < a) { uint32_t t = a; a = b; b = t; }
    gs_span_record_free(h, b);
    return a;
}

/* Insert [start, start+npages) as a free run with `ready` READY pages,
 * coalescing with free neighbours. `sid` is a record to reuse (or 0). */
static void free_run(gs_heap_t *h, uint32_t sid, uint64_t start, uint64_t npages, uint64_t ready,
                     uint64_t now)
{
    if (start > 0) {
        uint32_t l = gs_load_relaxed(&h->pagemap[start - 1]);
        gs_mspan_t *ls = l ? gs_span(h, l) : NULL;
        if (ls && ls->state == GS_SPAN_FREE && ls->start + ls->npages == start) {
            bin_remove(h, l);
            scav_remove(h, l);
            start = ls->start;
            npages += ls->npages;
            ready += ls->ready_pages;
            sid = keep_lower(h, sid, l);
        }
    }
    uint64_t end = start + npages;
    if (end < h->heap_pages) {
        uint32_t r = gs_load_relaxed(&h->pagemap[end]);
        gs_mspan_t *rs = r ? gs_span(h, r) : NULL;
        if (rs && rs->state == GS_SPAN_FREE && rs->start == end && r != sid) {
            bin_remove(h, r);
            scav_remove(h, r);
            npages += rs->npages;
            ready += rs->ready_pages;
            sid = keep_lower(h, sid, r);
        }
    }
    if (!sid) sid = gs_span_record_alloc(h);
    if (!sid) gs_throw("out of span records while freeing pages");
    gs_txn_span(h, sid);
    gs_killpoint("free-run-merged");
    gs_mspan_t *s = gs_span(h, sid);
    gs_mspan_clear(s);
    s->state = GS_SPAN_FREE;
    s->start = (uint32_t)start;
    s->npages = (uint32_t)npages;
    s->ready_pages = (uint32_t)ready;
    s->freed_at_ns = now;
    gs_killpoint("free-run-record");
    set_tags(h, sid);
    bin_insert(h, sid);
    if (ready) scav_append(h, sid);
}

/* Grow the heap by whole arenas so that a run of n pages exists. */
static int grow(gs_heap_t *h, uint64_t n)
{
    uint64_t arenas = (n + GS_PAGES_PER_ARENA - 1) / GS_PAGES_PER_ARENA;
    uint64_t add = arenas * GS_PAGES_PER_ARENA;
    if (h->heap_pages + add > h->max_pages) return -ENOMEM;
    /* Commit the arena index (page map) for the new arenas first. */
    uint64_t lo = h->mhdr->pagemap_off + h->heap_pages * 4u;
    uint64_t len = add * 4u;
    int rc = gs_sys_commit(h->meta_fd, lo, len);
    if (rc) return rc;
    h->meta_committed += len;
    uint64_t start = h->heap_pages;
    h->heap_pages += add;
    h->free_pages += add;
    gs_killpoint("grow-committed");
    /* Clients index the page map only below xheap_pages (acquire). The
     * count and the new free run change together or not at all (undo log:
     * the count's before-image first). */
    gs_txn_heap_pages(h);
    gs_store_release(&h->mhdr->xheap_pages, h->heap_pages);
    gs_killpoint("grow-counted");
    free_run(h, 0, start, add, 0, gs_now_ns());
    return 0;
}

/* Commit the RELEASED pages of [start, start+n); returns 0 or -ENOMEM (with
 * nothing committed that the caller must undo: committed pages are simply
 * READY and stay accounted). *dirty is set if any page was READY. */
static int commit_pages(gs_heap_t *h, uint64_t start, uint64_t n, bool *dirty)
{
    uint64_t p = start, end = start + n;
    *dirty = false;
    while (p < end) {
        if (h->pagestate[p] == GS_PAGE_READY) {
            *dirty = true;
            p++;
            continue;
        }
        uint64_t q = p;
        while (q < end && h->pagestate[q] == GS_PAGE_RELEASED) q++;
        int rc = gs_sys_commit(h->data_fd, gs_page_off(h, p), (q - p) << GS_PAGE_SHIFT);
        if (rc) return rc;
        memset(h->pagestate + p, GS_PAGE_READY, q - p);
        h->ready_pages += q - p;
        p = q;
    }
    return 0;
}

static uint64_t count_ready(const gs_heap_t *h, uint64_t start, uint64_t n)
{
    uint64_t c = 0;
    for (uint64_t p = start; p < start + n; p++) c += h->pagestate[p] == GS_PAGE_READY;
    return c;
}

int gs_mheap_alloc(gs_heap_t *h, uint64_t npages, uint32_t *out) { return gs_mheap_alloc_aligned(h, npages, 1, out); }

int gs_mheap_alloc_aligned(gs_heap_t *h, uint64_t npages, uint64_t align, uint32_t *out)
{
    if (align == 0 || (align & (align - 1)) != 0 || align > GS_PAGES_PER_ARENA) return -EINVAL;
    /* A run of npages + align - 1 holds an aligned run of npages. Heap page
     * 0 starts an arena (arena_off is arena aligned), so page alignment is
     * offset alignment. */
    uint64_t need = npages + align - 1u;
    if (npages == 0 || need > h->max_pages || need > UINT32_MAX) return -ENOMEM;
    uint32_t sid = bin_find(h, need);
    if (!sid) sid = top_run(h, need);
    if (!sid) {
        int rc = grow(h, need);
        if (rc) return rc;
        sid = bin_find(h, need);
        if (!sid) sid = top_run(h, need);
        if (!sid) return -ENOMEM;
    }
    gs_mspan_t *s = gs_span(h, sid);
    gs_txn_span(h, sid); /* the run becomes the span: its record changes */
    bin_remove(h, sid);
    scav_remove(h, sid);
    uint64_t start = s->start, total = s->npages, ready_total = s->ready_pages;
    uint64_t now = gs_now_ns();

    /* Split off the head below the aligned start as its own free run (before
     * anything is committed: the slack costs no memory). */
    uint64_t head = ((start + align - 1u) & ~(align - 1u)) - start;
    if (head) {
        uint32_t hid = gs_span_record_alloc(h);
        if (!hid) {
            free_run(h, sid, start, total, ready_total, s->freed_at_ns);
            return -ENOMEM;
        }
        gs_mspan_t *r = gs_span(h, hid);
        uint64_t ready_head = ready_total ? count_ready(h, start, head) : 0;
        r->state = GS_SPAN_FREE;
        r->start = (uint32_t)start;
        r->npages = (uint32_t)head;
        r->ready_pages = (uint32_t)ready_head;
        r->freed_at_ns = s->freed_at_ns;
        set_tags(h, hid);
        bin_insert(h, hid);
        if (ready_head) scav_append(h, hid);
        gs_killpoint("alloc-head");
        start += head;
        total -= head;
        ready_total -= ready_head;
    }
    uint64_t ready_mine = ready_total ? count_ready(h, start, npages) : 0;

    /* Split: the tail goes back as its own free run. */
    if (total > npages) {
        uint32_t rest = gs_span_record_alloc(h);
        if (!rest) {
            free_run(h, sid, start, total, ready_total, s->freed_at_ns);
            return -ENOMEM;
        }
        gs_mspan_t *r = gs_span(h, rest);
        r->state = GS_SPAN_FREE;
        r->start = (uint32_t)(start + npages);
        r->npages = (uint32_t)(total - npages);
        r->ready_pages = (uint32_t)(ready_total - ready_mine);
        r->freed_at_ns = s->freed_at_ns;
        set_tags(h, rest);
        bin_insert(h, rest);
        if (r->ready_pages) scav_append(h, rest);
        gs_killpoint("alloc-tail");
    }
    h->free_pages -= npages;
    h->idle_ready_pages -= ready_mine;

    bool dirty;
    int rc = commit_pages(h, start, npages, &dirty);
    gs_killpoint("alloc-commit");
    if (rc) {
        /* Out of memory: give the run back; pages committed so far stay READY. */
        uint64_t ready_now = count_ready(h, start, npages);
        h->free_pages += npages;
        h->idle_ready_pages += ready_now;
        free_run(h, sid, start, npages, ready_now, now);
        return rc;
    }
    gs_mspan_clear(s);
    s->start = (uint32_t)start;
    s->npages = (uint32_t)npages;
    s->npages64 = npages;
    s->needzero = dirty;
    s->base_off = gs_page_off(h, start);
    *out = sid;
    return 0;
}

void gs_mheap_publish(gs_heap_t *h, uint32_t sid)
{
    gs_mspan_t *s = gs_span(h, sid);
    /* Only the ends need before-images (daemon/intent.c): undone, the span
     * is a free run again, whose interior entries nobody reads. */
    gs_txn_page(h, s->start);
    gs_txn_page(h, s->start + s->npages - 1u);
    /* Release: a client that reads sid from the page map with acquire sees
     * the record's first line as written above. */
    for (uint64_t p = s->start; p < (uint64_t)s->start + s->npages; p++) gs_store_release(&h->pagemap[p], sid);
}

void gs_mheap_free(gs_heap_t *h, uint32_t sid)
{
    gs_mspan_t *s = gs_span(h, sid);
    uint64_t start = s->start, n = s->npages;
    uint64_t ready = count_ready(h, start, n);
    h->free_pages += n;
    h->idle_ready_pages += ready;
    /* The interior page map entries keep naming this record; every reader
     * range-checks against the record it finds, so stale entries are safe. */
    free_run(h, sid, start, n, ready, gs_now_ns());
}

/* Release free runs idle at least min_idle_ns, oldest first, while more
 * than keep_pages pages are READY. */
static uint64_t scavenge(gs_heap_t *h, uint64_t now, uint64_t min_idle_ns, uint64_t keep_pages)
{
    uint64_t released = 0;
    uint32_t sid = h->scav.head;
    while (sid && h->ready_pages > keep_pages) {
        gs_mspan_t *s = gs_span(h, sid);
        uint32_t next = s->scav_next;
        if (now - s->freed_at_ns < min_idle_ns) break; /* the rest are younger */
        gs_txn_begin(h);
        gs_txn_span(h, sid);
        if (gs_sys_release(h->data_fd, gs_page_off(h, s->start), (uint64_t)s->npages << GS_PAGE_SHIFT) == 0) {
            gs_killpoint("scavenge-punched");
            released += (uint64_t)s->ready_pages << GS_PAGE_SHIFT;
            h->ready_pages -= s->ready_pages;
            h->idle_ready_pages -= s->ready_pages;
            scav_remove(h, sid);
            bin_remove(h, sid); /* from the warm bins to the released ones */
            s->ready_pages = 0;
            bin_insert(h, sid);
            memset(h->pagestate + s->start, GS_PAGE_RELEASED, s->npages);
        }
        gs_txn_end(h);
        sid = next;
    }
    return released;
}

uint64_t gs_heap_scavenge(gs_heap_t *h, uint64_t min_idle_ns)
{
    return scavenge(h, gs_now_ns(), min_idle_ns, 0) + gs_fixalloc_trim(h, min_idle_ns);
}

/* Go's scavenger keeps the memory the heap will want again (its goal: the
 * heap goal plus 10 %); ours has no heap goal, so it keeps the pages in use
 * at the recent peak, plus 10 %: the largest in-use (READY, not idle) page
 * count seen by a call in the last min_idle_ns. A program that frees
 * everything and allocates it again within that time (rounds of W2,
 * bench/README.md) finds its pages still committed and mapped instead of
 * faulting them in again. One that stops loses nothing in RSS: its peak
 * was seen before its last free, so the peak ages out (and the next call
 * takes the in-use pages of then as the peak) no later than the runs freed
 * after it reach min_idle_ns of idleness themselves: everything idle is
 * released when it was before. The peak is the heap
 * side's private state: nothing shared, no crash story (an adopting
 * daemon starts with no peak). */
uint64_t gs_heap_scavenge_tick(gs_heap_t *h, uint64_t min_idle_ns)
{
    uint64_t now = gs_now_ns();
    uint64_t inuse = h->ready_pages - h->idle_ready_pages;
    if (inuse >= h->scav_peak_pages || now - h->scav_peak_ns > min_idle_ns) {
        h->scav_peak_pages = inuse;
        h->scav_peak_ns = now;
    }
    uint64_t keep = h->scav_peak_pages + h->scav_peak_pages / 10u;
    return scavenge(h, now, min_idle_ns, keep) + gs_fixalloc_trim(h, min_idle_ns);
}

/* ---- spans carved from the page heap (Go's mheap.allocSpan, freeSpan) ---- */

/* Set up the span just carved at sid: class, bitmaps in a fresh side
 * record, then publish it in the page map. */
static int span_init(gs_heap_t *h, uint32_t sid, uint32_t spanclass, bool large)
{
    gs_mspan_t *s = gs_span(h, sid);
    uint32_t sizeclass = gs_spanclass_sizeclass(spanclass);
    bool tiny = gs_spanclass_tiny(spanclass);
    s->spanclass = (uint8_t)spanclass;
    if (large) {
        s->nelems = 1;
        uint64_t bytes = s->npages64 << GS_PAGE_SHIFT;
        s->elemsize = bytes > UINT32_MAX ? 0 : (uint32_t)bytes; /* 0: use npages64 */
        s->divmagic = 0;
    } else {
        s->nelems = gs_class_nelems[sizeclass];
        s->elemsize = gs_class_size[sizeclass];
        s->divmagic = gs_class_divmagic[sizeclass];
    }
    s->awords = (uint8_t)gs_bitmap_words(s->nelems);
    s->fwords = (uint8_t)gs_bitmap_words(tiny ? 2u * s->nelems : s->nelems);
    s->side_off = gs_side_off_of(&h->lay, sid); /* committed with the id (daemon/fixalloc.c) */
    gs_side_t *side = gs_side_of(h, s);
    gs_span_bitmaps_clear(side, s->nelems, s->awords, s->fwords);
    if (large) gs_store_relaxed(&gs_side_alloc(side)[0], 1); /* the one object is allocated */
    gs_store_relaxed(&s->xowner, 0);
    gs_store_relaxed(&side->xsid, sid);
    /* The id's notice entry is left alone: a stale push may still be on the
     * stack, and its flag keeps the id from being pushed twice. */
    s->state = large ? GS_SPAN_LARGE : GS_SPAN_SMALL;
    gs_killpoint("span-init");
    gs_mheap_publish(h, sid);
    gs_killpoint("span-published");
    return 0;
}

int gs_mheap_alloc_span(gs_heap_t *h, uint32_t spanclass, uint64_t npages, uint64_t align, bool large,
                        uint32_t *out)
{
    uint32_t sid;
    gs_txn_begin(h);
    int rc = gs_mheap_alloc_aligned(h, npages, align, &sid);
    if (!rc) {
        rc = span_init(h, sid, spanclass, large);
        if (rc) gs_mheap_free(h, sid);
        else *out = sid;
    }
    gs_txn_end(h);
    return rc;
}

void gs_mheap_free_span(gs_heap_t *h, uint32_t sid)
{
    gs_mspan_t *s = gs_span(h, sid);
    gs_side_t *side = gs_side_of(h, s);
    gs_txn_begin(h);
    gs_store_relaxed(&side->xsid, 0);
    if (s->state == GS_SPAN_LARGE) h->large_frees++;
    gs_quota_span_drop(h, s); /* its charges end here (daemon/quota.c) */
    gs_mheap_free(h, sid);
    gs_txn_end(h);
}
