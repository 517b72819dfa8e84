/* SPDX-License-Identifier: MIT */
/* Description: the heap in systemd's file-descriptor store, without
 * systemd. This test plays systemd's part of the protocol: it binds the
 * NOTIFY_SOCKET datagram socket and starts goshmd --fd-store (no state
 * directory), which must send READY=1 and, with FDSTORE=1 and FDNAME,
 * its two memfds. A client fills objects; the daemon is SIGKILLed; the
 * test starts a new goshmd the way systemd restarts a unit with a stored
 * store: the descriptors at 3 and 4, LISTEN_FDS=2, LISTEN_PID, and
 * LISTEN_FDNAMES=goshm-data:goshm-meta. The new daemon adopts the heap
 * (same heap id, same bytes in use), stores the memfds again, and the
 * client carries on (it resumes its slot), its objects intact. At the end
 * the heap is empty.
 *
 * Usage: test-fdstore GOSHMD   (also $GOSHMD)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "goshm/goshm.h"
#include "harness.h"

static char dir[64], sock_path[96], notify_path[96];
static int notify_fd = -1;
static pid_t daemon_pid;

static void cleanup(void)
{
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGKILL);
        waitpid(daemon_pid, NULL, 0);
    }
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (dir[0] && system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
}

/* Start goshmd --fd-store; with stored descriptors, pass them as systemd
 * does. */
static pid_t spawn(const char *bin, int data_fd, int meta_fd)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0) return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    setenv("NOTIFY_SOCKET", notify_path, 1);
    if (data_fd >= 0) {
        /* Out of the way first, then to 3 and 4 (dup2 clears CLOEXEC). */
        int d = fcntl(data_fd, F_DUPFD, 10), m = fcntl(meta_fd, F_DUPFD, 10);
        if (d < 0 || m < 0 || dup2(d, 3) != 3 || dup2(m, 4) != 4) _exit(126);
        char pid_s[32];
        snprintf(pid_s, sizeof pid_s, "%d", (int)getpid());
        setenv("LISTEN_PID", pid_s, 1);
        setenv("LISTEN_FDS", "2", 1);
        setenv("LISTEN_FDNAMES", "goshm-data:goshm-meta", 1);
    }
    const char *extra = getenv("GOSHMD_ARGS");
    char *argv[] = {(char *)bin, "--socket", sock_path, "--fd-store", "--size", "256M", "--log-level", "warn",
                    extra && *extra ? (char *)extra : NULL, NULL};
    execv(bin, argv);
    _exit(127);
}

/* Receive notifications until both memfds have come (or timeout_ms).
 * Returns how many were stored; *ready set if READY=1 came. */
static int receive_store(int *data_fd, int *meta_fd, bool *ready, int timeout_ms)
{
    uint64_t end = gsh_now_ms() + (uint64_t)timeout_ms;
    int got = 0;
    while (got < 2 && gsh_now_ms() < end) {
        struct pollfd p = {.fd = notify_fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        char buf[512];
        union {
            struct cmsghdr h;
            char space[CMSG_SPACE(sizeof(int) * 4)];
        } cbuf;
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf - 1};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.space,
                            .msg_controllen = sizeof cbuf.space};
        ssize_t n = recvmsg(notify_fd, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0) continue;
        buf[n] = '\0';
        int fd = -1;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(cm), sizeof fd);
        if (strstr(buf, "READY=1")) *ready = true;
        if (strstr(buf, "FDSTORE=1") && fd >= 0) {
            if (strstr(buf, "FDNAME=goshm-data")) {
                if (*data_fd >= 0) close(*data_fd);
                *data_fd = fd;
                got++;
            } else if (strstr(buf, "FDNAME=goshm-meta")) {
                if (*meta_fd >= 0) close(*meta_fd);
                *meta_fd = fd;
                got++;
            } else {
                close(fd);
            }
        } else if (fd >= 0) {
            close(fd);
        }
    }
    return got;
}

static bool wait_answering(int timeout_ms)
{
    uint64_t end = gsh_now_ms() + (uint64_t)timeout_ms;
    gsh_stats_t st;
    while (gsh_now_ms() < end) {
        if (gsh_stats(sock_path, &st) == 0 && st.daemon_pid == (uint32_t)daemon_pid) return true;
        gsh_sleep_ms(10);
    }
    return false;
}

