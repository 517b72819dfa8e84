/* SPDX-License-Identifier: MIT */
/* report.h: goshm's error reporter and throw; neither allocates.
 *
 * Overview: shm/overview.h. Recoverable errors are returned (NULL or -1 with
 * errno at the API boundary). Broken invariants of this process throw. A bad
 * free (a pointer that is not a live object of this heap) is reported with its
 * address, and its offset, span and object size when it is inside the heap; by default the process then aborts, and with
 * GOSHM_DEBUG=badfree=warn it continues. It never corrupts the heap.
 */
#ifndef GOSHM_REPORT_H
#define GOSHM_REPORT_H

#include <stdint.h> /* uint*_t */

/* Print "goshm: <msg>" and abort. msg must be a constant string. */
_Noreturn void gs_throw(const char *msg);

/* Another process broke the shared state this call relied on: a ring
 * completion, a span record that does not match the request, a bitmap that
 * makes no sense. Not this process's bug, so no abort: the caller fails the
 * call (EPROTO or ENOMEM) and this prints "goshm: peer: <msg>" on stderr,
 * rate-limited (the first 16, then every power of two), and counts it. */
void gs_report_peer(const char *msg);
uint64_t gs_peer_error_count(void);

enum { GS_BADFREE_ABORT = 0, GS_BADFREE_WARN = 1 };

/* How bad frees are handled: GOSHM_DEBUG's badfree (shm/debug.h). */
int gs_badfree_mode(void);

/* Counter of reported bad frees in this process (tests read it). */
uint64_t gs_badfree_count(void);

/* Report a bad free: why, the address freed, and what the heap knows of it:
 * its offset in the data mapping (0: outside the heap, only the address is
 * printed), its span id (0 if none) and the object's size in bytes (0 if
 * not known); then abort unless GOSHM_DEBUG=badfree=warn. */
void gs_report_bad_free(const char *why, const void *addr, uint64_t off, uint32_t sid, uint64_t objsize);

/* After a report of misuse printed by the caller (e.g. a write after free,
 * client/debug.c): count it, then abort unless GOSHM_DEBUG=badfree=warn. */
void gs_report_bad_use(const char *what);

/* Write a formatted line to stderr without allocating (a small subset of
 * printf: %s %u %lu %llu %x %lx %llx %d %ld). */
void gs_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* GOSHM_REPORT_H */
