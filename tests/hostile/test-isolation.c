/* SPDX-License-Identifier: MIT */
/* Description: a client under another uid against the memfds it is handed
 * (issue 7, points 3, 4 and 6), with a real goshmd running as root.
 *
 * Two users are created (useradd -r) unless they exist: a victim and an
 * attacker; goshmd allows both (--allow-uid). The victim attaches through
 * libgoshm, writes a few thousand objects (small, tiny, large) with known
 * contents and stays attached. The attacker speaks the protocol itself, so it
 * holds every descriptor a client gets (data memfd read-write, meta memfd
 * read-only, doorbell, its own slot memfd), and tries, one attack per
 * process:
 *   seals     F_ADD_SEALS of F_SEAL_FUTURE_WRITE, WRITE, SHRINK, GROW, SEAL on
 *             the data, meta and slot memfds: every one refused.
 *   truncate  ftruncate of the data and slot memfds (smaller, larger): refused.
 *   fallocate the whole data memfd (and 1 GiB, past its end: refused); the
 *             memfd then holds far more than the heap committed; within a few
 *             housekeeping ticks it is back where it was (st_blocks).
 *   punch     PUNCH_HOLE on every page of the data memfd that is not object
 *             or side-record memory: page 0 (the old header) and the notice
 *             array; the daemon goes on.
 *   overwrite every byte of page 0 (where the layout used to be: notice_off,
 *             side_off/size, max_pages, slots_off...) and of the notice array
 *             written with garbage. Running clients (the victim) allocate and
 *             free small and large objects as before (point 6: they took the
 *             layout once, from the read-only meta header).
 *   proc      open the daemon's and the victim's descriptors and mappings via
 *             /proc/PID/fd, /proc/PID/map_files, /proc/PID/mem: refused; and
 *             no descriptor or mapping the attacker has is the victim's slot
 *             memfd (point 4: it cannot find the victim's ring; it used to be
 *             at data + slots_off + slot * slot_size).
 * After each attack: the victim's objects read back intact, it can allocate
 * and free, a new client (under the attacker's uid) attaches, allocates,
 * verifies, forks (the child maps no slot of its parent's, and gets one of
 * its own at its first refill) and detaches, the daemon is alive, and in_use_bytes and
 * committed_bytes are what they were before the attack.
 * Last, the destructive one: PUNCH_HOLE on every page of the data memfd.
 * Objects and side records read as zero (the attacker's damage to objects,
 * which writing could do as well); the daemon must not crash, keeps serving
 * new clients, its committed_bytes stays its own, and it stops cleanly.
 * Also shown (printed, not asserted): what a process under the victim's own
 * uid can reach (/proc/PID/mem): the same trust domain.
 * Needs root; skipped otherwise (exit 77).
 *
 * Usage: test-isolation GOSHMD [GOSHMCTL]   (with goshmctl: a heap profile is
 *                                         asked for after the overwrite)
 *        TEST_ISOLATION_ONLY=overwrite,proc test-isolation GOSHMD  (triage)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../service/harness.h"
#include "../unit/check.h"
#include "ctlclient.h"
#include "goshm/goshm.h"
#include "segment.h"

#define VICTIM_USER "goshm-tv"
#define ATTACKER_USER "goshm-ta"
#define NOBJ 3000
#define NLARGE 6

static uid_t victim_uid, attacker_uid;
static gid_t victim_gid, attacker_gid;
static gsh_daemon_t D;

/* ---- users ----------------------------------------------------------------- */

static int ensure_user(const char *name, uid_t *uid, gid_t *gid)
{
    struct passwd *pw = getpwnam(name);
    if (!pw) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "useradd -r -M -s /usr/sbin/nologin %s >/dev/null 2>&1", name);
        if (system(cmd) != 0) return -1;
        pw = getpwnam(name);
        if (!pw) return -1;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

static void become(uid_t uid, gid_t gid)
{
    if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
        fprintf(stderr, "cannot become uid %u: %s\n", (unsigned)uid, strerror(errno));
        _exit(3);
    }
}

/* ---- objects with known contents --------------------------------------------- */

