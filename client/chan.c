/* SPDX-License-Identifier: MIT */
/* chan.c: channels on the client side: open, send, recv (blocking with futexes), the pollable descriptor, close, unlink.
 *
 * Overview: shm/overview.h; the queue: shm/chan.h; buffers and the intent
 * record: shm/buf.h, client/buf.c; the registry: client/name.c (ChanOpen,
 * ChanUnlink) and daemon/names.c.
 *
 * A send or receive is one step under the process's buffer mutex (one
 * intent at a time), crash-exact with the heap side's repair
 * (daemon/bufref.c):
 *   send: intent {SEND, chan, off, before = my record's count of off}; claim
 *         a cell (intent.pos written before the claim CAS); message word;
 *         if it carries my reference: my record -1; FULL; intent none.
 *         A dead sender's cell (WRITING, its slot) is published by the heap
 *         side with the intent's message, and the record's count tells
 *         whether the reference already left the record.
 *   recv: room in my records; intent {RECV, chan}; claim a FULL cell
 *         (intent.pos before the CAS); intent.before, intent.msg; my record
 *         +1 (if the message carries a reference); EMPTY; intent none.
 *         A dead receiver's cell (READING, its slot) is emptied by the heap
 *         side, which drops the message's reference unless the record has
 *         it already.
 * Between attempts the mutex is dropped and the caller sleeps on the
 * channel's futex word (receivers: xposted, senders: xtaken), announced
 * in xrwait / xswait.
 */
#define _GNU_SOURCE
#include "client.h"

#include <errno.h>  /* errno */
#include <poll.h>   /* poll */
#include <stdlib.h> /* calloc, free */
#include <stdio.h>  /* snprintf */
#include <string.h> /* strlen */
#include <unistd.h> /* read, write, close */
#include <fcntl.h>  /* fcntl */

#include "buf.h"
#include "chan.h"
#include "clock.h"
#include "futex.h"
#include "names.h" /* gs_name_valid */

struct goshm_chan {
    struct goshm *h;
    gs_chan_t *c;      /* payload of the channel's buffer */
    uint64_t off, id;  /* its payload offset and buffer id */
    uint32_t cap;      /* our own copy, checked against the object's size */
    int efd;           /* the channel's eventfd (from goshmd), -1 if none */
    bool fd_used;      /* goshm_chan_fd was called: xfdwait counts us */
    char name[64];     /* its name ("": opened by offset) */
    uint32_t gen;      /* h->reconnects when efd was got */
};

/* After a daemon restart the adopter has new eventfds: senders that
 * attached after it signal those. Get ours again (ChanOpen of the same
 * channel) and put it on the same descriptor number (dup3). A poller must
 * redo its epoll registration (the old file description is gone). */
static void refresh_fd(goshm_chan_t *ch)
{
    struct goshm *h = ch->h;
    uint32_t gen = atomic_load(&h->reconnects);
    if (gs_likely(gen == ch->gen) || ch->efd < 0 || !ch->name[0]) return;
    ch->gen = gen;
    uint64_t off = 0, id = 0;
    uint32_t cap = 0;
    int efd = -1;
    if (gs_ctl_chan_open(h, ch->name, ch->cap, 0, 0, &off, &id, &cap, &efd) != 0) return;
    if (off == ch->off && id == ch->id && efd >= 0 && dup3(efd, ch->efd, O_CLOEXEC) >= 0) {
        int fl = fcntl(ch->efd, F_GETFL);
        if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(ch->efd, F_SETFL, fl | O_NONBLOCK);
        if (ch->fd_used && gs_chan_ready(ch->c, ch->cap)) {
            uint64_t one = 1;
            ssize_t n = write(ch->efd, &one, sizeof one);
            (void)n;
        }
    }
    if (efd >= 0) close(efd);
}

static inline uint32_t me(const struct goshm *h) { return h->slot + 1u; }

/* The channel buffer at payload offset off with this id and capacity cap:
 * live, of kind CHAN, big enough. NULL otherwise. */
