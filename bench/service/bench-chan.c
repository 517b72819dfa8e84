/* SPDX-License-Identifier: MIT */
/* bench-chan.c: W5 and W6 on goshm's zero-copy IPC (reference-counted
 * buffers through named channels), measured through the installed
 * libgoshm.so and a running goshmd. Overview: shm/overview.h; workloads:
 * bench/README.md.
 *
 *   bench-chan [--workload=W5|W6] [--socket PATH] [--subscribers N]
 *              [--messages N] [--warmup N] [--seed S] [--scale F]
 *              [--spin-us US] [--capacity C]
 *
 * The publisher attaches, allocates a control block with goshm_malloc and
 * names it "goshm-bench-WORKLOAD-PID.ctl" (goshm_name_set), creates one
 * channel per subscriber, "goshm-bench-WORKLOAD-PID.I" (goshm_chan_open,
 * capacity C = 256: the ring of W3), and spawns N copies of itself
 * (--consumer PREFIX --index I). Each finds the control block by
 * goshm_name_get and its channel by goshm_chan_open(name, 0), and takes
 * the message count and the wait policy from the control block: no offset
 * travels in argv.
 *
 * Per message the publisher goshm_buf_alloc's a buffer of 64..4096 B
 * (bench-msg.h: the seed and sequence of bench-ipc's W3), stamps it
 * (sequence number, size, tail tag), takes N-1 more references
 * (goshm_buf_retain) and sends its offset to each of the N channels: each
 * send hands one reference to that channel. Each subscriber goshm_chan_recv's
 * the offset, checks the stamp at goshm_ptr(off) and goshm_buf_release's it;
 * the last release frees the buffer. One channel per subscriber because a
 * channel is a queue (every message is received once, by one receiver):
 * fan-out is N sends of N references, as goshm.h says.
 *
 * Waiting (bench-msg.h, --spin-us): -1 polls (goshm_chan_recv / _send with
 * timeout 0) for ever, PAUSE between polls, sched_yield every 256: W3's
 * loop; US >= 0 polls for US microseconds, then blocks in the channel's own
 * wait (futex; timeout 100 ms at a time, checking that the peers are alive).
 *
 * W5: 1 subscriber, 2M messages after 200k warm-up (W3's counts); W6: 4
 * subscribers, 1M messages after 100k warm-up; --scale shrinks both. Each
 * subscriber writes the time of its last release and its counts into its
 * line of the control block; timing runs from the first timed
 * goshm_buf_alloc to the last subscriber's last release. ns = ns per
 * published message; deliveries_per_s = N * msgs_per_s.
 * Output: one "run workload=... alloc=goshm ..." line (checked = deliveries
 * whose stamp was right and whose release succeeded, = N * (messages +
 * warmup) when all is well). Exit status 0 when every check passed, 1 on a
 * check failure, 2 on a usage or setup error. Never part of the ctest suite.
 */
#define _GNU_SOURCE
#include <errno.h>     /* errno */
#include <inttypes.h>  /* PRIu64 */
#include <signal.h>    /* kill */
#include <spawn.h>     /* posix_spawn */
#include <stdatomic.h> /* atomics */
#include <stdbool.h>   /* bool */
#include <stdint.h>    /* uint*_t */
#include <stdio.h>     /* printf */
#include <stdlib.h>    /* strtoull */
#include <string.h>    /* strcmp */
#include <sys/prctl.h> /* prctl */
#include <sys/wait.h>  /* waitpid */
#include <unistd.h>    /* getppid */

#include <goshm/goshm.h>

#include "bench-msg.h"

extern char **environ;

#define MAX_SUBS 16
#define CTL_MAGIC 0x6c746368636e6562ull /* "benchctl" */

/* The control block, in the goshm heap, found by name. Written: header by
 * the publisher before it spawns the subscribers; ready by each subscriber
 * once its channel is open (release); sub[i] by subscriber i, done last
 * (release); abort by the publisher when it gives up. */
typedef struct ctl {
    uint64_t magic, total, subs;
    int64_t spin_us;
    _Alignas(64) _Atomic uint32_t ready;
    _Atomic uint32_t abort;
    struct {
        _Alignas(64) _Atomic uint32_t done;
        bmsg_report_t r;
    } sub[MAX_SUBS];
} ctl_t;

