/* SPDX-License-Identifier: MIT */
/* goshmctl.c: talk to a running goshmd: wait for it, print its statistics,
 * watch it (top: tools/top.c), take its heap profile.
 *
 * Overview: shm/overview.h; protocol: proto/goshm.proto; the daemon's side:
 * daemon/ctl.c. goshmctl only sends StatsRequest and ProfileRequest, which
 * need no Attach, so it never holds a client slot. Exit status: 0 success, 1 the daemon did
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
#include "prom.h"       /* gs_prom_write */
#include "sockpath.h"   /* gs_client_socket_path */
#include "top.h"        /* gs_top_run */

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
            "  stats --prometheus\n"
            "                 the same in the Prometheus text format (as goshmd --metrics)\n"
            "  top            a live view, refreshed every second: heap totals, busiest\n"
            "                 classes and clients, allocation and free rates. q or Ctrl-C\n"
            "                 quits. Plain snapshots when stdout is not a terminal;\n"
            "                 --iterations N stops after N refreshes.\n"
            "  profile -o FILE\n"
            "                 write the heap-wide sampled heap profile of every process\n"
            "                 that allocated from the heap (gzipped pprof profile.proto):\n"
            "                 go tool pprof -top FILE. Clients sample one allocation per\n"
            "                 $GOSHM_PROFILE_RATE bytes (default 524288; 0 turns it off).\n"
            "  names          list the heap's names directory: kind (name or chan), name,\n"
            "                 offset (channels: capacity and buffer id too), the uid that\n"
            "                 set it\n"
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
    int fd;                /* the descriptor a Profile reply carries, or -1 */
} query_t;

/* Connect, send a StatsRequest (or a ProfileRequest), wait for the reply
 * until `deadline` (proto/ctlclient.h, the protocol client libgoshm uses
 * too). */
static void query_msg(const char *path, double deadline, bool profile, query_t *q)
{
    q->reply = NULL;
    q->err = 0;
    q->step = NULL;
    q->fd = -1;
    int fd = gs_ctl_connect(path); /* length checked by the caller */
    if (fd < 0) {
        q->err = -fd;
        q->step = "connect";
        return;
    }
    Goshm__StatsRequest sreq = GOSHM__STATS_REQUEST__INIT;
    Goshm__ProfileRequest preq = GOSHM__PROFILE_REQUEST__INIT;
    Goshm__Request req = GOSHM__REQUEST__INIT;
    if (profile) {
        req.msg_case = GOSHM__REQUEST__MSG_PROFILE;
        req.profile = &preq;
    } else {
        req.msg_case = GOSHM__REQUEST__MSG_STATS;
        req.stats = &sreq;
    }
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
    rc = left <= 0 ? -ETIMEDOUT
                   : gs_ctl_recv(fd, &q->reply, profile ? &q->fd : NULL, profile ? 1 : 0, (int)(left * 1000.0) + 1);
    if (rc < 0) {
        q->err = -rc;
        q->step = rc == -ETIMEDOUT     ? "waiting for the reply"
                  : rc == -ECONNRESET  ? "recv (the daemon closed the connection)"
                  : rc == -EPROTO      ? "unpacking the reply"
                                       : "recv";
    }
    close(fd);
}

