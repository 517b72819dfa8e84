/* SPDX-License-Identifier: MIT */
/* atomic.h: named-ordering wrappers over C11 atomics for shared memory.
 *
 * Overview of the engine: shm/overview.h. Every access to a field that another
 * process may touch goes through one of these, so that the ordering is
 * written at the call site (the mimalloc habit). Fields that are atomic carry
 * an `x` prefix.
 *
 * Lock-free C11 atomics on plain integers work across processes: they compile
 * to the same instructions on a MAP_SHARED mapping as on private memory.
 */
#ifndef GOSHM_ATOMIC_H
#define GOSHM_ATOMIC_H

#include <stdatomic.h> /* _Atomic, atomic_* */
#include <stdint.h>    /* uint*_t */

#define gs_load_relaxed(p)     atomic_load_explicit((p), memory_order_relaxed)
#define gs_load_acquire(p)     atomic_load_explicit((p), memory_order_acquire)
#define gs_load_seqcst(p)      atomic_load_explicit((p), memory_order_seq_cst)
#define gs_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define gs_store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define gs_store_seqcst(p, v)  atomic_store_explicit((p), (v), memory_order_seq_cst)
#define gs_fetch_or_acqrel(p, v)  atomic_fetch_or_explicit((p), (v), memory_order_acq_rel)
#define gs_fetch_or_seqcst(p, v)  atomic_fetch_or_explicit((p), (v), memory_order_seq_cst)
#define gs_fetch_and_seqcst(p, v) atomic_fetch_and_explicit((p), (v), memory_order_seq_cst)
#define gs_fetch_and_acqrel(p, v) atomic_fetch_and_explicit((p), (v), memory_order_acq_rel)
#define gs_fetch_add_relaxed(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define gs_fetch_add_acqrel(p, v)  atomic_fetch_add_explicit((p), (v), memory_order_acq_rel)
#define gs_fetch_sub_relaxed(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_relaxed)
#define gs_xchg_acqrel(p, v)   atomic_exchange_explicit((p), (v), memory_order_acq_rel)
#define gs_xchg_seqcst(p, v)   atomic_exchange_explicit((p), (v), memory_order_seq_cst)
#define gs_cas_seqcst(p, expp, v) \
    atomic_compare_exchange_strong_explicit((p), (expp), (v), memory_order_seq_cst, memory_order_seq_cst)
#define gs_cas_release(p, expp, v) \
    atomic_compare_exchange_weak_explicit((p), (expp), (v), memory_order_release, memory_order_relaxed)
#define gs_fence_seqcst()      atomic_thread_fence(memory_order_seq_cst)

#define GS_CACHELINE 64

#if defined(__x86_64__) || defined(__i386__)
#define gs_cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define gs_cpu_relax() __asm__ __volatile__("yield")
#else
#define gs_cpu_relax() ((void)0)
#endif

#define gs_likely(x)   __builtin_expect(!!(x), 1)
#define gs_unlikely(x) __builtin_expect(!!(x), 0)

#endif /* GOSHM_ATOMIC_H */
