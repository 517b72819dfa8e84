/* SPDX-License-Identifier: MIT */
/* attach.c: mapping a heap's segment and setting up a process's side of it.
 *
 * Overview: shm/overview.h. The data memfd is mapped read-write, the meta memfd
 * read-only (the heap side passes an O_RDONLY descriptor and seals the memfd
 * against future writes, so neither mprotect nor a new mapping can make it
 * writable). The meta header, which no client can write, is checked and its
 * layout copied into struct goshm; the data memfd's header holds only the
 * notice stack head, and this process never reads a layout field from
 * client-writable memory. The slot memfd is this client's alone.
 */
#define _GNU_SOURCE
#include "client.h"
#include "mapping.h"

#include <errno.h>    /* errno */
#include <stdatomic.h> /* atomic_fetch_add */
#include <stdlib.h>   /* free */
#include <string.h>   /* memset */
#include <sys/mman.h> /* mmap */
#include <sys/stat.h> /* fstat */

static _Atomic uint64_t next_id = 1;

int gs_client_map(struct goshm *h, int data_fd, int meta_fd)
{
    struct stat ds, ms;
    if (fstat(data_fd, &ds) != 0 || fstat(meta_fd, &ms) != 0) return -errno;
    if ((uint64_t)ds.st_size < GS_HEADER_SIZE || (uint64_t)ms.st_size < GS_META_HDR_SIZE) return -EPROTO;
    h->data_size = (uint64_t)ds.st_size;
    h->meta_size = (uint64_t)ms.st_size;
    h->data = gs_map_aligned(data_fd, h->data_size, PROT_READ | PROT_WRITE);
    if (!h->data) return -errno;
    char *meta = mmap(NULL, h->meta_size, PROT_READ, MAP_SHARED | MAP_NORESERVE, meta_fd, 0);
    if (meta == MAP_FAILED) { int e = errno; gs_client_unmap(h); return -e; }
    h->meta = meta;
    h->owns_mapping = true;
    int rc = gs_client_adopt(h);
    if (rc) gs_client_unmap(h);
    return rc;
}

int gs_client_adopt(struct goshm *h)
{
    h->hdr = (gs_seg_header_t *)h->data;
    h->mhdr = (const gs_meta_header_t *)h->meta;
    const gs_meta_header_t *m = h->mhdr;
    /* Read once, into private memory (the memfd is read-only for every
     * client, so it cannot change under us anyway). */
    if (!gs_meta_usable(m, h->data_size, h->meta_size))
        return -EPROTO;
    h->arena_off = m->arena_off;
    h->max_spans = m->max_spans;
    h->max_pages = m->max_pages;
    h->side_off = m->side_off;
    h->side_size = m->side_size;
    h->notice_off = m->notice_off;
    h->epoch = m->epoch;
    h->prof_off = m->prof_off;
    h->max_slots = m->max_slots;
    h->pagemap = (const _Atomic uint32_t *)(h->meta + m->pagemap_off);
    h->spans = (const gs_mspan_t *)(h->meta + m->spans_off);
    h->dir = (const gs_dirent_t *)(h->meta + m->dir_off);
    h->dir_cap = m->dir_cap;
    return 0;
}

int gs_client_map_slot(struct goshm *h, int slot_fd, uint64_t slot_size)
{
    struct stat st;
    if (fstat(slot_fd, &st) != 0) return -errno;
    if (slot_size != GS_SLOT_MAP_SIZE || (uint64_t)st.st_size != slot_size) return -EPROTO;
    void *p = mmap(NULL, slot_size, PROT_READ | PROT_WRITE, MAP_SHARED, slot_fd, 0);
    if (p == MAP_FAILED) return -errno;
    if (h->owns_slot && h->slotp) {
        /* The reference records in the mapping that goes (a fork child's
         * private stand-in, client/fork.c) move with it: the buffer code
         * must never read an unmapped one (client/buf.c). */
        if (h->hold_slot == h->slotp) {
            memcpy(&((gs_slot_t *)p)->holdings, &h->slotp->holdings, sizeof h->slotp->holdings);
            h->hold_slot = p;
        }
        munmap(h->slotp, GS_SLOT_MAP_SIZE);
    }
    h->slotp = p;
    h->owns_slot = true;
    return 0;
}

void gs_client_unmap(struct goshm *h)
{
    if (h->owns_mapping && h->data) munmap(h->data, h->data_size);
    if (h->owns_mapping && h->meta) munmap((void *)h->meta, h->meta_size);
    if (h->owns_slot && h->slotp) munmap(h->slotp, GS_SLOT_MAP_SIZE);
    h->data = NULL;
    h->meta = NULL;
    h->slotp = NULL;
    h->owns_slot = false;
}

