/* SPDX-License-Identifier: MIT */
/* Description: the control socket under denial-of-service attempts (issue 7,
 * point 8), against a real goshmd.
 * (1) 128 connections that never send a request, from this process's uid:
 *     a victim's attach (and an allocation) and a stats request still
 *     succeed, each well within the pending deadline; a connection that
 *     sends nothing is closed by the daemon within ~2 s.
 * As root only (separate uids; skipped with a message otherwise):
 * (2) the same with the 128 idle connections held by another allowed uid;
 * (3) one allowed uid cannot take every slot: with --max-clients 8 it gets 4
 *     (then EDQUOT), and root's victim still attaches;
 * (4) a disallowed uid flooding connects: the daemon's log gets O(1) lines
 *     about it per interval (not one per attempt), and the victim's attach
 *     stays fast (printed; asserted under a generous bound).
 *
 * Usage: test-dos-conns GOSHMD   (also $GOSHMD)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../service/harness.h"
#include "../unit/check.h"
#include "goshm/goshm.h"

#define UID_A 64011 /* allowed attacker */
#define UID_B 64012 /* disallowed attacker */
#define NIDLE 128
#define FAST_MS 1000u /* "fast": well under the 2 s pending deadline */

static int raw_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof sa.sun_path) {
        close(fd);
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, len + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The victim: attach, allocate, write, read back, detach; and one stats.
 * Returns the slower of the two in ms, or UINT64_MAX on failure. */
static uint64_t victim(const char *sock, const char *what)
{
    uint64_t t0 = gsh_now_ms();
    goshm_t *h = goshm_attach(sock);
    int e = errno;
    uint64_t t_attach = gsh_now_ms() - t0;
    CHECK_MSG(h != NULL, "%s: victim's attach: %s", what, strerror(e));
    if (!h) return UINT64_MAX;
    char *p = goshm_malloc(h, 100);
    CHECK(p != NULL);
    if (p) {
        strcpy(p, "victim");
        CHECK(strcmp(p, "victim") == 0);
        goshm_free(h, p);
    }
    CHECK(goshm_detach(h) == 0);
    t0 = gsh_now_ms();
    gsh_stats_t st;
    int rc = gsh_stats(sock, &st);
    uint64_t t_stats = gsh_now_ms() - t0;
    CHECK_MSG(rc == 0, "%s: victim's stats: %s", what, strerror(-rc));
    fprintf(stderr, "%s: victim's attach %" PRIu64 " ms, stats %" PRIu64 " ms\n", what, t_attach, t_stats);
    CHECK_MSG(t_attach < FAST_MS && t_stats < FAST_MS, "%s: attach %" PRIu64 " ms, stats %" PRIu64 " ms", what,
              t_attach, t_stats);
    return t_attach > t_stats ? t_attach : t_stats;
}

/* Open NIDLE connections that send nothing; fds[] gets them (-1: refused). */
static unsigned open_idle(const char *sock, int *fds)
{
    unsigned n = 0;
    for (int i = 0; i < NIDLE; i++) {
        fds[i] = raw_connect(sock);
        n += fds[i] >= 0;
    }
    return n;
}

/* Is the connection closed by the daemon (EOF or reset) within ms? */
static bool closed_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, ms) <= 0) return false;
    char b[256];
    ssize_t r = recv(fd, b, sizeof b, MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno == ECONNRESET) || (p.revents & (POLLHUP | POLLRDHUP));
}

/* A child under another uid: hold NIDLE idle connections until killed. */
static pid_t idle_child(const char *sock, uid_t uid, int ready_fd)
{
    pid_t pid = fork();
    if (pid != 0) return pid;
    if (setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0) _exit(3);
    int fds[NIDLE];
    unsigned n = open_idle(sock, fds);
    if (write(ready_fd, &n, sizeof n) != (ssize_t)sizeof n) _exit(4);
    for (;;) pause();
}

