/* SPDX-License-Identifier: MIT */
/* Description: clients killed with SIGKILL at random moments give their
 * memory back. Each round, 4 processes allocate, fill, verify and free in a
 * tight loop (tiny, small and large objects; some live, spans half used in
 * their mcaches, refills and large allocations in flight) and are killed.
 * Every child keeps, in a file mapped by all, a table of its objects with a
 * state per entry (allocating, filling, live, freeing) and an upper bound of
 * the bytes it holds. Checked after each round:
 *   - the daemon drops the dead clients;
 *   - in_use_bytes <= what was left before + the children's upper bounds;
 *   - the dead children's objects are intact; once this process frees them
 *     (all but the few whose malloc or free was cut short by the kill, which
 *     nobody can know), in_use_bytes and span_bytes are back to what those
 *     few can hold: the spans the dead clients cached and the slots they had
 *     not handed out all came back, and the heap does not grow round after
 *     round.
 * Before the rounds, two deterministic cases: a client dies after the daemon
 * answered its REFILL, or its LARGE_ALLOC, but before it read the answer
 * (its ring is driven by hand): the span was never handed out, so it must
 * come back too. Finally a fresh client is served, and the daemon exits
 * cleanly.
 *
 * Usage: test-sigkill GOSHMD   (the test; also $GOSHMD)
 *        test-sigkill --child SOCKET CTLFILE INDEX   (internal role)
 *        test-sigkill --inflight SOCKET OP            (internal role)
 * SIGKILL_VERBOSE=1 lists the operations the kills cut short.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "check.h"
#include "client.h" /* the ring, for the in-flight cases */
#include "sizeclasses.h"

#define NCHILD 4
#define ROUNDS 5
#define TABLE 512
#define MIN_OPS (4000 / TEST_SCALE)

enum { E_EMPTY = 0, E_ALLOC, E_FILL, E_LIVE, E_FREEING };

typedef struct entry {
    _Atomic uint32_t state;
    _Atomic uint32_t size;
    _Atomic uint64_t off;
} entry_t;

typedef struct child_ctl {
    _Alignas(64) _Atomic uint64_t live_bytes; /* >= bytes this child holds in the heap */
    _Atomic uint64_t ops;
    _Atomic uint32_t attached;
    _Atomic uint32_t failed;
    entry_t e[TABLE];
} child_ctl_t;

/* Bytes in_use_bytes counts for one object of `size` (a tiny block counts 16
 * even when half of it is live). */
static uint64_t cost(uint32_t size)
{
    if (size <= 8) return 16;
    if (size <= GS_MAX_SMALL_SIZE) return gs_class_size[gs_size_to_class(size)];
    return ((uint64_t)size + GS_PAGE_SIZE - 1) / GS_PAGE_SIZE * GS_PAGE_SIZE;
}

/* Bytes of span the object can pin on its own. */
static uint64_t span_cost(uint32_t size)
{
    if (size <= 8) return (uint64_t)gs_class_npages[2] * GS_PAGE_SIZE; /* the 16-byte class */
    if (size <= GS_MAX_SMALL_SIZE) return (uint64_t)gs_class_npages[gs_size_to_class(size)] * GS_PAGE_SIZE;
    return cost(size);
}

static inline unsigned char pat(uint64_t off, size_t i)
{
    return (unsigned char)((off >> 3) * 29u + i * 5u + (i >> 8));
}

static uint32_t pick_size(unsigned long long *s)
{
    unsigned r = (unsigned)(test_rand(s) % 100);
    if (r < 20) return 1 + (uint32_t)(test_rand(s) % 8);
    if (r < 75) return 9 + (uint32_t)(test_rand(s) % 1000);
    if (r < 92) return 1 + (uint32_t)(test_rand(s) % GS_MAX_SMALL_SIZE);
    return GS_MAX_SMALL_SIZE + 1 + (uint32_t)(test_rand(s) % (256 * 1024));
}

