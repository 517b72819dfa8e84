/* SPDX-License-Identifier: MIT */
/* inproc.c: the seam as a ring round trip served in this process by the daemon's serve unit.
 *
 * Overview: shm/overview.h; the seam: client/client.h; the serve unit:
 * daemon/serve.h. The heap side is single-threaded, so every call takes one
 * mutex (the heap lock). A request goes through the slot's real ring: the
 * entry is written and published as libgoshm's ring seam does, one serve
 * pass runs (drain the notice stack, gs_serve_ring), and the completion is
 * read back. The client half maps the segment itself (data read-write, meta
 * through an O_RDONLY descriptor), as a client of the daemon does.
 */
#define _GNU_SOURCE
#include "inproc.h"

#include <errno.h>  /* errno */
#include <stdlib.h> /* calloc, free */
#include <string.h> /* memcpy */
#include <unistd.h> /* close, getpid */

#include "client.h"
#include "serve.h"

typedef struct local_seam {
    gs_heap_t *heap;
    pthread_mutex_t mu; /* the heap lock */
    uint32_t slot;
    gs_serve_slot_t srv; /* the server's side of the slot's ring */
    uint32_t sq_tail, cq_head, tag; /* the client's side */
} local_seam_t;

/* One request, one serve pass, one completion; mu held. */
static int32_t roundtrip(local_seam_t *s, gs_sqe_t *e, gs_cqe_t *c)
{
    gs_ring_t *r = s->srv.ring;
    e->tag = ++s->tag;
    memcpy(&r->sq[s->sq_tail % GS_RING_ENTRIES], e, sizeof *e);
    s->sq_tail++;
    gs_store_release(&r->xsq_tail, s->sq_tail);
    gs_heap_drain_notices(s->heap); /* the pass's one drain */
    if (!gs_serve_ring(s->heap, s->slot, &s->srv, NULL) || gs_load_acquire(&r->xcq_tail) != s->cq_head + 1u)
        gs_throw("inproc: the serve unit did not answer");
    memcpy(c, &r->cq[s->cq_head % GS_RING_ENTRIES], sizeof *c);
    s->cq_head++;
    gs_store_release(&r->xcq_head, s->cq_head);
    /* The data plane's next pass would see the head move and land a large
     * object (gs_heap_large_land); in-process there is no next pass unless
     * we run it. */
    gs_serve_ring(s->heap, s->slot, &s->srv, NULL);
    if (c->tag != e->tag) gs_throw("inproc: completion out of order");
    return c->result;
}

static int l_refill(void *p, uint32_t sc, const uint32_t *back, uint32_t nback, uint32_t want, uint32_t *sids)
{
    local_seam_t *s = p;
    gs_sqe_t e;
    int erc = gs_sqe_refill(&e, sc, back, nback, want);
    if (erc) return erc;
    gs_cqe_t c;
    pthread_mutex_lock(&s->mu);
    int rc = roundtrip(s, &e, &c);
    pthread_mutex_unlock(&s->mu);
    if (rc > 0) memcpy(sids, c.sids, (size_t)rc * sizeof *sids);
    return rc;
}

static int l_large(void *p, uint64_t npages, uint32_t align_shift, uint32_t *sid)
{
    local_seam_t *s = p;
    gs_sqe_t e;
    gs_sqe_large(&e, npages, align_shift);
    gs_cqe_t c;
    pthread_mutex_lock(&s->mu);
    int rc = roundtrip(s, &e, &c);
    pthread_mutex_unlock(&s->mu);
    *sid = c.sid;
    return rc;
}

static int l_close(void *p)
{
    local_seam_t *s = p;
    pthread_mutex_lock(&s->mu);
    gs_serve_slot_close(s->heap, s->slot, &s->srv);
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
    gs_serve_slot_open(s->heap, s->slot, &s->srv);
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
    h->slotp = gs_heap_slot_ptr(s->heap, s->slot); /* the heap side's own mapping, as for data */
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
    gs_heap_bgsweep(s->heap, UINT32_MAX / 2u, NULL); /* drains first */
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
