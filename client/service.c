/* SPDX-License-Identifier: MIT */
/* service.c: libgoshm over goshmd: goshm_attach and goshm_detach.
 *
 * Overview: shm/overview.h; the seam and the files behind it: client/seam.h.
 * goshm_attach connects to the daemon's SOCK_SEQPACKET socket and sends
 * Attach (client/ctl.c), maps the two memfds (client/attach.c), and serves
 * the cache side's requests through its slot's ring (client/ring.c).
 * goshm_detach gives every cached span back, sends Detach and unmaps.
 */
#define _GNU_SOURCE
#include "client.h"

#include <errno.h>  /* errno */
#include <stdlib.h> /* calloc, free */
#include <unistd.h> /* close */

#include "sockpath.h"

static int svc_detach(struct goshm *h)
{
    svc_seam_t *s = h->seam;
    gs_client_fini(h); /* gives every cached span back through the ring */
    int rc = gs_svc_detach(s);
    gs_svc_unregister(s);
    if (s->sock >= 0) close(s->sock);
    if (s->doorbell >= 0) close(s->doorbell);
    gs_client_unmap(h);
    pthread_mutex_destroy(&s->mu);
    free(s);
    free(h);
    return rc;
}

goshm_t *goshm_attach(const char *socket_path)
{
    struct goshm *h = calloc(1, sizeof *h);
    svc_seam_t *s = calloc(1, sizeof *s);
    if (!h || !s) {
        free(h);
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    s->sock = s->doorbell = -1;
    int rc = gs_client_socket_path(socket_path, s->path, sizeof s->path);
    gs_attach_reply_t ar = {.data_fd = -1, .meta_fd = -1, .slot_fd = -1};
    if (!rc) rc = gs_svc_attach(s, &ar);
    if (!rc) {
        rc = gs_client_map(h, ar.data_fd, ar.meta_fd);
        /* The reply must agree with the meta header (which no client can
         * write): the layout this process uses from now on is the header's,
         * copied into h by gs_client_adopt. */
        if (!rc && !gs_attach_agrees(h->mhdr, ar.slot, ar.max_slots, ar.data_size, ar.meta_size, ar.slot_size,
                                     s->epoch))
            rc = -EPROTO;
        if (!rc) rc = gs_client_map_slot(h, ar.slot_fd, ar.slot_size);
        if (rc && h->data) gs_client_unmap(h);
        gs_attach_reply_close(&ar); /* the mappings keep the memfds */
    }
    if (rc) goto fail;
    h->slot = ar.slot;
    h->ops = &gs_svc_ops;
    h->seam = s;
    h->detach = svc_detach;
    s->h = h;
    s->pid = gs_svc_pid();
    pthread_mutex_init(&s->mu, NULL);
    rc = gs_client_init(h);
    if (rc) {
        gs_client_unmap(h);
        goto fail;
    }
    s->ring = &h->slotp->ring;
    gs_svc_register(s);
    return h;
fail:
    if (s->sock >= 0) close(s->sock);
    if (s->doorbell >= 0) close(s->doorbell);
    free(s);
    free(h);
    errno = -rc;
    return NULL;
}
