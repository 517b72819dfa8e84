/* SPDX-License-Identifier: MIT */
/* Description: the heap's figures where users read them: goshmd --metrics
 * (an HTTP GET of /metrics, parsed and format-checked), goshmctl stats
 * --prometheus (the same builder) and stats --json (per-client in_use_bytes,
 * departed clients, version, heap id, configured size, uptime). A client
 * allocates 10 MiB: the heap's and that client's in-use figures rise by at
 * least 10 MiB on both paths, and fall back when it frees. A client that
 * exits holding 4 MiB is listed as departed under its pid until another
 * process frees its objects. Also: 404 off /metrics, 405 for POST, and
 * --metrics without a host is refused.
 *
 * Usage: test-metrics GOSHMD GOSHMCTL
 *        test-metrics --holder SOCKET   (internal role: commands on stdin)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "check.h"
#include "goshm/goshm.h"
#include "obs.h"

#define MIB (1024.0 * 1024.0)

/* The holder: "a N" allocates N MiB (half 1 MiB objects, half 1 KiB
 * objects) and prints their offsets then "ok"; "f" frees them all, "ok";
 * "x" exits at once without detaching (a departed client). */
static int holder(const char *sock)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 3;
    setvbuf(stdout, NULL, _IOLBF, 0);
    void **objs = NULL;
    size_t n = 0;
    char cmd[64];
    while (fgets(cmd, sizeof cmd, stdin)) {
        if (cmd[0] == 'a') {
            unsigned mib = (unsigned)atoi(cmd + 2);
            size_t large = mib / 2u, small = (size_t)(mib - large) * 1024u;
            objs = realloc(objs, (n + large + small) * sizeof *objs);
            for (size_t i = 0; i < large; i++) objs[n++] = goshm_malloc(h, 1u << 20);
            for (size_t i = 0; i < small; i++) objs[n++] = goshm_malloc(h, 1024);
            for (size_t i = 0; i < n; i++) {
                if (!objs[i]) return 4;
                memset(objs[i], 0x5a, 64);
                printf("%" PRIu64 "\n", (uint64_t)goshm_off(h, objs[i]));
            }
            printf("ok\n");
        } else if (cmd[0] == 'f') {
            for (size_t i = 0; i < n; i++) goshm_free(h, objs[i]);
            n = 0;
            printf("ok\n");
        } else if (cmd[0] == 'x') {
            _exit(0);
        }
    }
    free(objs);
    goshm_detach(h);
    return 0;
}

typedef struct child {
    pid_t pid;
    FILE *in, *out;
} child_t;

static int child_start(child_t *c, const char *sock)
{
    c->pid = obs_child_start("test-metrics", "--holder", sock, NULL, &c->in, &c->out);
    return c->pid < 0 ? -1 : 0;
}

/* Send a command; collect offsets until "ok". Returns how many offsets. */
static size_t child_cmd(child_t *c, const char *cmd, uint64_t *offs, size_t max)
{
    fprintf(c->in, "%s\n", cmd);
    fflush(c->in);
    size_t n = 0;
    char line[64];
    while (fgets(line, sizeof line, c->out)) {
        if (strncmp(line, "ok", 2) == 0) return n;
        if (n < max) offs[n] = strtoull(line, NULL, 10);
        n++;
    }
    return (size_t)-1;
}

static char *metrics_get(unsigned port)
{
    char *resp, *body;
    int code = obs_http(port, "GET", "/metrics", &resp, &body);
    if (code != 200) {
        fprintf(stderr, "GET /metrics: %d\n%s\n", code, resp ? resp : "");
        free(resp);
        return NULL;
    }
    CHECK(strstr(resp, "version=0.0.4") != NULL); /* the Content-Type */
    char *copy = strdup(body);
    free(resp);
    return copy;
}

static char *ctl(const char *goshmctl, const char *sock, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --socket %s %s", goshmctl, sock, args);
    int st;
    char *out = obs_run(cmd, &st);
    CHECK_MSG(st == 0, "%s: exit %d", cmd, st);
    return out;
}

