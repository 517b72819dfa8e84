/* SPDX-License-Identifier: MIT */
/* top.c: goshmctl top: heap totals, busiest classes and clients, rates.
 *
 * Overview: shm/overview.h; contract: tools/top.h. One frame is a function of
 * two StatsReplies (this refresh and the one before) and the time between
 * them; the loop around it fetches, draws and waits for the next interval or
 * a key. Terminal handling is kept to what is needed: ICANON and ECHO off on
 * stdin (ISIG stays on, so Ctrl-C is a SIGINT), a clear-screen sequence
 * before each frame, and the saved settings put back on every way out.
 */
#define _GNU_SOURCE
#include "top.h"

#include <errno.h>    /* errno, EINTR */
#include <inttypes.h> /* PRIu64 */
#include <poll.h>     /* poll */
#include <signal.h>   /* sigaction */
#include <stdbool.h>  /* bool */
#include <stdint.h>   /* uint64_t */
#include <stdio.h>    /* printf */
#include <stdlib.h>   /* qsort, atexit */
#include <string.h>   /* memset */
#include <termios.h>  /* tcgetattr, tcsetattr */
#include <time.h>     /* clock_gettime */
#include <unistd.h>   /* isatty, read */

/* ---- the terminal ---------------------------------------------------------- */

static struct termios saved_termios;
static volatile sig_atomic_t raw_on;
static volatile sig_atomic_t quit_signal;

static void raw_restore(void)
{
    if (raw_on) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
        raw_on = 0;
    }
}

static void on_quit_signal(int sig) { quit_signal = sig; }

static bool raw_enter(void)
{
    if (tcgetattr(STDIN_FILENO, &saved_termios) != 0) return false;
    struct termios t = saved_termios;
    t.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) != 0) return false;
    raw_on = 1;
    atexit(raw_restore);
    return true;
}

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_quit_signal; /* no SA_RESTART: poll returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- one frame ---------------------------------------------------------------- */

static const char *human(char *buf, size_t n, uint64_t v)
{
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double d = (double)v;
    unsigned u = 0;
    while (d >= 1024.0 && u < 4) {
        d /= 1024.0;
        u++;
    }
    if (u == 0) snprintf(buf, n, "%" PRIu64 " B", v);
    else snprintf(buf, n, "%.1f %s", d, unit[u]);
    return buf;
}

static uint64_t sub(uint64_t now, uint64_t before) { return now >= before ? now - before : 0; }

typedef struct row {
    const void *cur;
    uint64_t key1, key2; /* sort: descending */
    double alloc_rate, free_rate;
} row_t;

static int row_cmp(const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    if (x->key1 != y->key1) return x->key1 > y->key1 ? -1 : 1;
    if (x->key2 != y->key2) return x->key2 > y->key2 ? -1 : 1;
    return 0;
}

static const Goshm__ClassStats *prev_class(const Goshm__StatsReply *p, uint32_t size)
{
    for (size_t i = 0; p && i < p->n_classes; i++)
        if (p->classes[i]->size == size) return p->classes[i];
    return NULL;
}

static const Goshm__ClientStats *prev_client(const Goshm__StatsReply *p, uint32_t pid, uint32_t slot)
{
    for (size_t i = 0; p && i < p->n_clients; i++)
        if (p->clients[i]->pid == pid && p->clients[i]->slot == slot) return p->clients[i];
    return NULL;
}

static void totals(const Goshm__StatsReply *r, uint64_t *allocs, uint64_t *frees)
{
    *allocs = *frees = 0;
    for (size_t i = 0; i < r->n_classes; i++) {
        *allocs += r->classes[i]->allocs;
        *frees += r->classes[i]->frees;
    }
    if (r->heap) {
        *allocs += r->heap->large_allocs;
        *frees += r->heap->large_frees;
    }
}

