/* service.c: libgoshm over goshmd: attach, the ring seam, detach, fork.
 *
 * Overview: shm/malloc.h; the ring: shm/ring.h; the protocol: proto/goshm.proto.
 *
 * goshm_attach connects to the daemon's SOCK_SEQPACKET socket, sends Attach,
 * and receives the layout and three descriptors (data memfd, meta memfd
 * read-only, doorbell). The seam is this process's slot's ring: one request
 * batch at a time, serialised by a process-local mutex (refills are rare:
 * once per span), answered through the completion ring. Waiting spins
 * briefly, then sleeps on the ring's futex word; the connection is checked
 * while sleeping so a dead daemon is an error (ECONNRESET), not a hang.
 *
 * fork(): the child inherits the parent's mcaches, slot and connection, none
 * of which it may use (the parent's mcaches own those spans). An atfork
 * handler empties the child's mcaches without giving anything back, drops the
 * parent's connection, and marks the heap so that the next seam call attaches
 * the child to a slot of its own. Objects from before the fork stay valid:
 * the mapping is shared.
 *
 * The notice stack (spans that gained frees) never rings the doorbell: the
 * daemon drains it before every refill and large allocation, which is when
 * the memory is wanted, and on its 100 ms timer.
 */
#define _GNU_SOURCE
#include "client.h"

#include <errno.h>        /* errno */
#include <limits.h>       /* INT_MAX */
#include <linux/futex.h>  /* FUTEX_WAIT */
#include <poll.h>         /* poll */
#include <sched.h>        /* sched_yield */
#include <stdatomic.h>    /* atomic_* */
#include <stdlib.h>       /* calloc */
#include <string.h>       /* memset */
#include <sys/socket.h>   /* socket */
#include <sys/syscall.h>  /* SYS_futex */
#include <sys/un.h>       /* sockaddr_un */
#include <time.h>         /* timespec */
#include <unistd.h>       /* close, getpid */

#include "goshm.pb-c.h"
#include "sockpath.h"

#define MAX_PACKET 65536
/* How long a client polls for its completion before sleeping on the futex:
 * longer than the daemon needs to serve a refill (~1 us), shorter than the
 * daemon's own spin, and the futex wake of a sleeping thread costs ~100 us on
 * a small VM. */
#define SPIN_NS 30000u

typedef struct svc_seam {
    struct goshm *h;
    int sock;             /* control connection, -1 after fork until reattach */
    int doorbell;         /* this slot's eventfd */
    gs_ring_t *ring;
    pthread_mutex_t mu;   /* one request batch at a time */
    uint32_t sq_tail, cq_head, tag;
    uint64_t epoch;
    pid_t pid;            /* the process the slot belongs to */
    bool dead;            /* the daemon was found gone: fail at once from now on */
    char path[108];
    struct svc_seam *next; /* all attached heaps, for fork */
} svc_seam_t;

static pthread_mutex_t all_mu = PTHREAD_MUTEX_INITIALIZER;
/* This process's pid, refreshed in fork children: glibc's getpid() is a
 * system call, too slow for every round trip. */
static _Atomic pid_t self_pid;

static pid_t my_pid(void)
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

/* ---- control socket ----------------------------------------------------- */

static int ctl_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof a.sun_path) {
        close(fd);
        return -ENAMETOOLONG;
    }
    memcpy(a.sun_path, path, n + 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static int ctl_send(int fd, const Goshm__Request *req)
{
    size_t n = goshm__request__get_packed_size(req);
    uint8_t buf[256];
    if (n > sizeof buf) return -EMSGSIZE;
    goshm__request__pack(req, buf);
    ssize_t w;
    do w = send(fd, buf, n, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    return w == (ssize_t)n ? 0 : -(w < 0 ? errno : EIO);
}

/* Receive one Reply and up to nfds descriptors. */
static int ctl_recv(int fd, Goshm__Reply **out, int *fds, int nfds)
{
    uint8_t *buf = malloc(MAX_PACKET);
    if (!buf) return -ENOMEM;
    union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int) * 4)]; } cm;
    struct iovec iov = {buf, MAX_PACKET};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof cm.b};
    ssize_t r;
    do r = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    int got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *p = (int *)CMSG_DATA(c);
        for (int i = 0; i < k; i++) {
            if (got < nfds) fds[got++] = p[i];
            else close(p[i]);
        }
    }
    int rc = 0;
    if (r <= 0) rc = r == 0 ? -ECONNRESET : -errno;
    else if ((m.msg_flags & MSG_TRUNC) || !(*out = goshm__reply__unpack(NULL, (size_t)r, buf))) rc = -EPROTO;
    free(buf);
    if (rc) {
        for (int i = 0; i < got; i++) close(fds[i]);
        return rc;
    }
    for (int i = got; i < nfds; i++) fds[i] = -1;
    return got;
}

