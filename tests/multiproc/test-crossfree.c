/* SPDX-License-Identifier: MIT */
/* Description: frees from elsewhere. (1) Objects of every size class, tiny
 * (1..8 bytes) and large ones allocated by one process are verified and freed
 * by another, independent process; then that process allocates its own set,
 * detaches and exits, and the first verifies and frees those (objects outlive
 * the process that allocated them). (2) Threads of one process allocate and
 * hand their objects to the next thread, which verifies and frees them. Each
 * class gets more objects than one span holds, so frees land both in spans an
 * mcache caches and in spans back at their mcentral (the notice path). After
 * each phase in_use_bytes is 0, with the process still attached.
 *
 * Usage: test-crossfree GOSHMD   (the test; also $GOSHMD)
 *        test-crossfree --peer SOCKET TABLE_OFF COUNT OUT_FD   (internal role)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "check.h"
#include "goshm/goshm.h"
#include "sizeclasses.h"

typedef struct entry {
    goshm_off_t off;
    uint32_t size;
    uint32_t tag;
} entry_t;

static inline unsigned char pat(uint32_t t, size_t i) { return (unsigned char)(t * 167u + i * 13u + (i >> 9)); }

static size_t verify(const unsigned char *p, size_t n, uint32_t tag)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat(tag, i)) return i + 1;
    return 0;
}

/* The sizes to test: tiny 1..8, for every class its smallest and largest
 * request, large ones. Enough objects of each that a class fills more than
 * one span. Returns how many sizes it wrote (at most max). */
static uint32_t make_sizes(uint32_t *out, uint32_t max, int scale)
{
    uint32_t n = 0;
#define PUT(sz, k)                                                        \
    for (uint32_t r_ = 0; r_ < (uint32_t)(k) && n < max; r_++) out[n++] = (sz)
    for (uint32_t s = 1; s <= 8; s++) PUT(s, 2 * gs_class_nelems[1] / 8 / scale + 3); /* tiny */
    for (uint32_t c = 1; c < GS_NUM_SIZE_CLASSES; c++) {
        uint32_t lo = gs_class_size[c - 1] + 1, hi = gs_class_size[c];
        uint32_t k = gs_class_nelems[c] + gs_class_nelems[c] / 2 + 1; /* 1.5 spans */
        if (scale > 1) k = gs_class_nelems[c] + 2;
        PUT(lo < 9 ? 9 : lo, k / 2);
        PUT(hi, k - k / 2);
    }
    uint32_t large[] = {32769, 40000, 65536, 100000, 262144 + 1, (1u << 20) + 5};
    for (unsigned i = 0; i < sizeof large / sizeof *large; i++) PUT(large[i], 3);
#undef PUT
    return n;
}

#define MAX_OBJS 40000

/* Allocate one object per size into a table that lives in the heap. */
static entry_t *alloc_set(goshm_t *h, uint32_t tagbase, uint32_t *count, int scale)
{
    static uint32_t sizes[MAX_OBJS];
    uint32_t n = make_sizes(sizes, MAX_OBJS, scale);
    entry_t *t = goshm_malloc(h, n * sizeof *t);
    REQUIRE(t);
    for (uint32_t i = 0; i < n; i++) {
        unsigned char *p = goshm_malloc(h, sizes[i]);
        if (!p) {
            CHECK_MSG(p != NULL, "malloc(%u): %s", sizes[i], strerror(errno));
            n = i;
            break;
        }
        t[i] = (entry_t){.off = goshm_off(h, p), .size = sizes[i], .tag = tagbase + i};
        for (size_t k = 0; k < sizes[i]; k++) p[k] = pat(t[i].tag, k);
    }
    *count = n;
    return t;
}

/* Verify and free every object of a table; free the table. */
static void check_free_set(goshm_t *h, entry_t *t, uint32_t n, const char *who)
{
    uint32_t bad = 0;
    for (uint32_t i = 0; i < n; i++) {
        unsigned char *p = goshm_ptr(h, t[i].off);
        if (!p) {
            if (bad++ < 5) CHECK_MSG(p != NULL, "%s: object %u: bad offset", who, i);
            continue;
        }
        size_t at = verify(p, t[i].size, t[i].tag);
        if (at && bad++ < 5)
            CHECK_MSG(at == 0, "%s: object %u (%u bytes) differs at byte %zu", who, i, t[i].size, at - 1);
        if (goshm_usable_size(h, p) < t[i].size && bad++ < 5)
            CHECK_MSG(0, "%s: object %u: usable size too small", who, i);
        goshm_free(h, p);
    }
    CHECK(bad == 0);
    goshm_free(h, t);
}

