/* SPDX-License-Identifier: MIT */
/* ctl.c: goshmd's control plane: connections and the protocol's handlers (Attach, Detach, Stats).
 *
 * Overview: shm/overview.h; API and threading: daemon/ctl.h; the listening
 * socket and peer checks: daemon/listen.c; the Stats reply's contents:
 * daemon/ctlstats.c; messages:
 * proto/goshm.proto. One `struct event` per connection on raw descriptors
 * (bufferevents cannot carry SCM_RIGHTS). A connection is:
 *
 *   accepted -> [peer check] -> open --Attach--> attached --Detach--> closed
 *                     |           |                  |
 *                     +-- EPERM --+-- Error / EOF ---+--> closed (slot reclaimed)
 *
 * Stats, Profile and NameList are valid in both open and attached states;
 * NameSet, NameDel, ChanOpen and ChanUnlink in the attached state only, and
 * their results (EEXIST, ENOENT, ...) are replies, not Errors: the
 * connection stays (daemon/names.c). Any packet that is
 * oversized, malformed, carries descriptors or is not valid in the state is
 * answered with Error{errno, text}, logged at warn, and the connection is
 * closed. Each unpacked message is freed on every path; each descriptor we
 * receive is closed. A peer refused at accept (EPERM, too many connections)
 * gets its Error at once, but the connection stays until its first request
 * arrives (1 s at most): closing a Unix socket with unread packets resets the
 * peer before it can read the Error.
 *
 * Denial of service. A connection that is not attached is "pending": it must
 * send a request within PENDING_IDLE_MS of its accept or of its last request,
 * or it is closed. Pending connections are bounded per uid
 * (MAX_PENDING_PER_UID, except for root and the daemon's own user, who can
 * stop the daemon anyway) and in all (MAX_PENDING): a new one beyond either
 * limit evicts the oldest pending connection of that uid, or of the uid that
 * holds the most, unless its request is waiting (then it is served first),
 * so idle connections cannot lock out a newcomer that sends at once, not
 * even one of the same uid. Attached connections are bounded by the slots,
 * and per uid other than root and the daemon's by --max-clients-per-uid
 * (EDQUOT). Refusals are logged at most
 * once per uid per REFUSAL_LOG_MS, with the count of those not logged. The
 * peer check (SO_PEERCRED) comes before anything is allocated, and nothing
 * here waits for a peer: every socket is non-blocking.
 */
#define _GNU_SOURCE
#include "ctl.h"

#include <errno.h>        /* errno */
#include <inttypes.h>     /* PRIu64 */
#include <event2/event.h> /* event_new, event_add */
#include <fcntl.h>        /* open, fcntl */
#include <poll.h>         /* poll, POLLRDHUP */
#include <stdarg.h>       /* va_list */
#include <stdio.h>        /* snprintf */
#include <stdlib.h>       /* calloc, free */
#include <string.h>       /* memset, strerror */
#include <sys/mman.h>     /* memfd_create */
#include <sys/socket.h>   /* accept4, recvmsg, sendmsg */
#include <sys/stat.h>     /* fstat */
#include <unistd.h>       /* close, pread, unlink */

#include "clock.h"
#include "ctlstats.h"
#include "goshm.pb-c.h"
#include "log.h"
#include "namedir.h"     /* the names directory */
#include "profile.h"     /* gs_profile_write */
#include "profregion.h"  /* GS_PROF_DEFAULT_RATE */
#include "prom.h"        /* gs_prom_write */

#define ACCEPT_BATCH 16              /* connections accepted per wakeup */
#define ACCEPT_BACKOFF_MS 100        /* pause after EMFILE and friends */
#define MAX_SPARE_CONNS 64u          /* connections beyond max_clients (stats, pending attaches) */
#define STRAY_FDS 16                 /* descriptors a client may wrongly send us in one packet */
#define MAX_REFUSED 16               /* refused peers kept until their request arrives */
#define REFUSED_LINGER_MS 1000       /* ... or this long */
#define PENDING_IDLE_MS 2000         /* a connection not attached must send a request this often */
#define MAX_PENDING MAX_SPARE_CONNS  /* connections not attached, in all */
#define MAX_PENDING_PER_UID 8u       /* ... and per uid */
#define REFUSAL_LOG_MS 10000u        /* one refusal line per uid per this long */
#define REFUSAL_LOG_UIDS 16          /* uids whose refusals are being counted */
#define GS_STR_(x) #x
#define GS_STR(x) GS_STR_(x)

/* ---- connections ---------------------------------------------------------- */

typedef struct gs_conn {
    gs_ctl_t *ctl;
    int fd;
    struct event *ev;
    pid_t pid;              /* from SO_PEERCRED: the only pid we trust */
    uid_t uid;
    gid_t gid;
    int slot;               /* -1 until attached */
    bool refused;           /* got an Error at accept; closes on its first packet */
    uint64_t since_ns;      /* accepted at (CLOCK_MONOTONIC): eviction picks the oldest */
    struct gs_conn *next, *prev;
} gs_conn_t;

/* Refusals of one uid in the current REFUSAL_LOG_MS window. */
typedef struct refusal_log {
    uid_t uid;
    bool used;
    uint64_t window_ns;     /* start of the window */
    uint64_t suppressed;    /* refusals in it not logged */
} refusal_log_t;

