/* SPDX-License-Identifier: MIT */
/* bufref.c: TEMPORARY stand-in for the daemon's buffer references, replaced by the buffers commit (helper "bufchan").
 *
 * Overview: shm/overview.h; the interface: daemon/bufref.h. This version
 * only checks what the names directory can check without buffer headers:
 * that off - 32 (the object under a 32-byte gs_buf_hdr_t) is the start of
 * an object of an in-use span, big enough for a header and `cap` 16-byte
 * cells, and it counts nothing: retain and release return 0. It exists so
 * that ChanOpen/ChanUnlink (daemon/names.c) link and can be tested at the
 * protocol level before buffers and channels exist.
 */
#include "bufref.h"
#include "heap_internal.h"

#define TEMP_BUF_HDR 32u /* sizeof(gs_buf_hdr_t), shm/buf.h */

/* The span record of the object whose payload is at off, if off is one. */
static const gs_mspan_t *object_of(gs_heap_t *h, uint64_t off)
{
    if (off < h->lay.arena_off + TEMP_BUF_HDR) return NULL;
    uint64_t obj = off - TEMP_BUF_HDR;
    uint64_t page = (obj - h->lay.arena_off) >> GS_PAGE_SHIFT;
    if (page >= h->heap_pages) return NULL;
    uint32_t sid = gs_load_relaxed(&h->pagemap[page]);
    if (sid == 0 || sid >= h->max_spans) return NULL;
    const gs_mspan_t *s = gs_span(h, sid);
    if (s->state != GS_SPAN_SMALL && s->state != GS_SPAN_LARGE) return NULL;
    if (obj < s->base_off) return NULL;
    uint64_t rel = obj - s->base_off;
    uint64_t esize = s->state == GS_SPAN_LARGE ? (uint64_t)s->npages << GS_PAGE_SHIFT : s->elemsize;
    if (esize == 0 || rel % esize != 0 || rel / esize >= s->nelems) return NULL;
    return s;
}

int gs_heap_buf_retain(gs_heap_t *h, uint64_t off, uint64_t id)
{
    (void)id;
    return object_of(h, off) ? 0 : -EINVAL;
}

int gs_heap_buf_release(gs_heap_t *h, uint64_t off, uint64_t id)
{
    (void)id;
    return object_of(h, off) ? 0 : -EINVAL;
}

bool gs_heap_chan_valid(gs_heap_t *h, uint64_t off, uint64_t id, uint32_t cap)
{
    (void)id;
    const gs_mspan_t *s = object_of(h, off);
    if (!s || cap == 0 || (cap & (cap - 1u)) != 0 || cap > (1u << 20)) return false;
    uint64_t esize = s->state == GS_SPAN_LARGE ? (uint64_t)s->npages << GS_PAGE_SHIFT : s->elemsize;
    return esize >= TEMP_BUF_HDR + 256u + (uint64_t)cap * 16u;
}
