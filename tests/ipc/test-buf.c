/* SPDX-License-Identifier: MIT */
/* test-buf.c: Description: reference-counted buffers across processes against a real goshmd: retain in B, release in A, bytes read back in B, counts asserted; a SIGKILLed holder's references dropped exactly (the buffer lives while others hold it, is freed when the last goes); children SIGKILLed at random instants inside retain/release loops, counts exact afterwards; goshm_free of a shared buffer is a bad free; release of an unheld buffer is EINVAL; the heap back to empty at the end.
 *
 * Overview of the engine: shm/overview.h; buffers: shm/buf.h,
 * client/buf.c; the repair: daemon/bufref.c.
 *
 * Usage: test-buf GOSHMD                   (also $GOSHMD)
 *        test-buf --role ROLE SOCKET FILE  (internal)
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "check.h"
#include "goshm/goshm.h"
#include "ipc.h"
#include "report.h" /* gs_badfree_count */

#define NBUF 8

typedef struct shared {
    _Atomic int ready, go, done;
    goshm_off_t off[NBUF];
    uint64_t sum[NBUF];
    uint32_t size[NBUF];
    _Atomic uint32_t refs_seen;
    _Atomic int err;
    _Atomic uint64_t ops;
} shared_t;

static void wait_flag(_Atomic int *f, int v)
{
    for (int i = 0; i < 20000 && atomic_load(f) < v; i++) usleep(500);
}

/* Role "b": retain buffer 0, tell A, wait until A released, read and check
 * the bytes, release. */
static int role_b(const char *sock, shared_t *sh)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 10;
    void *p = goshm_ptr(h, sh->off[0]);
    if (goshm_buf_retain(h, p) != 0) return 11;
    /* A's buffer that we never retained: not ours to release. */
    if (goshm_buf_release(h, goshm_ptr(h, sh->off[1])) != -1 || errno != EINVAL) return 12;
    atomic_store(&sh->refs_seen, goshm_buf_refs(h, p));
    atomic_store(&sh->ready, 1);
    wait_flag(&sh->go, 1);
    if (goshm_buf_refs(h, p) != 1) return 13;
    if (ipc_sum(p, sh->size[0]) != sh->sum[0]) return 14;
    if (goshm_buf_release(h, p) != 0) return 15;
    /* Freed now: neither ours nor live. */
    if (goshm_buf_release(h, p) != -1 || errno != EINVAL) return 16;
    if (goshm_buf_refs(h, p) != 0 || errno != EINVAL) return 17;
    goshm_detach(h);
    return 0;
}

/* Role "holder": retain buffer 0 three times and buffer 1 once, then wait
 * to be killed. */
static int role_holder(const char *sock, shared_t *sh)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 20;
    for (int i = 0; i < 3; i++)
        if (goshm_buf_retain(h, goshm_ptr(h, sh->off[0])) != 0) return 21;
    if (goshm_buf_retain(h, goshm_ptr(h, sh->off[1])) != 0) return 22;
    atomic_store(&sh->ready, 1);
    for (;;) pause();
}

/* Role "churn": retain and release the buffers at random, as fast as it
 * can, until killed. Keeps at most 3 references per buffer. */
static int role_churn(const char *sock, shared_t *sh)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 30;
    uint64_t seed = (uint64_t)getpid() * 7919u;
    int held[NBUF] = {0};
    atomic_store(&sh->ready, 1);
    for (;;) {
        uint64_t r = ipc_rand(&seed);
        int i = (int)(r % NBUF);
        void *p = goshm_ptr(h, sh->off[i]);
        if ((r >> 8) & 1 ? held[i] < 3 : held[i] == 0) {
            if (goshm_buf_retain(h, p) == 0) held[i]++;
            else atomic_fetch_add(&sh->err, 1);
        } else {
            if (goshm_buf_release(h, p) == 0) held[i]--;
            else atomic_fetch_add(&sh->err, 1);
        }
        atomic_fetch_add_explicit(&sh->ops, 1, memory_order_relaxed);
    }
}

/* Threads of one process on one buffer (what TSan can watch). */
typedef struct thr_arg {
    goshm_t *h;
    void *p;
    int n, errors;
} thr_arg_t;

static void *thr_churn(void *arg)
{
    thr_arg_t *a = arg;
    for (int i = 0; i < a->n; i++) {
        if (goshm_buf_retain(a->h, a->p) != 0) a->errors++;
        if (goshm_buf_refs(a->h, a->p) < 2) a->errors++;
        if (goshm_buf_release(a->h, a->p) != 0) a->errors++;
    }
    return NULL;
}

static pid_t spawn(const char *role, const char *sock, const char *file)
{
    char *argv[] = {"test-buf", "--role", (char *)role, (char *)sock, (char *)file, NULL};
    return gsh_spawn_self(argv);
}

