/* SPDX-License-Identifier: MIT */
/* goshmctl.c: talk to a running goshmd: wait for it, print its statistics.
 *
 * Overview: shm/overview.h; protocol: proto/goshm.proto; the daemon's side:
 * daemon/ctl.c. goshmctl only sends StatsRequest, which needs no Attach, so
 * it never holds a client slot. Exit status: 0 success, 1 the daemon did
 * not answer (or refused), 2 usage error.
 */
#define _GNU_SOURCE
#include <errno.h>      /* errno */
#include <math.h>       /* isfinite */
#include <stdbool.h>    /* bool */
#include <stdint.h>     /* uint64_t */
#include <stdio.h>      /* printf */
#include <stdlib.h>     /* strtod, malloc */
#include <string.h>     /* strcmp, strerror */
#include <sys/un.h>     /* sockaddr_un: the path limit */
#include <time.h>       /* nanosleep */
#include <unistd.h>     /* close */

#include "clock.h"      /* gs_now_ns */
#include "ctlclient.h"  /* gs_ctl_connect, gs_ctl_send, gs_ctl_recv */
#include "goshm.pb-c.h"
#include "sockpath.h"   /* gs_client_socket_path */

#ifndef GOSHM_VERSION
#define GOSHM_VERSION "unknown"
#endif

#define WAIT_RETRY_MS 50
#define DEFAULT_TIMEOUT_S 10.0
/* --timeout 0: one attempt, no retry; the attempt still waits this long for
 * the daemon's reply (a live daemon answers in well under a millisecond). */
#define ONCE_REPLY_S 1.0

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: goshmctl [--socket PATH] [--timeout SEC] COMMAND\n"
            "Query a running goshmd.\n"
            "\n"
            "Commands:\n"
            "  wait           wait until the daemon answers (retrying every %d ms); exit 0\n"
            "                 when it does, 1 after the timeout\n"
            "  stats          print the heap's statistics: totals, size classes with\n"
            "                 activity, attached clients\n"
            "  stats --json   the same as one JSON object (all numbers are integers)\n"
            "\n"
            "Options:\n"
            "  --socket PATH  the daemon's control socket. Default: $GOSHM_SOCKET if set, else\n"
            "                 /run/goshm/goshmd.sock for root, $XDG_RUNTIME_DIR/goshm/goshmd.sock\n"
            "                 if that is set, else /tmp/goshm-$UID/goshmd.sock\n"
            "  --timeout SEC  give up after SEC seconds (fractions allowed, at most one year).\n"
            "                 0 tries once, without retrying (waiting up to %.0f s for the\n"
            "                 reply). Default %.0f.\n"
            "  -h, --help     show this help and exit\n"
            "  --version      show the version and exit\n"
            "\n"
            "Exit status: 0 success, 1 the daemon did not answer or refused, 2 a usage\n"
            "error (the message names the option or value).\n"
            "\n"
            "Example:\n"
            "  goshmd --socket /tmp/demo.sock --size 1G &\n"
            "  goshmctl --socket /tmp/demo.sock wait && goshmctl --socket /tmp/demo.sock stats --json\n",
            WAIT_RETRY_MS, ONCE_REPLY_S, DEFAULT_TIMEOUT_S);
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "goshmctl: %s%s%s\nTry 'goshmctl --help' for more information.\n", what, arg ? ": " : "",
            arg ? arg : "");
    return 2;
}

static double now_s(void) { return (double)gs_now_ns() * 1e-9; }

/* ---- one exchange ------------------------------------------------------------ */

typedef struct query {
    Goshm__Reply *reply;   /* unpacked, or NULL */
    int err;               /* errno of the failure */
    const char *step;      /* what failed: "connect", "send", ... */
} query_t;

/* Connect, send a StatsRequest, wait for the reply until `deadline`
 * (proto/ctlclient.h, the protocol client libgoshm uses too). */
