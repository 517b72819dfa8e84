/* SPDX-License-Identifier: MIT */
/* profregion.h: the heap-wide sampled heap profile, in shared memory.
 *
 * Overview: shm/overview.h. As in Go (MemProfileRate, mprof.go), each thread
 * of a client samples one allocation per GOSHM_PROFILE_RATE bytes on average
 * (an exponential countdown in its mcache; 512 KiB by default, 0 off),
 * captures the call stack by walking the frame pointers (or with glibc's
 * backtrace() under GOSHM_PROFILE_UNWIND=dwarf) and symbolises it at once
 * in its own process with dladdr(), because only that process knows its
 * address space (client/profile.c). The stack (as names) and the sample go
 * to a region of the data memfd, so that they outlive the process, any
 * process can remove the sample when it frees the object, and the daemon
 * reads them all for `goshmctl profile` (daemon/profile.c).
 *
 * The region, at gs_seg_header_t.prof_off, committed by the heap side at
 * creation (GS_PROF_REGION_SIZE plus the bucket array):
 *
 *   gs_prof_header_t                      one page
 *   gs_prof_stack_t  stacks[GS_PROF_STACKS]   open addressing on the hash
 *   gs_prof_sample_t samples[GS_PROF_SAMPLES] open addressing on the offset
 *   char             names[GS_PROF_NAMES]     bump-allocated, NUL-terminated
 *   _Atomic uint32_t buckets[nbuckets]        live samples per span-id bucket
 *
 * Every field is client-written: the daemon reads it as untrusted input
 * (indices bounded, strings bounded and filtered), for profiles only.
 *
 * The "sampled" marker the free path checks: buckets[sid & (nbuckets-1)]
 * counts live samples in spans whose id falls in that bucket (nbuckets is
 * a power of two, >= the span ids when the heap is small enough, so usually
 * one span per bucket). The sampler adds 1 before it publishes the sample;
 * a free that finds its bucket non-zero looks its offset up in the sample
 * table (before its OR: the object is still its own) and, if it finds it,
 * retires it and subtracts 1. A free whose bucket is 0 pays one relaxed
 * load of a line that is written only at the sampling rate. Crash story: a
 * sampler or freer that dies between the table and the counter leaves the
 * counter too high, which costs extra lookups on that bucket, never a lost
 * or double removal.
 *
 * Sample entries (key xoff): 0 empty, 2 being written, the object's
 * offset while it is live (offsets are 8-aligned: low bits 0), offset | 1
 * once it was freed ("retired": a tombstone that lookups go on past, and
 * that still names the stack, for poison's write-after-free report). The
 * offset is stored with release after the other fields. Insert claims, by a
 * CAS to 2, the retired entry of the same offset if it meets one, else the
 * first empty or retired entry; a lookup probes at most GS_PROF_PROBES
 * entries from the home, as does an insert (which drops the sample,
 * counted, when it finds no room). A writer that dies leaves 2: the entry
 * is lost, nothing else.
 *
 * Stack entries (key xhash): 0 empty, 1 being written, else the 64-bit hash
 * of the pid and the frames' addresses (never 0 or 1). Names are published
 * before the hash (release). Two threads may insert the same stack twice;
 * the daemon merges stacks by their names anyway.
 *
 * Estimates: a sample of an object of s bytes stands for
 * w = 1 / (1 - exp(-s / rate)) objects (Go's scaleHeapSample). The sampler
 * stores w (fixed point, x 2^16) in the sample and adds w and w*s to its
 * stack's allocation totals; the daemon sums w and w*s of the live samples
 * for the in-use view.
 */
#ifndef GOSHM_PROFREGION_H
#define GOSHM_PROFREGION_H

#include <stdint.h> /* uint*_t */

#include "atomic.h"

#define GS_PROF_MAGIC   UINT64_C(0x464f525048534f47) /* "GOSHPROF" */
#define GS_PROF_STACKS  4096u
#define GS_PROF_SAMPLES 32768u
#define GS_PROF_NAMES   (1024u * 1024u)
#define GS_PROF_FRAMES  32u
#define GS_PROF_PROBES  64u
#define GS_PROF_MAX_BUCKETS (256u * 1024u)
#define GS_PROF_WEIGHT_ONE 65536.0 /* fixed point of the weights */
#define GS_PROF_DEFAULT_RATE (512u * 1024u)

enum { GS_PROF_EMPTY = 0, GS_PROF_RETIRED_BIT = 1, GS_PROF_WRITING = 2 };

/* A sample entry's key: live (an offset), retired (offset | 1), or neither. */
static inline int gs_prof_key_live(uint64_t k) { return k > GS_PROF_WRITING && (k & 7u) == 0; }
static inline int gs_prof_key_retired(uint64_t k) { return (k & 7u) == GS_PROF_RETIRED_BIT; }

typedef struct gs_prof_header {
    /* Written once by the heap side at creation. */
    uint64_t magic;
    uint32_t nbuckets;        /* power of two */
    uint32_t pad0;
    /* Client-written counters (relaxed). */
    _Atomic uint64_t xnames_used;   /* bytes of names[] handed out */
    _Atomic uint64_t xdropped;      /* samples lost: tables full */
    _Atomic uint64_t xsampled;      /* samples taken */
} gs_prof_header_t;

typedef struct gs_prof_stack {
    _Atomic uint64_t xhash;
    uint32_t pid;
    uint32_t nframes;
    uint32_t name[GS_PROF_FRAMES];  /* offsets into names[]; innermost first */
    _Atomic uint64_t xalloc_weight;  /* sum of w, fixed point */
    _Atomic uint64_t xalloc_bytes;   /* sum of w * s */
} gs_prof_stack_t;

typedef struct gs_prof_sample {
    _Atomic uint64_t xoff;
    uint64_t size;                   /* bytes asked for */
    uint64_t weight;                 /* w, fixed point */
    uint32_t stack;                  /* index in stacks[] */
    uint32_t pid;
} gs_prof_sample_t;

_Static_assert(sizeof(gs_prof_sample_t) == 32, "sample layout");
_Static_assert(sizeof(gs_prof_stack_t) == 16 + 4 * GS_PROF_FRAMES + 16, "stack layout");

#define GS_PROF_HDR_SIZE 4096u
#define GS_PROF_STACKS_OFF GS_PROF_HDR_SIZE
#define GS_PROF_SAMPLES_OFF (GS_PROF_STACKS_OFF + (uint64_t)GS_PROF_STACKS * sizeof(gs_prof_stack_t))
#define GS_PROF_NAMES_OFF (GS_PROF_SAMPLES_OFF + (uint64_t)GS_PROF_SAMPLES * sizeof(gs_prof_sample_t))
#define GS_PROF_BUCKETS_OFF (GS_PROF_NAMES_OFF + GS_PROF_NAMES)
/* The region's bytes for nbuckets buckets. */
static inline uint64_t gs_prof_region_size(uint32_t nbuckets)
{
    return GS_PROF_BUCKETS_OFF + (uint64_t)nbuckets * 4u;
}
/* The bucket count for a heap of max_spans span ids. */
static inline uint32_t gs_prof_nbuckets(uint64_t max_spans)
{
    uint32_t n = 1024u;
    while (n < max_spans && n < GS_PROF_MAX_BUCKETS) n <<= 1;
    return n;
}

static inline uint64_t gs_prof_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

#endif /* GOSHM_PROFREGION_H */