static gs_chan_t *chan_at(struct goshm *h, uint64_t off, uint64_t id, uint32_t cap)
{
    if (off < h->arena_off || off >= h->data_size || cap == 0 || (cap & (cap - 1u)) != 0 || cap > GS_CHAN_MAX_CAP)
        return NULL;
    uint64_t objsize;
    gs_buf_hdr_t *hd = gs_buf_hdr_of(h, h->data + off, &objsize);
    if (!hd || hd->kind != GS_BUF_CHAN || hd->id != id || objsize < GS_BUF_HDR + gs_chan_bytes(cap)) return NULL;
    gs_chan_t *c = (gs_chan_t *)(hd + 1);
    if (c->magic != GS_CHAN_MAGIC || c->cap != cap) return NULL;
    return c;
}

/* A new channel buffer holding one reference (ours). */
static void *chan_create(struct goshm *h, uint32_t cap, uint64_t *off, uint64_t *id)
{
    void *p = gs_buf_alloc_kind(h, (size_t)gs_chan_bytes(cap), GS_BUF_CHAN);
    if (!p) return NULL;
    gs_chan_init(p, cap);
    *off = (uint64_t)((char *)p - h->data);
    *id = ((gs_buf_hdr_t *)((char *)p - GS_BUF_HDR))->id;
    return p;
}

static goshm_chan_t *handle(struct goshm *h, uint64_t off, uint64_t id, uint32_t cap, int efd)
{
    goshm_chan_t *ch = calloc(1, sizeof *ch);
    if (!ch) return NULL;
    ch->h = h;
    ch->c = (gs_chan_t *)(h->data + off);
    ch->off = off;
    ch->id = id;
    ch->cap = cap;
    ch->efd = efd;
    ch->gen = atomic_load(&h->reconnects);
    return ch;
}

static int retain_chan(struct goshm *h, uint64_t off, uint64_t id, uint32_t cap)
{
    pthread_mutex_lock(&h->buf_lock);
    int rc = chan_at(h, off, id, cap) ? gs_buf_retain_locked(h, h->data + off) : -EINVAL;
    pthread_mutex_unlock(&h->buf_lock);
    return rc;
}

static void release_off(struct goshm *h, uint64_t off)
{
    pthread_mutex_lock(&h->buf_lock);
    gs_buf_release_locked(h, h->data + off);
    pthread_mutex_unlock(&h->buf_lock);
}

goshm_chan_t *gs_chan_open_off(struct goshm *h, uint64_t off, uint64_t id, uint32_t cap, int efd)
{
    int rc = retain_chan(h, off, id, cap);
    if (rc) {
        errno = -rc;
        return NULL;
    }
    goshm_chan_t *ch = handle(h, off, id, cap, efd);
    if (!ch) {
        release_off(h, off);
        errno = ENOMEM;
    }
    return ch;
}

goshm_chan_t *goshm_chan_open(goshm_t *h, const char *name, uint32_t capacity)
{
    if (!h || !name || !gs_name_valid(name) || capacity > GS_CHAN_MAX_CAP) {
        errno = EINVAL;
        return NULL;
    }
    uint32_t cap = 1;
    while (cap < capacity) cap <<= 1;
    /* An entry can vanish between the lookup and our retain (unlinked and
     * freed): look it up again, a bounded number of times. */
    for (int tries = 0; tries < 16; tries++) {
        uint64_t off = 0, id = 0, mine_off = 0, mine_id = 0;
        uint32_t rcap = 0;
        int efd = -1;
        int rc = gs_ctl_chan_open(h, name, cap, 0, 0, &off, &id, &rcap, &efd);
        if (rc == -ENOENT && capacity > 0) {
            if (!chan_create(h, cap, &mine_off, &mine_id)) return NULL; /* errno set */
            rc = gs_ctl_chan_open(h, name, cap, mine_off, mine_id, &off, &id, &rcap, &efd);
            if (rc == 0 && off == mine_off && id == mine_id) {
                /* Ours is registered: the reference we hold from the
                 * allocation is the opener's; the directory took its own. */
                goshm_chan_t *ch = chan_at(h, off, id, rcap) ? handle(h, off, id, rcap, efd) : NULL;
                if (ch) snprintf(ch->name, sizeof ch->name, "%s", name);
                if (!ch) {
                    if (efd >= 0) close(efd);
                    release_off(h, mine_off);
                    errno = ENOMEM;
                }
                return ch;
            }
            release_off(h, mine_off); /* someone else registered first, or an error */
        }
        if (rc) {
            errno = -rc;
            return NULL;
        }
        rc = retain_chan(h, off, id, rcap);
        if (rc == 0) {
            goshm_chan_t *ch = handle(h, off, id, rcap, efd);
            if (ch) snprintf(ch->name, sizeof ch->name, "%s", name);
            if (!ch) {
                close(efd);
                release_off(h, off);
                errno = ENOMEM;
            }
            return ch;
        }
        if (efd >= 0) close(efd);
        if (rc != -EINVAL) {
            errno = -rc;
            return NULL;
        }
    }
    errno = EAGAIN;
    return NULL;
}

