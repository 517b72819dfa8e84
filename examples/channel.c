/* SPDX-License-Identifier: MIT */
/* channel.c: two processes pass buffers through a named channel, zero copy.
 *
 *   channel [SOCKET]   (default: $GOSHM_SOCKET, then goshmd's default path)
 *
 * The consumer is a child process that attaches on its own. Both open the
 * channel "example.greetings" by name; the first open creates it. Each
 * buffer's reference travels with it through the channel, so the consumer's
 * goshm_buf_release frees it; nobody frees twice, nobody leaks, even if one
 * side is killed halfway (goshmd drops the references a dead process held).
 */
#include <goshm/goshm.h>

#include <errno.h>    /* errno */
#include <stdio.h>    /* printf, fprintf */
#include <string.h>   /* strcpy, strcmp, strerror */
#include <sys/wait.h> /* waitpid */
#include <unistd.h>   /* fork, _exit */

static const char *const words[] = {"hello", "from", "another", "process", "bye"};

static int consume(const char *socket_path)
{
    goshm_t *h = goshm_attach(socket_path);
    goshm_chan_t *c = h ? goshm_chan_open(h, "example.greetings", 16) : NULL;
    if (!c) return fprintf(stderr, "consumer: %s\n", strerror(errno)), 1;
    int n = 0, ok = 1;
    goshm_off_t off;
    while (goshm_chan_recv(c, &off, 10000) == 0) { /* asleep until a message comes */
        char *word = goshm_ptr(h, off);            /* the producer's bytes, in place */
        ok &= strcmp(word, words[n++]) == 0;
        int last = strcmp(word, "bye") == 0;
        goshm_buf_release(h, word); /* the last reference: the buffer is freed */
        if (last) break;
    }
    goshm_chan_close(c);
    goshm_detach(h);
    return ok && n == 5 ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *socket_path = argc > 1 ? argv[1] : NULL;
    pid_t child = fork();
    if (child == 0) _exit(consume(socket_path));

    goshm_t *h = goshm_attach(socket_path);
    goshm_chan_t *c = h ? goshm_chan_open(h, "example.greetings", 16) : NULL;
    if (!c) return fprintf(stderr, "channel: %s\n", strerror(errno)), 1;
    for (int i = 0; i < 5; i++) {
        char *buf = goshm_buf_alloc(h, 32); /* one reference, ours */
        if (!buf) return fprintf(stderr, "channel: goshm_buf_alloc: %s\n", strerror(errno)), 1;
        strcpy(buf, words[i]);
        if (goshm_chan_send(c, goshm_off(h, buf), -1) != 0) /* our reference goes with it */
            return fprintf(stderr, "channel: goshm_chan_send: %s\n", strerror(errno)), 1;
    }
    int status = 1;
    waitpid(child, &status, 0);
    goshm_chan_close(c);
    goshm_chan_unlink(h, "example.greetings");
    goshm_detach(h);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    printf(ok ? "channel: 5 buffers passed and released\n" : "channel: the consumer failed\n");
    return ok ? 0 : 1;
}
