/* SPDX-License-Identifier: MIT */
/* names.h: the names directory: a heap-wide table of named offsets and channels, in the meta memfd.
 *
 * Overview: shm/overview.h; the design: issue 10 (names, buffers, channels).
 * The directory is an open-addressed hash table of GS_DIR_CAP entries
 * (gs_dirent_t) at gs_meta_header_t.dir_off in the META memfd: clients map
 * it read-only, so only the daemon writes it (daemon/names.c), on validated
 * control-socket requests (NameSet, NameDel, ChanOpen, ChanUnlink), under
 * the heap lock. Names and channels are two namespaces: the key is (kind,
 * name). Lookups hash the name, then probe linearly from its bucket until a
 * free entry (tombstones are skipped): the daemon keeps at most GS_DIR_MAX
 * live entries, so a free bucket is never far.
 *
 * Each entry has its own seqlock, xseq:
 *   writer (the daemon, one at a time under the heap lock): xseq = s + 1
 *   (odd, relaxed), the fields word by word with release stores (each is
 *   ordered after the odd value), xseq = s + 2 (release).
 *   reader (any client, lock-free): s1 = xseq (acquire); retry while odd;
 *   copy the fields word by word with acquire loads (the re-check cannot
 *   move before them); retry if xseq != s1.
 * No fence: the per-word orderings are plain moves on x86 and the pairing
 * is visible to ThreadSanitizer (gs_dirent_store, gs_dirent_read).
 * Crash story: every write is undo-logged first (daemon/intent.c,
 * GS_UNDO_DIRENT): an adopter finds the entry exactly as before the
 * operation, with an even xseq that differs from any value seen during the
 * write. A daemon killed mid-write with no adopter leaves an odd xseq:
 * readers give up after their deadline (ETIMEDOUT), never return torn data.
 * Trust story: the mapping is read-only for clients and the daemon is the
 * only writer; still a reader bounds everything it reads (len clamped, the
 * name compared within its 64 bytes, at most GS_DIR_CAP probes), so a
 * corrupt directory costs a wrong answer, never a wild read.
 */
#ifndef GOSHM_NAMES_H
#define GOSHM_NAMES_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* uint*_t */
#include <string.h> /* memcpy */

#include "atomic.h"

#define GS_DIR_CAP 8192u   /* buckets (a power of two) */
#define GS_DIR_MAX 6144u   /* live entries at most: 3/4 of the buckets */
#define GS_NAME_MAX 63u    /* bytes of a name, without the NUL */

enum { GS_DIR_FREE = 0, GS_DIR_NAME = 1, GS_DIR_CHAN = 2, GS_DIR_TOMB = 3 };

typedef struct gs_dirent {
    _Atomic uint32_t xseq;  /* seqlock: odd while the daemon writes the entry */
    uint8_t  kind;          /* GS_DIR_* */
    uint8_t  len;           /* name bytes, 1..GS_NAME_MAX */
    uint8_t  pad[2];
    char     name[64];      /* NUL-padded */
    uint64_t off;           /* NAME: the offset; CHAN: the channel's payload offset */
    uint64_t id;            /* CHAN: the buffer id (the directory's reference) */
    uint32_t cap;           /* CHAN: capacity */
    uint32_t uid;           /* who set it: the per-uid bound (daemon/names.c) */
} gs_dirent_t;

_Static_assert(sizeof(gs_dirent_t) == 96, "dirent layout");
_Static_assert(offsetof(gs_dirent_t, kind) == 4 && offsetof(gs_dirent_t, name) == 8, "dirent words");

/* 1 if name is valid: 1..63 bytes of printable ASCII (0x20..0x7e), no '/'.
 * Both sides check it. */
static inline int gs_name_valid(const char *name)
{
    if (!name) return 0;
    size_t n = 0;
    for (; name[n]; n++) {
        unsigned char ch = (unsigned char)name[n];
        if (n >= GS_NAME_MAX || ch < 0x20u || ch > 0x7eu || ch == '/') return 0;
    }
    return n > 0;
}

/* The same for len bytes that need not be NUL-terminated (protobuf strings). */
static inline int gs_name_valid_n(const char *name, size_t len)
{
    if (!name || len == 0 || len > GS_NAME_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20u || ch > 0x7eu || ch == '/') return 0;
    }
    return 1;
}

/* FNV-1a of the key (kind, name): the first bucket to probe. */
static inline uint32_t gs_dir_hash(uint8_t kind, const char *name, size_t len)
{
    uint32_t h = 2166136261u ^ kind;
    h *= 16777619u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 16777619u;
    }
    return h;
}

/* The entry's bytes after xseq, as 32-bit word 1 and 64-bit words 1..11. */
#define GS_DIRENT_WORDS (sizeof(gs_dirent_t) / 8u)

/* The writer's half: every field of v into d, each word a release store
 * (after the caller's odd xseq store). The heap side only. */
static inline void gs_dirent_store(gs_dirent_t *d, const gs_dirent_t *v)
{
    uint32_t w32;
    memcpy(&w32, (const char *)v + 4, 4);
    __atomic_store_n((uint32_t *)((char *)d + 4), w32, __ATOMIC_RELEASE);
    for (size_t i = 1; i < GS_DIRENT_WORDS; i++) {
        uint64_t w;
        memcpy(&w, (const char *)v + 8u * i, 8);
        __atomic_store_n((uint64_t *)((char *)d + 8u * i), w, __ATOMIC_RELEASE);
    }
}

/* One consistent copy of entry e (the seqlock read above). 1: *out holds it;
 * 0: the entry was being written `tries` times in a row (the caller waits a
 * little and tries again, or gives up). */
static inline int gs_dirent_read(const gs_dirent_t *e, gs_dirent_t *out, unsigned tries)
{
    _Atomic uint32_t *seq = (_Atomic uint32_t *)&e->xseq;
    for (unsigned t = 0; t < tries; t++) {
        uint32_t s1 = gs_load_acquire(seq);
        if (s1 & 1u) continue;
        uint32_t w32 = __atomic_load_n((const uint32_t *)((const char *)e + 4), __ATOMIC_ACQUIRE);
        memcpy((char *)out + 4, &w32, 4);
        for (size_t k = 1; k < GS_DIRENT_WORDS; k++) {
            uint64_t w = __atomic_load_n((const uint64_t *)((const char *)e + 8u * k), __ATOMIC_ACQUIRE);
            memcpy((char *)out + 8u * k, &w, 8);
        }
        if (gs_load_relaxed(seq) == s1) {
            if (out->len > GS_NAME_MAX) out->len = GS_NAME_MAX; /* never trusted beyond bounds */
            return 1;
        }
    }
    return 0;
}

/* Does the copy r hold the key (kind, name[0..len))? */
static inline int gs_dirent_is(const gs_dirent_t *r, uint8_t kind, const char *name, size_t len)
{
    return r->kind == kind && r->len == len && memcmp(r->name, name, len) == 0;
}

#endif /* GOSHM_NAMES_H */
