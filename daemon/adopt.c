/* SPDX-License-Identifier: MIT */
/* adopt.c: a goshmd adopts the heap a previous goshmd left: check, undo, rebuild, reclaim.
 *
 * Overview: shm/overview.h; the files: daemon/persist.c (state directory)
 * and daemon/main.c (systemd's fd store); the undo log: daemon/intent.c.
 * Everything the heap side keeps in private memory is derived from the meta
 * memfd, which only the heap side writes:
 *
 *   1. headers: magic, ABI, sizes and offsets against the layout the heap's
 *      size and slot count imply (daemon/heap.c, gs_heap_layout);
 *   2. the undo log: an operation the previous daemon did not finish is
 *      undone, so the meta memfd is as it was between two operations;
 *   3. the page map walk, from heap page 0 to the grown count: every span
 *      record it meets is checked (state, class geometry, side record,
 *      interior page map entries, owner) and filed: free runs into the bins
 *      (each made wholly committed or wholly punched: free memory is
 *      anybody's, so this is always allowed and gives pagestate for free),
 *      cached spans onto their slot's list, uncached ones swept afterwards;
 *   4. span records not met are free; side-region bytes no span uses are
 *      free records; the notice stack is left as it is (drained as usual);
 *   5. slots: a slot whose process is gone is reclaimed as if it had died
 *      with the daemon up (its unhanded slots come back via the freeindex it
 *      published); one whose process still runs stays claimed, an orphan,
 *      until that process resumes it (client/reconnect.c) or dies;
 *   6. gs_heap_check.
 *
 * Refusal leaves the files untouched: the whole procedure first runs on
 * private copy-on-write mappings of both files, with no system call that
 * changes them; only when that trial passed every check does it run again
 * on the shared mappings. The data memfd is client-writable: nothing read
 * from it (side records, the notice stack) is trusted here either.
 */
#define _GNU_SOURCE
#include "heap_internal.h"
#include "profregion.h" /* the profile region's header */

#include <errno.h>    /* EPROTO, EUCLEAN */
#include <fcntl.h>    /* fcntl, F_GET_SEALS */
#include <stdarg.h>   /* va_list */
#include <stdio.h>    /* vsnprintf */
#include <stdlib.h>   /* calloc */
#include <string.h>   /* memset */
#include <sys/mman.h> /* munmap */
#include <sys/stat.h> /* fstat */
#include <unistd.h>   /* pread */

typedef struct adopt {
    gs_heap_t *h;
    char *err;
    size_t errlen;
    uint8_t *seen;      /* per span id: met in the walk */
    uint32_t *pending;  /* uncached in-use spans, swept once everything is filed */
    uint32_t npending;
    uint32_t ticket[GS_MAX_SLOTS]; /* per slot, the newest owner ticket met (daemon/owners.h) */
    uint32_t serial;               /* the newest ticket serial met */
} adopt_t;

static int fail(adopt_t *a, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(adopt_t *a, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->err, a->errlen, fmt, ap);
    va_end(ap);
    return -code;
}

/* ---- 1. headers ------------------------------------------------------------ */

