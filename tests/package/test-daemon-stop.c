/* SPDX-License-Identifier: MIT */
/* test-daemon-stop.c: what goshm.h promises a caller when goshmd stops
 * ("Daemon stop and restart"), checked against a real daemon, for a clean
 * stop (SIGTERM) and a crash (SIGKILL):
 *   - memory already allocated stays mapped, readable, writable, translatable
 *     and freeable;
 *   - allocations served from the thread's cached span keep succeeding;
 *   - a call that needs the daemon waits GOSHM_RECONNECT_S (1 s here) for a
 *     daemon that adopts the heap (none does: no --state-dir), then fails
 *     with ECONNRESET, and later ones fail at once (one connection attempt,
 *     not another wait each);
 *   - goshm_detach fails with EPIPE or ECONNRESET and releases the handle;
 *   - a new daemon on the same socket serves a new heap to a new attach.
 *
 *   test-daemon-stop GOSHMD      (exit 0 pass, 1 fail, 77 no binary)
 */
#define _GNU_SOURCE
#include <goshm/goshm.h>

#include <errno.h>      /* errno */
#include <signal.h>     /* kill */
#include <stdio.h>      /* fprintf */
#include <stdlib.h>     /* mkdtemp */
#include <string.h>     /* memset */
#include <sys/prctl.h>  /* PR_SET_PDEATHSIG */
#include <sys/wait.h>   /* waitpid */
#include <time.h>       /* clock_gettime, nanosleep */
#include <unistd.h>     /* fork, execv */

static int failures, checks;
#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        checks++;                                                                 \
        if (!(cond)) {                                                            \
            failures++;                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
        }                                                                         \
    } while (0)

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static pid_t start_daemon(const char *bin, const char *sock)
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(bin, bin, "--socket", sock, "--size", "256M", "--log-level", "error", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Attach, retrying while the daemon starts (10 s at most). */
static goshm_t *attach_retry(const char *sock)
{
    for (int i = 0; i < 500; i++) {
        goshm_t *h = goshm_attach(sock);
        if (h || (errno != ENOENT && errno != ECONNREFUSED)) return h;
        sleep_ms(20);
    }
    return NULL;
}

static int wait_status(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return st;
}

static void round_trip(const char *bin, const char *sock, int sig)
{
    const char *how = sig == SIGTERM ? "SIGTERM" : "SIGKILL";
    pid_t d = start_daemon(bin, sock);
    goshm_t *h = attach_retry(sock);
    CHECK(h != NULL, "%s: attach: %s", how, strerror(errno));
    if (!h) {
        kill(d, SIGKILL);
        wait_status(d);
        return;
    }
    unsigned char *small = goshm_malloc(h, 64); /* caches a span of the 64-byte class */
    unsigned char *large = goshm_malloc(h, 1u << 20);
    CHECK(small && large, "%s: allocations before the stop", how);
    if (!small || !large) return;
    memset(small, 0xA5, 64);
    memset(large, 0x5A, 1u << 20);
    goshm_off_t small_off = goshm_off(h, small);

    kill(d, sig);
    int st = wait_status(d);
    if (sig == SIGTERM) CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGTERM: goshmd exit status 0x%x", st);

    /* The memory stays mapped and usable. */
    int intact = 1;
    for (size_t i = 0; i < 64; i++) intact &= small[i] == 0xA5;
    for (size_t i = 0; i < (1u << 20); i += 4096) intact &= large[i] == 0x5A;
    CHECK(intact, "%s: contents changed after the daemon stopped", how);
    small[0] = 1;
    CHECK(goshm_ptr(h, small_off) == small && goshm_off(h, small) == small_off, "%s: translation", how);
    /* From the cached span: no daemon needed. */
    unsigned char *cached = goshm_malloc(h, 64);
    CHECK(cached != NULL, "%s: allocation from the cached span: %s", how, strerror(errno));
    if (cached) memset(cached, 1, 64);

    /* Needs the daemon: waits GOSHM_RECONNECT_S, then ECONNRESET; then at once. */
    errno = 0;
    double tw = now_ms();
    void *p = goshm_malloc(h, 2u << 20);
    tw = now_ms() - tw;
    CHECK(p == NULL && errno == ECONNRESET, "%s: large allocation: %p, errno %s", how, p, strerror(errno));
    CHECK(tw >= 900.0 && tw < 5000.0, "%s: the first call waited %.0f ms for a daemon (GOSHM_RECONNECT_S=1)", how, tw);
    double t0 = now_ms();
    int fast = 1;
    for (int i = 0; i < 20; i++) {
        errno = 0;
        p = goshm_malloc(h, 2u << 20);
        fast &= p == NULL && errno == ECONNRESET;
        errno = 0;
        p = goshm_malloc(h, 200); /* a class with no cached span: a refill */
        fast &= p == NULL && errno == ECONNRESET;
    }
    double took = now_ms() - t0;
    /* 40 calls; each waiting the 50 ms futex timeout again would take 2 s. */
    CHECK(fast && took < 1000.0, "%s: 40 later calls: all ECONNRESET %d, took %.0f ms", how, fast, took);

    goshm_free(h, cached);
    goshm_free(h, small);
    goshm_free(h, large);
    errno = 0;
    t0 = now_ms();
    int rc = goshm_detach(h);
    int e = errno;
    took = now_ms() - t0;
    CHECK(rc == -1 && (e == EPIPE || e == ECONNRESET), "%s: detach: %d, errno %s", how, rc, strerror(e));
    CHECK(took < 1000.0, "%s: detach took %.0f ms", how, took);

    /* A new daemon on the same path: a new heap, a new attach. */
    d = start_daemon(bin, sock);
    h = attach_retry(sock);
    CHECK(h != NULL, "%s: attach to the new daemon: %s", how, strerror(errno));
    if (h) {
        unsigned char *q = goshm_malloc(h, 64);
        CHECK(q != NULL, "%s: allocation from the new daemon: %s", how, strerror(errno));
        if (q) memset(q, 7, 64);
        goshm_free(h, q);
        CHECK(goshm_detach(h) == 0, "%s: detach from the new daemon: %s", how, strerror(errno));
    }
    kill(d, SIGTERM);
    st = wait_status(d);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: new goshmd exit status 0x%x", how, st);
}

int main(int argc, char **argv)
{
    const char *bin = argc > 1 ? argv[1] : getenv("GOSHMD");
    if (!bin || access(bin, X_OK) != 0) {
        fprintf(stderr, "test-daemon-stop: no goshmd binary: skipped\n");
        return 77;
    }
    setenv("GOSHM_RECONNECT_S", "1", 1);
    char dir[] = "/tmp/goshm-stop.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char sock[64];
    snprintf(sock, sizeof sock, "%s/d.sock", dir);
    round_trip(bin, sock, SIGTERM);
    round_trip(bin, sock, SIGKILL);
    unlink(sock);
    rmdir(dir);
    fprintf(stderr, "test-daemon-stop: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
