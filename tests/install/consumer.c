/* SPDX-License-Identifier: MIT */
/* consumer.c: uses the installed API. With no daemon at the socket given,
 * goshm_attach must fail with ENOENT or ECONNREFUSED (exit 0); a daemon's
 * socket as argv[1] makes it allocate, check and free (exit 0). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <goshm/goshm.h>

int main(int argc, char **argv)
{
    if (goshm_version() != GOSHM_VERSION) return 1;
    goshm_t *h = goshm_attach(argc > 1 ? argv[1] : "/nonexistent/goshmd.sock");
    if (!h) return errno == ENOENT || errno == ECONNREFUSED ? 0 : 2;
    char *p = goshm_malloc(h, 100);
    if (!p) return 3;
    strcpy(p, "installed");
    int ok = goshm_ptr(h, goshm_off(h, p)) == p && strcmp(p, "installed") == 0;
    goshm_free(h, p);
    goshm_detach(h);
    return ok ? 0 : 4;
}
