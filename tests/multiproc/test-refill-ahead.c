/* SPDX-License-Identifier: MIT */
/* Description: refills sent ahead of need (client/mcache.c, client/ring.c).
 * 32 KiB objects have one per span, so every allocation uses a new span and
 * a thread sends its class's next refill ahead after its second refill.
 *   1. Threads, each allocating, writing and checking 32 KiB objects, and
 *      exiting with a refill sent ahead: while the process stays attached
 *      (and allocates nothing more), the daemon gets every span back.
 *   2. The daemon stopped (SIGSTOP) while a thread's refill is ahead: the
 *      allocation that needs it fails with ETIMEDOUT after GOSHM_TIMEOUT_MS,
 *      not a hang; once the daemon goes on, allocations work again, and the
 *      late answer's spans come back to the daemon.
 *   3. fork with a refill sent ahead in the parent: child and parent both
 *      allocate that class at once; no object is handed out twice (each
 *      checks its own pattern after the other is done).
 * At the end the heap holds nothing.
 */
#define _GNU_SOURCE
#include <errno.h>     /* errno */
#include <inttypes.h>  /* PRIu64 */
#include <pthread.h>   /* pthread_* */
#include <signal.h>    /* kill */
#include <stdint.h>    /* uint64_t */
#include <stdlib.h>    /* setenv, _exit */
#include <string.h>    /* memset */
#include <sys/wait.h>  /* waitpid */
#include <unistd.h>    /* fork */

#include "check.h"
#include "goshm/goshm.h"
#include "harness.h"

#define OBJ 32768u
#define NOBJ 40
#define NTHR 4

static gsh_daemon_t d;
static goshm_t *heap;

static unsigned char pat(unsigned who, unsigned i, size_t k) { return (unsigned char)(who * 131u + i * 7u + k); }

/* Allocate n objects into p[], write each whole; the number allocated. */
static int fill(unsigned char **p, int n, unsigned who)
{
    for (int i = 0; i < n; i++) {
        p[i] = goshm_malloc(heap, OBJ);
        if (!p[i]) return i;
        for (size_t k = 0; k < OBJ; k += 512) p[i][k] = pat(who, (unsigned)i, k);
    }
    return n;
}

/* Check and free n objects; the number with another writer's bytes. */
static int drain(unsigned char **p, int n, unsigned who)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < OBJ; k += 512) bad += p[i][k] != pat(who, (unsigned)i, k);
        goshm_free(heap, p[i]);
    }
    return bad;
}

static int thread_bad;
static pthread_barrier_t filled;

static void *worker(void *arg)
{
    unsigned who = (unsigned)(uintptr_t)arg;
    unsigned char *p[NOBJ];
    int n = fill(p, NOBJ, who);
    if (n != NOBJ) __atomic_add_fetch(&thread_bad, 1000, __ATOMIC_RELAXED);
    /* No thread allocates after another freed: a slot one frees and another
     * gets back passes through goshmd, a happens-before TSan cannot see. */
    pthread_barrier_wait(&filled);
    __atomic_add_fetch(&thread_bad, drain(p, n, who), __ATOMIC_RELAXED);
    /* NOBJ is not a multiple of a refill's 8 spans: a refill is ahead now. */
    return NULL;
}

static bool no_spans(const gsh_stats_t *st, void *unused)
{
    (void)unused;
    return st->span_bytes == 0 && st->in_use_bytes == 0;
}

static void case_thread_exit(void)
{
    pthread_t t[NTHR];
    REQUIRE(pthread_barrier_init(&filled, NULL, NTHR) == 0);
    for (uintptr_t i = 0; i < NTHR; i++) REQUIRE(pthread_create(&t[i], NULL, worker, (void *)(i + 1)) == 0);
    for (int i = 0; i < NTHR; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&filled);
    CHECK_MSG(thread_bad == 0, "threads: %d bad bytes or failed allocations", thread_bad);
    /* Still attached, allocating nothing: every span goes back anyway. */
    gsh_stats_t st;
    CHECK_MSG(gsh_wait_for(d.sock, &st, no_spans, NULL, 3000) == 1,
              "after thread exit: span_bytes %" PRIu64 " in_use %" PRIu64 " (spans of a refill sent ahead kept?)",
              st.span_bytes, st.in_use_bytes);
}

static void case_fork(void)
{
    unsigned char *p[NOBJ], *q[NOBJ];
    int n = fill(p, 20, 50); /* two refills in: the next is ahead */
    REQUIRE(n == 20);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        unsigned char *c[NOBJ];
        int m = fill(c, NOBJ, 60);
        usleep(100000); /* the parent writes its own meanwhile */
        int bad = m == NOBJ ? drain(c, m, 60) : 1000;
        _exit(bad ? 1 : 0);
    }
    int m = fill(q, NOBJ, 70);
    CHECK(m == NOBJ);
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork child: objects overwritten or allocation failed");
    CHECK_MSG(drain(q, m, 70) == 0, "parent: objects overwritten after fork");
    CHECK_MSG(drain(p, n, 50) == 0, "parent: objects from before the fork overwritten");
}

static void *stopped_worker(void *arg)
{
    int *out = arg;
    unsigned char *p[NOBJ];
    int n = fill(p, 17, 80); /* the 16th sent the next refill ahead */
    REQUIRE(n == 17);
    REQUIRE(gsh_stop_all_threads(&d) == 0); /* not only kill(): see harness.h */
    int got = 17, err = 0;
    /* Allocate until one needs the daemon: it fails, after the deadline. */
    while (got < NOBJ) {
        uint64_t t0 = gsh_now_ms();
        p[got] = goshm_malloc(heap, OBJ);
        if (!p[got]) {
            err = errno;
            out[1] = (int)(gsh_now_ms() - t0);
            break;
        }
        got++;
    }
    out[0] = err;
    REQUIRE(kill(d.pid, SIGCONT) == 0);
    /* Works again. */
    int more = fill(p + got, NOBJ - got, 81);
    out[2] = more == NOBJ - got;
    for (int i = 0; i < got + more; i++) goshm_free(heap, p[i]);
    return NULL;
}

static void case_stopped(void)
{
    int out[3] = {0, 0, 0};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, stopped_worker, out) == 0);
    pthread_join(t, NULL);
    CHECK_MSG(out[0] == ETIMEDOUT, "stopped daemon: errno %d, want ETIMEDOUT", out[0]);
    CHECK_MSG(out[1] >= 250 && out[1] < 5000, "stopped daemon: failed after %d ms, want ~300", out[1]);
    CHECK_MSG(out[2] == 1, "allocations fail after SIGCONT");
    gsh_stats_t st;
    CHECK_MSG(gsh_wait_for(d.sock, &st, no_spans, NULL, 3000) == 1,
              "after the late answer: span_bytes %" PRIu64 " in_use %" PRIu64, st.span_bytes, st.in_use_bytes);
}

int main(int argc, char **argv)
{
    setenv("GOSHM_TIMEOUT_MS", "300", 1);
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), NULL) == 0);
    heap = goshm_attach(d.sock);
    REQUIRE(heap != NULL);
    case_thread_exit();
    case_stopped(); /* before case_fork: the main thread holds no span yet */
    case_fork();
    CHECK(goshm_detach(heap) == 0);
    gsh_stats_t st;
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK_MSG(st.in_use_bytes == 0 && st.span_bytes == 0, "at the end: in_use %" PRIu64 " span_bytes %" PRIu64,
              st.in_use_bytes, st.span_bytes);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-refill-ahead");
}