static void query_stats(const char *path, double deadline, query_t *q) { query_msg(path, deadline, false, q); }

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
           "\"notices\": %llu, \"bad_requests\": %llu, \"bad_ring_entries\": %llu, "
           "\"adopted\": %d, \"adopted_orphans\": %u, \"adopted_reclaimed\": %u, \"orphans\": %u},\n",
           U(h->reserved_bytes), U(h->committed_bytes), U(h->in_use_bytes), U(h->idle_bytes), U(h->released_bytes),
           U(h->metadata_bytes), U(h->grown_bytes), U(h->span_bytes), U(h->large_objects), U(h->large_allocs),
           U(h->large_frees), U(h->notices), U(h->bad_requests), U(h->bad_ring_entries),
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
               "\"large_allocs\": %llu, \"large_frees\": %llu, \"in_use_bytes\": %llu}",
               i ? "," : "", c->pid, c->slot, U(c->cached_spans), U(c->allocs), U(c->frees), U(c->large_allocs),
               U(c->large_frees), U(c->in_use_bytes));
    }
    printf("],\n \"departed\": [");
    for (size_t i = 0; i < r->n_departed; i++) {
        const Goshm__DepartedStats *d = r->departed[i];
        printf("%s\n  {\"pid\": %u, \"in_use_bytes\": %llu, \"gone_ms\": %llu}", i ? "," : "", d->pid,
               U(d->in_use_bytes), U(d->gone_ms));
    }
    printf("],\n \"departed_other_bytes\": %llu,\n", U(r->departed_other_bytes));
    printf(" \"daemon\": {\"pid\": %u, \"uptime_ms\": %llu, \"backend\": ", r->daemon_pid, U(r->uptime_ms));
    json_string(r->backend);
    printf(", \"version\": ");
    json_string(r->version);
    printf(", \"heap_id\": %llu, \"size_bytes\": %llu}}\n", U(r->heap_id), U(r->size_bytes));
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
    printf("goshmd %s pid %u on %s, up %lluh%02llum%02llu.%llus, data plane %s\n", r->version ? r->version : "?",
           r->daemon_pid, path, U(up / 3600000u), U(up / 60000u % 60u), U(up / 1000u % 60u), U(up / 100u % 10u),
           r->backend && *r->backend ? r->backend : "?");
    printf("heap id %016llx, configured size %llu bytes%s\n\n", U(r->heap_id), U(r->size_bytes),
           h->adopted ? ", adopted from a previous goshmd" : "");
    printf("heap\n");
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
        printf("  %8s %5s %14s %7s %14s %14s %12s %12s\n", "pid", "slot", "in use bytes", "cached", "allocs",
               "frees", "large allocs", "large frees");
        for (size_t i = 0; i < r->n_clients; i++) {
            const Goshm__ClientStats *c = r->clients[i];
            printf("  %8u %5u %14llu %7llu %14llu %14llu %12llu %12llu\n", c->pid, c->slot, U(c->in_use_bytes),
                   U(c->cached_spans), U(c->allocs), U(c->frees), U(c->large_allocs), U(c->large_frees));
        }
    }
    printf("\ndeparted clients that left live bytes: %zu\n", r->n_departed);
    for (size_t i = 0; i < r->n_departed; i++)
        printf("  pid %8u %14llu bytes, departed %llu s ago\n", r->departed[i]->pid, U(r->departed[i]->in_use_bytes),
               U(r->departed[i]->gone_ms / 1000u));
    if (r->departed_other_bytes)
        printf("  others       %14llu bytes (no longer in the table)\n", U(r->departed_other_bytes));
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

enum { FMT_HUMAN, FMT_JSON, FMT_PROM };

