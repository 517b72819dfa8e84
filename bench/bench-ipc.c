/* SPDX-License-Identifier: MIT */
/* bench-ipc.c: cross-process benchmarks of goshm over goshmd.
 *
 *   bench-ipc --workload=W3 [--socket PATH] [--scale F] [--messages N]
 *             [--warmup N] [--batch K] [--ring N] [--seed S] [--runs N]
 *   bench-ipc --workload=R  [--socket PATH] [--scale F] [--samples N]
 *             [--kind=small|large|both] [--gap-us US] [--runs N]
 *
 * Workloads: BENCHMARKS.md of the project (W3, R), see bench/README.md.
 *
 * W3: two processes. The producer allocates a buffer of random size
 * 64..4096 B (xorshift, fixed seed), writes a header (sequence number, size)
 * and a trailer (a tag derived from both) into it, and passes its goshm_off_t
 * to the consumer through a single-producer/single-consumer ring of offsets.
 * The ring is itself allocated from the goshm heap; its offset reaches the
 * consumer through argv. The consumer is this binary again (posix_spawn of
 * /proc/self/exe --consumer), with a goshm_attach of its own: it checks every
 * header and trailer, counts the good ones and frees the buffer. --batch K
 * publishes the ring's tail (producer) and head (consumer) every K messages
 * instead of every message: the index cache lines then cross between the
 * cores once per K messages. The first --warmup messages are not timed
 * (first touch of fresh memory costs microseconds a page here); timing runs
 * from the first timed allocation until the consumer has published the last
 * message's head.
 *
 * R: the span refill round trip with the daemon, timed around goshm_malloc
 * calls that cannot be served by the thread's cache:
 *   small  32 KiB objects (size class 66: one slot per 4-page span), allocated
 *          in rounds of 16 that stay live until the round ends: every
 *          allocation but a round's first finds its cached span full, hands
 *          it back and asks for another (REFILL). The first of a round
 *          reuses the previous round's freed slot locally and is not sampled.
 *   large  40 KiB objects: every allocation is a LARGE_ALLOC round trip; each
 *          is freed at once (which sends the daemon a notice).
 * --gap-us sleeps before each sample, to measure a daemon that has gone to
 * sleep (its spin time is 50 us by default) instead of a busy one.
 *
 * Output: one "run" line per run, and with --runs > 1 a "summary" line, as
 * key=value fields that bench/run-service.sh parses. Exit status 0 when every
 * check passed, 1 on a check failure, 2 on a usage or setup error.
 * Never part of the ctest suite.
 */
#define _GNU_SOURCE
#include <errno.h>     /* errno */
#include <inttypes.h>  /* PRIu64 */
#include <sched.h>     /* sched_yield */
#include <signal.h>    /* kill */
#include <spawn.h>     /* posix_spawn */
#include <stdatomic.h> /* atomics */
#include <stdbool.h>   /* bool */
#include <stdint.h>    /* uint*_t */
#include <stdio.h>     /* printf */
#include <stdlib.h>    /* malloc, strtod */
#include <string.h>    /* strcmp, memcpy */
#include <sys/wait.h>  /* waitpid */
#include <time.h>      /* clock_gettime */
#include <unistd.h>    /* usleep */

#include "goshm/goshm.h"

extern char **environ;

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

#define RING_MAGIC UINT64_C(0x676f73686d495043) /* "goshmIPC" */
#define TAG_MUL UINT64_C(0x9e3779b97f4a7c15)
#define MIN_SIZE 64u
#define MAX_SIZE 4096u
/* Spin this many times on an index before yielding the core: W3 runs three
 * busy threads (producer, consumer, daemon) on two cores. */
#define SPINS_BEFORE_YIELD 256u

/* The SPSC ring of offsets, in the goshm heap. Each index on its own cache
 * line; the consumer's status words on a third, written only at start and
 * end. */
typedef struct ipc_ring {
    _Alignas(64) _Atomic uint64_t tail; /* producer: messages published */
    _Alignas(64) _Atomic uint64_t head; /* consumer: messages consumed */
    _Alignas(64) _Atomic uint32_t state; /* consumer: 1 attached, 2 done, 3 failed */
    _Atomic uint64_t checked;            /* consumer: messages that passed */
    _Atomic uint64_t errors;             /* consumer: messages that did not */
    _Alignas(64) uint64_t magic;         /* written by the producer before spawning */
    uint64_t total;
    uint32_t nslots, batch;
    _Alignas(64) goshm_off_t slot[];
} ipc_ring_t;

