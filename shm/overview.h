/* SPDX-License-Identifier: MIT */
/* overview.h: the overview of the goshm engine, and its common constants.
 *
 * goshm is the Go runtime's allocator (malloc.go, mheap.go, mcentral.go,
 * mcache.go, mbitmap.go) stretched across processes. Read this comment before
 * any other engine file; each of them opens with a pointer back here.
 *
 * Glossary
 * --------
 *   heap page    8 KiB (GS_PAGE_SIZE), the mheap's unit. Not the OS page (4 KiB).
 *   arena        64 MiB of heap pages; the heap grows by whole arenas,
 *                contiguously from low offsets, so large spans may cross arenas.
 *   span         a run of heap pages: free (owned by the mheap), small (split
 *                into equal slots of one size class) or large (one object).
 *   slot         one elemsize-sized place in a small span; an object is a slot
 *                that has been handed out.
 *   span class   size class * 2 + tiny. Class 0 is "large". The tiny variant of
 *                the 16-byte class holds tiny blocks (see "Tiny objects").
 *   offset       goshm_off_t, a byte offset into the data segment. Pointers are
 *                never stored in shared memory; offset 0 is the header, so 0
 *                is null.
 *   mheap        the page heap (daemon/mheap.c): free runs, arenas, commit and
 *                scavenging.
 *   mcentral     one per span class (daemon/mcentral.c): uncached spans with
 *                free slots (partial) and without (full).
 *   mcache       per thread (client/mcache.c): one cached span per span class.
 *   side record  per span id, in client-writable memory (shm/segment.h): the
 *                allocBits, the freed bits that remote frees set, the
 *                published freeindex and the owner word.
 *
 * Who owns what
 * -------------
 *   data memfd   the notice stack head, side records, notice entries, the
 *                heap profile's region (shm/profregion.h), arenas.
 *                Mapped read-write by every client, sealed against shrink,
 *                grow and new seals. The daemon never trusts what it reads
 *                there, and nothing it needs lives there: a client that
 *                punches a page of it loses objects, not the heap; one that
 *                fallocates in it sees the housekeeping tick punch it again
 *                (daemon/reconcile.c).
 *   meta memfd   the layout header, page map (page -> span id) and span
 *                records (gs_mspan_t). Written only by the heap side; clients
 *                get an O_RDONLY descriptor and map it PROT_READ, so they
 *                cannot corrupt the page heap; each copies the layout once,
 *                at attach.
 *   slot memfds  one per attached client: its rings and counters (gs_slot_t),
 *                and its reference records on buffers with its one buffer or
 *                channel operation in progress (shm/buf.h); created by the
 *                heap side at attach and passed to that client only, so no
 *                client can speak on another's ring or forge another's
 *                references.
 *   daemon heap  the mheap's free-run bins, per-page states, mcentral lists:
 *                private memory of the process that owns the heap.
 *
 * Processes, threads and the ring
 * -------------------------------
 *   goshmd      one process. Its main thread runs the libevent loop: the
 *               control plane (daemon/listen.c, daemon/ctl.c: Attach,
 *               Detach, Stats, Profile over a SOCK_SEQPACKET socket;
 *               --metrics over HTTP, daemon/metrics.c) and a 100 ms
 *               housekeeping tick (notices, background sweep, scavenger,
 *               reconcile). Live bytes are counted per client and per
 *               departed pid (daemon/owners.c), and against the quotas
 *               (daemon/quota.c).
 *               The data-plane thread (daemon/dataplane.c) polls every
 *               attached client's ring while there is work and sleeps on
 *               their doorbells (io_uring, or epoll) when idle, waking by
 *               itself every 1 ms for a second after its last work, every
 *               100 ms after that. One lock,
 *               the heap lock, serialises every call into the heap side.
 *   a client    any process linking libgoshm, any number of threads. Each
 *               thread allocates from its own mcache without a lock or a
 *               system call; frees are atomic ORs in shared memory. Only a
 *               refill or a large allocation goes to the daemon.
 *   the ring    one per client slot, in the slot's memfd (shm/ring.h): the
 *               client writes an entry (REFILL, RELEASE, LARGE_ALLOC,
 *               NOTICE), publishes the tail, rings the doorbell only if
 *               the daemon asked for it, and spins, then sleeps on a futex
 *               (client/ring.c). The data plane drains the notice stack
 *               once per pass, then serves each ring through the serve unit
 *               (daemon/serve.c: decode, validate, call the heap, answer);
 *               the in-process seam of the engine tests (tests/lib/inproc.c)
 *               and the ring fuzzer call the same unit. A client that dies
 *               is noticed by its control connection closing: the daemon
 *               frees the large objects it never read and reclaims its slot
 *               (daemon/slot.c).
 *
 * Allocating a small object (client/malloc.c)
 * -------------------------------------------
 *   1. Round the size up to a size class (gs_size_to_class, tables generated
 *      by tools/mksizeclasses.c). Sizes 1..8 go to the tiny allocator.
 *   2. nextFreeFast on the thread's cached span of that class: ctz of the
 *      64-bit allocCache, bump freeindex, publish freeindex with one relaxed
 *      store in the side record. No locks, no atomic RMW, no system call.
 *   3. nextFree: reload allocCache from allocBits at freeindex. If the span is
 *      exhausted, sweep it locally (merge its freed bits into allocBits); if
 *      that found free slots keep going.
 *   4. Otherwise refill through the seam (client/seam.h): hand the span back
 *      and ask its mcentral for another; the mcentral sweeps a partial span
 *      or carves a new one from the mheap, which grows by arenas. A refill
 *      brings a batch of spans; when a thread starts on the last of them
 *      (in a class that needed a refill before), the next refill is sent
 *      ahead without waiting or ringing the doorbell, and its answer is
 *      normally there when the span is used up (client/mcache.c).
 *   Large objects (> 32 KiB) go to the mheap through the seam.
 *
 * Freeing, from any thread of any process (client/free.c)
 * ---------------------------------------------------------
 *   offset -> page -> span id (page map, acquire) -> span record -> object
 *   index by magic-reciprocal multiply -> check the object is allocated ->
 *   one atomic OR into the span's freed bitmap. A bit already set is a double
 *   free. If no mcache owns the span, the freer pushes the span id on the
 *   segment's lock-free notice stack (once per sweep), so that the mcentral
 *   finds spans that gained frees in O(1), without scanning the heap.
 *   Large objects take the same path: their one freed bit sends the notice,
 *   and the mheap takes the pages back when it drains the stack. Until its
 *   requester has read the completion a large span is in flight, owned by
 *   the requester's slot like a cached span (daemon/largealloc.c): no free
 *   takes it back before the answer naming it has been read.
 *
 * Sweeping (shm/mspan.c)
 * ----------------------
 *   Go sweeps after marking; we sweep after explicit frees. A sweep folds
 *   the slots below freeindex into allocBits, publishes freeindex = 0, then
 *   clears allocBits where freed bits are set and clears those freed bits.
 *   Each step is idempotent, so a sweeper that dies halfway loses nothing:
 *   the next sweep finishes the job.
 *
 * Zeroing (needzero)
 * ------------------
 *   Pages come from the mheap either released (punched with
 *   FALLOC_FL_PUNCH_HOLE, or never committed: they read as zero) or dirty.
 *   A span records needzero if any of its pages was dirty; calloc skips the
 *   memset on slots of a span that is known zero. A slot freed and reused is
 *   dirty.
 *
 * Memory states (Go's OS abstraction layer, daemon/mheap.c)
 * ---------------------------------------------------------
 *   Reserved   inside the memfd's size (ftruncate: sparse, costs nothing) but
 *              beyond the arenas grown so far.
 *   Prepared   in a grown arena but not backed: released pages.
 *   Ready      backed by fallocate() before any page is handed out, so a full
 *              tmpfs or memory limit is ENOMEM at the heap side, never SIGBUS
 *              in a client. Idle free runs return to Prepared by punching
 *              holes (MADV_DONTNEED does not free shared pages).
 *
 * Buffers and channels (shm/buf.h, shm/chan.h)
 * ----------------------------------------------
 *   A buffer is an object with a 32-byte header: a reference count with a
 *   lock in one word, and a random id. Each process records the references
 *   it holds in its slot memfd; when its slot is reclaimed (death, detach)
 *   the heap side finishes or undoes its one operation in progress and
 *   drops exactly those references (daemon/bufref.c). A channel is a
 *   buffer whose payload is a bounded MPMC queue of offsets; a message that
 *   is a buffer the sender holds carries its reference to the receiver.
 *
 * Tiny objects (client/tiny.c)
 * ----------------------------
 *   Go packs tiny pointer-free objects into 16-byte blocks and cannot free
 *   them one by one. Our contract asks for 8-byte alignment of every object,
 *   so a tiny block holds two 8-byte halves. Tiny spans use their freed
 *   bitmap as one "live" bit per half: the mcache sets both bits when it
 *   takes a block, clears the half it never used when it moves on, and a free
 *   clears the half's bit; the block is free once both bits are clear.
 */