/* Attach over a fresh connection: fills seam->sock, doorbell; returns the
 * reply's slot and the data/meta descriptors. */
static int do_attach(svc_seam_t *s, uint32_t *slot, int *data_fd, int *meta_fd, uint64_t *data_size)
{
    int fd = ctl_connect(s->path);
    if (fd < 0) return fd;
    Goshm__Attach at = GOSHM__ATTACH__INIT;
    at.abi_version = GS_ABI_VERSION;
    at.pid = (uint32_t)getpid();
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_ATTACH;
    req.attach = &at;
    int rc = ctl_send(fd, &req);
    Goshm__Reply *rep = NULL;
    int fds[3] = {-1, -1, -1};
    if (!rc) rc = ctl_recv(fd, &rep, fds, 3);
    if (rc < 0) {
        close(fd);
        return rc == -ECONNRESET ? -ECONNREFUSED : rc;
    }
    if (rep->msg_case == GOSHM__REPLY__MSG_ERROR) {
        rc = rep->error->code > 0 ? -rep->error->code : -EPROTO;
        if (rep->error->message && *rep->error->message)
            gs_printf("goshm: attach to %s refused: %s\n", s->path, rep->error->message);
    } else if (rep->msg_case != GOSHM__REPLY__MSG_ATTACH || rc != 3 || rep->attach->abi_version != GS_ABI_VERSION) {
        rc = -EPROTO;
    } else {
        *slot = rep->attach->slot;
        *data_size = rep->attach->data_size;
        s->epoch = rep->attach->epoch;
        rc = 0;
    }
    goshm__reply__free_unpacked(rep, NULL);
    if (rc) {
        for (int i = 0; i < 3; i++)
            if (fds[i] >= 0) close(fds[i]);
        close(fd);
        return rc;
    }
    s->sock = fd;
    s->doorbell = fds[2];
    *data_fd = fds[0];
    *meta_fd = fds[1];
    return 0;
}

/* ---- the ring ------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void ring_doorbell(svc_seam_t *s)
{
    /* seq_cst: pairs with the daemon's NEED_WAKEUP store and re-check. */
    if ((gs_load_seqcst(&s->ring->xflags) & GS_RING_NEED_WAKEUP) && s->doorbell >= 0) {
        uint64_t one = 1;
        ssize_t r = write(s->doorbell, &one, sizeof one);
        (void)r;
    }
}

static bool daemon_gone(svc_seam_t *s)
{
    struct pollfd p = {.fd = s->sock, .events = POLLIN};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR | POLLIN));
}

static int reattach(svc_seam_t *s);

/* Submit n entries and wait for their n completions. 0, or -errno for the
 * transport; per-entry results are in out[]. */
