/* SPDX-License-Identifier: MIT */
/* profile.h: goshmctl profile: the heap-wide sampled heap profile as a
 * gzipped pprof profile.proto.
 *
 * Overview: shm/overview.h; what the clients record and how: shm/profregion.h.
 * The daemon reads the profile region of the data memfd (client-written:
 * every index and string is checked) and writes one pprof profile with four
 * sample types, as Go's heap profile has: alloc_objects/count,
 * alloc_space/bytes (every sample taken, live or not), inuse_objects/count,
 * inuse_space/bytes (samples whose object is still live, in any process),
 * estimated from the samples as Go does. Each sample carries a numeric
 * label "pid": the process that allocated it (which may have exited). The
 * frames were named by that process when it sampled them.
 */
#ifndef GOSHM_DAEMON_PROFILE_H
#define GOSHM_DAEMON_PROFILE_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* uint64_t */

typedef struct gs_profile_totals {
    uint64_t stacks, samples_live, names_bytes, sampled, dropped;
} gs_profile_totals_t;

/* Build the profile from the region at `region` (gs_prof_region_size bytes
 * for the nbuckets the heap side set) and write it, gzipped, to fd from its
 * current position. 0 or -errno (err set). totals may be NULL. */
int gs_profile_write(const char *region, uint64_t period, int fd, gs_profile_totals_t *totals, char *err,
                     size_t errlen);

#endif /* GOSHM_DAEMON_PROFILE_H */
