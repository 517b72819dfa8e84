/* SPDX-License-Identifier: MIT */
/* Description: the heap-wide sampled heap profile. Two client processes run
 * the same three sites at the default rate (one sample per 512 KiB):
 * big_holder keeps 48 MiB live (256 KiB objects), small_holder keeps 8 MiB
 * live (4 KiB objects), churn_site allocates and frees 512 MiB (64 KiB
 * objects). `goshmctl profile -o FILE` writes a gzipped profile.proto that
 * `go tool pprof` reads: by inuse_space big_holder comes first, by
 * alloc_space churn_site does, churn_site holds nothing in use, and every
 * sample carries the pid of one of the two processes. After both free the
 * big objects (each frees the other's: frees from any process retire
 * samples), big_holder holds nothing in use and small_holder comes first.
 * Skipped (77) without `go` (Debian's golang-go, tools/install-deps.sh).
 *
 * Usage: test-profile GOSHMD GOSHMCTL
 *        test-profile --sites SOCKET   (internal role: commands on stdin)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "check.h"
#include "goshm/goshm.h"
#include "obs.h"

#define BIG_OBJ (256u << 10)
#define BIG_N 192u          /* 48 MiB */
#define SMALL_OBJ 4096u
#define SMALL_N 2048u       /* 8 MiB */
#define CHURN_OBJ (64u << 10)
#define CHURN_N 8192u       /* 512 MiB, freed at once */

static goshm_t *heap;
static void *big[BIG_N], *small[SMALL_N];

/* Default visibility and -rdynamic (CMake ENABLE_EXPORTS): dladdr names them. */
__attribute__((noinline, visibility("default"))) void big_holder(void)
{
    for (unsigned i = 0; i < BIG_N; i++) big[i] = goshm_malloc(heap, BIG_OBJ);
}

__attribute__((noinline, visibility("default"))) void small_holder(void)
{
    for (unsigned i = 0; i < SMALL_N; i++) small[i] = goshm_malloc(heap, SMALL_OBJ);
}

__attribute__((noinline, visibility("default"))) void churn_site(void)
{
    for (unsigned i = 0; i < CHURN_N; i++) {
        void *p = goshm_malloc(heap, CHURN_OBJ);
        if (p) memset(p, 1, 64);
        goshm_free(heap, p);
    }
}

/* "go": run the sites, print the big objects' offsets then "ok".
 * "free OFF...": free these offsets, "ok". EOF: detach and exit. */
static int sites(const char *sock)
{
    heap = goshm_attach(sock);
    if (!heap) return 3;
    char line[1 << 16];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "go", 2) == 0) {
            big_holder();
            small_holder();
            churn_site();
            for (unsigned i = 0; i < BIG_N; i++) {
                if (!big[i]) return 4;
                printf("%" PRIu64 " ", (uint64_t)goshm_off(heap, big[i]));
            }
            for (unsigned i = 0; i < SMALL_N; i++)
                if (!small[i]) return 5;
            printf("\nok\n");
        } else if (strncmp(line, "free", 4) == 0) {
            char *p = line + 4, *end;
            for (;;) {
                unsigned long long off = strtoull(p, &end, 10);
                if (end == p) break;
                goshm_free(heap, goshm_ptr(heap, off));
                p = end;
            }
            printf("ok\n");
        }
        fflush(stdout);
    }
    goshm_detach(heap);
    return 0;
}

typedef struct child {
    pid_t pid;
    FILE *in, *out;
    char offs[1 << 14];
} child_t;

static int child_start(child_t *c, const char *sock)
{
    /* The child samples at the default rate. */
    c->pid = obs_child_start("test-profile", "--sites", sock, "GOSHM_PROFILE_RATE", &c->in, &c->out);
    return c->pid < 0 ? -1 : 0;
}

static int child_cmd(child_t *c, const char *cmd, char *first_line, size_t len)
{
    fprintf(c->in, "%s\n", cmd);
    fflush(c->in);
    char line[1 << 14];
    int got = 0;
    while (fgets(line, sizeof line, c->out)) {
        if (strcmp(line, "ok\n") == 0) return 0;
        if (!got && first_line) snprintf(first_line, len, "%s", line);
        got = 1;
    }
    return -1;
}

/* The function names of `go tool pprof -top` rows, in order, for one
 * sample index, into names (newline-separated); how many rows. */
