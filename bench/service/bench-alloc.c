/* SPDX-License-Identifier: MIT */
/* bench-alloc.c: W1, W2, W4a, W4b and the cache-line ping-pong, measured
 * through the installed libgoshm.so and a running goshmd, or through
 * whatever malloc the process has (glibc, or a peer under LD_PRELOAD).
 *
 *   bench-alloc --alloc=goshm|libc --workload=W1|W2|W4a|W4b|PP
 *               [--socket PATH] [--scale F] [--settle-ms MS]
 *
 * Workloads: BENCHMARKS.md of the project; see bench/README.md. Each loop is
 * written once as an always_inline function of a constant allocator kind
 * and instantiated per kind, so goshm_malloc and malloc are called directly
 * from identical code. Bookkeeping comes from mmap, never from the allocator
 * under test. Every timed section follows an untimed warm-up.
 *
 * Output: "# alloc=..." lines (which library provides malloc: the script
 * rejects a preload that did not take) and one "run key=value ..." line with
 * check=ok or check=FAIL. Exit status 0 when every check passed, 1 on a check
 * failure, 2 on a usage or setup error. Never part of the ctest suite.
 *
 * The cross-core workloads (W4a, W4b) first measure a cache-line ping-pong
 * between two threads pinned to CPUs 0 and 1 (pp_ns: one round trip) so that
 * a block run while another job held a CPU can be recognised.
 */
#define _GNU_SOURCE
#include <dlfcn.h>     /* dladdr */
#include <inttypes.h>  /* PRIu64 */
#include <pthread.h>   /* pthread_create */
#include <sched.h>     /* sched_setaffinity, sched_yield */
#include <stdatomic.h> /* atomics */
#include <stdbool.h>   /* bool */
#include <stdint.h>    /* uint*_t */
#include <stdio.h>     /* printf */
#include <stdlib.h>    /* malloc, strtod */
#include <string.h>    /* strcmp */
#include <sys/mman.h>  /* mmap */
#include <sys/resource.h> /* getrusage */
#include <time.h>      /* clock_gettime */
#include <unistd.h>    /* usleep */

#include <goshm/goshm.h>

enum kind { K_GOSHM, K_LIBC };

static goshm_t *G; /* the attached heap (goshm only) */

#define INLINE static inline __attribute__((always_inline))
#define NOINLINE static __attribute__((noinline))

INLINE void *a_malloc(enum kind k, size_t n) { return k == K_GOSHM ? goshm_malloc(G, n) : malloc(n); }
INLINE void a_free(enum kind k, void *p)
{
    if (k == K_GOSHM)
        goshm_free(G, p);
    else
        free(p);
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t cpu_ns(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return ((uint64_t)u.ru_utime.tv_sec + (uint64_t)u.ru_stime.tv_sec) * 1000000000u +
           ((uint64_t)u.ru_utime.tv_usec + (uint64_t)u.ru_stime.tv_usec) * 1000u;
}

static inline uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void *map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    return p;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static const uint32_t W1_SIZES[8] = {16, 32, 48, 64, 128, 256, 512, 1024};

/* ---- W1: malloc then free at once ------------------------------------------- */

/* Returns the checksum of the bytes read back; *ok false on a NULL. */
INLINE uint64_t w1_loop(enum kind k, uint64_t pairs, bool *ok)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < pairs; i++) {
        size_t n = W1_SIZES[i & 7];
        volatile unsigned char *p = a_malloc(k, n);
        if (!p) {
            *ok = false;
            return sum;
        }
        p[n - 1] = (unsigned char)i;
        sum += p[n - 1];
        a_free(k, (void *)p);
    }
    return sum;
}
NOINLINE uint64_t w1_goshm(uint64_t pairs, bool *ok) { return w1_loop(K_GOSHM, pairs, ok); }
NOINLINE uint64_t w1_libc(uint64_t pairs, bool *ok) { return w1_loop(K_LIBC, pairs, ok); }
static uint64_t w1(enum kind k, uint64_t pairs, bool *ok) { return k == K_GOSHM ? w1_goshm(pairs, ok) : w1_libc(pairs, ok); }

