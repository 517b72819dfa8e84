/* SPDX-License-Identifier: MIT */
/* bench-w3-iceoryx.c: W3 with iceoryx (C binding) publish/subscribe, the
 * peer of bench-ipc --workload=W3.
 *
 *   bench-w3-iceoryx [--messages N] [--warmup N] [--seed S] [--scale F]
 *
 * Needs iox-roudi running (bench/run-service.sh starts one). Two processes:
 * this one publishes, a copy of it (posix_spawn of /proc/self/exe
 * --consumer FD) subscribes. Per message the publisher loans a chunk of a
 * random size 64..4096 B (xorshift, the seed of bench-ipc), writes the
 * sequence number and size at the start and a tag (seq * phi ^ size) in the
 * last 8 bytes, and publishes it; the subscriber takes it, checks all three
 * and releases it. The subscriber queue is 256 chunks (the ring of bench-ipc)
 * and lossless: the publisher waits for a slow consumer
 * (ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER, QueueFullPolicy_BLOCK_PRODUCER).
 * The consumer sends the publisher, through a pipe, the time it released the
 * last message and its counts; timing runs from the first timed loan.
 * Output: a "run" line as bench-ipc's (ns=, checked=, errors=, check=).
 */
#define _GNU_SOURCE
#include <inttypes.h>  /* PRIu64 */
#include <sched.h>     /* sched_yield */
#include <spawn.h>     /* posix_spawn */
#include <stdbool.h>   /* bool */
#include <stdint.h>    /* uint*_t */
#include <stdio.h>     /* printf */
#include <stdlib.h>    /* strtoull */
#include <string.h>    /* strcmp */
#include <sys/wait.h>  /* waitpid */
#include <time.h>      /* clock_gettime */
#include <unistd.h>    /* pipe */

#include <iceoryx_binding_c/publisher.h>
#include <iceoryx_binding_c/runtime.h>
#include <iceoryx_binding_c/subscriber.h>

extern char **environ;

#define MIN_SIZE 64u
#define MAX_SIZE 4096u
#define TAG_MUL 0x9e3779b97f4a7c15ull
#define SERVICE "goshm-bench", "W3", "buffers"

typedef struct report {
    uint64_t end_ns, checked, errors;
} report_t;

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static inline void relax(unsigned *spins)
{
    if (++*spins % 256 == 0) sched_yield();
#if defined(__x86_64__) || defined(__i386__)
    else __builtin_ia32_pause();
#endif
}

static int consumer(int fd, uint64_t total)
{
    char name[64];
    snprintf(name, sizeof name, "goshm-w3-sub-%d", (int)getpid());
    iox_runtime_init(name);
    iox_sub_options_t o;
    iox_sub_options_init(&o);
    o.queueCapacity = 256;
    o.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
    iox_sub_storage_t storage;
    iox_sub_t sub = iox_sub_init(&storage, SERVICE, &o);
    report_t r = {0};
    for (uint64_t seq = 0; seq < total; seq++) {
        const void *chunk;
        unsigned spins = 0;
        while (iox_sub_take_chunk(sub, &chunk) != ChunkReceiveResult_SUCCESS) relax(&spins);
        const uint64_t *h = chunk;
        uint64_t size = h[1];
        bool good = h[0] == seq && size >= MIN_SIZE && size <= MAX_SIZE;
        if (good) {
            uint64_t tag;
            memcpy(&tag, (const char *)chunk + size - 8, 8);
            good = tag == ((seq * TAG_MUL) ^ size);
        }
        if (good) r.checked++;
        else r.errors++;
        iox_sub_release_chunk(sub, chunk);
    }
    r.end_ns = now_ns();
    if (write(fd, &r, sizeof r) != (ssize_t)sizeof r) return 1;
    iox_sub_deinit(sub);
    iox_runtime_shutdown();
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t messages = 2000000, warmup = 200000, seed = 42;
    double scale = 1;
    int cfd = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--messages") && i + 1 < argc) messages = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc) scale = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--consumer") && i + 1 < argc) cfd = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench-w3-iceoryx [--messages N] [--warmup N] [--seed S] [--scale F]\n");
            return 2;
        }
    }
    messages = (uint64_t)((double)messages * scale);
    warmup = (uint64_t)((double)warmup * scale);
    if (messages == 0) messages = 1;
    if (cfd >= 0) return consumer(cfd, messages + warmup);

    char name[64];
    snprintf(name, sizeof name, "goshm-w3-pub-%d", (int)getpid());
    iox_runtime_init(name);
    iox_pub_options_t po;
    iox_pub_options_init(&po);
    po.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
    iox_pub_storage_t storage;
    iox_pub_t pub = iox_pub_init(&storage, SERVICE, &po);

    int p[2];
    if (pipe(p)) return 2;
    char fdarg[16], total[32];
    snprintf(fdarg, sizeof fdarg, "%d", p[1]);
    snprintf(total, sizeof total, "%" PRIu64, messages + warmup);
    char *cargv[] = {argv[0], "--messages", total, "--warmup", "0", "--consumer", fdarg, NULL};
    pid_t pid;
    if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, cargv, environ)) {
        perror("posix_spawn");
        return 2;
    }
    close(p[1]);
    uint64_t t_wait = now_ns();
    while (!iox_pub_has_subscribers(pub)) {
        if (now_ns() - t_wait > 10000000000ull) {
            fprintf(stderr, "bench-w3-iceoryx: no subscriber after 10 s\n");
            return 2;
        }
        usleep(1000);
    }
    uint64_t rng = seed, t0 = now_ns(), loan_fail = 0;
    for (uint64_t seq = 0; seq < messages + warmup; seq++) {
        if (seq == warmup) t0 = now_ns();
        uint32_t size = MIN_SIZE + (uint32_t)(xorshift64(&rng) % (MAX_SIZE - MIN_SIZE + 1u));
        void *chunk;
        unsigned spins = 0;
        while (iox_pub_loan_chunk(pub, &chunk, size) != AllocationResult_SUCCESS) {
            loan_fail++;
            relax(&spins);
        }
        uint64_t *h = chunk;
        h[0] = seq;
        h[1] = size;
        uint64_t tag = (seq * TAG_MUL) ^ size;
        memcpy((char *)chunk + size - 8, &tag, 8);
        iox_pub_publish_chunk(pub, chunk);
    }
    report_t r = {0};
    ssize_t got = read(p[0], &r, sizeof r);
    int status = 0;
    waitpid(pid, &status, 0);
    bool good = got == (ssize_t)sizeof r && WIFEXITED(status) && WEXITSTATUS(status) == 0 && r.errors == 0 &&
                r.checked == messages + warmup;
    double ns = good ? (double)(r.end_ns - t0) / (double)messages : 0;
    printf("run workload=W3 alloc=iceoryx messages=%" PRIu64 " warmup=%" PRIu64 " ns=%.1f msgs_per_s=%.0f checked=%" PRIu64
           " errors=%" PRIu64 " loan_retries=%" PRIu64 " check=%s\n",
           messages, warmup, ns, ns > 0 ? 1e9 / ns : 0, r.checked, r.errors, loan_fail, good ? "ok" : "FAIL");
    iox_pub_deinit(pub);
    iox_runtime_shutdown();
    return good ? 0 : 1;
}
