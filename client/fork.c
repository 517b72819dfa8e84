/* SPDX-License-Identifier: MIT */
/* fork.c: libgoshm across fork(): the child forgets the parent's mcaches and gets a slot of its own.
 *
 * Overview: shm/overview.h. The child inherits the parent's mcaches, slot
 * and connection, none of which it may use (the parent's mcaches own those
 * spans). An atfork handler empties the child's mcaches without giving
 * anything back, drops the parent's connection, and leaves the seam's pid
 * the parent's, so that the next seam call (client/ring.c) reattaches the
 * child to a slot of its own. Objects from before the fork stay valid: the
 * mapping is shared.
 *
 * The parent's slot memfd is the parent's alone (issue 7, point 4): the
 * child inherits a mapping of it but no descriptor (we close it after
 * mapping). The atfork handler replaces that mapping, in the child only,
 * with private anonymous memory at the same address, so nothing the child
 * does before its reattach (a statistics counter bumped by a free) reaches
 * the parent's slot; the reattach maps the child's own slot memfd.
 */
#define _GNU_SOURCE
#include "client.h"

#include <errno.h>     /* ESTALE */
#include <stdatomic.h> /* atomic_* */
#include <string.h>    /* memset */
#include <sys/mman.h>  /* mmap */
#include <unistd.h>    /* close, getpid */

static pthread_mutex_t all_mu = PTHREAD_MUTEX_INITIALIZER;
/* This process's pid, refreshed in fork children: glibc's getpid() is a
 * system call, too slow for every round trip. */
static _Atomic pid_t self_pid;

pid_t gs_svc_pid(void)
{
    pid_t p = atomic_load_explicit(&self_pid, memory_order_relaxed);
    if (!p) {
        p = getpid();
        atomic_store_explicit(&self_pid, p, memory_order_relaxed);
    }
    return p;
}
static svc_seam_t *all_seams;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void)
{
    pthread_mutex_lock(&all_mu);
    gs_client_caches_lock();
}

static void atfork_parent(void)
{
    gs_client_caches_unlock();
    pthread_mutex_unlock(&all_mu);
}

static void atfork_child(void)
{
    atomic_store_explicit(&self_pid, getpid(), memory_order_relaxed);
    gs_buf_id_reseed(); /* or the child would hand out its parent's next buffer ids */
    for (svc_seam_t *s = all_seams; s; s = s->next) {
        struct goshm *h = s->h;
        /* The parent's mcaches own their spans: forget them, give nothing back. */
        for (gs_mcache_t *c = h->caches; c; c = c->next) {
            memset(c->alloc, 0, sizeof c->alloc);
            memset(c->nstash, 0, sizeof c->nstash);
            memset(c->nback, 0, sizeof c->nback);
            memset(c->ahead, 0, sizeof c->ahead); /* sent on the parent's ring */
            memset(c->nkept, 0, sizeof c->nkept);
            c->tiny_next = NULL;
            gs_mcache_forget(c);
        }
        if (h->owns_slot && h->slotp) {
            void *p = mmap(h->slotp, GS_SLOT_MAP_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            if (p == MAP_FAILED) {
                /* Cannot happen short of ENOMEM; then drop the view of the
                 * parent's slot altogether. */
                munmap(h->slotp, GS_SLOT_MAP_SIZE);
                h->slotp = NULL;
                h->owns_slot = false;
            }
        }
        pthread_mutex_init(&h->lock, NULL);
        /* The parent's references stay the parent's: the child's records
         * start empty in its own slot (no carry-over from the old one). */
        pthread_mutex_init(&h->buf_lock, NULL);
        h->hold_slot = NULL;
        pthread_mutex_init(&s->mu, NULL);
        if (s->sock >= 0) close(s->sock);
        if (s->doorbell >= 0) close(s->doorbell);
        s->sock = s->doorbell = -1;
        s->late_replies = 0;
        /* s->pid stays the parent's: the next seam call reattaches. */
    }
    gs_client_caches_child();
    pthread_mutex_init(&all_mu, NULL);
}

static void register_atfork(void) { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

/* In a fork child: a slot of our own on the same heap. s->mu held. */
int gs_svc_reattach(svc_seam_t *s)
{
    gs_attach_reply_t ar;
    uint64_t epoch = s->epoch;
    int rc = gs_svc_attach(s, &ar);
    if (rc) return rc;
    struct goshm *h = s->h;
    /* The data and meta mappings survived the fork; the layout we copied at
     * attach is still ours. A different heap at that path is refused. */
    if (s->epoch != epoch ||
        !gs_attach_agrees(h->mhdr, ar.slot, ar.max_slots, ar.data_size, ar.meta_size, ar.slot_size, s->epoch))
        rc = -ESTALE;
    if (!rc) rc = gs_client_map_slot(h, ar.slot_fd, ar.slot_size);
    gs_attach_reply_close(&ar);
    if (rc) {
        close(s->sock);
        close(s->doorbell);
        s->sock = s->doorbell = -1;
        return rc; /* -ESTALE: a different heap answers at that path now */
    }
    h->slot = ar.slot;
    s->ring = &h->slotp->ring;
    gs_svc_ring_restart(s, false);
    s->pid = gs_svc_pid();
    return 0;
}

void gs_svc_register(svc_seam_t *s)
{
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&all_mu);
    s->next = all_seams;
    all_seams = s;
    pthread_mutex_unlock(&all_mu);
}

void gs_svc_unregister(svc_seam_t *s)
{
    pthread_mutex_lock(&all_mu);
    for (svc_seam_t **pp = &all_seams; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&all_mu);
}
