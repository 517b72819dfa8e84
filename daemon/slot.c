/* SPDX-License-Identifier: MIT */
/* slot.c: client slots: claim, abandon, reclaim, and what a slot reports (the life of a slot on the heap side).
 *
 * Overview: shm/overview.h; the slot's shared record: shm/segment.h
 * (gs_slot_t). A client claims a slot when it attaches; the slot owns the
 * spans its mcaches cache. Reclaim, when the client detaches or dies, takes
 * every cached span back with the freeindex the client published, so the
 * slots it had not handed out become free again. Before that, the large
 * objects a dead client never read are abandoned: the serve unit, which
 * remembers which completions carried one (daemon/serve.c,
 * gs_serve_slot_close), names them to gs_heap_large_abandon.
 *
 * Each slot is a memfd of its own (issue 7, point 4): created here at claim,
 * sealed (no shrink, no grow, no further seal) and committed, mapped by the
 * heap side for itself, and passed by the control plane to the one client
 * that claimed it. No other client can reach its ring, so the ring a request
 * comes in on names the requester. At reclaim the heap side unmaps it and
 * closes its descriptor: the pages go away with the last reference (the
 * client's mapping, or nothing if the client is dead). A client that punches
 * or scribbles its own slot hurts only itself: the serve unit copies each
 * entry out once and validates it, and the counters are statistics.
 */
#define _GNU_SOURCE
#include "heap_internal.h"
#include "bufref.h"

#include <errno.h>  /* ENOSPC */
#include <signal.h> /* kill */
#include <stdio.h>  /* snprintf, renameat */
#include <stdlib.h> /* strtoull */
#include <string.h> /* memset, strrchr */
#include <sys/mman.h> /* mmap, munmap */
#include <fcntl.h>  /* open */
#include <unistd.h> /* read, close */
#include <sys/stat.h> /* fstat */

/* The start time of process pid (clock ticks since boot, field 22 of
 * /proc/PID/stat): with the pid, it names one process for good, so a pid
 * reused after its owner died is not taken for the owner. 0 if unknown. */
uint64_t gs_proc_starttime(uint32_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%u/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and ')' */
    if (!p) return 0;
    /* After ") ": field 3 (state) onwards; starttime is field 22. */
    int field = 2;
    for (; *p && field < 22; p++)
        if (*p == ' ') field++;
    return field == 22 ? strtoull(p, NULL, 10) : 0;
}

bool gs_proc_alive(uint32_t pid, uint64_t starttime)
{
    if (pid == 0) return false;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return false;
    uint64_t now = gs_proc_starttime(pid);
    /* Unknown on either side (/proc hidden): the pid alone decides. A zombie
     * still has its stat; it is gone for our purposes only once reaped,
     * which a dead client's parent does soon enough. */
    return starttime == 0 || now == 0 || now == starttime;
}

/* The persistent record of a slot (shm/segment.h, gs_pslot_t): owner first,
 * then the state with a release store. */
static void pslot_set(gs_heap_t *h, uint32_t i, uint32_t pid, uint32_t gen)
{
    gs_pslot_t *p = &h->pslots[i];
    if (pid) {
        gs_store_release(&p->xstate, 0);
        p->pid = pid;
        p->starttime = gs_proc_starttime(pid);
        p->generation = gen;
        p->large_sid = 0;
        gs_store_release(&p->xstate, 1);
    } else {
        gs_store_release(&p->xstate, 0);
    }
}

/* With a state directory, a slot's memory is a file there, named
 * goshm-slot-N once it is complete (an unnamed file first, then linked in
 * place of the previous one): the next daemon reads the reference records
 * of a client that died while none ran (gs_slot_old_open). The directory
 * is the daemon's, 0700: no other user can open the file; the client gets
 * its descriptor as it gets a memfd's. Any failure: a memfd, as without.
 * An adopted orphan's new file is named goshm-slot-N.new until its client
 * resumes (and moves its records into it): until then the old file, which
 * has them, keeps the name, for a next adopter if this daemon dies too. */
