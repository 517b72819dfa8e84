/* SPDX-License-Identifier: MIT */
/* namedir.h: the heap side of the names directory: NameSet, NameDel, ChanOpen, ChanUnlink, adoption.
 *
 * Overview: shm/overview.h; the directory's layout and seqlock:
 * shm/names.h; the code: daemon/names.c. Every call takes the heap lock's
 * discipline of daemon/heap.h (the caller holds it) and validates what it
 * is given: a name (1..63 printable ASCII bytes, no '/'), an offset (inside
 * the grown object area), a channel buffer (daemon/bufref.h). Results are
 * 0 or -errno; a request that cannot be right is counted as a bad request.
 */
#ifndef GOSHM_NAMEDIR_H
#define GOSHM_NAMEDIR_H

#include <stdbool.h> /* bool */
#include <stddef.h>  /* size_t */
#include <stdint.h>  /* uint*_t */

#include "heap.h"
#include "names.h"

/* The per-uid bound (see daemon/names.c): names and channels one uid may
 * have in the directory. Default: a quarter of the buckets. */
#define GS_NAMES_PER_UID_DEFAULT (GS_DIR_CAP / 4u)
#define GS_NAMES_UIDS 128u        /* distinct uids with entries at once */
#define GS_NAMES_PENDING 64u      /* channel references whose release must be retried */

typedef struct gs_names_uid {
    uint32_t uid, count;          /* count 0: the row is free */
} gs_names_uid_t;

/* Private to the heap side, rebuilt from the directory at adoption. */
typedef struct gs_names_state {
    uint32_t live;                /* NAME and CHAN entries */
    uint32_t per_uid;             /* the bound; 0: none */
    gs_names_uid_t uids[GS_NAMES_UIDS];
    int efd1[GS_DIR_CAP];         /* per bucket: the channel's eventfd + 1; 0: none yet */
    struct { uint64_t off, id; } pending[GS_NAMES_PENDING]; /* unlinked channels not released yet (EBUSY) */
    uint32_t npending;
} gs_names_state_t;

void gs_names_init(gs_heap_t *h);
void gs_names_fini(gs_heap_t *h);  /* closes the eventfds */
/* Adoption (daemon/adopt.c), after the undo: check every entry, rebuild the
 * counts. 0, or -EUCLEAN with err set. */
int gs_names_adopt(gs_heap_t *h, char *err, size_t errlen);

/* The per-uid bound (--max-names-per-uid; 0: none). */
void gs_heap_names_set_limit(gs_heap_t *h, uint32_t per_uid);

/* NameSet: 0, -EINVAL (bad name or offset), -EEXIST, -ENOSPC (directory
 * full), -EDQUOT (uid's bound). */
int gs_heap_name_set(gs_heap_t *h, uint32_t uid, const char *name, size_t len, uint64_t off);
/* NameDel: 0, -EINVAL, -ENOENT. */
int gs_heap_name_del(gs_heap_t *h, const char *name, size_t len);
/* ChanOpen (issue 10 design, section 3): the registered channel, or, if
 * none and create_off != 0, register the channel buffer create_off/id
 * (capacity cap) taking the directory's reference on it. *efd is the
 * channel's eventfd, still owned by the heap side (send a copy). 0,
 * -EINVAL, -ENOENT, -ENOSPC, -EDQUOT, -EBUSY, -EMFILE. */
int gs_heap_chan_open(gs_heap_t *h, uint32_t uid, const char *name, size_t len, uint32_t cap, uint64_t create_off,
                      uint64_t create_id, uint64_t *off, uint64_t *id, uint32_t *cap_out, bool *created, int *efd);
/* ChanUnlink: remove the entry, drop the directory's reference. 0, -EINVAL, -ENOENT. */
int gs_heap_chan_unlink(gs_heap_t *h, const char *name, size_t len);
/* Listing (goshmctl names): consistent copies of the live entries in
 * buckets [from, ...), at most max into out; *n gets how many. Returns the
 * bucket to go on from, 0 when the table is done. */
uint32_t gs_heap_names_list(gs_heap_t *h, uint32_t from, gs_dirent_t *out, uint32_t max, uint32_t *n);
/* The directory's invariants: known kinds, even seqlocks, valid names,
 * every live entry found by its own lookup (no duplicate, no broken probe
 * chain), the counts. 0, or -EFAULT after printing what is broken
 * (gs_heap_check calls it). */
int gs_names_check(gs_heap_t *h);
/* Live entries now (statistics, tests). */
uint32_t gs_heap_names_live(const gs_heap_t *h);

#endif /* GOSHM_NAMEDIR_H */
