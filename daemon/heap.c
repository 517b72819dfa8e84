/* heap.c: creating a heap's segment, client slots, statistics, invariants.
 *
 * Overview: shm/malloc.h; layout: shm/segment.h; API: daemon/heap.h.
 */
#define _GNU_SOURCE
#include "heap_internal.h"
#include "../shm/mapping.h"

#include <errno.h>    /* errno */
#include <fcntl.h>    /* fcntl, F_ADD_SEALS */
#include <stdio.h>    /* snprintf */
#include <stdlib.h>   /* calloc, free */
#include <string.h>   /* memset, strerror */
#include <sys/mman.h> /* memfd_create, mmap */
#include <sys/stat.h> /* fstat */
#include <unistd.h>   /* ftruncate, close */

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

#define SIDE_MAX_RECORD 320u /* the largest side bucket */

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

static int make_memfd(const char *name, uint64_t size, int *fd_out)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -errno;
    if (ftruncate(fd, (off_t)size) != 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    *fd_out = fd;
    return 0;
}

gs_heap_t *gs_heap_create(const gs_heap_config_t *cfg, char *err, size_t errlen)
{
    char dummy[1];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    gs_heap_t *h = calloc(1, sizeof *h);
    if (!h) { snprintf(err, errlen, "out of memory"); errno = ENOMEM; return NULL; }
    h->cfg = *cfg;
    h->data_fd = h->meta_fd = -1;
    if (h->cfg.max_slots == 0 || h->cfg.max_slots > GS_MAX_SLOTS) h->cfg.max_slots = GS_MAX_SLOTS;
    uint64_t size = align_up(cfg->size ? cfg->size : GS_ARENA_SIZE, GS_ARENA_SIZE);
    if (size > (UINT64_C(1) << 46)) {
        snprintf(err, errlen, "heap size too large (at most 64 TiB)");
        errno = EINVAL;
        free(h);
        return NULL;
    }
    h->max_pages = size >> GS_PAGE_SHIFT;
    h->max_spans = h->max_pages + 2u;

    /* data memfd layout */
    uint64_t slots_off = GS_HEADER_SIZE;
    uint64_t side_off = align_up(slots_off + (uint64_t)h->cfg.max_slots * GS_SLOT_SIZE, 65536);
    uint64_t side_size = align_up(h->max_pages * SIDE_MAX_RECORD, 65536);
    uint64_t notice_off = side_off + side_size;
    uint64_t arena_off = align_up(notice_off + align_up(h->max_spans * sizeof(gs_notice_t), 65536), GS_ARENA_SIZE);
    h->data_size = arena_off + size;
    /* meta memfd layout */
    uint64_t pagemap_off = GS_META_HDR_SIZE;
    uint64_t spans_off = align_up(pagemap_off + h->max_pages * 4u, 4096);
    h->meta_size = align_up(spans_off + h->max_spans * sizeof(gs_mspan_t), 4096);

    int rc = make_memfd("goshm-data", h->data_size, &h->data_fd);
    if (!rc) rc = make_memfd("goshm-meta", h->meta_size, &h->meta_fd);
    if (rc) {
        snprintf(err, errlen, "memfd: %s", strerror(-rc));
        goto fail;
    }
    /* Header pages first: Ready before they are written. */
    if ((rc = gs_sys_commit(h->data_fd, 0, 4096)) || (rc = gs_sys_commit(h->meta_fd, 0, GS_META_HDR_SIZE))) {
        snprintf(err, errlen, "committing the header: %s", strerror(-rc));
        goto fail;
    }
    h->meta_committed = GS_META_HDR_SIZE;
    h->data = gs_map_aligned(h->data_fd, h->data_size, PROT_READ | PROT_WRITE);
    if (!h->data) { rc = -errno; snprintf(err, errlen, "mmap data: %s", strerror(-rc)); goto fail; }
    h->meta = mmap(NULL, h->meta_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, h->meta_fd, 0);
    if (h->meta == MAP_FAILED) { rc = -errno; h->meta = NULL; snprintf(err, errlen, "mmap meta: %s", strerror(-rc)); goto fail; }
    /* From now on nobody can map the meta memfd writable or write(2) to it,
     * whatever descriptor they hold; our mapping above stays writable. */
    if (fcntl(h->meta_fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) != 0) {
        rc = -errno;
        snprintf(err, errlen, "sealing meta: %s", strerror(-rc));
        goto fail;
    }
    h->pagestate = calloc(h->max_pages, 1);
    if (!h->pagestate) { rc = -ENOMEM; snprintf(err, errlen, "out of memory"); goto fail; }

    uint64_t epoch = gs_now_ns() ^ ((uint64_t)getpid() << 32);
    h->lay = (gs_layout_t){.slots_off = slots_off, .slot_size = GS_SLOT_SIZE, .side_off = side_off,
                           .side_size = side_size, .notice_off = notice_off, .arena_off = arena_off};
    gs_seg_header_t *hdr = h->hdr = (gs_seg_header_t *)h->data;
    hdr->page_size = GS_PAGE_SIZE;
    hdr->arena_size = GS_ARENA_SIZE;
    hdr->reserve_size = h->data_size;
    hdr->slots_off = slots_off;
    hdr->max_slots = h->cfg.max_slots;
    hdr->slot_size = GS_SLOT_SIZE;
    hdr->side_off = side_off;
    hdr->side_size = side_size;
    hdr->arena_off = arena_off;
    hdr->max_pages = h->max_pages;
    hdr->meta_size = h->meta_size;
    hdr->epoch = epoch;
    hdr->notice_off = notice_off;
    gs_store_relaxed(&hdr->xnotice_head, 0);
    hdr->abi_version = GS_ABI_VERSION;
    hdr->magic = GS_SEG_MAGIC;

    gs_meta_header_t *m = h->mhdr = (gs_meta_header_t *)h->meta;
    m->abi_version = GS_ABI_VERSION;
    m->pagemap_off = pagemap_off;
    m->spans_off = spans_off;
    m->max_spans = h->max_spans;
    m->epoch = epoch;
    gs_store_relaxed(&m->xheap_pages, 0);
    m->magic = GS_META_MAGIC;
    h->pagemap = (_Atomic uint32_t *)(h->meta + pagemap_off);
    h->spans = (gs_mspan_t *)(h->meta + spans_off);
    h->span_bump = 1; /* span id 0 means none */
    return h;
fail:
    gs_heap_destroy(h);
    errno = -rc;
    return NULL;
}

