/* SPDX-License-Identifier: MIT */
/* Description: malformed ring entries get error completions and never hurt
 * the daemon. A second attach's submission ring is driven by hand (its
 * library state is never used for allocation): unknown ops, bad span
 * classes, RELEASE of a span that does not exist, of a span another client
 * caches, of a large span, of one already released, LARGE_ALLOC of 2^60 and
 * of 0 pages, NOTICE of a garbage span id, REFILL handing back spans that
 * are not its own. Each gets a negative result (-EINVAL or -ENOMEM; a
 * batched REFILL skips and counts bad spans handed back), in order, with its
 * tag, and no span; valid entries in between still work. Then an impossible tail (head + 1000) and an impossible
 * completion head: the daemon resynchronises, counts bad entries, and the
 * ring keeps working. Meanwhile a normal attach allocates and frees as usual,
 * its cached span untouched; the daemon stays alive and exits cleanly.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "check.h"
#include "client.h"
#include "ring.h"

typedef struct hand {
    goshm_t *h;
    gs_ring_t *r;
    uint32_t sq_tail;  /* our copy */
    uint32_t cq_head;  /* our copy */
    uint32_t tag;
} hand_t;

/* A REFILL entry asking for one span of class sc (shm/ring.h: batched,
 * up to GS_RING_MAX_BATCH spans each way; the result is the number got). */
static gs_sqe_t refill(uint32_t sc) { return (gs_sqe_t){.op = GS_OP_REFILL, .spanclass = sc, .want = 1}; }

/* Publish n entries (tags assigned here). The doorbell is the library's
 * private business, so this ring is only ever served by the daemon's
 * polling: it polls --spin-us after its last work, and wakes every 100 ms
 * while idle. */
static void submit(hand_t *x, gs_sqe_t *e, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        e[i].tag = ++x->tag;
        x->r->sq[x->sq_tail % GS_RING_ENTRIES] = e[i];
        x->sq_tail++;
    }
    gs_store_release(&x->r->xsq_tail, x->sq_tail);
}

/* Wait for n completions (5 s at most). Returns how many arrived. */
static uint32_t reap(hand_t *x, gs_cqe_t *out, uint32_t n)
{
    uint64_t deadline = gsh_now_ms() + 5000;
    uint32_t got = 0;
    while (got < n) {
        uint32_t tail = gs_load_acquire(&x->r->xcq_tail);
        if (tail == x->cq_head) {
            if (gsh_now_ms() > deadline) break;
            sched_yield();
            continue;
        }
        CHECK_MSG(tail - x->cq_head <= GS_RING_ENTRIES, "completion tail %u, head %u", tail, x->cq_head);
        while (x->cq_head != tail && got < n) out[got++] = x->r->cq[x->cq_head++ % GS_RING_ENTRIES];
        gs_store_release(&x->r->xcq_head, x->cq_head);
    }
    return got;
}

/* Submit one entry and return its completion's result (INT32_MAX if none
 * came); *out (may be NULL) gets the completion. */
static int32_t one(hand_t *x, gs_sqe_t e, gs_cqe_t *out)
{
    gs_cqe_t c;
    submit(x, &e, 1);
    if (reap(x, &c, 1) != 1) {
        CHECK_MSG(0, "no completion for op %u", e.op);
        return INT32_MAX;
    }
    CHECK_MSG(c.tag == e.tag, "completion tag %u, want %u", c.tag, e.tag);
    if (out) *out = c;
    return c.result;
}

static uint32_t sid_of(goshm_t *h, void *p)
{
    gs_lookup_t l;
    const char *why = gs_lookup(h, p, &l);
    CHECK_MSG(why == NULL, "lookup: %s", why ? why : "");
    return why ? 0 : l.sid;
}

