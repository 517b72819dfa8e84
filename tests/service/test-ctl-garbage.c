/* SPDX-License-Identifier: MIT */
/* test-ctl-garbage.c: Description: the control socket survives hostile input.
 *
 * Overview of the engine: shm/overview.h; the protocol: proto/goshm.proto; the
 * daemon's side: daemon/ctl.c. Starts the real goshmd (argv[1] or $GOSHMD;
 * $GOSHMD_ARGS and further arguments are passed to it, e.g. --force-epoll)
 * on a socket in a fresh
 * directory, then sends random garbage, a truncated Request, an empty packet,
 * a 100 KiB packet, a packet carrying a descriptor, a Request without a
 * message, Detach before Attach, a double Attach, a wrong ABI version, a
 * peer whose uid is not allowed (when run as root) and one client too many. Each must be answered with the right Error code (or the
 * connection closed) and the daemon must still serve a StatsRequest on a fresh
 * connection afterwards. Ends with SIGTERM while a client is attached: exit
 * status 0 and the socket file gone.
 *
 * Exit: 0 pass, 1 fail, 77 skipped (no goshmd given).
 */
#define _GNU_SOURCE
#include <errno.h>      /* errno */
#include <fcntl.h>      /* fcntl */
#include <grp.h>        /* setgroups */
#include <poll.h>       /* poll */
#include <signal.h>     /* kill, SIGTERM */
#include <stdbool.h>    /* bool */
#include <stdint.h>     /* uint*_t */
#include <stdio.h>      /* fprintf */
#include <stdlib.h>     /* malloc, mkdtemp */
#include <string.h>     /* memcpy, strstr */
#include <sys/mman.h>   /* mmap */
#include <sys/prctl.h>  /* PR_SET_PDEATHSIG */
#include <sys/socket.h> /* socket, sendmsg, recvmsg */
#include <sys/stat.h>   /* chmod */
#include <sys/un.h>     /* sockaddr_un */
#include <sys/wait.h>   /* waitpid */
#include <time.h>       /* clock_gettime, nanosleep */
#include <unistd.h>     /* fork, execv */

#include "check.h"
#include "clock.h"
#include "ctlclient.h"
#include "goshm.pb-c.h"
#include "segment.h" /* GS_ABI_VERSION, gs_seg_header_t */

#define MAX_CLIENTS 3
#define ALLOWED_UID 65533     /* --allow-uid: served */
#define ALLOWED_UID_S "65533"
#define DENIED_UID 65534      /* nobody: refused with EPERM */
#define GARBAGE_PACKETS 200
#define REPLY_TIMEOUT_MS 5000
#define MAX_PACKET (64u * 1024u)

static char dir[64];
static char sock_path[128];
static pid_t daemon_pid;
static int attached_fds[MAX_CLIENTS]; /* left attached for the SIGTERM check */

static uint64_t now_ms(void) { return gs_now_ns() / 1000000u; }

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
}

/* xorshift64*: deterministic garbage, the same on every run. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

/* ---- talking to the daemon ------------------------------------------------- */

/* The well-formed side of the conversation goes through the protocol
 * client libgoshm and goshmctl use (proto/ctlclient.h); the garbage below
 * is hand-made. */
static int connect_daemon(void)
{
    int fd = gs_ctl_connect(sock_path);
    return fd < 0 ? -1 : fd;
}

static int send_packet(int fd, const void *buf, size_t len, int pass_fd)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    union {
        struct cmsghdr hdr;
        char space[CMSG_SPACE(sizeof(int))];
    } cbuf;
    if (pass_fd >= 0) {
        memset(&cbuf, 0, sizeof cbuf);
        mh.msg_control = cbuf.space;
        mh.msg_controllen = sizeof cbuf.space;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
    }
    return sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

