/* SPDX-License-Identifier: MIT */
/* test-chan.c: Description: channels against a real goshmd: the single-process contract (ENOENT, timeouts EAGAIN / ETIMEDOUT, references moving with messages, close and unlink); several senders and receivers in separate processes with checksummed buffers, every message exactly once and in per-sender order; poll() on goshm_chan_fd; an idle blocked receiver uses no CPU; senders and receivers SIGKILLed mid-stream, then the survivors drain and the heap is empty again.
 *
 * Overview of the engine: shm/overview.h; channels: shm/chan.h,
 * client/chan.c; the repair of a dead sender's or receiver's cell:
 * daemon/bufref.c.
 *
 * Usage: test-chan GOSHMD                   (also $GOSHMD)
 *        test-chan --role ROLE SOCKET FILE  (internal)
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "check.h"
#include "goshm/goshm.h"
#include "ipc.h"

#define MAX_SENDERS 4
#define MAX_PER_SENDER 4000

typedef struct msg {
    uint32_t sender, seq, len, magic;
    uint64_t sum;
    unsigned char data[];
} msg_t;
#define MSG_MAGIC 0x6d736721u

typedef struct shared {
    _Atomic int ready, go;
    uint32_t per_sender, nsenders;
    _Atomic uint32_t received;
    _Atomic uint32_t seen[MAX_SENDERS][MAX_PER_SENDER];
    _Atomic int errors, order_errors, sum_errors;
    _Atomic uint64_t cpu_us, waited_us;
    _Atomic int poll_ok;
    _Atomic uint64_t sent_k, recv_k;
    _Atomic int next_id;
} shared_t;

static void wait_flag(_Atomic int *f, int v)
{
    for (int i = 0; i < 20000 && atomic_load(f) < v; i++) usleep(500);
}

/* A buffer holding one message, checksummed. */
static msg_t *make_msg(goshm_t *h, uint32_t sender, uint32_t seq, uint64_t *seed)
{
    uint32_t len = (uint32_t)(ipc_rand(seed) % 2000);
    msg_t *m = goshm_buf_alloc(h, sizeof *m + len);
    if (!m) return NULL;
    m->sender = sender;
    m->seq = seq;
    m->len = len;
    m->magic = MSG_MAGIC;
    for (uint32_t i = 0; i < len; i++) m->data[i] = (unsigned char)ipc_rand(seed);
    m->sum = ipc_sum(m->data, len) ^ seq;
    return m;
}

static bool msg_ok(const msg_t *m)
{
    return m->magic == MSG_MAGIC && m->len < 2000 && (ipc_sum(m->data, m->len) ^ m->seq) == m->sum;
}

static int role_sender(const char *sock, shared_t *sh, int id)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 10;
    goshm_chan_t *c = goshm_chan_open(h, "mpmc", 0);
    if (!c) return 11;
    uint64_t seed = (uint64_t)id * 1000003u + 1u;
    atomic_fetch_add(&sh->ready, 1);
    wait_flag(&sh->go, 1);
    for (uint32_t s = 0; s < sh->per_sender; s++) {
        msg_t *m = make_msg(h, (uint32_t)id, s, &seed);
        if (!m) return 12;
        if (goshm_chan_send(c, goshm_off(h, m), -1) != 0) return 13;
        /* The reference went with the message: no longer ours. */
        if (goshm_buf_release(h, m) != -1 || errno != EINVAL) atomic_fetch_add(&sh->errors, 1);
    }
    goshm_chan_close(c);
    goshm_detach(h);
    return 0;
}

