/* SPDX-License-Identifier: MIT */
/* Description: a stopped daemon does not block its clients forever (issue 7,
 * point 9). With GOSHM_TIMEOUT_MS=1000, goshmd is stopped (SIGSTOP) and:
 * (1) a large allocation and (2) a refill of an unused size class fail with
 *     ETIMEDOUT after about a second, not after the whole stop;
 * (3) a second call while the daemon is still stopped fails the same way;
 * (4) after SIGCONT the same handle goes on working: objects written and
 *     read back, small and large;
 * (5) nothing leaks: the late answers (a large object, spans) were given
 *     back, so once everything is freed the heap holds no large object and
 *     its in-use bytes are back to the baseline, while the client is still
 *     attached; after detach the heap is idle.
 *
 * Usage: test-dos-sigstop GOSHMD   (also $GOSHMD)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../service/harness.h"
#include "../unit/check.h"
#include "goshm/goshm.h"

#define TIMEOUT_MS 1000u

static bool no_large(const gsh_stats_t *st, void *base)
{
    return st->large_objects == 0 && st->in_use_bytes <= *(uint64_t *)base;
}

/* One call that needs the daemon, while it is stopped: ETIMEDOUT after about
 * TIMEOUT_MS. */
static void expect_timeout(goshm_t *h, size_t size, const char *what)
{
    uint64_t t0 = gsh_now_ms();
    errno = 0;
    void *p = goshm_malloc(h, size);
    int e = errno;
    uint64_t took = gsh_now_ms() - t0;
    fprintf(stderr, "%s while stopped: %s after %" PRIu64 " ms\n", what, p ? "success" : strerror(e), took);
    CHECK_MSG(p == NULL && e == ETIMEDOUT, "%s: expected ETIMEDOUT, got %p / %s", what, p, strerror(e));
    CHECK_MSG(took >= TIMEOUT_MS - 50 && took < 3u * TIMEOUT_MS, "%s: failed after %" PRIu64 " ms", what, took);
    if (p) goshm_free(h, p);
}

int main(int argc, char **argv)
{
    char tmo[16];
    snprintf(tmo, sizeof tmo, "%u", TIMEOUT_MS);
    setenv("GOSHM_TIMEOUT_MS", tmo, 1);
    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), "--size 256M") == 0);
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);

    /* Warm one class so that its allocations need no daemon while stopped. */
    char *warm = goshm_malloc(h, 64);
    REQUIRE(warm);
    strcpy(warm, "warm");
    gsh_stats_t st;
    REQUIRE(gsh_settle(d.sock, 1, &st) == 0);
    uint64_t base_in_use = st.in_use_bytes;
    CHECK(st.large_objects == 0);

    REQUIRE(gsh_stop_all_threads(&d) == 0);
    expect_timeout(h, 1u << 20, "large malloc (1 MiB)");
    expect_timeout(h, 3000, "refill (3000 B)");
    expect_timeout(h, 2u << 20, "second large malloc (2 MiB)");
    /* The cached class needs no daemon: still served. */
    char *cached = goshm_malloc(h, 64);
    CHECK(cached != NULL);
    REQUIRE(kill(d.pid, SIGCONT) == 0);

    /* (4) The same handle works again: the late answers are drained first. */
    uint64_t t0 = gsh_now_ms();
    unsigned char *big = goshm_malloc(h, 3u << 20);
    CHECK_MSG(big != NULL, "large malloc after SIGCONT: %s", strerror(errno));
    unsigned char *small[64];
    for (int i = 0; i < 64; i++) {
        small[i] = goshm_malloc(h, 3000);
        CHECK_MSG(small[i] != NULL, "small malloc %d after SIGCONT: %s", i, strerror(errno));
        if (small[i]) memset(small[i], i, 3000);
    }
    if (big) memset(big, 0xab, 3u << 20);
    fprintf(stderr, "after SIGCONT: served in %" PRIu64 " ms\n", gsh_now_ms() - t0);
    for (int i = 0; i < 64; i++)
        if (small[i]) {
            CHECK(small[i][0] == i && small[i][2999] == i);
            goshm_free(h, small[i]);
        }
    if (big) {
        CHECK(big[0] == 0xab && big[(3u << 20) - 1] == 0xab);
        goshm_free(h, big);
    }
    CHECK(strcmp(warm, "warm") == 0);
    goshm_free(h, warm);
    if (cached) goshm_free(h, cached);

    /* (5) No large object left behind (the abandoned 1 and 2 MiB ones were
     * freed when their late answers came), in-use bytes back to baseline. */
    int w = gsh_wait_for(d.sock, &st, no_large, &base_in_use, 3000);
    CHECK_MSG(w == 1, "after frees: large_objects %" PRIu64 " in_use %" PRIu64 " (baseline %" PRIu64 ")",
              st.large_objects, st.in_use_bytes, base_in_use);
    CHECK(gsh_alive(&d));
    CHECK(goshm_detach(h) == 0);
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK(st.in_use_bytes == 0 && st.span_bytes == 0);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-dos-sigstop");
}