static int send_request(int fd, const Goshm__Request *req)
{
    size_t len = goshm__request__get_packed_size(req);
    uint8_t *buf = malloc(len + 1);
    if (!buf) return -1;
    goshm__request__pack(req, buf);
    int rc = send_packet(fd, buf, len, -1);
    free(buf);
    return rc;
}

typedef struct reply {
    Goshm__Reply *msg; /* NULL: none */
    int fds[4];
    unsigned nfds;
    bool closed;       /* EOF or ECONNRESET instead of a reply */
    bool timeout;
} reply_t;

static void reply_free(reply_t *r)
{
    if (r->msg) goshm__reply__free_unpacked(r->msg, NULL);
    for (unsigned i = 0; i < r->nfds; i++) close(r->fds[i]);
    memset(r, 0, sizeof *r);
}

static void recv_reply(int fd, reply_t *r)
{
    memset(r, 0, sizeof *r);
    int n = gs_ctl_recv(fd, &r->msg, r->fds, 4, REPLY_TIMEOUT_MS);
    if (n >= 0) r->nfds = (unsigned)n;
    else if (n == -ETIMEDOUT) r->timeout = true;
    else if (n != -EPROTO && n != -EMSGSIZE) r->closed = true;
    if (!r->msg) r->nfds = 0;
}

static int error_code(const reply_t *r)
{
    if (!r->msg || r->msg->msg_case != GOSHM__REPLY__MSG_ERROR || !r->msg->error) return 0;
    return r->msg->error->code;
}

/* After an Error the daemon must close the connection. */
static bool is_closed(int fd)
{
    reply_t r;
    recv_reply(fd, &r);
    bool closed = r.closed;
    reply_free(&r);
    return closed;
}

/* Send `len` raw bytes on a fresh connection; expect Error `code` and then
 * the connection closed (`closed_ok`: a closed connection without the Error
 * is accepted too). */
static void expect_error_raw(const char *what, const void *buf, size_t len, int pass_fd, int code, bool closed_ok)
{
    int fd = connect_daemon();
    CHECK_MSG(fd >= 0, "%s: connect: %s", what, strerror(errno));
    if (fd < 0) return;
    CHECK_MSG(send_packet(fd, buf, len, pass_fd) == 0, "%s: send: %s", what, strerror(errno));
    reply_t r;
    recv_reply(fd, &r);
    if (r.closed && closed_ok) {
        reply_free(&r);
        close(fd);
        return;
    }
    CHECK_MSG(error_code(&r) == code, "%s: expected error %d (%s), got %s %d", what, code, strerrorname_np(code),
              r.timeout ? "timeout" : r.closed ? "closed" : !r.msg ? "garbage" : "reply/error",
              error_code(&r));
    CHECK_MSG(r.nfds == 0, "%s: an error carried descriptors", what);
    reply_free(&r);
    CHECK_MSG(is_closed(fd), "%s: connection still open after the error", what);
    close(fd);
}

static void expect_error(const char *what, const Goshm__Request *req, int code)
{
    size_t len = goshm__request__get_packed_size(req);
    uint8_t *buf = malloc(len + 1);
    REQUIRE(buf);
    goshm__request__pack(req, buf);
    expect_error_raw(what, buf, len, -1, code, false);
    free(buf);
}

/* A StatsRequest on a fresh connection must be answered. Returns the number
 * of attached clients it reports, or -1. */
