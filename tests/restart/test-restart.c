/* SPDX-License-Identifier: MIT */
/* Description: a heap that outlives its daemon. goshmd runs with
 * --state-dir; this process and two children attach and fill objects of
 * every kind (tiny, small, large) with patterns derived from their offsets.
 *   1. SIGKILL the daemon, start another on the same state directory: it
 *      adopts the heap (same heap id, "adopted" in stats), in_use_bytes is
 *      what it was, every object verifies at its offset.
 *   2. SIGKILL it again and, while no daemon runs: allocate from a cached
 *      span, free objects, and SIGKILL child B (it dies with the daemon
 *      down). A large allocation (which needs the daemon) then waits until
 *      a thread starts the next daemon, and succeeds: the handle resumed its
 *      slot. The adopter reclaimed B's slot (adopted_reclaimed); child A,
 *      alive, resumes its slot when it next needs the daemon, verifies,
 *      frees and allocates more, and detaches. B's objects are freed here,
 *      from their offsets.
 *   3. SIGTERM restart: in_use_bytes again the same, objects verify.
 * All the while, no two live objects overlap. At the end everything is
 * freed and the heap is idle: in_use_bytes 0, no span in use, so no span
 * or slot was lost across the restarts. The client-side stall of step 2
 * (the large allocation's wait beyond the daemon's start) is printed.
 *
 * Usage: test-restart GOSHMD        (also $GOSHMD)
 *        test-restart --child SOCKET FILE INDEX   (internal role)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "goshm/goshm.h"
#include "rdaemon.h"

#define MAXOBJ 4096
#define CHILD_OBJS 600

typedef struct obj {
    goshm_off_t off;
    uint64_t size;
} obj_t;

/* Shared with the children (a mapped file): their objects and phases. */
typedef struct child_area {
    _Atomic int ready;   /* child: objects allocated and listed */
    _Atomic int go;      /* parent: the daemon was restarted, carry on */
    _Atomic int done;    /* child: verified, freed, allocated again */
    uint64_t heap_id;
    uint32_t n;
    obj_t objs[CHILD_OBJS];
} child_area_t;

static uint64_t pattern(goshm_off_t off, uint64_t i) { return (off * UINT64_C(0x9e3779b97f4a7c15)) ^ (i * 131u); }

static void fill(goshm_t *h, goshm_off_t off, uint64_t size)
{
    uint8_t *p = goshm_ptr(h, off);
    uint64_t w = size / 8u;
    for (uint64_t i = 0; i < w; i += (w > 4096 ? 61 : 1)) memcpy(p + i * 8u, &(uint64_t){pattern(off, i)}, 8);
    if (size < 8) p[0] = (uint8_t)off;
}

static bool verify(goshm_t *h, goshm_off_t off, uint64_t size)
{
    uint8_t *p = goshm_ptr(h, off);
    if (!p) return false;
    uint64_t w = size / 8u;
    for (uint64_t i = 0; i < w; i += (w > 4096 ? 61 : 1)) {
        uint64_t v;
        memcpy(&v, p + i * 8u, 8);
        if (v != pattern(off, i)) return false;
    }
    return size >= 8 || p[0] == (uint8_t)off;
}

static uint64_t pick_size(unsigned long long *seed)
{
    unsigned long long r = test_rand(seed);
    switch (r % 10) {
    case 0: return 1 + r % 15;               /* tiny */
    case 1: return 40000 + r % 300000;       /* large */
    default: return 16 + (r >> 8) % 4000;    /* small */
    }
}

static int alloc_objs(goshm_t *h, obj_t *o, uint32_t n, unsigned long long seed)
{
    for (uint32_t i = 0; i < n; i++) {
        uint64_t size = pick_size(&seed);
        void *p = goshm_malloc(h, size);
        if (!p) return -1;
        o[i].off = goshm_off(h, p);
        o[i].size = size;
        fill(h, o[i].off, size);
    }
    return 0;
}