static int role_receiver(const char *sock, shared_t *sh)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 20;
    goshm_chan_t *c = goshm_chan_open(h, "mpmc", 0);
    if (!c) return 21;
    int64_t last[MAX_SENDERS];
    for (int i = 0; i < MAX_SENDERS; i++) last[i] = -1;
    uint32_t total = sh->per_sender * sh->nsenders;
    atomic_fetch_add(&sh->ready, 1);
    while (atomic_load(&sh->received) < total) {
        goshm_off_t off;
        if (goshm_chan_recv(c, &off, 50) != 0) {
            if (errno != ETIMEDOUT) atomic_fetch_add(&sh->errors, 1);
            continue;
        }
        msg_t *m = goshm_ptr(h, off);
        if (!m || !msg_ok(m) || m->sender >= sh->nsenders || m->seq >= sh->per_sender) {
            atomic_fetch_add(&sh->sum_errors, 1);
        } else {
            if ((int64_t)m->seq <= last[m->sender]) atomic_fetch_add(&sh->order_errors, 1);
            last[m->sender] = m->seq;
            atomic_fetch_add(&sh->seen[m->sender][m->seq], 1);
        }
        if (goshm_buf_release(h, m) != 0) atomic_fetch_add(&sh->errors, 1);
        atomic_fetch_add(&sh->received, 1);
    }
    goshm_chan_close(c);
    goshm_detach(h);
    return 0;
}

/* Poll the channel's descriptor until a message comes. */
static int role_poller(const char *sock, shared_t *sh)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 30;
    goshm_chan_t *c = goshm_chan_open(h, "polled", 0);
    if (!c) return 31;
    int fd = goshm_chan_fd(c);
    if (fd < 0) return 32;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) != 0) return 33; /* nothing yet */
    atomic_store(&sh->ready, 1);
    uint64_t t0 = gsh_now_ms();
    int n = poll(&p, 1, 5000);
    if (n != 1 || !(p.revents & POLLIN)) return 34;
    goshm_off_t off;
    if (goshm_chan_recv(c, &off, 0) != 0 || off != (goshm_off_t)sh->sent_k) return 35;
    if (gsh_now_ms() - t0 < 100) return 36; /* woke before the send */
    /* Drained: not readable any more; two more: readable until both are read. */
    if (poll(&p, 1, 0) != 0) return 37;
    atomic_store(&sh->poll_ok, 1);
    wait_flag(&sh->go, 2);
    if (poll(&p, 1, 2000) != 1) return 38;
    if (goshm_chan_recv(c, &off, 0) != 0) return 39;
    if (poll(&p, 1, 0) != 1) return 40; /* the second one still waits */
    if (goshm_chan_recv(c, &off, 0) != 0) return 41;
    if (poll(&p, 1, 0) != 0) return 42;
    goshm_chan_close(c);
    goshm_detach(h);
    return 0;
}

static uint64_t cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
           (uint64_t)ru.ru_stime.tv_usec;
}

/* Block in recv(-1) until the test sends; report the CPU time it took. */
static int role_idle(const char *sock, shared_t *sh)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 50;
    goshm_chan_t *c = goshm_chan_open(h, "idle", 0);
    if (!c) return 51;
    atomic_store(&sh->ready, 1);
    uint64_t c0 = cpu_us(), t0 = gsh_now_ms();
    goshm_off_t off;
    if (goshm_chan_recv(c, &off, -1) != 0) return 52;
    atomic_store(&sh->cpu_us, cpu_us() - c0);
    atomic_store(&sh->waited_us, (gsh_now_ms() - t0) * 1000u);
    goshm_chan_close(c);
    goshm_detach(h);
    return 0;
}

/* Kill storm: send / receive checksummed buffers for ever. */
static int role_ksend(const char *sock, shared_t *sh)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 60;
    goshm_chan_t *c = goshm_chan_open(h, "storm", 0);
    if (!c) return 61;
    int id = atomic_fetch_add(&sh->next_id, 1);
    uint64_t seed = (uint64_t)getpid();
    atomic_fetch_add(&sh->ready, 1);
    for (uint32_t s = 0;; s++) {
        msg_t *m = make_msg(h, (uint32_t)id % MAX_SENDERS, s, &seed);
        if (!m) {
            atomic_fetch_add(&sh->errors, 1);
            continue;
        }
        if (goshm_chan_send(c, goshm_off(h, m), 20) == 0) atomic_fetch_add_explicit(&sh->sent_k, 1, memory_order_relaxed);
        else if (goshm_buf_release(h, m) != 0) atomic_fetch_add(&sh->errors, 1);
    }
}

