/* SPDX-License-Identifier: MIT */
/* Description: randomized stress of the engine: two threads allocate and
 * free millions of objects of every size class and large sizes, free each
 * other's objects, fill and verify every object, and at checkpoints check
 * that no two live objects overlap and that the heap's invariants hold.
 * After everything is freed the heap is empty again. Not a benchmark. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "client.h"
#include "heap_internal.h"
#include "inproc.h"

#define NTHREADS 2
#define OPS (2000000 / TEST_SCALE)
#define CHECKPOINTS 4
#define MAXLIVE 20000

typedef struct obj { unsigned char *p; size_t n; unsigned char tag; } obj_t;

typedef struct worker {
    int id;
    unsigned long long seed;
    obj_t live[MAXLIVE];
    int nlive;
    /* objects handed to us by the other thread, to free */
    pthread_mutex_t mu;
    obj_t inbox[4096];
    int ninbox;
    uint64_t allocs, frees, remote;
} worker_t;

static goshm_t *H;
static worker_t W[NTHREADS];
static pthread_barrier_t barrier;
static _Atomic int failures;

static size_t pick_size(unsigned long long *s)
{
    unsigned r = (unsigned)(test_rand(s) % 1000);
    if (r < 300) return 1 + test_rand(s) % 64;          /* tiny and small */
    if (r < 800) return 1 + test_rand(s) % 1024;
    if (r < 990) return 1 + test_rand(s) % 32768;       /* every class */
    return 32769 + test_rand(s) % (512 * 1024);         /* large */
}

static void fill(obj_t *o)
{
    size_t n = o->n < 4096 ? o->n : 4096; /* large: both ends */
    memset(o->p, o->tag, n);
    if (o->n > 4096) memset(o->p + o->n - 4096, o->tag, 4096);
}

static int verify(const obj_t *o)
{
    size_t n = o->n < 4096 ? o->n : 4096;
    for (size_t i = 0; i < n; i++)
        if (o->p[i] != o->tag) return 0;
    if (o->n > 4096)
        for (size_t i = o->n - 4096; i < o->n; i++)
            if (o->p[i] != o->tag) return 0;
    return 1;
}

static void release(worker_t *w, obj_t *o)
{
    if (!verify(o)) {
        failures++;
        fprintf(stderr, "object %p size %zu corrupted\n", (void *)o->p, o->n);
    }
    goshm_free(H, o->p);
    w->frees++;
}

static void drain_inbox(worker_t *w)
{
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < w->ninbox; i++) release(w, &w->inbox[i]);
    w->ninbox = 0;
    pthread_mutex_unlock(&w->mu);
}

static int cmp_obj(const void *a, const void *b)
{
    const obj_t *x = a, *y = b;
    return x->p < y->p ? -1 : x->p > y->p;
}

static void checkpoint(void)
{
    /* All workers are parked at the barrier. */
    static obj_t all[NTHREADS * (MAXLIVE + 4096)];
    int n = 0;
    for (int t = 0; t < NTHREADS; t++) {
        for (int i = 0; i < W[t].nlive; i++) all[n++] = W[t].live[i];
        for (int i = 0; i < W[t].ninbox; i++) all[n++] = W[t].inbox[i];
    }
    qsort(all, (size_t)n, sizeof *all, cmp_obj);
    for (int i = 0; i + 1 < n; i++) {
        if (all[i].p + all[i].n > all[i + 1].p) {
            failures++;
            fprintf(stderr, "overlap: %p+%zu and %p\n", (void *)all[i].p, all[i].n, (void *)all[i + 1].p);
        }
    }
    for (int i = 0; i < n; i++)
        if (!verify(&all[i])) failures++;
    gs_heap_t *hp = gs_local_heap(H);
    gs_local_lock(H);
    if (gs_heap_check(hp) != 0) failures++;
    gs_heap_stats_t st;
    gs_heap_stats(hp, &st);
    if (st.span_bytes + st.idle_bytes + st.released_bytes != st.grown_bytes) {
        failures++;
        fprintf(stderr, "pages do not add up\n");
    }
    gs_local_unlock(H);
    fprintf(stderr, "checkpoint: %d live objects, heap grown %llu MiB, in use %llu KiB\n", n,
            (unsigned long long)(st.grown_bytes >> 20), (unsigned long long)(st.in_use_bytes >> 10));
}

