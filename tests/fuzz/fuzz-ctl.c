/* SPDX-License-Identifier: MIT */
/* fuzz-ctl.c: the control protocol's decoder (libFuzzer target, with a
 * replay/random main for ctest).
 *
 * Overview: shm/overview.h; messages: proto/goshm.proto. Every packet a peer
 * sends is one packed message decoded by protobuf-c: goshmd decodes Requests
 * (daemon/ctl.c on_conn_readable), clients and goshmctl decode Replies
 * (client/service.c, tools/goshmctl.c). The input is one packet, fed to both:
 *   1. unpack; if it decodes, walk it as its reader does (the oneof case and
 *      the submessage it names, every repeated element, every string);
 *   2. pack it again, unpack that, and check the two messages are equal field
 *      by field (unknown fields included) and that packing the copy gives
 *      the same bytes;
 *   3. unpack again through an allocator that fails its k-th allocation
 *      (k from a hash of the input): it must return NULL and leak nothing.
 * Every allocation goes through a counting allocator: after each
 * free_unpacked nothing may remain. Mostly a memory-safety target for ASan.
 *
 * The AttachReply's layout fields are checked as the client checks them
 * (shm/segment.h gs_attach_agrees, against a meta header like a real heap's:
 * slot_size, max_slots, sizes, epoch) and compared with an independent
 * oracle; and the input's first bytes, read as a gs_meta_header_t, go
 * through gs_meta_usable, whose "yes" must mean every region fits.
 */
#define _GNU_SOURCE
#include <stdbool.h> /* bool */
#include <stdint.h>  /* uint*_t */
#include <stdio.h>   /* fprintf */
#include <stdlib.h>  /* malloc, abort */
#include <stddef.h>  /* offsetof */
#include <string.h>  /* memcmp */

#include "goshm.pb-c.h"
#include "segment.h" /* GS_ABI_VERSION */
#include "check.h"

#define FZ_MAX_PACKET (64u * 1024u) /* GS_CTL_MAX_PACKET, daemon/ctl.h */
#define FZ_DATA_SIZE (UINT64_C(320) << 20)
#define FZ_META_SIZE UINT64_C(3792896)
#define FZ_EPOCH UINT64_C(0x1234567890abcdef)

/* What the inputs reached (printed by main): decodes per message and case. */
static unsigned long long fz_decoded[2][6], fz_rejected[2], fz_oom_runs;

/* ---- a counting allocator that can fail ------------------------------------ */

typedef struct fz_alloc {
    long live;     /* blocks allocated and not yet freed */
    long calls;    /* allocation calls */
    long fail_at;  /* fail this call (1-based); 0: never */
} fz_alloc_t;

static void *fz_alloc_fn(void *data, size_t size)
{
    fz_alloc_t *a = data;
    if (++a->calls == a->fail_at) return NULL;
    void *p = malloc(size ? size : 1);
    if (p) a->live++;
    return p;
}

static void fz_free_fn(void *data, void *p)
{
    fz_alloc_t *a = data;
    if (p) a->live--;
    free(p);
}

/* ---- generic deep equality over the descriptors ---------------------------- */

static size_t scalar_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    default: return 4;
    }
}

static bool msg_eq(const ProtobufCMessage *a, const ProtobufCMessage *b);

static bool value_eq(const ProtobufCFieldDescriptor *fd, const void *pa, const void *pb)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *x = *(char *const *)pa, *y = *(char *const *)pb;
        return x && y ? strcmp(x, y) == 0 : x == y;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *x = pa, *y = pb;
        return x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return msg_eq(*(ProtobufCMessage *const *)pa, *(ProtobufCMessage *const *)pb);
    default:
        return memcmp(pa, pb, scalar_size(fd->type)) == 0;
    }
}

