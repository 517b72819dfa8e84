/* SPDX-License-Identifier: MIT */
/* ring.c: the ring round trip: libgoshm's requests through its slot's ring to goshmd's data plane.
 *
 * Overview: shm/overview.h ("Processes, threads and the ring"); the ring:
 * shm/ring.h; who serves it: daemon/serve.c. The ring is the process's,
 * shared by its threads under a process-local mutex; the daemon answers it
 * in order, so the requests outstanding form a FIFO (s->out, below) and
 * whoever reads a completion hands it to the request's owner: a round trip
 * in progress, a refill sent ahead of need (client/mcache.c parks it until
 * its thread wants the spans), or nobody (a request given up on, a hand-
 * back: what its answer carries is given back). A round trip waits by
 * spinning briefly, then sleeping on the ring's futex word; the connection
 * is checked while sleeping so a dead daemon is noticed (and waited for:
 * client/reconnect.c), not a hang, and it has a deadline
 * ($GOSHM_TIMEOUT_MS) so a stopped daemon is an error too (ETIMEDOUT).
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

/* ---- what is outstanding ---------------------------------------------------
 * s->out is a FIFO of the requests on the ring whose completions we have not
 * read; the daemon answers a ring in order, so the next completion is always
 * the answer to the FIFO's front. Whoever holds s->mu and reads a completion
 * hands it to its owner by the front's kind:
 *   OUT_WAITED  the round trip in progress (under s->mu, so at most one):
 *               it is the caller's;
 *   OUT_AHEAD   a refill sent ahead: parked in s->ahead[] until its thread
 *               takes it (or handed back if the thread dropped it);
 *   OUT_STALE   nobody waits for it: what it carries is given back.
 * A completion whose tag is not the front's is the daemon's error, or a
 * client thread scribbling on its own slot: the front gets no answer (its
 * waiter fails with EPROTO, a refill sent ahead is taken as lost), never an
 * abort. Everything here is process-private memory. */
enum { OUT_WAITED, OUT_AHEAD, OUT_STALE };
enum { AHEAD_FREE, AHEAD_SENT, AHEAD_ANSWERED };

/* Put one entry on the submission ring (not yet published) and at the back
 * of the FIFO. The caller made room (nout < GS_SVC_OUTSTANDING). */
static void submit(svc_seam_t *s, gs_sqe_t *e, uint8_t kind)
{
    e->tag = ++s->tag;
    if (e->tag == 0) e->tag = ++s->tag; /* 0 is no ticket */
    memcpy(&s->ring->sq[s->sq_tail % GS_RING_ENTRIES], e, sizeof *e);
    s->sq_tail++;
    uint32_t i = (s->out_head + s->nout++) % GS_SVC_OUTSTANDING;
    s->out[i].tag = e->tag;
    s->out[i].op = e->op;
    s->out[i].kind = kind;
}

/* Publish what was submitted. wake: ring the doorbell if the daemon
 * sleeps. A request nobody waits for yet (a refill sent ahead, a hand-back)
 * does not: it is served at the daemon's next pass, or its next wake-up by
 * itself (daemon/dataplane.c: within 1 ms of its last work for a second,
 * 100 ms after that), or when a round trip or a take rings. That keeps the
 * doorbell's system call and wake-up off the allocating thread's path. */
static void publish(svc_seam_t *s, bool wake)
{
    /* seq_cst, not only release: with ring_doorbell's seq_cst load of the
     * flag it is the client's half of the Dekker pairing (shm/ring.h), for
     * this doorbell and for a take's later one. */
    gs_store_seqcst(&s->ring->xsq_tail, s->sq_tail);
    if (wake) ring_doorbell(s);
}

/* The FIFO entry of `tag`, or NULL. */
static gs_svc_out_t *out_find(svc_seam_t *s, uint32_t tag)
{
    for (uint32_t k = 0; k < s->nout; k++) {
        uint32_t i = (s->out_head + k) % GS_SVC_OUTSTANDING;
        if (s->out[i].tag == tag) return &s->out[i];
    }
    return NULL;
}

