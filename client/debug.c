/* SPDX-License-Identifier: MIT */
/* debug.c: the client's debug modes: poison (write-after-free detection)
 * and allocfreetrace.
 *
 * Overview: shm/overview.h; the variable: shm/debug.h. Both modes are read
 * once per attach into goshm_t.debug. They cost nothing on the allocation
 * path when off: while a mode is on, each thread's sampling countdown
 * (client/profile.c) is kept at 0, so the test the allocation path makes
 * for the heap profile anyway fires at every allocation and calls
 * gs_debug_on_alloc. The free path tests goshm_t.debug once, after the
 * "free the last allocation" shortcut, which a mode turns off.
 *
 * Poison. A free fills the object's slot before the atomic OR that gives it
 * away (client/free.c): after the OR another process may be handed the slot
 * at once, so filling later would scribble on its object. The fill is one
 * 64-bit word per 8 bytes, word k = GS_POISON_MAGIC ^ offset ^ k * golden,
 * so that it names the slot: the stale pattern of a slot of another size
 * that once covered the same bytes does not match. When a slot is handed
 * out (goshm_malloc, goshm_calloc, before zeroing) the allocator checks it:
 * with the first word intact, every later word must be intact; with the
 * first word changed but every later one intact, the
 * first word was written. Either is reported as a write after free, with
 * the offset, the size class and the first byte that changed, and, when
 * that allocation was sampled by the heap profile (client/profile.c), its
 * call stack (GOSHM_PROFILE_RATE=1 samples every allocation). A slot whose
 * first word and tail both differ is taken as never poisoned: fresh memory,
 * or freed by a process of the same heap that runs without poison (the mode
 * is per process, the heap is shared). Objects of 8 bytes or less (tiny
 * halves) and large objects are not poisoned. While poison is on, the
 * "free the last allocation" shortcut (gs_mcache_undo) is off, so every free
 * takes the filling path.
 *
 * Allocfreetrace. Every allocation (goshm_malloc, calloc, realloc,
 * aligned_alloc; logged as "malloc(N)", N the slot size of a small object,
 * the asked size of a large one) and every goshm_free is logged to stderr,
 * one line then the call stack from
 * glibc's backtrace() (backtrace_symbols_fd: no allocation), under a mutex
 * so that threads' records do not interleave.
 */
#define _GNU_SOURCE
#include "client.h"

#include <execinfo.h> /* backtrace, backtrace_symbols_fd */
#include <string.h>   /* memcpy */
#include <sys/syscall.h> /* SYS_gettid */
#include <unistd.h>   /* getpid, syscall */

#include "debug.h" /* gs_debug */

#define GS_POISON_MAGIC UINT64_C(0x8badf00ddeadbeef)
#define TRACE_FRAMES 32

uint32_t gs_debug_flags(void)
{
    const gs_debug_t *d = gs_debug();
    return (d->poison ? GS_DEBUG_POISON : 0u) | (d->allocfreetrace ? GS_DEBUG_TRACE : 0u);
}

/* Word k of the pattern of the slot at off. Every word depends on the
 * offset, so the stale pattern of a slot of another size that covered the
 * same bytes (its span was freed and carved again) never passes for this
 * slot's. */
static inline uint64_t pattern(uint64_t off, uint32_t k)
{
    return GS_POISON_MAGIC ^ off ^ ((uint64_t)k * UINT64_C(0x9e3779b97f4a7c15));
}

void gs_poison_fill(void *p, uint32_t size, uint64_t off)
{
    if (size < 16u) return;
    for (uint32_t k = 0; k < size / 8u; k++) {
        uint64_t w = pattern(off, k);
        memcpy((char *)p + 8u * k, &w, sizeof w);
    }
}

/* First word at or after `from` that differs from the pattern, or n. */
static uint32_t first_changed(const unsigned char *p, uint64_t off, uint32_t from, uint32_t n)
{
    for (uint32_t k = from; k < n; k++) {
        uint64_t w;
        memcpy(&w, p + 8u * k, sizeof w);
        if (w != pattern(off, k)) return k;
    }
    return n;
}

/* Check a slot being handed out; report a write after free. */
static void poison_check(struct goshm *h, void *p)
{
    gs_lookup_t l;
    if (gs_lookup(h, p, &l) != NULL || l.span->state != GS_SPAN_SMALL || gs_spanclass_tiny(l.span->spanclass))
        return;
    uint32_t size = l.span->elemsize, n = size / 8u;
    if (size < 16u) return;
    const unsigned char *b = p;
    uint32_t w0 = first_changed(b, l.off, 0, 1), tail = first_changed(b, l.off, 1, n), k;
    if (w0 == 1) { /* the first word is intact: the slot was poisoned */
        if (tail == n) return;
        k = tail;
    } else { /* poisoned and the first word written, or never poisoned */
        if (tail != n) return;
        k = 0;
    }
    uint64_t want = pattern(l.off, k);
    unsigned char wb[8];
    memcpy(wb, &want, sizeof wb);
    uint32_t at = 0;
    while (at < 7u && b[8u * k + at] == wb[at]) at++;
    gs_printf("goshm: write after free: object at offset 0x%llx (size class %u bytes, span %u): byte %u was "
              "changed after the object was freed (0x%x, poison 0x%x)\n",
              (unsigned long long)l.off, size, l.sid, 8u * k + at, (unsigned)b[8u * k + at], (unsigned)wb[at]);
    gs_prof_report_freed(h, l.off);
    gs_report_bad_use("write after free");
}

static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;

static void trace(struct goshm *h, const char *what, const void *p, size_t size, bool has_size)
{
    void *frames[TRACE_FRAMES];
    int n = backtrace(frames, TRACE_FRAMES);
    uint64_t off = p ? goshm_off(h, p) : 0;
    pthread_mutex_lock(&trace_lock);
    if (has_size)
        gs_printf("goshm: trace: pid %d tid %ld %s(%lu) = offset 0x%llx\n", (int)getpid(), (long)syscall(SYS_gettid),
                  what, (unsigned long)size, (unsigned long long)off);
    else
        gs_printf("goshm: trace: pid %d tid %ld %s(offset 0x%llx)\n", (int)getpid(), (long)syscall(SYS_gettid), what,
                  (unsigned long long)off);
    /* Skip this function and the hook that called it. */
    if (n > 2) backtrace_symbols_fd(frames + 2, n - 2, 2);
    pthread_mutex_unlock(&trace_lock);
}

void gs_debug_on_alloc(struct goshm *h, const char *what, void *p, size_t size)
{
    if (gs_tls.id == h->id) gs_mcache_forget(gs_tls.cache); /* no undo shortcut: frees take the filling path */
    if (p && (h->debug & GS_DEBUG_POISON) && size > GS_TINY_HALF && size <= GS_MAX_SMALL_SIZE) poison_check(h, p);
    if (h->debug & GS_DEBUG_TRACE) trace(h, what, p, size, true);
}

void gs_debug_on_free(struct goshm *h, const void *p)
{
    if (p && (h->debug & GS_DEBUG_TRACE)) trace(h, "free", p, 0, false);
}
