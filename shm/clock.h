/* SPDX-License-Identifier: MIT */
/* clock.h: the one monotonic clock, in nanoseconds, for every part of goshm.
 *
 * Overview: shm/overview.h. CLOCK_MONOTONIC: immune to wall-clock changes;
 * used for spin deadlines, idle ages (scavenger), uptime and timeouts.
 */
#ifndef GOSHM_CLOCK_H
#define GOSHM_CLOCK_H

#include <stdint.h> /* uint64_t */
#include <time.h>   /* clock_gettime */

static inline uint64_t gs_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif /* GOSHM_CLOCK_H */