static int pprof_top(const char *file, const char *index, char *names, size_t len, char *raw, size_t rawlen)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "go tool pprof -top -sample_index=%s %s 2>&1", index, file);
    int st;
    char *out = obs_run(cmd, &st);
    snprintf(raw, rawlen, "%s", out);
    names[0] = '\0';
    int rows = 0;
    const char *p = strstr(out, "flat%");
    p = p ? strchr(p, '\n') : NULL;
    while (p && *++p) {
        const char *e = strchr(p, '\n');
        if (!e) break;
        char line[512];
        size_t n = (size_t)(e - p) < sizeof line - 1 ? (size_t)(e - p) : sizeof line - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        char *last = strrchr(line, ' ');
        if (last && strlen(names) + strlen(last + 1) + 2 < len) {
            strcat(names, last + 1);
            strcat(names, "\n");
            rows++;
        }
        p = e;
    }
    free(out);
    return st == 0 ? rows : -1;
}

/* Row of `name` in -top output names (0 first), -1 if absent. */
static int row_of(const char *names, const char *name)
{
    int row = 0;
    for (const char *p = names; *p; row++) {
        const char *e = strchr(p, '\n');
        if ((size_t)(e - p) == strlen(name) && strncmp(p, name, strlen(name)) == 0) return row;
        p = e + 1;
    }
    return -1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--sites") == 0) return sites(argv[2]);
    if (argc < 3) {
        fprintf(stderr, "usage: test-profile GOSHMD GOSHMCTL\n");
        return GSH_SKIP;
    }
    if (system("go version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test-profile: skipped: no `go` to run `go tool pprof` (Debian: golang-go)\n");
        return GSH_SKIP;
    }
    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), "--size 2G") == 0);
    static child_t a, b;
    REQUIRE(child_start(&a, d.sock) == 0 && child_start(&b, d.sock) == 0);
    REQUIRE(child_cmd(&a, "go", a.offs, sizeof a.offs) == 0);
    REQUIRE(child_cmd(&b, "go", b.offs, sizeof b.offs) == 0);

    char file[256], cmd[1024];
    snprintf(file, sizeof file, "%s/heap.pb.gz", d.dir);
    snprintf(cmd, sizeof cmd, "%s --socket %s profile -o %s 2>&1", argv[2], d.sock, file);
    int st;
    char *out = obs_run(cmd, &st);
    CHECK_MSG(st == 0, "goshmctl profile: %s", out);
    free(out);
    static char names[8192], raw[65536];
    int rows = pprof_top(file, "inuse_space", names, sizeof names, raw, sizeof raw);
    CHECK_MSG(rows > 0 && row_of(names, "big_holder") == 0, "inuse_space:\n%s", raw);
    CHECK_MSG(row_of(names, "small_holder") > 0, "inuse_space:\n%s", raw);
    CHECK_MSG(row_of(names, "churn_site") < 0, "churn_site holds memory:\n%s", raw);
    rows = pprof_top(file, "alloc_space", names, sizeof names, raw, sizeof raw);
    CHECK_MSG(rows > 0 && row_of(names, "churn_site") == 0, "alloc_space:\n%s", raw);
    /* Every sample's pid is one of the two processes, and both are there. */
    snprintf(cmd, sizeof cmd, "go tool pprof -tags %s 2>&1", file);
    out = obs_run(cmd, &st);
    char pa[32], pb[32];
    snprintf(pa, sizeof pa, ": %d\n", (int)a.pid);
    snprintf(pb, sizeof pb, ": %d\n", (int)b.pid);
    CHECK_MSG(st == 0 && strstr(out, "pid:") && strstr(out, pa) && strstr(out, pb), "tags:\n%s", out);
    free(out);

    /* Each frees the other's big objects. */
    static char freecmd[sizeof a.offs + 8];
    snprintf(freecmd, sizeof freecmd, "free %s", b.offs);
    freecmd[strcspn(freecmd, "\n")] = '\0';
    REQUIRE(child_cmd(&a, freecmd, NULL, 0) == 0);
    snprintf(freecmd, sizeof freecmd, "free %s", a.offs);
    freecmd[strcspn(freecmd, "\n")] = '\0';
    REQUIRE(child_cmd(&b, freecmd, NULL, 0) == 0);
    snprintf(cmd, sizeof cmd, "%s --socket %s profile -o %s 2>&1", argv[2], d.sock, file);
    out = obs_run(cmd, &st);
    CHECK_MSG(st == 0, "goshmctl profile: %s", out);
    free(out);
    rows = pprof_top(file, "inuse_space", names, sizeof names, raw, sizeof raw);
    CHECK_MSG(rows > 0 && row_of(names, "small_holder") == 0 && row_of(names, "big_holder") < 0,
              "inuse_space after the frees:\n%s", raw);

    fclose(a.in);
    fclose(b.in);
    CHECK(gsh_wait_child(a.pid, 20000) == 0);
    CHECK(gsh_wait_child(b.pid, 20000) == 0);
    fclose(a.out);
    fclose(b.out);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-profile");
}
