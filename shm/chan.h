/* SPDX-License-Identifier: MIT */
/* chan.h: a channel: a bounded lock-free MPMC queue of offsets in a GS_BUF_CHAN buffer's payload, and its futex words.
 *
 * Overview: shm/overview.h; buffers: shm/buf.h. The channel is the payload
 * of a reference-counted buffer of kind GS_BUF_CHAN: its references are its
 * openers' (and the names directory's), and it is freed, after its
 * messages' references are dropped (gs_chan_drain), when the last goes.
 *
 * Cells. cap (a power of two) cells, each a state word and a message word.
 * Cell state = (pos << 18) | (holder << 2) | phase, phase EMPTY(0),
 * WRITING(1), FULL(2), READING(3); holder = slot + 1 of the claimer, only
 * while WRITING or READING. Cell i starts EMPTY(i).
 *   EMPTY(pos) -CAS by a sender-> WRITING(pos, me) -store-> FULL(pos)
 *   -CAS by a receiver-> READING(pos, me) -store-> EMPTY(pos + cap).
 * Claiming the cell by CAS (not the index) records who claimed it, so the
 * heap side finds and finishes a dead process's half-done send or receive
 * (daemon/bufref.c) from the position its intent record names. xtail and
 * xhead are hints: advanced by CAS (+1) by the claimer and by anyone who
 * sees the cell at that position claimed already (helping), so a claimer
 * that dies right after its claim never sticks them.
 *
 * Ordering: the claim CAS is seq_cst; the message word is written by the
 * claimer before its release store of FULL (receivers load the state with
 * acquire, then the message); the receiver's release store of EMPTY(pos +
 * cap) orders its read of the message before the next lap's write.
 *
 * Sleeping (futex, never FUTEX_PRIVATE: different processes). A receiver
 * that found the channel empty announces itself (xrwait += 1, seq_cst),
 * reads the futex word xposted, looks at the queue again (gs_chan_ready,
 * seq_cst loads) and sleeps on xposted only if it is still empty. A sender
 * stores FULL (seq_cst), then loads xrwait (seq_cst) and, only if it is not
 * 0, bumps xposted and wakes. Dekker: either the receiver's second look
 * sees the message, or the sender sees the announcement and its bump
 * (after the receiver read xposted) makes the futex wait return at once.
 * With no sleeper, a message writes no futex word, so the line holding
 * them stays shared read-only by both sides. Senders blocked on a full
 * channel: xtaken / xswait and gs_chan_room, the same way round.
 *
 * Trust: everything here is in client-writable memory. A process that
 * writes garbage into a channel breaks that channel (lost, duplicated or
 * invented messages), nothing else: the heap side bounds cap by the object
 * size, checks every message offset and every buffer it names before it
 * drops a reference, and bounds every scan by cap.
 */
#ifndef GOSHM_CHAN_H
#define GOSHM_CHAN_H

#include <stdbool.h> /* bool */
#include <stdint.h>  /* uint*_t */

#include "atomic.h"
#include "buf.h"

#define GS_CHAN_MAGIC 0x4e414843u /* "CHAN" */
#define GS_CHAN_MAX_CAP (1u << 20)

enum { GS_CELL_EMPTY = 0, GS_CELL_WRITING = 1, GS_CELL_FULL = 2, GS_CELL_READING = 3 };
#define GS_MSG_REF (UINT64_C(1) << 63) /* the message carries one reference to the buffer at its offset */

typedef struct gs_cell {
    _Atomic uint64_t xstate;
    _Atomic uint64_t xmsg;
} gs_cell_t;

/* The payload of a buffer is 16-byte aligned (shm/buf.h), so the hot
 * words are kept apart by padding, not _Alignas: each sits alone in its
 * own 64 bytes, so no two of them ever share a cache line. */
