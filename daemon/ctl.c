/* ctl.c: goshmd's control plane: socket set-up, connections, the protocol.
 *
 * Overview: shm/malloc.h; API and threading: daemon/ctl.h; messages:
 * proto/goshm.proto. One `struct event` per connection on raw descriptors
 * (bufferevents cannot carry SCM_RIGHTS). A connection is:
 *
 *   accepted -> [peer check] -> open --Attach--> attached --Detach--> closed
 *                     |           |                  |
 *                     +-- EPERM --+-- Error / EOF ---+--> closed (slot reclaimed)
 *
 * Stats is valid in both open and attached states. Any packet that is
 * oversized, malformed, carries descriptors or is not valid in the state is
 * answered with Error{errno, text}, logged at warn, and the connection is
 * closed. Each unpacked message is freed on every path; each descriptor we
 * receive is closed. A peer refused at accept (EPERM, too many connections)
 * gets its Error at once, but the connection stays until its first request
 * arrives (1 s at most): closing a Unix socket with unread packets resets the
 * peer before it can read the Error.
 */
#define _GNU_SOURCE
#include "ctl.h"

#include <errno.h>        /* errno */
#include <event2/event.h> /* event_new, event_add */
#include <fcntl.h>        /* open, fcntl */
#include <poll.h>         /* poll, POLLRDHUP */
#include <stdarg.h>       /* va_list */
#include <stdio.h>        /* snprintf */
#include <stdlib.h>       /* calloc, free, strtol */
#include <string.h>       /* memset, strerror */
#include <sys/socket.h>   /* accept4, recvmsg, sendmsg */
#include <sys/stat.h>     /* stat, mkdir, umask */
#include <sys/un.h>       /* sockaddr_un */
#include <time.h>         /* clock_gettime */
#include <unistd.h>       /* close, pread, unlink */

#include "goshm.pb-c.h"
#include "log.h"
#include "sockpath.h" /* gs_default_socket_path */

#define SD_LISTEN_FDS_START 3
#define ACCEPT_BATCH 16              /* connections accepted per wakeup */
#define ACCEPT_BACKOFF_MS 100        /* pause after EMFILE and friends */
#define MAX_SPARE_CONNS 64u          /* connections beyond max_clients (stats, pending attaches) */
#define STRAY_FDS 16                 /* descriptors a client may wrongly send us in one packet */
#define MAX_REFUSED 16               /* refused peers kept until their request arrives */
#define REFUSED_LINGER_MS 1000       /* ... or this long */

/* ---- socket set-up -------------------------------------------------------- */

static int set_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -1;
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0) return -1;
    return 0;
}

/* LISTEN_PID == our pid and LISTEN_FDS >= 1: the socket is fd 3.
 * Returns 1 if activated (s->fd set), 0 if not, -1 on error. */
static int socket_from_systemd(gs_ctl_socket_t *s, char *err, size_t errlen)
{
    const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
    if (!pid_s || !fds_s) return 0;
    char *end;
    errno = 0;
    long pid = strtol(pid_s, &end, 10);
    if (errno || *end || pid != (long)getpid()) return 0; /* meant for another process */
    errno = 0;
    long nfds = strtol(fds_s, &end, 10);
    if (errno || *end || nfds < 1) return 0;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");

    int fd = SD_LISTEN_FDS_START;
    int type = 0, listening = 0, domain = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
        snprintf(err, errlen, "socket activation: fd 3 is not a socket: %s", strerror(errno));
        return -1;
    }
    len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0) listening = 0;
    len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) domain = -1;
    if (domain != AF_UNIX || type != SOCK_SEQPACKET || !listening) {
        snprintf(err, errlen,
                 "socket activation: fd 3 must be a listening Unix SOCK_SEQPACKET socket "
                 "(ListenSequentialPacket= in the .socket unit)");
        return -1;
    }
    if (set_nonblock_cloexec(fd) != 0) {
        snprintf(err, errlen, "socket activation: fcntl: %s", strerror(errno));
        return -1;
    }
    for (long i = 1; i < nfds && i < 1024; i++) {
        gs_log_warn("socket activation: ignoring extra descriptor %ld", SD_LISTEN_FDS_START + i);
        close((int)(SD_LISTEN_FDS_START + i));
    }
    s->fd = fd;
    s->activated = true;
    return 1;
}