static unsigned count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[1024];
    unsigned n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    const char *bin = gsh_daemon_path(argc, argv);
    bool root = geteuid() == 0;
    char args[128];
    snprintf(args, sizeof args, "--size 128M --max-clients 8 --allow-uid %u", UID_A);

    /* The daemon's log goes to a file, to count its lines in (4). */
    char logpath[] = "/tmp/goshm-dos-log-XXXXXX";
    int logfd = mkstemp(logpath);
    REQUIRE(logfd >= 0);
    fflush(stderr);
    int saved = dup(2);
    REQUIRE(saved >= 0 && dup2(logfd, 2) == 2);
    gsh_daemon_t d;
    int started = gsh_start(&d, bin, args);
    dup2(saved, 2);
    close(saved);
    REQUIRE(started == 0);
    REQUIRE(chmod(d.dir, 0711) == 0); /* other uids reach the socket (0666 with --allow-uid) */

    /* (1) 128 idle connections of our own uid. */
    int fds[NIDLE];
    unsigned n = open_idle(d.sock, fds);
    fprintf(stderr, "(1) %u idle connections of uid %u\n", n, (unsigned)geteuid());
    victim(d.sock, "(1) own uid idle");
    /* Every one of them is closed by the deadline (or evicted earlier). */
    unsigned closed = 0;
    uint64_t t0 = gsh_now_ms();
    for (int i = 0; i < NIDLE; i++)
        if (fds[i] >= 0) closed += closed_within(fds[i], 3000);
    fprintf(stderr, "(1) %u of %u idle connections closed by the daemon within %" PRIu64 " ms\n", closed, n,
            gsh_now_ms() - t0);
    CHECK_MSG(closed == n, "(1) %u of %u idle connections still open", n - closed, n);
    for (int i = 0; i < NIDLE; i++)
        if (fds[i] >= 0) close(fds[i]);

    if (!root) {
        fprintf(stderr, "test-dos-conns: not root: the separate-uid parts (2)-(4) are skipped\n");
    } else {
        /* (2) 128 idle connections of another allowed uid. */
        int pfd[2];
        REQUIRE(pipe(pfd) == 0);
        pid_t a = idle_child(d.sock, UID_A, pfd[1]);
        REQUIRE(a > 0);
        unsigned got = 0;
        REQUIRE(read(pfd[0], &got, sizeof got) == (ssize_t)sizeof got);
        fprintf(stderr, "(2) uid %u opened %u idle connections\n", UID_A, got);
        victim(d.sock, "(2) other uid idle");
        kill(a, SIGKILL);
        waitpid(a, NULL, 0);

        /* (3) One allowed uid cannot take every slot. */
        pid_t b = fork();
        REQUIRE(b >= 0);
        if (b == 0) {
            if (setresgid(UID_A, UID_A, UID_A) != 0 || setresuid(UID_A, UID_A, UID_A) != 0) _exit(3);
            goshm_t *hs[8];
            int ok = 0, edquot = 0;
            for (int i = 0; i < 8; i++) {
                hs[i] = goshm_attach(d.sock);
                if (hs[i]) ok++;
                else if (errno == EDQUOT) edquot++;
            }
            unsigned r = (unsigned)ok | (unsigned)edquot << 8;
            if (write(pfd[1], &r, sizeof r) != (ssize_t)sizeof r) _exit(4);
            pause();
            _exit(0);
        }
        unsigned r = 0;
        REQUIRE(read(pfd[0], &r, sizeof r) == (ssize_t)sizeof r);
        fprintf(stderr, "(3) uid %u attached %u times, %u EDQUOT\n", UID_A, r & 0xff, r >> 8);
        CHECK_MSG((r & 0xff) == 4 && (r >> 8) == 4, "(3) uid %u: %u attached, %u EDQUOT (want 4, 4)", UID_A,
                  r & 0xff, r >> 8);
        goshm_t *vs[4];
        for (int i = 0; i < 4; i++) {
            vs[i] = goshm_attach(d.sock);
            CHECK_MSG(vs[i] != NULL, "(3) victim attach %d: %s", i, strerror(errno));
        }
        for (int i = 0; i < 4; i++)
            if (vs[i]) goshm_detach(vs[i]);
        kill(b, SIGKILL);
        waitpid(b, NULL, 0);

        /* (4) A disallowed uid floods connects for 3 s. */
        unsigned lines0 = count_lines(logpath, "uid 64012");
        pid_t f = fork();
        REQUIRE(f >= 0);
        if (f == 0) {
            if (setresgid(UID_B, UID_B, UID_B) != 0 || setresuid(UID_B, UID_B, UID_B) != 0) _exit(3);
            unsigned tries = 0;
            uint64_t end = gsh_now_ms() + 3000;
            while (gsh_now_ms() < end) {
                int fd = raw_connect(d.sock);
                if (fd >= 0) close(fd);
                tries++;
            }
            if (write(pfd[1], &tries, sizeof tries) != (ssize_t)sizeof tries) _exit(4);
            _exit(0);
        }
        gsh_sleep_ms(300);
        uint64_t worst = 0;
        for (int i = 0; i < 5; i++) {
            uint64_t t = victim(d.sock, "(4) during a refused flood");
            if (t > worst) worst = t;
            gsh_sleep_ms(100);
        }
        unsigned tries = 0;
        REQUIRE(read(pfd[0], &tries, sizeof tries) == (ssize_t)sizeof tries);
        CHECK(gsh_wait_child(f, 10000) == 0);
        unsigned lines = count_lines(logpath, "uid 64012") - lines0;
        fprintf(stderr, "(4) %u refused connects in 3 s gave %u log lines; victim's worst %" PRIu64 " ms\n", tries,
                lines, worst);
        CHECK_MSG(tries > 100, "(4) only %u connects: the flood did not happen", tries);
        CHECK_MSG(lines <= 4, "(4) %u log lines for %u refused connects", lines, tries);
        close(pfd[0]);
        close(pfd[1]);
    }
    CHECK(gsh_alive(&d));
    gsh_stats_t st;
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK(gsh_stop(&d) == 0);
    close(logfd);
    unlink(logpath);
    return CHECK_DONE("test-dos-conns");
}