static int role_krecv(const char *sock, shared_t *sh)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 70;
    goshm_chan_t *c = goshm_chan_open(h, "storm", 0);
    if (!c) return 71;
    atomic_fetch_add(&sh->ready, 1);
    for (;;) {
        goshm_off_t off;
        if (goshm_chan_recv(c, &off, 20) != 0) continue;
        msg_t *m = goshm_ptr(h, off);
        if (!msg_ok(m)) atomic_fetch_add(&sh->sum_errors, 1);
        if (goshm_buf_release(h, m) != 0) atomic_fetch_add(&sh->errors, 1);
        atomic_fetch_add_explicit(&sh->recv_k, 1, memory_order_relaxed);
    }
}

static const char *g_file;
static pid_t spawn(const char *role, const char *sock)
{
    char *argv[] = {"test-chan", "--role", (char *)role, (char *)sock, (char *)g_file, NULL};
    return gsh_spawn_self(argv);
}

static void reset(shared_t *sh)
{
    memset(sh, 0, sizeof *sh);
}

static void test_contract(goshm_t *h)
{
    CHECK(goshm_chan_open(h, "nope", 0) == NULL && errno == ENOENT);
    CHECK(goshm_chan_open(h, "bad/name", 4) == NULL && errno == EINVAL);
    CHECK(goshm_chan_open(h, "big", (1u << 20) + 1u) == NULL && errno == EINVAL);
    goshm_chan_t *c = goshm_chan_open(h, "contract", 2);
    REQUIRE(c);
    goshm_chan_t *c2 = goshm_chan_open(h, "contract", 0); /* the same channel, a second handle */
    REQUIRE(c2);
    goshm_off_t off;
    CHECK(goshm_chan_recv(c, &off, 0) == -1 && errno == EAGAIN);
    uint64_t t0 = gsh_now_ms();
    CHECK(goshm_chan_recv(c, &off, 150) == -1 && errno == ETIMEDOUT);
    uint64_t took = gsh_now_ms() - t0;
    CHECK_MSG(took >= 140 && took < 2000, "recv timed out after %llu ms", (unsigned long long)took);
    char *plain = goshm_malloc(h, 64);
    REQUIRE(plain);
    goshm_off_t po = goshm_off(h, plain);
    CHECK(goshm_chan_send(c, GOSHM_NULL, 0) == -1 && errno == EINVAL);
    CHECK(goshm_chan_send(c, 8, 0) == -1 && errno == EINVAL); /* not inside the heap's object area */
    CHECK(goshm_chan_send(c, po, 0) == 0);
    CHECK(goshm_chan_send(c, po + 8, 0) == 0);
    CHECK(goshm_chan_send(c, po + 16, 0) == -1 && errno == EAGAIN);
    t0 = gsh_now_ms();
    CHECK(goshm_chan_send(c, po + 16, 120) == -1 && errno == ETIMEDOUT);
    CHECK(gsh_now_ms() - t0 >= 110);
    CHECK(goshm_chan_recv(c2, &off, 0) == 0 && off == po);
    CHECK(goshm_chan_recv(c, &off, -1) == 0 && off == po + 8);
    /* A buffer: its reference travels with it. */
    void *b = goshm_buf_alloc(h, 300);
    REQUIRE(b);
    CHECK(goshm_chan_send(c, goshm_off(h, b), 0) == 0);
    CHECK(goshm_buf_refs(h, b) == 1);                          /* in the channel */
    CHECK(goshm_buf_release(h, b) == -1 && errno == EINVAL);   /* not ours any more */
    CHECK(goshm_chan_recv(c, &off, 0) == 0 && off == goshm_off(h, b));
    CHECK(goshm_buf_refs(h, b) == 1);
    CHECK(goshm_buf_release(h, b) == 0);                       /* ours again: freed */
    CHECK(goshm_buf_refs(h, b) == 0);
    /* Fan-out: two retains, two sends; plus one left in the channel when it
     * goes (its reference is released with the channel). */
    b = goshm_buf_alloc(h, 100);
    REQUIRE(b);
    CHECK(goshm_buf_retain(h, b) == 0);
    CHECK(goshm_chan_send(c, goshm_off(h, b), 0) == 0);
    CHECK(goshm_chan_send(c, goshm_off(h, b), 0) == 0);
    CHECK(goshm_buf_refs(h, b) == 2);
    CHECK(goshm_chan_recv(c, &off, 0) == 0);
    CHECK(goshm_buf_release(h, b) == 0);
    CHECK(goshm_buf_refs(h, b) == 1);
    CHECK(goshm_chan_close(c2) == 0);
    CHECK(goshm_chan_unlink(h, "contract") == 0);
    CHECK(goshm_chan_unlink(h, "contract") == -1 && errno == ENOENT);
    CHECK(goshm_buf_refs(h, b) == 1);
    CHECK(goshm_chan_close(c) == 0); /* the last reference: drained, freed */
    CHECK_MSG(goshm_buf_refs(h, b) == 0, "the message's buffer survived its channel");
    goshm_free(h, plain);
}

