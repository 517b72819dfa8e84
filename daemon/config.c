/* SPDX-License-Identifier: MIT */
/* config.c: goshmd's options: defaults, command line, config file, --help.
 *
 * Overview: shm/overview.h; API: daemon/config.h. Parsing happens once in
 * main() before any thread exists. The command line is read in two passes:
 * the first finds --help, --version and --config (so the file is loaded
 * first), the second applies every other option over the file's values.
 */
#define _GNU_SOURCE
#include "config.h"
#include "names.h" /* GS_DIR_MAX */

#include <ctype.h>    /* isspace */
#include <errno.h>    /* errno */
#include <grp.h>      /* getgrnam_r */
#include <pwd.h>      /* getpwnam_r */
#include <stdio.h>    /* FILE, getline, snprintf */
#include <stdlib.h>   /* strtoull, free, getenv */
#include <string.h>   /* strcmp, strchr, strerror */
#include <sys/stat.h> /* fstat */
#include <unistd.h>   /* geteuid, getuid, sysconf */

#include "segment.h" /* GS_MAX_SLOTS */
#include "log.h"            /* gs_log_parse_level */
#include "metrics.h"        /* gs_metrics_parse_addr */

#ifndef GOSHM_VERSION
#define GOSHM_VERSION "unknown"
#endif

_Static_assert(GS_MIN_HEAP_SIZE == GS_ARENA_SIZE, "the smallest heap is one arena");

void gs_config_init(gs_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->size = GS_DEFAULT_SIZE;
    cfg->max_clients = GS_DEFAULT_MAX_CLIENTS;
    cfg->scavenge_delay_ms = GS_DEFAULT_SCAVENGE_MS;
    cfg->max_names_per_uid = GS_DEFAULT_NAMES_PER_UID;
    cfg->spin_us = GS_DEFAULT_SPIN_US;
    cfg->log_level = GS_LOG_INFO;
}

uint32_t gs_config_max_per_uid(const gs_config_t *cfg)
{
    uint32_t n = cfg->max_clients_per_uid;
    if (n == 0) n = cfg->allow_uid.n || cfg->allow_gid.n ? cfg->max_clients / 2u : cfg->max_clients;
    if (n == 0) n = 1;
    return n > cfg->max_clients ? cfg->max_clients : n;
}

void gs_config_free(gs_config_t *cfg)
{
    free(cfg->socket);
    free(cfg->metrics);
    free(cfg->config_file);
    free(cfg->state_dir);
    free(cfg->allow_uid.v);
    free(cfg->allow_gid.v);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- value parsers ------------------------------------------------------ */

int gs_parse_size(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9') return -1; /* no sign, no space, no empty */
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return -1;
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: return -1;
    }
    /* Accept "16G", "16GB" and "16GiB" alike; anything else is a typo. */
    if (shift && (strcmp(end, "B") == 0 || strcmp(end, "iB") == 0)) end += strlen(end);
    if (*end != '\0') return -1;
    if (shift && v > (UINT64_MAX >> shift)) return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

int gs_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    if (!s || *s < '0' || *s > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max) return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "yes", "true", "on"}, *const no[] = {"0", "no", "false", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) { *out = true; return 0; }
        if (strcasecmp(s, no[i]) == 0) { *out = false; return 0; }
    }
    return -1;
}

static int idlist_push(gs_idlist_t *l, uint32_t id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        uint32_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = id;
    return 0;
}

/* A user (want_group false) or group name -> its id. 0, or -1 with err set:
 * an unknown name, or a lookup that failed (NSS down, out of memory). */
