/* SPDX-License-Identifier: MIT */
/* goshm-demo: zero-copy messages between two independent processes.
 *
 * The producer attaches to goshmd, allocates a channel (a single-producer,
 * single-consumer ring of offsets) in the shared heap, and starts a consumer:
 * a second process, which attaches on its own and finds the channel by the
 * offset given on its command line. The producer then allocates buffers of
 * random size (64..4096 bytes), writes a header and a payload, and passes
 * only each buffer's offset; the consumer checks the payload in place and
 * frees the buffer, which a different process allocated. No byte of payload
 * is copied.
 *
 *   goshm-demo [--socket PATH] [--messages N]
 *
 * Overview of the allocator: shm/overview.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <goshm/goshm.h>

extern char **environ;

#define SLOTS 1024u

/* The channel lives in the goshm heap. head/tail on their own cache lines;
 * the producer publishes tail with release, the consumer head with release. */
typedef struct channel {
    _Alignas(64) _Atomic uint64_t tail; /* written by the producer */
    _Alignas(64) _Atomic uint64_t head; /* written by the consumer */
    _Alignas(64) _Atomic int done;      /* producer finished */
    goshm_off_t slot[SLOTS];
} channel_t;

typedef struct msg {
    uint64_t seq;
    uint32_t len;      /* payload bytes */
    uint32_t sum;      /* checksum of the payload */
    unsigned char payload[];
} msg_t;

/* A checksum of every payload byte, 8 bytes at a time (the demo measures
 * the allocator, not a byte-wise hash). */
static uint32_t checksum(const unsigned char *p, uint32_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull, w;
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001B3ull;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return (uint32_t)(h ^ (h >> 32));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: goshm-demo [--socket PATH] [--messages N]\n"
            "  Sends N messages (default 1000000) of 64..4096 bytes from this process to a\n"
            "  second one through a goshm heap, passing only offsets (zero copy).\n"
            "  --socket PATH   goshmd's socket (default: $GOSHM_SOCKET, then the default path)\n");
}

static int consumer(const char *sock, goshm_off_t chan_off)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) {
        fprintf(stderr, "consumer: attach: %s\n", strerror(errno));
        return 2;
    }
    channel_t *ch = goshm_ptr(h, chan_off);
    if (!ch) {
        fprintf(stderr, "consumer: bad channel offset\n");
        return 2;
    }
    uint64_t head = atomic_load_explicit(&ch->head, memory_order_relaxed), expect = 0, bad = 0;
    for (;;) {
        uint64_t tail = atomic_load_explicit(&ch->tail, memory_order_acquire);
        if (head == tail) {
            if (atomic_load_explicit(&ch->done, memory_order_acquire) &&
                head == atomic_load_explicit(&ch->tail, memory_order_acquire))
                break;
            sched_yield();
            continue;
        }
        while (head != tail) {
            msg_t *m = goshm_ptr(h, ch->slot[head % SLOTS]);
            if (!m || m->seq != expect || checksum(m->payload, m->len) != m->sum) bad++;
            expect++;
            goshm_free(h, m); /* allocated by the other process */
            head++;
        }
        atomic_store_explicit(&ch->head, head, memory_order_release);
    }
    goshm_detach(h);
    if (bad) fprintf(stderr, "consumer: %" PRIu64 " bad messages of %" PRIu64 "\n", bad, expect);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *sock = NULL;
    uint64_t n = 1000000;
    goshm_off_t chan_off = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--socket") && i + 1 < argc) sock = argv[++i];
        else if (!strcmp(argv[i], "--messages") && i + 1 < argc) n = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--consumer") && i + 1 < argc) chan_off = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        else { usage(stderr); return 2; }
    }
    if (chan_off) return consumer(sock, chan_off);

    goshm_t *h = goshm_attach(sock);
    if (!h) {
        fprintf(stderr, "goshm-demo: cannot attach to goshmd: %s (is goshmd running?)\n", strerror(errno));
        return 1;
    }
    channel_t *ch = goshm_calloc(h, 1, sizeof *ch);
    if (!ch) {
        fprintf(stderr, "goshm-demo: %s\n", strerror(errno));
        return 1;
    }
    char off[32];
    snprintf(off, sizeof off, "%" PRIu64, goshm_off(h, ch));
    char *cargv[8];
    int k = 0;
    cargv[k++] = argv[0];
    cargv[k++] = "--consumer";
    cargv[k++] = off;
    if (sock) { cargv[k++] = "--socket"; cargv[k++] = (char *)sock; }
    cargv[k] = NULL;
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, cargv, environ);
    if (rc) {
        fprintf(stderr, "goshm-demo: cannot start the consumer: %s\n", strerror(rc));
        return 1;
    }

    uint64_t seed = 0x2545F4914F6CDD1Dull, tail = 0, bytes = 0, enomem = 0;
    double t0 = now_s();
    for (uint64_t i = 0; i < n; i++) {
        seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
        uint32_t size = 64u + (uint32_t)(seed % (4096u - 64u + 1u));
        msg_t *m = goshm_malloc(h, size);
        if (!m) { enomem++; i--; sched_yield(); if (enomem > 1000000) break; continue; }
        m->seq = i;
        m->len = size - (uint32_t)sizeof *m;
        for (uint32_t j = 0; j < m->len; j += 64) m->payload[j] = (unsigned char)(i + j);
        m->payload[m->len - 1] = (unsigned char)i;
        m->sum = checksum(m->payload, m->len);
        bytes += size;
        while (tail - atomic_load_explicit(&ch->head, memory_order_acquire) >= SLOTS) sched_yield();
        ch->slot[tail % SLOTS] = goshm_off(h, m);
        tail++;
        if ((tail & 15) == 0) atomic_store_explicit(&ch->tail, tail, memory_order_release);
    }
    atomic_store_explicit(&ch->tail, tail, memory_order_release);
    atomic_store_explicit(&ch->done, 1, memory_order_release);
    int status = 0;
    waitpid(pid, &status, 0);
    double dt = now_s() - t0;
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    printf("goshm-demo: %" PRIu64 " messages (%.1f MiB of payload) from pid %d to pid %d in %.3f s: "
           "%.2f M messages/s, %.0f ns/message, %.0f MiB/s, zero copies; consumer %s\n",
           tail, (double)bytes / 1048576.0, (int)getpid(), (int)pid, dt, (double)tail / dt / 1e6,
           dt * 1e9 / (double)tail, (double)bytes / 1048576.0 / dt, ok ? "verified every message" : "FAILED");
    goshm_free(h, ch);
    goshm_detach(h);
    return ok ? 0 : 1;
}
