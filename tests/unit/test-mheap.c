/* SPDX-License-Identifier: MIT */
/* Description: the page heap: runs allocated and freed with coalescing,
 * arenas grown contiguously, ENOMEM at the reservation's end, needzero. */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "heap_internal.h"

int main(void)
{
    gs_heap_config_t cfg = {.size = 4 * GS_ARENA_SIZE, .max_slots = 4};
    char err[128];
    gs_heap_t *h = gs_heap_create(&cfg, err, sizeof err);
    REQUIRE(h);
    CHECK(h->heap_pages == 0);

    /* First allocation grows one arena; pages are committed, span is zero. */
    uint32_t a, b, c, d;
    CHECK(gs_mheap_alloc(h, 3, &a) == 0);
    CHECK(h->heap_pages == GS_PAGES_PER_ARENA);
    CHECK(gs_span(h, a)->needzero == 0);
    h->spans[a].state = GS_SPAN_LARGE; h->spans[a].list = GS_LIST_LARGE; gs_mheap_publish(h, a);
    CHECK(gs_mheap_alloc(h, 5, &b) == 0);
    h->spans[b].state = GS_SPAN_LARGE; h->spans[b].list = GS_LIST_LARGE; gs_mheap_publish(h, b);
    CHECK(gs_mheap_alloc(h, 7, &c) == 0);
    h->spans[c].state = GS_SPAN_LARGE; h->spans[c].list = GS_LIST_LARGE; gs_mheap_publish(h, c);
    CHECK(gs_span(h, b)->start == gs_span(h, a)->start + 3);
    CHECK(gs_heap_check(h) == 0);
    uint32_t b_start = gs_span(h, b)->start;

    /* Free the middle, then its neighbours: everything coalesces into one run. */
    gs_mheap_free(h, b);
    CHECK(gs_heap_check(h) == 0);
    CHECK(gs_mheap_alloc(h, 5, &d) == 0);        /* the hole is reused ... */
    CHECK(gs_span(h, d)->start == b_start);
    CHECK(gs_span(h, d)->needzero == 1);         /* ... and it is dirty */
    h->spans[d].state = GS_SPAN_LARGE; h->spans[d].list = GS_LIST_LARGE; gs_mheap_publish(h, d);
    gs_mheap_free(h, a);
    gs_mheap_free(h, c);
    gs_mheap_free(h, d);
    CHECK(gs_heap_check(h) == 0);
    CHECK(h->free_pages == h->heap_pages);
    uint32_t whole;
    CHECK(gs_mheap_alloc(h, GS_PAGES_PER_ARENA, &whole) == 0); /* one run again: no growth */
    CHECK(h->heap_pages == GS_PAGES_PER_ARENA);
    h->spans[whole].state = GS_SPAN_LARGE; h->spans[whole].list = GS_LIST_LARGE; gs_mheap_publish(h, whole);

    /* A run larger than an arena: grown contiguously, crossing arenas. */
    uint32_t big;
    CHECK(gs_mheap_alloc(h, GS_PAGES_PER_ARENA + 10, &big) == 0);
    CHECK(h->heap_pages == 3 * GS_PAGES_PER_ARENA);
    CHECK(gs_span(h, big)->start == GS_PAGES_PER_ARENA);
    h->spans[big].state = GS_SPAN_LARGE; h->spans[big].list = GS_LIST_LARGE; gs_mheap_publish(h, big);
    CHECK(gs_heap_check(h) == 0);

    /* The reservation is 4 arenas: asking for 2 more fails with ENOMEM. */
    uint32_t x;
    CHECK(gs_mheap_alloc(h, 2 * GS_PAGES_PER_ARENA, &x) == -ENOMEM);
    CHECK(gs_heap_check(h) == 0);
    /* ... but what is left still serves. */
    CHECK(gs_mheap_alloc(h, GS_PAGES_PER_ARENA - 10, &x) == 0);
    h->spans[x].state = GS_SPAN_LARGE; h->spans[x].list = GS_LIST_LARGE; gs_mheap_publish(h, x);
    gs_mheap_free(h, whole);
    gs_mheap_free(h, big);
    gs_mheap_free(h, x);
    CHECK(gs_heap_check(h) == 0);
    CHECK(h->free_pages == h->heap_pages);

    /* Many random runs, freed in random order, all coalesce back. */
    unsigned long long seed = 42;
    uint32_t ids[2000];
    int n = 0;
    for (int i = 0; i < 2000; i++) {
        uint64_t np = 1 + test_rand(&seed) % 64;
        if (gs_mheap_alloc(h, np, &ids[n]) != 0) break;
        h->spans[ids[n]].state = GS_SPAN_LARGE; h->spans[ids[n]].list = GS_LIST_LARGE; gs_mheap_publish(h, ids[n]);
        n++;
        if (test_rand(&seed) % 3 == 0) {
            int k = (int)(test_rand(&seed) % (unsigned)n);
            gs_mheap_free(h, ids[k]);
            ids[k] = ids[--n];
        }
    }
    CHECK(gs_heap_check(h) == 0);
    while (n) {
        int k = (int)(test_rand(&seed) % (unsigned)n);
        gs_mheap_free(h, ids[k]);
        ids[k] = ids[--n];
    }
    CHECK(gs_heap_check(h) == 0);
    CHECK(h->free_pages == h->heap_pages);
    gs_heap_stats_t st;
    gs_heap_stats(h, &st);
    CHECK(st.span_bytes == 0);
    CHECK(st.idle_bytes + st.released_bytes == st.grown_bytes);
    gs_heap_destroy(h);
    return CHECK_DONE("test-mheap");
}
