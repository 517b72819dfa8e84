/* SPDX-License-Identifier: MIT */
/* rdaemon.h: the restart tests' harness: one goshmd at a time on a fixed socket and state directory, started, killed and started again.
 *
 * Overview of the engine: shm/overview.h; adoption: daemon/adopt.c. Unlike
 * tests/service/harness.h (a fresh directory per daemon), the daemons here
 * follow one another on the same socket path and the same --state-dir
 * (under /dev/shm, a tmpfs, when it exists), so that each adopts the heap
 * of the one before. $GOSHMD_ARGS (e.g. --force-epoll) is appended to
 * every command line. rd_cleanup (also run at exit) kills the daemon and
 * removes both directories.
 */
#ifndef GOSHM_TEST_RDAEMON_H
#define GOSHM_TEST_RDAEMON_H

#include <stdbool.h>   /* bool */
#include <sys/types.h> /* pid_t */

#include "harness.h"

typedef struct rd {
    const char *bin;      /* goshmd */
    char dir[64];         /* socket directory */
    char sock[128];
    char state[128];      /* --state-dir */
    pid_t pid;            /* 0: none running */
    int status;           /* wait status of the last daemon reaped */
} rd_t;

/* Directories; no daemon yet. Skips the test (exit 77) without a binary. */
void rd_init(rd_t *d, const char *bin);
/* Start goshmd with the state directory, `size` (e.g. "256M") and extra
 * space-separated arguments (may be NULL); GOSHM_KILLPOINT=killpoint if not
 * NULL. Does not wait. 0 or -1. */
int rd_spawn(rd_t *d, const char *size, const char *extra, const char *killpoint);
/* Wait until the daemon answers Stats (0), or it exits (-1, status kept,
 * d->pid 0), or timeout_ms passes (-1). */
int rd_ready(rd_t *d, int timeout_ms);
/* rd_spawn + rd_ready. */
int rd_start(rd_t *d, const char *size, const char *extra);
/* Send sig and reap (5 s, then SIGKILL). The wait status. */
int rd_stop(rd_t *d, int sig);
/* Reap a daemon that exits by itself within timeout_ms: its wait status,
 * or -1 (still running). */
int rd_reap(rd_t *d, int timeout_ms);
void rd_cleanup(rd_t *d);

#endif /* GOSHM_TEST_RDAEMON_H */
