/* SPDX-License-Identifier: MIT */
/* Description: daemon/owners.c, the attribution of live bytes to attached
 * clients (by slot) and departed ones (by former pid): tickets are unique
 * per attachment even when a slot is reused, counting follows them, empty
 * departed entries are pruned, and a full table pushes out the entry that
 * holds the fewest bytes (after pruning empty ones), whose bytes then count
 * as departed_other.
 */
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "owners.h"

static uint64_t live[1u << 16]; /* bytes per ticket & 0xffff, for the walk */
static uint32_t tickets[64];
static int ntickets;

static void walk(void *arg, gs_owner_tally_t *t)
{
    const gs_owners_t *o = arg;
    for (int i = 0; i < ntickets; i++) gs_owners_count(o, t, tickets[i], live[tickets[i] & 0xffffu]);
}

int main(void)
{
    static gs_owners_t o;
    memset(&o, 0, sizeof o);
    uint32_t t1 = gs_owners_attach(&o, 3, 1001);
    uint32_t t2 = gs_owners_attach(&o, 3, 1002); /* slot reused: a new ticket */
    CHECK(t1 && t2 && t1 != t2 && gs_owners_ticket(&o, 3) == t2);
    gs_owner_tally_t t;
    memset(&t, 0, sizeof t);
    gs_owners_count(&o, &t, t2, 100);
    gs_owners_count(&o, &t, t1, 7); /* t1 was replaced without departing: nobody knows it */
    gs_owners_count(&o, &t, 0, 5);
    CHECK(t.slot_bytes[3] == 100 && t.departed_other == 7 && t.nobody == 5);

    gs_owners_depart(&o, 3, 42, walk, &o);
    CHECK(o.ndeparted == 1 && o.departed[0].pid == 1002 && o.departed[0].gone_ns == 42);
    CHECK(gs_owners_ticket(&o, 3) == 0);
    memset(&t, 0, sizeof t);
    gs_owners_count(&o, &t, t2, 64);
    CHECK(t.departed_bytes[0] == 64 && t.slot_bytes[3] == 0);
    memset(&t, 0, sizeof t);
    gs_owners_prune(&o, &t); /* nothing counted: empty */
    CHECK(o.ndeparted == 0);

    /* Fill the table: 32 departed clients holding 1000 + i bytes, except
     * #5 (0 bytes) and #9 (1 byte). */
    ntickets = 0;
    for (uint32_t i = 0; i < GS_OWNERS_DEPARTED; i++) {
        uint32_t tk = gs_owners_attach(&o, i % 4u, 2000 + i);
        tickets[ntickets++] = tk;
        live[tk & 0xffffu] = i == 5 ? 0 : i == 9 ? 1 : 1000 + i;
        gs_owners_depart(&o, i % 4u, i, walk, &o);
    }
    CHECK(o.ndeparted == GS_OWNERS_DEPARTED);
    /* One more: the walk prunes #5, so nobody is pushed out. */
    uint32_t tk = gs_owners_attach(&o, 1, 3000);
    tickets[ntickets++] = tk;
    live[tk & 0xffffu] = 50;
    gs_owners_depart(&o, 1, 100, walk, &o);
    CHECK(o.ndeparted == GS_OWNERS_DEPARTED);
    bool has5 = false, has9 = false;
    for (uint32_t i = 0; i < o.ndeparted; i++) {
        has5 |= o.departed[i].pid == 2005;
        has9 |= o.departed[i].pid == 2009;
    }
    CHECK(!has5 && has9);
    /* And one more: now the fewest bytes (#9, 1 byte) goes. */
    tk = gs_owners_attach(&o, 2, 3001);
    tickets[ntickets++] = tk;
    live[tk & 0xffffu] = 70;
    gs_owners_depart(&o, 2, 101, walk, &o);
    has9 = false;
    for (uint32_t i = 0; i < o.ndeparted; i++) has9 |= o.departed[i].pid == 2009;
    CHECK(!has9 && o.departed[o.ndeparted - 1].pid == 3001);
    memset(&t, 0, sizeof t);
    walk(&o, &t);
    CHECK(t.departed_other == 1); /* #9's byte */
    return CHECK_DONE("test-owners");
}