struct gs_ctl {
    struct event_base *base;
    const gs_config_t *cfg;
    gs_heap_t *heap;
    pthread_mutex_t *heap_lock;
    gs_dataplane_t *dp;
    int listen_fd;
    struct event *listen_ev;
    struct event *backoff_ev;       /* re-arms accepting after EMFILE */
    int meta_ro_fd;                 /* O_RDONLY view of the meta memfd, for clients */
    uint64_t epoch;                 /* the heap's epoch (gs_meta_header_t.epoch) */
    uint64_t start_ns;              /* CLOCK_MONOTONIC at start, for uptime */
    gs_conn_t *conns;
    unsigned nconns, nattached, max_conns, nrefused;
    gs_conn_t *by_slot[GS_MAX_SLOTS];
    uint8_t *rxbuf;                 /* GS_CTL_MAX_PACKET bytes: one packet at a time */
    bool keep_slots;                /* stopping: leave slots claimed (gs_ctl_keep_slots) */
    uint32_t max_per_uid;           /* slots one uid may hold (gs_config_max_per_uid) */
    uint64_t evicted;               /* pending connections closed to make room */
    refusal_log_t rlog[REFUSAL_LOG_UIDS];
};

void gs_ctl_keep_slots(gs_ctl_t *ctl) { ctl->keep_slots = true; }

/* Log a refusal of uid's peer, unless one was logged for that uid less than
 * REFUSAL_LOG_MS ago: then count it, and say how many when the next line is
 * due. A flood of refused connects thus costs O(1) lines per interval per
 * uid (and per REFUSAL_LOG_UIDS uids at once). */
static void log_refusal(gs_ctl_t *ctl, const struct ucred *cr, const char *text)
{
    uint64_t now = gs_now_ns();
    refusal_log_t *e = NULL, *oldest = &ctl->rlog[0];
    for (unsigned i = 0; i < REFUSAL_LOG_UIDS && !e; i++) {
        refusal_log_t *r = &ctl->rlog[i];
        if (r->used && r->uid == cr->uid) e = r;
        else if (!r->used || (oldest->used && r->window_ns < oldest->window_ns)) oldest = r;
    }
    if (e && now - e->window_ns < (uint64_t)REFUSAL_LOG_MS * 1000000u) {
        e->suppressed++;
        return;
    }
    if (!e) {
        e = oldest; /* another uid's window ends early: say what it had */
        if (e->used && e->suppressed)
            gs_log_warn("uid %u: %" PRIu64 " more refused connections not logged", (unsigned)e->uid, e->suppressed);
        e->used = true;
        e->uid = cr->uid;
        e->suppressed = 0;
    }
    if (e->suppressed)
        gs_log_warn("uid %u: %" PRIu64 " more refused connections in the last %u s not logged", (unsigned)cr->uid,
                    e->suppressed, REFUSAL_LOG_MS / 1000u);
    gs_log_warn("pid %ld uid %u: %s", (long)cr->pid, (unsigned)cr->uid, text);
    e->window_ns = now;
    e->suppressed = 0;
}

unsigned gs_ctl_attached(const gs_ctl_t *ctl) { return ctl->nattached; }

