/* SPDX-License-Identifier: MIT */
/* Description: the malloc/free fast paths (client/malloc.c, client/free.c,
 * gs_mcache_undo in client/client.h): free(NULL) in a thread that has no
 * mcache yet and in one that has; a malloc/free pair on the last slot of a
 * 64-slot allocCache window and on the first slot of the next one hands the
 * same slot back every time without touching live neighbours; an object
 * another thread freed is not undone (the double free is reported and the
 * slot is not handed out twice); every pair is counted in the class's
 * allocs and frees; the heap ends empty and consistent. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "client.h"
#include "heap_internal.h"
#include "inproc.h"

#define SZ 64u /* class 5: 128 slots per 8 KiB span, two allocCache windows */

static goshm_t *H;

static void *free_null_fresh(void *arg)
{
    (void)arg;
    goshm_free(H, NULL); /* no mcache in this thread yet */
    char *p = goshm_malloc(H, SZ);
    goshm_free(H, NULL); /* one now, with an object to undo */
    goshm_free(H, p);
    goshm_free(H, NULL); /* nothing to undo */
    return p;
}

static void *free_it(void *p)
{
    goshm_free(H, p);
    return NULL;
}

static void fill(char *p, int v) { memset(p, v, SZ); }
static int holds(const char *p, int v)
{
    for (unsigned i = 0; i < SZ; i++)
        if (p[i] != (char)v) return 0;
    return 1;
}

int main(void)
{
    setenv("GOSHM_DEBUG", "badfree=warn", 1);
    /* No heap profile: a sampled allocation is never undone, and would move
     * the pairs below on by one slot. */
    setenv("GOSHM_PROFILE_RATE", "0", 1);
    gs_heap_config_t cfg = {.size = 1ull << 30, .max_slots = 8};
    goshm_t *h = H = gs_local_open(&cfg);
    REQUIRE(h);
    gs_heap_t *hp = gs_local_heap(h);

    pthread_t t;
    void *r = NULL;
    REQUIRE(pthread_create(&t, NULL, free_null_fresh, NULL) == 0);
    pthread_join(t, &r);
    CHECK(r != NULL);

    /* A fresh span of class 5: slots 0..62 live, so that the next slot is
     * the last of the first window. */
    char *a[130];
    for (unsigned i = 0; i < 63; i++) {
        a[i] = goshm_malloc(h, SZ);
        REQUIRE(a[i]);
        fill(a[i], (int)i + 1);
    }
    for (unsigned i = 1; i < 63; i++) CHECK(a[i] == a[0] + (size_t)i * SZ);
    char *last = a[0] + 63u * SZ, *next = a[0] + 64u * SZ;
    uint64_t pairs = 0;
    for (unsigned k = 0; k < 1000; k++, pairs++) {
        char *p = goshm_malloc(h, SZ);
        CHECK_MSG(p == last, "pair %u on the window's last slot: %p, not %p", k, (void *)p, (void *)last);
        fill(p, 0xa5);
        goshm_free(h, p);
    }
    /* The last slot of the window live, then pairs on the next window's first. */
    a[63] = goshm_malloc(h, SZ);
    CHECK(a[63] == last);
    fill(a[63], 64);
    for (unsigned k = 0; k < 1000; k++, pairs++) {
        char *p = goshm_malloc(h, SZ);
        CHECK_MSG(p == next, "pair %u on the next window's first slot: %p, not %p", k, (void *)p, (void *)next);
        fill(p, 0x5a);
        goshm_free(h, p);
    }
    for (unsigned i = 64; i < 130; i++) {
        a[i] = goshm_malloc(h, SZ);
        REQUIRE(a[i]);
        fill(a[i], (int)(i + 1) & 0xff);
    }
    for (unsigned i = 0; i < 130; i++)
        for (unsigned j = i + 1; j < 130; j++) CHECK(a[i] != a[j]);
    for (unsigned i = 0; i < 130; i++) CHECK_MSG(holds(a[i], (int)(i + 1) & 0xff), "object %u overwritten", i);

    /* Freed by another thread, then by this one: a double free, not an undo. */
    uint64_t n0 = gs_badfree_count();
    char *p = goshm_malloc(h, SZ);
    REQUIRE(p);
    REQUIRE(pthread_create(&t, NULL, free_it, p) == 0);
    pthread_join(t, NULL);
    goshm_free(h, p);
    CHECK(gs_badfree_count() == n0 + 1);
    char *q = goshm_malloc(h, SZ);
    CHECK(q != NULL && q != p); /* p comes back at a sweep, not now */
    goshm_free(h, q);
    for (unsigned i = 0; i < 130; i++) CHECK_MSG(holds(a[i], (int)(i + 1) & 0xff), "object %u overwritten", i);

    /* Every pair counted: allocations = frees = the 130 objects, the 2000
     * pairs, p, q and the other thread's object. */
    for (unsigned i = 0; i < 130; i++) goshm_free(h, a[i]);
    gs_mcache_flush(h, gs_mcache_get(h));
    gs_local_collect(h);
    gs_local_lock(h);
    gs_heap_stats_t st;
    gs_heap_stats(hp, &st);
    uint32_t cls = gs_size_to_class(SZ);
    CHECK_MSG(st.classes[cls].allocs == 130 + pairs + 2 + 1, "allocs %llu, want %llu",
              (unsigned long long)st.classes[cls].allocs, (unsigned long long)(130 + pairs + 2 + 1));
    CHECK(st.classes[cls].frees == st.classes[cls].allocs);
    CHECK(st.span_bytes == 0 && st.in_use_bytes == 0);
    CHECK(gs_heap_check(hp) == 0);
    gs_local_unlock(h);
    goshm_detach(h);
    return CHECK_DONE("test-undo");
}
