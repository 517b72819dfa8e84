/* SPDX-License-Identifier: MIT */
/* heap.c: a heap's segment: the two memfds, their layout and headers, created and destroyed (Go's mheap init).
 *
 * Overview: shm/overview.h; layout: shm/segment.h; API: daemon/heap.h.
 */
#define _GNU_SOURCE
#include "heap_internal.h"
#include "mapping.h"
#include "profregion.h"

#include <errno.h>    /* errno */
#include <fcntl.h>    /* fcntl, F_ADD_SEALS */
#include <stdio.h>    /* snprintf */
#include <stdlib.h>   /* calloc, free */
#include <string.h>   /* memset, strerror */
#include <sys/random.h> /* getrandom */
#include <sys/mman.h> /* memfd_create, mmap */
#include <sys/stat.h> /* fstat */
#include <unistd.h>   /* ftruncate, close */

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* A memfd of `size` bytes, sealed against shrinking and growing; with
 * `final`, against any further seal too (F_SEAL_SEAL). Every descriptor a
 * client gets is of a memfd whose seals are final by then: a client cannot
 * add F_SEAL_WRITE or F_SEAL_FUTURE_WRITE to stop the heap side (issue 7,
 * point 3), nor change its size. What seals cannot forbid on a writable
 * memfd, fallocate() and PUNCH_HOLE, is reconciled (daemon/reconcile.c). */