static int check_headers(adopt_t *a, const gs_meta_header_t *m, uint64_t data_size, uint64_t meta_size)
{
    if (m->magic != GS_META_MAGIC)
        return fail(a, EPROTO, "not a goshm heap (no goshm magic in its meta header)");
    if (m->abi_version != GS_ABI_VERSION)
        return fail(a, EPROTO, "a heap of goshm ABI %u; this goshmd speaks ABI %u", m->abi_version, GS_ABI_VERSION);
    if (m->max_spans < 3 || m->max_spans - 2u > (UINT64_C(1) << 46) >> GS_PAGE_SHIFT ||
        (m->max_spans - 2u) % GS_PAGES_PER_ARENA != 0 || m->max_slots == 0 || m->max_slots > GS_MAX_SLOTS)
        return fail(a, EUCLEAN, "inconsistent heap: impossible size (%llu span records, %u slots)",
                    (unsigned long long)m->max_spans, m->max_slots);
    gs_layout_t lay;
    gs_meta_layout_t ml;
    uint64_t want_data;
    gs_heap_layout(m->max_spans - 2u, m->max_slots, &lay, &want_data, &ml);
    if (want_data != data_size || ml.meta_size != meta_size)
        return fail(a, EUCLEAN, "inconsistent heap: files of %llu and %llu bytes, its layout says %llu and %llu",
                    (unsigned long long)data_size, (unsigned long long)meta_size, (unsigned long long)want_data,
                    (unsigned long long)ml.meta_size);
    if (m->pagemap_off != ml.pagemap_off || m->spans_off != ml.spans_off || m->pslots_off != ml.pslots_off ||
        m->undo_off != ml.undo_off || m->dir_off != ml.dir_off || m->dir_cap != ml.dir_cap || m->side_off != lay.side_off || m->side_size != lay.side_size ||
        m->notice_off != lay.notice_off || m->arena_off != lay.arena_off || m->prof_off != lay.prof_off ||
        m->max_pages != m->max_spans - 2u || !gs_meta_usable(m, data_size, meta_size))
        return fail(a, EUCLEAN, "inconsistent heap: the meta header's layout is not the one its size implies");
    uint64_t hp = gs_load_relaxed(&m->xheap_pages);
    if (hp > m->max_spans - 2u || hp % GS_PAGES_PER_ARENA != 0)
        return fail(a, EUCLEAN, "inconsistent heap: %llu heap pages grown", (unsigned long long)hp);
    return 0;
}

/* ---- 3. the walk -------------------------------------------------------------- */

static bool spanclass_ok(uint32_t spanclass)
{
    if (spanclass >= GS_NUM_SPAN_CLASSES) return false;
    uint32_t sizeclass = gs_spanclass_sizeclass(spanclass);
    return sizeclass != 0 && (!gs_spanclass_tiny(spanclass) || sizeclass == GS_TINY_CLASS);
}

/* The geometry of an in-use span is what span_init (daemon/mheap.c) writes. */
static int check_inuse(adopt_t *a, uint32_t sid, const gs_mspan_t *s)
{
    gs_heap_t *h = a->h;
    bool large = s->state == GS_SPAN_LARGE;
    if (large) {
        uint64_t bytes = (uint64_t)s->npages << GS_PAGE_SHIFT;
        if (s->spanclass != 0 || s->nelems != 1 || s->npages64 != s->npages ||
            s->elemsize != (bytes > UINT32_MAX ? 0 : (uint32_t)bytes) || s->awords != 1 || s->fwords != 1)
            return fail(a, EUCLEAN, "inconsistent heap: large span %u has a bad geometry", sid);
    } else {
        uint32_t sc = gs_spanclass_sizeclass(s->spanclass);
        if (!spanclass_ok(s->spanclass) || s->npages != gs_class_npages[sc] || s->nelems != gs_class_nelems[sc] ||
            s->elemsize != gs_class_size[sc] || s->divmagic != gs_class_divmagic[sc] ||
            s->awords != gs_bitmap_words(s->nelems) ||
            s->fwords != gs_bitmap_words(gs_spanclass_tiny(s->spanclass) ? 2u * s->nelems : s->nelems))
            return fail(a, EUCLEAN, "inconsistent heap: span %u has a bad geometry for class %u", sid, s->spanclass);
    }
    if (s->base_off != gs_page_off(h, s->start) || s->side_off != gs_side_off_of(&h->lay, sid))
        return fail(a, EUCLEAN, "inconsistent heap: span %u has a bad base or side record", sid);
    /* Owner: the slot caching a small span, or the slot a large one is in
     * flight to (its completion not read yet). */
    uint32_t owner = gs_load_relaxed((_Atomic uint32_t *)&s->xowner);
    if (owner != s->owner || owner > h->cfg.max_slots)
        return fail(a, EUCLEAN, "inconsistent heap: span %u has a bad owner", sid);
    for (uint64_t q = s->start; q < (uint64_t)s->start + s->npages; q++)
        if (gs_load_relaxed(&h->pagemap[q]) != sid)
            return fail(a, EUCLEAN, "inconsistent heap: page %llu inside span %u names span %u", (unsigned long long)q,
                        sid, gs_load_relaxed(&h->pagemap[q]));
    return 0;
}