static int lookup_name(const char *name, bool want_group, const char *what, uint32_t *id, char *err, size_t errlen)
{
    long hint = sysconf(want_group ? _SC_GETGR_R_SIZE_MAX : _SC_GETPW_R_SIZE_MAX);
    size_t cap = hint > 0 ? (size_t)hint : 1024;
    for (;;) {
        char *buf = malloc(cap);
        if (!buf) { snprintf(err, errlen, "out of memory"); return -1; }
        int rc;
        bool found;
        if (want_group) {
            struct group g, *res = NULL;
            rc = getgrnam_r(name, &g, buf, cap, &res);
            found = rc == 0 && res;
            if (found) *id = (uint32_t)g.gr_gid;
        } else {
            struct passwd pw, *res = NULL;
            rc = getpwnam_r(name, &pw, buf, cap, &res);
            found = rc == 0 && res;
            if (found) *id = (uint32_t)pw.pw_uid;
        }
        free(buf);
        if (rc == ERANGE && cap < (1u << 20)) { cap *= 2; continue; }
        if (found && *id != UINT32_MAX) return 0;
        if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)
            snprintf(err, errlen, "%s: unknown %s '%s' (want a %s name or a number)", what,
                     want_group ? "group" : "user", name, want_group ? "group" : "user");
        else
            snprintf(err, errlen, "%s: cannot look up %s '%s': %s", what, want_group ? "group" : "user", name,
                     strerror(rc));
        return -1;
    }
}

/* "1000,alice" -> appended; a later source replaces an earlier one's list.
 * A token that starts with a digit is a number; anything else is a name. */
static int parse_idlist(gs_idlist_t *l, const char *s, int source, const char *what, bool groups, char *err,
                        size_t errlen)
{
    if (l->source != source) {
        l->n = 0;
        l->source = source;
    }
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char *tok = strndup(p, len);
        if (!tok) { snprintf(err, errlen, "out of memory"); return -1; }
        uint32_t id = 0;
        int bad;
        if (*tok >= '0' && *tok <= '9') {
            /* (uid_t)-1 means "no change" to the kernel: never a valid id. */
            bad = gs_parse_u32(tok, 0, UINT32_MAX - 1, &id);
            if (bad) snprintf(err, errlen, "%s: bad id '%s' in '%s' (want numbers or names: 1000,alice)", what, tok, s);
        } else if (!*tok) {
            bad = -1;
            snprintf(err, errlen, "%s: empty entry in '%s' (want numbers or names: 1000,alice)", what, s);
        } else {
            bad = lookup_name(tok, groups, what, &id, err, errlen);
        }
        free(tok);
        if (bad) return -1;
        if (idlist_push(l, id)) { snprintf(err, errlen, "out of memory"); return -1; }
        if (!comma) return 0;
        p = comma + 1;
    }
}

static int set_string(char **dst, const char *value, char *err, size_t errlen)
{
    char *s = strdup(value);
    if (!s) { snprintf(err, errlen, "out of memory"); return -1; }
    free(*dst);
    *dst = s;
    return 0;
}