enum { ST_NONE = 0, ST_READY = 1, ST_DONE = 2, ST_FAILED = 3 };

static uint64_t now_ns(void)
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

static inline uint32_t msg_size(uint64_t *rng) { return MIN_SIZE + (uint32_t)(xorshift64(rng) % (MAX_SIZE - MIN_SIZE + 1u)); }
static inline uint64_t msg_tag(uint64_t seq, uint32_t size) { return (seq * TAG_MUL) ^ size; }

static inline void spin_wait(unsigned *spins)
{
    if (++*spins % SPINS_BEFORE_YIELD == 0) sched_yield();
    else cpu_relax();
}

static void die(const char *what)
{
    fprintf(stderr, "bench-ipc: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* ---- options ---------------------------------------------------------------- */

typedef struct opts {
    const char *workload, *socket, *kind;
    double scale;
    uint64_t messages, warmup, samples, seed, ring_off;
    uint32_t batch, ring, runs, gap_us;
    bool consumer;
} opts_t;

static void usage(void)
{
    fprintf(stderr,
            "usage: bench-ipc --workload=W3|R [--socket PATH] [--scale F] [--runs N]\n"
            "       W3: [--messages N (2000000)] [--warmup N (messages/10)] [--batch K (1)]\n"
            "           [--ring SLOTS (256, a power of two)] [--seed S (42)]\n"
            "       R:  [--samples N (20000)] [--kind=small|large|both (both)] [--gap-us US (0)]\n");
    exit(2);
}

static const char *optval(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] == '\0') {
        if (*i + 1 >= argc) usage();
        return argv[++*i];
    }
    return NULL;
}

static uint64_t parse_u64(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end || end == s) usage();
    return (uint64_t)v;
}

static void parse(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.workload = NULL, .kind = "both", .scale = 1.0, .batch = 1, .ring = 256, .runs = 1, .seed = 42};
    bool have_msgs = false, have_warm = false, have_samples = false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--consumer") == 0) o->consumer = true;
        else if ((v = optval(argc, argv, &i, "--workload"))) o->workload = v;
        else if ((v = optval(argc, argv, &i, "--socket"))) o->socket = v;
        else if ((v = optval(argc, argv, &i, "--kind"))) o->kind = v;
        else if ((v = optval(argc, argv, &i, "--scale"))) {
            char *end;
            o->scale = strtod(v, &end);
            if (*end || !(o->scale > 0)) usage();
        } else if ((v = optval(argc, argv, &i, "--messages"))) o->messages = parse_u64(v), have_msgs = true;
        else if ((v = optval(argc, argv, &i, "--warmup"))) o->warmup = parse_u64(v), have_warm = true;
        else if ((v = optval(argc, argv, &i, "--samples"))) o->samples = parse_u64(v), have_samples = true;
        else if ((v = optval(argc, argv, &i, "--seed"))) o->seed = parse_u64(v);
        else if ((v = optval(argc, argv, &i, "--ring-off"))) o->ring_off = parse_u64(v);
        else if ((v = optval(argc, argv, &i, "--batch"))) o->batch = (uint32_t)parse_u64(v);
        else if ((v = optval(argc, argv, &i, "--ring"))) o->ring = (uint32_t)parse_u64(v);
        else if ((v = optval(argc, argv, &i, "--runs"))) o->runs = (uint32_t)parse_u64(v);
        else if ((v = optval(argc, argv, &i, "--gap-us"))) o->gap_us = (uint32_t)parse_u64(v);
        else usage();
    }
    if (!have_msgs) o->messages = (uint64_t)(2000000.0 * o->scale);
    if (!have_warm) o->warmup = o->messages / 10u;
    if (!have_samples) o->samples = (uint64_t)(20000.0 * o->scale);
    if (o->messages < 1 || o->samples < 1) o->messages = o->samples = 1;
    if (o->batch < 1 || o->ring < 2 || (o->ring & (o->ring - 1u)) || o->runs < 1) usage();
    if (!o->consumer && (!o->workload || (strcmp(o->workload, "W3") && strcmp(o->workload, "R")))) usage();
    if (strcmp(o->kind, "small") && strcmp(o->kind, "large") && strcmp(o->kind, "both")) usage();
}

