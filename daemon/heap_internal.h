/* heap_internal.h: the heap side's private state, shared by its files.
 *
 * Overview: shm/malloc.h. Everything here is private memory of the process
 * that owns the heap (the daemon), except what `data`/`meta` point into.
 * Single-threaded: no field needs a lock (see daemon/heap.h).
 */
#ifndef GOSHM_HEAP_INTERNAL_H
#define GOSHM_HEAP_INTERNAL_H

#include <stdbool.h> /* bool */
#include <stdint.h>  /* uint*_t */

#include "heap.h"
#include "../shm/mspan.h"  /* bitmaps, sweeping */
#include "../shm/report.h" /* gs_throw */

#define GS_TLSF_SL_LOG 4
#define GS_TLSF_SL     (1u << GS_TLSF_SL_LOG)
#define GS_TLSF_FL     32u

#define GS_SIDE_BUCKETS 4   /* side records of 128, 192, 256, 320 bytes */
#define GS_SIDE_CHUNK   (256u * 1024u)
#define GS_SPAN_CHUNK   512u /* span records committed at a time */

enum { /* gs_mspan_t.list */
    GS_LIST_NONE = 0,
    GS_LIST_BIN,      /* a free run in the mheap's bins */
    GS_LIST_PARTIAL,  /* mcentral: uncached, has free slots */
    GS_LIST_FULL,     /* mcentral: uncached, no free slot at the last sweep */
    GS_LIST_CACHED,   /* cached by the slot in .owner */
    GS_LIST_LARGE,    /* a large object in use */
};

enum { /* per-page state, gs_heap.pagestate */
    GS_PAGE_RELEASED = 0, /* Prepared: not backed; reads as zero */
    GS_PAGE_READY = 1,    /* Ready: backed by fallocate; may be dirty */
};

typedef struct gs_list { uint32_t head, count; } gs_list_t;

typedef struct gs_u64vec { uint64_t *v; uint32_t n, cap; } gs_u64vec_t;

typedef struct gs_central {
    gs_list_t partial, full;
    uint64_t daemon_frees;  /* frees merged by heap-side sweeps */
    uint64_t departed_allocs, departed_frees; /* from reclaimed slots */
} gs_central_t;

typedef struct gs_slot_state {
    bool in_use;
    uint32_t pid;
    gs_list_t cached;       /* spans this slot caches */
} gs_slot_state_t;

/* The segment's layout, as the heap side set it. The copy in the data
 * memfd's header is for clients: any client can overwrite it, so the heap
 * side never reads it back. */
typedef struct gs_layout {
    uint64_t slots_off, slot_size;
    uint64_t side_off, side_size;
    uint64_t notice_off;
    uint64_t arena_off;
} gs_layout_t;

struct gs_heap {
    gs_heap_config_t cfg;
    gs_layout_t lay;
    int data_fd, meta_fd;
    char *data;                 /* data memfd, read-write */
    char *meta;                 /* meta memfd, read-write */
    uint64_t data_size, meta_size;
    gs_seg_header_t *hdr;
    gs_meta_header_t *mhdr;
    _Atomic uint32_t *pagemap;  /* span id per heap page; clients read with acquire */
    gs_mspan_t *spans;
    uint64_t max_pages, max_spans;
    uint64_t heap_pages;        /* grown */

    /* fixalloc of span records: a free list through .next plus a bump. */
    uint32_t span_free, span_bump, span_committed;
    uint64_t spans_live;
    /* side records: per-bucket free lists (private, never in client memory)
     * plus a bump over the side region, committed in chunks. */
    gs_u64vec_t side_free[GS_SIDE_BUCKETS];
    uint64_t side_bump, side_committed;

    /* mheap: TLSF bins of free runs, one set for runs with committed
     * pages ([1], "warm") and one for fully released runs ([0]). */
    uint32_t fl_bitmap[2];
    uint32_t sl_bitmap[2][GS_TLSF_FL];
    uint32_t bins[2][GS_TLSF_FL][GS_TLSF_SL];
    uint32_t bgsweep_cursor;    /* gs_heap_bgsweep's place in the span table */
    uint8_t *pagestate;         /* GS_PAGE_* per heap page */
    uint32_t scav_head, scav_tail; /* free runs with ready pages, oldest first */
    uint64_t ready_pages;       /* pages in state READY (in use or idle) */
    uint64_t idle_ready_pages;  /* READY pages in free runs */
    uint64_t free_pages;        /* pages in free runs */
    uint64_t meta_committed;    /* bytes committed in the meta memfd */

    gs_central_t central[GS_NUM_SPAN_CLASSES];
    gs_slot_state_t slots[GS_MAX_SLOTS];

    uint64_t large_allocs, large_frees, notices, bad_requests;
};

/* "sysmem.c": the memory state transitions on a memfd. */
int gs_sys_commit(int fd, uint64_t off, uint64_t len);   /* Prepared -> Ready; -ENOMEM */
int gs_sys_release(int fd, uint64_t off, uint64_t len);  /* Ready -> Prepared */
uint64_t gs_now_ns(void);

/* "fixalloc.c" */
uint32_t gs_span_record_alloc(gs_heap_t *h);             /* 0: ENOMEM */
void gs_span_record_free(gs_heap_t *h, uint32_t sid);
uint64_t gs_sidealloc(gs_heap_t *h, uint32_t awords, uint32_t fwords); /* 0: ENOMEM */
void gs_sidefree(gs_heap_t *h, uint64_t off, uint32_t awords, uint32_t fwords);

/* "mheap.c" */
int gs_mheap_alloc(gs_heap_t *h, uint64_t npages, uint32_t *sid);   /* sets .needzero */
void gs_mheap_free(gs_heap_t *h, uint32_t sid);
void gs_mheap_publish(gs_heap_t *h, uint32_t sid);                  /* page map -> sid */

/* "mcentral.c" */
void gs_list_push(gs_heap_t *h, gs_list_t *l, uint32_t sid, uint32_t which);
void gs_list_remove(gs_heap_t *h, gs_list_t *l, uint32_t sid);

static inline gs_mspan_t *gs_span(gs_heap_t *h, uint32_t sid) { return &h->spans[sid]; }
static inline gs_side_t *gs_side_of(gs_heap_t *h, const gs_mspan_t *s)
{
    return (gs_side_t *)(h->data + s->side_off);
}
static inline gs_notice_t *gs_notice_of(gs_heap_t *h, uint32_t sid)
{
    return (gs_notice_t *)(h->data + h->lay.notice_off) + sid;
}
static inline uint64_t gs_page_off(const gs_heap_t *h, uint64_t page)
{
    return h->lay.arena_off + (page << GS_PAGE_SHIFT);
}
static inline gs_slot_t *gs_slot_at(gs_heap_t *h, uint32_t slot)
{
    return (gs_slot_t *)(h->data + h->lay.slots_off + (uint64_t)slot * h->lay.slot_size);
}

#endif /* GOSHM_HEAP_INTERNAL_H */
