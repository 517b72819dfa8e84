/* SPDX-License-Identifier: MIT */
/* test-names-ctl.c: Description: the directory's control requests at the protocol level, from a raw client: ChanOpen of a real allocated object (created, found again, the same eventfd passed each time), ChanUnlink, ENOENT; names and channels as two namespaces; hostile input (bad name bytes the library would refuse, 300-byte names, offsets outside the object area, requests before Attach) answered with EINVAL/EPERM and the daemon unharmed; a flood of NameSet (pipelined, then never read) bounded by the per-uid limit and costing only the flooder's connection.
 *
 * Overview of the engine: shm/overview.h; the protocol: proto/goshm.proto;
 * the daemon's side: daemon/ctl.c, daemon/names.c. The channel buffer is
 * made here as goshm_chan_open makes one (a buffer of kind CHAN holding an
 * initialised channel, shm/buf.h and shm/chan.h): the daemon checks it is a
 * live channel buffer of that id, big enough for the capacity.
 *
 * Usage: test-names-ctl GOSHMD (also $GOSHMD)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "ctlclient.h"
#include "goshm.pb-c.h"
#include "goshm/goshm.h"
#include "harness.h"
#include "segment.h" /* GS_ABI_VERSION */
#include "buf.h"     /* gs_buf_hdr_t: a channel buffer made by hand */
#include "chan.h"    /* gs_chan_init */

#define TMO 5000
#define PER_UID 300 /* --max-names-per-uid for this daemon */

static int send_req(int fd, const Goshm__Request *req, int flags)
{
    size_t len = goshm__request__get_packed_size(req);
    uint8_t *buf = malloc(len + 1);
    if (!buf) return -ENOMEM;
    goshm__request__pack(req, buf);
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | flags);
    int e = errno;
    free(buf);
    return n == (ssize_t)len ? 0 : -e;
}

/* A raw attached connection (the four descriptors closed). */
static int raw_attach(const char *sock)
{
    int fd = gs_ctl_connect(sock);
    if (fd < 0) return -1;
    Goshm__Attach a = GOSHM__ATTACH__INIT;
    a.abi_version = GS_ABI_VERSION;
    a.pid = (uint32_t)getpid();
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_ATTACH;
    req.attach = &a;
    Goshm__Reply *rep = NULL;
    int fds[4];
    if (send_req(fd, &req, 0) != 0 || gs_ctl_recv(fd, &rep, fds, 4, TMO) != 4 ||
        rep->msg_case != GOSHM__REPLY__MSG_ATTACH) {
        if (rep) goshm__reply__free_unpacked(rep, NULL);
        close(fd);
        return -1;
    }
    for (int i = 0; i < 4; i++) close(fds[i]);
    goshm__reply__free_unpacked(rep, NULL);
    return fd;
}

static Goshm__Request name_set_req(Goshm__NameSet *m, const void *name, size_t len, uint64_t off)
{
    goshm__name_set__init(m);
    m->name.data = (uint8_t *)name;
    m->name.len = len;
    m->off = off;
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_NAME_SET;
    req.name_set = m;
    return req;
}

/* NameSet on fd: the NameReply code, or -1000 - errno when there is no
 * NameReply (an Error's code is returned as -code). */
static int name_set(int fd, const void *name, size_t len, uint64_t off)
{
    Goshm__NameSet m;
    Goshm__Request req = name_set_req(&m, name, len, off);
    if (send_req(fd, &req, 0) != 0) return -1000 - EPIPE;
    Goshm__Reply *rep = NULL;
    int rc = gs_ctl_recv(fd, &rep, NULL, 0, TMO);
    if (rc < 0) return -1000 + rc;
    int code = rep->msg_case == GOSHM__REPLY__MSG_NAME ? rep->name->code
             : rep->msg_case == GOSHM__REPLY__MSG_ERROR ? -rep->error->code : -1000 - EPROTO;
    goshm__reply__free_unpacked(rep, NULL);
    return code;
}

typedef struct chan_reply {
    int code, efd;
    uint64_t off, id;
    uint32_t cap;
    bool created;
} chan_reply_t;

static void chan_open(int fd, const char *name, uint32_t cap, uint64_t create_off, uint64_t create_id, chan_reply_t *r)
{
    memset(r, 0, sizeof *r);
    r->efd = -1;
    Goshm__ChanOpen m = GOSHM__CHAN_OPEN__INIT;
    m.name.data = (uint8_t *)name;
    m.name.len = strlen(name);
    m.capacity = cap;
    m.create_off = create_off;
    m.create_id = create_id;
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_CHAN_OPEN;
    req.chan_open = &m;
    Goshm__Reply *rep = NULL;
    int fds[2];
    int n = send_req(fd, &req, 0) == 0 ? gs_ctl_recv(fd, &rep, fds, 2, TMO) : -EPIPE;
    if (n < 0 || rep->msg_case != GOSHM__REPLY__MSG_CHAN_OPEN) {
        r->code = -1;
        if (n > 0)
            for (int i = 0; i < n; i++) close(fds[i]);
    } else {
        r->code = rep->chan_open->code;
        r->off = rep->chan_open->off;
        r->id = rep->chan_open->id;
        r->cap = rep->chan_open->cap;
        r->created = rep->chan_open->created;
        if (n >= 1) r->efd = fds[0];
        for (int i = 1; i < n; i++) close(fds[i]);
    }
    if (rep) goshm__reply__free_unpacked(rep, NULL);
}