/* mkdir -p for the socket's directory; new directories get `mode` exactly. */
static int make_dirs(const char *dir, mode_t mode, bool *created_last, char *err, size_t errlen)
{
    char *p = strdup(dir);
    if (!p) { snprintf(err, errlen, "out of memory"); return -1; }
    *created_last = false;
    int rc = 0;
    size_t n = strlen(p);
    for (size_t i = 1; i <= n && rc == 0; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, mode) == 0) {
            if (chmod(p, mode) != 0) { /* mkdir's mode went through the umask */
                snprintf(err, errlen, "chmod %s: %s", p, strerror(errno));
                rc = -1;
            }
            *created_last = (c == '\0');
        } else if (errno != EEXIST) {
            snprintf(err, errlen, "cannot create directory %s: %s", p, strerror(errno));
            rc = -1;
        } else {
            *created_last = false;
        }
        p[i] = c;
    }
    free(p);
    return rc;
}

static int socket_bind(gs_ctl_socket_t *s, const gs_config_t *cfg, char *err, size_t errlen)
{
    bool by_default = cfg->socket == NULL;
    if (by_default) {
        char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
        if (gs_default_socket_path(buf, sizeof buf) != 0) {
            snprintf(err, errlen, "the default socket path is too long (set --socket or a shorter $XDG_RUNTIME_DIR)");
            return -1;
        }
        s->path = strdup(buf);
    } else {
        s->path = strdup(cfg->socket);
    }
    if (!s->path) { snprintf(err, errlen, "out of memory"); return -1; }

    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t plen = strlen(s->path);
    if (plen >= sizeof sa.sun_path) {
        snprintf(err, errlen, "socket path too long (%zu bytes, at most %zu): %s", plen, sizeof sa.sun_path - 1,
                 s->path);
        return -1;
    }
    memcpy(sa.sun_path, s->path, plen + 1);

    /* Who may connect: the file modes are a first fence, SO_PEERCRED the real
     * check (ctl.c:peer_allowed). Other users need search permission on the
     * directory and write permission on the socket to connect at all. */
    bool gids = cfg->allow_gid.n > 0, uids = cfg->allow_uid.n > 0;
    mode_t dir_mode = 0700 | (gids ? 0050 : 0) | (uids ? 0011 : 0);
    mode_t sock_mode = 0600 | (gids ? 0060 : 0) | (uids ? 0066 : 0);
    gid_t group = gids ? (gid_t)cfg->allow_gid.v[0] : (gid_t)-1;

    char *dir = strdup(s->path);
    if (!dir) { snprintf(err, errlen, "out of memory"); return -1; }
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        bool created = false;
        rc = make_dirs(dir, dir_mode, &created, err, errlen);
        if (rc == 0 && created && gids && chown(dir, (uid_t)-1, group) != 0)
            gs_log_warn("cannot give %s to group %u: %s", dir, (unsigned)group, strerror(errno));
        struct stat st;
        if (rc == 0 && stat(dir, &st) != 0) {
            snprintf(err, errlen, "%s: %s", dir, strerror(errno));
            rc = -1;
        } else if (rc == 0 && !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "%s is not a directory", dir);
            rc = -1;
        } else if (rc == 0 && (st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX)) {
            snprintf(err, errlen, "refusing a socket in %s: anyone may write there", dir);
            rc = -1;
        } else if (rc == 0 && by_default && st.st_uid != geteuid()) {
            /* e.g. /tmp/goshm-$UID made by someone else to catch our clients */
            snprintf(err, errlen, "refusing the default socket in %s: owned by uid %u, not by us", dir,
                     (unsigned)st.st_uid);
            rc = -1;
        }
    }
    free(dir);
    if (rc) return -1;

    /* An existing file: a live daemon is an error, a stale socket goes. */
    struct stat st;
    if (lstat(s->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket", s->path);
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (probe < 0) { snprintf(err, errlen, "socket: %s", strerror(errno)); return -1; }
        int c = connect(probe, (struct sockaddr *)&sa, sizeof sa);
        int e = errno;
        close(probe);
        if (c == 0) {
            snprintf(err, errlen, "another goshmd is already listening on %s", s->path);
            return -1;
        }
        if (e == EPROTOTYPE) {
            snprintf(err, errlen, "%s is in use by another kind of socket", s->path);
            return -1;
        }
        if (e != ECONNREFUSED) {
            snprintf(err, errlen, "cannot probe %s: %s", s->path, strerror(e));
            return -1;
        }
        gs_log_info("removing stale socket %s", s->path);
        if (unlink(s->path) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "cannot remove stale socket %s: %s", s->path, strerror(errno));
            return -1;
        }
    }

    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { snprintf(err, errlen, "socket: %s", strerror(errno)); return -1; }
    /* The socket file is born with its final mode: no window where it is
     * looser. umask is process-wide; no other thread exists yet. */
    mode_t old = umask(~sock_mode & 0777);
    int b = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    umask(old);
    if (b != 0) {
        snprintf(err, errlen, "cannot bind %s: %s%s", s->path, strerror(e),
                 e == EADDRINUSE ? " (another goshmd starting?)" : "");
        close(fd);
        return -1;
    }
    if (lstat(s->path, &st) == 0) {
        s->dev = st.st_dev;
        s->ino = st.st_ino;
    }
    s->fd = fd; /* from here on gs_ctl_socket_close unlinks it */
    if (gids && chown(s->path, (uid_t)-1, group) != 0)
        gs_log_warn("cannot give %s to group %u: %s", s->path, (unsigned)group, strerror(errno));
    if (listen(fd, SOMAXCONN) != 0) {
        snprintf(err, errlen, "listen %s: %s", s->path, strerror(errno));
        return -1;
    }
    return 0;
}

