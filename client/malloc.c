/* SPDX-License-Identifier: MIT */
/* malloc.c: the malloc family of the public API.
 *
 * Overview: shm/overview.h ("Allocating a small object"). The fast path is
 * goshm_malloc -> gs_mcache_get (a thread-local compare) -> size class
 * lookup -> gs_cspan_next_free_fast: no locks, no atomic read-modify-write,
 * no system call; one relaxed store publishes freeindex.
 */
#include "client.h"

#include <errno.h>  /* errno */
#include <string.h> /* memset, memcpy */

/* A large object of `size` bytes starting on a multiple of 2^align_shift
 * pages (the data mapping is arena aligned, so that is its address too). */
static void *large_alloc(goshm_t *h, size_t size, uint32_t align_shift, bool *zero)
{
    uint64_t npages = ((uint64_t)size + GS_PAGE_SIZE - 1u) >> GS_PAGE_SHIFT;
    if (size > (SIZE_MAX >> 1) || npages > h->max_pages) {
        errno = ENOMEM;
        return NULL;
    }
    uint32_t sid;
    int rc = h->ops->large_alloc(h->seam, npages, align_shift, &sid);
    if (rc) {
        errno = -rc;
        return NULL;
    }
    /* The answer came through shared memory: take it only if the read-only
     * span record agrees that this is a large span of the size asked for,
     * aligned as asked, inside the arenas, and in flight to this very slot
     * (the daemon keeps it ours until we have read the completion, so no
     * other client's free can have given it back before that). Owner 0 is
     * fine too: once the completion was read (our head moved) the daemon
     * may land it before this check runs. From then on it is an object like
     * any other, which other clients can free (damage to objects, not to
     * the heap); if that already happened and the span went to someone
     * else, the record says so and the call fails. Anything else fails the
     * call; the pointer is never returned unchecked. */
    const gs_mspan_t *m = sid != 0 && sid < h->max_spans ? &h->spans[sid] : NULL;
    uint64_t align = (uint64_t)GS_PAGE_SIZE << align_shift;
    uint32_t owner = m ? gs_mspan_owner(m) : 0;
    /* Each field read once: the record may change under us once the span
     * has landed (see above), and what is checked must be what is used. */
    uint64_t base = m ? *(const volatile uint64_t *)&m->base_off : 0;
    bool dirty = m ? *(const volatile uint8_t *)&m->needzero != 0 : true;
    if (!m || m->state != GS_SPAN_LARGE || m->npages64 != npages || (owner != 0 && owner != h->slot + 1u) ||
        base < h->arena_off || base >= h->data_size || (npages << GS_PAGE_SHIFT) > h->data_size - base ||
        (base - h->arena_off) % align != 0) {
        gs_report_peer("large allocation answered with a span that is not ours");
        errno = EPROTO;
        return NULL;
    }
    gs_fetch_add_relaxed(&h->slotp->xlarge_allocs, 1);
    *zero = !dirty;
    void *p = h->data + base;
    /* The heap profile's countdown, as for small objects (client/profile.c). */
    gs_mcache_t *c = gs_mcache_get(h);
    if (c && (c->next_sample -= (int64_t)npages << GS_PAGE_SHIFT) < 0) return gs_prof_sample(h, c, p, size);
    return p;
}

/* Allocate `size` bytes; *zero tells whether the memory is known zero. */
static inline void *alloc_impl(goshm_t *h, size_t size, bool *zero)
{
    if (gs_likely(size - 1u < GS_MAX_SMALL_SIZE)) {
        gs_mcache_t *c = gs_mcache_get(h);
        if (gs_unlikely(!c)) {
            errno = ENOMEM;
            return NULL;
        }
        /* The countdown (client/profile.c): a subtract here (so that size
         * is dead before any call) and a test below, never true while
         * sampling and GOSHM_DEBUG are off. When it is, gs_prof_sample runs
         * the debug hooks and takes the heap profile's sample. A sample
         * counts the slot's size, as Go's does. */
        c->next_sample -= (int64_t)size;
        if (size <= GS_TINY_HALF) {
            void *t = gs_tiny_alloc(h, c, zero);
            if (gs_unlikely(c->next_sample < 0)) return gs_prof_sample(h, c, t, size);
            return t;
        }
        uint32_t sc = gs_spanclass(gs_size_to_class(size), 0);
        gs_cspan_t *s = &c->alloc[sc];
        char *p = gs_cspan_next_free_fast(s);
        if (gs_unlikely(!p)) p = gs_mcache_next_free(h, c, sc);
        *zero = !s->needzero;
        c->last = p ? p : GS_NO_LAST;
        c->last_span = s;
        if (gs_unlikely(c->next_sample < 0)) return gs_prof_sample(h, c, p, gs_class_size[gs_spanclass_sizeclass(sc)]);
        return p;
    }
    if (size == 0) return alloc_impl(h, 1, zero); /* a unique, freeable pointer */
    return large_alloc(h, size, 0, zero);
}

static __attribute__((noinline)) void *malloc_slow(goshm_t *h, size_t size)
{
    bool zero;
    return alloc_impl(h, size, &zero);
}

uint8_t gs_size_lut[GS_SIZE_LUT_LEN];

static void size_lut_fill(void)
{
    for (uint32_t i = 1; i < GS_SIZE_LUT_LEN; i++) gs_size_lut[i] = (uint8_t)gs_spanclass(gs_size_to_class(i * 8u), 0);
}

