/* SPDX-License-Identifier: MIT */
/* fixalloc.c: off-heap metadata, in the spirit of Go's fixalloc and
 * persistentalloc.
 *
 * Overview: shm/overview.h. Two allocators:
 *  - span records (gs_mspan_t) in the meta memfd: a free list threaded
 *    through the records' private .next field, and a bump pointer; records are
 *    committed GS_SPAN_CHUNK at a time, so a span id's record is always backed.
 *  - side records in the data memfd, in GS_SIDE_BUCKETS sizes. Their free
 *    lists are private vectors of offsets: a free list threaded through
 *    client-writable memory would let a client steer the heap side.
 * Both hand out memory that is committed (Ready) before first use.
 */
#include "heap_internal.h"

#include <stdlib.h> /* realloc */
#include <string.h> /* memset */

uint32_t gs_span_record_alloc(gs_heap_t *h)
{
    uint32_t sid = h->span_free;
    if (sid) {
        h->span_free = h->spans[sid].next;
    } else {
        if (h->span_bump >= h->max_spans) return 0;
        if (h->span_bump >= h->span_committed) {
            uint64_t first = h->span_committed;
            uint64_t n = GS_SPAN_CHUNK;
            if (first + n > h->max_spans) n = h->max_spans - first;
            uint64_t off = h->mhdr->spans_off + first * sizeof(gs_mspan_t);
            uint64_t len = n * sizeof(gs_mspan_t);
            /* commit whole OS pages covering the chunk */
            uint64_t lo = off & ~UINT64_C(4095), hi = (off + len + 4095) & ~UINT64_C(4095);
            if (gs_sys_commit(h->meta_fd, lo, hi - lo) != 0) return 0;
            /* ... and their entries of the notice array (data memfd). */
            uint64_t nlo = h->lay.notice_off + first * sizeof(gs_notice_t);
            uint64_t nhi = nlo + n * sizeof(gs_notice_t);
            nlo &= ~UINT64_C(4095);
            nhi = (nhi + 4095) & ~UINT64_C(4095);
            if (gs_sys_commit(h->data_fd, nlo, nhi - nlo) != 0) return 0;
            h->meta_committed += len;
            h->span_committed = (uint32_t)(first + n);
        }
        sid = h->span_bump++;
    }
    gs_txn_span(h, sid);
    gs_mspan_clear(&h->spans[sid]);
    h->spans_live++;
    return sid;
}

void gs_span_record_free(gs_heap_t *h, uint32_t sid)
{
    gs_mspan_t *s = &h->spans[sid];
    gs_txn_span(h, sid);
    gs_mspan_clear(s);
    s->state = GS_SPAN_DEAD;
    s->next = h->span_free;
    h->span_free = sid;
    h->spans_live--;
}

static uint32_t side_bucket(uint32_t awords, uint32_t fwords)
{
    uint32_t bytes = (awords + fwords) * 8u;
    return bytes <= 64 ? 0 : (bytes - 1u) / 64u;
}

static uint64_t side_bucket_size(uint32_t b) { return sizeof(gs_side_t) + 64u * (b + 1u); }

uint64_t gs_sidealloc(gs_heap_t *h, uint32_t awords, uint32_t fwords)
{
    uint32_t b = side_bucket(awords, fwords);
    if (b >= GS_SIDE_BUCKETS) return 0;
    gs_u64vec_t *fl = &h->side_free[b];
    if (fl->n) return fl->v[--fl->n];
    uint64_t sz = side_bucket_size(b);
    if (h->side_bump + sz > h->lay.side_size) return 0;
    while (h->side_bump + sz > h->side_committed) {
        uint64_t len = GS_SIDE_CHUNK;
        if (h->side_committed + len > h->lay.side_size) len = h->lay.side_size - h->side_committed;
        if (gs_sys_commit(h->data_fd, h->lay.side_off + h->side_committed, len) != 0) return 0;
        h->side_committed += len;
    }
    uint64_t off = h->lay.side_off + h->side_bump;
    h->side_bump += sz;
    return off;
}

void gs_sidefree(gs_heap_t *h, uint64_t off, uint32_t awords, uint32_t fwords)
{
    uint32_t b = side_bucket(awords, fwords);
    gs_u64vec_t *fl = &h->side_free[b];
    if (fl->n == fl->cap) {
        uint32_t ncap = fl->cap ? fl->cap * 2u : 256u;
        uint64_t *nv = realloc(fl->v, ncap * sizeof *nv);
        if (!nv) return; /* the record leaks; the heap stays consistent */
        fl->v = nv;
        fl->cap = ncap;
    }
    fl->v[fl->n++] = off;
}

uint64_t gs_side_record_size(uint32_t awords, uint32_t fwords)
{
    uint32_t b = side_bucket(awords, fwords);
    return b < GS_SIDE_BUCKETS ? side_bucket_size(b) : 0;
}

void gs_side_adopt_gap(gs_heap_t *h, uint64_t off, uint64_t len)
{
    /* Any partition of free bytes into records is as good as the one the
     * previous daemon had: the largest records first, a 64-byte rest (no
     * bucket that small) stays unused. */
    while (len >= side_bucket_size(0)) {
        uint32_t b = GS_SIDE_BUCKETS - 1u;
        while (side_bucket_size(b) > len) b--;
        gs_u64vec_t *fl = &h->side_free[b];
        if (fl->n == fl->cap) {
            uint32_t ncap = fl->cap ? fl->cap * 2u : 256u;
            uint64_t *nv = realloc(fl->v, ncap * sizeof *nv);
            if (!nv) return; /* the rest stays unused; the heap stays consistent */
            fl->v = nv;
            fl->cap = ncap;
        }
        fl->v[fl->n++] = off;
        off += side_bucket_size(b);
        len -= side_bucket_size(b);
    }
}
