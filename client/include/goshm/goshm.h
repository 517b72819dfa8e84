/* SPDX-License-Identifier: MIT */
/* goshm.h: the public API of libgoshm, a multi-process shared-memory allocator.
 *
 * A process attaches to a heap served by goshmd and allocates from it with
 * the malloc family. Objects live in a segment every attached process maps;
 * pass them between processes as offsets (goshm_off, goshm_ptr): any process
 * may free what any other allocated. Manual: goshm(3); the daemon: goshmd(8).
 *
 * Errors. Functions that fail return NULL (goshm_attach, the malloc family,
 * goshm_ptr), GOSHM_NULL (goshm_off) or -1 (goshm_detach); those that set
 * errno say which values below. A successful call leaves errno alone. The
 * errno values, with where they come from:
 *   ENOMEM        the heap is full (or the request is larger than the heap),
 *                 or this process ran out of memory for its own bookkeeping.
 *                 Memory is committed before it is handed out, so a full heap
 *                 is this error, never a SIGBUS later.
 *   EINVAL        a bad argument (each function says which).
 *   EOVERFLOW     goshm_calloc: nmemb * size overflows size_t.
 *   ENOENT        attach: no socket at the path (no daemon started there).
 *   ECONNREFUSED  attach: a socket file but no daemon listening on it (a
 *                 daemon that died), or the daemon hung up before answering.
 *   EACCES        attach: the socket's or its directory's file mode forbids
 *                 this user to connect; or the daemon is not trusted: the
 *                 socket's directory is not owned by the caller, root or a
 *                 user in $GOSHM_DAEMON_UID, others can write it, or the
 *                 listening process runs as another user (the reason is
 *                 printed on stderr; nothing was sent).
 *   EPERM         attach: the daemon refused this user (see goshmd's
 *                 --allow-uid and --allow-gid).
 *   ENOSPC        attach: the daemon serves --max-clients processes already.
 *   EDQUOT        attach: this user has --max-clients-per-uid processes
 *                 attached already. The malloc family: the allocation would
 *                 take this process past goshmd's --max-client-bytes, or its
 *                 user past --max-uid-bytes (quotas on the spans a process
 *                 caches and the large objects it allocated; goshmd(8)).
 *   EPROTO        attach: the daemon speaks another protocol ABI version, or
 *                 its answer or its segment failed the checks; the malloc
 *                 family: an answer through shared memory, or a span it
 *                 named, failed the checks (another client wrote there).
 *   ENAMETOOLONG  attach: the socket path does not fit a sockaddr_un (107
 *                 bytes).
 *   ECONNRESET    a call that needs the daemon found it gone (see "Daemon
 *                 stop and restart").
 *   ETIMEDOUT     a call that needs the daemon (attach, detach, a refill,
 *                 a large object) got no answer within $GOSHM_TIMEOUT_MS
 *                 milliseconds (default 10000): the daemon is stopped
 *                 (SIGSTOP), wedged or overloaded. The handle stays usable:
 *                 a later call works once the daemon answers again, and
 *                 whatever the late answer carries (spans, a large object)
 *                 is given back by libgoshm, not leaked.
 *   EPIPE         the connection to the daemon was closed while a request
 *                 was sent (goshm_detach after the daemon stopped; attach).
 *   ESTALE        in a fork() child: a different heap now answers at the
 *                 parent's socket path, so the child cannot get a slot on
 *                 the heap it inherited.
 * Attach can also fail with the errno of socket(2), connect(2), recvmsg(2)
 * and mmap(2) (EMFILE, ENFILE, ...).
 *
 * Which calls need the daemon. goshm_attach and goshm_detach always do. The
 * malloc family does only when this thread's cached span of the size class
 * is used up (a refill, about once per span of objects) or for objects
 * larger than 32 KiB; every other allocation, every goshm_free, goshm_off,
 * goshm_ptr and goshm_usable_size work on the shared memory alone. So the
 * malloc family can fail with ENOMEM, EDQUOT, ECONNRESET, ETIMEDOUT, EPROTO, and, in a fork() child's
 * first refill (which attaches the child), with any error of goshm_attach or
 * ESTALE.
 *
 * Bad input. h must be a handle returned by goshm_attach and not yet
 * detached; any other h (NULL included) is undefined behaviour, except for
 * goshm_detach(NULL), which fails with EINVAL. Offsets and pointers are
 * checked against the heap's object area, not against the set of live
 * objects: goshm_off and goshm_ptr translate, they do not validate. Freeing
 * something that is not a live object of this heap (a pointer outside it or
 * into another heap, an interior pointer, a double free) is detected: see
 * goshm_free. One kind cannot be: a stale pointer freed after its slot was
 * handed out again (by this or another process) is indistinguishable from a
 * valid free of the new object, which it then frees; telling them apart
 * would take a generation per object. A second free before the slot is
 * reused, from any process, is reported. Each function below states what
 * it does with each bad input.
 *
 * Other clients. A process that writes the shared segment directly can free
 * or overwrite other clients' objects, never break the page heap or make
 * another client abort: what libgoshm finds there that cannot be right (a
 * span record that does not match an answer, a bitmap with no free slot in
 * a span just handed over) fails the call with EPROTO or ENOMEM and is
 * reported on stderr ("goshm: peer: ..."), rate-limited.
 *
 * Thread safety. Every function may be called from any thread, at the same
 * time as any other on the same or another handle, except that goshm_detach
 * must be the last call on its handle: call it once no other thread uses h.
 * Each thread allocates from its own cache without locks; a thread that
 * exits gives its cache back. Objects may be freed by any thread of any
 * attached process. None of the functions is async-signal-safe. A process
 * may attach to several heaps. After fork() the child keeps using the
 * parent's handles: objects from before the fork stay valid, and the child
 * gets a client slot of its own at its first refill.
 *
 * Daemon stop and restart. When goshmd stops, whether by SIGTERM, a crash
 * or a restart by systemd, a handle stays bound to the heap it attached to:
 *   - memory already allocated stays mapped and usable in this process
 *     (read, write, goshm_free, goshm_off, goshm_ptr) until goshm_detach;
 *     other processes still attached see the same bytes;
 *   - allocations served from this thread's cache, and every free, keep
 *     working;
 *   - a call that needs the daemon waits for one at the same socket path,
 *     up to GOSHM_RECONNECT_S seconds (default 30). If the heap outlives its
 *     daemon (goshmd --state-dir or --fd-store), the new daemon adopts it:
 *     the handle reconnects by itself, keeps its client slot and cached
 *     memory, and the call goes on; every object stays valid at its offset.
 *     Otherwise (a new, empty heap: another goshm_heap_id), or after the
 *     wait, the call fails with ECONNRESET; after a heap id mismatch every
 *     later such call fails at once, after a timeout each later one tries
 *     once more without waiting.
 * To give up on a dead heap, goshm_detach the handle (it may return -1 with
 * EPIPE or ECONNRESET, and releases the handle all the same) and
 * goshm_attach again.
 *
 * Alignment: objects of 16 bytes or more are 16-byte aligned, smaller ones
 * 8-byte aligned; objects larger than 32 KiB are page (8 KiB) aligned.
 *
 * Environment: GOSHM_SOCKET (the socket goshm_attach(NULL) uses),
 * XDG_RUNTIME_DIR (part of the default socket path), GOSHM_DAEMON_UID
 * (comma-separated users or uids, besides the caller and root, whose daemon
 * and socket directory are trusted), GOSHM_DEBUG
 * ("badfree=warn": see goshm_free), GOSHM_TIMEOUT_MS (the deadline of every
 * call that needs the daemon, in milliseconds: default 10000, 0 for none;
 * anything but a number up to 86400000 is ignored), GOSHM_RECONNECT_S
 * (seconds a call that needs a daemon waits for one to come back after it
 * went away, 0..86400, default 30), GOSHM_PROFILE_RATE (the
 * heap profile's mean bytes between samples; 0 off) and GOSHM_PROFILE_UNWIND
 * ("fp", the default: a sample walks the frame pointers, so build with
 * -fno-omit-frame-pointer to get whole stacks; "dwarf": glibc's backtrace(),
 * slower, for code built without them). See goshm(3).
 */
