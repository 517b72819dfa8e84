/* SPDX-License-Identifier: MIT */
/* Description: a hostile client's notice chain does not stall the daemon
 * (issue 7, point 8). The notice stack's links live in client-writable
 * memory. With tens of thousands of spans in the heap, a hostile client
 * keeps pushing a span whose link points to itself (a self-looping chain),
 * and a chain that visits every span id, while a victim process allocates
 * and frees (large objects: a round trip each) and records its worst
 * allocation latencies. The victim's 99.9th percentile stays under a bound
 * (it and the worst are printed), its objects read back, the loops are counted as bad requests,
 * and the daemon keeps serving and ends idle.
 *
 * Usage: test-dos-notice GOSHMD   (also $GOSHMD)
 *        test-dos-notice --victim SOCKET MS   (internal role)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "harness.h"
#include "victim.h"

/* On the 99.9th percentile: on a loaded 2-CPU machine (load 12) single
 * stalls of scheduling noise reached 300 ms, while a drain that follows a
 * loop (thousands of pushes per run) would stall far more than 0.1% of the
 * allocations; the old drain stalled one for 598 ms on a big heap. The work
 * per push is asserted exactly below. */
#define VICTIM_MAX_MS 20u
#define RUN_MS 1500u

/* Push `sid` with its link set to `next`, as no honest freer would. */
static void push_raw(goshm_t *h, uint32_t sid, uint32_t next)
{
    gs_notice_t *n = gs_notice_in(h->data, h->notice_off, sid);
    gs_store_seqcst(&n->xqueued, 1u);
    gs_store_relaxed(&n->xnext, next);
    uint32_t head = gs_load_relaxed(&h->hdr->xnotice_head);
    while (!gs_cas_release(&h->hdr->xnotice_head, &head, sid)) {
    }
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--victim") == 0)
        return victim_run(argv[2], (unsigned)atoi(argv[3]), "test-dos-notice victim");

    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), "--size 1G") == 0);
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);
    enum { N = 200000 / TEST_SCALE };
    static void *objs[N];
    for (unsigned i = 0; i < N; i++) {
        objs[i] = goshm_malloc(h, i % 2 ? 1024 : 48);
        REQUIRE(objs[i]);
        memset(objs[i], (int)(i & 0xff), 16);
    }
    gs_lookup_t l;
    REQUIRE(gs_lookup(h, objs[0], &l) == NULL);
    uint32_t loop_sid = l.sid;
    gsh_stats_t st0, st;
    REQUIRE(gsh_stats(d.sock, &st0) == 0);
    uint64_t nspans = h->max_spans;
    fprintf(stderr, "heap: %" PRIu64 " MiB of spans; looping span %u\n", st0.span_bytes >> 20, loop_sid);

    int vfd = -1;
    pid_t vp = victim_spawn("test-dos-notice", d.sock, RUN_MS, &vfd);
    REQUIRE(vp > 0);

    /* The attack, while the victim runs: self-loops, and long chains (each
     * span's link to the next id, the last one back to the first). */
    uint64_t pushes = 0, end = gsh_now_ms() + RUN_MS;
    while (gsh_now_ms() < end) {
        push_raw(h, loop_sid, loop_sid);
        pushes++;
        if (pushes % 64 == 0) {
            uint32_t top = (uint32_t)(nspans > 4096 ? 4096 : nspans - 1);
            for (uint32_t s = top; s >= 1; s--) push_raw(h, s, s == top ? 1 : s + 1);
        }
        usleep(200);
    }
    char buf[64] = {0};
    ssize_t r = read(vfd, buf, sizeof buf - 1);
    close(vfd);
    CHECK(gsh_wait_child(vp, 60000) == 0);
    uint64_t p999 = 0, worst = 0, n = 0;
    CHECK(r > 0 && sscanf(buf, "%" SCNu64 " %" SCNu64 " %" SCNu64, &p999, &worst, &n) == 3);
    REQUIRE(gsh_stats(d.sock, &st) == 0);
    fprintf(stderr, "%" PRIu64 " looping pushes; victim: %" PRIu64 " large mallocs, p99.9 %" PRIu64 " us, worst %" PRIu64
            " us (bound on p99.9: %u ms); bad requests %" PRIu64 " -> %" PRIu64 "\n",
            pushes, n, p999, worst, VICTIM_MAX_MS, st0.bad_requests, st.bad_requests);
    CHECK_MSG(p999 < VICTIM_MAX_MS * 1000u, "victim's p99.9 malloc %" PRIu64 " us", p999);
    CHECK_MSG(n > 100, "victim made only %" PRIu64 " allocations", n);
    CHECK(st.bad_requests > st0.bad_requests); /* the loops were seen */
    /* The daemon's work: one notice per self-loop push, 4096 per long
     * chain (every 64th push), one per victim's free (its large objects),
     * where the old drain followed a loop for every span id in the table
     * each time (25 million here for 3500 pushes). Twice that: a push
     * that rewrites the link of an id still waiting in a chain being
     * drained splices the chains, so an id can be visited once per chain. */
    uint64_t handled = st.notices - st0.notices;
    uint64_t allowed = 2u * (pushes + (pushes / 64u + 1u) * 4096u + n) + 1000u;
    fprintf(stderr, "notices handled: %" PRIu64 " (at most %" PRIu64 " allowed; span table %" PRIu64 ")\n",
            handled, allowed, nspans);
    CHECK_MSG(handled <= allowed, "%" PRIu64 " notices handled for %" PRIu64 " pushes", handled, pushes);
    CHECK(gsh_alive(&d));

    /* Leave the stack as an honest client would find it, then clean up. */
    gs_store_release(&h->hdr->xnotice_head, 0);
    for (uint32_t s = 1; s < nspans && s <= 4096; s++)
        gs_store_seqcst(&gs_notice_in(h->data, h->notice_off, s)->xqueued, 0);
    for (unsigned i = 0; i < N; i++) {
        unsigned char *p = objs[i];
        for (int k = 0; k < 16; k++)
            if (p[k] != (unsigned char)(i & 0xff)) {
                CHECK_MSG(0, "object %u byte %d changed", i, k);
                break;
            }
        goshm_free(h, p);
    }
    CHECK(goshm_detach(h) == 0);
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-dos-notice");
}
