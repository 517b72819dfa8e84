/* SPDX-License-Identifier: MIT */
/* Description: crash consistency of the daemon's metadata. A worker process
 * allocates, fills, verifies and frees objects of every kind without pause
 * (refills, hand-backs, large objects, sweeps; --scavenge-delay 1 makes
 * the scavenger punch idle runs all the time) while the daemon is killed
 * over and over at kill points (GOSHM_KILLPOINT, daemon/killpoint.c):
 * every named point between the meta writes of a refill, a large
 * allocation, a free run's merge, a grow, a scavenge, an uncache and a
 * transaction's commit, at its 1st and at a random later pass, then at
 * random passes through any point. After each kill a new daemon adopts the
 * heap: adoption runs the heap invariant check and refuses an inconsistent
 * heap (the test then fails: the daemon does not come up), the heap id
 * stays. The worker rides through every restart; an object whose contents
 * changed (a slot handed out twice, a span lost and reused) fails it. At
 * the end it frees everything and detaches: the heap must be empty
 * (in_use_bytes 0, no span in use), so no span was lost.
 *
 * Usage: test-killpoints GOSHMD       (also $GOSHMD)
 *        test-killpoints --worker SOCKET FILE   (internal role)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "goshm/goshm.h"
#include "rdaemon.h"

#define LIVE 1200

typedef struct ctl_area {
    _Atomic int stop;      /* parent: finish */
    _Atomic uint64_t ops;  /* worker: progress */
    _Atomic int failed;    /* worker: what went wrong (0: nothing) */
    _Atomic uint64_t grow_req, grow_done; /* parent: allocate and free this much once (the heap grows) */
} ctl_area_t;

static uint64_t pattern(goshm_off_t off, uint64_t i) { return (off * UINT64_C(0x9e3779b97f4a7c15)) ^ (i * 977u); }

static void fill(char *p, goshm_off_t off, uint64_t size)
{
    uint64_t w = size / 8u;
    for (uint64_t i = 0; i < w; i += (w > 512 ? 37 : 1)) memcpy(p + i * 8u, &(uint64_t){pattern(off, i)}, 8);
    if (size < 8) p[0] = (char)off;
}

static bool verify(const char *p, goshm_off_t off, uint64_t size)
{
    uint64_t w = size / 8u;
    for (uint64_t i = 0; i < w; i += (w > 512 ? 37 : 1)) {
        uint64_t v;
        memcpy(&v, p + i * 8u, 8);
        if (v != pattern(off, i)) return false;
    }
    return size >= 8 || p[0] == (char)off;
}

static int worker(const char *sock, const char *file)
{
    int fd = open(file, O_RDWR);
    ctl_area_t *c = fd >= 0 ? mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    if (c == MAP_FAILED) return 10;
    goshm_t *h = goshm_attach(sock);
    if (!h) return 11;
    uint64_t id = goshm_heap_id(h);
    static struct { char *p; uint64_t size; } live[LIVE];
    unsigned long long seed = 12345;
    while (!atomic_load(&c->stop)) {
        uint64_t g = atomic_load(&c->grow_req);
        if (g != atomic_load(&c->grow_done)) {
            char *big = goshm_malloc(h, g);
            if (big) {
                big[0] = 1;
                goshm_free(h, big);
            }
            atomic_store(&c->grow_done, g);
        }
        unsigned long long r = test_rand(&seed);
        uint32_t k = (uint32_t)(r % LIVE);
        if (live[k].p) {
            if (!verify(live[k].p, goshm_off(h, live[k].p), live[k].size)) {
                fprintf(stderr, "worker: object %u at offset %llu changed\n", k,
                        (unsigned long long)goshm_off(h, live[k].p));
                atomic_store(&c->failed, 1);
                return 12;
            }
            goshm_free(h, live[k].p);
            live[k].p = NULL;
            continue;
        }
        uint64_t size;
        switch ((r >> 20) % 16) {
        case 0: size = 1 + (r >> 32) % 15; break;             /* tiny */
        case 1: size = 40000 + (r >> 32) % 600000; break;      /* large */
        case 2: size = 4000 + (r >> 32) % 28000; break;        /* big classes, multi-page spans */
        default: size = 8 + (r >> 32) % 1500; break;
        }
        /* Some large objects aligned beyond a page: the mheap splits a
         * head off the free run it takes them from. */
        char *p = (r >> 24) % 64 == 0 ? goshm_aligned_alloc(h, (size_t)1 << 20, 100000) : goshm_malloc(h, size);
        if ((r >> 24) % 64 == 0) size = 100000;
        if (!p) {
            if (errno == ENOMEM) continue;
            fprintf(stderr, "worker: malloc(%llu): %s\n", (unsigned long long)size, strerror(errno));
            atomic_store(&c->failed, 2);
            return 13;
        }
        fill(p, goshm_off(h, p), size);
        live[k].p = p;
        live[k].size = size;
        atomic_fetch_add(&c->ops, 1);
    }
    if (goshm_heap_id(h) != id) return 14;
    for (uint32_t k = 0; k < LIVE; k++) {
        if (!live[k].p) continue;
        if (!verify(live[k].p, goshm_off(h, live[k].p), live[k].size)) {
            atomic_store(&c->failed, 3);
            return 15;
        }
        goshm_free(h, live[k].p);
    }
    return goshm_detach(h) == 0 ? 0 : 16;
}

