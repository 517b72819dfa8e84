/* SPDX-License-Identifier: MIT */
/* ctlclient.c: the one client of goshmd's control protocol (see proto/ctlclient.h). */
#define _GNU_SOURCE
#include "ctlclient.h"

#include <errno.h>      /* errno */
#include <poll.h>       /* poll */
#include <stdlib.h>     /* malloc, free */
#include <string.h>     /* memcpy, strlen */
#include <sys/socket.h> /* socket, connect, send, recvmsg */
#include <sys/un.h>     /* sockaddr_un */
#include <unistd.h>     /* close */

#define MAX_REPLY_FDS 4 /* room for a few more than any reply carries */

int gs_ctl_connect(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof a.sun_path) return -ENAMETOOLONG;
    memcpy(a.sun_path, path, n + 1);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int gs_ctl_send(int fd, const Goshm__Request *req)
{
    uint8_t buf[256]; /* requests are small: Attach is the largest */
    size_t n = goshm__request__get_packed_size(req);
    if (n > sizeof buf) return -EMSGSIZE;
    goshm__request__pack(req, buf);
    ssize_t w;
    do w = send(fd, buf, n, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    return w == (ssize_t)n ? 0 : -(w < 0 ? errno : EIO);
}

static int wait_readable(int fd, int timeout_ms)
{
    if (timeout_ms < 0) return 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, timeout_ms);
        if (r > 0) return 0;
        if (r == 0) return -ETIMEDOUT;
        if (errno != EINTR) return -errno;
    }
}

int gs_ctl_recv(int fd, Goshm__Reply **out, int *fds, int nfds, int timeout_ms)
{
    *out = NULL;
    for (int i = 0; i < nfds; i++) fds[i] = -1;
    int rc = wait_readable(fd, timeout_ms);
    if (rc) return rc;
    uint8_t *buf = malloc(GS_CTL_MAX_REPLY);
    if (!buf) return -ENOMEM;
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * MAX_REPLY_FDS)];
    } cm;
    struct iovec iov = {buf, GS_CTL_MAX_REPLY};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof cm.b};
    ssize_t r;
    do r = recvmsg(fd, &m, MSG_TRUNC | MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    int e = errno;
    int got = 0;
    if (r >= 0) {
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; i++) {
                int sfd;
                memcpy(&sfd, CMSG_DATA(c) + i * sizeof(int), sizeof sfd);
                if (got < nfds) fds[got++] = sfd;
                else close(sfd);
            }
        }
    }
    if (r < 0) rc = -e;
    else if (r == 0) rc = -ECONNRESET;
    else if ((size_t)r > GS_CTL_MAX_REPLY || (m.msg_flags & MSG_TRUNC)) rc = -EMSGSIZE;
    else if (!(*out = goshm__reply__unpack(NULL, (size_t)r, buf))) rc = -EPROTO;
    free(buf);
    if (rc) {
        for (int i = 0; i < got; i++) {
            close(fds[i]);
            fds[i] = -1;
        }
        return rc;
    }
    return got;
}
