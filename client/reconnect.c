/* SPDX-License-Identifier: MIT */
/* reconnect.c: libgoshm when its daemon goes away: wait for a goshmd that adopted the same heap, and resume the slot there.
 *
 * Overview: shm/overview.h; the daemon's side: daemon/adopt.c (orphan
 * slots) and daemon/ctl.c (Attach with resume_slot). A goshmd that keeps its
 * heap (--state-dir, --fd-store) leaves its clients' slots claimed when it
 * stops or dies; the goshmd that adopts the heap keeps each slot whose
 * process still runs, with every span it caches, as an orphan. So while no
 * daemon answers, this process goes on allocating from its mcaches and
 * freeing anything, and nobody else can be handed those spans' slots. A
 * call that needs the daemon ends up here (client/ring.c): we connect to
 * the same socket path every 50 ms until GOSHM_RECONNECT_S seconds have
 * passed, and send Attach with our heap id and slot. The daemon gives the
 * slot back only to the process that held it (SO_PEERCRED pid and start
 * time) and only if it adopted that heap id; then the mapping we have is
 * the same heap (the same files), the slot's spans are ours again and the
 * ring starts afresh at index 0. A daemon serving another heap id answers
 * ESRCH: the handle is dead (ECONNRESET from then on), since our offsets
 * mean nothing there; the memory already mapped stays usable.
 */
#define _GNU_SOURCE
#include "client.h"

#include <errno.h>  /* errno */
#include <stdlib.h> /* getenv, strtoul */
#include <sys/mman.h> /* mmap */
#include <time.h>   /* nanosleep */
#include <unistd.h> /* close */

#include "clock.h"

#define RETRY_NS (50u * 1000u * 1000u)
#define DEFAULT_RECONNECT_S 30u

/* GOSHM_RECONNECT_S: seconds, 0..86400; anything else: the default. */
static uint64_t reconnect_ns(void)
{
    const char *e = getenv("GOSHM_RECONNECT_S");
    unsigned long v = DEFAULT_RECONNECT_S;
    if (e && *e) {
        char *end;
        errno = 0;
        unsigned long x = strtoul(e, &end, 10);
        if (!errno && !*end && x <= 86400u) v = x;
    }
    return (uint64_t)v * 1000000000u;
}

int gs_svc_reconnect(svc_seam_t *s)
{
    struct goshm *h = s->h;
    if (s->sock >= 0) close(s->sock);
    if (s->doorbell >= 0) close(s->doorbell);
    s->sock = s->doorbell = -1;
    s->late_replies = 0; /* replies owed on the old connection die with it */
    uint64_t deadline = gs_now_ns() + (s->gave_up ? 0 : reconnect_ns());
    uint64_t heap_id = s->heap_id, epoch = s->epoch;
    for (;;) {
        gs_attach_reply_t ar;
        s->resume_slot = h->slot + 1u;
        int rc = gs_svc_attach(s, &ar);
        s->resume_slot = 0;
        if (rc == 0) {
            /* The data and meta files are those we have mapped (same heap
             * id, same layout); the slot memfd is a fresh one. It replaces
             * ours without unmapping the old: other threads may be adding
             * to its counters right now (a few KiB per restart). */
            void *p = MAP_FAILED;
            if (!s->resumed || ar.slot != h->slot || s->heap_id != heap_id || s->epoch != epoch ||
                !gs_attach_agrees(h->mhdr, ar.slot, ar.max_slots, ar.data_size, ar.meta_size, ar.slot_size, epoch))
                rc = -ESRCH;
            else
                p = mmap(NULL, GS_SLOT_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ar.slot_fd, 0);
            gs_attach_reply_close(&ar);
            if (!rc && p == MAP_FAILED) rc = -ESRCH;
            if (!rc) {
                h->slotp = p;
                h->owns_slot = true;
                /* Before anything else: our reference records and intent
                 * move into the new slot (shm/buf.h), so that the daemon
                 * finds them there if we die from now on. */
                gs_buf_carry_over(h);
                atomic_fetch_add(&h->reconnects, 1u);
                s->ring = &h->slotp->ring;
                gs_svc_ring_restart(s, true);
                s->gave_up = false;
                return 0;
            }
        }
        if (rc == -ESRCH || rc == -EPROTO || rc == -EACCES) {
            /* Another heap, a daemon that does not know us, or one we do
             * not trust: no point waiting. */
            if (s->sock >= 0) close(s->sock);
            if (s->doorbell >= 0) close(s->doorbell);
            s->sock = s->doorbell = -1;
            s->heap_id = heap_id;
            s->dead = true;
            return -ECONNRESET;
        }
        if (gs_now_ns() >= deadline) break;
        struct timespec ts = {0, RETRY_NS};
        nanosleep(&ts, NULL);
    }
    s->gave_up = true;
    return -ECONNRESET;
}