void gs_heap_destroy(gs_heap_t *h)
{
    if (!h) return;
    if (h->data) munmap(h->data, h->data_size);
    if (h->meta) munmap(h->meta, h->meta_size);
    if (h->data_fd >= 0) close(h->data_fd);
    if (h->meta_fd >= 0) close(h->meta_fd);
    for (int b = 0; b < GS_SIDE_BUCKETS; b++) free(h->side_free[b].v);
    free(h->pagestate);
    free(h);
}

int gs_heap_data_fd(const gs_heap_t *h) { return h->data_fd; }
int gs_heap_meta_fd(const gs_heap_t *h) { return h->meta_fd; }
uint64_t gs_heap_data_size(const gs_heap_t *h) { return h->data_size; }
uint64_t gs_heap_meta_size(const gs_heap_t *h) { return h->meta_size; }
char *gs_heap_data_ptr(const gs_heap_t *h) { return h->data; }
const char *gs_heap_meta_ptr(const gs_heap_t *h) { return h->meta; }
uint64_t gs_heap_scavenge_delay(const gs_heap_t *h) { return h->cfg.scavenge_delay_ns; }


int gs_heap_slot_claim(gs_heap_t *h, uint32_t pid)
{
    for (uint32_t i = 0; i < h->cfg.max_slots; i++) {
        if (h->slots[i].in_use) continue;
        uint64_t off = h->lay.slots_off + (uint64_t)i * h->lay.slot_size;
        int rc = gs_sys_commit(h->data_fd, off, align_up(sizeof(gs_slot_t), 4096));
        if (rc) return rc;
        gs_slot_t *s = gs_slot_at(h, i);
        uint32_t gen = s->generation + 1u;
        memset(s, 0, sizeof *s);
        s->pid = pid;
        s->generation = gen;
        h->slots[i].in_use = true;
        h->slots[i].pid = pid;
        h->slots[i].cached.head = 0;
        h->slots[i].cached.count = 0;
        return (int)i;
    }
    return -ENOSPC;
}

bool gs_heap_slot_in_use(const gs_heap_t *h, uint32_t slot)
{
    return slot < h->cfg.max_slots && h->slots[slot].in_use;
}

static uint32_t tiny_live_halves(gs_side_t *side, const gs_mspan_t *s)
{
    _Atomic uint64_t *live = gs_side_freed(side, s->awords);
    uint32_t halves = 0, nbits = 2u * s->nelems;
    for (uint32_t w = 0; w < s->fwords; w++)
        halves += (uint32_t)__builtin_popcountll(gs_load_relaxed(&live[w]) & gs_word_mask(w, nbits));
    uint64_t t = s->list == GS_LIST_CACHED ? gs_load_relaxed(&side->xtiny) : 0;
    uint64_t block = t >> 32;
    if (block && block - 1u < s->nelems) {
        for (uint32_t half = 0; half < 2; half++) {
            uint64_t bit = 2u * (block - 1u) + half;
            if (!(t & (1u << half)) && (gs_load_relaxed(&live[bit / 64u]) & (UINT64_C(1) << (bit % 64u))) && halves)
                halves--;
        }
    }
    return halves;
}