typedef struct gs_chan {
    /* Written once by the creator before the channel is registered. */
    uint32_t magic, cap;
    uint8_t pad0[GS_CACHELINE - 8];
    _Atomic uint64_t xtail; /* next position senders claim (a hint, see above) */
    uint8_t pad1[GS_CACHELINE - 8];
    _Atomic uint64_t xhead; /* next position receivers claim (a hint) */
    uint8_t pad2[GS_CACHELINE - 8];
    _Atomic uint32_t xposted; /* futex word: bumped after a FULL while xrwait != 0 */
    _Atomic uint32_t xrwait;  /* receivers asleep (or about to be) */
    _Atomic uint32_t xtaken;  /* futex word: bumped after an EMPTY while xswait != 0 */
    _Atomic uint32_t xswait;  /* senders asleep on a full channel */
    _Atomic uint32_t xfdwait; /* handles using goshm_chan_fd (eventfd writes) */
    uint8_t pad3[GS_CACHELINE - 20];
    gs_cell_t cells[];
} gs_chan_t;

_Static_assert(sizeof(gs_chan_t) == 4 * GS_CACHELINE && _Alignof(gs_chan_t) <= 16, "channel layout");

static inline uint64_t gs_cell(uint64_t pos, uint32_t holder, uint32_t phase)
{
    return (pos << 18) | ((uint64_t)(holder & 0xFFFFu) << 2) | phase;
}
static inline uint64_t gs_cell_pos(uint64_t s) { return s >> 18; }
static inline uint32_t gs_cell_holder(uint64_t s) { return (uint32_t)(s >> 2) & 0xFFFFu; }
static inline uint32_t gs_cell_phase(uint64_t s) { return (uint32_t)s & 3u; }

/* Payload bytes of a channel of capacity cap. */
static inline uint64_t gs_chan_bytes(uint32_t cap) { return sizeof(gs_chan_t) + (uint64_t)cap * sizeof(gs_cell_t); }

/* Set up a fresh channel (not yet visible to anyone). */
void gs_chan_init(gs_chan_t *c, uint32_t cap);

/* Every step takes cap from the caller (its own copy, checked against the
 * object's size), never from the channel's header, which anyone can write.
 * Results of the non-blocking steps. */
enum { GS_CHAN_OK = 0, GS_CHAN_FULL = 1, GS_CHAN_EMPTY = 2 };

/* Claim the next free cell for a send by slot `me` (holder me + 1): on
 * GS_CHAN_OK *pos is the claimed position (WRITING(pos, me + 1)). Before the
 * CAS, *intent_pos (if not NULL) gets the candidate position (release): the
 * crash story needs it before the claim. */
int gs_chan_claim_send(gs_chan_t *c, uint32_t cap, uint32_t holder, _Atomic uint64_t *intent_pos, uint64_t *pos);
/* Publish the message of a claimed cell: message word, then FULL (release),
 * then, if a receiver announced it may sleep, xposted bump and wake. Also used by the heap
 * side to finish a dead sender's cell. */
void gs_chan_publish(gs_chan_t *c, uint32_t cap, uint64_t pos, uint64_t msg);
/* Claim the oldest full cell for a receive (READING(pos, holder)); the
 * message is then *msg. */
int gs_chan_claim_recv(gs_chan_t *c, uint32_t cap, uint32_t holder, _Atomic uint64_t *intent_pos, uint64_t *pos, uint64_t *msg);
/* Free a cell read: EMPTY(pos + cap), then xtaken bump and wake if a sender sleeps. */
void gs_chan_consume(gs_chan_t *c, uint32_t cap, uint64_t pos);
/* Is there a FULL cell at the head (a receive would not block)? */
bool gs_chan_ready(gs_chan_t *c, uint32_t cap);
/* Is there an EMPTY cell at the tail (a send would not block)? */
bool gs_chan_room(gs_chan_t *c, uint32_t cap);

/* The messages still in a channel that is being freed (nobody else has a
 * reference, so nobody sends or receives): call drop(arg, off) for each
 * FULL cell whose message carries a reference, and mark every cell EMPTY.
 * A cell caught WRITING or READING has a claimer that died and whose slot
 * was reclaimed already (a reclaim finishes its cell first, before it drops
 * the dying process's reference on the channel), so it can only be garbage
 * written by someone: skipped. Bounded by cap. */
void gs_chan_drain(gs_chan_t *c, uint32_t cap, void (*drop)(void *arg, uint64_t off), void *arg);

#endif /* GOSHM_CHAN_H */