static uint64_t w1_expect(uint64_t pairs)
{
    uint64_t s = 0;
    for (uint64_t i = 0; i < pairs; i++) s += (unsigned char)i;
    return s;
}

/* ---- W2: 1M random sizes, freed in random order ---------------------------- */

/* RssAnon + RssShmem, bytes: goshm's heap is a memfd mapped shared. */
static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    uint64_t kb = 0, v;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "RssAnon: %" SCNu64, &v) == 1 || sscanf(line, "RssShmem: %" SCNu64, &v) == 1) kb += v;
    fclose(f);
    return kb * 1024u;
}

typedef struct w2_out {
    double ns;           /* per alloc+free, timed rounds */
    uint64_t requested;  /* bytes of one round */
    uint64_t peak;       /* RSS above baseline at the end of an allocation phase, max */
    uint64_t kept;       /* RSS above baseline right after the last free */
    uint64_t kept_settled; /* ... once it has stopped falling (the scavenger ran) */
    uint64_t settle_ms;
    uint64_t errors;
    bool ok;
} w2_out_t;

INLINE void w2_round(enum kind k, uint32_t nobj, const uint32_t *size, const uint32_t *order, void **ptr, uint64_t *alloc_ns,
                     uint64_t *free_ns, uint64_t *peak, uint64_t base, w2_out_t *o)
{
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < nobj; i++) {
        unsigned char *p = a_malloc(k, size[i]);
        if (!p) {
            o->ok = false;
            ptr[i] = NULL;
            continue;
        }
        p[0] = (unsigned char)i;
        ptr[i] = p;
    }
    uint64_t t1 = now_ns();
    uint64_t r = rss_bytes();
    if (r > base && r - base > *peak) *peak = r - base;
    uint64_t t2 = now_ns();
    for (uint32_t j = 0; j < nobj; j++) {
        uint32_t i = order[j];
        unsigned char *p = ptr[i];
        if (!p) continue;
        if (p[0] != (unsigned char)i) o->errors++;
        a_free(k, p);
    }
    uint64_t t3 = now_ns();
    *alloc_ns += t1 - t0;
    *free_ns += t3 - t2;
}
NOINLINE void w2_round_goshm(uint32_t n, const uint32_t *s, const uint32_t *ord, void **p, uint64_t *a, uint64_t *f,
                             uint64_t *pk, uint64_t b, w2_out_t *o)
{
    w2_round(K_GOSHM, n, s, ord, p, a, f, pk, b, o);
}
NOINLINE void w2_round_libc(uint32_t n, const uint32_t *s, const uint32_t *ord, void **p, uint64_t *a, uint64_t *f,
                            uint64_t *pk, uint64_t b, w2_out_t *o)
{
    w2_round(K_LIBC, n, s, ord, p, a, f, pk, b, o);
}

