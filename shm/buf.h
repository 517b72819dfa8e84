/* SPDX-License-Identifier: MIT */
/* buf.h: reference-counted buffers: the header in the object, the per-process reference records (holdings) and the intent record.
 *
 * Overview: shm/overview.h; the design: README "Passing buffers between
 * processes" and goshm(3). A buffer is an ordinary heap object whose first
 * 32 bytes are a gs_buf_hdr_t; the user's payload follows (16-byte
 * aligned, payload offset = object offset + GS_BUF_HDR). Who holds how many
 * references is recorded twice: the total in the header (xword), and per
 * process in that process's slot memfd (gs_hold_t records), which no other
 * client can reach. When a process dies (or detaches) the heap side drops
 * exactly the references its records name (daemon/bufref.c).
 *
 * Threat model. The header is in the data memfd, writable by every attached
 * process: a process that scribbles it damages that buffer (it could
 * overwrite the payload anyway), never the heap side, which validates
 * everything it reads here (magic, kind, id, bounds; counts saturate and
 * never go negative) and frees only through its own validated free.
 */
#ifndef GOSHM_BUF_H
#define GOSHM_BUF_H

#include <stdbool.h> /* bool */
#include <stdint.h>  /* uint*_t */

#include "atomic.h"

#define GS_BUF_MAGIC 0x46554247u /* "GBUF" */
enum { GS_BUF_PLAIN = 1, GS_BUF_CHAN = 2 };

/* At the object's start. Fields:
 *   xmagic  GS_BUF_MAGIC while live, written (release) by the allocator
 *           after id, size and xword; stored 0 by whoever drops the last
 *           reference, just before freeing the object. A reader checks it
 *           and the id it expects; garbage (a scribbler) makes the buffer
 *           "not a live buffer" (EINVAL), nothing worse.
 *   kind    GS_BUF_*, written once at allocation.
 *   id      random 64-bit, written once at allocation: the ABA guard of
 *           every reference record (a record names offset and id, so a
 *           freed and reallocated object is never taken for the old one).
 *   xword   count (bits 0-31) | lock holder (bits 32-47): holder 0 is
 *           unlocked, slot + 1 is a client, GS_BUF_HOLDER_DAEMON the heap
 *           side. Lock: CAS {c, 0} -> {c, me} (seq_cst: the intent written
 *           before it is in memory before the lock is seen taken). Unlock
 *           and count change in ONE release store {c +- 1, 0}, after the
 *           locker updated its own reference record: so a locker that dies
 *           holding the lock left the count as it was, and the heap side
 *           completes or undoes the change from the locker's record and
 *           intent (daemon/bufref.c). The count includes references that
 *           travel in channels (sent, not yet received).
 *   size    payload bytes asked for, informational. */
typedef struct gs_buf_hdr {
    _Atomic uint32_t xmagic;
    uint8_t kind;
    uint8_t pad[3];
    uint64_t id;
    _Atomic uint64_t xword;
    uint64_t size;
} gs_buf_hdr_t;

#define GS_BUF_HDR 32u
#define GS_BUF_HOLDER_DAEMON 0xFFFFu
_Static_assert(sizeof(gs_buf_hdr_t) == GS_BUF_HDR, "buffer header layout");

static inline uint32_t gs_bufw_count(uint64_t w) { return (uint32_t)w; }
static inline uint32_t gs_bufw_holder(uint64_t w) { return (uint32_t)(w >> 32) & 0xFFFFu; }
static inline uint64_t gs_bufw(uint32_t count, uint32_t holder) { return (uint64_t)count | ((uint64_t)holder << 32); }

/* ---- reference records, in each client's slot memfd ---------------------- */

/* One record per buffer this process holds references to: open addressing
 * by payload offset (linear probing, deletion by backward shift), written
 * only by the client under its process-private buffer mutex
 * (client/buf.c), with release stores in program order; read by the heap
 * side only once the client is gone (dead or detached) or its slot
 * reclaimed, so it never races with the writer. A backward shift copies an
 * entry before clearing its old place: a client that dies in between
 * leaves two identical entries, which the heap side counts once (it
 * deduplicates by offset). count 0 with off != 0 does not occur in a
 * finished table (deleted entries are shifted out), but a dead client may
 * leave one: it means "no reference". Trust: the client writes what it
 * likes here; a lie drops references to buffers it could scribble anyway. */
