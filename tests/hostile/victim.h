/* SPDX-License-Identifier: MIT */
/* victim.h: the victim role of the denial-of-service tests (test-dos-notice,
 * test-dos-stats; victim_spawn also serves test-dos-queued): a client that allocates, writes, reads back and frees
 * large objects (a round trip to the daemon each) while an attacker works,
 * and reports its allocation latencies.
 *
 * Header-only on purpose: the role's CHECKs count in the test program's own
 * counters (tests/unit/check.h keeps them per translation unit).
 */
#ifndef GOSHM_TEST_VICTIM_H
#define GOSHM_TEST_VICTIM_H

#include <inttypes.h> /* PRIu64 */
#include <stdint.h>   /* uint64_t */
#include <stdio.h>    /* printf */
#include <stdlib.h>   /* malloc, qsort */
#include <time.h>     /* clock_gettime */
#include <unistd.h>   /* dup, dup2, pipe */

#include "../unit/check.h"
#include "goshm/goshm.h"
#include "../service/harness.h"

static inline uint64_t victim_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline int victim_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Allocate, write, read back, free 64 KiB objects for ms; print the 99.9th
 * percentile and the worst allocation latency in us, and the count, on
 * stdout. The exit code of the role: 0 if every check passed, else 1. */
static inline int victim_run(const char *sock, unsigned ms, const char *name)
{
    goshm_t *h = goshm_attach(sock);
    REQUIRE(h);
    enum { MAXS = 1u << 22 };
    uint64_t *lat = malloc(MAXS * sizeof *lat);
    REQUIRE(lat);
    uint64_t n = 0, end = victim_now_us() + (uint64_t)ms * 1000u;
    while (victim_now_us() < end && n < MAXS) {
        uint64_t t0 = victim_now_us();
        unsigned char *p = goshm_malloc(h, 64u << 10);
        uint64_t t = victim_now_us() - t0;
        CHECK(p != NULL);
        if (!p) break;
        lat[n] = t;
        p[0] = (unsigned char)n;
        p[(64u << 10) - 1] = (unsigned char)~n;
        CHECK(p[0] == (unsigned char)n && p[(64u << 10) - 1] == (unsigned char)~n);
        goshm_free(h, p);
        n++;
    }
    qsort(lat, n, sizeof *lat, victim_cmp_u64);
    uint64_t p999 = n ? lat[(n * 999u) / 1000u] : 0, worst = n ? lat[n - 1] : 0;
    printf("%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", p999, worst, n);
    fflush(stdout);
    free(lat);
    CHECK(goshm_detach(h) == 0);
    return CHECK_DONE(name);
}

/* Start `prog --victim SOCK MS` (this program, re-executed) with its stdout
 * on a pipe; returns its pid (or -1) and the pipe's read end in *rfd, where
 * the victim writes its one result line. */
static inline pid_t victim_spawn(const char *prog, const char *sock, unsigned ms, int *rfd)
{
    int pfd[2];
    if (pipe(pfd) != 0) return -1;
    char msb[16];
    snprintf(msb, sizeof msb, "%u", ms);
    fflush(stdout);
    int saved = dup(1);
    if (saved < 0 || dup2(pfd[1], 1) != 1) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    char *vargv[] = {(char *)prog, "--victim", (char *)sock, msb, NULL};
    pid_t vp = gsh_spawn_self(vargv);
    dup2(saved, 1);
    close(saved);
    close(pfd[1]);
    *rfd = pfd[0];
    return vp;
}

#endif /* GOSHM_TEST_VICTIM_H */