void gs_heap_stats(gs_heap_t *h, gs_heap_stats_t *st)
{
    memset(st, 0, sizeof *st);
    st->reserved_bytes = h->max_pages << GS_PAGE_SHIFT;
    st->grown_bytes = h->heap_pages << GS_PAGE_SHIFT;
    st->committed_bytes = h->ready_pages << GS_PAGE_SHIFT;
    st->idle_bytes = h->idle_ready_pages << GS_PAGE_SHIFT;
    st->released_bytes = (h->free_pages - h->idle_ready_pages) << GS_PAGE_SHIFT;
    st->span_bytes = (h->heap_pages - h->free_pages) << GS_PAGE_SHIFT;
    uint32_t used_slots = 0;
    for (uint32_t i = 0; i < h->cfg.max_slots; i++) used_slots += h->slots[i].in_use;
    st->metadata_bytes = 4096 + (uint64_t)used_slots * align_up(sizeof(gs_slot_t), 4096) +
                         h->side_committed + h->meta_committed;
    for (uint32_t c = 0; c < GS_NUM_SIZE_CLASSES; c++) st->classes[c].size = gs_class_size[c];
    for (uint32_t sid = 1; sid < h->span_bump; sid++) {
        gs_mspan_t *s = gs_span(h, sid);
        if (s->state != GS_SPAN_SMALL && s->state != GS_SPAN_LARGE) continue;
        st->spans_in_use++;
        gs_side_t *side = gs_side_of(h, s);
        uint32_t fi = s->list == GS_LIST_CACHED ? gs_load_relaxed(&side->xfreeindex) : 0;
        uint32_t live = gs_span_count_live(side, s->nelems, s->awords, gs_spanclass_tiny(s->spanclass), fi);
        if (s->state == GS_SPAN_LARGE) {
            st->large_objects += live;
            st->in_use_bytes += live ? s->npages64 << GS_PAGE_SHIFT : 0;
            continue;
        }
        gs_class_stats_t *cs = &st->classes[gs_spanclass_sizeclass(s->spanclass)];
        cs->spans++;
        if (gs_spanclass_tiny(s->spanclass)) {
            /* Tiny objects: live halves, less the half the owner reserved
             * in its current block but has not handed out. */
            live = tiny_live_halves(side, s);
            cs->objects_in_use += live;
            st->in_use_bytes += (uint64_t)live * GS_TINY_HALF;
            continue;
        }
        cs->objects_in_use += live;
        st->in_use_bytes += (uint64_t)live * s->elemsize;
    }
    for (uint32_t sc = 0; sc < GS_NUM_SPAN_CLASSES; sc++) {
        gs_class_stats_t *cs = &st->classes[gs_spanclass_sizeclass(sc)];
        cs->allocs += h->central[sc].departed_allocs;
        cs->frees += h->central[sc].departed_frees + h->central[sc].daemon_frees;
    }
    for (uint32_t i = 0; i < h->cfg.max_slots; i++) {
        if (!h->slots[i].in_use) continue;
        gs_slot_t *sl = gs_slot_at(h, i);
        for (uint32_t c = 0; c < GS_NUM_SIZE_CLASSES; c++) {
            st->classes[c].allocs += gs_load_relaxed(&sl->stats[c].xallocs);
            st->classes[c].frees += gs_load_relaxed(&sl->stats[c].xfrees);
        }
    }
    st->large_allocs = h->large_allocs;
    st->large_frees = h->large_frees;
    st->notices = h->notices;
    st->bad_requests = h->bad_requests;
}

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            gs_printf("goshm: heap check: " __VA_ARGS__);                    \
            return -EFAULT;                                                  \
        }                                                                    \
    } while (0)

