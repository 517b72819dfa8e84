/* SPDX-License-Identifier: MIT */
/* test-names.c: Description: the names directory across processes: set in one, get in another, delete, ENOENT; bad names and offsets; 4096+ names up to the directory's bound (ENOSPC); the per-uid bound (EDQUOT); two processes racing to set the same names (exactly one wins each).
 *
 * Overview of the engine: shm/overview.h; the directory: shm/names.h,
 * daemon/names.c, client/name.c. Each client is its own process (this
 * binary re-run with a role), attached on its own.
 *
 * Usage: test-names GOSHMD                 (also $GOSHMD)
 *        test-names --role ROLE SOCKET FILE (internal)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "goshm/goshm.h"
#include "harness.h"

#define RACE_NAMES 300

typedef struct shared {
    _Atomic int ready, go;
    goshm_off_t off[4];             /* role "setter": what it named */
    _Atomic uint32_t wins[2][RACE_NAMES]; /* racer k won name i */
    goshm_off_t race_off[2];
    _Atomic int errors;
} shared_t;

static shared_t *map_shared(const char *file)
{
    int fd = open(file, O_RDWR);
    if (fd < 0) return NULL;
    void *p = mmap(NULL, sizeof(shared_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

/* Role "setter": allocate and fill an object, name it "obj", stay attached
 * until told to go (the object lives as long as its process holds it). */
static int role_setter(const char *sock, shared_t *sh)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 10;
    char *p = goshm_malloc(h, 4096);
    if (!p) return 11;
    memset(p, 0x5a, 4096);
    memcpy(p, "hello from A", 13);
    goshm_off_t off = goshm_off(h, p);
    if (goshm_name_set(h, "obj", off) != 0) return 12;
    if (goshm_name_set(h, "obj", off) != -1 || errno != EEXIST) return 13;
    sh->off[0] = off;
    atomic_store(&sh->ready, 1);
    while (!atomic_load(&sh->go)) usleep(1000);
    goshm_free(h, p);
    goshm_detach(h);
    return 0;
}

/* Role "getter": find "obj", read the bytes A wrote, delete the name. */
static int role_getter(const char *sock, shared_t *sh)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 20;
    goshm_off_t off = goshm_name_get(h, "obj");
    if (off != sh->off[0]) return 21;
    const char *p = goshm_ptr(h, off);
    if (!p || strcmp(p, "hello from A") != 0 || (unsigned char)p[4000] != 0x5a) return 22;
    if (goshm_name_del(h, "obj") != 0) return 23;
    if (goshm_name_get(h, "obj") != GOSHM_NULL || errno != ENOENT) return 24;
    if (goshm_name_del(h, "obj") != -1 || errno != ENOENT) return 25;
    goshm_detach(h);
    return 0;
}

/* Role "racer0"/"racer1": set RACE_NAMES names, each also set by the other
 * racer at the same time; record which it won. */
static int role_racer(const char *sock, shared_t *sh, int k)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 30;
    char *p = goshm_malloc(h, 64);
    if (!p) return 31;
    sh->race_off[k] = goshm_off(h, p);
    atomic_fetch_add(&sh->ready, 1);
    while (!atomic_load(&sh->go)) ;
    for (int i = 0; i < RACE_NAMES; i++) {
        char name[32];
        snprintf(name, sizeof name, "race-%d", i);
        int rc = goshm_name_set(h, name, sh->race_off[k]);
        if (rc == 0) atomic_store(&sh->wins[k][i], 1);
        else if (errno != EEXIST) atomic_fetch_add(&sh->errors, 1);
    }
    atomic_fetch_add(&sh->ready, 1);
    while (atomic_load(&sh->go) != 2) usleep(1000);
    goshm_free(h, p);
    goshm_detach(h);
    return 0;
}

/* Role "late": a NameSet that times out (the daemon is stopped), then the
 * late reply must not be taken for anything else: the ring's round trips
 * (which watch the control connection for a hang-up) and the next NameSet
 * work, and the late set did happen. */