static bool msg_eq(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    if (!a || !b) return a == b;
    if (a->descriptor != b->descriptor) return false;
    const ProtobufCMessageDescriptor *d = a->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        const char *pa = (const char *)a + fd->offset, *pb = (const char *)b + fd->offset;
        if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t ca = *(const uint32_t *)((const char *)a + fd->quantifier_offset);
            uint32_t cb = *(const uint32_t *)((const char *)b + fd->quantifier_offset);
            if (ca != cb) return false;
            if (ca == fd->id && !value_eq(fd, pa, pb)) return false;
        } else if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t na = *(const size_t *)((const char *)a + fd->quantifier_offset);
            size_t nb = *(const size_t *)((const char *)b + fd->quantifier_offset);
            if (na != nb) return false;
            const char *ea = *(char *const *)pa, *eb = *(char *const *)pb;
            size_t sz = scalar_size(fd->type);
            for (size_t k = 0; k < na; k++)
                if (!value_eq(fd, ea + k * sz, eb + k * sz)) return false;
        } else {
            if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && fd->quantifier_offset &&
                *(const protobuf_c_boolean *)((const char *)a + fd->quantifier_offset) !=
                    *(const protobuf_c_boolean *)((const char *)b + fd->quantifier_offset))
                return false;
            if (!value_eq(fd, pa, pb)) return false;
        }
    }
    if (a->n_unknown_fields != b->n_unknown_fields) return false;
    for (unsigned i = 0; i < a->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *x = &a->unknown_fields[i], *y = &b->unknown_fields[i];
        if (x->tag != y->tag || x->wire_type != y->wire_type || x->len != y->len ||
            (x->len && memcmp(x->data, y->data, x->len) != 0))
            return false;
    }
    return true;
}

/* protobuf-c 1.4 rejects a tag whose first byte says field 0, but accepts an
 * overlong one (0x80 0x00) and keeps it as an unknown field of number 0, which
 * it then packs as 0x00 and rejects on the next decode. Harmless here (unknown
 * fields are ignored), so the round trip is not checked for such messages. */
static bool has_field0(const ProtobufCMessage *m)
{
    if (!m) return false;
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0) return true;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (fd->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        const char *p = (const char *)m + fd->offset;
        if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)((const char *)m + fd->quantifier_offset) == fd->id &&
                has_field0(*(ProtobufCMessage *const *)p))
                return true;
        } else if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + fd->quantifier_offset);
            for (size_t k = 0; k < n; k++)
                if (has_field0((*(ProtobufCMessage *const *const *)p)[k])) return true;
        } else if (has_field0(*(ProtobufCMessage *const *)p)) {
            return true;
        }
    }
    return false;
}

/* ---- walking the messages as their readers do ------------------------------- */

static volatile uint64_t fz_sink; /* keeps the reads */

static void touch(const char *s)
{
    CHECK(s != NULL);
    if (s) fz_sink += strlen(s);
}

/* daemon/ctl.c on_conn_readable and handle_attach. */
static void walk_request(const Goshm__Request *r)
{
    switch (r->msg_case) {
    case GOSHM__REQUEST__MSG_ATTACH:
        CHECK(r->attach != NULL);
        if (r->attach) fz_sink += r->attach->abi_version != GS_ABI_VERSION ? 1u : r->attach->pid;
        break;
    case GOSHM__REQUEST__MSG_DETACH: CHECK(r->detach != NULL); break;
    case GOSHM__REQUEST__MSG_STATS: CHECK(r->stats != NULL); break;
    case GOSHM__REQUEST__MSG_PROFILE: CHECK(r->profile != NULL); break;
    /* The names directory (daemon/ctl.c, daemon/names.c): names are bytes,
     * read as (data, len) and validated byte by byte. */
    case GOSHM__REQUEST__MSG_NAME_SET:
        CHECK(r->name_set != NULL);
        if (r->name_set)
            fz_sink += gs_name_valid_n((const char *)r->name_set->name.data, r->name_set->name.len) + r->name_set->off;
        break;
    case GOSHM__REQUEST__MSG_NAME_DEL:
        CHECK(r->name_del != NULL);
        if (r->name_del) fz_sink += gs_name_valid_n((const char *)r->name_del->name.data, r->name_del->name.len);
        break;
    case GOSHM__REQUEST__MSG_CHAN_OPEN:
        CHECK(r->chan_open != NULL);
        if (r->chan_open)
            fz_sink += gs_name_valid_n((const char *)r->chan_open->name.data, r->chan_open->name.len) +
                       r->chan_open->capacity + r->chan_open->create_off + r->chan_open->create_id;
        break;
    case GOSHM__REQUEST__MSG_CHAN_UNLINK:
        CHECK(r->chan_unlink != NULL);
        if (r->chan_unlink)
            fz_sink += gs_name_valid_n((const char *)r->chan_unlink->name.data, r->chan_unlink->name.len);
        break;
    case GOSHM__REQUEST__MSG_NAME_LIST:
        CHECK(r->name_list != NULL);
        if (r->name_list) fz_sink += r->name_list->cursor;
        break;
    case GOSHM__REQUEST__MSG__NOT_SET: break; /* "request without a message" */
    default: CHECK_MSG(0, "request: impossible oneof case %d", (int)r->msg_case); break;
    }
}

