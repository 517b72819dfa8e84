/* SPDX-License-Identifier: MIT */
/* main.c: goshmd, the goshm daemon: options, start-up, the event loop, shutdown.
 *
 * Overview: shm/overview.h. Who owns what in this process:
 *   main thread   the libevent loop: control plane (daemon/ctl.c), signals,
 *                 the 100 ms housekeeping timer (notices, background sweep,
 *                 scavenger), --metrics (daemon/metrics.c). Owns the
 *                 listening sockets.
 *   data plane    its own thread (daemon/dataplane.c): the client rings.
 *   heap_lock     the only lock: daemon/heap.h is single-threaded, so both
 *                 threads call the heap only while holding it.
 * Start-up order: options, socket (so a second daemon fails before it costs
 * anything), heap, data plane, control plane, metrics, then READY=1 to
 * systemd.
 * Shutdown runs it backwards: stop accepting and reclaim every slot, stop
 * the data plane, destroy the heap, remove the socket.
 */
#define _GNU_SOURCE
#include <errno.h>        /* errno */
#include <event2/event.h> /* event_base, evsignal_new */
#include <pthread.h>      /* pthread_mutex_t, pthread_sigmask */
#include <signal.h>       /* SIGTERM, SIGINT, SIGPIPE */
#include <stddef.h>       /* offsetof */
#include <stdio.h>        /* fprintf, snprintf */
#include <stdlib.h>       /* getenv */
#include <string.h>       /* strlen, strerror */
#include <sys/resource.h>  /* getrlimit, setrlimit */
#include <sys/prctl.h>    /* prctl, PR_SET_DUMPABLE */
#include <sys/socket.h>   /* socket, sendto */
#include <sys/un.h>       /* sockaddr_un */
#include <unistd.h>       /* close, getpid */

#include "clock.h"
#include "config.h"
#include "ctl.h"
#include "dataplane.h"
#include "heap.h"
#include "bufref.h"        /* gs_heap_bufref_tick */
#include "namedir.h"       /* gs_heap_names_set_limit */
#include "log.h"
#include "metrics.h"
#include "persist.h"

#ifndef GOSHM_VERSION
#define GOSHM_VERSION "unknown"
#endif

#define HOUSEKEEPING_MS 100      /* notices, background sweep, scavenger */
#define BGSWEEP_BUDGET 4096u     /* spans swept per tick */

typedef struct gs_daemon {
    gs_config_t cfg;
    struct event_base *base;
    gs_ctl_socket_t sock;
    gs_heap_t *heap;
    pthread_mutex_t heap_lock;
    gs_dataplane_t *dp;
    gs_ctl_t *ctl;
    gs_metrics_t *metrics;      /* --metrics, or NULL */
    struct event *sigterm, *sigint, *tick;
    int stop_signal;
    bool persistent;      /* the heap outlives us: state directory or fd store */
    bool adopted;         /* ... and we adopted it from a previous goshmd */
} gs_daemon_t;

/* ---- sd_notify, without libsystemd ----------------------------------------- */

/* Send one state string to $NOTIFY_SOCKET (a path, or an abstract name when
 * it starts with '@'). Failures are logged and otherwise ignored: systemd
 * notices a missing READY=1 on its own. */
static void sd_notify_send(const char *state)
{
    const char *e = getenv("NOTIFY_SOCKET");
    if (!e || !*e) return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(e);
    if ((e[0] != '/' && e[0] != '@') || len >= sizeof sa.sun_path) {
        gs_log_warn("NOTIFY_SOCKET=%s: unsupported address", e);
        return;
    }
    memcpy(sa.sun_path, e, len);
    if (e[0] == '@') sa.sun_path[0] = '\0';
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        gs_log_warn("sd_notify: socket: %s", strerror(errno));
        return;
    }
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
        gs_log_warn("sd_notify to %s: %s", e, strerror(errno));
    close(fd);
}

