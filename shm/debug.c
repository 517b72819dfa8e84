/* SPDX-License-Identifier: MIT */
/* debug.c: parsing GOSHM_DEBUG once.
 *
 * Overview: shm/overview.h; contract: shm/debug.h. Nothing here allocates: the
 * parser walks the string in place and reports through gs_printf, so it may
 * run inside any allocator call.
 */
#include "debug.h"

#include <pthread.h> /* pthread_once */
#include <stdlib.h>  /* getenv */
#include <string.h>  /* strchr, strncmp */

#include "report.h" /* gs_printf, GS_BADFREE_* */

static bool is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && strncmp(s, word, n) == 0;
}

/* One key=value item [s, s+n). Returns 0, or 1 after reporting a mistake. */
static int item(const char *s, size_t n, gs_debug_t *out)
{
    const char *eq = memchr(s, '=', n);
    size_t kn = eq ? (size_t)(eq - s) : n;
    const char *v = eq ? eq + 1 : s + n;
    size_t vn = eq ? n - kn - 1u : 0;
    char key[64], val[64];
    size_t kc = kn < sizeof key - 1 ? kn : sizeof key - 1, vc = vn < sizeof val - 1 ? vn : sizeof val - 1;
    memcpy(key, s, kc);
    key[kc] = '\0';
    memcpy(val, v, vc);
    val[vc] = '\0';
    if (is(s, kn, "badfree")) {
        if (eq && is(v, vn, "abort")) out->badfree = GS_BADFREE_ABORT;
        else if (eq && is(v, vn, "warn")) out->badfree = GS_BADFREE_WARN;
        else goto bad_value;
        return 0;
    }
    bool *flag = is(s, kn, "poison") ? &out->poison : is(s, kn, "allocfreetrace") ? &out->allocfreetrace : NULL;
    if (flag) {
        if (eq && is(v, vn, "1")) *flag = true;
        else if (eq && is(v, vn, "0")) *flag = false;
        else goto bad_value;
        return 0;
    }
    gs_printf("goshm: GOSHM_DEBUG: unknown key '%s' (known: badfree, poison, allocfreetrace); ignored\n", key);
    return 1;
bad_value:
    if (is(s, kn, "badfree"))
        gs_printf("goshm: GOSHM_DEBUG: badfree=%s: want abort or warn; ignored\n", val);
    else
        gs_printf("goshm: GOSHM_DEBUG: %s=%s: want 0 or 1; ignored\n", key, val);
    return 1;
}

int gs_debug_parse(const char *s, gs_debug_t *out)
{
    *out = (gs_debug_t){.badfree = GS_BADFREE_ABORT};
    int bad = 0;
    while (s && *s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        if (n) bad += item(s, n, out);
        s = comma ? comma + 1 : s + n;
    }
    return bad;
}

static gs_debug_t modes;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void parse_env(void) { gs_debug_parse(getenv("GOSHM_DEBUG"), &modes); }

const gs_debug_t *gs_debug(void)
{
    pthread_once(&once, parse_env);
    return &modes;
}