static int role_late(const char *sock, shared_t *sh)
{
    /* Long enough that the round trips of step 3 (the daemon stopped for
     * 120 ms, then slow under TSan on a loaded machine) never time out. */
    setenv("GOSHM_TIMEOUT_MS", "1500", 1);
    goshm_t *h = goshm_attach(sock);
    if (!h) return 40;
    char *p = goshm_malloc(h, 64);
    if (!p) return 41;
    goshm_off_t off = goshm_off(h, p);
    atomic_store(&sh->ready, 1); /* parent: SIGSTOP the daemon */
    while (atomic_load(&sh->go) != 1) usleep(1000);
    if (goshm_name_set(h, "late-1", off) != -1 || errno != ETIMEDOUT) return 42;
    atomic_store(&sh->ready, 2); /* parent: SIGCONT */
    while (atomic_load(&sh->go) != 2) usleep(1000);
    usleep(100000); /* the late reply is in our socket now */
    /* A round trip while the daemon is stopped again: the ring's wait
     * sleeps and checks the connection, where the late reply waits. */
    atomic_store(&sh->ready, 3);
    while (atomic_load(&sh->go) != 3) usleep(1000);
    void *big = goshm_malloc(h, 1 << 20);
    if (!big) return 49;
    goshm_free(h, big);
    for (int i = 0; i < 200; i++) {
        void *q = goshm_malloc(h, 48000 + (size_t)i * 1000); /* large: a ring round trip each */
        if (!q) return 43;
        goshm_free(h, q);
    }
    if (goshm_name_set(h, "late-2", off) != 0) return 44;
    if (goshm_name_get(h, "late-1") != off) return 45;
    if (goshm_name_set(h, "late-1", off) != -1 || errno != EEXIST) return 46;
    if (goshm_name_del(h, "late-1") != 0 || goshm_name_del(h, "late-2") != 0) return 47;
    goshm_free(h, p);
    return goshm_detach(h) == 0 ? 0 : 48;
}

static pid_t spawn(const char *role, const char *sock, const char *file)
{
    char *argv[] = {"test-names", "--role", (char *)role, (char *)sock, (char *)file, NULL};
    return gsh_spawn_self(argv);
}

static void test_across_processes(const char *sock, const char *file, shared_t *sh)
{
    memset(sh, 0, sizeof *sh);
    pid_t a = spawn("setter", sock, file);
    REQUIRE(a > 0);
    uint64_t t0 = gsh_now_ms();
    while (!atomic_load(&sh->ready) && gsh_now_ms() - t0 < 10000) gsh_sleep_ms(5);
    CHECK(atomic_load(&sh->ready) == 1);
    pid_t b = spawn("getter", sock, file);
    CHECK(gsh_wait_child(b, 20000) == 0);
    atomic_store(&sh->go, 1);
    CHECK(gsh_wait_child(a, 20000) == 0);
}

static void test_race(const char *sock, const char *file, shared_t *sh)
{
    memset(sh, 0, sizeof *sh);
    pid_t r0 = spawn("racer0", sock, file), r1 = spawn("racer1", sock, file);
    REQUIRE(r0 > 0 && r1 > 0);
    uint64_t t0 = gsh_now_ms();
    while (atomic_load(&sh->ready) < 2 && gsh_now_ms() - t0 < 10000) gsh_sleep_ms(2);
    CHECK(atomic_load(&sh->ready) == 2);
    atomic_store(&sh->go, 1);
    while (atomic_load(&sh->ready) < 4 && gsh_now_ms() - t0 < 20000) gsh_sleep_ms(5);
    goshm_t *h = goshm_attach(sock);
    REQUIRE(h);
    int bad = 0, w0 = 0;
    for (int i = 0; i < RACE_NAMES; i++) {
        uint32_t a = atomic_load(&sh->wins[0][i]), b = atomic_load(&sh->wins[1][i]);
        if (a + b != 1) bad++;
        w0 += (int)a;
        char name[32];
        snprintf(name, sizeof name, "race-%d", i);
        goshm_off_t want = sh->race_off[a ? 0 : 1];
        if (goshm_name_get(h, name) != want) bad++;
        if (goshm_name_del(h, name) != 0) bad++;
    }
    CHECK_MSG(bad == 0, "%d names not won exactly once or not the winner's", bad);
    CHECK(atomic_load(&sh->errors) == 0);
    fprintf(stderr, "race: racer 0 won %d of %d names\n", w0, RACE_NAMES);
    atomic_store(&sh->go, 2);
    CHECK(gsh_wait_child(r0, 20000) == 0);
    CHECK(gsh_wait_child(r1, 20000) == 0);
    goshm_detach(h);
}

