/* SPDX-License-Identifier: MIT */
/* spanlist.h: the one list of span ids (Go's mSpanList): mcentral and owner lists, free-run bins, the scavenge list.
 *
 * Overview: shm/overview.h. A list is threaded through the span records'
 * heap-side links (shm/segment.h, gs_mspan_t): next/prev for the list a span
 * is on (an mcentral's partial or full list, its owner's cached list, or a
 * free-run bin), scav_next/scav_prev for the scavenge list a free run is on
 * at the same time. Span id 0 is "none". Heap-side memory only: the heap
 * lock guards every list (daemon/heap_internal.h).
 */
#ifndef GOSHM_SPANLIST_H
#define GOSHM_SPANLIST_H

#include <stdint.h> /* uint32_t */

#include "segment.h" /* gs_mspan_t */

typedef struct gs_spanlist {
    uint32_t head, tail, count;
} gs_spanlist_t;

enum { /* which pair of a span record's links a list uses */
    GS_LINK_LIST = 0, /* next, prev */
    GS_LINK_SCAV = 1, /* scav_next, scav_prev */
};

static inline uint32_t *gs_link_next(gs_mspan_t *s, int link) { return link == GS_LINK_SCAV ? &s->scav_next : &s->next; }
static inline uint32_t *gs_link_prev(gs_mspan_t *s, int link) { return link == GS_LINK_SCAV ? &s->scav_prev : &s->prev; }

/* Insert sid at the front. spans: the span record table. */
static inline void gs_spanlist_push(gs_mspan_t *spans, gs_spanlist_t *l, uint32_t sid, int link)
{
    gs_mspan_t *s = &spans[sid];
    *gs_link_prev(s, link) = 0;
    *gs_link_next(s, link) = l->head;
    if (l->head) *gs_link_prev(&spans[l->head], link) = sid;
    else l->tail = sid;
    l->head = sid;
    l->count++;
}

/* Insert sid at the back. */
static inline void gs_spanlist_append(gs_mspan_t *spans, gs_spanlist_t *l, uint32_t sid, int link)
{
    gs_mspan_t *s = &spans[sid];
    *gs_link_next(s, link) = 0;
    *gs_link_prev(s, link) = l->tail;
    if (l->tail) *gs_link_next(&spans[l->tail], link) = sid;
    else l->head = sid;
    l->tail = sid;
    l->count++;
}

/* Take sid, which is on l, off it. */
static inline void gs_spanlist_remove(gs_mspan_t *spans, gs_spanlist_t *l, uint32_t sid, int link)
{
    gs_mspan_t *s = &spans[sid];
    uint32_t next = *gs_link_next(s, link), prev = *gs_link_prev(s, link);
    if (prev) *gs_link_next(&spans[prev], link) = next;
    else l->head = next;
    if (next) *gs_link_prev(&spans[next], link) = prev;
    else l->tail = prev;
    *gs_link_next(s, link) = *gs_link_prev(s, link) = 0;
    l->count--;
}

#endif /* GOSHM_SPANLIST_H */
