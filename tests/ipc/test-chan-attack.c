/* SPDX-License-Identifier: MIT */
/* test-chan-attack.c: Description: hostile processes that scribble channels, buffer headers and their own records so as to make others spin, hang or lose memory: a send facing cells at a later lap returns, a closer draining messages that name a buffer kept locked waits one timeout (not one per message), a ChanUnlink of a million-cell channel full of such messages is answered at once, a channel flood leaves goshmd descriptors, a buffer locked by another process fails with EBUSY, a forged record costs only the buffer it names; the heap is back to its baseline and passes an adopter's check.
 *
 * Overview of the engine: shm/overview.h; the threat model: shm/buf.h,
 * shm/chan.h; what the heap side reads and how it bounds its work:
 * daemon/bufref.c; the client's: client/buf.c, shm/chan.c.
 *
 * Usage: test-chan-attack GOSHMD                   (also $GOSHMD)
 *        test-chan-attack --role ROLE SOCKET FILE  (internal)
 *
 * Each attack failed before its fix: "loop" spun for ever in
 * gs_chan_claim_send (the alarm killed the test); "drain" took one
 * $GOSHM_TIMEOUT_MS per message (32 s here); "spin" kept goshmd spinning
 * LOCK_ATTEMPTS times per cell under the heap lock (minutes).
 */
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "check.h"
#include "client.h" /* struct goshm: the attackers write their own slot's number into headers */
#include "buf.h"
#include "chan.h"
#include "clock.h"
#include "goshm/goshm.h"
#include "ipc.h"
#include "rdaemon.h"

#define SPIN_CAP (1u << 20)
#define FDS_LIMIT 1024 /* goshmd's descriptors: systemd's default soft limit for a service */
#define FDS_CHANNELS 1500

typedef struct shared {
    _Atomic int ready;
    goshm_off_t chan_off; /* the victim's channel (loop, drain) */
    goshm_off_t victim;   /* held: the victim's buffer */
    _Atomic int go;       /* held: the attacker locked it */
    int rc[4], err[4];    /* held: what the victim's calls returned */
    uint64_t ms[4];
} shared_t;

/* The payload offset of the channel of capacity cap among the records of
 * h (the channels it opened). 0 if none. */
static uint64_t chan_off_of(goshm_t *h, uint32_t cap)
{
    gs_holdings_t *t = &h->slotp->holdings;
    for (uint32_t i = 0; i < GS_HOLD_SLOTS; i++) {
        uint64_t o = gs_load_relaxed(&t->hold[i].xoff);
        gs_buf_hdr_t *hd = o ? gs_buf_hdr_of(h, h->data + o, NULL) : NULL;
        if (hd && hd->kind == GS_BUF_CHAN && ((gs_chan_t *)(h->data + o))->cap == cap) return o;
    }
    return 0;
}

/* A buffer of ours whose lock we hold for as long as we live (our own
 * slot as the holder: a live process, so nobody may take it over). */
static goshm_off_t locked_buffer(goshm_t *h)
{
    void *b = goshm_buf_alloc(h, 64);
    if (!b) return 0;
    goshm_off_t off = goshm_off(h, b);
    gs_buf_hdr_t *hd = (gs_buf_hdr_t *)(h->data + off - GS_BUF_HDR);
    gs_store_release(&hd->xword, gs_bufw(1, h->slot + 1u));
    return off;
}

/* Every cell of c FULL at its first lap, each message a reference to off. */
static void fill_refs(gs_chan_t *c, uint32_t cap, goshm_off_t off)
{
    for (uint32_t i = 0; i < cap; i++) {
        gs_store_relaxed(&c->cells[i].xmsg, off | GS_MSG_REF);
        gs_store_release(&c->cells[i].xstate, gs_cell(i, 0, GS_CELL_FULL));
    }
    gs_store_seqcst(&c->xtail, cap);
}

