/* SPDX-License-Identifier: MIT */
/* hello.c: the smallest goshm program: attach, allocate, turn the pointer
 * into an offset and back, free, detach.
 *
 *   hello [SOCKET]     (default: $GOSHM_SOCKET, then goshmd's default path)
 *
 * Start a daemon first, e.g. `goshmd --socket /tmp/demo.sock &`, then
 * `hello /tmp/demo.sock`. Exit status 0 on success, 1 on any failure.
 */
#include <goshm/goshm.h>

#include <errno.h>  /* errno */
#include <stdio.h>  /* printf, fprintf */
#include <string.h> /* strcpy, strcmp, strerror */

int main(int argc, char **argv)
{
    const char *socket_path = argc > 1 ? argv[1] : NULL;
    goshm_t *h = goshm_attach(socket_path);
    if (!h) {
        fprintf(stderr, "hello: goshm_attach: %s\n", strerror(errno));
        return 1;
    }

    char *msg = goshm_malloc(h, 64);
    if (!msg) {
        fprintf(stderr, "hello: goshm_malloc: %s\n", strerror(errno));
        goshm_detach(h);
        return 1;
    }
    strcpy(msg, "hello from shared memory");

    /* The offset is what another process would receive: the same number
     * names the same bytes in every process attached to this heap. */
    goshm_off_t off = goshm_off(h, msg);
    char *again = goshm_ptr(h, off);
    if (off == GOSHM_NULL || again != msg || strcmp(again, "hello from shared memory") != 0) {
        fprintf(stderr, "hello: offset %llu does not lead back to the object\n", (unsigned long long)off);
        goshm_free(h, msg);
        goshm_detach(h);
        return 1;
    }
    printf("%s (offset %llu, %zu usable bytes, libgoshm %d)\n", again, (unsigned long long)off,
           goshm_usable_size(h, msg), goshm_version());

    goshm_free(h, msg);
    if (goshm_detach(h) != 0) {
        fprintf(stderr, "hello: goshm_detach: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