/* The meta header of a 256 MiB heap with 64 slots, as daemon/heap.c writes
 * it (the values the replies of gen_valid and the corpus aim at). */
static gs_meta_header_t fz_meta(void)
{
    gs_meta_header_t m;
    memset(&m, 0, sizeof m);
    m.magic = GS_META_MAGIC;
    m.abi_version = GS_ABI_VERSION;
    m.page_size = GS_PAGE_SIZE;
    m.arena_size = GS_ARENA_SIZE;
    m.data_size = FZ_DATA_SIZE;
    m.meta_size = FZ_META_SIZE;
    m.max_slots = 64;
    m.slot_size = GS_SLOT_MAP_SIZE;
    m.epoch = FZ_EPOCH;
    return m;
}

static unsigned long long fz_attach_agreed, fz_meta_usable;

/* client/service.c: an AttachReply is used only if it agrees with the meta
 * header, field by field. */
static void check_attach_reply(const Goshm__AttachReply *a)
{
    gs_meta_header_t m = fz_meta();
    bool ok = gs_attach_agrees(&m, a->slot, a->max_slots, a->data_size, a->meta_size, a->slot_size, a->epoch);
    bool want = a->max_slots == 64 && a->slot < 64 && a->data_size == FZ_DATA_SIZE &&
                a->meta_size == FZ_META_SIZE && a->slot_size == GS_SLOT_MAP_SIZE && a->epoch == FZ_EPOCH;
    CHECK_MSG(ok == want, "attach reply: slot %u/%u sizes %llu %llu %llu epoch %llu: client says %d, oracle %d",
              a->slot, a->max_slots, (unsigned long long)a->data_size, (unsigned long long)a->meta_size,
              (unsigned long long)a->slot_size, (unsigned long long)a->epoch, ok, want);
    fz_attach_agreed += ok;
}

/* client/attach.c: a meta header the client accepts has every region
 * inside its mappings (checked here in 128-bit arithmetic). */
static void check_meta(const uint8_t *data, size_t size)
{
    gs_meta_header_t m;
    if (size < offsetof(gs_meta_header_t, xheap_pages)) return;
    memset(&m, 0, sizeof m);
    memcpy(&m, data, offsetof(gs_meta_header_t, xheap_pages));
    if (!gs_meta_usable(&m, m.data_size, m.meta_size)) return;
    fz_meta_usable++;
    typedef unsigned __int128 u128;
    u128 ds = m.data_size, ms = m.meta_size;
    CHECK((u128)m.arena_off + ((u128)m.max_pages << GS_PAGE_SHIFT) <= ds);
    CHECK((u128)m.side_off + m.side_size <= m.notice_off);
    CHECK((u128)m.notice_off + (u128)m.max_spans * sizeof(gs_notice_t) <= m.arena_off);
    CHECK((u128)m.pagemap_off + (u128)m.max_pages * 4u <= ms);
    CHECK((u128)m.spans_off + (u128)m.max_spans * sizeof(gs_mspan_t) <= ms);
    CHECK(m.side_off >= sizeof(gs_seg_header_t) && m.max_slots >= 1 && m.max_slots <= GS_MAX_SLOTS);
}

