/* SPDX-License-Identifier: MIT */
/* test-names-restart.c: Description: the names directory survives its daemon: names set before a SIGKILL are there after the next goshmd adopts the heap (read lock-free even while no daemon runs, by a client that rode through and by a fresh one), and a daemon killed in the middle of a NameSet (GOSHM_KILLPOINT=name-write:N, daemon/killpoint.c) leaves, after adoption, exactly the names whose NameSet completed before: the one cut short is undone, and can be set again.
 *
 * Overview of the engine: shm/overview.h; the directory: shm/names.h,
 * daemon/names.c; the undo log: daemon/intent.c; adoption: daemon/adopt.c.
 *
 * Usage: test-names-restart GOSHMD                    (also $GOSHMD)
 *        test-names-restart --role ROLE SOCKET FILE N  (internal)
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
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "ctlclient.h"
#include "goshm.pb-c.h"
#include "goshm/goshm.h"
#include "rdaemon.h"

#define NAMES 200
#define EXTRA 8 /* names the killed setter tries beyond the kill */

typedef struct shared {
    _Atomic int started;     /* setter: attached, object allocated */
    _Atomic int done;        /* setter: NameSets answered */
    goshm_off_t off;         /* setter: the offset it names */
    _Atomic int bad;         /* a role's check failed */
} shared_t;

static shared_t *map_shared(const char *file)
{
    int fd = open(file, O_RDWR);
    if (fd < 0) return NULL;
    void *p = mmap(NULL, sizeof(shared_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

static void name_of(char *buf, size_t n, const char *prefix, int i) { snprintf(buf, n, "%s-%d", prefix, i); }

/* Role "setter" (killed with its daemon): set kp-N-0, kp-N-1, ... */
static int role_setter(const char *sock, shared_t *sh, int n)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 10;
    char *p = goshm_malloc(h, 128);
    if (!p) return 11;
    sh->off = goshm_off(h, p);
    atomic_store(&sh->started, 1);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "kp-%d", n);
    for (int i = 0; i < n + EXTRA; i++) {
        char name[48];
        name_of(name, sizeof name, prefix, i);
        if (goshm_name_set(h, name, sh->off) != 0) {
            atomic_store(&sh->bad, 1);
            return 12;
        }
        atomic_fetch_add(&sh->done, 1);
    }
    return 0;
}

/* Role "deleter" (killed with its daemon): delete del-0, del-1, ... */
static int role_deleter(const char *sock, shared_t *sh, int n)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 30;
    atomic_store(&sh->started, 1);
    for (int i = 0; i < n; i++) {
        char name[48];
        name_of(name, sizeof name, "del", i);
        if (goshm_name_del(h, name) != 0) {
            atomic_store(&sh->bad, 1);
            return 31;
        }
        atomic_fetch_add(&sh->done, 1);
    }
    return 0;
}

/* Role "check": a fresh process sees the names set before the restart. */
static int role_check(const char *sock, shared_t *sh, int n)
{
    (void)sh;
    goshm_t *h = goshm_attach(sock);
    if (!h) return 20;
    goshm_off_t base = goshm_name_get(h, "base");
    if (base == GOSHM_NULL) return 21;
    for (int i = 0; i < n; i++) {
        char name[48];
        name_of(name, sizeof name, "keep", i);
        if (goshm_name_get(h, name) != base + (goshm_off_t)i * 16u) return 22;
        const uint64_t *v = goshm_ptr(h, base + (goshm_off_t)i * 16u);
        if (!v || *v != UINT64_C(0xfeed0000) + (uint64_t)i) return 23;
    }
    for (int i = 0; i < n; i += 2) {
        char name[48];
        name_of(name, sizeof name, "keep", i);
        if (goshm_name_del(h, name) != 0) return 24;
    }
    goshm_detach(h);
    return 0;
}

static rd_t D;
static int daemon_live(const char *sock);

static pid_t spawn(const char *role, const char *file, int n)
{
    char num[16];
    snprintf(num, sizeof num, "%d", n);
    char *argv[] = {"test-names-restart", "--role", (char *)role, D.sock, (char *)file, num, NULL};
    return gsh_spawn_self(argv);
}