static uint32_t verify_all(goshm_t *h, const obj_t *o, uint32_t n)
{
    uint32_t bad = 0;
    for (uint32_t i = 0; i < n; i++)
        if (o[i].off && !verify(h, o[i].off, o[i].size)) bad++;
    return bad;
}

static int cmp_obj(const void *a, const void *b)
{
    const obj_t *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* No two live objects share a byte (usable sizes, as the heap sees them). */
static bool no_overlap(goshm_t *h, const obj_t *o, uint32_t n)
{
    obj_t *v = malloc(sizeof *v * (n ? n : 1));
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (o[i].off) v[k++] = (obj_t){o[i].off, goshm_usable_size(h, goshm_ptr(h, o[i].off))};
    qsort(v, k, sizeof *v, cmp_obj);
    bool ok = true;
    for (uint32_t i = 1; i < k; i++)
        if (v[i - 1].off + v[i - 1].size > v[i].off) {
            fprintf(stderr, "overlap: %llu+%llu and %llu\n", (unsigned long long)v[i - 1].off,
                    (unsigned long long)v[i - 1].size, (unsigned long long)v[i].off);
            ok = false;
        }
    free(v);
    return ok;
}

/* ---- the children ------------------------------------------------------- */

static int child_main(const char *sock, const char *file, int index)
{
    int fd = open(file, O_RDWR);
    if (fd < 0) return 10;
    child_area_t *a = mmap(NULL, 2 * sizeof *a, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (a == MAP_FAILED) return 11;
    a += index;
    goshm_t *h = goshm_attach(sock);
    if (!h) return 12;
    a->heap_id = goshm_heap_id(h);
    if (alloc_objs(h, a->objs, CHILD_OBJS, 1000u + (unsigned)index)) return 13;
    a->n = CHILD_OBJS;
    atomic_store(&a->ready, 1);
    while (!atomic_load(&a->go)) usleep(2000);
    /* The daemon was replaced meanwhile. */
    if (goshm_heap_id(h) != a->heap_id) return 14;
    if (verify_all(h, a->objs, a->n)) return 15;
    for (uint32_t i = 0; i < a->n; i += 2) {
        goshm_free(h, goshm_ptr(h, a->objs[i].off));
        a->objs[i].off = 0;
    }
    obj_t more[200];
    if (alloc_objs(h, more, 200, 77u + (unsigned)index)) return 16; /* needs the daemon: resumes the slot */
    if (verify_all(h, more, 200) || verify_all(h, a->objs, a->n)) return 17;
    for (uint32_t i = 0; i < 200; i++) goshm_free(h, goshm_ptr(h, more[i].off));
    for (uint32_t i = 0; i < a->n; i++)
        if (a->objs[i].off) goshm_free(h, goshm_ptr(h, a->objs[i].off));
    if (goshm_detach(h) != 0) return 18;
    atomic_store(&a->done, 1);
    return 0;
}

/* ---- the test ------------------------------------------------------------- */

static rd_t D;
static obj_t objs[MAXOBJ];
static uint32_t nobjs;

static bool pred_in_use(const gsh_stats_t *st, void *arg) { return st->in_use_bytes == *(uint64_t *)arg; }

/* The call that needs the daemon, in a thread: the main thread starts the
 * daemon (it must: the daemon dies with the thread that forked it,
 * PR_SET_PDEATHSIG). */
typedef struct bigcall {
    goshm_t *h;
    void *p;
    int err;
    uint64_t t1, t2;
} bigcall_t;

static void *big_malloc(void *arg)
{
    bigcall_t *b = arg;
    b->t1 = gsh_now_ms();
    b->p = goshm_malloc(b->h, 3u << 20);
    b->err = errno;
    b->t2 = gsh_now_ms();
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--child") == 0) return child_main(argv[2], argv[3], atoi(argv[4]));
    setvbuf(stderr, NULL, _IONBF, 0);
    rd_init(&D, gsh_daemon_path(argc, argv));
    setenv("GOSHM_RECONNECT_S", "20", 1);
    REQUIRE(rd_start(&D, "512M", NULL) == 0);

    char file[160];
    snprintf(file, sizeof file, "%s/children", D.dir);
    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0 && ftruncate(fd, 2 * sizeof(child_area_t)) == 0);
    child_area_t *ca = mmap(NULL, 2 * sizeof *ca, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    REQUIRE(ca != MAP_FAILED);
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        char idx[8];
        snprintf(idx, sizeof idx, "%d", i);
        char *cargv[] = {argv[0], "--child", D.sock, file, idx, NULL};
        kids[i] = gsh_spawn_self(cargv);
        REQUIRE(kids[i] > 0);
    }

    goshm_t *h = goshm_attach(D.sock);
    REQUIRE(h);
    uint64_t id = goshm_heap_id(h);
    CHECK(id != 0);
    nobjs = 2000;
    REQUIRE(alloc_objs(h, objs, nobjs, 42) == 0);
    for (int i = 0; i < 2; i++)
        for (int t = 0; t < 1000 && !atomic_load(&ca[i].ready); t++) gsh_sleep_ms(10);
    REQUIRE(atomic_load(&ca[0].ready) && atomic_load(&ca[1].ready));
    CHECK(ca[0].heap_id == id && ca[1].heap_id == id);

    gsh_stats_t st, st2;
    REQUIRE(gsh_settle(D.sock, 3, &st) == 0);
    CHECK(st.heap_id == id && !st.adopted);
    uint64_t in_use = st.in_use_bytes;
    fprintf(stderr, "before: in_use %llu bytes, %llu objects\n", (unsigned long long)in_use,
            (unsigned long long)st.objects_in_use);

    /* 1. SIGKILL, restart at once: the same heap, the same bytes in use. */
    int ws = rd_stop(&D, SIGKILL);
    CHECK(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    REQUIRE(rd_start(&D, "512M", NULL) == 0);
    REQUIRE(gsh_stats(D.sock, &st2) == 0);
    CHECK_MSG(st2.heap_id == id, "heap id %llx after adoption, %llx before", (unsigned long long)st2.heap_id,
              (unsigned long long)id);
    CHECK(st2.adopted == 1);
    CHECK_MSG(st2.adopted_orphans == 3, "%u slots kept", st2.adopted_orphans);
    CHECK_MSG(st2.in_use_bytes == in_use, "in_use %llu after adoption, %llu before",
              (unsigned long long)st2.in_use_bytes, (unsigned long long)in_use);
    CHECK(st2.objects_in_use == st.objects_in_use);
    CHECK(verify_all(h, objs, nobjs) == 0);
    CHECK(no_overlap(h, objs, nobjs));

    /* 2. SIGKILL again; work while no daemon runs. */
    void *small = goshm_malloc(h, 64); /* its span is cached: room for more */
    REQUIRE(small);
    objs[nobjs++] = (obj_t){goshm_off(h, small), 64};
    fill(h, objs[nobjs - 1].off, 64);
    ws = rd_stop(&D, SIGKILL);
    CHECK(WIFSIGNALED(ws));
    uint64_t t0 = gsh_now_ms();
    for (int i = 0; i < 20; i++) { /* from the cached span: no daemon needed */
        void *p = goshm_malloc(h, 64);
        CHECK(p != NULL);
        if (!p) break;
        objs[nobjs++] = (obj_t){goshm_off(h, p), 64};
        fill(h, objs[nobjs - 1].off, 64);
    }
    for (uint32_t i = 0; i < 400; i += 4) { /* frees need no daemon */
        goshm_free(h, goshm_ptr(h, objs[i].off));
        objs[i].off = 0;
    }
    CHECK(gsh_now_ms() - t0 < 1000);
    kill(kids[1], SIGKILL); /* B dies with no daemon up */
    CHECK(gsh_wait_child(kids[1], 5000) == -1);
    bigcall_t bc = {.h = h};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, big_malloc, &bc) == 0);
    gsh_sleep_ms(400);
    uint64_t started_ms = gsh_now_ms();
    REQUIRE(rd_start(&D, "512M", NULL) == 0);
    pthread_join(th, NULL);
    void *big = bc.p;
    CHECK_MSG(big != NULL, "large malloc across the restart: %s", strerror(bc.err));
    if (big) {
        objs[nobjs++] = (obj_t){goshm_off(h, big), 3u << 20};
        fill(h, objs[nobjs - 1].off, 3u << 20);
    }
    CHECK(bc.t2 >= started_ms);
    fprintf(stderr, "stall: the call waited %llu ms; the daemon was started %llu ms into it, the call returned %llu ms later\n",
            (unsigned long long)(bc.t2 - bc.t1), (unsigned long long)(started_ms - bc.t1),
            (unsigned long long)(bc.t2 - started_ms));
    if (gsh_stats(D.sock, &st2) != 0) {
        fprintf(stderr, "daemon status: %d\n", rd_reap(&D, 1000));
        return 1;
    }
    CHECK(st2.heap_id == id && st2.adopted == 1);
    CHECK_MSG(st2.adopted_reclaimed == 1, "%u slots reclaimed (B died)", st2.adopted_reclaimed);
    CHECK(goshm_heap_id(h) == id);
    CHECK(verify_all(h, objs, nobjs) == 0);
    /* B's objects stay live (nobody freed them): verify, then free them from here. */
    CHECK(verify_all(h, ca[1].objs, ca[1].n) == 0);
    /* A carries on: verifies, frees, allocates (resuming its slot), detaches. */
    atomic_store(&ca[0].go, 1);
    CHECK_MSG(gsh_wait_child(kids[0], 60000) == 0, "child A failed");
    CHECK(atomic_load(&ca[0].done) == 1);
    for (uint32_t i = 0; i < ca[1].n; i++) goshm_free(h, goshm_ptr(h, ca[1].objs[i].off));
    uint32_t more = nobjs;
    REQUIRE(alloc_objs(h, objs + nobjs, 500, 4242) == 0);
    nobjs += 500;
    CHECK(verify_all(h, objs, nobjs) == 0);
    CHECK(no_overlap(h, objs, nobjs));
    (void)more;

    /* 3. SIGTERM restart: the slot stays claimed, the bytes in use stay. */
    REQUIRE(gsh_settle(D.sock, 1, &st) == 0);
    ws = rd_stop(&D, SIGTERM);
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    REQUIRE(rd_start(&D, "512M", NULL) == 0);
    REQUIRE(gsh_stats(D.sock, &st2) == 0);
    CHECK(st2.heap_id == id && st2.adopted == 1 && st2.adopted_orphans == 1);
    CHECK_MSG(st2.in_use_bytes == st.in_use_bytes, "in_use %llu after SIGTERM restart, %llu before",
              (unsigned long long)st2.in_use_bytes, (unsigned long long)st.in_use_bytes);
    CHECK(verify_all(h, objs, nobjs) == 0);
    void *after = goshm_malloc(h, 100000);
    CHECK(after != NULL);
    if (after) {
        objs[nobjs++] = (obj_t){goshm_off(h, after), 100000};
        fill(h, objs[nobjs - 1].off, 100000);
    }
    CHECK(no_overlap(h, objs, nobjs));
    CHECK(verify_all(h, objs, nobjs) == 0);

    /* Everything back: the heap is empty. */
    for (uint32_t i = 0; i < nobjs; i++)
        if (objs[i].off) goshm_free(h, goshm_ptr(h, objs[i].off));
    CHECK(goshm_detach(h) == 0);
    uint64_t zero = 0;
    CHECK(gsh_wait_for(D.sock, &st, pred_in_use, &zero, 5000) == 1);
    CHECK(gsh_settle_idle(D.sock, &st) == 0);
    CHECK_MSG(st.in_use_bytes == 0 && st.span_bytes == 0, "in_use %llu span %llu at the end",
              (unsigned long long)st.in_use_bytes, (unsigned long long)st.span_bytes);
    ws = rd_stop(&D, SIGTERM);
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    return CHECK_DONE("test-restart");
}
