/* SPDX-License-Identifier: MIT */
/* reconcile.c: what the data memfd really holds against what the heap side committed.
 *
 * Overview: shm/overview.h ("Memory states"); the seals: daemon/heap.c
 * (gs_make_memfd). Every client maps the data memfd read-write, and a
 * writable memfd cannot be sealed against fallocate() or PUNCH_HOLE without
 * sealing it against writes (issue 7, point 3). So a client can:
 *
 *   - fallocate pages the heap believes Prepared (released or never
 *     committed): memory nobody accounts for, which would outlive the client.
 *     The housekeeping tick compares st_blocks with the heap's own account
 *     (gs_heap_expected_data_bytes) and, when the memfd holds more, punches
 *     again every range the heap believes not backed. The heap's accounting
 *     (committed_bytes, ready pages) never changed: it is the heap's view,
 *     not the file's; afterwards the file agrees with it again.
 *   - punch pages the heap believes Ready: they read as zero until written
 *     again, then tmpfs backs them again. That damages objects (their
 *     contents read as zero), which any client can do by writing anyway.
 *     It cannot break the heap side: nothing it needs lives in the data memfd
 *     (its layout is private, the meta memfd is read-only for clients). A
 *     zeroed side record reads as "nothing allocated, nothing freed" (the
 *     objects in that span may be handed out again: lost, as with any
 *     scribble over allocBits); a zeroed notice entry or stack head is an
 *     empty stack (the background sweep finds the frees). The accounting
 *     (committed_bytes) stays the heap's, so it stays right; st_blocks is
 *     lower than it for a while, which we never "fix" (the pages come back
 *     on first write).
 *   - grow, shrink or seal the memfd: refused by the seals.
 *
 * Cost: one fstat per tick; a re-punch walks the per-page states of the
 * grown heap (O(pages), only in a tick where the file holds too much).
 */
#define _GNU_SOURCE
#include "heap_internal.h"

#include <sys/stat.h> /* fstat */

static uint64_t up4k(uint64_t v) { return (v + 4095u) & ~UINT64_C(4095); }

/* Bytes of the data memfd the heap side committed: the header's first page,
 * the side records and notice entries committed so far, the profile region
 * (committed whole at creation) and Ready heap pages. */
uint64_t gs_heap_expected_data_bytes(const gs_heap_t *h)
{
    return 4096u + h->side_committed + up4k((uint64_t)h->notice_chunks * GS_SPAN_CHUNK * sizeof(gs_notice_t)) + h->prof_size +
           (h->ready_pages << GS_PAGE_SHIFT);
}

static void punch(gs_heap_t *h, uint64_t lo, uint64_t hi)
{
    if (hi > lo) (void)gs_sys_release(h->data_fd, lo, hi - lo); /* best effort: next tick retries */
}

uint64_t gs_heap_reconcile(gs_heap_t *h)
{
    struct stat st;
    if (fstat(h->data_fd, &st) != 0) return 0;
    uint64_t held = (uint64_t)st.st_blocks * 512u, want = gs_heap_expected_data_bytes(h);
    if (held <= want) return 0;
    /* Every range the heap believes Prepared. */
    punch(h, 4096u, h->lay.side_off);
    punch(h, h->lay.side_off + h->side_committed, h->lay.side_off + h->lay.side_size);
    punch(h, h->lay.notice_off + up4k((uint64_t)h->notice_chunks * GS_SPAN_CHUNK * sizeof(gs_notice_t)), h->prof_off);
    punch(h, h->prof_off + h->prof_size, h->lay.arena_off);
    for (uint64_t p = 0; p < h->heap_pages;) {
        if (h->pagestate[p] != GS_PAGE_RELEASED) {
            p++;
            continue;
        }
        uint64_t q = p;
        while (q < h->heap_pages && h->pagestate[q] == GS_PAGE_RELEASED) q++;
        punch(h, gs_page_off(h, p), gs_page_off(h, q));
        p = q;
    }
    punch(h, gs_page_off(h, h->heap_pages), h->data_size);
    return held - want;
}