static int slot_file(gs_heap_t *h, uint32_t i)
{
    int dfd = h->slotdir_fd1 - 1;
    int fd = openat(dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    char name[40], proc[64];
    snprintf(name, sizeof name, "goshm-slot-%u%s", i, h->slots[i].old_map ? ".new" : "");
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (ftruncate(fd, GS_SLOT_MAP_SIZE) != 0 || (unlinkat(dfd, name, 0) != 0 && errno != ENOENT) ||
        linkat(AT_FDCWD, proc, dfd, name, AT_SYMLINK_FOLLOW) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void gs_slot_old_open(gs_heap_t *h, uint32_t i)
{
    if (h->slotdir_fd1 <= 0 || h->slots[i].old_map) return;
    char name[32];
    snprintf(name, sizeof name, "goshm-slot-%u", i);
    int fd = openat(h->slotdir_fd1 - 1, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return;
    struct stat st;
    void *p = MAP_FAILED;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == GS_SLOT_MAP_SIZE)
        p = mmap(NULL, GS_SLOT_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p != MAP_FAILED) h->slots[i].old_map = p;
}

int gs_slot_memfd_open(gs_heap_t *h, uint32_t i, uint32_t pid)
{
    int fd = h->slotdir_fd1 > 0 && !h->dry_run ? slot_file(h, i) : -1;
    int rc = fd >= 0 ? 0 : gs_make_memfd("goshm-slot", GS_SLOT_MAP_SIZE, true, &fd);
    if (rc) return rc;
    /* Ready before the client touches it: no SIGBUS on a full tmpfs. */
    rc = gs_sys_commit(fd, 0, GS_SLOT_MAP_SIZE);
    gs_slot_t *s = rc ? MAP_FAILED : mmap(NULL, GS_SLOT_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (s == MAP_FAILED) {
        if (!rc) rc = -errno;
        close(fd);
        return rc;
    }
    /* A fresh memfd reads as zero: the rings are empty. */
    h->slots[i].generation++;
    s->pid = pid;
    s->generation = h->slots[i].generation;
    h->slots[i].fd = fd;
    h->slots[i].map = s;
    return 0;
}

int gs_heap_slot_claim(gs_heap_t *h, uint32_t pid)
{
    for (uint32_t i = 0; i < h->cfg.max_slots; i++) {
        if (h->slots[i].in_use) continue;
        int rc = gs_slot_memfd_open(h, i, pid);
        if (rc) return rc;
        h->slots[i].in_use = true;
        h->slots[i].orphan = false;
        h->slots[i].pid = pid;
        pslot_set(h, i, pid, h->slots[i].generation);
        h->slots[i].cached.head = 0;
        h->slots[i].cached.count = 0;
        gs_owners_attach(&h->owners, i, pid);
        h->slots[i].inflight = (gs_spanlist_t){0};
        return (int)i;
    }
    return -ENOSPC;
}

bool gs_heap_slot_in_use(const gs_heap_t *h, uint32_t slot)
{
    return slot < h->cfg.max_slots && h->slots[slot].in_use;
}

/* A large object whose allocation the client never read: free it. */
int gs_heap_large_abandon(gs_heap_t *h, uint32_t slot, uint32_t sid)
{
    if (sid == 0 || sid >= h->span_bump || gs_span(h, sid)->state != GS_SPAN_LARGE) return gs_heap_bad(h);
    gs_mspan_t *s = gs_span(h, sid);
    gs_heap_large_land(h, slot, sid); /* never reached its owner: nobody else may free it */
    /* As if freed: if some process did free it meanwhile, the bit is set
     * already and this changes nothing. */
    if (s->state != GS_SPAN_LARGE) return 0; /* landing found it freed and took it back */
    gs_fetch_or_seqcst(&gs_side_freed(gs_side_of(h, s), s->awords)[0], UINT64_C(1));
    gs_sweep_large(h, sid);
    return 0;
}

int gs_heap_slot_reclaim(gs_heap_t *h, uint32_t slot)
{
    if (!gs_heap_slot_in_use(h, slot)) return gs_heap_bad(h);
    /* First, while its memfd is mapped and its spans still cached: finish
     * or undo its buffer/channel operation and drop the references it held
     * (daemon/bufref.c). Objects freed there are swept with the spans
     * below. */
    gs_heap_bufref_reclaim(h, slot);
    while (h->slots[slot].cached.head) gs_mcentral_uncache(h, h->slots[slot].cached.head);
    /* Large objects it did read: its to free (or leak), like any object. */
    while (h->slots[slot].inflight.head) gs_heap_large_land(h, slot, h->slots[slot].inflight.head);
    gs_slot_t *sl = gs_slot_at(h, slot);
    for (uint32_t c = 0; sl && c < GS_NUM_SIZE_CLASSES; c++) {
        /* Untrusted counters, for statistics only. */
        h->central[c * 2u].departed_allocs += gs_load_relaxed(&sl->stats[c].xallocs);
        h->central[c * 2u].departed_frees += gs_load_relaxed(&sl->stats[c].xfrees);
    }
    /* Its live bytes are now a departed client's (daemon/owners.h). */
    gs_owners_depart(&h->owners, slot, gs_now_ns(), gs_heap_owner_walk, h);
    /* Every span is back: only now may the persistent record say free
     * (a crash before this store leaves a claimed slot the adopter
     * reclaims again, finding nothing or what is left). */
    pslot_set(h, slot, 0, 0);
    h->slots[slot].in_use = false;
    h->slots[slot].orphan = false;
    h->slots[slot].pid = 0;
    gs_quota_slot_close(h, slot); /* its uid keeps its large objects' charge */
    /* The data plane let go of the ring before (gs_dp_remove_slot, or the
     * in-process seam's close); nothing of ours points into it any more. */
    if (sl) munmap(sl, GS_SLOT_MAP_SIZE);
    if (h->slots[slot].fd >= 0) close(h->slots[slot].fd);
    h->slots[slot].map = NULL;
    h->slots[slot].fd = -1;
    /* A removal is a serve pass of its own: frees the dead client made into
     * spans it no longer owns are swept now, not at the next tick. */
    gs_heap_drain_notices(h);
    gs_assert_expensive(h);
    return 0;
}

/* Per-client statistics for the control plane (daemon/ctl.c). The counters
 * live in the client's slot and are client-written: reported as they are,
 * never used for a decision. */
uint32_t gs_heap_slot_cached_spans(gs_heap_t *h, uint32_t slot)
{
    if (!gs_heap_slot_in_use(h, slot)) return 0;
    return h->slots[slot].cached.count;
}

void gs_heap_slot_counts(gs_heap_t *h, uint32_t slot, uint64_t *allocs, uint64_t *frees, uint64_t *large_allocs,
                         uint64_t *large_frees)
{
    *allocs = *frees = *large_allocs = *large_frees = 0;
    if (!gs_heap_slot_in_use(h, slot)) return;
    gs_slot_t *s = gs_slot_at(h, slot);
    for (uint32_t c = 0; c < GS_NUM_SIZE_CLASSES; c++) {
        *allocs += gs_load_relaxed(&s->stats[c].xallocs);
        *frees += gs_load_relaxed(&s->stats[c].xfrees);
    }
    *large_allocs = gs_load_relaxed(&s->xlarge_allocs);
    *large_frees = gs_load_relaxed(&s->xlarge_frees);
}

bool gs_heap_slot_orphan(const gs_heap_t *h, uint32_t slot)
{
    return gs_heap_slot_in_use(h, slot) && h->slots[slot].orphan;
}

uint32_t gs_heap_slot_pid(const gs_heap_t *h, uint32_t slot)
{
    return gs_heap_slot_in_use(h, slot) ? h->slots[slot].pid : 0;
}

/* Only the process that held the slot gets it back (pid from SO_PEERCRED,
 * checked against the persistent record's pid and start time): its
 * mcaches still allocate from the spans the slot caches, so they must not
 * go to anyone else, and nobody else may take them. */
int gs_heap_slot_resume(gs_heap_t *h, uint32_t slot, uint32_t pid, uint32_t last_tag)
{
    if (!gs_heap_slot_orphan(h, slot)) return -ESRCH;
    const gs_pslot_t *p = &h->pslots[slot];
    if (p->pid != pid || !gs_proc_alive(pid, p->starttime)) return -ESRCH;
    /* The slot memfd is the fresh one adoption made for the orphan
     * (daemon/adopt.c): nobody has mapped it yet, its rings are empty, and
     * the client maps it in place of its old one (client/reconnect.c),
     * restarting its indices at 0 and submitting again what the old daemon
     * did not answer. */
    h->slots[slot].orphan = false;
    /* Its records move from its old slot into the new one (client/buf.c):
     * ours to forget. */
    if (h->slots[slot].old_map) {
        munmap(h->slots[slot].old_map, GS_SLOT_MAP_SIZE);
        h->slots[slot].old_map = NULL;
        char from[40], to[40];
        snprintf(from, sizeof from, "goshm-slot-%u.new", slot);
        snprintf(to, sizeof to, "goshm-slot-%u", slot);
        if (h->slotdir_fd1 > 0) renameat(h->slotdir_fd1 - 1, from, h->slotdir_fd1 - 1, to);
    }
    /* The last large allocation, if its request came after the last answer
     * the client read: it never got it (nobody else knows the span), so it
     * goes back. The tag is the client's word: a lie only frees its own
     * object. */
    gs_pslot_t *ps = &h->pslots[slot];
    uint32_t sid = ps->large_sid;
    bool unread = (int32_t)(ps->large_tag - last_tag) > 0;
    /* Forgotten first: a crash between the two leaks the object rather
     * than freeing, at the next resume, a span reused by someone else. */
    ps->large_sid = 0;
    gs_fence_seqcst();
    if (sid && unread && sid < h->span_bump && gs_span(h, sid)->state == GS_SPAN_LARGE)
        gs_heap_large_abandon(h, slot, sid);
    /* Every other large object in flight to it was read (its answer came
     * before the last one the client read): it is the client's now. */
    while (h->slots[slot].inflight.head) gs_heap_large_land(h, slot, h->slots[slot].inflight.head);
    return 0;
}

/* Quotas after a resume: adoption cleared every span's charge (the charge
 * tables were private to the previous daemon); the spans this slot caches
 * are charged to it again. */
void gs_heap_slot_recharge(gs_heap_t *h, uint32_t slot)
{
    if (!gs_heap_slot_in_use(h, slot)) return;
    for (uint32_t sid = h->slots[slot].cached.head; sid; sid = gs_span(h, sid)->next)
        gs_quota_span_take(h, slot, gs_span(h, sid));
}

uint32_t gs_heap_orphans_reap(gs_heap_t *h)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < h->cfg.max_slots; i++) {
        if (!gs_heap_slot_orphan(h, i)) continue;
        if (gs_proc_alive(h->pslots[i].pid, h->pslots[i].starttime)) continue;
        gs_heap_slot_reclaim(h, i);
        n++;
    }
    return n;
}
