/* SPDX-License-Identifier: MIT */
/* Description: per-client and per-uid quotas (issue 7, point 8), against a
 * real goshmd with --max-client-bytes 4M --max-uid-bytes 6M. All clients
 * are of this process's uid (separate attaches: separate slots).
 * (1) Client A gets four 1 MiB large objects, the fifth fails with EDQUOT;
 *     freeing one gives the room back.
 * (2) Client B of the same uid gets 2 MiB more, then EDQUOT: the uid's 6 MiB.
 * (3) A detaches without freeing: its objects stay (B reads them back), still
 *     charged to the uid, so a new client C gets EDQUOT too. Once B frees
 *     them, C allocates again.
 * (4) Small objects: a client's refills stop with EDQUOT at its quota.
 * In the end everything is freed and the heap is idle.
 *
 * Usage: test-dos-quota GOSHMD   (also $GOSHMD)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../service/harness.h"
#include "../unit/check.h"
#include "goshm/goshm.h"

#define MIB (1u << 20)

static void *big(goshm_t *h, unsigned tag)
{
    unsigned char *p = goshm_malloc(h, MIB);
    if (p) {
        p[0] = (unsigned char)tag;
        p[MIB - 1] = (unsigned char)~tag;
    }
    return p;
}

static bool ok_big(const unsigned char *p, unsigned tag)
{
    return p[0] == (unsigned char)tag && p[MIB - 1] == (unsigned char)~tag;
}

static void expect_edquot(goshm_t *h, size_t size, const char *what)
{
    errno = 0;
    void *p = goshm_malloc(h, size);
    int e = errno;
    CHECK_MSG(p == NULL && e == EDQUOT, "%s: expected EDQUOT, got %p / %s", what, p, strerror(e));
    if (p) goshm_free(h, p);
}

int main(int argc, char **argv)
{
    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), "--size 128M --max-client-bytes 4M --max-uid-bytes 6M") == 0);

    /* (1) The client quota. */
    goshm_t *a = goshm_attach(d.sock);
    REQUIRE(a);
    unsigned char *pa[4];
    for (unsigned i = 0; i < 4; i++) {
        pa[i] = big(a, i);
        CHECK_MSG(pa[i] != NULL, "A's large object %u: %s", i, strerror(errno));
    }
    expect_edquot(a, MIB, "A's fifth MiB");
    if (pa[3]) goshm_free(a, pa[3]);
    pa[3] = big(a, 3);
    CHECK_MSG(pa[3] != NULL, "A's fourth MiB again after a free: %s", strerror(errno));

    /* (2) The uid quota. */
    goshm_t *b = goshm_attach(d.sock);
    REQUIRE(b);
    unsigned char *pb[2];
    for (unsigned i = 0; i < 2; i++) {
        pb[i] = big(b, 10 + i);
        CHECK_MSG(pb[i] != NULL, "B's large object %u: %s", i, strerror(errno));
    }
    expect_edquot(b, MIB, "B past the uid's 6 MiB");

    /* (3) A leaves without freeing: the objects stay, and stay charged. */
    goshm_off_t offs[4];
    for (unsigned i = 0; i < 4; i++) offs[i] = pa[i] ? goshm_off(a, pa[i]) : GOSHM_NULL;
    CHECK(goshm_detach(a) == 0);
    goshm_t *c = goshm_attach(d.sock);
    REQUIRE(c);
    expect_edquot(c, MIB, "C while A's objects are still there");
    for (unsigned i = 0; i < 4; i++) {
        unsigned char *p = offs[i] ? goshm_ptr(b, offs[i]) : NULL;
        CHECK(p != NULL);
        if (!p) continue;
        CHECK_MSG(ok_big(p, i), "A's object %u after A left", i);
        goshm_free(b, p);
    }
    /* The frees reach the daemon's sweep through notices: give it a tick. */
    unsigned char *pc = NULL;
    for (int t = 0; t < 50 && !pc; t++) {
        pc = big(c, 20);
        if (!pc) gsh_sleep_ms(20);
    }
    CHECK_MSG(pc != NULL, "C after A's objects were freed: %s", strerror(errno));
    if (pc) {
        CHECK(ok_big(pc, 20));
        goshm_free(c, pc);
    }
    for (unsigned i = 0; i < 2; i++)
        if (pb[i]) {
            CHECK(ok_big(pb[i], 10 + i));
            goshm_free(b, pb[i]);
        }
    CHECK(goshm_detach(b) == 0);
    CHECK(goshm_detach(c) == 0);

    /* (4) Small objects: refills stop at the client's quota. */
    goshm_t *s = goshm_attach(d.sock);
    REQUIRE(s);
    enum { MAXN = (8u << 20) / 64 };
    static void *objs[MAXN];
    unsigned n = 0;
    int e = 0;
    for (; n < MAXN; n++) {
        errno = 0;
        objs[n] = goshm_malloc(s, 64);
        if (!objs[n]) {
            e = errno;
            break;
        }
        memset(objs[n], (int)(n & 0xff), 64);
    }
    fprintf(stderr, "(4) %u objects of 64 B (%u KiB) before %s\n", n, n / 16, strerror(e));
    CHECK_MSG(e == EDQUOT, "(4) small objects stopped with %s, not EDQUOT", strerror(e));
    CHECK_MSG((uint64_t)n * 64u <= (4u << 20) && (uint64_t)n * 64u > (3u << 20), "(4) %u objects of 64 B", n);
    for (unsigned i = 0; i < n; i++) {
        const unsigned char *p = objs[i];
        if (p[0] != (unsigned char)(i & 0xff) || p[63] != (unsigned char)(i & 0xff)) {
            CHECK_MSG(0, "(4) object %u changed", i);
            break;
        }
        goshm_free(s, objs[i]);
    }
    CHECK(goshm_detach(s) == 0);

    gsh_stats_t st;
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK(st.in_use_bytes == 0 && st.span_bytes == 0);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-dos-quota");
}
