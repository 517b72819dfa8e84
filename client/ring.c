/* SPDX-License-Identifier: MIT */
/* ring.c: the ring round trip: libgoshm's requests through its slot's ring to goshmd's data plane.
 *
 * Overview: shm/overview.h ("Processes, threads and the ring"); the ring:
 * shm/ring.h; who serves it: daemon/serve.c. One request batch at a time,
 * serialised by a process-local mutex (refills are rare: once per span),
 * answered through the completion ring. Waiting spins briefly, then sleeps
 * on the ring's futex word; the connection is checked while sleeping so a
 * dead daemon is an error (ECONNRESET), not a hang.
 *
 * The notice stack (spans that gained frees) never rings the doorbell: the
 * daemon drains it once per serve pass, so before every refill and large
 * allocation it serves, which is when the memory is wanted, and on its
 * 100 ms timer.
 */
#define _GNU_SOURCE
#include "client.h"

#include <errno.h>  /* errno */
#include <sched.h>  /* sched_yield */
#include <string.h> /* memcpy */
#include <unistd.h> /* write */

#include "clock.h"
#include "futex.h"

/* How long a client polls for its completion before sleeping on the futex:
 * longer than the daemon needs to serve a refill (~1 us), shorter than the
 * daemon's own spin, and the futex wake of a sleeping thread costs ~100 us on
 * a small VM. */
#define SPIN_NS 30000u

static void ring_doorbell(svc_seam_t *s)
{
    /* seq_cst: pairs with the daemon's NEED_WAKEUP store and re-check. */
    if ((gs_load_seqcst(&s->ring->xflags) & GS_RING_NEED_WAKEUP) && s->doorbell >= 0) {
        uint64_t one = 1;
        ssize_t r = write(s->doorbell, &one, sizeof one);
        (void)r;
    }
}

/* Put n entries (tags set) on the ring and ring the doorbell. */
static void submit(svc_seam_t *s, const gs_sqe_t *e, uint32_t n)
{
    gs_ring_t *r = s->ring;
    for (uint32_t i = 0; i < n; i++) {
        memcpy(&r->sq[s->sq_tail % GS_RING_ENTRIES], &e[i], sizeof e[i]);
        s->sq_tail++;
    }
    gs_store_release(&r->xsq_tail, s->sq_tail);
    gs_fence_seqcst();
    ring_doorbell(s);
}

/* Submit n entries and wait for their n completions. 0, or -errno for the
 * transport; per-entry results are in out[]. When the daemon goes away
 * meanwhile, wait for one that adopts the heap (client/reconnect.c) and
 * submit again what was not answered: the adopter undid or finished
 * whatever the old daemon was doing (daemon/intent.c). */
static int roundtrip(svc_seam_t *s, gs_sqe_t *e, uint32_t n, gs_cqe_t *out)
{
    pthread_mutex_lock(&s->mu);
    if (s->pid != gs_svc_pid()) {
        int rc = gs_svc_reattach(s);
        if (rc) {
            pthread_mutex_unlock(&s->mu);
            return rc;
        }
    }
    if (s->dead) { /* another heap answers at the path: nothing to wait for */
        pthread_mutex_unlock(&s->mu);
        return -ECONNRESET;
    }
    gs_ring_t *r = s->ring;
    for (uint32_t i = 0; i < n; i++) e[i].tag = ++s->tag;
    if (s->sock < 0) {
        /* A reconnection gave up before: one more try, without waiting.
         * (A daemon that went away since the last call is found below, by
         * the wait that sees no answer: no system call here per refill.) */
        int rc = gs_svc_reconnect(s);
        if (rc) {
            pthread_mutex_unlock(&s->mu);
            return rc;
        }
    }
    submit(s, e, n);
    uint32_t got = 0;
    int rc = 0;
    while (got < n) {
        /* Poll: a few pauses, then yield. The scheduler often puts the
         * daemon's data-plane thread on the client's CPU (it woke it), and
         * a pause loop would then only delay the answer it waits for. */
        uint64_t deadline = 0;
        for (uint32_t spins = 1; gs_load_acquire(&r->xcq_tail) == s->cq_head; spins++) {
            if (spins < 64u) {
                gs_cpu_relax();
                continue;
            }
            sched_yield();
            uint64_t t = gs_now_ns();
            if (!deadline) deadline = t + SPIN_NS;
            else if (t >= deadline) break;
        }
        if (gs_load_acquire(&r->xcq_tail) == s->cq_head) {
            gs_store_seqcst(&r->xwaiting, 1);
            uint32_t seq = gs_load_seqcst(&r->xcq_seq);
            if (gs_load_acquire(&r->xcq_tail) == s->cq_head) {
                gs_futex_wait(&r->xcq_seq, seq, 50u * 1000u * 1000u);
            }
            gs_store_relaxed(&r->xwaiting, 0);
            if (gs_load_acquire(&r->xcq_tail) == s->cq_head && gs_svc_daemon_gone(s)) {
                rc = gs_svc_reconnect(s);
                if (rc) break;
                submit(s, e + got, n - got);
            }
            continue;
        }
        uint32_t tail = gs_load_acquire(&r->xcq_tail);
        while (s->cq_head != tail && got < n) {
            memcpy(&out[got], &r->cq[s->cq_head % GS_RING_ENTRIES], sizeof out[got]);
            s->cq_head++;
            if (out[got].tag != e[got].tag) gs_throw("ring: completion out of order");
            s->last_tag = out[got].tag;
            got++;
        }
        gs_store_release(&r->xcq_head, s->cq_head);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int s_refill(void *p, uint32_t sc, const uint32_t *back, uint32_t nback, uint32_t want, uint32_t *sids)
{
    svc_seam_t *s = p;
    gs_sqe_t e;
    int erc = gs_sqe_refill(&e, sc, back, nback, want);
    if (erc) return erc;
    gs_cqe_t c;
    int rc = roundtrip(s, &e, 1, &c);
    if (rc) return rc;
    if (c.result > 0) {
        if ((uint32_t)c.result > want) gs_throw("ring: more spans than asked for");
        memcpy(sids, c.sids, (size_t)c.result * sizeof *sids);
    }
    return c.result;
}

static int s_large(void *p, uint64_t npages, uint32_t align_shift, uint32_t *sid)
{
    gs_sqe_t e;
    gs_sqe_large(&e, npages, align_shift);
    gs_cqe_t c;
    int rc = roundtrip(p, &e, 1, &c);
    if (rc) return rc;
    *sid = c.sid;
    return c.result;
}


static int s_close(void *p) { return gs_svc_detach(p); }

const gs_seam_ops_t gs_svc_ops = {
    .refill = s_refill, .large_alloc = s_large, .close = s_close,
};