static child_ctl_t *map_ctl(const char *path, int create)
{
    int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
    if (fd < 0) return NULL;
    size_t len = sizeof(child_ctl_t) * NCHILD;
    if (create && ftruncate(fd, (off_t)len) != 0) {
        close(fd);
        return NULL;
    }
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

static int child(const char *sock, const char *ctlpath, int idx)
{
    child_ctl_t *all = map_ctl(ctlpath, 0);
    if (!all) return 3;
    child_ctl_t *c = &all[idx];
    goshm_t *h = goshm_attach(sock);
    if (!h) {
        atomic_store(&c->failed, 1);
        return 3;
    }
    atomic_store(&c->attached, 1);
    unsigned long long seed = (unsigned long long)getpid() * 0x9e3779b97f4a7c15ULL + 1;
    uint64_t end = gsh_now_ms() + 60000; /* never outlive a broken parent */
    while (gsh_now_ms() < end) {
        entry_t *e = &c->e[test_rand(&seed) % TABLE];
        uint32_t st = atomic_load(&e->state);
        if (st == E_LIVE) {
            uint32_t size = atomic_load(&e->size);
            uint64_t off = atomic_load(&e->off);
            unsigned char *p = goshm_ptr(h, off);
            for (size_t i = 0; p && i < size; i++)
                if (p[i] != pat(off, i)) {
                    fprintf(stderr, "child %d: object at %" PRIu64 " (%u bytes) differs at %zu\n", idx, off, size, i);
                    atomic_store(&c->failed, 2);
                    return 2;
                }
            atomic_store(&e->state, E_FREEING);
            goshm_free(h, p);
            atomic_fetch_sub(&c->live_bytes, cost(size));
            atomic_store(&e->state, E_EMPTY);
        } else {
            uint32_t size = pick_size(&seed);
            atomic_store(&e->size, size);
            atomic_fetch_add(&c->live_bytes, cost(size)); /* before: an upper bound */
            atomic_store(&e->state, E_ALLOC);
            unsigned char *p = goshm_malloc(h, size);
            if (!p) {
                fprintf(stderr, "child %d: malloc(%u): %s\n", idx, size, strerror(errno));
                atomic_store(&c->failed, 4);
                return 4;
            }
            uint64_t off = goshm_off(h, p);
            atomic_store(&e->off, off);
            atomic_store(&e->state, E_FILL);
            for (size_t i = 0; i < size; i++) p[i] = pat(off, i);
            atomic_store(&e->state, E_LIVE);
        }
        atomic_fetch_add(&c->ops, 1);
    }
    return 5; /* the parent should have killed us long ago */
}

/* Submit one entry on our own ring by hand (the library has not used it
 * yet), wait until the daemon has answered it, and die without reading the
 * answer. No doorbell (the library's own): the idle daemon polls every
 * 100 ms. */
static int inflight(const char *sock, int op)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 3;
    gs_ring_t *r = &h->slotp->ring;
    gs_sqe_t e = {.op = (uint8_t)op, .tag = 1};
    if (op == GS_OP_REFILL) {
        e.spanclass = 10 * 2; /* a small class */
        e.want = 1;
    } else {
        e.npages = 64; /* 512 KiB */
    }
    uint32_t tail = gs_load_acquire(&r->xsq_tail);
    uint32_t done = gs_load_acquire(&r->xcq_tail);
    r->sq[tail % GS_RING_ENTRIES] = e;
    gs_store_release(&r->xsq_tail, tail + 1);
    uint64_t end = gsh_now_ms() + 10000;
    while (gs_load_acquire(&r->xcq_tail) == done) {
        if (gsh_now_ms() > end) return 4;
        gsh_sleep_ms(1);
    }
    gs_cqe_t c = r->cq[(gs_load_acquire(&r->xcq_tail) - 1) % GS_RING_ENTRIES];
    if (c.result < 0) return 5;
    raise(SIGKILL); /* xcq_head still says we never read it */
    return 6;
}

