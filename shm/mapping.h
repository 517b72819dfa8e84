/* SPDX-License-Identifier: MIT */
/* mapping.h: mapping a memfd at an arena-aligned address.
 *
 * Overview: shm/overview.h. Both sides map the data memfd at an address aligned
 * to an arena (64 MiB), so a pointer is exactly as aligned as its offset:
 * page-aligned spans give page-aligned large objects, and arenas can use
 * huge pages.
 */
#ifndef GOSHM_MAPPING_H
#define GOSHM_MAPPING_H

#include <stdint.h> /* uint64_t */

/* mmap(fd) MAP_SHARED with `prot` at a GS_ARENA_SIZE-aligned address.
 * NULL with errno on failure. Unmap with munmap(p, size). */
char *gs_map_aligned(int fd, uint64_t size, int prot);

#endif
