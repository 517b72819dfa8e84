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

/* Size a fresh state-directory file (daemon/persist.c). Files on a tmpfs
 * cannot be sealed: their directory is 0700, and they are 0600, instead. */
static int size_file(int fd, uint64_t size)
{
    return ftruncate(fd, (off_t)size) != 0 ? -errno : 0;
}

void gs_heap_layout(uint64_t max_pages, uint32_t max_slots, gs_layout_t *lay, uint64_t *data_size,
                    gs_meta_layout_t *ml)
{
    uint64_t max_spans = max_pages + 2u;
    /* data memfd layout (no client slots: each has its own memfd) */
    uint64_t side_off = GS_HEADER_SIZE;
    uint64_t side_size = align_up(max_spans * GS_SIDE_RECORD, 65536); /* one per span id */
    uint64_t notice_off = side_off + side_size;
    uint64_t prof_off = notice_off + align_up(max_spans * sizeof(gs_notice_t), 65536);
    uint64_t prof_size = align_up(gs_prof_region_size(gs_prof_nbuckets(max_spans)), 65536);
    uint64_t arena_off = align_up(prof_off + prof_size, GS_ARENA_SIZE);
    *lay = (gs_layout_t){.side_off = side_off, .side_size = side_size, .notice_off = notice_off,
                         .prof_off = prof_off, .prof_size = prof_size, .arena_off = arena_off};
    *data_size = arena_off + (max_pages << GS_PAGE_SHIFT);
    /* meta memfd layout */
    ml->pagemap_off = GS_META_HDR_SIZE;
    ml->spans_off = align_up(ml->pagemap_off + max_pages * 4u, 4096);
    ml->pslots_off = align_up(ml->spans_off + max_spans * sizeof(gs_mspan_t), 4096);
    ml->undo_off = align_up(ml->pslots_off + (uint64_t)max_slots * sizeof(gs_pslot_t), 4096);
    /* The names directory last (shm/names.h): committed with the slot
     * table and the undo log (everything from pslots_off on is). */
    ml->dir_off = align_up(ml->undo_off + sizeof(gs_undo_log_t), 4096);
    ml->dir_cap = GS_DIR_CAP;
    ml->meta_size = align_up(ml->dir_off + (uint64_t)GS_DIR_CAP * sizeof(gs_dirent_t), 4096);
}

int gs_heap_map(gs_heap_t *h, bool dry)
{
    int flags = dry ? MAP_PRIVATE : MAP_SHARED;
    if (dry) {
        h->data = mmap(NULL, h->data_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, h->data_fd, 0);
        if (h->data == MAP_FAILED) h->data = NULL;
    } else {
        h->data = gs_map_aligned(h->data_fd, h->data_size, PROT_READ | PROT_WRITE);
    }
    if (!h->data) return -errno;
    h->meta = mmap(NULL, h->meta_size, PROT_READ | PROT_WRITE, flags | MAP_NORESERVE, h->meta_fd, 0);
    if (h->meta == MAP_FAILED) {
        h->meta = NULL;
        return -errno;
    }
    h->hdr = (gs_seg_header_t *)h->data;
    h->mhdr = (gs_meta_header_t *)h->meta;
    return 0;
}

void gs_heap_write_meta_header(gs_heap_t *h, const gs_meta_layout_t *ml)
{
    gs_meta_header_t *m = h->mhdr;
    m->abi_version = GS_ABI_VERSION;
    m->page_size = GS_PAGE_SIZE;
    m->arena_size = GS_ARENA_SIZE;
    m->data_size = h->data_size;
    m->meta_size = h->meta_size;
    m->side_off = h->lay.side_off;
    m->side_size = h->lay.side_size;
    m->notice_off = h->lay.notice_off;
    m->arena_off = h->lay.arena_off;
    m->max_pages = h->max_pages;
    m->max_slots = h->cfg.max_slots;
    m->slot_size = GS_SLOT_MAP_SIZE;
    m->pagemap_off = ml->pagemap_off;
    m->spans_off = ml->spans_off;
    m->max_spans = h->max_spans;
    m->prof_off = h->lay.prof_off;
    m->pslots_off = ml->pslots_off;
    m->undo_off = ml->undo_off;
    m->dir_off = ml->dir_off;
    m->dir_cap = ml->dir_cap;
}

