/* SPDX-License-Identifier: MIT */
/* harness.c: start and stop a real goshmd for a test, read its statistics.
 *
 * Overview: tests/service/harness.h.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <dirent.h>     /* opendir */
#include <errno.h>      /* errno */
#include <signal.h>     /* kill */
#include <spawn.h>      /* posix_spawn */
#include <stdio.h>      /* fprintf */
#include <stdlib.h>     /* getenv, atexit */
#include <string.h>     /* strlen, strerror */
#include <sys/prctl.h>  /* PR_SET_PDEATHSIG */
#include <sys/stat.h>   /* stat */
#include <sys/wait.h>   /* waitpid */
#include <time.h>       /* nanosleep */
#include <unistd.h>     /* fork, execv */

#include "clock.h"
#include "ctlclient.h"
#include "goshm.pb-c.h"

extern char **environ;

#define MAX_ARGS 64

static gsh_daemon_t *running; /* for the exit handler */
static pid_t owner;           /* the process that started it */

uint64_t gsh_now_ms(void) { return gs_now_ns() / 1000000u; }

void gsh_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

const char *gsh_daemon_path(int argc, char **argv)
{
    if (argc > 1 && argv[1][0]) return argv[1];
    const char *e = getenv("GOSHMD");
    return e && *e ? e : NULL;
}

/* ---- arguments ------------------------------------------------------------ */

typedef struct arglist {
    char *tok[MAX_ARGS];
    int n;
} arglist_t;

static int split(char *s, arglist_t *l)
{
    for (char *save = NULL, *t = strtok_r(s, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save)) {
        if (l->n >= MAX_ARGS) return -1;
        l->tok[l->n++] = t;
    }
    return 0;
}

/* Length of the option name of token t ("--size" of "--size=64M"). */
static size_t optlen(const char *t)
{
    const char *eq = strchr(t, '=');
    return eq ? (size_t)(eq - t) : strlen(t);
}

/* Does the option at l->tok[i] occur in `over`? */
static bool overridden(const arglist_t *over, const char *t)
{
    size_t n = optlen(t);
    for (int k = 0; k < over->n; k++)
        if (over->tok[k][0] == '-' && optlen(over->tok[k]) == n && strncmp(over->tok[k], t, n) == 0) return true;
    return false;
}

/* ---- the daemon ------------------------------------------------------------ */

