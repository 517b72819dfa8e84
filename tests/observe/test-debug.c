/* SPDX-License-Identifier: MIT */
/* Description: GOSHM_DEBUG's modes against a real goshmd, each in a child
 * process whose stderr goes to a file the test reads.
 *   poison=1: a write into a freed 4 KiB object is reported when its slot is
 *   handed out again, once, with the offset, the size class and the byte; a
 *   slot freed and reused untouched is not reported; contents of live
 *   objects are never changed by it. With GOSHM_PROFILE_RATE=1 (every
 *   allocation sampled) the report also gives the allocation's stack.
 *   allocfreetrace=1: goshm_malloc and goshm_free are logged with the same
 *   offset and a stack naming the caller (traced_site).
 *   Mistakes (an unknown key, a bad value) are reported once each, however
 *   many attaches and allocations follow, and the rest of the variable
 *   still applies.
 *
 * Usage: test-debug GOSHMD
 *        test-debug --role ROLE SOCKET   (internal: poison, trace, mistakes)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "check.h"
#include "goshm/goshm.h"

/* Default visibility and -rdynamic (CMake ENABLE_EXPORTS): backtraces name it. */
__attribute__((noinline, visibility("default"))) void *traced_site(goshm_t *h, size_t n)
{
    void *p = goshm_malloc(h, n);
    __asm__ volatile("" ::: "memory");
    return p;
}

/* Named in the report of a write after free when its allocation was
 * sampled (GOSHM_PROFILE_RATE=1 samples every one). */
__attribute__((noinline, visibility("default"))) char *alloc_4k(goshm_t *h)
{
    char *p = goshm_malloc(h, 4096);
    __asm__ volatile("" ::: "memory");
    return p;
}

static int role_poison(goshm_t *h)
{
    /* The 4096-byte class has two slots per 8 KiB span: freeing one of them
     * makes the span's local sweep keep it, so the next allocation reuses
     * exactly the freed slot. */
    char *a, *b, *skipped[64];
    int nskipped = 0;
    for (;;) { /* a fresh span: a in slot 0 (8 KiB aligned), b in slot 1 */
        a = alloc_4k(h);
        b = alloc_4k(h);
        if (!a || !b || nskipped > 60) return 3;
        if (goshm_off(h, a) % 8192u == 0 && b == a + 4096) break;
        skipped[nskipped++] = a;
        skipped[nskipped++] = b;
    }
    memset(b, 0x11, 4096);
    goshm_free(h, a);
    a[100] = 'X'; /* write after free */
    char *c = goshm_malloc(h, 4096);
    if (c != a) {
        fprintf(stderr, "reuse: a %p b %p c %p\n", (void *)a, (void *)b, (void *)c);
        return 4; /* the test depends on this reuse */
    }
    for (int i = 0; i < 4096; i++)
        if (b[i] != 0x11) return 5;
    /* Freed and reused untouched: no report. */
    char *e = goshm_malloc(h, 4096);
    if (!e) return 6;
    goshm_free(h, e);
    char *f = goshm_malloc(h, 4096);
    if (!f) return 7;
    /* calloc on a poisoned slot is still zero. */
    goshm_free(h, f);
    unsigned char *z = goshm_calloc(h, 1, 4096);
    if (!z) return 8;
    for (int i = 0; i < 4096; i++)
        if (z[i]) return 9;
    printf("%llu\n", (unsigned long long)goshm_off(h, a));
    goshm_free(h, z);
    goshm_free(h, c);
    goshm_free(h, b);
    for (int i = 0; i < nskipped; i++) goshm_free(h, skipped[i]);
    return 0;
}

static int role_trace(goshm_t *h)
{
    void *p = traced_site(h, 96); /* a class size: small objects are traced with their slot size */
    if (!p) return 3;
    printf("%llu\n", (unsigned long long)goshm_off(h, p));
    fflush(stdout);
    goshm_free(h, p);
    return 0;
}

static int role_mistakes(const char *sock)
{
    for (int i = 0; i < 3; i++) {
        goshm_t *h = goshm_attach(sock);
        if (!h) return 3;
        for (int k = 0; k < 100; k++) goshm_free(h, goshm_malloc(h, 64));
        goshm_detach(h);
    }
    return 0;
}

/* Run a role with GOSHM_DEBUG=env; its stderr and stdout into buffers. */
static const char *profile_rate = "0"; /* GOSHM_PROFILE_RATE of the roles */

