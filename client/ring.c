/* SPDX-License-Identifier: MIT */
/* ring.c: the ring round trip: libgoshm's requests through its slot's ring to goshmd's data plane.
 *
 * Overview: shm/overview.h ("Processes, threads and the ring"); the ring:
 * shm/ring.h; who serves it: daemon/serve.c. One request batch at a time,
 * serialised by a process-local mutex (refills are rare: once per span),
 * answered through the completion ring. Waiting spins briefly, then sleeps
 * on the ring's futex word; the connection is checked while sleeping so a
 * dead daemon is noticed (and waited for: client/reconnect.c), not a hang, and a round trip has a
 * deadline ($GOSHM_TIMEOUT_MS) so a stopped one is an error too (ETIMEDOUT).
 * The slot's ring is this process's alone: a request given up on stays on
 * it, and its late completion is recognised by its tag and drained at the
 * next round trip, before anything new is sent, and what it carries (spans,
 * a large object) is given back.
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
#include <pthread.h> /* pthread_once */
#include <stdlib.h> /* getenv, strtoul */
#include <string.h> /* memcpy, memmove */
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

/* ---- the deadline ----------------------------------------------------------
 * Every round trip has one: $GOSHM_TIMEOUT_MS milliseconds (default
 * GOSHM_DEFAULT_TIMEOUT_MS; 0: none, wait as long as the daemon lives; a
 * value that is not a number up to GS_TIMEOUT_MAX_MS is ignored). A stopped
 * or wedged daemon then costs a caller that long, and the call fails with
 * ETIMEDOUT (goshm.h). Read once per process. */
#define GOSHM_DEFAULT_TIMEOUT_MS 10000u
#define GS_TIMEOUT_MAX_MS 86400000u /* a day */

static pthread_once_t timeout_once = PTHREAD_ONCE_INIT;
static uint32_t timeout_ms_value = GOSHM_DEFAULT_TIMEOUT_MS;

static void timeout_read(void)
{
    const char *v = getenv("GOSHM_TIMEOUT_MS");
    if (!v || !*v) return;
    char *end;
    errno = 0;
    unsigned long ms = strtoul(v, &end, 10);
    if (errno || *end || v[0] == '-' || ms > GS_TIMEOUT_MAX_MS) return;
    timeout_ms_value = (uint32_t)ms;
}

uint32_t gs_svc_timeout_ms(void)
{
    int e = errno; /* a successful call leaves errno alone */
    pthread_once(&timeout_once, timeout_read);
    errno = e;
    return timeout_ms_value;
}

/* Wait until the completion ring holds an entry we have not read. 0;
 * -ETIMEDOUT at `deadline` (CLOCK_MONOTONIC ns; 0: none); -ECONNRESET when
 * the daemon is gone. */
static int wait_completion(svc_seam_t *s, uint64_t deadline)
{
    gs_ring_t *r = s->ring;
    /* Poll: a few pauses, then yield. The scheduler often puts the
     * daemon's data-plane thread on the client's CPU (it woke it), and a
     * pause loop would then only delay the answer it waits for. */
    uint64_t spin_end = 0;
    for (uint32_t spins = 1; gs_load_acquire(&r->xcq_tail) == s->cq_head; spins++) {
        if (spins < 64u) {
            gs_cpu_relax();
            continue;
        }
        sched_yield();
        uint64_t t = gs_now_ns();
        if (!spin_end) spin_end = t + SPIN_NS;
        else if (t >= spin_end) break;
    }
    while (gs_load_acquire(&r->xcq_tail) == s->cq_head) {
        uint64_t now = gs_now_ns();
        if (deadline && now >= deadline) return -ETIMEDOUT;
        uint64_t nap = 50u * 1000u * 1000u; /* then check the connection */
        if (deadline && deadline - now < nap) nap = deadline - now;
        gs_store_seqcst(&r->xwaiting, 1);
        uint32_t seq = gs_load_seqcst(&r->xcq_seq);
        if (gs_load_acquire(&r->xcq_tail) == s->cq_head) gs_futex_wait(&r->xcq_seq, seq, nap);
        gs_store_relaxed(&r->xwaiting, 0);
        if (gs_load_acquire(&r->xcq_tail) == s->cq_head && gs_svc_daemon_gone(s))
            return -ECONNRESET; /* the caller waits for a daemon that adopts the heap */
    }
    return 0;
}