/* ---- event callbacks ---------------------------------------------------------- */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    gs_daemon_t *d = arg;
    if (d->stop_signal) return;
    d->stop_signal = (int)sig;
    gs_log_info("%s received, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    event_base_loopbreak(d->base);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    gs_daemon_t *d = arg;
    pthread_mutex_lock(&d->heap_lock);
    uint32_t notices = 0;
    uint32_t swept = gs_heap_bgsweep(d->heap, BGSWEEP_BUDGET, &notices); /* drains first */
    uint64_t released = gs_heap_scavenge_tick(d->heap, gs_heap_scavenge_delay(d->heap));
    /* A client may have fallocated memory the heap never committed
     * (daemon/reconcile.c): give it back. */
    uint64_t excess = gs_heap_reconcile(d->heap);
    uint32_t reaped = d->adopted ? gs_heap_orphans_reap(d->heap) : 0;
    /* Buffer references of departed clients that a live process's lock
     * kept us from dropping (daemon/bufref.c). */
    gs_heap_bufref_tick(d->heap);
    pthread_mutex_unlock(&d->heap_lock);
    if (reaped) gs_log_info("reclaimed %u slots of processes that died before resuming them", reaped);
    if (excess) {
        /* At most one line per 10 s: a client could repeat this every tick. */
        static uint64_t last_ns;
        uint64_t now = gs_now_ns();
        if (!last_ns || now - last_ns > UINT64_C(10000000000)) {
            last_ns = now;
            gs_log_warn("the data memfd held %llu bytes the heap never committed (a client's fallocate); "
                        "punched them again", (unsigned long long)excess);
        }
    }
    if (released || (gs_log_enabled(GS_LOG_DEBUG) && (notices || swept)))
        gs_log_debug("housekeeping: %u notices, %u spans swept, %llu bytes released", notices, swept,
                     (unsigned long long)released);
}

/* ---- start and stop ------------------------------------------------------------ */

static void daemon_shutdown(gs_daemon_t *d)
{
    gs_metrics_stop(d->metrics); /* before the control plane it renders with */
    d->metrics = NULL;
    /* A heap that outlives us keeps its clients' slots for the next daemon;
     * else every slot is reclaimed. */
    if (d->persistent && d->ctl) gs_ctl_keep_slots(d->ctl);
    gs_ctl_stop(d->ctl); /* stop accepting */
    d->ctl = NULL;
    if (d->tick) event_free(d->tick);
    if (d->sigterm) event_free(d->sigterm);
    if (d->sigint) event_free(d->sigint);
    d->tick = d->sigterm = d->sigint = NULL;
    if (d->dp) gs_dp_stop(d->dp);
    d->dp = NULL;
    gs_heap_destroy(d->heap);
    d->heap = NULL;
    gs_ctl_socket_close(&d->sock);
    if (d->base) event_base_free(d->base);
    d->base = NULL;
    pthread_mutex_destroy(&d->heap_lock);
    gs_config_free(&d->cfg);
}

/* The heap: the one systemd kept for us, the one in the state directory,
 * or a new one. */
