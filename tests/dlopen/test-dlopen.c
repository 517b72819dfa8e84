/* SPDX-License-Identifier: MIT */
/* test-dlopen.c: libgoshm.so loaded with dlopen, two threads allocating.
 *
 * argv[1]: goshmd, argv[2]: libgoshm.so. This binary does not link libgoshm;
 * it loads it with dlopen(RTLD_NOW | RTLD_LOCAL), as a language binding does,
 * so the library's initial-exec thread-locals (gs_tls, the heap id and mcache, in
 * client/mcache.c) come from glibc's static TLS surplus: the dlopen fails
 * ("cannot allocate memory in static TLS block") if they outgrow it. Then it
 * attaches to a real goshmd, and two threads each allocate objects of every
 * size from 8 B to 40 KiB (small classes and large objects), fill each with a
 * pattern of their own, check all of them, hand half to the other thread to
 * free (remote frees), free the rest themselves, and repeat; a cache left by
 * one thread must never be used by the other (each writes its own pattern,
 * so a shared cache would show up as overlapping objects).
 */
#define _GNU_SOURCE
#include <dlfcn.h>    /* dlopen, dlsym */
#include <pthread.h>  /* pthread_create, pthread_barrier_t */
#include <stddef.h>   /* size_t */
#include <stdint.h>   /* uint64_t */
#include <string.h>   /* memset */

#include "check.h"
#include "harness.h"

typedef struct goshm goshm_t;
static goshm_t *(*p_attach)(const char *);
static int (*p_detach)(goshm_t *);
static void *(*p_malloc)(goshm_t *, size_t);
static void (*p_free)(goshm_t *, void *);

#define NOBJ 2000
#define ROUNDS (20 / TEST_SCALE)

typedef struct worker {
    goshm_t *h;
    int id;                 /* 0 or 1 */
    void *obj[NOBJ];
    size_t size[NOBJ];
    int errors;             /* pattern mismatches */
    int nulls;              /* goshm_malloc returned NULL */
} worker_t;

static worker_t workers[2];
static pthread_barrier_t barrier;

static unsigned char pattern(int id, int i, size_t j)
{
    return (unsigned char)(id * 131 + i * 7 + j * 13 + 1);
}

static void *work(void *arg)
{
    worker_t *w = arg;
    worker_t *other = &workers[1 - w->id];
    unsigned long long seed = 0x9e3779b97f4a7c15ull + (unsigned long long)w->id;
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < NOBJ; i++) {
            /* mostly small classes, one in 50 a large object (> 32 KiB) */
            size_t n = (i % 50 == 49) ? 33000 + test_rand(&seed) % 8000 : 8 + test_rand(&seed) % 2041;
            unsigned char *p = p_malloc(w->h, n);
            w->obj[i] = p;
            w->size[i] = n;
            if (!p) { w->nulls++; continue; }
            for (size_t j = 0; j < n; j++) p[j] = pattern(w->id, i, j);
        }
        for (int i = 0; i < NOBJ; i++) {
            const unsigned char *p = w->obj[i];
            if (!p) continue;
            for (size_t j = 0; j < w->size[i]; j++)
                if (p[j] != pattern(w->id, i, j)) { w->errors++; break; }
        }
        /* Both threads' objects are checked before anyone frees. */
        pthread_barrier_wait(&barrier);
        /* Odd slots: the other thread's objects (remote frees); even: ours. */
        for (int i = 0; i < NOBJ; i++) {
            if (i % 2) {
                const unsigned char *p = other->obj[i];
                if (!p) continue;
                for (size_t j = 0; j < other->size[i]; j++)
                    if (p[j] != pattern(other->id, i, j)) { w->errors++; break; }
                p_free(w->h, other->obj[i]);
            } else if (w->obj[i]) {
                p_free(w->h, w->obj[i]);
            }
        }
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *bin = gsh_daemon_path(argc, argv);
    REQUIRE(argc >= 3);

    void *lib = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
    CHECK_MSG(lib != NULL, "dlopen(%s): %s", argv[2], dlerror());
    REQUIRE(lib != NULL);
    /* This binary must not have libgoshm already: then dlopen would prove nothing. */
    REQUIRE(dlsym(RTLD_DEFAULT, "goshm_malloc") == NULL);
    *(void **)&p_attach = dlsym(lib, "goshm_attach");
    *(void **)&p_detach = dlsym(lib, "goshm_detach");
    *(void **)&p_malloc = dlsym(lib, "goshm_malloc");
    *(void **)&p_free = dlsym(lib, "goshm_free");
    REQUIRE(p_attach && p_detach && p_malloc && p_free);

    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, bin, NULL) == 0);
    goshm_t *h = p_attach(d.sock);
    CHECK(h != NULL);
    REQUIRE(h != NULL);

    /* The main thread allocates too, before and after the workers. */
    char *mine = p_malloc(h, 100);
    CHECK(mine != NULL);
    if (mine) memset(mine, 0x5a, 100);

    REQUIRE(pthread_barrier_init(&barrier, NULL, 2) == 0);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        workers[i].h = h;
        workers[i].id = i;
        REQUIRE(pthread_create(&t[i], NULL, work, &workers[i]) == 0);
    }
    for (int i = 0; i < 2; i++) REQUIRE(pthread_join(t[i], NULL) == 0);
    pthread_barrier_destroy(&barrier);

    for (int i = 0; i < 2; i++) {
        CHECK_MSG(workers[i].errors == 0, "thread %d: %d objects with a wrong pattern", i, workers[i].errors);
        CHECK_MSG(workers[i].nulls == 0, "thread %d: goshm_malloc returned NULL %d times", i, workers[i].nulls);
    }
    if (mine) {
        int ok = 1;
        for (int j = 0; j < 100; j++) ok &= mine[j] == 0x5a;
        CHECK(ok);
        p_free(h, mine);
    }
    /* Everything was freed: the daemon ends with no object in use. */
    CHECK(p_detach(h) == 0);
    gsh_stats_t st;
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK_MSG(st.objects_in_use == 0, "%llu objects still in use", (unsigned long long)st.objects_in_use);
    CHECK(gsh_stop(&d) == 0);
    dlclose(lib);
    return CHECK_DONE("test-dlopen");
}