/* Free memory is anybody's: make the whole run Ready (its record says every
 * page was) or Prepared (some or none were). A scavenge cut short can have
 * punched pages its record still counts; the run is then committed again. */
static void normalise_run(gs_heap_t *h, gs_mspan_t *s)
{
    uint64_t off = gs_page_off(h, s->start), len = (uint64_t)s->npages << GS_PAGE_SHIFT;
    if (s->ready_pages == s->npages && (h->dry_run || gs_sys_commit(h->data_fd, off, len) == 0)) {
        memset(h->pagestate + s->start, GS_PAGE_READY, s->npages);
    } else {
        if (!h->dry_run) gs_sys_release(h->data_fd, off, len);
        s->ready_pages = 0;
        memset(h->pagestate + s->start, GS_PAGE_RELEASED, s->npages);
    }
    h->free_pages += s->npages;
    h->ready_pages += s->ready_pages;
    h->idle_ready_pages += s->ready_pages;
    s->freed_at_ns = gs_now_ns();
}

static int walk(adopt_t *a)
{
    gs_heap_t *h = a->h;
    uint32_t prev_free = 0;
    for (uint64_t p = 0; p < h->heap_pages;) {
        uint32_t sid = gs_load_relaxed(&h->pagemap[p]);
        if (sid == 0 || sid >= h->max_spans)
            return fail(a, EUCLEAN, "inconsistent heap: page %llu names no span (%u)", (unsigned long long)p, sid);
        gs_mspan_t *s = gs_span(h, sid);
        if (a->seen[sid]) return fail(a, EUCLEAN, "inconsistent heap: span %u met twice", sid);
        if (s->start != p || s->npages == 0 || (uint64_t)s->start + s->npages > h->heap_pages)
            return fail(a, EUCLEAN, "inconsistent heap: page %llu names span %u of pages [%u, +%u)",
                        (unsigned long long)p, sid, s->start, s->npages);
        a->seen[sid] = 1;
        switch (s->state) {
        case GS_SPAN_FREE:
            if (gs_load_relaxed(&h->pagemap[p + s->npages - 1u]) != sid)
                return fail(a, EUCLEAN, "inconsistent heap: free run %u has a bad end tag", sid);
            if (s->ready_pages > s->npages)
                return fail(a, EUCLEAN, "inconsistent heap: free run %u has %u ready pages of %u", sid,
                            s->ready_pages, s->npages);
            if (prev_free) {
                /* Two free runs side by side (not made by any operation
                 * that completed or was undone, but harmless): one run. */
                gs_mspan_t *l = gs_span(h, prev_free);
                bool all = l->ready_pages == l->npages && s->ready_pages == s->npages;
                gs_txn_begin(h);
                gs_txn_span(h, prev_free);
                gs_txn_page(h, (uint64_t)l->start + l->npages + s->npages - 1u);
                l->npages += s->npages;
                l->ready_pages = all ? l->npages : 0;
                gs_store_release(&h->pagemap[l->start + l->npages - 1u], prev_free);
                gs_txn_end(h);
                a->seen[sid] = 0; /* its record is free now */
                p += s->npages;
                continue;
            }
            prev_free = sid;
            break;
        case GS_SPAN_SMALL:
        case GS_SPAN_LARGE: {
            int rc = check_inuse(a, sid, s);
            if (rc) return rc;
            prev_free = 0;
            break;
        }
        default:
            return fail(a, EUCLEAN, "inconsistent heap: page %llu names span %u in state %u", (unsigned long long)p,
                        sid, s->state);
        }
        p += s->npages;
    }
    return 0;
}

