/* SPDX-License-Identifier: MIT */
/* names.c: the names directory's writer: NameSet, NameDel, ChanOpen, ChanUnlink, under the heap lock, undo-logged.
 *
 * Overview: shm/overview.h; the table and its seqlock: shm/names.h; the
 * API: daemon/namedir.h; the requests: daemon/ctl.c.
 *
 * Writes. Each change of an entry is one transaction of the undo log
 * (daemon/intent.c, GS_UNDO_DIRENT): the before-image is logged, then the
 * entry is written under its seqlock, then the transaction commits. A daemon
 * killed anywhere in between leaves the directory, after adoption, exactly
 * as before the request (which no client heard answered); killed after the
 * commit, exactly as after it. The one write outside a transaction: turning
 * tombstones that end a probe chain back into free buckets (after a delete,
 * walking back from a free bucket). Each such step changes a tombstone that
 * no lookup needs (nothing live lies between it and the free bucket) into a
 * free bucket: any prefix of the walk is a directory with the same
 * contents, so a crash halfway needs no undo.
 *
 * Bounds (who can take what). The directory holds at most GS_DIR_MAX live
 * entries (ENOSPC beyond). Each entry records the uid that set it
 * (SO_PEERCRED of the connection); a uid may have at most
 * --max-names-per-uid entries (default GS_NAMES_PER_UID_DEFAULT, a quarter
 * of the buckets; 0: no bound), root and goshmd's own user included: past
 * it, EDQUOT. Any attached client may delete any name (a client can write
 * every object anyway: names are a meeting point, not a permission); the
 * deleted entry's count goes back to the uid that set it.
 *
 * Channels. A CHAN entry holds the directory's reference on the channel
 * buffer (daemon/bufref.h): taken before the entry is written, dropped after
 * the tombstone is committed. A crash between the two leaks one reference
 * (the channel is never freed), never a reference too few (a channel freed
 * while named). Each CHAN entry has an eventfd (goshm_chan_fd), made lazily
 * at the first ChanOpen that finds or creates it and kept here, by bucket,
 * until the entry is unlinked; an adopting daemon makes new ones.
 */
#define _GNU_SOURCE
#include "heap_internal.h"
#include "bufref.h"

#include <stdio.h>        /* snprintf */
#include <string.h>       /* memcpy, memset */
#include <sys/eventfd.h>  /* eventfd */
#include <sys/resource.h> /* getrlimit */
#include <unistd.h>       /* close */

static const gs_dirent_t *dir_at(const gs_heap_t *h, uint32_t b) { return &h->dir[b & (GS_DIR_CAP - 1u)]; }

void gs_names_init(gs_heap_t *h)
{
    if (!h->names.per_uid) h->names.per_uid = GS_NAMES_PER_UID_DEFAULT;
}

void gs_names_fini(gs_heap_t *h)
{
    for (uint32_t b = 0; b < GS_DIR_CAP; b++) {
        if (h->names.efd1[b] > 0) close(h->names.efd1[b] - 1);
        h->names.efd1[b] = 0;
    }
}

void gs_heap_names_set_limit(gs_heap_t *h, uint32_t per_uid) { h->names.per_uid = per_uid; }
uint32_t gs_heap_names_live(const gs_heap_t *h) { return h->names.live; }

/* The bucket of the live entry (kind, name), or -1; *slot (if not NULL)
 * gets the first bucket an insert may take (a tombstone or the free bucket
 * that ended the probe), or -1 if none was met. The heap side's own
 * entries: read directly (it is their only writer). */
static int find(const gs_heap_t *h, uint8_t kind, const char *name, size_t len, int *slot)
{
    uint32_t b = gs_dir_hash(kind, name, len);
    if (slot) *slot = -1;
    for (uint32_t i = 0; i < GS_DIR_CAP; i++, b++) {
        const gs_dirent_t *e = dir_at(h, b);
        if (e->kind == GS_DIR_FREE) {
            if (slot && *slot < 0) *slot = (int)(b & (GS_DIR_CAP - 1u));
            return -1;
        }
        if (e->kind == GS_DIR_TOMB) {
            if (slot && *slot < 0) *slot = (int)(b & (GS_DIR_CAP - 1u));
            continue;
        }
        if (gs_dirent_is(e, kind, name, len)) return (int)(b & (GS_DIR_CAP - 1u));
    }
    return -1;
}

/* Write bucket b (inside a transaction: its before-image is logged first),
 * under its seqlock (shm/names.h). */
