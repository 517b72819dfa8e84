/* SPDX-License-Identifier: MIT */
/* goshm-demo: zero-copy messages between two independent processes.
 *
 * The producer attaches to goshmd, opens a channel by name (creating it in
 * the shared heap) and starts a consumer: a second process, which attaches
 * on its own and opens the same channel by its name. The producer then
 * allocates reference-counted buffers of random size (64..4096 bytes),
 * writes a header and a payload, and sends each buffer through the channel:
 * only its offset travels, with the producer's reference. The consumer
 * receives it (now holding that reference), checks the payload in place and
 * releases it, which frees the buffer in another process than the one that
 * allocated it. No byte of payload is copied, and a consumer with nothing
 * to read sleeps in the kernel (futex) instead of spinning. A last buffer
 * with no payload says "done".
 *
 *   goshm-demo [--socket PATH] [--messages N]
 *
 * Overview of the allocator: shm/overview.h; of the IPC calls: goshm(3),
 * "Passing buffers between processes".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <goshm/goshm.h>

extern char **environ;

#define CAPACITY 1024u

typedef struct msg {
    uint64_t seq;
    uint32_t len;      /* payload bytes; 0: the last message */
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
            "  second one through a goshm channel, passing only buffer offsets (zero copy).\n"
            "  --socket PATH   goshmd's socket (default: $GOSHM_SOCKET, then the default path)\n");
}

static int consumer(const char *sock, const char *name)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) {
        fprintf(stderr, "consumer: attach: %s\n", strerror(errno));
        return 2;
    }
    goshm_chan_t *ch = goshm_chan_open(h, name, 0); /* the producer created it */
    if (!ch) {
        fprintf(stderr, "consumer: channel %s: %s\n", name, strerror(errno));
        return 2;
    }
    uint64_t expect = 0, bad = 0;
    for (;;) {
        goshm_off_t off;
        if (goshm_chan_recv(ch, &off, -1) != 0) {
            fprintf(stderr, "consumer: recv: %s\n", strerror(errno));
            bad++;
            break;
        }
        msg_t *m = goshm_ptr(h, off);
        int last = m && m->len == 0;
        if (!m || m->seq != expect || checksum(m->payload, m->len) != m->sum) bad++;
        if (!last) expect++;
        goshm_buf_release(h, m); /* the last reference: freed here, allocated there */
        if (last) break;
    }
    goshm_chan_close(ch);
    goshm_detach(h);
    if (bad) fprintf(stderr, "consumer: %" PRIu64 " bad messages of %" PRIu64 "\n", bad, expect);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *sock = NULL, *cname = NULL;
    uint64_t n = 1000000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--socket") && i + 1 < argc) sock = argv[++i];
        else if (!strcmp(argv[i], "--messages") && i + 1 < argc) n = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--consumer") && i + 1 < argc) cname = argv[++i];
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        else { usage(stderr); return 2; }
    }
    if (cname) return consumer(sock, cname);

    goshm_t *h = goshm_attach(sock);
    if (!h) {
        fprintf(stderr, "goshm-demo: cannot attach to goshmd: %s (is goshmd running?)\n", strerror(errno));
        return 1;
    }
    char name[64];
    snprintf(name, sizeof name, "goshm-demo.%d", (int)getpid());
    goshm_chan_t *ch = goshm_chan_open(h, name, CAPACITY);
    if (!ch) {
        fprintf(stderr, "goshm-demo: channel %s: %s\n", name, strerror(errno));
        return 1;
    }
    char *cargv[8];
    int k = 0;
    cargv[k++] = argv[0];
    cargv[k++] = "--consumer";
    cargv[k++] = name;
    if (sock) { cargv[k++] = "--socket"; cargv[k++] = (char *)sock; }
    cargv[k] = NULL;
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, cargv, environ);
    if (rc) {
        fprintf(stderr, "goshm-demo: cannot start the consumer: %s\n", strerror(rc));
        return 1;
    }

    uint64_t seed = 0x2545F4914F6CDD1Dull, sent = 0, bytes = 0;
    int failed = 0;
    double t0 = now_s();
    for (uint64_t i = 0; i <= n && !failed; i++) {
        seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
        uint32_t size = i == n ? (uint32_t)sizeof(msg_t) : 64u + (uint32_t)(seed % (4096u - 64u + 1u));
        msg_t *m = goshm_buf_alloc(h, size);
        if (!m) {
            fprintf(stderr, "goshm-demo: buffer: %s\n", strerror(errno));
            failed = 1;
            break;
        }
        m->seq = i;
        m->len = size - (uint32_t)sizeof *m;
        for (uint32_t j = 0; j < m->len; j += 64) m->payload[j] = (unsigned char)(i + j);
        if (m->len) m->payload[m->len - 1] = (unsigned char)i;
        m->sum = checksum(m->payload, m->len);
        /* Blocks (asleep) while the channel is full; the reference goes with it. */
        if (goshm_chan_send(ch, goshm_off(h, m), -1) != 0) {
            fprintf(stderr, "goshm-demo: send: %s\n", strerror(errno));
            goshm_buf_release(h, m);
            failed = 1;
            break;
        }
        if (i < n) {
            sent++;
            bytes += size;
        }
    }
    int status = 0;
    if (failed) kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    double dt = now_s() - t0;
    int ok = !failed && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    printf("goshm-demo: %" PRIu64 " messages (%.1f MiB of payload) from pid %d to pid %d through channel %s in %.3f s: "
           "%.2f M messages/s, %.0f ns/message, %.0f MiB/s, zero copies; consumer %s\n",
           sent, (double)bytes / 1048576.0, (int)getpid(), (int)pid, name, dt, (double)sent / dt / 1e6,
           dt * 1e9 / (double)(sent ? sent : 1), (double)bytes / 1048576.0 / dt, ok ? "verified every message" : "FAILED");
    goshm_chan_close(ch);
    goshm_chan_unlink(h, name);
    goshm_detach(h);
    return ok ? 0 : 1;
}
