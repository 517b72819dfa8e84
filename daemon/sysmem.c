/* SPDX-License-Identifier: MIT */
/* sysmem.c: Go's OS abstraction layer, for memory that lives in a memfd.
 *
 * Overview: shm/overview.h ("Memory states"). A memfd's pages are shared by
 * every process that maps it, so the transitions act on the file, not on a
 * mapping:
 *   Prepared -> Ready   fallocate(fd, 0, off, len): backs the pages now, so
 *                       that running out is ENOMEM here rather than SIGBUS at
 *                       the first touch in some client.
 *   Ready -> Prepared   fallocate(PUNCH_HOLE | KEEP_SIZE): frees the pages
 *                       for every mapping at once (MADV_DONTNEED only drops
 *                       one process's page-table entries of a shared page).
 */
#define _GNU_SOURCE
#include "heap_internal.h"

#include <errno.h>   /* errno */
#include <fcntl.h>   /* fallocate, FALLOC_FL_* */

int gs_sys_commit(int fd, uint64_t off, uint64_t len)
{
    if (len == 0) return 0;
    if (fallocate(fd, 0, (off_t)off, (off_t)len) == 0) return 0;
    /* tmpfs says ENOSPC when full; a memory cgroup says ENOMEM. Either way
     * the heap is out of memory. */
    return (errno == ENOSPC || errno == ENOMEM || errno == EFBIG) ? -ENOMEM : -errno;
}

int gs_sys_release(int fd, uint64_t off, uint64_t len)
{
    if (len == 0) return 0;
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0) return 0;
    return -errno;
}
