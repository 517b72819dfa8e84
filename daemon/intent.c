/* SPDX-License-Identifier: MIT */
/* intent.c: the undo log that makes every change to the meta memfd all-or-nothing across a daemon crash.
 *
 * Overview: shm/overview.h; the log's layout: shm/segment.h (gs_undo_log_t).
 * goshmd may be SIGKILLed at any instant, inside a refill, a large
 * allocation, a sweep that gives a span back, a scavenge or a grow. Each of
 * those changes several words of the meta memfd (span records, page map
 * entries, the grown page count), and a half-done change would leave the
 * page map unwalkable (a free run split with one tag written) or a span
 * neither free nor in use. So each such operation is a transaction:
 *
 *   gs_txn_begin        (outermost: the log is empty, xcount == 0)
 *   gs_txn_span(sid)    before the first change to record sid in this
 *   gs_txn_page(p)      transaction: its before-image goes to the log, then
 *   gs_txn_heap_pages   xcount is raised with a release store
 *   ... the changes themselves ...
 *   gs_txn_end          (outermost: xcount = 0, release)
 *
 * The log entry is complete before the count that makes it visible, and the
 * change comes after both: whatever instant the daemon dies at, every word
 * the operation changed has its before-image in the first xcount entries.
 * The adopter (daemon/adopt.c) restores them newest first, which leaves the
 * meta memfd exactly as before the operation. What the operation did
 * outside the meta memfd is harmless to repeat or to forget:
 *   - pages committed (fallocate) or punched: adoption makes every free run
 *     wholly committed or wholly punched anyway (adopt.c: normalise);
 *   - side records (data memfd) swept: sweeping is idempotent (the swept
 *     span is swept again by the adopter, with the freeindex the first
 *     sweep published) and the side allocator is rebuilt from the spans;
 *   - notice flags cleared: a cleared flag only lets a span be noticed again.
 * Records the operation only linked into a list (next/prev, the list tag)
 * need no before-image: adoption rebuilds every list from the records'
 * states and owners. Page map entries inside a span that publishing
 * overwrites need none either: after an undo they lie inside a free run,
 * whose interior entries nobody reads.
 *
 * The daemon completes an operation before it answers the ring, so an undone
 * operation is one no client ever heard of.
 */
#include "heap_internal.h"

#include <string.h> /* memcpy */

void gs_txn_begin(gs_heap_t *h)
{
    if (h->txn_depth++ == 0) gs_assert_internal(gs_load_relaxed(&h->undo->xcount) == 0);
}

void gs_txn_end(gs_heap_t *h)
{
    gs_assert_internal(h->txn_depth > 0);
    if (--h->txn_depth) return;
    gs_killpoint("txn-commit");
    /* Release: every change of the operation is visible before the log
     * says there is nothing to undo. */
    gs_store_release(&h->undo->xcount, 0);
}

/* A slot for one more entry, or NULL if `kind idx` is logged already. */
static gs_undo_entry_t *entry_for(gs_heap_t *h, uint32_t kind, uint32_t idx)
{
    gs_assert_internal(h->txn_depth > 0);
    uint32_t n = gs_load_relaxed(&h->undo->xcount);
    for (uint32_t i = 0; i < n; i++)
        if (h->undo->e[i].kind == kind && h->undo->e[i].idx == idx) return NULL;
    if (n >= GS_UNDO_MAX) gs_throw("undo log full: one heap operation changed too much");
    return &h->undo->e[n];
}

static void publish(gs_heap_t *h)
{
    /* Release: the entry's contents before the count that covers it. */
    gs_store_release(&h->undo->xcount, gs_load_relaxed(&h->undo->xcount) + 1u);
}

void gs_txn_span(gs_heap_t *h, uint32_t sid)
{
    if (h->txn_depth == 0) return; /* adoption's own rebuild: not undoable, not needed */
    gs_undo_entry_t *e = entry_for(h, GS_UNDO_SPAN, sid);
    if (!e) return;
    e->kind = GS_UNDO_SPAN;
    e->idx = sid;
    e->val = 0;
    memcpy(e->rec, &h->spans[sid], sizeof e->rec);
    publish(h);
}