static int chan_unlink(int fd, const char *name)
{
    Goshm__ChanUnlink m = GOSHM__CHAN_UNLINK__INIT;
    m.name.data = (uint8_t *)name;
    m.name.len = strlen(name);
    Goshm__Request req = GOSHM__REQUEST__INIT;
    req.msg_case = GOSHM__REQUEST__MSG_CHAN_UNLINK;
    req.chan_unlink = &m;
    Goshm__Reply *rep = NULL;
    if (send_req(fd, &req, 0) != 0 || gs_ctl_recv(fd, &rep, NULL, 0, TMO) < 0) return -1;
    int code = rep->msg_case == GOSHM__REPLY__MSG_NAME ? rep->name->code : -1;
    goshm__reply__free_unpacked(rep, NULL);
    return code;
}

/* Live entries by NameList (no Attach needed), walking every page. -1 on error. */
static int list_live(const char *sock, int *walked)
{
    int fd = gs_ctl_connect(sock);
    if (fd < 0) return -1;
    uint32_t cursor = 0;
    int live = -1;
    *walked = 0;
    do {
        Goshm__NameList m = GOSHM__NAME_LIST__INIT;
        m.cursor = cursor;
        Goshm__Request req = GOSHM__REQUEST__INIT;
        req.msg_case = GOSHM__REQUEST__MSG_NAME_LIST;
        req.name_list = &m;
        Goshm__Reply *rep = NULL;
        if (send_req(fd, &req, 0) != 0 || gs_ctl_recv(fd, &rep, NULL, 0, TMO) < 0) break;
        if (rep->msg_case != GOSHM__REPLY__MSG_NAME_LIST) {
            goshm__reply__free_unpacked(rep, NULL);
            break;
        }
        *walked += (int)rep->name_list->n_entries;
        live = (int)rep->name_list->live;
        cursor = rep->name_list->next_cursor;
        goshm__reply__free_unpacked(rep, NULL);
    } while (cursor);
    close(fd);
    return live;
}

static const char *goshmctl_bin; /* tools/goshmctl next to daemon/goshmd in the build tree */

/* `goshmctl names` lists the entries: a line per entry with kind, name and
 * offset, and the count. */
static void check_goshmctl(const char *sock, uint64_t off, uint64_t chan_off)
{
    char cmd[600], line[256];
    snprintf(cmd, sizeof cmd, "%s --socket %s names", goshmctl_bin, sock);
    FILE *p = popen(cmd, "r");
    REQUIRE(p);
    int name_ok = 0, chan_ok = 0, count = -1;
    char want_name[128], want_chan[128];
    snprintf(want_name, sizeof want_name, "%llu", (unsigned long long)off);
    snprintf(want_chan, sizeof want_chan, "%llu", (unsigned long long)chan_off);
    while (fgets(line, sizeof line, p)) {
        if (strncmp(line, "name  listed-name ", 18) == 0 && strstr(line, want_name)) name_ok++;
        if (strncmp(line, "chan  ch ", 9) == 0 && strstr(line, want_chan) && strstr(line, "cap 16")) chan_ok++;
        sscanf(line, "%d entries", &count);
    }
    CHECK(pclose(p) == 0);
    CHECK(name_ok == 1 && chan_ok == 1);
    CHECK_MSG(count == 3, "goshmctl names counted %d entries", count); /* listed-name, ch, ch as a name */
}

static bool is_eventfd(int fd)
{
    char proc[64], link[64] = "";
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, link, sizeof link - 1);
    if (n > 0) link[n] = '\0';
    return strstr(link, "eventfd") != NULL;
}

