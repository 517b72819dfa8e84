/* SPDX-License-Identifier: MIT */
/* listen.h: goshmd's listening socket and peer authentication.
 *
 * Overview: shm/overview.h. Opened once at start-up, before any thread
 * starts; the control plane (daemon/ctl.h) accepts on it and asks
 * gs_peer_allowed about each peer.
 */
#ifndef GOSHM_LISTEN_H
#define GOSHM_LISTEN_H

#include <stdbool.h>    /* bool */
#include <stddef.h>     /* size_t */
#include <sys/socket.h> /* struct ucred */
#include <sys/types.h>  /* dev_t, ino_t */

#include "config.h"

/* The listening socket, bound by us or passed by systemd. */
typedef struct gs_ctl_socket {
    int fd;                 /* -1: none */
    char *path;             /* what we bound, or NULL under socket activation */
    bool activated;         /* passed by systemd: never unlink it */
    dev_t dev;              /* identity of the socket file we created, so */
    ino_t ino;              /* that we only ever unlink our own */
} gs_ctl_socket_t;

/* Take the socket systemd passed (LISTEN_PID/LISTEN_FDS), or bind cfg's path
 * (default: shm/sockpath.h), creating its directory and replacing a stale
 * socket. Call before any thread starts (bind runs under a tightened umask).
 * 0 or -1 with err set. */
int gs_ctl_socket_open(gs_ctl_socket_t *s, const gs_config_t *cfg, char *err, size_t errlen);
/* Close the socket; unlink the file if we created it and it is still ours. */
void gs_ctl_socket_close(gs_ctl_socket_t *s);

/* May this peer (SO_PEERCRED of fd) connect? root, our own uid, and
 * cfg's --allow-uid / --allow-gid (supplementary groups included). */
bool gs_peer_allowed(const gs_config_t *cfg, int fd, const struct ucred *cr);

#endif /* GOSHM_LISTEN_H */