static goshm_t *attach(const char *socket)
{
    goshm_t *h = goshm_attach(socket);
    if (!h) {
        fprintf(stderr, "bench-ipc: goshm_attach(%s): %s\n", socket ? socket : "default", strerror(errno));
        exit(2);
    }
    return h;
}

/* ---- W3: consumer ----------------------------------------------------------- */

static int consumer_main(const opts_t *o)
{
    goshm_t *h = attach(o->socket);
    ipc_ring_t *r = goshm_ptr(h, o->ring_off);
    if (!r || r->magic != RING_MAGIC) {
        fprintf(stderr, "bench-ipc consumer: no ring at offset %" PRIu64 "\n", o->ring_off);
        if (r) atomic_store_explicit(&r->state, ST_FAILED, memory_order_release);
        return 2;
    }
    const uint64_t total = r->total, mask = r->nslots - 1u, batch = r->batch;
    atomic_store_explicit(&r->state, ST_READY, memory_order_release);

    uint64_t head = 0, tail_cache = 0, pub = 0, checked = 0, errors = 0;
    while (head < total) {
        if (head == tail_cache) {
            if (pub != head) atomic_store_explicit(&r->head, pub = head, memory_order_release);
            unsigned spins = 0;
            while ((tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire)) == head) spin_wait(&spins);
        }
        /* Everything below tail_cache is ours to read. */
        goshm_off_t off = r->slot[head & mask];
        char *p = goshm_ptr(h, off);
        if (UNLIKELY(!p)) {
            errors++;
        } else {
            uint64_t seq, tag;
            uint32_t size;
            memcpy(&seq, p, 8);
            memcpy(&size, p + 8, 4);
            bool ok = seq == head && size >= MIN_SIZE && size <= MAX_SIZE;
            if (ok) {
                memcpy(&tag, p + size - 8, 8);
                ok = tag == msg_tag(seq, size);
            }
            if (ok) checked++;
            else errors++;
            goshm_free(h, p);
        }
        head++;
        if (head - pub >= batch) atomic_store_explicit(&r->head, pub = head, memory_order_release);
    }
    atomic_store_explicit(&r->checked, checked, memory_order_relaxed);
    atomic_store_explicit(&r->errors, errors, memory_order_relaxed);
    atomic_store_explicit(&r->state, ST_DONE, memory_order_release);
    atomic_store_explicit(&r->head, head, memory_order_release);
    goshm_detach(h);
    return errors ? 1 : 0;
}

/* ---- W3: producer ----------------------------------------------------------- */

typedef struct w3_result {
    double ns_per_msg;
    uint64_t checked, errors;
    bool ok;
} w3_result_t;

static pid_t spawn_consumer(const opts_t *o, uint64_t ring_off)
{
    char offbuf[32];
    snprintf(offbuf, sizeof offbuf, "%" PRIu64, ring_off);
    char *argv[8];
    int n = 0;
    argv[n++] = "bench-ipc";
    argv[n++] = "--consumer";
    argv[n++] = "--ring-off";
    argv[n++] = offbuf;
    if (o->socket) {
        argv[n++] = "--socket";
        argv[n++] = (char *)o->socket;
    }
    argv[n] = NULL;
    /* This binary by its real path, so that the consumer's name is ours. */
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) snprintf(self, sizeof self, "/proc/self/exe");
    else self[len] = '\0';
    pid_t pid;
    int rc = posix_spawn(&pid, self, NULL, NULL, argv, environ);
    if (rc) {
        errno = rc;
        die("posix_spawn consumer");
    }
    return pid;
}

/* Wait for the consumer's state to leave `from`; false if it died first. */
static bool wait_state(ipc_ring_t *r, uint32_t from, pid_t pid, int *status)
{
    unsigned spins = 0;
    while (atomic_load_explicit(&r->state, memory_order_acquire) == from) {
        if (spins++ % 1024u == 0) {
            pid_t w = waitpid(pid, status, WNOHANG);
            if (w == pid) return atomic_load_explicit(&r->state, memory_order_acquire) != from;
        }
        usleep(100);
    }
    return true;
}

/* Exit if the consumer has died (the ring would never move again). */
static void check_alive(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
        fprintf(stderr, "bench-ipc: the consumer died (status 0x%x)\n", (unsigned)status);
        exit(1);
    }
}

