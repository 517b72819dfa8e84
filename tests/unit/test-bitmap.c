/* SPDX-License-Identifier: MIT */
/* Description: allocBits, allocCache windows and sweeping of one span's
 * bitmaps (shm/mspan.c), on a side record in private memory. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mspan.h"

static gs_side_t *new_side(uint32_t words)
{
    size_t bytes = (sizeof(gs_side_t) + words * 8u + 63u) / 64u * 64u; /* C11: a multiple of the alignment */
    gs_side_t *s = aligned_alloc(64, bytes);
    memset(s, 0, sizeof(gs_side_t) + words * 8u);
    return s;
}

static void view(gs_cspan_t *c, gs_side_t *side, gs_mspan_t *m, uint32_t nelems, char *base)
{
    memset(m, 0, sizeof *m);
    m->nelems = (uint16_t)nelems;
    m->elemsize = 16;
    m->awords = (uint8_t)gs_bitmap_words(nelems);
    m->spanclass = 4;
    gs_cspan_init(c, m, side, base, 1);
}

/* Take every free slot via fast path + slow path, as malloc does. */
static uint32_t drain(gs_cspan_t *c, uint8_t *seen)
{
    uint32_t n = 0;
    for (;;) {
        char *p = gs_cspan_next_free_fast(c);
        uint32_t idx;
        if (p) idx = (uint32_t)((p - c->base) / c->elemsize);
        else {
            idx = gs_cspan_next_free_index(c);
            if (idx >= c->nelems) break;
        }
        CHECK_MSG(!seen[idx], "slot %u handed out twice", idx);
        seen[idx] = 1;
        CHECK(gs_load_relaxed(&c->side->xfreeindex) == idx + 1);
        n++;
    }
    return n;
}

int main(void)
{
    static char base[1024 * 16];
    uint32_t sizes[] = {1, 7, 63, 64, 65, 127, 128, 200, 512, 1024};
    for (unsigned k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        uint32_t n = sizes[k], aw = gs_bitmap_words(n);
        gs_side_t *side = new_side(2 * aw);
        gs_mspan_t m;
        gs_cspan_t c;
        uint8_t seen[1024] = {0};
        /* Pre-allocate every third slot: the allocator must skip them. */
        uint32_t pre = 0;
        for (uint32_t i = 0; i < n; i += 3) {
            gs_side_alloc(side)[i / 64] |= UINT64_C(1) << (i % 64);
            seen[i] = 1;
            pre++;
        }
        view(&c, side, &m, n, base);
        CHECK(c.free_at_pass == n - pre);
        uint32_t got = drain(&c, seen);
        CHECK_MSG(got == n - pre, "n=%u got %u want %u", n, got, n - pre);
        CHECK(gs_cspan_handed_out(&c) == n - pre);
        for (uint32_t i = 0; i < n; i++) CHECK(seen[i]);
        CHECK(gs_span_count_live(side, n, aw, false, c.freeindex) == n);

        /* Free half the slots remotely, then sweep: exactly those come back. */
        _Atomic uint64_t *freed = gs_side_freed(side, aw);
        uint32_t nfreed = 0;
        for (uint32_t i = 0; i < n; i += 2) {
            freed[i / 64] |= UINT64_C(1) << (i % 64);
            nfreed++;
        }
        CHECK(gs_span_count_live(side, n, aw, false, c.freeindex) == n - nfreed);
        uint32_t merged = 0;
        uint32_t live = gs_span_sweep(side, n, aw, false, c.freeindex, &merged);
        CHECK(merged == nfreed);
        CHECK(live == n - nfreed);
        CHECK(gs_load_relaxed(&side->xfreeindex) == 0);
        for (uint32_t w = 0; w < aw; w++) CHECK(freed[w] == 0);
        /* Sweeping again changes nothing (a sweeper that died is redone). */
        CHECK(gs_span_sweep(side, n, aw, false, 0, &merged) == live && merged == 0);
        memset(seen, 0, sizeof seen);
        for (uint32_t i = 1; i < n; i += 2) seen[i] = 1;
        view(&c, side, &m, n, base);
        CHECK(drain(&c, seen) == nfreed);
        /* Garbage above nelems in a client-writable word is ignored. */
        if (n % 64) {
            gs_side_alloc(side)[aw - 1] &= gs_word_mask(aw - 1, n);
            freed[aw - 1] |= ~gs_word_mask(aw - 1, n);
            CHECK(gs_span_sweep(side, n, aw, false, n, NULL) == n);
        }
        free(side);
    }

    /* Tiny: two live bits per block; a block is free when both are clear. */
    {
        uint32_t n = 128, aw = gs_bitmap_words(n);
        gs_side_t *side = new_side(aw + 2 * aw);
        _Atomic uint64_t *alloc = gs_side_alloc(side), *live = gs_side_freed(side, aw);
        alloc[0] = 0xf;                  /* blocks 0..3 allocated */
        live[0] = (UINT64_C(3) << 0) | (UINT64_C(1) << 2) | (UINT64_C(2) << 6); /* b0 both, b1 one, b3 one */
        uint32_t merged;
        uint32_t l = gs_span_sweep(side, n, aw, true, 0, &merged);
        CHECK(l == 3 && merged == 1);    /* block 2 had no live half */
        CHECK(alloc[0] == 0xb);
        CHECK(gs_tiny_fold(UINT64_C(0x3)) == 1 && gs_tiny_fold(UINT64_C(0x8)) == 2 &&
              gs_tiny_fold(UINT64_C(1) << 63) == (1u << 31));
        free(side);
    }
    return CHECK_DONE("test-bitmap");
}
