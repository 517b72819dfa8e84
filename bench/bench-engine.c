/* SPDX-License-Identifier: MIT */
/* bench-engine.c: engine microbenchmark, goshm against the malloc of this
 * process (glibc, or jemalloc/tcmalloc under LD_PRELOAD) and mimalloc.
 *
 *   bench-engine --alloc=goshm|libc|mimalloc --workload=W1|W2|W4a|W4b
 *                [--runs N] [--scale F]
 *
 * Workloads: BENCHMARKS.md of the project (W1, W2, W4a, W4b), see bench/README.md.
 * Prints one "run" line per run and a final "summary" line (median, min, max),
 * as key=value fields that bench/run-engine.sh parses. Exit status 0 when
 * every check passed, 1 on a check failure, 2 on a usage or setup error, 3
 * for --alloc=mimalloc in a build without mimalloc.
 *
 * goshm runs in-process (gs_local_open: the heap side under a mutex, no
 * daemon). Never part of the ctest suite.
 *
 * Fairness: the workload loops are written once (always_inline, with the
 * allocator kind a compile-time constant) and instantiated per allocator, so
 * every allocator is called directly from the same loop, with no function
 * pointer in between. Bookkeeping arrays come from mmap, never from the
 * allocator under test, and are touched before the RSS baseline is taken.
 */
#define _GNU_SOURCE
#include <dlfcn.h>     /* dlsym, dladdr */
#include <errno.h>     /* errno */
#include <inttypes.h>  /* PRIu64 */
#include <pthread.h>   /* pthread_* */
#include <sched.h>     /* sched_yield */
#include <stdatomic.h> /* atomics */
#include <stdbool.h>   /* bool */
#include <stdint.h>    /* uint*_t */
#include <stdio.h>     /* printf */
#include <stdlib.h>    /* malloc, free, strtod */
#include <string.h>    /* strcmp, strerror */
#include <sys/mman.h>  /* mmap */
#include <sys/resource.h> /* getrusage */
#include <time.h>      /* clock_gettime */
#include <unistd.h>    /* getpid */

#include "goshm/goshm.h"
#include "inproc.h"

#ifdef GOSHM_BENCH_HAVE_MIMALLOC
#include <mimalloc.h>
#endif

/* Declared here rather than through <malloc.h>: glibc, jemalloc, tcmalloc and
 * mimalloc all provide this one. */
extern size_t malloc_usable_size(void *p);

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define NOINLINE __attribute__((noinline))
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

enum { A_GOSHM, A_LIBC, A_MIMALLOC };
static const char *const alloc_names[] = {"goshm", "libc", "mimalloc"};

/* ---- allocator shims ------------------------------------------------- */

static NOINLINE void die_oom(size_t n)
{
    fprintf(stderr, "bench-engine: allocation of %zu bytes failed: %s\n", n, strerror(errno));
    exit(2);
}

ALWAYS_INLINE void *xmalloc(const int kind, goshm_t *h, size_t n)
{
    void *p;
    switch (kind) {
    case A_GOSHM: p = goshm_malloc(h, n); break;
#ifdef GOSHM_BENCH_HAVE_MIMALLOC
    case A_MIMALLOC: p = mi_malloc(n); break;
#endif
    default: p = malloc(n); break;
    }
    if (UNLIKELY(!p)) die_oom(n);
    return p;
}

static size_t xusable(const int kind, goshm_t *h, void *p)
{
    switch (kind) {
    case A_GOSHM: return goshm_usable_size(h, p);
#ifdef GOSHM_BENCH_HAVE_MIMALLOC
    case A_MIMALLOC: return mi_usable_size(p);
#endif
    default: return malloc_usable_size(p);
    }
}

ALWAYS_INLINE void xfree(const int kind, goshm_t *h, void *p)
{
    switch (kind) {
    case A_GOSHM: goshm_free(h, p); break;
#ifdef GOSHM_BENCH_HAVE_MIMALLOC
    case A_MIMALLOC: mi_free(p); break;
#endif
    default: free(p); break;
    }
}