static bool all_busy(child_ctl_t *ctl)
{
    for (int i = 0; i < NCHILD; i++)
        if (!atomic_load(&ctl[i].attached) || atomic_load(&ctl[i].ops) < MIN_OPS || atomic_load(&ctl[i].failed))
            return false;
    return true;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--child") == 0) return child(argv[2], argv[3], atoi(argv[4]));
    if (argc == 4 && strcmp(argv[1], "--inflight") == 0) return inflight(argv[2], atoi(argv[3]));

    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), NULL) == 0);
    char ctlpath[200];
    snprintf(ctlpath, sizeof ctlpath, "%s/ctl", d.dir);
    child_ctl_t *ctl = map_ctl(ctlpath, 1);
    REQUIRE(ctl);

    gsh_stats_t st, st0;
    /* A client killed with an answered but unread REFILL or LARGE_ALLOC. */
    static const struct {
        int op;
        const char *name;
    } cases[] = {{GS_OP_REFILL, "REFILL"}, {GS_OP_LARGE_ALLOC, "LARGE_ALLOC"}};
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        REQUIRE(gsh_stats(d.sock, &st0) == 0);
        char opb[8];
        snprintf(opb, sizeof opb, "%d", cases[i].op);
        char *iargv[] = {argv[0], "--inflight", d.sock, opb, NULL};
        pid_t p = gsh_spawn_self(iargv);
        REQUIRE(p > 0);
        int status;
        waitpid(p, &status, 0);
        CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "%s in flight: the child failed (status %#x)",
                  cases[i].name, status);
        CHECK(gsh_settle(d.sock, 0, &st) == 0);
        CHECK_MSG(st.in_use_bytes == st0.in_use_bytes && st.span_bytes == st0.span_bytes,
                  "a client killed with its %s answered but unread: in_use_bytes %" PRIu64 " -> %" PRIu64
                  ", span_bytes %" PRIu64 " -> %" PRIu64 " (leaked)",
                  cases[i].name, st0.in_use_bytes, st.in_use_bytes, st0.span_bytes, st.span_bytes);
    }

    REQUIRE(gsh_stats(d.sock, &st) == 0);
    uint64_t left_in_use = st.in_use_bytes;   /* bound on what earlier rounds leaked */
    uint64_t left_span = st.span_bytes;       /* ditto, spans */
    uint64_t prev_span = st.span_bytes;
    unsigned long long seed = 12345;
    uint64_t t0 = gsh_now_ms();

    for (int round = 0; round < ROUNDS; round++) {
        memset(ctl, 0, sizeof *ctl * NCHILD);
        pid_t pid[NCHILD];
        char idxb[NCHILD][8];
        for (int i = 0; i < NCHILD; i++) {
            snprintf(idxb[i], sizeof idxb[i], "%d", i);
            char *cargv[] = {argv[0], "--child", d.sock, ctlpath, idxb[i], NULL};
            pid[i] = gsh_spawn_self(cargv);
            REQUIRE(pid[i] > 0);
        }
        uint64_t until = gsh_now_ms() + 30000;
        while (!all_busy(ctl) && gsh_now_ms() < until) gsh_sleep_ms(2);
        CHECK_MSG(all_busy(ctl), "round %d: the children did not get going", round);
        /* Kill them at random moments, one after the other. */
        for (int i = 0; i < NCHILD; i++) {
            gsh_sleep_ms((unsigned)(test_rand(&seed) % 40));
            kill(pid[i], SIGKILL);
        }
        uint64_t bound = left_in_use, ops = 0;
        for (int i = 0; i < NCHILD; i++) {
            int status;
            waitpid(pid[i], &status, 0);
            CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "round %d: child %d ended otherwise (status %#x, failed %u)", round, i, status,
                      atomic_load(&ctl[i].failed));
            bound += atomic_load(&ctl[i].live_bytes);
            ops += atomic_load(&ctl[i].ops);
        }

        /* The daemon notices the closed connections and reclaims the slots. */
        CHECK_MSG(gsh_settle(d.sock, 0, &st) == 0, "round %d: dead clients not dropped", round);
        CHECK_MSG(st.in_use_bytes <= bound, "round %d: in_use_bytes %" PRIu64 " > %" PRIu64 " the children held",
                  round, st.in_use_bytes, bound);

        /* Free what the dead children left, checking it first. */
        goshm_t *h = goshm_attach(d.sock);
        REQUIRE(h);
        uint64_t slack = 0, slack_span = 0, freed = 0, corrupt = 0, inflight = 0;
        for (int i = 0; i < NCHILD; i++) {
            for (int k = 0; k < TABLE; k++) {
                entry_t *e = &ctl[i].e[k];
                uint32_t s = atomic_load(&e->state), size = atomic_load(&e->size);
                uint64_t off = atomic_load(&e->off);
                if (s == E_EMPTY) continue;
                if (s == E_ALLOC || s == E_FREEING) { /* cut short: unknowable */
                    if (getenv("SIGKILL_VERBOSE"))
                        fprintf(stderr, "  child %d: cut short in %s of %u bytes\n", i,
                                s == E_ALLOC ? "malloc" : "free", size);
                    slack += cost(size);
                    slack_span += span_cost(size);
                    inflight++;
                    continue;
                }
                unsigned char *p = goshm_ptr(h, off);
                if (!p) {
                    corrupt++;
                    continue;
                }
                if (s == E_LIVE)
                    for (size_t b = 0; b < size; b++)
                        if (p[b] != pat(off, b)) {
                            corrupt++;
                            break;
                        }
                goshm_free(h, p);
                freed++;
            }
        }
        CHECK_MSG(corrupt == 0, "round %d: %" PRIu64 " objects of dead clients corrupt", round, corrupt);
        CHECK(goshm_detach(h) == 0);
        left_in_use += slack;
        left_span += slack_span;

        CHECK(gsh_settle(d.sock, 0, &st) == 0);
        if (st.in_use_bytes > left_in_use || st.span_bytes > left_span) {
            gsh_stats_t s2;
            uint64_t until2 = gsh_now_ms() + 2000;
            while (gsh_stats(d.sock, &s2) == 0 && gsh_now_ms() < until2) {
                st = s2;
                if (st.in_use_bytes <= left_in_use && st.span_bytes <= left_span) break;
                gsh_sleep_ms(20);
            }
        }
        fprintf(stderr,
                "test-sigkill: round %d: %" PRIu64 " ops, freed %" PRIu64 " left objects, %" PRIu64
                " cut short; in_use %" PRIu64 " (bound %" PRIu64 "), span %" PRIu64 " (bound %" PRIu64 ")\n",
                round, ops, freed, inflight, st.in_use_bytes, left_in_use, st.span_bytes, left_span);
        CHECK_MSG(st.in_use_bytes <= left_in_use, "round %d: in_use_bytes %" PRIu64 " > %" PRIu64, round,
                  st.in_use_bytes, left_in_use);
        CHECK_MSG(st.span_bytes <= left_span, "round %d: span_bytes %" PRIu64 " > %" PRIu64 ": spans leaked", round,
                  st.span_bytes, left_span);
        CHECK_MSG(st.span_bytes <= prev_span + slack_span, "round %d: span_bytes grew from %" PRIu64 " to %" PRIu64,
                  round, prev_span, st.span_bytes);
        prev_span = st.span_bytes;
        CHECK(st.clients == 0);
    }

    /* A fresh client is served normally. */
    goshm_t *h = goshm_attach(d.sock);
    CHECK(h != NULL);
    if (h) {
        for (uint32_t sz = 1; sz < 600000; sz = sz * 5 / 4 + 1) {
            unsigned char *p = goshm_malloc(h, sz);
            CHECK(p != NULL);
            if (!p) break;
            memset(p, 0x5a, sz);
            CHECK(p[0] == 0x5a && p[sz - 1] == 0x5a);
            goshm_free(h, p);
        }
        CHECK(goshm_detach(h) == 0);
    }
    CHECK(gsh_settle(d.sock, 0, &st) == 0);
    CHECK(st.in_use_bytes <= left_in_use);
    fprintf(stderr, "test-sigkill: %d rounds in %" PRIu64 " ms\n", ROUNDS, gsh_now_ms() - t0);
    munmap(ctl, sizeof *ctl * NCHILD);
    CHECK(gsh_alive(&d));
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-sigkill");
}