int goshm_chan_unlink(goshm_t *h, const char *name)
{
    if (!h || !name || !gs_name_valid(name)) {
        errno = EINVAL;
        return -1;
    }
    int rc = gs_ctl_chan_unlink(h, name);
    if (rc) {
        errno = -rc;
        return -1;
    }
    return 0;
}

/* Milliseconds of timeout_ms -> an absolute deadline (0: none, UINT64_MAX: for ever). */
static uint64_t deadline_of(int timeout_ms)
{
    if (timeout_ms < 0) return UINT64_MAX;
    return gs_now_ns() + (uint64_t)timeout_ms * 1000000u;
}

/* How long a waiter polls the channel's futex word before it sleeps, when
 * the machine has more than one CPU. A futex sleep and wake cost the pair
 * several microseconds of system time and, on a VM whose other vCPU went
 * idle, tens of microseconds of wake-up latency (bench/bench-wake.c); a
 * peer that answers within the spin saves both. 20 us bounds what an idle
 * receiver burns per sleep (a sleep lasts up to a second, so that is
 * 0.002 % of a CPU); on one CPU spinning only delays the peer, so we do not. */
#define SPIN_NS 20000u

/* Can the waiter go on: a message to receive, or a free cell to send into? */
static bool can_go(goshm_chan_t *ch, bool recv)
{
    return recv ? gs_chan_ready(ch->c, ch->cap) : gs_chan_room(ch->c, ch->cap);
}

/* Poll can_go for up to SPIN_NS (on more than one CPU). */
static bool spin_until(goshm_chan_t *ch, bool recv, uint64_t deadline)
{
    static _Atomic int ncpu; /* 0: not known yet; racing first callers both ask sysconf */
    int n = atomic_load_explicit(&ncpu, memory_order_relaxed);
    if (n == 0) atomic_store_explicit(&ncpu, n = (int)sysconf(_SC_NPROCESSORS_ONLN), memory_order_relaxed);
    if (n < 2) return false;
    uint64_t end = gs_now_ns() + SPIN_NS;
    if (end > deadline) end = deadline;
    do {
        for (int i = 0; i < 16; i++) {
            if (can_go(ch, recv)) return true;
            gs_cpu_relax();
        }
    } while (gs_now_ns() < end);
    return false;
}

/* Wait until a receive (recv) or a send might go on, or the deadline: a
 * short spin, then a futex sleep (shm/chan.h, "Sleeping": announce, read the
 * futex word, look again, sleep). -ETIMEDOUT once the deadline has passed. */
static int wait_for(goshm_chan_t *ch, bool recv, uint64_t deadline)
{
    gs_chan_t *c = ch->c;
    _Atomic uint32_t *word = recv ? &c->xposted : &c->xtaken;
    _Atomic uint32_t *waiters = recv ? &c->xrwait : &c->xswait;
    uint64_t now = gs_now_ns();
    if (now >= deadline) return -ETIMEDOUT;
    if (spin_until(ch, recv, deadline)) return 0;
    now = gs_now_ns();
    if (now >= deadline) return -ETIMEDOUT;
    uint64_t left = deadline - now;
    /* At most a second per sleep: a waker that died between its publish
     * and its wake costs us a second, not for ever. */
    if (left > 1000000000u) left = 1000000000u;
    atomic_fetch_add_explicit(waiters, 1u, memory_order_seq_cst);
    uint32_t seen = gs_load_seqcst(word);
    if (!can_go(ch, recv)) gs_futex_wait(word, seen, left);
    atomic_fetch_sub_explicit(waiters, 1u, memory_order_seq_cst);
    return 0;
}

