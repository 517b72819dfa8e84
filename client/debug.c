/* debug.c: the client's debug modes: poison (write-after-free detection)
 * and allocfreetrace.
 *
 * Overview: shm/malloc.h; the variable: shm/debug.h. Both modes are read
 * once per attach into goshm_t.debug; the allocation and free paths test
 * that one word (one predictable branch) and call here only when it is set.
 *
 * Poison. A free fills the object's slot before the atomic OR that gives it
 * away (client/free.c): after the OR another process may be handed the slot
 * at once, so filling later would scribble on its object. The fill is
 *   bytes [0, 8)   GS_POISON_MAGIC ^ offset: says "poisoned, at this offset"
 *   bytes [8, n)   GS_POISON_BYTE
 * When a slot is handed out (goshm_malloc, goshm_calloc, before zeroing) the
 * allocator checks it: with the first word intact, every later byte must be
 * the pattern; with the first word changed but every later byte intact, the
 * first word was written. Either is reported as a write after free, with
 * the offset, the size class and the first byte that changed. A slot whose
 * first word and tail both differ is taken as never poisoned: fresh memory,
 * or freed by a process of the same heap that runs without poison (the mode
 * is per process, the heap is shared). Objects of 8 bytes or less (tiny
 * halves) and large objects are not poisoned. While poison is on, the
 * "free the last allocation" shortcut (gs_mcache_undo) is off, so every free
 * takes the filling path.
 *
 * Allocfreetrace. Every goshm_malloc/calloc/realloc/aligned_alloc result and
 * every goshm_free is logged to stderr, one line then the call stack from
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
#define GS_POISON_BYTE  0xdbu
#define GS_POISON_WORD  UINT64_C(0xdbdbdbdbdbdbdbdb)
#define TRACE_FRAMES 32

uint32_t gs_debug_flags(void)
{
    const gs_debug_t *d = gs_debug();
    return (d->poison ? GS_DEBUG_POISON : 0u) | (d->allocfreetrace ? GS_DEBUG_TRACE : 0u);
}

void gs_poison_fill(void *p, uint32_t size, uint64_t off)
{
    if (size < 16u) return;
    uint64_t w0 = GS_POISON_MAGIC ^ off;
    memcpy(p, &w0, sizeof w0);
    memset((char *)p + 8, (int)GS_POISON_BYTE, size - 8u);
}

/* First byte at or after `from` in [p, p+size) that is not the pattern,
 * or size. */
static uint32_t first_changed(const unsigned char *p, uint32_t from, uint32_t size)
{
    uint32_t i = from;
    for (; i + 8u <= size; i += 8u) {
        uint64_t w;
        memcpy(&w, p + i, sizeof w);
        if (w != GS_POISON_WORD) break;
    }
    for (; i < size; i++)
        if (p[i] != GS_POISON_BYTE) return i;
    return size;
}

/* Check a slot being handed out; report a write after free. */
static void poison_check(struct goshm *h, void *p)
{
    gs_lookup_t l;
    if (gs_lookup(h, p, &l) != NULL || l.span->state != GS_SPAN_SMALL || gs_spanclass_tiny(l.span->spanclass))
        return;
    uint32_t size = l.span->elemsize;
    if (size < 16u) return;
    const unsigned char *b = p;
    uint64_t w0, want = GS_POISON_MAGIC ^ l.off;
    memcpy(&w0, b, sizeof w0);
    uint32_t at, tail = first_changed(b, 8u, size);
    if (w0 == want) {
        if (tail == size) return; /* intact */
        at = tail;
    } else {
        if (tail != size) return; /* never poisoned */
        unsigned char wb[8];
        memcpy(wb, &want, sizeof wb);
        for (at = 0; at < 8u && b[at] == wb[at]; at++) {}
    }
    unsigned char expect;
    if (at < 8u) {
        unsigned char wb[8];
        memcpy(wb, &want, sizeof wb);
        expect = wb[at];
    } else {
        expect = (unsigned char)GS_POISON_BYTE;
    }
    gs_printf("goshm: write after free: object at offset 0x%llx (size class %u bytes, span %u): byte %u was "
              "changed after the object was freed (0x%x, poison 0x%x)\n",
              (unsigned long long)l.off, size, l.sid, at, (unsigned)b[at], (unsigned)expect);
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

void gs_debug_on_alloc(struct goshm *h, gs_mcache_t *c, const char *what, void *p, size_t size)
{
    if (c) c->last = NULL; /* no undo shortcut: frees go through the filling path */
    if (p && (h->debug & GS_DEBUG_POISON) && size > GS_TINY_HALF && size <= GS_MAX_SMALL_SIZE) poison_check(h, p);
    if (h->debug & GS_DEBUG_TRACE) trace(h, what, p, size, true);
}

void gs_debug_on_free(struct goshm *h, const void *p)
{
    if (p && (h->debug & GS_DEBUG_TRACE)) trace(h, "free", p, 0, false);
}