static void remove_dir(const char *dir)
{
    DIR *dd = opendir(dir);
    if (dd) {
        struct dirent *e;
        char p[600];
        while ((e = readdir(dd)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(dd);
    }
    rmdir(dir);
}

static void at_exit(void)
{
    if (!running || getpid() != owner) return;
    if (running->pid > 0 && !running->reaped) {
        kill(running->pid, SIGKILL);
        waitpid(running->pid, NULL, 0);
    }
    remove_dir(running->dir);
    running = NULL;
}

static int reap(gsh_daemon_t *d, int flags)
{
    if (d->reaped) return 1;
    int st;
    pid_t r;
    do r = waitpid(d->pid, &st, flags);
    while (r < 0 && errno == EINTR);
    if (r == d->pid) {
        d->reaped = true;
        d->status = st;
        return 1;
    }
    return 0;
}

static void print_status(const char *what, int st)
{
    if (WIFEXITED(st)) fprintf(stderr, "harness: goshmd %s: exit status %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) fprintf(stderr, "harness: goshmd %s: killed by signal %d\n", what, WTERMSIG(st));
}

bool gsh_alive(const gsh_daemon_t *d)
{
    gsh_daemon_t *m = (gsh_daemon_t *)d;
    if (m->pid <= 0) return false;
    return !reap(m, WNOHANG);
}

/* Is every thread of pid in state T (stopped)? */
static bool all_stopped(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    if (!dir) return false;
    bool all = true;
    struct dirent *de;
    while (all && (de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char sp[128], buf[512];
        snprintf(sp, sizeof sp, "%s/%.32s/stat", path, de->d_name);
        FILE *f = fopen(sp, "r");
        if (!f) continue; /* gone */
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *rp = strrchr(buf, ')'); /* the state follows "(comm) " */
        all = rp && rp[1] == ' ' && (rp[2] == 'T' || rp[2] == 't');
    }
    closedir(dir);
    return all;
}

int gsh_stop_all_threads(const gsh_daemon_t *d)
{
    if (d->pid <= 0 || kill(d->pid, SIGSTOP) != 0) return -1;
    for (int i = 0; i < 1000; i++) {
        if (all_stopped(d->pid)) return 0;
        gsh_sleep_ms(2);
    }
    return -1;
}

int gsh_start(gsh_daemon_t *d, const char *bin, const char *test_args)
{
    memset(d, 0, sizeof *d);
    if (!bin) {
        fprintf(stderr, "harness: no goshmd: pass its path as argv[1] or in $GOSHMD: skipped\n");
        exit(GSH_SKIP);
    }
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "harness: %s: %s\n", bin, strerror(errno));
        return -1;
    }
    snprintf(d->bin, sizeof d->bin, "%s", bin);
    snprintf(d->dir, sizeof d->dir, "/tmp/goshm-test-XXXXXX");
    if (!mkdtemp(d->dir)) {
        fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    snprintf(d->sock, sizeof d->sock, "%s/goshmd.sock", d->dir);

    /* argv: bin --socket PATH, $GOSHMD_ARGS minus what the test overrides,
     * then the test's own options. */
    static char envbuf[1024], testbuf[1024];
    arglist_t env = {0}, mine = {0};
    const char *e = getenv("GOSHMD_ARGS");
    snprintf(envbuf, sizeof envbuf, "%s", e ? e : "");
    snprintf(testbuf, sizeof testbuf, "%s", test_args ? test_args : "");
    if (split(envbuf, &env) || split(testbuf, &mine)) {
        fprintf(stderr, "harness: too many daemon arguments\n");
        remove_dir(d->dir);
        return -1;
    }
    char *argv[MAX_ARGS * 2 + 4];
    int argc = 0;
    argv[argc++] = d->bin;
    argv[argc++] = (char *)"--socket";
    argv[argc++] = d->sock;
    for (int i = 0; i < env.n; i++) {
        const char *t = env.tok[i];
        bool sock_opt = optlen(t) == 8 && strncmp(t, "--socket", 8) == 0; /* ours */
        if (t[0] == '-' && (overridden(&mine, t) || sock_opt)) {
            /* Drop it and its separate value, if any. */
            if (!strchr(t, '=') && i + 1 < env.n && env.tok[i + 1][0] != '-') i++;
            continue;
        }
        argv[argc++] = env.tok[i];
    }
    for (int i = 0; i < mine.n; i++) argv[argc++] = mine.tok[i];
    argv[argc] = NULL;

    fprintf(stderr, "harness: starting");
    for (int i = 0; i < argc; i++) fprintf(stderr, " %s", argv[i]);
    fprintf(stderr, "\n");
    fflush(NULL);

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        remove_dir(d->dir);
        return -1;
    }
    if (pid == 0) {
        /* Die with the test, whatever happens to it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        execv(d->bin, argv);
        fprintf(stderr, "harness: exec %s: %s\n", d->bin, strerror(errno));
        _exit(127);
    }
    d->pid = pid;
    owner = parent;
    static bool registered;
    if (!registered) atexit(at_exit);
    registered = true;
    running = d;

    /* Ready when it answers a StatsRequest. */
    uint64_t deadline = gsh_now_ms() + 10000;
    gsh_stats_t st;
    int rc = -1;
    while (gsh_now_ms() < deadline) {
        if (reap(d, WNOHANG)) {
            print_status("exited during startup", d->status);
            break;
        }
        if ((rc = gsh_stats(d->sock, &st)) == 0) break;
        gsh_sleep_ms(20);
    }
    if (rc != 0) {
        fprintf(stderr, "harness: goshmd did not answer on %s within 10 s\n", d->sock);
        at_exit();
        d->pid = 0;
        return -1;
    }
    fprintf(stderr, "harness: goshmd pid %d ready on %s (backend %s)\n", (int)pid, d->sock, st.backend);
    return 0;
}

int gsh_stop(gsh_daemon_t *d)
{
    if (d->pid <= 0) return -1;
    int rc = 0;
    if (!d->reaped) {
        kill(d->pid, SIGTERM);
        uint64_t deadline = gsh_now_ms() + 5000;
        while (!reap(d, WNOHANG) && gsh_now_ms() < deadline) gsh_sleep_ms(10);
        if (!d->reaped) {
            fprintf(stderr, "harness: goshmd did not exit within 5 s of SIGTERM: SIGKILL\n");
            kill(d->pid, SIGKILL);
            reap(d, 0);
            rc = -1;
        }
    } else {
        fprintf(stderr, "harness: goshmd had exited before the test stopped it\n");
        rc = -1;
    }
    if (rc == 0 && !(WIFEXITED(d->status) && WEXITSTATUS(d->status) == 0)) {
        print_status("after SIGTERM", d->status);
        rc = -1;
    }
    struct stat sb;
    if (rc == 0 && lstat(d->sock, &sb) == 0) {
        fprintf(stderr, "harness: goshmd left its socket %s behind\n", d->sock);
        rc = -1;
    }
    remove_dir(d->dir);
    if (running == d) running = NULL;
    d->pid = 0;
    return rc;
}

/* ---- statistics ------------------------------------------------------------ */

int gsh_stats(const char *sock, gsh_stats_t *st)
{
    memset(st, 0, sizeof *st);
    int fd = gs_ctl_connect(sock);
    if (fd < 0) return fd;
    Goshm__StatsRequest sr = GOSHM__STATS_REQUEST__INIT;
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_STATS;
    req.stats = &sr;
    Goshm__Reply *rep = NULL;
    int rc = gs_ctl_send(fd, &req);
    if (!rc) rc = gs_ctl_recv(fd, &rep, NULL, 0, 5000);
    close(fd);
    if (rc < 0) return rc;
    if (rep->msg_case != GOSHM__REPLY__MSG_STATS || !rep->stats->heap) {
        if (rep->msg_case == GOSHM__REPLY__MSG_ERROR)
            fprintf(stderr, "harness: StatsRequest refused: %d %s\n", rep->error->code,
                    rep->error->message ? rep->error->message : "");
        goshm__reply__free_unpacked(rep, NULL);
        return -EPROTO;
    }
    const Goshm__HeapStats *hs = rep->stats->heap;
    st->reserved_bytes = hs->reserved_bytes;
    st->committed_bytes = hs->committed_bytes;
    st->in_use_bytes = hs->in_use_bytes;
    st->idle_bytes = hs->idle_bytes;
    st->released_bytes = hs->released_bytes;
    st->metadata_bytes = hs->metadata_bytes;
    st->grown_bytes = hs->grown_bytes;
    st->span_bytes = hs->span_bytes;
    st->large_objects = hs->large_objects;
    st->large_allocs = hs->large_allocs;
    st->large_frees = hs->large_frees;
    st->notices = hs->notices;
    st->bad_requests = hs->bad_requests;
    st->bad_ring_entries = hs->bad_ring_entries;
    st->heap_id = rep->stats->heap_id;
    st->adopted = hs->adopted;
    st->adopted_orphans = hs->adopted_orphans;
    st->adopted_reclaimed = hs->adopted_reclaimed;
    st->orphans = hs->orphans;
    st->clients = (uint32_t)rep->stats->n_clients;
    for (size_t i = 0; i < rep->stats->n_clients && i < GSH_MAX_CLIENTS; i++)
        st->client_pid[i] = rep->stats->clients[i]->pid;
    for (size_t i = 0; i < rep->stats->n_classes; i++) st->objects_in_use += rep->stats->classes[i]->objects_in_use;
    snprintf(st->backend, sizeof st->backend, "%s", rep->stats->backend ? rep->stats->backend : "");
    st->daemon_pid = rep->stats->daemon_pid;
    goshm__reply__free_unpacked(rep, NULL);
    return 0;
}

int gsh_wait_for(const char *sock, gsh_stats_t *st, bool (*pred)(const gsh_stats_t *, void *), void *arg,
                 int timeout_ms)
{
    uint64_t deadline = gsh_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int rc = gsh_stats(sock, st);
        if (rc) return rc;
        if (pred(st, arg)) return 1;
        if (gsh_now_ms() >= deadline) return 0;
        gsh_sleep_ms(20);
    }
}

bool gsh_pred_clients(const gsh_stats_t *st, void *nclients) { return st->clients == *(uint32_t *)nclients; }

bool gsh_pred_idle(const gsh_stats_t *st, void *unused)
{
    (void)unused;
    return st->clients == 0 && st->in_use_bytes == 0 && st->span_bytes == 0;
}

int gsh_settle(const char *sock, uint32_t nclients, gsh_stats_t *st)
{
    int rc = gsh_wait_for(sock, st, gsh_pred_clients, &nclients, 10000);
    if (rc != 1) {
        if (rc == 0) fprintf(stderr, "harness: %u clients attached, expected %u\n", st->clients, nclients);
        else fprintf(stderr, "harness: stats: %s\n", strerror(-rc));
        return -1;
    }
    gsh_sleep_ms(300);
    rc = gsh_stats(sock, st);
    if (rc) {
        fprintf(stderr, "harness: stats: %s\n", strerror(-rc));
        return -1;
    }
    return 0;
}

int gsh_settle_idle(const char *sock, gsh_stats_t *st)
{
    if (gsh_settle(sock, 0, st) != 0) return -1;
    if (!gsh_pred_idle(st, NULL) && gsh_wait_for(sock, st, gsh_pred_idle, NULL, 2000) < 0) return -1;
    return 0;
}

/* ---- children ------------------------------------------------------------- */

pid_t gsh_spawn_self(char *const argv[])
{
    fflush(NULL);
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ);
    if (rc) {
        fprintf(stderr, "harness: posix_spawn: %s\n", strerror(rc));
        return -1;
    }
    return pid;
}

int gsh_wait_child(pid_t pid, int timeout_ms)
{
    uint64_t deadline = gsh_now_ms() + (uint64_t)timeout_ms;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, "harness: waitpid %d: %s\n", (int)pid, strerror(errno));
            return -1;
        }
        if (gsh_now_ms() >= deadline) {
            fprintf(stderr, "harness: child %d still running after %d ms: killing it\n", (int)pid, timeout_ms);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        gsh_sleep_ms(2);
    }
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    fprintf(stderr, "harness: child %d killed by signal %d\n", (int)pid, WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    return -1;
}