/* client/service.c (attach, detach, errors) and tools/goshmctl.c (stats). */
static void walk_reply(const Goshm__Reply *r)
{
    switch (r->msg_case) {
    case GOSHM__REPLY__MSG_ATTACH:
        CHECK(r->attach != NULL);
        if (r->attach) {
            fz_sink += r->attach->abi_version + r->attach->slot + r->attach->data_size + r->attach->meta_size +
                       r->attach->epoch + r->attach->slot_size + r->attach->max_slots;
            check_attach_reply(r->attach);
        }
        break;
    case GOSHM__REPLY__MSG_DETACH: CHECK(r->detach != NULL); break;
    case GOSHM__REPLY__MSG_ERROR:
        CHECK(r->error != NULL);
        if (r->error) {
            fz_sink += (uint32_t)r->error->code;
            touch(r->error->message);
        }
        break;
    case GOSHM__REPLY__MSG_STATS: {
        const Goshm__StatsReply *s = r->stats;
        CHECK(s != NULL);
        if (!s) break;
        if (s->heap) fz_sink += s->heap->reserved_bytes + s->heap->bad_ring_entries; /* may be absent */
        CHECK(s->n_classes == 0 || s->classes != NULL);
        for (size_t i = 0; s->classes && i < s->n_classes; i++) {
            CHECK(s->classes[i] != NULL);
            if (s->classes[i]) fz_sink += s->classes[i]->size + s->classes[i]->spans;
        }
        CHECK(s->n_clients == 0 || s->clients != NULL);
        for (size_t i = 0; s->clients && i < s->n_clients; i++) {
            CHECK(s->clients[i] != NULL);
            if (s->clients[i]) fz_sink += s->clients[i]->pid + s->clients[i]->large_frees;
        }
        touch(s->backend);
        fz_sink += s->uptime_ms + s->daemon_pid;
        touch(s->version);
        fz_sink += s->heap_id + s->size_bytes + s->departed_other_bytes;
        CHECK(s->n_departed == 0 || s->departed != NULL);
        for (size_t i = 0; s->departed && i < s->n_departed; i++) {
            CHECK(s->departed[i] != NULL);
            if (s->departed[i]) fz_sink += s->departed[i]->pid + s->departed[i]->in_use_bytes;
        }
        break;
    }
    case GOSHM__REPLY__MSG_PROFILE:
        CHECK(r->profile != NULL);
        if (r->profile) fz_sink += r->profile->bytes + r->profile->stacks;
        break;
    /* client/name.c and goshmctl names. */
    case GOSHM__REPLY__MSG_NAME:
        CHECK(r->name != NULL);
        if (r->name) fz_sink += (uint64_t)r->name->code;
        break;
    case GOSHM__REPLY__MSG_CHAN_OPEN:
        CHECK(r->chan_open != NULL);
        if (r->chan_open) fz_sink += (uint64_t)r->chan_open->code + r->chan_open->off + r->chan_open->cap;
        break;
    case GOSHM__REPLY__MSG_NAME_LIST: {
        const Goshm__NameListReply *l = r->name_list;
        CHECK(l != NULL);
        if (!l) break;
        CHECK(l->n_entries == 0 || l->entries != NULL);
        for (size_t i = 0; l->entries && i < l->n_entries; i++) {
            CHECK(l->entries[i] != NULL);
            if (l->entries[i]) touch(l->entries[i]->name);
        }
        fz_sink += l->next_cursor + l->live;
        break;
    }
    case GOSHM__REPLY__MSG__NOT_SET: break;
    default: CHECK_MSG(0, "reply: impossible oneof case %d", (int)r->msg_case); break;
    }
}

/* ---- one decoder ------------------------------------------------------------ */

typedef ProtobufCMessage *(*unpack_fn)(ProtobufCAllocator *, size_t, const uint8_t *);

