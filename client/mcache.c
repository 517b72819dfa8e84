/* SPDX-License-Identifier: MIT */
/* mcache.c: the per-thread cache of spans and its refill path.
 *
 * Overview: shm/overview.h ("Allocating a small object", steps 3 and 4). An
 * mcache belongs to one thread of one attached heap; nothing in it is shared,
 * so it needs no lock. Its spans' side records are shared: see shm/mspan.h.
 */
#include "client.h"

#include <errno.h>  /* errno */
#include <stdlib.h> /* calloc, getenv */
#include <string.h> /* strcmp */

__thread __attribute__((tls_model("initial-exec"))) gs_tls_t gs_tls;

gs_mcache_t *gs_mcache_slow(struct goshm *h)
{
    gs_mcache_t *c = pthread_getspecific(h->key);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return NULL;
        c->heap = h;
        gs_mcache_forget(c);
        c->debug_sample_left = gs_prof_next(h, c);
        c->next_sample = h->debug ? 0 : c->debug_sample_left;
        gs_client_link_cache(h, c);
        pthread_setspecific(h->key, c);
    }
    gs_tls.id = h->id;
    gs_tls.cache = c;
    return c;
}

static void account_pass(struct goshm *h, gs_mcache_t *c, gs_cspan_t *s)
{
    uint32_t cls = gs_spanclass_sizeclass(s->spanclass);
    uint32_t n = gs_cspan_handed_out(s), u = s->undone;
    (void)c;
    if (n + u) gs_fetch_add_relaxed(&h->slotp->stats[cls].xallocs, n + u);
    if (u) {
        gs_fetch_add_relaxed(&h->slotp->stats[cls].xfrees, u);
        s->undone = 0;
    }
}

/* Is sid a span the daemon just gave this process for spanclass? Only the
 * read-only span record counts: state, class, owner, and where its side
 * record and slots are. */
static bool span_is_ours(struct goshm *h, uint32_t sid, uint32_t spanclass)
{
    if (sid == 0 || sid >= h->max_spans) return false;
    const gs_mspan_t *m = &h->spans[sid];
    uint64_t span_bytes = (uint64_t)m->npages << GS_PAGE_SHIFT;
    return m->state == GS_SPAN_SMALL && m->spanclass == spanclass && gs_mspan_owner(m) == h->slot + 1u &&
           m->nelems != 0 && m->side_off >= h->side_off &&
           m->side_off + sizeof(gs_side_t) + 8u * ((uint64_t)m->awords + m->fwords) <= h->side_off + h->side_size &&
           m->base_off >= h->arena_off && m->base_off < h->data_size && span_bytes <= h->data_size - m->base_off;
}

static void load_span(struct goshm *h, gs_cspan_t *s, uint32_t sid)
{
    const gs_mspan_t *m = &h->spans[sid];
    gs_cspan_init(s, m, (gs_side_t *)(h->data + m->side_off), h->data + m->base_off, sid);
}

/* Sweep span sid of class sc, of which slots below freeindex were handed
 * out since its last sweep, and load it into view s when the sweep found
 * at least 1/8 of its slots free: fewer would make every few allocations
 * pay for a sweep, so such a span is not used again yet. */
static bool sweep_reload(struct goshm *h, gs_cspan_t *s, uint32_t sc, uint32_t sid, uint32_t freeindex)
{
    const gs_mspan_t *m = &h->spans[sid];
    uint32_t merged = 0;
    uint32_t live = gs_span_sweep((gs_side_t *)(h->data + m->side_off), m->nelems, m->awords,
                                  gs_spanclass_tiny(sc), freeindex, &merged);
    if (merged) gs_fetch_add_relaxed(&h->slotp->stats[gs_spanclass_sizeclass(sc)].xfrees, merged);
    uint32_t want = m->nelems / 8u ? m->nelems / 8u : 1u;
    if (m->nelems - live < want) return false;
    load_span(h, s, sid);
    s->needzero = 1; /* slots that were freed are dirty */
    return true;
}