/* Pack and send one Reply, with descriptors if nfds > 0. 0 or -errno. */
static int send_reply(int fd, const Goshm__Reply *rep, const int *fds, unsigned nfds)
{
    size_t len = goshm__reply__get_packed_size(rep);
    if (len > GS_CTL_MAX_PACKET) return -EMSGSIZE;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return -ENOMEM;
    goshm__reply__pack(rep, buf);
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    union {
        struct cmsghdr hdr;
        char space[CMSG_SPACE(sizeof(int) * 4)];
    } cbuf;
    if (nfds) {
        memset(&cbuf, 0, sizeof cbuf);
        mh.msg_control = cbuf.space;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    ssize_t n;
    do {
        /* Never block the loop on a client that does not read its replies:
         * a full socket buffer is that client's error. */
        n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    int e = errno;
    free(buf);
    if (n < 0) return -e;
    return (size_t)n == len ? 0 : -EMSGSIZE;
}

/* The one Error reply: Error{code, text}. 0 or -errno. */
static int send_error(int fd, int code, const char *text)
{
    Goshm__Error er = GOSHM__ERROR__INIT;
    er.code = code;
    er.message = (char *)text;
    Goshm__Reply rep = GOSHM__REPLY__INIT;
    rep.msg_case = GOSHM__REPLY__MSG_ERROR;
    rep.error = &er;
    return send_reply(fd, &rep, NULL, 0);
}

/* The client's slot goes back to the heap: the data plane lets go of it
 * first (abandoning large objects the client never read), then the heap
 * returns its cached spans (daemon/slot.c). */
static void conn_detach(gs_conn_t *c, const char *how)
{
    if (c->slot < 0) return;
    gs_ctl_t *ctl = c->ctl;
    uint32_t slot = (uint32_t)c->slot;
    if (ctl->keep_slots) {
        /* The heap outlives us: the slot and its spans stay the client's,
         * for it to resume under the next daemon (daemon/adopt.c). */
        gs_dp_forget_slot(ctl->dp, slot);
        gs_log_info("client pid %ld slot %u kept for the next daemon", (long)c->pid, slot);
    } else {
        gs_dp_remove_slot(ctl->dp, slot);
        pthread_mutex_lock(ctl->heap_lock);
        int rc = gs_heap_slot_reclaim(ctl->heap, slot);
        pthread_mutex_unlock(ctl->heap_lock);
        if (rc < 0) gs_log_error("reclaiming slot %u of pid %ld: %s", slot, (long)c->pid, strerror(-rc));
        gs_log_info("client pid %ld slot %u %s", (long)c->pid, slot, how);
    }
    ctl->by_slot[slot] = NULL;
    ctl->nattached--;
    c->slot = -1;
}

static void conn_close(gs_conn_t *c, const char *how)
{
    gs_ctl_t *ctl = c->ctl;
    if (c->slot >= 0)
        conn_detach(c, how);
    else
        gs_log_debug("connection from pid %ld %s", (long)c->pid, how);
    if (c->ev) event_free(c->ev);
    close(c->fd);
    if (c->prev) c->prev->next = c->next; else ctl->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    if (c->refused)
        ctl->nrefused--;
    else
        ctl->nconns--;
    free(c);
}

/* Reply with an Error, log why at warn, drop the connection (and its slot). */
static void conn_fail(gs_conn_t *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void conn_fail(gs_conn_t *c, int code, const char *fmt, ...)
{
    char text[256]; /* vsnprintf truncates: the client gets the gist */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    gs_log_warn("pid %ld uid %u: %s (%s); closing the connection", (long)c->pid, (unsigned)c->uid, text,
                strerrorname_np(code) ? strerrorname_np(code) : "?");
    int rc = send_error(c->fd, code, text);
    if (rc) gs_log_debug("pid %ld: could not send error: %s", (long)c->pid, strerror(-rc));
    conn_close(c, "gone after an error");
}

/* root and the daemon's own user: they can stop or write the daemon
 * anyway, so the per-uid shares do not apply to them. */
static bool uid_trusted(uid_t uid) { return uid == 0 || uid == geteuid(); }

/* A request refused for want of room (slots, the uid's share): logged at
 * most once per uid per interval (a retry loop must not flood the log),
 * answered, closed. */
static void refuse_conn(gs_conn_t *c, int code, const char *text)
{
    struct ucred cr = {.pid = c->pid, .uid = c->uid, .gid = c->gid};
    log_refusal(c->ctl, &cr, text);
    int rc = send_error(c->fd, code, text);
    if (rc) gs_log_debug("pid %ld: could not send error: %s", (long)c->pid, strerror(-rc));
    conn_close(c, "refused");
}

/* ---- requests ------------------------------------------------------------- */

/* Returns true if the connection is still open. */
static bool handle_attach(gs_conn_t *c, const Goshm__Attach *a)
{
    gs_ctl_t *ctl = c->ctl;
    if (c->slot >= 0) {
        conn_fail(c, EALREADY, "already attached (slot %d)", c->slot);
        return false;
    }
    if (a->abi_version != GS_ABI_VERSION) {
        conn_fail(c, EPROTO, "ABI version mismatch: client speaks %u, daemon speaks %u", a->abi_version,
                  GS_ABI_VERSION);
        return false;
    }
    unsigned held = 0;
    for (uint32_t i = 0; i < GS_MAX_SLOTS; i++) held += ctl->by_slot[i] && ctl->by_slot[i]->uid == c->uid;
    if (!uid_trusted(c->uid) && held >= ctl->max_per_uid) {
        char text[128];
        snprintf(text, sizeof text, "uid %u has %u clients attached already (--max-clients-per-uid %u)",
                 (unsigned)c->uid, held, ctl->max_per_uid);
        refuse_conn(c, EDQUOT, text);
        return false;
    }
    pthread_mutex_lock(ctl->heap_lock);
    uint64_t heap_id = gs_heap_id(ctl->heap);
    bool resumed = false;
    int slot;
    if (a->resume_slot) {
        /* A client of the previous daemon: its slot back, or nothing (its
         * mcaches still hold that slot's spans: a fresh slot would not do). */
        slot = a->resume_heap_id == heap_id ? (int)a->resume_slot - 1 : -1;
        int rc = slot >= 0 ? gs_heap_slot_resume(ctl->heap, (uint32_t)slot, (uint32_t)c->pid, a->resume_last_tag) : -ESRCH;
        if (!rc) {
            /* Quotas: its uid, and the spans it holds charged to it again. */
            gs_heap_slot_set_uid(ctl->heap, (uint32_t)slot, (uint32_t)c->uid);
            gs_heap_slot_recharge(ctl->heap, (uint32_t)slot);
        }
        pthread_mutex_unlock(ctl->heap_lock);
        if (rc) {
            conn_fail(c, ESRCH, "cannot resume slot %u of heap %016llx: %s", a->resume_slot - 1u,
                      (unsigned long long)a->resume_heap_id,
                      a->resume_heap_id != heap_id ? "this is another heap" : "not held by this process");
            return false;
        }
        resumed = true;
    } else {
        slot = gs_heap_slot_claim(ctl->heap, (uint32_t)c->pid);
        if (slot >= 0) gs_heap_slot_set_uid(ctl->heap, (uint32_t)slot, (uint32_t)c->uid); /* quotas */
        pthread_mutex_unlock(ctl->heap_lock);
    }
    if (slot == -ENOSPC) {
        char text[96];
        snprintf(text, sizeof text, "too many clients (max %u)", ctl->cfg->max_clients);
        refuse_conn(c, ENOSPC, text);
        return false;
    }
    if (slot < 0) {
        conn_fail(c, -slot, "cannot claim a client slot: %s", strerror(-slot));
        return false;
    }
    int efd = -1;
    int rc = gs_dp_add_slot(ctl->dp, (uint32_t)slot, &efd);
    if (rc < 0) {
        pthread_mutex_lock(ctl->heap_lock);
        gs_heap_slot_reclaim(ctl->heap, (uint32_t)slot);
        pthread_mutex_unlock(ctl->heap_lock);
        conn_fail(c, -rc, "cannot serve slot %d: %s", slot, strerror(-rc));
        return false;
    }
    c->slot = slot;
    ctl->by_slot[slot] = c;
    ctl->nattached++;
    /* Attached: no more deadline (its slot bounds it, and a client may
     * rightly stay silent for hours). */
    event_del(c->ev);
    event_add(c->ev, NULL);

    Goshm__AttachReply ar = GOSHM__ATTACH_REPLY__INIT;
    ar.abi_version = GS_ABI_VERSION;
    ar.slot = (uint32_t)slot;
    ar.data_size = gs_heap_data_size(ctl->heap);
    ar.meta_size = gs_heap_meta_size(ctl->heap);
    ar.epoch = ctl->epoch;
    ar.heap_id = heap_id;
    ar.resumed = resumed;
    ar.slot_size = GS_SLOT_MAP_SIZE;
    ar.max_slots = gs_heap_max_slots(ctl->heap);
    Goshm__Reply rep = GOSHM__REPLY__INIT;
    rep.msg_case = GOSHM__REPLY__MSG_ATTACH;
    rep.attach = &ar;
    /* The slot's memfd goes to this client only (issue 7, point 4). The heap
     * keeps its own descriptor until it reclaims the slot. Claimed by us, so
     * reading its descriptor without the heap lock is safe: only this thread
     * claims and reclaims slots. */
    int fds[4] = {gs_heap_data_fd(ctl->heap), ctl->meta_ro_fd, efd, gs_heap_slot_fd(ctl->heap, (uint32_t)slot)};
    rc = send_reply(c->fd, &rep, fds, 4);
    close(efd); /* the data plane keeps its own copy */
    if (rc < 0) {
        gs_log_warn("pid %ld: sending the attach reply failed: %s", (long)c->pid, strerror(-rc));
        conn_close(c, "gone before attaching");
        return false;
    }
    if (resumed)
        gs_log_info("client pid %ld uid %u resumed slot %d", (long)c->pid, (unsigned)c->uid, slot);
    else if (a->pid != (uint32_t)c->pid)
        gs_log_info("client pid %ld (says pid %u) uid %u attached: slot %d", (long)c->pid, a->pid,
                    (unsigned)c->uid, slot);
    else
        gs_log_info("client pid %ld uid %u attached: slot %d", (long)c->pid, (unsigned)c->uid, slot);
    return true;
}

static bool handle_detach(gs_conn_t *c)
{
    if (c->slot < 0) {
        conn_fail(c, EINVAL, "detach without attach");
        return false;
    }
    conn_detach(c, "detached");
    Goshm__DetachReply dr = GOSHM__DETACH_REPLY__INIT;
    Goshm__Reply rep = GOSHM__REPLY__INIT;
    rep.msg_case = GOSHM__REPLY__MSG_DETACH;
    rep.detach = &dr;
    int rc = send_reply(c->fd, &rep, NULL, 0);
    if (rc < 0) gs_log_debug("pid %ld: sending the detach reply failed: %s", (long)c->pid, strerror(-rc));
    conn_close(c, "closed after detaching");
    return false;
}

/* The Stats reply of the heap now (daemon/ctlstats.h). */
static Goshm__Reply *stats_reply(gs_ctl_t *ctl)
{
    int64_t pid_of[GS_MAX_SLOTS];
    for (uint32_t i = 0; i < GS_MAX_SLOTS; i++) pid_of[i] = ctl->by_slot[i] ? (int64_t)ctl->by_slot[i]->pid : -1;
    return gs_ctl_stats_reply(ctl->heap, ctl->heap_lock, ctl->dp, pid_of, ctl->nattached,
                              (gs_now_ns() - ctl->start_ns) / 1000000u);
}

int gs_ctl_write_metrics(void *arg, FILE *f)
{
    Goshm__Reply *rep = stats_reply(arg);
    if (!rep) return -1;
    int rc = gs_prom_write(f, rep->stats);
    gs_ctl_stats_free(rep);
    return rc;
}

static bool handle_stats(gs_conn_t *c)
{
    Goshm__Reply *rep = stats_reply(c->ctl);
    if (!rep) {
        conn_fail(c, ENOMEM, "out of memory building statistics");
        return false;
    }
    int rc = send_reply(c->fd, rep, NULL, 0);
    gs_ctl_stats_free(rep);
    if (rc < 0) {
        gs_log_warn("pid %ld: sending statistics failed: %s", (long)c->pid, strerror(-rc));
        conn_close(c, "gone while reading statistics");
        return false;
    }
    return true;
}

/* The heap-wide profile (daemon/profile.h), written into a memfd whose
 * descriptor goes with the reply: a profile does not fit a 64 KiB packet.
 * The region is read without heap_lock: clients write it without any. */
static bool handle_profile(gs_conn_t *c)
{
    gs_ctl_t *ctl = c->ctl;
    int fd = memfd_create("goshm-profile", MFD_CLOEXEC);
    if (fd < 0) {
        conn_fail(c, errno, "memfd for the profile: %s", strerror(errno));
        return false;
    }
    char err[256];
    gs_profile_totals_t tot;
    int rc = gs_profile_write(gs_heap_prof_region(ctl->heap), GS_PROF_DEFAULT_RATE, fd, &tot, err, sizeof err);
    if (rc < 0) {
        close(fd);
        conn_fail(c, -rc, "%s", err);
        return false;
    }
    struct stat sb;
    Goshm__ProfileReply pr = GOSHM__PROFILE_REPLY__INIT;
    pr.bytes = fstat(fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    pr.stacks = tot.stacks;
    pr.live_samples = tot.samples_live;
    pr.samples = tot.sampled;
    pr.dropped = tot.dropped;
    Goshm__Reply rep = GOSHM__REPLY__INIT;
    rep.msg_case = GOSHM__REPLY__MSG_PROFILE;
    rep.profile = &pr;
    rc = send_reply(c->fd, &rep, &fd, 1);
    close(fd);
    if (rc < 0) {
        gs_log_warn("pid %ld: sending the profile failed: %s", (long)c->pid, strerror(-rc));
        conn_close(c, "gone while reading the profile");
        return false;
    }
    gs_log_debug("profile: %llu bytes, %llu stacks, %llu live samples, for pid %ld", (unsigned long long)pr.bytes,
                 (unsigned long long)pr.stacks, (unsigned long long)pr.live_samples, (long)c->pid);
    return true;
}

/* ---- the names directory (daemon/names.c) ---------------------------------- */

/* A directory request from a connection that is not attached: refused (the
 * directory's users are the heap's clients; goshmctl only lists). */
static bool names_attached(gs_conn_t *c)
{
    if (c->slot >= 0) return true;
    conn_fail(c, EPERM, "the names directory needs an attached client");
    return false;
}

/* Answer NameReply{code}; false if the connection went (closed here). */
static bool send_name_reply(gs_conn_t *c, int code)
{
    Goshm__NameReply nr = GOSHM__NAME_REPLY__INIT;
    nr.code = code;
    Goshm__Reply rep = GOSHM__REPLY__INIT;
    rep.msg_case = GOSHM__REPLY__MSG_NAME;
    rep.name = &nr;
    int rc = send_reply(c->fd, &rep, NULL, 0);
    if (rc < 0) {
        gs_log_warn("pid %ld: sending a directory reply failed: %s", (long)c->pid, strerror(-rc));
        conn_close(c, "gone while reading a directory reply");
        return false;
    }
    return true;
}

static bool handle_name_set(gs_conn_t *c, const Goshm__NameSet *m)
{
    if (!names_attached(c)) return false;
    gs_ctl_t *ctl = c->ctl;
    pthread_mutex_lock(ctl->heap_lock);
    int rc = gs_heap_name_set(ctl->heap, (uint32_t)c->uid, (const char *)m->name.data, m->name.len, m->off);
    pthread_mutex_unlock(ctl->heap_lock);
    if (rc == -EINVAL) gs_log_debug("pid %ld: NameSet with a bad name or offset", (long)c->pid);
    return send_name_reply(c, -rc);
}

static bool handle_name_del(gs_conn_t *c, const Goshm__NameDel *m)
{
    if (!names_attached(c)) return false;
    gs_ctl_t *ctl = c->ctl;
    pthread_mutex_lock(ctl->heap_lock);
    int rc = gs_heap_name_del(ctl->heap, (const char *)m->name.data, m->name.len);
    pthread_mutex_unlock(ctl->heap_lock);
    return send_name_reply(c, -rc);
}

static bool handle_chan_unlink(gs_conn_t *c, const Goshm__ChanUnlink *m)
{
    if (!names_attached(c)) return false;
    gs_ctl_t *ctl = c->ctl;
    pthread_mutex_lock(ctl->heap_lock);
    int rc = gs_heap_chan_unlink(ctl->heap, (const char *)m->name.data, m->name.len);
    pthread_mutex_unlock(ctl->heap_lock);
    return send_name_reply(c, -rc);
}

static bool handle_chan_open(gs_conn_t *c, const Goshm__ChanOpen *m)
{
    if (!names_attached(c)) return false;
    gs_ctl_t *ctl = c->ctl;
    Goshm__ChanOpenReply cr = GOSHM__CHAN_OPEN_REPLY__INIT;
    uint64_t off = 0, id = 0;
    uint32_t cap = 0;
    bool created = false;
    int efd = -1, dup_fd = -1;
    pthread_mutex_lock(ctl->heap_lock);
    int rc = gs_heap_chan_open(ctl->heap, (uint32_t)c->uid, (const char *)m->name.data, m->name.len, m->capacity,
                               m->create_off, m->create_id, &off, &id, &cap, &created, &efd);
    /* Our own copy to send: the heap side keeps its descriptor (an unlink
     * may close it as soon as the lock is free). */
    if (!rc && (dup_fd = fcntl(efd, F_DUPFD_CLOEXEC, 0)) < 0) rc = -errno;
    pthread_mutex_unlock(ctl->heap_lock);
    cr.code = -rc;
    if (!rc) {
        cr.off = off;
        cr.id = id;
        cr.cap = cap;
        cr.created = created;
    }
    Goshm__Reply rep = GOSHM__REPLY__INIT;
    rep.msg_case = GOSHM__REPLY__MSG_CHAN_OPEN;
    rep.chan_open = &cr;
    int src = send_reply(c->fd, &rep, &dup_fd, dup_fd >= 0 ? 1 : 0);
    if (dup_fd >= 0) close(dup_fd);
    if (src < 0) {
        gs_log_warn("pid %ld: sending a ChanOpen reply failed: %s", (long)c->pid, strerror(-src));
        conn_close(c, "gone while reading a ChanOpen reply");
        return false;
    }
    return true;
}

#define NAME_LIST_MAX 256u /* entries per NameListReply: ~100 bytes each, well inside a packet */

static bool handle_name_list(gs_conn_t *c, const Goshm__NameList *m)
{
    gs_ctl_t *ctl = c->ctl;
    gs_dirent_t *ents = malloc(NAME_LIST_MAX * sizeof *ents);
    Goshm__NameEntry *pe = calloc(NAME_LIST_MAX, sizeof *pe);
    Goshm__NameEntry **pp = calloc(NAME_LIST_MAX, sizeof *pp);
    char (*names)[64] = calloc(NAME_LIST_MAX, 64);
    if (!ents || !pe || !pp || !names) {
        free(ents); free(pe); free(pp); free(names);
        conn_fail(c, ENOMEM, "out of memory listing names");
        return false;
    }
    uint32_t n = 0, next = 0, live = 0;
    if (m->cursor < GS_DIR_CAP) {
        pthread_mutex_lock(ctl->heap_lock);
        next = gs_heap_names_list(ctl->heap, m->cursor, ents, NAME_LIST_MAX, &n);
        live = gs_heap_names_live(ctl->heap);
        pthread_mutex_unlock(ctl->heap_lock);
    }
    for (uint32_t i = 0; i < n; i++) {
        goshm__name_entry__init(&pe[i]);
        uint32_t len = ents[i].len < GS_NAME_MAX ? ents[i].len : GS_NAME_MAX;
        memcpy(names[i], ents[i].name, len);
        names[i][len] = '\0';
        pe[i].kind = ents[i].kind;
        pe[i].name = names[i];
        pe[i].off = ents[i].off;
        pe[i].id = ents[i].id;
        pe[i].cap = ents[i].cap;
        pe[i].uid = ents[i].uid;
        pp[i] = &pe[i];
    }
    Goshm__NameListReply lr = GOSHM__NAME_LIST_REPLY__INIT;
    lr.n_entries = n;
    lr.entries = pp;
    lr.next_cursor = next;
    lr.live = live;
    Goshm__Reply rep = GOSHM__REPLY__INIT;
    rep.msg_case = GOSHM__REPLY__MSG_NAME_LIST;
    rep.name_list = &lr;
    int rc = send_reply(c->fd, &rep, NULL, 0);
    free(ents); free(pe); free(pp); free(names);
    if (rc < 0) {
        gs_log_warn("pid %ld: sending the names failed: %s", (long)c->pid, strerror(-rc));
        conn_close(c, "gone while reading the names");
        return false;
    }
    return true;
}

/* Close every descriptor a received message carried; returns how many. */
static unsigned close_passed_fds(struct msghdr *mh)
{
    unsigned n = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int sfd;
            memcpy(&sfd, CMSG_DATA(cm) + i * sizeof(int), sizeof sfd);
            close(sfd);
            n++;
        }
    }
    return n;
}

/* 1: the peer hung up; 0: it is still there (so a 0-byte read was an empty
 * packet). */
static int peer_hung_up(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) < 0) return 1;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static void on_conn_readable(evutil_socket_t fd, short what, void *arg)
{
    gs_conn_t *c = arg;
    gs_ctl_t *ctl = c->ctl;
    if ((what & EV_TIMEOUT) && !(what & EV_READ)) {
        /* Only pending connections have a deadline. libevent keeps a
         * persistent event's timeout across event_add(ev, NULL) (the
         * attach's re-add) and re-arms it at the next read, so an attached
         * client that sends a request (ChanOpen, NameSet) and then stays
         * quiet would be closed 2 s later, its slot reclaimed under it: a
         * timeout of an attached connection is ignored. */
        if (c->slot >= 0) return;
        conn_close(c, "closed: no request within " GS_STR(PENDING_IDLE_MS) " ms");
        return;
    }
    struct iovec iov = {.iov_base = ctl->rxbuf, .iov_len = GS_CTL_MAX_PACKET};
    union {
        struct cmsghdr hdr;
        char space[CMSG_SPACE(sizeof(int) * STRAY_FDS)];
    } cbuf;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.space, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(fd, &mh, MSG_TRUNC | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        if (errno == ECONNRESET)
            conn_close(c, "gone");
        else {
            gs_log_warn("pid %ld: recv: %s", (long)c->pid, strerror(errno));
            conn_close(c, "gone after a receive error");
        }
        return;
    }
    /* Descriptors are never part of a request: close any we were sent. */
    unsigned stray = close_passed_fds(&mh);
    if (stray || (mh.msg_flags & MSG_CTRUNC)) {
        conn_fail(c, EPROTO, "requests carry no file descriptors (got %u)", stray);
        return;
    }
    if (n == 0) {
        if (peer_hung_up(fd))
            conn_close(c, "gone");
        else
            conn_fail(c, EINVAL, "empty packet");
        return;
    }
    if ((size_t)n > GS_CTL_MAX_PACKET || (mh.msg_flags & MSG_TRUNC)) {
        conn_fail(c, EMSGSIZE, "packet of %zd bytes (at most %u)", n, GS_CTL_MAX_PACKET);
        return;
    }
    Goshm__Request *req = goshm__request__unpack(NULL, (size_t)n, ctl->rxbuf);
    if (!req) {
        conn_fail(c, EPROTO, "malformed request (%zd bytes)", n);
        return;
    }
    switch (req->msg_case) {
    case GOSHM__REQUEST__MSG_ATTACH:
        handle_attach(c, req->attach);
        break;
    case GOSHM__REQUEST__MSG_DETACH:
        handle_detach(c);
        break;
    case GOSHM__REQUEST__MSG_STATS:
        handle_stats(c);
        break;
    case GOSHM__REQUEST__MSG_PROFILE:
        handle_profile(c);
        break;
    case GOSHM__REQUEST__MSG_NAME_SET:
        handle_name_set(c, req->name_set);
        break;
    case GOSHM__REQUEST__MSG_NAME_DEL:
        handle_name_del(c, req->name_del);
        break;
    case GOSHM__REQUEST__MSG_CHAN_OPEN:
        handle_chan_open(c, req->chan_open);
        break;
    case GOSHM__REQUEST__MSG_CHAN_UNLINK:
        handle_chan_unlink(c, req->chan_unlink);
        break;
    case GOSHM__REQUEST__MSG_NAME_LIST:
        handle_name_list(c, req->name_list);
        break;
    default:
        conn_fail(c, EINVAL, "request without a message");
        break;
    }
    goshm__request__free_unpacked(req, NULL);
}

/* ---- accepting ------------------------------------------------------------ */

/* A refused peer's request arrived (or it waited too long): read and drop
 * what it sent, then close. Closing a Unix socket with unread packets would
 * reset the peer's connection before it reads our Error. */
static void on_refused_readable(evutil_socket_t fd, short what, void *arg)
{
    gs_conn_t *c = arg;
    for (int i = 0; i < 64; i++) {
        struct iovec iov = {.iov_base = c->ctl->rxbuf, .iov_len = GS_CTL_MAX_PACKET};
        union {
            struct cmsghdr hdr;
            char space[CMSG_SPACE(sizeof(int) * STRAY_FDS)];
        } cbuf;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.space,
                            .msg_controllen = sizeof cbuf};
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) break;
        close_passed_fds(&mh);
        if (n == 0 && peer_hung_up(fd)) break;
    }
    conn_close(c, "refused");
}