static void one_decoder(const char *what, const ProtobufCMessageDescriptor *desc, unpack_fn unpack,
                        void (*walk)(const ProtobufCMessage *), const uint8_t *data, size_t size, uint32_t hash)
{
    fz_alloc_t st = {0};
    ProtobufCAllocator al = {.alloc = fz_alloc_fn, .free = fz_free_fn, .allocator_data = &st};
    ProtobufCMessage *m = unpack(&al, size, data);
    int which = desc == &goshm__reply__descriptor;
    if (m) fz_decoded[which][(*(const uint32_t *)((const char *)m + desc->fields[0].quantifier_offset)) % 6u]++;
    else fz_rejected[which]++;
    if (!m) {
        CHECK_MSG(st.live == 0, "%s: failed unpack leaked %ld blocks", what, st.live);
        return;
    }
    CHECK(m->descriptor == desc);
    walk(m);
    long calls = st.calls;

    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b1 = malloc(n ? n : 1);
    size_t n1 = protobuf_c_message_pack(m, b1);
    CHECK_MSG(n1 == n, "%s: packed %zu bytes, get_packed_size said %zu", what, n1, n);
    ProtobufCMessage *m2 = has_field0(m) ? NULL : unpack(&al, n1, b1);
    CHECK_MSG(m2 != NULL || has_field0(m), "%s: repacked message does not decode", what);
    if (m2) {
        CHECK_MSG(msg_eq(m, m2), "%s: round trip changed the message", what);
        size_t n2 = protobuf_c_message_get_packed_size(m2);
        uint8_t *b2 = malloc(n2 ? n2 : 1);
        size_t k2 = protobuf_c_message_pack(m2, b2);
        CHECK_MSG(k2 == n1 && memcmp(b1, b2, n1) == 0, "%s: second packing differs (%zu vs %zu bytes)", what, k2, n1);
        free(b2);
        protobuf_c_message_free_unpacked(m2, &al);
    }
    free(b1);
    protobuf_c_message_free_unpacked(m, &al);
    CHECK_MSG(st.live == 0, "%s: free_unpacked left %ld blocks", what, st.live);

    /* Out of memory at one allocation of the first decode. */
    if (calls > 0) {
        fz_alloc_t ft = {.fail_at = 1 + (long)(hash % (uint32_t)calls)};
        ProtobufCAllocator fal = {.alloc = fz_alloc_fn, .free = fz_free_fn, .allocator_data = &ft};
        fz_oom_runs++;
        ProtobufCMessage *m3 = unpack(&fal, size, data);
        CHECK_MSG(m3 == NULL, "%s: decode succeeded although allocation %ld of %ld failed", what, ft.fail_at, calls);
        if (m3) protobuf_c_message_free_unpacked(m3, &fal);
        CHECK_MSG(ft.live == 0, "%s: decode failing at allocation %ld of %ld leaked %ld blocks", what, ft.fail_at,
                  calls, ft.live);
    }
}

static ProtobufCMessage *unpack_request(ProtobufCAllocator *a, size_t n, const uint8_t *d)
{
    return (ProtobufCMessage *)goshm__request__unpack(a, n, d);
}
static ProtobufCMessage *unpack_reply(ProtobufCAllocator *a, size_t n, const uint8_t *d)
{
    return (ProtobufCMessage *)goshm__reply__unpack(a, n, d);
}
static void walk_request_m(const ProtobufCMessage *m) { walk_request((const Goshm__Request *)m); }
static void walk_reply_m(const ProtobufCMessage *m) { walk_reply((const Goshm__Reply *)m); }

static int run_input(const uint8_t *data, size_t size)
{
    int failures = check_failures;
    uint32_t hash = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < size; i++) hash = (hash ^ data[i]) * 16777619u;
    /* The daemon drops empty and oversized packets before decoding. */
    if (size > 0 && size <= FZ_MAX_PACKET)
        one_decoder("Request", &goshm__request__descriptor, unpack_request, walk_request_m, data, size, hash);
    one_decoder("Reply", &goshm__reply__descriptor, unpack_reply, walk_reply_m, data, size, hash);
    check_meta(data, size);
    return check_failures != failures ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (run_input(data, size) != 0) abort(); /* libFuzzer saves the input */
    return 0;
}

#ifndef GOSHM_LIBFUZZER
/* ---- replay and random inputs for ctest ----------------------------------- */

#include "fuzz-main.h"