/* Threads of one process: two senders, two receivers on one channel. */
#define THR_MSGS 3000
typedef struct tchan {
    goshm_t *h;
    goshm_chan_t *c;
    int id;
    _Atomic uint32_t *seen;  /* [2][THR_MSGS] */
    _Atomic uint32_t *taken;
    _Atomic int *errors;
} tchan_t;

static void *thr_send(void *arg)
{
    tchan_t *a = arg;
    for (uint32_t i = 0; i < THR_MSGS / TEST_SCALE; i++) {
        uint32_t *m = goshm_buf_alloc(a->h, 64);
        if (!m) { atomic_fetch_add(a->errors, 1); continue; }
        m[0] = (uint32_t)a->id;
        m[1] = i;
        if (goshm_chan_send(a->c, goshm_off(a->h, m), -1) != 0) atomic_fetch_add(a->errors, 1);
    }
    return NULL;
}

static void *thr_recv(void *arg)
{
    tchan_t *a = arg;
    int64_t last[2] = {-1, -1};
    while (atomic_load(a->taken) < 2u * (THR_MSGS / TEST_SCALE)) {
        goshm_off_t off;
        if (goshm_chan_recv(a->c, &off, 20) != 0) continue;
        uint32_t *m = goshm_ptr(a->h, off);
        if (!m || m[0] > 1 || m[1] >= THR_MSGS || (int64_t)m[1] <= last[m[0]]) {
            atomic_fetch_add(a->errors, 1);
        } else {
            last[m[0]] = m[1];
            atomic_fetch_add(&a->seen[m[0] * THR_MSGS + m[1]], 1);
        }
        if (goshm_buf_release(a->h, m) != 0) atomic_fetch_add(a->errors, 1);
        atomic_fetch_add(a->taken, 1);
    }
    return NULL;
}

static void test_threads(goshm_t *h)
{
    static _Atomic uint32_t seen[2 * THR_MSGS];
    _Atomic uint32_t taken = 0;
    _Atomic int errors = 0;
    goshm_chan_t *c = goshm_chan_open(h, "threads", 8);
    REQUIRE(c);
    pthread_t t[4];
    tchan_t a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (tchan_t){h, c, i % 2, seen, &taken, &errors};
        REQUIRE(pthread_create(&t[i], NULL, i < 2 ? thr_send : thr_recv, &a[i]) == 0);
    }
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    uint32_t bad = 0;
    for (uint32_t s = 0; s < 2; s++)
        for (uint32_t q = 0; q < THR_MSGS / TEST_SCALE; q++)
            if (atomic_load(&seen[s * THR_MSGS + q]) != 1) bad++;
    CHECK_MSG(bad == 0 && atomic_load(&errors) == 0, "threads: %u messages not received exactly once, %d errors", bad,
              atomic_load(&errors));
    CHECK(goshm_chan_unlink(h, "threads") == 0);
    CHECK(goshm_chan_close(c) == 0);
}