int gs_config_set(gs_config_t *cfg, const char *key, const char *value, int source, char *err, size_t errlen)
{
    if (strcmp(key, "socket") == 0) {
        if (!*value) { snprintf(err, errlen, "socket: empty path"); return -1; }
        return set_string(&cfg->socket, value, err, errlen);
    }
    if (strcmp(key, "size") == 0) {
        uint64_t v;
        if (gs_parse_size(value, &v)) {
            snprintf(err, errlen, "size: bad value '%s' (want bytes with an optional K, M, G or T suffix, e.g. 16G)",
                     value);
            return -1;
        }
        /* The limits are checked before rounding, so rounding cannot wrap. */
        if (v < GS_MIN_HEAP_SIZE || v > GS_MAX_HEAP_SIZE) {
            snprintf(err, errlen, "size: '%s' is out of range (want %lluM .. %lluT bytes)", value,
                     (unsigned long long)(GS_MIN_HEAP_SIZE >> 20), (unsigned long long)(GS_MAX_HEAP_SIZE >> 40));
            return -1;
        }
        cfg->size = (v + GS_ARENA_SIZE - 1) & ~(GS_ARENA_SIZE - 1); /* whole arenas */
        return 0;
    }
    if (strcmp(key, "max-clients") == 0) {
        if (gs_parse_u32(value, 1, GS_MAX_SLOTS, &cfg->max_clients)) {
            snprintf(err, errlen, "max-clients: bad value '%s' (want 1..%u)", value, GS_MAX_SLOTS);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "max-clients-per-uid") == 0) {
        if (gs_parse_u32(value, 0, GS_MAX_SLOTS, &cfg->max_clients_per_uid)) {
            snprintf(err, errlen, "max-clients-per-uid: bad value '%s' (want 0..%u; 0: automatic)", value,
                     GS_MAX_SLOTS);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "max-names-per-uid") == 0) {
        if (gs_parse_u32(value, 0, GS_MAX_NAMES_PER_UID, &cfg->max_names_per_uid)) {
            snprintf(err, errlen, "max-names-per-uid: bad value '%s' (want 0..%u; 0: no limit)", value,
                     GS_MAX_NAMES_PER_UID);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "max-client-bytes") == 0 || strcmp(key, "max-uid-bytes") == 0) {
        uint64_t v;
        if (gs_parse_size(value, &v) || v > GS_MAX_HEAP_SIZE) {
            snprintf(err, errlen, "%s: bad value '%s' (want bytes with an optional K, M, G or T suffix, at most %lluT; "
                     "0: no limit)", key, value, (unsigned long long)(GS_MAX_HEAP_SIZE >> 40));
            return -1;
        }
        if (key[4] == 'c') cfg->max_client_bytes = v;
        else cfg->max_uid_bytes = v;
        return 0;
    }
    if (strcmp(key, "allow-uid") == 0) return parse_idlist(&cfg->allow_uid, value, source, key, false, err, errlen);
    if (strcmp(key, "allow-gid") == 0) return parse_idlist(&cfg->allow_gid, value, source, key, true, err, errlen);
    if (strcmp(key, "scavenge-delay") == 0) {
        /* Bounded so that the delay in nanoseconds fits comfortably. */
        if (gs_parse_u32(value, 0, 86400000u, &cfg->scavenge_delay_ms)) {
            snprintf(err, errlen, "scavenge-delay: bad value '%s' (want milliseconds, 0..86400000)", value);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "spin-us") == 0) {
        if (gs_parse_u32(value, 0, 1000000u, &cfg->spin_us)) {
            snprintf(err, errlen, "spin-us: bad value '%s' (want microseconds, 0..1000000)", value);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "state-dir") == 0) {
        if (!*value) { snprintf(err, errlen, "state-dir: empty path"); return -1; }
        return set_string(&cfg->state_dir, value, err, errlen);
    }
    if (strcmp(key, "fresh") == 0 || strcmp(key, "fd-store") == 0) {
        bool *b = key[1] == 'r' ? &cfg->fresh : &cfg->fd_store;
        if (parse_bool(value, b)) {
            snprintf(err, errlen, "%s: bad value '%s' (want yes or no)", key, value);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "force-epoll") == 0) {
        if (parse_bool(value, &cfg->force_epoll)) {
            snprintf(err, errlen, "force-epoll: bad value '%s' (want yes or no)", value);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "log-level") == 0) {
        int l = gs_log_parse_level(value);
        if (l < 0) {
            snprintf(err, errlen, "log-level: bad value '%s' (want error, warn, info or debug)", value);
            return -1;
        }
        cfg->log_level = l;
        return 0;
    }
    if (strcmp(key, "metrics") == 0) {
        char host[256];
        unsigned port;
        if (gs_metrics_parse_addr(value, host, sizeof host, &port, err, errlen)) return -1;
        return set_string(&cfg->metrics, value, err, errlen);
    }
    snprintf(err, errlen, "unknown option '%s'", key);
    return -1;
}

/* ---- config file ---------------------------------------------------------- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

/* Cut the line at a '#' outside quotes. */
static void strip_comment(char *s)
{
    char quote = 0;
    for (; *s; s++) {
        if (quote) {
            if (*s == quote) quote = 0;
        } else if (*s == '"' || *s == '\'') {
            quote = *s;
        } else if (*s == '#') {
            *s = '\0';
            return;
        }
    }
}

/* Remove one pair of matching quotes around a value. 0, or -1 if a quote
 * is not matched. */
static int unquote(char **value)
{
    char *v = *value;
    size_t n = strlen(v);
    bool starts = v[0] == '"' || v[0] == '\'';
    bool ends = n > 0 && (v[n - 1] == '"' || v[n - 1] == '\'');
    if (!starts && !ends) return 0;
    if (!starts || !ends || n < 2 || v[0] != v[n - 1]) return -1;
    v[n - 1] = '\0';
    *value = v + 1;
    return strchr(*value, v[0]) ? -1 : 0; /* a quote inside: "a"b" */
}