static size_t obj_size(int i)
{
    static const size_t sizes[] = {8, 16, 24, 48, 100, 256, 500, 1000, 3000, 8192, 20000, 32768};
    return sizes[i % (int)(sizeof sizes / sizeof sizes[0])];
}
static size_t large_size(int i) { return i % 2 ? (size_t)1 << 20 : 100000u + (size_t)i * 4096u; }
static unsigned char pat(int tag, size_t i) { return (unsigned char)(tag * 151 + (int)i * 13 + (int)(i >> 9)); }
static void fill(unsigned char *p, size_t n, int tag)
{
    for (size_t i = 0; i < n; i++) p[i] = pat(tag, i);
}
static int intact(const unsigned char *p, size_t n, int tag)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat(tag, i)) return 0;
    return 1;
}

/* Allocate, write, verify and free a batch of objects: what any client does.
 * 0 or the number of failures. */
static int churn(goshm_t *h, int tag0)
{
    enum { N = 600 };
    void *p[N];
    int bad = 0;
    for (int i = 0; i < N; i++) {
        size_t n = i % 100 == 99 ? large_size(i) : obj_size(i);
        p[i] = goshm_malloc(h, n);
        if (!p[i]) { bad++; continue; }
        fill(p[i], n, tag0 + i);
    }
    for (int i = 0; i < N; i++) {
        if (!p[i]) continue;
        size_t n = i % 100 == 99 ? large_size(i) : obj_size(i);
        if (!intact(p[i], n, tag0 + i)) bad++;
        goshm_free(h, p[i]);
    }
    return bad;
}

/* The inodes of the slot memfds this process maps (/proc/self/maps); how
 * many (at most max are stored). */
static int slot_inodes(uint64_t *ino, int max)
{
    int n = 0;
    FILE *m = fopen("/proc/self/maps", "r");
    char line[512];
    while (m && fgets(line, sizeof line, m))
        if (strstr(line, "memfd:goshm-slot")) {
            unsigned long long a, b, off, in;
            char perms[8], dev[16];
            if (sscanf(line, "%llx-%llx %7s %llx %15s %llu", &a, &b, perms, &off, dev, &in) == 6) {
                if (n < max) ino[n] = in;
                n++;
            }
        }
    if (m) fclose(m);
    return n;
}

/* ---- the victim ----------------------------------------------------------------- */

/* Commands on `cmd`: 'c' check its objects, 'w' check and churn, 'q' free
 * everything and detach. Answers on `ans`: 'o' ok, 'x' damage found. First,
 * once attached and written: 'r' then its slot memfd's inode (8 bytes). */
static void victim(int cmd, int ans)
{
    become(victim_uid, victim_gid);
    /* As a process its user started would be (setuid cleared the flag):
     * /proc/PID is then open to its own uid, and still closed to others. */
    prctl(PR_SET_DUMPABLE, 1);
    goshm_t *h = goshm_attach(D.sock);
    if (!h) {
        fprintf(stderr, "victim: attach: %s\n", strerror(errno));
        _exit(4);
    }
    static void *obj[NOBJ], *large[NLARGE];
    for (int i = 0; i < NOBJ; i++) {
        obj[i] = goshm_malloc(h, obj_size(i));
        if (!obj[i]) _exit(5);
        fill(obj[i], obj_size(i), i);
    }
    for (int i = 0; i < NLARGE; i++) {
        large[i] = goshm_malloc(h, large_size(i));
        if (!large[i]) _exit(5);
        fill(large[i], large_size(i), 10000 + i);
    }
    /* Our slot memfd's inode, from our own mapping of it. */
    uint64_t ino = 0;
    if (slot_inodes(&ino, 1) != 1) ino = 0;
    if (write(ans, "r", 1) != 1 || write(ans, &ino, sizeof ino) != sizeof ino) _exit(6);
    char c;
    while (read(cmd, &c, 1) == 1) {
        int bad = 0;
        if (c == 'c' || c == 'w') {
            for (int i = 0; i < NOBJ; i++) bad += !intact(obj[i], obj_size(i), i);
            for (int i = 0; i < NLARGE; i++) bad += !intact(large[i], large_size(i), 10000 + i);
            if (bad) fprintf(stderr, "victim: %d objects damaged\n", bad);
            if (c == 'w') bad += churn(h, 20000);
        } else if (c == 'q') {
            for (int i = 0; i < NOBJ; i++) goshm_free(h, obj[i]);
            for (int i = 0; i < NLARGE; i++) goshm_free(h, large[i]);
            goshm_detach(h);
            _exit(0);
        }
        if (write(ans, bad ? "x" : "o", 1) != 1) _exit(6);
    }
    _exit(7);
}

