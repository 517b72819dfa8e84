/* seam_local.c: the seam as a direct call into an in-process heap side.
 *
 * Overview: shm/malloc.h; the seam: client/client.h. The heap side is
 * single-threaded, so every call takes one mutex. The client half maps the
 * segment itself (data read-write, meta through an O_RDONLY descriptor), as
 * a client of the daemon does.
 */
#define _GNU_SOURCE
#include "local.h"

#include <errno.h>  /* errno */
#include <stdlib.h> /* calloc, free */
#include <unistd.h> /* close, getpid */

#include "client.h"

typedef struct local_seam {
    gs_heap_t *heap;
    pthread_mutex_t mu;
    uint32_t slot;
} local_seam_t;

static int l_refill(void *p, uint32_t sc, const uint32_t *back, uint32_t nback, uint32_t want, uint32_t *sids)
{
    local_seam_t *s = p;
    pthread_mutex_lock(&s->mu);
    int rc = gs_heap_refill_batch(s->heap, s->slot, sc, back, nback, want, sids);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int l_large(void *p, uint64_t npages, uint32_t *sid)
{
    local_seam_t *s = p;
    pthread_mutex_lock(&s->mu);
    int rc = gs_heap_large_alloc(s->heap, s->slot, npages, sid);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int l_close(void *p)
{
    local_seam_t *s = p;
    pthread_mutex_lock(&s->mu);
    int rc = gs_heap_slot_reclaim(s->heap, s->slot);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int gs_local_detach(goshm_t *h);

static const gs_seam_ops_t local_ops = {
    .refill = l_refill, .large_alloc = l_large, .close = l_close,
};

goshm_t *gs_local_open(const gs_heap_config_t *cfg)
{
    goshm_t *h = calloc(1, sizeof *h);
    local_seam_t *s = calloc(1, sizeof *s);
    if (!h || !s) goto nomem;
    char err[256];
    s->heap = gs_heap_create(cfg, err, sizeof err);
    if (!s->heap) {
        int e = errno;
        free(h);
        free(s);
        errno = e;
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    int slot = gs_heap_slot_claim(s->heap, (uint32_t)getpid());
    if (slot < 0) {
        errno = -slot;
        goto fail;
    }
    s->slot = (uint32_t)slot;
    /* The heap side's own mappings: one address per byte, so that thread
     * sanitizers can pair the two sides' atomics. (The service maps the meta
     * memfd read-only in each client; tests/multiproc cover that.) */
    h->data = gs_heap_data_ptr(s->heap);
    h->data_size = gs_heap_data_size(s->heap);
    h->meta = gs_heap_meta_ptr(s->heap);
    h->meta_size = gs_heap_meta_size(s->heap);
    int rc = gs_client_adopt(h);
    if (rc) {
        errno = -rc;
        goto fail;
    }
    h->slot = s->slot;
    h->ops = &local_ops;
    h->detach = gs_local_detach;
    h->seam = s;
    rc = gs_client_init(h);
    if (rc) {
        errno = -rc;
        goto fail;
    }
    return h;
nomem:
    errno = ENOMEM;
    free(h);
    free(s);
    return NULL;
fail:;
    int e = errno;
    gs_heap_destroy(s->heap);
    free(s);
    free(h);
    errno = e;
    return NULL;
}

gs_heap_t *gs_local_heap(goshm_t *h) { return ((local_seam_t *)h->seam)->heap; }
void gs_local_lock(goshm_t *h) { pthread_mutex_lock(&((local_seam_t *)h->seam)->mu); }
void gs_local_unlock(goshm_t *h) { pthread_mutex_unlock(&((local_seam_t *)h->seam)->mu); }

void gs_local_collect(goshm_t *h)
{
    local_seam_t *s = h->seam;
    pthread_mutex_lock(&s->mu);
    gs_heap_drain_notices(s->heap);
    gs_heap_bgsweep(s->heap, UINT32_MAX / 2u);
    pthread_mutex_unlock(&s->mu);
}

/* Detach from an in-process heap: flush the mcaches, reclaim the slot, and
 * destroy the heap (it has no other client). */
static int gs_local_detach(goshm_t *h)
{
    local_seam_t *s = h->seam;
    gs_client_fini(h);
    l_close(s);
    gs_client_unmap(h);
    gs_heap_destroy(s->heap);
    pthread_mutex_destroy(&s->mu);
    free(s);
    free(h);
    return 0;
}
