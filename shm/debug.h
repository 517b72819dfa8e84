/* SPDX-License-Identifier: MIT */
/* debug.h: GOSHM_DEBUG, the debug modes of a process, parsed once.
 *
 * Overview: shm/overview.h. Like Go's GODEBUG: comma-separated key=value.
 *   badfree=abort|warn   a bad free aborts (default) or is reported only
 *   poison=0|1           freed small objects are filled with a pattern, and
 *                        a write after free is reported when the slot is
 *                        handed out again (client/debug.c)
 *   allocfreetrace=0|1   every allocation and free is logged to stderr with
 *                        its call stack (client/debug.c)
 * An unknown key, or a bad value for a known one, is reported on stderr
 * once, when the variable is first read, and otherwise ignored: the rest of
 * the variable still applies.
 */
#ifndef GOSHM_DEBUG_H
#define GOSHM_DEBUG_H

#include <stdbool.h> /* bool */

typedef struct gs_debug {
    int badfree;          /* GS_BADFREE_ABORT or GS_BADFREE_WARN (shm/report.h) */
    bool poison;
    bool allocfreetrace;
} gs_debug_t;

/* The modes from $GOSHM_DEBUG, parsed (and any mistake reported) on the
 * first call; thread-safe. */
const gs_debug_t *gs_debug(void);

/* Parse `s` into *out (defaults for what it does not set). Each mistake is
 * printed on stderr as "goshm: GOSHM_DEBUG: ..." and counted: the number of
 * mistakes is returned. For tests; gs_debug() calls it once. */
int gs_debug_parse(const char *s, gs_debug_t *out);

#endif /* GOSHM_DEBUG_H */