/* The pointer escapes and memory is observed: malloc/free pairs cannot be
 * elided, the store cannot be sunk. Costs no instruction. */
ALWAYS_INLINE void escape(void *p) { __asm__ __volatile__("" : : "r"(p) : "memory"); }

/* ---- utilities ------------------------------------------------------- */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Bookkeeping memory straight from the kernel, touched now. */
static void *bench_mem(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "bench-engine: mmap %zu: %s\n", bytes, strerror(errno));
        exit(2);
    }
    memset(p, 0, bytes);
    return p;
}

typedef struct rss {
    uint64_t anon_kb, shmem_kb, file_kb, vmrss_kb, hwm_kb;
} rss_t;

static rss_t read_rss(void)
{
    rss_t r = {0};
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return r;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        unsigned long long v;
        if (sscanf(line, "RssAnon: %llu", &v) == 1) r.anon_kb = v;
        else if (sscanf(line, "RssShmem: %llu", &v) == 1) r.shmem_kb = v;
        else if (sscanf(line, "RssFile: %llu", &v) == 1) r.file_kb = v;
        else if (sscanf(line, "VmRSS: %llu", &v) == 1) r.vmrss_kb = v;
        else if (sscanf(line, "VmHWM: %llu", &v) == 1) r.hwm_kb = v;
    }
    fclose(f);
    return r;
}

/* Anonymous plus shared memory: goshm's heap is a memfd mapped shared, so
 * its pages count as RssShmem, the peers' as RssAnon. */
static inline uint64_t rss_bytes(rss_t r) { return (r.anon_kb + r.shmem_kb) * 1024u; }

static uint64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

static void loadavg(char *buf, size_t len)
{
    snprintf(buf, len, "?");
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return;
    double a;
    if (fscanf(f, "%lf", &a) == 1) snprintf(buf, len, "%.2f", a);
    fclose(f);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct stat3 {
    double median, min, max;
} stat3_t;

static stat3_t stats(const double *v, int n)
{
    double *s = bench_mem(sizeof(double) * (size_t)n);
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    stat3_t r = {.min = s[0], .max = s[n - 1]};
    r.median = (n & 1) ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2.0;
    munmap(s, sizeof(double) * (size_t)n);
    return r;
}

/* ---- W1: malloc(n) then free at once, n cycling ------------------------ */

static const uint32_t w1_sizes[8] = {16, 32, 48, 64, 128, 256, 512, 1024};

ALWAYS_INLINE uint64_t w1_loop(const int kind, goshm_t *h, uint64_t n)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char *p = xmalloc(kind, h, w1_sizes[i & 7u]);
        p[0] = (unsigned char)i;
        escape(p);
        sum += p[0];
        xfree(kind, h, p);
    }
    return sum;
}

static uint64_t w1_expect(uint64_t n)
{
    /* sum of (i & 255) for i < n */
    return (n / 256u) * (255u * 256u / 2u) + ((n % 256u) * ((n % 256u) - 1u)) / 2u;
}

/* ---- W2: 1M random sizes, random free order --------------------------- */

static inline unsigned char w2_tag(size_t i) { return (unsigned char)(i * 131u + 7u); }

ALWAYS_INLINE uint64_t w2_alloc(const int kind, goshm_t *h, void **ptrs, const uint16_t *sizes, size_t n)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = xmalloc(kind, h, sizes[i]);
        unsigned char t = w2_tag(i);
        p[0] = t; /* the first byte written */
        sum += t;
        ptrs[i] = p;
    }
    return sum;
}

ALWAYS_INLINE void w2_free(const int kind, goshm_t *h, void **ptrs, size_t n)
{
    for (size_t i = 0; i < n; i++) xfree(kind, h, ptrs[i]);
}

