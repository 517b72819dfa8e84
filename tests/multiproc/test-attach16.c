/* SPDX-License-Identifier: MIT */
/* Description: 16 independent processes attach at the same moment (released
 * together by closing a pipe), the daemon sees all 16, then each allocates,
 * fills, verifies and frees 10k objects of mixed sizes, large (> 32 KiB) ones
 * included, keeping a window of them live so that the processes' objects
 * share the heap; every object's contents are checked before it is freed (two
 * processes handed the same memory would overwrite each other's patterns).
 * After all detach, the daemon reports no clients and in_use_bytes 0.
 *
 * Usage: test-attach16 GOSHMD   (the test; also $GOSHMD)
 *        test-attach16 --worker SOCKET ID GO_FD GO2_FD READY_FD   (internal role)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "check.h"
#include "goshm/goshm.h"

#define NPROC 16
#define OBJECTS (10000 / TEST_SCALE)
#define WINDOW 256

typedef struct obj {
    unsigned char *p;
    size_t n;
    uint32_t tag;
} obj_t;

static size_t pick_size(unsigned long long *s)
{
    unsigned r = (unsigned)(test_rand(s) % 1000);
    if (r < 150) return 1 + test_rand(s) % 16;          /* tiny */
    if (r < 700) return 1 + test_rand(s) % 1024;
    if (r < 975) return 1 + test_rand(s) % 32768;       /* every class */
    return 32769 + test_rand(s) % (384 * 1024);         /* large */
}

/* The byte at i of an object tagged t: different for every object and place. */
static inline unsigned char pat(uint32_t t, size_t i) { return (unsigned char)(t * 131u + i * 7u + (i >> 8)); }

static void fill(const obj_t *o)
{
    for (size_t i = 0; i < o->n; i++) o->p[i] = pat(o->tag, i);
}

static size_t verify(const obj_t *o)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->p[i] != pat(o->tag, i)) return i + 1;
    return 0;
}

