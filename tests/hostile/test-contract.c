/* SPDX-License-Identifier: MIT */
/* Description: the API contract where it used to have holes (issue 7,
 * point 12), against a real goshmd.
 * (1) goshm_aligned_alloc with every power-of-two alignment from 1 B up to
 *     one arena (64 MiB): the pointer is aligned here, and a second,
 *     independent process that attaches on its own finds the same objects
 *     aligned at its own addresses and reads back what this one wrote.
 *     Freed, they are reused: 64 MiB-aligned objects are allocated and freed
 *     far more often than the heap could hold without reuse, and the heap is
 *     empty at the end. Above an arena: EINVAL.
 * (2) goshm_usable_size of a freed pointer (small, tiny, large) is 0 with
 *     errno EINVAL, and realloc of one is refused (GOSHM_DEBUG=badfree=warn).
 * (3) The bad-free report names a foreign pointer's address, and the byte
 *     size of an object (not a size class index) for an interior pointer.
 *
 * Usage: test-contract GOSHMD   (the test; also $GOSHMD)
 *        test-contract --peer SOCKET TABLE_OFF COUNT   (internal role)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../service/harness.h"
#include "../unit/check.h"
#include "goshm/goshm.h"

#define ARENA (UINT64_C(64) << 20)
#define MAX_SHIFT 26 /* 64 MiB */

typedef struct entry {
    goshm_off_t off;
    uint64_t align;
    uint32_t size;
    uint32_t tag;
} entry_t;

static inline unsigned char pat(uint32_t t, size_t i) { return (unsigned char)(t * 131u + i * 7u + (i >> 11)); }

static size_t verify(const unsigned char *p, size_t n, uint32_t tag)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat(tag, i)) return i + 1;
    return 0;
}

/* The sizes tried with each alignment: below it, at it, above it. */
static uint32_t size_for(uint64_t align, int k)
{
    switch (k) {
    case 0: return 1;
    case 1: return align <= 65536 ? (uint32_t)align : 3000;
    default: return align <= 65536 ? (uint32_t)(align * 3 + 5) : 70000;
    }
}

/* The second process: attach on its own, check every object of the table. */
static int peer(const char *sock, goshm_off_t table_off, uint32_t n)
{
    goshm_t *h = goshm_attach(sock);
    REQUIRE(h);
    const entry_t *t = goshm_ptr(h, table_off);
    REQUIRE(t);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *p = goshm_ptr(h, t[i].off);
        CHECK_MSG(p != NULL, "peer: object %u off %" PRIu64, i, (uint64_t)t[i].off);
        if (!p) continue;
        CHECK_MSG((uintptr_t)p % t[i].align == 0, "peer: object %u align %" PRIu64 " at %p", i, t[i].align,
                  (const void *)p);
        size_t bad = verify(p, t[i].size, t[i].tag);
        CHECK_MSG(bad == 0, "peer: object %u (align %" PRIu64 ", size %u) differs at byte %zu", i, t[i].align,
                  t[i].size, bad - 1);
    }
    goshm_detach(h);
    return CHECK_DONE("test-contract peer");
}

/* Run fn with stderr captured; the text (NUL-terminated) into buf. */
static void capture_stderr(void (*fn)(void *), void *arg, char *buf, size_t len)
{
    char path[] = "/tmp/goshm-contract-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    REQUIRE(saved >= 0 && dup2(fd, 2) == 2);
    fn(arg);
    dup2(saved, 2);
    close(saved);
    ssize_t r = pread(fd, buf, len - 1, 0);
    buf[r > 0 ? r : 0] = '\0';
    close(fd);
    fprintf(stderr, "captured: %s", buf);
}