typedef struct gs_hold {
    _Atomic uint64_t xoff;   /* payload offset; 0: empty */
    _Atomic uint64_t xid;    /* the buffer's id */
    _Atomic uint32_t xcount; /* references this process holds */
    uint32_t pad;
} gs_hold_t;

#define GS_HOLD_MAX   4096u /* distinct buffers a process may hold (ENOSPC beyond) */
#define GS_HOLD_SLOTS 8192u /* table entries: load factor at most 1/2 */

/* The one buffer or channel operation in progress in this process (one at a
 * time: the buffer mutex). Written by the client before the operation's
 * first shared write (op last, release) and cleared (op = 0) after its last;
 * read by the heap side when it reclaims the slot (daemon/bufref.c says what
 * it does for each op and step). Untrusted: every offset is validated. */
enum {
    GS_INTENT_NONE = 0,
    GS_INTENT_RETAIN = 1,  /* off, id, before */
    GS_INTENT_RELEASE = 2, /* off, id, before; pos: 1 once the count reached 0 and the free is under way */
    GS_INTENT_ALLOC = 3,   /* id (before the malloc), off (after it) */
    GS_INTENT_SEND = 4,    /* chan, chan_id, off (the message), before (record count of off), pos */
    GS_INTENT_RECV = 5,    /* chan, chan_id, pos; then msg and before once the message was read */
};
typedef struct gs_intent {
    _Atomic uint32_t xop;
    _Atomic uint32_t xbefore; /* this process's record count of off before the op */
    _Atomic uint64_t xoff;    /* buffer payload offset (SEND: the message's offset) */
    _Atomic uint64_t xid;
    _Atomic uint64_t xchan;   /* SEND/RECV: channel payload offset; ALLOC: the span id the
                               * thread had cached for the class (daemon/bufref.c,
                               * alloc_unrecorded; untrusted, checked against the span table) */
    _Atomic uint64_t xchan_id;
    _Atomic uint64_t xpos;    /* SEND/RECV: the cell position claimed or being claimed;
                               * ALLOC: that span's freeindex before the malloc */
    _Atomic uint64_t xmsg;    /* RECV: the message read (0: not read yet) */
} gs_intent_t;

/* The reference records and intent of one slot (inside gs_slot_t). */
typedef struct gs_holdings {
    gs_intent_t intent;
    _Atomic uint32_t xused; /* live records (the client's count, informational) */
    uint32_t pad;
    gs_hold_t hold[GS_HOLD_SLOTS];
} gs_holdings_t;

/* The home index of a payload offset. */
static inline uint32_t gs_hold_home(uint64_t off)
{
    uint64_t x = off * UINT64_C(0x9E3779B97F4A7C15);
    return (uint32_t)(x >> 51) & (GS_HOLD_SLOTS - 1u);
}

/* Client-side table operations (shm/buf.c). find: the index of off's
 * record, or -1. count: its count (0 if none). add: count + delta on off's
 * record (creating it with id; a record reaching 0 is deleted); returns the
 * new count, or -1 if the table has GS_HOLD_MAX records already and off is
 * not one of them (delta > 0). */
int gs_hold_find(const gs_holdings_t *t, uint64_t off);
uint32_t gs_hold_count(const gs_holdings_t *t, uint64_t off);
int64_t gs_hold_add(gs_holdings_t *t, uint64_t off, uint64_t id, int32_t delta);
bool gs_hold_room(const gs_holdings_t *t, uint64_t off);

/* A fresh 64-bit buffer id (never 0): unique within this process, random
 * across processes (shm/buf.c). */
uint64_t gs_buf_new_id(void);
/* A new id key for this process: called in a fork child. */
void gs_buf_id_reseed(void);

#endif /* GOSHM_BUF_H */