/* The one connection set-up: a connection watched for requests (or, when
 * refused, for its first packet, at most *linger). NULL if out of memory;
 * fd is then still the caller's. */
static gs_conn_t *conn_new(gs_ctl_t *ctl, int fd, const struct ucred *cr, bool refused, const struct timeval *linger)
{
    gs_conn_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->ev = refused ? event_new(ctl->base, fd, EV_READ, on_refused_readable, c)
                    : event_new(ctl->base, fd, EV_READ | EV_PERSIST, on_conn_readable, c);
    if (!c->ev || event_add(c->ev, linger) != 0) {
        if (c->ev) event_free(c->ev);
        free(c);
        return NULL;
    }
    c->ctl = ctl;
    c->fd = fd;
    c->since_ns = gs_now_ns();
    c->pid = cr->pid;
    c->uid = cr->uid;
    c->gid = cr->gid;
    c->slot = -1;
    c->refused = refused;
    c->next = ctl->conns;
    if (ctl->conns) ctl->conns->prev = c;
    ctl->conns = c;
    if (refused)
        ctl->nrefused++;
    else
        ctl->nconns++;
    return c;
}

/* Answer Error{code, text} at once, and close the connection when the peer's
 * first request arrives (see on_refused_readable), after REFUSED_LINGER_MS at
 * the latest. Beyond MAX_REFUSED such peers, close at once. */
