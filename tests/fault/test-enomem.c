/* SPDX-License-Identifier: MIT */
/* Description: a full heap is ENOMEM, never SIGBUS. On a 64 MiB goshmd,
 * allocate large objects, then smaller and smaller ones down to tiny, touching
 * every byte, until each size fails with ENOMEM (a SIGBUS handler fails the
 * test), each size in a 1 MiB hole left by freeing a large object. A
 * failed realloc leaves its block intact; overflowing calloc is
 * EOVERFLOW. After freeing everything, allocation works again and, once the
 * caches are flushed, the whole heap can be filled again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "check.h"
#include "goshm/goshm.h"

#define HEAP (UINT64_C(64) << 20)

static void on_sigbus(int sig)
{
    (void)sig;
    static const char msg[] = "test-enomem: SIGBUS touching heap memory: FAIL\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(1);
}

typedef struct vec {
    void **p;
    size_t n, cap;
} vec_t;

static void push(vec_t *v, void *p)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 1024;
        v->p = realloc(v->p, v->cap * sizeof *v->p);
        REQUIRE(v->p);
    }
    v->p[v->n++] = p;
}

/* Allocate objects of `size` until ENOMEM, touching every byte. Returns how
 * many; *err gets the errno of the failure. */
static size_t fill_with(goshm_t *h, vec_t *v, size_t size, int *err)
{
    size_t n = 0;
    for (;;) {
        errno = 0;
        unsigned char *p = goshm_malloc(h, size);
        if (!p) {
            *err = errno;
            return n;
        }
        memset(p, (int)(n & 0xff) | 1, size);
        push(v, p);
        n++;
    }
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigaction(SIGBUS, &sa, NULL);

    gsh_daemon_t d;
    REQUIRE(gsh_start(&d, gsh_daemon_path(argc, argv), "--size 64M") == 0);
    gsh_stats_t st;
    REQUIRE(gsh_stats(d.sock, &st) == 0);
    CHECK_MSG(st.reserved_bytes == HEAP, "reserved %" PRIu64, st.reserved_bytes);
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);

    /* Larger than the heap: ENOMEM at once. */
    volatile size_t over = (size_t)HEAP + 1, huge = SIZE_MAX / 2, many = SIZE_MAX / 8; /* no compile-time warnings */
    errno = 0;
    CHECK(goshm_malloc(h, over) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(goshm_malloc(h, huge) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(goshm_calloc(h, many, 16) == NULL && errno == EOVERFLOW);

    /* Fill with 1 MiB objects until ENOMEM. Then, for each smaller size,
     * free one of them and fill the 1 MiB hole with that size until ENOMEM. */
    vec_t v = {0};
    int err = 0;
    size_t first_large = fill_with(h, &v, 1u << 20, &err);
    CHECK_MSG(err == ENOMEM, "1 MiB: failed with %s after %zu objects", strerror(err), first_large);
    CHECK_MSG(first_large >= 60 && first_large <= 64, "%zu objects of 1 MiB in a 64 MiB heap", first_large);
    REQUIRE(first_large >= 16);
    size_t sizes[] = {100000, 32768, 20000, 4096, 1000, 256, 48, 17, 16, 8, 1};
    for (unsigned i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        goshm_free(h, v.p[i]);
        v.p[i] = NULL;
        size_t before = v.n;
        size_t n = fill_with(h, &v, sizes[i], &err);
        CHECK_MSG(err == ENOMEM, "size %zu: failed with %s after %zu objects", sizes[i], strerror(err), n);
        uint64_t got = n ? (uint64_t)n * goshm_usable_size(h, v.p[before]) : 0;
        fprintf(stderr, "test-enomem: %zu objects of %zu bytes in a 1 MiB hole\n", n, sizes[i]);
        /* The hole is used, up to tail waste (and pages the previous size
         * left over are used too). */
        CHECK_MSG(got >= (3u << 20) / 4 && got <= (5u << 20) / 4, "size %zu: %" PRIu64 " usable bytes in a 1 MiB hole",
                  sizes[i], got);
    }
    REQUIRE(gsh_stats(d.sock, &st) == 0);
    CHECK_MSG(st.in_use_bytes >= HEAP - (HEAP / 16) && st.in_use_bytes <= HEAP, "full heap: in_use %" PRIu64,
              st.in_use_bytes);

    /* A failed realloc leaves the block intact. Make room for one small
     * object first by freeing one 1 MiB object. */
    goshm_free(h, v.p[15]);
    v.p[15] = NULL;
    unsigned char *keep = goshm_malloc(h, 64);
    CHECK(keep != NULL);
    if (keep) {
        memset(keep, 0x42, 64);
        errno = 0;
        CHECK(goshm_realloc(h, keep, 8u << 20) == NULL && errno == ENOMEM);
        CHECK(keep[0] == 0x42 && keep[63] == 0x42);
        goshm_free(h, keep);
    }

    /* Free everything: allocation works again at once. */
    for (size_t i = 0; i < v.n; i++) goshm_free(h, v.p[i]);
    v.n = 0;
    unsigned char *again = goshm_malloc(h, 1u << 20);
    CHECK(again != NULL);
    if (again) {
        memset(again, 7, 1u << 20);
        goshm_free(h, again);
    }
    CHECK(goshm_detach(h) == 0);
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK_MSG(st.in_use_bytes == 0, "in_use_bytes %" PRIu64 " after freeing everything", st.in_use_bytes);
    CHECK_MSG(st.span_bytes == 0, "span_bytes %" PRIu64 " after freeing everything", st.span_bytes);

    /* The whole heap again, from a fresh attach. */
    h = goshm_attach(d.sock);
    REQUIRE(h);
    size_t n2 = fill_with(h, &v, 1u << 20, &err);
    CHECK(err == ENOMEM);
    CHECK_MSG(n2 >= first_large, "refill: %zu objects of 1 MiB, %zu the first time", n2, first_large);
    for (size_t i = 0; i < v.n; i++) goshm_free(h, v.p[i]);
    CHECK(goshm_detach(h) == 0);
    CHECK(gsh_settle_idle(d.sock, &st) == 0);
    CHECK(st.in_use_bytes == 0 && st.span_bytes == 0);
    free(v.p);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-enomem");
}