/* ---- the attacker ------------------------------------------------------------------- */

typedef struct raw {
    int sock, fds[4]; /* data, meta, doorbell, slot */
    uint64_t data_size, slot_size;
    uint32_t slot;
    gs_meta_header_t m; /* the layout, from the read-only meta memfd */
} raw_t;

/* Attach by hand, keeping every descriptor. 0 or -1. */
static int raw_attach(raw_t *r)
{
    r->sock = gs_ctl_connect(D.sock);
    if (r->sock < 0) return -1;
    Goshm__Attach at = GOSHM__ATTACH__INIT;
    at.abi_version = GS_ABI_VERSION;
    at.pid = (uint32_t)getpid();
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_ATTACH;
    req.attach = &at;
    Goshm__Reply *rep = NULL;
    if (gs_ctl_send(r->sock, &req) != 0 || gs_ctl_recv(r->sock, &rep, r->fds, 4, 5000) != 4) return -1;
    int ok = rep->msg_case == GOSHM__REPLY__MSG_ATTACH;
    if (ok) {
        r->data_size = rep->attach->data_size;
        r->slot_size = rep->attach->slot_size;
        r->slot = rep->attach->slot;
    }
    goshm__reply__free_unpacked(rep, NULL);
    if (!ok || pread(r->fds[1], &r->m, sizeof r->m, 0) != (ssize_t)sizeof r->m) return -1;
    return 0;
}

static uint64_t blocks(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_blocks * 512u : 0;
}

#define ATT_CHECK(cond, ...)                                  \
    do {                                                      \
        if (!(cond)) {                                        \
            fprintf(stderr, "attacker: " __VA_ARGS__);        \
            fprintf(stderr, "\n");                            \
            fails++;                                          \
        }                                                     \
    } while (0)

static int attack_seals(raw_t *r)
{
    int fails = 0;
    static const int seals[] = {F_SEAL_FUTURE_WRITE, F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_SEAL};
    static const char *names[] = {"FUTURE_WRITE", "WRITE", "SHRINK", "GROW", "SEAL"};
    const int targets[] = {r->fds[0], r->fds[1], r->fds[3]};
    static const char *tnames[] = {"data", "meta", "slot"};
    for (int t = 0; t < 3; t++)
        for (int s = 0; s < 5; s++) {
            errno = 0;
            int rc = fcntl(targets[t], F_ADD_SEALS, seals[s]);
            ATT_CHECK(rc == -1 && errno == EPERM, "F_ADD_SEALS(%s) on the %s memfd: %d (%s)", names[s], tnames[t],
                      rc, strerror(errno));
        }
    return fails;
}

static int attack_truncate(raw_t *r)
{
    int fails = 0;
    const off_t sizes[] = {0, (off_t)(r->data_size / 2), (off_t)(r->data_size * 2)};
    for (int i = 0; i < 3; i++) {
        int rc = ftruncate(r->fds[0], sizes[i]);
        ATT_CHECK(rc == -1, "ftruncate(data, %lld) succeeded", (long long)sizes[i]);
    }
    ATT_CHECK(ftruncate(r->fds[3], 0) == -1, "ftruncate(slot, 0) succeeded");
    ATT_CHECK(ftruncate(r->fds[3], (off_t)r->slot_size * 4) == -1, "ftruncate(slot, larger) succeeded");
    ATT_CHECK((uint64_t)lseek(r->fds[0], 0, SEEK_END) == r->data_size, "the data memfd changed size");
    return fails;
}