static w3_result_t w3_run(goshm_t *h, const opts_t *o)
{
    w3_result_t res = {0};
    const uint64_t total = o->warmup + o->messages, mask = o->ring - 1u;
    ipc_ring_t *r = goshm_malloc(h, sizeof *r + (size_t)o->ring * sizeof(goshm_off_t));
    if (!r) die("goshm_malloc(ring)");
    memset(r, 0, sizeof *r + (size_t)o->ring * sizeof(goshm_off_t));
    r->total = total;
    r->nslots = o->ring;
    r->batch = o->batch;
    r->magic = RING_MAGIC;
    atomic_thread_fence(memory_order_seq_cst);

    int status = 0;
    pid_t pid = spawn_consumer(o, goshm_off(h, r));
    if (!wait_state(r, ST_NONE, pid, &status) || atomic_load(&r->state) != ST_READY) {
        fprintf(stderr, "bench-ipc: the consumer did not start\n");
        exit(2);
    }

    uint64_t rng = o->seed ? o->seed : 42;
    uint64_t tail = 0, head_cache = 0, pub = 0, t0 = 0;
    for (uint64_t seq = 0; seq < total; seq++) {
        if (seq == o->warmup) {
            /* Drain the warm-up messages, then start the clock. */
            if (pub != tail) atomic_store_explicit(&r->tail, pub = tail, memory_order_release);
            unsigned spins = 0;
            while ((head_cache = atomic_load_explicit(&r->head, memory_order_acquire)) != tail) {
                spin_wait(&spins);
                if (spins % 65536u == 0) check_alive(pid);
            }
            t0 = now_ns();
        }
        uint32_t size = msg_size(&rng);
        char *p = goshm_malloc(h, size);
        if (UNLIKELY(!p)) die("goshm_malloc(message)");
        uint64_t tag = msg_tag(seq, size);
        memcpy(p, &seq, 8);
        memcpy(p + 8, &size, 4);
        memcpy(p + size - 8, &tag, 8);
        if (UNLIKELY(tail - head_cache >= o->ring)) {
            if (pub != tail) atomic_store_explicit(&r->tail, pub = tail, memory_order_release);
            unsigned spins = 0;
            while (tail - (head_cache = atomic_load_explicit(&r->head, memory_order_acquire)) >= o->ring) {
                spin_wait(&spins);
                if (spins % 65536u == 0) check_alive(pid);
            }
        }
        r->slot[tail & mask] = goshm_off(h, p);
        tail++;
        if (tail - pub >= o->batch) atomic_store_explicit(&r->tail, pub = tail, memory_order_release);
    }
    if (pub != tail) atomic_store_explicit(&r->tail, pub = tail, memory_order_release);
    unsigned spins = 0;
    while (atomic_load_explicit(&r->head, memory_order_acquire) != total) {
        spin_wait(&spins);
        if (spins % 65536u == 0) check_alive(pid);
    }
    uint64_t t1 = now_ns();
    if (!wait_state(r, ST_READY, pid, &status)) {
        fprintf(stderr, "bench-ipc: the consumer died before reporting\n");
        exit(1);
    }
    res.checked = atomic_load(&r->checked);
    res.errors = atomic_load(&r->errors);
    if (waitpid(pid, &status, 0) != pid) die("waitpid");
    res.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && res.errors == 0 && res.checked == total;
    res.ns_per_msg = (double)(t1 - t0) / (double)o->messages;
    goshm_free(h, r);
    return res;
}

/* ---- R: refill round trip --------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *s, uint64_t n, double q)
{
    uint64_t i = (uint64_t)(q * (double)(n - 1) + 0.5);
    return s[i < n ? i : n - 1];
}

#define SMALL_SIZE 32768u          /* class 66: nelems 1 */
#define LARGE_SIZE (40u * 1024u)   /* 5 heap pages */
#define ROUND 16u

/* Fill out[0..n) with timed allocations of the given kind. */
static void r_collect(goshm_t *h, bool large, uint64_t *out, uint64_t n, uint32_t gap_us)
{
    void *live[ROUND];
    uint64_t k = 0;
    while (k < n) {
        if (large) {
            if (gap_us) usleep(gap_us);
            uint64_t t0 = now_ns();
            void *p = goshm_malloc(h, LARGE_SIZE);
            uint64_t t1 = now_ns();
            if (!p) die("goshm_malloc(large)");
            *(volatile char *)p = 1;
            goshm_free(h, p);
            out[k++] = t1 - t0;
            continue;
        }
        /* A round's first allocation reuses the previous round's slot. */
        live[0] = goshm_malloc(h, SMALL_SIZE);
        if (!live[0]) die("goshm_malloc(small)");
        for (uint32_t i = 1; i < ROUND; i++) {
            if (gap_us) usleep(gap_us);
            uint64_t t0 = now_ns();
            live[i] = goshm_malloc(h, SMALL_SIZE);
            uint64_t t1 = now_ns();
            if (!live[i]) die("goshm_malloc(small)");
            if (k < n) out[k++] = t1 - t0;
        }
        for (uint32_t i = 0; i < ROUND; i++) {
            *(volatile char *)live[i] = 1;
            goshm_free(h, live[i]);
        }
    }
}