static uint64_t rnd_val(unsigned long long *rs)
{
    unsigned long long r = test_rand(rs);
    switch (r % 5u) {
    case 0: return 0;
    case 1: return (r >> 8) % 300u;
    case 2: return UINT64_MAX - (r >> 8) % 3u;
    case 3: return (uint32_t)(r >> 16);
    default: return test_rand(rs);
    }
}

static char *rnd_str(unsigned long long *rs, char *buf, size_t cap)
{
    size_t n = (size_t)(test_rand(rs) % cap);
    for (size_t i = 0; i < n; i++) buf[i] = (char)(1u + test_rand(rs) % 255u); /* no NUL inside */
    buf[n] = '\0';
    return buf;
}

/* A valid Request or Reply with random contents, packed. */
static size_t gen_valid(unsigned long long *rs, uint8_t *buf, size_t cap)
{
    static Goshm__ClassStats cls[80];
    static Goshm__ClassStats *clp[80];
    static Goshm__ClientStats cli[20];
    static Goshm__ClientStats *clip[20];
    char s1[64], s2[300];
    unsigned long long r = test_rand(rs);
    ProtobufCMessage *m;
    Goshm__Attach at = GOSHM__ATTACH__INIT;
    Goshm__Detach de = GOSHM__DETACH__INIT;
    Goshm__StatsRequest sq = GOSHM__STATS_REQUEST__INIT;
    Goshm__Request req = GOSHM__REQUEST__INIT;
    Goshm__AttachReply ar = GOSHM__ATTACH_REPLY__INIT;
    Goshm__DetachReply dr = GOSHM__DETACH_REPLY__INIT;
    Goshm__HeapStats hs = GOSHM__HEAP_STATS__INIT;
    Goshm__StatsReply sr = GOSHM__STATS_REPLY__INIT;
    Goshm__Error er = GOSHM__ERROR__INIT;
    Goshm__Reply rep = GOSHM__REPLY__INIT;
    if (r % 2u) {
        switch ((r >> 8) % 4u) {
        case 0:
            at.abi_version = (r >> 16) % 3u ? GS_ABI_VERSION : (uint32_t)rnd_val(rs);
            at.pid = (uint32_t)rnd_val(rs);
            req.msg_case = GOSHM__REQUEST__MSG_ATTACH;
            req.attach = &at;
            break;
        case 1: req.msg_case = GOSHM__REQUEST__MSG_DETACH; req.detach = &de; break;
        case 2: req.msg_case = GOSHM__REQUEST__MSG_STATS; req.stats = &sq; break;
        default: break;
        }
        m = &req.base;
    } else {
        switch ((r >> 8) % 5u) {
        case 0:
            ar.abi_version = (uint32_t)rnd_val(rs);
            ar.slot = (uint32_t)rnd_val(rs);
            ar.data_size = rnd_val(rs);
            ar.meta_size = rnd_val(rs);
            ar.epoch = rnd_val(rs);
            ar.slot_size = rnd_val(rs);
            ar.max_slots = (uint32_t)rnd_val(rs);
            if ((r >> 20) % 2u) {
                /* Near a real reply: each field right but for one, or all. */
                unsigned wrong = (unsigned)((r >> 24) % 8u);
                if (wrong != 0) ar.slot = (uint32_t)((r >> 32) % 64u);
                if (wrong != 1) ar.max_slots = 64;
                if (wrong != 2) ar.data_size = FZ_DATA_SIZE;
                if (wrong != 3) ar.meta_size = FZ_META_SIZE;
                if (wrong != 4) ar.slot_size = GS_SLOT_MAP_SIZE;
                if (wrong != 5) ar.epoch = FZ_EPOCH;
            }
            rep.msg_case = GOSHM__REPLY__MSG_ATTACH;
            rep.attach = &ar;
            break;
        case 1: rep.msg_case = GOSHM__REPLY__MSG_DETACH; rep.detach = &dr; break;
        case 2: {
            uint64_t *f = &hs.reserved_bytes;
            for (unsigned i = 0; i < 14; i++) f[i] = rnd_val(rs);
            sr.heap = (r >> 16) % 4u ? &hs : NULL;
            sr.n_classes = (size_t)(test_rand(rs) % 80u);
            for (size_t i = 0; i < sr.n_classes; i++) {
                goshm__class_stats__init(&cls[i]);
                cls[i].size = (uint32_t)rnd_val(rs);
                cls[i].objects_in_use = rnd_val(rs);
                cls[i].allocs = rnd_val(rs);
                cls[i].frees = rnd_val(rs);
                cls[i].spans = rnd_val(rs);
                clp[i] = &cls[i];
            }
            sr.classes = clp;
            sr.n_clients = (size_t)(test_rand(rs) % 20u);
            for (size_t i = 0; i < sr.n_clients; i++) {
                goshm__client_stats__init(&cli[i]);
                cli[i].pid = (uint32_t)rnd_val(rs);
                cli[i].slot = (uint32_t)rnd_val(rs);
                cli[i].cached_spans = rnd_val(rs);
                cli[i].allocs = rnd_val(rs);
                cli[i].large_frees = rnd_val(rs);
                clip[i] = &cli[i];
            }
            sr.clients = clip;
            sr.backend = rnd_str(rs, s1, sizeof s1);
            sr.uptime_ms = rnd_val(rs);
            sr.daemon_pid = (uint32_t)rnd_val(rs);
            rep.msg_case = GOSHM__REPLY__MSG_STATS;
            rep.stats = &sr;
            break;
        }
        case 3:
            er.code = (int32_t)rnd_val(rs);
            er.message = rnd_str(rs, s2, sizeof s2);
            rep.msg_case = GOSHM__REPLY__MSG_ERROR;
            rep.error = &er;
            break;
        default: break;
        }
        m = &rep.base;
    }
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n > cap) return 0;
    return protobuf_c_message_pack(m, buf);
}

