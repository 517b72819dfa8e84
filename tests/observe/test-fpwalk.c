/* SPDX-License-Identifier: MIT */
/* Description: the heap profile's frame-pointer walk (client/profile.c).
 * A known chain of calls, fpw_a -> fpw_b -> fpw_c -> the walk, comes back
 * as fpw_c, fpw_b, fpw_a and their caller, in that order (named by dladdr: the test is
 * built with -rdynamic and frame pointers). A walk through a frame built
 * without a frame pointer that holds garbage in that register ends there,
 * without a fault, still with the frames inside it. The walk's checks on a
 * stack built by hand: a frame below the one before, misaligned, outside
 * the bounds, a zero return address, each ends the walk; max is obeyed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "fpwalk.h"
#include "profile.h"

static uintptr_t stack_lo, stack_hi;

static const char *name_of(void *pc)
{
    Dl_info di;
    if (!dladdr((char *)pc - 1, &di) || !di.dli_sname) return "?";
    return di.dli_sname;
}

__attribute__((noinline)) int fpw_c(void **pcs, int max)
{
    int n = gs_prof_fp_here(stack_lo, stack_hi, pcs, max);
    __asm__ volatile("" ::: "memory"); /* not a tail call */
    return n;
}

__attribute__((noinline)) int fpw_b(void **pcs, int max)
{
    int n = fpw_c(pcs, max);
    __asm__ volatile("" ::: "memory");
    return n;
}

__attribute__((noinline)) int fpw_a(void **pcs, int max)
{
    int n = fpw_b(pcs, max);
    __asm__ volatile("" ::: "memory");
    return n;
}

__attribute__((noinline)) int fpw_through(void **pcs, int max, uintptr_t junk)
{
    int n = fpw_nofp(fpw_c, pcs, max, junk);
    __asm__ volatile("" ::: "memory");
    return n;
}

__attribute__((noinline)) void fpw_known_chain(void)
{
    void *pcs[32];
    int n = fpw_a(pcs, 32);
    REQUIRE(n >= 4);
    CHECK_MSG(strcmp(name_of(pcs[0]), "fpw_c") == 0, "frame 0: %s", name_of(pcs[0]));
    CHECK_MSG(strcmp(name_of(pcs[1]), "fpw_b") == 0, "frame 1: %s", name_of(pcs[1]));
    CHECK_MSG(strcmp(name_of(pcs[2]), "fpw_a") == 0, "frame 2: %s", name_of(pcs[2]));
    CHECK_MSG(strcmp(name_of(pcs[3]), "fpw_known_chain") == 0, "frame 3: %s", name_of(pcs[3]));
    /* max is obeyed */
    CHECK(fpw_a(pcs, 2) == 2);
    CHECK(fpw_a(pcs, 0) == 0);
    /* a frame outside the given stack: none */
    CHECK(gs_prof_fp_here(stack_hi, stack_hi + 4096u, pcs, 32) == -1);
}

static void through_no_fp(void)
{
    /* Junk values that each check must catch: below the stack, not
     * aligned, and (the hardest) an aligned address inside the stack but
     * below the walk's own frame. */
    char here;
    uintptr_t junks[] = {0x1001u, (uintptr_t)&here | 1u, (stack_lo + 64u) & ~(uintptr_t)15u, 0};
    for (int j = 0; j < 4; j++) {
        void *pcs[32];
        memset(pcs, 0, sizeof pcs);
        int n = fpw_through(pcs, 32, junks[j]);
        REQUIRE(n >= 1 && n <= 32);
        CHECK_MSG(strcmp(name_of(pcs[0]), "fpw_c") == 0, "junk %d frame 0: %s", j, name_of(pcs[0]));
        /* fpw_c's frame holds the junk as its caller's frame pointer and a
         * return address into fpw_nofp: that frame is recorded, the walk
         * ends at the junk. */
        CHECK_MSG(n == 2, "junk %d: %d frames", j, n);
        if (n >= 2) CHECK_MSG(strcmp(name_of(pcs[1]), "fpw_nofp") == 0, "junk %d frame 1: %s", j, name_of(pcs[1]));
    }
}

static void by_hand(void)
{
    /* A stack of 16 words, a frame being two words: [next fp, return]. */
    uintptr_t st[16];
    uintptr_t lo = (uintptr_t)&st[0], hi = (uintptr_t)&st[16];
    void *pcs[16];
#define FRAME(i, next, ret) (st[i] = (uintptr_t)(next), st[(i) + 1] = (uintptr_t)(ret))
    /* three good frames at 0, 4, 8, the last one's return 0 (outermost) */
    FRAME(0, &st[4], 0x10001);
    FRAME(4, &st[8], 0x10002);
    FRAME(8, 0, 0);
    CHECK(gs_prof_fp_chain(lo, lo, hi, pcs, 16) == 2);
    CHECK(pcs[0] == (void *)0x10001 && pcs[1] == (void *)0x10002);
    CHECK(gs_prof_fp_chain(lo, lo, hi, pcs, 1) == 1); /* max */
    /* the next frame pointer below the current one: ends after it */
    FRAME(8, &st[2], 0x10003);
    CHECK(gs_prof_fp_chain(lo, lo, hi, pcs, 16) == 3);
    /* the same frame again (a loop) */
    FRAME(8, &st[8], 0x10003);
    CHECK(gs_prof_fp_chain(lo, lo, hi, pcs, 16) == 3);
    /* misaligned */
    FRAME(4, (char *)&st[8] + 1, 0x10002);
    CHECK(gs_prof_fp_chain(lo, lo, hi, pcs, 16) == 2);
    /* out of bounds: past hi, and a frame whose return word is past hi */
    FRAME(4, &st[16], 0x10002);
    CHECK(gs_prof_fp_chain(lo, lo, hi, pcs, 16) == 2);
    FRAME(4, &st[15], 0x10002);
    CHECK(gs_prof_fp_chain(lo, lo, hi, pcs, 16) == 2);
    /* a start below lo */
    CHECK(gs_prof_fp_chain(lo, lo + 8u, hi, pcs, 16) == 0);
    /* a small return address is not code */
    FRAME(4, &st[8], 12);
    CHECK(gs_prof_fp_chain(lo, lo, hi, pcs, 16) == 1);
#undef FRAME
}

int main(void)
{
#if !defined(__x86_64__) && !defined(__aarch64__)
    printf("test-fpwalk: no frame-pointer walk on this architecture\n");
    return 77;
#endif
    REQUIRE(gs_prof_thread_stack(&stack_lo, &stack_hi) == 0);
    char here;
    REQUIRE((uintptr_t)&here > stack_lo && (uintptr_t)&here < stack_hi);
    fpw_known_chain();
    through_no_fp();
    by_hand();
    return CHECK_DONE("test-fpwalk");
}
