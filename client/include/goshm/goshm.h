/* goshm.h: the public API of libgoshm, a multi-process shared-memory allocator.
 *
 * A process attaches to a heap served by goshmd and allocates from it with
 * the malloc family. Objects live in a segment every attached process maps;
 * pass them between processes as offsets (goshm_off, goshm_ptr): any process
 * may free what any other allocated.
 *
 * Errors: functions return NULL (or -1) and set errno: ENOMEM when the heap is
 * full, EINVAL for bad arguments, ECONNREFUSED or ENOENT when no daemon
 * answers, EOVERFLOW when nmemb * size overflows.
 *
 * Alignment: objects of 16 bytes or more are 16-byte aligned, smaller ones
 * 8-byte aligned. All functions are thread-safe.
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
#define GOSHM_ALLOC_SIZE(...) __attribute__((alloc_size(__VA_ARGS__)))
#else
#define GOSHM_MALLOC_ATTR
#define GOSHM_ALLOC_SIZE(...)
#endif

typedef uint64_t goshm_off_t;          /* byte offset in the segment; 0 is null */
#define GOSHM_NULL ((goshm_off_t)0)
typedef struct goshm goshm_t;          /* one attached heap */

/* Attach to the daemon at socket_path (NULL: $GOSHM_SOCKET, then the default
 * path: /run/goshm/goshmd.sock for root, else $XDG_RUNTIME_DIR/goshm/goshmd.sock,
 * else /tmp/goshm-$UID/goshmd.sock). NULL with errno EACCES if the socket's
 * directory or the listening process is not trusted: not owned by / running
 * as the caller, root or a user in $GOSHM_DAEMON_UID, or a directory others
 * can write (reason on stderr). */
GOSHM_API goshm_t *goshm_attach(const char *socket_path);
/* Give every cached span back and unmap. Objects stay valid for other
 * processes. 0, or -1 with errno. */
GOSHM_API int goshm_detach(goshm_t *h);

GOSHM_API void *goshm_malloc(goshm_t *h, size_t size) GOSHM_MALLOC_ATTR GOSHM_ALLOC_SIZE(2);
GOSHM_API void *goshm_calloc(goshm_t *h, size_t nmemb, size_t size) GOSHM_MALLOC_ATTR GOSHM_ALLOC_SIZE(2, 3);
GOSHM_API void *goshm_realloc(goshm_t *h, void *p, size_t size) GOSHM_ALLOC_SIZE(3);
/* alignment: any power of two up to 64 MiB (one arena), else EINVAL. The
 * object is aligned at its address in every attached process. */
GOSHM_API void *goshm_aligned_alloc(goshm_t *h, size_t alignment, size_t size) GOSHM_MALLOC_ATTR GOSHM_ALLOC_SIZE(3);
/* p may come from any process attached to the same heap. Freeing a pointer
 * that is not a live object is reported on stderr and aborts the process
 * (GOSHM_DEBUG=badfree=warn: report and continue). */
GOSHM_API void goshm_free(goshm_t *h, void *p);
/* The usable size of the live object p (at least what was asked for); 0 for
 * NULL, and 0 with errno EINVAL for a pointer that is not a live object of
 * this heap (freed, interior, foreign). */
GOSHM_API size_t goshm_usable_size(goshm_t *h, const void *p);

GOSHM_API goshm_off_t goshm_off(goshm_t *h, const void *p);   /* pointer -> offset */
GOSHM_API void *goshm_ptr(goshm_t *h, goshm_off_t off);       /* offset -> pointer here */

/* The version of the library actually loaded (GOSHM_VERSION of its build). */
GOSHM_API int goshm_version(void);

#ifdef __cplusplus
}
#endif

#endif /* GOSHM_GOSHM_H */