static size_t put_varint(uint8_t *p, uint64_t v, unsigned pad) /* pad: extra, overlong bytes */
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    if (!pad) {
        p[n++] = (uint8_t)v;
        return n;
    }
    p[n++] = (uint8_t)(v | 0x80);
    while (--pad) p[n++] = 0x80;
    p[n++] = 0;
    return n;
}

/* Wire-format soup: fields of any number and wire type, overlong varints,
 * lengths that lie, groups, nested valid messages. */
static size_t gen_soup(unsigned long long *rs, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    unsigned fields = 1u + (unsigned)(test_rand(rs) % 12u);
    for (unsigned i = 0; i < fields && n + 64 < cap; i++) {
        unsigned long long r = test_rand(rs);
        uint32_t id = r % 8u == 0 ? (uint32_t)(r >> 8) % 536870912u : 1u + (uint32_t)((r >> 8) % 16u);
        uint32_t wt = (r >> 40) % 10u < 7 ? ((r >> 44) % 2u ? 2u : 0u) : (uint32_t)((r >> 48) % 8u);
        n += put_varint(buf + n, (uint64_t)id << 3 | wt, (r >> 52) % 16u == 0 ? 2u : 0u);
        switch (wt) {
        case 0: n += put_varint(buf + n, rnd_val(rs), test_rand(rs) % 8u == 0 ? 3u : 0u); break;
        case 1: for (int k = 0; k < 8; k++) buf[n++] = (uint8_t)test_rand(rs); break;
        case 5: for (int k = 0; k < 4; k++) buf[n++] = (uint8_t)test_rand(rs); break;
        case 2: {
            uint8_t sub[4096];
            size_t sl;
            if (test_rand(rs) % 2u) {
                sl = gen_valid(rs, sub, sizeof sub);
            } else {
                sl = (size_t)(test_rand(rs) % 40u);
                for (size_t k = 0; k < sl; k++) sub[k] = (uint8_t)test_rand(rs);
            }
            uint64_t lie = sl;
            if (test_rand(rs) % 10u == 0) lie += test_rand(rs) % 5u;
            if (test_rand(rs) % 40u == 0) lie = rnd_val(rs);
            n += put_varint(buf + n, lie, 0);
            if (n + sl > cap) sl = cap - n;
            memcpy(buf + n, sub, sl);
            n += sl;
            break;
        }
        default: break; /* groups (3, 4) and invalid wire types: no payload */
        }
    }
    return n;
}