static void die(const char *what)
{
    fprintf(stderr, "bench-chan: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench-chan [--workload=W5|W6] [--socket PATH] [--subscribers N] [--messages N] [--warmup N]\n"
                    "       [--seed S] [--scale F] [--spin-us US] [--capacity C]\n");
    exit(2);
}

static goshm_t *attach(const char *sock)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) die("goshm_attach");
    return h;
}

/* ---- the wait policy over a channel ----------------------------------------- */

/* One channel call with the harness's wait policy: poll (timeout 0) per
 * spin_us, then block 100 ms at a time while alive() says the peer is there.
 * Sends *off (send) or receives into it. 0, or -1 (errno: the channel's
 * error, or ECHILD when the peer is gone). */
static int chan_op(bool send, goshm_chan_t *c, goshm_off_t *off, int timeout_ms)
{
    return send ? goshm_chan_send(c, *off, timeout_ms) : goshm_chan_recv(c, off, timeout_ms);
}

static int xfer_one(bool send, goshm_chan_t *c, goshm_off_t *off, int64_t spin_us, bool (*alive)(void *), void *arg)
{
    bmsg_spin_t s;
    bmsg_spin_init(&s, spin_us);
    for (;;) {
        if (chan_op(send, c, off, 0) == 0) return 0;
        if (errno != EAGAIN) return -1;
        if (!bmsg_spin_more(&s)) break;
        if (s.n % 65536 == 0 && !alive(arg)) {
            errno = ECHILD;
            return -1;
        }
    }
    for (;;) {
        if (chan_op(send, c, off, 100) == 0) return 0;
        if (errno != ETIMEDOUT && errno != EAGAIN) return -1;
        if (!alive(arg)) {
            errno = ECHILD;
            return -1;
        }
    }
}

static int recv_one(goshm_chan_t *c, goshm_off_t *off, int64_t spin_us, bool (*alive)(void *), void *arg)
{
    return xfer_one(false, c, off, spin_us, alive, arg);
}

static int send_one(goshm_chan_t *c, goshm_off_t off, int64_t spin_us, bool (*alive)(void *), void *arg)
{
    return xfer_one(true, c, &off, spin_us, alive, arg);
}

/* ---- subscriber ------------------------------------------------------------ */

typedef struct sub_arg {
    pid_t publisher;
    ctl_t *ctl;
} sub_arg_t;

static bool publisher_alive(void *v)
{
    sub_arg_t *a = v;
    return getppid() == a->publisher && !atomic_load_explicit(&a->ctl->abort, memory_order_acquire);
}

static int subscriber(const char *sock, const char *prefix, unsigned index)
{
    prctl(PR_SET_NAME, "bench-chan-sub"); /* tells the sides apart in perf report --sort comm */
    goshm_t *h = attach(sock);
    char name[64];
    snprintf(name, sizeof name, "%s.ctl", prefix);
    goshm_off_t coff = goshm_name_get(h, name);
    ctl_t *ctl = coff ? goshm_ptr(h, coff) : NULL;
    if (!ctl) die("goshm_name_get(control block)");
    if (ctl->magic != CTL_MAGIC || index >= ctl->subs || ctl->subs > MAX_SUBS) {
        fprintf(stderr, "bench-chan: subscriber %u: bad control block %s\n", index, name);
        return 2;
    }
    snprintf(name, sizeof name, "%s.%u", prefix, index);
    goshm_chan_t *c = goshm_chan_open(h, name, 0);
    if (!c) die("goshm_chan_open(subscriber)");
    const uint64_t total = ctl->total;
    const int64_t spin_us = ctl->spin_us;
    sub_arg_t arg = {getppid(), ctl};
    atomic_fetch_add_explicit(&ctl->ready, 1, memory_order_release);

    bmsg_report_t r = {0, 0, 0, index};
    int rc = 0;
    for (uint64_t seq = 0; seq < total; seq++) {
        goshm_off_t off;
        if (recv_one(c, &off, spin_us, publisher_alive, &arg) != 0) {
            fprintf(stderr, "bench-chan: subscriber %u: goshm_chan_recv at %" PRIu64 ": %s\n", index, seq, strerror(errno));
            rc = 1;
            break;
        }
        void *p = goshm_ptr(h, off);
        bool good = p && bmsg_check(p, seq);
        if (p && goshm_buf_release(h, p) != 0) {
            if (r.errors < 5) fprintf(stderr, "bench-chan: subscriber %u: goshm_buf_release: %s\n", index, strerror(errno));
            good = false;
        }
        if (good) r.checked++;
        else r.errors++;
    }
    r.end_ns = bmsg_now_ns();
    ctl->sub[index].r = r;
    atomic_store_explicit(&ctl->sub[index].done, 1, memory_order_release);
    if (goshm_chan_close(c) != 0) rc = 1;
    if (goshm_detach(h) != 0) rc = 1;
    return rc ? rc : (r.errors ? 1 : 0);
}