/* Put one entry on the submission ring (not yet published). The ring holds
 * what is outstanding: the stale entries and this round trip's, never more
 * than 1 + GS_RING_MAX_BATCH (see below), well under GS_RING_ENTRIES. */
static void submit(svc_seam_t *s, gs_sqe_t *e)
{
    e->tag = ++s->tag;
    memcpy(&s->ring->sq[s->sq_tail % GS_RING_ENTRIES], e, sizeof *e);
    s->sq_tail++;
}

static void publish(svc_seam_t *s)
{
    gs_store_release(&s->ring->xsq_tail, s->sq_tail);
    gs_fence_seqcst();
    ring_doorbell(s);
}

/* Take the next completion off the ring (wait_completion said there is one). */
static void take_completion(svc_seam_t *s, gs_cqe_t *out)
{
    memcpy(out, &s->ring->cq[s->cq_head % GS_RING_ENTRIES], sizeof *out);
    s->last_tag = out->tag; /* what a resume says we read (client/reconnect.c) */
    s->cq_head++;
    gs_store_release(&s->ring->xcq_head, s->cq_head);
}

static void stale_push(svc_seam_t *s, const gs_sqe_t *e)
{
    if (s->nstale >= GS_RING_ENTRIES) gs_throw("ring: too many abandoned requests");
    s->stale[s->nstale].tag = e->tag;
    s->stale[s->nstale].op = e->op;
    s->nstale++;
}

/* The completion of an abandoned request came: give back what it carries,
 * since its caller was told ETIMEDOUT and will never use it. Spans a REFILL
 * got go back with a REFILL that only hands back (itself abandoned: its
 * completion is drained like this one); a large object is freed as
 * goshm_free would free it (its span goes back to the heap when the daemon
 * sweeps it). Anything else carries nothing. */
static void stale_release(svc_seam_t *s, const gs_cqe_t *c, uint8_t op)
{
    struct goshm *h = s->h;
    if (op == GS_OP_REFILL && c->result > 0) {
        uint32_t n = (uint32_t)c->result;
        if (n > GS_RING_MAX_BATCH) {
            gs_report_peer("ring: more spans than asked for (late answer)");
            return;
        }
        gs_sqe_t e;
        (void)gs_sqe_refill(&e, 0, c->sids, n, 0);
        submit(s, &e);
        stale_push(s, &e);
        publish(s);
    } else if (op == GS_OP_LARGE_ALLOC && c->result == 0) {
        const gs_mspan_t *m = c->sid != 0 && c->sid < h->max_spans ? &h->spans[c->sid] : NULL;
        uint64_t base = m ? *(const volatile uint64_t *)&m->base_off : 0;
        if (!m || m->state != GS_SPAN_LARGE || base < h->arena_off || base >= h->data_size) {
            gs_report_peer("large allocation answered with a span that is not ours (late answer)");
            return;
        }
        gs_fetch_add_relaxed(&h->slotp->xlarge_allocs, 1); /* so that its free balances */
        goshm_free(h, h->data + base);
    }
}

/* Drain the completions of abandoned requests, up to `deadline`. 0, or the
 * error of wait_completion (they are still outstanding then). */
