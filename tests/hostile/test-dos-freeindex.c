/* SPDX-License-Identifier: MIT */
/* Description: a client cannot pin a span it does not own as full through
 * the side record's freeindex (issue 7, point 8). Client A allocates objects
 * of one class, frees all but one and detaches: the span goes back to its
 * mcentral (uncached) with one live object. A hostile client B, attached on
 * its own, writes that span's client-writable xfreeindex = nelems (as if
 * every slot had been handed out), then frees the last object, so the daemon
 * sweeps the span. The sweep must use the daemon's own freeindex: the span
 * empties, the heap's in-use bytes go back to 0 and its spans to the mheap,
 * and a fresh client can allocate the class's slots again.
 *
 * Usage: test-dos-freeindex GOSHMD   (also $GOSHMD)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "client.h"
#include "harness.h"

static bool in_use_zero(const gsh_stats_t *st, void *unused)
{
    (void)unused;
    return st->in_use_bytes == 0 && st->span_bytes == 0;
}

int main(int argc, char **argv)
{
    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), "--size 128M") == 0);
    goshm_t *a = goshm_attach(d.sock);
    goshm_t *b = goshm_attach(d.sock);
    REQUIRE(a && b);

    /* A: a span of 1 KiB objects, one left live, handed back by detach. */
    enum { K = 8 };
    void *objs[K];
    for (int i = 0; i < K; i++) REQUIRE((objs[i] = goshm_malloc(a, 1024)) != NULL);
    strcpy(objs[0], "last one");
    goshm_off_t off = goshm_off(a, objs[0]);
    for (int i = 1; i < K; i++) goshm_free(a, objs[i]);
    CHECK(goshm_detach(a) == 0);

    /* B: the hostile write, then the free that makes the daemon sweep. */
    char *p = goshm_ptr(b, off);
    REQUIRE(p);
    CHECK(strcmp(p, "last one") == 0);
    gs_lookup_t l;
    REQUIRE(gs_lookup(b, p, &l) == NULL);
    const gs_mspan_t *m = &b->spans[l.sid];
    CHECK(gs_mspan_owner(m) == 0); /* uncached: its mcentral has it */
    gs_side_t *side = (gs_side_t *)(b->data + m->side_off);
    fprintf(stderr, "span %u: %u slots of %u B; writing xfreeindex = %u\n", l.sid, m->nelems, m->elemsize,
            m->nelems);
    gs_store_release(&side->xfreeindex, m->nelems);
    goshm_free(b, p);

    /* The span empties: nothing in use, no span held. */
    gsh_stats_t st;
    int w = gsh_wait_for(d.sock, &st, in_use_zero, NULL, 3000);
    CHECK_MSG(w == 1, "after the last free: in_use %" PRIu64 " B, span_bytes %" PRIu64 " B (pinned?)",
              st.in_use_bytes, st.span_bytes);

    /* And the class serves again, contents intact. */
    goshm_t *c = goshm_attach(d.sock);
    REQUIRE(c);
    char *q[64];
    for (int i = 0; i < 64; i++) {
        q[i] = goshm_malloc(c, 1024);
        CHECK(q[i] != NULL);
        if (q[i]) memset(q[i], i, 1024);
    }
    for (int i = 0; i < 64; i++)
        if (q[i]) {
            CHECK(q[i][0] == i && q[i][1023] == i);
            goshm_free(c, q[i]);
        }
    CHECK(goshm_detach(c) == 0);
    CHECK(goshm_detach(b) == 0);
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK(st.in_use_bytes == 0 && st.span_bytes == 0);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-dos-freeindex");
}