void gs_size_lut_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, size_lut_fill);
}

/* The fast path (shm/overview.h, step 2) on its own: no call but tail
 * calls, so it saves no register. One range test (9..32768 bytes), one
 * thread-local compare (both words of gs_tls from one GOT entry), one table
 * load for the span class (gs_size_lut, filled before any heap's id can match),
 * and the view at c->alloc[2 * class] by a shift (gs_cspan_t is 64 bytes).
 * Everything else (tiny objects, an empty allocCache, a refill, large
 * objects, a thread's first allocation) goes to malloc_slow, which starts
 * over. */
void *goshm_malloc(goshm_t *h, size_t size)
{
    if (gs_likely(size - 1u - GS_TINY_HALF < GS_MAX_SMALL_SIZE - GS_TINY_HALF && gs_tls.id == h->id)) {
        gs_mcache_t *c = gs_tls.cache;
        gs_cspan_t *s = c->alloc + (size_t)gs_size_lut[(size + 7u) >> 3];
        uint64_t ac = s->alloc_cache;
        if (gs_likely(ac != 0)) {
            /* gs_cspan_next_free_fast, inline, without its NULL return. */
            unsigned bit = (unsigned)__builtin_ctzll(ac);
            uint32_t idx = s->freeindex + bit;
            s->alloc_cache = (ac >> bit) >> 1;
            s->freeindex = idx + 1u;
            gs_store_relaxed(&s->side->xfreeindex, idx + 1u);
            char *p = s->base + (size_t)idx * s->elemsize;
            c->last = p;
            c->last_span = s;
            /* The countdown, as in alloc_impl. */
            if (gs_likely((c->next_sample -= (int64_t)size) >= 0)) return p;
            return gs_prof_sample(h, c, p, s->elemsize);
        }
    }
    return malloc_slow(h, size);
}

void *goshm_calloc(goshm_t *h, size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = EOVERFLOW;
        return NULL;
    }
    bool zero;
    void *p = alloc_impl(h, n, &zero);
    if (p && !zero) memset(p, 0, n);
    return p;
}

void *goshm_realloc(goshm_t *h, void *p, size_t size)
{
    if (!p) return goshm_malloc(h, size);
    if (size == 0) { /* as glibc: free and return NULL */
        goshm_free(h, p);
        return NULL;
    }
    gs_lookup_t l;
    const char *why = gs_lookup(h, p, &l);
    if (why) {
        gs_bad_free(why, p, &l);
        errno = EINVAL;
        return NULL;
    }
    size_t have = goshm_usable_size(h, p);
    if (have == 0) { /* found, but not live: realloc of a freed object */
        gs_bad_free("realloc of an object that is not live", p, &l);
        errno = EINVAL;
        return NULL;
    }
    /* Keep the block when it fits and is not more than twice too large. */
    if (size <= have && size >= have / 2u) return p;
    void *q = goshm_malloc(h, size);
    if (!q) return NULL; /* the old block is intact */
    memcpy(q, p, size < have ? size : have);
    goshm_free(h, p);
    return q;
}

void *goshm_aligned_alloc(goshm_t *h, size_t alignment, size_t size)
{
    /* Any power of two up to an arena (64 MiB): the data mapping is arena
     * aligned in every process (shm/mapping.c), so an offset's alignment is
     * the address's. */
    if (alignment == 0 || (alignment & (alignment - 1u)) != 0 ||
        alignment > ((size_t)GS_PAGE_SIZE << GS_LARGE_MAX_ALIGN_SHIFT)) {
        errno = EINVAL;
        return NULL;
    }
    if (alignment <= 16u) return goshm_malloc(h, size < alignment ? alignment : size);
    size_t need = size < alignment ? alignment : size;
    if (alignment <= GS_PAGE_SIZE && need <= GS_MAX_SMALL_SIZE) {
        /* Spans start on heap pages (8 KiB), so a class whose size is a
         * multiple of the alignment yields only aligned slots. */
        for (uint32_t c = gs_size_to_class(need); c < GS_NUM_SIZE_CLASSES; c++)
            if (gs_class_size[c] % alignment == 0) return goshm_malloc(h, gs_class_size[c]);
    }
    /* A large object, its span started on an aligned page by the page heap:
     * the pointer is the span's start, so goshm_free takes it as it is. */
    uint32_t shift = 0;
    while (((size_t)GS_PAGE_SIZE << shift) < alignment) shift++;
    bool zero;
    return large_alloc(h, size > GS_MAX_SMALL_SIZE ? size : GS_MAX_SMALL_SIZE + 1u, shift, &zero);
}

uint64_t goshm_heap_id(goshm_t *h)
{
    if (!h) {
        errno = EINVAL;
        return 0;
    }
    /* The meta header is the heap side's, read-only here, written once. */
    return h->mhdr->heap_id;
}

goshm_off_t goshm_off(goshm_t *h, const void *p)
{
    const char *cp = p;
    if (!p || cp < h->data + h->arena_off || cp >= h->data + h->data_size) return GOSHM_NULL;
    return (goshm_off_t)(cp - h->data);
}

void *goshm_ptr(goshm_t *h, goshm_off_t off)
{
    if (off == GOSHM_NULL || off < h->arena_off || off >= h->data_size) return NULL;
    return h->data + off;
}

int goshm_version(void) { return GOSHM_VERSION; }
