/* SPDX-License-Identifier: MIT */
/* Description: calloc returns zeroed memory across reuse (dirty slots are
 * cleared, fresh spans skip the memset), for small, tiny and large sizes;
 * nmemb * size overflow is EOVERFLOW. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "client.h"
#include "inproc.h"

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

int main(void)
{
    gs_heap_config_t cfg = {.size = 1ull << 30, .max_slots = 8};
    goshm_t *h = gs_local_open(&cfg);
    REQUIRE(h);
    size_t sizes[] = {1, 8, 16, 100, 1024, 4000, 32768, 40000, 1 << 20};
    for (unsigned k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = sizes[k];
        enum { N = 200 };
        void *p[N];
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < N; i++) {
                p[i] = goshm_calloc(h, 1, n);
                REQUIRE(p[i]);
                CHECK_MSG(all_zero(p[i], n), "size %zu round %d", n, round);
                memset(p[i], 0xAB, goshm_usable_size(h, p[i]));
            }
            for (int i = 0; i < N; i++) goshm_free(h, p[i]);
            gs_local_collect(h); /* large spans go back to the mheap dirty */
        }
    }
    volatile size_t half = SIZE_MAX / 2, three = 3, big = (size_t)1 << 33;
    errno = 0;
    CHECK(goshm_calloc(h, half, three) == NULL && errno == EOVERFLOW);
    errno = 0;
    CHECK(goshm_calloc(h, big, big) == NULL && errno == EOVERFLOW);
    void *z = goshm_calloc(h, 0, 5);
    CHECK(z != NULL);
    goshm_free(h, z);
    goshm_detach(h);
    return CHECK_DONE("test-calloc");
}
