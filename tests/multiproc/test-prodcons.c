/* SPDX-License-Identifier: MIT */
/* Description: zero-copy producer/consumer across two independent processes:
 * the producer allocates buffers of random size (64..4096 bytes) holding a
 * sequence number and a checksum of their contents, and passes their offsets
 * through an SPSC ring that itself lives in the goshm heap (its offset goes
 * to the consumer on its command line); the consumer, which attaches on its
 * own, verifies every buffer and frees it. Checks contents, order, that the
 * heap is reused (it stays small while hundreds of MiB flow through it) and
 * that in_use_bytes is 0 once both processes have detached.
 *
 * Usage: test-prodcons GOSHMD            (the test; also $GOSHMD)
 *        test-prodcons --consumer SOCKET RING_OFF COUNT   (internal role)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "check.h"
#include "goshm/goshm.h"

#define MESSAGES (200000 / TEST_SCALE)
#define RING_SLOTS 1024u /* power of two */
#define MIN_SIZE 64u
#define MAX_SIZE 4096u
#define DEADLINE_MS 50000

/* The ring, in the goshm heap. Single producer, single consumer; indices are
 * free running. The producer writes slot[tail % N] then releases tail; the
 * consumer reads slot[head % N] after acquiring tail, then releases head. */
typedef struct mp_ring {
    _Alignas(64) _Atomic uint64_t tail;
    _Alignas(64) _Atomic uint64_t head;
    _Alignas(64) _Atomic uint32_t consumer_failed;
    uint64_t magic;
    _Alignas(64) goshm_off_t slot[RING_SLOTS];
} mp_ring_t;

#define RING_MAGIC UINT64_C(0x70726f64636f6e73)

typedef struct msg_hdr {
    uint64_t seq;
    uint32_t len;   /* total bytes, header included */
    uint32_t sum;   /* over bytes [sizeof hdr, len) */
} msg_hdr_t;

/* FNV-1a over 8-byte words, then the tail byte by byte. */
static uint32_t checksum(const unsigned char *p, size_t n)
{
    uint64_t x = 0xcbf29ce484222325ULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        x = (x ^ w) * 0x100000001b3ULL;
    }
    for (; i < n; i++) x = (x ^ p[i]) * 0x100000001b3ULL;
    return (uint32_t)(x ^ (x >> 32));
}

/* Fill with a pseudo-random stream seeded by s. */
static void fill(unsigned char *p, size_t n, unsigned long long s)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = test_rand(&s);
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++) p[i] = (unsigned char)test_rand(&s);
}