static int stats_ok(const char *after)
{
    int fd = connect_daemon();
    CHECK_MSG(fd >= 0, "stats after %s: connect: %s", after, strerror(errno));
    if (fd < 0) return -1;
    Goshm__StatsRequest sr = GOSHM__STATS_REQUEST__INIT;
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_STATS;
    req.stats = &sr;
    send_request(fd, &req);
    reply_t r;
    recv_reply(fd, &r);
    bool ok = r.msg && r.msg->msg_case == GOSHM__REPLY__MSG_STATS && r.msg->stats;
    CHECK_MSG(ok, "stats after %s: no StatsReply", after);
    int clients = -1;
    if (ok) {
        const Goshm__StatsReply *s = r.msg->stats;
        CHECK_MSG(s->daemon_pid == (uint32_t)daemon_pid, "stats after %s: daemon_pid %u", after, s->daemon_pid);
        CHECK_MSG(s->heap && s->heap->reserved_bytes >= (UINT64_C(256) << 20), "stats after %s: reserved", after);
        CHECK_MSG(s->n_classes == GS_NUM_SIZE_CLASSES - 1, "stats after %s: %zu classes", after, s->n_classes);
        CHECK_MSG(s->backend && (strcmp(s->backend, "io_uring") == 0 || strcmp(s->backend, "epoll") == 0),
                  "stats after %s: backend '%s'", after, s->backend ? s->backend : "(null)");
        clients = (int)s->n_clients;
    }
    reply_free(&r);
    close(fd);
    return clients;
}

static Goshm__Request attach_request(Goshm__Attach *a, uint32_t abi)
{
    goshm__attach__init(a);
    a->abi_version = abi;
    a->pid = (uint32_t)getpid();
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_ATTACH;
    req.attach = a;
    return req;
}

/* Attach on fd; check the reply and its three descriptors. Slot or -1. */
static int attach(int fd, const char *what)
{
    Goshm__Attach a;
    Goshm__Request req = attach_request(&a, GS_ABI_VERSION);
    CHECK_MSG(send_request(fd, &req) == 0, "%s: send attach", what);
    reply_t r;
    recv_reply(fd, &r);
    bool ok = r.msg && r.msg->msg_case == GOSHM__REPLY__MSG_ATTACH && r.msg->attach;
    CHECK_MSG(ok, "%s: no AttachReply (error %d: %s)", what, error_code(&r),
              error_code(&r) && r.msg->error->message ? r.msg->error->message : "-");
    int slot = -1;
    if (ok) {
        const Goshm__AttachReply *ar = r.msg->attach;
        slot = (int)ar->slot;
        CHECK_MSG(ar->abi_version == GS_ABI_VERSION, "%s: abi %u", what, ar->abi_version);
        CHECK_MSG(r.nfds == 4, "%s: %u descriptors", what, r.nfds);
        if (r.nfds == 4) {
            /* data: read-write, sealed for good (no client can add a seal) */
            CHECK((fcntl(r.fds[0], F_GETFL) & O_ACCMODE) == O_RDWR);
            CHECK(fcntl(r.fds[0], F_GET_SEALS) & F_SEAL_SEAL);
            /* the layout is in the meta header, which names this heap */
            void *m = mmap(NULL, sizeof(gs_meta_header_t), PROT_READ, MAP_SHARED, r.fds[1], 0);
            CHECK_MSG(m != MAP_FAILED, "%s: mmap meta: %s", what, strerror(errno));
            if (m != MAP_FAILED) {
                const gs_meta_header_t *h = m;
                CHECK(h->magic == GS_META_MAGIC);
                CHECK(h->epoch == ar->epoch);
                CHECK(h->data_size == ar->data_size);
                CHECK(h->slot_size == ar->slot_size);
                CHECK(h->max_slots == ar->max_slots);
                munmap(m, sizeof(gs_meta_header_t));
            }
            /* the slot: its own memfd, read-write, of slot_size bytes, sealed */
            CHECK((fcntl(r.fds[3], F_GETFL) & O_ACCMODE) == O_RDWR);
            CHECK(lseek(r.fds[3], 0, SEEK_END) == (off_t)ar->slot_size);
            CHECK(fcntl(r.fds[3], F_GET_SEALS) & F_SEAL_SEAL);
            /* meta: read-only, and no writable mapping possible */
            CHECK((fcntl(r.fds[1], F_GETFL) & O_ACCMODE) == O_RDONLY);
            void *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, r.fds[1], 0);
            CHECK_MSG(w == MAP_FAILED, "%s: the meta memfd mapped writable", what);
            if (w != MAP_FAILED) munmap(w, 4096);
            /* doorbell: an eventfd */
            char proc[64], link[64] = "";
            snprintf(proc, sizeof proc, "/proc/self/fd/%d", r.fds[2]);
            ssize_t n = readlink(proc, link, sizeof link - 1);
            if (n > 0) link[n] = '\0';
            CHECK_MSG(strstr(link, "eventfd") != NULL, "%s: doorbell is '%s'", what, link);
        }
    }
    reply_free(&r);
    return slot;
}