static void refuse(gs_ctl_t *ctl, int fd, const struct ucred *cr, int code, const char *text)
{
    if (send_error(fd, code, text) != 0 || ctl->nrefused >= MAX_REFUSED) {
        close(fd);
        return;
    }
    struct timeval tv = {REFUSED_LINGER_MS / 1000, (REFUSED_LINGER_MS % 1000) * 1000};
    if (!conn_new(ctl, fd, cr, true, &tv)) close(fd);
}

static gs_conn_t *room_victim(gs_ctl_t *ctl, uid_t uid);

/* Before a new pending connection of `uid`: if that uid has
 * MAX_PENDING_PER_UID pending already, close its oldest; if MAX_PENDING are
 * pending in all, close the oldest of the uid that has the most. A client
 * that sends its request at once is served before it could be evicted. */
static void make_room(gs_ctl_t *ctl, uid_t uid)
{
    for (int tries = 0; tries < 4; tries++) {
        gs_conn_t *v = room_victim(ctl, uid);
        if (!v) return;
        /* Its request may be waiting, unread (a burst of connects is
         * accepted before their requests are read): serve it first. */
        struct pollfd p = {.fd = v->fd, .events = POLLIN};
        if (poll(&p, 1, 0) > 0) {
            on_conn_readable(v->fd, EV_READ, v); /* may close it, or attach it */
            continue;
        }
        ctl->evicted++;
        struct ucred cr = {.pid = v->pid, .uid = v->uid, .gid = v->gid};
        log_refusal(ctl, &cr, "pending connection closed to make room (too many connections without a request)");
        conn_close(v, "evicted");
    }
}