#ifndef GOSHM_MALLOC_H
#define GOSHM_MALLOC_H

#include <stdint.h> /* uint*_t */

#include "sizeclasses.h" /* GS_PAGE_SHIFT, GS_PAGE_SIZE, size classes */

#define GS_ARENA_SHIFT 26
#define GS_ARENA_SIZE  (UINT64_C(1) << GS_ARENA_SHIFT) /* 64 MiB */
#define GS_PAGES_PER_ARENA (GS_ARENA_SIZE >> GS_PAGE_SHIFT)
#define GS_NUM_SPAN_CLASSES (GS_NUM_SIZE_CLASSES * 2)
#define GS_TINY_SIZE   16u  /* a tiny block */
#define GS_TINY_HALF   8u   /* one tiny object: C's minimum malloc alignment */
#define GS_TINY_CLASS  2u   /* the 16-byte size class */
#define GS_TINY_SPANCLASS (GS_TINY_CLASS * 2 + 1)

static inline uint32_t gs_spanclass(uint32_t sizeclass, int tiny) { return sizeclass * 2 + (tiny ? 1u : 0u); }
static inline uint32_t gs_spanclass_sizeclass(uint32_t sc) { return sc >> 1; }
static inline int gs_spanclass_tiny(uint32_t sc) { return (int)(sc & 1); }

#endif /* GOSHM_MALLOC_H */
