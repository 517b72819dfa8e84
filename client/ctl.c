/* SPDX-License-Identifier: MIT */
/* ctl.c: libgoshm's conversation with goshmd's control socket: Attach, Detach, is the daemon there.
 *
 * Overview: shm/overview.h; the messages: proto/goshm.proto; the framing:
 * proto/ctlclient.h (shared with goshmctl and the tests). Attach receives
 * the layout and three descriptors (data memfd, meta memfd read-only,
 * doorbell); the connection stays open while attached: its closing is how
 * the daemon learns that this process died.
 */
#define _GNU_SOURCE
#include "client.h"

#include <errno.h>  /* errno */
#include <poll.h>   /* poll */
#include <unistd.h> /* close, getpid */

#include "ctlclient.h"
#include "sockpath.h" /* gs_socket_check_path, gs_socket_check_peer */

void gs_attach_reply_close(gs_attach_reply_t *r)
{
    if (r->data_fd >= 0) close(r->data_fd);
    if (r->meta_fd >= 0) close(r->meta_fd);
    if (r->slot_fd >= 0) close(r->slot_fd);
    r->data_fd = r->meta_fd = r->slot_fd = -1;
}

/* Attach over a fresh connection: fills seam->sock, doorbell; returns the
 * reply's fields and the data/meta/slot descriptors in *r. */
int gs_svc_attach(svc_seam_t *s, gs_attach_reply_t *r)
{
    r->data_fd = r->meta_fd = r->slot_fd = -1;
    /* Only to a daemon we trust (shm/sockpath.h): the socket's directory
     * first, the listener's credentials once connected. Nothing is sent
     * before both checks passed. */
    char why[256];
    int fd = gs_socket_check_path(s->path, why, sizeof why);
    if (fd == -EACCES) gs_printf("goshm: not attaching to %s: %s\n", s->path, why);
    if (fd < 0) return fd;
    fd = gs_ctl_connect(s->path);
    if (fd < 0) return fd;
    int trc = gs_socket_check_peer(fd, why, sizeof why);
    if (trc) {
        if (trc == -EACCES) gs_printf("goshm: not attaching to %s: %s\n", s->path, why);
        close(fd);
        return trc;
    }
    Goshm__Attach at = GOSHM__ATTACH__INIT;
    at.abi_version = GS_ABI_VERSION;
    at.pid = (uint32_t)getpid();
    at.resume_slot = s->resume_slot;
    at.resume_heap_id = s->resume_slot ? s->heap_id : 0;
    at.resume_last_tag = s->resume_slot ? s->last_tag : 0;
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_ATTACH;
    req.attach = &at;
    int rc = gs_ctl_send(fd, &req);
    Goshm__Reply *rep = NULL;
    int fds[4] = {-1, -1, -1, -1};
    if (!rc) rc = gs_ctl_recv(fd, &rep, fds, 4, gs_svc_timeout_ms() ? (int)gs_svc_timeout_ms() : -1);
    if (rc < 0) {
        close(fd);
        return rc == -ECONNRESET ? -ECONNREFUSED : rc;
    }
    if (rep->msg_case == GOSHM__REPLY__MSG_ERROR) {
        rc = rep->error->code > 0 ? -rep->error->code : -EPROTO;
        if (rep->error->message && *rep->error->message)
            gs_printf("goshm: attach to %s refused: %s\n", s->path, rep->error->message);
    } else if (rep->msg_case != GOSHM__REPLY__MSG_ATTACH || rc != 4 || rep->attach->abi_version != GS_ABI_VERSION ||
               rep->attach->slot >= rep->attach->max_slots) {
        rc = -EPROTO;
    } else {
        r->slot = rep->attach->slot;
        r->max_slots = rep->attach->max_slots;
        r->data_size = rep->attach->data_size;
        r->meta_size = rep->attach->meta_size;
        r->slot_size = rep->attach->slot_size;
        s->epoch = rep->attach->epoch;
        s->heap_id = rep->attach->heap_id;
        s->resumed = rep->attach->resumed;
        rc = 0;
    }
    goshm__reply__free_unpacked(rep, NULL);
    if (rc) {
        for (int i = 0; i < 4; i++)
            if (fds[i] >= 0) close(fds[i]);
        close(fd);
        return rc;
    }
    s->sock = fd;
    s->doorbell = fds[2];
    r->data_fd = fds[0];
    r->meta_fd = fds[1];
    r->slot_fd = fds[3];
    return 0;
}

int gs_svc_detach(svc_seam_t *s)
{
    if (s->pid != gs_svc_pid()) return 0; /* a fork child never reattached */
    if (s->sock < 0) return s->dead || s->gave_up ? -ECONNRESET : 0; /* the daemon went away for good */
    Goshm__Detach d = GOSHM__DETACH__INIT;
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_DETACH;
    req.detach = &d;
    int rc = gs_ctl_send(s->sock, &req);
    Goshm__Reply *rep = NULL;
    if (!rc && gs_ctl_recv(s->sock, &rep, NULL, 0, gs_svc_timeout_ms() ? (int)gs_svc_timeout_ms() : -1) >= 0) {
        if (rep->msg_case != GOSHM__REPLY__MSG_DETACH) rc = -EPROTO;
        goshm__reply__free_unpacked(rep, NULL);
    }
    return rc;
}

bool gs_svc_daemon_gone(svc_seam_t *s)
{
    struct pollfd p = {.fd = s->sock, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLHUP | POLLERR | POLLIN))) return false;
    if (p.revents & (POLLHUP | POLLERR) || !s->late_replies) return true;
    /* A packet, and a directory reply is owed (client/name.c): drop it. */
    Goshm__Reply *rep = NULL;
    int fds[2];
    int n = gs_ctl_recv(s->sock, &rep, fds, 2, 0);
    if (n < 0) return n != -ETIMEDOUT;
    for (int i = 0; i < n; i++) close(fds[i]);
    bool error = rep->msg_case == GOSHM__REPLY__MSG_ERROR; /* the daemon closes after an Error */
    goshm__reply__free_unpacked(rep, NULL);
    s->late_replies--;
    return error;
}