/* ---- W4b: A allocates, B frees, through an SPSC ring of 256 slots ------ */

#define RING_SLOTS 256u

/* Spin, then yield: on a shared 2-vCPU machine the two threads may find
 * themselves on one CPU, and a pure spin would then wait out a time slice. */
static inline void ring_wait(unsigned *spins)
{
    if (++*spins < 1024u) cpu_relax();
    else sched_yield();
}

typedef struct ring {
    _Alignas(64) _Atomic uint64_t head; /* written by the producer */
    _Alignas(64) _Atomic uint64_t tail; /* written by the consumer */
    _Alignas(64) void *slot[RING_SLOTS];
} ring_t;

typedef struct w4b_arg {
    ring_t *ring;
    pthread_barrier_t *bar;
    uint64_t n, warm;
    uint64_t t0, t1;  /* producer: start; consumer: end */
    uint64_t bad, sum;
} w4b_arg_t;

ALWAYS_INLINE void produce(const int kind, goshm_t *h, w4b_arg_t *a, uint64_t first, uint64_t count)
{
    ring_t *r = a->ring;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    for (uint64_t i = first; i < first + count; i++) {
        uint64_t *p = xmalloc(kind, h, w1_sizes[i & 7u]);
        p[0] = i; /* the sequence number */
        for (unsigned spins = 0; head - tail == RING_SLOTS;) {
            ring_wait(&spins);
            tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        }
        r->slot[head % RING_SLOTS] = p;
        atomic_store_explicit(&r->head, ++head, memory_order_release);
    }
}

ALWAYS_INLINE void consume(const int kind, goshm_t *h, w4b_arg_t *a, uint64_t first, uint64_t count)
{
    ring_t *r = a->ring;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t bad = 0, sum = 0; /* in registers: a's line is the producer's too */
    for (uint64_t i = first; i < first + count; i++) {
        for (unsigned spins = 0; tail == head;) {
            ring_wait(&spins);
            head = atomic_load_explicit(&r->head, memory_order_acquire);
        }
        uint64_t *p = r->slot[tail % RING_SLOTS];
        atomic_store_explicit(&r->tail, ++tail, memory_order_release);
        if (UNLIKELY(p[0] != i)) bad++;
        sum += p[0];
        xfree(kind, h, p);
    }
    a->bad += bad;
    a->sum += sum;
}

/* ---- per-allocator instances ------------------------------------------ */

typedef struct ops {
    uint64_t (*w1)(goshm_t *h, uint64_t n);
    uint64_t (*w2_alloc)(goshm_t *h, void **ptrs, const uint16_t *sizes, size_t n);
    void (*w2_free)(goshm_t *h, void **ptrs, size_t n);
    void (*produce)(goshm_t *h, w4b_arg_t *a, uint64_t first, uint64_t count);
    void (*consume)(goshm_t *h, w4b_arg_t *a, uint64_t first, uint64_t count);
} ops_t;

#define INSTANTIATE(KIND, sfx)                                                                            \
    static NOINLINE uint64_t w1_##sfx(goshm_t *h, uint64_t n) { return w1_loop(KIND, h, n); }            \
    static NOINLINE uint64_t w2a_##sfx(goshm_t *h, void **ptrs, const uint16_t *sizes, size_t n)         \
    {                                                                                                     \
        return w2_alloc(KIND, h, ptrs, sizes, n);                                                         \
    }                                                                                                     \
    static NOINLINE void w2f_##sfx(goshm_t *h, void **ptrs, size_t n) { w2_free(KIND, h, ptrs, n); }      \
    static NOINLINE void pr_##sfx(goshm_t *h, w4b_arg_t *a, uint64_t first, uint64_t count)             \
    {                                                                                                     \
        produce(KIND, h, a, first, count);                                                                \
    }                                                                                                     \
    static NOINLINE void co_##sfx(goshm_t *h, w4b_arg_t *a, uint64_t first, uint64_t count)             \
    {                                                                                                     \
        consume(KIND, h, a, first, count);                                                                \
    }                                                                                                     \
    static const ops_t ops_##sfx = {w1_##sfx, w2a_##sfx, w2f_##sfx, pr_##sfx, co_##sfx};