static gs_conn_t *room_victim(gs_ctl_t *ctl, uid_t uid)
{
    unsigned pending = 0, mine = 0;
    gs_conn_t *my_oldest = NULL;
    for (gs_conn_t *c = ctl->conns; c; c = c->next) {
        if (c->refused || c->slot >= 0) continue;
        pending++;
        if (c->uid == uid) {
            mine++;
            if (!my_oldest || c->since_ns < my_oldest->since_ns) my_oldest = c;
        }
    }
    gs_conn_t *victim = NULL;
    if (mine >= MAX_PENDING_PER_UID && !uid_trusted(uid)) {
        victim = my_oldest;
    } else if (pending >= MAX_PENDING) {
        /* The uid holding the most pending connections loses its oldest:
         * count per uid (at most MAX_PENDING distinct). */
        uid_t uids[MAX_PENDING];
        unsigned counts[MAX_PENDING], nu = 0, best = 0;
        for (gs_conn_t *c = ctl->conns; c; c = c->next) {
            if (c->refused || c->slot >= 0) continue;
            unsigned k = 0;
            while (k < nu && uids[k] != c->uid) k++;
            if (k == nu) {
                if (nu == MAX_PENDING) continue;
                uids[nu] = c->uid;
                counts[nu++] = 0;
            }
            counts[k]++;
        }
        for (unsigned k = 1; k < nu; k++)
            if (counts[k] > counts[best]) best = k;
        for (gs_conn_t *c = ctl->conns; c && nu; c = c->next)
            if (!c->refused && c->slot < 0 && c->uid == uids[best] && (!victim || c->since_ns < victim->since_ns))
                victim = c;
    }
    return victim;
}