static int peer(const char *sock, goshm_off_t table_off, uint32_t count, int out_fd)
{
    goshm_t *h = goshm_attach(sock);
    REQUIRE(h);
    entry_t *t = goshm_ptr(h, table_off);
    REQUIRE(t);
    check_free_set(h, t, count, "peer"); /* the parent's objects, its table too */
    uint32_t n;
    entry_t *mine = alloc_set(h, 0x40000000u, &n, TEST_SCALE);
    uint64_t msg[2] = {goshm_off(h, mine), n};
    REQUIRE(write(out_fd, msg, sizeof msg) == (ssize_t)sizeof msg);
    /* Detach and exit: the parent frees what we leave. */
    CHECK(goshm_detach(h) == 0);
    return CHECK_DONE("test-crossfree peer");
}

/* ---- threads -------------------------------------------------------------- */

#define NTHREADS 4
#define ROUNDS (80 / TEST_SCALE)

typedef struct inbox {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    entry_t *batch[ROUNDS];
    uint32_t count[ROUNDS];
    int n;
} inbox_t;

static goshm_t *H;
static inbox_t inbox[NTHREADS];
static _Atomic uint64_t thread_bad, thread_objs;

static void send_batch(inbox_t *to, entry_t *t, uint32_t n)
{
    pthread_mutex_lock(&to->mu);
    to->batch[to->n] = t;
    to->count[to->n] = n;
    to->n++;
    pthread_cond_signal(&to->cv);
    pthread_mutex_unlock(&to->mu);
}

static void *thread_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    inbox_t *next = &inbox[(id + 1) % NTHREADS], *mine = &inbox[id];
    unsigned long long seed = 77u + (unsigned long long)id;
    for (int r = 0; r < ROUNDS; r++) {
        /* Send a batch of random sizes across all classes, tiny and large
         * (a NULL batch if allocation failed, so the receiver never hangs). */
        uint32_t n = 100 + (uint32_t)(test_rand(&seed) % 100);
        entry_t *t = goshm_malloc(H, n * sizeof *t);
        if (!t) {
            atomic_fetch_add(&thread_bad, 1);
            n = 0;
        }
        for (uint32_t i = 0; i < n; i++) {
            unsigned k = (unsigned)(test_rand(&seed) % 100);
            uint32_t sz = k < 20 ? 1 + (uint32_t)(test_rand(&seed) % 8)
                        : k < 80 ? 9 + (uint32_t)(test_rand(&seed) % 1016)
                        : k < 97 ? 1 + (uint32_t)(test_rand(&seed) % GS_MAX_SMALL_SIZE)
                                 : GS_MAX_SMALL_SIZE + 1 + (uint32_t)(test_rand(&seed) % 200000);
            unsigned char *p = goshm_malloc(H, sz);
            if (!p) {
                atomic_fetch_add(&thread_bad, 1);
                n = i;
                break;
            }
            t[i] = (entry_t){.off = goshm_off(H, p), .size = sz, .tag = (uint32_t)(id << 28) | (uint32_t)(r << 16) | i};
            for (size_t b = 0; b < sz; b++) p[b] = pat(t[i].tag, b);
        }
        send_batch(next, t, n);

        /* Receive the previous thread's batch of this round: verify, free. */
        pthread_mutex_lock(&mine->mu);
        while (mine->n <= r) pthread_cond_wait(&mine->cv, &mine->mu);
        t = mine->batch[r];
        n = mine->count[r];
        pthread_mutex_unlock(&mine->mu);
        if (!t) continue;
        for (uint32_t i = 0; i < n; i++) {
            unsigned char *p = goshm_ptr(H, t[i].off);
            if (!p || verify(p, t[i].size, t[i].tag)) atomic_fetch_add(&thread_bad, 1);
            if (p) goshm_free(H, p);
            atomic_fetch_add(&thread_objs, 1);
        }
        goshm_free(H, t);
    }
    return NULL;
}

