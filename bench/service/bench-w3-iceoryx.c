/* SPDX-License-Identifier: MIT */
/* bench-w3-iceoryx.c: W3, W5 and W6 with iceoryx (C binding)
 * publish/subscribe, the peer of bench-ipc --workload=W3 and of bench-chan.
 * Overview: shm/overview.h; workloads: bench/README.md.
 *
 *   bench-w3-iceoryx [--workload=W3|W5|W6] [--subscribers N] [--messages N]
 *                    [--warmup N] [--seed S] [--scale F] [--spin-us US]
 *
 * Needs iox-roudi running (bench/run-service.sh starts one). This process
 * publishes; N copies of it (posix_spawn of /proc/self/exe --consumer FD
 * --index I) subscribe to the service ("goshm-bench", WORKLOAD, "buffers-PID"
 * with the publisher's pid, found by getppid()). Per message the publisher
 * loans one chunk of a random size 64..4096 B (bench-msg.h: the seed and
 * sequence of bench-ipc), stamps it (sequence number, size, tail tag) and
 * publishes it once: iceoryx delivers the same chunk to every subscriber's
 * queue and returns it to its pool when the last one releases it. Each
 * subscriber takes it, checks the stamp and releases it. Subscriber queues
 * hold 256 chunks (the ring of bench-ipc) and are lossless: the publisher
 * waits for a slow consumer (ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER,
 * QueueFullPolicy_BLOCK_PRODUCER), in iceoryx's own wait.
 *
 * Waiting for data (bench-msg.h, --spin-us): -1 (W3's and W5's default)
 * polls iox_sub_take_chunk for ever (PAUSE, sched_yield every 256 polls);
 * US >= 0 polls for US microseconds, then sleeps in iox_ws_wait on a waitset
 * with the subscriber's HAS_DATA state (W6: five processes on two CPUs).
 *
 * W3 and W5 (defaults): 1 subscriber, 2M messages after 200k warm-up. W6:
 * 4 subscribers, 1M messages after 100k warm-up. --scale shrinks both counts.
 * Each subscriber writes, through a pipe, the time it released its last
 * message and its counts; timing runs from the first timed loan to the last
 * subscriber's last release. ns = ns per published message; msgs_per_s its
 * inverse; deliveries_per_s = subscribers * msgs_per_s.
 * Output: one "run" line as bench-ipc's (ns=, checked=, errors=, check=);
 * checked counts deliveries: subscribers * (messages + warmup).
 */
#define _GNU_SOURCE
#include <inttypes.h>  /* PRIu64 */
#include <spawn.h>     /* posix_spawn */
#include <stdbool.h>   /* bool */
#include <stdint.h>    /* uint*_t */
#include <stdio.h>     /* printf */
#include <stdlib.h>    /* strtoull */
#include <string.h>    /* strcmp */
#include <sys/wait.h>  /* waitpid */
#include <unistd.h>    /* pipe */

#include <iceoryx_binding_c/publisher.h>
#include <iceoryx_binding_c/runtime.h>
#include <iceoryx_binding_c/subscriber.h>
#include <iceoryx_binding_c/wait_set.h>

#include "bench-msg.h"

extern char **environ;

#define MAX_SUBS 16

static void service_name(char *buf, size_t n, pid_t publisher)
{
    snprintf(buf, n, "buffers-%d", (int)publisher);
}

