/* SPDX-License-Identifier: MIT */
/* waiter.h: how the data plane sleeps: on every client's doorbell at once.
 *
 * Overview: shm/overview.h; user: daemon/dataplane.c. Two backends implement
 * the same small contract, chosen at start (redis's ae_* habit):
 *   uring.c   io_uring: one outstanding read per doorbell eventfd.
 *   epoll.c   epoll: the fallback where io_uring cannot be set up
 *             (containers and seccomp profiles often forbid it).
 * All functions are called from the data-plane thread only.
 */
#ifndef GOSHM_WAITER_H
#define GOSHM_WAITER_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* uint32_t */

typedef struct gs_waiter gs_waiter_t;

typedef struct gs_waiter_ops {
    const char *name;
    /* Watch fd for slot (the waiter owns fd from now on). 0 or -errno. */
    int (*add)(gs_waiter_t *w, uint32_t slot, int fd);
    /* Stop watching the slot's fd and close it (maybe later, once the
     * kernel is done with it). */
    void (*remove)(gs_waiter_t *w, uint32_t slot);
    /* Sleep until a doorbell or the control fd fires, or timeout_ms passes.
     * Drains the eventfds that fired. 0 or -errno. */
    int (*wait)(gs_waiter_t *w, int timeout_ms);
    void (*destroy)(gs_waiter_t *w);
} gs_waiter_ops_t;

struct gs_waiter {
    const gs_waiter_ops_t *ops;
};

/* Create a backend watching ctl_fd (an eventfd the data plane uses to wake
 * itself). NULL and err filled on failure. */
gs_waiter_t *gs_waiter_uring_create(int ctl_fd, uint32_t max_slots, char *err, size_t errlen);
gs_waiter_t *gs_waiter_epoll_create(int ctl_fd, uint32_t max_slots, char *err, size_t errlen);

#endif /* GOSHM_WAITER_H */