/* in_use_bytes 0: nothing is live. While this process is attached, its
 * main thread's mcache may hold a tiny block of which it handed out only the
 * first half (freed since): the daemon counts that block (16 bytes, one
 * object) until the mcache retires it, at the latest on detach. */
static void check_empty(const gsh_daemon_t *d, uint32_t clients, const char *when)
{
    uint64_t slack = clients ? 16 : 0;
    gsh_stats_t st;
    int rc = gsh_settle(d->sock, clients, &st);
    CHECK(rc == 0);
    if (st.in_use_bytes > slack) {
        uint64_t deadline = gsh_now_ms() + 2000;
        while (gsh_stats(d->sock, &st) == 0 && st.in_use_bytes > slack && gsh_now_ms() < deadline) gsh_sleep_ms(20);
    }
    CHECK_MSG(st.in_use_bytes <= slack && st.objects_in_use <= slack / 16 && st.large_objects == 0,
              "%s: in_use_bytes %" PRIu64 ", objects %" PRIu64 ", large %" PRIu64, when, st.in_use_bytes,
              st.objects_in_use, st.large_objects);
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "--peer") == 0)
        return peer(argv[2], strtoull(argv[3], NULL, 0), (uint32_t)strtoul(argv[4], NULL, 0), atoi(argv[5]));

    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), NULL) == 0);
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);
    H = h;

    /* (1) across processes, both ways. */
    uint32_t n;
    entry_t *t = alloc_set(h, 0x10000000u, &n, TEST_SCALE);
    fprintf(stderr, "test-crossfree: %u objects for the peer\n", n);
    int p[2];
    REQUIRE(pipe2(p, O_CLOEXEC) == 0);
    REQUIRE(fcntl(p[1], F_SETFD, 0) == 0);
    char offb[32], cntb[16], fdb[16];
    snprintf(offb, sizeof offb, "%" PRIu64, goshm_off(h, t));
    snprintf(cntb, sizeof cntb, "%u", n);
    snprintf(fdb, sizeof fdb, "%d", p[1]);
    char *pargv[] = {argv[0], "--peer", d.sock, offb, cntb, fdb, NULL};
    pid_t pid = gsh_spawn_self(pargv);
    REQUIRE(pid > 0);
    close(p[1]);
    uint64_t msg[2] = {0, 0};
    ssize_t got = read(p[0], msg, sizeof msg);
    close(p[0]);
    CHECK(gsh_wait_child(pid, 50000) == 0);
    CHECK(got == (ssize_t)sizeof msg);
    /* The peer freed all of ours, and is gone; we hold nothing. Its own objects
     * are still live: check them, free them, and the heap is empty. */
    if (got == (ssize_t)sizeof msg) {
        entry_t *theirs = goshm_ptr(h, msg[0]);
        CHECK(theirs != NULL);
        if (theirs) check_free_set(h, theirs, (uint32_t)msg[1], "parent");
    }
    check_empty(&d, 1, "after the cross-process phase");

    /* (2) across threads. */
    for (int i = 0; i < NTHREADS; i++) {
        pthread_mutex_init(&inbox[i].mu, NULL);
        pthread_cond_init(&inbox[i].cv, NULL);
    }
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) REQUIRE(pthread_create(&th[i], NULL, thread_main, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    CHECK_MSG(thread_bad == 0, "%" PRIu64 " objects failed between threads", (uint64_t)thread_bad);
    CHECK(thread_objs > 0);
    fprintf(stderr, "test-crossfree: %" PRIu64 " objects crossed threads\n", (uint64_t)thread_objs);
    check_empty(&d, 1, "after the cross-thread phase");

    CHECK(goshm_detach(h) == 0);
    check_empty(&d, 0, "after detach");
    gsh_stats_t st;
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK_MSG(st.span_bytes == 0, "span_bytes %" PRIu64 " after detach: spans not back in the page heap",
              st.span_bytes);
    /* Well-behaved clients never send a request the daemon must reject. */
    REQUIRE(gsh_stats(d.sock, &st) == 0);
    CHECK_MSG(st.bad_requests == 0 && st.bad_ring_entries == 0, "bad_requests %" PRIu64 ", bad_ring_entries %" PRIu64,
              st.bad_requests, st.bad_ring_entries);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-crossfree");
}
