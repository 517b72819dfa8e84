/* SPDX-License-Identifier: MIT */
/* profile.h: the client's side of the sampled heap profile.
 *
 * Overview: shm/overview.h; the shared layout and its rules: shm/profregion.h.
 * The allocation path keeps a byte countdown in the mcache and calls
 * gs_prof_sample when it goes negative (a subtract and a branch); the free
 * path calls gs_prof_free when the span's bucket says a sample may be live.
 */
#ifndef GOSHM_CLIENT_PROFILE_H
#define GOSHM_CLIENT_PROFILE_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* uint*_t */

#include "profregion.h"

/* This process's view of a heap's profile region; all NULL/0 if the heap has
 * none or sampling is off. */
typedef struct gs_prof_view {
    gs_prof_header_t *hdr;
    gs_prof_stack_t *stacks;
    gs_prof_sample_t *samples;
    char *names;
    _Atomic uint32_t *buckets;   /* never NULL once attached: a dummy 0 if none */
    uint32_t mask;               /* nbuckets - 1 */
    uint64_t rate;               /* mean bytes between samples; 0: off */
} gs_prof_view_t;

struct goshm;
struct gs_mcache;

/* GOSHM_PROFILE_RATE: bytes, 0 off; unset: GS_PROF_DEFAULT_RATE. A bad
 * value is reported once and means the default. */
uint64_t gs_prof_env_rate(void);

/* Set up h->prof from the heap's region (checked) and the rate. */
void gs_prof_attach(struct goshm *h, uint64_t prof_off, uint64_t rate);

/* The bytes until the next sample for a thread: exponential, mean rate;
 * INT64_MAX when sampling is off. (A new mcache's countdown: 0 instead
 * while a GOSHM_DEBUG mode is on, see gs_prof_sample.) */
int64_t gs_prof_next(struct goshm *h, struct gs_mcache *c);

/* The countdown went negative at p (size bytes asked): run GOSHM_DEBUG's
 * allocation hook if a mode is on (then the countdown fires at every
 * allocation), record a sample if it is due and p is a profiled object,
 * re-arm the countdown. Returns p, so that the allocation path ends in a
 * tail call and keeps no register for it. */
void *gs_prof_sample(struct goshm *h, struct gs_mcache *c, void *p, size_t size);

/* A free of the object at off in span sid whose bucket is non-zero: retire
 * its sample if it has one. Call before the free's atomic OR. */
void gs_prof_free(struct goshm *h, uint64_t off, uint32_t sid);

/* Poison found a write after free in the slot at off: print the stack of
 * its last allocation if that was sampled (its retired sample entry). */
void gs_prof_report_freed(struct goshm *h, uint64_t off);

/* GOSHM_PROFILE_UNWIND: how a sample captures its stack. */
enum { GS_UNWIND_FP = 0, GS_UNWIND_DWARF = 1 };
/* "fp" or unset: GS_UNWIND_FP where the walk exists (x86-64, AArch64),
 * "dwarf": glibc's backtrace(). A bad value is reported once. */
int gs_prof_env_unwind(void);

/* The frame-pointer walk (tests/observe/test-fpwalk.c). gs_prof_fp_chain:
 * the return addresses of the chain of frames that starts at fp, innermost
 * first, at most max; it stops at the first frame that is out of [lo, hi),
 * misaligned, not strictly above the one before, or whose return address is
 * 0, so a frame without a frame pointer ends the walk instead of faulting.
 * gs_prof_fp_here: the same from the frame of its caller's callee (pcs[0]
 * is in the caller), bounded by this thread's stack [lo, hi); -1 if the
 * caller's frame is not inside it (a signal or coroutine stack). */
int gs_prof_fp_chain(uintptr_t fp, uintptr_t lo, uintptr_t hi, void **pcs, int max);
int gs_prof_fp_here(uintptr_t lo, uintptr_t hi, void **pcs, int max);
/* This thread's stack, from pthread_getattr_np (slow: once per thread): 0,
 * or -1 if unknown. */
int gs_prof_thread_stack(uintptr_t *lo, uintptr_t *hi);

static inline int gs_prof_maybe_sampled(const gs_prof_view_t *v, uint32_t sid)
{
    return gs_load_relaxed(&v->buckets[sid & v->mask]) != 0;
}

#endif /* GOSHM_CLIENT_PROFILE_H */