static void test_late(gsh_daemon_t *d, const char *file, shared_t *sh)
{
    memset(sh, 0, sizeof *sh);
    pid_t c = spawn("late", d->sock, file);
    REQUIRE(c > 0);
    uint64_t t0 = gsh_now_ms();
    while (atomic_load(&sh->ready) != 1 && gsh_now_ms() - t0 < 10000) gsh_sleep_ms(2);
    CHECK(kill(d->pid, SIGSTOP) == 0);
    atomic_store(&sh->go, 1);
    while (atomic_load(&sh->ready) != 2 && gsh_now_ms() - t0 < 10000) gsh_sleep_ms(2);
    CHECK(kill(d->pid, SIGCONT) == 0);
    atomic_store(&sh->go, 2);
    while (atomic_load(&sh->ready) != 3 && gsh_now_ms() - t0 < 10000) gsh_sleep_ms(2);
    CHECK(kill(d->pid, SIGSTOP) == 0);
    atomic_store(&sh->go, 3);
    gsh_sleep_ms(120);
    CHECK(kill(d->pid, SIGCONT) == 0);
    CHECK_MSG(gsh_wait_child(c, 20000) == 0, "the late-reply client failed");
}

static void test_bad(const char *sock)
{
    goshm_t *h = goshm_attach(sock);
    REQUIRE(h);
    char *p = goshm_malloc(h, 100);
    REQUIRE(p);
    goshm_off_t off = goshm_off(h, p);
    char long_name[80];
    memset(long_name, 'x', sizeof long_name);
    long_name[64] = '\0';
    const char *bad[] = {"", "a/b", "/", "tab\there", "\x7f", "caf\xc3\xa9", long_name, "nl\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        CHECK_MSG(goshm_name_set(h, bad[i], off) == -1 && errno == EINVAL, "name %zu", i);
        errno = 0;
        CHECK(goshm_name_get(h, bad[i]) == GOSHM_NULL && errno == EINVAL);
        errno = 0;
        CHECK(goshm_name_del(h, bad[i]) == -1 && errno == EINVAL);
    }
    CHECK(goshm_name_set(h, NULL, off) == -1 && errno == EINVAL);
    long_name[63] = '\0'; /* 63 bytes: the longest name */
    CHECK(goshm_name_set(h, long_name, off) == 0);
    CHECK(goshm_name_get(h, long_name) == off);
    CHECK(goshm_name_set(h, " spaces and ~!@#$%^&*() are fine ", off) == 0);
    CHECK(goshm_name_get(h, " spaces and ~!@#$%^&*() are fine ") == off);
    /* Offsets outside the object area: refused by the daemon. */
    CHECK(goshm_name_set(h, "off-null", 0) == -1 && errno == EINVAL);
    CHECK(goshm_name_set(h, "off-header", 64) == -1 && errno == EINVAL);
    CHECK(goshm_name_set(h, "off-far", UINT64_C(1) << 60) == -1 && errno == EINVAL);
    CHECK(goshm_name_get(h, "off-far") == GOSHM_NULL && errno == ENOENT);
    CHECK(goshm_name_del(h, long_name) == 0);
    CHECK(goshm_name_del(h, " spaces and ~!@#$%^&*() are fine ") == 0);
    goshm_free(h, p);
    goshm_detach(h);
}

/* 4096+ names: up to the directory's bound, then ENOSPC; all readable;
 * all deleted again. */