static void w2(enum kind k, double scale, unsigned settle_ms, w2_out_t *o)
{
    uint32_t nobj = (uint32_t)(1000000 * scale);
    if (nobj < 1000) nobj = 1000;
    uint32_t *size = map(nobj * sizeof *size), *order = map(nobj * sizeof *order);
    void **ptr = map(nobj * sizeof *ptr);
    uint64_t rng = 0x2545f4914f6cdd1dull;
    o->requested = 0;
    for (uint32_t i = 0; i < nobj; i++) {
        size[i] = 8 + (uint32_t)(xorshift64(&rng) % 2041u);
        o->requested += size[i];
        order[i] = i;
    }
    for (uint32_t i = nobj - 1; i > 0; i--) { /* Fisher-Yates */
        uint32_t j = (uint32_t)(xorshift64(&rng) % (i + 1u));
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    uint64_t base = rss_bytes();
    uint64_t a = 0, f = 0, peak = 0;
    o->ok = true;
    o->errors = 0;
    void (*round)(uint32_t, const uint32_t *, const uint32_t *, void **, uint64_t *, uint64_t *, uint64_t *, uint64_t,
                  w2_out_t *) = k == K_GOSHM ? w2_round_goshm : w2_round_libc;
    round(nobj, size, order, ptr, &a, &f, &peak, base, o); /* warm-up, untimed (its peak counts) */
    a = f = 0;
    const int rounds = 5;
    for (int r = 0; r < rounds; r++) round(nobj, size, order, ptr, &a, &f, &peak, base, o);
    uint64_t r0 = rss_bytes();
    o->ns = (double)(a + f) / ((double)nobj * rounds);
    o->peak = peak;
    o->kept = r0 > base ? r0 - base : 0;
    /* Wait for the RSS to stop falling: goshmd's housekeeping (every 100 ms)
     * sweeps spans and scavenges memory idle for --scavenge-delay (1 s by
     * default). Settled = no drop for 1.5 s, or settle_ms at most. The peers
     * get the same wait (their RSS seldom moves). */
    uint64_t t0 = now_ns(), last_drop = t0, cur = r0;
    while (settle_ms && now_ns() - t0 < (uint64_t)settle_ms * 1000000u && now_ns() - last_drop < 1500000000u) {
        usleep(100000);
        uint64_t r = rss_bytes();
        if (r + 65536 < cur) last_drop = now_ns();
        if (r < cur) cur = r;
    }
    o->settle_ms = (now_ns() - t0) / 1000000u;
    o->kept_settled = cur > base ? cur - base : 0;
}

/* ---- the cache-line ping-pong --------------------------------------------- */

static _Alignas(128) _Atomic uint64_t pp_line;
static uint64_t pp_rounds;

static int pin(int cpu)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) return -1;
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    return pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static void *pp_peer(void *arg)
{
    pin(1);
    for (uint64_t i = 0; i < pp_rounds; i++) {
        unsigned spins = 0;
        while (atomic_load_explicit(&pp_line, memory_order_acquire) != 2 * i + 1)
            if (++spins % 4096 == 0) sched_yield(); else cpu_relax();
        atomic_store_explicit(&pp_line, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

/* ns per round trip of one cache line between CPU 0 and CPU 1 (threads
 * pinned; unpinned on one CPU). The caller's affinity is restored. */
static double pingpong(uint64_t rounds)
{
    cpu_set_t saved;
    pthread_getaffinity_np(pthread_self(), sizeof saved, &saved);
    pp_rounds = rounds;
    atomic_store(&pp_line, 0);
    pthread_t t;
    if (pthread_create(&t, NULL, pp_peer, NULL)) return -1;
    pin(0);
    uint64_t t0 = 0;
    for (uint64_t i = 0; i < rounds; i++) {
        if (i == rounds / 10) t0 = now_ns(); /* the first tenth warms up */
        atomic_store_explicit(&pp_line, 2 * i + 1, memory_order_release);
        unsigned spins = 0;
        while (atomic_load_explicit(&pp_line, memory_order_acquire) != 2 * i + 2)
            if (++spins % 4096 == 0) sched_yield(); else cpu_relax();
    }
    uint64_t t1 = now_ns();
    pthread_join(t, NULL);
    pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
    return (double)(t1 - t0) / (double)(rounds - rounds / 10);
}

/* ---- W4a: two threads, each W1 -------------------------------------------- */

typedef struct w4a_arg {
    enum kind k;
    uint64_t pairs, sum;
    bool ok;
    pthread_barrier_t *bar;
} w4a_arg_t;

static void *w4a_thread(void *v)
{
    w4a_arg_t *a = v;
    a->ok = true;
    w1(a->k, a->pairs / 10, &a->ok); /* warm-up: this thread's cache */
    pthread_barrier_wait(a->bar);
    a->sum = w1(a->k, a->pairs, &a->ok);
    return NULL;
}

/* ---- W4b: thread A allocates, thread B frees ------------------------------- */

#define RING 256u
typedef struct w4b_ring {
    _Alignas(128) _Atomic uint64_t head; /* written by B */
    _Alignas(128) _Atomic uint64_t tail; /* written by A */
    _Alignas(128) void *slot[RING];
} w4b_ring_t;

typedef struct w4b_arg {
    enum kind k;
    w4b_ring_t *ring;
    uint64_t total, errors;
    bool ok;
} w4b_arg_t;

INLINE void w4b_produce(enum kind k, w4b_arg_t *a)
{
    w4b_ring_t *r = a->ring;
    uint64_t tail = 0;
    for (uint64_t i = 0; i < a->total; i++) {
        size_t n = W1_SIZES[i & 7];
        uint64_t *p = a_malloc(k, n);
        if (!p) {
            a->ok = false;
            p = NULL;
        } else {
            p[0] = i;
        }
        unsigned spins = 0;
        while (tail - atomic_load_explicit(&r->head, memory_order_acquire) >= RING)
            if (++spins % 256 == 0) sched_yield(); else cpu_relax();
        r->slot[tail % RING] = p;
        atomic_store_explicit(&r->tail, ++tail, memory_order_release);
    }
}
INLINE void w4b_consume(enum kind k, w4b_arg_t *a)
{
    w4b_ring_t *r = a->ring;
    uint64_t head = 0;
    while (head < a->total) {
        uint64_t tail;
        unsigned spins = 0;
        while ((tail = atomic_load_explicit(&r->tail, memory_order_acquire)) == head)
            if (++spins % 256 == 0) sched_yield(); else cpu_relax();
        for (; head < tail; head++) {
            uint64_t *p = r->slot[head % RING];
            if (!p) continue;
            if (p[0] != head) a->errors++;
            a_free(k, p);
        }
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
}
NOINLINE void w4b_produce_goshm(w4b_arg_t *a) { w4b_produce(K_GOSHM, a); }
NOINLINE void w4b_produce_libc(w4b_arg_t *a) { w4b_produce(K_LIBC, a); }
NOINLINE void w4b_consume_goshm(w4b_arg_t *a) { w4b_consume(K_GOSHM, a); }
NOINLINE void w4b_consume_libc(w4b_arg_t *a) { w4b_consume(K_LIBC, a); }

static void *w4b_consumer(void *v)
{
    w4b_arg_t *a = v;
    if (a->k == K_GOSHM)
        w4b_consume_goshm(a);
    else
        w4b_consume_libc(a);
    return NULL;
}

/* One pass of total objects; ns/object, errors added to *errors. */
static double w4b_pass(enum kind k, uint64_t total, uint64_t *errors, bool *ok)
{
    w4b_ring_t *ring = map(sizeof *ring);
    w4b_arg_t a = {.k = k, .ring = ring, .total = total, .ok = true};
    pthread_t t;
    uint64_t t0 = now_ns();
    if (pthread_create(&t, NULL, w4b_consumer, &a)) {
        *ok = false;
        return 0;
    }
    if (k == K_GOSHM)
        w4b_produce_goshm(&a);
    else
        w4b_produce_libc(&a);
    pthread_join(t, NULL);
    uint64_t t1 = now_ns();
    munmap(ring, sizeof *ring);
    *errors += a.errors;
    if (!a.ok) *ok = false;
    return (double)(t1 - t0) / (double)total;
}

/* ---- main -------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: bench-alloc --alloc=goshm|libc --workload=W1|W2|W4a|W4b|PP [--socket PATH] [--scale F] "
                    "[--settle-ms MS]\n");
    exit(2);
}

static const char *malloc_provider(void)
{
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (m && dladdr(m, &info) && info.dli_fname) return info.dli_fname;
    return "?";
}

int main(int argc, char **argv)
{
    const char *alloc = NULL, *wl = NULL, *sock = NULL;
    double scale = 1;
    unsigned settle_ms = 6000;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "--alloc=", 8)) alloc = argv[i] + 8;
        else if (!strncmp(argv[i], "--workload=", 11)) wl = argv[i] + 11;
        else if (!strcmp(argv[i], "--socket") && i + 1 < argc) sock = argv[++i];
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc) scale = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--settle-ms") && i + 1 < argc) settle_ms = (unsigned)strtoul(argv[++i], NULL, 10);
        else usage();
    }
    if (!alloc || !wl || scale <= 0) usage();
    enum kind k;
    if (!strcmp(alloc, "goshm")) k = K_GOSHM;
    else if (!strcmp(alloc, "libc")) k = K_LIBC;
    else usage();

    printf("# alloc=%s: malloc from %s\n", alloc, malloc_provider());
    if (k == K_GOSHM) {
        G = goshm_attach(sock);
        if (!G) {
            perror("goshm_attach");
            return 2;
        }
        printf("# goshm: libgoshm version %d\n", goshm_version());
    }
    bool ok = true;
    int rc = 0;
    if (!strcmp(wl, "W1")) {
        uint64_t pairs = (uint64_t)(20000000 * scale);
        w1(k, pairs / 10, &ok); /* warm-up */
        uint64_t t0 = now_ns();
        uint64_t sum = w1(k, pairs, &ok);
        uint64_t t1 = now_ns();
        bool good = ok && sum == w1_expect(pairs);
        printf("run workload=W1 alloc=%s pairs=%" PRIu64 " ns=%.2f checksum=%" PRIu64 " check=%s\n", alloc, pairs,
               (double)(t1 - t0) / (double)pairs, sum, good ? "ok" : "FAIL");
        rc = !good;
    } else if (!strcmp(wl, "W2")) {
        w2_out_t o;
        w2(k, scale, settle_ms, &o);
        bool good = o.ok && o.errors == 0;
        printf("run workload=W2 alloc=%s ns=%.1f requested_mib=%.1f peak_mib=%.1f peak_rss_ratio=%.3f kept_pct=%.1f "
               "kept_settled_pct=%.1f settle_ms=%" PRIu64 " errors=%" PRIu64 " check=%s\n",
               alloc, o.ns, o.requested / 1048576.0, o.peak / 1048576.0, (double)o.peak / (double)o.requested,
               o.peak ? 100.0 * (double)o.kept / (double)o.peak : 0, o.peak ? 100.0 * (double)o.kept_settled / (double)o.peak : 0,
               o.settle_ms, o.errors, good ? "ok" : "FAIL");
        rc = !good;
    } else if (!strcmp(wl, "W4a")) {
        double pp = pingpong(200000);
        uint64_t pairs = (uint64_t)(20000000 * scale);
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, 3);
        w4a_arg_t a[2] = {{.k = k, .pairs = pairs, .bar = &bar}, {.k = k, .pairs = pairs, .bar = &bar}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            if (pthread_create(&t[i], NULL, w4a_thread, &a[i])) return 2;
        pthread_barrier_wait(&bar);
        uint64_t c0 = cpu_ns(), t0 = now_ns();
        for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
        uint64_t t1 = now_ns(), c1 = cpu_ns();
        uint64_t e = w1_expect(pairs);
        bool good = a[0].ok && a[1].ok && a[0].sum == e && a[1].sum == e;
        printf("run workload=W4a alloc=%s pairs=%" PRIu64 " ns=%.2f util=%.2f pp_ns=%.1f check=%s\n", alloc, 2 * pairs,
               (double)(t1 - t0) / (double)(2 * pairs), (double)(c1 - c0) / (double)(t1 - t0), pp, good ? "ok" : "FAIL");
        rc = !good;
    } else if (!strcmp(wl, "W4b")) {
        double pp = pingpong(200000);
        uint64_t total = (uint64_t)(5000000 * scale), errors = 0;
        w4b_pass(k, total / 10, &errors, &ok); /* warm-up */
        uint64_t c0 = cpu_ns(), t0 = now_ns();
        double ns = w4b_pass(k, total, &errors, &ok);
        uint64_t t1 = now_ns(), c1 = cpu_ns();
        bool good = ok && errors == 0;
        printf("run workload=W4b alloc=%s objects=%" PRIu64 " ns=%.1f util=%.2f pp_ns=%.1f errors=%" PRIu64 " check=%s\n",
               alloc, total, ns, (double)(c1 - c0) / (double)(t1 - t0), pp, errors, good ? "ok" : "FAIL");
        rc = !good;
    } else if (!strcmp(wl, "PP")) {
        double pp = pingpong((uint64_t)(1000000 * scale));
        printf("run workload=PP pp_ns=%.1f check=%s\n", pp, pp > 0 ? "ok" : "FAIL");
        rc = !(pp > 0);
    } else {
        usage();
    }
    if (G && goshm_detach(G) != 0) {
        perror("goshm_detach");
        rc = 1;
    }
    return rc;
}
