/* dataplane.c: the daemon's data plane: serving every client's ring.
 *
 * Overview: shm/malloc.h; rings: shm/ring.h; API: daemon/dataplane.h.
 *
 * One thread polls the submission rings of all attached clients while there
 * is work, and for spin_us after the last piece of it; then it sets
 * NEED_WAKEUP in every ring, checks every ring (and the notice stack) once
 * more, and sleeps in a waiter (io_uring, or epoll) on the clients'
 * doorbells. Clients ring only when NEED_WAKEUP is set, so a busy daemon
 * costs its clients no system call (io_uring's SQPOLL idea).
 *
 * Every entry is copied out of shared memory once and validated before use:
 * indices that cannot be right are resynchronised, unknown ops and bad
 * arguments get an error completion (the heap side validates span ids,
 * classes and sizes against its own records), and nothing a client writes
 * can make this thread crash or corrupt the heap.
 */
#define _GNU_SOURCE
#include "dataplane.h"

#include <errno.h>        /* errno */
#include <fcntl.h>        /* fcntl, F_DUPFD_CLOEXEC */
#include <limits.h>       /* INT_MAX */
#include <linux/futex.h>  /* FUTEX_WAKE */
#include <sched.h>        /* sched_yield */
#include <stdio.h>        /* snprintf */
#include <stdlib.h>       /* calloc */
#include <string.h>       /* memcpy */
#include <sys/eventfd.h>  /* eventfd */
#include <sys/syscall.h>  /* SYS_futex */
#include <unistd.h>       /* close, write, syscall */

#include "heap_internal.h"
#include "waiter.h"

enum { REQ_NONE = 0, REQ_ADD, REQ_REMOVE };

typedef struct dp_slot {
    bool active;
    uint32_t sq_head;   /* our copy; never read back from shared memory */
    uint32_t cq_tail;   /* ditto */
    gs_ring_t *ring;
    /* The large object each completion carries (0: none), by completion
     * index: a client that dies before reading its completion never got the
     * object, so removing the slot frees it. */
    uint32_t large[GS_RING_ENTRIES];
} dp_slot_t;

struct gs_dataplane {
    gs_heap_t *heap;
    pthread_mutex_t *heap_lock;
    gs_dataplane_config_t cfg;
    gs_waiter_t *w;
    int ctl_fd;
    pthread_t thread;
    _Atomic int stop;
    uint32_t max_slots;
    dp_slot_t *slots;
    _Atomic uint64_t bad_entries;