static int role(const char *name, const char *sock, shared_t *sh)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* the test killed by its alarm: do not outlive it */
    goshm_t *h = goshm_attach(sock);
    if (!h) return 10;
    if (strcmp(name, "loop") == 0) {
        /* Every cell at a lap far beyond the tail (2^34 positions: a
         * sender helping the tail on one cell at a time never gets
         * there), never to change. */
        gs_chan_t *c = (gs_chan_t *)(h->data + sh->chan_off);
        for (uint32_t i = 0; i < 8; i++)
            gs_store_release(&c->cells[i].xstate, gs_cell(i + (UINT64_C(1) << 34), 0, GS_CELL_EMPTY));
    } else if (strcmp(name, "drain") == 0) {
        goshm_off_t b = locked_buffer(h);
        if (!b) return 11;
        fill_refs((gs_chan_t *)(h->data + sh->chan_off), 64, b);
    } else if (strcmp(name, "spin") == 0) {
        /* Our own channel of the largest capacity, full of references to a
         * buffer we keep locked, and its count forged to 1 so that the
         * directory's reference is the last: ChanUnlink makes goshmd
         * drain it. */
        goshm_chan_t *ch = goshm_chan_open(h, "spin", SPIN_CAP);
        if (!ch) return 12;
        uint64_t co = chan_off_of(h, SPIN_CAP);
        goshm_off_t b = locked_buffer(h);
        if (!co || !b) return 13;
        fill_refs((gs_chan_t *)(h->data + co), SPIN_CAP, b);
        gs_buf_hdr_t *hd = (gs_buf_hdr_t *)(h->data + co - GS_BUF_HDR);
        gs_store_release(&hd->xword, gs_bufw(1, 0));
    } else if (strcmp(name, "fds") == 0) {
        /* Channels, each with an eventfd in goshmd, until it refuses
         * (or FDS_CHANNELS, fewer than our user's --max-names-per-uid). */
        char nm[32];
        for (int i = 0; i < FDS_CHANNELS; i++) {
            snprintf(nm, sizeof nm, "fd%d", i);
            goshm_chan_t *ch = goshm_chan_open(h, nm, 1);
            if (!ch) break;
            goshm_chan_close(ch); /* the directory keeps it, and goshmd its eventfd */
        }
    } else if (strcmp(name, "held") == 0) {
        /* The victim's buffer locked in our (live) slot's name. */
        gs_buf_hdr_t *hd = (gs_buf_hdr_t *)(h->data + sh->victim - GS_BUF_HDR);
        uint64_t w = gs_load_acquire(&hd->xword);
        gs_store_release(&hd->xword, gs_bufw(gs_bufw_count(w), h->slot + 1u));
    } else if (strcmp(name, "victim") == 0) {
        /* A buffer with two references of ours; release and retain while
         * the attacker holds its lock (alive, then dead), then we exit
         * holding both. */
        void *b = goshm_buf_alloc(h, 1000);
        if (!b || goshm_buf_retain(h, b) != 0) return 16;
        sh->victim = goshm_off(h, b);
        atomic_store(&sh->ready, 1);
        for (int k = 0; k < 2; k++) {
            while (atomic_load(&sh->go) <= k) usleep(1000);
            uint64_t t0 = gs_now_ns();
            sh->rc[2 * k] = goshm_buf_release(h, b);
            sh->err[2 * k] = errno;
            sh->rc[2 * k + 1] = goshm_buf_retain(h, b);
            sh->err[2 * k + 1] = errno;
            sh->ms[k] = (gs_now_ns() - t0) / 1000000u;
            atomic_store(&sh->go, 10 + k);
        }
        return 0; /* exits without detaching: goshmd drops our references */
    } else if (strcmp(name, "forge") == 0) {
        /* A record of ours claiming 5 references to the victim's buffer
         * (offset and id read from its header), and an intent replaying a
         * release of it that reached 0; then we are killed. */
        gs_buf_hdr_t *hd = (gs_buf_hdr_t *)(h->data + sh->victim - GS_BUF_HDR);
        gs_holdings_t *t = &h->slotp->holdings;
        gs_hold_t *r = &t->hold[gs_hold_home(sh->victim)];
        gs_store_relaxed(&r->xid, hd->id);
        gs_store_relaxed(&r->xcount, 5);
        gs_store_release(&r->xoff, sh->victim);
        gs_store_relaxed(&t->intent.xoff, sh->victim);
        gs_store_relaxed(&t->intent.xid, hd->id);
        gs_store_relaxed(&t->intent.xpos, 1);
        gs_store_release(&t->intent.xop, GS_INTENT_RELEASE);
    } else if (strcmp(name, "churn") == 0) {
        /* Open (creating), send, receive, close and unlink four names at
         * random until killed. */
        atomic_fetch_add(&sh->ready, 1);
        uint64_t seed = (uint64_t)getpid() * 2654435761u;
        char nm[16];
        for (;;) {
            snprintf(nm, sizeof nm, "churn%d", (int)(ipc_rand(&seed) % 4u));
            goshm_chan_t *ch = goshm_chan_open(h, nm, 8);
            if (ch) {
                void *m = goshm_buf_alloc(h, 100 + ipc_rand(&seed) % 5000);
                if (m && goshm_chan_send(ch, goshm_off(h, m), 0) != 0) goshm_buf_release(h, m);
                goshm_off_t o;
                if (ipc_rand(&seed) % 2u && goshm_chan_recv(ch, &o, 0) == 0) goshm_buf_release(h, goshm_ptr(h, o));
                goshm_chan_close(ch);
            }
            if (getenv("CHURN_UNLINK") && ipc_rand(&seed) % 8u == 0) goshm_chan_unlink(h, nm);
        }
    } else if (strcmp(name, "attach") == 0) {
        void *p = goshm_malloc(h, 100);
        if (!p) return 14;
        goshm_free(h, p);
        return goshm_detach(h) == 0 ? 0 : 15;
    } else {
        return 3;
    }
    atomic_store(&sh->ready, 1);
    for (;;) pause();
}