static void write_entry(gs_heap_t *h, uint32_t b, const gs_dirent_t *v)
{
    gs_txn_dirent(h, b);
    gs_dirent_t *d = &h->dir[b];
    uint32_t s = gs_load_relaxed(&d->xseq);
    gs_store_relaxed(&d->xseq, s + 1u);
    /* Release stores: the odd value is visible before any field changes (a
     * reader that sees a new field then sees xseq changed: shm/names.h). */
    gs_dirent_store(d, v);
    gs_killpoint("name-write");
    gs_store_release(&d->xseq, s + 2u);
}

static gs_names_uid_t *uid_row(gs_heap_t *h, uint32_t uid, bool add)
{
    gs_names_uid_t *free_row = NULL;
    for (uint32_t i = 0; i < GS_NAMES_UIDS; i++) {
        gs_names_uid_t *r = &h->names.uids[i];
        if (r->count && r->uid == uid) return r;
        if (!r->count && !free_row) free_row = r;
    }
    if (!add || !free_row) return NULL;
    free_row->uid = uid;
    return free_row;
}

/* Room for one more entry of uid? 0, -ENOSPC or -EDQUOT. */
static int room_for(gs_heap_t *h, uint32_t uid)
{
    if (h->names.live >= GS_DIR_MAX) return -ENOSPC;
    gs_names_uid_t *r = uid_row(h, uid, false);
    uint32_t have = r ? r->count : 0;
    if (h->names.per_uid && have >= h->names.per_uid) return -EDQUOT;
    if (!r && !uid_row(h, uid, true)) return -ENOSPC; /* GS_NAMES_UIDS uids have entries */
    return 0;
}

static void count_add(gs_heap_t *h, uint32_t uid)
{
    gs_names_uid_t *r = uid_row(h, uid, true);
    if (r) r->count++;
    h->names.live++;
}

static void count_drop(gs_heap_t *h, uint32_t uid)
{
    gs_names_uid_t *r = uid_row(h, uid, false);
    if (r && r->count) r->count--;
    if (h->names.live) h->names.live--;
}

/* Insert (kind, name) at bucket b, one transaction. */
static void insert(gs_heap_t *h, uint32_t b, uint8_t kind, uint32_t uid, const char *name, size_t len, uint64_t off,
                   uint64_t id, uint32_t cap)
{
    gs_dirent_t v;
    memset(&v, 0, sizeof v);
    v.kind = kind;
    v.len = (uint8_t)len;
    memcpy(v.name, name, len);
    v.off = off;
    v.id = id;
    v.cap = cap;
    v.uid = uid;
    gs_txn_begin(h);
    write_entry(h, b, &v);
    gs_txn_end(h);
    count_add(h, uid);
}

/* Remove the entry at bucket b (a tombstone, one transaction), then give
 * back to the free state the tombstones that end its probe chain. */
static void remove_at(gs_heap_t *h, uint32_t b)
{
    uint32_t uid = h->dir[b].uid;
    gs_dirent_t v;
    memset(&v, 0, sizeof v);
    v.kind = GS_DIR_TOMB;
    gs_txn_begin(h);
    write_entry(h, b, &v);
    gs_txn_end(h);
    count_drop(h, uid);
    if (h->dir[(b + 1u) & (GS_DIR_CAP - 1u)].kind != GS_DIR_FREE) return;
    memset(&v, 0, sizeof v); /* GS_DIR_FREE */
    for (uint32_t i = 0; i < GS_DIR_CAP && h->dir[b].kind == GS_DIR_TOMB; i++) {
        write_entry(h, b, &v); /* outside a transaction: see the top of this file */
        b = (b - 1u) & (GS_DIR_CAP - 1u);
    }
}

/* Is off inside the object area grown so far? */
static bool off_ok(const gs_heap_t *h, uint64_t off)
{
    return off >= h->lay.arena_off && off - h->lay.arena_off < (h->heap_pages << GS_PAGE_SHIFT);
}

/* Retry the releases that found a channel locked (EBUSY) before. */
static void retry_pending(gs_heap_t *h)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < h->names.npending; i++) {
        int rc = gs_heap_buf_release(h, h->names.pending[i].off, h->names.pending[i].id);
        if (rc == -EBUSY) h->names.pending[k++] = h->names.pending[i];
    }
    h->names.npending = k;
}