typedef struct r_result {
    uint64_t p50, p90, p99, p999, max;
    double mean;
} r_result_t;

static r_result_t r_run(goshm_t *h, const opts_t *o, bool large, uint64_t *buf)
{
    uint64_t warm = o->samples / 10u < 2000u ? 2000u : o->samples / 10u;
    if (o->gap_us) warm = 200; /* a sleeping daemon needs no long warm-up */
    r_collect(h, large, buf, warm < o->samples ? warm : o->samples, 0);
    r_collect(h, large, buf, o->samples, o->gap_us);
    double sum = 0;
    for (uint64_t i = 0; i < o->samples; i++) sum += (double)buf[i];
    qsort(buf, o->samples, sizeof *buf, cmp_u64);
    return (r_result_t){
        .p50 = pct(buf, o->samples, 0.50),
        .p90 = pct(buf, o->samples, 0.90),
        .p99 = pct(buf, o->samples, 0.99),
        .p999 = pct(buf, o->samples, 0.999),
        .max = buf[o->samples - 1],
        .mean = sum / (double)o->samples,
    };
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    opts_t o;
    parse(argc, argv, &o);
    if (o.consumer) return consumer_main(&o);
    setvbuf(stdout, NULL, _IOLBF, 0);

    goshm_t *h = attach(o.socket);
    int rc = 0;
    if (strcmp(o.workload, "W3") == 0) {
        double *ns = calloc(o.runs, sizeof *ns);
        if (!ns) die("calloc");
        for (uint32_t run = 0; run < o.runs; run++) {
            w3_result_t res = w3_run(h, &o);
            ns[run] = res.ns_per_msg;
            printf("run workload=W3 alloc=goshm run=%u batch=%u ring=%u messages=%" PRIu64 " warmup=%" PRIu64
                   " ns_per_msg=%.1f msgs_per_s=%.0f checked=%" PRIu64 " errors=%" PRIu64 " ok=%d\n",
                   run, o.batch, o.ring, o.messages, o.warmup, res.ns_per_msg, 1e9 / res.ns_per_msg, res.checked,
                   res.errors, res.ok);
            if (!res.ok) rc = 1;
        }
        if (o.runs > 1) {
            qsort(ns, o.runs, sizeof *ns, cmp_double);
            printf("summary workload=W3 alloc=goshm batch=%u runs=%u median_ns_per_msg=%.1f min=%.1f max=%.1f\n",
                   o.batch, o.runs, ns[o.runs / 2], ns[0], ns[o.runs - 1]);
        }
        free(ns);
    } else {
        uint64_t *buf = malloc(o.samples * sizeof *buf);
        if (!buf) die("malloc");
        for (int kind = 0; kind < 2; kind++) {
            bool large = kind == 1;
            if (strcmp(o.kind, "both") != 0 && strcmp(o.kind, large ? "large" : "small") != 0) continue;
            for (uint32_t run = 0; run < o.runs; run++) {
                r_result_t res = r_run(h, &o, large, buf);
                printf("run workload=R alloc=goshm run=%u kind=%s size=%u gap_us=%u samples=%" PRIu64
                       " p50_ns=%" PRIu64 " p90_ns=%" PRIu64 " p99_ns=%" PRIu64 " p999_ns=%" PRIu64
                       " max_ns=%" PRIu64 " mean_ns=%.0f\n",
                       run, large ? "large" : "small", large ? LARGE_SIZE : SMALL_SIZE, o.gap_us, o.samples,
                       res.p50, res.p90, res.p99, res.p999, res.max, res.mean);
            }
        }
        free(buf);
    }
    if (goshm_detach(h) != 0) {
        fprintf(stderr, "bench-ipc: goshm_detach: %s\n", strerror(errno));
        rc = rc ? rc : 1;
    }
    return rc;
}