static void random_id(uint64_t *id)
{
    /* Any 64 bits that differ between heaps will do; getrandom does not
     * block once the system is up, and the clock is the fallback. */
    if (getrandom(id, sizeof *id, GRND_NONBLOCK) != (ssize_t)sizeof *id) *id = gs_now_ns() ^ ((uint64_t)getpid() << 40);
    if (*id == 0) *id = 1;
}

static gs_heap_t *create_on(const gs_heap_config_t *cfg, int data_fd, int meta_fd, char *err, size_t errlen)
{
    char dummy[1];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    gs_heap_t *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        if (data_fd >= 0) close(data_fd);
        if (meta_fd >= 0) close(meta_fd);
        errno = ENOMEM;
        return NULL;
    }
    h->cfg = *cfg;
    if (cfg->slot_dir_fd1 > 0) h->slotdir_fd1 = fcntl(cfg->slot_dir_fd1 - 1, F_DUPFD_CLOEXEC, 0) + 1;
    h->is_memfd = data_fd < 0;
    h->data_fd = data_fd;
    h->meta_fd = meta_fd;
    int rc = 0;
    if (h->cfg.max_slots == 0 || h->cfg.max_slots > GS_MAX_SLOTS) h->cfg.max_slots = GS_MAX_SLOTS;
    uint64_t size = align_up(cfg->size ? cfg->size : GS_ARENA_SIZE, GS_ARENA_SIZE);
    if (size > (UINT64_C(1) << 46)) {
        snprintf(err, errlen, "heap size too large (at most 64 TiB)");
        rc = -EINVAL;
        goto fail;
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
    gs_meta_layout_t ml;
    gs_heap_layout(h->max_pages, h->cfg.max_slots, &h->lay, &h->data_size, &ml);
    h->meta_size = ml.meta_size;

    for (uint32_t i = 0; i < GS_MAX_SLOTS; i++) h->slots[i].fd = -1;
    if (h->is_memfd) {
        rc = gs_make_memfd("goshm-data", h->data_size, true, &h->data_fd);
        if (!rc) rc = gs_make_memfd("goshm-meta", h->meta_size, false, &h->meta_fd);
    } else {
        rc = size_file(h->data_fd, h->data_size);
        if (!rc) rc = size_file(h->meta_fd, h->meta_size);
    }
    if (rc) {
        snprintf(err, errlen, "%s: %s", h->is_memfd ? "memfd" : "sizing the heap files", strerror(-rc));
        goto fail;
    }
    /* Header pages first: Ready before they are written; then the
     * persistent slot table and the undo log, written at any time. */
    if ((rc = gs_sys_commit(h->data_fd, 0, 4096)) || (rc = gs_sys_commit(h->meta_fd, 0, GS_META_HDR_SIZE)) ||
        (rc = gs_sys_commit(h->meta_fd, ml.pslots_off, ml.meta_size - ml.pslots_off))) {
        snprintf(err, errlen, "committing the header: %s", strerror(-rc));
        goto fail;
    }
    h->meta_committed = GS_META_HDR_SIZE + (ml.meta_size - ml.pslots_off);
    /* The profile region is written by clients at any time: Ready now
     * (a few MiB, shm/profregion.h). */
    if ((rc = gs_sys_commit(h->data_fd, h->lay.prof_off, h->lay.prof_size))) {
        snprintf(err, errlen, "committing the profile region: %s", strerror(-rc));
        goto fail;
    }
    if ((rc = gs_heap_map(h, false))) {
        snprintf(err, errlen, "mmap: %s", strerror(-rc));
        goto fail;
    }
    /* From now on nobody can map the meta memfd writable or write(2) to it,
     * whatever descriptor they hold; our mapping above stays writable. And
     * no seal can be added any more (clients hold O_RDONLY descriptors,
     * which cannot add seals anyway). A heap that outlives us cannot be
     * sealed so (the next daemon must map it writable): its meta memfd is
     * 0600 instead, so clients of other uids cannot reopen their O_RDONLY
     * descriptor for writing through /proc (README, "Restart"). */
    if (h->is_memfd && h->cfg.persistent && (fchmod(h->meta_fd, 0600) != 0 ||
                                             fcntl(h->meta_fd, F_ADD_SEALS, F_SEAL_SEAL) != 0)) {
        rc = -errno;
        snprintf(err, errlen, "chmod meta: %s", strerror(-rc));
        goto fail;
    }
    if (h->is_memfd && !h->cfg.persistent && fcntl(h->meta_fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) != 0) {
        rc = -errno;
        snprintf(err, errlen, "sealing meta: %s", strerror(-rc));
        goto fail;
    }
    h->pagestate = calloc(h->max_pages, 1);
    if (!h->pagestate) { rc = -ENOMEM; snprintf(err, errlen, "out of memory"); goto fail; }

    uint64_t epoch = gs_now_ns() ^ ((uint64_t)getpid() << 32);
    /* The heap id: random; 0 is never an id. Kept in the meta header (ours)
     * for adoption, with copies in the data header (for clients) and here. */
    random_id(&h->heap_id);
    h->prof_off = h->lay.prof_off;
    h->prof_size = h->lay.prof_size;
    gs_prof_header_t *ph = (gs_prof_header_t *)(h->data + h->prof_off);
    ph->nbuckets = gs_prof_nbuckets(h->max_spans);
    ph->magic = GS_PROF_MAGIC;
    h->epoch = epoch;
    gs_store_relaxed(&h->hdr->xnotice_head, 0);

    gs_meta_header_t *m = h->mhdr;
    gs_heap_write_meta_header(h, &ml);
    m->epoch = epoch;
    m->heap_id = h->heap_id;
    gs_store_relaxed(&m->xheap_pages, 0);
    /* The magic last: a heap file whose creation was cut short before this
     * store is not a goshm heap (and is not linked into its directory yet
     * either, daemon/persist.c). */
    gs_fence_seqcst();
    m->magic = GS_META_MAGIC;
    h->pagemap = (_Atomic uint32_t *)(h->meta + ml.pagemap_off);
    h->spans = (gs_mspan_t *)(h->meta + ml.spans_off);
    h->pslots = (gs_pslot_t *)(h->meta + ml.pslots_off);
    h->undo = (gs_undo_log_t *)(h->meta + ml.undo_off);
    h->dir = (gs_dirent_t *)(h->meta + ml.dir_off);
    gs_names_init(h); /* an empty directory: the memfd reads as zero */
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

gs_heap_t *gs_heap_create(const gs_heap_config_t *cfg, char *err, size_t errlen)
{
    return create_on(cfg, -1, -1, err, errlen);
}

gs_heap_t *gs_heap_create_files(const gs_heap_config_t *cfg, int data_fd, int meta_fd, char *err, size_t errlen)
{
    return create_on(cfg, data_fd, meta_fd, err, errlen);
}


uint64_t gs_heap_adopted_ns(const gs_heap_t *h, uint32_t *orphans, uint32_t *reclaimed)
{
    if (orphans) *orphans = h->adopted_orphans;
    if (reclaimed) *reclaimed = h->adopted_reclaimed;
    return h->adopted_ns;
}

void gs_heap_destroy(gs_heap_t *h)
{
    if (!h) return;
    gs_names_fini(h);
    for (uint32_t i = 0; i < GS_MAX_SLOTS; i++) {
        if (h->slots[i].map) munmap(h->slots[i].map, GS_SLOT_MAP_SIZE);
        if (h->slots[i].old_map) munmap(h->slots[i].old_map, GS_SLOT_MAP_SIZE);
        if (h->slots[i].fd >= 0) close(h->slots[i].fd);
    }
    if (h->slotdir_fd1 > 0) close(h->slotdir_fd1 - 1);
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