static int run_role(const char *role, const char *sock, const char *env, char *err, size_t errlen, char *out,
                    size_t outlen)
{
    char ef[] = "/tmp/goshm-debug-errXXXXXX", of[] = "/tmp/goshm-debug-outXXXXXX";
    int efd = mkstemp(ef), ofd = mkstemp(of);
    if (efd < 0 || ofd < 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(efd, 2);
        dup2(ofd, 1);
        setenv("GOSHM_DEBUG", env, 1);
        setenv("GOSHM_PROFILE_RATE", profile_rate, 1);
        execl("/proc/self/exe", "test-debug", "--role", role, sock, (char *)NULL);
        _exit(127);
    }
    int rc = gsh_wait_child(pid, 30000);
    ssize_t n = pread(efd, err, errlen - 1, 0);
    err[n > 0 ? n : 0] = '\0';
    n = pread(ofd, out, outlen - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(efd);
    close(ofd);
    unlink(ef);
    unlink(of);
    return rc;
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p++) n++;
    return n;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--role") == 0) {
        if (strcmp(argv[2], "mistakes") == 0) return role_mistakes(argv[3]);
        goshm_t *h = goshm_attach(argv[3]);
        if (!h) return 2;
        int rc = strcmp(argv[2], "poison") == 0 ? role_poison(h) : role_trace(h);
        goshm_detach(h);
        return rc;
    }
    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), "--size 256M") == 0);
    static char err[1 << 20], out[4096];

    int rc = run_role("poison", d.sock, "poison=1,badfree=warn", err, sizeof err, out, sizeof out);
    CHECK_MSG(rc == 0, "poison role exit %d: %s", rc, err);
    unsigned long long off = strtoull(out, NULL, 10);
    char want[160];
    snprintf(want, sizeof want, "goshm: write after free: object at offset 0x%llx (size class 4096 bytes", off);
    CHECK_MSG(strstr(err, want) != NULL, "want '%s' in:\n%s", want, err);
    CHECK_MSG(strstr(err, "byte 100 was changed") != NULL, "%s", err);
    CHECK_MSG(count(err, "write after free") == 1, "%d reports:\n%s", count(err, "write after free"), err);

    CHECK_MSG(strstr(err, "was allocated (a sampled allocation)") == NULL, "%s", err);

    /* With every allocation sampled, the report names where the object was
     * allocated. */
    profile_rate = "1";
    rc = run_role("poison", d.sock, "poison=1,badfree=warn", err, sizeof err, out, sizeof out);
    profile_rate = "0";
    CHECK_MSG(rc == 0, "poison role (sampled) exit %d: %s", rc, err);
    const char *wa = strstr(err, "goshm: write after free: ");
    const char *st = wa ? strstr(wa, "goshm: that object was allocated (a sampled allocation) by pid ") : NULL;
    CHECK_MSG(st && strstr(st, "goshm:     alloc_4k\n"), "no allocation stack naming alloc_4k:\n%s", err);

    /* Without poison the same sequence reports nothing. */
    rc = run_role("poison", d.sock, "badfree=warn", err, sizeof err, out, sizeof out);
    CHECK_MSG(rc == 0 && count(err, "write after free") == 0, "rc %d: %s", rc, err);

    rc = run_role("trace", d.sock, "allocfreetrace=1", err, sizeof err, out, sizeof out);
    CHECK_MSG(rc == 0, "trace role exit %d: %s", rc, err);
    off = strtoull(out, NULL, 10);
    char m[96], f[96];
    snprintf(m, sizeof m, " malloc(96) = offset 0x%llx\n", off);
    snprintf(f, sizeof f, " free(offset 0x%llx)\n", off);
    const char *mp = strstr(err, m), *fp = strstr(err, f);
    CHECK_MSG(mp && fp && mp < fp, "malloc and free lines for 0x%llx:\n%s", off, err);
    CHECK_MSG(mp && strstr(mp, "traced_site") && (!fp || strstr(mp, "traced_site") < fp),
              "the malloc's stack does not name traced_site:\n%s", err);

    rc = run_role("mistakes", d.sock, "poison=1,bogus=3,badfree=maybe,,allocfreetrace=2", err, sizeof err, out,
                  sizeof out);
    CHECK_MSG(rc == 0, "mistakes role exit %d: %s", rc, err);
    CHECK_MSG(count(err, "GOSHM_DEBUG: unknown key 'bogus'") == 1, "%s", err);
    CHECK_MSG(count(err, "GOSHM_DEBUG: badfree=maybe") == 1, "%s", err);
    CHECK_MSG(count(err, "GOSHM_DEBUG: allocfreetrace=2") == 1, "%s", err);
    CHECK_MSG(count(err, "goshm: trace:") == 0, "bad value turned tracing on: %s", err);

    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-debug");
}