/* Sweep the exhausted span this mcache caches; keep it when sweep_reload
 * does, else it goes back to its mcentral (or is kept a while, below). */
static bool sweep_local(struct goshm *h, gs_mcache_t *c, gs_cspan_t *s)
{
    account_pass(h, c, s);
    return sweep_reload(h, s, s->spanclass, s->sid, s->freeindex);
}

/* A used-up span whose sweep found too few free slots: its objects are
 * still live, often in flight to another thread or process that frees them
 * soon (W3: a span of 2 to 8 objects runs out while they are in a ring).
 * Handing it back at once costs such classes a refill round trip per span,
 * and on a machine whose CPUs are busy the daemon runs only when a client
 * yields (bench/README.md, W3). So a class keeps its last GS_KEPT used-up
 * spans and sweeps the oldest again when it runs out next; the one that
 * falls off the end goes back as before. Kept spans stay this process's
 * slot's (a crash returns them, as the stash's) and are swept from their
 * side records exactly as sweep_local sweeps. They go back when their
 * class has kept none for GS_KEPT_IDLE refills of the thread (release_kept)
 * and whenever a refill finds the heap full (stash_fill), so that a class
 * the program stopped using does not hold memory the others need. Not for
 * tiny spans, whose halves are retired by the tiny allocator. */
static void back_push(struct goshm *h, gs_mcache_t *c, uint32_t sc, uint32_t sid);

static void keep_used_up(struct goshm *h, gs_mcache_t *c, uint32_t sc, uint32_t sid)
{
    if (gs_spanclass_tiny(sc)) {
        back_push(h, c, sc, sid);
        return;
    }
    if (c->nkept[sc] == GS_KEPT) {
        back_push(h, c, sc, c->kept[sc][0]);
        memmove(&c->kept[sc][0], &c->kept[sc][1], (GS_KEPT - 1u) * sizeof c->kept[sc][0]);
        c->nkept[sc]--;
    }
    c->kept[sc][c->nkept[sc]++] = sid;
    c->kept_at[sc] = c->epoch;
}

/* Sweep the oldest kept span of class sc again (nothing was handed out
 * since its last sweep: freeindex 0); when sweep_reload takes it, it is
 * the class's span again. */
static bool reuse_kept(struct goshm *h, gs_mcache_t *c, uint32_t sc)
{
    if (c->nkept[sc] == 0) return false;
    if (!sweep_reload(h, &c->alloc[sc], sc, c->kept[sc][0], 0)) return false; /* the newer ones even less */
    memmove(&c->kept[sc][0], &c->kept[sc][1], (GS_KEPT - 1u) * sizeof c->kept[sc][0]);
    c->nkept[sc]--;
    return true;
}

/* Hand back the kept spans of every class (all: true) or of the classes
 * idle for GS_KEPT_IDLE refills, with round trips that only hand back. */
static void release_kept(struct goshm *h, gs_mcache_t *c, bool all)
{
    for (uint32_t sc = 0; sc < GS_NUM_SPAN_CLASSES; sc++) {
        if (c->nkept[sc] == 0 || (!all && c->epoch - c->kept_at[sc] < GS_KEPT_IDLE)) continue;
        h->ops->refill(h->seam, sc, c->kept[sc], c->nkept[sc], 0, NULL);
        c->nkept[sc] = 0; /* handed back, whatever the answer */
    }
}

/* Spans to ask for at once: enough for about 64 objects (up to GS_BATCH
 * spans), so that classes with few objects per span (2 for 4 KiB, 1 for
 * 32 KiB) still amortise the round trip to the daemon. Measured on W3
 * (bench/README.md): one round trip per 6 messages without batching, one per
 * 70 with it. */