static void fill(goshm_t *h, shared_t *sh, void **bufs, uint64_t seed)
{
    for (int i = 0; i < NBUF; i++) {
        uint32_t size = (uint32_t)(1 + ipc_rand(&seed) % (i == NBUF - 1 ? 200000 : 3000));
        unsigned char *p = goshm_buf_alloc(h, size);
        REQUIRE(p);
        CHECK(((uintptr_t)p & 15u) == 0);
        for (uint32_t k = 0; k < size; k++) p[k] = (unsigned char)ipc_rand(&seed);
        bufs[i] = p;
        sh->off[i] = goshm_off(h, p);
        sh->size[i] = size;
        sh->sum[i] = ipc_sum(p, size);
        CHECK(goshm_buf_refs(h, p) == 1);
    }
}

static void reset(shared_t *sh)
{
    atomic_store(&sh->ready, 0);
    atomic_store(&sh->go, 0);
    atomic_store(&sh->err, 0);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--role") == 0) {
        shared_t *sh = ipc_shared(argv[4], sizeof(shared_t), NULL, 0);
        if (!sh) return 2;
        if (strcmp(argv[2], "b") == 0) return role_b(argv[3], sh);
        if (strcmp(argv[2], "holder") == 0) return role_holder(argv[3], sh);
        if (strcmp(argv[2], "churn") == 0) return role_churn(argv[3], sh);
        return 3;
    }
    setenv("GOSHM_DEBUG", "badfree=warn", 1);
    const char *bin = gsh_daemon_path(argc, argv);
    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, bin, "--size 256M") == 0);
    char file[64];
    shared_t *sh = ipc_shared(NULL, sizeof(shared_t), file, sizeof file);
    REQUIRE(sh);
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);
    void *bufs[NBUF];
    fill(h, sh, bufs, 42);

    /* 1. A allocates, B retains, A releases, B reads and releases. */
    {
        reset(sh);
        pid_t b = spawn("b", d.sock, file);
        wait_flag(&sh->ready, 1);
        CHECK(atomic_load(&sh->refs_seen) == 2);
        CHECK(goshm_buf_refs(h, bufs[0]) == 2);
        CHECK(goshm_buf_release(h, bufs[0]) == 0);
        CHECK(goshm_buf_release(h, bufs[0]) == -1 && errno == EINVAL); /* we hold none now */
        atomic_store(&sh->go, 1);
        CHECK(gsh_wait_child(b, 10000) == 0);
        CHECK(goshm_buf_refs(h, bufs[0]) == 0 && errno == EINVAL); /* freed by B's release */
        CHECK(goshm_buf_retain(h, bufs[0]) == -1 && errno == EINVAL);
        bufs[0] = goshm_buf_alloc(h, 100);
        REQUIRE(bufs[0]);
        memset(bufs[0], 7, 100);
        sh->off[0] = goshm_off(h, bufs[0]);
        sh->size[0] = 100;
        sh->sum[0] = ipc_sum(bufs[0], 100);
    }

    /* 2. A SIGKILLed holder: exactly its references go. */
    {
        reset(sh);
        pid_t k = spawn("holder", d.sock, file);
        wait_flag(&sh->ready, 1);
        CHECK(goshm_buf_refs(h, bufs[0]) == 4);
        CHECK(goshm_buf_refs(h, bufs[1]) == 2);
        kill(k, SIGKILL);
        CHECK(gsh_wait_child(k, 10000) == -1);
        CHECK_MSG(ipc_wait_refs(h, bufs[0], 1) == 1, "buffer 0 has %u refs after the holder died", goshm_buf_refs(h, bufs[0]));
        CHECK(ipc_wait_refs(h, bufs[1], 1) == 1);
        CHECK(ipc_sum(bufs[0], sh->size[0]) == sh->sum[0]);
        /* Now the holder holds the last reference: killed, the buffer goes. */
        reset(sh);
        k = spawn("holder", d.sock, file);
        wait_flag(&sh->ready, 1);
        CHECK(goshm_buf_release(h, bufs[0]) == 0);
        CHECK(goshm_buf_refs(h, bufs[0]) == 3);
        kill(k, SIGKILL);
        CHECK(gsh_wait_child(k, 10000) == -1);
        CHECK(ipc_wait_refs(h, bufs[1], 1) == 1);
        CHECK_MSG(ipc_wait_refs(h, bufs[0], 0) == 0, "buffer 0 still live after its last holder died");
        bufs[0] = goshm_buf_alloc(h, 100);
        REQUIRE(bufs[0]);
        sh->off[0] = goshm_off(h, bufs[0]);
    }

    /* 3. Children killed at random instants inside retain/release. */
    {
        int rounds = 40 / TEST_SCALE + 5;
        uint64_t seed = 99, ops = 0;
        int bad = 0;
        for (int r = 0; r < rounds; r++) {
            reset(sh);
            atomic_store(&sh->ops, 0);
            pid_t k1 = spawn("churn", d.sock, file);
            pid_t k2 = spawn("churn", d.sock, file);
            wait_flag(&sh->ready, 1);
            usleep((useconds_t)(1000 + ipc_rand(&seed) % 30000));
            kill(k1, SIGKILL);
            usleep((useconds_t)(ipc_rand(&seed) % 3000));
            kill(k2, SIGKILL);
            gsh_wait_child(k1, 10000);
            gsh_wait_child(k2, 10000);
            ops += atomic_load(&sh->ops);
            CHECK(atomic_load(&sh->err) == 0);
            for (int i = 0; i < NBUF; i++) {
                uint32_t got = ipc_wait_refs(h, bufs[i], 1);
                if (got != 1) {
                    bad++;
                    fprintf(stderr, "round %d: buffer %d has %u references, want 1\n", r, i, got);
                }
            }
        }
        CHECK(bad == 0);
        CHECK_MSG(ops > (uint64_t)rounds * 10u, "the churners did only %llu operations", (unsigned long long)ops);
        for (int i = 1; i < NBUF; i++) CHECK(ipc_sum(bufs[i], sh->size[i]) == sh->sum[i]);
    }

    /* 4. goshm_free of a buffer: a release when ours alone, a bad free when
     * others hold references. */
    {
        reset(sh);
        pid_t k = spawn("holder", d.sock, file); /* holds buffer 0 x3, buffer 1 */
        wait_flag(&sh->ready, 1);
        uint64_t n0 = gs_badfree_count();
        goshm_free(h, bufs[1]);
        CHECK(gs_badfree_count() == n0 + 1);
        CHECK(goshm_buf_refs(h, bufs[1]) == 2);
        kill(k, SIGKILL);
        gsh_wait_child(k, 10000);
        CHECK(ipc_wait_refs(h, bufs[1], 1) == 1);
        goshm_free(h, bufs[1]); /* ours alone now: released and freed */
        CHECK(gs_badfree_count() == n0 + 1);
        CHECK(goshm_buf_refs(h, bufs[1]) == 0 && errno == EINVAL);
        goshm_free(h, bufs[1]); /* again: a bad free */
        CHECK(gs_badfree_count() == n0 + 2);
        bufs[1] = NULL;
    }

    /* 5. Four threads retain and release the same buffer. */
    {
        pthread_t t[4];
        thr_arg_t a[4];
        for (int i = 0; i < 4; i++) {
            a[i] = (thr_arg_t){h, bufs[2], 4000 / TEST_SCALE, 0};
            REQUIRE(pthread_create(&t[i], NULL, thr_churn, &a[i]) == 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(t[i], NULL);
            CHECK(a[i].errors == 0);
        }
        CHECK(goshm_buf_refs(h, bufs[2]) == 1);
    }

    /* 6. A fork child: its references are its own (not the parent's),
     * taken before and after it got a slot of its own (its first refill),
     * and dropped when it exits without releasing them. */
    {
        CHECK(goshm_buf_refs(h, bufs[3]) == 1);
        pid_t c = fork();
        if (c == 0) {
            if (goshm_buf_release(h, bufs[3]) != -1 || errno != EINVAL) _exit(1); /* the parent's, not ours */
            if (goshm_buf_retain(h, bufs[3]) != 0) _exit(2);
            void *big = goshm_malloc(h, 1 << 20); /* needs the daemon: the child's own slot */
            if (!big) _exit(3);
            goshm_free(h, big);
            if (goshm_buf_retain(h, bufs[3]) != 0) _exit(4);
            if (goshm_buf_refs(h, bufs[3]) != 3) _exit(5);
            _exit(0);
        }
        CHECK(gsh_wait_child(c, 10000) == 0);
        CHECK_MSG(ipc_wait_refs(h, bufs[3], 1) == 1, "the fork child's references stayed (%u)", goshm_buf_refs(h, bufs[3]));
        CHECK(goshm_buf_release(h, bufs[3]) == 0);
        bufs[3] = NULL;
    }

    for (int i = 0; i < NBUF; i++)
        if (bufs[i]) CHECK(goshm_buf_release(h, bufs[i]) == 0);
    /* A buffer kept by a process that detaches is released by the daemon. */
    void *kept = goshm_buf_alloc(h, 5000);
    CHECK(kept != NULL);
    goshm_detach(h);
    gsh_stats_t st;
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK_MSG(st.in_use_bytes == 0, "%llu bytes in use at the end", (unsigned long long)st.in_use_bytes);
    CHECK(gsh_stop(&d) == 0);
    unlink(file);
    return CHECK_DONE("test-buf");
}