static void query_stats(const char *path, double deadline, query_t *q)
{
    q->reply = NULL;
    q->err = 0;
    q->step = NULL;
    int fd = gs_ctl_connect(path); /* length checked by the caller */
    if (fd < 0) {
        q->err = -fd;
        q->step = "connect";
        return;
    }
    Goshm__StatsRequest sreq = GOSHM__STATS_REQUEST__INIT;
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_STATS;
    req.stats = &sreq;
    int rc = gs_ctl_send(fd, &req);
    /* A daemon that refuses us (EPERM) answers at once and hangs up, maybe
     * before our request went out: its Error is still queued. */
    if (rc && rc != -EPIPE && rc != -ECONNRESET) {
        q->err = -rc;
        q->step = "send";
        close(fd);
        return;
    }
    double left = deadline - now_s();
    rc = left <= 0 ? -ETIMEDOUT : gs_ctl_recv(fd, &q->reply, NULL, 0, (int)(left * 1000.0) + 1);
    if (rc < 0) {
        q->err = -rc;
        q->step = rc == -ETIMEDOUT     ? "waiting for the reply"
                  : rc == -ECONNRESET  ? "recv (the daemon closed the connection)"
                  : rc == -EPROTO      ? "unpacking the reply"
                                       : "recv";
    }
    close(fd);
}

/* ---- output ------------------------------------------------------------------ */

static void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

#define U(x) ((unsigned long long)(x))

static void print_json(const Goshm__StatsReply *r)
{
    static const Goshm__HeapStats zero = GOSHM__HEAP_STATS__INIT;
    const Goshm__HeapStats *h = r->heap ? r->heap : &zero;
    printf("{\"heap\": {\"reserved_bytes\": %llu, \"committed_bytes\": %llu, \"in_use_bytes\": %llu, "
           "\"idle_bytes\": %llu, \"released_bytes\": %llu, \"metadata_bytes\": %llu, \"grown_bytes\": %llu, "
           "\"span_bytes\": %llu, \"large_objects\": %llu, \"large_allocs\": %llu, \"large_frees\": %llu, "
           "\"notices\": %llu, \"bad_requests\": %llu, \"bad_ring_entries\": %llu, \"heap_id\": %llu, "
           "\"adopted\": %d, \"adopted_orphans\": %u, \"adopted_reclaimed\": %u, \"orphans\": %u},\n",
           U(h->reserved_bytes), U(h->committed_bytes), U(h->in_use_bytes), U(h->idle_bytes), U(h->released_bytes),
           U(h->metadata_bytes), U(h->grown_bytes), U(h->span_bytes), U(h->large_objects), U(h->large_allocs),
           U(h->large_frees), U(h->notices), U(h->bad_requests), U(h->bad_ring_entries), U(h->heap_id),
           h->adopted ? 1 : 0, h->adopted_orphans, h->adopted_reclaimed, h->orphans);
    printf(" \"classes\": [");
    for (size_t i = 0; i < r->n_classes; i++) {
        const Goshm__ClassStats *c = r->classes[i];
        printf("%s\n  {\"size\": %u, \"objects_in_use\": %llu, \"allocs\": %llu, \"frees\": %llu, \"spans\": %llu}",
               i ? "," : "", c->size, U(c->objects_in_use), U(c->allocs), U(c->frees), U(c->spans));
    }
    printf("],\n \"clients\": [");
    for (size_t i = 0; i < r->n_clients; i++) {
        const Goshm__ClientStats *c = r->clients[i];
        printf("%s\n  {\"pid\": %u, \"slot\": %u, \"cached_spans\": %llu, \"allocs\": %llu, \"frees\": %llu, "
               "\"large_allocs\": %llu, \"large_frees\": %llu}",
               i ? "," : "", c->pid, c->slot, U(c->cached_spans), U(c->allocs), U(c->frees), U(c->large_allocs),
               U(c->large_frees));
    }
    printf("],\n \"daemon\": {\"pid\": %u, \"uptime_ms\": %llu, \"backend\": ", r->daemon_pid, U(r->uptime_ms));
    json_string(r->backend);
    printf("}}\n");
}

static void bytes_row(const char *name, uint64_t v)
{
    printf("  %-18s %12.1f MiB %20llu bytes\n", name, (double)v / (1024.0 * 1024.0), U(v));
}