static int consumer(const char *workload, int fd, int ready_fd, unsigned index, uint64_t total, int64_t spin_us)
{
    char name[64], inst[32];
    snprintf(name, sizeof name, "goshm-%s-sub-%d", workload, (int)getpid());
    service_name(inst, sizeof inst, getppid());
    iox_runtime_init(name);
    iox_sub_options_t o;
    iox_sub_options_init(&o);
    o.queueCapacity = 256;
    o.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
    iox_sub_storage_t storage;
    iox_sub_t sub = iox_sub_init(&storage, "goshm-bench", workload, inst, &o);
    iox_ws_storage_t ws_storage;
    iox_ws_t ws = iox_ws_init(&ws_storage);
    if (iox_ws_attach_subscriber_state(ws, sub, SubscriberState_HAS_DATA, 0, NULL) != WaitSetResult_SUCCESS) return 2;
    uint64_t t_wait = bmsg_now_ns();
    while (iox_sub_get_subscription_state(sub) != SubscribeState_SUBSCRIBED) {
        if (bmsg_now_ns() - t_wait > 10000000000ull) {
            fprintf(stderr, "bench-w3-iceoryx: subscriber %u not subscribed after 10 s\n", index);
            return 2;
        }
        usleep(1000);
    }
    char one = 1;
    if (write(ready_fd, &one, 1) != 1) return 2;
    bmsg_report_t r = {0, 0, 0, index};
    for (uint64_t seq = 0; seq < total; seq++) {
        const void *chunk;
        bmsg_spin_t s;
        bmsg_spin_init(&s, spin_us);
        while (iox_sub_take_chunk(sub, &chunk) != ChunkReceiveResult_SUCCESS) {
            if (!bmsg_spin_more(&s)) {
                iox_notification_info_t ev[1];
                uint64_t missed;
                iox_ws_wait(ws, ev, 1, &missed);
            }
        }
        if (bmsg_check(chunk, seq)) r.checked++;
        else r.errors++;
        iox_sub_release_chunk(sub, chunk);
    }
    r.end_ns = bmsg_now_ns();
    if (write(fd, &r, sizeof r) != (ssize_t)sizeof r) return 1;
    iox_ws_detach_subscriber_state(ws, sub, SubscriberState_HAS_DATA);
    iox_ws_deinit(ws);
    iox_sub_deinit(sub);
    iox_runtime_shutdown();
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench-w3-iceoryx [--workload=W3|W5|W6] [--subscribers N] [--messages N] [--warmup N] "
                    "[--seed S] [--scale F] [--spin-us US]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *workload = "W3";
    uint64_t messages = 0, warmup = 0, seed = 42;
    bool have_messages = false, have_warmup = false;
    unsigned subs = 0, index = 0;
    double scale = 1;
    int64_t spin_us = -1;
    int cfd = -1, rfd = -1;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "--workload=", 11)) workload = argv[i] + 11;
        else if (!strcmp(argv[i], "--messages") && i + 1 < argc) messages = strtoull(argv[++i], NULL, 10), have_messages = true;
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = strtoull(argv[++i], NULL, 10), have_warmup = true;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc) scale = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--subscribers") && i + 1 < argc) subs = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--spin-us") && i + 1 < argc) spin_us = strtoll(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--consumer") && i + 1 < argc) cfd = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ready") && i + 1 < argc) rfd = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--index") && i + 1 < argc) index = (unsigned)strtoul(argv[++i], NULL, 10);
        else usage();
    }
    bool w6 = !strcmp(workload, "W6");
    if (!w6 && strcmp(workload, "W3") && strcmp(workload, "W5")) usage();
    if (cfd >= 0) return consumer(workload, cfd, rfd, index, messages, spin_us);
    if (!subs) subs = w6 ? 4 : 1;
    if (subs > MAX_SUBS || scale <= 0) usage();
    if (!have_messages) messages = w6 ? 1000000 : 2000000;
    if (!have_warmup) warmup = w6 ? 100000 : 200000;
    messages = (uint64_t)((double)messages * scale);
    warmup = (uint64_t)((double)warmup * scale);
    if (messages == 0) messages = 1;

    char name[64], inst[32];
    snprintf(name, sizeof name, "goshm-%s-pub-%d", workload, (int)getpid());
    service_name(inst, sizeof inst, getpid());
    iox_runtime_init(name);
    iox_pub_options_t po;
    iox_pub_options_init(&po);
    po.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
    iox_pub_storage_t storage;
    iox_pub_t pub = iox_pub_init(&storage, "goshm-bench", workload, inst, &po);

    int p[2], rp[2];
    if (pipe(p) || pipe(rp)) return 2;
    char fdarg[16], rfdarg[16], total[32], spin[32], wl[32];
    snprintf(fdarg, sizeof fdarg, "%d", p[1]);
    snprintf(rfdarg, sizeof rfdarg, "%d", rp[1]);
    snprintf(total, sizeof total, "%" PRIu64, messages + warmup);
    snprintf(spin, sizeof spin, "%" PRId64, spin_us);
    snprintf(wl, sizeof wl, "--workload=%s", workload);
    pid_t pid[MAX_SUBS];
    for (unsigned i = 0; i < subs; i++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%u", i);
        char *cargv[] = {argv[0], wl, "--messages", total, "--spin-us", spin, "--consumer", fdarg, "--ready", rfdarg,
                         "--index", idx, NULL};
        if (posix_spawn(&pid[i], "/proc/self/exe", NULL, NULL, cargv, environ)) {
            perror("posix_spawn");
            return 2;
        }
    }
    close(p[1]);
    close(rp[1]);
    for (unsigned i = 0; i < subs; i++) {
        char c;
        if (read(rp[0], &c, 1) != 1) {
            fprintf(stderr, "bench-w3-iceoryx: a subscriber exited before subscribing\n");
            return 2;
        }
    }
    uint64_t rng = seed, t0 = bmsg_now_ns(), loan_fail = 0;
    for (uint64_t seq = 0; seq < messages + warmup; seq++) {
        if (seq == warmup) t0 = bmsg_now_ns();
        uint32_t size = bmsg_size(&rng);
        void *chunk;
        bmsg_spin_t s;
        bmsg_spin_init(&s, -1);
        while (iox_pub_loan_chunk(pub, &chunk, size) != AllocationResult_SUCCESS) {
            loan_fail++;
            bmsg_spin_more(&s);
        }
        bmsg_write(chunk, seq, size);
        iox_pub_publish_chunk(pub, chunk);
    }
    uint64_t end = 0, checked = 0, errors = 0;
    unsigned reports = 0;
    bmsg_report_t r;
    while (reports < subs && read(p[0], &r, sizeof r) == (ssize_t)sizeof r) {
        reports++;
        if (r.end_ns > end) end = r.end_ns;
        checked += r.checked;
        errors += r.errors;
    }
    bool good = reports == subs && errors == 0 && checked == subs * (messages + warmup);
    for (unsigned i = 0; i < subs; i++) {
        int status = 0;
        if (waitpid(pid[i], &status, 0) != pid[i] || !WIFEXITED(status) || WEXITSTATUS(status) != 0) good = false;
    }
    double ns = good ? (double)(end - t0) / (double)messages : 0;
    printf("run workload=%s alloc=iceoryx subscribers=%u messages=%" PRIu64 " warmup=%" PRIu64 " scale=%g spin_us=%" PRId64
           " ns=%.1f msgs_per_s=%.0f deliveries_per_s=%.0f checked=%" PRIu64 " errors=%" PRIu64 " loan_retries=%" PRIu64
           " check=%s\n",
           workload, subs, messages, warmup, scale, spin_us, ns, ns > 0 ? 1e9 / ns : 0, ns > 0 ? subs * 1e9 / ns : 0, checked,
           errors, loan_fail, good ? "ok" : "FAIL");
    iox_pub_deinit(pub);
    iox_runtime_shutdown();
    return good ? 0 : 1;
}