int gs_ctl_socket_open(gs_ctl_socket_t *s, const gs_config_t *cfg, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    int a = socket_from_systemd(s, err, errlen);
    if (a < 0) return -1;
    if (a > 0) {
        if (cfg->socket) gs_log_info("socket activation: using the socket systemd passed, not %s", cfg->socket);
        return 0;
    }
    if (socket_bind(s, cfg, err, errlen) != 0) {
        gs_ctl_socket_close(s);
        return -1;
    }
    return 0;
}

void gs_ctl_socket_close(gs_ctl_socket_t *s)
{
    if (s->fd >= 0 && !s->activated && s->path) {
        struct stat st;
        if (lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino) unlink(s->path);
    }
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    free(s->path);
    s->path = NULL;
}

/* ---- connections ---------------------------------------------------------- */

typedef struct gs_conn {
    gs_ctl_t *ctl;
    int fd;
    struct event *ev;
    pid_t pid;              /* from SO_PEERCRED: the only pid we trust */
    uid_t uid;
    gid_t gid;
    int slot;               /* -1 until attached */
    bool refused;           /* got an Error at accept; closes on its first packet */
    struct gs_conn *next, *prev;
} gs_conn_t;

struct gs_ctl {
    struct event_base *base;
    const gs_config_t *cfg;
    gs_heap_t *heap;
    pthread_mutex_t *heap_lock;
    gs_dataplane_t *dp;
    int listen_fd;
    struct event *listen_ev;
    struct event *backoff_ev;       /* re-arms accepting after EMFILE */
    int meta_ro_fd;                 /* O_RDONLY view of the meta memfd, for clients */
    uint64_t epoch;                 /* the heap's gs_seg_header_t.epoch */
    uint64_t start_ns;              /* CLOCK_MONOTONIC at start, for uptime */
    gs_conn_t *conns;
    unsigned nconns, nattached, max_conns, nrefused;
    gs_conn_t *by_slot[GS_MAX_SLOTS];
    uint8_t *rxbuf;                 /* GS_CTL_MAX_PACKET bytes: one packet at a time */
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

unsigned gs_ctl_attached(const gs_ctl_t *ctl) { return ctl->nattached; }

/* Pack and send one Reply, with descriptors if nfds > 0. 0 or -errno. */
static int send_reply(int fd, const Goshm__Reply *rep, const int *fds, unsigned nfds)
{
    size_t len = goshm__reply__get_packed_size(rep);
    if (len > GS_CTL_MAX_PACKET) return -EMSGSIZE;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return -ENOMEM;
    goshm__reply__pack(rep, buf);
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    union {
        struct cmsghdr hdr;
        char space[CMSG_SPACE(sizeof(int) * 3)];
    } cbuf;
    if (nfds) {
        memset(&cbuf, 0, sizeof cbuf);
        mh.msg_control = cbuf.space;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    ssize_t n;
    do {
        /* Never block the loop on a client that does not read its replies:
         * a full socket buffer is that client's error. */
        n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    int e = errno;
    free(buf);
    if (n < 0) return -e;
    return (size_t)n == len ? 0 : -EMSGSIZE;
}

static void send_error(gs_conn_t *c, int code, const char *text)
{
    Goshm__Error er = GOSHM__ERROR__INIT;
    er.code = code;
    er.message = (char *)text;
    Goshm__Reply rep = GOSHM__REPLY__INIT;
    rep.msg_case = GOSHM__REPLY__MSG_ERROR;
    rep.error = &er;
    int rc = send_reply(c->fd, &rep, NULL, 0);
    if (rc) gs_log_debug("pid %ld: could not send error: %s", (long)c->pid, strerror(-rc));
}

/* The client's slot goes back to the heap: the data plane lets go of it
 * first, then the heap returns its cached spans (shm/malloc.h, "Crash
 * safety"). */
static void conn_detach(gs_conn_t *c, const char *how)
{
    if (c->slot < 0) return;
    gs_ctl_t *ctl = c->ctl;
    uint32_t slot = (uint32_t)c->slot;
    gs_dp_remove_slot(ctl->dp, slot);
    pthread_mutex_lock(ctl->heap_lock);
    int rc = gs_heap_slot_reclaim(ctl->heap, slot);
    pthread_mutex_unlock(ctl->heap_lock);
    if (rc < 0) gs_log_error("reclaiming slot %u of pid %ld: %s", slot, (long)c->pid, strerror(-rc));
    gs_log_info("client pid %ld slot %u %s", (long)c->pid, slot, how);
    ctl->by_slot[slot] = NULL;
    ctl->nattached--;
    c->slot = -1;
}

static void conn_close(gs_conn_t *c, const char *how)
{
    gs_ctl_t *ctl = c->ctl;
    if (c->slot >= 0)
        conn_detach(c, how);
    else
        gs_log_debug("connection from pid %ld %s", (long)c->pid, how);
    if (c->ev) event_free(c->ev);
    close(c->fd);
    if (c->prev) c->prev->next = c->next; else ctl->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    if (c->refused)
        ctl->nrefused--;
    else
        ctl->nconns--;
    free(c);
}

/* Reply with an Error, log why at warn, drop the connection (and its slot). */
static void conn_fail(gs_conn_t *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void conn_fail(gs_conn_t *c, int code, const char *fmt, ...)
{
    char text[256]; /* vsnprintf truncates: the client gets the gist */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    gs_log_warn("pid %ld uid %u: %s (%s); closing the connection", (long)c->pid, (unsigned)c->uid, text,
                strerrorname_np(code) ? strerrorname_np(code) : "?");
    send_error(c, code, text);
    conn_close(c, "gone after an error");
}

/* ---- requests ------------------------------------------------------------- */

/* Returns true if the connection is still open. */
static bool handle_attach(gs_conn_t *c, const Goshm__Attach *a)
{
    gs_ctl_t *ctl = c->ctl;
    if (c->slot >= 0) {
        conn_fail(c, EALREADY, "already attached (slot %d)", c->slot);
        return false;
    }
    if (a->abi_version != GS_ABI_VERSION) {
        conn_fail(c, EPROTO, "ABI version mismatch: client speaks %u, daemon speaks %u", a->abi_version,
                  GS_ABI_VERSION);
        return false;
    }
    pthread_mutex_lock(ctl->heap_lock);
    int slot = gs_heap_slot_claim(ctl->heap, (uint32_t)c->pid);
    pthread_mutex_unlock(ctl->heap_lock);
    if (slot == -ENOSPC) {
        conn_fail(c, ENOSPC, "too many clients (max %u)", ctl->cfg->max_clients);
        return false;
    }
    if (slot < 0) {
        conn_fail(c, -slot, "cannot claim a client slot: %s", strerror(-slot));
        return false;
    }
    int efd = -1;
    int rc = gs_dp_add_slot(ctl->dp, (uint32_t)slot, &efd);
    if (rc < 0) {
        pthread_mutex_lock(ctl->heap_lock);
        gs_heap_slot_reclaim(ctl->heap, (uint32_t)slot);
        pthread_mutex_unlock(ctl->heap_lock);
        conn_fail(c, -rc, "cannot serve slot %d: %s", slot, strerror(-rc));
        return false;
    }
    c->slot = slot;
    ctl->by_slot[slot] = c;
    ctl->nattached++;

    Goshm__AttachReply ar = GOSHM__ATTACH_REPLY__INIT;
    ar.abi_version = GS_ABI_VERSION;
    ar.slot = (uint32_t)slot;
    ar.data_size = gs_heap_data_size(ctl->heap);
    ar.meta_size = gs_heap_meta_size(ctl->heap);
    ar.epoch = ctl->epoch;
    Goshm__Reply rep = GOSHM__REPLY__INIT;
    rep.msg_case = GOSHM__REPLY__MSG_ATTACH;
    rep.attach = &ar;
    int fds[3] = {gs_heap_data_fd(ctl->heap), ctl->meta_ro_fd, efd};
    rc = send_reply(c->fd, &rep, fds, 3);
    close(efd); /* the data plane keeps its own copy */
    if (rc < 0) {
        gs_log_warn("pid %ld: sending the attach reply failed: %s", (long)c->pid, strerror(-rc));
        conn_close(c, "gone before attaching");
        return false;
    }
    if (a->pid != (uint32_t)c->pid)
        gs_log_info("client pid %ld (says pid %u) uid %u attached: slot %d", (long)c->pid, a->pid,
                    (unsigned)c->uid, slot);
    else
        gs_log_info("client pid %ld uid %u attached: slot %d", (long)c->pid, (unsigned)c->uid, slot);
    return true;
}

static bool handle_detach(gs_conn_t *c)
{
    if (c->slot < 0) {
        conn_fail(c, EINVAL, "detach without attach");
        return false;
    }
    conn_detach(c, "detached");
    Goshm__DetachReply dr = GOSHM__DETACH_REPLY__INIT;
    Goshm__Reply rep = GOSHM__REPLY__INIT;
    rep.msg_case = GOSHM__REPLY__MSG_DETACH;
    rep.detach = &dr;
    int rc = send_reply(c->fd, &rep, NULL, 0);
    if (rc < 0) gs_log_debug("pid %ld: sending the detach reply failed: %s", (long)c->pid, strerror(-rc));
    conn_close(c, "closed after detaching");
    return false;
}

/* Per-client numbers, read under heap_lock. */
typedef struct client_row {
    uint32_t pid, slot, cached;
    uint64_t allocs, frees, large_allocs, large_frees;
} client_row_t;

static bool handle_stats(gs_conn_t *c)
{
    gs_ctl_t *ctl = c->ctl;
    enum { NCLASSES = GS_NUM_SIZE_CLASSES - 1 };
    gs_heap_stats_t *st = malloc(sizeof *st);
    client_row_t *rows = calloc(ctl->nattached ? ctl->nattached : 1, sizeof *rows);
    Goshm__ClassStats *cls = calloc(NCLASSES, sizeof *cls);
    Goshm__ClassStats **clp = calloc(NCLASSES, sizeof *clp);
    Goshm__ClientStats *cli = calloc(ctl->nattached ? ctl->nattached : 1, sizeof *cli);
    Goshm__ClientStats **clip = calloc(ctl->nattached ? ctl->nattached : 1, sizeof *clip);
    bool ok = st && rows && cls && clp && cli && clip;
    if (!ok) {
        conn_fail(c, ENOMEM, "out of memory building statistics");
        goto out;
    }

    unsigned n = 0;
    pthread_mutex_lock(ctl->heap_lock);
    gs_heap_stats(ctl->heap, st);
    for (uint32_t s = 0; s < GS_MAX_SLOTS && n < ctl->nattached; s++) {
        const gs_conn_t *owner = ctl->by_slot[s];
        if (!owner) continue;
        client_row_t *r = &rows[n++];
        r->pid = (uint32_t)owner->pid;
        r->slot = s;
        r->cached = gs_heap_slot_cached_spans(ctl->heap, s);
        gs_heap_slot_counts(ctl->heap, s, &r->allocs, &r->frees, &r->large_allocs, &r->large_frees);
    }
    pthread_mutex_unlock(ctl->heap_lock);

    Goshm__HeapStats hs = GOSHM__HEAP_STATS__INIT;
    hs.reserved_bytes = st->reserved_bytes;
    hs.committed_bytes = st->committed_bytes;
    hs.in_use_bytes = st->in_use_bytes;
    hs.idle_bytes = st->idle_bytes;
    hs.released_bytes = st->released_bytes;
    hs.metadata_bytes = st->metadata_bytes;
    hs.grown_bytes = st->grown_bytes;
    hs.span_bytes = st->span_bytes;
    hs.large_objects = st->large_objects;
    hs.large_allocs = st->large_allocs;
    hs.large_frees = st->large_frees;
    hs.notices = st->notices;
    hs.bad_requests = st->bad_requests;
    hs.bad_ring_entries = gs_dp_bad_entries(ctl->dp);

    for (unsigned i = 0; i < NCLASSES; i++) {
        const gs_class_stats_t *cs = &st->classes[i + 1];
        goshm__class_stats__init(&cls[i]);
        cls[i].size = gs_class_size[i + 1];
        cls[i].objects_in_use = cs->objects_in_use;
        cls[i].allocs = cs->allocs;
        cls[i].frees = cs->frees;
        cls[i].spans = cs->spans;
        clp[i] = &cls[i];
    }
    for (unsigned i = 0; i < n; i++) {
        goshm__client_stats__init(&cli[i]);
        cli[i].pid = rows[i].pid;
        cli[i].slot = rows[i].slot;
        cli[i].cached_spans = rows[i].cached;
        cli[i].allocs = rows[i].allocs;
        cli[i].frees = rows[i].frees;
        cli[i].large_allocs = rows[i].large_allocs;
        cli[i].large_frees = rows[i].large_frees;
        clip[i] = &cli[i];
    }

    Goshm__StatsReply sr = GOSHM__STATS_REPLY__INIT;
    sr.heap = &hs;
    sr.n_classes = NCLASSES;
    sr.classes = clp;
    sr.n_clients = n;
    sr.clients = clip;
    sr.backend = (char *)gs_dp_backend(ctl->dp);
    sr.uptime_ms = (mono_ns() - ctl->start_ns) / 1000000u;
    sr.daemon_pid = (uint32_t)getpid();
    Goshm__Reply rep = GOSHM__REPLY__INIT;
    rep.msg_case = GOSHM__REPLY__MSG_STATS;
    rep.stats = &sr;
    int rc = send_reply(c->fd, &rep, NULL, 0);
    if (rc < 0) {
        gs_log_warn("pid %ld: sending statistics failed: %s", (long)c->pid, strerror(-rc));
        conn_close(c, "gone while reading statistics");
        ok = false;
    }
out:
    free(st);
    free(rows);
    free(cls);
    free(clp);
    free(cli);
    free(clip);
    return ok;
}

/* Close every descriptor a received message carried; returns how many. */
static unsigned close_passed_fds(struct msghdr *mh)
{
    unsigned n = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int sfd;
            memcpy(&sfd, CMSG_DATA(cm) + i * sizeof(int), sizeof sfd);
            close(sfd);
            n++;
        }
    }
    return n;
}

/* 1: the peer hung up; 0: it is still there (so a 0-byte read was an empty
 * packet). */
static int peer_hung_up(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) < 0) return 1;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static void on_conn_readable(evutil_socket_t fd, short what, void *arg)
{
    gs_conn_t *c = arg;
    gs_ctl_t *ctl = c->ctl;
    struct iovec iov = {.iov_base = ctl->rxbuf, .iov_len = GS_CTL_MAX_PACKET};
    union {
        struct cmsghdr hdr;
        char space[CMSG_SPACE(sizeof(int) * STRAY_FDS)];
    } cbuf;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.space, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(fd, &mh, MSG_TRUNC | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        if (errno == ECONNRESET)
            conn_close(c, "gone");
        else {
            gs_log_warn("pid %ld: recv: %s", (long)c->pid, strerror(errno));
            conn_close(c, "gone after a receive error");
        }
        return;
    }
    /* Descriptors are never part of a request: close any we were sent. */
    unsigned stray = close_passed_fds(&mh);
    if (stray || (mh.msg_flags & MSG_CTRUNC)) {
        conn_fail(c, EPROTO, "requests carry no file descriptors (got %u)", stray);
        return;
    }
    if (n == 0) {
        if (peer_hung_up(fd))
            conn_close(c, "gone");
        else
            conn_fail(c, EINVAL, "empty packet");
        return;
    }
    if ((size_t)n > GS_CTL_MAX_PACKET || (mh.msg_flags & MSG_TRUNC)) {
        conn_fail(c, EMSGSIZE, "packet of %zd bytes (at most %u)", n, GS_CTL_MAX_PACKET);
        return;
    }
    Goshm__Request *req = goshm__request__unpack(NULL, (size_t)n, ctl->rxbuf);
    if (!req) {
        conn_fail(c, EPROTO, "malformed request (%zd bytes)", n);
        return;
    }
    switch (req->msg_case) {
    case GOSHM__REQUEST__MSG_ATTACH:
        handle_attach(c, req->attach);
        break;
    case GOSHM__REQUEST__MSG_DETACH:
        handle_detach(c);
        break;
    case GOSHM__REQUEST__MSG_STATS:
        handle_stats(c);
        break;
    default:
        conn_fail(c, EINVAL, "request without a message");
        break;
    }
    goshm__request__free_unpacked(req, NULL);
}

/* ---- accepting ------------------------------------------------------------ */

static bool id_in(const gs_idlist_t *l, uint32_t id)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i] == id) return true;
    return false;
}