int main(int argc, char **argv)
{
    gsh_daemon_t d;
    /* A long poll: the daemon serves a hand-written tail without a doorbell
     * too, but then only every 100 ms. */
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), "--spin-us 200000") == 0);
    gsh_stats_t st0, st;
    REQUIRE(gsh_stats(d.sock, &st0) == 0);

    goshm_t *h1 = goshm_attach(d.sock); /* used normally */
    goshm_t *h2 = goshm_attach(d.sock); /* its ring driven by hand */
    REQUIRE(h1 && h2);
    CHECK(h1->slot != h2->slot);
    hand_t x = {.h = h2, .r = &h2->slotp->ring};
    CHECK(gs_load_acquire(&x.r->xsq_tail) == 0 && gs_load_acquire(&x.r->xcq_tail) == 0);

    /* Spans owned by h1: a small one its mcache caches, and a large one. */
    unsigned char *small = goshm_malloc(h1, 100);
    unsigned char *large = goshm_malloc(h1, 100000);
    REQUIRE(small && large);
    memset(small, 0x11, 100);
    memset(large, 0x22, 100000);
    uint32_t sid_small = sid_of(h1, small), sid_large = sid_of(h1, large);
    CHECK(sid_small && sid_large && sid_small != sid_large);

    /* A batch of malformed entries with one valid NOP and one valid drain. */
    struct {
        gs_sqe_t e;
        int32_t want, alt; /* expected result, or an acceptable alternative */
    } bad[] = {
        {{.op = 200}, -EINVAL, -EINVAL},
        {{.op = GS_OP_MAX}, -EINVAL, -EINVAL},
        {refill(9999), -EINVAL, -EINVAL},
        {refill(0), -EINVAL, -EINVAL}, /* class 0 is large */
        {refill(1), -EINVAL, -EINVAL}, /* tiny variant of class 0 */
        {refill(3), -EINVAL, -EINVAL}, /* tiny is only class 2 */
        {{.op = GS_OP_REFILL, .spanclass = 10, .want = GS_RING_MAX_BATCH + 1}, -EINVAL, -EINVAL},
        {{.op = GS_OP_REFILL, .spanclass = 10, .want = 1, .nback = 255}, -EINVAL, -EINVAL},
        /* Handing back spans that are not ours: skipped and counted as bad
         * requests; nothing asked for, nothing got. */
        {{.op = GS_OP_REFILL, .spanclass = 10, .nback = 3, .back = {0xffffff, 0, 0xfffffff0u}}, 0, 0},
        {{.op = GS_OP_NOP}, 0, 0},
        {{.op = GS_OP_RELEASE, .sid = 0xffffff}, -EINVAL, -EINVAL},
        {{.op = GS_OP_RELEASE, .sid = 0}, -EINVAL, -EINVAL},
        {{.op = GS_OP_RELEASE, .sid = sid_small}, -EINVAL, -EINVAL},         /* h1 caches it */
        {{.op = GS_OP_RELEASE, .sid = sid_large}, -EINVAL, -EINVAL},         /* a large object */
        {{.op = GS_OP_LARGE_ALLOC, .npages = UINT64_C(1) << 60}, -ENOMEM, -EINVAL},
        {{.op = GS_OP_LARGE_ALLOC, .npages = 0}, -ENOMEM, -EINVAL},
        {{.op = GS_OP_NOTICE, .sid = 0xfffffff0u}, -EINVAL, -EINVAL},
        {{.op = GS_OP_NOTICE, .sid = 0}, 0, 0},                             /* drain the stack */
        {{.op = GS_OP_REFILL, .spanclass = 10, .nback = 2, .back = {sid_small, sid_large}}, 0, 0}, /* h1's */
    };
    enum { NBAD = sizeof bad / sizeof bad[0] };
    gs_sqe_t e[NBAD];
    uint32_t einval = 0;
    for (int i = 0; i < NBAD; i++) {
        e[i] = bad[i].e;
        einval += bad[i].want == -EINVAL;
    }
    submit(&x, e, NBAD);
    gs_cqe_t c[GS_RING_ENTRIES];
    uint32_t got = reap(&x, c, NBAD);
    CHECK_MSG(got == NBAD, "%u of %d completions", got, NBAD);
    for (uint32_t i = 0; i < got; i++) {
        CHECK_MSG(c[i].tag == e[i].tag, "entry %u: tag %u, want %u (order)", i, c[i].tag, e[i].tag);
        CHECK_MSG(c[i].result == bad[i].want || c[i].result == bad[i].alt, "entry %u (op %u): result %d, want %d", i,
                  e[i].op, c[i].result, bad[i].want);
        if (c[i].result < 0) CHECK_MSG(c[i].sid == 0, "entry %u: failed but sid %u", i, c[i].sid);
        if (e[i].op == GS_OP_REFILL && c[i].result <= 0) CHECK_MSG(c[i].sids[0] == 0, "entry %u: a span", i);
    }
    REQUIRE(gsh_stats(d.sock, &st) == 0);
    CHECK_MSG(st.bad_ring_entries >= st0.bad_ring_entries + einval, "bad_ring_entries %" PRIu64 ", want >= %u",
              st.bad_ring_entries, einval);
    CHECK(st.bad_requests > st0.bad_requests);
    CHECK(st.clients == 2);

    /* A valid REFILL on the hand ring caches a span for h2's slot; RELEASE
     * gives it back; a second RELEASE is an error. */
    uint32_t sc = 5u * 2u; /* the 64-byte class, not tiny */
    gs_cqe_t rep;
    int32_t rc = one(&x, refill(sc), &rep);
    uint32_t sid = rc == 1 ? rep.sids[0] : 0;
    CHECK_MSG(rc == 1 && sid != 0, "valid refill: %d, sid %u", rc, sid);
    if (rc == 1 && sid && sid < h2->max_spans) {
        CHECK(h2->spans[sid].state == GS_SPAN_SMALL && h2->spans[sid].spanclass == sc);
        CHECK(sid != sid_small);
        CHECK(one(&x, (gs_sqe_t){.op = GS_OP_RELEASE, .sid = sid}, NULL) == 0);
        CHECK(one(&x, (gs_sqe_t){.op = GS_OP_RELEASE, .sid = sid}, NULL) == -EINVAL);
    }

    /* A full ring of garbage: 64 entries at once, all answered. */
    gs_sqe_t full[GS_RING_ENTRIES];
    for (uint32_t i = 0; i < GS_RING_ENTRIES; i++) full[i] = (gs_sqe_t){.op = (uint8_t)(100 + i)};
    submit(&x, full, GS_RING_ENTRIES);
    got = reap(&x, c, GS_RING_ENTRIES);
    CHECK_MSG(got == GS_RING_ENTRIES, "%u of 64 garbage completions", got);
    for (uint32_t i = 0; i < got; i++) CHECK(c[i].tag == full[i].tag && c[i].result == -EINVAL);

    /* An impossible tail: the daemon skips to it and counts it. */
    REQUIRE(gsh_stats(d.sock, &st0) == 0);
    uint32_t head = gs_load_acquire(&x.r->xsq_head);
    CHECK(head == x.sq_tail);
    x.sq_tail = head + 1000u;
    gs_store_release(&x.r->xsq_tail, x.sq_tail);
    uint64_t deadline = gsh_now_ms() + 5000;
    while (gs_load_acquire(&x.r->xsq_head) != x.sq_tail && gsh_now_ms() < deadline) sched_yield();
    CHECK_MSG(gs_load_acquire(&x.r->xsq_head) == x.sq_tail, "no resync: head %u, tail %u",
              gs_load_acquire(&x.r->xsq_head), x.sq_tail);
    CHECK(gs_load_acquire(&x.r->xcq_tail) == x.cq_head); /* nothing completed for it */
    REQUIRE(gsh_stats(d.sock, &st) == 0);
    CHECK_MSG(st.bad_ring_entries > st0.bad_ring_entries, "resync not counted");
    /* The ring works from the new head. */
    CHECK(one(&x, (gs_sqe_t){.op = GS_OP_NOP}, NULL) == 0);

    /* An impossible completion head: treated as "all consumed". */
    REQUIRE(gsh_stats(d.sock, &st0) == 0);
    gs_store_release(&x.r->xcq_head, x.cq_head + 500u);
    CHECK(one(&x, (gs_sqe_t){.op = GS_OP_NOP}, NULL) == 0);
    REQUIRE(gsh_stats(d.sock, &st) == 0);
    CHECK_MSG(st.bad_ring_entries > st0.bad_ring_entries, "impossible completion head not counted");

    /* h1 is unharmed: its cached span was not taken, its objects intact. */
    CHECK(small[0] == 0x11 && small[99] == 0x11 && large[0] == 0x22 && large[99999] == 0x22);
    unsigned char *objs[2000];
    for (int i = 0; i < 2000; i++) {
        objs[i] = goshm_malloc(h1, 100);
        REQUIRE(objs[i]);
        memset(objs[i], i & 0xff, 100);
    }
    int same_span = 0;
    for (int i = 0; i < 2000; i++) {
        CHECK(objs[i][0] == (i & 0xff) && objs[i][99] == (i & 0xff));
        CHECK(objs[i] != small);
        same_span += sid_of(h1, objs[i]) == sid_small;
        goshm_free(h1, objs[i]);
    }
    CHECK(same_span > 0); /* h1 kept allocating from the span h2 tried to release */
    goshm_free(h1, small);
    goshm_free(h1, large);

    CHECK(gsh_alive(&d));
    REQUIRE(gsh_stats(d.sock, &st) == 0);
    CHECK(st.bad_ring_entries > 0);
    CHECK(st.clients == 2);
    /* h2's library state never used its ring: detaching sends Detach only. */
    CHECK(goshm_detach(h2) == 0);
    CHECK(goshm_detach(h1) == 0);
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK_MSG(st.in_use_bytes == 0 && st.span_bytes == 0, "in_use_bytes %" PRIu64 ", span_bytes %" PRIu64,
              st.in_use_bytes, st.span_bytes);
    CHECK(gsh_alive(&d));
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-badring");
}
