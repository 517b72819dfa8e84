/* SPDX-License-Identifier: MIT */
/* Description: a hostile client that pins every notice flag cannot make
 * another client's large allocations fail (issue 7, point 8). A freer
 * pushes a span on the notice stack only if it wins the span's xqueued flag
 * (shm/segment.h), and those flags are in client-writable memory: a client
 * that keeps them all set suppresses every notice, so a large object freed
 * by its owner is not given back until the background sweep finds it. A
 * victim that allocates and frees 8 MiB objects on a 64 MiB heap, two
 * live at a time, must not see ENOMEM meanwhile: the heap holds at most
 * two of its objects. Its objects are written and read back, and the heap
 * is idle at the end.
 *
 * Usage: test-dos-queued GOSHMD   (also $GOSHMD)
 *        test-dos-queued --victim SOCKET MS   (internal role: prints allocations, failures)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "victim.h"

#define RUN_MS 1000u
#define OBJ (8u << 20)

/* Allocate, write and read back large objects for ms, freeing each after
 * the next one is allocated (so it was landed: not in flight, its free
 * needs a notice); print the allocations made and the ones that failed. */
static int victim(const char *sock, unsigned ms)
{
    goshm_t *h = goshm_attach(sock);
    REQUIRE(h);
    uint64_t n = 0, failed = 0, end = gsh_now_ms() + ms;
    unsigned char *prev = NULL;
    while (gsh_now_ms() < end) {
        unsigned char *p = goshm_malloc(h, OBJ);
        if (!p) {
            failed++;
            continue;
        }
        p[0] = (unsigned char)n;
        p[OBJ - 1] = (unsigned char)~n;
        if (prev) {
            CHECK(prev[0] == (unsigned char)(n - 1) && prev[OBJ - 1] == (unsigned char)~(n - 1));
            goshm_free(h, prev);
        }
        prev = p;
        n++;
    }
    if (prev) goshm_free(h, prev);
    printf("%" PRIu64 " %" PRIu64 "\n", n, failed);
    fflush(stdout);
    CHECK(goshm_detach(h) == 0);
    return CHECK_DONE("test-dos-queued victim");
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--victim") == 0) return victim(argv[2], (unsigned)atoi(argv[3]));

    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), "--size 64M") == 0);
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);
    uint32_t top = (uint32_t)(h->max_spans > 65536 ? 65536 : h->max_spans);

    int vfd = -1;
    pid_t vp = victim_spawn("test-dos-queued", d.sock, RUN_MS, &vfd);
    REQUIRE(vp > 0);

    /* The attack, while the victim runs: every span id's flag set, again
     * and again (the heap side clears a flag it finds stuck). */
    uint64_t rounds = 0, end = gsh_now_ms() + RUN_MS + 200u;
    while (gsh_now_ms() < end) {
        for (uint32_t s = 1; s < top; s++) gs_store_relaxed(&gs_notice_in(h->data, h->notice_off, s)->xqueued, 1u);
        rounds++;
    }
    char buf[64] = {0};
    ssize_t r = read(vfd, buf, sizeof buf - 1);
    close(vfd);
    CHECK(gsh_wait_child(vp, 60000) == 0);
    uint64_t n = 0, failed = 0;
    CHECK(r > 0 && sscanf(buf, "%" SCNu64 " %" SCNu64, &n, &failed) == 2);
    fprintf(stderr, "%" PRIu64 " rounds of pinned flags; victim: %" PRIu64 " allocations of %u MiB, %" PRIu64
            " failed\n", rounds, n, OBJ >> 20, failed);
    CHECK_MSG(failed == 0, "%" PRIu64 " of the victim's allocations failed with two objects live at most", failed);
    CHECK_MSG(n > 20, "victim made only %" PRIu64 " allocations", n);
    CHECK(gsh_alive(&d));

    /* Unpin, as an honest client would leave them; the heap empties. */
    for (uint32_t s = 1; s < top; s++) gs_store_seqcst(&gs_notice_in(h->data, h->notice_off, s)->xqueued, 0);
    CHECK(goshm_detach(h) == 0);
    gsh_stats_t st;
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-dos-queued");
}