static void frame(FILE *f, const Goshm__StatsReply *r, const Goshm__StatsReply *prev, double dt,
                  const gs_top_options_t *opt, bool tty)
{
    static const Goshm__HeapStats zero = GOSHM__HEAP_STATS__INIT;
    const Goshm__HeapStats *h = r->heap ? r->heap : &zero;
    char a[32], b[32], c[32], d[32], e[32], g[32];
    bool rates = prev && dt > 0;
    uint64_t up = r->uptime_ms;
    fprintf(f, "goshm top: goshmd %s pid %u on %s, heap %016" PRIx64 ", up %" PRIu64 "h%02" PRIu64 "m%02" PRIu64
               "s, %zu clients%s\n",
            r->version && *r->version ? r->version : "?", r->daemon_pid, opt->where ? opt->where : "?", r->heap_id,
            up / 3600000u, up / 60000u % 60u, up / 1000u % 60u, r->n_clients, tty ? "  (q quits)" : "");
    fprintf(f, "heap: in use %s of %s, committed %s, idle %s, released %s, metadata %s\n",
            human(a, sizeof a, h->in_use_bytes), human(b, sizeof b, h->reserved_bytes),
            human(c, sizeof c, h->committed_bytes), human(d, sizeof d, h->idle_bytes),
            human(e, sizeof e, h->released_bytes), human(g, sizeof g, h->metadata_bytes));
    uint64_t ta, tf;
    totals(r, &ta, &tf);
    if (rates) {
        uint64_t pa, pf;
        totals(prev, &pa, &pf);
        fprintf(f, "rates: %.0f allocs/s, %.0f frees/s (over %.2f s); large objects: %" PRIu64 " live\n",
                (double)sub(ta, pa) / dt, (double)sub(tf, pf) / dt, dt, h->large_objects);
    } else {
        fprintf(f, "rates: - allocs/s, - frees/s (first refresh); large objects: %" PRIu64 " live\n",
                h->large_objects);
    }
    uint64_t departed = r->departed_other_bytes;
    for (size_t i = 0; i < r->n_departed; i++) departed += r->departed[i]->in_use_bytes;
    fprintf(f, "departed clients: %zu in the table, %s still live\n", r->n_departed,
            human(a, sizeof a, departed));

    /* Classes: busiest by allocation rate, then by bytes in use. */
    row_t *rows = calloc(r->n_classes + r->n_clients + 1, sizeof *rows);
    if (!rows) return;
    size_t n = 0;
    for (size_t i = 0; i < r->n_classes; i++) {
        const Goshm__ClassStats *cs = r->classes[i], *ps = rates ? prev_class(prev, cs->size) : NULL;
        uint64_t da = ps ? sub(cs->allocs, ps->allocs) : 0, df = ps ? sub(cs->frees, ps->frees) : 0;
        uint64_t bytes = cs->objects_in_use * cs->size;
        if (!bytes && !da && !df && !cs->spans) continue;
        rows[n++] = (row_t){cs, da, bytes, rates ? (double)da / dt : 0, rates ? (double)df / dt : 0};
    }
    qsort(rows, n, sizeof *rows, row_cmp);
    fprintf(f, "\n%8s %12s %12s %12s %12s %8s\n", "CLASS", "IN USE", "OBJECTS", "ALLOCS/S", "FREES/S", "SPANS");
    for (size_t i = 0; i < n && i < opt->rows; i++) {
        const Goshm__ClassStats *cs = rows[i].cur;
        if (rates)
            fprintf(f, "%8u %12s %12" PRIu64 " %12.0f %12.0f %8" PRIu64 "\n", cs->size,
                    human(a, sizeof a, cs->objects_in_use * cs->size), cs->objects_in_use, rows[i].alloc_rate,
                    rows[i].free_rate, cs->spans);
        else
            fprintf(f, "%8u %12s %12" PRIu64 " %12s %12s %8" PRIu64 "\n", cs->size,
                    human(a, sizeof a, cs->objects_in_use * cs->size), cs->objects_in_use, "-", "-", cs->spans);
    }
    if (n == 0) fprintf(f, "%8s\n", "(none)");

    /* Clients: by bytes in use, then by allocation rate. */
    n = 0;
    for (size_t i = 0; i < r->n_clients; i++) {
        const Goshm__ClientStats *cs = r->clients[i];
        const Goshm__ClientStats *ps = rates ? prev_client(prev, cs->pid, cs->slot) : NULL;
        uint64_t da = ps ? sub(cs->allocs + cs->large_allocs, ps->allocs + ps->large_allocs) : 0;
        uint64_t df = ps ? sub(cs->frees + cs->large_frees, ps->frees + ps->large_frees) : 0;
        rows[n++] = (row_t){cs, cs->in_use_bytes, da, ps ? (double)da / dt : -1, ps ? (double)df / dt : -1};
    }
    qsort(rows, n, sizeof *rows, row_cmp);
    fprintf(f, "\n%8s %5s %12s %12s %12s %8s\n", "PID", "SLOT", "IN USE", "ALLOCS/S", "FREES/S", "CACHED");
    for (size_t i = 0; i < n && i < opt->rows; i++) {
        const Goshm__ClientStats *cs = rows[i].cur;
        if (rows[i].alloc_rate >= 0)
            fprintf(f, "%8u %5u %12s %12.0f %12.0f %8" PRIu64 "\n", cs->pid, cs->slot,
                    human(a, sizeof a, cs->in_use_bytes), rows[i].alloc_rate, rows[i].free_rate, cs->cached_spans);
        else
            fprintf(f, "%8u %5u %12s %12s %12s %8" PRIu64 "\n", cs->pid, cs->slot,
                    human(a, sizeof a, cs->in_use_bytes), "-", "-", cs->cached_spans);
    }
    if (n == 0) fprintf(f, "%8s\n", "(none)");
    for (size_t i = 0; i < r->n_departed && i < opt->rows; i++)
        fprintf(f, "%8u %5s %12s  (departed %" PRIu64 " s ago)\n", r->departed[i]->pid, "-",
                human(a, sizeof a, r->departed[i]->in_use_bytes), r->departed[i]->gone_ms / 1000u);
    free(rows);
}