static int stale_drain(svc_seam_t *s, uint64_t deadline)
{
    while (s->nstale) {
        int rc = wait_completion(s, deadline);
        if (rc) return rc;
        gs_cqe_t c;
        take_completion(s, &c);
        uint8_t op = s->stale[0].op;
        bool ok = c.tag == s->stale[0].tag;
        if (!ok) gs_report_peer("ring: completion out of order (late answer)");
        s->nstale--;
        memmove(&s->stale[0], &s->stale[1], s->nstale * sizeof s->stale[0]);
        if (ok) stale_release(s, &c, op); /* what a wrong answer carries is not ours */
    }
    return 0;
}

/* Submit n entries and wait for their n completions, until the deadline.
 * 0, or -errno for the transport (-ETIMEDOUT: the entries not answered yet
 * are abandoned, and what their late completions carry is given back);
 * per-entry results are in out[]. When the daemon goes away meanwhile (its
 * connection closed, not merely slow), wait for one that adopts the heap
 * (client/reconnect.c), then submit again what was not answered, with a
 * fresh deadline: the adopter undid or finished whatever the old daemon
 * was doing (daemon/intent.c). */
static int roundtrip(svc_seam_t *s, gs_sqe_t *e, uint32_t n, gs_cqe_t *out)
{
    pthread_mutex_lock(&s->mu);
    if (s->pid != gs_svc_pid()) {
        int rc = gs_svc_reattach(s);
        if (rc) {
            pthread_mutex_unlock(&s->mu);
            return rc;
        }
        s->nstale = 0; /* those were the parent's, on the parent's ring */
    }
    if (s->dead) { /* another heap answers at the path: nothing to wait for */
        pthread_mutex_unlock(&s->mu);
        return -ECONNRESET;
    }
    int rc = 0;
    if (s->sock < 0) {
        /* A reconnection gave up before: one more try, without waiting.
         * (A daemon that went away since the last call is found by the wait
         * below: no system call here per refill.) */
        rc = gs_svc_reconnect(s);
        if (rc) {
            pthread_mutex_unlock(&s->mu);
            return rc;
        }
    }
    uint32_t got = 0;
    bool bad = false;
    for (;;) {
        uint32_t tmo = gs_svc_timeout_ms();
        uint64_t deadline = tmo ? gs_now_ns() + (uint64_t)tmo * 1000000u : 0;
        /* Late answers first: a daemon still not answering them fails this
         * call before it adds to the ring. */
        rc = stale_drain(s, deadline);
        if (!rc) {
            for (uint32_t i = got; i < n; i++) submit(s, &e[i]);
            publish(s);
            while (got < n) {
                rc = wait_completion(s, deadline);
                if (rc) {
                    if (rc == -ETIMEDOUT)
                        for (uint32_t i = got; i < n; i++) stale_push(s, &e[i]);
                    break;
                }
                take_completion(s, &out[got]);
                if (out[got].tag != e[got].tag) {
                    /* Not the answer we wait for (late ones were drained
                     * above): fail this call, never the process. */
                    gs_report_peer("ring: completion out of order");
                    bad = true;
                }
                got++;
            }
        }
        if (rc != -ECONNRESET) break;
        /* The daemon is gone. Abandoned requests die with its ring; what
         * they got stays with our slot (returned when we detach), and a
         * large object we never read is freed at resume. */
        rc = gs_svc_reconnect(s);
        if (rc) break;
        s->nstale = 0;
    }
    if (!rc && bad) rc = -EPROTO;
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
    if (c.result < -4095) return -EPROTO; /* not an errno: garbage */
    if (c.result > 0) {
        if ((uint32_t)c.result > want || (uint32_t)c.result > GS_RING_MAX_BATCH) {
            gs_report_peer("ring: more spans than asked for");
            return -EPROTO;
        }
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
    if (c.result < -4095 || c.result > 0) return -EPROTO; /* not an errno: garbage */
    *sid = c.sid;
    return c.result;
}


static int s_close(void *p) { return gs_svc_detach(p); }

const gs_seam_ops_t gs_svc_ops = {
    .refill = s_refill, .large_alloc = s_large, .close = s_close,
};