/* A send found the channel full, or a receive found it empty: -1 with
 * EAGAIN (timeout 0) or ETIMEDOUT, else wait (wait_for) and 0: try again.
 * *deadline: 0 until the first wait sets it. */
static int wait_or_fail(goshm_chan_t *ch, bool recv, int timeout_ms, uint64_t *deadline)
{
    if (timeout_ms == 0) {
        errno = EAGAIN;
        return -1;
    }
    if (!*deadline) *deadline = deadline_of(timeout_ms);
    if (wait_for(ch, recv, *deadline)) {
        errno = ETIMEDOUT;
        return -1;
    }
    return 0;
}

static void fd_signal(goshm_chan_t *ch)
{
    if (ch->efd < 0) return;
    uint64_t one = 1;
    ssize_t n = write(ch->efd, &one, sizeof one);
    (void)n; /* EAGAIN: the counter is saturated, readable anyway */
}

int goshm_chan_send(goshm_chan_t *ch, goshm_off_t off, int timeout_ms)
{
    if (!ch) {
        errno = EINVAL;
        return -1;
    }
    struct goshm *h = ch->h;
    if (off == GOSHM_NULL || off < h->arena_off || off >= h->data_size || (off & GS_MSG_REF)) {
        errno = EINVAL;
        return -1;
    }
    gs_chan_t *c = ch->c;
    refresh_fd(ch);
    uint64_t deadline = 0;
    for (;;) {
        pthread_mutex_lock(&h->buf_lock);
        gs_holdings_t *t = gs_buf_holdings(h);
        int i = gs_hold_find(t, off);
        uint32_t before = i < 0 ? 0 : gs_load_relaxed(&t->hold[i].xcount);
        uint64_t id = i < 0 ? 0 : gs_load_relaxed(&t->hold[i].xid);
        gs_intent_t *in = &t->intent;
        gs_store_release(&in->xop, GS_INTENT_NONE);
        gs_store_release(&in->xchan, ch->off);
        gs_store_release(&in->xchan_id, ch->id);
        gs_store_release(&in->xoff, off);
        gs_store_release(&in->xid, id);
        gs_store_release(&in->xbefore, before);
        gs_store_release(&in->xpos, UINT64_MAX);
        gs_store_release(&in->xmsg, 0);
        gs_store_release(&in->xop, GS_INTENT_SEND);
        uint64_t pos;
        int r = gs_chan_claim_send(c, ch->cap, me(h), &in->xpos, &pos);
        if (r == GS_CHAN_OK) {
            uint64_t msg = off | (before ? GS_MSG_REF : 0);
            gs_buf_killpoint("send-claimed");
            gs_store_relaxed(&c->cells[pos & (ch->cap - 1u)].xmsg, msg);
            gs_buf_killpoint("send-msg");
            /* The reference leaves my record before the cell is FULL: a
             * WRITING cell of a dead sender is then published by the heap
             * side, and the record's count says where the reference is. */
            if (before) gs_hold_add(t, off, id, -1);
            gs_buf_killpoint("send-recorded");
            gs_chan_publish(c, ch->cap, pos, msg);
            gs_store_release(&in->xop, GS_INTENT_NONE);
            pthread_mutex_unlock(&h->buf_lock);
            if (gs_load_seqcst(&c->xfdwait) != 0) fd_signal(ch);
            return 0;
        }
        gs_store_release(&in->xop, GS_INTENT_NONE);
        pthread_mutex_unlock(&h->buf_lock);
        if (wait_or_fail(ch, false, timeout_ms, &deadline)) return -1;
    }
}

/* After a receive (or an empty look) through a polled handle: reset the
 * eventfd, then make it readable again if a message is waiting. */
