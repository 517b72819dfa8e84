/* SPDX-License-Identifier: MIT */
/* check.h: the tiny test harness of the unit tests.
 *
 * CHECK(cond) records a failure with file and line and keeps going;
 * CHECK_DONE() prints the summary and gives the exit code (0 pass, 1 fail).
 * Sizes shrink under sanitizers (GOSHM_ASAN, GOSHM_TSAN) so the suite stays
 * fast; the checks themselves never change.
 */
#ifndef GOSHM_TEST_CHECK_H
#define GOSHM_TEST_CHECK_H

#include <stdio.h>  /* fprintf */
#include <stdlib.h> /* exit */

static int check_failures, check_count;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        check_count++;                                                                \
        if (!(cond)) {                                                                \
            check_failures++;                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
        }                                                                             \
    } while (0)

#define CHECK_MSG(cond, ...)                                                          \
    do {                                                                              \
        check_count++;                                                                \
        if (!(cond)) {                                                                \
            check_failures++;                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
        }                                                                             \
    } while (0)

#define REQUIRE(cond)                                                                 \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond);\
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

#define CHECK_DONE(name)                                                              \
    (fprintf(stderr, "%s: %d checks, %d failed\n", (name), check_count, check_failures), \
     check_failures ? 1 : 0)

#if defined(GOSHM_ASAN) || defined(GOSHM_TSAN)
#define TEST_SCALE 8 /* divide loop counts under sanitizers */
#else
#define TEST_SCALE 1
#endif

/* xorshift64*: deterministic randomness for tests. */
static inline unsigned long long test_rand(unsigned long long *s)
{
    unsigned long long x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

#endif