int gs_config_load_file(gs_config_t *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "config file %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        snprintf(err, errlen, "config file %s: %s", path, strerror(errno));
        fclose(f);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)GS_CONFIG_MAX_BYTES) {
        snprintf(err, errlen, "config file %s: %s", path,
                 S_ISDIR(st.st_mode) ? "is a directory, not a file"
                 : !S_ISREG(st.st_mode) ? "not a regular file"
                                        : "too large for a config file (at most 1 MiB)");
        fclose(f);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    int rc = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        /* Text only: a NUL or another control byte means a binary file (or
         * the wrong file), whose "lines" would be read as garbage options. */
        for (ssize_t k = 0; k < len && rc == 0; k++) {
            unsigned char c = (unsigned char)line[k];
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
                snprintf(err, errlen, "config file %s:%u: not a text file (control byte 0x%02x)", path, lineno, c);
                rc = -1;
            } else if (c == 0x7f) {
                snprintf(err, errlen, "config file %s:%u: not a text file (byte 0x7f)", path, lineno);
                rc = -1;
            }
        }
        if (rc) break;
        strip_comment(line);
        char *s = trim(line);
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "config file %s:%u: expected 'name = value', got '%s'", path, lineno, s);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        if (strcmp(key, "config") == 0) {
            snprintf(err, errlen, "config file %s:%u: 'config' cannot be set in a config file", path, lineno);
            rc = -1;
            break;
        }
        if (unquote(&value)) {
            snprintf(err, errlen, "config file %s:%u: %s: unmatched quote in %s", path, lineno, key, value);
            rc = -1;
            break;
        }
        char why[256];
        if (gs_config_set(cfg, key, value, GS_CFG_FROM_FILE, why, sizeof why)) {
            snprintf(err, errlen, "config file %s:%u: %s", path, lineno, why);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "config file %s: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

/* ---- command line ------------------------------------------------------- */

typedef struct optdef {
    const char *name;
    bool takes_value;
} optdef_t;

static const optdef_t options[] = {
    {"socket", true},      {"size", true},        {"config", true},       {"max-clients", true},
    {"allow-uid", true},   {"allow-gid", true},   {"scavenge-delay", true}, {"spin-us", true},
    {"force-epoll", false}, {"log-level", true},  {"help", false},        {"version", false},
    {"metrics", true},     {"max-clients-per-uid", true}, {"max-client-bytes", true}, {"max-uid-bytes", true},
    {"state-dir", true},   {"fresh", false},      {"fd-store", false},    {"max-names-per-uid", true},
};
#define HELP_INDEX 10
_Static_assert(sizeof options / sizeof options[0] == 20, "options table changed: check HELP_INDEX");

/* Split argv[*i] into an option and its value (from "=value" or the next
 * argument). Returns the option or NULL with err set. */
static const optdef_t *next_option(int argc, char **argv, int *i, const char **value, char *err, size_t errlen)
{
    const char *arg = argv[*i];
    if (arg[0] != '-' || arg[1] != '-' || arg[2] == '\0') {
        if (strcmp(arg, "-h") == 0) { *value = NULL; return &options[HELP_INDEX]; }
        if (arg[0] == '-' && arg[1] != '\0')
            snprintf(err, errlen, "unknown option %s", arg);
        else
            snprintf(err, errlen, "unexpected argument '%s' (goshmd takes options only)", arg);
        return NULL;
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    for (size_t k = 0; k < sizeof options / sizeof options[0]; k++) {
        const optdef_t *o = &options[k];
        if (strlen(o->name) != len || strncmp(o->name, name, len) != 0) continue;
        if (!o->takes_value) {
            if (eq) {
                snprintf(err, errlen, "option --%s takes no value", o->name);
                return NULL;
            }
            *value = NULL;
        } else if (eq) {
            *value = eq + 1;
        } else if (*i + 1 < argc) {
            *value = argv[++*i];
        } else {
            snprintf(err, errlen, "option --%s needs a value", o->name);
            return NULL;
        }
        return o;
    }
    snprintf(err, errlen, "unknown option %.*s", (int)(len + 2), arg);
    return NULL;
}

gs_config_action_t gs_config_parse(gs_config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    /* Pass 1: syntax, --help, --version, --config. */
    for (int i = 1; i < argc; i++) {
        const char *value;
        const optdef_t *o = next_option(argc, argv, &i, &value, err, errlen);
        if (!o) return GS_CONFIG_ERROR;
        if (strcmp(o->name, "help") == 0) return GS_CONFIG_HELP;
        if (strcmp(o->name, "version") == 0) return GS_CONFIG_VERSION;
        if (strcmp(o->name, "config") == 0 && set_string(&cfg->config_file, value, err, errlen))
            return GS_CONFIG_ERROR;
    }
    if (cfg->config_file && gs_config_load_file(cfg, cfg->config_file, err, errlen)) return GS_CONFIG_ERROR;
    /* Pass 2: the command line over the file. */
    for (int i = 1; i < argc; i++) {
        const char *value;
        const optdef_t *o = next_option(argc, argv, &i, &value, err, errlen);
        if (!o) return GS_CONFIG_ERROR; /* pass 1 would have caught it */
        if (strcmp(o->name, "config") == 0) continue;
        if (strcmp(o->name, "force-epoll") == 0) {
            cfg->force_epoll = true;
            continue;
        }
        if (strcmp(o->name, "fresh") == 0 || strcmp(o->name, "fd-store") == 0) value = "yes";
        char why[256];
        if (gs_config_set(cfg, o->name, value, GS_CFG_FROM_ARGV, why, sizeof why)) {
            snprintf(err, errlen, "--%s", why);
            return GS_CONFIG_ERROR;
        }
    }
    /* Precedence: --socket, then the file, then $GOSHM_SOCKET (the clients'
     * variable, so one setting serves both sides), then the default. */
    const char *env = getenv("GOSHM_SOCKET");
    if (!cfg->socket && env && *env && set_string(&cfg->socket, env, err, errlen)) return GS_CONFIG_ERROR;
    return GS_CONFIG_RUN;
}

void gs_config_usage(const char *prog)
{
    printf("Usage: %s [OPTION]...\n"
           "Serve one goshm shared-memory heap to the processes that attach to it.\n"
           "Runs in the foreground and logs to stderr.\n"
           "\n"
           "Options (also settable in a config file, see --config):\n"
           "  --socket PATH        control socket (a Unix SOCK_SEQPACKET socket). The first of:\n"
           "                         --socket, 'socket' in the config file, $GOSHM_SOCKET\n"
           "                         (the variable the clients read), the default:\n"
           "                         /run/goshm/" GS_SOCKET_NAME "                 when run as root,\n"
           "                         $XDG_RUNTIME_DIR/goshm/" GS_SOCKET_NAME "     if that is set,\n"
           "                         /tmp/goshm-$UID/" GS_SOCKET_NAME "            otherwise.\n"
           "                       Missing directories are created with mode 0700. A stale\n"
           "                       socket is replaced; a live daemon on it is an error.\n"
           "                       Under systemd socket activation the passed socket is used.\n"
           "  --size BYTES         heap capacity in bytes; K, M, G, T suffixes are powers of\n"
           "                       1024 (16G = 16GB = 16GiB). At least 64M, at most 64T;\n"
           "                       rounded up to whole 64 MiB arenas. Default 16G. The\n"
           "                       reservation is sparse: it costs nothing until objects\n"
           "                       are allocated, so a large value is cheap.\n"
           "  --config FILE        read settings from a text file (see Config file below).\n"
           "                       Command-line options win over the file.\n"
           "  --max-clients N      client processes attached at once, 1..%u. Default %u.\n"
           "  --max-clients-per-uid N\n"
           "                       client processes one user may have attached at once,\n"
           "                       0..%u. Default 0: automatic, all of --max-clients when\n"
           "                       only the daemon's user and root may connect, else half\n"
           "                       of them. Beyond it an attach fails with EDQUOT. Root\n"
           "                       and the daemon's own user are not limited.\n"
           "  --max-names-per-uid N\n"
           "                       entries one user may have in the heap's names directory\n"
           "                       (goshm_name_set, channels), 0..%u, every user alike,\n"
           "                       root included. Default %u; 0: no limit but the\n"
           "                       directory's (%u). Beyond it goshm_name_set fails with\n"
           "                       EDQUOT.\n"
           "  --max-client-bytes BYTES\n"
           "                       quota: bytes one client may hold in spans it caches and\n"
           "                       large objects it allocated (K, M, G, T suffixes). Past it\n"
           "                       a refill or large allocation fails with EDQUOT. Default\n"
           "                       0: no limit.\n"
           "  --max-uid-bytes BYTES\n"
           "                       quota: the same for all clients of one user together; a\n"
           "                       user's large objects count until freed, even after its\n"
           "                       clients exit. Default 0: no limit.\n"
           "  --allow-uid USER[,USER...]\n"
           "                       also accept these users, by name or number (the daemon's\n"
           "                       own user and root are always accepted). Makes the socket\n"
           "                       0666 and its new\n"
           "                       directory 0711: the daemon checks every peer's credentials.\n"
           "  --allow-gid GROUP[,GROUP...]\n"
           "                       also accept peers whose group is one of these, by name or\n"
           "                       number. Makes the socket 0660 and its new directory 0750,\n"
           "                       owned by the first group.\n"
           "  --scavenge-delay MS  give idle memory back to the system after it has been free\n"
           "                       this long, in milliseconds. Default %u.\n"
           "  --spin-us US         the data plane polls this long after its last work before\n"
           "                       sleeping on the doorbells, in microseconds. Default %u:\n"
           "                       longer than a wakeup costs, so busy clients never wait\n"
           "                       for one; 0 sleeps at once (one system call per request).\n"
           "  --force-epoll        sleep on epoll even where io_uring is available.\n"
           "  --state-dir DIR      keep the heap in two files in DIR (created 0700; a tmpfs such\n"
           "                       as /dev/shm/NAME or /run/goshm). A later goshmd with the same\n"
           "                       DIR adopts the heap: live objects, offsets and attached\n"
           "                       clients carry on. A DIR holding anything else is refused\n"
           "                       and left untouched.\n"
           "  --fresh              with --state-dir: discard the heap kept there, start anew.\n"
           "  --fd-store           under systemd: keep the heap's memfds in the service's file\n"
           "                       descriptor store (FileDescriptorStoreMax=2 or more), so a\n"
           "                       restarted unit adopts them. Memfds passed back by systemd\n"
           "                       are adopted with or without this option.\n"
           "  --log-level LEVEL    error, warn, info or debug. Default info.\n"
           "  --metrics HOST:PORT  serve the heap's statistics over HTTP at /metrics\n"
           "                       (Prometheus text format). Off by default. There is no\n"
           "                       authentication: whoever can reach HOST:PORT reads the heap's\n"
           "                       figures (sizes, counters, client pids), never its contents.\n"
           "                       127.0.0.1:9464 keeps it on this machine; [::1]:PORT for IPv6.\n"
           "  -h, --help           show this help and exit.\n"
           "  --version            show the version and exit.\n"
           "\n"
           "Config file: one 'name = value' per line, names as the options above without\n"
           "'--' (force-epoll = yes|no). '#' starts a comment, blank lines are ignored, and a\n"
           "value may be quoted with matching \"...\" or '...' (the quotes are removed; a '#'\n"
           "inside them is kept). The file must be a regular text file of at most 1 MiB.\n"
           "  # /etc/goshm/goshmd.conf\n"
           "  socket = \"/run/goshm/goshmd.sock\"\n"
           "  size = 64G\n"
           "  allow-uid = alice,1001\n"
           "\n"
           "Exit status: 0 after a clean stop (or --help, --version), 1 if the daemon could\n"
           "not start or failed, 2 for a bad option, value or config file (the message names\n"
           "it). Every option is checked before anything starts.\n"
           "\n"
           "Signals: SIGTERM or SIGINT stop the daemon cleanly (clients' slots are reclaimed\n"
           "and the socket is removed). With NOTIFY_SOCKET set, readiness is reported to\n"
           "systemd (Type=notify).\n"
           "\n"
           "Example:\n"
           "  %s --socket /tmp/demo.sock --size 1G --log-level debug &\n"
           "  goshmctl --socket /tmp/demo.sock wait && goshmctl --socket /tmp/demo.sock stats\n",
           prog, GS_MAX_SLOTS, GS_DEFAULT_MAX_CLIENTS, GS_MAX_SLOTS, GS_MAX_NAMES_PER_UID, GS_DEFAULT_NAMES_PER_UID,
           GS_DIR_MAX, GS_DEFAULT_SCAVENGE_MS, GS_DEFAULT_SPIN_US, prog);
}