/* Names set, the daemon SIGKILLed, a new one adopts: all there. */
static void test_survive(const char *file)
{
    goshm_t *h = goshm_attach(D.sock);
    REQUIRE(h);
    uint64_t *objs = goshm_malloc(h, NAMES * 16u);
    REQUIRE(objs);
    goshm_off_t base = goshm_off(h, objs);
    CHECK(goshm_name_set(h, "base", base) == 0);
    for (int i = 0; i < NAMES; i++) {
        objs[2 * i] = UINT64_C(0xfeed0000) + (uint64_t)i;
        char name[48];
        name_of(name, sizeof name, "keep", i);
        CHECK(goshm_name_set(h, name, base + (goshm_off_t)i * 16u) == 0);
    }
    rd_stop(&D, SIGKILL);
    /* No daemon: lookups need none. */
    int wrong = 0;
    for (int i = 0; i < NAMES; i++) {
        char name[48];
        name_of(name, sizeof name, "keep", i);
        if (goshm_name_get(h, name) != base + (goshm_off_t)i * 16u) wrong++;
    }
    CHECK_MSG(wrong == 0, "%d names wrong while no daemon runs", wrong);
    REQUIRE(rd_start(&D, "256M", NULL) == 0);
    gsh_stats_t st;
    CHECK(gsh_stats(D.sock, &st) == 0 && st.adopted);
    pid_t c = spawn("check", file, NAMES);
    CHECK(gsh_wait_child(c, 30000) == 0);
    /* This process rode through: its handle sets and reads again. */
    for (int i = 0; i < NAMES; i++) {
        char name[48];
        name_of(name, sizeof name, "keep", i);
        goshm_off_t got = goshm_name_get(h, name);
        if (i % 2 == 0 ? got != GOSHM_NULL : got != base + (goshm_off_t)i * 16u) wrong++;
        if (i % 2 == 1 && goshm_name_del(h, name) != 0) wrong++;
    }
    CHECK_MSG(wrong == 0, "%d names wrong after the adoption", wrong);
    CHECK(goshm_name_set(h, "keep-0", base) == 0);
    CHECK(goshm_name_set(h, "keep-0", base) == -1 && errno == EEXIST);
    CHECK(goshm_name_del(h, "keep-0") == 0);
    CHECK(goshm_name_del(h, "base") == 0);
    goshm_free(h, objs);
    CHECK(goshm_detach(h) == 0);
}

/* The daemon dies at its Nth directory write (the Nth NameSet of a
 * setter, with the entry's seqlock odd and its bytes written): after
 * adoption the first N-1 names are there, the Nth is not. */
static void test_killpoint(const char *file, shared_t *sh, int n)
{
    rd_stop(&D, SIGTERM);
    char kp[32];
    snprintf(kp, sizeof kp, "name-write:%d", n);
    REQUIRE(rd_spawn(&D, "256M", NULL, kp) == 0 && rd_ready(&D, 10000) == 0);
    memset(sh, 0, sizeof *sh);
    pid_t s = spawn("setter", file, n);
    REQUIRE(s > 0);
    int status = rd_reap(&D, 20000);
    CHECK_MSG(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "kill point %s not reached", kp);
    kill(s, SIGKILL); /* no retry after the restart: the cut NameSet stays cut */
    waitpid(s, NULL, 0);
    CHECK(atomic_load(&sh->done) == n - 1);
    REQUIRE(rd_start(&D, "256M", NULL) == 0);
    goshm_t *h = goshm_attach(D.sock);
    REQUIRE(h);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "kp-%d", n);
    int wrong = 0;
    for (int i = 0; i < n + EXTRA; i++) {
        char name[48];
        name_of(name, sizeof name, prefix, i);
        goshm_off_t got = goshm_name_get(h, name);
        if (i < n - 1 ? got != sh->off : got != GOSHM_NULL || errno != ENOENT) {
            fprintf(stderr, "%s: got %llu\n", name, (unsigned long long)got);
            wrong++;
        }
    }
    CHECK_MSG(wrong == 0, "kill at write %d: %d names not as before the cut NameSet", n, wrong);
    /* The cut one can be set now (counts and table agree), then all go. */
    char name[48];
    name_of(name, sizeof name, prefix, n - 1);
    CHECK(goshm_name_set(h, name, sh->off) == 0);
    for (int i = 0; i < n; i++) {
        name_of(name, sizeof name, prefix, i);
        if (goshm_name_del(h, name) != 0) wrong++;
    }
    CHECK(wrong == 0);
    CHECK(daemon_live(D.sock) == 0);
    CHECK(goshm_detach(h) == 0);
}

