/* SPDX-License-Identifier: MIT */
/* report.c: the non-allocating reporter, throw and bad-free policy.
 *
 * Overview: shm/overview.h; contract: shm/report.h.
 */
#include "report.h"
#include "debug.h" /* gs_debug: GOSHM_DEBUG */

#include <stdarg.h>    /* va_list */
#include <stdatomic.h> /* atomic_* */
#include <stdlib.h>    /* abort */
#include <unistd.h>    /* write */

static void put(char *buf, size_t *n, size_t cap, char c)
{
    if (*n < cap) buf[(*n)++] = c;
}

static void put_u(char *buf, size_t *n, size_t cap, unsigned long long v, unsigned base)
{
    char tmp[24];
    int k = 0;
    do {
        unsigned d = (unsigned)(v % base);
        tmp[k++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v && k < 24);
    while (k) put(buf, n, cap, tmp[--k]);
}

void gs_printf(const char *fmt, ...)
{
    char buf[512];
    size_t n = 0, cap = sizeof buf - 1;
    va_list ap;
    va_start(ap, fmt);
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') { put(buf, &n, cap, *p); continue; }
        p++;
        int l = 0;
        while (*p == 'l') { l++; p++; }
        switch (*p) {
        case 's': { const char *s = va_arg(ap, const char *); if (!s) s = "(null)"; while (*s) put(buf, &n, cap, *s++); break; }
        case 'u': put_u(buf, &n, cap, l == 0 ? va_arg(ap, unsigned) : l == 1 ? va_arg(ap, unsigned long) : va_arg(ap, unsigned long long), 10); break;
        case 'x': put_u(buf, &n, cap, l == 0 ? va_arg(ap, unsigned) : l == 1 ? va_arg(ap, unsigned long) : va_arg(ap, unsigned long long), 16); break;
        case 'd': {
            long long v = l == 0 ? va_arg(ap, int) : l == 1 ? va_arg(ap, long) : va_arg(ap, long long);
            if (v < 0) { put(buf, &n, cap, '-'); put_u(buf, &n, cap, (unsigned long long)-(v + 1) + 1, 10); }
            else put_u(buf, &n, cap, (unsigned long long)v, 10);
            break;
        }
        case '%': put(buf, &n, cap, '%'); break;
        default: put(buf, &n, cap, '?'); break;
        }
        if (!*p) break;
    }
    va_end(ap);
    ssize_t r = write(2, buf, n);
    (void)r;
}

_Noreturn void gs_throw(const char *msg)
{
    gs_printf("goshm: fatal: %s\n", msg);
    abort();
}

static _Atomic unsigned long long peer_errors;

void gs_report_peer(const char *msg)
{
    unsigned long long n = atomic_fetch_add_explicit(&peer_errors, 1, memory_order_relaxed) + 1;
    if (n <= 16 || (n & (n - 1)) == 0)
        gs_printf("goshm: peer: %s (%llu such errors so far; the call fails, the process goes on)\n", msg, n);
}

uint64_t gs_peer_error_count(void) { return atomic_load_explicit(&peer_errors, memory_order_relaxed); }

static _Atomic unsigned long long badfree_count;

int gs_badfree_mode(void) { return gs_debug()->badfree; }

uint64_t gs_badfree_count(void)
{
    return atomic_load_explicit(&badfree_count, memory_order_relaxed);
}

void gs_report_bad_use(const char *what)
{
    atomic_fetch_add_explicit(&badfree_count, 1, memory_order_relaxed);
    if (gs_badfree_mode() == GS_BADFREE_ABORT) {
        gs_printf("goshm: aborting after a %s (set GOSHM_DEBUG=badfree=warn to report and continue)\n", what);
        abort();
    }
}

void gs_report_bad_free(const char *why, const void *addr, uint64_t off, uint32_t sid, uint64_t objsize)
{
    atomic_fetch_add_explicit(&badfree_count, 1, memory_order_relaxed);
    unsigned long long a = (unsigned long long)(uintptr_t)addr;
    if (off == 0)
        gs_printf("goshm: bad free: %s: address 0x%llx\n", why, a);
    else if (objsize == 0)
        gs_printf("goshm: bad free: %s: address 0x%llx (heap offset 0x%llx, span %u)\n", why, a,
                  (unsigned long long)off, sid);
    else
        gs_printf("goshm: bad free: %s: address 0x%llx (heap offset 0x%llx, span %u, object size %llu bytes)\n",
                  why, a, (unsigned long long)off, sid, (unsigned long long)objsize);
    if (gs_badfree_mode() == GS_BADFREE_ABORT) {
        gs_printf("goshm: aborting (set GOSHM_DEBUG=badfree=warn to report and continue)\n");
        abort();
    }
}
