/* SPDX-License-Identifier: MIT */
/* producer.c: the C producer of tests/python/test_producer.py, sharing
 * buffers with a Python consumer through a channel and a name.
 * Overview: shm/overview.h.
 *
 *   producer SOCKET PREFIX COUNT
 * attaches to SOCKET, names a TABLE_SIZE-byte buffer PREFIX.table (filled
 * with pattern(COUNT, j)), opens (creating) the channel PREFIX.data and
 * sends COUNT buffers through it, message i of msg_size(i) bytes filled
 * with pattern(i, j), each carrying its reference. Then it waits on the
 * channel PREFIX.ack for the consumer's answer, a buffer holding two
 * little-endian uint64: the messages and the bytes it checked; checks
 * them, releases that buffer and its own reference to the table, deletes
 * the name, closes its channels, detaches, prints
 * "producer: COUNT messages, BYTES bytes" and exits 0. Any failure: a
 * message on stderr and exit 1. test_producer.py computes the same sizes
 * and patterns.
 */
#include <errno.h>    /* errno */
#include <inttypes.h> /* PRIu64 */
#include <stdint.h>   /* uint64_t */
#include <stdio.h>    /* fprintf, snprintf */
#include <stdlib.h>   /* strtoul */
#include <string.h>   /* strerror, memcpy */

#include <goshm/goshm.h>

#define TABLE_SIZE 100000

static size_t msg_size(uint64_t i)
{
    /* every tenth a large object (> 32 KiB), the rest 1 .. 4096 bytes */
    return i % 10 == 9 ? 32768 + (size_t)(i * 7919 % 70000) : 1 + (size_t)(i * 7919 % 4096);
}

static unsigned char pattern(uint64_t seed, size_t j)
{
    return (unsigned char)(seed * 131 + 1 + 7 * j);
}

#define FAIL(...)                                                                                                  \
    do {                                                                                                           \
        fprintf(stderr, "producer: " __VA_ARGS__);                                                                 \
        fprintf(stderr, " (%s)\n", strerror(errno));                                                               \
        return 1;                                                                                                  \
    } while (0)

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: producer SOCKET PREFIX COUNT\n");
        return 2;
    }
    const char *prefix = argv[2];
    uint64_t count = strtoull(argv[3], NULL, 10);
    char data_name[64], ack_name[64], table_name[64];
    snprintf(data_name, sizeof data_name, "%s.data", prefix);
    snprintf(ack_name, sizeof ack_name, "%s.ack", prefix);
    snprintf(table_name, sizeof table_name, "%s.table", prefix);

    goshm_t *h = goshm_attach(argv[1]);
    if (!h) FAIL("attach %s", argv[1]);
    unsigned char *table = goshm_buf_alloc(h, TABLE_SIZE);
    if (!table) FAIL("buf_alloc table");
    for (size_t j = 0; j < TABLE_SIZE; j++) table[j] = pattern(count, j);
    if (goshm_name_set(h, table_name, goshm_off(h, table)) != 0) FAIL("name_set %s", table_name);
    goshm_chan_t *data = goshm_chan_open(h, data_name, 16);
    if (!data) FAIL("chan_open %s", data_name);
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < count; i++) {
        size_t n = msg_size(i);
        unsigned char *p = goshm_buf_alloc(h, n);
        if (!p) FAIL("buf_alloc %zu", n);
        for (size_t j = 0; j < n; j++) p[j] = pattern(i, j);
        if (goshm_chan_send(data, goshm_off(h, p), 20000) != 0) FAIL("send %" PRIu64, i);
        bytes += n;
    }
    goshm_chan_t *ack = goshm_chan_open(h, ack_name, 4);
    if (!ack) FAIL("chan_open %s", ack_name);
    goshm_off_t off;
    if (goshm_chan_recv(ack, &off, 20000) != 0) FAIL("recv the ack");
    const unsigned char *a = goshm_ptr(h, off);
    if (!a) FAIL("ack offset %" PRIu64 " outside the heap", off);
    uint64_t got[2];
    memcpy(got, a, sizeof got); /* little-endian: x86-64, like the consumer */
    if (got[0] != count || got[1] != bytes) {
        fprintf(stderr, "producer: the consumer checked %" PRIu64 " messages, %" PRIu64 " bytes; sent %" PRIu64
                        ", %" PRIu64 "\n", got[0], got[1], count, bytes);
        return 1;
    }
    if (goshm_buf_refs(h, a) != 1) FAIL("ack refs %u, want 1", goshm_buf_refs(h, a));
    if (goshm_buf_release(h, a) != 0) FAIL("release the ack");
    if (goshm_name_del(h, table_name) != 0) FAIL("name_del %s", table_name);
    if (goshm_buf_release(h, table) != 0) FAIL("release the table");
    goshm_chan_close(ack);
    goshm_chan_close(data);
    if (goshm_detach(h) != 0) FAIL("detach");
    printf("producer: %" PRIu64 " messages, %" PRIu64 " bytes\n", count, bytes);
    return 0;
}