static uint32_t refill_want(uint32_t spanclass)
{
    uint32_t n = gs_class_nelems[gs_spanclass_sizeclass(spanclass)];
    uint32_t want = n >= 64u ? 1u : (64u + n - 1u) / n;
    return want > GS_BATCH ? GS_BATCH : want;
}

/* Refills sent ahead: $GOSHM_REFILL_AHEAD=0 turns them off (to measure
 * the round trip itself, bench/README.md); anything else, or unset, on. */
static pthread_once_t ahead_once = PTHREAD_ONCE_INIT;
static bool ahead_off;

static void ahead_read(void)
{
    const char *v = getenv("GOSHM_REFILL_AHEAD");
    ahead_off = v && strcmp(v, "0") == 0;
}

/* When a thread takes its class's last stashed span, the next refill goes
 * out at once, without waiting, so that by the time the span is used up
 * the answer is normally there: the allocation that runs out does not wait
 * for the daemon, nor for its wake-up after idle (~20 us on a small VM,
 * bench/README.md). The spans to hand back go with it. Only for a class
 * that needed a refill before: each such class then holds one span more
 * per thread (Go's mcache holds one), and a class used once holds none. */
static void send_ahead(struct goshm *h, gs_mcache_t *c, uint32_t sc)
{
    if (c->ahead[sc] || c->nrefills[sc] < 2u || !h->ops->refill_ahead) return;
    int e = errno;
    pthread_once(&ahead_once, ahead_read);
    errno = e;
    if (ahead_off) return;
    uint32_t t = 0;
    if (h->ops->refill_ahead(h->seam, sc, c->back[sc], c->nback[sc], refill_want(sc), &t) == 0) {
        c->ahead[sc] = t;
        c->nback[sc] = 0; /* handed back */
    } /* else nothing was sent: the next refill waits, as without */
}

/* A span used up (or unusable) goes back with the next refill of its class;
 * a full list goes back at once, without waiting where the seam can. */
static void back_push(struct goshm *h, gs_mcache_t *c, uint32_t sc, uint32_t sid)
{
    c->back[sc][c->nback[sc]++] = sid;
    if (c->nback[sc] == GS_BATCH && h->ops->give_back && h->ops->give_back(h->seam, sc, c->back[sc], GS_BATCH) == 0)
        c->nback[sc] = 0;
}

/* Fill the stash of class sc (empty, or a full back list to hand back):
 * from the refill sent ahead if there is one, else with a round trip. The
 * spans the daemon names are checked against their read-only records
 * first. 0 or -errno. */
static int stash_fill(struct goshm *h, gs_mcache_t *c, uint32_t sc)
{
    uint32_t sids[GS_BATCH];
    uint32_t want = c->nstash[sc] ? 0u : refill_want(sc);
    int n = 0;
    if (want && c->ahead[sc]) {
        uint32_t t = c->ahead[sc];
        c->ahead[sc] = 0;
        n = h->ops->refill_take(h->seam, t, want, sids);
        if (n == -ETIMEDOUT) return n; /* not twice the deadline */
        if (n < 0) n = 0; /* ENOMEM then may not be ENOMEM now: ask again */
    }
    if (n == 0) {
        n = h->ops->refill(h->seam, sc, c->back[sc], c->nback[sc], want, sids);
        c->nback[sc] = 0; /* handed back, whatever the answer */
        if (n == -ENOMEM && want) {
            /* The heap is full: what other classes keep may be free. */
            release_kept(h, c, true);
            n = h->ops->refill(h->seam, sc, c->back[sc], 0, want, sids);
        }
        if (n < 0) return n;
    }
    if (want && ++c->epoch % GS_KEPT_IDLE == 0) release_kept(h, c, false);
    if (want && c->nrefills[sc] < UINT8_MAX) c->nrefills[sc]++;
    for (int i = n - 1; i >= 0; i--) {
        bool dup = false; /* a span this mcache holds already must not be used twice */
        for (uint32_t k = 0; k < c->nstash[sc]; k++) dup |= c->stash[sc][k] == sids[i];
        if (dup || !span_is_ours(h, sids[i], sc)) {
            gs_report_peer("refill answered with a span that is not ours");
            continue; /* not ours: not ours to hand back either */
        }
        c->stash[sc][c->nstash[sc]++] = sids[i];
    }
    if (c->nstash[sc] == 0 && want) {
        if (n > 0) return -EPROTO;
        gs_report_peer("refill answered with no span");
        return -ENOMEM;
    }
    return 0;
}