static void accept_one(gs_ctl_t *ctl, int fd)
{
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
        gs_log_warn("SO_PEERCRED: %s; closing the connection", strerror(errno));
        close(fd);
        return;
    }
    if (!gs_peer_allowed(ctl->cfg, fd, &cr)) {
        char text[64];
        snprintf(text, sizeof text, "uid %u not allowed", (unsigned)cr.uid);
        log_refusal(ctl, &cr, "not allowed (see --allow-uid, --allow-gid)");
        refuse(ctl, fd, &cr, EPERM, text);
        return;
    }
    make_room(ctl, cr.uid);
    if (ctl->nconns >= ctl->max_conns) { /* cannot happen: attached + MAX_PENDING */
        char text[96];
        snprintf(text, sizeof text, "too many connections (max %u); try again later", ctl->max_conns);
        log_refusal(ctl, &cr, text);
        refuse(ctl, fd, &cr, EAGAIN, text);
        return;
    }
    struct timeval idle = {PENDING_IDLE_MS / 1000, (PENDING_IDLE_MS % 1000) * 1000};
    if (!conn_new(ctl, fd, &cr, false, &idle)) {
        gs_log_warn("pid %ld: out of memory for a connection", (long)cr.pid);
        refuse(ctl, fd, &cr, ENOMEM, "out of memory");
        return;
    }
    gs_log_debug("connection from pid %ld uid %u", (long)cr.pid, (unsigned)cr.uid);
}