/* ---- the daemon ----------------------------------------------------------------- */

/* goshmd [test options] [$GOSHMD_ARGS, space-separated] [argv[2]...]: the
 * service tests' convention (tests/service/harness.h), so ctest can run this
 * test with --force-epoll too. */
static pid_t start_daemon(const char *bin, int extra_argc, char **extra_argv)
{
    char *argv[48];
    static char env_args[512];
    int n = 0;
    argv[n++] = (char *)bin;
    argv[n++] = "--socket";
    argv[n++] = sock_path;
    argv[n++] = "--size";
    argv[n++] = "256M";
    argv[n++] = "--max-clients";
    argv[n++] = "3";
    argv[n++] = "--log-level";
    argv[n++] = "warn";
    argv[n++] = "--allow-uid"; /* see peer_checks */
    argv[n++] = ALLOWED_UID_S;
    const char *e = getenv("GOSHMD_ARGS");
    if (e && strlen(e) < sizeof env_args) {
        strcpy(env_args, e);
        for (char *save = NULL, *tok = strtok_r(env_args, " ", &save); tok && n < 40; tok = strtok_r(NULL, " ", &save))
            argv[n++] = tok;
    }
    for (int i = 0; i < extra_argc && n < 47; i++) argv[n++] = extra_argv[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        execv(bin, argv);
        fprintf(stderr, "test-ctl-garbage: exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    return pid;
}

static bool wait_ready(void)
{
    uint64_t deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        int st;
        if (waitpid(daemon_pid, &st, WNOHANG) == daemon_pid) {
            fprintf(stderr, "test-ctl-garbage: goshmd exited early (status %#x)\n", st);
            daemon_pid = 0;
            return false;
        }
        int fd = connect_daemon();
        if (fd >= 0) {
            close(fd);
            return true;
        }
        sleep_ms(20);
    }
    return false;
}

/* SIGTERM; the exit status, or -1 if it did not exit within 10 s. */
static int stop_daemon(void)
{
    kill(daemon_pid, SIGTERM);
    uint64_t deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        int st;
        pid_t p = waitpid(daemon_pid, &st, WNOHANG);
        if (p == daemon_pid) {
            daemon_pid = 0;
            if (WIFEXITED(st)) return WEXITSTATUS(st);
            fprintf(stderr, "test-ctl-garbage: goshmd killed by signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
            return -1;
        }
        sleep_ms(10);
    }
    kill(daemon_pid, SIGKILL);
    waitpid(daemon_pid, NULL, 0);
    daemon_pid = 0;
    fprintf(stderr, "test-ctl-garbage: goshmd did not exit within 10 s of SIGTERM\n");
    return -1;
}

/* ---- the checks ------------------------------------------------------------------- */

static void garbage(void)
{
    uint8_t buf[512];
    unsigned parsed = 0;
    Goshm__Attach a;
    Goshm__StatsRequest sr = GOSHM__STATS_REQUEST__INIT;
    Goshm__Detach d = GOSHM__DETACH__INIT;
    Goshm__Request seeds[3] = {attach_request(&a, GS_ABI_VERSION), GOSHM__REQUEST__INIT, GOSHM__REQUEST__INIT};
    a.pid = 0x7fffffffu; /* a long varint: more bytes to damage */
    seeds[1].msg_case = GOSHM__REQUEST__MSG_STATS;
    seeds[1].stats = &sr;
    seeds[2].msg_case = GOSHM__REQUEST__MSG_DETACH;
    seeds[2].detach = &d;
    for (int i = 0; i < GARBAGE_PACKETS; i++) {
        size_t len;
        if (i % 2 == 0) { /* pure noise */
            len = 1 + rng() % sizeof buf;
            for (size_t k = 0; k < len; k++) buf[k] = (uint8_t)rng();
        } else { /* a valid request with a few bytes flipped, cut or extended */
            len = goshm__request__get_packed_size(&seeds[i / 2 % 3]);
            goshm__request__pack(&seeds[i / 2 % 3], buf);
            for (int f = 0, nf = 1 + (int)(rng() % 3); f < nf; f++) buf[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
            size_t newlen = 1 + rng() % (len + 8);
            for (size_t k = len; k < newlen; k++) buf[k] = (uint8_t)rng();
            len = newlen;
        }
        /* What the daemon must say depends on whether protobuf-c can parse it. */
        Goshm__Request *req = goshm__request__unpack(NULL, len, buf);
        int code = EPROTO;
        if (req) {
            parsed++;
            code = req->msg_case == GOSHM__REQUEST__MSG__NOT_SET ? EINVAL : 0;
            goshm__request__free_unpacked(req, NULL);
        }
        char what[64];
        snprintf(what, sizeof what, "garbage packet %d (%zu bytes)", i, len);
        if (code) {
            expect_error_raw(what, buf, len, -1, code, false);
        } else {
            /* A valid request by chance: any well-formed answer will do. */
            int fd = connect_daemon();
            CHECK(fd >= 0);
            if (fd < 0) continue;
            send_packet(fd, buf, len, -1);
            reply_t r;
            recv_reply(fd, &r);
            CHECK_MSG(r.msg || r.closed, "%s: no answer", what);
            reply_free(&r);
            close(fd);
        }
    }
    fprintf(stderr, "test-ctl-garbage: %d garbage packets (%u parsed as requests)\n", GARBAGE_PACKETS, parsed);
    stats_ok("garbage");
}

static void malformed(void)
{
    /* A valid Attach cut short by one byte. */
    Goshm__Attach a;
    Goshm__Request req = attach_request(&a, GS_ABI_VERSION);
    uint8_t buf[64];
    size_t len = goshm__request__get_packed_size(&req);
    REQUIRE(len <= sizeof buf);
    goshm__request__pack(&req, buf);
    Goshm__Request *chk = goshm__request__unpack(NULL, len - 1, buf);
    CHECK_MSG(chk == NULL, "the truncated request should not parse");
    if (chk) goshm__request__free_unpacked(chk, NULL);
    expect_error_raw("truncated request", buf, len - 1, -1, EPROTO, false);
    stats_ok("a truncated request");

    expect_error_raw("empty packet", buf, 0, -1, EINVAL, true);
    stats_ok("an empty packet");

    size_t big = 100 * 1024;
    uint8_t *huge = calloc(1, big);
    REQUIRE(huge);
    expect_error_raw("100 KiB packet", huge, big, -1, EMSGSIZE, true);
    free(huge);
    stats_ok("an oversize packet");

    /* A StatsRequest that smuggles a descriptor: refused, descriptor closed. */
    Goshm__StatsRequest sr = GOSHM__STATS_REQUEST__INIT;
    Goshm__Request sreq = GOSHM__REQUEST__INIT;
    sreq.msg_case = GOSHM__REQUEST__MSG_STATS;
    sreq.stats = &sr;
    len = goshm__request__get_packed_size(&sreq);
    goshm__request__pack(&sreq, buf);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    expect_error_raw("request with a descriptor", buf, len, devnull, EPROTO, false);
    close(devnull);
    stats_ok("a request with a descriptor");

    /* A Request that parses but carries no message (an unknown field). */
    const uint8_t unknown[] = {0x50, 0x01}; /* field 10, varint 1 */
    expect_error_raw("request without a message", unknown, sizeof unknown, -1, EINVAL, false);
    stats_ok("a request without a message");

    Goshm__Detach d = GOSHM__DETACH__INIT;
    Goshm__Request dreq = GOSHM__REQUEST__INIT;
    dreq.msg_case = GOSHM__REQUEST__MSG_DETACH;
    dreq.detach = &d;
    expect_error("detach before attach", &dreq, EINVAL);
    stats_ok("a detach before attach");
}

static void protocol(void)
{
    CHECK(stats_ok("start") == 0);

    /* Attach, Detach: a DetachReply, then the connection closes. */
    int fd = connect_daemon();
    REQUIRE(fd >= 0);
    CHECK(attach(fd, "attach") >= 0);
    CHECK(stats_ok("attach") == 1);
    Goshm__Detach d = GOSHM__DETACH__INIT;
    Goshm__Request dreq = GOSHM__REQUEST__INIT;
    dreq.msg_case = GOSHM__REQUEST__MSG_DETACH;
    dreq.detach = &d;
    CHECK(send_request(fd, &dreq) == 0);
    reply_t r;
    recv_reply(fd, &r);
    CHECK_MSG(r.msg && r.msg->msg_case == GOSHM__REPLY__MSG_DETACH, "no DetachReply");
    reply_free(&r);
    CHECK(is_closed(fd));
    close(fd);
    CHECK(stats_ok("detach") == 0);

    /* Double Attach: EALREADY, the connection closes, the slot comes back. */
    fd = connect_daemon();
    REQUIRE(fd >= 0);
    CHECK(attach(fd, "first attach") >= 0);
    Goshm__Attach a;
    Goshm__Request areq = attach_request(&a, GS_ABI_VERSION);
    CHECK(send_request(fd, &areq) == 0);
    recv_reply(fd, &r);
    CHECK_MSG(error_code(&r) == EALREADY, "double attach: error %d", error_code(&r));
    reply_free(&r);
    CHECK(is_closed(fd));
    close(fd);
    CHECK(stats_ok("a double attach") == 0);

    /* Wrong ABI version: EPROTO, and the message names both versions. */
    fd = connect_daemon();
    REQUIRE(fd >= 0);
    areq = attach_request(&a, GS_ABI_VERSION + 98);
    CHECK(send_request(fd, &areq) == 0);
    recv_reply(fd, &r);
    CHECK_MSG(error_code(&r) == EPROTO, "wrong abi: error %d", error_code(&r));
    if (error_code(&r)) {
        char mine[16], theirs[16];
        snprintf(mine, sizeof mine, "%u", GS_ABI_VERSION);
        snprintf(theirs, sizeof theirs, "%u", GS_ABI_VERSION + 98);
        const char *msg = r.msg->error->message ? r.msg->error->message : "";
        CHECK_MSG(strstr(msg, mine) && strstr(msg, theirs), "wrong abi message: '%s'", msg);
    }
    reply_free(&r);
    CHECK(is_closed(fd));
    close(fd);
    CHECK(stats_ok("a wrong ABI version") == 0);

    /* One client too many: ENOSPC. */
    int fds[MAX_CLIENTS];
    for (int i = 0; i < MAX_CLIENTS; i++) {
        fds[i] = connect_daemon();
        REQUIRE(fds[i] >= 0);
        CHECK(attach(fds[i], "filling the slots") >= 0);
    }
    CHECK(stats_ok("filling the slots") == MAX_CLIENTS);
    areq = attach_request(&a, GS_ABI_VERSION);
    expect_error("one client too many", &areq, ENOSPC);
    /* A client that just goes away gives its slot back. */
    close(fds[0]);
    uint64_t deadline = now_ms() + 5000;
    int n;
    while ((n = stats_ok("a client left")) != MAX_CLIENTS - 1 && now_ms() < deadline) sleep_ms(10);
    CHECK_MSG(n == MAX_CLIENTS - 1, "%d clients after one left", n);
    fd = connect_daemon();
    REQUIRE(fd >= 0);
    CHECK(attach(fd, "attach into the freed slot") >= 0);
    /* fds[1..] and fd stay attached: SIGTERM must reclaim them. */
    attached_fds[0] = fd;
    for (int i = 1; i < MAX_CLIENTS; i++) attached_fds[i] = fds[i];
}

/* In a child running as `uid`: one StatsRequest. Exit 0: StatsReply;
 * 10 + code: Error{code}; 3: could not connect; 4: no reply; 5: setuid. */
static int as_uid_child(uid_t uid)
{
    if (setgroups(0, NULL) != 0 || setgid(uid) != 0 || setuid(uid) != 0) return 5;
    int fd = connect_daemon();
    if (fd < 0) return 3;
    Goshm__StatsRequest sr = GOSHM__STATS_REQUEST__INIT;
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_STATS;
    req.stats = &sr;
    send_request(fd, &req); /* may fail with EPIPE: the Error is queued anyway */
    reply_t r;
    recv_reply(fd, &r);
    int rc = !r.msg ? 4 : r.msg->msg_case == GOSHM__REPLY__MSG_STATS ? 0 : 10 + error_code(&r);
    reply_free(&r);
    close(fd);
    return rc;
}

static int run_as(uid_t uid)
{
    pid_t pid = fork();
    if (pid == 0) _exit(as_uid_child(uid));
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

/* Peer credentials: a uid in --allow-uid is served, another is refused with
 * EPERM (several times: the refusal must never race with the request).
 * Needs root to switch uids. */
static void peer_checks(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test-ctl-garbage: not root: peer credential checks skipped\n");
        return;
    }
    CHECK(chmod(dir, 0711) == 0); /* let the other uids reach the socket */
    int rc = run_as(ALLOWED_UID);
    CHECK_MSG(rc == 0, "uid %d (allowed): child status %d", ALLOWED_UID, rc);
    for (int i = 0; i < 10; i++) {
        rc = run_as(DENIED_UID);
        CHECK_MSG(rc == 10 + EPERM, "uid %d (not allowed): child status %d, want %d", DENIED_UID, rc, 10 + EPERM);
    }
    stats_ok("refused peers");
}

int main(int argc, char **argv)
{
    const char *bin = argc >= 2 ? argv[1] : getenv("GOSHMD");
    if (!bin || !*bin) {
        fprintf(stderr, "usage: test-ctl-garbage GOSHMD [goshmd options...] (or $GOSHMD): skipped\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < MAX_CLIENTS; i++) attached_fds[i] = -1;
    snprintf(dir, sizeof dir, "/tmp/goshm-ctl-XXXXXX");
    REQUIRE(mkdtemp(dir) != NULL);
    snprintf(sock_path, sizeof sock_path, "%s/goshmd.sock", dir);
    daemon_pid = start_daemon(bin, argc > 2 ? argc - 2 : 0, argv + 2);
    REQUIRE(daemon_pid > 0);
    if (!wait_ready()) {
        fprintf(stderr, "test-ctl-garbage: goshmd never answered on %s\n", sock_path);
        if (daemon_pid) kill(daemon_pid, SIGKILL);
        rmdir(dir);
        return 1;
    }

    garbage();
    malformed();
    peer_checks();
    protocol();

    int st = stop_daemon();
    CHECK_MSG(st == 0, "goshmd exit status %d after SIGTERM", st);
    CHECK_MSG(access(sock_path, F_OK) != 0 && errno == ENOENT, "socket %s still there after exit", sock_path);
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (attached_fds[i] >= 0) close(attached_fds[i]);
    rmdir(dir);
    return CHECK_DONE("test-ctl-garbage");
}