static uint32_t ahead_find(svc_seam_t *s, uint32_t tag)
{
    for (uint32_t i = 0; i < GS_SVC_AHEAD; i++)
        if (s->ahead[i].state != AHEAD_FREE && s->ahead[i].tag == tag) return i;
    return GS_SVC_AHEAD;
}

void gs_svc_ring_restart(svc_seam_t *s, bool same_slot)
{
    s->sq_tail = s->cq_head = 0;
    s->out_head = s->nout = 0;
    for (uint32_t i = 0; i < GS_SVC_AHEAD; i++) {
        if (!same_slot) s->ahead[i].state = AHEAD_FREE; /* the parent's spans, on the parent's slot */
        else if (s->ahead[i].state == AHEAD_SENT) {
            /* Its request died with the old daemon's ring: lost. (What the
             * old daemon gave the slot stays the slot's, returned at detach.) */
            s->ahead[i].state = AHEAD_ANSWERED;
            s->ahead[i].result = 0;
        }
    }
}

/* Give back what the answer to an abandoned request carries, since nobody
 * will use it. Spans a REFILL got go back with a REFILL that only hands
 * back (itself abandoned: its answer carries nothing); a large object is
 * freed as goshm_free would free it (its span goes back to the heap when
 * the daemon sweeps it). Anything else carries nothing. The caller just
 * took a completion, so there is room for one more request. */
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
        submit(s, &e, OUT_STALE);
        publish(s, false);
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

/* Wait for the next completion, up to `deadline`, and hand it to the owner
 * of the FIFO's front. Returns the front's kind (the completion is in
 * *waited when it is OUT_WAITED), or the error of wait_completion. */
static int take_next(svc_seam_t *s, uint64_t deadline, gs_cqe_t *waited)
{
    int rc = wait_completion(s, deadline);
    if (rc) return rc;
    gs_cqe_t c;
    memcpy(&c, &s->ring->cq[s->cq_head % GS_RING_ENTRIES], sizeof c);
    s->last_tag = c.tag; /* what a resume says we read (client/reconnect.c) */
    s->cq_head++;
    gs_store_release(&s->ring->xcq_head, s->cq_head);
    if (s->nout == 0) { /* an answer to nothing: not ours */
        gs_report_peer("ring: a completion nobody asked for");
        return OUT_STALE;
    }
    gs_svc_out_t f = s->out[s->out_head];
    s->out_head = (s->out_head + 1u) % GS_SVC_OUTSTANDING;
    s->nout--;
    bool ok = c.tag == f.tag;
    if (!ok) gs_report_peer("ring: completion out of order");
    if (f.kind == OUT_WAITED) {
        *waited = c;
        if (!ok) waited->result = -EPROTO;
    } else if (f.kind == OUT_AHEAD) {
        uint32_t i = ahead_find(s, f.tag);
        if (i < GS_SVC_AHEAD) {
            s->ahead[i].state = AHEAD_ANSWERED;
            s->ahead[i].result = ok ? c.result : 0;
            if (ok && c.result > 0 && c.result <= (int32_t)GS_RING_MAX_BATCH)
                memcpy(s->ahead[i].sids, c.sids, (size_t)c.result * sizeof c.sids[0]);
        }
    } else if (ok) {
        stale_release(s, &c, f.op); /* what a wrong answer carries is not ours */
    }
    return f.kind;
}

/* Make room for one more request on the ring: read completions (handing
 * each to its owner) until fewer than GS_SVC_OUTSTANDING are outstanding.
 * A daemon that answers none of them fails the caller before it adds to
 * the ring. */
static int make_room(svc_seam_t *s, uint64_t deadline)
{
    gs_cqe_t unused;
    while (s->nout >= GS_SVC_OUTSTANDING) {
        int rc = take_next(s, deadline, &unused);
        if (rc < 0) return rc;
    }
    return 0;
}

static uint64_t deadline_from_now(void)
{
    uint32_t tmo = gs_svc_timeout_ms();
    return tmo ? gs_now_ns() + (uint64_t)tmo * 1000000u : 0;
}

