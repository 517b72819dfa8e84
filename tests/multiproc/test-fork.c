/* SPDX-License-Identifier: MIT */
/* Description: fork() of an attached process. The child reads the parent's
 * objects (valid: the mapping is shared), frees half of them, and allocates
 * its own, which gives it a slot of its own: while it runs the daemon sees
 * two clients, the child's pid among them, and the parent keeps allocating
 * concurrently on its own slot. The parent then frees the other half. A
 * second child only frees and exits without allocating: the parent's
 * connection and slot are unharmed. in_use_bytes is 0 at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "check.h"
#include "goshm/goshm.h"

#define NOBJ (3000 / TEST_SCALE)

typedef struct obj {
    unsigned char *p;
    size_t n;
    uint32_t tag;
} obj_t;

static gsh_daemon_t d;

static inline unsigned char pat(uint32_t t, size_t i) { return (unsigned char)(t * 151u + i * 11u + (i >> 10)); }

static size_t pick_size(unsigned long long *s)
{
    unsigned r = (unsigned)(test_rand(s) % 100);
    if (r < 20) return 1 + test_rand(s) % 8;
    if (r < 80) return 9 + test_rand(s) % 2000;
    if (r < 97) return 1 + test_rand(s) % 32768;
    return 32769 + test_rand(s) % 300000;
}

static int alloc_objs(goshm_t *h, obj_t *o, int n, uint32_t tagbase, unsigned long long seed)
{
    for (int i = 0; i < n; i++) {
        o[i].n = pick_size(&seed);
        o[i].tag = tagbase + (uint32_t)i;
        o[i].p = goshm_malloc(h, o[i].n);
        if (!o[i].p) {
            CHECK_MSG(o[i].p != NULL, "malloc(%zu): %s", o[i].n, strerror(errno));
            return i;
        }
        for (size_t k = 0; k < o[i].n; k++) o[i].p[k] = pat(o[i].tag, k);
    }
    return n;
}

static int bad_objs(const obj_t *o, int n, int step, int first)
{
    int bad = 0;
    for (int i = first; i < n; i += step) {
        if (!o[i].p) continue;
        for (size_t k = 0; k < o[i].n; k++)
            if (o[i].p[k] != pat(o[i].tag, k)) {
                if (bad < 5) fprintf(stderr, "object %d (%zu bytes) differs at %zu\n", i, o[i].n, k);
                bad++;
                break;
            }
    }
    return bad;
}

static void free_objs(goshm_t *h, obj_t *o, int n, int step, int first)
{
    for (int i = first; i < n; i += step) {
        goshm_free(h, o[i].p);
        o[i].p = NULL;
    }
}

static obj_t parent_objs[NOBJ], child_objs[NOBJ], churn[64];

/* The first child: read, free half, allocate its own slot's objects. */
static int child_allocating(goshm_t *h, int n, pid_t parent)
{
    check_failures = check_count = 0;
    CHECK(bad_objs(parent_objs, n, 1, 0) == 0);
    free_objs(h, parent_objs, n, 2, 0);
    int m = alloc_objs(h, child_objs, n, 0x20000000u, 99);
    CHECK(m == n);
    gsh_stats_t st;
    CHECK(gsh_stats(d.sock, &st) == 0);
    CHECK_MSG(st.clients == 2, "%u clients attached while the child runs", st.clients);
    int me = 0, dad = 0;
    for (uint32_t i = 0; i < st.clients && i < GSH_MAX_CLIENTS; i++) {
        me += st.client_pid[i] == (uint32_t)getpid();
        dad += st.client_pid[i] == (uint32_t)parent;
    }
    CHECK_MSG(me == 1 && dad == 1, "the child (%d) and the parent (%d) each hold one slot", me, dad);
    /* Our objects and the parent's other half do not overlap. */
    CHECK(bad_objs(child_objs, m, 1, 0) == 0);
    CHECK(bad_objs(parent_objs, n, 2, 1) == 0);
    free_objs(h, child_objs, m, 1, 0);
    CHECK(goshm_detach(h) == 0);
    return CHECK_DONE("test-fork child") ? 1 : 0;
}