static void test_chan(const char *sock, goshm_t *h)
{
    int fd = raw_attach(sock);
    REQUIRE(fd >= 0);
    const uint32_t cap = 16;
    char *pay = goshm_buf_alloc(h, (size_t)gs_chan_bytes(cap));
    REQUIRE(pay);
    /* The header is before the payload, in the same object: reached by its
     * offset (the allocation attributes say the payload is all there is). */
    gs_buf_hdr_t *hdr = goshm_ptr(h, goshm_off(h, pay) - GS_BUF_HDR);
    hdr->kind = GS_BUF_CHAN;
    gs_chan_init((gs_chan_t *)pay, cap);
    char *obj = (char *)hdr;
    uint64_t off = goshm_off(h, pay), id = hdr->id;
    chan_reply_t bad;
    chan_open(fd, "ch", cap, off, id ^ 1u, &bad); /* not that buffer's id */
    CHECK(bad.code == EINVAL && bad.efd < 0);
    chan_reply_t r, r2;
    chan_open(fd, "ch", 0, 0, 0, &r);
    CHECK(r.code == ENOENT && r.efd < 0);
    chan_open(fd, "ch", cap, off + 8, id, &r); /* not an object's payload */
    CHECK(r.code == EINVAL && r.efd < 0);
    chan_open(fd, "ch", 12, off, id, &r);      /* capacity not a power of two */
    CHECK(r.code == EINVAL);
    chan_open(fd, "ch", 1u << 16, off, id, &r); /* the object is too small for it */
    CHECK(r.code == EINVAL);
    chan_open(fd, "ch", cap, UINT64_MAX, id, &r);
    CHECK(r.code == EINVAL);
    chan_open(fd, "ch", cap, off, id, &r);
    CHECK(r.code == 0 && r.created && r.off == off && r.id == id && r.cap == cap);
    CHECK(r.efd >= 0 && is_eventfd(r.efd));
    /* Found again (capacity and create_* ignored): the same eventfd. */
    chan_open(fd, "ch", 0, 0, 0, &r2);
    CHECK(r2.code == 0 && !r2.created && r2.off == off && r2.id == id && r2.cap == cap);
    CHECK(r2.efd >= 0 && r2.efd != r.efd && is_eventfd(r2.efd));
    uint64_t v = 3;
    CHECK(write(r.efd, &v, sizeof v) == sizeof v);
    v = 0;
    CHECK(read(r2.efd, &v, sizeof v) == sizeof v && v == 3);
    CHECK(read(r2.efd, &v, sizeof v) == -1 && errno == EAGAIN); /* non-blocking */
    /* Another process's view: the library's lookup-only ChanOpen. */
    chan_open(fd, "other", cap, off, id, &r2);
    CHECK(r2.code == 0 && r2.created);
    if (r2.efd >= 0) close(r2.efd);
    /* Two namespaces: a plain name "ch" is another entry. */
    CHECK(name_set(fd, "ch", 2, off) == 0);
    CHECK(goshm_name_get(h, "ch") == off);
    CHECK(chan_unlink(fd, "other") == 0);
    CHECK(goshm_name_set(h, "listed-name", goshm_off(h, obj)) == 0);
    check_goshmctl(sock, goshm_off(h, obj), off);
    CHECK(goshm_name_del(h, "listed-name") == 0);
    CHECK(chan_unlink(fd, "ch") == 0);
    CHECK(chan_unlink(fd, "ch") == ENOENT);
    CHECK(goshm_name_get(h, "ch") == off); /* the name stays */
    chan_open(fd, "ch", 0, 0, 0, &r2);
    CHECK(r2.code == ENOENT && r2.efd < 0);
    CHECK(chan_unlink(fd, "other") == ENOENT);
    CHECK(chan_unlink(fd, "a/b") == EINVAL);
    CHECK(goshm_name_del(h, "ch") == 0);
    close(r.efd);
    /* Both directory references are gone: ours is the last. */
    CHECK(goshm_buf_refs(h, pay) == 1);
    CHECK(goshm_buf_release(h, pay) == 0);
    close(fd);
}

