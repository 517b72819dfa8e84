/* SPDX-License-Identifier: MIT */
/* bench-adopt.c: how long a restarted goshmd takes to adopt a full heap, and how long a client stalls meanwhile.
 *
 * Overview: shm/overview.h; adoption: daemon/adopt.c. Starts goshmd with
 * --state-dir on a tmpfs (/dev/shm), attaches, allocates --objects objects
 * of --bytes each (default 1M x 1 KiB = 1 GiB live), SIGKILLs the daemon
 * and starts another on the same state directory while a client thread
 * makes a call that needs the daemon (a large allocation). Prints, per
 * round: the adopting daemon's own adoption time (its log line), the time
 * from its exec to its first Stats answer, and the client's stall: from the
 * kill, and from the new daemon's start, to the call's return. Not a test:
 * nothing is asserted beyond the heap id and in_use_bytes surviving.
 *
 * Usage: bench-adopt GOSHMD [--objects N] [--bytes B] [--rounds R]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctlclient.h"
#include "goshm.pb-c.h"
#include "goshm/goshm.h"

static char sock[128], state[128], dir[64];
static pid_t dpid;
static int dlog = -1; /* read end of the daemon's stderr */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void spawn(const char *bin)
{
    int p[2];
    if (pipe(p) != 0) exit(1);
    dpid = fork();
    if (dpid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(p[1], 2);
        close(p[0]);
        execl(bin, bin, "--socket", sock, "--state-dir", state, "--size", "4G", "--log-level", "info", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    if (dlog >= 0) close(dlog);
    dlog = p[0];
}

/* Stats: 0 and in_use/heap_id, or -1. */
static int stats(uint64_t *in_use, uint64_t *heap_id)
{
    int fd = gs_ctl_connect(sock);
    if (fd < 0) return -1;
    Goshm__StatsRequest sr = GOSHM__STATS_REQUEST__INIT;
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_STATS;
    req.stats = &sr;
    Goshm__Reply *rep = NULL;
    int rc = gs_ctl_send(fd, &req);
    if (!rc) rc = gs_ctl_recv(fd, &rep, NULL, 0, 2000);
    close(fd);
    if (rc < 0 || !rep || rep->msg_case != GOSHM__REPLY__MSG_STATS || !rep->stats->heap) {
        if (rep) goshm__reply__free_unpacked(rep, NULL);
        return -1;
    }
    *in_use = rep->stats->heap->in_use_bytes;
    *heap_id = rep->stats->heap_id;
    goshm__reply__free_unpacked(rep, NULL);
    return 0;
}

/* The daemon's "adopted heap ... in X ms" line. */
static double adoption_ms(void)
{
    char buf[8192];
    size_t n = 0;
    double t0 = now_ms();
    while (n < sizeof buf - 1 && now_ms() - t0 < 5000) {
        ssize_t r = read(dlog, buf + n, sizeof buf - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
        buf[n] = '\0';
        const char *p = strstr(buf, " in ");
        if (strstr(buf, "adopted heap") && p && strstr(p, " ms")) return atof(p + 4);
    }
    return -1;
}

typedef struct call {
    goshm_t *h;
    double t_end;
    void *p;
} call_t;

static void *needs_daemon(void *arg)
{
    call_t *c = arg;
    c->p = goshm_malloc(c->h, 1u << 20);
    c->t_end = now_ms();
    return NULL;
}

static void cleanup(void)
{
    if (dpid > 0) kill(dpid, SIGKILL);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, state);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s GOSHMD [--objects N] [--bytes B] [--rounds R]\n", argv[0]);
        return 2;
    }
    const char *bin = argv[1];
    unsigned long objects = 1u << 20, bytes = 1024, rounds = 3;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--objects")) objects = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--bytes")) bytes = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--rounds")) rounds = strtoul(argv[i + 1], NULL, 10);
    }
    snprintf(dir, sizeof dir, "/tmp/gsba-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    snprintf(sock, sizeof sock, "%s/goshmd.sock", dir);
    snprintf(state, sizeof state, "/dev/shm/gsba-%d", (int)getpid());
    atexit(cleanup);
    setenv("GOSHM_RECONNECT_S", "60", 1);
    signal(SIGPIPE, SIG_IGN);

    spawn(bin);
    uint64_t in_use = 0, id = 0, in2, id2;
    for (int t = 0; t < 500 && stats(&in_use, &id) != 0; t++) usleep(10000);
    goshm_t *h = goshm_attach(sock);
    if (!h) {
        perror("goshm_attach");
        return 1;
    }
    double a0 = now_ms();
    for (unsigned long i = 0; i < objects; i++) {
        char *p = goshm_malloc(h, bytes);
        if (!p) {
            perror("goshm_malloc");
            return 1;
        }
        p[0] = (char)i;
    }
    double a1 = now_ms();
    usleep(300000);
    stats(&in_use, &id);
    printf("heap %016llx: %lu objects of %lu bytes, in_use_bytes %llu (allocated in %.0f ms)\n",
           (unsigned long long)id, objects, bytes, (unsigned long long)in_use, a1 - a0);
    printf("round  adoption(daemon)  exec->answer  client stall from kill  from start\n");
    for (unsigned long r = 0; r < rounds; r++) {
        kill(dpid, SIGKILL);
        waitpid(dpid, NULL, 0);
        double tk = now_ms();
        call_t c = {.h = h};
        pthread_t th;
        pthread_create(&th, NULL, needs_daemon, &c);
        usleep(100000); /* the client is waiting by now */
        double ts = now_ms();
        spawn(bin);
        double ta = adoption_ms();
        while (stats(&in2, &id2) != 0) usleep(1000);
        double tr = now_ms();
        pthread_join(th, NULL);
        printf("%5lu  %13.1f ms  %9.1f ms  %19.1f ms  %7.1f ms%s\n", r, ta, tr - ts, c.t_end - tk, c.t_end - ts,
               id2 == id && c.p ? "" : "  (heap id changed or the call failed!)");
        if (c.p) goshm_free(h, c.p);
        usleep(300000);
    }
    stats(&in2, &id2);
    printf("in_use_bytes after the rounds: %llu (before: %llu)\n", (unsigned long long)in2, (unsigned long long)in_use);
    return 0;
}