/* The peer's supplementary groups (SO_PEERGROUPS, Linux 4.13) against
 * --allow-gid. */
static bool peer_groups_allowed(int fd, const gs_idlist_t *allow)
{
    socklen_t len = 0;
    gid_t *g = NULL;
    for (int tries = 0; tries < 3; tries++) {
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) break;
        if (errno != ERANGE || len == 0) { free(g); return false; }
        gid_t *ng = realloc(g, len);
        if (!ng) { free(g); return false; }
        g = ng;
    }
    bool ok = false;
    for (size_t i = 0; g && i < len / sizeof(gid_t) && !ok; i++) ok = id_in(allow, g[i]);
    free(g);
    return ok;
}

static bool peer_allowed(const gs_ctl_t *ctl, int fd, const struct ucred *cr)
{
    if (cr->uid == 0 || cr->uid == geteuid()) return true;
    if (id_in(&ctl->cfg->allow_uid, cr->uid)) return true;
    if (ctl->cfg->allow_gid.n == 0) return false;
    return id_in(&ctl->cfg->allow_gid, cr->gid) || peer_groups_allowed(fd, &ctl->cfg->allow_gid);
}

/* A refused peer's request arrived (or it waited too long): read and drop
 * what it sent, then close. Closing a Unix socket with unread packets would
 * reset the peer's connection before it reads our Error. */