static int open_heap(gs_daemon_t *d, int store_data, int store_meta)
{
    char err[1024];
    gs_heap_config_t hc = {
        .size = d->cfg.size,
        .max_slots = d->cfg.max_clients,
        .scavenge_delay_ns = (uint64_t)d->cfg.scavenge_delay_ms * 1000000u,
        .persistent = d->cfg.state_dir || d->cfg.fd_store || store_data >= 0,
    };
    d->persistent = hc.persistent;
    uint64_t t0 = gs_now_ns();
    if (store_data >= 0 && !d->cfg.fresh) {
        d->heap = gs_heap_adopt(&hc, store_data, store_meta, err, sizeof err);
        if (!d->heap) {
            gs_log_error("the heap in systemd's fd store is refused: %s (left as it is; --fresh starts anew)", err);
            return -1;
        }
        d->adopted = true;
    } else if (d->cfg.state_dir) {
        if (store_data >= 0) {
            close(store_data);
            close(store_meta);
        }
        if (gs_persist_open(d->cfg.state_dir, d->cfg.fresh, &hc, &d->heap, &d->adopted, err, sizeof err) != 0) {
            gs_log_error("%s", err);
            return -1;
        }
    } else {
        if (store_data >= 0) { /* --fresh: systemd's copy is dropped with these */
            close(store_data);
            close(store_meta);
        }
        d->heap = gs_heap_create(&hc, err, sizeof err);
        if (!d->heap) {
            gs_log_error("cannot create the heap (%llu bytes): %s", (unsigned long long)d->cfg.size, err);
            return -1;
        }
    }
    if (d->adopted) {
        uint32_t orphans = 0, reclaimed = 0;
        gs_heap_adopted_ns(d->heap, &orphans, &reclaimed);
        gs_heap_stats_t st;
        gs_heap_stats(d->heap, &st);
        gs_log_info("adopted heap %016llx%s%s in %.1f ms: %llu bytes in use, %llu large objects; %u slots kept for "
                    "live clients, %u of dead ones reclaimed",
                    (unsigned long long)gs_heap_id(d->heap), d->cfg.state_dir ? " from " : " from systemd's fd store",
                    d->cfg.state_dir ? d->cfg.state_dir : "", (double)(gs_now_ns() - t0) / 1e6,
                    (unsigned long long)st.in_use_bytes, (unsigned long long)st.large_objects, orphans, reclaimed);
    } else {
        gs_log_info("new heap %016llx%s%s", (unsigned long long)gs_heap_id(d->heap),
                    d->cfg.state_dir ? " in " : "", d->cfg.state_dir ? d->cfg.state_dir : "");
    }
    if (d->cfg.fd_store || store_data >= 0) {
        int rc = gs_fdstore_put(gs_heap_data_fd(d->heap), gs_heap_meta_fd(d->heap));
        if (rc) gs_log_warn("cannot hand the heap to systemd's fd store: %s", strerror(-rc));
    }
    return 0;
}