static pid_t spawn(const char *r, const char *sock, const char *file, shared_t *sh)
{
    atomic_store(&sh->ready, 0);
    char *argv[] = {"test-chan-attack", "--role", (char *)r, (char *)sock, (char *)file, NULL};
    pid_t p = gsh_spawn_self(argv);
    for (int i = 0; i < 40000 && !atomic_load(&sh->ready); i++) usleep(500);
    CHECK_MSG(atomic_load(&sh->ready) == 1, "attacker %s did not get ready", r);
    return p;
}

static void reap(pid_t p)
{
    kill(p, SIGKILL);
    gsh_wait_child(p, 10000);
}

static uint64_t ms_since(uint64_t t0) { return (gs_now_ns() - t0) / 1000000u; }

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--role") == 0) {
        shared_t *sh = ipc_shared(argv[4], sizeof(shared_t), NULL, 0);
        return sh ? role(argv[2], argv[3], sh) : 2;
    }
    setenv("GOSHM_TIMEOUT_MS", "500", 1);
    /* goshmd runs with 1024 descriptors at most (systemd's default soft
     * limit for a service; here the hard one too, so goshmd cannot raise
     * it: its own bound is what is tested). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max > FDS_LIMIT) {
        rl.rlim_cur = rl.rlim_max = FDS_LIMIT;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    rd_t d;
    rd_init(&d, gsh_daemon_path(argc, argv));
    REQUIRE(rd_start(&d, "128M", NULL) == 0);
    char file[64];
    shared_t *sh = ipc_shared(NULL, sizeof(shared_t), file, sizeof file);
    REQUIRE(sh);
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);
    gsh_stats_t st;
    REQUIRE(gsh_stats(d.sock, &st) == 0);
    uint64_t base = st.in_use_bytes;

    /* $ATTACK_ONLY=loop|drain|spin runs one attack (to see each fail
     * without its fix). */
    const char *only = getenv("ATTACK_ONLY");
