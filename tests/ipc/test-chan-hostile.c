/* SPDX-License-Identifier: MIT */
/* test-chan-hostile.c: Description: a process scribbles a channel's header and cells, buffer headers, and its own reference records and intent, then dies: goshmd survives and validates everything it reads, the other channel and its buffers are unaffected, and the heap passes the adoption's full check when a new goshmd adopts it.
 *
 * Overview of the engine: shm/overview.h; the threat model: shm/buf.h,
 * shm/chan.h; what the heap side reads and how it checks it:
 * daemon/bufref.c.
 *
 * Usage: test-chan-hostile GOSHMD                   (also $GOSHMD)
 *        test-chan-hostile --role ROLE SOCKET FILE  (internal)
 */
#include <signal.h>
#include <stdatomic.h>

#include "check.h"
#include "client.h" /* struct goshm: the scribbler writes its own slot */
#include "buf.h"
#include "chan.h"
#include "goshm/goshm.h"
#include "ipc.h"
#include "rdaemon.h"

typedef struct shared {
    _Atomic int ready;
    goshm_off_t buf_b, buf_c;
} shared_t;

static int role_scribbler(const char *sock, shared_t *sh)
{
    goshm_t *h = goshm_attach(sock);
    if (!h) return 10;
    goshm_chan_t *bad = goshm_chan_open(h, "bad", 64);
    if (!bad) return 11;
    uint64_t seed = 12345;
    /* Messages with references, then garbage over the whole channel. */
    for (int i = 0; i < 10; i++) {
        void *m = goshm_buf_alloc(h, 100);
        if (!m || goshm_chan_send(bad, goshm_off(h, m), 0) != 0) return 12;
    }
    void *b = goshm_ptr(h, sh->buf_b), *c = goshm_ptr(h, sh->buf_c);
    if (goshm_buf_retain(h, b) != 0 || goshm_buf_retain(h, c) != 0) return 13;
    goshm_off_t bad_off = goshm_name_get(h, "bad"); /* not a name: the channel's offset is found below */
    (void)bad_off;
    gs_holdings_t *t = &h->slotp->holdings;
    /* The channel's offset: the record with kind CHAN among ours. */
    uint64_t chan_off = 0;
    for (uint32_t i = 0; i < GS_HOLD_SLOTS; i++) {
        uint64_t o = gs_load_relaxed(&t->hold[i].xoff);
        gs_buf_hdr_t *hd = o ? gs_buf_hdr_of(h, h->data + o, NULL) : NULL;
        if (hd && hd->kind == GS_BUF_CHAN) chan_off = o;
    }
    if (!chan_off) return 14;
    gs_chan_t *ch = (gs_chan_t *)(h->data + chan_off);
    uint32_t cap = ch->cap;
    for (uint32_t i = 0; i < cap; i++) {
        uint64_t r = ipc_rand(&seed);
        gs_store_relaxed(&ch->cells[i].xstate, r);
        gs_store_relaxed(&ch->cells[i].xmsg, (i & 1) ? (ipc_rand(&seed) | GS_MSG_REF) : (r & ~UINT64_C(15)));
    }
    gs_store_relaxed(&ch->xtail, ipc_rand(&seed));
    gs_store_relaxed(&ch->xhead, ipc_rand(&seed));
    ch->cap = 0xFFFFFFFFu;
    /* Buffer headers: b's count absurd and locked by a slot that does not
     * exist; c's magic gone, then random bytes. */
    gs_buf_hdr_t *hb = (gs_buf_hdr_t *)((char *)b - GS_BUF_HDR);
    gs_store_relaxed(&hb->xword, gs_bufw(0xFFFFFFF0u, 77));
    gs_buf_hdr_t *hc = (gs_buf_hdr_t *)((char *)c - GS_BUF_HDR);
    for (int i = 0; i < 32; i++) ((unsigned char *)hc)[i] = (unsigned char)ipc_rand(&seed);
    /* Our own records and intent: lies and garbage. */
    for (uint32_t i = 0; i < 64; i++) {
        gs_store_relaxed(&t->hold[(i * 97u) % GS_HOLD_SLOTS].xoff, ipc_rand(&seed) & ~UINT64_C(15));
        gs_store_relaxed(&t->hold[(i * 97u) % GS_HOLD_SLOTS].xcount, (uint32_t)ipc_rand(&seed));
    }
    gs_store_relaxed(&t->intent.xchan, chan_off);
    gs_store_relaxed(&t->intent.xpos, ipc_rand(&seed));
    gs_store_relaxed(&t->intent.xoff, ipc_rand(&seed));
    gs_store_relaxed(&t->intent.xbefore, 3);
    gs_store_relaxed(&t->intent.xop, GS_INTENT_SEND);
    atomic_store(&sh->ready, 1);
    for (;;) pause();
}

static int role_recorder(const char *sock, shared_t *sh)
{
    /* A second liar: an intent naming every op in turn on the victim's
     * buffers, then it dies. */
    goshm_t *h = goshm_attach(sock);
    if (!h) return 20;
    gs_holdings_t *t = &h->slotp->holdings;
    gs_store_relaxed(&t->intent.xoff, sh->buf_b);
    gs_store_relaxed(&t->intent.xid, 0);
    gs_store_relaxed(&t->intent.xpos, 1);
    gs_store_relaxed(&t->intent.xop, GS_INTENT_RELEASE);
    atomic_store(&sh->ready, 1);
    for (;;) pause();
}

