/* SPDX-License-Identifier: MIT */
/* uring.c: the data plane's waiter on io_uring.
 *
 * Overview: shm/overview.h; contract: daemon/waiter.h. Every doorbell eventfd
 * (and the control eventfd) has one outstanding IORING_OP_READ; a completion
 * means it rang, and the read is armed again. Removing a slot cancels its
 * read; its descriptor is closed when the cancelled read completes, since the
 * kernel holds the file until then. user_data = generation << 32 | slot + 1,
 * so a late completion of a removed slot is never taken for a new client.
 */
#include "waiter.h"

#include <errno.h>   /* errno */
#include <liburing.h>
#include <stdio.h>   /* snprintf */
#include <stdlib.h>  /* calloc */
#include <string.h>  /* strerror */
#include <unistd.h>  /* close */

typedef struct ur_slot {
    int fd;          /* -1: none */
    uint32_t gen;
    uint64_t buf;    /* the read's 8 bytes */
} ur_slot_t;

typedef struct ur_closing {
    uint64_t ud;
    int fd;
} ur_closing_t;

typedef struct ur_waiter {
    gs_waiter_t base;
    struct io_uring ring;
    int ctl_fd;
    uint64_t ctl_buf;
    uint32_t max_slots, gen;
    ur_slot_t *slots;
    ur_closing_t *closing; /* reads cancelled but not yet completed */
    uint32_t nclosing, capclosing;
} ur_waiter_t;

static uint64_t ud_of(uint32_t gen, uint32_t slot) { return (uint64_t)gen << 32 | (slot + 1u); }

static int arm(ur_waiter_t *u, int fd, uint64_t *buf, uint64_t ud)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe) {
        io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
        if (!sqe) return -EBUSY;
    }
    io_uring_prep_read(sqe, fd, buf, sizeof *buf, 0);
    io_uring_sqe_set_data64(sqe, ud);
    return 0;
}

static int ur_add(gs_waiter_t *w, uint32_t slot, int fd)
{
    ur_waiter_t *u = (ur_waiter_t *)w;
    if (slot >= u->max_slots) return -EINVAL;
    ur_slot_t *s = &u->slots[slot];
    s->fd = fd;
    s->gen = ++u->gen;
    int rc = arm(u, fd, &s->buf, ud_of(s->gen, slot));
    if (rc) return rc;
    return io_uring_submit(&u->ring) < 0 ? -EIO : 0;
}

static void ur_remove(gs_waiter_t *w, uint32_t slot)
{
    ur_waiter_t *u = (ur_waiter_t *)w;
    if (slot >= u->max_slots || u->slots[slot].fd < 0) return;
    ur_slot_t *s = &u->slots[slot];
    uint64_t ud = ud_of(s->gen, slot);
    if (u->nclosing == u->capclosing) {
        uint32_t cap = u->capclosing ? u->capclosing * 2u : 16u;
        ur_closing_t *n = realloc(u->closing, cap * sizeof *n);
        if (!n) { close(s->fd); s->fd = -1; return; } /* the read keeps the file alive */
        u->closing = n;
        u->capclosing = cap;
    }
    /* The cancelled read may still land in s->buf: harmless, it is ours. */
    u->closing[u->nclosing++] = (ur_closing_t){ud, s->fd};
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe) {
        io_uring_prep_cancel64(sqe, ud, 0);
        io_uring_sqe_set_data64(sqe, 0); /* the cancel's own completion */
        io_uring_submit(&u->ring);
    }
    s->fd = -1;
}

static void reap_closing(ur_waiter_t *u, uint64_t ud)
{
    for (uint32_t i = 0; i < u->nclosing; i++) {
        if (u->closing[i].ud != ud) continue;
        close(u->closing[i].fd);
        u->closing[i] = u->closing[--u->nclosing];
        return;
    }
}

static int ur_wait(gs_waiter_t *w, int timeout_ms)
{
    ur_waiter_t *u = (ur_waiter_t *)w;
    struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
    struct io_uring_cqe *cqe;
    int rc = io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts);
    if (rc == -ETIME || rc == -EINTR) return 0;
    if (rc < 0) return rc;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&u->ring, head, cqe) {
        uint64_t ud = io_uring_cqe_get_data64(cqe);
        n++;
        if (ud == 0) continue;                   /* a cancel's completion */
        if (ud == UINT64_MAX) {                  /* the control eventfd */
            arm(u, u->ctl_fd, &u->ctl_buf, UINT64_MAX);
            continue;
        }
        uint32_t slot = (uint32_t)(ud & 0xffffffffu) - 1u;
        uint32_t gen = (uint32_t)(ud >> 32);
        if (slot < u->max_slots && u->slots[slot].fd >= 0 && u->slots[slot].gen == gen) {
            arm(u, u->slots[slot].fd, &u->slots[slot].buf, ud); /* rang: read again */
        } else {
            reap_closing(u, ud);                 /* cancelled or late: now closable */
        }
    }
    io_uring_cq_advance(&u->ring, n);
    io_uring_submit(&u->ring);
    return 0;
}

static void ur_destroy(gs_waiter_t *w)
{
    ur_waiter_t *u = (ur_waiter_t *)w;
    io_uring_queue_exit(&u->ring); /* cancels everything in flight */
    for (uint32_t i = 0; i < u->max_slots; i++)
        if (u->slots[i].fd >= 0) close(u->slots[i].fd);
    for (uint32_t i = 0; i < u->nclosing; i++) close(u->closing[i].fd);
    free(u->closing);
    free(u->slots);
    free(u);
}

static const gs_waiter_ops_t ur_ops = {"io_uring", ur_add, ur_remove, ur_wait, ur_destroy};

gs_waiter_t *gs_waiter_uring_create(int ctl_fd, uint32_t max_slots, char *err, size_t errlen)
{
    ur_waiter_t *u = calloc(1, sizeof *u);
    ur_slot_t *slots = calloc(max_slots, sizeof *slots);
    if (!u || !slots) {
        free(u);
        free(slots);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (uint32_t i = 0; i < max_slots; i++) slots[i].fd = -1;
    int rc = io_uring_queue_init(2u * max_slots + 8u, &u->ring, 0);
    if (rc < 0) {
        snprintf(err, errlen, "io_uring_queue_init: %s", strerror(-rc));
        free(slots);
        free(u);
        return NULL;
    }
    u->base.ops = &ur_ops;
    u->slots = slots;
    u->max_slots = max_slots;
    u->ctl_fd = ctl_fd;
    if (arm(u, ctl_fd, &u->ctl_buf, UINT64_MAX) != 0 || io_uring_submit(&u->ring) < 0) {
        snprintf(err, errlen, "io_uring: cannot submit a read");
        io_uring_queue_exit(&u->ring);
        free(slots);
        free(u);
        return NULL;
    }
    return &u->base;
}
