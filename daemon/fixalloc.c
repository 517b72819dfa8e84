/* SPDX-License-Identifier: MIT */
/* fixalloc.c: off-heap metadata, in the spirit of Go's fixalloc: span ids,
 * their span records, side records and notice entries, and giving them back.
 *
 * Overview: shm/overview.h. Everything a span needs besides its pages is
 * indexed by its span id: the span record (meta memfd), the side record
 * (data memfd, side_off + sid * GS_SIDE_RECORD) and the notice entry (data
 * memfd). So metadata cannot run out before span ids do, and span ids cannot
 * run out before pages do (max_spans = max_pages + 2: every span and every
 * free run holds a page, and free runs never touch). A side record freed by
 * one size class is the next span's, whatever its class: the id is reused,
 * and with it all three records. (Before, side records came from a bump
 * region split into size buckets; a heap filled with 8-byte objects and
 * emptied left every record in the 320-byte bucket, and 16-byte spans then
 * found no 192-byte record: the heap stopped at a third of its size.)
 *
 * Cost: every side record is sized for the largest bitmap (320 bytes, the
 * 8-byte class: 1024 slots), so a span id costs 112 + 320 + 8 = 440 bytes
 * of metadata, ~5.4% of a 1-page span. The bucketed scheme charged the same
 * 320 bytes to a span of the 8-byte class, so the worst case (a heap of
 * 1-page spans of the smallest class) is unchanged; a heap of larger classes
 * pays 128-192 bytes per span id more than before, and large spans (many
 * pages per id) pay next to nothing per byte. One fixed size keeps reuse
 * trivial and the record's place a pure function of the id, which clients
 * and the heap side can both check.
 *
 * Span ids come in chunks of GS_SPAN_CHUNK, committed together (span
 * records, side records, notice entries): a chunk is Ready before any of
 * its ids is handed out. Ids are handed out lowest chunk first, and a
 * coalesced free run keeps the lower id (daemon/mheap.c), so idle chunks
 * gather at the top; gs_fixalloc_trim (from the scavenger) punches the side
 * records of chunks at the top idle for the scavenge delay and accounts for them (metadata_bytes).
 * That is 320 of the 440 bytes per id. The span records (112) cannot be
 * punched: the meta memfd is sealed F_SEAL_FUTURE_WRITE, which refuses
 * FALLOC_FL_PUNCH_HOLE too, and the seal is what keeps clients from writing
 * it. Notice entries (8) are never punched: a freer may push an id on the
 * notice stack after its span went away (shm/segment.h), and a punched
 * entry would cut the stack's chain. Only the top is trimmed, so every
 * `sid < span_bump` test in the heap side still means "its side record is
 * backed"; a live span in a high chunk keeps the idle chunks below it (as a
 * live object pins its page).
 *
 * Free lists of ids are threaded through the span records' private .next
 * (meta memfd, written only by the heap side), one per chunk: never through
 * client-writable memory.
 */
#include "heap_internal.h"

#include <stdlib.h> /* calloc */

static uint64_t page_up(uint64_t v) { return (v + 4095u) & ~UINT64_C(4095); }

/* Ids chunk c can hold. */
static uint32_t chunk_cap(const gs_heap_t *h, uint32_t c)
{
    uint64_t first = (uint64_t)c * GS_SPAN_CHUNK;
    uint64_t left = h->max_spans - first;
    return left < GS_SPAN_CHUNK ? (uint32_t)left : GS_SPAN_CHUNK;
}

/* Byte ranges of chunk c's span records (meta) and side records (data),
 * page-rounded (the chunk starts page aligned: GS_SPAN_CHUNK * 112 and
 * GS_SPAN_CHUNK * 320 are multiples of 4096, and the regions are). */