/* ---- publisher --------------------------------------------------------------- */

typedef struct pub_arg {
    pid_t pid[MAX_SUBS];
    unsigned n;
} pub_arg_t;

static bool subscribers_alive(void *v)
{
    pub_arg_t *a = v;
    for (unsigned i = 0; i < a->n; i++) {
        int status;
        if (a->pid[i] > 0 && waitpid(a->pid[i], &status, WNOHANG) == a->pid[i]) {
            fprintf(stderr, "bench-chan: subscriber %u exited (status 0x%x)\n", i, (unsigned)status);
            a->pid[i] = -1; /* reaped: report it once, and not again */
            return false;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    const char *workload = "W5", *sock = NULL, *prefix = NULL;
    uint64_t messages = 0, warmup = 0, seed = 42;
    bool have_messages = false, have_warmup = false;
    unsigned subs = 0, index = 0;
    uint32_t cap = 256;
    double scale = 1;
    int64_t spin_us = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "--workload=", 11)) workload = a + 11;
        else if (i + 1 >= argc) usage();
        else if (!strcmp(a, "--socket")) sock = argv[++i];
        else if (!strcmp(a, "--subscribers")) subs = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(a, "--messages")) messages = strtoull(argv[++i], NULL, 10), have_messages = true;
        else if (!strcmp(a, "--warmup")) warmup = strtoull(argv[++i], NULL, 10), have_warmup = true;
        else if (!strcmp(a, "--seed")) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--scale")) scale = strtod(argv[++i], NULL);
        else if (!strcmp(a, "--spin-us")) spin_us = strtoll(argv[++i], NULL, 10);
        else if (!strcmp(a, "--capacity")) cap = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(a, "--consumer")) prefix = argv[++i];
        else if (!strcmp(a, "--index")) index = (unsigned)strtoul(argv[++i], NULL, 10);
        else usage();
    }
    if (prefix) return subscriber(sock, prefix, index);
    bool w6 = !strcmp(workload, "W6");
    if (!w6 && strcmp(workload, "W5")) usage();
    if (!subs) subs = w6 ? 4 : 1;
    if (subs > MAX_SUBS || !(scale > 0) || cap < 1) usage();
    if (!have_messages) messages = w6 ? 1000000 : 2000000;
    if (!have_warmup) warmup = w6 ? 100000 : 200000;
    messages = (uint64_t)((double)messages * scale);
    warmup = (uint64_t)((double)warmup * scale);
    if (!messages) messages = 1;
    const uint64_t total = messages + warmup;

    goshm_t *h = attach(sock);
    char pfx[48], name[64];
    snprintf(pfx, sizeof pfx, "goshm-bench-%s-%d", workload, (int)getpid());
    ctl_t *ctl = goshm_malloc(h, sizeof *ctl);
    if (!ctl) die("goshm_malloc(control block)");
    memset(ctl, 0, sizeof *ctl);
    ctl->total = total;
    ctl->subs = subs;
    ctl->spin_us = spin_us;
    ctl->magic = CTL_MAGIC;
    snprintf(name, sizeof name, "%s.ctl", pfx);
    if (goshm_name_set(h, name, goshm_off(h, ctl)) != 0) die("goshm_name_set(control block)");
    goshm_chan_t *c[MAX_SUBS];
    for (unsigned i = 0; i < subs; i++) {
        snprintf(name, sizeof name, "%s.%u", pfx, i);
        if (!(c[i] = goshm_chan_open(h, name, cap))) die("goshm_chan_open(publisher)");
    }

    pub_arg_t pa = {.n = subs};
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) snprintf(self, sizeof self, "/proc/self/exe");
    else self[len] = '\0';
    for (unsigned i = 0; i < subs; i++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%u", i);
        char *cargv[9] = {argv[0], "--consumer", pfx, "--index", idx, NULL, NULL, NULL, NULL};
        if (sock) cargv[5] = "--socket", cargv[6] = (char *)sock;
        int e = posix_spawn(&pa.pid[i], self, NULL, NULL, cargv, environ);
        if (e) {
            errno = e;
            die("posix_spawn");
        }
    }
    uint64_t tw = bmsg_now_ns();
    while (atomic_load_explicit(&ctl->ready, memory_order_acquire) < subs) {
        if (!subscribers_alive(&pa) || bmsg_now_ns() - tw > 10000000000ull) {
            fprintf(stderr, "bench-chan: the subscribers did not open their channels\n");
            atomic_store(&ctl->abort, 1);
            return 2;
        }
        usleep(1000);
    }

    uint64_t rng = seed, t0 = bmsg_now_ns(), fail = 0;
    bool good = true;
    for (uint64_t seq = 0; seq < total && good; seq++) {
        if (seq == warmup) t0 = bmsg_now_ns();
        uint32_t size = bmsg_size(&rng);
        void *p = goshm_buf_alloc(h, size);
        if (!p) {
            fprintf(stderr, "bench-chan: goshm_buf_alloc(%u) at %" PRIu64 ": %s\n", size, seq, strerror(errno));
            good = false;
            break;
        }
        bmsg_write(p, seq, size);
        for (unsigned i = 1; i < subs; i++)
            if (goshm_buf_retain(h, p) != 0) {
                fprintf(stderr, "bench-chan: goshm_buf_retain at %" PRIu64 ": %s\n", seq, strerror(errno));
                good = false;
            }
        goshm_off_t off = goshm_off(h, p);
        for (unsigned i = 0; i < subs && good; i++)
            if (send_one(c[i], off, spin_us, subscribers_alive, &pa) != 0) {
                fprintf(stderr, "bench-chan: goshm_chan_send to %u at %" PRIu64 ": %s\n", i, seq, strerror(errno));
                good = false;
            }
    }
    if (!good) atomic_store(&ctl->abort, 1);

    uint64_t end = 0, checked = 0, errors = 0;
    for (unsigned i = 0; i < subs; i++) {
        int status = 0;
        if (pa.pid[i] < 0 || waitpid(pa.pid[i], &status, 0) != pa.pid[i] || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fail++;
            continue;
        }
        if (!atomic_load_explicit(&ctl->sub[i].done, memory_order_acquire)) {
            fail++;
            continue;
        }
        bmsg_report_t r = ctl->sub[i].r;
        if (r.end_ns > end) end = r.end_ns;
        checked += r.checked;
        errors += r.errors;
    }
    good = good && fail == 0 && errors == 0 && checked == subs * total;

    for (unsigned i = 0; i < subs; i++) {
        snprintf(name, sizeof name, "%s.%u", pfx, i);
        if (goshm_chan_unlink(h, name) != 0 || goshm_chan_close(c[i]) != 0) good = false;
    }
    snprintf(name, sizeof name, "%s.ctl", pfx);
    if (goshm_name_del(h, name) != 0) good = false;
    goshm_free(h, ctl);
    if (goshm_detach(h) != 0) good = false;

    double ns = good ? (double)(end - t0) / (double)messages : 0;
    printf("run workload=%s alloc=goshm subscribers=%u capacity=%u messages=%" PRIu64 " warmup=%" PRIu64
           " scale=%g spin_us=%" PRId64 " ns=%.1f msgs_per_s=%.0f deliveries_per_s=%.0f checked=%" PRIu64 " errors=%" PRIu64
           " failed_subscribers=%" PRIu64 " check=%s\n",
           workload, subs, cap, messages, warmup, scale, spin_us, ns, ns > 0 ? 1e9 / ns : 0, ns > 0 ? subs * 1e9 / ns : 0,
           checked, errors, fail, good ? "ok" : "FAIL");
    return good ? 0 : 1;
}