static void test_hostile(const char *sock, goshm_t *h)
{
    gsh_stats_t st0, st1;
    REQUIRE(gsh_stats(sock, &st0) == 0);
    char *obj = goshm_malloc(h, 64);
    uint64_t off = goshm_off(h, obj);
    /* Before Attach: EPERM, connection closed. */
    int fd = gs_ctl_connect(sock);
    REQUIRE(fd >= 0);
    CHECK(name_set(fd, "x", 1, off) == -EPERM);
    close(fd);
    fd = raw_attach(sock);
    REQUIRE(fd >= 0);
    char big[300];
    memset(big, 'a', sizeof big);
    const struct { const char *name; size_t len; } bad[] = {
        {"", 0}, {"a/b", 3}, {"nul\0inside", 10}, {"\x80high", 5}, {"\x1f", 1}, {"\x7f", 1}, {big, 64}, {big, 300},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(name_set(fd, bad[i].name, bad[i].len, off) == EINVAL, "bad name %zu", i);
    CHECK(name_set(fd, big, 63, off) == 0); /* the longest: fine */
    CHECK(name_set(fd, "o1", 2, 0) == EINVAL);
    CHECK(name_set(fd, "o2", 2, 4096) == EINVAL);
    CHECK(name_set(fd, "o3", 2, UINT64_MAX) == EINVAL);
    CHECK(name_set(fd, "o4", 2, UINT64_C(1) << 40) == EINVAL);
    CHECK(name_set(fd, "o5", 2, off) == 0);
    CHECK(name_set(fd, "o5", 2, off) == EEXIST);
    REQUIRE(gsh_stats(sock, &st1) == 0);
    CHECK(st1.bad_requests >= st0.bad_requests + 12);
    CHECK(goshm_name_del(h, "o5") == 0);
    char n63[64];
    memcpy(n63, big, 63);
    n63[63] = '\0';
    CHECK(goshm_name_del(h, n63) == 0);
    close(fd);
    goshm_free(h, obj);
}

/* A flood: pipelined NameSets read back in batches stop at the per-uid
 * bound; then a flood that never reads its replies loses its connection
 * and nothing else. */
static void test_flood(const char *sock, goshm_t *h)
{
    char *obj = goshm_malloc(h, 64);
    uint64_t off = goshm_off(h, obj);
    int fd = raw_attach(sock);
    REQUIRE(fd >= 0);
    int ok = 0, quota = 0, other = 0;
    for (int base = 0; base < 2000; base += 50) {
        for (int i = base; i < base + 50; i++) {
            char name[32];
            int len = snprintf(name, sizeof name, "flood-%d", i);
            Goshm__NameSet m;
            Goshm__Request req = name_set_req(&m, name, (size_t)len, off);
            if (send_req(fd, &req, 0) != 0) other++;
        }
        for (int i = 0; i < 50; i++) {
            Goshm__Reply *rep = NULL;
            if (gs_ctl_recv(fd, &rep, NULL, 0, TMO) < 0) { other++; continue; }
            int code = rep->msg_case == GOSHM__REPLY__MSG_NAME ? rep->name->code : -1;
            goshm__reply__free_unpacked(rep, NULL);
            if (code == 0) ok++;
            else if (code == EDQUOT) quota++;
            else other++;
        }
    }
    CHECK_MSG(ok == PER_UID && quota == 2000 - PER_UID && other == 0, "ok %d quota %d other %d", ok, quota, other);
    int walked;
    CHECK(list_live(sock, &walked) == PER_UID && walked == PER_UID);
    /* Never read: the daemon's replies fill our socket, it drops us. */
    int sent = 0;
    for (int i = 0; i < 200000; i++) {
        Goshm__NameSet m;
        Goshm__Request req = name_set_req(&m, "flood-0", 7, off);
        int rc = send_req(fd, &req, MSG_DONTWAIT);
        if (rc == -EAGAIN) { gsh_sleep_ms(1); continue; }
        if (rc) break;
        sent++;
    }
    CHECK_MSG(sent < 200000, "the daemon never dropped a connection that does not read (%d sent)", sent);
    close(fd);
    gsh_stats_t st;
    CHECK(gsh_stats(sock, &st) == 0);
    /* The bystander's handle works, the directory is intact. */
    CHECK(goshm_name_get(h, "flood-7") == off);
    CHECK(goshm_name_del(h, "flood-7") == 0);
    CHECK(goshm_name_set(h, "after-flood", off) == 0);
    CHECK(goshm_name_get(h, "after-flood") == off);
    for (int i = 0; i < PER_UID; i++) {
        char name[32];
        snprintf(name, sizeof name, "flood-%d", i);
        if (i != 7) CHECK(goshm_name_del(h, name) == 0);
    }
    CHECK(goshm_name_del(h, "after-flood") == 0);
    CHECK(list_live(sock, &walked) == 0 && walked == 0);
    goshm_free(h, obj);
}

int main(int argc, char **argv)
{
    const char *bin = gsh_daemon_path(argc, argv);
    static char ctlbin[512];
    const char *slash = bin ? strrchr(bin, '/') : NULL;
    snprintf(ctlbin, sizeof ctlbin, "%.*s/../tools/goshmctl", slash ? (int)(slash - bin) : 1, slash ? bin : ".");
    goshmctl_bin = ctlbin;
    gsh_daemon_t d;
    char args[64];
    snprintf(args, sizeof args, "--size 64M --max-names-per-uid %d", PER_UID);
    REQUIRE(gsh_start(&d, bin, args) == 0);
    goshm_t *h = goshm_attach(d.sock);
    REQUIRE(h);
    test_chan(d.sock, h);
    test_hostile(d.sock, h);
    test_flood(d.sock, h);
    CHECK(goshm_detach(h) == 0);
    gsh_stats_t st;
    CHECK(gsh_settle_idle(d.sock, &st) == 0 && st.in_use_bytes == 0);
    CHECK(gsh_stop(&d) == 0);
    return CHECK_DONE("test-names-ctl");
}