static void print_human(const Goshm__StatsReply *r, const char *path)
{
    static const Goshm__HeapStats zero = GOSHM__HEAP_STATS__INIT;
    const Goshm__HeapStats *h = r->heap ? r->heap : &zero;
    uint64_t up = r->uptime_ms;
    printf("goshmd pid %u on %s, up %lluh%02llum%02llu.%llus, data plane %s\n\n", r->daemon_pid, path,
           U(up / 3600000u), U(up / 60000u % 60u), U(up / 1000u % 60u), U(up / 100u % 10u),
           r->backend && *r->backend ? r->backend : "?");
    printf("heap %016llx%s\n", U(h->heap_id), h->adopted ? ", adopted from a previous goshmd" : "");
    if (h->adopted)
        printf("  %-18s %u slots of live processes kept (%u not resumed yet), %u of dead ones reclaimed\n",
               "adoption", h->adopted_orphans, h->orphans, h->adopted_reclaimed);
    bytes_row("reserved", h->reserved_bytes);
    bytes_row("grown", h->grown_bytes);
    bytes_row("committed", h->committed_bytes);
    bytes_row("in use", h->in_use_bytes);
    bytes_row("in spans", h->span_bytes);
    bytes_row("idle", h->idle_bytes);
    bytes_row("released", h->released_bytes);
    bytes_row("metadata", h->metadata_bytes);
    printf("  %-18s %llu live, %llu allocated, %llu freed\n", "large objects", U(h->large_objects),
           U(h->large_allocs), U(h->large_frees));
    printf("  %-18s %llu notices, %llu bad requests, %llu bad ring entries\n", "events", U(h->notices),
           U(h->bad_requests), U(h->bad_ring_entries));

    size_t active = 0;
    for (size_t i = 0; i < r->n_classes; i++) {
        const Goshm__ClassStats *c = r->classes[i];
        active += c->objects_in_use || c->allocs || c->frees || c->spans;
    }
    printf("\nsize classes: %zu of %zu with activity\n", active, r->n_classes);
    if (active) {
        printf("  %8s %14s %14s %14s %8s\n", "size", "in use", "allocs", "frees", "spans");
        for (size_t i = 0; i < r->n_classes; i++) {
            const Goshm__ClassStats *c = r->classes[i];
            if (!(c->objects_in_use || c->allocs || c->frees || c->spans)) continue;
            printf("  %8u %14llu %14llu %14llu %8llu\n", c->size, U(c->objects_in_use), U(c->allocs), U(c->frees),
                   U(c->spans));
        }
    }
    printf("\nclients: %zu attached\n", r->n_clients);
    if (r->n_clients) {
        printf("  %8s %5s %7s %14s %14s %12s %12s\n", "pid", "slot", "cached", "allocs", "frees", "large allocs",
               "large frees");
        for (size_t i = 0; i < r->n_clients; i++) {
            const Goshm__ClientStats *c = r->clients[i];
            printf("  %8u %5u %7llu %14llu %14llu %12llu %12llu\n", c->pid, c->slot, U(c->cached_spans),
                   U(c->allocs), U(c->frees), U(c->large_allocs), U(c->large_frees));
        }
    }
}

/* ---- commands ------------------------------------------------------------------ */

static const char *hint(int err)
{
    if (err == ENOENT || err == ECONNREFUSED) return " (is goshmd running? see --socket and $GOSHM_SOCKET)";
    if (err == EACCES) return " (no permission: the daemon's --allow-uid/--allow-gid and the socket's mode decide)";
    return "";
}

/* The reply is an Error: say so; returns 1. */
static int daemon_refused(const Goshm__Reply *rep, const char *path)
{
    const Goshm__Error *e = rep->error;
    const char *name = e ? strerrorname_np(e->code) : NULL;
    fprintf(stderr, "goshmctl: goshmd on %s refused: %s (%s)\n", path, e && e->message ? e->message : "?",
            name ? name : "unknown error");
    return 1;
}

/* The deadline of one round trip: --timeout 0 still lets the reply arrive. */
static double deadline_for(double timeout) { return now_s() + (timeout > 0 ? timeout : ONCE_REPLY_S); }