static void on_refused_readable(evutil_socket_t fd, short what, void *arg)
{
    gs_conn_t *c = arg;
    for (int i = 0; i < 64; i++) {
        struct iovec iov = {.iov_base = c->ctl->rxbuf, .iov_len = GS_CTL_MAX_PACKET};
        union {
            struct cmsghdr hdr;
            char space[CMSG_SPACE(sizeof(int) * STRAY_FDS)];
        } cbuf;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.space,
                            .msg_controllen = sizeof cbuf};
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) break;
        close_passed_fds(&mh);
        if (n == 0 && peer_hung_up(fd)) break;
    }
    conn_close(c, "refused");
}

/* Answer Error{code, text} at once, and close the connection when the peer's
 * first request arrives (see on_refused_readable), after REFUSED_LINGER_MS at
 * the latest. Beyond MAX_REFUSED such peers, close at once. */
static void refuse(gs_ctl_t *ctl, int fd, const struct ucred *cr, int code, const char *text)
{
    Goshm__Error er = GOSHM__ERROR__INIT;
    er.code = code;
    er.message = (char *)text;
    Goshm__Reply rep = GOSHM__REPLY__INIT;
    rep.msg_case = GOSHM__REPLY__MSG_ERROR;
    rep.error = &er;
    if (send_reply(fd, &rep, NULL, 0) != 0 || ctl->nrefused >= MAX_REFUSED) {
        close(fd);
        return;
    }
    gs_conn_t *c = calloc(1, sizeof *c);
    struct timeval tv = {REFUSED_LINGER_MS / 1000, (REFUSED_LINGER_MS % 1000) * 1000};
    if (c) c->ev = event_new(ctl->base, fd, EV_READ, on_refused_readable, c);
    if (!c || !c->ev || event_add(c->ev, &tv) != 0) {
        if (c && c->ev) event_free(c->ev);
        free(c);
        close(fd);
        return;
    }
    c->ctl = ctl;
    c->fd = fd;
    c->pid = cr->pid;
    c->uid = cr->uid;
    c->gid = cr->gid;
    c->slot = -1;
    c->refused = true;
    c->next = ctl->conns;
    if (ctl->conns) ctl->conns->prev = c;
    ctl->conns = c;
    ctl->nrefused++;
}