int gs_heap_name_set(gs_heap_t *h, uint32_t uid, const char *name, size_t len, uint64_t off)
{
    if (!gs_name_valid_n(name, len) || !off_ok(h, off)) return gs_heap_bad(h);
    int slot;
    if (find(h, GS_DIR_NAME, name, len, &slot) >= 0) return -EEXIST;
    int rc = room_for(h, uid);
    if (rc) return rc;
    if (slot < 0) return -ENOSPC; /* cannot happen: live < GS_DIR_MAX < GS_DIR_CAP */
    insert(h, (uint32_t)slot, GS_DIR_NAME, uid, name, len, off, 0, 0);
    return 0;
}

int gs_heap_name_del(gs_heap_t *h, const char *name, size_t len)
{
    if (!gs_name_valid_n(name, len)) return gs_heap_bad(h);
    int b = find(h, GS_DIR_NAME, name, len, NULL);
    if (b < 0) return -ENOENT;
    remove_at(h, (uint32_t)b);
    return 0;
}

/* Descriptors goshmd keeps for everything else: per client slot its
 * connection, slot memfd, doorbell and a spare, plus listeners, pending
 * connections, the data and meta memfds, logs. */
#define EFD_RESERVE_FIXED 96u
#define EFD_RESERVE_PER_SLOT 4u

/* May one more channel eventfd be made? Channels' eventfds live as long as
 * their entries, and one user may hold --max-names-per-uid (2048) of
 * those: with systemd's default soft limit of 1024 descriptors, a client
 * that made channels until the directory refused took every descriptor
 * goshmd had, so nobody could attach or even ask for statistics (accept
 * failed with EMFILE; tests/ipc/test-chan-attack.c, "fds"). So channel
 * eventfds are bounded by the descriptor limit minus a reserve for the
 * rest; past it a new channel is refused (EMFILE) and existing ones work.
 * Counted when a new one is made (a scan of the directory's table, only
 * then). */
static bool efd_room(const gs_heap_t *h)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return true;
    uint64_t reserve = EFD_RESERVE_FIXED + (uint64_t)EFD_RESERVE_PER_SLOT * h->cfg.max_slots;
    if (rl.rlim_cur <= reserve) return false;
    uint64_t n = 0;
    for (uint32_t b = 0; b < GS_DIR_CAP; b++) n += h->names.efd1[b] > 0;
    return n < rl.rlim_cur - reserve;
}

/* The eventfd of the channel at bucket b, made now if it has none. */
static int chan_efd(gs_heap_t *h, uint32_t b, int *efd)
{
    if (h->names.efd1[b] <= 0) {
        if (!efd_room(h)) return -EMFILE;
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0) return -errno;
        h->names.efd1[b] = fd + 1;
    }
    *efd = h->names.efd1[b] - 1;
    return 0;
}

int gs_heap_chan_open(gs_heap_t *h, uint32_t uid, const char *name, size_t len, uint32_t cap, uint64_t create_off,
                      uint64_t create_id, uint64_t *off, uint64_t *id, uint32_t *cap_out, bool *created, int *efd)
{
    *created = false;
    *efd = -1;
    if (!gs_name_valid_n(name, len)) return gs_heap_bad(h);
    retry_pending(h);
    int slot;
    int b = find(h, GS_DIR_CHAN, name, len, &slot);
    if (b < 0) {
        if (create_off == 0) return -ENOENT;
        if (!off_ok(h, create_off) || !gs_heap_chan_valid(h, create_off, create_id, cap)) return gs_heap_bad(h);
        int rc = room_for(h, uid);
        if (rc) return rc;
        if (slot < 0) return -ENOSPC;
        /* The eventfd before the reference: nothing to undo if it fails. */
        int fd = -1;
        if ((rc = chan_efd(h, (uint32_t)slot, &fd))) return rc;
        if ((rc = gs_heap_buf_retain(h, create_off, create_id))) {
            close(fd);
            h->names.efd1[slot] = 0;
            return rc;
        }
        insert(h, (uint32_t)slot, GS_DIR_CHAN, uid, name, len, create_off, create_id, cap);
        b = slot;
        *created = true;
    }
    const gs_dirent_t *e = &h->dir[b];
    *off = e->off;
    *id = e->id;
    *cap_out = e->cap;
    return chan_efd(h, (uint32_t)b, efd);
}

