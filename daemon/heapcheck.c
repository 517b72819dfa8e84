/* SPDX-License-Identifier: MIT */
/* heapcheck.c: the heap invariant check: page heap, free runs, mcentral lists (tests and GOSHM_DEBUG_LEVEL 2).
 *
 * Overview: shm/overview.h; API: daemon/heap.h. Linear in the heap; for
 * tests, the ring fuzzer, and gs_assert_expensive (daemon/heap_internal.h).
 */
#include "heap_internal.h"

#include <errno.h> /* EFAULT */

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            gs_printf("goshm: heap check: " __VA_ARGS__);                    \
            return -EFAULT;                                                  \
        }                                                                    \
    } while (0)

int gs_heap_check(gs_heap_t *h)
{
    uint64_t p = 0, free_pages = 0, idle_ready = 0, ready = 0;
    uint32_t prev_state = GS_SPAN_DEAD;
    CHECK(h->txn_depth > 0 || gs_load_relaxed(&h->undo->xcount) == 0, "undo log holds %u entries between operations\n",
          gs_load_relaxed(&h->undo->xcount));
    CHECK(gs_load_relaxed(&h->mhdr->xheap_pages) == h->heap_pages, "grown pages %llu, the header says %llu\n",
          (unsigned long long)h->heap_pages, (unsigned long long)gs_load_relaxed(&h->mhdr->xheap_pages));
    while (p < h->heap_pages) {
        uint32_t sid = gs_load_relaxed(&h->pagemap[p]);
        CHECK(sid && sid < h->span_bump, "page %llu has no span\n", (unsigned long long)p);
        gs_mspan_t *s = gs_span(h, sid);
        CHECK(s->start == p && s->npages > 0, "page %llu: span %u starts at %u\n", (unsigned long long)p, sid, s->start);
        CHECK(s->state != GS_SPAN_DEAD, "span %u is dead but mapped\n", sid);
        uint64_t r = 0;
        for (uint64_t q = p; q < p + s->npages; q++) r += h->pagestate[q] == GS_PAGE_READY;
        ready += r;
        if (s->state == GS_SPAN_FREE) {
            CHECK(prev_state != GS_SPAN_FREE, "free run %u not coalesced with its left neighbour\n", sid);
            CHECK(s->list == GS_LIST_BIN, "free run %u not in a bin\n", sid);
            CHECK(gs_load_relaxed(&h->pagemap[p + s->npages - 1]) == sid, "free run %u: bad end tag\n", sid);
            CHECK(s->ready_pages == r, "free run %u: ready %u, counted %llu\n", sid, s->ready_pages, (unsigned long long)r);
            free_pages += s->npages;
            idle_ready += r;
        } else {
            CHECK(r == s->npages, "span %u in use has released pages\n", sid);
            for (uint64_t q = p; q < p + s->npages; q++)
                CHECK(gs_load_relaxed(&h->pagemap[q]) == sid, "span %u: page %llu not mapped\n", sid, (unsigned long long)q);
            if (s->state == GS_SPAN_SMALL) {
                CHECK(s->list == GS_LIST_PARTIAL || s->list == GS_LIST_FULL || s->list == GS_LIST_CACHED,
                      "small span %u on list %u\n", sid, s->list);
                CHECK((s->list == GS_LIST_CACHED) == (s->owner != 0), "span %u owner/list mismatch\n", sid);
            } else {
                CHECK(s->state == GS_SPAN_LARGE && (s->list == GS_LIST_LARGE || s->list == GS_LIST_INFLIGHT),
                      "span %u bad state\n", sid);
                CHECK((s->list == GS_LIST_INFLIGHT) == (s->owner != 0), "large span %u owner/list mismatch\n", sid);
            }
        }
        prev_state = s->state;
        p += s->npages;
    }
    CHECK(p == h->heap_pages, "spans overrun the heap\n");
    CHECK(free_pages == h->free_pages, "free pages %llu, counted %llu\n", (unsigned long long)h->free_pages, (unsigned long long)free_pages);
    CHECK(idle_ready == h->idle_ready_pages, "idle pages %llu, counted %llu\n", (unsigned long long)h->idle_ready_pages, (unsigned long long)idle_ready);
    CHECK(ready == h->ready_pages, "ready pages %llu, counted %llu\n", (unsigned long long)h->ready_pages, (unsigned long long)ready);
    for (uint32_t sc = 0; sc < GS_NUM_SPAN_CLASSES; sc++) {
        uint32_t n = 0;
        for (uint32_t sid = h->central[sc].partial.head; sid; sid = gs_span(h, sid)->next, n++)
            CHECK(gs_span(h, sid)->list == GS_LIST_PARTIAL && gs_span(h, sid)->spanclass == sc, "partial list %u broken\n", sc);
        CHECK(n == h->central[sc].partial.count, "partial count %u\n", sc);
        n = 0;
        for (uint32_t sid = h->central[sc].full.head; sid; sid = gs_span(h, sid)->next, n++)
            CHECK(gs_span(h, sid)->list == GS_LIST_FULL && gs_span(h, sid)->spanclass == sc, "full list %u broken\n", sc);
        CHECK(n == h->central[sc].full.count, "full count %u\n", sc);
    }
    return gs_names_check(h); /* the names directory (daemon/names.c) */
}
