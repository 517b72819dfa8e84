/* SPDX-License-Identifier: MIT */
/* futex.h: the ring's futex word: wake and timed wait, shared by both sides.
 *
 * Overview: shm/overview.h ("Processes, threads and the ring"); the word is
 * gs_ring_t.xcq_seq (shm/ring.h). Never FUTEX_PRIVATE_FLAG: waiter and waker
 * are different processes mapping the same memfd.
 */
#ifndef GOSHM_FUTEX_H
#define GOSHM_FUTEX_H

#include <limits.h>      /* INT_MAX */
#include <linux/futex.h> /* FUTEX_WAIT, FUTEX_WAKE */
#include <stdint.h>      /* uint32_t */
#include <sys/syscall.h> /* SYS_futex */
#include <time.h>        /* struct timespec */
#include <unistd.h>      /* syscall */

/* Wake every process asleep on addr. */
static inline void gs_futex_wake(_Atomic uint32_t *addr)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Sleep while *addr == expect, at most timeout_ns (spurious wake-ups and
 * EAGAIN are the caller's to re-check). */
static inline void gs_futex_wait(_Atomic uint32_t *addr, uint32_t expect, uint64_t timeout_ns)
{
    struct timespec ts = {(time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u)};
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT, expect, &ts, NULL, 0);
}

#endif /* GOSHM_FUTEX_H */
