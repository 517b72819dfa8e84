/* SPDX-License-Identifier: MIT */
/* Description: goshm_detach while the threads that used the heap are still
 * running their thread-exit destructors. A program may join a thread (or
 * see it finish) before the OS thread has run its key destructors: Python's
 * Thread.join returns before them, detached threads are never joined. So
 * libgoshm's destructor (client/attach.c, thread_exit), which gives the
 * thread's mcache back, can run after goshm_detach freed that cache and the
 * handle. This test forces that order: each worker has a key of the test's
 * own, created before the attach (so its destructor runs first), whose
 * destructor blocks until the main thread has detached; a second key
 * created after the attach tells the main thread that libgoshm's destructor
 * has run. To have the workers inside libgoshm's destructor (giving their
 * spans back over the ring) when the main thread detaches, the daemon is
 * stopped (SIGSTOP) before their destructors go on and continued 100 ms
 * into the detach. Rounds of attach, four detached workers allocating and
 * freeing, detach: before the fix, goshm_detach flushed and freed the
 * caches the workers' destructors were still giving back (a double free,
 * or a use after free under ASan). At the end the daemon holds nothing and
 * sees no client.
 */
#define _GNU_SOURCE
#include <inttypes.h>  /* PRIu64 */
#include <pthread.h>   /* pthread_* */
#include <semaphore.h> /* sem_* */
#include <signal.h>    /* kill, SIGSTOP */
#include <stdint.h>    /* uint64_t */
#include <string.h>    /* memset */
#include <unistd.h>    /* usleep */

#include "check.h"
#include "goshm/goshm.h"
#include "harness.h"

#define NTHR 4
#define ROUNDS 10

static gsh_daemon_t d;
static goshm_t *heap;
static pthread_key_t early, late;
static sem_t worked, detached, finished;
static int bad; /* pattern mismatches */

static void early_dtor(void *v) { sem_wait(&detached); }
static void late_dtor(void *v) { sem_post(&finished); }

static void *resume_daemon(void *arg)
{
    usleep(100000);
    kill(d.pid, SIGCONT);
    return NULL;
}

static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    unsigned char *p[64];
    for (int i = 0; i < 64; i++) {
        size_t n = 16 + (size_t)(i * 37 + id * 11) % 3000;
        p[i] = goshm_malloc(heap, n);
        if (p[i]) memset(p[i], (int)(id + (uintptr_t)i), n);
    }
    for (int i = 0; i < 64; i++) {
        if (p[i] && p[i][0] != (unsigned char)(id + (uintptr_t)i)) bad++;
        goshm_free(heap, p[i]);
    }
    pthread_setspecific(early, (void *)1);
    pthread_setspecific(late, (void *)1);
    sem_post(&worked);
    return NULL;
}

int main(int argc, char **argv)
{
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), NULL) == 0);
    REQUIRE(pthread_key_create(&early, early_dtor) == 0);
    sem_init(&worked, 0, 0);
    sem_init(&detached, 0, 0);
    sem_init(&finished, 0, 0);
    for (int r = 0; r < ROUNDS; r++) {
        heap = goshm_attach(d.sock);
        REQUIRE(heap != NULL);
        /* After the heap's key: its destructor runs after libgoshm's. */
        REQUIRE(pthread_key_create(&late, late_dtor) == 0);
        for (uintptr_t i = 0; i < NTHR; i++) {
            pthread_t t;
            pthread_attr_t a;
            pthread_attr_init(&a);
            pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
            REQUIRE(pthread_create(&t, &a, worker, (void *)i) == 0);
            pthread_attr_destroy(&a);
        }
        for (int i = 0; i < NTHR; i++) sem_wait(&worked);
        /* The workers are done with the heap; their destructors wait. Let
         * them into libgoshm's, stuck on a stopped daemon, then detach. */
        REQUIRE(kill(d.pid, SIGSTOP) == 0);
        for (int i = 0; i < NTHR; i++) sem_post(&detached);
        usleep(100000);
        pthread_t resumer;
        REQUIRE(pthread_create(&resumer, NULL, resume_daemon, NULL) == 0);
        CHECK(goshm_detach(heap) == 0);
        pthread_join(resumer, NULL);
        for (int i = 0; i < NTHR; i++) sem_wait(&finished);
        pthread_key_delete(late);
    }
    CHECK_MSG(bad == 0, "%d objects with another thread's bytes", bad);
    gsh_stats_t st;
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK(st.clients == 0);
    CHECK_MSG(st.in_use_bytes == 0, "in_use_bytes %" PRIu64, st.in_use_bytes);
    CHECK_MSG(st.span_bytes == 0, "span_bytes %" PRIu64 ": spans not back in the page heap", st.span_bytes);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-thread-exit");
}
