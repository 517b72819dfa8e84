/* SPDX-License-Identifier: MIT */
/* owners.c: attachment tickets and the table of departed clients.
 *
 * Overview: shm/overview.h; the rules: daemon/owners.h.
 */
#include "owners.h"

#include <string.h> /* memset, memmove */

uint32_t gs_owners_attach(gs_owners_t *o, uint32_t slot, uint32_t pid)
{
    if (slot >= GS_MAX_SLOTS) return 0;
    o->serial = (o->serial + 1u) & ((UINT32_C(1) << (32u - GS_OWNERS_SLOT_BITS)) - 1u);
    if (o->serial == 0) o->serial = 1; /* ticket 0 is nobody */
    uint32_t t = o->serial << GS_OWNERS_SLOT_BITS | slot;
    o->slot_ticket[slot] = t;
    o->slot_pid[slot] = pid;
    return t;
}

static void drop(gs_owners_t *o, gs_owner_tally_t *t, uint32_t i)
{
    uint32_t rest = o->ndeparted - i - 1u;
    memmove(&o->departed[i], &o->departed[i + 1u], rest * sizeof o->departed[0]);
    if (t) {
        t->departed_other += t->departed_bytes[i];
        memmove(&t->departed_bytes[i], &t->departed_bytes[i + 1u], rest * sizeof t->departed_bytes[0]);
        t->departed_bytes[o->ndeparted - 1u] = 0;
    }
    o->ndeparted--;
}

void gs_owners_depart(gs_owners_t *o, uint32_t slot, uint64_t now_ns, gs_owners_walk_fn walk, void *arg)
{
    if (slot >= GS_MAX_SLOTS || o->slot_ticket[slot] == 0) return;
    if (o->ndeparted == GS_OWNERS_DEPARTED) {
        gs_owner_tally_t t;
        memset(&t, 0, sizeof t);
        if (walk) walk(arg, &t);
        gs_owners_prune(o, &t);
        if (o->ndeparted == GS_OWNERS_DEPARTED) {
            uint32_t least = 0;
            for (uint32_t i = 1; i < o->ndeparted; i++)
                if (t.departed_bytes[i] < t.departed_bytes[least]) least = i;
            drop(o, &t, least);
        }
    }
    o->departed[o->ndeparted++] =
        (gs_owner_departed_t){.pid = o->slot_pid[slot], .ticket = o->slot_ticket[slot], .gone_ns = now_ns};
    o->slot_ticket[slot] = 0;
    o->slot_pid[slot] = 0;
}

void gs_owners_count(const gs_owners_t *o, gs_owner_tally_t *t, uint32_t ticket, uint64_t bytes)
{
    if (bytes == 0) return;
    if (ticket == 0) {
        t->nobody += bytes;
        return;
    }
    uint32_t slot = ticket & ((1u << GS_OWNERS_SLOT_BITS) - 1u);
    if (slot < GS_MAX_SLOTS && o->slot_ticket[slot] == ticket) {
        t->slot_bytes[slot] += bytes;
        return;
    }
    for (uint32_t i = 0; i < o->ndeparted; i++) {
        if (o->departed[i].ticket == ticket) {
            t->departed_bytes[i] += bytes;
            return;
        }
    }
    t->departed_other += bytes;
}

void gs_owners_prune(gs_owners_t *o, gs_owner_tally_t *t)
{
    for (uint32_t i = o->ndeparted; i-- > 0;)
        if (t->departed_bytes[i] == 0) drop(o, t, i);
}