void *gs_mcache_next_free(struct goshm *h, gs_mcache_t *c, uint32_t spanclass)
{
    gs_cspan_t *s = &c->alloc[spanclass];
    if (s->sid) {
        uint32_t idx = gs_cspan_next_free_index(s);
        if (idx < s->nelems) return s->base + (size_t)idx * s->elemsize;
        if (sweep_local(h, c, s)) {
            idx = gs_cspan_next_free_index(s);
            if (idx < s->nelems) return s->base + (size_t)idx * s->elemsize;
        }
        uint32_t used = s->sid;
        *s = (gs_cspan_t){0};
        bool again = reuse_kept(h, c, spanclass);
        keep_used_up(h, c, spanclass, used);
        if (again) {
            idx = gs_cspan_next_free_index(s);
            if (idx < s->nelems) return s->base + (size_t)idx * s->elemsize;
            back_push(h, c, spanclass, s->sid);
            *s = (gs_cspan_t){0};
        }
    }
    /* A span the daemon handed us is checked against its read-only record;
     * its bitmaps live in memory any client can write, so a span that shows
     * no free slot (another client scribbled over it) is handed back, not
     * trusted and not looped on. A few rounds at most, then the call fails. */
    for (uint32_t round = 0; round < 4u; round++) {
        if (c->nstash[spanclass] == 0 || c->nback[spanclass] == GS_BATCH) {
            int rc = stash_fill(h, c, spanclass);
            if (rc) {
                errno = -rc;
                return NULL;
            }
        }
        load_span(h, s, c->stash[spanclass][--c->nstash[spanclass]]);
        if (c->nstash[spanclass] == 0) send_ahead(h, c, spanclass);
        uint32_t idx = gs_cspan_next_free_index(s);
        if (idx < s->nelems) return s->base + (size_t)idx * s->elemsize;
        gs_report_peer("a refilled span has no free slot (its bitmap was overwritten?); handed back");
        back_push(h, c, spanclass, s->sid);
        *s = (gs_cspan_t){0};
    }
    errno = EPROTO;
    return NULL;
}

void gs_mcache_flush(struct goshm *h, gs_mcache_t *c)
{
    gs_tiny_retire(h, c);
    gs_mcache_forget(c);
    for (uint32_t sc = 0; sc < GS_NUM_SPAN_CLASSES; sc++) {
        gs_cspan_t *s = &c->alloc[sc];
        uint32_t *back = c->back[sc];
        uint32_t n = c->nback[sc];
        if (s->sid) {
            account_pass(h, c, s);
            back[n++] = s->sid;
            *s = (gs_cspan_t){0};
        }
        /* back[] holds GS_BATCH: flush in two batches if need be. */
        uint32_t k = c->nstash[sc], q = c->nkept[sc];
        while (n || k || q) {
            while (n < GS_BATCH && k) back[n++] = c->stash[sc][--k];
            while (n < GS_BATCH && q) back[n++] = c->kept[sc][--q];
            h->ops->refill(h->seam, sc, back, n, 0, NULL);
            n = 0;
        }
        c->nback[sc] = 0;
        c->nstash[sc] = 0;
        c->nkept[sc] = 0;
        if (c->ahead[sc]) h->ops->refill_drop(h->seam, c->ahead[sc]); /* waits for it, hands its spans back */
        c->ahead[sc] = 0;
    }
}