int gs_heap_check(gs_heap_t *h)
{
    uint64_t p = 0, free_pages = 0, idle_ready = 0, ready = 0;
    uint32_t prev_state = GS_SPAN_DEAD;
    while (p < h->heap_pages) {
        uint32_t sid = gs_load_relaxed(&h->pagemap[p]);
        CHECK(sid && sid < h->span_bump, "page %llu has no span\n", (unsigned long long)p);
        gs_mspan_t *s = gs_span(h, sid);
        CHECK(s->start == p && s->npages > 0, "page %llu: span %u starts at %u\n", (unsigned long long)p, sid, s->start);
        CHECK(s->state != GS_SPAN_DEAD, "span %u is dead but mapped\n", sid);
        uint64_t r = 0;
        for (uint64_t q = p; q < p + s->npages; q++) r += h->pagestate[q] == GS_PAGE_READY;
        ready += r;
        if (s->state == GS_SPAN_FREE) {
            CHECK(prev_state != GS_SPAN_FREE, "free run %u not coalesced with its left neighbour\n", sid);
            CHECK(s->list == GS_LIST_BIN, "free run %u not in a bin\n", sid);
            CHECK(gs_load_relaxed(&h->pagemap[p + s->npages - 1]) == sid, "free run %u: bad end tag\n", sid);
            CHECK(s->ready_pages == r, "free run %u: ready %u, counted %llu\n", sid, s->ready_pages, (unsigned long long)r);
            free_pages += s->npages;
            idle_ready += r;
        } else {
            CHECK(r == s->npages, "span %u in use has released pages\n", sid);
            for (uint64_t q = p; q < p + s->npages; q++)
                CHECK(gs_load_relaxed(&h->pagemap[q]) == sid, "span %u: page %llu not mapped\n", sid, (unsigned long long)q);
            if (s->state == GS_SPAN_SMALL) {
                CHECK(s->list == GS_LIST_PARTIAL || s->list == GS_LIST_FULL || s->list == GS_LIST_CACHED,
                      "small span %u on list %u\n", sid, s->list);
                CHECK((s->list == GS_LIST_CACHED) == (s->owner != 0), "span %u owner/list mismatch\n", sid);
            } else {
                CHECK(s->state == GS_SPAN_LARGE && s->list == GS_LIST_LARGE, "span %u bad state\n", sid);
            }
        }
        prev_state = s->state;
        p += s->npages;
    }
    CHECK(p == h->heap_pages, "spans overrun the heap\n");
    CHECK(free_pages == h->free_pages, "free pages %llu, counted %llu\n", (unsigned long long)h->free_pages, (unsigned long long)free_pages);
    CHECK(idle_ready == h->idle_ready_pages, "idle pages %llu, counted %llu\n", (unsigned long long)h->idle_ready_pages, (unsigned long long)idle_ready);
    CHECK(ready == h->ready_pages, "ready pages %llu, counted %llu\n", (unsigned long long)h->ready_pages, (unsigned long long)ready);
    for (uint32_t sc = 0; sc < GS_NUM_SPAN_CLASSES; sc++) {
        uint32_t n = 0;
        for (uint32_t sid = h->central[sc].partial.head; sid; sid = gs_span(h, sid)->next, n++)
            CHECK(gs_span(h, sid)->list == GS_LIST_PARTIAL && gs_span(h, sid)->spanclass == sc, "partial list %u broken\n", sc);
        CHECK(n == h->central[sc].partial.count, "partial count %u\n", sc);
        n = 0;
        for (uint32_t sid = h->central[sc].full.head; sid; sid = gs_span(h, sid)->next, n++)
            CHECK(gs_span(h, sid)->list == GS_LIST_FULL && gs_span(h, sid)->spanclass == sc, "full list %u broken\n", sc);
        CHECK(n == h->central[sc].full.count, "full count %u\n", sc);
    }
    return 0;
}

uint64_t gs_heap_backed_bytes(const gs_heap_t *h)
{
    struct stat a, b;
    if (fstat(h->data_fd, &a) != 0 || fstat(h->meta_fd, &b) != 0) return 0;
    return ((uint64_t)a.st_blocks + (uint64_t)b.st_blocks) * 512u;
}

/* Per-client statistics for the control plane (daemon/ctl.c). The counters
 * live in the client's slot and are client-written: reported as they are,
 * never used for a decision. Call under the caller's heap lock. */
uint32_t gs_heap_slot_cached_spans(gs_heap_t *h, uint32_t slot)
{
    if (!gs_heap_slot_in_use(h, slot)) return 0;
    return h->slots[slot].cached.count;
}

void gs_heap_slot_counts(gs_heap_t *h, uint32_t slot, uint64_t *allocs, uint64_t *frees, uint64_t *large_allocs,
                         uint64_t *large_frees)
{
    *allocs = *frees = *large_allocs = *large_frees = 0;
    if (!gs_heap_slot_in_use(h, slot)) return;
    gs_slot_t *s = gs_slot_at(h, slot);
    for (uint32_t c = 0; c < GS_NUM_SIZE_CLASSES; c++) {
        *allocs += gs_load_relaxed(&s->stats[c].xallocs);
        *frees += gs_load_relaxed(&s->stats[c].xfrees);
    }
    *large_allocs = gs_load_relaxed(&s->xlarge_allocs);
    *large_frees = gs_load_relaxed(&s->xlarge_frees);
}