/* Heap in-use and the client's in-use (by pid) from both Prometheus paths. */
static void figures(unsigned port, const char *goshmctl, const char *sock, pid_t pid, double *heap_http,
                    double *heap_ctl, double *client_http, double *client_ctl)
{
    char *m = metrics_get(port);
    char *c = ctl(goshmctl, sock, "stats --prometheus");
    REQUIRE(m && c);
    CHECK(obs_prom_check(m) == 0);
    CHECK(obs_prom_check(c) == 0);
    char pref[96];
    snprintf(pref, sizeof pref, "goshm_client_in_use_bytes{pid=\"%d\"", (int)pid);
    *heap_http = obs_prom_value(m, "goshm_heap_in_use_bytes ");
    *heap_ctl = obs_prom_value(c, "goshm_heap_in_use_bytes ");
    *client_http = pid ? obs_prom_value(m, pref) : 0;
    *client_ctl = pid ? obs_prom_value(c, pref) : 0;
    free(m);
    free(c);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--holder") == 0) return holder(argv[2]);
    if (argc < 3) {
        fprintf(stderr, "usage: test-metrics GOSHMD GOSHMCTL\n");
        return GSH_SKIP;
    }
    const char *goshmctl = argv[2];
    unsigned port = obs_free_port();
    REQUIRE(port != 0);

    /* --metrics without a host is refused before anything starts. */
    {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s --socket /nonexistent/x.sock --metrics :%u 2>&1", argv[1], port);
        int st;
        char *out = obs_run(cmd, &st);
        CHECK_MSG(st == 2 && strstr(out, "no host"), "exit %d: %s", st, out);
        free(out);
    }

    gsh_daemon_t d;
    char args[128];
    snprintf(args, sizeof args, "--size 1G --metrics 127.0.0.1:%u", port);
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), args) == 0);

    /* Wrong path, wrong method. */
    char *resp, *body;
    CHECK(obs_http(port, "GET", "/", &resp, &body) == 404);
    free(resp);
    CHECK(obs_http(port, "POST", "/metrics", &resp, &body) == 405);
    free(resp);

    double h0, c0, x, y;
    figures(port, goshmctl, d.sock, 0, &h0, &c0, &x, &y);
    CHECK(h0 >= 0 && h0 == c0);

    /* 10 MiB in one client. */
    child_t a;
    REQUIRE(child_start(&a, d.sock) == 0);
    static uint64_t offs[16384];
    REQUIRE(child_cmd(&a, "a 10", offs, 16384) == 5 + 5 * 1024);
    double hh, hc, ch, cc;
    figures(port, goshmctl, d.sock, a.pid, &hh, &hc, &ch, &cc);
    CHECK_MSG(hh >= h0 + 10 * MIB && hh < h0 + 11 * MIB, "heap in use %.0f (was %.0f)", hh, h0);
    CHECK_MSG(hc >= h0 + 10 * MIB, "goshmctl: heap in use %.0f", hc);
    CHECK_MSG(ch >= 10 * MIB && ch < 11 * MIB, "client in use %.0f", ch);
    CHECK_MSG(cc >= 10 * MIB, "goshmctl: client in use %.0f", cc);

    /* stats --json: the new keys next to the old ones. */
    char *js = ctl(goshmctl, d.sock, "stats --json");
    CHECK(strstr(js, "\"in_use_bytes\"") && strstr(js, "\"reserved_bytes\""));
    CHECK(strstr(js, "\"version\": \"") != NULL);
    CHECK(strstr(js, "\"heap_id\": ") != NULL);
    CHECK(strstr(js, "\"size_bytes\": 1073741824") != NULL);
    CHECK(strstr(js, "\"uptime_ms\": ") != NULL);
    CHECK(strstr(js, "\"departed\": [") != NULL);
    char pidkey[64];
    snprintf(pidkey, sizeof pidkey, "{\"pid\": %d,", (int)a.pid);
    const char *cl = strstr(js, pidkey);
    CHECK(cl && strstr(cl, "\"in_use_bytes\": "));
    if (cl) {
        double v = strtod(strstr(cl, "\"in_use_bytes\": ") + 16, NULL);
        CHECK_MSG(v >= 10 * MIB, "json client in_use_bytes %.0f", v);
    }
    free(js);

    /* Frees: back where it was. */
    REQUIRE(child_cmd(&a, "f", offs, 0) == 0);
    figures(port, goshmctl, d.sock, a.pid, &hh, &hc, &ch, &cc);
    CHECK_MSG(hh == h0 && hc == h0, "heap in use %.0f / %.0f after the frees (was %.0f)", hh, hc, h0);
    CHECK_MSG(ch == 0 && cc == 0, "client in use %.0f / %.0f after the frees", ch, cc);

    /* A client that leaves 4 MiB live: departed, by its pid. */
    child_t b;
    REQUIRE(child_start(&b, d.sock) == 0);
    size_t nb = child_cmd(&b, "a 4", offs, 16384);
    REQUIRE(nb == 2 + 2 * 1024);
    fprintf(b.in, "x\n");
    fflush(b.in);
    CHECK(gsh_wait_child(b.pid, 10000) == 0);
    gsh_stats_t st;
    uint32_t one = 1; /* child a is still attached */
    CHECK(gsh_wait_for(d.sock, &st, gsh_pred_clients, &one, 5000) == 1);
    char *m = metrics_get(port);
    REQUIRE(m);
    char pref[96];
    snprintf(pref, sizeof pref, "goshm_departed_in_use_bytes{pid=\"%d\"}", (int)b.pid);
    double dep = obs_prom_value(m, pref);
    CHECK_MSG(dep >= 4 * MIB && dep < 5 * MIB, "departed pid %d: %.0f", (int)b.pid, dep);
    free(m);
    js = ctl(goshmctl, d.sock, "stats --json");
    snprintf(pidkey, sizeof pidkey, "\"departed\": [\n  {\"pid\": %d, \"in_use_bytes\": ", (int)b.pid);
    CHECK_MSG(strstr(js, pidkey) != NULL, "%s", js);
    free(js);

    /* Another process frees what it left: the entry goes. */
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);
    for (size_t i = 0; i < nb; i++) goshm_free(h, goshm_ptr(h, offs[i]));
    m = metrics_get(port);
    REQUIRE(m);
    CHECK_MSG(obs_prom_value(m, pref) < 0, "departed entry still there");
    CHECK(obs_prom_value(m, "goshm_heap_in_use_bytes ") == h0);
    free(m);
    goshm_detach(h);

    fclose(a.in);
    fclose(a.out);
    CHECK(gsh_wait_child(a.pid, 10000) == 0);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-metrics");
}