#ifndef GOSHM_GOSHM_H
#define GOSHM_GOSHM_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* uint64_t */

#ifdef __cplusplus
extern "C" {
#endif

#define GOSHM_VERSION_MAJOR 0
#define GOSHM_VERSION_MINOR 1
#define GOSHM_VERSION_PATCH 0
/* One packed integer: major * 10000 + minor * 100 + patch. */
#define GOSHM_VERSION (GOSHM_VERSION_MAJOR * 10000 + GOSHM_VERSION_MINOR * 100 + GOSHM_VERSION_PATCH)

#if defined(GOSHM_STATIC_DEFINE) || !defined(__GNUC__)
#define GOSHM_API
#elif defined(goshm_EXPORTS) || defined(GOSHM_BUILDING)
#define GOSHM_API __attribute__((visibility("default")))
#else
#define GOSHM_API
#endif

#if defined(__GNUC__)
#define GOSHM_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
/* Two macros rather than one variadic one: the header stays clean under
 * -pedantic in every C and C++ dialect, C89 and C++98 included. */
#define GOSHM_ALLOC_SIZE1(n) __attribute__((alloc_size(n)))
#define GOSHM_ALLOC_SIZE2(n, m) __attribute__((alloc_size(n, m)))
#else
#define GOSHM_MALLOC_ATTR
#define GOSHM_ALLOC_SIZE1(n)
#define GOSHM_ALLOC_SIZE2(n, m)
#endif

typedef uint64_t goshm_off_t;          /* byte offset in the segment; 0 is null */
#ifdef __cplusplus
#define GOSHM_NULL (static_cast<goshm_off_t>(0)) /* clean under -Wold-style-cast */
#else
#define GOSHM_NULL ((goshm_off_t)0)
#endif
typedef struct goshm goshm_t;          /* one attached heap */

/* Attach to the daemon listening at socket_path. NULL or "" means
 * $GOSHM_SOCKET if set and not empty, else the default path:
 * /run/goshm/goshmd.sock for root, else $XDG_RUNTIME_DIR/goshm/goshmd.sock
 * if XDG_RUNTIME_DIR is set, else /tmp/goshm-$UID/goshmd.sock.
 * Returns a handle, or NULL with errno: ENOENT, ECONNREFUSED, EACCES, EPERM,
 * ENOSPC, EPROTO, ENAMETOOLONG, ENOMEM, EPIPE, or an errno of socket(2),
 * connect(2), recvmsg(2) or mmap(2). Each call returns a new handle with a
 * client slot of its own, even for the same path. */
GOSHM_API goshm_t *goshm_attach(const char *socket_path);

/* Give every cached span back to the daemon, say goodbye, unmap the heap
 * and free h. Objects stay valid for other processes; pointers into the heap
 * are invalid in this process afterwards. Must be the last call on h (no
 * other thread may be using it). Returns 0, or -1 with errno: EINVAL when h
 * is NULL (nothing is done); EPIPE, ECONNRESET or EPROTO when the daemon is
 * gone or answered badly: h is released all the same and must not be used
 * again. Detaching a handle twice is undefined behaviour. */
GOSHM_API int goshm_detach(goshm_t *h);

/* Allocate size bytes, not initialised. size 0 returns a unique pointer that
 * may be freed (as glibc does). Returns NULL with errno ENOMEM (heap full, or
 * size larger than the heap), ECONNRESET (daemon gone), EPROTO (another
 * client broke the answer, see "Other clients"), or in a fork() child an
 * error of goshm_attach or ESTALE (see "Which calls need the daemon"). */
GOSHM_API void *goshm_malloc(goshm_t *h, size_t size) GOSHM_MALLOC_ATTR GOSHM_ALLOC_SIZE1(2);

/* nmemb * size bytes, zeroed (the memset is skipped when the memory is known
 * to be zero). NULL with errno EOVERFLOW when the product overflows, else as
 * goshm_malloc. */
GOSHM_API void *goshm_calloc(goshm_t *h, size_t nmemb, size_t size) GOSHM_MALLOC_ATTR GOSHM_ALLOC_SIZE2(2, 3);

/* Resize p, as realloc(3): p NULL is goshm_malloc(h, size); size 0 frees p
 * and returns NULL (as glibc; errno unchanged). The block is kept in place
 * when size fits it and uses at least half of it; otherwise the contents are
 * moved to a new block and p is freed. On failure NULL with goshm_malloc's
 * errno, and p is intact. A p that is not a live object of this heap is
 * reported as goshm_free reports it: the process aborts, or with
 * GOSHM_DEBUG=badfree=warn the call returns NULL with EINVAL and p is left
 * alone. */
GOSHM_API void *goshm_realloc(goshm_t *h, void *p, size_t size) GOSHM_ALLOC_SIZE1(3);

/* size bytes aligned to alignment, which must be a power of two up to 64 MiB
 * (one arena); size need not be a multiple of it. The object is aligned at
 * its address in every attached process (the heap is mapped arena-aligned).
 * NULL with errno EINVAL for any other alignment (0 included), else as
 * goshm_malloc. */
GOSHM_API void *goshm_aligned_alloc(goshm_t *h, size_t alignment, size_t size) GOSHM_MALLOC_ATTR GOSHM_ALLOC_SIZE1(3);

/* Free p, which may come from any thread of any process attached to the same
 * heap. NULL does nothing. Never needs the daemon, never sets errno. A p that
 * is not a live object of this heap (outside it, from another heap, an
 * interior pointer, already freed) is reported on stderr with its offset,
 * span and size class and the process aborts; with GOSHM_DEBUG=badfree=warn
 * it is reported and the call returns. Either way the heap is unchanged. */
GOSHM_API void goshm_free(goshm_t *h, void *p);

/* The bytes usable at p (its size class, or the pages of a large object):
 * at least what was asked for. 0 for NULL (errno unchanged), and 0 with
 * errno EINVAL for anything that is not a live object of this heap (freed,
 * interior, foreign; no report). */
GOSHM_API size_t goshm_usable_size(goshm_t *h, const void *p);

/* Pointer -> offset: the same number in every process attached to this heap
 * (and meaningless for any other heap, or for a restarted daemon). GOSHM_NULL
 * for NULL and for a pointer outside the heap's object area (a foreign
 * pointer, a pointer into another heap), errno unchanged. A pointer inside
 * the area is translated whether or not it is a live object. */
GOSHM_API goshm_off_t goshm_off(goshm_t *h, const void *p);

/* Offset -> this process's pointer to the same bytes. NULL for GOSHM_NULL and
 * for an offset outside the heap's object area (out of range, or in the
 * segment's headers), errno unchanged. An offset inside the area is
 * translated whether or not it names a live object: using the result is
 * then as valid as the object it names. */
GOSHM_API void *goshm_ptr(goshm_t *h, goshm_off_t off);

/* The identity of the heap h is attached to: a random 64-bit number chosen
 * when goshmd created the heap, the same after any number of daemon
 * restarts that adopt it (goshmd --state-dir, --fd-store), different for a
 * new heap. Offsets are meaningful only between handles with the same id.
 * 0 with EINVAL for a NULL h. Needs no daemon. */
GOSHM_API uint64_t goshm_heap_id(goshm_t *h);

/* ---- Zero-copy IPC: names, reference-counted buffers, channels ----------
 * A zero-copy handoff: the producer allocates a buffer, writes it and sends
 * its offset through a channel; the consumer receives the offset, reads the
 * bytes in place and releases the buffer. Names let processes find each
 * other's objects and channels without passing offsets out of band. All of
 * it lives in the heap: it survives a daemon restart that adopts the heap.
 * The crash story: references belong to processes, and when a process dies
 * (at any instant, even inside one of these calls) goshmd drops exactly the
 * references it held and finishes or undoes the channel operation it was in;
 * what other processes still reference stays. See goshm(3),
 * "Passing buffers between processes". */

/* Names: a heap-wide directory of named offsets (at least 4096 names).
 * A name is 1..63 bytes of printable ASCII without '/'. A name does not hold
 * a reference: name what you keep alive yourself (or a buffer you retain).
 * goshm_name_set: 0; -1 with EEXIST (the name is taken), EINVAL (a bad name,
 * or off is not inside the heap's object area), ENOSPC (the directory is
 * full), EDQUOT (this user has goshmd's --max-names-per-uid names), or an
 * error of a call that needs the daemon. Of two processes setting one name
 * at once exactly one succeeds. Names survive a daemon restart that adopts
 * the heap. */
GOSHM_API int goshm_name_set(goshm_t *h, const char *name, goshm_off_t off);
/* The offset named name: GOSHM_NULL with ENOENT (no such name) or EINVAL
 * (a bad name). Needs no daemon: a lock-free read of the directory
 * (ETIMEDOUT only if a daemon died halfway through writing that entry and
 * none adopted the heap within $GOSHM_TIMEOUT_MS). */
GOSHM_API goshm_off_t goshm_name_get(goshm_t *h, const char *name);
/* Remove a name: 0; -1 with ENOENT, EINVAL, or an error of a call that
 * needs the daemon. */
GOSHM_API int goshm_name_del(goshm_t *h, const char *name);

/* Reference-counted buffers. goshm_buf_alloc returns a buffer of size bytes
 * (16-byte aligned) that holds one reference, held by this process; NULL
 * with goshm_malloc's errors. Pass it by goshm_off; any attached process may
 * retain and release it. It is freed when the last reference goes.
 * goshm_buf_retain: one more reference, held by this process; 0, or -1 with
 * EINVAL (p is not a live buffer), EBUSY (a process holding the buffer's
 * count locked wrote it and did not finish within $GOSHM_TIMEOUT_MS).
 * goshm_buf_release: one reference fewer; 0, or -1 with EINVAL (p is not a
 * live buffer, or this process holds no reference to it) or EBUSY.
 * goshm_buf_refs: the references now, those held by processes and those
 * travelling in channels; 0 with EINVAL if p is not a live buffer.
 * goshm_free of a buffer is goshm_buf_release when this process holds its
 * only reference, and a bad free (see goshm_free) when others hold some. */
GOSHM_API void *goshm_buf_alloc(goshm_t *h, size_t size) GOSHM_MALLOC_ATTR GOSHM_ALLOC_SIZE1(2);
GOSHM_API int goshm_buf_retain(goshm_t *h, const void *p);
GOSHM_API int goshm_buf_release(goshm_t *h, const void *p);
GOSHM_API uint32_t goshm_buf_refs(goshm_t *h, const void *p);

/* Channels: named, bounded queues of offsets, any number of senders and
 * receivers in any processes. Every message is received exactly once;
 * messages from one sender arrive in the order sent. When the offset sent
 * is a buffer this process holds a reference to, that reference travels
 * with it: into the channel on send, to the receiver on recv (fan-out to N
 * receivers: N retains, N sends). Any other offset travels as a plain value.
 * goshm_chan_open: open the channel name, creating it with room for
 * capacity messages (rounded up to a power of two, at most 1<<20) if it does
 * not exist; capacity 0: it must exist. NULL with ENOENT, EINVAL (a bad name
 * or capacity), ENOMEM, or an error of a call that needs the daemon.
 * goshm_chan_send / goshm_chan_recv: timeout_ms 0 never blocks (EAGAIN when
 * full / empty), -1 waits for ever, a positive value fails with ETIMEDOUT
 * when it runs out. EINVAL: a bad argument (send of GOSHM_NULL, or of an
 * offset outside the heap). A blocked receiver sleeps (futex) and wakes
 * when a message arrives. goshm_chan_fd: a descriptor that polls readable
 * (poll, epoll, libevent) while recv would not block; owned by the channel,
 * closed by goshm_chan_close. goshm_chan_close: 0. goshm_chan_unlink: remove
 * the name; the channel goes when the last process that has it open closes
 * it (or dies), and the references of messages still in it are released;
 * 0, or -1 with ENOENT, EINVAL. */
typedef struct goshm_chan goshm_chan_t;
GOSHM_API goshm_chan_t *goshm_chan_open(goshm_t *h, const char *name, uint32_t capacity);
GOSHM_API int goshm_chan_send(goshm_chan_t *c, goshm_off_t off, int timeout_ms);
GOSHM_API int goshm_chan_recv(goshm_chan_t *c, goshm_off_t *off, int timeout_ms);
GOSHM_API int goshm_chan_fd(goshm_chan_t *c);
GOSHM_API int goshm_chan_close(goshm_chan_t *c);
GOSHM_API int goshm_chan_unlink(goshm_t *h, const char *name);

/* The version of the library actually loaded (GOSHM_VERSION of its build).
 * Needs no handle. */
GOSHM_API int goshm_version(void);

#ifdef __cplusplus
}
#endif

#endif /* GOSHM_GOSHM_H */
