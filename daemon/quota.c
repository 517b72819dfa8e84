/* SPDX-License-Identifier: MIT */
/* quota.c: per-client and per-uid byte quotas on what the heap hands out (--max-client-bytes, --max-uid-bytes).
 *
 * Overview: shm/overview.h; API: daemon/heap.h (gs_heap_set_quotas,
 * gs_heap_slot_set_uid). All state is heap-side, under the heap lock;
 * nothing here is read from or written to shared memory.
 *
 * The accounting rule (issue 7, point 8): a span is charged, in bytes of
 * its pages, to the slot (client) that last took it from the heap (a refill
 * that cached it, or a large allocation) and to that slot's uid, until the
 * span goes back to the page heap (it emptied: every object in it was freed,
 * by whichever process) or another slot caches it (the charge moves). So a
 * client is charged for the spans holding what it allocated, cached or
 * not: handing full spans back does not shed the charge, its live objects
 * do not escape it. When the client goes (detach, death) its own charge ends
 * with its slot, but its uid's stays until those spans empty: a user that
 * allocates everything, exits and comes back is still bounded by
 * --max-uid-bytes. What the objects it left hold stays in the heap (other
 * processes may hold them): the quota is what bounds it.
 * A refill or large allocation that would take the slot past
 * --max-client-bytes, or its uid past --max-uid-bytes, fails with EDQUOT
 * (0 = no limit, the default). The check is made before the span is chosen,
 * with the class's span size (a partial span already charged to the slot
 * would cost nothing, so the check is conservative by one span). Root and
 * the daemon's own user are limited like anyone else: the limits are the
 * operator's choice.
 */
#include "heap_internal.h"

#include <errno.h> /* EDQUOT */

void gs_heap_set_quotas(gs_heap_t *h, uint64_t client_bytes, uint64_t uid_bytes)
{
    h->quota_client = client_bytes;
    h->quota_uid = uid_bytes;
}

/* The uid table entry of uid (created if need be); -1 when the table is full
 * (GS_QUOTA_UIDS users holding bytes or slots at once). */
static int uid_entry(gs_heap_t *h, uint32_t uid)
{
    int spare = -1;
    for (int i = 0; i < (int)GS_QUOTA_UIDS; i++) {
        gs_quota_uid_t *u = &h->quid[i];
        if ((u->refs || u->bytes) && u->uid == uid) return i;
        if (!u->refs && !u->bytes && spare < 0) spare = i;
    }
    if (spare >= 0) {
        h->quid[spare].uid = uid;
        h->quid[spare].refs = 0;
        h->quid[spare].bytes = 0;
    }
    return spare;
}

void gs_heap_slot_set_uid(gs_heap_t *h, uint32_t slot, uint32_t uid)
{
    gs_quota_slot_t *q = &h->qslot[slot];
    int u = uid_entry(h, uid);
    q->bytes = 0;
    q->gen++;
    q->uidx = u >= 0 ? (uint32_t)u + 1u : 0;
    if (u >= 0) h->quid[u].refs++;
}

void gs_quota_slot_close(gs_heap_t *h, uint32_t slot)
{
    gs_quota_slot_t *q = &h->qslot[slot];
    if (q->uidx) h->quid[q->uidx - 1u].refs--;
    q->uidx = 0;
    q->bytes = 0;
    q->gen++; /* its large objects' slot charges end with it */
}

int gs_quota_check(const gs_heap_t *h, uint32_t slot, uint64_t bytes)
{
    const gs_quota_slot_t *q = &h->qslot[slot];
    if (h->quota_client && q->bytes + bytes > h->quota_client) return -EDQUOT;
    if (h->quota_uid) {
        if (!q->uidx) return -EDQUOT; /* no room to account it: refuse */
        if (h->quid[q->uidx - 1u].bytes + bytes > h->quota_uid) return -EDQUOT;
    }
    return 0;
}

static uint64_t span_bytes(const gs_mspan_t *s)
{
    return (s->state == GS_SPAN_LARGE ? s->npages64 : (uint64_t)s->npages) << GS_PAGE_SHIFT;
}

static void sub(uint64_t *v, uint64_t d) { *v -= d < *v ? d : *v; }

void gs_quota_span_drop(gs_heap_t *h, gs_mspan_t *s)
{
    uint64_t bytes = span_bytes(s);
    if (s->charge_slot) {
        gs_quota_slot_t *q = &h->qslot[s->charge_slot - 1u];
        if ((uint16_t)q->gen == s->charge_gen) sub(&q->bytes, bytes); /* else: that client left, its charge with it */
    }
    if (s->charge_uidx) sub(&h->quid[s->charge_uidx - 1u].bytes, bytes);
    s->charge_slot = 0;
    s->charge_uidx = 0;
    s->charge_gen = 0;
}

void gs_quota_span_take(gs_heap_t *h, uint32_t slot, gs_mspan_t *s)
{
    gs_quota_slot_t *q = &h->qslot[slot];
    if (s->charge_slot == slot + 1u && s->charge_gen == (uint16_t)q->gen) return; /* charged to it already */
    gs_quota_span_drop(h, s);
    uint64_t bytes = span_bytes(s);
    q->bytes += bytes;
    if (q->uidx) h->quid[q->uidx - 1u].bytes += bytes;
    s->charge_slot = (uint8_t)(slot + 1u);
    s->charge_gen = (uint16_t)q->gen;
    s->charge_uidx = (uint8_t)q->uidx;
}

uint64_t gs_heap_slot_charged(const gs_heap_t *h, uint32_t slot) { return h->qslot[slot].bytes; }
