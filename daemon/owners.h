/* SPDX-License-Identifier: MIT */
/* owners.h: whose live bytes are these? Attached clients by slot, departed
 * clients by their former pid.
 *
 * Overview: shm/overview.h. A heap is shared and outlives its clients, so
 * `goshmctl stats` answers two questions per process: how many bytes does
 * each attached client hold, and how many did each client that detached or
 * died leave live? The engine records no owner per object (an object is one
 * bit in a side record), so the heap side attributes at span granularity:
 *
 *   A span belongs to the last client whose mcache was handed it (a refill),
 *   and a large object to the client that allocated it. Each such hand-out
 *   stamps the span record with the client's ticket (gs_mspan_t.client,
 *   heap side only, in the meta memfd clients map read-only).
 *
 * So the attribution is "cached by, last": the objects a client allocated
 * are its own as long as no other client caches their span; when a partial
 * span moves to another client's mcache, its older objects move with it.
 * Frees from anywhere lower whoever holds the span, at the next statistics.
 *
 * A ticket names one attachment: (serial << 7) | slot, where serial counts
 * attachments of this heap (25 bits; after 2^25 attachments an old stamp
 * could alias a new client of the same slot, which only misattributes).
 * Tickets live in private memory and in the read-only span records: clients
 * cannot forge them. Ticket 0 is nobody.
 *
 * Departed clients: when a slot is reclaimed (Detach, a closed connection,
 * a dead process) its ticket moves to a table of at most GS_OWNERS_DEPARTED
 * entries with the pid and the time. Statistics count each entry's live
 * bytes afresh; an entry whose bytes reach 0 is dropped then. When the table
 * is full at a departure, the heap side counts every entry's bytes first
 * (one walk of the span table, only then), drops the empty ones, and if it
 * is still full pushes out the entry holding the fewest bytes. Bytes whose
 * ticket is in no table are reported as departed_other.
 *
 * Single-threaded, like the heap (daemon/heap.h): callers hold the heap lock.
 */
#ifndef GOSHM_OWNERS_H
#define GOSHM_OWNERS_H

#include <stdint.h> /* uint*_t */

#include "segment.h" /* GS_MAX_SLOTS */

#define GS_OWNERS_DEPARTED 32u
#define GS_OWNERS_SLOT_BITS 7u
_Static_assert(GS_MAX_SLOTS <= (1u << GS_OWNERS_SLOT_BITS), "a ticket's slot field is too narrow");

typedef struct gs_owner_departed {
    uint32_t pid;
    uint32_t ticket;
    uint64_t gone_ns;      /* gs_now_ns() when it departed */
} gs_owner_departed_t;

typedef struct gs_owners {
    uint32_t serial;                            /* attachments so far */
    uint32_t slot_ticket[GS_MAX_SLOTS];         /* 0: the slot is free */
    uint32_t slot_pid[GS_MAX_SLOTS];
    gs_owner_departed_t departed[GS_OWNERS_DEPARTED]; /* oldest first */
    uint32_t ndeparted;
} gs_owners_t;

/* Live bytes per owner, from one walk of the in-use spans. */
typedef struct gs_owner_tally {
    uint64_t slot_bytes[GS_MAX_SLOTS];
    uint64_t departed_bytes[GS_OWNERS_DEPARTED]; /* by gs_owners_t.departed index */
    uint64_t departed_other;                     /* departed, no longer in the table */
    uint64_t nobody;                             /* ticket 0 */
} gs_owner_tally_t;

/* Fills a tally by walking the heap (the heap side's stats walk). */
typedef void (*gs_owners_walk_fn)(void *arg, gs_owner_tally_t *t);

/* A slot was claimed by pid: its new ticket. */
uint32_t gs_owners_attach(gs_owners_t *o, uint32_t slot, uint32_t pid);
/* The ticket of the client in `slot`, 0 if none. */
static inline uint32_t gs_owners_ticket(const gs_owners_t *o, uint32_t slot)
{
    return slot < GS_MAX_SLOTS ? o->slot_ticket[slot] : 0;
}
/* The slot is being reclaimed: its ticket joins the departed table (see
 * above; `walk` is called only when the table is full). */
void gs_owners_depart(gs_owners_t *o, uint32_t slot, uint64_t now_ns, gs_owners_walk_fn walk, void *arg);

/* Count `bytes` live under `ticket`. */
void gs_owners_count(const gs_owners_t *o, gs_owner_tally_t *t, uint32_t ticket, uint64_t bytes);
/* Drop the departed entries the tally found empty, keeping t in step. */
void gs_owners_prune(gs_owners_t *o, gs_owner_tally_t *t);

#endif /* GOSHM_OWNERS_H */
