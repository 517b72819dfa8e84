/* SPDX-License-Identifier: MIT */
/* Description: goshmctl top. Through a pipe (not a terminal), --iterations 2
 * prints exactly two plain-text snapshots without escape codes, with the
 * heap totals, the classes and clients tables, a busy client listed by pid,
 * and allocation rates in the second snapshot (a client allocates and frees
 * all the time). On a pseudo-terminal (tests/observe/top-pty.py, skipped
 * without python3) it redraws, quits on q and on Ctrl-C, and restores the
 * terminal.
 *
 * Usage: test-top GOSHMD GOSHMCTL PTY_SCRIPT
 *        test-top --busy SOCKET   (internal role)
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "check.h"
#include "goshm/goshm.h"
#include "obs.h"

static int busy(const char *sock)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 3;
    void *keep = goshm_malloc(h, 3u << 20); /* 3 MiB live, to be listed */
    if (!keep) return 4;
    for (;;) { /* until killed */
        void *p[64];
        for (int i = 0; i < 64; i++) p[i] = goshm_malloc(h, 256);
        for (int i = 0; i < 64; i++) goshm_free(h, p[i]);
        usleep(100);
    }
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--busy") == 0) return busy(argv[2]);
    if (argc < 4) {
        fprintf(stderr, "usage: test-top GOSHMD GOSHMCTL PTY_SCRIPT\n");
        return GSH_SKIP;
    }
    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), "--size 256M") == 0);
    char *const bargv[] = {"test-top", "--busy", d.sock, NULL};
    pid_t b = gsh_spawn_self(bargv);
    REQUIRE(b > 0);
    gsh_stats_t st;
    REQUIRE(gsh_settle(d.sock, 1, &st) == 0);

    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --socket %s top --iterations 2 | cat", argv[2], d.sock);
    int status;
    char *out = obs_run(cmd, &status);
    CHECK(status == 0);
    CHECK_MSG(strchr(out, '\033') == NULL, "escape codes through a pipe");
    int frames = 0;
    for (const char *p = out; (p = strstr(p, "goshm top: ")); p++) frames++;
    CHECK_MSG(frames == 2, "%d snapshots:\n%s", frames, out);
    CHECK(strstr(out, "heap: in use ") && strstr(out, "CLASS") && strstr(out, "PID"));
    char pid[32];
    snprintf(pid, sizeof pid, "\n%8d ", (int)b);
    CHECK_MSG(strstr(out, pid) != NULL, "busy client %d not listed:\n%s", (int)b, out);
    const char *second = strstr(out, "goshm top: ");
    second = second ? strstr(second + 1, "goshm top: ") : NULL;
    CHECK(second != NULL);
    if (second) {
        const char *rates = strstr(second, "rates: ");
        double allocs = rates ? strtod(rates + 7, NULL) : 0;
        CHECK_MSG(allocs > 0, "second snapshot has no allocation rate:\n%s", second);
        CHECK(strstr(second, "3.0 MiB") != NULL); /* the busy client's live block */
    }
    free(out);

    /* --iterations needs a number. */
    snprintf(cmd, sizeof cmd, "%s --socket %s top --iterations x 2>&1", argv[2], d.sock);
    out = obs_run(cmd, &status);
    CHECK(status == 2);
    free(out);

    if (access("/usr/bin/python3", X_OK) == 0 || system("command -v python3 >/dev/null 2>&1") == 0) {
        for (int k = 0; k < 2; k++) {
            snprintf(cmd, sizeof cmd, "python3 %s %s %s %s", argv[3], argv[2], d.sock, k ? "ctrl-c" : "q");
            out = obs_run(cmd, &status);
            CHECK_MSG(status == 0, "%s: %s", cmd, out);
            free(out);
        }
    } else {
        fprintf(stderr, "test-top: no python3: the pseudo-terminal part is skipped\n");
    }
    kill(b, SIGKILL);
    gsh_wait_child(b, 5000);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-top");
}
