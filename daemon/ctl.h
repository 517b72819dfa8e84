/* SPDX-License-Identifier: MIT */
/* ctl.h: goshmd's control plane: connections and the protobuf-c protocol
 * (proto/goshm.proto): Attach, Detach, Stats, Profile. The listening socket and peer
 * checks: daemon/listen.h.
 *
 * Overview: shm/overview.h. Everything here runs on the daemon's libevent
 * loop (the main thread). The control plane owns the listening event, every
 * client connection and, through them, the claimed client slots: a slot is
 * claimed by an Attach and reclaimed when its connection sends Detach or
 * closes for any reason. It touches the heap only under `heap_lock`, shared
 * with the data plane (daemon/dataplane.h); gs_dp_add_slot/gs_dp_remove_slot
 * are called without it.
 *
 * Nothing a client sends can crash the daemon: every packet is size-checked,
 * unpacked by protobuf-c, checked against the connection's state, and any
 * violation is answered with an Error (an errno code) before the connection
 * is closed.
 */
#ifndef GOSHM_CTL_H
#define GOSHM_CTL_H

#include <pthread.h>   /* pthread_mutex_t */
#include <stdbool.h>   /* bool */
#include <stddef.h>    /* size_t */
#include <stdio.h>     /* FILE */

#include "config.h"
#include "dataplane.h"
#include "heap.h"
#include "listen.h"

struct event_base;

#define GS_CTL_MAX_PACKET (64u * 1024u) /* one Request or Reply */

typedef struct gs_ctl gs_ctl_t;

/* Start serving connections on listen_fd (not owned). cfg (allow lists,
 * max_clients) must outlive the control plane. NULL with err on failure. */
gs_ctl_t *gs_ctl_start(struct event_base *base, int listen_fd, const gs_config_t *cfg, gs_heap_t *heap,
                       pthread_mutex_t *heap_lock, gs_dataplane_t *dp, char *err, size_t errlen);
/* Stop accepting; drop every connection, reclaiming its slot; free. */
void gs_ctl_stop(gs_ctl_t *ctl);
/* The heap outlives us (state directory, fd store): at stop, connections
 * are dropped but their slots stay claimed, spans and all, for the clients
 * to resume under the daemon that adopts the heap. */
void gs_ctl_keep_slots(gs_ctl_t *ctl);
/* Render the statistics in the Prometheus text format (proto/prom.h) to f:
 * a gs_metrics_render_fn (daemon/metrics.h) whose arg is the gs_ctl_t.
 * Takes heap_lock. 0 or -1. */
int gs_ctl_write_metrics(void *ctl, FILE *f);
/* Clients attached now. */
unsigned gs_ctl_attached(const gs_ctl_t *ctl);

#endif /* GOSHM_CTL_H */