/* Every mcache of this process, of every heap. A thread's key destructor
 * (thread_exit) can run after the program saw the thread finish: Python's
 * Thread.join returns before the OS thread runs its destructors, and
 * detached threads are never joined. So thread_exit may race goshm_detach of
 * the same heap, whose gs_client_fini frees every cache of h (and then h).
 * all_caches_mu serialises the two: thread_exit touches its cache only if it
 * is still listed here as the calling thread's (gs_client_fini unlists a
 * cache before it frees it; a new cache at the same address belongs to
 * another thread, or is listed afresh), and holds the lock while it gives
 * the cache back, so h outlives it. Lock order: client/fork.c's all_mu,
 * h->buf_lock (a buffer allocation may make the thread's first mcache),
 * then all_caches_mu, then h->lock. */
static pthread_mutex_t all_caches_mu = PTHREAD_MUTEX_INITIALIZER;
static gs_mcache_t *all_caches;

void gs_client_caches_lock(void) { pthread_mutex_lock(&all_caches_mu); }
void gs_client_caches_unlock(void) { pthread_mutex_unlock(&all_caches_mu); }
/* In a fork child: the forking thread, the child's only one, held the lock
 * across the fork (atfork_prepare) and releases it. Unlocked rather than
 * initialised again: ThreadSanitizer would take a mutex initialised while
 * held for one still held in the child, and report every lock the child
 * takes afterwards (h->buf_lock) as ordered after it. */
void gs_client_caches_child(void) { pthread_mutex_unlock(&all_caches_mu); }

static void all_caches_unlink(gs_mcache_t *c)
{
    if (c->all_prev) c->all_prev->all_next = c->all_next;
    else all_caches = c->all_next;
    if (c->all_next) c->all_next->all_prev = c->all_prev;
    c->all_next = c->all_prev = NULL;
}

void gs_client_link_cache(struct goshm *h, gs_mcache_t *c)
{
    c->owner = pthread_self();
    pthread_mutex_lock(&all_caches_mu);
    c->all_prev = NULL;
    c->all_next = all_caches;
    if (all_caches) all_caches->all_prev = c;
    all_caches = c;
    pthread_mutex_lock(&h->lock);
    c->prev = NULL;
    c->next = h->caches;
    if (h->caches) h->caches->prev = c;
    h->caches = c;
    pthread_mutex_unlock(&h->lock);
    pthread_mutex_unlock(&all_caches_mu);
}

static void thread_exit(void *arg)
{
    gs_mcache_t *c = arg;
    pthread_t self = pthread_self();
    pthread_mutex_lock(&all_caches_mu);
    gs_mcache_t *x = all_caches;
    while (x && !(x == c && pthread_equal(x->owner, self))) x = x->all_next;
    if (!x) { /* goshm_detach gave it back and freed it already */
        pthread_mutex_unlock(&all_caches_mu);
        return;
    }
    struct goshm *h = c->heap;
    gs_mcache_flush(h, c);
    pthread_mutex_lock(&h->lock);
    if (c->prev) c->prev->next = c->next;
    else h->caches = c->next;
    if (c->next) c->next->prev = c->prev;
    pthread_mutex_unlock(&h->lock);
    all_caches_unlink(c);
    pthread_mutex_unlock(&all_caches_mu);
    free(c);
}

int gs_client_init(struct goshm *h)
{
    gs_size_lut_init();
    h->id = atomic_fetch_add(&next_id, 1);
    int rc = pthread_key_create(&h->key, thread_exit);
    if (rc) return -rc;
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_init(&h->buf_lock, NULL);
    h->hold_slot = h->slotp;
    h->caches = NULL;
    h->debug = gs_debug_flags();
    /* Where the region is comes from the read-only meta header (copied at
     * attach); what the region holds is client-writable: gs_prof_attach
     * checks what it reads there. */
    gs_prof_attach(h, h->prof_off, gs_prof_env_rate());
    return 0;
}

void gs_client_fini(struct goshm *h)
{
    /* Every thread must be done with h (the contract of goshm_detach), but
     * the key destructors of threads that finished may still be running
     * (see all_caches_mu). */
    pthread_mutex_lock(&all_caches_mu);
    pthread_mutex_lock(&h->lock);
    gs_mcache_t *c = h->caches;
    h->caches = NULL;
    pthread_mutex_unlock(&h->lock);
    while (c) {
        gs_mcache_t *n = c->next;
        all_caches_unlink(c);
        gs_mcache_flush(h, c);
        free(c);
        c = n;
    }
    pthread_key_delete(h->key);
    pthread_mutex_unlock(&all_caches_mu);
    pthread_mutex_destroy(&h->lock);
    pthread_mutex_destroy(&h->buf_lock);
    if (gs_tls.id == h->id) {
        gs_tls.id = 0;
        gs_tls.cache = NULL;
    }
}

int goshm_detach(goshm_t *h)
{
    if (!h || !h->detach) {
        errno = EINVAL;
        return -1;
    }
    int rc = h->detach(h);
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    return 0;
}