/* Lock s->mu and make the ring usable: a fork child's own slot, a
 * connection. 0 with s->mu held, or -errno with it released. */
static int ring_enter(svc_seam_t *s)
{
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    if (s->pid != gs_svc_pid()) rc = gs_svc_reattach(s);
    else if (s->dead) rc = -ECONNRESET; /* another heap answers at the path: nothing to wait for */
    else if (s->sock < 0) {
        /* A reconnection gave up before: one more try, without waiting.
         * (A daemon that went away since the last call is found by the
         * waits: no system call here per refill.) */
        rc = gs_svc_reconnect(s);
    }
    if (rc) pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Submit e and wait for its completion, until the deadline. 0, or -errno
 * for the transport (-ETIMEDOUT: e is abandoned, and what its late
 * completion carries is given back); e's result is in *out. Completions of
 * other requests read meanwhile go to their owners (take_next). When the
 * daemon goes away meanwhile (its connection closed, not merely slow),
 * wait for one that adopts the heap (client/reconnect.c), then submit e
 * again, with a fresh deadline: the adopter undid or finished whatever the
 * old daemon was doing (daemon/intent.c). */
static int roundtrip(svc_seam_t *s, gs_sqe_t *e, gs_cqe_t *out)
{
    int rc = ring_enter(s);
    if (rc) return rc;
    for (;;) {
        uint64_t deadline = deadline_from_now();
        rc = make_room(s, deadline);
        if (!rc) {
            submit(s, e, OUT_WAITED);
            uint32_t tag = e->tag;
            publish(s, true);
            while ((rc = take_next(s, deadline, out)) >= 0 && rc != OUT_WAITED) continue;
            if (rc == OUT_WAITED) rc = 0;
            else if (rc == -ETIMEDOUT) {
                gs_svc_out_t *f = out_find(s, tag);
                if (f) f->kind = OUT_STALE; /* its late answer is given back */
            }
        }
        if (rc != -ECONNRESET) break;
        /* The daemon is gone. Outstanding requests die with its ring;
         * what they got stays with our slot (returned when we detach), and
         * a large object we never read is freed at resume. */
        rc = gs_svc_reconnect(s);
        if (rc) break;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* A REFILL's answer c, checked: the number of spans (copied to sids), or
 * -errno. */
static int refill_result(int32_t result, const uint32_t *got, uint32_t want, uint32_t *sids)
{
    if (result < -4095) return -EPROTO; /* not an errno: garbage */
    if (result > 0) {
        if ((uint32_t)result > want || (uint32_t)result > GS_RING_MAX_BATCH) {
            gs_report_peer("ring: more spans than asked for");
            return -EPROTO;
        }
        memcpy(sids, got, (size_t)result * sizeof *sids);
    }
    return result;
}

static int s_refill(void *p, uint32_t sc, const uint32_t *back, uint32_t nback, uint32_t want, uint32_t *sids)
{
    svc_seam_t *s = p;
    gs_sqe_t e;
    int erc = gs_sqe_refill(&e, sc, back, nback, want);
    if (erc) return erc;
    gs_cqe_t c;
    int rc = roundtrip(s, &e, &c);
    if (rc) return rc;
    return refill_result(c.result, c.sids, want, sids);
}

/* Send e without waiting for its answer: as a refill sent ahead (its tag
 * in *ticket; -EAGAIN when too much is outstanding to send it without
 * waiting) or as nobody's (ticket NULL: a hand-back, sent once there is
 * room, so that no span is kept back). */
static int send_unwaited(svc_seam_t *s, gs_sqe_t *e, uint32_t *ticket)
{
    int rc = ring_enter(s);
    if (rc) return rc;
    uint32_t i = 0;
    if (ticket)
        while (i < GS_SVC_AHEAD && s->ahead[i].state != AHEAD_FREE) i++;
    else if ((rc = make_room(s, deadline_from_now())) != 0) { /* spans to hand back are not dropped */
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    if (s->nout >= GS_SVC_OUTSTANDING || i == GS_SVC_AHEAD) {
        pthread_mutex_unlock(&s->mu);
        return -EAGAIN;
    }
    submit(s, e, ticket ? OUT_AHEAD : OUT_STALE);
    if (ticket) {
        s->ahead[i].tag = *ticket = e->tag;
        s->ahead[i].state = AHEAD_SENT;
        s->ahead[i].result = 0;
    }
    publish(s, false); /* answered at goshmd's next pass, or woken by the take */
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int s_refill_ahead(void *p, uint32_t sc, const uint32_t *back, uint32_t nback, uint32_t want,
                          uint32_t *ticket)
{
    gs_sqe_t e;
    int rc = gs_sqe_refill(&e, sc, back, nback, want);
    return rc ? rc : send_unwaited(p, &e, ticket);
}

static int s_give_back(void *p, uint32_t sc, const uint32_t *back, uint32_t nback)
{
    gs_sqe_t e;
    int rc = gs_sqe_refill(&e, sc, back, nback, 0);
    return rc ? rc : send_unwaited(p, &e, NULL);
}

static int s_refill_take(void *p, uint32_t ticket, uint32_t want, uint32_t *sids)
{
    svc_seam_t *s = p;
    int rc = ring_enter(s);
    if (rc) return rc;
    uint32_t i = ahead_find(s, ticket);
    uint64_t deadline = deadline_from_now();
    gs_cqe_t unused;
    /* Not answered yet: now somebody waits, so wake the daemon if it sleeps. */
    if (i < GS_SVC_AHEAD && s->ahead[i].state == AHEAD_SENT && gs_load_acquire(&s->ring->xcq_tail) == s->cq_head) {
        ring_doorbell(s);
    }
    while (i < GS_SVC_AHEAD && s->ahead[i].state == AHEAD_SENT) {
        rc = take_next(s, deadline, &unused);
        if (rc >= 0) continue;
        if (rc == -ECONNRESET) { /* the daemon is gone: wait for an adopter */
            rc = gs_svc_reconnect(s); /* which took it as lost (gs_svc_ring_restart) */
            if (!rc) continue;
        }
        gs_svc_out_t *f = out_find(s, ticket);
        if (f) f->kind = OUT_STALE; /* its late answer is given back */
        s->ahead[i].state = AHEAD_FREE;
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    rc = 0; /* not there (a fork child asks for its parent's): lost */
    if (i < GS_SVC_AHEAD) {
        rc = refill_result(s->ahead[i].result, s->ahead[i].sids, want, sids);
        s->ahead[i].state = AHEAD_FREE;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* The thread that sent it is going away (client/mcache.c, flush): wait for
 * the answer (the flush makes round trips anyway) and hand its spans back,
 * so that they do not sit with this process, unread, until its next round
 * trip. Waits no longer than a round trip: past the deadline the answer is
 * given back whenever it is read. */
static void s_refill_drop(void *p, uint32_t ticket)
{
    uint32_t sids[GS_RING_MAX_BATCH];
    int n = s_refill_take(p, ticket, GS_RING_MAX_BATCH, sids);
    if (n > 0) (void)s_give_back(p, 0, sids, (uint32_t)n);
}

static int s_large(void *p, uint64_t npages, uint32_t align_shift, uint32_t *sid)
{
    gs_sqe_t e;
    gs_sqe_large(&e, npages, align_shift);
    gs_cqe_t c;
    int rc = roundtrip(p, &e, &c);
    if (rc) return rc;
    if (c.result < -4095 || c.result > 0) return -EPROTO; /* not an errno: garbage */
    *sid = c.sid;
    return c.result;
}

static int s_close(void *p) { return gs_svc_detach(p); }

const gs_seam_ops_t gs_svc_ops = {
    .refill = s_refill,
    .refill_ahead = s_refill_ahead,
    .refill_take = s_refill_take,
    .refill_drop = s_refill_drop,
    .give_back = s_give_back,
    .large_alloc = s_large,
    .close = s_close,
};
