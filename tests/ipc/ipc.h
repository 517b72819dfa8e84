/* SPDX-License-Identifier: MIT */
/* ipc.h: what the zero-copy IPC tests share: a file-backed shared page between the test and its child processes, waits, checksums.
 *
 * Overview of the engine: shm/overview.h; buffers: shm/buf.h; channels:
 * shm/chan.h. Children are this binary re-run with a role
 * (gsh_spawn_self), each attached on its own.
 */
#ifndef GOSHM_TEST_IPC_H
#define GOSHM_TEST_IPC_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

/* Map (creating if file is NULL: then *file_out gets its path) a shared
 * region of `size` bytes, zeroed at creation. */
static inline void *ipc_shared(const char *file, size_t size, char *file_out, size_t outlen)
{
    int fd;
    if (!file) {
        char tmpl[] = "/tmp/goshm-ipc-XXXXXX";
        fd = mkstemp(tmpl);
        if (fd < 0 || ftruncate(fd, (off_t)size) != 0) return NULL;
        snprintf(file_out, outlen, "%s", tmpl);
    } else {
        fd = open(file, O_RDWR);
        if (fd < 0) return NULL;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

/* FNV-1a over n bytes. */
static inline uint64_t ipc_sum(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t x = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++) x = (x ^ b[i]) * UINT64_C(0x100000001b3);
    return x;
}

static inline uint64_t ipc_rand(uint64_t *s)
{
    uint64_t x = *s += UINT64_C(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

/* Poll the daemon until in_use_bytes == want (and `clients` attached), up
 * to timeout_ms. 1 if reached; *st gets the last stats. */
typedef struct ipc_want {
    uint64_t in_use;
    uint32_t clients;
} ipc_want_t;
static inline bool ipc_pred(const gsh_stats_t *st, void *arg)
{
    const ipc_want_t *w = arg;
    return st->in_use_bytes == w->in_use && st->clients == w->clients;
}
static inline int ipc_wait_in_use(const char *sock, uint64_t in_use, uint32_t clients, gsh_stats_t *st,
                                  int timeout_ms)
{
    ipc_want_t w = {in_use, clients};
    return gsh_wait_for(sock, st, ipc_pred, &w, timeout_ms);
}

/* Wait (up to 5 s) until buffer p has `want` references; the count last
 * seen. */
static inline uint32_t ipc_wait_refs(goshm_t *h, void *p, uint32_t want)
{
    uint32_t r = 0;
    for (int i = 0; i < 5000; i++) {
        r = goshm_buf_refs(h, p);
        if (r == want) return r;
        usleep(1000);
    }
    return r;
}

#endif /* GOSHM_TEST_IPC_H */