/* A meta header laid out as daemon/heap.c lays out a 256 MiB heap, one
 * 64-bit word of it replaced with a random value (or none). */
static size_t gen_meta(unsigned long long *rs, uint8_t *buf, size_t cap)
{
    gs_meta_header_t m = fz_meta();
    uint64_t max_pages = (UINT64_C(256) << 20) >> GS_PAGE_SHIFT;
    m.max_pages = max_pages;
    m.max_spans = max_pages + 2u;
    m.side_off = 64u * 1024u;
    m.side_size = max_pages * 320u;
    m.notice_off = m.side_off + m.side_size;
    m.arena_off = GS_ARENA_SIZE;
    m.pagemap_off = 4096;
    m.spans_off = 4096 + max_pages * 4u;
    m.data_size = m.arena_off + (max_pages << GS_PAGE_SHIFT);
    m.meta_size = m.spans_off + m.max_spans * sizeof(gs_mspan_t);
    size_t n = offsetof(gs_meta_header_t, xheap_pages);
    if (cap < n) return 0;
    memcpy(buf, &m, n);
    unsigned long long r = test_rand(rs);
    if (r % 4u) {
        uint64_t v = rnd_val(rs);
        memcpy(buf + (size_t)((r >> 8) % (n / 8u)) * 8u, &v, 8);
    }
    return n;
}

static size_t gen_input(unsigned long long *rs, uint8_t *buf, size_t cap)
{
    size_t n;
    unsigned long long r = test_rand(rs);
    if (r % 20u == 0) return gen_meta(rs, buf, cap); /* unmutated: mutations come from its one word */
    if (r % 10u < 7) {
        n = gen_valid(rs, buf, cap);
        /* Concatenated messages merge: oneof cases switch, repeated fields
         * append, submessages merge. */
        while (test_rand(rs) % 3u == 0 && n < cap / 2) n += gen_valid(rs, buf + n, cap - n);
    } else {
        n = gen_soup(rs, buf, cap);
    }
    unsigned muts = (unsigned)(test_rand(rs) % 4u);
    for (unsigned i = 0; i < muts && n; i++) {
        r = test_rand(rs);
        size_t at = (size_t)((r >> 8) % n);
        switch (r % 5u) {
        case 0: buf[at] ^= (uint8_t)(1u << ((r >> 40) % 8u)); break;
        case 1: buf[at] = (uint8_t)(r >> 48); break;
        case 2: n = at; break; /* truncate */
        case 3: if (n + 16 < cap) { memmove(buf + at + 1, buf + at, n - at); buf[at] = (uint8_t)(r >> 48); n++; } break;
        default: if (n > 1) { memmove(buf + at, buf + at + 1, n - at - 1); n--; } break;
        }
    }
    return n;
}

int main(int argc, char **argv)
{
    fz_main_opts_t o;
    fz_parse(&o, argc, argv, 500000 / TEST_SCALE);
    int rc = fz_main(&o, "fuzz-ctl", run_input, gen_input, 64u * 1024u, 1);
    fprintf(stderr, "fuzz-ctl: reached: %llu attach replies agreeing with the meta header, %llu usable meta headers\n",
            fz_attach_agreed, fz_meta_usable);
    fprintf(stderr, "fuzz-ctl: reached: Request decoded %llu (none %llu, attach %llu, detach %llu, stats %llu), "
                    "rejected %llu; Reply decoded %llu (none %llu, attach %llu, detach %llu, stats %llu, error %llu), "
                    "rejected %llu; %llu decodes with a failing allocation\n",
            fz_decoded[0][0] + fz_decoded[0][1] + fz_decoded[0][2] + fz_decoded[0][3], fz_decoded[0][0],
            fz_decoded[0][1], fz_decoded[0][2], fz_decoded[0][3], fz_rejected[0],
            fz_decoded[1][0] + fz_decoded[1][1] + fz_decoded[1][2] + fz_decoded[1][3] + fz_decoded[1][4],
            fz_decoded[1][0], fz_decoded[1][1], fz_decoded[1][2], fz_decoded[1][3], fz_decoded[1][4], fz_rejected[1],
            fz_oom_runs);
    return rc;
}
#endif
