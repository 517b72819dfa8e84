/* SPDX-License-Identifier: MIT */
/* test-ipc-restart.c: Description: buffers and channels across a goshmd SIGKILL and adoption (--state-dir): messages sent before the restart are received after it with their references; a sender keeps sending after it; a process that held references before the restart and resumed its slot after it is SIGKILLed, and exactly its references go (its records moved into its new slot); the heap is empty at the end.
 *
 * Overview of the engine: shm/overview.h; adoption: daemon/adopt.c; the
 * records' move into a resumed slot: client/reconnect.c, client/buf.c
 * (gs_buf_holdings).
 *
 * Usage: test-ipc-restart GOSHMD                    (also $GOSHMD)
 *        test-ipc-restart --role ROLE SOCKET FILE   (internal)
 */
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>

#include "check.h"
#include "goshm/goshm.h"
#include "ipc.h"
#include "rdaemon.h"

#define NMSG 10

typedef struct shared {
    _Atomic int ready, go, resumed;
    goshm_off_t x;
} shared_t;

static void wait_flag(_Atomic int *f, int v)
{
    for (int i = 0; i < 40000 && atomic_load(f) < v; i++) usleep(500);
}

static void *msg(goshm_t *h, uint32_t seq)
{
    uint64_t *m = goshm_buf_alloc(h, 512);
    if (!m) return NULL;
    m[0] = seq;
    for (int i = 2; i < 64; i++) m[i] = seq * 1000003u + (uint64_t)i;
    m[1] = ipc_sum(&m[2], 62 * 8);
    return m;
}

static bool msg_ok(const uint64_t *m, uint32_t seq) { return m[0] == seq && m[1] == ipc_sum(&m[2], 62 * 8); }

static int role_sender(const char *sock, shared_t *sh)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 10;
    goshm_chan_t *c = goshm_chan_open(h, "restart", 0);
    if (!c) return 11;
    for (uint32_t i = 0; i < NMSG; i++) {
        void *m = msg(h, i);
        if (!m || goshm_chan_send(c, goshm_off(h, m), 0) != 0) return 12;
    }
    atomic_fetch_add(&sh->ready, 1);
    wait_flag(&sh->go, 1);
    for (uint32_t i = NMSG; i < 2 * NMSG; i++) {
        void *m = msg(h, i);
        if (!m || goshm_chan_send(c, goshm_off(h, m), 5000) != 0) return 13;
    }
    goshm_chan_close(c);
    return goshm_detach(h) == 0 ? 0 : 14;
}

/* Holds x twice from before the restart; after it, needs the daemon (a
 * large allocation: the slot resumes), then waits to be killed. */
static int role_holder(const char *sock, shared_t *sh)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 20;
    void *x = goshm_ptr(h, sh->x);
    if (goshm_buf_retain(h, x) || goshm_buf_retain(h, x)) return 21;
    atomic_fetch_add(&sh->ready, 1);
    wait_flag(&sh->go, 1);
    void *big = goshm_malloc(h, 1 << 20);
    if (!big) return 22;
    goshm_free(h, big); /* plain objects of a dead process stay allocated: not this one */
    atomic_store(&sh->resumed, 1);
    for (;;) pause();
}

/* Attached after the restart: one plain message, which must wake a poller
 * of the channel's descriptor from before the restart. */
static int role_late(const char *sock, shared_t *sh)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 40;
    goshm_chan_t *c = goshm_chan_open(h, "restart", 0);
    if (!c) return 41;
    wait_flag(&sh->go, 2);
    if (goshm_chan_send(c, sh->x, 0) != 0) return 42;
    goshm_chan_close(c);
    return goshm_detach(h) == 0 ? 0 : 43;
}

/* Holds x three times, then waits: killed while no daemon runs. */
static int role_sleeper(const char *sock, shared_t *sh)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 30;
    void *x = goshm_ptr(h, sh->x);
    for (int i = 0; i < 3; i++)
        if (goshm_buf_retain(h, x)) return 31;
    atomic_fetch_add(&sh->ready, 1);
    for (;;) pause();
}

