/* SPDX-License-Identifier: MIT */
/* killpoint.c: fault injection for crash consistency: SIGKILL at the Nth pass through a named point.
 *
 * Overview: shm/overview.h; the points sit between the meta writes of the
 * heap operations (daemon/mheap.c, mcentral.c, intent.c). GOSHM_KILLPOINT
 * is read once, at the first pass: "NAME:N" kills at the Nth pass through
 * point NAME, "any:N" at the Nth pass through any point. The test
 * tests/restart/test-killpoints.c sweeps N and restarts the daemon on the
 * same state directory after each kill. Built only with the CMake option
 * GOSHM_KILLPOINTS (on by default for test builds; the hook costs one
 * compare per point when the variable is unset).
 */
#include "heap_internal.h"

#include <signal.h> /* raise, SIGKILL */
#include <stdlib.h> /* getenv, strtol */
#include <string.h> /* strchr, strncmp */

static int state;          /* 0: not read yet, 1: armed, 2: off */
static char name[64];
static long remaining;

static void arm(void)
{
    state = 2;
    const char *e = getenv("GOSHM_KILLPOINT");
    if (!e) return;
    const char *colon = strchr(e, ':');
    if (!colon || (size_t)(colon - e) >= sizeof name) return;
    memcpy(name, e, (size_t)(colon - e));
    name[colon - e] = '\0';
    char *end;
    remaining = strtol(colon + 1, &end, 10);
    if (*end || remaining <= 0) return;
    state = 1;
}

void gs_killpoint(const char *point)
{
    if (gs_likely(state == 2)) return;
    if (state == 0) {
        arm();
        if (state != 1) return;
    }
    if (strcmp(name, "any") != 0 && strcmp(name, point) != 0) return;
    if (--remaining == 0) {
        gs_printf("goshmd: kill point %s reached\n", point);
        raise(SIGKILL);
    }
}