static int attack_fallocate(raw_t *r)
{
    int fails = 0;
    uint64_t b0 = blocks(r->fds[0]);
    /* 1 GiB from 0: past the end of a 320 MiB memfd: the grow seal refuses. */
    ATT_CHECK(fallocate(r->fds[0], 0, 0, (off_t)1 << 30) == -1, "fallocate of 1 GiB past the end succeeded");
    ATT_CHECK(fallocate(r->fds[0], FALLOC_FL_KEEP_SIZE, 0, (off_t)1 << 30) == -1,
              "fallocate(KEEP_SIZE) of 1 GiB past the end succeeded");
    /* The whole memfd, within its size: allowed by the kernel. */
    int rc = fallocate(r->fds[0], 0, 0, (off_t)r->data_size);
    uint64_t b1 = blocks(r->fds[0]);
    fprintf(stderr, "attacker: fallocate of the data memfd (%" PRIu64 " MiB): %s; backed %" PRIu64 " -> %" PRIu64
            " MiB\n", r->data_size >> 20, rc ? strerror(errno) : "ok", b0 >> 20, b1 >> 20);
    ATT_CHECK(rc == 0 && b1 > b0 + (r->data_size / 2), "the fallocate did not take (%s)", strerror(errno));
    uint64_t t0 = gsh_now_ms(), b = b1;
    while ((b = blocks(r->fds[0])) > b0 && gsh_now_ms() - t0 < 5000) gsh_sleep_ms(20);
    fprintf(stderr, "attacker: backed %" PRIu64 " KiB after %" PRIu64 " ms (before: %" PRIu64 " KiB)\n", b >> 10,
            gsh_now_ms() - t0, b0 >> 10);
    ATT_CHECK(b <= b0, "the memfd still holds %" PRIu64 " bytes more than before", b - b0);
    /* The slot memfd cannot grow either. */
    ATT_CHECK(fallocate(r->fds[3], 0, 0, (off_t)r->slot_size * 16) == -1, "fallocate past the slot's end succeeded");
    return fails;
}

static int punch(int fd, uint64_t off, uint64_t len)
{
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
}

static int attack_punch(raw_t *r, int everything)
{
    int fails = 0;
    uint64_t end = everything ? r->data_size : r->m.side_off;
    for (uint64_t off = 0; off < end; off += 4096)
        ATT_CHECK(punch(r->fds[0], off, 4096) == 0, "punch at %" PRIu64 ": %s", off, strerror(errno));
    if (!everything)
        for (uint64_t off = r->m.notice_off; off < r->m.arena_off; off += 4096)
            ATT_CHECK(punch(r->fds[0], off, 4096) == 0, "punch at %" PRIu64 ": %s", off, strerror(errno));
    return fails;
}

static int attack_overwrite(raw_t *r)
{
    int fails = 0;
    char *d = mmap(NULL, r->m.arena_off, PROT_READ | PROT_WRITE, MAP_SHARED, r->fds[0], 0);
    ATT_CHECK(d != MAP_FAILED, "mmap data: %s", strerror(errno));
    if (d == MAP_FAILED) return fails;
    /* The old header's fields, by their old offsets, with the values that
     * used to kill running clients; then garbage over all of page 0. */
    uint64_t *w = (uint64_t *)d;
    w[4] = 0;                 /* slots_off */
    w[6] = ~UINT64_C(0);      /* side_off */
    w[7] = 1;                 /* side_size */
    w[9] = 0;                 /* max_pages */
    w[12] = r->data_size - 8; /* notice_off */
    for (size_t i = 13; i < r->m.side_off / 8; i++) w[i] = 0xa5a5a5a5a5a5a5a5ull ^ i;
    /* The notice array, committed or not (links and flags of garbage), and
     * the heap profile's region after it (prof_off: the daemon reads it for
     * `goshmctl profile`). */
    memset(d + r->m.notice_off, 0xa5, r->m.arena_off - r->m.notice_off > (8u << 20) ? 8u << 20
                                                                                     : r->m.arena_off - r->m.notice_off);
    munmap(d, r->m.arena_off);
    return fails;
}

static uint64_t victim_slot_ino;

