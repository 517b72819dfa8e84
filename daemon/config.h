/* SPDX-License-Identifier: MIT */
/* config.h: goshmd's configuration: defaults, command line, config file.
 *
 * Overview: shm/overview.h. The daemon parses its options once, before any
 * thread starts; the result is read-only afterwards. The same option names
 * serve the command line (--name VALUE or --name=VALUE) and the config file
 * (name = value); the command line overrides the file. Every parser returns
 * 0 or -1 with a one-line message in err: nothing here exits or logs.
 */
#ifndef GOSHM_CONFIG_H
#define GOSHM_CONFIG_H

#include <stdbool.h>   /* bool */
#include <stddef.h>    /* size_t */
#include <stdint.h>    /* uint*_t */
#include <sys/types.h> /* uid_t, gid_t */

#define GS_DEFAULT_SIZE           (UINT64_C(16) << 30) /* 16 GiB, sparse */
/* --size: bytes, at least one arena, at most what the heap can address;
 * rounded up to whole 64 MiB arenas after the range check. */
#define GS_MIN_HEAP_SIZE          (UINT64_C(64) << 20) /* one arena: GS_ARENA_SIZE */
#define GS_MAX_HEAP_SIZE          (UINT64_C(1) << 46)  /* 64 TiB: daemon/heap.c's limit */
#define GS_CONFIG_MAX_BYTES       (1u << 20)           /* a config file is text, at most 1 MiB */
#define GS_DEFAULT_MAX_CLIENTS    64u
#define GS_DEFAULT_SCAVENGE_MS    1000u
#define GS_DEFAULT_NAMES_PER_UID  2048u /* a quarter of the names directory (shm/names.h) */
#define GS_MAX_NAMES_PER_UID      8192u
/* Longer than waking a sleeping thread costs (measured ~100 us on a 2-vCPU
 * VM): with a shorter spin, daemon and client can settle into waking each
 * other every round trip (~115 us instead of ~1 us). */
#define GS_DEFAULT_SPIN_US        1000u
#define GS_SOCKET_NAME            "goshmd.sock"

typedef struct gs_idlist {
    uint32_t *v;                /* uids or gids */
    size_t n, cap;
    int source;                 /* who set it: GS_CFG_FROM_* (the command line replaces the file's list) */
} gs_idlist_t;

enum { GS_CFG_FROM_NONE = 0, GS_CFG_FROM_FILE = 1, GS_CFG_FROM_ARGV = 2 };

typedef struct gs_config {
    char *socket;               /* NULL: the default path (shm/sockpath.h) */
    char *config_file;          /* NULL: none */
    uint64_t size;              /* heap reservation, bytes */
    uint32_t max_clients;       /* 1 .. GS_MAX_SLOTS */
    uint32_t max_clients_per_uid; /* 0: automatic (gs_config_max_per_uid) */
    uint32_t max_names_per_uid; /* names directory entries per uid; 0: none (daemon/names.c) */
    uint64_t max_client_bytes;  /* quota per client, bytes; 0: none (daemon/quota.c) */
    uint64_t max_uid_bytes;     /* quota per uid, bytes; 0: none */
    gs_idlist_t allow_uid;
    gs_idlist_t allow_gid;
    uint32_t scavenge_delay_ms;
    uint32_t spin_us;
    bool force_epoll;
    int log_level;              /* gs_log_level_t */
    char *metrics;              /* --metrics HOST:PORT; NULL: off (daemon/metrics.h) */
    char *state_dir;            /* NULL: the heap dies with the daemon (unless fd_store) */
    bool fresh;                 /* --fresh: start a new heap in state_dir */
    bool fd_store;              /* --fd-store: hand the memfds to systemd's fd store */
} gs_config_t;

typedef enum gs_config_action {
    GS_CONFIG_RUN = 0,          /* start the daemon */
    GS_CONFIG_HELP,             /* --help: print usage, exit 0 */
    GS_CONFIG_VERSION,          /* --version: print version, exit 0 */
    GS_CONFIG_ERROR,            /* bad arguments or file: err says why, exit 2 */
} gs_config_action_t;

void gs_config_init(gs_config_t *cfg);
void gs_config_free(gs_config_t *cfg);

/* Parse argv (and the --config file it names) over the defaults. The socket
 * path is, first found: --socket, the file's socket, $GOSHM_SOCKET, the
 * default (shm/sockpath.h). */
gs_config_action_t gs_config_parse(gs_config_t *cfg, int argc, char **argv, char *err, size_t errlen);

/* Set one option by its long name, as the config file spells it. */
int gs_config_set(gs_config_t *cfg, const char *key, const char *value, int source, char *err, size_t errlen);

/* Read a config file: `key = value` lines, '#' comments, blank lines; a
 * value may be quoted with matching "..." or '...' (the quotes are removed,
 * '#' inside them is kept). A directory, a non-regular file, a file larger
 * than GS_CONFIG_MAX_BYTES or one holding NUL or other control bytes is
 * refused. */
int gs_config_load_file(gs_config_t *cfg, const char *path, char *err, size_t errlen);

/* The slots one uid may hold: --max-clients-per-uid, or when that is 0
 * (the default): all of --max-clients when only the daemon's own user and
 * root may connect (no --allow-uid, no --allow-gid: there is nobody to
 * protect from), else half of them (at least 1), so that one allowed user
 * cannot take every slot. Root and the daemon's own user are not limited
 * (daemon/ctl.c). */
uint32_t gs_config_max_per_uid(const gs_config_t *cfg);

/* Print --help to stdout. */
void gs_config_usage(const char *prog);

/* "16G", "256M", "4096", "1T" (powers of 1024) -> bytes. 0 or -1. */
int gs_parse_size(const char *s, uint64_t *out);
/* A decimal integer in [min, max]. 0 or -1. */
int gs_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);

#endif /* GOSHM_CONFIG_H */
