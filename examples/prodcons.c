/* SPDX-License-Identifier: MIT */
/* prodcons.c: a producer and a consumer in two processes, zero-copy.
 *
 *   prodcons [SOCKET [MESSAGES]]     (default: goshmd's default path, 100000)
 *
 * The parent forks; each process attaches to the heap on its own, as two
 * unrelated programs would. The producer allocates each message in the
 * shared heap, fills it, and writes only its offset and length to a pipe.
 * The consumer turns the offset back into a pointer of its own, checks every
 * byte, and frees the message: memory allocated in one process is freed in
 * the other. The pipe's capacity bounds the messages in flight. Exit status
 * 0 when every message arrived intact, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L /* fork, pipe, waitpid under -std=c11 */
#include <goshm/goshm.h>

#include <errno.h>     /* errno */
#include <stdint.h>    /* uint64_t */
#include <stdio.h>     /* printf, fprintf */
#include <stdlib.h>    /* strtoul */
#include <string.h>    /* strerror */
#include <sys/wait.h>  /* waitpid */
#include <unistd.h>    /* fork, pipe, read, write */

struct note {
    goshm_off_t off; /* the message, as an offset in the shared heap */
    uint64_t len;    /* its length; 0 ends the stream */
};

/* Byte i of message seq: easy to check, different for every message. */
static unsigned char pattern(uint64_t seq, uint64_t i) { return (unsigned char)(seq * 131u + i * 7u + 1u); }

static int full_write(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* 1 on a whole note, 0 at end of file, -1 on error. */
static int full_read(int fd, void *buf, size_t n)
{
    char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) return got == 0 ? 0 : -1;
        got += (size_t)r;
    }
    return 1;
}

static int produce(const char *path, int fd, unsigned long count)
{
    goshm_t *h = goshm_attach(path);
    if (!h) {
        fprintf(stderr, "producer: goshm_attach: %s\n", strerror(errno));
        return 1;
    }
    int rc = 0;
    for (uint64_t seq = 0; seq < count; seq++) {
        uint64_t len = 64u + (seq * 2654435761u) % 4033u; /* 64..4096 bytes */
        unsigned char *m = goshm_malloc(h, len);
        if (!m) {
            fprintf(stderr, "producer: goshm_malloc(%llu): %s\n", (unsigned long long)len, strerror(errno));
            rc = 1;
            break;
        }
        for (uint64_t i = 0; i < len; i++) m[i] = pattern(seq, i);
        struct note n = {goshm_off(h, m), len};
        if (full_write(fd, &n, sizeof n) != 0) {
            fprintf(stderr, "producer: write: %s\n", strerror(errno));
            goshm_free(h, m);
            rc = 1;
            break;
        }
    }
    struct note end = {GOSHM_NULL, 0};
    if (full_write(fd, &end, sizeof end) != 0 && rc == 0) rc = 1;
    close(fd);
    if (goshm_detach(h) != 0) {
        fprintf(stderr, "producer: goshm_detach: %s\n", strerror(errno));
        rc = 1;
    }
    return rc;
}

static int consume(const char *path, int fd, unsigned long count)
{
    goshm_t *h = goshm_attach(path);
    if (!h) {
        fprintf(stderr, "consumer: goshm_attach: %s\n", strerror(errno));
        return 1;
    }
    uint64_t seq = 0, bytes = 0;
    int rc = 0;
    for (;;) {
        struct note n;
        int r = full_read(fd, &n, sizeof n);
        if (r <= 0 || n.len == 0) {
            if (r < 0) rc = 1;
            break;
        }
        const unsigned char *m = goshm_ptr(h, n.off);
        if (!m) {
            fprintf(stderr, "consumer: message %llu: offset %llu is not in the heap\n", (unsigned long long)seq,
                    (unsigned long long)n.off);
            rc = 1;
            break;
        }
        for (uint64_t i = 0; i < n.len && rc == 0; i++)
            if (m[i] != pattern(seq, i)) {
                fprintf(stderr, "consumer: message %llu: byte %llu is %u, want %u\n", (unsigned long long)seq,
                        (unsigned long long)i, m[i], pattern(seq, i));
                rc = 1;
            }
        goshm_free(h, (void *)m); /* freed here, allocated in the producer */
        if (rc) break;
        bytes += n.len;
        seq++;
    }
    close(fd);
    if (rc == 0 && seq != count) {
        fprintf(stderr, "consumer: %llu of %lu messages arrived\n", (unsigned long long)seq, count);
        rc = 1;
    }
    if (rc == 0) printf("prodcons: %llu messages, %llu bytes, every byte checked\n", (unsigned long long)seq,
                        (unsigned long long)bytes);
    if (goshm_detach(h) != 0) {
        fprintf(stderr, "consumer: goshm_detach: %s\n", strerror(errno));
        rc = 1;
    }
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 && argv[1][0] ? argv[1] : NULL;
    unsigned long count = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000ul;
    int p[2];
    if (pipe(p) != 0) {
        perror("prodcons: pipe");
        return 1;
    }
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        perror("prodcons: fork");
        return 1;
    }
    if (child == 0) {
        close(p[1]);
        int rc = consume(path, p[0], count);
        fflush(stdout); /* _exit does not */
        _exit(rc);
    }
    close(p[0]);
    int rc = produce(path, p[1], count);
    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR) {
            perror("prodcons: waitpid");
            return 1;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "prodcons: the consumer failed\n");
        rc = 1;
    }
    return rc;
}