static const char *points[] = {
    "grow-committed", "grow-counted",  "alloc-head",   "alloc-tail",   "alloc-commit",
    "span-init",      "span-published", "free-run-merged", "free-run-record", "scavenge-punched",
    "cache-owner",    "uncache-swept", "large-alloc",  "txn-commit",
};
#define NGROW 2 /* the first points: a grow is asked for in their rounds */
#define NPOINTS (sizeof points / sizeof points[0])

static rd_t D;
#define DAEMON_ARGS "--scavenge-delay 1"
#define SIZE "1G"

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--worker") == 0) return worker(argv[2], argv[3]);
    setvbuf(stderr, NULL, _IONBF, 0);
    rd_init(&D, gsh_daemon_path(argc, argv));
    setenv("GOSHM_RECONNECT_S", "30", 1);
    REQUIRE(rd_start(&D, SIZE, DAEMON_ARGS) == 0);
    gsh_stats_t st;
    REQUIRE(gsh_stats(D.sock, &st) == 0);
    uint64_t id = st.heap_id;

    char file[160];
    snprintf(file, sizeof file, "%s/ctl", D.dir);
    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0 && ftruncate(fd, sizeof(ctl_area_t)) == 0);
    ctl_area_t *c = mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    REQUIRE(c != MAP_FAILED);
    char *wargv[] = {argv[0], "--worker", D.sock, file, NULL};
    pid_t w = gsh_spawn_self(wargv);
    REQUIRE(w > 0);

    unsigned long long seed = 777;
    unsigned rounds = (unsigned)(2 * NPOINTS + 16 / TEST_SCALE), fired = 0, adopted = 0;
    for (unsigned r = 0; r < rounds && !atomic_load(&c->failed); r++) {
        /* Let the worker get going under a daemon that does not die. */
        uint64_t ops0 = atomic_load(&c->ops);
        for (int t = 0; t < 300 && atomic_load(&c->ops) < ops0 + 200; t++) gsh_sleep_ms(5);
        char kp[64];
        if (r < 2 * NPOINTS)
            snprintf(kp, sizeof kp, "%s:%llu", points[r / 2], r % 2 ? 2 + test_rand(&seed) % 30 : 1ull);
        else
            snprintf(kp, sizeof kp, "any:%llu", 1 + test_rand(&seed) % 2000);
        rd_stop(&D, SIGKILL);
        REQUIRE(rd_spawn(&D, SIZE, DAEMON_ARGS, kp) == 0);
        if (r < 2 * NGROW && r % 2 == 0) /* the first pass through the point: more than is grown */
            atomic_store(&c->grow_req, (uint64_t)(r * 2 + 1) * (64u << 20));
        int ws = rd_reap(&D, 2000);
        if (ws == -1) {
            ws = rd_stop(&D, SIGKILL); /* not reached in time: a kill at a random instant instead */
        } else {
            CHECK_MSG(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL, "daemon with %s: status %d", kp, ws);
            fired++;
        }
        /* The next daemon must adopt whatever that one left. */
        if (rd_start(&D, SIZE, DAEMON_ARGS) != 0) {
            CHECK_MSG(0, "after a kill at %s the heap was not adopted (status %d)", kp, D.status);
            break;
        }
        REQUIRE(gsh_stats(D.sock, &st) == 0);
        CHECK_MSG(st.heap_id == id && st.adopted, "after %s: heap id %llx adopted %u", kp,
                  (unsigned long long)st.heap_id, st.adopted);
        adopted++;
    }
    fprintf(stderr, "%u rounds: %u kill points reached, %u adoptions, %llu worker operations\n", rounds, fired,
            adopted, (unsigned long long)atomic_load(&c->ops));
    CHECK(fired >= NPOINTS); /* most named points are reached within 2 s */
    atomic_store(&c->stop, 1);
    CHECK_MSG(gsh_wait_child(w, 60000) == 0, "worker failed (%d)", atomic_load(&c->failed));
    CHECK(atomic_load(&c->failed) == 0);
    CHECK(gsh_settle_idle(D.sock, &st) == 0);
    CHECK_MSG(st.in_use_bytes == 0 && st.span_bytes == 0, "at the end: in_use %llu, span %llu",
              (unsigned long long)st.in_use_bytes, (unsigned long long)st.span_bytes);
    int ws = rd_stop(&D, SIGTERM);
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    return CHECK_DONE("test-killpoints");
}
