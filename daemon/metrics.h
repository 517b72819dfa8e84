/* SPDX-License-Identifier: MIT */
/* metrics.h: goshmd --metrics HOST:PORT, the heap's figures over HTTP.
 *
 * Overview: shm/overview.h. Off by default. When asked for, goshmd listens on
 * exactly the address given (no default host: 127.0.0.1:9464 or [::1]:9464
 * keeps it on this machine; 0.0.0.0 exposes it to the network) and answers
 * GET (and HEAD) /metrics with the Prometheus text format built by
 * proto/prom.h; any other path is 404, any other method 405. There is no
 * authentication: whoever can reach the port reads the heap's figures
 * (sizes, per-client pids and byte counts), never its contents.
 *
 * Runs on the daemon's libevent loop (the main thread), like the control
 * plane; `render` is called there for each request and takes the heap lock
 * itself if it needs it.
 */
#ifndef GOSHM_METRICS_H
#define GOSHM_METRICS_H

#include <stddef.h> /* size_t */
#include <stdio.h>  /* FILE */

struct event_base;

/* Write the exposition text to f: 0, or -1 (the request gets a 500). */
typedef int (*gs_metrics_render_fn)(void *arg, FILE *f);

typedef struct gs_metrics gs_metrics_t;

/* Split "HOST:PORT" ("[v6addr]:PORT" for IPv6) into host and port.
 * 0, or -1 with err set. host gets at most hostlen - 1 bytes. */
int gs_metrics_parse_addr(const char *addr, char *host, size_t hostlen, unsigned *port, char *err, size_t errlen);

/* Listen on addr and serve /metrics. NULL with err on failure (bad
 * address, port in use, ...). */
gs_metrics_t *gs_metrics_start(struct event_base *base, const char *addr, gs_metrics_render_fn render, void *arg,
                               char *err, size_t errlen);
void gs_metrics_stop(gs_metrics_t *m);

#endif /* GOSHM_METRICS_H */