/* ---- the loop ----------------------------------------------------------------- */

/* Wait until `until` (monotonic seconds), a 'q', or a signal. true: quit. */
static bool wait_or_key(double until, bool keys)
{
    for (;;) {
        if (quit_signal) return true;
        double left = until - now_s();
        if (left <= 0) return false;
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        int r = poll(&p, keys ? 1 : 0, (int)(left * 1000.0) + 1);
        if (r < 0 && errno != EINTR) return false;
        if (r > 0 && (p.revents & POLLIN)) {
            char ch[16];
            ssize_t k = read(STDIN_FILENO, ch, sizeof ch);
            for (ssize_t i = 0; i < k; i++)
                if (ch[i] == 'q' || ch[i] == 'Q') return true;
            if (k == 0) keys = false; /* end of input: only time and signals now */
        } else if (r > 0) {
            keys = false; /* POLLHUP or POLLERR */
        }
    }
}

int gs_top_run(gs_top_fetch_fn fetch, void *arg, const gs_top_options_t *opt)
{
    bool tty = isatty(STDOUT_FILENO);
    bool keys = tty && isatty(STDIN_FILENO) && raw_enter();
    catch_signals();
    Goshm__Reply *prev = NULL;
    double prev_t = 0;
    int rc = 0;
    for (unsigned it = 0; opt->iterations == 0 || it < opt->iterations; it++) {
        if (quit_signal) break;
        Goshm__Reply *cur = NULL;
        char err[256] = "";
        double t = now_s();
        if (fetch(arg, &cur, err, sizeof err) != 0) {
            raw_restore();
            fprintf(stderr, "goshmctl top: %s\n", err);
            rc = 1;
            break;
        }
        if (cur->msg_case != GOSHM__REPLY__MSG_STATS || !cur->stats) {
            raw_restore();
            const char *why = cur->msg_case == GOSHM__REPLY__MSG_ERROR && cur->error && cur->error->message
                                  ? cur->error->message
                                  : "an unexpected reply";
            fprintf(stderr, "goshmctl top: goshmd refused: %s\n", why);
            goshm__reply__free_unpacked(cur, NULL);
            rc = 1;
            break;
        }
        if (tty) fputs("\033[H\033[2J", stdout);
        else if (it) fputc('\n', stdout);
        frame(stdout, cur->stats, prev ? prev->stats : NULL, prev ? t - prev_t : 0, opt, tty);
        fflush(stdout);
        if (ferror(stdout)) { /* e.g. the reader of the pipe went away */
            goshm__reply__free_unpacked(cur, NULL);
            rc = 1;
            break;
        }
        if (prev) goshm__reply__free_unpacked(prev, NULL);
        prev = cur;
        prev_t = t;
        if (opt->iterations && it + 1 >= opt->iterations) break;
        if (wait_or_key(t + opt->interval_ms / 1000.0, keys)) break;
    }
    if (prev) goshm__reply__free_unpacked(prev, NULL);
    raw_restore();
    if (quit_signal == SIGTERM || quit_signal == SIGHUP) {
        /* Die of the signal, as a well-behaved tool does, now that the
         * terminal is restored. */
        signal((int)quit_signal, SIG_DFL);
        raise((int)quit_signal);
    }
    return rc;
}
