/* SPDX-License-Identifier: MIT */
/* Description: the public API's semantics on a real segment: size 0, NULL,
 * alignment, realloc (contents kept; a failed realloc leaves the block
 * intact), aligned_alloc, usable_size, offsets, ENOMEM without SIGBUS. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "client.h"
#include "heap_internal.h"
#include "inproc.h"

int main(void)
{
    gs_heap_config_t cfg = {.size = 2 * GS_ARENA_SIZE, .max_slots = 8};
    goshm_t *h = gs_local_open(&cfg);
    REQUIRE(h);
    CHECK(goshm_version() == GOSHM_VERSION);

    /* malloc(0): unique, freeable. free(NULL): nothing. */
    void *z1 = goshm_malloc(h, 0), *z2 = goshm_malloc(h, 0);
    CHECK(z1 && z2 && z1 != z2);
    goshm_free(h, z1);
    goshm_free(h, z2);
    goshm_free(h, NULL);

    /* Alignment: 16 for 16 bytes and more, 8 below; sizes are usable. */
    for (size_t n = 1; n <= 40000; n += (n < 256 ? 1 : n / 7)) {
        unsigned char *p = goshm_malloc(h, n);
        REQUIRE(p);
        uintptr_t a = (uintptr_t)p;
        CHECK_MSG((n >= 16 ? a % 16 : a % 8) == 0, "size %zu at %p", n, (void *)p);
        CHECK(goshm_usable_size(h, p) >= n);
        memset(p, 0x7e, goshm_usable_size(h, p));
        goshm_off_t off = goshm_off(h, p);
        CHECK(off != GOSHM_NULL && goshm_ptr(h, off) == p);
        goshm_free(h, p);
    }
    CHECK(goshm_ptr(h, GOSHM_NULL) == NULL);
    CHECK(goshm_off(h, NULL) == GOSHM_NULL);
    int stack_var;
    CHECK(goshm_off(h, &stack_var) == GOSHM_NULL);
    CHECK(goshm_usable_size(h, &stack_var) == 0);

    /* realloc keeps contents when growing and shrinking. */
    unsigned char *r = goshm_realloc(h, NULL, 10);
    REQUIRE(r);
    for (int i = 0; i < 10; i++) r[i] = (unsigned char)i;
    size_t steps[] = {100, 5000, 70000, 300000, 40, 9};
    for (unsigned k = 0; k < sizeof steps / sizeof *steps; k++) {
        r = goshm_realloc(h, r, steps[k]);
        REQUIRE(r);
        for (int i = 0; i < 9; i++) CHECK(r[i] == i);
    }
    CHECK(goshm_realloc(h, r, 0) == NULL); /* frees, as glibc */

    /* aligned_alloc */
    for (size_t al = 1; al <= GS_PAGE_SIZE; al <<= 1) {
        for (size_t n = 1; n < 3 * al + 100; n = n * 3 + 1) {
            void *p = goshm_aligned_alloc(h, al, n);
            REQUIRE(p);
            CHECK_MSG((uintptr_t)p % al == 0, "align %zu size %zu", al, n);
            CHECK(goshm_usable_size(h, p) >= n);
            goshm_free(h, p);
        }
    }
    errno = 0;
    CHECK(goshm_aligned_alloc(h, 24, 100) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(goshm_aligned_alloc(h, 0, 100) == NULL && errno == EINVAL);
    /* Past a page: a large object on an aligned span (up to one arena;
     * tests/hostile/test-contract.c takes that on a larger heap). */
    for (size_t al = 2 * GS_PAGE_SIZE; al <= GS_ARENA_SIZE / 8; al *= 8) {
        void *p = goshm_aligned_alloc(h, al, 100);
        REQUIRE(p);
        CHECK_MSG((uintptr_t)p % al == 0, "align %zu", al);
        memset(p, 0x5a, 100);
        CHECK(goshm_usable_size(h, p) >= 100);
        goshm_free(h, p);
    }
    errno = 0;
    CHECK(goshm_aligned_alloc(h, 2 * GS_ARENA_SIZE, 100) == NULL && errno == EINVAL);

    /* ENOMEM: the heap holds 2 arenas. Large allocations run out cleanly. */
    void *big[64];
    int n = 0;
    errno = 0;
    while (n < 64 && (big[n] = goshm_malloc(h, 16u << 20)) != NULL) {
        memset(big[n], 1, 16u << 20); /* committed: touching never faults */
        n++;
    }
    CHECK(n >= 6 && n < 64);
    CHECK(errno == ENOMEM);
    /* A failed realloc leaves the block intact. */
    unsigned char *keep = goshm_malloc(h, 64);
    if (keep) {
        memset(keep, 0x42, 64);
        errno = 0;
        CHECK(goshm_realloc(h, keep, 64u << 20) == NULL && errno == ENOMEM);
        CHECK(keep[0] == 0x42 && keep[63] == 0x42);
        goshm_free(h, keep);
    }
    errno = 0;
    volatile size_t huge = SIZE_MAX - 10;
    CHECK(goshm_malloc(h, huge) == NULL && errno == ENOMEM);
    for (int i = 0; i < n; i++) goshm_free(h, big[i]);
    gs_local_collect(h);
    void *again = goshm_malloc(h, 16u << 20);
    CHECK(again != NULL); /* the memory came back */
    goshm_free(h, again);

    errno = 0;
    CHECK(goshm_detach(NULL) == -1 && errno == EINVAL);
    CHECK(goshm_detach(h) == 0);
    return CHECK_DONE("test-api");
}
