/* SPDX-License-Identifier: MIT */
/* seam.h: the seam between libgoshm's cache side and the heap side, and libgoshm's side of goshmd.
 *
 * Overview: shm/overview.h ("Allocating a small object", step 4). The cache
 * side (client/mcache.c) reaches the heap side only through gs_seam_ops_t:
 * refill a span class, allocate a large object, close. Over goshmd the seam
 * is this process's slot's ring (client/ring.c), set up by an Attach on the
 * control socket (client/ctl.c) and re-set-up in fork children
 * (client/fork.c); goshm_attach/goshm_detach are client/service.c. The
 * engine tests' in-process seam is tests/lib/inproc.c.
 */
#ifndef GOSHM_SEAM_H
#define GOSHM_SEAM_H

#include <pthread.h>   /* pthread_mutex_t */
#include <stdbool.h>   /* bool */
#include <stdint.h>    /* uint*_t */
#include <sys/types.h> /* pid_t */

#include "ring.h"

typedef struct gs_seam_ops {
    /* Hand back back[0..nback) and get up to `want` spans of `spanclass`
     * with free slots into sids[]. The spans handed back are gone either
     * way. Returns the number got (0 only when want is 0), or -errno. */
    int (*refill)(void *seam, uint32_t spanclass, const uint32_t *back, uint32_t nback, uint32_t want,
                  uint32_t *sids);
    /* Refills sent ahead of need (client/mcache.c), so that the allocation
     * that runs out of spans finds them here instead of waiting for the
     * daemon. Optional: NULL in a seam that answers at once.
     *   ahead: send the refill without waiting for it; 0 and a ticket
     *     (never 0) for take or drop, or -errno (-EAGAIN: too much is
     *     outstanding; nothing sent, the spans to hand back are still the
     *     caller's).
     *   take: its answer, waiting for it if need be: what refill returns;
     *     0 when it was lost (the daemon was replaced, or a fork child
     *     asks): the caller refills as usual.
     *   drop: its answer is not wanted (the thread is going away): wait
     *     for it as a round trip would and hand its spans back (past the
     *     deadline, they are handed back whenever the answer is read).
     *   give_back: hand back[0..nback) without waiting for the answer
     *     (only for room on the ring). 0 or -errno. */
    int (*refill_ahead)(void *seam, uint32_t spanclass, const uint32_t *back, uint32_t nback, uint32_t want,
                        uint32_t *ticket);
    int (*refill_take)(void *seam, uint32_t ticket, uint32_t want, uint32_t *sids);
    void (*refill_drop)(void *seam, uint32_t ticket);
    int (*give_back)(void *seam, uint32_t spanclass, const uint32_t *back, uint32_t nback);
    /* A span of npages for one large object, starting on a multiple of
     * 2^align_shift pages (0..GS_LARGE_MAX_ALIGN_SHIFT). 0 or -errno. */
    int (*large_alloc)(void *seam, uint64_t npages, uint32_t align_shift, uint32_t *sid);
    /* Close the seam: the heap side reclaims the slot. */
    int (*close)(void *seam);
} gs_seam_ops_t;

/* The seam over goshmd: one per attached heap. At most GS_SVC_OUTSTANDING
 * requests are on its ring at once (well under GS_RING_ENTRIES, so the
 * completion ring always has room for theirs), GS_SVC_AHEAD of them refills
 * sent ahead. */
#define GS_SVC_OUTSTANDING 48u
#define GS_SVC_AHEAD 32u

/* One request on the ring whose completion is not read yet (client/ring.c). */
typedef struct gs_svc_out { uint32_t tag; uint8_t op; uint8_t kind; } gs_svc_out_t;

typedef struct svc_seam {
    struct goshm *h;
    int sock;             /* control connection, -1 after fork until reattach */
    int doorbell;         /* this slot's eventfd */
    gs_ring_t *ring;
    pthread_mutex_t mu;   /* one request batch at a time */
    uint32_t sq_tail, cq_head, tag;
    uint32_t last_tag;    /* the tag of the last completion read (client/reconnect.c) */
    /* The requests on the ring whose completions this process has not read,
     * in the order they went out, which is the order their completions come
     * back in (client/ring.c): a round trip's own, refills sent ahead, and
     * requests nobody waits for any more (given up on with -ETIMEDOUT, hand-
     * backs, dropped refills: what their answers carry is given back). */
    uint32_t out_head, nout;
    gs_svc_out_t out[GS_SVC_OUTSTANDING];
    /* Refills sent ahead, by ticket (their tag): sent, then answered (the
     * answer parked here until its thread takes it). */
    struct { uint32_t tag; uint8_t state; int32_t result; uint32_t sids[GS_RING_MAX_BATCH]; } ahead[GS_SVC_AHEAD];
    uint64_t epoch;
    uint64_t heap_id;     /* goshm_heap_id of the heap attached to */
    uint32_t resume_slot; /* for gs_svc_attach: slot + 1 to resume, 0 for a new one */
    bool resumed;         /* gs_svc_attach: the daemon gave that slot back */
    bool gave_up;         /* a reconnection timed out: later ones try once, without waiting */
    pid_t pid;            /* the process the slot belongs to */
    bool dead;            /* another heap answers now: fail at once from now on */
    /* Directory requests (client/name.c) given up on (ETIMEDOUT) whose
     * replies may still come on the control connection: read and dropped
     * by the next request, or by gs_svc_daemon_gone, which must not take
     * such a reply for the daemon hanging up. Under mu. */
    uint32_t late_replies;
    char path[108];
    struct svc_seam *next; /* all attached heaps, for fork */
} svc_seam_t;

/* What an AttachReply gave us: the caller owns (and closes) the three
 * memfd descriptors. */
typedef struct gs_attach_reply {
    uint32_t slot, max_slots;
    uint64_t data_size, meta_size, slot_size;
    int data_fd, meta_fd, slot_fd;
} gs_attach_reply_t;

/* "ctl.c": Attach over a fresh connection (fills s->sock, s->doorbell,
 * s->epoch, and *r); Detach; is the daemon gone? */
int gs_svc_attach(svc_seam_t *s, gs_attach_reply_t *r);
/* Close r's descriptors. */
void gs_attach_reply_close(gs_attach_reply_t *r);
int gs_svc_detach(svc_seam_t *s);
bool gs_svc_daemon_gone(svc_seam_t *s);

/* "reconnect.c": the daemon went away (s->mu held): wait up to
 * $GOSHM_RECONNECT_S seconds (default 30) for a goshmd that adopted the
 * same heap, and resume this process's slot there. 0 (the ring starts
 * afresh at index 0), or -ECONNRESET. */
int gs_svc_reconnect(svc_seam_t *s);

/* "ring.c": the seam's operations over the slot's ring; the round trips'
 * deadline in milliseconds ($GOSHM_TIMEOUT_MS; 0: none); a ring started
 * afresh (s->mu held): by a daemon that adopted the heap (same_slot: the
 * spans answered but not yet taken are still ours) or in a fork child (a
 * new slot: nothing outstanding or answered is ours). */
extern const gs_seam_ops_t gs_svc_ops;
uint32_t gs_svc_timeout_ms(void);
void gs_svc_ring_restart(svc_seam_t *s, bool same_slot);

/* "fork.c": this process's pid (cheap), the registry of attached heaps,
 * and the fork child's reattach (s->mu held). */
pid_t gs_svc_pid(void);
void gs_svc_register(svc_seam_t *s);
void gs_svc_unregister(svc_seam_t *s);
int gs_svc_reattach(svc_seam_t *s);

#endif /* GOSHM_SEAM_H */