static void on_backoff(evutil_socket_t fd, short what, void *arg)
{
    gs_ctl_t *ctl = arg;
    event_add(ctl->listen_ev, NULL);
}

static void on_listen_readable(evutil_socket_t lfd, short what, void *arg)
{
    gs_ctl_t *ctl = arg;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            accept_one(ctl, fd);
            continue;
        }
        switch (errno) {
        case EAGAIN:
            return;
        case EINTR: case ECONNABORTED: case EPROTO:
            continue;
        case EMFILE: case ENFILE: case ENOBUFS: case ENOMEM: {
            /* Level-triggered: without a pause the loop would spin. */
            gs_log_warn("accept: %s; pausing for %d ms", strerror(errno), ACCEPT_BACKOFF_MS);
            event_del(ctl->listen_ev);
            struct timeval tv = {0, ACCEPT_BACKOFF_MS * 1000};
            event_add(ctl->backoff_ev, &tv);
            return;
        }
        default:
            gs_log_error("accept: %s", strerror(errno));
            return;
        }
    }
}

/* ---- lifetime ------------------------------------------------------------- */

gs_ctl_t *gs_ctl_start(struct event_base *base, int listen_fd, const gs_config_t *cfg, gs_heap_t *heap,
                       pthread_mutex_t *heap_lock, gs_dataplane_t *dp, char *err, size_t errlen)
{
    gs_ctl_t *ctl = calloc(1, sizeof *ctl);
    if (!ctl) { snprintf(err, errlen, "out of memory"); return NULL; }
    ctl->base = base;
    ctl->cfg = cfg;
    ctl->heap = heap;
    ctl->heap_lock = heap_lock;
    ctl->dp = dp;
    ctl->listen_fd = listen_fd;
    ctl->meta_ro_fd = -1;
    ctl->start_ns = gs_now_ns();
    ctl->max_conns = cfg->max_clients + MAX_SPARE_CONNS;
    ctl->max_per_uid = gs_config_max_per_uid(cfg);
    ctl->rxbuf = malloc(GS_CTL_MAX_PACKET);
    if (!ctl->rxbuf) { snprintf(err, errlen, "out of memory"); goto fail; }

    /* Clients get the meta memfd read-only: a descriptor opened O_RDONLY
     * cannot be upgraded to a writable mapping (shm/overview.h, "Who owns what"). */
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", gs_heap_meta_fd(heap));
    ctl->meta_ro_fd = open(proc, O_RDONLY | O_CLOEXEC);
    if (ctl->meta_ro_fd < 0) {
        snprintf(err, errlen, "cannot reopen the meta memfd read-only via %s: %s", proc, strerror(errno));
        goto fail;
    }
    ctl->epoch = gs_heap_epoch(heap); /* ours, never read back from shared memory */
    ctl->listen_ev = event_new(base, listen_fd, EV_READ | EV_PERSIST, on_listen_readable, ctl);
    ctl->backoff_ev = evtimer_new(base, on_backoff, ctl);
    if (!ctl->listen_ev || !ctl->backoff_ev || event_add(ctl->listen_ev, NULL) != 0) {
        snprintf(err, errlen, "libevent: cannot watch the listening socket");
        goto fail;
    }
    return ctl;
fail:
    gs_ctl_stop(ctl);
    return NULL;
}

void gs_ctl_stop(gs_ctl_t *ctl)
{
    if (!ctl) return;
    if (ctl->listen_ev) event_free(ctl->listen_ev);
    if (ctl->backoff_ev) event_free(ctl->backoff_ev);
    while (ctl->conns) conn_close(ctl->conns, "dropped at shutdown");
    if (ctl->meta_ro_fd >= 0) close(ctl->meta_ro_fd);
    free(ctl->rxbuf);
    free(ctl);
}