static int attack_proc(raw_t *r, pid_t daemon_pid, pid_t victim_pid)
{
    int fails = 0;
    char path[128];
    pid_t pids[2] = {daemon_pid, victim_pid};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "/proc/%d/fd", (int)pids[k]);
        DIR *dir = opendir(path);
        ATT_CHECK(!dir, "%s can be listed", path);
        if (dir) closedir(dir);
        for (int fd = 0; fd < 256; fd++) {
            snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pids[k], fd);
            int o = open(path, O_RDWR);
            if (o < 0) o = open(path, O_RDONLY);
            ATT_CHECK(o < 0, "%s opened", path);
            if (o >= 0) close(o);
        }
        snprintf(path, sizeof path, "/proc/%d/mem", (int)pids[k]);
        int o = open(path, O_RDWR);
        ATT_CHECK(o < 0, "%s opened", path);
        if (o >= 0) close(o);
        snprintf(path, sizeof path, "/proc/%d/map_files", (int)pids[k]);
        dir = opendir(path);
        struct dirent *e;
        while (dir && (e = readdir(dir))) {
            if (e->d_name[0] == '.') continue;
            char f[400];
            snprintf(f, sizeof f, "%s/%s", path, e->d_name);
            o = open(f, O_RDONLY);
            ATT_CHECK(o < 0, "%s opened", f);
            if (o >= 0) close(o);
        }
        if (dir) closedir(dir);
    }
    /* Nothing we hold, nor anything we map, is the victim's slot memfd. */
    ATT_CHECK(victim_slot_ino != 0, "the victim's slot inode is unknown");
    for (int fd = 0; fd < 1024; fd++) {
        struct stat st;
        if (fstat(fd, &st) == 0)
            ATT_CHECK((uint64_t)st.st_ino != victim_slot_ino || fd == -1, "our fd %d is the victim's slot memfd", fd);
    }
    struct stat own;
    ATT_CHECK(fstat(r->fds[3], &own) == 0 && (uint64_t)own.st_ino != victim_slot_ino, "we got the victim's slot");
    /* Map our own slot: the only slot memfd we can map is ours. */
    void *sp = mmap(NULL, r->slot_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fds[3], 0);
    ATT_CHECK(sp != MAP_FAILED, "mmap of our own slot: %s", strerror(errno));
    uint64_t ino[4];
    int n = slot_inodes(ino, 4);
    ATT_CHECK(n == 1 && ino[0] == (uint64_t)own.st_ino, "%d slot memfds mapped", n);
    /* The data memfd holds no ring any more: no gs_slot_t, no gs_ring_t,
     * whose place a client used to compute from the header. Its pages
     * before the side records are the notice head only (and zeros). */
    const uint64_t *d = mmap(NULL, r->m.side_off, PROT_READ, MAP_SHARED, r->fds[0], 0);
    ATT_CHECK(d != MAP_FAILED, "mmap data: %s", strerror(errno));
    if (d != MAP_FAILED) {
        size_t nz = 0;
        for (size_t i = 1; i < r->m.side_off / 8u; i++) nz += d[i] != 0;
        ATT_CHECK(nz == 0, "%zu nonzero words in the data memfd's first %" PRIu64 " bytes", nz, r->m.side_off);
        munmap((void *)d, r->m.side_off);
    }
    return fails;
}

enum { A_SEALS, A_TRUNCATE, A_FALLOCATE, A_PROC, A_PUNCH, A_OVERWRITE, A_PUNCH_ALL, A_N };
static const char *attack_names[A_N] = {"seals", "truncate", "fallocate", "proc", "punch", "overwrite", "punch-all"};

static void attacker(int which, pid_t victim_pid)
{
    become(attacker_uid, attacker_gid);
    raw_t r;
    memset(&r, 0, sizeof r);
    if (raw_attach(&r) != 0) {
        fprintf(stderr, "attacker: cannot attach\n");
        _exit(20);
    }
    int fails = 0;
    switch (which) {
    case A_SEALS: fails = attack_seals(&r); break;
    case A_TRUNCATE: fails = attack_truncate(&r); break;
    case A_FALLOCATE: fails = attack_fallocate(&r); break;
    case A_PUNCH: fails = attack_punch(&r, 0); break;
    case A_OVERWRITE: fails = attack_overwrite(&r); break;
    case A_PROC: fails = attack_proc(&r, D.pid, victim_pid); break;
    case A_PUNCH_ALL: fails = attack_punch(&r, 1); break;
    }
    _exit(fails ? 1 : 0);
}

/* A new client under the attacker's uid: attach, churn, fork (the child
 * must not keep the parent's slot: it gets one of its own), detach. */