static void *run(void *arg)
{
    worker_t *w = arg;
    worker_t *peer = &W[(w->id + 1) % NTHREADS];
    for (int cp = 0; cp < CHECKPOINTS; cp++) {
        for (int op = 0; op < OPS / CHECKPOINTS; op++) {
            unsigned r = (unsigned)(test_rand(&w->seed) % 100);
            if (w->nlive < MAXLIVE && (r < 52 || w->nlive == 0)) {
                obj_t o = {.n = pick_size(&w->seed), .tag = (unsigned char)(test_rand(&w->seed) | 1)};
                o.p = (test_rand(&w->seed) % 8 == 0) ? goshm_calloc(H, 1, o.n) : goshm_malloc(H, o.n);
                if (!o.p) { failures++; continue; }
                fill(&o);
                w->live[w->nlive++] = o;
                w->allocs++;
            } else if (w->nlive > 0) {
                int k = (int)(test_rand(&w->seed) % (unsigned)w->nlive);
                obj_t o = w->live[k];
                w->live[k] = w->live[--w->nlive];
                if (r % 4 == 0) { /* hand it to the other thread */
                    pthread_mutex_lock(&peer->mu);
                    if (peer->ninbox < 4096) {
                        peer->inbox[peer->ninbox++] = o;
                        w->remote++;
                        pthread_mutex_unlock(&peer->mu);
                        continue;
                    }
                    pthread_mutex_unlock(&peer->mu);
                }
                release(w, &o);
            }
            if ((op & 1023) == 0) drain_inbox(w);
        }
        pthread_barrier_wait(&barrier);
        if (w->id == 0) checkpoint();
        pthread_barrier_wait(&barrier);
    }
    drain_inbox(w);
    pthread_barrier_wait(&barrier);
    drain_inbox(w); /* what the peer sent last */
    while (w->nlive) release(w, &w->live[--w->nlive]);
    return NULL; /* thread exit flushes this thread's mcache */
}

int main(void)
{
    gs_heap_config_t cfg = {.size = 8ull << 30, .max_slots = 8};
    H = gs_local_open(&cfg);
    REQUIRE(H);
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        W[t].id = t;
        W[t].seed = 0x9E3779B97F4A7C15ull * (unsigned)(t + 1);
        pthread_mutex_init(&W[t].mu, NULL);
    }
    for (int t = 0; t < NTHREADS; t++) pthread_create(&th[t], NULL, run, &W[t]);
    uint64_t allocs = 0, frees = 0, remote = 0;
    for (int t = 0; t < NTHREADS; t++) {
        pthread_join(th[t], NULL);
        allocs += W[t].allocs;
        frees += W[t].frees;
        remote += W[t].remote;
    }
    CHECK(failures == 0);
    CHECK(allocs == frees);
    CHECK(remote > 1000);
    fprintf(stderr, "%llu allocations, %llu freed by the other thread\n", (unsigned long long)allocs,
            (unsigned long long)remote);

    /* Everything freed: the heap is empty again. */
    gs_local_collect(H);
    gs_heap_t *hp = gs_local_heap(H);
    gs_local_lock(H);
    gs_heap_stats_t st;
    gs_heap_stats(hp, &st);
    CHECK_MSG(st.in_use_bytes == 0, "in use %llu", (unsigned long long)st.in_use_bytes);
    CHECK_MSG(st.span_bytes == 0, "span bytes %llu", (unsigned long long)st.span_bytes);
    CHECK(st.idle_bytes + st.released_bytes == st.grown_bytes);
    uint64_t a = 0, f = 0;
    for (int c = 0; c < GS_NUM_SIZE_CLASSES; c++) {
        a += st.classes[c].allocs;
        f += st.classes[c].frees;
        CHECK(st.classes[c].objects_in_use == 0);
    }
    CHECK_MSG(a == f, "class allocs %llu frees %llu", (unsigned long long)a, (unsigned long long)f);
    CHECK(st.large_allocs == st.large_frees);
    CHECK(gs_heap_check(hp) == 0);
    gs_heap_scavenge(hp, 0);
    gs_heap_stats(hp, &st);
    CHECK(st.released_bytes == st.grown_bytes);
    gs_local_unlock(H);
    goshm_detach(H);
    return CHECK_DONE("test-stress");
}
