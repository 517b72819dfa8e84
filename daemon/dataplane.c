/* SPDX-License-Identifier: MIT */
/* dataplane.c: the daemon's data plane: the thread that polls and sleeps over every client's ring.
 *
 * Overview: shm/overview.h; rings: shm/ring.h; API: daemon/dataplane.h;
 * what one ring entry does: daemon/serve.c.
 *
 * One thread polls the submission rings of all attached clients while there
 * is work, and for spin_us after the last piece of it; then it sets
 * NEED_WAKEUP in every ring, checks every ring (and the notice stack) once
 * more, and sleeps in a waiter (io_uring, or epoll) on the clients'
 * doorbells. Clients ring only when NEED_WAKEUP is set, so a busy daemon
 * costs its clients no system call (io_uring's SQPOLL idea).
 *
 * Asleep, it also wakes by itself to look at the rings: every WARM_POLL_MS
 * for WARM_S after its last work, then every COLD_POLL_MS. Requests nobody
 * waits for yet (refills sent ahead of need, hand-backs: client/ring.c) do
 * not ring the doorbell, because the wake-up a doorbell costs the client
 * (a system call and the IPI behind it: ~10 us on a small VM) is what they
 * exist to keep off the allocation's path; they are answered at the next
 * self wake-up instead. The warm period keeps that within 1 ms of a client
 * that allocates now and then, for about 1000 wake-ups a second while it
 * lasts (bench/README.md measures their cost); an idle daemon wakes 10
 * times a second, as before.
 *
 * Each pass drains the notice stack once, then serves every active ring
 * through the serve unit (daemon/serve.c), which validates every entry.
 */
#define _GNU_SOURCE
#include "dataplane.h"

#include <errno.h>        /* errno */
#include <fcntl.h>        /* fcntl, F_DUPFD_CLOEXEC */
#include <sched.h>        /* sched_yield */
#include <stdio.h>        /* snprintf */
#include <stdlib.h>       /* calloc */
#include <string.h>       /* strerror */
#include <sys/eventfd.h>  /* eventfd */
#include <unistd.h>       /* close, write */

#include "clock.h"
#include "serve.h"
#include "waiter.h"

enum { REQ_NONE = 0, REQ_ADD, REQ_REMOVE, REQ_FORGET };

#define WARM_POLL_MS 1
#define WARM_S 1u
#define COLD_POLL_MS 100

/* Who touches what: [thread] only the data-plane thread (add and remove
 * reach it as requests); [immutable] set before the thread starts;
 * [heap lock] what srv's calls into the heap need. */
typedef struct dp_slot {
    bool active;              /* [thread] */
    gs_serve_slot_t srv;      /* [thread]; its heap calls under the heap lock */
} dp_slot_t;

struct gs_dataplane {
    gs_heap_t *heap;            /* [immutable] called under *heap_lock */
    pthread_mutex_t *heap_lock; /* [immutable] the heap lock (daemon/main.c) */
    gs_dataplane_config_t cfg;  /* [immutable] */
    gs_waiter_t *w;             /* [thread] after start */
    int ctl_fd;                 /* [immutable] eventfd: wakes the thread */
    pthread_t thread;
    _Atomic int stop;           /* release by gs_dp_stop, acquire by the thread */
    uint32_t max_slots;         /* [immutable] */
    dp_slot_t *slots;           /* [thread] */
    _Atomic uint64_t bad_entries; /* relaxed: a statistic */

    /* One add/remove request at a time from the control plane, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int req_pending;
    int req_op, req_fd, req_rc;
    uint32_t req_slot;
    uint64_t req_seq, done_seq;
};

static bool serve_all(gs_dataplane_t *dp)
{
    bool busy = false;
    pthread_mutex_lock(dp->heap_lock);
    busy |= gs_heap_drain_notices(dp->heap) > 0; /* once per pass */
    for (uint32_t i = 0; i < dp->max_slots; i++)
        if (dp->slots[i].active) busy |= gs_serve_ring(dp->heap, i, &dp->slots[i].srv, &dp->bad_entries);
    pthread_mutex_unlock(dp->heap_lock);
    return busy;
}