/* Live entries as the daemon counts them (NameList). -1 on error. */
static int daemon_live(const char *sock)
{
    int fd = gs_ctl_connect(sock);
    if (fd < 0) return -1;
    Goshm__NameList m = GOSHM__NAME_LIST__INIT;
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_NAME_LIST;
    req.name_list = &m;
    Goshm__Reply *rep = NULL;
    int live = -1;
    if (gs_ctl_send(fd, &req) == 0 && gs_ctl_recv(fd, &rep, NULL, 0, 5000) >= 0) {
        if (rep->msg_case == GOSHM__REPLY__MSG_NAME_LIST) live = (int)rep->name_list->live;
        goshm__reply__free_unpacked(rep, NULL);
    }
    close(fd);
    return live;
}

/* The daemon dies at its Nth directory write while a process deletes
 * names (a delete writes a tombstone, and may turn tombstones back into
 * free buckets: more than one write): after adoption every name deleted
 * before the cut is gone, every later one is there, the one being deleted
 * is one or the other, and the daemon's count matches. */
static void test_killpoint_del(const char *file, shared_t *sh, int n)
{
    const int total = 24;
    goshm_t *h = goshm_attach(D.sock);
    REQUIRE(h);
    char *obj = goshm_malloc(h, 64);
    REQUIRE(obj);
    goshm_off_t off = goshm_off(h, obj);
    for (int i = 0; i < total; i++) {
        char name[48];
        name_of(name, sizeof name, "del", i);
        CHECK(goshm_name_set(h, name, off) == 0);
    }
    CHECK(goshm_detach(h) == 0);
    rd_stop(&D, SIGTERM);
    char kp[32];
    snprintf(kp, sizeof kp, "name-write:%d", n);
    REQUIRE(rd_spawn(&D, "256M", NULL, kp) == 0 && rd_ready(&D, 10000) == 0);
    memset(sh, 0, sizeof *sh);
    pid_t s = spawn("deleter", file, total);
    REQUIRE(s > 0);
    int status = rd_reap(&D, 20000);
    CHECK_MSG(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "kill point %s not reached", kp);
    kill(s, SIGKILL);
    waitpid(s, NULL, 0);
    int done = atomic_load(&sh->done);
    REQUIRE(rd_start(&D, "256M", NULL) == 0);
    h = goshm_attach(D.sock);
    REQUIRE(h);
    int wrong = 0, present = 0;
    for (int i = 0; i < total; i++) {
        char name[48];
        name_of(name, sizeof name, "del", i);
        goshm_off_t got = goshm_name_get(h, name);
        if (got != GOSHM_NULL) present++;
        if (got != GOSHM_NULL && got != off) wrong++;
        if (i < done && got != GOSHM_NULL) wrong++;
        if (i > done && got != off) wrong++;
    }
    CHECK_MSG(wrong == 0, "kill at write %d during deletes (%d done): %d names wrong", n, done, wrong);
    CHECK_MSG(daemon_live(D.sock) == present, "the daemon counts %d entries, %d are there", daemon_live(D.sock),
              present);
    for (int i = 0; i < total; i++) {
        char name[48];
        name_of(name, sizeof name, "del", i);
        goshm_name_del(h, name);
    }
    CHECK(daemon_live(D.sock) == 0);
    goshm_free(h, obj);
    CHECK(goshm_detach(h) == 0);
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "--role") == 0) {
        shared_t *sh = map_shared(argv[4]);
        if (!sh) return 2;
        int n = atoi(argv[5]);
        if (strcmp(argv[2], "setter") == 0) return role_setter(argv[3], sh, n);
        if (strcmp(argv[2], "check") == 0) return role_check(argv[3], sh, n);
        if (strcmp(argv[2], "deleter") == 0) return role_deleter(argv[3], sh, n);
        return 3;
    }
    setvbuf(stderr, NULL, _IONBF, 0);
    rd_init(&D, gsh_daemon_path(argc, argv));
    setenv("GOSHM_RECONNECT_S", "30", 1);
    REQUIRE(rd_start(&D, "256M", NULL) == 0);
    char file[160];
    snprintf(file, sizeof file, "%s/shared", D.dir);
    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0 && ftruncate(fd, sizeof(shared_t)) == 0);
    close(fd);
    shared_t *sh = map_shared(file);
    REQUIRE(sh);
    test_survive(file);
    const int points[] = {1, 2, 7, 40};
    for (unsigned i = 0; i < sizeof points / sizeof points[0]; i++) test_killpoint(file, sh, points[i]);
    const int del_points[] = {1, 2, 3, 5, 8, 13};
    for (unsigned i = 0; i < sizeof del_points / sizeof del_points[0]; i++) test_killpoint_del(file, sh, del_points[i]);
    rd_stop(&D, SIGTERM);
    rd_cleanup(&D);
    return CHECK_DONE("test-names-restart");
}
