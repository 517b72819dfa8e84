/* SPDX-License-Identifier: MIT */
/* name.c: the names directory from libgoshm: goshm_name_get (lock-free), goshm_name_set/del and the channel registry through goshmd.
 *
 * Overview: shm/overview.h; the table and its seqlock: shm/names.h; the
 * daemon's side: daemon/names.c; the messages: proto/goshm.proto.
 *
 * goshm_name_get reads the directory in the meta memfd, mapped read-only:
 * hash, linear probe, a seqlock read of each entry (shm/names.h). Only the
 * daemon writes there, but nothing read is trusted beyond bounds: at most
 * dir_cap probes, the length clamped, an offset outside the data memfd is
 * "no such name". An entry whose seqlock stays odd (a daemon killed in the
 * middle of a write, not adopted yet) is waited for until the round-trip
 * deadline ($GOSHM_TIMEOUT_MS), then ETIMEDOUT.
 *
 * Writes are requests on this process's control connection, one at a time
 * under the seam's mutex (the ring's round trips take it too, so a reply is
 * never mistaken for the daemon hanging up: client/ring.c). A daemon that
 * went away is waited for and the slot resumed (client/reconnect.c), then
 * the request is sent once more: the adopter undid a request the old daemon
 * did not finish (daemon/intent.c), but one it finished and could not
 * answer is answered again as EEXIST (set) or ENOENT (del).
 */
#define _GNU_SOURCE
#include "client.h"

#include <errno.h>   /* errno */
#include <sched.h>   /* sched_yield */
#include <string.h>  /* strlen */
#include <unistd.h>  /* close */

#include "clock.h"
#include "ctlclient.h"
#include "names.h"

/* ---- lookups ---------------------------------------------------------------- */

goshm_off_t goshm_name_get(goshm_t *h, const char *name)
{
    if (!h || !gs_name_valid(name)) {
        errno = EINVAL;
        return GOSHM_NULL;
    }
    if (!h->dir || h->dir_cap == 0 || (h->dir_cap & (h->dir_cap - 1u)) != 0) {
        errno = ENOENT;
        return GOSHM_NULL;
    }
    size_t len = strlen(name);
    uint32_t b = gs_dir_hash(GS_DIR_NAME, name, len);
    uint64_t deadline = 0;
    for (uint32_t i = 0; i < h->dir_cap; i++, b++) {
        gs_dirent_t r;
        while (!gs_dirent_read(&h->dir[b & (h->dir_cap - 1u)], &r, 256)) {
            uint32_t tmo = gs_svc_timeout_ms();
            if (!deadline) deadline = gs_now_ns() + (uint64_t)(tmo ? tmo : 10000u) * 1000000u;
            if (gs_now_ns() > deadline) {
                errno = ETIMEDOUT;
                return GOSHM_NULL;
            }
            sched_yield();
        }
        if (r.kind == GS_DIR_FREE) break;
        if (gs_dirent_is(&r, GS_DIR_NAME, name, len)) {
            if (r.off == 0 || r.off >= h->data_size) break; /* not an offset of this heap: garbage */
            return r.off;
        }
    }
    errno = ENOENT;
    return GOSHM_NULL;
}

/* ---- requests ---------------------------------------------------------------- */

/* Replies left on the connection by a call that gave up (ETIMEDOUT): read
 * and dropped before a new request, so that no reply answers the wrong one. */
static void drain_late(svc_seam_t *s)
{
    while (s->late_replies) {
        Goshm__Reply *rep = NULL;
        int fds[2];
        int n = gs_ctl_recv(s->sock, &rep, fds, 2, 0);
        if (n < 0) return;
        for (int k = 0; k < n; k++) close(fds[k]);
        goshm__reply__free_unpacked(rep, NULL);
        s->late_replies--;
    }
}

/* One request and its reply of case `want` on this process's control
 * connection. The reply is the caller's to free; fds[0..nfds) get the
 * descriptors it carried (-1: none). 0 or -errno. */