static int worker(const char *sock, int id, int go_fd, int go2_fd, int ready_fd)
{
    char c;
    /* Barrier 1: everyone attaches when the parent closes the pipe. */
    while (read(go_fd, &c, 1) < 0 && errno == EINTR) {
    }
    goshm_t *h = goshm_attach(sock);
    REQUIRE(h);
    c = 'a';
    REQUIRE(write(ready_fd, &c, 1) == 1);
    /* Barrier 2: work starts once the parent has seen all 16 attached. */
    while (read(go2_fd, &c, 1) < 0 && errno == EINTR) {
    }

    unsigned long long seed = 0x1234567ULL * (unsigned long long)(id + 1);
    obj_t win[WINDOW];
    memset(win, 0, sizeof win);
    uint64_t bad = 0, large = 0;
    for (uint32_t k = 0; k < OBJECTS; k++) {
        obj_t *o = &win[test_rand(&seed) % WINDOW];
        if (o->p) {
            size_t at = verify(o);
            if (at && bad++ < 5)
                CHECK_MSG(at == 0, "worker %d: object of %zu bytes corrupt at byte %zu", id, o->n, at - 1);
            goshm_free(h, o->p);
        }
        o->n = pick_size(&seed);
        o->tag = (uint32_t)id << 24 | k;
        o->p = goshm_malloc(h, o->n);
        if (!o->p) {
            CHECK_MSG(o->p != NULL, "worker %d: malloc(%zu): %s", id, o->n, strerror(errno));
            break;
        }
        CHECK(goshm_usable_size(h, o->p) >= o->n);
        CHECK((uintptr_t)o->p % (o->n >= 16 ? 16 : 8) == 0);
        large += o->n > 32768;
        fill(o);
    }
    for (int i = 0; i < WINDOW; i++) {
        if (!win[i].p) continue;
        size_t at = verify(&win[i]);
        if (at && bad++ < 5) CHECK_MSG(at == 0, "worker %d: object corrupt at byte %zu", id, at - 1);
        goshm_free(h, win[i].p);
    }
    CHECK(bad == 0);
    CHECK(large > 0);
    CHECK(goshm_detach(h) == 0);
    char name[64];
    snprintf(name, sizeof name, "test-attach16 worker %d", id);
    return CHECK_DONE(name);
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "--worker") == 0)
        return worker(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));

    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), NULL) == 0);
    /* Barriers: a worker blocks reading go[0] (then go2[0]) until the parent
     * closes the write end; it reports its attach by a byte on ready[1]. Only
     * those three ends reach the workers (the rest are close-on-exec), or the
     * workers would hold the write ends open themselves. */
    int go[2], ready[2], go2[2];
    REQUIRE(pipe2(go, O_CLOEXEC) == 0 && pipe2(ready, O_CLOEXEC) == 0 && pipe2(go2, O_CLOEXEC) == 0);
    REQUIRE(fcntl(go[0], F_SETFD, 0) == 0 && fcntl(go2[0], F_SETFD, 0) == 0 && fcntl(ready[1], F_SETFD, 0) == 0);
    pid_t pid[NPROC];
    char idb[NPROC][16], gob[16], go2b[16], readyb[16];
    snprintf(gob, sizeof gob, "%d", go[0]);
    snprintf(go2b, sizeof go2b, "%d", go2[0]);
    snprintf(readyb, sizeof readyb, "%d", ready[1]);
    for (int i = 0; i < NPROC; i++) {
        snprintf(idb[i], sizeof idb[i], "%d", i);
        char *wargv[] = {argv[0], "--worker", d.sock, idb[i], gob, go2b, readyb, NULL};
        pid[i] = gsh_spawn_self(wargv);
        REQUIRE(pid[i] > 0);
    }
    close(go[0]);
    close(go2[0]);
    close(ready[1]);

    uint64_t t0 = gsh_now_ms();
    close(go[1]); /* barrier 1: all attach at once */
    int n = 0;
    char c;
    uint64_t deadline = t0 + 30000;
    while (n < NPROC && gsh_now_ms() < deadline) {
        struct pollfd pf = {.fd = ready[0], .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t r = read(ready[0], &c, 1);
        if (r == 1) n++;
        else if (r == 0) break; /* every worker closed its end: some died */
    }
    CHECK_MSG(n == NPROC, "%d of %d workers attached", n, NPROC);
    fprintf(stderr, "test-attach16: %d attached in %" PRIu64 " ms\n", n, gsh_now_ms() - t0);
    gsh_stats_t st;
    REQUIRE(gsh_stats(d.sock, &st) == 0);
    CHECK_MSG(st.clients == (uint32_t)n, "daemon sees %u clients, %d attached", st.clients, n);
    for (uint32_t i = 0; i < st.clients && i < GSH_MAX_CLIENTS; i++) {
        int found = 0;
        for (int k = 0; k < NPROC; k++) found |= st.client_pid[i] == (uint32_t)pid[k];
        CHECK_MSG(found, "client pid %u is not one of the workers", st.client_pid[i]);
    }
    close(go2[1]); /* barrier 2: all work at once */
    close(ready[0]);

    for (int i = 0; i < NPROC; i++) CHECK_MSG(gsh_wait_child(pid[i], 50000) == 0, "worker %d failed", i);
    fprintf(stderr, "test-attach16: all done in %" PRIu64 " ms\n", gsh_now_ms() - t0);

    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK(st.clients == 0);
    CHECK_MSG(st.in_use_bytes == 0, "in_use_bytes %" PRIu64, st.in_use_bytes);
    CHECK_MSG(st.span_bytes == 0, "span_bytes %" PRIu64 ": spans not back in the page heap", st.span_bytes);
    CHECK_MSG(st.objects_in_use == 0, "objects_in_use %" PRIu64, st.objects_in_use);
    CHECK_MSG(st.large_objects == 0, "large_objects %" PRIu64, st.large_objects);
    /* Well-behaved clients never send a request the daemon must reject. */
    REQUIRE(gsh_stats(d.sock, &st) == 0);
    CHECK_MSG(st.bad_requests == 0 && st.bad_ring_entries == 0, "bad_requests %" PRIu64 ", bad_ring_entries %" PRIu64,
              st.bad_requests, st.bad_ring_entries);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-attach16");
}