INSTANTIATE(A_GOSHM, goshm)
INSTANTIATE(A_LIBC, libc)
#ifdef GOSHM_BENCH_HAVE_MIMALLOC
INSTANTIATE(A_MIMALLOC, mi)
#endif

/* ---- global state ------------------------------------------------------ */

static int g_kind;
static const ops_t *g_ops;
static goshm_t *g_heap;
static double g_scale = 1.0;

static uint64_t scaled(uint64_t n)
{
    double v = (double)n * g_scale;
    return v < 1000.0 ? 1000u : (uint64_t)v;
}

/* ---- runs ---------------------------------------------------------------- */

typedef struct result {
    double ns;        /* the workload's figure */
    double peak;      /* W2: peak RSS / requested */
    double kept;      /* W2: % of the peak still resident after freeing all */
    double kept_scav; /* W2, goshm: same after collect + scavenge */
    bool ok;
} result_t;

static result_t run_w1(int run, int runs)
{
    uint64_t n = scaled(20000000u), warm = n / 10u;
    uint64_t ws = g_ops->w1(g_heap, warm);
    uint64_t t0 = now_ns();
    uint64_t sum = g_ops->w1(g_heap, n);
    uint64_t t1 = now_ns();
    result_t r = {.ns = (double)(t1 - t0) / (double)n};
    r.ok = sum == w1_expect(n) && ws == w1_expect(warm);
    printf("run %d/%d alloc=%s workload=W1 ns=%.3f unit=ns/pair pairs=%" PRIu64 " checksum=%" PRIu64 " check=%s\n",
           run, runs, alloc_names[g_kind], r.ns, n, sum, r.ok ? "ok" : "FAILED");
    return r;
}

static uint64_t g_base_rss; /* process baseline: bookkeeping touched, heap open */
static uint16_t *g_sizes;
static void **g_ptrs;
static size_t g_w2n;

static void w2_setup(void)
{
    g_w2n = (size_t)scaled(1000000u);
    g_sizes = bench_mem(g_w2n * sizeof *g_sizes);
    g_ptrs = bench_mem(g_w2n * sizeof *g_ptrs);
    uint64_t s = 0x9E3779B97F4A7C15u; /* fixed seed */
    for (size_t i = 0; i < g_w2n; i++) g_sizes[i] = (uint16_t)(8u + xorshift64(&s) % 2041u); /* 8..2048 */
}

