/* SPDX-License-Identifier: MIT */
/* Description: scavenging really returns memory: after large and small
 * objects are freed, idle free runs are punched out of the memfd and its
 * st_blocks drop; the pages are committed again on reuse. goshmd's tick
 * (gs_heap_scavenge_tick) keeps idle runs while the committed pages stay
 * within the recent peak of in-use pages plus 10 %, and releases them all
 * once that peak has aged out. */
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "heap_internal.h"
#include "inproc.h"

int main(void)
{
    gs_heap_config_t cfg = {.size = 1ull << 30, .max_slots = 8};
    goshm_t *h = gs_local_open(&cfg);
    REQUIRE(h);
    gs_heap_t *hp = gs_local_heap(h);
    uint64_t base = gs_heap_backed_bytes(hp);

    enum { NL = 64, NS = 20000 };
    void *large[NL], *small[NS];
    for (int i = 0; i < NL; i++) {
        large[i] = goshm_malloc(h, 1 << 20);
        REQUIRE(large[i]);
        memset(large[i], 0x5a, 1 << 20);
    }
    for (int i = 0; i < NS; i++) {
        small[i] = goshm_malloc(h, 512);
        REQUIRE(small[i]);
        memset(small[i], 0x33, 512);
    }
    uint64_t full = gs_heap_backed_bytes(hp);
    CHECK_MSG(full >= base + NL * (1u << 20) + NS * 512u, "backed %llu", (unsigned long long)full);

    for (int i = 0; i < NL; i++) goshm_free(h, large[i]);
    for (int i = 0; i < NS; i++) goshm_free(h, small[i]);
    gs_mcache_flush(h, gs_mcache_get(h));
    gs_local_collect(h);
    gs_local_lock(h);
    gs_heap_stats_t st;
    gs_heap_stats(hp, &st);
    CHECK(st.span_bytes == 0);
    CHECK(st.idle_bytes >= NL * (1u << 20));
    /* Not idle long enough yet with a 1 hour delay: nothing released. */
    CHECK(gs_heap_scavenge(hp, 3600ull * 1000000000ull) == 0);
    uint64_t released = gs_heap_scavenge(hp, 0);
    CHECK(released >= NL * (1u << 20));
    gs_heap_stats(hp, &st);
    CHECK(st.idle_bytes == 0);
    CHECK(st.released_bytes == st.grown_bytes);
    CHECK(gs_heap_check(hp) == 0);
    gs_local_unlock(h);
    uint64_t after = gs_heap_backed_bytes(hp);
    CHECK_MSG(after < base + (4u << 20), "backed after scavenge %llu, before %llu, base %llu",
              (unsigned long long)after, (unsigned long long)full, (unsigned long long)base);

    /* Reuse: released pages read as zero and are committed again. */
    unsigned char *p = goshm_calloc(h, 1, 1 << 20);
    REQUIRE(p);
    CHECK(p[0] == 0 && p[(1 << 20) - 1] == 0);
    memset(p, 1, 1 << 20);
    CHECK(gs_heap_backed_bytes(hp) >= after + (1u << 20));
    goshm_free(h, p);

    /* The tick's goal. Start from nothing committed but metadata. */
    const uint64_t D = 50u * 1000000u; /* the delay, ns */
    gs_local_collect(h);
    gs_local_lock(h);
    gs_heap_scavenge(hp, 0);
    gs_local_unlock(h);
    enum { NK = 20 };
    void *k[NK];
    for (int i = 0; i < NK; i++) {
        k[i] = goshm_malloc(h, 1 << 20);
        REQUIRE(k[i]);
        memset(k[i], 0x77, 1 << 20);
    }
    gs_local_lock(h);
    gs_heap_scavenge_tick(hp, D); /* the peak: NK MiB in use */
    gs_local_unlock(h);
    goshm_free(h, k[0]);
    gs_local_collect(h);
    usleep(2 * D / 1000u);
    gs_local_lock(h);
    gs_heap_stats(hp, &st);
    uint64_t idle = st.idle_bytes;
    CHECK_MSG(idle >= (1u << 20), "idle %llu", (unsigned long long)idle);
    /* k[0]'s run is older than the delay, but 19 MiB in use + 1 MiB idle is
     * within 1.1x the peak (the peak of then, 19 MiB, once NK has aged
     * out): kept. gs_heap_scavenge would release it. */
    gs_heap_scavenge_tick(hp, D);
    gs_heap_stats(hp, &st);
    CHECK_MSG(st.idle_bytes == idle, "idle %llu, was %llu", (unsigned long long)st.idle_bytes,
              (unsigned long long)idle);
    gs_local_unlock(h);
    /* Everything freed: once the peak has aged out, all idle runs go. */
    for (int i = 1; i < NK; i++) goshm_free(h, k[i]);
    gs_local_collect(h);
    usleep(2 * D / 1000u);
    gs_local_lock(h);
    gs_heap_scavenge_tick(hp, D);
    gs_heap_stats(hp, &st);
    CHECK_MSG(st.idle_bytes == 0, "idle %llu after the peak aged out", (unsigned long long)st.idle_bytes);
    CHECK(st.released_bytes == st.grown_bytes);
    CHECK(gs_heap_check(hp) == 0);
    gs_local_unlock(h);
    goshm_detach(h);
    return CHECK_DONE("test-scavenge");
}
