/* SPDX-License-Identifier: MIT */
/* bench-msg.h: the messages of the cross-process workloads W3, W5 and W6
 * (their sizes, stamps and checks), the wait policy and the consumers'
 * reports, shared by bench-chan.c (goshm), bench-w3-iceoryx.c (iceoryx) and
 * bench-mq-boost.cpp (Boost.Interprocess) so that every peer sends the same
 * bytes and checks them the same way. Overview: shm/overview.h; workloads:
 * bench/README.md. Plain C that also compiles as C++ (no _Atomic here).
 *
 * A message is a buffer of 64..4096 bytes (xorshift64, seed 42 by default:
 * the sequence of bench-ipc's W3) that holds its sequence number and size in
 * its first 16 bytes and a tag (seq * phi ^ size) in its last 8. A receiver
 * checks all three, so a buffer that is lost, duplicated, reordered, reused
 * while still queued or torn is counted as an error.
 */
#ifndef GOSHM_BENCH_MSG_H
#define GOSHM_BENCH_MSG_H

#include <sched.h>  /* sched_yield */
#include <stdint.h> /* uint64_t */
#include <string.h> /* memcpy */
#include <time.h>   /* clock_gettime */

#define BMSG_MIN 64u
#define BMSG_MAX 4096u
#define BMSG_TAG_MUL 0x9e3779b97f4a7c15ull

static inline uint64_t bmsg_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline uint64_t bmsg_xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* The next message size, 64..4096 B. */
static inline uint32_t bmsg_size(uint64_t *rng) { return BMSG_MIN + (uint32_t)(bmsg_xorshift64(rng) % (BMSG_MAX - BMSG_MIN + 1u)); }
static inline uint64_t bmsg_tag(uint64_t seq, uint64_t size) { return (seq * BMSG_TAG_MUL) ^ size; }

/* Stamp the buffer p of size bytes (size >= 16) with message seq. */
static inline void bmsg_write(void *p, uint64_t seq, uint32_t size)
{
    uint64_t h[2] = {seq, size}, tag = bmsg_tag(seq, size);
    memcpy(p, h, sizeof h);
    memcpy((char *)p + size - 8, &tag, 8);
}

/* 1 if p holds message seq, stamped by bmsg_write. The size is read from the
 * buffer and bounded before the tail is read. */
static inline int bmsg_check(const void *p, uint64_t seq)
{
    uint64_t h[2], tag;
    memcpy(h, p, sizeof h);
    if (h[0] != seq || h[1] < BMSG_MIN || h[1] > BMSG_MAX) return 0;
    memcpy(&tag, (const char *)p + h[1] - 8, 8);
    return tag == bmsg_tag(seq, h[1]);
}

static inline void bmsg_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* The wait policy, the same for every peer (--spin-us):
 *   spin_us < 0: never block: poll, PAUSE between polls, sched_yield every
 *                256 polls (W3's loop; two processes on two CPUs);
 *   spin_us >= 0: poll like that for spin_us microseconds, then make the
 *                peer's blocking call (futex, condition variable, waitset)
 *                until something arrives. W6 runs five processes on two CPUs:
 *                pollers that never sleep would take the publisher's CPU.
 * bmsg_spin_t counts one wait: bmsg_spin_more() says whether to poll again
 * (and pauses or yields), false once the wait should block. */
typedef struct bmsg_spin {
    unsigned n;
    int64_t spin_us;
    uint64_t until;
} bmsg_spin_t;

static inline void bmsg_spin_init(bmsg_spin_t *s, int64_t spin_us)
{
    s->n = 0;
    s->spin_us = spin_us;
    s->until = 0;
}

static inline int bmsg_spin_more(bmsg_spin_t *s)
{
    unsigned n = ++s->n;
    if (s->spin_us >= 0) {
        if (s->spin_us == 0) return 0;
        if (n == 1) s->until = bmsg_now_ns() + (uint64_t)s->spin_us * 1000u;
        else if (n % 64 == 0 && bmsg_now_ns() >= s->until) return 0;
    }
    if (n % 256 == 0) sched_yield();
    else bmsg_pause();
    return 1;
}

/* What a consumer sends back (through a pipe, or a control block in shared
 * memory): the time it released its last message, and its counts. */
typedef struct bmsg_report {
    uint64_t end_ns, checked, errors, index;
} bmsg_report_t;

#endif /* GOSHM_BENCH_MSG_H */
