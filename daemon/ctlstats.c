/* SPDX-License-Identifier: MIT */
/* ctlstats.c: the Stats reply: the heap's statistics and per-client rows marshalled into protobuf-c.
 *
 * Overview: shm/overview.h; API: daemon/ctlstats.h. One allocation holds the
 * whole message, so it is freed in one call on every path.
 */
#include "ctlstats.h"

#include <sched.h>  /* sched_yield */
#include <stdlib.h> /* calloc, free */
#include <unistd.h> /* getpid */

#ifndef GOSHM_VERSION
#define GOSHM_VERSION "unknown"
#endif

enum { NCLASSES = GS_NUM_SIZE_CLASSES - 1 };
/* Spans walked per hold of the heap lock: ~1 us each at most (a tiny span's
 * live count is the costliest), so a piece is well under a millisecond. */
#define STATS_PIECE 256u

/* Per-client numbers, read under heap_lock. */
typedef struct client_row {
    uint32_t pid, slot, cached;
    uint64_t allocs, frees, large_allocs, large_frees;
} client_row_t;

typedef struct stats_msg {
    Goshm__Reply rep; /* first: what the caller gets */
    Goshm__StatsReply sr;
    Goshm__HeapStats hs;
    gs_heap_stats_t st;
    gs_owner_tally_t tally; /* the walk's, carried between its pieces */
    Goshm__ClassStats cls[NCLASSES];
    Goshm__ClassStats *clp[NCLASSES];
    client_row_t rows[GS_MAX_SLOTS];
    Goshm__ClientStats cli[GS_MAX_SLOTS];
    Goshm__ClientStats *clip[GS_MAX_SLOTS];
    Goshm__DepartedStats dep[GS_OWNERS_DEPARTED];
    Goshm__DepartedStats *depp[GS_OWNERS_DEPARTED];
} stats_msg_t;

Goshm__Reply *gs_ctl_stats_reply(gs_heap_t *heap, pthread_mutex_t *heap_lock, gs_dataplane_t *dp,
                                 const int64_t pid_of[GS_MAX_SLOTS], unsigned nattached, uint64_t uptime_ms)
{
    stats_msg_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    gs_heap_stats_t *st = &m->st;

    unsigned n = 0;
    /* The span table in pieces, the lock let go in between, so that a
     * client waiting for a refill waits for one piece at most. */
    pthread_mutex_lock(heap_lock);
    gs_heap_stats_begin(heap, st, &m->tally);
    pthread_mutex_unlock(heap_lock);
    uint32_t from = 1;
    do {
        pthread_mutex_lock(heap_lock);
        from = gs_heap_stats_spans(heap, st, &m->tally, from, STATS_PIECE);
        pthread_mutex_unlock(heap_lock);
        /* Let a waiter in: a mutex is not fair, and re-locking at once
         * would keep the data plane out for the whole walk all the same. */
        if (from) sched_yield();
    } while (from);
    pthread_mutex_lock(heap_lock);
    gs_heap_stats_end(heap, st, &m->tally);
    uint32_t orphans = 0, adopted_orphans = 0, adopted_reclaimed = 0;
    bool adopted = gs_heap_adopted_ns(heap, &adopted_orphans, &adopted_reclaimed) != 0;
    for (uint32_t s = 0; s < GS_MAX_SLOTS; s++) orphans += gs_heap_slot_orphan(heap, s);
    for (uint32_t s = 0; s < GS_MAX_SLOTS && n < nattached; s++) {
        if (pid_of[s] < 0) continue;
        client_row_t *r = &m->rows[n++];
        r->pid = (uint32_t)pid_of[s];
        r->slot = s;
        r->cached = gs_heap_slot_cached_spans(heap, s);
        gs_heap_slot_counts(heap, s, &r->allocs, &r->frees, &r->large_allocs, &r->large_frees);
    }
    pthread_mutex_unlock(heap_lock);

    Goshm__HeapStats *hs = &m->hs;
    goshm__heap_stats__init(hs);
    hs->reserved_bytes = st->reserved_bytes;
    hs->committed_bytes = st->committed_bytes;
    hs->in_use_bytes = st->in_use_bytes;
    hs->idle_bytes = st->idle_bytes;
    hs->released_bytes = st->released_bytes;
    hs->metadata_bytes = st->metadata_bytes;
    hs->grown_bytes = st->grown_bytes;
    hs->span_bytes = st->span_bytes;
    hs->large_objects = st->large_objects;
    hs->large_allocs = st->large_allocs;
    hs->large_frees = st->large_frees;
    hs->notices = st->notices;
    hs->bad_requests = st->bad_requests;
    hs->bad_ring_entries = gs_dp_bad_entries(dp);
    hs->adopted = adopted;
    hs->adopted_orphans = adopted_orphans;
    hs->adopted_reclaimed = adopted_reclaimed;
    hs->orphans = orphans;

    for (unsigned i = 0; i < NCLASSES; i++) {
        const gs_class_stats_t *cs = &st->classes[i + 1];
        goshm__class_stats__init(&m->cls[i]);
        m->cls[i].size = gs_class_size[i + 1];
        m->cls[i].objects_in_use = cs->objects_in_use;
        m->cls[i].allocs = cs->allocs;
        m->cls[i].frees = cs->frees;
        m->cls[i].spans = cs->spans;
        m->clp[i] = &m->cls[i];
    }
    for (unsigned i = 0; i < n; i++) {
        goshm__client_stats__init(&m->cli[i]);
        m->cli[i].pid = m->rows[i].pid;
        m->cli[i].slot = m->rows[i].slot;
        m->cli[i].cached_spans = m->rows[i].cached;
        m->cli[i].allocs = m->rows[i].allocs;
        m->cli[i].frees = m->rows[i].frees;
        m->cli[i].large_allocs = m->rows[i].large_allocs;
        m->cli[i].large_frees = m->rows[i].large_frees;
        m->cli[i].in_use_bytes = st->slot_in_use[m->rows[i].slot];
        m->clip[i] = &m->cli[i];
    }

    for (uint32_t i = 0; i < st->ndeparted && i < GS_OWNERS_DEPARTED; i++) {
        goshm__departed_stats__init(&m->dep[i]);
        m->dep[i].pid = st->departed[i].pid;
        m->dep[i].in_use_bytes = st->departed[i].in_use_bytes;
        m->dep[i].gone_ms = st->departed[i].gone_ns / 1000000u;
        m->depp[i] = &m->dep[i];
    }

    Goshm__StatsReply *sr = &m->sr;
    goshm__stats_reply__init(sr);
    sr->heap = hs;
    sr->n_classes = NCLASSES;
    sr->classes = m->clp;
    sr->n_clients = n;
    sr->clients = m->clip;
    sr->backend = (char *)gs_dp_backend(dp);
    sr->uptime_ms = uptime_ms;
    sr->daemon_pid = (uint32_t)getpid();
    sr->version = (char *)GOSHM_VERSION;
    sr->heap_id = gs_heap_id(heap);
    sr->size_bytes = gs_heap_size(heap);
    sr->n_departed = st->ndeparted;
    sr->departed = m->depp;
    sr->departed_other_bytes = st->departed_other_bytes;
    goshm__reply__init(&m->rep);
    m->rep.msg_case = GOSHM__REPLY__MSG_STATS;
    m->rep.stats = sr;
    return &m->rep;
}

void gs_ctl_stats_free(Goshm__Reply *rep) { free(rep); } /* rep is the first member of its stats_msg_t */