static goshm_t *H;
static void free_it(void *p) { goshm_free(H, p); }

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--peer") == 0)
        return peer(argv[2], strtoull(argv[3], NULL, 0), (uint32_t)strtoul(argv[4], NULL, 0));

    /* Report bad frees and go on: this test makes some on purpose. */
    setenv("GOSHM_DEBUG", "badfree=warn", 1);
    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), "--size 512M") == 0);
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);
    H = h;

    /* (1) Aligned objects, here and in a second process. */
    enum { N = (MAX_SHIFT + 1) * 3 };
    entry_t *t = goshm_malloc(h, N * sizeof *t);
    REQUIRE(t);
    uint32_t n = 0;
    for (int s = 0; s <= MAX_SHIFT; s++) {
        uint64_t al = UINT64_C(1) << s;
        for (int k = 0; k < 3; k++) {
            uint32_t size = size_for(al, k);
            errno = 0;
            unsigned char *p = goshm_aligned_alloc(h, (size_t)al, size);
            CHECK_MSG(p != NULL, "aligned_alloc(%" PRIu64 ", %u): %s", al, size, strerror(errno));
            if (!p) continue;
            CHECK_MSG((uintptr_t)p % al == 0, "aligned_alloc(%" PRIu64 ", %u) = %p", al, size, (void *)p);
            CHECK(goshm_usable_size(h, p) >= size);
            uint32_t tag = n * 977u + 13u;
            for (size_t i = 0; i < size; i++) p[i] = pat(tag, i);
            t[n++] = (entry_t){.off = goshm_off(h, p), .align = al, .size = size, .tag = tag};
        }
    }
    char offb[32], cntb[16];
    snprintf(offb, sizeof offb, "%" PRIu64, (uint64_t)goshm_off(h, t));
    snprintf(cntb, sizeof cntb, "%u", n);
    char *pargv[] = {argv[0], "--peer", d.sock, offb, cntb, NULL};
    pid_t pid = gsh_spawn_self(pargv);
    REQUIRE(pid > 0);
    CHECK(gsh_wait_child(pid, 60000) == 0);
    for (uint32_t i = 0; i < n; i++) {
        unsigned char *p = goshm_ptr(h, t[i].off);
        size_t bad = verify(p, t[i].size, t[i].tag);
        CHECK_MSG(bad == 0, "object %u (align %" PRIu64 ") differs at byte %zu", i, t[i].align, bad - 1);
        goshm_free(h, p);
    }
    goshm_free(h, t);

    /* Reuse: 64 objects aligned to 64 MiB, two live at a time, on a 512 MiB
     * heap: without reuse the heap runs out after a few. */
    void *keep = NULL;
    int got = 0;
    for (int i = 0; i < 64; i++) {
        unsigned char *p = goshm_aligned_alloc(h, ARENA, 100000);
        CHECK_MSG(p != NULL, "round %d: aligned_alloc(64 MiB): %s", i, strerror(errno));
        if (!p) break;
        CHECK((uintptr_t)p % ARENA == 0);
        memset(p, i, 100000);
        if (keep) {
            CHECK(((unsigned char *)keep)[99999] == (unsigned char)(i - 1));
            goshm_free(h, keep);
        }
        keep = p;
        got++;
    }
    if (keep) goshm_free(h, keep);
    CHECK(got == 64);
    errno = 0;
    CHECK(goshm_aligned_alloc(h, 2 * ARENA, 100) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(goshm_aligned_alloc(h, 3 * 4096, 100) == NULL && errno == EINVAL);

    /* (2) usable_size of freed pointers: 0 and EINVAL. */
    size_t sizes[] = {4, 100, 5000, 200000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *keepalive = goshm_malloc(h, sizes[i]); /* the span stays in use */
        void *p = goshm_malloc(h, sizes[i]);
        REQUIRE(p && keepalive);
        CHECK(goshm_usable_size(h, p) >= sizes[i]);
        goshm_free(h, p);
        errno = 0;
        size_t u = goshm_usable_size(h, p);
        CHECK_MSG(u == 0 && errno == EINVAL, "usable_size of a freed %zu-byte object: %zu (errno %d)", sizes[i], u,
                  errno);
        errno = 0;
        CHECK(goshm_realloc(h, p, sizes[i] * 2) == NULL && errno == EINVAL);
        goshm_free(h, keepalive);
    }

    /* (3) The bad-free report. A foreign pointer: its address is printed. */
    char text[1024], want[64];
    int local;
    capture_stderr(free_it, &local, text, sizeof text);
    snprintf(want, sizeof want, "0x%llx", (unsigned long long)(uintptr_t)&local);
    CHECK_MSG(strstr(text, want) != NULL, "the report '%s' does not name %s", text, want);
    CHECK(strstr(text, "offset 0x0") == NULL);
    /* An interior pointer: the object's size in bytes. */
    char *obj = goshm_malloc(h, 100);
    REQUIRE(obj);
    size_t usable = goshm_usable_size(h, obj);
    capture_stderr(free_it, obj + 1, text, sizeof text);
    snprintf(want, sizeof want, "object size %zu bytes", usable);
    CHECK_MSG(strstr(text, want) != NULL, "the report '%s' does not say '%s'", text, want);
    snprintf(want, sizeof want, "0x%llx", (unsigned long long)(uintptr_t)(obj + 1));
    CHECK_MSG(strstr(text, want) != NULL, "the report '%s' does not name %s", text, want);
    goshm_free(h, obj);

    goshm_detach(h);
    gsh_stats_t st;
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK_MSG(st.in_use_bytes == 0 && st.large_objects == 0, "after all frees: in use %" PRIu64 ", large %" PRIu64,
              st.in_use_bytes, st.large_objects);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-contract");
}