static void accept_one(gs_ctl_t *ctl, int fd)
{
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
        gs_log_warn("SO_PEERCRED: %s; closing the connection", strerror(errno));
        close(fd);
        return;
    }
    if (!peer_allowed(ctl, fd, &cr)) {
        char text[64];
        snprintf(text, sizeof text, "uid %u not allowed", (unsigned)cr.uid);
        gs_log_warn("pid %ld: %s (see --allow-uid, --allow-gid)", (long)cr.pid, text);
        refuse(ctl, fd, &cr, EPERM, text);
        return;
    }
    if (ctl->nconns >= ctl->max_conns) {
        char text[96];
        snprintf(text, sizeof text, "too many connections (max %u); try again later", ctl->max_conns);
        gs_log_warn("pid %ld: %s", (long)cr.pid, text);
        refuse(ctl, fd, &cr, EAGAIN, text);
        return;
    }
    gs_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        gs_log_warn("pid %ld: out of memory for a connection", (long)cr.pid);
        refuse(ctl, fd, &cr, ENOMEM, "out of memory");
        return;
    }
    c->ctl = ctl;
    c->fd = fd;
    c->pid = cr.pid;
    c->uid = cr.uid;
    c->gid = cr.gid;
    c->slot = -1;
    c->ev = event_new(ctl->base, fd, EV_READ | EV_PERSIST, on_conn_readable, c);
    if (!c->ev || event_add(c->ev, NULL) != 0) {
        gs_log_warn("pid %ld: cannot watch the connection", (long)cr.pid);
        if (c->ev) event_free(c->ev);
        free(c);
        refuse(ctl, fd, &cr, ENOMEM, "out of memory");
        return;
    }
    c->next = ctl->conns;
    if (ctl->conns) ctl->conns->prev = c;
    ctl->conns = c;
    ctl->nconns++;
    gs_log_debug("connection from pid %ld uid %u", (long)cr.pid, (unsigned)cr.uid);
}