static int roundtrip(svc_seam_t *s, gs_sqe_t *e, uint32_t n, gs_cqe_t *out)
{
    pthread_mutex_lock(&s->mu);
    if (s->pid != my_pid()) {
        int rc = reattach(s);
        if (rc) {
            pthread_mutex_unlock(&s->mu);
            return rc;
        }
    }
    if (s->dead) { /* no reconnection (yet): do not wait 50 ms again per call */
        pthread_mutex_unlock(&s->mu);
        return -ECONNRESET;
    }
    gs_ring_t *r = s->ring;
    for (uint32_t i = 0; i < n; i++) {
        e[i].tag = ++s->tag;
        memcpy(&r->sq[s->sq_tail % GS_RING_ENTRIES], &e[i], sizeof e[i]);
        s->sq_tail++;
    }
    gs_store_release(&r->xsq_tail, s->sq_tail);
    gs_fence_seqcst();
    ring_doorbell(s);
    uint32_t got = 0;
    int rc = 0;
    while (got < n) {
        /* Poll: a few pauses, then yield. The scheduler often puts the
         * daemon's data-plane thread on the client's CPU (it woke it), and
         * a pause loop would then only delay the answer it waits for. */
        uint64_t deadline = 0;
        for (uint32_t spins = 1; gs_load_acquire(&r->xcq_tail) == s->cq_head; spins++) {
            if (spins < 64u) {
                gs_cpu_relax();
                continue;
            }
            sched_yield();
            uint64_t t = now_ns();
            if (!deadline) deadline = t + SPIN_NS;
            else if (t >= deadline) break;
        }
        if (gs_load_acquire(&r->xcq_tail) == s->cq_head) {
            gs_store_seqcst(&r->xwaiting, 1);
            uint32_t seq = gs_load_seqcst(&r->xcq_seq);
            if (gs_load_acquire(&r->xcq_tail) == s->cq_head) {
                struct timespec ts = {0, 50 * 1000 * 1000};
                syscall(SYS_futex, (uint32_t *)&r->xcq_seq, FUTEX_WAIT, seq, &ts, NULL, 0);
            }
            gs_store_relaxed(&r->xwaiting, 0);
            if (gs_load_acquire(&r->xcq_tail) == s->cq_head && daemon_gone(s)) {
                s->dead = true;
                rc = -ECONNRESET;
                break;
            }
            continue;
        }
        uint32_t tail = gs_load_acquire(&r->xcq_tail);
        while (s->cq_head != tail && got < n) {
            memcpy(&out[got], &r->cq[s->cq_head % GS_RING_ENTRIES], sizeof out[got]);
            s->cq_head++;
            if (out[got].tag != e[got].tag) gs_throw("ring: completion out of order");
            got++;
        }
        gs_store_release(&r->xcq_head, s->cq_head);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int s_refill(void *p, uint32_t sc, const uint32_t *back, uint32_t nback, uint32_t want, uint32_t *sids)
{
    svc_seam_t *s = p;
    if (nback > GS_RING_MAX_BATCH || want > GS_RING_MAX_BATCH) return -EINVAL;
    gs_sqe_t e = {.op = GS_OP_REFILL, .spanclass = sc, .want = (uint8_t)want, .nback = (uint8_t)nback};
    memcpy(e.back, back, nback * sizeof *back);
    gs_cqe_t c;
    int rc = roundtrip(s, &e, 1, &c);
    if (rc) return rc;
    if (c.result > 0) {
        if ((uint32_t)c.result > want) gs_throw("ring: more spans than asked for");
        memcpy(sids, c.sids, (size_t)c.result * sizeof *sids);
    }
    return c.result;
}

static int s_large(void *p, uint64_t npages, uint32_t *sid)
{
    gs_sqe_t e = {.op = GS_OP_LARGE_ALLOC, .npages = npages};
    gs_cqe_t c;
    int rc = roundtrip(p, &e, 1, &c);
    if (rc) return rc;
    *sid = c.sid;
    return c.result;
}


static int s_close(void *p)
{
    svc_seam_t *s = p;
    if (s->sock < 0 || s->pid != my_pid()) return 0; /* a fork child never reattached */
    Goshm__Detach d = GOSHM__DETACH__INIT;
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_DETACH;
    req.detach = &d;
    int rc = ctl_send(s->sock, &req);
    Goshm__Reply *rep = NULL;
    if (!rc && ctl_recv(s->sock, &rep, NULL, 0) >= 0) {
        if (rep->msg_case != GOSHM__REPLY__MSG_DETACH) rc = -EPROTO;
        goshm__reply__free_unpacked(rep, NULL);
    }
    return rc;
}

static const gs_seam_ops_t svc_ops = {
    .refill = s_refill, .large_alloc = s_large, .close = s_close,
};

/* ---- fork ---------------------------------------------------------------- */

static void atfork_prepare(void) { pthread_mutex_lock(&all_mu); }
static void atfork_parent(void) { pthread_mutex_unlock(&all_mu); }

static void atfork_child(void)
{
    atomic_store_explicit(&self_pid, getpid(), memory_order_relaxed);
    for (svc_seam_t *s = all_seams; s; s = s->next) {
        struct goshm *h = s->h;
        /* The parent's mcaches own their spans: forget them, give nothing back. */
        for (gs_mcache_t *c = h->caches; c; c = c->next) {
            memset(c->alloc, 0, sizeof c->alloc);
            memset(c->nstash, 0, sizeof c->nstash);
            memset(c->nback, 0, sizeof c->nback);
            c->tiny_next = NULL;
            c->last = NULL;
        }
        pthread_mutex_init(&h->lock, NULL);
        pthread_mutex_init(&s->mu, NULL);
        if (s->sock >= 0) close(s->sock);
        if (s->doorbell >= 0) close(s->doorbell);
        s->sock = s->doorbell = -1;
        /* s->pid stays the parent's: the next seam call reattaches. */
    }
    pthread_mutex_init(&all_mu, NULL);
}

static void register_atfork(void) { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

/* In a fork child: a slot of our own on the same heap. s->mu held. */
static int reattach(svc_seam_t *s)
{
    uint32_t slot;
    int data_fd, meta_fd;
    uint64_t data_size;
    uint64_t epoch = s->epoch;
    int rc = do_attach(s, &slot, &data_fd, &meta_fd, &data_size);
    if (rc) return rc;
    close(data_fd); /* the mapping survived the fork */
    close(meta_fd);
    struct goshm *h = s->h;
    if (s->epoch != epoch || data_size != h->data_size || slot >= h->hdr->max_slots) {
        close(s->sock);
        close(s->doorbell);
        s->sock = s->doorbell = -1;
        return -ESTALE; /* a different heap answers at that path now */
    }
    h->slot = slot;
    h->slotp = (gs_slot_t *)(h->data + h->hdr->slots_off + (uint64_t)slot * h->hdr->slot_size);
    s->ring = &h->slotp->ring;
    s->sq_tail = s->cq_head = 0;
    s->pid = my_pid();
    return 0;
}

/* ---- public --------------------------------------------------------------- */

static int svc_detach(struct goshm *h)
{
    svc_seam_t *s = h->seam;
    gs_client_fini(h); /* gives every cached span back through the ring */
    int rc = s_close(s);
    pthread_mutex_lock(&all_mu);
    for (svc_seam_t **pp = &all_seams; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&all_mu);
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
    pthread_once(&atfork_once, register_atfork);
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
    uint32_t slot = 0;
    int data_fd = -1, meta_fd = -1;
    uint64_t data_size = 0;
    if (!rc) rc = do_attach(s, &slot, &data_fd, &meta_fd, &data_size);
    if (!rc) {
        rc = gs_client_map(h, data_fd, meta_fd);
        close(data_fd);
        close(meta_fd);
        if (!rc && (data_size != h->data_size || slot >= h->hdr->max_slots || h->hdr->epoch != s->epoch)) {
            gs_client_unmap(h);
            rc = -EPROTO;
        }
    }
    if (rc) goto fail;
    h->slot = slot;
    h->ops = &svc_ops;
    h->seam = s;
    h->detach = svc_detach;
    s->h = h;
    s->pid = my_pid();
    pthread_mutex_init(&s->mu, NULL);
    rc = gs_client_init(h);
    if (rc) {
        gs_client_unmap(h);
        goto fail;
    }
    s->ring = &h->slotp->ring;
    pthread_mutex_lock(&all_mu);
    s->next = all_seams;
    all_seams = s;
    pthread_mutex_unlock(&all_mu);
    return h;
fail:
    if (s->sock >= 0) close(s->sock);
    if (s->doorbell >= 0) close(s->doorbell);
    free(s);
    free(h);
    errno = -rc;
    return NULL;
}