static pid_t spawn(const char *role, const char *sock, const char *file)
{
    char *argv[] = {"test-chan-hostile", "--role", (char *)role, (char *)sock, (char *)file, NULL};
    return gsh_spawn_self(argv);
}

static void good_roundtrip(goshm_t *h, goshm_chan_t *good)
{
    for (int i = 0; i < 20; i++) {
        char *m = goshm_buf_alloc(h, 200);
        REQUIRE(m);
        snprintf(m, 200, "good %d", i);
        CHECK(goshm_chan_send(good, goshm_off(h, m), 0) == 0);
    }
    for (int i = 0; i < 20; i++) {
        goshm_off_t off;
        char want[32];
        snprintf(want, sizeof want, "good %d", i);
        CHECK(goshm_chan_recv(good, &off, 1000) == 0);
        char *m = goshm_ptr(h, off);
        CHECK(m && strcmp(m, want) == 0);
        CHECK(goshm_buf_refs(h, m) == 1);
        CHECK(goshm_buf_release(h, m) == 0);
    }
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--role") == 0) {
        shared_t *sh = ipc_shared(argv[4], sizeof(shared_t), NULL, 0);
        if (!sh) return 2;
        if (strcmp(argv[2], "scribbler") == 0) return role_scribbler(argv[3], sh);
        if (strcmp(argv[2], "recorder") == 0) return role_recorder(argv[3], sh);
        return 3;
    }
    setenv("GOSHM_DEBUG", "badfree=warn", 1);
    setenv("GOSHM_TIMEOUT_MS", "500", 1);
    rd_t d;
    rd_init(&d, gsh_daemon_path(argc, argv));
    REQUIRE(rd_start(&d, "128M", NULL) == 0);
    char file[64];
    shared_t *sh = ipc_shared(NULL, sizeof(shared_t), file, sizeof file);
    REQUIRE(sh);
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);
    goshm_chan_t *good = goshm_chan_open(h, "good", 32);
    REQUIRE(good);
    void *keep = goshm_buf_alloc(h, 64); /* a buffer of ours nobody else names */
    REQUIRE(keep);
    void *b = goshm_buf_alloc(h, 64), *c = goshm_buf_alloc(h, 64);
    REQUIRE(b && c);
    sh->buf_b = goshm_off(h, b);
    sh->buf_c = goshm_off(h, c);
    good_roundtrip(h, good);

    goshm_chan_t *bad = goshm_chan_open(h, "bad", 64); /* opened before the scribbling */
    REQUIRE(bad);
    pid_t s = spawn("scribbler", d.sock, file);
    for (int i = 0; i < 20000 && !atomic_load(&sh->ready); i++) usleep(500);
    CHECK(atomic_load(&sh->ready) == 1);
    /* Opening the scribbled channel fails cleanly (its header does not
     * check out); the handle opened before sees errors or offsets, and
     * nothing crashes. */
    CHECK(goshm_chan_open(h, "bad", 0) == NULL && (errno == EAGAIN || errno == EINVAL));
    for (int i = 0; i < 20; i++) {
        goshm_off_t off;
        (void)goshm_chan_recv(bad, &off, 0);
        (void)goshm_chan_send(bad, goshm_off(h, keep) + 16, 0);
    }
    kill(s, SIGKILL);
    gsh_wait_child(s, 10000);
    atomic_store(&sh->ready, 0);
    s = spawn("recorder", d.sock, file);
    for (int i = 0; i < 20000 && !atomic_load(&sh->ready); i++) usleep(500);
    kill(s, SIGKILL);
    gsh_wait_child(s, 10000);
    gsh_stats_t st;
    uint32_t one = 1;
    CHECK(gsh_wait_for(d.sock, &st, gsh_pred_clients, &one, 10000) == 1);
    usleep(300000); /* a few housekeeping ticks: the retries of locked buffers */
    CHECK(d.pid != 0 && kill(d.pid, 0) == 0);
    CHECK(gsh_stats(d.sock, &st) == 0);
    /* Unaffected: the good channel and a buffer nobody else named. */
    good_roundtrip(h, good);
    CHECK(goshm_buf_refs(h, keep) == 1);
    CHECK(goshm_chan_close(bad) == 0);
    CHECK(goshm_chan_unlink(h, "bad") == 0);
    CHECK(goshm_chan_close(good) == 0);
    CHECK(goshm_buf_release(h, keep) == 0);
    CHECK(goshm_detach(h) == 0);
    /* The full heap check: a new goshmd adopts the heap only if it passes. */
    CHECK(rd_stop(&d, SIGTERM) == 0);
    CHECK_MSG(rd_start(&d, "128M", NULL) == 0, "the adopter refused the heap after the scribbling");
    CHECK(gsh_stats(d.sock, &st) == 0 && st.adopted);
    rd_stop(&d, SIGTERM);
    rd_cleanup(&d);
    unlink(file);
    return CHECK_DONE("test-chan-hostile");
}
