/* SPDX-License-Identifier: MIT */
/* persist.h: where a heap that outlives its daemon lives: a state directory, or systemd's fd store.
 *
 * Overview: shm/overview.h; the state directory: daemon/persist.c; the fd
 * store: daemon/fdstore.c; adoption: daemon/adopt.c.
 */
#ifndef GOSHM_PERSIST_H
#define GOSHM_PERSIST_H

#include <stdbool.h> /* bool */
#include <stddef.h>  /* size_t */

#include "heap.h"

/* Open the heap kept in `dir` (created 0700 if missing): adopt the one
 * there, or create one if the directory holds none (or `fresh`: the old
 * one is removed first). *adopted says which. 0, or -1 with err set (the
 * directory is then left as it was). */
int gs_persist_open(const char *dir, bool fresh, const gs_heap_config_t *cfg, gs_heap_t **out, bool *adopted,
                    char *err, size_t errlen);

/* systemd's file-descriptor store (sd_notify FDSTORE=1, LISTEN_FDS on
 * restart). The names under which the two memfds are stored: */
#define GS_FDNAME_DATA "goshm-data"
#define GS_FDNAME_META "goshm-meta"

/* The memfds systemd passed back (LISTEN_FDS/LISTEN_FDNAMES named as
 * above), if any: 1 and both set, 0 if none were passed, -1 with err set if
 * only one was or the names are wrong. The descriptors become ours
 * (close-on-exec). */
int gs_fdstore_take(int *data_fd, int *meta_fd, char *err, size_t errlen);
/* Hand both memfds to the fd store (one FDSTORE=1 message each, with
 * FDNAME). 0, or -errno (no NOTIFY_SOCKET: -ENOENT). */
int gs_fdstore_put(int data_fd, int meta_fd);

#endif /* GOSHM_PERSIST_H */