static void test_mpmc(const char *sock, shared_t *sh, goshm_t *h)
{
    reset(sh);
    sh->nsenders = 3;
    sh->per_sender = 3000 / TEST_SCALE;
    goshm_chan_t *c = goshm_chan_open(h, "mpmc", 16);
    REQUIRE(c);
    pid_t pids[6];
    for (int i = 0; i < 3; i++) {
        char role[16];
        snprintf(role, sizeof role, "send%d", i);
        pids[i] = spawn(role, sock);
    }
    for (int i = 0; i < 3; i++) pids[3 + i] = spawn("recv", sock);
    for (int i = 0; i < 20000 && atomic_load(&sh->ready) < 6; i++) usleep(500);
    CHECK(atomic_load(&sh->ready) == 6);
    atomic_store(&sh->go, 1);
    for (int i = 0; i < 6; i++) CHECK_MSG(gsh_wait_child(pids[i], 60000) == 0, "child %d failed", i);
    uint32_t missing = 0, dup = 0;
    for (uint32_t s = 0; s < sh->nsenders; s++)
        for (uint32_t q = 0; q < sh->per_sender; q++) {
            uint32_t n = atomic_load(&sh->seen[s][q]);
            if (n == 0) missing++;
            if (n > 1) dup++;
        }
    CHECK_MSG(missing == 0 && dup == 0, "%u messages lost, %u received more than once", missing, dup);
    CHECK(atomic_load(&sh->order_errors) == 0);
    CHECK(atomic_load(&sh->sum_errors) == 0);
    CHECK(atomic_load(&sh->errors) == 0);
    goshm_off_t off;
    CHECK(goshm_chan_recv(c, &off, 0) == -1 && errno == EAGAIN);
    CHECK(goshm_chan_unlink(h, "mpmc") == 0);
    CHECK(goshm_chan_close(c) == 0);
}

static void test_poll(const char *sock, shared_t *sh, goshm_t *h)
{
    reset(sh);
    goshm_chan_t *c = goshm_chan_open(h, "polled", 4);
    REQUIRE(c);
    pid_t p = spawn("poller", sock);
    wait_flag(&sh->ready, 1);
    usleep(200000);
    char *x = goshm_malloc(h, 16);
    sh->sent_k = goshm_off(h, x);
    CHECK(goshm_chan_send(c, goshm_off(h, x), 0) == 0);
    wait_flag(&sh->poll_ok, 1);
    CHECK(goshm_chan_send(c, goshm_off(h, x), 0) == 0);
    CHECK(goshm_chan_send(c, goshm_off(h, x), 0) == 0);
    atomic_store(&sh->go, 2);
    CHECK_MSG(gsh_wait_child(p, 20000) == 0, "the poller failed");
    goshm_free(h, x);
    CHECK(goshm_chan_unlink(h, "polled") == 0);
    CHECK(goshm_chan_close(c) == 0);
}

static void test_idle(const char *sock, shared_t *sh, goshm_t *h)
{
    reset(sh);
    goshm_chan_t *c = goshm_chan_open(h, "idle", 4);
    REQUIRE(c);
    pid_t p = spawn("idle", sock);
    wait_flag(&sh->ready, 1);
    usleep(1500000);
    char *x = goshm_malloc(h, 16);
    CHECK(goshm_chan_send(c, goshm_off(h, x), 0) == 0);
    CHECK(gsh_wait_child(p, 10000) == 0);
    uint64_t cpu = atomic_load(&sh->cpu_us), waited = atomic_load(&sh->waited_us);
    CHECK_MSG(waited >= 1000000u, "the receiver waited only %llu us", (unsigned long long)waited);
    CHECK_MSG(cpu < 60000u, "a receiver blocked for %llu ms used %llu us of CPU", (unsigned long long)waited / 1000,
              (unsigned long long)cpu);
    goshm_free(h, x);
    CHECK(goshm_chan_unlink(h, "idle") == 0);
    CHECK(goshm_chan_close(c) == 0);
}

/* Senders the storm killed: each may leak the one buffer it was allocating
 * (README "Not done yet": a client killed between goshm_malloc's handing
 * out a slot and goshm_buf_alloc's recording of it loses that slot when
 * the allocation took a new span; test-crashpoints checks the usual case,
 * which goshmd repairs). */
static uint64_t g_sender_kills;

static void kill_child(pid_t *pids, const char **roles, int k)
{
    kill(pids[k], SIGKILL);
    gsh_wait_child(pids[k], 10000);
    pids[k] = 0;
    if (strcmp(roles[k], "ksend") == 0) g_sender_kills++;
}