#define RUN(name) (!only || strcmp(only, name) == 0)

    /* loop: a send facing cells that are all at a later lap (garbage that
     * never changes) reports the channel full and times out. */
    if (RUN("loop")) {
        goshm_chan_t *ch = goshm_chan_open(h, "loop", 8);
        REQUIRE(ch);
        sh->chan_off = chan_off_of(h, 8);
        REQUIRE(sh->chan_off);
        pid_t p = spawn("loop", d.sock, file, sh);
        char *m = goshm_buf_alloc(h, 32);
        REQUIRE(m);
        alarm(20); /* before the fix the send never returned */
        uint64_t t0 = gs_now_ns();
        int rc = goshm_chan_send(ch, goshm_off(h, m), 300);
        int err = errno;
        alarm(0);
        CHECK_MSG(rc == -1 && err == ETIMEDOUT, "send into a scribbled channel: rc %d errno %d", rc, err);
        CHECK(ms_since(t0) < 3000);
        /* The reference stayed ours. */
        CHECK(goshm_buf_refs(h, m) == 1 && goshm_buf_release(h, m) == 0);
        reap(p);
        CHECK(goshm_chan_close(ch) == 0 && goshm_chan_unlink(h, "loop") == 0);
    }

    /* drain: we drop the last reference of a channel whose 64 messages all
     * name a buffer a live process keeps locked: one timeout in all. */
    if (RUN("drain")) {
        goshm_chan_t *ch = goshm_chan_open(h, "drain", 64);
        REQUIRE(ch);
        sh->chan_off = chan_off_of(h, 64);
        REQUIRE(sh->chan_off);
        pid_t p = spawn("drain", d.sock, file, sh);
        CHECK(goshm_chan_unlink(h, "drain") == 0); /* the directory's reference: ours is the last */
        alarm(60);
        uint64_t t0 = gs_now_ns();
        CHECK(goshm_chan_close(ch) == 0);
        alarm(0);
        uint64_t ms = ms_since(t0);
        CHECK_MSG(ms < 5000, "closing a channel of 64 messages naming a locked buffer took %llu ms",
                  (unsigned long long)ms);
        reap(p);
    }

    /* spin: goshmd drains a channel of 1 << 20 messages naming a buffer a
     * live process keeps locked: the ChanUnlink is answered well within
     * the client's 500 ms timeout, and other requests after it. */
    if (RUN("spin")) {
        pid_t p = spawn("spin", d.sock, file, sh);
        uint64_t t0 = gs_now_ns();
        int rc = goshm_chan_unlink(h, "spin");
        int err = errno;
        uint64_t ms = ms_since(t0);
        CHECK_MSG(rc == 0, "ChanUnlink of the spin channel: errno %d after %llu ms", err, (unsigned long long)ms);
        t0 = gs_now_ns();
        void *q = goshm_malloc(h, 1 << 20); /* a large object: the daemon's lock */
        CHECK(q && gsh_stats(d.sock, &st) == 0);
        ms = ms_since(t0);
        CHECK_MSG(ms < 2000, "goshmd answered %llu ms after the unlink", (unsigned long long)ms);
        goshm_free(h, q);
        reap(p);
    }

    /* fds: a client makes channels (each has an eventfd in goshmd) as many
     * as its names allow: goshmd keeps descriptors for others to attach. */
    if (RUN("fds")) {
        pid_t p = spawn("fds", d.sock, file, sh);
        char *argv2[] = {"test-chan-attack", "--role", "attach", d.sock, file, NULL};
        pid_t a = gsh_spawn_self(argv2);
        int rc = gsh_wait_child(a, 15000);
        CHECK_MSG(rc == 0, "a client could not attach after the channel flood (%d)", rc);
        CHECK(gsh_stats(d.sock, &st) == 0);
        reap(p);
        char nm[32];
        int made = 0;
        for (; made < FDS_CHANNELS; made++) {
            snprintf(nm, sizeof nm, "fd%d", made);
            if (goshm_chan_unlink(h, nm) != 0) break;
        }
        /* Refused well before the names ran out, but not at once. */
        CHECK_MSG(made >= 100 && made < FDS_CHANNELS, "the flood made %d channels", made);
    }

    /* held: a buffer whose lock another process keeps, alive or dead: the
     * owner's release and retain fail with EBUSY after its timeout (they
     * neither hang nor change the count), and once the owner dies goshmd
     * drops its references anyway (a dead holder's lock is stale to it). */
    if (RUN("held")) {
        atomic_store(&sh->go, 0);
        char *argv2[] = {"test-chan-attack", "--role", "victim", d.sock, file, NULL};
        atomic_store(&sh->ready, 0);
        pid_t v = gsh_spawn_self(argv2);
        for (int i = 0; i < 40000 && !atomic_load(&sh->ready); i++) usleep(500);
        REQUIRE(atomic_load(&sh->ready) == 1);
        pid_t p = spawn("held", d.sock, file, sh);
        atomic_store(&sh->go, 1); /* the attacker alive */
        for (int i = 0; i < 20000 && atomic_load(&sh->go) != 10; i++) usleep(500);
        reap(p);
        atomic_store(&sh->go, 2); /* the attacker dead, its slot reclaimed (or not yet) */
        CHECK(gsh_wait_child(v, 15000) == 0);
        for (int k = 0; k < 4; k++)
            CHECK_MSG(sh->rc[k] == -1 && sh->err[k] == EBUSY, "victim call %d: rc %d errno %d", k, sh->rc[k],
                      sh->err[k]);
        for (int k = 0; k < 2; k++) CHECK_MSG(sh->ms[k] < 3000, "victim calls took %llu ms", (unsigned long long)sh->ms[k]);
    }

    /* forge: a process lies in its own records and intent about a victim's
     * buffer, then dies. The trust story: that costs the victim that
     * buffer (the liar could have written its count anyway): goshmd drops
     * at most the references the header counts, frees it once, and the
     * victim's calls on it fail with EINVAL instead of crashing; its
     * other buffers are untouched. */
    if (RUN("forge")) {
        char *b = goshm_buf_alloc(h, 500), *keep = goshm_buf_alloc(h, 500);
        REQUIRE(b && keep);
        memset(keep, 0x5a, 500);
        sh->victim = goshm_off(h, b);
        pid_t p = spawn("forge", d.sock, file, sh);
        reap(p);
        uint32_t one = 1;
        CHECK(gsh_wait_for(d.sock, &st, gsh_pred_clients, &one, 10000) == 1);
        CHECK(goshm_buf_refs(h, b) == 0 && errno == EINVAL);
        CHECK(goshm_buf_release(h, b) == -1 && errno == EINVAL);
        CHECK(goshm_buf_retain(h, b) == -1 && errno == EINVAL);
        static char want[500];
        memset(want, 0x5a, sizeof want);
        CHECK(goshm_buf_refs(h, keep) == 1 && memcmp(keep, want, sizeof want) == 0);
        CHECK(goshm_buf_release(h, keep) == 0);
    }

    /* churn (only with ATTACK_ONLY=churn: an open finding, not a passing
     * test): processes SIGKILLed at random while they open (create) and
     * close channels and pass buffers through them (and unlink them, with
     * CHURN_UNLINK=1); once the names are unlinked every byte should be
     * back. In a few runs in a hundred (main before this branch: 2 in
     * 30), one to three small objects (2 to 8 KiB in all) stay in use: a
     * kill inside some window of the buffer protocol leaks. The known windows (daemon/bufref.c: an allocation
     * killed before its intent has the offset, a free killed after the
     * magic is cleared, a drain killed with a message taken out) are the
     * suspects; it was not narrowed down in time. */
    if (only && strcmp(only, "churn") == 0) {
        uint64_t seed = 99;
        goshm_chan_t *mine[4];
        char nm[16];
        for (int i = 0; i < 4; i++) {
            snprintf(nm, sizeof nm, "churn%d", i);
            mine[i] = getenv("CHURN_UNLINK") ? NULL : goshm_chan_open(h, nm, 8);
        }
        for (int round = 0; round < 20; round++) {
            atomic_store(&sh->ready, 0);
            pid_t k[3];
            for (int i = 0; i < 3; i++) {
                char *argv2[] = {"test-chan-attack", "--role", "churn", d.sock, file, NULL};
                k[i] = gsh_spawn_self(argv2);
            }
            for (int i = 0; i < 20000 && atomic_load(&sh->ready) < 3; i++) usleep(500);
            usleep((useconds_t)(2000 + ipc_rand(&seed) % 40000));
            for (int i = 0; i < 3; i++) kill(k[i], SIGKILL);
            for (int i = 0; i < 3; i++) gsh_wait_child(k[i], 10000);
        }
        uint32_t one = 1;
        CHECK(gsh_wait_for(d.sock, &st, gsh_pred_clients, &one, 10000) == 1);
        for (int i = 0; i < 4; i++) {
            snprintf(nm, sizeof nm, "churn%d", i);
            goshm_chan_unlink(h, nm);
            if (mine[i]) goshm_chan_close(mine[i]);
        }
    }

    /* Every attacker's memory back: the locked buffers, the channels. */
    CHECK_MSG(ipc_wait_in_use(d.sock, base, 1, &st, 10000) == 1, "in use %llu, baseline %llu",
              (unsigned long long)st.in_use_bytes, (unsigned long long)base);
    CHECK(d.pid != 0 && kill(d.pid, 0) == 0);
    CHECK(goshm_detach(h) == 0);
    /* The full heap check: a new goshmd adopts the heap only if it passes. */
    if (check_failures) {
        rd_stop(&d, SIGKILL);
    } else {
        CHECK(rd_stop(&d, SIGTERM) == 0);
        CHECK_MSG(rd_start(&d, "128M", NULL) == 0, "the adopter refused the heap after the attacks");
        CHECK(gsh_stats(d.sock, &st) == 0 && st.adopted);
        rd_stop(&d, SIGTERM);
    }
    rd_cleanup(&d);
    unlink(file);
    return CHECK_DONE("test-chan-attack");
}
