/* SPDX-License-Identifier: MIT */
/* rdaemon.c: the restart tests' harness (rdaemon.h). */
#define _GNU_SOURCE
#include "rdaemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static rd_t *registered;

static void at_exit_cleanup(void)
{
    if (registered) rd_cleanup(registered);
}

void rd_init(rd_t *d, const char *bin)
{
    memset(d, 0, sizeof *d);
    if (!bin) {
        fprintf(stderr, "no goshmd binary: skipped\n");
        exit(GSH_SKIP);
    }
    d->bin = bin;
    snprintf(d->dir, sizeof d->dir, "/tmp/gsr-XXXXXX");
    if (!mkdtemp(d->dir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(d->sock, sizeof d->sock, "%s/goshmd.sock", d->dir);
    struct stat st;
    if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode)) {
        char tmpl[64];
        snprintf(tmpl, sizeof tmpl, "/dev/shm/gsr-XXXXXX");
        if (mkdtemp(tmpl)) {
            snprintf(d->state, sizeof d->state, "%s/heap", tmpl);
        }
    }
    if (!d->state[0]) snprintf(d->state, sizeof d->state, "%s/heap", d->dir);
    registered = d;
    atexit(at_exit_cleanup);
}

int rd_spawn(rd_t *d, const char *size, const char *extra, const char *killpoint)
{
    char line[1024];
    snprintf(line, sizeof line, "%s %s", extra ? extra : "", getenv("GOSHMD_ARGS") ? getenv("GOSHMD_ARGS") : "");
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)d->bin;
    argv[n++] = "--socket";
    argv[n++] = d->sock;
    argv[n++] = "--state-dir";
    argv[n++] = d->state;
    argv[n++] = "--size";
    argv[n++] = (char *)size;
    argv[n++] = "--log-level";
    argv[n++] = "warn";
    for (char *save = NULL, *t = strtok_r(line, " ", &save); t && n < 62; t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (killpoint) setenv("GOSHM_KILLPOINT", killpoint, 1);
        else unsetenv("GOSHM_KILLPOINT");
        unsetenv("NOTIFY_SOCKET");
        execv(d->bin, argv);
        _exit(127);
    }
    d->pid = pid;
    return 0;
}

int rd_reap(rd_t *d, int timeout_ms)
{
    if (!d->pid) return d->status;
    uint64_t end = gsh_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(d->pid, &st, WNOHANG);
        if (r == d->pid) {
            d->pid = 0;
            d->status = st;
            return st;
        }
        if (gsh_now_ms() >= end) return -1;
        gsh_sleep_ms(5);
    }
}

int rd_ready(rd_t *d, int timeout_ms)
{
    uint64_t end = gsh_now_ms() + (uint64_t)timeout_ms;
    while (gsh_now_ms() < end) {
        if (rd_reap(d, 0) != -1) return -1;
        gsh_stats_t st;
        if (gsh_stats(d->sock, &st) == 0 && st.daemon_pid == (uint32_t)d->pid) return 0;
        gsh_sleep_ms(10);
    }
    return -1;
}

int rd_start(rd_t *d, const char *size, const char *extra)
{
    if (rd_spawn(d, size, extra, NULL)) return -1;
    return rd_ready(d, 10000);
}

int rd_stop(rd_t *d, int sig)
{
    if (!d->pid) return d->status;
    kill(d->pid, sig);
    int st = rd_reap(d, 5000);
    if (st == -1) {
        kill(d->pid, SIGKILL);
        st = rd_reap(d, 5000);
    }
    return st;
}

void rd_cleanup(rd_t *d)
{
    if (d->pid) rd_stop(d, SIGKILL);
    char cmd[512];
    if (d->state[0]) {
        char parent[128];
        snprintf(parent, sizeof parent, "%s", d->state);
        char *slash = strrchr(parent, '/');
        if (slash) *slash = '\0';
        snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", parent, d->dir);
        if (system(cmd) != 0) fprintf(stderr, "cleanup failed: %s\n", cmd);
    }
    d->state[0] = '\0';
    registered = NULL;
}
