/* SPDX-License-Identifier: MIT */
/* fdstore.c: the heap's memfds in systemd's file-descriptor store, and back (sd_notify FDSTORE=1, LISTEN_FDS).
 *
 * Overview: shm/overview.h; API: daemon/persist.h. With --fd-store, goshmd
 * sends each memfd to $NOTIFY_SOCKET in its own datagram,
 * "FDSTORE=1\nFDNAME=goshm-data" (and goshm-meta) with the descriptor
 * attached by SCM_RIGHTS; systemd keeps them while the unit restarts
 * (FileDescriptorStoreMax= must allow two). A restarted goshmd finds them
 * among the descriptors passed from 3 on, as LISTEN_FDS counts them and
 * LISTEN_FDNAMES (colon-separated) names them; systemd passes the
 * socket-activation sockets first, then the stored descriptors. We take the
 * two named goshm-data and goshm-meta, which must come last, and leave
 * LISTEN_FDS counting only what precedes them, for socket activation
 * (daemon/listen.c). Without systemd, tests/restart/test-fdstore.c plays
 * its part.
 */
#define _GNU_SOURCE
#include "persist.h"

#include <errno.h>      /* errno */
#include <stddef.h>     /* offsetof */
#include <fcntl.h>      /* fcntl */
#include <stdio.h>      /* snprintf */
#include <stdlib.h>     /* getenv, setenv, strtol */
#include <string.h>     /* strlen, strtok_r */
#include <sys/socket.h> /* sendmsg */
#include <sys/un.h>     /* sockaddr_un */
#include <unistd.h>     /* getpid, close */

#define LISTEN_FDS_START 3
#define MAX_NAMES 64

int gs_fdstore_take(int *data_fd, int *meta_fd, char *err, size_t errlen)
{
    *data_fd = *meta_fd = -1;
    const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS"), *names_s = getenv("LISTEN_FDNAMES");
    if (!pid_s || !fds_s || !names_s) return 0;
    char *end;
    long pid = strtol(pid_s, &end, 10);
    if (*end || pid != (long)getpid()) return 0; /* meant for another process */
    long nfds = strtol(fds_s, &end, 10);
    if (*end || nfds < 1 || nfds > MAX_NAMES) return 0;
    char names[1024];
    if (strlen(names_s) >= sizeof names) return 0;
    strcpy(names, names_s);
    int di = -1, mi = -1;
    long i = 0;
    /* Empty names (two colons) are allowed by systemd: walk by hand. */
    for (char *p = names, *q; i < nfds && p; p = q ? q + 1 : NULL, i++) {
        q = strchr(p, ':');
        if (q) *q = '\0';
        if (strcmp(p, GS_FDNAME_DATA) == 0) di = (int)i;
        if (strcmp(p, GS_FDNAME_META) == 0) mi = (int)i;
    }
    if (di < 0 && mi < 0) return 0;
    if (di < 0 || mi < 0) {
        snprintf(err, errlen, "fd store: systemd passed %s without %s", di < 0 ? GS_FDNAME_META : GS_FDNAME_DATA,
                 di < 0 ? GS_FDNAME_DATA : GS_FDNAME_META);
        return -1;
    }
    long first = di < mi ? di : mi, second = di < mi ? mi : di;
    if (first != nfds - 2 || second != nfds - 1) {
        snprintf(err, errlen, "fd store: %s and %s must be the last descriptors passed", GS_FDNAME_DATA,
                 GS_FDNAME_META);
        return -1;
    }
    *data_fd = LISTEN_FDS_START + di;
    *meta_fd = LISTEN_FDS_START + mi;
    fcntl(*data_fd, F_SETFD, FD_CLOEXEC);
    fcntl(*meta_fd, F_SETFD, FD_CLOEXEC);
    /* What is left is socket activation's. */
    char n[32];
    snprintf(n, sizeof n, "%ld", nfds - 2);
    if (nfds - 2 > 0) {
        setenv("LISTEN_FDS", n, 1);
    } else {
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDNAMES");
    }
    return 1;
}

static int put_one(const struct sockaddr_un *sa, socklen_t salen, int fd, const char *name)
{
    char msg[128];
    snprintf(msg, sizeof msg, "FDSTORE=1\nFDNAME=%s", name);
    struct iovec iov = {.iov_base = msg, .iov_len = strlen(msg)};
    union {
        struct cmsghdr hdr;
        char space[CMSG_SPACE(sizeof(int))];
    } cbuf;
    memset(&cbuf, 0, sizeof cbuf);
    struct msghdr mh = {.msg_name = (void *)sa, .msg_namelen = salen, .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = cbuf.space, .msg_controllen = sizeof cbuf.space};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    int rc = sendmsg(s, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
    close(s);
    return rc;
}

int gs_fdstore_put(int data_fd, int meta_fd)
{
    const char *e = getenv("NOTIFY_SOCKET");
    if (!e || !*e) return -ENOENT;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(e);
    if ((e[0] != '/' && e[0] != '@') || len >= sizeof sa.sun_path) return -EINVAL;
    memcpy(sa.sun_path, e, len);
    if (e[0] == '@') sa.sun_path[0] = '\0';
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    int rc = put_one(&sa, salen, data_fd, GS_FDNAME_DATA);
    if (!rc) rc = put_one(&sa, salen, meta_fd, GS_FDNAME_META);
    return rc;
}
