/* SPDX-License-Identifier: MIT */
/* Description: statistics requests do not stall other clients (issue 7,
 * point 8). A heap holding tens of thousands of spans; a victim process
 * allocates and frees large objects (each a round trip to the daemon, under
 * its heap lock) and records its allocation latencies, first alone, then
 * while another process hammers the daemon with stats requests (each walks
 * the span table). The 99.9th percentiles and the worst cases are printed;
 * the hammered 99.9th percentile must stay under HAMMERED_MAX_MS.
 * The victim's objects are written and read back, and the heap is idle at
 * the end.
 *
 * Usage: test-dos-stats GOSHMD   (also $GOSHMD)
 *        test-dos-stats --victim SOCKET MS   (internal role: prints p99.9, worst us)
 *        test-dos-stats --hammer SOCKET MS   (internal role)
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

#include "../service/harness.h"
#include "../unit/check.h"
#include "goshm/goshm.h"
#include "victim.h"

/* The bound is on the 99.9th percentile: on a loaded 2-CPU machine (load
 * 12) the victim alone saw single stalls of up to 290 ms of scheduling
 * noise, while a stall caused by stats requests (thousands of them per run)
 * would hit far more than 0.1% of the allocations. */
#define HAMMERED_MAX_MS 20u
#define RUN_MS 1500u

static int hammer(const char *sock, unsigned ms)
{
    uint64_t end = gsh_now_ms() + ms, n = 0;
    while (gsh_now_ms() < end) {
        gsh_stats_t st;
        if (gsh_stats(sock, &st) != 0) return 1;
        n++;
    }
    fprintf(stderr, "hammer: %" PRIu64 " stats requests in %u ms\n", n, ms);
    return 0;
}

/* Run the victim (alone or with the hammer); its 99.9th percentile malloc
 * latency in us (*worst: the worst). */
static uint64_t run_victim(const char *sock, bool with_hammer, uint64_t *worstp)
{
    char msb[16];
    snprintf(msb, sizeof msb, "%u", RUN_MS);
    int vfd = -1;
    pid_t hp = -1;
    if (with_hammer) {
        char *hargv[] = {"test-dos-stats", "--hammer", (char *)sock, msb, NULL};
        hp = gsh_spawn_self(hargv);
        REQUIRE(hp > 0);
        gsh_sleep_ms(50);
    }
    pid_t vp = victim_spawn("test-dos-stats", sock, RUN_MS, &vfd);
    REQUIRE(vp > 0);
    char buf[64] = {0};
    ssize_t r = read(vfd, buf, sizeof buf - 1);
    close(vfd);
    CHECK(gsh_wait_child(vp, 60000) == 0);
    if (with_hammer) CHECK(gsh_wait_child(hp, 60000) == 0);
    uint64_t p999 = 0, worst = 0, n = 0;
    CHECK(r > 0 && sscanf(buf, "%" SCNu64 " %" SCNu64 " %" SCNu64, &p999, &worst, &n) == 3);
    fprintf(stderr, "victim %s: %" PRIu64 " large mallocs, p99.9 %" PRIu64 " us, worst %" PRIu64 " us\n",
            with_hammer ? "while stats is hammered" : "alone", n, p999, worst);
    *worstp = worst;
    return p999;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--victim") == 0)
        return victim_run(argv[2], (unsigned)atoi(argv[3]), "test-dos-stats victim");
    if (argc == 4 && strcmp(argv[1], "--hammer") == 0) return hammer(argv[2], (unsigned)atoi(argv[3]));

    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), "--size 1G") == 0);
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);
    /* Tens of thousands of spans: small objects of many classes, tiny ones
     * included (their live count is the costliest to walk). */
    enum { N = 400000 / TEST_SCALE };
    static void *objs[N];
    static const size_t sizes[] = {8, 16, 48, 128, 512, 1024, 3072};
    for (unsigned i = 0; i < N; i++) {
        size_t sz = sizes[i % (sizeof sizes / sizeof sizes[0])];
        objs[i] = goshm_malloc(h, sz);
        REQUIRE(objs[i]);
        memset(objs[i], (int)(i & 0xff), sz < 16 ? sz : 16);
    }
    gsh_stats_t st;
    REQUIRE(gsh_stats(d.sock, &st) == 0);
    fprintf(stderr, "heap: %" PRIu64 " MiB of spans, %" PRIu64 " objects in use\n", st.span_bytes >> 20,
            st.objects_in_use);

    uint64_t alone_worst, hammered_worst;
    uint64_t alone = run_victim(d.sock, false, &alone_worst);
    uint64_t hammered = run_victim(d.sock, true, &hammered_worst);
    fprintf(stderr, "large malloc p99.9 (worst): alone %" PRIu64 " us (%" PRIu64 "), while stats is hammered %" PRIu64
            " us (%" PRIu64 "); bound %u ms\n", alone, alone_worst, hammered, hammered_worst, HAMMERED_MAX_MS);
    CHECK_MSG(hammered < HAMMERED_MAX_MS * 1000u, "victim's p99.9 malloc %" PRIu64 " us while stats is hammered",
              hammered);

    for (unsigned i = 0; i < N; i++) {
        size_t sz = sizes[i % (sizeof sizes / sizeof sizes[0])];
        unsigned char *p = objs[i];
        for (size_t k = 0; k < (sz < 16 ? sz : 16); k++)
            if (p[k] != (unsigned char)(i & 0xff)) {
                CHECK_MSG(0, "object %u byte %zu changed", i, k);
                break;
            }
        goshm_free(h, p);
    }
    CHECK(goshm_detach(h) == 0);
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-dos-stats");
}