/* File every span met: the walk is complete, so merged runs are final. */
static void file_spans(adopt_t *a)
{
    gs_heap_t *h = a->h;
    for (uint64_t p = 0; p < h->heap_pages;) {
        uint32_t sid = gs_load_relaxed(&h->pagemap[p]);
        gs_mspan_t *s = gs_span(h, sid);
        s->next = s->prev = s->scav_next = s->scav_prev = 0;
        s->list = GS_LIST_NONE;
        s->suspect = 0;
        if (s->state != GS_SPAN_FREE && s->client) {
            /* Owner tickets (statistics only): the newest per slot is its
             * current client's, since serials grow with each attachment. */
            uint32_t serial = s->client >> GS_OWNERS_SLOT_BITS, slot = s->client & ((1u << GS_OWNERS_SLOT_BITS) - 1u);
            if (serial > a->serial) a->serial = serial;
            if (slot < GS_MAX_SLOTS && serial > (a->ticket[slot] >> GS_OWNERS_SLOT_BITS)) a->ticket[slot] = s->client;
        }
        if (s->state == GS_SPAN_FREE) {
            normalise_run(h, s);
            gs_mheap_adopt_run(h, sid);
        } else {
            memset(h->pagestate + s->start, GS_PAGE_READY, s->npages);
            h->ready_pages += s->npages;
            /* Quota charges name the previous daemon's private tables:
             * dropped; a resuming client's spans are charged to it again
             * (gs_heap_slot_recharge). */
            s->charge_slot = 0;
            s->charge_uidx = 0;
            s->charge_gen = 0;
            /* Ours to write: the record's id, for the clients' cross-check. */
            gs_store_relaxed(&gs_side_of(h, s)->xsid, sid);
            if (s->owner && s->state == GS_SPAN_LARGE) {
                h->slots[s->owner - 1u].in_use = true;
                gs_list_push(h, &h->slots[s->owner - 1u].inflight, sid, GS_LIST_INFLIGHT);
            } else if (s->owner) {
                h->slots[s->owner - 1u].in_use = true;
                gs_list_push(h, &h->slots[s->owner - 1u].cached, sid, GS_LIST_CACHED);
            } else {
                if (s->state == GS_SPAN_LARGE) s->list = GS_LIST_LARGE;
                a->pending[a->npending++] = sid;
            }
        }
        p += s->npages;
    }
}

/* ---- 4. records and side records ------------------------------------------------ */

static int rebuild_allocators(adopt_t *a)
{
    gs_heap_t *h = a->h;
    int rc = gs_fixalloc_adopt(h, a->seen, h->dry_run);
    if (rc) return fail(a, -rc, "committing the span records: %s", strerror(-rc));
    h->meta_committed = GS_META_HDR_SIZE + h->heap_pages * 4u + (h->meta_size - h->mhdr->pslots_off) +
                        (uint64_t)h->notice_chunks * GS_SPAN_CHUNK * (sizeof(gs_mspan_t) + sizeof(gs_notice_t));
    return 0;
}

/* ---- 5. slots ---------------------------------------------------------------- */