#define N 3000

int main(int argc, char **argv)
{
    setvbuf(stderr, NULL, _IONBF, 0);
    const char *bin = gsh_daemon_path(argc, argv);
    if (!bin) return GSH_SKIP;
    snprintf(dir, sizeof dir, "/tmp/gsfd-XXXXXX");
    REQUIRE(mkdtemp(dir));
    atexit(cleanup);
    snprintf(sock_path, sizeof sock_path, "%s/goshmd.sock", dir);
    snprintf(notify_path, sizeof notify_path, "%s/notify", dir);
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", notify_path);
    REQUIRE(notify_fd >= 0 && bind(notify_fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    setenv("GOSHM_RECONNECT_S", "20", 1);

    int data_fd = -1, meta_fd = -1;
    bool ready = false;
    daemon_pid = spawn(bin, -1, -1);
    REQUIRE(daemon_pid > 0);
    CHECK(receive_store(&data_fd, &meta_fd, &ready, 10000) == 2);
    REQUIRE(data_fd >= 0 && meta_fd >= 0);
    REQUIRE(wait_answering(10000));
    for (int t = 0; t < 100 && !ready; t++) receive_store(&data_fd, &meta_fd, &ready, 20);
    CHECK(ready);

    goshm_t *h = goshm_attach(sock_path);
    REQUIRE(h);
    uint64_t id = goshm_heap_id(h);
    static goshm_off_t offs[N];
    static size_t sizes[N];
    unsigned long long seed = 9;
    for (int i = 0; i < N; i++) {
        sizes[i] = 8 + test_rand(&seed) % (i % 50 == 0 ? 200000 : 2000);
        char *p = goshm_malloc(h, sizes[i]);
        REQUIRE(p);
        offs[i] = goshm_off(h, p);
        memset(p, (int)(offs[i] % 251), sizes[i]);
    }
    gsh_stats_t st, st2;
    REQUIRE(gsh_settle(sock_path, 1, &st) == 0);
    CHECK(st.heap_id == id && !st.adopted);

    kill(daemon_pid, SIGKILL);
    waitpid(daemon_pid, NULL, 0);
    daemon_pid = spawn(bin, data_fd, meta_fd);
    REQUIRE(daemon_pid > 0);
    REQUIRE(wait_answering(10000));
    REQUIRE(gsh_stats(sock_path, &st2) == 0);
    CHECK_MSG(st2.adopted && st2.heap_id == id, "adopted %u, heap id %llx (was %llx)", st2.adopted,
              (unsigned long long)st2.heap_id, (unsigned long long)id);
    CHECK_MSG(st2.in_use_bytes == st.in_use_bytes, "in_use %llu, was %llu", (unsigned long long)st2.in_use_bytes,
              (unsigned long long)st.in_use_bytes);
    int d2 = -1, m2 = -1;
    CHECK(receive_store(&d2, &m2, &ready, 5000) == 2); /* stored again by the new daemon */
    if (d2 >= 0) close(d2);
    if (m2 >= 0) close(m2);

    /* The client carries on: new objects (resuming its slot), old ones intact. */
    for (int i = 0; i < N; i++) {
        const unsigned char *p = goshm_ptr(h, offs[i]);
        bool ok = true;
        for (size_t k = 0; k < sizes[i]; k += 7) ok &= p[k] == (unsigned char)(offs[i] % 251);
        CHECK(ok);
        if (i % 2) {
            goshm_free(h, (void *)p);
            offs[i] = 0;
        }
    }
    char *more = goshm_malloc(h, 300000);
    CHECK_MSG(more != NULL, "malloc after the restart: %s", strerror(errno));
    goshm_free(h, more);
    for (int i = 0; i < N; i++)
        if (offs[i]) goshm_free(h, goshm_ptr(h, offs[i]));
    CHECK(goshm_detach(h) == 0);
    CHECK(gsh_settle_idle(sock_path, &st) == 0);
    CHECK(st.in_use_bytes == 0 && st.span_bytes == 0);
    kill(daemon_pid, SIGTERM);
    int ws;
    waitpid(daemon_pid, &ws, 0);
    daemon_pid = 0;
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    return CHECK_DONE("test-fdstore");
}