static int daemon_start(gs_daemon_t *d)
{
    char err[512];
    /* Before the socket: systemd's fd store comes in the same LISTEN_FDS. */
    int store_data = -1, store_meta = -1;
    if (gs_fdstore_take(&store_data, &store_meta, err, sizeof err) < 0) {
        gs_log_error("%s", err);
        return -1;
    }
    if (gs_ctl_socket_open(&d->sock, &d->cfg, err, sizeof err) != 0) {
        gs_log_error("%s", err);
        if (store_data >= 0) {
            close(store_data);
            close(store_meta);
        }
        return -1;
    }
    if (open_heap(d, store_data, store_meta) != 0) return -1;
    gs_heap_set_quotas(d->heap, d->cfg.max_client_bytes, d->cfg.max_uid_bytes); /* daemon/quota.c */
    gs_heap_names_set_limit(d->heap, d->cfg.max_names_per_uid);                 /* daemon/names.c */

    gs_dataplane_config_t dc = {.force_epoll = d->cfg.force_epoll, .spin_us = d->cfg.spin_us};
    d->dp = gs_dp_start(d->heap, &d->heap_lock, &dc, err, sizeof err);
    if (!d->dp) {
        gs_log_error("cannot start the data plane: %s", err);
        return -1;
    }
    gs_log_info("data plane: %s%s", gs_dp_backend(d->dp), d->cfg.force_epoll ? " (--force-epoll)" : "");

    d->base = event_base_new();
    if (!d->base) {
        gs_log_error("libevent: cannot create an event base");
        return -1;
    }
    d->ctl = gs_ctl_start(d->base, d->sock.fd, &d->cfg, d->heap, &d->heap_lock, d->dp, err, sizeof err);
    if (!d->ctl) {
        gs_log_error("cannot start the control plane: %s", err);
        return -1;
    }
    if (d->cfg.metrics) {
        d->metrics = gs_metrics_start(d->base, d->cfg.metrics, gs_ctl_write_metrics, d->ctl, err, sizeof err);
        if (!d->metrics) {
            gs_log_error("%s", err);
            return -1;
        }
    }
    d->sigterm = evsignal_new(d->base, SIGTERM, on_signal, d);
    d->sigint = evsignal_new(d->base, SIGINT, on_signal, d);
    d->tick = event_new(d->base, -1, EV_PERSIST, on_tick, d);
    struct timeval tv = {0, HOUSEKEEPING_MS * 1000};
    if (!d->sigterm || !d->sigint || !d->tick || evsignal_add(d->sigterm, NULL) != 0 ||
        evsignal_add(d->sigint, NULL) != 0 || evtimer_add(d->tick, &tv) != 0) {
        gs_log_error("libevent: cannot watch signals and timers");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    gs_daemon_t d = {0};
    /* Not dumpable: processes of our own uid (clients, in the default setup)
     * can then neither ptrace us nor open /proc/PID/mem to write the heap's
     * private state, and no core file spills the heap. Before anything else,
     * so no descriptor or mapping exists while we are still dumpable. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        fprintf(stderr, "goshmd: warning: prctl(PR_SET_DUMPABLE, 0): %s\n", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    /* Descriptors: every client slot holds a few and every channel one
     * eventfd (daemon/names.c bounds those by this limit, keeping a
     * reserve). Raise the soft limit to the hard one (systemd's default
     * soft limit for a service is 1024, the hard one far above); goshmd
     * uses no select(). */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &nofile);
    }
    gs_config_init(&d.cfg);
    char err[512];
    switch (gs_config_parse(&d.cfg, argc, argv, err, sizeof err)) {
    case GS_CONFIG_RUN:
        break;
    case GS_CONFIG_HELP:
        gs_config_usage("goshmd");
        gs_config_free(&d.cfg);
        return 0;
    case GS_CONFIG_VERSION:
        printf("goshmd %s (protocol ABI %u)\n", GOSHM_VERSION, GS_ABI_VERSION);
        gs_config_free(&d.cfg);
        return 0;
    case GS_CONFIG_ERROR:
        fprintf(stderr, "goshmd: %s\nTry 'goshmd --help' for more information.\n", err);
        gs_config_free(&d.cfg);
        return 2;
    }
    gs_log_set_level((gs_log_level_t)d.cfg.log_level);
    pthread_mutex_init(&d.heap_lock, NULL);

    /* SIGTERM and SIGINT stay blocked until the loop runs: the data-plane
     * thread inherits the mask (so the main thread receives them), and a
     * signal during start-up waits for the loop instead of killing us
     * halfway. */
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, &old);

    if (daemon_start(&d) != 0) {
        daemon_shutdown(&d);
        return 1;
    }
    const char *where = d.sock.activated ? "the socket passed by systemd" : d.sock.path;
    gs_log_info("goshmd %s ready: heap of %llu bytes (sparse), up to %u clients, on %s", GOSHM_VERSION,
                (unsigned long long)d.cfg.size, d.cfg.max_clients, where);
    char *status = NULL;
    if (asprintf(&status, "READY=1\nSTATUS=serving a %llu-byte heap on %s (%s)",
                 (unsigned long long)d.cfg.size, where, gs_dp_backend(d.dp)) < 0)
        status = NULL;
    sd_notify_send(status ? status : "READY=1");
    free(status);

    pthread_sigmask(SIG_SETMASK, &old, NULL);
    int rc = event_base_dispatch(d.base);
    if (rc < 0) gs_log_error("the event loop failed");

    sd_notify_send("STOPPING=1");
    unsigned attached = d.ctl ? gs_ctl_attached(d.ctl) : 0;
    if (attached) gs_log_info("reclaiming %u client slots", attached);
    daemon_shutdown(&d);
    gs_log_info("stopped");
    return rc < 0 ? 1 : 0;
}