static void newcomer(void)
{
    become(attacker_uid, attacker_gid);
    goshm_t *h = goshm_attach(D.sock);
    if (!h) {
        fprintf(stderr, "newcomer: attach: %s\n", strerror(errno));
        _exit(30);
    }
    int bad = churn(h, 5000);
    uint64_t mine = 0;
    if (slot_inodes(&mine, 1) != 1) {
        fprintf(stderr, "newcomer: not exactly one slot memfd mapped\n");
        bad++;
    }
    fflush(NULL);
    pid_t c = fork();
    if (c == 0) {
        uint64_t ino[4];
        int before = slot_inodes(ino, 4); /* the parent's slot is gone from our view */
        int cbad = churn(h, 7000);        /* reattaches: a slot of our own */
        int after = slot_inodes(ino, 4);
        if (before != 0 || after != 1 || ino[0] == mine) {
            fprintf(stderr, "fork child: %d slot mappings before, %d after (inode %llu, parent's %llu)\n", before,
                    after, (unsigned long long)ino[0], (unsigned long long)mine);
            cbad++;
        }
        goshm_detach(h);
        _exit(cbad ? 1 : 0);
    }
    if (gsh_wait_child(c, 30000) != 0) {
        fprintf(stderr, "newcomer: its fork child failed\n");
        bad++;
    }
    if (bad) fprintf(stderr, "newcomer: %d objects failed\n", bad);
    goshm_detach(h);
    _exit(bad ? 31 : 0);
}

static int run_child(void (*fn)(int, pid_t), int which, pid_t vp)
{
    fflush(NULL);
    pid_t p = fork();
    if (p == 0) {
        fn(which, vp);
        _exit(99);
    }
    return gsh_wait_child(p, 60000);
}
static void newcomer_fn(int which, pid_t vp) { (void)which; (void)vp; newcomer(); }

static char ask(int cmd, int ans, char c)
{
    char r = 0;
    if (write(cmd, &c, 1) != 1 || read(ans, &r, 1) != 1) return 0;
    return r;
}

