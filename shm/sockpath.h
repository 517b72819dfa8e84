/* SPDX-License-Identifier: MIT */
/* sockpath.h: the default control socket path, one rule for every program.
 *
 * Overview: shm/overview.h. The project's design contract: /run/goshm/goshmd.sock for
 * root, else $XDG_RUNTIME_DIR/goshm/goshmd.sock, else /tmp/goshm-$UID/goshmd.sock.
 */
#ifndef GOSHM_SOCKPATH_H
#define GOSHM_SOCKPATH_H

#include <stddef.h> /* size_t */

/* Write the default path into buf. 0, or -ENAMETOOLONG if it does not fit
 * (a Unix socket path holds at most 107 bytes). */
int gs_default_socket_path(char *buf, size_t len);

/* The path a client uses: `explicit_path` if not NULL, else $GOSHM_SOCKET
 * if set and not empty, else the default. 0 or -ENAMETOOLONG. */
int gs_client_socket_path(const char *explicit_path, char *buf, size_t len);

/* Before a client hands anything to the daemon on `path`, it checks whom it
 * talks to. Trusted uids: the caller's effective uid, root, and the uids in
 * $GOSHM_DAEMON_UID (a comma list of numbers or user names: the daemon's own
 * user when it runs as one, e.g. systemd's User=goshm).
 *
 * gs_socket_check_path, before connect: the socket's directory must be owned
 * by a trusted uid, and not writable by group or others, because whoever can
 * write it can replace the socket with their own. The exception is a sticky
 * directory such as /tmp: others may create names in it but cannot remove or
 * rename ours, so it is accepted when the socket itself exists and is owned
 * by a trusted uid (a name squatted by someone else is then refused).
 *
 * gs_socket_check_peer, after connect: the listener's credentials
 * (SO_PEERCRED) must name a trusted uid. Under socket activation the
 * listener is systemd (root).
 *
 * Both return 0, or -EACCES (or another -errno) with a one-line reason in
 * why (which may be NULL). They allocate only in the name lookup. */
int gs_socket_check_path(const char *path, char *why, size_t whylen);
int gs_socket_check_peer(int fd, char *why, size_t whylen);

#endif
