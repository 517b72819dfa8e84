/* SPDX-License-Identifier: MIT */
/* Description: mcentral refill, hand-back and sweeping; a full span that
 * gains frees from another thread is found through the notice stack. */
#include <pthread.h>
#include <string.h>

#include "check.h"
#include "client.h"
#include "heap_internal.h"
#include "inproc.h"

static goshm_t *H;
static void **objs;
static uint32_t nobj;

static void *free_half(void *arg)
{
    (void)arg;
    for (uint32_t i = 0; i < nobj; i += 2) goshm_free(H, objs[i]);
    return NULL;
}

static uint32_t sid_of(goshm_t *h, void *p)
{
    gs_lookup_t l;
    return gs_lookup(h, p, &l) ? 0 : l.sid;
}

int main(void)
{
    gs_heap_config_t cfg = {.size = 1ull << 30, .max_slots = 8};
    H = gs_local_open(&cfg);
    REQUIRE(H);
    gs_heap_t *hp = gs_local_heap(H);
    const uint32_t size = 256, cls = gs_size_to_class(size), sc = gs_spanclass(cls, 0);
    const uint32_t per_span = gs_class_nelems[cls];

    /* Fill exactly GS_KEPT + 3 spans: the mcache keeps its last GS_KEPT
     * used-up spans (client/mcache.c) and hands back the ones before: the
     * first two go back full. */
    nobj = per_span * (GS_KEPT + 3u);
    objs = calloc(nobj, sizeof *objs);
    for (uint32_t i = 0; i < nobj; i++) {
        objs[i] = goshm_malloc(H, size);
        REQUIRE(objs[i]);
        memset(objs[i], (int)(i & 0xff), size);
    }
    uint32_t s0 = sid_of(H, objs[0]), s1 = sid_of(H, objs[per_span]);
    CHECK(s0 && s1 && s0 != s1);
    gs_local_lock(H);
    CHECK(hp->central[sc].full.count == 2);     /* two handed back full */
    CHECK(hp->central[sc].partial.count == 0);
    CHECK(gs_span(hp, s0)->list == GS_LIST_FULL);
    CHECK(gs_heap_check(hp) == 0);
    gs_local_unlock(H);

    /* Another thread frees every other object: the full spans get notices. */
    pthread_t t;
    pthread_create(&t, NULL, free_half, NULL);
    pthread_join(t, NULL);
    CHECK(gs_load_relaxed(&H->hdr->xnotice_head) != 0);
    gs_local_lock(H);
    uint32_t handled = gs_heap_drain_notices(hp);
    CHECK(handled == 2);
    CHECK(hp->central[sc].full.count == 0);
    CHECK(hp->central[sc].partial.count == 2);
    CHECK(gs_span(hp, s0)->allocated == per_span / 2);
    CHECK(gs_heap_check(hp) == 0);
    gs_local_unlock(H);

    /* Survivors are intact. */
    for (uint32_t i = 1; i < nobj; i += 2) {
        unsigned char *p = objs[i];
        CHECK(p[0] == (i & 0xff) && p[size - 1] == (i & 0xff));
    }

    /* The freed slots are reused: once the mcache's current, kept and
     * stashed spans are used up, the next refill takes the two partial
     * spans before any new one. Every freed slot (per_span / 2 in each)
     * comes back. */
    uint64_t grown_before = hp->heap_pages;
    uint32_t reused = 0;
    for (uint32_t i = 0; i < per_span * (4u + GS_KEPT); i++) {
        void *p = goshm_malloc(H, size);
        uint32_t s = sid_of(H, p);
        reused += (s == s0 || s == s1);
    }
    CHECK_MSG(reused == per_span, "reused %u of %u freed slots", reused, per_span);
    CHECK(hp->heap_pages == grown_before);

    /* Free everything that is left, then a span with no object goes back. */
    goshm_detach(H); /* flushes mcaches, reclaims the slot, destroys */

    /* Second heap: free all from another thread, nothing stays in use. */
    H = gs_local_open(&cfg);
    hp = gs_local_heap(H);
    for (uint32_t i = 0; i < nobj; i++) objs[i] = goshm_malloc(H, size);
    pthread_create(&t, NULL, free_half, NULL);
    pthread_join(t, NULL);
    for (uint32_t i = 1; i < nobj; i += 2) goshm_free(H, objs[i]);
    /* This thread's mcache still caches one span: flush it. */
    gs_mcache_flush(H, gs_mcache_get(H));
    gs_local_collect(H);
    gs_heap_stats_t st;
    gs_local_lock(H);
    gs_heap_stats(hp, &st);
    CHECK(st.in_use_bytes == 0);
    CHECK(st.span_bytes == 0);
    CHECK(st.classes[cls].frees == nobj);
    CHECK(gs_heap_check(hp) == 0);
    gs_local_unlock(H);

    /* Malformed requests are rejected, not trusted. */
    uint32_t sid;
    gs_local_lock(H);
    CHECK(gs_heap_refill(hp, 0, GS_NUM_SPAN_CLASSES, &sid) < 0);
    CHECK(gs_heap_refill(hp, 0, 0, &sid) < 0);
    CHECK(gs_heap_refill(hp, 0, gs_spanclass(5, 1), &sid) < 0);
    CHECK(gs_heap_refill(hp, 99, sc, &sid) < 0);
    CHECK(gs_heap_release(hp, 0, 12345678) < 0);
    CHECK(gs_heap_release(hp, 0, s0) < 0);
    CHECK(gs_heap_notice(hp, 0) < 0);
    CHECK(gs_heap_check(hp) == 0);
    gs_local_unlock(H);
    goshm_detach(H);
    free(objs);
    return CHECK_DONE("test-mcentral");
}