int main(int argc, char **argv)
{
    const char *bin = gsh_daemon_path(argc, argv);
    if (geteuid() != 0) {
        fprintf(stderr, "test-isolation: needs root (to create users and act as them): skipped\n");
        return GSH_SKIP;
    }
    if (ensure_user(VICTIM_USER, &victim_uid, &victim_gid) || ensure_user(ATTACKER_USER, &attacker_uid, &attacker_gid)) {
        fprintf(stderr, "test-isolation: cannot create users (useradd): skipped\n");
        return GSH_SKIP;
    }
    char args[256];
    snprintf(args, sizeof args, "--size 256M --scavenge-delay 0 --allow-uid %u,%u", (unsigned)victim_uid,
             (unsigned)attacker_uid);
    REQUIRE(gsh_start(&D, bin, args) == 0);
    REQUIRE(chmod(D.dir, 0755) == 0); /* mkdtemp made it 0700; the clients are not root */

    int cmdp[2], ansp[2];
    REQUIRE(pipe(cmdp) == 0 && pipe(ansp) == 0);
    fflush(NULL);
    pid_t vp = fork();
    REQUIRE(vp >= 0);
    if (vp == 0) {
        close(cmdp[1]);
        close(ansp[0]);
        setenv("GOSHM_DEBUG", "badfree=warn", 1); /* the last attack zeroes its side records */
        victim(cmdp[0], ansp[1]);
    }
    close(cmdp[0]);
    close(ansp[1]);
    int cmd = cmdp[1], ans = ansp[0];
    char r = 0;
    REQUIRE(read(ans, &r, 1) == 1 && r == 'r');
    REQUIRE(read(ans, &victim_slot_ino, sizeof victim_slot_ino) == sizeof victim_slot_ino);
    CHECK(victim_slot_ino != 0);

    gsh_stats_t st0, st;
    REQUIRE(gsh_settle(D.sock, 1, &st0) == 0);
    fprintf(stderr, "before: in_use %" PRIu64 " committed %" PRIu64 " metadata %" PRIu64 "\n", st0.in_use_bytes,
            st0.committed_bytes, st0.metadata_bytes);

    const char *only = getenv("TEST_ISOLATION_ONLY"); /* triage: a comma-separated list of attacks */
    for (int a = 0; a < A_N; a++) {
        if (only && !strstr(only, attack_names[a])) continue;
        fprintf(stderr, "--- attack: %s\n", attack_names[a]);
        int rc = run_child(attacker, a, vp);
        CHECK_MSG(rc == 0, "attack %s: the attacker saw the heap give way (exit %d)", attack_names[a], rc);
        CHECK_MSG(gsh_alive(&D), "attack %s: the daemon died", attack_names[a]);
        if (!gsh_alive(&D)) break;
        if (a == A_PUNCH_ALL) {
            /* Objects are gone (read as zero); the heap is not. */
            CHECK_MSG(run_child(newcomer_fn, 0, 0) == 0, "after %s: a new client failed", attack_names[a]);
            CHECK_MSG(gsh_settle(D.sock, 1, &st) == 0, "after %s: no stats", attack_names[a]);
            /* Zeroed side records say "nothing allocated": the heap may
             * sweep the victim's spans free (objects lost). Its accounting
             * follows its own records: never more than before. */
            CHECK_MSG(st.committed_bytes <= st0.committed_bytes && st.in_use_bytes <= st0.in_use_bytes,
                      "after %s: committed %" PRIu64 " in_use %" PRIu64 ", was %" PRIu64 " %" PRIu64,
                      attack_names[a], st.committed_bytes, st.in_use_bytes, st0.committed_bytes, st0.in_use_bytes);
            continue;
        }
        if (a == A_OVERWRITE && argc > 2) {
            /* The daemon reads the garbled profile region: it may refuse,
             * it must not fall over. */
            char c[600];
            snprintf(c, sizeof c, "%s --socket %s profile -o %s/profile.pb.gz >/dev/null 2>&1", argv[2], D.sock, D.dir);
            int prc = system(c);
            fprintf(stderr, "goshmctl profile over a garbled region: exit %d\n", WIFEXITED(prc) ? WEXITSTATUS(prc) : -1);
            CHECK_MSG(gsh_alive(&D), "the daemon died reading a garbled profile region");
        }
        CHECK_MSG(ask(cmd, ans, 'c') == 'o', "attack %s: the victim's objects were damaged", attack_names[a]);
        CHECK_MSG(run_child(newcomer_fn, 0, 0) == 0, "after %s: a new client failed", attack_names[a]);
        CHECK_MSG(ask(cmd, ans, 'w') == 'o', "after %s: the victim cannot allocate and free", attack_names[a]);
        CHECK_MSG(gsh_settle(D.sock, 1, &st) == 0, "after %s: no stats", attack_names[a]);
        CHECK_MSG(st.in_use_bytes == st0.in_use_bytes, "after %s: in_use %" PRIu64 ", was %" PRIu64,
                  attack_names[a], st.in_use_bytes, st0.in_use_bytes);
        CHECK_MSG(st.committed_bytes <= st0.committed_bytes + (UINT64_C(16) << 20),
                  "after %s: committed %" PRIu64 ", was %" PRIu64, attack_names[a], st.committed_bytes,
                  st0.committed_bytes);
    }

    /* The same uid is the same trust domain: a process of the victim's uid
     * can read and write its memory (printed, not asserted). */
    fflush(NULL);
    pid_t same = fork();
    if (same == 0) {
        become(victim_uid, victim_gid);
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/mem", (int)vp);
        int o = open(path, O_RDWR);
        fprintf(stderr, "same uid: %s %s\n", path, o >= 0 ? "opened read-write" : strerror(errno));
        _exit(0);
    }
    gsh_wait_child(same, 10000);

    CHECK(write(cmd, "q", 1) == 1);
    int vrc = gsh_wait_child(vp, 30000);
    fprintf(stderr, "victim exit: %d\n", vrc);
    CHECK_MSG(vrc >= 0, "the victim crashed after the attacks");
    /* Every client gone. No object is in use. The victim's small spans came
     * back (at reclaim, or swept free once their records read as zero); its
     * large objects, whose records were punched, were refused as bad frees
     * and are lost: at most those pages stay in spans. */
    uint64_t lost_max = 0;
    for (int i = 0; i < NLARGE; i++) lost_max += (large_size(i) + 8191u) / 8192u * 8192u;
    gsh_settle_idle(D.sock, &st); /* idle or not: checked here */
    fprintf(stderr, "after all: in_use %" PRIu64 " span_bytes %" PRIu64 " (victim's large objects: %" PRIu64 ")\n",
            st.in_use_bytes, st.span_bytes, lost_max);
    CHECK_MSG(st.clients == 0 && st.in_use_bytes == 0 && st.span_bytes <= lost_max,
              "the heap did not empty: %u clients, in_use %" PRIu64 " span_bytes %" PRIu64, st.clients,
              st.in_use_bytes, st.span_bytes);
    CHECK_MSG(gsh_stop(&D) == 0, "the daemon did not stop cleanly");
    return CHECK_DONE("test-isolation");
}