    /* One add/remove request at a time from the control plane. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int req_pending;
    int req_op, req_fd, req_rc;
    uint32_t req_slot;
    uint64_t req_seq, done_seq;
};

static void futex_wake(_Atomic uint32_t *addr)
{
    /* Not FUTEX_PRIVATE_FLAG: the waiter is another process. */
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Serve one slot's ring; heap_lock held. True if it did anything. */
static bool serve(gs_dataplane_t *dp, uint32_t slot)
{
    dp_slot_t *s = &dp->slots[slot];
    gs_ring_t *r = s->ring;
    uint32_t tail = gs_load_acquire(&r->xsq_tail);
    uint32_t n = tail - s->sq_head;
    if (n == 0) return false;
    if (n > GS_RING_ENTRIES) {
        /* Not a tail a well-behaved client can write: skip to it. */
        gs_fetch_add_relaxed(&dp->bad_entries, 1);
        s->sq_head = tail;
        gs_store_release(&r->xsq_head, tail);
        return true;
    }
    uint32_t used = s->cq_tail - gs_load_acquire(&r->xcq_head);
    if (used > GS_RING_ENTRIES) {
        gs_fetch_add_relaxed(&dp->bad_entries, 1);
        used = 0; /* an impossible head: treat everything as consumed */
    }
    uint32_t room = GS_RING_ENTRIES - used;
    if (n > room) n = room;
    if (n == 0) return false; /* the client is not reading its completions */
    for (uint32_t k = 0; k < n; k++) {
        gs_sqe_t e;
        memcpy(&e, &r->sq[(s->sq_head + k) % GS_RING_ENTRIES], sizeof e); /* read once */
        gs_cqe_t c;
        memset(&c, 0, sizeof c);
        c.tag = e.tag;
        c.result = gs_heap_serve_entry(dp->heap, slot, &e, &c);
        if (c.result == -EINVAL) gs_fetch_add_relaxed(&dp->bad_entries, 1);
        s->large[s->cq_tail % GS_RING_ENTRIES] = e.op == GS_OP_LARGE_ALLOC && c.result == 0 ? c.sid : 0;
        memcpy(&r->cq[s->cq_tail % GS_RING_ENTRIES], &c, sizeof c);
        s->cq_tail++;
    }
    s->sq_head += n;
    gs_store_release(&r->xsq_head, s->sq_head);
    gs_store_release(&r->xcq_tail, s->cq_tail);
    /* Dekker with the client's xwaiting store before it sleeps. */
    atomic_fetch_add_explicit(&r->xcq_seq, 1, memory_order_seq_cst);
    if (gs_load_seqcst(&r->xwaiting)) futex_wake(&r->xcq_seq);
    return true;
}

static bool serve_all(gs_dataplane_t *dp)
{
    bool busy = false;
    pthread_mutex_lock(dp->heap_lock);
    if (gs_load_relaxed(&dp->heap->hdr->xnotice_head)) busy |= gs_heap_drain_notices(dp->heap) > 0;
    for (uint32_t i = 0; i < dp->max_slots; i++)
        if (dp->slots[i].active) busy |= serve(dp, i);
    pthread_mutex_unlock(dp->heap_lock);
    return busy;
}

static void handle_request(gs_dataplane_t *dp)
{
    pthread_mutex_lock(&dp->mu);
    if (dp->req_op == REQ_ADD) {
        dp_slot_t *s = &dp->slots[dp->req_slot];
        s->sq_head = s->cq_tail = 0; /* the heap side zeroed the ring at claim */
        dp->req_rc = dp->w->ops->add(dp->w, dp->req_slot, dp->req_fd);
        s->active = dp->req_rc == 0;
    } else if (dp->req_op == REQ_REMOVE) {
        dp_slot_t *s = &dp->slots[dp->req_slot];
        s->active = false;
        dp->w->ops->remove(dp->w, dp->req_slot);
        /* Large objects in completions the client never read. Its head is
         * untrusted: an impossible one counts as "read everything", since
         * freeing an object the client did get could hurt other processes,
         * while keeping one it did not get only leaks it. */
        uint32_t head = gs_load_acquire(&s->ring->xcq_head);
        if (s->cq_tail - head > GS_RING_ENTRIES) head = s->cq_tail;
        pthread_mutex_lock(dp->heap_lock);
        for (uint32_t k = head; k != s->cq_tail; k++) {
            uint32_t sid = s->large[k % GS_RING_ENTRIES];
            if (sid) gs_heap_large_abandon(dp->heap, dp->req_slot, sid);
        }
        pthread_mutex_unlock(dp->heap_lock);
        memset(s->large, 0, sizeof s->large);
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
        if (dp->slots[i].active) gs_store_seqcst(&dp->slots[i].ring->xflags, v);
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
        if (!serve_all(dp) && !gs_load_acquire(&dp->req_pending) && !gs_load_acquire(&dp->stop))
            dp->w->ops->wait(dp->w, 100);
        set_wakeup(dp, 0);
        last_work = now_us();
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
    dp->max_slots = heap->cfg.max_slots;
    dp->slots = calloc(dp->max_slots, sizeof *dp->slots);
    dp->ctl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!dp->slots || dp->ctl_fd < 0) {
        snprintf(err, errlen, "data plane: %s", strerror(errno ? errno : ENOMEM));
        goto fail;
    }
    for (uint32_t i = 0; i < dp->max_slots; i++)
        dp->slots[i].ring = &gs_slot_at(heap, i)->ring;
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

const char *gs_dp_backend(const gs_dataplane_t *dp) { return dp->w->ops->name; }

uint64_t gs_dp_bad_entries(const gs_dataplane_t *dp)
{
    return gs_load_relaxed(&((gs_dataplane_t *)dp)->bad_entries);
}
