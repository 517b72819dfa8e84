/* SPDX-License-Identifier: MIT */
/* ctlclient.h: the one client of goshmd's control protocol: connect, send a Request, receive a Reply.
 *
 * Overview: shm/overview.h; messages: proto/goshm.proto; the daemon's side:
 * daemon/ctl.c. One SOCK_SEQPACKET packet carries one message; a reply may
 * carry descriptors (SCM_RIGHTS). Used by libgoshm (client/service.c),
 * goshmctl and the tests' harness. It lives in proto/, next to the generated
 * code it packs and unpacks, because proto/ and shm/ are the only folders
 * both the library and the tools may use, and shm/ stays free of protobuf-c.
 */
#ifndef GOSHM_CTLCLIENT_H
#define GOSHM_CTLCLIENT_H

#include "goshm.pb-c.h"

#define GS_CTL_MAX_REPLY 65536u /* one Reply packet, at most */

/* Connect to the control socket at path. A descriptor (close-on-exec), or
 * -errno (-ENAMETOOLONG for a path sockaddr_un cannot hold). */
int gs_ctl_connect(const char *path);

/* Send one Request. 0 or -errno. A daemon that refused us answers at once
 * and may hang up before our request goes out (-EPIPE, -ECONNRESET): its
 * Error can still be read. */
int gs_ctl_send(int fd, const Goshm__Request *req);

/* Wait up to timeout_ms (-1: no limit) for one Reply; *out gets it
 * unpacked (free with goshm__reply__free_unpacked). Up to nfds descriptors
 * it carries go to fds[] (unfilled ones are -1; extra ones are closed).
 * Returns how many descriptors came, or -errno: -ETIMEDOUT, -ECONNRESET
 * (the daemon closed the connection), -EMSGSIZE (oversized), -EPROTO
 * (malformed); no descriptor is left open on error. */
int gs_ctl_recv(int fd, Goshm__Reply **out, int *fds, int nfds, int timeout_ms);

#endif /* GOSHM_CTLCLIENT_H */
