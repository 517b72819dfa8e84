/* SPDX-License-Identifier: MIT */
/* test-crashpoints.c: Description: a client SIGKILLed at every step of every buffer and channel operation (GOSHM_CLIENT_KILLPOINT): after goshmd's repair the counts are exact, a half-sent message is delivered once with its reference, a half-received one's reference is dropped, no lock or cell stays stuck, and the heap is empty at the end.
 *
 * Overview of the engine: shm/overview.h; the protocols: client/buf.c,
 * client/chan.c; the repair: daemon/bufref.c. Each case runs a child with
 * GOSHM_CLIENT_KILLPOINT=POINT:1, which dies at the first pass through
 * POINT; the test checks what the daemon made of it.
 *
 * Usage: test-crashpoints GOSHMD                        (also $GOSHMD)
 *        test-crashpoints --role ROLE SOCKET FILE       (internal)
 */
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>

#include "check.h"
#include "goshm/goshm.h"
#include "ipc.h"

typedef struct shared {
    _Atomic int ready, go;
    goshm_off_t buf;
} shared_t;

static void wait_flag(_Atomic int *f, int v)
{
    for (int i = 0; i < 20000 && atomic_load(f) < v; i++) usleep(500);
}

static int role(const char *r, const char *sock, shared_t *sh)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 10;
    void *b = goshm_ptr(h, sh->buf);
    if (strcmp(r, "retain") == 0) {
        goshm_buf_retain(h, b);
    } else if (strcmp(r, "release") == 0) {
        if (goshm_buf_retain(h, b) || goshm_buf_retain(h, b)) return 11;
        goshm_buf_release(h, b);
    } else if (strcmp(r, "last") == 0) {
        if (goshm_buf_retain(h, b)) return 12;
        atomic_store(&sh->ready, 1);
        wait_flag(&sh->go, 1);
        goshm_buf_release(h, b);
    } else if (strcmp(r, "alloc") == 0) {
        /* A warm cache first (a plain object of the same class), as in a
         * process that allocates in a loop: the slot goshm_buf_alloc then
         * gets comes from the span its intent names. */
        void *warm = goshm_malloc(h, 1000 + 32);
        if (!warm) return 17;
        goshm_free(h, warm);
        if (!goshm_buf_alloc(h, 1000)) return 16;
    } else if (strcmp(r, "send") == 0) {
        goshm_chan_t *c = goshm_chan_open(h, "cp", 0);
        if (!c) return 13;
        char *m = goshm_buf_alloc(h, 64);
        if (!m) return 14;
        strcpy(m, "half-sent");
        goshm_chan_send(c, goshm_off(h, m), 0);
    } else if (strcmp(r, "recv") == 0) {
        goshm_chan_t *c = goshm_chan_open(h, "cp", 0);
        if (!c) return 15;
        goshm_off_t off;
        goshm_chan_recv(c, &off, 1000);
    }
    return 0; /* the kill point was not reached: the test fails on the status */
}

/* Run role with the kill point armed; 1 if it died by it. */
static int run(const char *sock, const char *file, const char *r, const char *point, shared_t *sh, bool last)
{
    char env[64];
    snprintf(env, sizeof env, "%s:1", point);
    setenv("GOSHM_CLIENT_KILLPOINT", env, 1);
    atomic_store(&sh->ready, 0);
    atomic_store(&sh->go, 0);
    char *argv[] = {"test-crashpoints", "--role", (char *)r, (char *)sock, (char *)file, NULL};
    pid_t p = gsh_spawn_self(argv);
    unsetenv("GOSHM_CLIENT_KILLPOINT");
    (void)last;
    return p;
}

