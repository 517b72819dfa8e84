/* SPDX-License-Identifier: MIT */
/* log.c: goshmd's leveled log on stderr (API: daemon/log.h).
 *
 * Overview: shm/overview.h. A line is formatted into a stack buffer; a line
 * that does not fit gets a heap buffer of the exact size (and if even that
 * fails, the truncated line is written with "..."): no message is cut short
 * silently and nothing overflows.
 */
#define _GNU_SOURCE
#include "log.h"

#include <errno.h>   /* errno */
#include <stdarg.h>  /* va_list */
#include <stdatomic.h>
#include <stdio.h>   /* vsnprintf */
#include <stdlib.h>  /* malloc */
#include <string.h>  /* strcmp, memcpy */
#include <unistd.h>  /* write, getpid */

static _Atomic int log_level = GS_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void gs_log_set_level(gs_log_level_t level) { atomic_store_explicit(&log_level, (int)level, memory_order_relaxed); }

gs_log_level_t gs_log_get_level(void)
{
    return (gs_log_level_t)atomic_load_explicit(&log_level, memory_order_relaxed);
}

int gs_log_parse_level(const char *name)
{
    for (int i = 0; i < (int)(sizeof level_names / sizeof level_names[0]); i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    if (strcmp(name, "warning") == 0) return GS_LOG_WARN;
    return -1;
}

const char *gs_log_level_name(gs_log_level_t level)
{
    return (unsigned)level < sizeof level_names / sizeof level_names[0] ? level_names[level] : "?";
}

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return; /* nowhere to report a failing stderr */
        }
        p += w;
        n -= (size_t)w;
    }
}

void gs_log(gs_log_level_t level, const char *fmt, ...)
{
    if (!gs_log_enabled(level)) return;
    int saved_errno = errno;
    char stackbuf[512];
    char *buf = stackbuf;
    size_t cap = sizeof stackbuf;

    int pre = snprintf(buf, cap, "goshmd[%ld]: %s: ", (long)getpid(), gs_log_level_name(level));
    if (pre < 0) pre = 0;
    va_list ap;
    va_start(ap, fmt);
    int body = vsnprintf(buf + pre, cap - (size_t)pre, fmt, ap);
    va_end(ap);
    if (body < 0) body = 0;
    size_t need = (size_t)pre + (size_t)body + 1; /* + '\n' */
    if (need >= cap) {
        char *big = malloc(need + 1);
        if (big) {
            memcpy(big, buf, (size_t)pre);
            va_start(ap, fmt);
            vsnprintf(big + pre, need + 1 - (size_t)pre, fmt, ap);
            va_end(ap);
            buf = big;
            cap = need + 1;
        } else {
            memcpy(buf + cap - 5, "...", 4); /* the stack line, marked as cut */
            need = cap - 1;
        }
    }
    buf[need - 1] = '\n';
    write_all(buf, need);
    if (buf != stackbuf) free(buf);
    errno = saved_errno;
}