static void chunk_ranges(const gs_heap_t *h, uint32_t c, uint64_t *soff, uint64_t *slen, uint64_t *doff,
                         uint64_t *dlen)
{
    uint64_t first = (uint64_t)c * GS_SPAN_CHUNK, n = chunk_cap(h, c);
    *soff = h->mhdr->spans_off + first * sizeof(gs_mspan_t);
    *slen = page_up(n * sizeof(gs_mspan_t));
    *doff = h->lay.side_off + first * GS_SIDE_RECORD;
    *dlen = page_up(n * GS_SIDE_RECORD);
}

_Static_assert(GS_SPAN_CHUNK * sizeof(gs_mspan_t) % 4096 == 0, "span record chunks are page aligned");
_Static_assert(GS_SPAN_CHUNK * GS_SIDE_RECORD % 4096 == 0, "side record chunks are page aligned");
_Static_assert(GS_SPAN_CHUNK * sizeof(gs_notice_t) % 4096 == 0, "notice chunks are page aligned");

int gs_fixalloc_init(gs_heap_t *h)
{
    h->nchunks = (uint32_t)((h->max_spans + GS_SPAN_CHUNK - 1) / GS_SPAN_CHUNK);
    h->chunks = calloc(h->nchunks, sizeof *h->chunks);
    if (!h->chunks) return -ENOMEM;
    h->chunks[0].bump = 1; /* span id 0 means none */
    h->span_bump = 1;
    return 0;
}

void gs_fixalloc_fini(gs_heap_t *h) { free(h->chunks); }

static int chunk_commit(gs_heap_t *h, uint32_t c)
{
    uint64_t soff, slen, doff, dlen;
    chunk_ranges(h, c, &soff, &slen, &doff, &dlen);
    if (c >= h->notice_chunks) {
        /* Span records and notice entries: once, for good (see above). A
         * failure leaves nothing to undo: committed pages stay Ready. */
        uint64_t first = (uint64_t)c * GS_SPAN_CHUNK;
        uint64_t noff = h->lay.notice_off + first * sizeof(gs_notice_t);
        uint64_t nlen = page_up(chunk_cap(h, c) * sizeof(gs_notice_t));
        int rc = gs_sys_commit(h->meta_fd, soff, slen);
        if (!rc) rc = gs_sys_commit(h->data_fd, noff, nlen);
        if (rc) return rc;
        h->notice_chunks = c + 1u;
        h->meta_committed += slen + nlen; /* the notice entries live in the data memfd */
    }
    int rc = gs_sys_commit(h->data_fd, doff, dlen);
    if (rc) return rc;
    h->side_committed += dlen;
    h->chunks_committed = c + 1u;
    return 0;
}

uint32_t gs_span_record_alloc(gs_heap_t *h)
{
    uint32_t c = h->chunk_hint;
    while (c < h->nchunks && h->chunks[c].free == 0 && h->chunks[c].bump >= chunk_cap(h, c)) c++;
    if (c >= h->nchunks) return 0;
    h->chunk_hint = c;
    /* Chunks below chunks_committed are committed; the first one above has
     * bump 0 (or 1), so the search never skips past it. */
    if (c >= h->chunks_committed && chunk_commit(h, c) != 0) return 0;
    gs_idchunk_t *k = &h->chunks[c];
    uint32_t sid = k->free;
    if (sid) {
        k->free = h->spans[sid].next;
    } else {
        sid = c * GS_SPAN_CHUNK + k->bump++;
        if (sid >= h->span_bump) h->span_bump = sid + 1u;
    }
    gs_txn_span(h, sid);
    k->live++;
    gs_mspan_clear(&h->spans[sid]);
    h->spans_live++;
    return sid;
}

void gs_span_record_free(gs_heap_t *h, uint32_t sid)
{
    gs_mspan_t *s = &h->spans[sid];
    gs_txn_span(h, sid);
    uint32_t c = sid / GS_SPAN_CHUNK;
    gs_mspan_clear(s);
    s->state = GS_SPAN_DEAD;
    s->next = h->chunks[c].free;
    h->chunks[c].free = sid;
    if (--h->chunks[c].live == 0) h->chunks[c].idle_since_ns = gs_now_ns();
    if (c < h->chunk_hint) h->chunk_hint = c;
    h->spans_live--;
}

