/* SPDX-License-Identifier: MIT */
/* listen.c: goshmd's listening socket (bound, or passed by systemd) and peer authentication.
 *
 * Overview: shm/overview.h; API: daemon/listen.h. The socket path's
 * default: shm/sockpath.h. The connections accepted on it are the control
 * plane's (daemon/ctl.c).
 */
#define _GNU_SOURCE
#include "listen.h"

#include <errno.h>      /* errno */
#include <fcntl.h>      /* fcntl */
#include <stdio.h>      /* snprintf */
#include <stdlib.h>     /* getenv, strtol, realloc */
#include <string.h>     /* strerror, strdup */
#include <sys/socket.h> /* getsockopt, bind, listen */
#include <sys/stat.h>   /* stat, mkdir, umask */
#include <sys/un.h>     /* sockaddr_un */
#include <unistd.h>     /* close, unlink, geteuid */

#include "log.h"
#include "sockpath.h" /* gs_default_socket_path */

#define SD_LISTEN_FDS_START 3

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

/* ---- peer authentication ---------------------------------------------------- */

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

bool gs_peer_allowed(const gs_config_t *cfg, int fd, const struct ucred *cr)
{
    if (cr->uid == 0 || cr->uid == geteuid()) return true;
    if (id_in(&cfg->allow_uid, cr->uid)) return true;
    if (cfg->allow_gid.n == 0) return false;
    return id_in(&cfg->allow_gid, cr->gid) || peer_groups_allowed(fd, &cfg->allow_gid);
}