int gs_heap_chan_unlink(gs_heap_t *h, const char *name, size_t len)
{
    if (!gs_name_valid_n(name, len)) return gs_heap_bad(h);
    retry_pending(h);
    int b = find(h, GS_DIR_CHAN, name, len, NULL);
    if (b < 0) return -ENOENT;
    uint64_t off = h->dir[b].off, id = h->dir[b].id;
    remove_at(h, (uint32_t)b);
    if (h->names.efd1[b] > 0) close(h->names.efd1[b] - 1);
    h->names.efd1[b] = 0;
    /* After the tombstone's commit: a crash before this leaks the reference
     * (see the top of this file). A channel locked past the deadline by a
     * live process: retried at the next directory request. Limit: the
     * list holds GS_NAMES_PENDING; past that the reference leaks (the
     * channel is never freed). A client that keeps 64 unlinked channels
     * locked fills it, so a victim's unlink that finds its channel locked
     * for a moment (a retain or release in progress past the tick's spin
     * budget, daemon/bufref.c) leaks that channel. */
    if (gs_heap_buf_release(h, off, id) == -EBUSY && h->names.npending < GS_NAMES_PENDING)
        h->names.pending[h->names.npending++] = (typeof(h->names.pending[0])){off, id};
    return 0;
}

uint32_t gs_heap_names_list(gs_heap_t *h, uint32_t from, gs_dirent_t *out, uint32_t max, uint32_t *n)
{
    *n = 0;
    uint32_t b = from;
    for (; b < GS_DIR_CAP && *n < max; b++) {
        const gs_dirent_t *e = &h->dir[b];
        if (e->kind == GS_DIR_NAME || e->kind == GS_DIR_CHAN) out[(*n)++] = *e;
    }
    return b < GS_DIR_CAP ? b : 0;
}

int gs_names_check(gs_heap_t *h)
{
    uint32_t live = 0;
    uint32_t per_row[GS_NAMES_UIDS] = {0};
    for (uint32_t b = 0; b < GS_DIR_CAP; b++) {
        const gs_dirent_t *e = &h->dir[b];
        if (gs_load_relaxed(&((gs_dirent_t *)e)->xseq) & 1u) {
            gs_printf("goshm: heap check: names bucket %u is being written\n", b);
            return -EFAULT;
        }
        if (e->kind == GS_DIR_FREE || e->kind == GS_DIR_TOMB) continue;
        if ((e->kind != GS_DIR_NAME && e->kind != GS_DIR_CHAN) || !gs_name_valid_n(e->name, e->len) ||
            find(h, e->kind, e->name, e->len, NULL) != (int)b) {
            gs_printf("goshm: heap check: names bucket %u: bad entry, or its lookup does not find it\n", b);
            return -EFAULT;
        }
        live++;
        for (uint32_t i = 0; i < GS_NAMES_UIDS; i++)
            if (h->names.uids[i].count && h->names.uids[i].uid == e->uid) {
                per_row[i]++;
                break;
            }
    }
    bool rows_ok = true;
    for (uint32_t i = 0; i < GS_NAMES_UIDS; i++) rows_ok = rows_ok && per_row[i] == h->names.uids[i].count;
    if (live != h->names.live || !rows_ok) {
        gs_printf("goshm: heap check: names directory holds %u entries, counted %u (or a uid's count is off)\n", live,
                  h->names.live);
        return -EFAULT;
    }
    return 0;
}

int gs_names_adopt(gs_heap_t *h, char *err, size_t errlen)
{
    memset(h->names.uids, 0, sizeof h->names.uids);
    h->names.live = 0;
    gs_names_init(h);
    for (uint32_t b = 0; b < GS_DIR_CAP; b++) {
        gs_dirent_t *e = &h->dir[b];
        uint32_t s = gs_load_relaxed(&e->xseq);
        /* Odd after the undo: only a tombstone-to-free step can have been
         * cut (it is outside any transaction), and either kind is right. */
        if (s & 1u) gs_store_relaxed(&e->xseq, s + 1u);
        switch (e->kind) {
        case GS_DIR_FREE:
        case GS_DIR_TOMB:
            continue;
        case GS_DIR_NAME:
        case GS_DIR_CHAN:
            break;
        default:
            snprintf(err, errlen, "inconsistent heap: names directory bucket %u has kind %u", b, e->kind);
            return -EUCLEAN;
        }
        if (!gs_name_valid_n(e->name, e->len) || (e->kind == GS_DIR_NAME && !off_ok(h, e->off)) ||
            (e->kind == GS_DIR_CHAN && !off_ok(h, e->off))) {
            snprintf(err, errlen, "inconsistent heap: names directory bucket %u holds a bad entry", b);
            return -EUCLEAN;
        }
        if (h->names.live >= GS_DIR_MAX) {
            snprintf(err, errlen, "inconsistent heap: more than %u names in the directory", GS_DIR_MAX);
            return -EUCLEAN;
        }
        gs_names_uid_t *r = uid_row(h, e->uid, true);
        if (r) r->count++;
        h->names.live++;
    }
    return 0;
}