static pid_t spawn(const char *role, const char *sock, const char *file)
{
    char *argv[] = {"test-ipc-restart", "--role", (char *)role, (char *)sock, (char *)file, NULL};
    return gsh_spawn_self(argv);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--role") == 0) {
        shared_t *sh = ipc_shared(argv[4], sizeof(shared_t), NULL, 0);
        if (!sh) return 2;
        if (strcmp(argv[2], "sender") == 0) return role_sender(argv[3], sh);
        if (strcmp(argv[2], "holder") == 0) return role_holder(argv[3], sh);
        if (strcmp(argv[2], "sleeper") == 0) return role_sleeper(argv[3], sh);
        if (strcmp(argv[2], "late") == 0) return role_late(argv[3], sh);
        return 3;
    }
    rd_t d;
    rd_init(&d, gsh_daemon_path(argc, argv));
    REQUIRE(rd_start(&d, "256M", NULL) == 0);
    char file[64];
    shared_t *sh = ipc_shared(NULL, sizeof(shared_t), file, sizeof file);
    REQUIRE(sh);
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);
    goshm_chan_t *c = goshm_chan_open(h, "restart", 16);
    REQUIRE(c);
    void *x = goshm_buf_alloc(h, 1000);
    REQUIRE(x);
    sh->x = goshm_off(h, x);
    pid_t s = spawn("sender", d.sock, file);
    pid_t k = spawn("holder", d.sock, file);
    pid_t z = spawn("sleeper", d.sock, file);
    pid_t z2 = spawn("sleeper", d.sock, file);
    for (int i = 0; i < 40000 && atomic_load(&sh->ready) < 4; i++) usleep(500);
    CHECK(atomic_load(&sh->ready) == 4);
    CHECK(goshm_buf_refs(h, x) == 9);

    /* Quiet for longer than a pending connection may be: attached ones
     * that sent a request (ChanOpen) must stay (daemon/ctl.c). */
    usleep(2500000);
    /* The daemon dies with ten messages in flight; another adopts the heap. */
    rd_stop(&d, SIGKILL);
    /* The sleeper dies while no daemon runs: the adopter finds its
     * references in its slot file (state directory) and drops them. */
    kill(z, SIGKILL);
    gsh_wait_child(z, 10000);
    REQUIRE(rd_start(&d, "256M", NULL) == 0);
    gsh_stats_t st;
    CHECK(gsh_stats(d.sock, &st) == 0 && st.adopted);
    CHECK_MSG(ipc_wait_refs(h, x, 6) == 6, "x has %u references after the adoption, want 6", goshm_buf_refs(h, x));
    /* The second sleeper dies after the restart, before it ever needed the
     * daemon (its slot an orphan, its records in the old slot file). */
    kill(z2, SIGKILL);
    gsh_wait_child(z2, 10000);
    CHECK_MSG(ipc_wait_refs(h, x, 3) == 3, "x has %u references after the orphan died, want 3", goshm_buf_refs(h, x));

    for (uint32_t i = 0; i < NMSG; i++) {
        goshm_off_t off;
        CHECK_MSG(goshm_chan_recv(c, &off, 5000) == 0, "message %u sent before the restart not received", i);
        uint64_t *m = goshm_ptr(h, off);
        CHECK(m && msg_ok(m, i));
        CHECK(goshm_buf_refs(h, m) == 1);
        CHECK(goshm_buf_release(h, m) == 0);
    }
    atomic_store(&sh->go, 1);
    for (uint32_t i = NMSG; i < 2 * NMSG; i++) {
        goshm_off_t off;
        CHECK_MSG(goshm_chan_recv(c, &off, 10000) == 0, "message %u sent after the restart not received", i);
        uint64_t *m = goshm_ptr(h, off);
        CHECK(m && msg_ok(m, i));
        CHECK(goshm_buf_release(h, m) == 0);
    }
    CHECK(gsh_wait_child(s, 20000) == 0);

    /* The holder resumed its slot (its records moved with it): killed,
     * exactly its two references go. */
    wait_flag(&sh->resumed, 1);
    CHECK(atomic_load(&sh->resumed) == 1);
    kill(k, SIGKILL);
    gsh_wait_child(k, 10000);
    CHECK_MSG(ipc_wait_refs(h, x, 1) == 1, "x has %u references after the holder died, want 1", goshm_buf_refs(h, x));
    /* The descriptor, got again after the restart, is the new daemon's:
     * a sender that attached after the restart wakes its poller. */
    void *big = goshm_malloc(h, 1 << 20); /* needs the daemon: this process reconnects */
    CHECK(big != NULL);
    goshm_free(h, big);
    int fd = goshm_chan_fd(c);
    CHECK(fd >= 0);
    pid_t late = spawn("late", d.sock, file);
    usleep(100000);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    CHECK(poll(&pfd, 1, 0) == 0);
    atomic_store(&sh->go, 2);
    CHECK_MSG(poll(&pfd, 1, 5000) == 1, "the channel's descriptor was not signalled after the restart");
    goshm_off_t got;
    CHECK(goshm_chan_recv(c, &got, 0) == 0 && got == sh->x);
    CHECK(gsh_wait_child(late, 10000) == 0);
    CHECK(goshm_buf_release(h, x) == 0);
    CHECK(goshm_chan_unlink(h, "restart") == 0);
    CHECK(goshm_chan_close(c) == 0);
    CHECK(goshm_detach(h) == 0);
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK_MSG(st.in_use_bytes == 0, "%llu bytes in use at the end", (unsigned long long)st.in_use_bytes);
    rd_stop(&d, SIGTERM);
    rd_cleanup(&d);
    unlink(file);
    return CHECK_DONE("test-ipc-restart");
}