uint64_t gs_fixalloc_trim(gs_heap_t *h, uint64_t min_idle_ns)
{
    uint64_t released = 0, now = gs_now_ns();
    while (h->chunks_committed > 1u && h->chunks[h->chunks_committed - 1u].live == 0 &&
           now - h->chunks[h->chunks_committed - 1u].idle_since_ns >= min_idle_ns) {
        uint32_t c = h->chunks_committed - 1u;
        uint64_t soff, slen, doff, dlen;
        chunk_ranges(h, c, &soff, &slen, &doff, &dlen);
        /* No span is left that names these side records; a stale free
         * checks the span record (dead) before it touches one. */
        if (gs_sys_release(h->data_fd, doff, dlen) != 0) break;
        h->side_committed -= dlen;
        released += dlen;
        h->chunks[c] = (gs_idchunk_t){0};
        h->chunks_committed = c;
        const gs_idchunk_t *below = &h->chunks[c - 1u];
        h->span_bump = (c - 1u) * GS_SPAN_CHUNK + below->bump;
        if (h->chunk_hint > c) h->chunk_hint = c;
    }
    return released;
}

/* Adoption (daemon/adopt.c): the span ids met in the page-map walk are
 * live (seen[sid]); rebuild every chunk from them. A chunk's bump is one past
 * its highest live id, the ids below it that are not live are its free list
 * (their records cleared: nobody names them), and the chunks up to the
 * highest live one are committed (again: fallocate of backed pages is a
 * no-op, and a chunk the previous daemon punched at the top held no live
 * id). dry: no system call (adoption's trial). 0 or -errno. */
int gs_fixalloc_adopt(gs_heap_t *h, const uint8_t *seen, bool dry)
{
    uint32_t top = 0;
    for (uint32_t sid = 1; sid < h->max_spans; sid++)
        if (seen[sid]) top = sid;
    uint32_t nc = top / GS_SPAN_CHUNK + 1u;
    uint64_t now = gs_now_ns();
    h->chunks_committed = h->notice_chunks = 0;
    h->side_committed = 0;
    h->spans_live = 0;
    for (uint32_t c = 0; c < h->nchunks; c++) h->chunks[c] = (gs_idchunk_t){0};
    for (uint32_t c = 0; c < nc; c++) {
        if (!dry) {
            int rc = chunk_commit(h, c);
            if (rc) return rc;
        } else {
            uint64_t soff, slen, doff, dlen;
            chunk_ranges(h, c, &soff, &slen, &doff, &dlen);
            h->side_committed += dlen;
            h->chunks_committed = h->notice_chunks = c + 1u;
        }
        gs_idchunk_t *k = &h->chunks[c];
        uint32_t first = c * GS_SPAN_CHUNK, cap = chunk_cap(h, c);
        uint32_t hi = 0;
        for (uint32_t i = 0; i < cap; i++)
            if (seen[first + i]) hi = i + 1u;
        k->bump = (uint16_t)(c == 0 && hi == 0 ? 1u : hi);
        for (uint32_t i = k->bump; i-- > 0;) {
            uint32_t sid = first + i;
            if (sid == 0) continue;
            if (seen[sid]) {
                k->live++;
                h->spans_live++;
                continue;
            }
            gs_mspan_t *s = &h->spans[sid];
            gs_mspan_clear(s);
            s->state = GS_SPAN_DEAD;
            s->next = k->free;
            k->free = sid;
        }
        if (k->live == 0) k->idle_since_ns = now;
    }
    h->chunk_hint = 0;
    h->span_bump = (nc - 1u) * GS_SPAN_CHUNK + h->chunks[nc - 1u].bump;
    return 0;
}