/* The names directory, page by page (NameList: no attach needed). */
static int cmd_names(const char *path, double timeout)
{
    double deadline = deadline_for(timeout);
    int fd = gs_ctl_connect(path);
    if (fd < 0) {
        fprintf(stderr, "goshmctl: cannot list names from goshmd on %s: connect: %s%s\n", path, strerror(-fd),
                hint(-fd));
        return 1;
    }
    uint32_t cursor = 0, n = 0;
    int rc = 0;
    do {
        Goshm__NameList m = GOSHM__NAME_LIST__INIT;
        m.cursor = cursor;
        Goshm__Request req = GOSHM__REQUEST__INIT;
        req.msg_case = GOSHM__REQUEST__MSG_NAME_LIST;
        req.name_list = &m;
        Goshm__Reply *rep = NULL;
        double left = deadline - now_s();
        int e = gs_ctl_send(fd, &req);
        if (!e) e = left <= 0 ? -ETIMEDOUT : gs_ctl_recv(fd, &rep, NULL, 0, (int)(left * 1000.0) + 1);
        if (e < 0) {
            fprintf(stderr, "goshmctl: cannot list names from goshmd on %s: %s%s\n", path, strerror(-e), hint(-e));
            rc = 1;
            break;
        }
        if (rep->msg_case == GOSHM__REPLY__MSG_ERROR) {
            rc = daemon_refused(rep, path);
            goshm__reply__free_unpacked(rep, NULL);
            break;
        }
        if (rep->msg_case != GOSHM__REPLY__MSG_NAME_LIST || !rep->name_list) {
            fprintf(stderr, "goshmctl: goshmd on %s sent an unexpected reply (%d)\n", path, (int)rep->msg_case);
            goshm__reply__free_unpacked(rep, NULL);
            rc = 1;
            break;
        }
        const Goshm__NameListReply *l = rep->name_list;
        if (cursor == 0) printf("%-4s  %-63s  %18s  %s\n", "KIND", "NAME", "OFFSET", "DETAILS");
        for (size_t i = 0; i < l->n_entries; i++) {
            const Goshm__NameEntry *e2 = l->entries[i];
            if (e2->kind == 2)
                printf("chan  %-63s  %18llu  cap %u id %016llx uid %u\n", e2->name, U(e2->off), e2->cap, U(e2->id),
                       e2->uid);
            else
                printf("name  %-63s  %18llu  uid %u\n", e2->name, U(e2->off), e2->uid);
            n++;
        }
        cursor = l->next_cursor;
        goshm__reply__free_unpacked(rep, NULL);
    } while (cursor);
    close(fd);
    if (!rc) printf("%u entries\n", n);
    if (fflush(stdout) != 0 || ferror(stdout)) rc = 1;
    return rc;
}

static int cmd_stats(const char *path, double timeout, int fmt)
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
        if (fmt == FMT_JSON)
            print_json(q.reply->stats);
        else if (fmt == FMT_PROM)
            gs_prom_write(stdout, q.reply->stats);
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

/* top's fetch (tools/top.h). */
typedef struct top_arg {
    const char *path;
    double timeout;
} top_arg_t;

static int top_fetch(void *arg, Goshm__Reply **out, char *err, size_t errlen)
{
    top_arg_t *t = arg;
    query_t q;
    query_stats(t->path, deadline_for(t->timeout), &q);
    if (!q.reply) {
        snprintf(err, errlen, "no statistics from goshmd on %s: %s: %s%s", t->path, q.step, strerror(q.err),
                 hint(q.err));
        return -1;
    }
    *out = q.reply;
    return 0;
}

static int cmd_top(const char *path, double timeout, unsigned iterations)
{
    top_arg_t t = {path, timeout};
    gs_top_options_t opt = {.interval_ms = 1000, .iterations = iterations, .rows = 10, .where = path};
    return gs_top_run(top_fetch, &t, &opt);
}

/* Copy the profile's memfd to `out` (through a temporary file in the same
 * directory, renamed at the end: nobody reads half a profile). */