int gs_make_memfd(const char *name, uint64_t size, bool final, int *fd_out)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -errno;
    int seals = F_SEAL_SHRINK | F_SEAL_GROW | (final ? F_SEAL_SEAL : 0);
    if (ftruncate(fd, (off_t)size) != 0 || fcntl(fd, F_ADD_SEALS, seals) != 0) {
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
    for (uint32_t c = 1; c < GS_NUM_SIZE_CLASSES; c++) {
        /* Every span's bitmaps fit one side record (the tiny variant of its
         * class has two freed bits per block). */
        uint32_t n = gs_class_nelems[c];
        uint32_t fbits = c == GS_TINY_CLASS ? 2u * n : n;
        if (sizeof(gs_side_t) + 8u * (gs_bitmap_words(n) + gs_bitmap_words(fbits)) > GS_SIDE_RECORD)
            gs_throw("size classes: a span's bitmaps outgrow GS_SIDE_RECORD");
    }
    h->max_pages = size >> GS_PAGE_SHIFT;
    h->max_spans = h->max_pages + 2u;

    /* data memfd layout (no client slots: each has its own memfd) */
    uint64_t side_off = GS_HEADER_SIZE;
    uint64_t side_size = align_up(h->max_spans * GS_SIDE_RECORD, 65536); /* one per span id */
    uint64_t notice_off = side_off + side_size;
    uint64_t prof_off = notice_off + align_up(h->max_spans * sizeof(gs_notice_t), 65536);
    uint32_t prof_buckets = gs_prof_nbuckets(h->max_spans);
    uint64_t prof_size = align_up(gs_prof_region_size(prof_buckets), 65536);
    uint64_t arena_off = align_up(prof_off + prof_size, GS_ARENA_SIZE);
    h->data_size = arena_off + size;
    /* meta memfd layout */
    uint64_t pagemap_off = GS_META_HDR_SIZE;
    uint64_t spans_off = align_up(pagemap_off + h->max_pages * 4u, 4096);
    h->meta_size = align_up(spans_off + h->max_spans * sizeof(gs_mspan_t), 4096);

    for (uint32_t i = 0; i < GS_MAX_SLOTS; i++) h->slots[i].fd = -1;
    int rc = gs_make_memfd("goshm-data", h->data_size, true, &h->data_fd);
    if (!rc) rc = gs_make_memfd("goshm-meta", h->meta_size, false, &h->meta_fd);
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
    /* The profile region is written by clients at any time: Ready now
     * (a few MiB, shm/profregion.h). */
    if ((rc = gs_sys_commit(h->data_fd, prof_off, prof_size))) {
        snprintf(err, errlen, "committing the profile region: %s", strerror(-rc));
        goto fail;
    }
    h->data = gs_map_aligned(h->data_fd, h->data_size, PROT_READ | PROT_WRITE);
    if (!h->data) { rc = -errno; snprintf(err, errlen, "mmap data: %s", strerror(-rc)); goto fail; }
    h->meta = mmap(NULL, h->meta_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, h->meta_fd, 0);
    if (h->meta == MAP_FAILED) { rc = -errno; h->meta = NULL; snprintf(err, errlen, "mmap meta: %s", strerror(-rc)); goto fail; }
    /* From now on nobody can map the meta memfd writable or write(2) to it,
     * whatever descriptor they hold; our mapping above stays writable. And
     * no seal can be added any more (clients hold O_RDONLY descriptors,
     * which cannot add seals anyway). */
    if (fcntl(h->meta_fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) != 0) {
        rc = -errno;
        snprintf(err, errlen, "sealing meta: %s", strerror(-rc));
        goto fail;
    }
    h->pagestate = calloc(h->max_pages, 1);
    if (!h->pagestate) { rc = -ENOMEM; snprintf(err, errlen, "out of memory"); goto fail; }

    uint64_t epoch = gs_now_ns() ^ ((uint64_t)getpid() << 32);
    /* The heap id: random; 0 is never an id. */
    if (getrandom(&h->heap_id, sizeof h->heap_id, GRND_NONBLOCK) != (ssize_t)sizeof h->heap_id)
        h->heap_id = gs_prof_mix(epoch ^ (uint64_t)(uintptr_t)h);
    if (h->heap_id == 0) h->heap_id = 1;
    h->prof_off = prof_off;
    h->prof_size = prof_size;
    gs_prof_header_t *ph = (gs_prof_header_t *)(h->data + prof_off);
    ph->nbuckets = prof_buckets;
    ph->magic = GS_PROF_MAGIC;
    h->epoch = epoch;
    h->lay = (gs_layout_t){.side_off = side_off, .side_size = side_size, .notice_off = notice_off,
                           .arena_off = arena_off};
    h->hdr = (gs_seg_header_t *)h->data;
    gs_store_relaxed(&h->hdr->xnotice_head, 0);

    gs_meta_header_t *m = h->mhdr = (gs_meta_header_t *)h->meta;
    m->abi_version = GS_ABI_VERSION;
    m->page_size = GS_PAGE_SIZE;
    m->arena_size = GS_ARENA_SIZE;
    m->data_size = h->data_size;
    m->meta_size = h->meta_size;
    m->side_off = side_off;
    m->side_size = side_size;
    m->notice_off = notice_off;
    m->arena_off = arena_off;
    m->max_pages = h->max_pages;
    m->max_slots = h->cfg.max_slots;
    m->slot_size = GS_SLOT_MAP_SIZE;
    m->pagemap_off = pagemap_off;
    m->spans_off = spans_off;
    m->max_spans = h->max_spans;
    m->epoch = epoch;
    m->heap_id = h->heap_id;
    m->prof_off = prof_off;
    gs_store_relaxed(&m->xheap_pages, 0);
    m->magic = GS_META_MAGIC;
    h->pagemap = (_Atomic uint32_t *)(h->meta + pagemap_off);
    h->spans = (gs_mspan_t *)(h->meta + spans_off);
    if ((rc = gs_fixalloc_init(h)) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return h;
fail:
    gs_heap_destroy(h);
    errno = -rc;
    return NULL;
}

void gs_heap_destroy(gs_heap_t *h)
{
    if (!h) return;
    for (uint32_t i = 0; i < GS_MAX_SLOTS; i++) {
        if (h->slots[i].map) munmap(h->slots[i].map, GS_SLOT_MAP_SIZE);
        if (h->slots[i].fd >= 0) close(h->slots[i].fd);
    }
    if (h->data) munmap(h->data, h->data_size);
    if (h->meta) munmap(h->meta, h->meta_size);
    if (h->data_fd >= 0) close(h->data_fd);
    if (h->meta_fd >= 0) close(h->meta_fd);
    gs_fixalloc_fini(h);
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
uint64_t gs_heap_id(const gs_heap_t *h) { return h->heap_id; }
uint64_t gs_heap_size(const gs_heap_t *h) { return h->cfg.size; }
const char *gs_heap_prof_region(const gs_heap_t *h) { return h->data + h->prof_off; }
uint64_t gs_heap_epoch(const gs_heap_t *h) { return h->epoch; }
int gs_heap_slot_fd(const gs_heap_t *h, uint32_t slot)
{
    return slot < h->cfg.max_slots && h->slots[slot].in_use ? h->slots[slot].fd : -1;
}
gs_slot_t *gs_heap_slot_ptr(const gs_heap_t *h, uint32_t slot)
{
    return slot < h->cfg.max_slots && h->slots[slot].in_use ? h->slots[slot].map : NULL;
}
uint32_t gs_heap_max_slots(const gs_heap_t *h) { return h->cfg.max_slots; }

uint64_t gs_heap_backed_bytes(const gs_heap_t *h)
{
    struct stat a, b;
    if (fstat(h->data_fd, &a) != 0 || fstat(h->meta_fd, &b) != 0) return 0;
    return ((uint64_t)a.st_blocks + (uint64_t)b.st_blocks) * 512u;
}