static int consumer(const char *sock, goshm_off_t ring_off, uint64_t count)
{
    goshm_t *h = goshm_attach(sock);
    REQUIRE(h);
    mp_ring_t *r = goshm_ptr(h, ring_off);
    REQUIRE(r && r->magic == RING_MAGIC);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t deadline = gsh_now_ms() + DEADLINE_MS;
    uint64_t bad = 0;
    for (uint64_t want = 0; want < count;) {
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (tail == head) {
            if (gsh_now_ms() > deadline) {
                fprintf(stderr, "consumer: timed out at message %" PRIu64 "\n", want);
                atomic_store(&r->consumer_failed, 1);
                return 1;
            }
            sched_yield();
            continue;
        }
        CHECK(tail - head <= RING_SLOTS);
        for (; head != tail; head++, want++) {
            goshm_off_t off = r->slot[head % RING_SLOTS];
            unsigned char *p = goshm_ptr(h, off);
            if (!p) {
                CHECK_MSG(p != NULL, "message %" PRIu64 ": bad offset %" PRIu64, want, off);
                bad++;
                continue;
            }
            msg_hdr_t m;
            memcpy(&m, p, sizeof m);
            int ok = m.seq == want && m.len >= MIN_SIZE && m.len <= MAX_SIZE && goshm_usable_size(h, p) >= m.len &&
                     checksum(p + sizeof m, m.len - sizeof m) == m.sum;
            if (!ok && bad++ < 10)
                CHECK_MSG(ok, "message %" PRIu64 ": seq %" PRIu64 " len %u sum %08x usable %zu", want, m.seq, m.len,
                          m.sum, goshm_usable_size(h, p));
            /* Scribble before freeing: the producer must never see this. */
            memset(p, 0xdd, m.len <= MAX_SIZE ? m.len : sizeof m);
            goshm_free(h, p);
        }
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
    CHECK(bad == 0);
    CHECK(goshm_detach(h) == 0);
    if (check_failures) atomic_store(&r->consumer_failed, 1);
    return CHECK_DONE("test-prodcons consumer");
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--consumer") == 0)
        return consumer(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0));

    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), NULL) == 0);
    gsh_stats_t st0, st;
    REQUIRE(gsh_stats(d.sock, &st0) == 0);
    CHECK(st0.clients == 0 && st0.in_use_bytes == 0);

    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);
    mp_ring_t *r = goshm_calloc(h, 1, sizeof *r);
    REQUIRE(r);
    r->magic = RING_MAGIC;
    goshm_off_t roff = goshm_off(h, r);
    REQUIRE(roff != GOSHM_NULL);

    char offbuf[32], cntbuf[32];
    snprintf(offbuf, sizeof offbuf, "%" PRIu64, roff);
    snprintf(cntbuf, sizeof cntbuf, "%u", (unsigned)MESSAGES);
    char *cargv[] = {argv[0], "--consumer", d.sock, offbuf, cntbuf, NULL};
    pid_t cons = gsh_spawn_self(cargv);
    REQUIRE(cons > 0);

    unsigned long long seed = 0x9e3779b97f4a7c15ULL;
    uint64_t tail = 0, sent = 0, fails = 0, max_span = 0;
    uint64_t t0 = gsh_now_ms(), deadline = t0 + DEADLINE_MS;
    int consumer_gone = 0;
    while (sent < MESSAGES) {
        uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        if (tail - head >= RING_SLOTS) {
            if (atomic_load(&r->consumer_failed) || waitpid(cons, NULL, WNOHANG) == cons) {
                consumer_gone = 1;
                break;
            }
            if (gsh_now_ms() > deadline) break;
            sched_yield();
            continue;
        }
        size_t len = MIN_SIZE + (size_t)(test_rand(&seed) % (MAX_SIZE - MIN_SIZE + 1));
        unsigned char *p = goshm_malloc(h, len);
        if (!p) {
            fails++;
            break;
        }
        msg_hdr_t m = {.seq = sent, .len = (uint32_t)len};
        fill(p + sizeof m, len - sizeof m, test_rand(&seed) | 1);
        m.sum = checksum(p + sizeof m, len - sizeof m);
        memcpy(p, &m, sizeof m);
        r->slot[tail % RING_SLOTS] = goshm_off(h, p);
        tail++;
        sent++;
        atomic_store_explicit(&r->tail, tail, memory_order_release);
        if (sent % 20000 == 0 && gsh_stats(d.sock, &st) == 0 && st.span_bytes > max_span) max_span = st.span_bytes;
    }
    CHECK_MSG(fails == 0, "goshm_malloc failed: %s", strerror(errno));
    CHECK_MSG(!consumer_gone, "the consumer failed or exited early");
    CHECK_MSG(sent == MESSAGES, "sent %" PRIu64 " of %u", sent, (unsigned)MESSAGES);
    CHECK(gsh_wait_child(cons, DEADLINE_MS) == 0);
    CHECK((uint64_t)atomic_load(&r->head) == sent);
    fprintf(stderr, "test-prodcons: %" PRIu64 " messages in %" PRIu64 " ms\n", sent, gsh_now_ms() - t0);

    /* Both attached processes seen by the daemon while running is implied by
     * the traffic; the heap must have been reused: ~420 MiB went through a
     * ring of at most 1024 buffers (4 MiB). */
    REQUIRE(gsh_stats(d.sock, &st) == 0);
    CHECK_MSG(st.grown_bytes <= (UINT64_C(64) << 20), "heap grew to %" PRIu64 " bytes", st.grown_bytes);
    CHECK_MSG(max_span <= (UINT64_C(32) << 20), "span bytes peaked at %" PRIu64, max_span);

    goshm_free(h, r);
    CHECK(goshm_detach(h) == 0);

    /* Everything came back once both detached and the daemon's timer ran. */
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK_MSG(st.in_use_bytes == 0, "in_use_bytes %" PRIu64 " after both detached", st.in_use_bytes);
    CHECK_MSG(st.span_bytes == 0, "span_bytes %" PRIu64 " after both detached", st.span_bytes);
    CHECK_MSG(st.objects_in_use == 0, "%" PRIu64 " objects in use", st.objects_in_use);
    CHECK(st.clients == 0);
    /* Well-behaved clients never send a request the daemon must reject. */
    REQUIRE(gsh_stats(d.sock, &st) == 0);
    CHECK_MSG(st.bad_requests == 0 && st.bad_ring_entries == 0, "bad_requests %" PRIu64 ", bad_ring_entries %" PRIu64,
              st.bad_requests, st.bad_ring_entries);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-prodcons");
}
