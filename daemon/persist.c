/* SPDX-License-Identifier: MIT */
/* persist.c: goshmd --state-dir: the heap's two files in a directory, created whole or not at all, adopted on restart.
 *
 * Overview: shm/overview.h; adoption: daemon/adopt.c; API: daemon/persist.h.
 * The directory holds goshm-data (the data memfd's contents) and goshm-meta
 * (the meta memfd's). A heap is created on two unnamed files (O_TMPFILE),
 * completely, before it gets names: goshm-data first, goshm-meta last, so
 * a directory with goshm-meta holds a whole heap, and one with goshm-data
 * alone holds the leftovers of a creation cut short (refused, like any
 * other directory that is not exactly a heap; --fresh starts over). Nothing
 * in the directory is changed unless it is adopted or --fresh says so.
 *
 * Which file systems: the files are mapped MAP_SHARED by every client and
 * committed with fallocate, punched with FALLOC_FL_PUNCH_HOLE. tmpfs (e.g.
 * /dev/shm/NAME, /run/goshm) does all of that, and is what the tests use.
 * hugetlbfs gives huge pages, but allocates whole huge pages, cannot punch
 * less than one and has no ftruncate-then-sparse growth: it needs an arena
 * and scavenging granularity of the huge page size (not done). A DAX file
 * system (ext4/xfs -o dax on persistent or CXL-attached memory) maps the
 * memory itself, which is how hosts share CXL memory; it supports
 * fallocate and punching, but two hosts need a cache-coherent CXL link (or
 * explicit flushes) for the atomics here to mean anything. A disk-backed
 * file system works but writes the heap back to disk: pointless and slow.
 */
#define _GNU_SOURCE
#include "persist.h"

#include <errno.h>    /* errno */
#include <fcntl.h>    /* openat, O_TMPFILE, linkat */
#include <stdio.h>    /* snprintf */
#include <string.h>   /* strerror */
#include <sys/stat.h> /* mkdir, fstat, fstatat */
#include <unistd.h>   /* close, unlinkat, geteuid, fsync */

#define DATA_NAME "goshm-data"
#define META_NAME "goshm-meta"

/* 1: a regular file by that name; 0: nothing by that name; -errno: else. */
static int exists(int dfd, const char *name)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT ? 0 : -errno;
    return S_ISREG(st.st_mode) ? 1 : -EEXIST;
}

/* An unnamed file in the directory (or, where O_TMPFILE is not supported,
 * a hidden named one that `publish` renames). */
static int new_file(int dfd, const char *tmpname)
{
    int fd = openat(dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)) return fd;
    unlinkat(dfd, tmpname, 0);
    return openat(dfd, tmpname, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
}

static int publish(int dfd, int fd, const char *tmpname, const char *name)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc, dfd, name, AT_SYMLINK_FOLLOW) == 0) return 0;
    int e = errno;
    if (renameat(dfd, tmpname, dfd, name) == 0) return 0; /* the named fallback */
    return -e;
}

int gs_persist_open(const char *dir, bool fresh, const gs_heap_config_t *cfg, gs_heap_t **out, bool *adopted,
                    char *err, size_t errlen)
{
    *out = NULL;
    *adopted = false;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "state directory %s: cannot create it: %s", dir, strerror(errno));
        return -1;
    }
    int dfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (dfd < 0 || fstat(dfd, &st) != 0) {
        snprintf(err, errlen, "state directory %s: %s", dir, strerror(errno));
        if (dfd >= 0) close(dfd);
        return -1;
    }
    /* Whoever can write the directory can swap the heap under us. */
    if (st.st_uid != geteuid() || (st.st_mode & 0022)) {
        snprintf(err, errlen, "state directory %s: refused: must be ours and writable by nobody else (mode %o, uid %u); left untouched", dir,
                 (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
        close(dfd);
        return -1;
    }
    int rc = -1;
    int hd = exists(dfd, DATA_NAME), hm = exists(dfd, META_NAME);
    if (hd < 0 || hm < 0) {
        snprintf(err, errlen, "state directory %s: %s or %s is not a regular file; left untouched", dir, DATA_NAME,
                 META_NAME);
        goto out;
    }
    if (!fresh && hd && hm) {
        int data_fd = openat(dfd, DATA_NAME, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        int meta_fd = openat(dfd, META_NAME, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        char why[384];
        gs_heap_t *h = NULL;
        if (data_fd < 0 || meta_fd < 0)
            snprintf(why, sizeof why, "cannot open its files: %s", strerror(errno));
        else {
            gs_heap_config_t c = *cfg;
            c.slot_dir_fd1 = dfd + 1; /* slot files (daemon/slot.c) */
            h = gs_heap_adopt(&c, data_fd, meta_fd, why, sizeof why);
        }
        if (!h) {
            if (data_fd >= 0) close(data_fd);
            if (meta_fd >= 0) close(meta_fd);
            snprintf(err, errlen, "state directory %s: refused: %s; left untouched (--fresh starts a new heap there)",
                     dir, why);
            goto out;
        }
        *out = h;
        *adopted = true;
        rc = 0;
        goto out;
    }
    if (!fresh && (hd || hm)) {
        snprintf(err, errlen,
                 "state directory %s: refused: only %s is there (a heap whose creation was cut short?); left untouched "
                 "(--fresh starts a new heap there)",
                 dir, hd ? DATA_NAME : META_NAME);
        goto out;
    }
    /* A new heap: the old names go first (--fresh), then the new files get
     * them, goshm-meta last. */
    if ((hm && unlinkat(dfd, META_NAME, 0) != 0) || (hd && unlinkat(dfd, DATA_NAME, 0) != 0)) {
        snprintf(err, errlen, "state directory %s: cannot remove the old heap: %s", dir, strerror(errno));
        goto out;
    }
    int data_fd = new_file(dfd, "." DATA_NAME ".new");
    int meta_fd = data_fd >= 0 ? new_file(dfd, "." META_NAME ".new") : -1;
    if (data_fd < 0 || meta_fd < 0) {
        snprintf(err, errlen, "state directory %s: cannot create the heap's files: %s", dir, strerror(errno));
        if (data_fd >= 0) close(data_fd);
        goto out;
    }
    gs_heap_config_t c = *cfg;
    c.persistent = true;
    c.slot_dir_fd1 = dfd + 1; /* slot files (daemon/slot.c) */
    char why[384];
    gs_heap_t *h = gs_heap_create_files(&c, data_fd, meta_fd, why, sizeof why); /* owns the fds now */
    if (!h) {
        snprintf(err, errlen, "state directory %s: %s", dir, why);
        goto out;
    }
    int e = publish(dfd, gs_heap_data_fd(h), "." DATA_NAME ".new", DATA_NAME);
    if (!e) e = publish(dfd, gs_heap_meta_fd(h), "." META_NAME ".new", META_NAME);
    if (e) {
        snprintf(err, errlen, "state directory %s: cannot name the heap's files: %s", dir, strerror(-e));
        gs_heap_destroy(h);
        goto out;
    }
    fsync(dfd); /* for file systems where names reach a disk; a no-op on tmpfs */
    *out = h;
    rc = 0;
out:
    close(dfd);
    return rc;
}