/* The second child: frees only; never talks to the daemon. */
static int child_freeing(goshm_t *h, int n)
{
    check_failures = check_count = 0;
    CHECK(bad_objs(parent_objs, n, 1, 0) == 0);
    free_objs(h, parent_objs, n, 1, 0);
    return CHECK_DONE("test-fork second child") ? 1 : 0;
}

int main(int argc, char **argv)
{
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), NULL) == 0);
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);
    int n = alloc_objs(h, parent_objs, NOBJ, 0x10000000u, 42);
    REQUIRE(n == NOBJ);

    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) _exit(child_allocating(h, n, parent));

    /* Meanwhile the parent keeps allocating on its own slot. */
    unsigned long long seed = 7;
    uint64_t rounds = 0;
    int status = -1;
    uint64_t deadline = gsh_now_ms() + 50000;
    for (;;) {
        int k = alloc_objs(h, churn, 64, 0x30000000u + (uint32_t)rounds * 64u, seed++);
        CHECK(bad_objs(churn, k, 1, 0) == 0);
        free_objs(h, churn, k, 1, 0);
        rounds++;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (gsh_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
    }
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "first child failed (status %#x)", status);
    fprintf(stderr, "test-fork: parent churned %" PRIu64 " rounds while the child ran\n", rounds);

    /* The child's half is gone, ours is intact; free it. */
    CHECK(bad_objs(parent_objs, n, 2, 1) == 0);
    free_objs(h, parent_objs, n, 2, 1);
    gsh_stats_t st;
    CHECK(gsh_settle(d.sock, 1, &st) == 0);
    CHECK_MSG(st.client_pid[0] == (uint32_t)getpid(), "the remaining client is pid %u", st.client_pid[0]);
    if (st.in_use_bytes > 16) {
        uint64_t until = gsh_now_ms() + 2000;
        while (gsh_stats(d.sock, &st) == 0 && st.in_use_bytes > 16 && gsh_now_ms() < until) gsh_sleep_ms(20);
    }
    /* Nothing is live; our mcache may still hold a tiny block whose first
     * half it handed out (16 bytes) until it retires it on detach. */
    CHECK_MSG(st.in_use_bytes <= 16, "in_use_bytes %" PRIu64 " after the first child", st.in_use_bytes);

    /* The second child frees everything and exits without a seam call. */
    n = alloc_objs(h, parent_objs, NOBJ, 0x40000000u, 43);
    CHECK(n == NOBJ);
    fflush(NULL);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) _exit(child_freeing(h, n));
    CHECK(gsh_wait_child(pid, 50000) == 0);
    /* Our connection survived the child closing its inherited copy. */
    int k = alloc_objs(h, churn, 64, 0x50000000u, 11);
    CHECK(k == 64 && bad_objs(churn, k, 1, 0) == 0);
    free_objs(h, churn, k, 1, 0);
    CHECK(gsh_settle(d.sock, 1, &st) == 0);
    CHECK(st.client_pid[0] == (uint32_t)getpid());
    if (st.in_use_bytes > 16) {
        uint64_t until = gsh_now_ms() + 2000;
        while (gsh_stats(d.sock, &st) == 0 && st.in_use_bytes > 16 && gsh_now_ms() < until) gsh_sleep_ms(20);
    }
    CHECK_MSG(st.in_use_bytes <= 16, "in_use_bytes %" PRIu64 " after the second child", st.in_use_bytes);

    CHECK(goshm_detach(h) == 0);
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK_MSG(st.in_use_bytes == 0 && st.span_bytes == 0 && st.clients == 0,
              "in_use_bytes %" PRIu64 ", span_bytes %" PRIu64 ", %u clients", st.in_use_bytes, st.span_bytes,
              st.clients);
    /* Well-behaved clients never send a request the daemon must reject. */
    REQUIRE(gsh_stats(d.sock, &st) == 0);
    CHECK_MSG(st.bad_requests == 0 && st.bad_ring_entries == 0, "bad_requests %" PRIu64 ", bad_ring_entries %" PRIu64,
              st.bad_requests, st.bad_ring_entries);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-fork");
}