static void fd_rearm(goshm_chan_t *ch)
{
    if (!ch->fd_used || ch->efd < 0) return;
    uint64_t v;
    ssize_t n = read(ch->efd, &v, sizeof v);
    (void)n;
    if (gs_chan_ready(ch->c, ch->cap)) fd_signal(ch);
}

int goshm_chan_recv(goshm_chan_t *ch, goshm_off_t *out, int timeout_ms)
{
    if (!ch || !out) {
        errno = EINVAL;
        return -1;
    }
    struct goshm *h = ch->h;
    gs_chan_t *c = ch->c;
    refresh_fd(ch);
    uint64_t deadline = 0;
    for (;;) {
        pthread_mutex_lock(&h->buf_lock);
        gs_holdings_t *t = gs_buf_holdings(h);
        /* Room for a new record before claiming anything: a message taken
         * must be recorded. */
        if (gs_load_relaxed(&t->xused) >= GS_HOLD_MAX) {
            pthread_mutex_unlock(&h->buf_lock);
            errno = ENOSPC;
            return -1;
        }
        gs_intent_t *in = &t->intent;
        gs_store_release(&in->xop, GS_INTENT_NONE);
        gs_store_release(&in->xchan, ch->off);
        gs_store_release(&in->xchan_id, ch->id);
        gs_store_release(&in->xoff, 0);
        gs_store_release(&in->xbefore, 0);
        gs_store_release(&in->xpos, UINT64_MAX);
        gs_store_release(&in->xmsg, 0);
        gs_store_release(&in->xop, GS_INTENT_RECV);
        uint64_t pos, msg;
        int r = gs_chan_claim_recv(c, ch->cap, me(h), &in->xpos, &pos, &msg);
        if (r == GS_CHAN_OK) {
            uint64_t o = msg & ~GS_MSG_REF;
            gs_buf_killpoint("recv-claimed");
            if (msg & GS_MSG_REF) {
                gs_buf_hdr_t *hd = o >= h->arena_off && o < h->data_size ? gs_buf_hdr_of(h, h->data + o, NULL) : NULL;
                if (hd) {
                    gs_store_release(&in->xbefore, gs_hold_count(t, o));
                    gs_store_release(&in->xmsg, msg);
                    gs_hold_add(t, o, hd->id, 1);
                    gs_buf_killpoint("recv-recorded");
                }
                /* Not a live buffer (garbage someone wrote into the
                 * channel): delivered as a plain offset. */
            }
            gs_chan_consume(c, ch->cap, pos);
            gs_store_release(&in->xop, GS_INTENT_NONE);
            pthread_mutex_unlock(&h->buf_lock);
            fd_rearm(ch);
            *out = o;
            return 0;
        }
        gs_store_release(&in->xop, GS_INTENT_NONE);
        pthread_mutex_unlock(&h->buf_lock);
        fd_rearm(ch);
        if (wait_or_fail(ch, true, timeout_ms, &deadline)) return -1;
    }
}

int goshm_chan_fd(goshm_chan_t *ch)
{
    if (!ch) {
        errno = EINVAL;
        return -1;
    }
    if (ch->efd < 0) {
        errno = ENOSYS;
        return -1;
    }
    refresh_fd(ch);
    if (!ch->fd_used) {
        ch->fd_used = true;
        int fl = fcntl(ch->efd, F_GETFL);
        if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(ch->efd, F_SETFL, fl | O_NONBLOCK);
        /* Announce first (seq_cst), then look: a sender that published
         * before our announcement is seen by the look. */
        atomic_fetch_add_explicit(&ch->c->xfdwait, 1u, memory_order_seq_cst);
            if (gs_chan_ready(ch->c, ch->cap)) fd_signal(ch);
    }
    return ch->efd;
}

int goshm_chan_close(goshm_chan_t *ch)
{
    if (!ch) {
        errno = EINVAL;
        return -1;
    }
    struct goshm *h = ch->h;
    if (ch->fd_used) atomic_fetch_sub_explicit(&ch->c->xfdwait, 1u, memory_order_seq_cst);
    release_off(h, ch->off);
    if (ch->efd >= 0) close(ch->efd);
    free(ch);
    return 0;
}
