/* sockpath.c: the default control socket path. Contract: shm/sockpath.h. */
#include "sockpath.h"

#include <errno.h>  /* ENAMETOOLONG */
#include <stdio.h>  /* snprintf */
#include <stdlib.h> /* getenv */
#include <unistd.h> /* geteuid */

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
