/* SPDX-License-Identifier: MIT */
/* prom.h: the heap's statistics in the Prometheus text exposition format.
 *
 * Overview: shm/overview.h; the figures: proto/goshm.proto (StatsReply). One
 * builder serves both readers: `goshmctl stats --prometheus` renders the
 * StatsReply it got over the control socket, and `goshmd --metrics` renders
 * the one it builds for its HTTP endpoint (daemon/metrics.c), so the two
 * always print the same names. Format: text 0.0.4 (# HELP, # TYPE, one
 * sample a line); names follow Prometheus' conventions: a goshm_ prefix,
 * units in the name (_bytes, _seconds), counters end in _total.
 */
#ifndef GOSHM_PROM_H
#define GOSHM_PROM_H

#include <stdio.h> /* FILE */

#include "goshm.pb-c.h" /* Goshm__StatsReply */

/* The Content-Type of what gs_prom_write prints. */
#define GS_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Write every figure of r to f. 0, or -1 if writing failed (ferror). */
int gs_prom_write(FILE *f, const Goshm__StatsReply *r);

#endif /* GOSHM_PROM_H */