static int cmd_wait(const char *path, double timeout)
{
    double deadline = deadline_for(timeout);
    query_t q = {0};
    for (;;) {
        query_stats(path, deadline, &q);
        if (q.reply && q.reply->msg_case == GOSHM__REPLY__MSG_STATS) {
            goshm__reply__free_unpacked(q.reply, NULL);
            return 0;
        }
        if (q.reply) {
            int rc = daemon_refused(q.reply, path); /* it answers, but will not serve us */
            goshm__reply__free_unpacked(q.reply, NULL);
            return rc;
        }
        double left = deadline - now_s();
        if (timeout == 0 || left <= 0) break; /* 0: try once */
        double nap = left < WAIT_RETRY_MS / 1000.0 ? left : WAIT_RETRY_MS / 1000.0;
        struct timespec ts = {(time_t)nap, (long)((nap - (double)(time_t)nap) * 1e9)};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "goshmctl: no answer from goshmd on %s after %g s (last error: %s: %s)%s\n", path, timeout,
            q.step ? q.step : "?", strerror(q.err), hint(q.err));
    return 1;
}

static int cmd_stats(const char *path, double timeout, bool json)
{
    query_t q;
    query_stats(path, deadline_for(timeout), &q);
    if (!q.reply) {
        fprintf(stderr, "goshmctl: cannot get statistics from goshmd on %s: %s: %s%s\n", path, q.step,
                strerror(q.err), hint(q.err));
        return 1;
    }
    int rc = 0;
    if (q.reply->msg_case == GOSHM__REPLY__MSG_STATS && q.reply->stats) {
        if (json)
            print_json(q.reply->stats);
        else
            print_human(q.reply->stats, path);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "goshmctl: writing the statistics: %s\n", strerror(errno));
            rc = 1;
        }
    } else if (q.reply->msg_case == GOSHM__REPLY__MSG_ERROR) {
        rc = daemon_refused(q.reply, path);
    } else {
        fprintf(stderr, "goshmctl: goshmd on %s sent an unexpected reply (%d)\n", path, (int)q.reply->msg_case);
        rc = 1;
    }
    goshm__reply__free_unpacked(q.reply, NULL);
    return rc;
}

int main(int argc, char **argv)
{
    const char *socket_opt = NULL, *command = NULL;
    double timeout = DEFAULT_TIMEOUT_S;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("goshmctl %s\n", GOSHM_VERSION);
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            json = true;
            continue;
        }
        if (strcmp(a, "--socket") == 0 || strcmp(a, "--timeout") == 0) {
            if (i + 1 >= argc) return usage_error("option needs a value", a);
            val = argv[++i];
        } else if (strncmp(a, "--socket=", 9) == 0 || strncmp(a, "--timeout=", 10) == 0) {
            val = strchr(a, '=') + 1;
        }
        if (val) {
            if (a[2] == 's') {
                if (!*val) return usage_error("empty socket path", NULL);
                socket_opt = val;
            } else {
                char *end;
                errno = 0;
                timeout = strtod(val, &end);
                if (errno || end == val || *end || !isfinite(timeout) || timeout < 0 || timeout > 86400.0 * 365)
                    return usage_error("bad --timeout (want seconds, e.g. 10 or 0.5)", val);
            }
            continue;
        }
        if (a[0] == '-') return usage_error("unknown option", a);
        if (command) return usage_error("more than one command", a);
        command = a;
    }
    if (!command) return usage_error("no command (wait or stats)", NULL);
    if (strcmp(command, "wait") != 0 && strcmp(command, "stats") != 0) return usage_error("unknown command", command);
    if (json && strcmp(command, "stats") != 0) return usage_error("--json goes with stats", NULL);

    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (gs_client_socket_path(socket_opt, path, sizeof path) != 0) {
        fprintf(stderr, "goshmctl: socket path too long (at most %zu bytes)\n", sizeof path - 1);
        return 2;
    }
    if (strcmp(command, "wait") == 0) return cmd_wait(path, timeout);
    return cmd_stats(path, timeout, json);
}