static void handle_request(gs_dataplane_t *dp)
{
    pthread_mutex_lock(&dp->mu);
    if (dp->req_op == REQ_ADD) {
        dp_slot_t *s = &dp->slots[dp->req_slot];
        /* The slot was claimed (its memfd mapped) before this request, under
         * the heap lock; dp->mu orders that before us. */
        gs_serve_slot_open(dp->heap, dp->req_slot, &s->srv);
        dp->req_rc = s->srv.ring ? dp->w->ops->add(dp->w, dp->req_slot, dp->req_fd) : -EINVAL;
        s->active = dp->req_rc == 0;
    } else if (dp->req_op == REQ_REMOVE || dp->req_op == REQ_FORGET) {
        dp_slot_t *s = &dp->slots[dp->req_slot];
        s->active = false;
        dp->w->ops->remove(dp->w, dp->req_slot);
        if (dp->req_op == REQ_FORGET) goto done; /* the client may still read its completions */
        pthread_mutex_lock(dp->heap_lock);
        gs_serve_slot_close(dp->heap, dp->req_slot, &s->srv); /* large objects never read */
        pthread_mutex_unlock(dp->heap_lock);
    done:
        dp->req_rc = 0;
    }
    dp->req_op = REQ_NONE;
    dp->done_seq = dp->req_seq;
    gs_store_release(&dp->req_pending, 0);
    pthread_cond_broadcast(&dp->cv);
    pthread_mutex_unlock(&dp->mu);
}

static uint64_t now_us(void) { return gs_now_ns() / 1000u; }

static void set_wakeup(gs_dataplane_t *dp, uint32_t v)
{
    for (uint32_t i = 0; i < dp->max_slots; i++)
        if (dp->slots[i].active) gs_store_seqcst(&dp->slots[i].srv.ring->xflags, v);
}

static void *run(void *arg)
{
    gs_dataplane_t *dp = arg;
    uint64_t last_work = now_us();
    unsigned spins = 0;
    while (!gs_load_acquire(&dp->stop)) {
        if (gs_load_acquire(&dp->req_pending)) handle_request(dp);
        if (serve_all(dp)) {
            last_work = now_us();
            spins = 0;
            continue;
        }
        if (now_us() - last_work < dp->cfg.spin_us) {
            /* Poll, yielding: a client waiting for us is often on this CPU
             * (the scheduler puts a woken thread next to its waker), and
             * only a yield lets it see its completion. */
            if (++spins < 16) gs_cpu_relax();
            else sched_yield();
            continue;
        }
        set_wakeup(dp, GS_RING_NEED_WAKEUP);
        /* Re-check after publishing the flag: a client that published its
         * tail before reading the flag is seen here. */
        bool work = serve_all(dp);
        if (!work && !gs_load_acquire(&dp->req_pending) && !gs_load_acquire(&dp->stop))
            dp->w->ops->wait(dp->w, now_us() - last_work < WARM_S * 1000000u ? WARM_POLL_MS : COLD_POLL_MS);
        set_wakeup(dp, 0);
        /* Spin again only after work: a wake-up that finds none (the
         * self wake-ups above) goes back to sleep at once, or every warm
         * millisecond would buy spin_us of polling (half a CPU at the
         * default 1 ms, measured with bench/idle-cost.sh). A doorbell's
         * request is found by the serve_all at the top of the loop. */
        if (work) last_work = now_us();
    }
    return NULL;
}

static void wake_self(gs_dataplane_t *dp)
{
    uint64_t one = 1;
    ssize_t r = write(dp->ctl_fd, &one, sizeof one);
    (void)r;
}

