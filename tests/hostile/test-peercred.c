/* SPDX-License-Identifier: MIT */
/* Description: a client does not talk to an impostor (issue 7, point 10).
 * A fake "daemon" listens on a socket and records whether a client sent it
 * anything. goshm_attach must fail with EACCES, sending nothing, when
 *   (a) the socket's directory belongs to another user (nobody),
 *   (b) the directory is writable by others and not sticky,
 *   (c) the socket sits in a sticky shared directory but belongs to nobody,
 *   (d) the listener runs as nobody (SO_PEERCRED), in a directory of ours;
 * and it must talk (the fake daemon receives the Attach) when
 *   (e) everything is ours (the control: the checks do not refuse honest
 *       daemons), and
 *   (f) the listener runs as nobody but GOSHM_DAEMON_UID names nobody.
 * Needs root (to act as nobody); skipped otherwise.
 *
 * Usage: test-peercred
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../unit/check.h"
#include "goshm/goshm.h"

static uid_t nobody_uid;
static gid_t nobody_gid;

/* The fake daemon, a child: bind `path` (as root), drop to `run_as` if not
 * 0, listen, tell the parent it is ready, accept one connection within 5 s
 * and wait up to 2 s for a packet. Exit 0: nothing received; 1: a request
 * arrived; 2: setup failed. */
static pid_t fake_daemon(const char *path, uid_t run_as, int *ready_fd)
{
    int p[2];
    if (pipe(p) != 0) return -1;
    pid_t pid = fork();
    if (pid != 0) {
        close(p[1]);
        *ready_fd = p[0];
        return pid;
    }
    close(p[0]);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) _exit(2);
    chmod(path, 0666);
    /* The listener's credentials are taken at listen(). */
    if (run_as && (setgroups(0, NULL) != 0 || setgid(nobody_gid) != 0 || setuid(run_as) != 0)) _exit(2);
    if (listen(fd, 4) != 0) _exit(2);
    if (write(p[1], "r", 1) != 1) _exit(2);
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, 5000) != 1) _exit(0);
    int c = accept(fd, NULL, NULL);
    if (c < 0) _exit(0);
    pf.fd = c;
    char buf[512];
    if (poll(&pf, 1, 2000) == 1 && recv(c, buf, sizeof buf, 0) > 0) _exit(1);
    _exit(0);
}

/* Attach to `path` served by a fake daemon running as `run_as`; returns
 * attach's errno (0 if it succeeded, which it cannot against a fake) and
 * sets *sent if the fake daemon got a request. */
static int try_attach(const char *what, const char *path, uid_t run_as, int *sent)
{
    int ready;
    pid_t pid = fake_daemon(path, run_as, &ready);
    REQUIRE(pid > 0);
    char c;
    ssize_t r = read(ready, &c, 1);
    close(ready);
    REQUIRE(r == 1);
    errno = 0;
    goshm_t *h = goshm_attach(path);
    int e = h ? 0 : errno;
    if (h) goshm_detach(h);
    kill(pid, SIGTERM); /* it has waited long enough for a request */
    int st;
    waitpid(pid, &st, 0);
    *sent = WIFEXITED(st) && WEXITSTATUS(st) == 1;
    fprintf(stderr, "test-peercred: %s: attach errno %d (%s), request %s\n", what, e, strerror(e),
            *sent ? "sent" : "not sent");
    return e;
}

int main(void)
{
    if (geteuid() != 0) {
        printf("test-peercred: needs root to act as user nobody: skipped\n");
        return 77;
    }
    struct passwd *pw = getpwnam("nobody");
    if (!pw) {
        printf("test-peercred: no user nobody: skipped\n");
        return 77;
    }
    nobody_uid = pw->pw_uid;
    nobody_gid = pw->pw_gid;
    unsetenv("GOSHM_DAEMON_UID");

    char base[] = "/tmp/goshm-peercred-XXXXXX";
    REQUIRE(mkdtemp(base));
    REQUIRE(chmod(base, 0755) == 0);
    char dir[128], path[160];
    int sent, e;

    /* (a) A directory owned by nobody. */
    snprintf(dir, sizeof dir, "%s/theirs", base);
    REQUIRE(mkdir(dir, 0755) == 0);
    snprintf(path, sizeof path, "%s/goshmd.sock", dir);
    REQUIRE(chown(dir, nobody_uid, nobody_gid) == 0);
    e = try_attach("(a) directory owned by nobody", path, 0, &sent);
    CHECK(e == EACCES && !sent);

    /* (b) Ours, but writable by others and not sticky. */
    snprintf(dir, sizeof dir, "%s/open", base);
    REQUIRE(mkdir(dir, 0755) == 0 && chmod(dir, 0777) == 0);
    snprintf(path, sizeof path, "%s/goshmd.sock", dir);
    e = try_attach("(b) directory writable by others", path, 0, &sent);
    CHECK(e == EACCES && !sent);

    /* (c) Sticky and shared, socket owned by nobody. */
    snprintf(dir, sizeof dir, "%s/sticky", base);
    REQUIRE(mkdir(dir, 0755) == 0 && chmod(dir, 01777) == 0);
    snprintf(path, sizeof path, "%s/goshmd.sock", dir);
    {
        int ready;
        pid_t pid = fake_daemon(path, 0, &ready);
        REQUIRE(pid > 0);
        char c;
        REQUIRE(read(ready, &c, 1) == 1);
        close(ready);
        REQUIRE(lchown(path, nobody_uid, nobody_gid) == 0);
        errno = 0;
        goshm_t *h = goshm_attach(path);
        e = h ? 0 : errno;
        kill(pid, SIGTERM);
        int st;
        waitpid(pid, &st, 0);
        sent = WIFEXITED(st) && WEXITSTATUS(st) == 1;
        fprintf(stderr, "test-peercred: (c) nobody's socket in a sticky directory: errno %d, %s\n", e,
                sent ? "sent" : "not sent");
        CHECK(e == EACCES && !sent);
    }
    /* ... and the same sticky directory with our own socket is fine. */
    e = try_attach("(c') our socket in a sticky directory", path, 0, &sent);
    CHECK(e != EACCES && sent);

    /* (d) Our directory, a listener running as nobody. */
    snprintf(dir, sizeof dir, "%s/mine", base);
    REQUIRE(mkdir(dir, 0755) == 0);
    snprintf(path, sizeof path, "%s/goshmd.sock", dir);
    e = try_attach("(d) listener runs as nobody", path, nobody_uid, &sent);
    CHECK(e == EACCES && !sent);

    /* (e) The control: all ours. The fake daemon gets the Attach. */
    e = try_attach("(e) all ours", path, 0, &sent);
    CHECK(e != EACCES && sent);

    /* (f) nobody named as the daemon's user. */
    setenv("GOSHM_DAEMON_UID", "nobody", 1);
    e = try_attach("(f) listener runs as nobody, GOSHM_DAEMON_UID=nobody", path, nobody_uid, &sent);
    CHECK(e != EACCES && sent);
    char num[32];
    snprintf(num, sizeof num, "12345,%u", (unsigned)nobody_uid);
    setenv("GOSHM_DAEMON_UID", num, 1);
    e = try_attach("(f') GOSHM_DAEMON_UID as numbers", path, nobody_uid, &sent);
    CHECK(e != EACCES && sent);
    unsetenv("GOSHM_DAEMON_UID");

    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    CHECK(system(cmd) == 0);
    return CHECK_DONE("test-peercred");
}
