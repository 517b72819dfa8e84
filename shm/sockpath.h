/* sockpath.h: the default control socket path, one rule for every program.
 *
 * Overview: shm/malloc.h. The contract (DESIGN.md): /run/goshm/goshmd.sock for
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

#endif