static void adopt_slots(adopt_t *a)
{
    gs_heap_t *h = a->h;
    /* The owners' table (private) resumes where the tickets in the records
     * left off: a live client keeps its ticket, a dead one departs with it. */
    h->owners.serial = a->serial;
    for (uint32_t i = 0; i < h->cfg.max_slots; i++) {
        const gs_pslot_t *p = &h->pslots[i];
        bool claimed = gs_load_acquire((_Atomic uint32_t *)&p->xstate) == 1;
        if (!claimed && !h->slots[i].in_use) continue;
        h->slots[i].in_use = true;
        h->slots[i].pid = p->pid;
        if (a->ticket[i]) {
            h->owners.slot_ticket[i] = a->ticket[i];
            h->owners.slot_pid[i] = p->pid;
        } else {
            gs_owners_attach(&h->owners, i, p->pid);
        }
        /* The previous daemon's slot file (state directory): the client's
         * reference records, for the reclaim of a dead client, or until a
         * live one resumes and moves them (daemon/bufref.c). */
        gs_slot_old_open(h, i);
        /* A fresh slot memfd, as at a claim: an orphan's client maps it when
         * it resumes; a dead one's is closed again by the reclaim. */
        bool mapped = gs_slot_memfd_open(h, i, p->pid) == 0;
        /* Without one (no memory for 64 KiB) the slot cannot be served:
         * reclaimed, and its client, if alive, finds no slot to resume. */
        if (mapped && claimed && gs_proc_alive(p->pid, p->starttime)) {
            h->slots[i].orphan = true;
            h->adopted_orphans++;
            continue;
        }
        /* Dead (or a claim never finished): as if it died with us up.
         * The large objects in completions it never read cannot be told
         * from those it did (the ring positions died with the daemon):
         * they stay, a leak rather than a double use. */
        gs_heap_slot_reclaim(h, i);
        h->adopted_reclaimed++;
    }
}

/* ---- the whole ------------------------------------------------------------------ */

static void rewrite_data_header(gs_heap_t *h)
{
    /* The data memfd's header holds only the notice stack's head (live
     * shared state: it stays). The profile region's header is ours to
     * restate (shm/profregion.h); its contents, samples of live objects,
     * are the clients' and stay. */
    gs_prof_header_t *ph = (gs_prof_header_t *)(h->data + h->prof_off);
    ph->nbuckets = gs_prof_nbuckets(h->max_spans);
    ph->magic = GS_PROF_MAGIC;
}

static void release(gs_heap_t *h, bool close_fds)
{
    if (!close_fds) h->data_fd = h->meta_fd = -1;
    gs_heap_destroy(h);
}

