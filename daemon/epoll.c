/* SPDX-License-Identifier: MIT */
/* epoll.c: the data plane's fallback waiter, on epoll.
 *
 * Overview: shm/overview.h; contract: daemon/waiter.h.
 */
#include "waiter.h"

#include <errno.h>       /* errno */
#include <stdio.h>       /* snprintf */
#include <stdlib.h>      /* calloc */
#include <string.h>      /* strerror */
#include <sys/epoll.h>   /* epoll_* */
#include <unistd.h>      /* read, close */

typedef struct ep_waiter {
    gs_waiter_t base;
    int epfd, ctl_fd;
    uint32_t max_slots;
    int *fds; /* per slot, -1 when none */
} ep_waiter_t;

static int ep_add(gs_waiter_t *w, uint32_t slot, int fd)
{
    ep_waiter_t *e = (ep_waiter_t *)w;
    if (slot >= e->max_slots) return -EINVAL;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = slot + 1u};
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) return -errno;
    e->fds[slot] = fd;
    return 0;
}

static void ep_remove(gs_waiter_t *w, uint32_t slot)
{
    ep_waiter_t *e = (ep_waiter_t *)w;
    if (slot >= e->max_slots || e->fds[slot] < 0) return;
    epoll_ctl(e->epfd, EPOLL_CTL_DEL, e->fds[slot], NULL);
    close(e->fds[slot]);
    e->fds[slot] = -1;
}

static int ep_wait(gs_waiter_t *w, int timeout_ms)
{
    ep_waiter_t *e = (ep_waiter_t *)w;
    struct epoll_event evs[32];
    int n = epoll_wait(e->epfd, evs, 32, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        uint32_t id = evs[i].data.u32;
        int fd = id == 0 ? e->ctl_fd : (id - 1u < e->max_slots ? e->fds[id - 1u] : -1);
        uint64_t v;
        if (fd >= 0 && read(fd, &v, sizeof v) < 0 && errno != EAGAIN) return -errno;
    }
    return 0;
}

static void ep_destroy(gs_waiter_t *w)
{
    ep_waiter_t *e = (ep_waiter_t *)w;
    for (uint32_t i = 0; i < e->max_slots; i++)
        if (e->fds[i] >= 0) close(e->fds[i]);
    close(e->epfd);
    free(e->fds);
    free(e);
}

static const gs_waiter_ops_t ep_ops = {"epoll", ep_add, ep_remove, ep_wait, ep_destroy};

gs_waiter_t *gs_waiter_epoll_create(int ctl_fd, uint32_t max_slots, char *err, size_t errlen)
{
    ep_waiter_t *e = calloc(1, sizeof *e);
    int *fds = calloc(max_slots, sizeof *fds);
    if (!e || !fds) {
        free(e);
        free(fds);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (uint32_t i = 0; i < max_slots; i++) fds[i] = -1;
    e->base.ops = &ep_ops;
    e->fds = fds;
    e->max_slots = max_slots;
    e->ctl_fd = ctl_fd;
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
    if (e->epfd < 0 || epoll_ctl(e->epfd, EPOLL_CTL_ADD, ctl_fd, &ev) != 0) {
        snprintf(err, errlen, "epoll: %s", strerror(errno));
        if (e->epfd >= 0) close(e->epfd);
        free(fds);
        free(e);
        return NULL;
    }
    return &e->base;
}
