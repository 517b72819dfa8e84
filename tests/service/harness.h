/* SPDX-License-Identifier: MIT */
/* harness.h: the service tests' harness: a real goshmd per test, its stats.
 *
 * Overview of the engine: shm/overview.h; the protocol: proto/goshm.proto.
 *
 * gsh_start runs the goshmd binary given as argv[1] (or $GOSHMD) on a socket
 * in a fresh directory under /tmp, with the arguments in $GOSHMD_ARGS
 * (space-separated; ctest runs every test once plain and once with
 * --force-epoll) merged with the test's own: an option the test names
 * replaces the one $GOSHMD_ARGS gives. It returns once the daemon answers a
 * StatsRequest (10 s at most). gsh_stop sends SIGTERM, waits up to 5 s for a
 * clean exit (status 0, socket file removed), then falls back to SIGKILL.
 *
 * The harness never counts checks itself (tests/unit/check.h keeps its
 * counters per file): every function returns 0 or -errno / -1 after printing
 * why on stderr, and the test CHECKs that. If the test process exits without
 * calling gsh_stop (a REQUIRE), an exit handler kills the daemon and removes
 * the directory; if it dies of a signal, the daemon dies with it (a
 * parent-death signal) and only the directory stays behind.
 *
 * Children: tests re-run their own binary with a role argument
 * (gsh_spawn_self) so that each client is an independent process that
 * attaches on its own; gsh_wait_child reaps one with a timeout.
 */
#ifndef GOSHM_TEST_HARNESS_H
#define GOSHM_TEST_HARNESS_H

#include <stdbool.h>   /* bool */
#include <stdint.h>    /* uint*_t */
#include <sys/types.h> /* pid_t */

#define GSH_SKIP 77          /* ctest SKIP_RETURN_CODE */
#define GSH_MAX_CLIENTS 128  /* GS_MAX_SLOTS */

typedef struct gsh_daemon {
    pid_t pid;               /* 0: not running */
    bool reaped;             /* waited for already (gsh_alive saw it exit) */
    int status;              /* its wait status, once reaped */
    char dir[64];            /* the temporary directory */
    char sock[128];          /* dir/goshmd.sock */
    char bin[512];           /* the goshmd binary */
} gsh_daemon_t;

typedef struct gsh_stats {
    /* HeapStats */
    uint64_t reserved_bytes, committed_bytes, in_use_bytes, idle_bytes, released_bytes;
    uint64_t metadata_bytes, grown_bytes, span_bytes, large_objects, large_allocs, large_frees;
    uint64_t notices, bad_requests, bad_ring_entries;
    uint64_t heap_id;        /* goshm_heap_id */
    uint32_t adopted, adopted_orphans, adopted_reclaimed, orphans;
    /* StatsReply */
    uint32_t clients;        /* attached clients */
    uint32_t client_pid[GSH_MAX_CLIENTS];
    uint64_t objects_in_use; /* over all size classes */
    char backend[16];
    uint32_t daemon_pid;
} gsh_stats_t;

/* The goshmd binary: argv[1] if given, else $GOSHMD; NULL if neither. */
const char *gsh_daemon_path(int argc, char **argv);

/* Start goshmd. `test_args` (may be NULL): space-separated options of the
 * test, e.g. "--size 64M --spin-us 200000". 0, or -1 after printing why.
 * Without a binary (bin NULL) the test is skipped: exit(GSH_SKIP). */
int gsh_start(gsh_daemon_t *d, const char *bin, const char *test_args);

/* SIGTERM, wait up to 5 s, then SIGKILL. 0 if the daemon exited with status
 * 0 and removed its socket; -1 otherwise (printed). Removes the directory. */
int gsh_stop(gsh_daemon_t *d);

/* Is the daemon process still running (not exited, not a zombie)? */
bool gsh_alive(const gsh_daemon_t *d);
/* SIGSTOP the daemon and wait (up to 2 s) until every thread of it is in
 * state T: kill() returns before a thread running on another CPU has
 * stopped, and the data plane may answer a request or two meanwhile. 0, or
 * -1 (not stopped in time). */
int gsh_stop_all_threads(const gsh_daemon_t *d);

/* One StatsRequest on a fresh connection. 0 or -errno. */
int gsh_stats(const char *sock, gsh_stats_t *st);

/* Poll the stats (every 20 ms) until pred(st, arg) holds or timeout_ms
 * passes. *st gets the last stats read. 1 if pred held, 0 on timeout, -errno
 * if the daemon stopped answering. */
int gsh_wait_for(const char *sock, gsh_stats_t *st, bool (*pred)(const gsh_stats_t *, void *), void *arg,
                 int timeout_ms);

/* Common predicates; arg points to a uint32_t (clients) or is unused. */
bool gsh_pred_clients(const gsh_stats_t *st, void *nclients);
bool gsh_pred_idle(const gsh_stats_t *st, void *unused); /* no client, in_use 0, span_bytes 0 */

/* Wait for `nclients` attached clients (as the daemon sees them), then for
 * the data plane's and timers' work to settle (~300 ms: the daemon runs a
 * 100 ms timer), then read the stats. 0 or -1 (printed). */
int gsh_settle(const char *sock, uint32_t nclients, gsh_stats_t *st);

/* gsh_settle for no client, then up to 2 s more for the heap to be idle
 * (gsh_pred_idle). 0 if no client is attached (the caller checks the rest of
 * *st), -1 otherwise (printed). */
int gsh_settle_idle(const char *sock, gsh_stats_t *st);

/* Run this program again (/proc/self/exe) with argv (argv[0] included,
 * NULL-terminated), inheriting descriptors that are not close-on-exec.
 * The pid, or -1 (printed). */
pid_t gsh_spawn_self(char *const argv[]);

/* Reap a child. Its exit status (0..255), or -1 if it was killed by a signal
 * or did not exit within timeout_ms (then it is killed; printed). */
int gsh_wait_child(pid_t pid, int timeout_ms);

/* Monotonic milliseconds. */
uint64_t gsh_now_ms(void);
void gsh_sleep_ms(unsigned ms);

#endif /* GOSHM_TEST_HARNESS_H */