/* One pass: dry on private copies, or for real. NULL with errno. */
static gs_heap_t *build(const gs_heap_config_t *cfg, int data_fd, int meta_fd, bool dry, uint32_t *undone,
                        char *err, size_t errlen)
{
    adopt_t a = {.err = err, .errlen = errlen};
    gs_heap_t *h = calloc(1, sizeof *h);
    int rc = 0;
    if (!h) { snprintf(err, errlen, "out of memory"); errno = ENOMEM; return NULL; }
    a.h = h;
    h->cfg = *cfg;
    h->data_fd = data_fd;
    h->meta_fd = meta_fd;
    h->dry_run = dry;
    /* The trial touches no file: its slots are memfds. */
    if (!dry && cfg->slot_dir_fd1 > 0) h->slotdir_fd1 = fcntl(cfg->slot_dir_fd1 - 1, F_DUPFD_CLOEXEC, 0) + 1;
    h->is_memfd = fcntl(data_fd, F_GET_SEALS) >= 0;
    for (uint32_t i = 0; i < GS_MAX_SLOTS; i++) h->slots[i].fd = -1;
    struct stat ds, ms;
    gs_meta_header_t m;
    if (fstat(data_fd, &ds) != 0 || fstat(meta_fd, &ms) != 0) { rc = fail(&a, errno, "fstat: %s", strerror(errno)); goto out; }
    if (!S_ISREG(ds.st_mode) || !S_ISREG(ms.st_mode) || (uint64_t)ms.st_size < GS_META_HDR_SIZE ||
        (uint64_t)ds.st_size < GS_HEADER_SIZE) {
        rc = fail(&a, EPROTO, "not a goshm heap (not regular files of a heap's size)");
        goto out;
    }
    if (pread(meta_fd, &m, sizeof m, 0) != (ssize_t)sizeof m) {
        rc = fail(&a, EPROTO, "not a goshm heap (cannot read its headers)");
        goto out;
    }
    if ((rc = check_headers(&a, &m, (uint64_t)ds.st_size, (uint64_t)ms.st_size))) goto out;
    h->max_spans = m.max_spans;
    h->max_pages = m.max_spans - 2u;
    h->cfg.max_slots = m.max_slots;
    h->cfg.size = h->max_pages << GS_PAGE_SHIFT;
    gs_meta_layout_t ml;
    gs_heap_layout(h->max_pages, h->cfg.max_slots, &h->lay, &h->data_size, &ml);
    h->meta_size = ml.meta_size;
    if ((rc = gs_heap_map(h, dry))) { rc = fail(&a, -rc, "mmap: %s", strerror(-rc)); goto out; }
    h->pagemap = (_Atomic uint32_t *)(h->meta + ml.pagemap_off);
    h->spans = (gs_mspan_t *)(h->meta + ml.spans_off);
    h->pslots = (gs_pslot_t *)(h->meta + ml.pslots_off);
    h->heap_id = h->mhdr->heap_id;
    h->epoch = h->mhdr->epoch;
    h->prof_off = h->lay.prof_off;
    h->prof_size = h->lay.prof_size;
    h->hdr = (gs_seg_header_t *)h->data;
    h->undo = (gs_undo_log_t *)(h->meta + ml.undo_off);
    h->dir = (gs_dirent_t *)(h->meta + ml.dir_off);
    h->pagestate = calloc(h->max_pages ? h->max_pages : 1, 1);
    a.seen = calloc(h->max_spans, 1);
    a.pending = calloc(h->max_spans, sizeof *a.pending);
    if (!h->pagestate || !a.seen || !a.pending || gs_fixalloc_init(h) != 0) { rc = fail(&a, ENOMEM, "out of memory"); goto out; }

    /* 2: the unfinished operation, undone; then the count it may have changed. */
    uint32_t n = gs_undo_replay(h);
    if (undone) *undone = n;
    h->heap_pages = gs_load_relaxed(&h->mhdr->xheap_pages);
    if (h->heap_pages > h->max_pages || h->heap_pages % GS_PAGES_PER_ARENA != 0) {
        rc = fail(&a, EUCLEAN, "inconsistent heap: %llu heap pages grown", (unsigned long long)h->heap_pages);
        goto out;
    }
    if (!dry) rewrite_data_header(h);
    /* The names directory, as the undo left it: every entry checked, the
     * private counts rebuilt (daemon/names.c). */
    if ((rc = gs_names_adopt(h, err, errlen))) goto out;
    if ((rc = walk(&a))) goto out;
    file_spans(&a);
    if ((rc = rebuild_allocators(&a))) goto out;
    /* Everything is filed: from here on the usual operations (and their
     * transactions) run. Uncached spans are swept and placed: frees made
     * while no daemon ran are merged now. */
    for (uint32_t i = 0; i < a.npending; i++) {
        uint32_t sid = a.pending[i];
        gs_mspan_t *s = gs_span(h, sid);
        if (s->state == GS_SPAN_LARGE) {
            gs_sweep_large(h, sid);
        } else {
            gs_txn_begin(h);
            gs_mcentral_place(h, sid, gs_sweep_span(h, s));
            gs_txn_end(h);
        }
    }
    adopt_slots(&a);
    if (gs_heap_check(h) != 0) {
        rc = fail(&a, EUCLEAN, "inconsistent heap: the invariant check failed after adoption (printed above)");
        goto out;
    }
    h->adopted_ns = gs_now_ns();
out:
    free(a.seen);
    free(a.pending);
    if (rc) {
        release(h, false);
        errno = -rc;
        return NULL;
    }
    return h;
}

gs_heap_t *gs_heap_adopt(const gs_heap_config_t *cfg, int data_fd, int meta_fd, char *err, size_t errlen)
{
    char dummy[1];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    /* The trial: private copies, nothing written to the files. */
    gs_heap_t *t = build(cfg, data_fd, meta_fd, true, NULL, err, errlen);
    if (!t) return NULL;
    release(t, false);
    uint32_t undone = 0;
    gs_heap_t *h = build(cfg, data_fd, meta_fd, false, &undone, err, errlen);
    if (!h) return NULL;
    if (undone) gs_printf("goshmd: adoption undid an unfinished operation (%u before-images)\n", undone);
    return h;
}