void gs_txn_page(gs_heap_t *h, uint64_t page)
{
    if (h->txn_depth == 0) return;
    gs_undo_entry_t *e = entry_for(h, GS_UNDO_PAGE, (uint32_t)page);
    if (!e) return;
    e->kind = GS_UNDO_PAGE;
    e->idx = (uint32_t)page;
    e->val = gs_load_relaxed(&h->pagemap[page]);
    publish(h);
}

void gs_txn_heap_pages(gs_heap_t *h)
{
    if (h->txn_depth == 0) return;
    gs_undo_entry_t *e = entry_for(h, GS_UNDO_HEAP_PAGES, 0);
    if (!e) return;
    e->kind = GS_UNDO_HEAP_PAGES;
    e->idx = 0;
    e->val = gs_load_relaxed(&h->mhdr->xheap_pages);
    publish(h);
}

void gs_txn_pslot(gs_heap_t *h, uint32_t slot)
{
    if (h->txn_depth == 0) return;
    gs_undo_entry_t *e = entry_for(h, GS_UNDO_PSLOT, slot);
    if (!e) return;
    e->kind = GS_UNDO_PSLOT;
    e->idx = slot;
    e->val = 0;
    memcpy(e->rec, &h->pslots[slot], sizeof(gs_pslot_t));
    publish(h);
}

void gs_txn_dirent(gs_heap_t *h, uint32_t bucket)
{
    if (h->txn_depth == 0) return;
    gs_undo_entry_t *e = entry_for(h, GS_UNDO_DIRENT, bucket);
    if (!e) return;
    e->kind = GS_UNDO_DIRENT;
    e->idx = bucket;
    e->val = 0;
    memcpy(e->rec, &h->dir[bucket], sizeof(gs_dirent_t));
    publish(h);
}

/* The log is the heap side's own (meta memfd), but a torn or foreign one
 * must not write outside the tables: every index is bounded first. */
uint32_t gs_undo_replay(gs_heap_t *h)
{
    uint32_t n = gs_load_acquire(&h->undo->xcount);
    if (n > GS_UNDO_MAX) n = GS_UNDO_MAX;
    for (uint32_t i = n; i-- > 0;) {
        const gs_undo_entry_t *e = &h->undo->e[i];
        switch (e->kind) {
        case GS_UNDO_SPAN:
            if (e->idx > 0 && e->idx < h->max_spans) memcpy(&h->spans[e->idx], e->rec, sizeof e->rec);
            break;
        case GS_UNDO_PAGE:
            if (e->idx < h->max_pages && e->val < h->max_spans) gs_store_relaxed(&h->pagemap[e->idx], (uint32_t)e->val);
            break;
        case GS_UNDO_PSLOT:
            if (e->idx < h->cfg.max_slots) memcpy(&h->pslots[e->idx], e->rec, sizeof(gs_pslot_t));
            break;
        case GS_UNDO_DIRENT:
            /* The entry as it was, written under its seqlock (clients of
             * orphan slots may be reading it now), ending with a value that
             * is even and differs from any a reader saw (shm/names.h). */
            if (e->idx < GS_DIR_CAP && h->dir) {
                gs_dirent_t *d = &h->dir[e->idx], before;
                memcpy(&before, e->rec, sizeof before);
                uint32_t odd = gs_load_relaxed(&d->xseq) | 1u;
                gs_store_relaxed(&d->xseq, odd);
                gs_dirent_store(d, &before);
                gs_store_release(&d->xseq, odd + 1u);
            }
            break;
        case GS_UNDO_HEAP_PAGES:
            if (e->val <= h->max_pages) gs_store_relaxed(&h->mhdr->xheap_pages, e->val);
            break;
        default:
            break;
        }
    }
    gs_store_release(&h->undo->xcount, 0);
    return n;
}