static int cmd_profile(const char *path, double timeout, const char *out)
{
    query_t q;
    query_msg(path, deadline_for(timeout), true, &q);
    if (!q.reply) {
        fprintf(stderr, "goshmctl: cannot get the profile from goshmd on %s: %s: %s%s\n", path, q.step,
                strerror(q.err), hint(q.err));
        return 1;
    }
    int rc = 1;
    if (q.reply->msg_case == GOSHM__REPLY__MSG_ERROR) {
        rc = daemon_refused(q.reply, path);
        goto done;
    }
    if (q.reply->msg_case != GOSHM__REPLY__MSG_PROFILE || !q.reply->profile || q.fd < 0) {
        fprintf(stderr, "goshmctl: goshmd on %s sent an unexpected reply (%d)\n", path, (int)q.reply->msg_case);
        goto done;
    }
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid()) >= (int)sizeof tmp) {
        fprintf(stderr, "goshmctl: output path too long\n");
        goto done;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "goshmctl: %s: %s\n", tmp, strerror(errno));
        goto done;
    }
    uint64_t left = q.reply->profile->bytes, off = 0;
    char buf[65536];
    while (left) {
        ssize_t n = pread(q.fd, buf, left < sizeof buf ? left : sizeof buf, (off_t)off);
        if (n <= 0) break;
        if (fwrite(buf, 1, (size_t)n, f) != (size_t)n) break;
        left -= (uint64_t)n;
        off += (uint64_t)n;
    }
    if (fclose(f) != 0 || left) {
        fprintf(stderr, "goshmctl: writing %s failed\n", tmp);
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, out) != 0) {
        fprintf(stderr, "goshmctl: %s: %s\n", out, strerror(errno));
        unlink(tmp);
        goto done;
    }
    const Goshm__ProfileReply *p = q.reply->profile;
    fprintf(stderr, "goshmctl: wrote %s: %llu bytes, %llu stacks, %llu live samples (%llu taken, %llu dropped)\n",
            out, U(p->bytes), U(p->stacks), U(p->live_samples), U(p->samples), U(p->dropped));
    rc = 0;
done:
    if (q.fd >= 0) close(q.fd);
    goshm__reply__free_unpacked(q.reply, NULL);
    return rc;
}

int main(int argc, char **argv)
{
    const char *socket_opt = NULL, *command = NULL;
    double timeout = DEFAULT_TIMEOUT_S;
    int fmt = FMT_HUMAN;
    const char *output = NULL;
    long iterations = -1;
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
        if (strcmp(a, "--json") == 0 || strcmp(a, "--prometheus") == 0) {
            if (fmt != FMT_HUMAN) return usage_error("one of --json and --prometheus", NULL);
            fmt = a[2] == 'j' ? FMT_JSON : FMT_PROM;
            continue;
        }
        if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            if (i + 1 >= argc || !*argv[i + 1]) return usage_error("option needs a file", a);
            output = argv[++i];
            continue;
        }
        if (strcmp(a, "--iterations") == 0) {
            if (i + 1 >= argc) return usage_error("option needs a value", a);
            char *end;
            errno = 0;
            iterations = strtol(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || iterations < 1 || iterations > 1000000000L)
                return usage_error("bad --iterations (want a count, 1 or more)", argv[i]);
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
    if (!command) return usage_error("no command (wait, stats, top, profile or names)", NULL);
    if (strcmp(command, "wait") != 0 && strcmp(command, "stats") != 0 && strcmp(command, "top") != 0 &&
        strcmp(command, "profile") != 0 && strcmp(command, "names") != 0)
        return usage_error("unknown command", command);
    if (fmt != FMT_HUMAN && strcmp(command, "stats") != 0)
        return usage_error("--json and --prometheus go with stats", NULL);
    if (iterations > 0 && strcmp(command, "top") != 0) return usage_error("--iterations goes with top", NULL);
    if (strcmp(command, "profile") == 0 && !output) return usage_error("profile needs -o FILE", NULL);
    if (output && strcmp(command, "profile") != 0) return usage_error("-o goes with profile", NULL);

    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (gs_client_socket_path(socket_opt, path, sizeof path) != 0) {
        fprintf(stderr, "goshmctl: socket path too long (at most %zu bytes)\n", sizeof path - 1);
        return 2;
    }
    if (strcmp(command, "wait") == 0) return cmd_wait(path, timeout);
    if (strcmp(command, "top") == 0) return cmd_top(path, timeout, iterations > 0 ? (unsigned)iterations : 0);
    if (strcmp(command, "profile") == 0) return cmd_profile(path, timeout, output);
    if (strcmp(command, "names") == 0) return cmd_names(path, timeout);
    return cmd_stats(path, timeout, fmt);
}
