/* SPDX-License-Identifier: MIT */
/* buf.c: the reference-record table of one process (shm/buf.h): find, add, delete by backward shift; buffer ids.
 *
 * Overview: shm/overview.h; the records: shm/buf.h (gs_holdings_t). Only
 * the client that owns the slot calls these (under its buffer mutex); the
 * heap side only scans the table, linearly, once the client is gone.
 */
#define _GNU_SOURCE
#include "buf.h"

#include <stdatomic.h>
#include <sys/random.h> /* getrandom */
#include <unistd.h>     /* getpid */
#include <time.h>       /* clock_gettime */

int gs_hold_find(const gs_holdings_t *t, uint64_t off)
{
    uint32_t i = gs_hold_home(off);
    for (uint32_t n = 0; n < GS_HOLD_SLOTS; n++, i = (i + 1u) & (GS_HOLD_SLOTS - 1u)) {
        uint64_t o = gs_load_relaxed((_Atomic uint64_t *)&t->hold[i].xoff);
        if (o == 0) return -1;
        if (o == off) return (int)i;
    }
    return -1;
}

uint32_t gs_hold_count(const gs_holdings_t *t, uint64_t off)
{
    int i = gs_hold_find(t, off);
    return i < 0 ? 0 : gs_load_relaxed((_Atomic uint32_t *)&t->hold[i].xcount);
}

bool gs_hold_room(const gs_holdings_t *t, uint64_t off)
{
    return gs_hold_find(t, off) >= 0 || gs_load_relaxed((_Atomic uint32_t *)&t->xused) < GS_HOLD_MAX;
}

/* Delete entry i (its count is 0 already): shift later entries of the
 * same probe run back (copy first, then clear the old place: a crash in
 * between leaves a duplicate, which the heap side counts once). */
static void del(gs_holdings_t *t, uint32_t i)
{
    uint32_t mask = GS_HOLD_SLOTS - 1u, j = i;
    for (;;) {
        j = (j + 1u) & mask;
        uint64_t o = gs_load_relaxed(&t->hold[j].xoff);
        if (o == 0) break;
        uint32_t k = gs_hold_home(o);
        /* Can the entry at j move to i? Yes unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays) continue;
        /* The hole's offset goes first: it may still hold an entry (the one
         * deleted, or the previous copy's source, identical to its copy),
         * and a process killed between the id and offset stores below used
         * to leave that offset paired with the next entry's id and count.
         * The heap side keeps one entry per offset (an arbitrary one of
         * equal offsets), so it could keep the mixed one, whose id does not
         * match, and drop nothing: the references leaked. Cleared first,
         * the hole never shows a mixed entry (count and id are written
         * before the offset that makes it an entry). */
        gs_store_release(&t->hold[i].xoff, 0);
        gs_store_release(&t->hold[i].xid, gs_load_relaxed(&t->hold[j].xid));
        gs_store_release(&t->hold[i].xcount, gs_load_relaxed(&t->hold[j].xcount));
        gs_store_release(&t->hold[i].xoff, o);
        i = j;
    }
    gs_store_release(&t->hold[i].xoff, 0);
    gs_store_release(&t->hold[i].xcount, 0);
}

int64_t gs_hold_add(gs_holdings_t *t, uint64_t off, uint64_t id, int32_t delta)
{
    uint32_t i = gs_hold_home(off), mask = GS_HOLD_SLOTS - 1u;
    for (uint32_t n = 0; n < GS_HOLD_SLOTS; n++, i = (i + 1u) & mask) {
        uint64_t o = gs_load_relaxed(&t->hold[i].xoff);
        if (o == off) {
            int64_t c = (int64_t)gs_load_relaxed(&t->hold[i].xcount) + delta;
            if (c < 0) c = 0;
            /* The one store that changes the reference record. */
            gs_store_release(&t->hold[i].xcount, (uint32_t)c);
            if (c == 0) {
                del(t, i);
                gs_store_release(&t->xused, gs_load_relaxed(&t->xused) - 1u);
            }
            return c;
        }
        if (o == 0) {
            if (delta <= 0) return 0;
            if (gs_load_relaxed(&t->xused) >= GS_HOLD_MAX) return -1;
            gs_store_release(&t->hold[i].xid, id);
            gs_store_release(&t->hold[i].xcount, 0);
            gs_store_release(&t->hold[i].xoff, off);
            /* The record changes here, as for an existing one. */
            gs_store_release(&t->hold[i].xcount, (uint32_t)delta);
            gs_store_release(&t->xused, gs_load_relaxed(&t->xused) + 1u);
            return delta;
        }
    }
    return -1;
}

/* Buffer ids: the splitmix64 finaliser (a bijection) of a per-process key
 * plus a counter. Ids of one process never repeat (2^64 of them), those of
 * two processes collide only by chance (distinct random keys), and an
 * allocation pays an atomic add instead of the getrandom(2) system call it
 * used to (bench/README.md, W5's profile). A fork child gets a key of its
 * own (gs_buf_id_reseed from the atfork handler), or it would hand out its
 * parent's next ids. */
static _Atomic uint64_t id_key, id_ctr;

static uint64_t fresh_key(void)
{
    uint64_t k = 0;
    if (getrandom(&k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
        /* No entropy yet (early boot): time and address bits. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)(uintptr_t)&k << 7) ^
            ((uint64_t)getpid() << 40);
    }
    return k | 1u; /* 0 means "no key yet" */
}

void gs_buf_id_reseed(void)
{
    atomic_store_explicit(&id_key, fresh_key(), memory_order_relaxed);
}

uint64_t gs_buf_new_id(void)
{
    uint64_t k = atomic_load_explicit(&id_key, memory_order_relaxed);
    if (k == 0) {
        uint64_t want = fresh_key(), none = 0;
        /* The first caller's key wins; a loser uses it too. */
        k = atomic_compare_exchange_strong(&id_key, &none, want) ? want : none;
    }
    uint64_t id = k + atomic_fetch_add_explicit(&id_ctr, 1, memory_order_relaxed) * UINT64_C(0x9E3779B97F4A7C15);
    id = (id ^ (id >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    id = (id ^ (id >> 27)) * UINT64_C(0x94D049BB133111EB);
    id ^= id >> 31;
    return id ? id : 1u;
}