static bool died(pid_t p) { return gsh_wait_child(p, 10000) == -1; }

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--role") == 0) {
        shared_t *sh = ipc_shared(argv[4], sizeof(shared_t), NULL, 0);
        if (!sh) return 2;
        return role(argv[2], argv[3], sh);
    }
    const char *bin = gsh_daemon_path(argc, argv);
    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, bin, "--size 128M") == 0);
    static char file[64];
    shared_t *sh = ipc_shared(NULL, sizeof(shared_t), file, sizeof file);
    REQUIRE(sh);
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);
    gsh_stats_t st;
    uint32_t one = 1;
    void *b = goshm_buf_alloc(h, 256);
    REQUIRE(b);
    sh->buf = goshm_off(h, b);

    const char *points[] = {"retain-locked", "retain-recorded", "release-locked", "release-recorded"};
    for (int i = 0; i < 4; i++) {
        pid_t p = run(d.sock, file, i < 2 ? "retain" : "release", points[i], sh, false);
        CHECK_MSG(died(p), "%s: the child did not die at its kill point", points[i]);
        CHECK(gsh_wait_for(d.sock, &st, gsh_pred_clients, &one, 10000) == 1);
        CHECK_MSG(ipc_wait_refs(h, b, 1) == 1, "%s: %u references, want 1", points[i], goshm_buf_refs(h, b));
        /* The lock is free again: our own count changes go through at once. */
        uint64_t t0 = gsh_now_ms();
        CHECK(goshm_buf_retain(h, b) == 0 && goshm_buf_release(h, b) == 0);
        CHECK(gsh_now_ms() - t0 < 1000);
    }

    /* The last reference, dropped by a process that dies before freeing. */
    {
        void *b2 = goshm_buf_alloc(h, 5000);
        REQUIRE(b2);
        sh->buf = goshm_off(h, b2);
        pid_t p = run(d.sock, file, "last", "release-zero", sh, true);
        wait_flag(&sh->ready, 1);
        CHECK(goshm_buf_refs(h, b2) == 2);
        CHECK(goshm_buf_release(h, b2) == 0);
        atomic_store(&sh->go, 1);
        CHECK(died(p));
        CHECK(gsh_wait_for(d.sock, &st, gsh_pred_clients, &one, 10000) == 1);
        CHECK_MSG(ipc_wait_refs(h, b2, 0) == 0, "release-zero: the buffer was not freed");
        sh->buf = goshm_off(h, b);
    }

    /* Allocations cut short: nothing leaks (checked at the end). */
    const char *apoints[] = {"alloc-handed", "alloc-malloced", "alloc-header"};
    for (int i = 0; i < 3; i++) {
        pid_t p = run(d.sock, file, "alloc", apoints[i], sh, false);
        CHECK_MSG(died(p), "%s: the child did not die at its kill point", apoints[i]);
    }

    goshm_chan_t *c = goshm_chan_open(h, "cp", 4);
    REQUIRE(c);
    int cfd = goshm_chan_fd(c); /* polled: the repair must wake it too */
    CHECK(cfd >= 0);
    /* A send cut short after its claim: delivered once, with its reference. */
    const char *spoints[] = {"send-claimed", "send-msg", "send-recorded"};
    for (int i = 0; i < 3; i++) {
        pid_t p = run(d.sock, file, "send", spoints[i], sh, false);
        CHECK_MSG(died(p), "%s: the child did not die at its kill point", spoints[i]);
        CHECK(gsh_wait_for(d.sock, &st, gsh_pred_clients, &one, 10000) == 1);
        struct pollfd pfd = {.fd = cfd, .events = POLLIN};
        CHECK_MSG(poll(&pfd, 1, 2000) == 1, "%s: the repaired message did not wake the poller", spoints[i]);
        goshm_off_t off;
        CHECK_MSG(goshm_chan_recv(c, &off, 2000) == 0, "%s: the half-sent message was not delivered", spoints[i]);
        char *m = goshm_ptr(h, off);
        CHECK(m && strcmp(m, "half-sent") == 0);
        CHECK_MSG(goshm_buf_refs(h, m) == 1, "%s: %u references on the message", spoints[i], goshm_buf_refs(h, m));
        CHECK(goshm_buf_release(h, m) == 0);
        CHECK(goshm_buf_refs(h, m) == 0);
        CHECK(goshm_chan_recv(c, &off, 0) == -1 && errno == EAGAIN); /* exactly once */
    }
    /* A receive cut short: the message's reference is dropped with the
     * receiver's; the channel goes on. */
    const char *rpoints[] = {"recv-claimed", "recv-recorded"};
    for (int i = 0; i < 2; i++) {
        char *m = goshm_buf_alloc(h, 64);
        REQUIRE(m);
        CHECK(goshm_chan_send(c, goshm_off(h, m), 0) == 0);
        pid_t p = run(d.sock, file, "recv", rpoints[i], sh, false);
        CHECK_MSG(died(p), "%s: the child did not die at its kill point", rpoints[i]);
        CHECK(gsh_wait_for(d.sock, &st, gsh_pred_clients, &one, 10000) == 1);
        CHECK_MSG(ipc_wait_refs(h, m, 0) == 0, "%s: the received buffer was not freed", rpoints[i]);
        goshm_off_t off;
        CHECK(goshm_chan_recv(c, &off, 0) == -1 && errno == EAGAIN);
        CHECK(goshm_chan_send(c, sh->buf, 0) == 0);
        CHECK(goshm_chan_recv(c, &off, 0) == 0 && off == sh->buf);
    }
    CHECK(goshm_buf_refs(h, b) == 1);
    CHECK(goshm_chan_unlink(h, "cp") == 0);
    CHECK(goshm_chan_close(c) == 0);
    CHECK(goshm_buf_release(h, b) == 0);
    goshm_detach(h);
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK_MSG(st.in_use_bytes == 0, "%llu bytes in use at the end", (unsigned long long)st.in_use_bytes);
    CHECK(gsh_stop(&d) == 0);
    unlink(file);
    return CHECK_DONE("test-crashpoints");
}