static void shuffle(void **a, size_t n, uint64_t *s)
{
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(xorshift64(s) % (i + 1));
        void *t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* Untimed: check the tags (no two live objects share a first byte) and sum
 * the usable sizes (the allocator's rounding). */
static size_t w2_verify(uint64_t *usable)
{
    size_t bad = 0;
    uint64_t u = 0;
    for (size_t i = 0; i < g_w2n; i++) {
        if (((unsigned char *)g_ptrs[i])[0] != w2_tag(i)) bad++;
        u += xusable(g_kind, g_heap, g_ptrs[i]);
    }
    *usable = u;
    return bad;
}

/* goshm: the heap side's view, for the W2 line (not timed). */
static void goshm_heap_view(char *buf, size_t len, const char *tag)
{
    static gs_heap_stats_t st; /* large: not on the stack */
    gs_local_lock(g_heap);
    gs_heap_stats(gs_local_heap(g_heap), &st);
    uint64_t backed = gs_heap_backed_bytes(gs_local_heap(g_heap));
    gs_local_unlock(g_heap);
    const double M = 1048576.0;
    snprintf(buf, len,
             " %s_backed_mib=%.1f %s_committed_mib=%.1f %s_span_mib=%.1f %s_in_use_mib=%.1f %s_idle_mib=%.1f"
             " %s_metadata_mib=%.1f",
             tag, (double)backed / M, tag, (double)st.committed_bytes / M, tag, (double)st.span_bytes / M, tag,
             (double)st.in_use_bytes / M, tag, (double)st.idle_bytes / M, tag, (double)st.metadata_bytes / M);
}

static result_t run_w2(int run, int runs)
{
    const int rounds = 5;
    size_t n = g_w2n;
    uint64_t requested = 0;
    for (size_t i = 0; i < n; i++) requested += g_sizes[i];
    uint64_t expect = 0;
    for (size_t i = 0; i < n; i++) expect += w2_tag(i);
    uint64_t shuf = 0x2545F4914F6CDD1Du + (uint64_t)run;
    size_t bad = 0;
    bool ok = true;

    /* Warm-up round, untimed: first touch of fresh memory costs microseconds
     * per page on these VMs; it is reported on its own. */
    uint64_t t0 = now_ns();
    ok &= g_ops->w2_alloc(g_heap, g_ptrs, g_sizes, n) == expect;
    uint64_t t1 = now_ns();
    uint64_t peak = rss_bytes(read_rss()); /* the peak counts the warm-up round too */
    char heap_peak[512] = "";
    if (g_kind == A_GOSHM) goshm_heap_view(heap_peak, sizeof heap_peak, "heap_peak");
    shuffle(g_ptrs, n, &shuf);
    uint64_t t2 = now_ns();
    g_ops->w2_free(g_heap, g_ptrs, n);
    uint64_t t3 = now_ns();
    double warm_ns = (double)((t1 - t0) + (t3 - t2)) / (double)n;

    uint64_t total = 0, usable = 0;
    for (int r = 0; r < rounds; r++) {
        t0 = now_ns();
        uint64_t sum = g_ops->w2_alloc(g_heap, g_ptrs, g_sizes, n);
        t1 = now_ns();
        uint64_t rss = rss_bytes(read_rss());
        if (rss > peak) {
            peak = rss;
            if (g_kind == A_GOSHM) goshm_heap_view(heap_peak, sizeof heap_peak, "heap_peak");
        }
        ok &= sum == expect;
        bad += w2_verify(&usable);
        shuffle(g_ptrs, n, &shuf);
        t2 = now_ns();
        g_ops->w2_free(g_heap, g_ptrs, n);
        t3 = now_ns();
        total += (t1 - t0) + (t3 - t2);
    }
    rss_t after = read_rss();
    uint64_t base = g_base_rss;
    double used_peak = peak > base ? (double)(peak - base) : 0.0;
    double used_after = rss_bytes(after) > base ? (double)(rss_bytes(after) - base) : 0.0;

    result_t res = {.ns = (double)total / (double)(n * (uint64_t)rounds), .kept_scav = -1};
    res.peak = used_peak / (double)requested;
    res.kept = used_peak > 0 ? 100.0 * used_after / used_peak : 0.0;
    res.ok = ok && bad == 0;

    char extra[1536] = "";
    if (g_kind == A_GOSHM) {
        /* What the daemon's scavenger will do: sweep what the frees left,
         * then release every idle free run. */
        uint64_t s0 = now_ns();
        gs_local_collect(g_heap);
        gs_local_lock(g_heap);
        uint64_t released = gs_heap_scavenge(gs_local_heap(g_heap), 0);
        gs_local_unlock(g_heap);
        uint64_t s1 = now_ns();
        rss_t sc = read_rss();
        double used_sc = rss_bytes(sc) > base ? (double)(rss_bytes(sc) - base) : 0.0;
        res.kept_scav = used_peak > 0 ? 100.0 * used_sc / used_peak : 0.0;
        char heap_after[512];
        goshm_heap_view(heap_after, sizeof heap_after, "heap_scav");
        snprintf(extra, sizeof extra, " kept_scav_pct=%.1f scav_mib=%.1f scavenged_mib=%.1f collect_scavenge_ms=%.1f%s%s",
                 res.kept_scav, used_sc / 1048576.0, (double)released / 1048576.0, (double)(s1 - s0) / 1e6,
                 heap_peak, heap_after);
    }
    printf("run %d/%d alloc=%s workload=W2 ns=%.3f unit=ns/object objects=%zu rounds=%d warm_ns=%.1f "
           "requested_mib=%.1f usable_ratio=%.3f peak_mib=%.1f peak_rss_ratio=%.3f after_mib=%.1f kept_pct=%.1f%s "
           "rss_anon_mib=%.1f rss_shmem_mib=%.1f vmhwm_mib=%.1f bad_tags=%zu check=%s\n",
           run, runs, alloc_names[g_kind], res.ns, n, rounds, warm_ns, (double)requested / 1048576.0,
           (double)usable / (double)requested, used_peak / 1048576.0, res.peak, used_after / 1048576.0, res.kept, extra,
           (double)after.anon_kb / 1024.0, (double)after.shmem_kb / 1024.0, (double)after.hwm_kb / 1024.0, bad,
           res.ok ? "ok" : "FAILED");
    return res;
}

/* ---- W4a: two threads, each W1 on its own objects ---------------------- */

typedef struct w4a_arg {
    pthread_barrier_t *bar;
    uint64_t n, warm, sum, wsum, t_start, t_end;
} w4a_arg_t;

static void *w4a_thread(void *p)
{
    w4a_arg_t *a = p;
    a->wsum = g_ops->w1(g_heap, a->warm);
    pthread_barrier_wait(a->bar);
    a->t_start = now_ns();
    a->sum = g_ops->w1(g_heap, a->n);
    a->t_end = now_ns();
    return NULL;
}

static result_t run_w4a(int run, int runs)
{
    uint64_t n = scaled(20000000u);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    w4a_arg_t a[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        a[i] = (w4a_arg_t){.bar = &bar, .n = n, .warm = n / 10u};
        if (pthread_create(&t[i], NULL, w4a_thread, &a[i])) {
            fprintf(stderr, "bench-engine: pthread_create failed\n");
            exit(2);
        }
    }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&bar);
    uint64_t t0 = a[0].t_start < a[1].t_start ? a[0].t_start : a[1].t_start;
    uint64_t t1 = a[0].t_end > a[1].t_end ? a[0].t_end : a[1].t_end;
    result_t r = {.ns = (double)(t1 - t0) / (double)(2u * n)};
    r.ok = true;
    for (int i = 0; i < 2; i++) r.ok &= a[i].sum == w1_expect(n) && a[i].wsum == w1_expect(n / 10u);
    printf("run %d/%d alloc=%s workload=W4a ns=%.3f unit=ns/pair(aggregate) pairs_per_thread=%" PRIu64
           " thread_ns=%.3f,%.3f check=%s\n",
           run, runs, alloc_names[g_kind], r.ns, n, (double)(a[0].t_end - t0) / (double)n,
           (double)(a[1].t_end - t0) / (double)n, r.ok ? "ok" : "FAILED");
    return r;
}

static void *w4b_producer(void *p)
{
    w4b_arg_t *a = p;
    g_ops->produce(g_heap, a, 0, a->warm);
    pthread_barrier_wait(a->bar);
    a->t0 = now_ns();
    g_ops->produce(g_heap, a, a->warm, a->n);
    return NULL;
}

static void *w4b_consumer(void *p)
{
    w4b_arg_t *a = p;
    g_ops->consume(g_heap, a, 0, a->warm);
    pthread_barrier_wait(a->bar);
    g_ops->consume(g_heap, a, a->warm, a->n);
    a->t1 = now_ns();
    return NULL;
}

static result_t run_w4b(int run, int runs)
{
    uint64_t n = scaled(5000000u);
    ring_t *ring = bench_mem(sizeof *ring);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    w4b_arg_t a = {.ring = ring, .bar = &bar, .n = n, .warm = n / 10u};
    pthread_t tp, tc;
    if (pthread_create(&tc, NULL, w4b_consumer, &a) || pthread_create(&tp, NULL, w4b_producer, &a)) {
        fprintf(stderr, "bench-engine: pthread_create failed\n");
        exit(2);
    }
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    pthread_barrier_destroy(&bar);
    munmap(ring, sizeof *ring);
    uint64_t total = a.warm + a.n;
    result_t r = {.ns = (double)(a.t1 - a.t0) / (double)n};
    r.ok = a.bad == 0 && a.sum == total * (total - 1u) / 2u;
    printf("run %d/%d alloc=%s workload=W4b ns=%.3f unit=ns/object objects=%" PRIu64 " seq_errors=%" PRIu64
           " check=%s\n",
           run, runs, alloc_names[g_kind], r.ns, n, a.bad, r.ok ? "ok" : "FAILED");
    return r;
}

/* ---- main ---------------------------------------------------------------- */

static NOINLINE void usage(const char *msg)
{
    if (msg) fprintf(stderr, "bench-engine: %s\n", msg);
    fprintf(stderr, "usage: bench-engine --alloc=goshm|libc|mimalloc --workload=W1|W2|W4a|W4b "
                    "[--runs N] [--scale F]\n");
    exit(2);
}

static const char *malloc_provider(void)
{
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    if (sym && dladdr(sym, &info) && info.dli_fname) return info.dli_fname;
    return "?";
}

int main(int argc, char **argv)
{
    const char *alloc = NULL, *workload = NULL;
    int runs = 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "--alloc=", 8)) alloc = a + 8;
        else if (!strncmp(a, "--workload=", 11)) workload = a + 11;
        else if (!strncmp(a, "--runs=", 7)) runs = atoi(a + 7);
        else if (!strcmp(a, "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strncmp(a, "--scale=", 8)) g_scale = strtod(a + 8, NULL);
        else if (!strcmp(a, "--scale") && i + 1 < argc) g_scale = strtod(argv[++i], NULL);
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) usage(NULL);
        else usage("unknown argument");
    }
    if (!alloc || !workload) usage("--alloc and --workload are required");
    if (runs < 1 || runs > 1000) usage("--runs must be 1..1000");
    if (!(g_scale > 0.0 && g_scale <= 100.0)) usage("--scale must be in (0, 100]");

    if (!strcmp(alloc, "goshm")) {
        g_kind = A_GOSHM;
        g_ops = &ops_goshm;
    } else if (!strcmp(alloc, "libc")) {
        g_kind = A_LIBC;
        g_ops = &ops_libc;
    } else if (!strcmp(alloc, "mimalloc")) {
#ifdef GOSHM_BENCH_HAVE_MIMALLOC
        g_kind = A_MIMALLOC;
        g_ops = &ops_mi;
#else
        fprintf(stderr, "bench-engine: built without mimalloc (mimalloc.h / libmimalloc not found at "
                        "configure time); install libmimalloc-dev and reconfigure\n");
        return 3;
#endif
    } else {
        usage("--alloc must be goshm, libc or mimalloc");
    }

    result_t (*fn)(int, int);
    if (!strcmp(workload, "W1")) fn = run_w1;
    else if (!strcmp(workload, "W2")) fn = run_w2;
    else if (!strcmp(workload, "W4a")) fn = run_w4a;
    else if (!strcmp(workload, "W4b")) fn = run_w4b;
    else usage("--workload must be W1, W2, W4a or W4b");

    switch (g_kind) {
    case A_GOSHM:
        printf("# alloc=goshm: in-process heap (gs_local_open, 8 GiB, scavenge_delay 0)\n");
        break;
    case A_LIBC:
        printf("# alloc=libc: malloc from %s\n", malloc_provider());
        break;
#ifdef GOSHM_BENCH_HAVE_MIMALLOC
    case A_MIMALLOC:
        printf("# alloc=mimalloc: mi_malloc/mi_free, mimalloc %d\n", mi_version());
        break;
#endif
    }
    printf("# workload=%s runs=%d scale=%g pid=%d\n", workload, runs, g_scale, (int)getpid());
    fflush(stdout);

    if (g_kind == A_GOSHM) {
        g_heap = gs_local_open(&(gs_heap_config_t){.size = 8ull << 30, .max_slots = 8, .scavenge_delay_ns = 0});
        if (!g_heap) {
            fprintf(stderr, "bench-engine: gs_local_open: %s\n", strerror(errno));
            return 2;
        }
    }
    if (fn == run_w2) w2_setup();
    g_base_rss = rss_bytes(read_rss());

    double *ns = bench_mem(sizeof(double) * (size_t)runs);
    double *peak = bench_mem(sizeof(double) * (size_t)runs);
    double *kept = bench_mem(sizeof(double) * (size_t)runs);
    double *kscav = bench_mem(sizeof(double) * (size_t)runs);
    bool ok = true;
    for (int r = 0; r < runs; r++) {
        char la[32];
        loadavg(la, sizeof la);
        uint64_t w0 = now_ns(), c0 = cpu_ns();
        result_t res = fn(r + 1, runs);
        uint64_t w1 = now_ns(), c1 = cpu_ns();
        /* CPU time over wall time of the whole run (warm-up included): about
         * 2 for W4a/W4b when the two threads really ran on two CPUs. */
        printf("cpu run=%d wall_s=%.3f cpu_s=%.3f util=%.2f loadavg_before=%s\n", r + 1, (double)(w1 - w0) / 1e9,
               (double)(c1 - c0) / 1e9, (double)(c1 - c0) / (double)(w1 - w0), la);
        fflush(stdout);
        ns[r] = res.ns;
        peak[r] = res.peak;
        kept[r] = res.kept;
        kscav[r] = res.kept_scav;
        ok &= res.ok;
    }

    const char *unit = fn == run_w1 ? "ns/pair" : fn == run_w4a ? "ns/pair(aggregate)" : "ns/object";
    stat3_t s = stats(ns, runs);
    printf("summary alloc=%s workload=%s runs=%d unit=%s median=%.3f min=%.3f max=%.3f", alloc_names[g_kind],
           workload, runs, unit, s.median, s.min, s.max);
    if (fn == run_w2) {
        stat3_t p = stats(peak, runs), k = stats(kept, runs);
        printf(" peak_rss_ratio_median=%.3f peak_rss_ratio_min=%.3f peak_rss_ratio_max=%.3f"
               " kept_pct_median=%.1f kept_pct_min=%.1f kept_pct_max=%.1f",
               p.median, p.min, p.max, k.median, k.min, k.max);
        if (g_kind == A_GOSHM) {
            stat3_t ks = stats(kscav, runs);
            printf(" kept_scav_pct_median=%.1f kept_scav_pct_min=%.1f kept_scav_pct_max=%.1f", ks.median,
                   ks.min, ks.max);
        }
    }
    printf(" check=%s\n", ok ? "ok" : "FAILED");
    if (g_kind == A_GOSHM && fn == run_w2)
        printf("# goshm W2: kept_pct is measured right after the frees; kept_scav_pct after "
               "gs_local_collect + gs_heap_scavenge(heap, 0), which is the daemon scavenger's job\n");
    fflush(stdout);

    if (g_heap && goshm_detach(g_heap) != 0) {
        fprintf(stderr, "bench-engine: goshm_detach: %s\n", strerror(errno));
        ok = false;
    }
    return ok ? 0 : 1;
}
