/* SPDX-License-Identifier: MIT */
/* Description: a frame without a frame pointer, for test-fpwalk.c: built
 * with -fomit-frame-pointer (tests/observe/CMakeLists.txt), and on x86-64
 * and AArch64 it puts garbage in the frame-pointer register while it calls
 * down, as code built without frame pointers may (the register is an
 * ordinary one there). */
#include <stdint.h>

#include "fpwalk.h"

__attribute__((noinline)) int fpw_nofp(fpw_fn fn, void **pcs, int max, uintptr_t junk)
{
    int n;
#if defined(__x86_64__)
    __asm__ volatile("" ::: "memory");
    register uintptr_t j __asm__("rbp") = junk;
    __asm__ volatile("" : "+r"(j));
    n = fn(pcs, max);
    __asm__ volatile("" : "+r"(j));
#elif defined(__aarch64__)
    register uintptr_t j __asm__("x29") = junk;
    __asm__ volatile("" : "+r"(j));
    n = fn(pcs, max);
    __asm__ volatile("" : "+r"(j));
#else
    (void)junk;
    n = fn(pcs, max);
#endif
    return n;
}