static void test_many(const char *sock)
{
    goshm_t *h = goshm_attach(sock);
    REQUIRE(h);
    char *p = goshm_malloc(h, 1 << 16);
    REQUIRE(p);
    goshm_off_t base = goshm_off(h, p);
    int set = 0, other = 0;
    for (int i = 0; i < 7000; i++) {
        char name[32];
        snprintf(name, sizeof name, "many-%05d", i);
        if (goshm_name_set(h, name, base + (goshm_off_t)(i % 8192) * 8u) == 0) set++;
        else if (errno == ENOSPC) break;
        else other++;
    }
    CHECK_MSG(set == 6144, "set %d names before ENOSPC (want 6144)", set);
    CHECK(other == 0);
    CHECK(goshm_name_set(h, "one-more", base) == -1 && errno == ENOSPC);
    int wrong = 0;
    for (int i = 0; i < set; i++) {
        char name[32];
        snprintf(name, sizeof name, "many-%05d", i);
        if (goshm_name_get(h, name) != base + (goshm_off_t)(i % 8192) * 8u) wrong++;
    }
    CHECK_MSG(wrong == 0, "%d names read back wrong", wrong);
    /* Delete every other one, then all: lookups stay right meanwhile. */
    for (int i = 0; i < set; i += 2) {
        char name[32];
        snprintf(name, sizeof name, "many-%05d", i);
        if (goshm_name_del(h, name) != 0) wrong++;
    }
    for (int i = 0; i < set; i++) {
        char name[32];
        snprintf(name, sizeof name, "many-%05d", i);
        goshm_off_t got = goshm_name_get(h, name);
        if (i % 2 == 0 ? got != GOSHM_NULL : got != base + (goshm_off_t)(i % 8192) * 8u) wrong++;
        if (i % 2 == 1 && goshm_name_del(h, name) != 0) wrong++;
    }
    CHECK_MSG(wrong == 0, "%d wrong after deletes", wrong);
    CHECK(goshm_name_get(h, "many-00001") == GOSHM_NULL && errno == ENOENT);
    /* The table is reusable: set and delete again. */
    for (int i = 0; i < 5000; i++) {
        char name[32];
        snprintf(name, sizeof name, "again-%d", i);
        if (goshm_name_set(h, name, base) != 0) wrong++;
    }
    for (int i = 0; i < 5000; i++) {
        char name[32];
        snprintf(name, sizeof name, "again-%d", i);
        if (goshm_name_get(h, name) != base || goshm_name_del(h, name) != 0) wrong++;
    }
    CHECK_MSG(wrong == 0, "%d wrong on reuse", wrong);
    goshm_free(h, p);
    goshm_detach(h);
}

/* --max-names-per-uid 10: the 11th entry of this uid is EDQUOT; a delete
 * gives the room back. */
static void test_per_uid(const char *bin)
{
    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, bin, "--size 64M --max-names-per-uid 10") == 0);
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);
    char *p = goshm_malloc(h, 64);
    goshm_off_t off = goshm_off(h, p);
    for (int i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof name, "q%d", i);
        CHECK(goshm_name_set(h, name, off) == 0);
    }
    CHECK(goshm_name_set(h, "q10", off) == -1 && errno == EDQUOT);
    CHECK(goshm_name_set(h, "q0", off) == -1 && errno == EEXIST);
    CHECK(goshm_name_del(h, "q3") == 0);
    CHECK(goshm_name_set(h, "q10", off) == 0);
    CHECK(goshm_name_set(h, "q11", off) == -1 && errno == EDQUOT);
    goshm_free(h, p);
    goshm_detach(h);
    CHECK(gsh_stop(&d) == 0);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--role") == 0) {
        shared_t *sh = map_shared(argv[4]);
        if (!sh) return 2;
        if (strcmp(argv[2], "setter") == 0) return role_setter(argv[3], sh);
        if (strcmp(argv[2], "getter") == 0) return role_getter(argv[3], sh);
        if (strcmp(argv[2], "racer0") == 0) return role_racer(argv[3], sh, 0);
        if (strcmp(argv[2], "racer1") == 0) return role_racer(argv[3], sh, 1);
        if (strcmp(argv[2], "late") == 0) return role_late(argv[3], sh);
        return 3;
    }
    const char *bin = gsh_daemon_path(argc, argv);
    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, bin, "--size 128M --max-names-per-uid 0") == 0);
    char file[] = "/tmp/goshm-names-XXXXXX";
    int fd = mkstemp(file);
    REQUIRE(fd >= 0 && ftruncate(fd, sizeof(shared_t)) == 0);
    close(fd);
    shared_t *sh = map_shared(file);
    REQUIRE(sh);
    test_across_processes(d.sock, file, sh);
    test_bad(d.sock);
    test_race(d.sock, file, sh);
    test_late(&d, file, sh);
    test_many(d.sock);
    gsh_stats_t st;
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK(st.in_use_bytes == 0);
    CHECK(gsh_stop(&d) == 0);
    unlink(file);
    test_per_uid(bin);
    return CHECK_DONE("test-names");
}
