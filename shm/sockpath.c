/* SPDX-License-Identifier: MIT */
/* sockpath.c: the default control socket path. Contract: shm/sockpath.h. */
#define _GNU_SOURCE
#include "sockpath.h"

#include <errno.h>      /* ENAMETOOLONG */
#include <pwd.h>        /* getpwnam_r */
#include <stdbool.h>    /* bool */
#include <stdio.h>      /* snprintf */
#include <stdlib.h>     /* getenv, strtoul */
#include <string.h>     /* strrchr, memcpy */
#include <sys/socket.h> /* getsockopt, SO_PEERCRED */
#include <sys/stat.h>   /* stat, lstat */
#include <unistd.h>     /* geteuid */

#define SUN_PATH_MAX 108

static int fits(int n, size_t len) { return n > 0 && (size_t)n < len && n < SUN_PATH_MAX ? 0 : -ENAMETOOLONG; }

int gs_default_socket_path(char *buf, size_t len)
{
    uid_t uid = geteuid();
    if (uid == 0) return fits(snprintf(buf, len, "/run/goshm/goshmd.sock"), len);
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg && *xdg) return fits(snprintf(buf, len, "%s/goshm/goshmd.sock", xdg), len);
    return fits(snprintf(buf, len, "/tmp/goshm-%u/goshmd.sock", (unsigned)uid), len);
}

int gs_client_socket_path(const char *explicit_path, char *buf, size_t len)
{
    const char *p = explicit_path;
    if (!p || !*p) p = getenv("GOSHM_SOCKET");
    if (p && *p) return fits(snprintf(buf, len, "%s", p), len);
    return gs_default_socket_path(buf, len);
}

/* ---- whom a client talks to ---------------------------------------------- */

static void say(char *why, size_t whylen, const char *fmt, const char *a, unsigned long b)
{
    if (why && whylen) snprintf(why, whylen, fmt, a, b);
}

/* Is `uid` one of the names or numbers in $GOSHM_DAEMON_UID? */
static bool env_trusts(uid_t uid)
{
    const char *e = getenv("GOSHM_DAEMON_UID");
    if (!e) return false;
    char tok[64];
    while (*e) {
        size_t n = strcspn(e, ",");
        if (n > 0 && n < sizeof tok) {
            memcpy(tok, e, n);
            tok[n] = '\0';
            if (tok[0] >= '0' && tok[0] <= '9') {
                char *end;
                errno = 0;
                unsigned long v = strtoul(tok, &end, 10);
                if (!errno && !*end && v == (unsigned long)uid) return true;
            } else {
                char buf[4096];
                struct passwd pw, *res = NULL;
                if (getpwnam_r(tok, &pw, buf, sizeof buf, &res) == 0 && res && pw.pw_uid == uid) return true;
            }
        }
        e += n;
        if (*e == ',') e++;
    }
    return false;
}

static bool trusted(uid_t uid) { return uid == 0 || uid == geteuid() || env_trusts(uid); }

int gs_socket_check_path(const char *path, char *why, size_t whylen)
{
    char dir[SUN_PATH_MAX + 1];
    size_t n = strlen(path);
    if (n > SUN_PATH_MAX) return -ENAMETOOLONG;
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        dir[0] = '.';
        dir[1] = '\0';
    } else if (slash == dir) {
        dir[1] = '\0';
    } else {
        *slash = '\0';
    }
    struct stat d;
    if (stat(dir, &d) != 0) return -errno; /* ENOENT: no daemon there */
    if (!trusted(d.st_uid)) {
        say(why, whylen, "the socket's directory %s is owned by uid %lu, not by you, root or $GOSHM_DAEMON_UID",
            dir, (unsigned long)d.st_uid);
        return -EACCES;
    }
    if (d.st_mode & (S_IWGRP | S_IWOTH)) {
        if (!(d.st_mode & S_ISVTX)) {
            say(why, whylen, "the socket's directory %s is writable by others (mode %lo): anyone could replace "
                "the socket", dir, (unsigned long)(d.st_mode & 07777));
            return -EACCES;
        }
        /* Sticky and shared (/tmp): the name is ours only if the socket is. */
        struct stat s;
        if (lstat(path, &s) != 0) return -errno;
        if (!trusted(s.st_uid)) {
            say(why, whylen, "the socket %s in a shared directory is owned by uid %lu, not by you, root or "
                "$GOSHM_DAEMON_UID", path, (unsigned long)s.st_uid);
            return -EACCES;
        }
    }
    return 0;
}

int gs_socket_check_peer(int fd, char *why, size_t whylen)
{
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) return -errno;
    if (!trusted(cr.uid)) {
        say(why, whylen, "the process listening on %s runs as uid %lu, not as you, root or $GOSHM_DAEMON_UID",
            "the socket", (unsigned long)cr.uid);
        return -EACCES;
    }
    return 0;
}
