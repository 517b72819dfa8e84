/* SPDX-License-Identifier: MIT */
/* log.h: goshmd's log: leveled lines on stderr, "goshmd[pid]: <level>: msg".
 *
 * Overview: shm/overview.h. Any thread may log (the control plane on the event
 * loop, the data plane on its own thread): each line goes out in one write(2),
 * so lines never interleave. The level is set once at startup, before the
 * data plane starts, and only read afterwards.
 */
#ifndef GOSHM_LOG_H
#define GOSHM_LOG_H

#include <stdbool.h> /* bool */

typedef enum gs_log_level {
    GS_LOG_ERROR = 0,
    GS_LOG_WARN = 1,
    GS_LOG_INFO = 2,
    GS_LOG_DEBUG = 3,
} gs_log_level_t;

/* Lines above `level` are dropped. Default GS_LOG_INFO. */
void gs_log_set_level(gs_log_level_t level);
gs_log_level_t gs_log_get_level(void);
static inline bool gs_log_enabled(gs_log_level_t level) { return level <= gs_log_get_level(); }

/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int gs_log_parse_level(const char *name);
const char *gs_log_level_name(gs_log_level_t level);

/* Format and write one line (a trailing newline is added). errno is kept. */
void gs_log(gs_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define gs_log_error(...) gs_log(GS_LOG_ERROR, __VA_ARGS__)
#define gs_log_warn(...)  gs_log(GS_LOG_WARN, __VA_ARGS__)
#define gs_log_info(...)  gs_log(GS_LOG_INFO, __VA_ARGS__)
#define gs_log_debug(...) gs_log(GS_LOG_DEBUG, __VA_ARGS__)

#endif /* GOSHM_LOG_H */