static void test_storm(const char *sock, shared_t *sh, goshm_t *h)
{
    reset(sh);
    goshm_chan_t *c = goshm_chan_open(h, "storm", 8);
    REQUIRE(c);
    uint64_t seed = 7;
    int rounds = 30 / TEST_SCALE + 4;
    pid_t pids[4] = {0};
    const char *roles[4] = {"ksend", "ksend", "krecv", "krecv"};
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < 4; i++)
            if (!pids[i]) pids[i] = spawn(roles[i], sock);
        usleep((useconds_t)(5000 + ipc_rand(&seed) % 40000));
        /* Kill one or two of them at random instants. */
        int k = (int)(ipc_rand(&seed) % 4);
        kill_child(pids, roles, k);
        if (ipc_rand(&seed) & 1) {
            usleep((useconds_t)(ipc_rand(&seed) % 5000));
            k = (k + 1 + (int)(ipc_rand(&seed) % 3)) % 4;
            kill_child(pids, roles, k);
        }
    }
    for (int i = 0; i < 4; i++)
        if (pids[i]) kill_child(pids, roles, i);
    CHECK(atomic_load(&sh->sum_errors) == 0);
    CHECK(atomic_load(&sh->errors) == 0);
    CHECK_MSG(atomic_load(&sh->sent_k) > (uint64_t)rounds, "only %llu messages sent",
              (unsigned long long)atomic_load(&sh->sent_k));
    /* Wait for the daemon to have reclaimed every killed child. */
    gsh_stats_t st;
    uint32_t one = 1;
    CHECK(gsh_wait_for(sock, &st, gsh_pred_clients, &one, 10000) == 1);
    usleep(300000); /* the tick retries what a lock kept back */
    /* The survivor drains what is left: whole, checksummed messages. */
    goshm_off_t off;
    uint32_t drained = 0;
    while (goshm_chan_recv(c, &off, 100) == 0) {
        msg_t *m = goshm_ptr(h, off);
        CHECK(msg_ok(m));
        CHECK(goshm_buf_refs(h, m) == 1);
        CHECK(goshm_buf_release(h, m) == 0);
        drained++;
    }
    CHECK(errno == ETIMEDOUT);
    CHECK(drained <= 8);
    fprintf(stderr, "storm: %llu sent, %llu received by the killed receivers, %u drained\n",
            (unsigned long long)atomic_load(&sh->sent_k), (unsigned long long)atomic_load(&sh->recv_k), drained);
    CHECK(goshm_chan_unlink(h, "storm") == 0);
    CHECK(goshm_chan_close(c) == 0);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--role") == 0) {
        shared_t *sh = ipc_shared(argv[4], sizeof(shared_t), NULL, 0);
        if (!sh) return 2;
        if (strncmp(argv[2], "send", 4) == 0) return role_sender(argv[3], sh, atoi(argv[2] + 4));
        if (strcmp(argv[2], "recv") == 0) return role_receiver(argv[3], sh);
        if (strcmp(argv[2], "poller") == 0) return role_poller(argv[3], sh);
        if (strcmp(argv[2], "idle") == 0) return role_idle(argv[3], sh);
        if (strcmp(argv[2], "ksend") == 0) return role_ksend(argv[3], sh);
        if (strcmp(argv[2], "krecv") == 0) return role_krecv(argv[3], sh);
        return 3;
    }
    const char *bin = gsh_daemon_path(argc, argv);
    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, bin, "--size 256M") == 0);
    static char file[64];
    shared_t *sh = ipc_shared(NULL, sizeof(shared_t), file, sizeof file);
    REQUIRE(sh);
    g_file = file;
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);
    test_contract(h);
    test_threads(h);
    test_mpmc(d.sock, sh, h);
    test_poll(d.sock, sh, h);
    test_idle(d.sock, sh, h);
    test_storm(d.sock, sh, h);
    goshm_detach(h);
    gsh_stats_t st;
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    /* Every reference was dropped; what may remain is at most one message
     * buffer (< 2304 bytes: the 2304-byte class) per sender the storm
     * killed, the known allocation window (see g_sender_kills). */
    if (st.in_use_bytes) fprintf(stderr, "test-chan: %llu bytes in use at the end, %llu senders killed\n",
                                 (unsigned long long)st.in_use_bytes, (unsigned long long)g_sender_kills);
    CHECK_MSG(st.in_use_bytes <= g_sender_kills * 2304u, "%llu bytes in use at the end",
              (unsigned long long)st.in_use_bytes);
    CHECK(gsh_stop(&d) == 0);
    unlink(file);
    return CHECK_DONE("test-chan");
}