static int request(gs_dataplane_t *dp, int op, uint32_t slot, int fd)
{
    pthread_mutex_lock(&dp->mu);
    while (dp->req_op != REQ_NONE) pthread_cond_wait(&dp->cv, &dp->mu);
    dp->req_op = op;
    dp->req_slot = slot;
    dp->req_fd = fd;
    uint64_t seq = ++dp->req_seq;
    gs_store_release(&dp->req_pending, 1);
    wake_self(dp);
    while (dp->done_seq < seq) pthread_cond_wait(&dp->cv, &dp->mu);
    int rc = dp->req_rc;
    pthread_mutex_unlock(&dp->mu);
    return rc;
}

gs_dataplane_t *gs_dp_start(gs_heap_t *heap, pthread_mutex_t *heap_lock, const gs_dataplane_config_t *cfg,
                            char *err, size_t errlen)
{
    gs_dataplane_t *dp = calloc(1, sizeof *dp);
    if (!dp) { snprintf(err, errlen, "out of memory"); errno = ENOMEM; return NULL; }
    dp->heap = heap;
    dp->heap_lock = heap_lock;
    dp->cfg = *cfg;
    dp->max_slots = gs_heap_max_slots(heap);
    dp->slots = calloc(dp->max_slots, sizeof *dp->slots);
    dp->ctl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!dp->slots || dp->ctl_fd < 0) {
        snprintf(err, errlen, "data plane: %s", strerror(errno ? errno : ENOMEM));
        goto fail;
    }
    char why[256] = "forced by configuration";
    if (!cfg->force_epoll) dp->w = gs_waiter_uring_create(dp->ctl_fd, dp->max_slots, why, sizeof why);
    if (!dp->w) {
        char eperr[256];
        dp->w = gs_waiter_epoll_create(dp->ctl_fd, dp->max_slots, eperr, sizeof eperr);
        if (!dp->w) {
            snprintf(err, errlen, "no waiter: io_uring: %s; epoll: %s", why, eperr);
            goto fail;
        }
        if (!cfg->force_epoll) snprintf(err, errlen, "io_uring unavailable (%s); using epoll", why);
    }
    pthread_mutex_init(&dp->mu, NULL);
    pthread_cond_init(&dp->cv, NULL);
    int rc = pthread_create(&dp->thread, NULL, run, dp);
    if (rc) {
        snprintf(err, errlen, "pthread_create: %s", strerror(rc));
        dp->w->ops->destroy(dp->w);
        dp->w = NULL;
        goto fail;
    }
    return dp;
fail:
    if (dp->ctl_fd >= 0) close(dp->ctl_fd);
    free(dp->slots);
    free(dp);
    errno = EIO;
    return NULL;
}

void gs_dp_stop(gs_dataplane_t *dp)
{
    if (!dp) return;
    gs_store_release(&dp->stop, 1);
    wake_self(dp);
    pthread_join(dp->thread, NULL);
    dp->w->ops->destroy(dp->w);
    close(dp->ctl_fd);
    pthread_mutex_destroy(&dp->mu);
    pthread_cond_destroy(&dp->cv);
    free(dp->slots);
    free(dp);
}

int gs_dp_add_slot(gs_dataplane_t *dp, uint32_t slot, int *doorbell)
{
    if (slot >= dp->max_slots) return -EINVAL;
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) return -errno;
    int theirs = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (theirs < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    int rc = request(dp, REQ_ADD, slot, fd); /* the waiter owns fd now, if rc == 0 */
    if (rc) {
        close(fd);
        close(theirs);
        return rc;
    }
    *doorbell = theirs;
    return 0;
}

void gs_dp_remove_slot(gs_dataplane_t *dp, uint32_t slot)
{
    if (slot < dp->max_slots) request(dp, REQ_REMOVE, slot, -1);
}

void gs_dp_forget_slot(gs_dataplane_t *dp, uint32_t slot)
{
    if (slot < dp->max_slots) request(dp, REQ_FORGET, slot, -1);
}

const char *gs_dp_backend(const gs_dataplane_t *dp) { return dp->w->ops->name; }

uint64_t gs_dp_bad_entries(const gs_dataplane_t *dp)
{
    return gs_load_relaxed(&((gs_dataplane_t *)dp)->bad_entries);
}