static int ctl_call(struct goshm *h, const Goshm__Request *req, Goshm__Reply__MsgCase want, Goshm__Reply **out,
                    int *fds, int nfds)
{
    *out = NULL;
    if (!h) return -EINVAL;
    if (h->ops != &gs_svc_ops) return -ENOTSUP; /* the in-process seam has no daemon */
    svc_seam_t *s = h->seam;
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    if (s->pid != gs_svc_pid()) {
        rc = gs_svc_reattach(s);
        if (rc) goto out;
    }
    if (s->dead) {
        rc = -ECONNRESET;
        goto out;
    }
    for (int attempt = 0;; attempt++) {
        if (s->sock < 0) {
            rc = gs_svc_reconnect(s);
            if (rc) goto out;
            s->late_replies = 0;
        }
        drain_late(s);
        uint32_t tmo = gs_svc_timeout_ms();
        rc = gs_ctl_send(s->sock, req);
        if (!rc) {
            rc = gs_ctl_recv(s->sock, out, fds, nfds, tmo ? (int)tmo : -1);
            if (rc == -ETIMEDOUT) s->late_replies++; /* its reply may still come */
        }
        if (rc >= 0) break;
        if (attempt == 0 && (rc == -ECONNRESET || rc == -EPIPE || rc == -ENOTCONN)) {
            /* The daemon went away: wait for one that adopts the heap. */
            rc = gs_svc_reconnect(s);
            if (rc) goto out;
            s->late_replies = 0; /* a new connection owes us nothing */
            continue;
        }
        goto out;
    }
    rc = 0;
    if ((*out)->msg_case == GOSHM__REPLY__MSG_ERROR) {
        rc = (*out)->error->code > 0 ? -(*out)->error->code : -EPROTO;
    } else if ((*out)->msg_case != want) {
        rc = -EPROTO;
    }
    if (rc) {
        goshm__reply__free_unpacked(*out, NULL);
        *out = NULL;
        for (int i = 0; i < nfds; i++)
            if (fds[i] >= 0) { close(fds[i]); fds[i] = -1; }
    }
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* NameSet, NameDel, ChanUnlink: 0 or -errno. */
static int name_call(struct goshm *h, const Goshm__Request *req)
{
    Goshm__Reply *rep;
    int rc = ctl_call(h, req, GOSHM__REPLY__MSG_NAME, &rep, NULL, 0);
    if (rc) return rc;
    int32_t code = rep->name ? rep->name->code : EPROTO;
    goshm__reply__free_unpacked(rep, NULL);
    return code >= 0 && code < 4096 ? -code : -EPROTO;
}

static int fail(int rc)
{
    errno = -rc;
    return -1;
}

int goshm_name_set(goshm_t *h, const char *name, goshm_off_t off)
{
    if (!h || !gs_name_valid(name) || off == GOSHM_NULL) return fail(-EINVAL);
    Goshm__NameSet m = GOSHM__NAME_SET__INIT;
    m.name.data = (uint8_t *)name;
    m.name.len = strlen(name);
    m.off = off;
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_NAME_SET;
    req.name_set = &m;
    int rc = name_call(h, &req);
    return rc ? fail(rc) : 0;
}

int goshm_name_del(goshm_t *h, const char *name)
{
    if (!h || !gs_name_valid(name)) return fail(-EINVAL);
    Goshm__NameDel m = GOSHM__NAME_DEL__INIT;
    m.name.data = (uint8_t *)name;
    m.name.len = strlen(name);
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_NAME_DEL;
    req.name_del = &m;
    int rc = name_call(h, &req);
    return rc ? fail(rc) : 0;
}

int gs_ctl_chan_unlink(struct goshm *h, const char *name)
{
    if (!h || !gs_name_valid(name)) return -EINVAL;
    Goshm__ChanUnlink m = GOSHM__CHAN_UNLINK__INIT;
    m.name.data = (uint8_t *)name;
    m.name.len = strlen(name);
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_CHAN_UNLINK;
    req.chan_unlink = &m;
    return name_call(h, &req);
}

int gs_ctl_chan_open(struct goshm *h, const char *name, uint32_t cap, uint64_t create_off, uint64_t create_id,
                     uint64_t *off, uint64_t *id, uint32_t *cap_out, int *efd)
{
    *efd = -1;
    if (!h || !gs_name_valid(name)) return -EINVAL;
    Goshm__ChanOpen m = GOSHM__CHAN_OPEN__INIT;
    m.name.data = (uint8_t *)name;
    m.name.len = strlen(name);
    m.capacity = cap;
    m.create_off = create_off;
    m.create_id = create_id;
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_CHAN_OPEN;
    req.chan_open = &m;
    Goshm__Reply *rep;
    int fd = -1;
    int rc = ctl_call(h, &req, GOSHM__REPLY__MSG_CHAN_OPEN, &rep, &fd, 1);
    if (rc) return rc;
    const Goshm__ChanOpenReply *r = rep->chan_open;
    if (!r || r->code < 0 || r->code >= 4096) rc = -EPROTO;
    else if (r->code) rc = -r->code;
    else if (fd < 0) rc = -EPROTO; /* a channel without its eventfd */
    if (!rc) {
        *off = r->off;
        *id = r->id;
        *cap_out = r->cap;
        *efd = fd;
        fd = -1;
    }
    if (fd >= 0) close(fd);
    goshm__reply__free_unpacked(rep, NULL);
    return rc;
}
