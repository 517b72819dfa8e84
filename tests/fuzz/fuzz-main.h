/* SPDX-License-Identifier: MIT */
/* fuzz-main.h: the main() of the fuzz targets when not built for libFuzzer.
 *
 * Overview: shm/overview.h. Included by tests/fuzz/fuzz-*.c under
 * #ifndef GOSHM_LIBFUZZER. Usage:
 *   fuzz-X [-runs=N] [-seed=S] [-minimize] [FILE|DIR ...]
 * replays every FILE (every regular file of each DIR), then runs N
 * deterministic pseudo-random inputs from the target's generator (seed S).
 * A random input that fails is written to ./fuzz-X-failure-S-I.bin. With
 * -minimize, each FILE is shrunk instead (entries of `unit` bytes dropped,
 * then bytes zeroed) while it still fails, each trial in a child process so
 * that crashes count as failures too; the result goes to FILE.min.
 * Exit 0 if every input passed; a crash or sanitizer report fails by itself.
 */
#ifndef GOSHM_FUZZ_MAIN_H
#define GOSHM_FUZZ_MAIN_H

#include <dirent.h>    /* scandir */
#include <fcntl.h>     /* open */
#include <signal.h>    /* sigaction */
#include <stdint.h>    /* uint8_t */
#include <stdio.h>     /* fopen */
#include <stdlib.h>    /* strtoull, malloc */
#include <string.h>    /* strncmp */
#include <sys/stat.h>  /* stat */
#include <sys/wait.h>  /* waitpid */
#include <unistd.h>    /* fork */

#include "clock.h"     /* gs_now_ns */

typedef struct fz_main_opts {
    unsigned long long runs, seed;
    int minimize;
    int argc;
    char **argv;
} fz_main_opts_t;

typedef int (*fz_run_fn)(const uint8_t *data, size_t size);
typedef size_t (*fz_gen_fn)(unsigned long long *rs, uint8_t *buf, size_t cap);

/* The random input being run: saved by a fatal signal's handler, so that a
 * crash leaves its input behind (sanitizer reports do not come here; rerun
 * with the same -seed and -runs=I+1 and the input is regenerated). */
static const uint8_t *fz_cur;  /* a random input to save, or NULL */
static size_t fz_cur_len;
static char fz_cur_path[4096];  /* the file replayed, or where to save */
static const int fz_sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
static struct sigaction fz_old[sizeof fz_sigs / sizeof fz_sigs[0]];

static void fz_on_fatal(int sig)
{
    static const char m1[] = "fuzz: fatal signal while running ", m2[] = "fuzz: fatal signal; the input is saved as ";
    ssize_t w;
    if (fz_cur) {
        int fd = open(fz_cur_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            w = write(fd, fz_cur, fz_cur_len);
            close(fd);
        }
        w = write(2, m2, sizeof m2 - 1);
    } else {
        w = write(2, m1, sizeof m1 - 1);
    }
    w = write(2, fz_cur_path, strlen(fz_cur_path));
    w = write(2, "\n", 1);
    (void)w;
    /* Give the signal back to whoever had it (a sanitizer's report, or the
     * default): a fault recurs when we return, abort() raises again. */
    for (unsigned i = 0; i < sizeof fz_sigs / sizeof fz_sigs[0]; i++)
        if (fz_sigs[i] == sig) sigaction(sig, &fz_old[i], NULL);
}

static void fz_catch_fatal(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fz_on_fatal;
    sigemptyset(&sa.sa_mask);
    for (unsigned i = 0; i < sizeof fz_sigs / sizeof fz_sigs[0]; i++) sigaction(fz_sigs[i], &sa, &fz_old[i]);
}

static void fz_parse(fz_main_opts_t *o, int argc, char **argv, unsigned long long default_runs)
{
    memset(o, 0, sizeof *o);
    o->runs = default_runs;
    o->seed = 0x9e3779b97f4a7c15ULL;
    o->argc = argc;
    o->argv = argv;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "-runs=", 6)) o->runs = strtoull(argv[i] + 6, NULL, 0);
        else if (!strncmp(argv[i], "-seed=", 6)) o->seed = strtoull(argv[i] + 6, NULL, 0);
        else if (!strcmp(argv[i], "-minimize")) o->minimize = 1;
    }
    if (!o->seed) o->seed = 1;
}

static uint8_t *fz_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    for (size_t k; buf && (k = fread(buf + n, 1, cap - n, fp)) > 0;) {
        n += k;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb) { free(buf); buf = NULL; }
            buf = nb;
        }
    }
    fclose(fp);
    *len = n;
    return buf;
}

static int fz_write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    size_t w = fwrite(data, 1, len, fp);
    return fclose(fp) == 0 && w == len ? 0 : -1;
}

