/* SPDX-License-Identifier: MIT */
/* mapping.c: arena-aligned mappings. Contract: shm/mapping.h. */
#include "mapping.h"

#include <errno.h>    /* errno */
#include <stdint.h>   /* uintptr_t */
#include <sys/mman.h> /* mmap */

#include "overview.h"   /* GS_ARENA_SIZE */

char *gs_map_aligned(int fd, uint64_t size, int prot)
{
    /* Reserve size + alignment of address space (free), map over the aligned
     * part, and give the rest back. */
    uint64_t span = size + GS_ARENA_SIZE;
    char *r = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) return NULL;
    uintptr_t a = ((uintptr_t)r + GS_ARENA_SIZE - 1) & ~(uintptr_t)(GS_ARENA_SIZE - 1);
    char *p = mmap((void *)a, size, prot, MAP_SHARED | MAP_FIXED | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        munmap(r, span);
        errno = e;
        return NULL;
    }
    if ((char *)a > r) munmap(r, (size_t)((char *)a - r));
    char *end = (char *)a + size, *rend = r + span;
    if (rend > end) munmap(end, (size_t)(rend - end));
    return p;
}