static void on_backoff(evutil_socket_t fd, short what, void *arg)
{
    gs_ctl_t *ctl = arg;
    event_add(ctl->listen_ev, NULL);
}

static void on_listen_readable(evutil_socket_t lfd, short what, void *arg)
{
    gs_ctl_t *ctl = arg;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            accept_one(ctl, fd);
            continue;
        }
        switch (errno) {
        case EAGAIN:
            return;
        case EINTR: case ECONNABORTED: case EPROTO:
            continue;
        case EMFILE: case ENFILE: case ENOBUFS: case ENOMEM: {
            /* Level-triggered: without a pause the loop would spin. */
            gs_log_warn("accept: %s; pausing for %d ms", strerror(errno), ACCEPT_BACKOFF_MS);
            event_del(ctl->listen_ev);
            struct timeval tv = {0, ACCEPT_BACKOFF_MS * 1000};
            event_add(ctl->backoff_ev, &tv);
            return;
        }
        default:
            gs_log_error("accept: %s", strerror(errno));
            return;
        }
    }
}

/* ---- lifetime ------------------------------------------------------------- */

gs_ctl_t *gs_ctl_start(struct event_base *base, int listen_fd, const gs_config_t *cfg, gs_heap_t *heap,
                       pthread_mutex_t *heap_lock, gs_dataplane_t *dp, char *err, size_t errlen)
{
    gs_ctl_t *ctl = calloc(1, sizeof *ctl);
    if (!ctl) { snprintf(err, errlen, "out of memory"); return NULL; }
    ctl->base = base;
    ctl->cfg = cfg;
    ctl->heap = heap;
    ctl->heap_lock = heap_lock;
    ctl->dp = dp;
    ctl->listen_fd = listen_fd;
    ctl->meta_ro_fd = -1;
    ctl->start_ns = mono_ns();
    ctl->max_conns = cfg->max_clients + MAX_SPARE_CONNS;
    ctl->rxbuf = malloc(GS_CTL_MAX_PACKET);
    if (!ctl->rxbuf) { snprintf(err, errlen, "out of memory"); goto fail; }

    /* Clients get the meta memfd read-only: a descriptor opened O_RDONLY
     * cannot be upgraded to a writable mapping (shm/malloc.h, "Who owns what"). */
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", gs_heap_meta_fd(heap));
    ctl->meta_ro_fd = open(proc, O_RDONLY | O_CLOEXEC);
    if (ctl->meta_ro_fd < 0) {
        snprintf(err, errlen, "cannot reopen the meta memfd read-only via %s: %s", proc, strerror(errno));
        goto fail;
    }
    if (pread(gs_heap_data_fd(heap), &ctl->epoch, sizeof ctl->epoch, offsetof(gs_seg_header_t, epoch)) !=
        (ssize_t)sizeof ctl->epoch) {
        snprintf(err, errlen, "cannot read the heap header: %s", strerror(errno));
        goto fail;
    }
    ctl->listen_ev = event_new(base, listen_fd, EV_READ | EV_PERSIST, on_listen_readable, ctl);
    ctl->backoff_ev = evtimer_new(base, on_backoff, ctl);
    if (!ctl->listen_ev || !ctl->backoff_ev || event_add(ctl->listen_ev, NULL) != 0) {
        snprintf(err, errlen, "libevent: cannot watch the listening socket");
        goto fail;
    }
    return ctl;
fail:
    gs_ctl_stop(ctl);
    return NULL;
}

void gs_ctl_stop(gs_ctl_t *ctl)
{
    if (!ctl) return;
    if (ctl->listen_ev) event_free(ctl->listen_ev);
    if (ctl->backoff_ev) event_free(ctl->backoff_ev);
    while (ctl->conns) conn_close(ctl->conns, "dropped at shutdown");
    if (ctl->meta_ro_fd >= 0) close(ctl->meta_ro_fd);
    free(ctl->rxbuf);
    free(ctl);
}