static double fz_now(void) { return (double)gs_now_ns() * 1e-9; }

/* Does the input fail (check failure, crash, sanitizer report)? In a child. */
static int fz_fails_forked(fz_run_fn run, const uint8_t *data, size_t len)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) _exit(2);
        _exit(run(data, len) != 0 ? 1 : 0);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0) return 1;
    return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void fz_minimize(fz_run_fn run, const char *path, size_t unit)
{
    size_t len;
    uint8_t *buf = fz_read_file(path, &len);
    if (!buf) { fprintf(stderr, "%s: cannot read\n", path); return; }
    if (!fz_fails_forked(run, buf, len)) {
        fprintf(stderr, "%s: does not fail; nothing to minimise\n", path);
        free(buf);
        return;
    }
    uint8_t *t = malloc(len ? len : 1);
    for (int changed = 1; changed;) { /* drop entries */
        changed = 0;
        for (size_t off = 0; off < len;) {
            size_t cut = len - off < unit ? len - off : unit;
            memcpy(t, buf, off);
            memcpy(t + off, buf + off + cut, len - off - cut);
            if (fz_fails_forked(run, t, len - cut)) {
                memcpy(buf, t, len - cut);
                len -= cut;
                changed = 1;
            } else {
                off += cut;
            }
        }
    }
    for (size_t i = 0; i < len; i++) { /* zero bytes */
        if (!buf[i]) continue;
        uint8_t old = buf[i];
        buf[i] = 0;
        if (!fz_fails_forked(run, buf, len)) buf[i] = old;
    }
    char out[4096];
    snprintf(out, sizeof out, "%s.min", path);
    if (fz_write_file(out, buf, len) == 0) fprintf(stderr, "%s: minimised to %zu bytes: %s\n", path, len, out);
    free(t);
    free(buf);
}

static int fz_replay_path(fz_run_fn run, const char *path, unsigned *files)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s: cannot stat\n", path);
        return 1;
    }
    if (S_ISDIR(st.st_mode)) {
        struct dirent **ents;
        int n = scandir(path, &ents, NULL, alphasort), bad = 0;
        for (int i = 0; i < n; i++) {
            if (ents[i]->d_name[0] != '.') {
                char sub[4096];
                snprintf(sub, sizeof sub, "%s/%s", path, ents[i]->d_name);
                bad |= fz_replay_path(run, sub, files);
            }
            free(ents[i]);
        }
        if (n > 0) free(ents);
        return bad;
    }
    size_t len;
    uint8_t *buf = fz_read_file(path, &len);
    if (!buf) {
        fprintf(stderr, "%s: cannot read\n", path);
        return 1;
    }
    snprintf(fz_cur_path, sizeof fz_cur_path, "%s", path);
    int rc = run(buf, len);
    if (rc) fprintf(stderr, "%s: FAILED\n", path);
    free(buf);
    (*files)++;
    return rc != 0;
}

static int fz_main(const fz_main_opts_t *o, const char *name, fz_run_fn run, fz_gen_fn gen, size_t cap, size_t unit)
{
    int bad = 0;
    unsigned files = 0;
    double t0 = fz_now();
    if (!o->minimize) fz_catch_fatal();
    for (int i = 1; i < o->argc; i++) {
        if (o->argv[i][0] == '-') continue;
        if (o->minimize) fz_minimize(run, o->argv[i], unit);
        else bad |= fz_replay_path(run, o->argv[i], &files);
    }
    if (o->minimize) return 0;
    double t1 = fz_now();
    uint8_t *buf = malloc(cap);
    unsigned long long rs = o->seed, failed = 0, bytes = 0;
    for (unsigned long long i = 0; buf && i < o->runs; i++) {
        size_t len = gen(&rs, buf, cap);
        bytes += len;
        snprintf(fz_cur_path, sizeof fz_cur_path, "%s-failure-%llx-%llu.bin", name, o->seed, i);
        fz_cur = buf;
        fz_cur_len = len;
        int rc = run(buf, len);
        fz_cur = NULL;
        if (rc != 0) {
            fz_write_file(fz_cur_path, buf, len);
            fprintf(stderr, "%s: random input %llu failed: saved as %s\n", name, i, fz_cur_path);
            failed++;
            bad = 1;
            if (failed >= 5) break;
        }
    }
    free(buf);
    double t2 = fz_now();
    fprintf(stderr, "%s: %u files replayed (%.2f s), %llu random inputs, %llu bytes (%.2f s, seed %#llx): %s\n", name,
            files, t1 - t0, o->runs, bytes, t2 - t1, o->seed, bad ? "FAILED" : "ok");
    return CHECK_DONE(name) | bad;
}

#endif /* GOSHM_FUZZ_MAIN_H */
