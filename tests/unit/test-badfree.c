/* SPDX-License-Identifier: MIT */
/* Description: frees of pointers that are not live objects (outside the
 * heap, interior, double, into free pages) are reported with offset, span
 * and class, abort by default, continue with GOSHM_DEBUG=badfree=warn, and
 * never corrupt the heap. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "heap_internal.h"
#include "inproc.h"

int main(void)
{
    gs_heap_config_t cfg = {.size = 1ull << 30, .max_slots = 8};

    /* Default: abort. Run it in a child. */
    pid_t pid = fork();
    if (pid == 0) {
        goshm_t *h = gs_local_open(&cfg);
        char *p = goshm_malloc(h, 100);
        goshm_free(h, p + 16);
        _exit(0); /* not reached */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);

    setenv("GOSHM_DEBUG", "badfree=warn", 1);
    goshm_t *h = gs_local_open(&cfg);
    REQUIRE(h);
    gs_heap_t *hp = gs_local_heap(h);
    uint64_t n0 = gs_badfree_count();
    int local;
    goshm_free(h, &local);                       /* outside the heap */
    CHECK(gs_badfree_count() == n0 + 1);
    char *p = goshm_malloc(h, 100);              /* class 112 */
    memset(p, 9, 100);
    goshm_free(h, p + 16);                       /* interior */
    CHECK(gs_badfree_count() == n0 + 2);
    goshm_free(h, p);
    goshm_free(h, p);                            /* double, before a sweep */
    CHECK(gs_badfree_count() == n0 + 3);
    char *q = goshm_malloc(h, 100);              /* p again: freed at once, reused at once */
    CHECK(q == p);
    goshm_free(h, q + 112);                      /* a slot never handed out */
    CHECK(gs_badfree_count() == n0 + 4);
    char *big = goshm_malloc(h, 100000);
    goshm_free(h, big + 8192);                   /* interior of a large object */
    CHECK(gs_badfree_count() == n0 + 5);
    goshm_free(h, big);
    gs_local_collect(h);
    goshm_free(h, big);                          /* a large object already given back */
    CHECK(gs_badfree_count() == n0 + 6);
    goshm_free(h, h->data + h->arena_off + (GS_ARENA_SIZE - GS_PAGE_SIZE)); /* free pages */
    CHECK(gs_badfree_count() == n0 + 7);
    goshm_free(h, h->data + 64);                 /* the header */
    CHECK(gs_badfree_count() == n0 + 8);

    /* After a sweep, freeing p again is still caught. */
    gs_mcache_flush(h, gs_mcache_get(h));
    gs_local_collect(h);
    goshm_free(h, q);
    gs_local_collect(h);
    goshm_free(h, q);
    CHECK(gs_badfree_count() == n0 + 9);

    /* Nothing was corrupted: everything is free and consistent. */
    gs_local_lock(h);
    gs_heap_stats_t st;
    gs_heap_stats(hp, &st);
    CHECK(st.span_bytes == 0 && st.in_use_bytes == 0);
    CHECK(gs_heap_check(hp) == 0);
    gs_local_unlock(h);
    goshm_detach(h);
    return CHECK_DONE("test-badfree");
}
