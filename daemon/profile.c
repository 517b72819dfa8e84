/* SPDX-License-Identifier: MIT */
/* profile.c: the profile region -> pprof profile.proto, gzipped.
 *
 * Overview: shm/overview.h; contract: daemon/profile.h; the region:
 * shm/profregion.h. Everything read from the region is client-written: a stack
 * index is bounded, a frame count clamped, a name offset bounded and the
 * name read up to GS_PROF_NAMES and 255 bytes, with bytes outside printable
 * ASCII replaced by '?'. A racing client can make the profile inexact,
 * never make the daemon read outside the region.
 *
 * Functions are deduplicated by name (one Function and one Location each,
 * address 0: the frames are named already, there is nothing for pprof to
 * symbolise); each stack entry becomes one Sample, or none if all its values
 * are zero.
 */
#define _GNU_SOURCE
#include "profile.h"

#include <errno.h>  /* errno */
#include <stdio.h>  /* snprintf */
#include <stdlib.h> /* calloc, free */
#include <string.h> /* strlen, strcmp */
#include <time.h>   /* clock_gettime */
#include <unistd.h> /* dup */
#include <zlib.h>   /* gzdopen */

#include "profregion.h"
#include "profile.pb-c.h"

#define MAX_NAME 255u

typedef struct strtab {
    char **s;
    size_t n, cap;
    uint32_t *hash; /* open addressing: index + 1 */
    size_t hcap;
} strtab_t;

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* Index of s in the table, adding a copy if new; -1 on ENOMEM. */
static int64_t str_index(strtab_t *t, const char *s)
{
    if (t->n * 2u >= t->hcap) {
        size_t ncap = t->hcap ? t->hcap * 2u : 1024u;
        uint32_t *nh = calloc(ncap, sizeof *nh);
        if (!nh) return -1;
        for (size_t i = 0; i < t->n; i++) {
            size_t k = str_hash(t->s[i]) & (ncap - 1u);
            while (nh[k]) k = (k + 1u) & (ncap - 1u);
            nh[k] = (uint32_t)i + 1u;
        }
        free(t->hash);
        t->hash = nh;
        t->hcap = ncap;
    }
    size_t k = str_hash(s) & (t->hcap - 1u);
    for (; t->hash[k]; k = (k + 1u) & (t->hcap - 1u))
        if (strcmp(t->s[t->hash[k] - 1u], s) == 0) return t->hash[k] - 1u;
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2u : 256u;
        char **ns = realloc(t->s, ncap * sizeof *ns);
        if (!ns) return -1;
        t->s = ns;
        t->cap = ncap;
    }
    char *copy = strdup(s);
    if (!copy) return -1;
    t->s[t->n] = copy;
    t->hash[k] = (uint32_t)t->n + 1u;
    return (int64_t)t->n++;
}

static void strtab_free(strtab_t *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->s[i]);
    free(t->s);
    free(t->hash);
}

/* A name from the pool, checked and filtered, into buf. */
static void read_name(const char *names, uint32_t off, char *buf, size_t cap)
{
    size_t k = 0;
    if (off >= GS_PROF_NAMES) {
        snprintf(buf, cap, "?");
        return;
    }
    for (uint64_t i = off; i < GS_PROF_NAMES && k + 1u < cap && k < MAX_NAME; i++) {
        char c = ((const volatile char *)names)[i];
        if (c == '\0') break;
        buf[k++] = (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    buf[k] = '\0';
    if (k == 0) snprintf(buf, cap, "?");
}

typedef struct acc {
    uint64_t alloc_w, alloc_bytes, inuse_w, inuse_bytes;
} acc_t;

static int64_t fixed_to_count(uint64_t w) { return (int64_t)((double)w / GS_PROF_WEIGHT_ONE + 0.5); }

int gs_profile_write(const char *region, uint64_t period, int fd, gs_profile_totals_t *totals, char *err,
                     size_t errlen)
{
    const gs_prof_header_t *ph = (const gs_prof_header_t *)region;
    if (ph->magic != GS_PROF_MAGIC) {
        snprintf(err, errlen, "the heap has no profile region");
        return -ENOENT;
    }
    const gs_prof_stack_t *stacks = (const gs_prof_stack_t *)(region + GS_PROF_STACKS_OFF);
    const gs_prof_sample_t *samples = (const gs_prof_sample_t *)(region + GS_PROF_SAMPLES_OFF);
    const char *names = region + GS_PROF_NAMES_OFF;
    gs_profile_totals_t tot = {0};
    tot.sampled = gs_load_relaxed((_Atomic uint64_t *)&ph->xsampled);
    tot.dropped = gs_load_relaxed((_Atomic uint64_t *)&ph->xdropped);
    tot.names_bytes = gs_load_relaxed((_Atomic uint64_t *)&ph->xnames_used);

    int rc = -ENOMEM;
    strtab_t st = {0};
    acc_t *acc = calloc(GS_PROF_STACKS, sizeof *acc);
    uint8_t *valid = calloc(GS_PROF_STACKS, 1);
    Goshm__Pprof__Sample *smp = calloc(GS_PROF_STACKS, sizeof *smp);
    Goshm__Pprof__Sample **smpp = calloc(GS_PROF_STACKS, sizeof *smpp);
    uint64_t *locs = calloc((size_t)GS_PROF_STACKS * GS_PROF_FRAMES, sizeof *locs);
    int64_t *vals = calloc((size_t)GS_PROF_STACKS * 4u, sizeof *vals);
    Goshm__Pprof__Label *labels = calloc(GS_PROF_STACKS, sizeof *labels);
    Goshm__Pprof__Label **labelp = calloc(GS_PROF_STACKS, sizeof *labelp);
    uint32_t *pids = calloc(GS_PROF_STACKS, sizeof *pids);
    uint32_t *nfr = calloc(GS_PROF_STACKS, sizeof *nfr);
    Goshm__Pprof__Function *fn = NULL;
    Goshm__Pprof__Function **fnp = NULL;
    Goshm__Pprof__Location *loc = NULL;
    Goshm__Pprof__Location **locp = NULL;
    Goshm__Pprof__Line *line = NULL;
    Goshm__Pprof__Line **linep = NULL;
    uint8_t *packed = NULL;
    if (!acc || !valid || !smp || !smpp || !locs || !vals || !labels || !labelp || !pids || !nfr) goto out;

    static const char *fixed[] = {"", "alloc_objects", "count", "alloc_space", "bytes", "inuse_objects",
                                  "inuse_space", "space", "pid"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (str_index(&st, fixed[i]) < 0) goto out;
    size_t nfixed = st.n;

    /* Stacks: names -> function ids (string index - nfixed + 1). */
    char buf[MAX_NAME + 1];
    for (uint32_t i = 0; i < GS_PROF_STACKS; i++) {
        const gs_prof_stack_t *s = &stacks[i];
        uint64_t h = gs_load_acquire((_Atomic uint64_t *)&s->xhash);
        if (h < 2u) continue;
        uint32_t n = s->nframes;
        if (n > GS_PROF_FRAMES) n = GS_PROF_FRAMES;
        for (uint32_t f = 0; f < n; f++) {
            read_name(names, s->name[f], buf, sizeof buf);
            int64_t k = str_index(&st, buf);
            if (k < 0) goto out;
            locs[(size_t)i * GS_PROF_FRAMES + f] = (uint64_t)(k - (int64_t)nfixed + 1);
        }
        nfr[i] = n;
        pids[i] = s->pid;
        acc[i].alloc_w = gs_load_relaxed((_Atomic uint64_t *)&s->xalloc_weight);
        acc[i].alloc_bytes = gs_load_relaxed((_Atomic uint64_t *)&s->xalloc_bytes);
        valid[i] = 1;
        tot.stacks++;
    }
    /* Live samples. */
    for (uint32_t i = 0; i < GS_PROF_SAMPLES; i++) {
        const gs_prof_sample_t *e = &samples[i];
        uint64_t off = gs_load_acquire((_Atomic uint64_t *)&e->xoff);
        if (!gs_prof_key_live(off)) continue;
        uint32_t si = e->stack;
        if (si >= GS_PROF_STACKS || !valid[si]) continue;
        uint64_t w = e->weight, size = e->size;
        acc[si].inuse_w += w;
        acc[si].inuse_bytes += (uint64_t)((double)w / GS_PROF_WEIGHT_ONE * (double)size + 0.5);
        tot.samples_live++;
    }

    /* Functions and locations: one per distinct name. */
    size_t nfn = st.n - nfixed;
    fn = calloc(nfn ? nfn : 1, sizeof *fn);
    fnp = calloc(nfn ? nfn : 1, sizeof *fnp);
    loc = calloc(nfn ? nfn : 1, sizeof *loc);
    locp = calloc(nfn ? nfn : 1, sizeof *locp);
    line = calloc(nfn ? nfn : 1, sizeof *line);
    linep = calloc(nfn ? nfn : 1, sizeof *linep);
    if (!fn || !fnp || !loc || !locp || !line || !linep) goto out;
    for (size_t i = 0; i < nfn; i++) {
        goshm__pprof__function__init(&fn[i]);
        fn[i].id = i + 1u;
        fn[i].name = fn[i].system_name = (int64_t)(nfixed + i);
        fnp[i] = &fn[i];
        goshm__pprof__line__init(&line[i]);
        line[i].function_id = i + 1u;
        linep[i] = &line[i];
        goshm__pprof__location__init(&loc[i]);
        loc[i].id = i + 1u;
        loc[i].n_line = 1;
        loc[i].line = &linep[i];
        locp[i] = &loc[i];
    }
    size_t ns = 0;
    for (uint32_t i = 0; i < GS_PROF_STACKS; i++) {
        if (!valid[i] || (acc[i].alloc_w == 0 && acc[i].inuse_w == 0)) continue;
        Goshm__Pprof__Sample *s = &smp[ns];
        goshm__pprof__sample__init(s);
        s->n_location_id = nfr[i];
        s->location_id = &locs[(size_t)i * GS_PROF_FRAMES];
        int64_t *v = &vals[(size_t)ns * 4u];
        v[0] = fixed_to_count(acc[i].alloc_w);
        v[1] = (int64_t)acc[i].alloc_bytes;
        v[2] = fixed_to_count(acc[i].inuse_w);
        v[3] = (int64_t)acc[i].inuse_bytes;
        s->n_value = 4;
        s->value = v;
        goshm__pprof__label__init(&labels[ns]);
        labels[ns].key = 8; /* "pid" */
        labels[ns].num = pids[i];
        labelp[ns] = &labels[ns];
        s->n_label = 1;
        s->label = &labelp[ns];
        smpp[ns++] = s;
    }

    Goshm__Pprof__ValueType vt[4], period_type;
    Goshm__Pprof__ValueType *vtp[4];
    static const int64_t vt_names[4][2] = {{1, 2}, {3, 4}, {5, 2}, {6, 4}};
    for (int i = 0; i < 4; i++) {
        goshm__pprof__value_type__init(&vt[i]);
        vt[i].type = vt_names[i][0];
        vt[i].unit = vt_names[i][1];
        vtp[i] = &vt[i];
    }
    goshm__pprof__value_type__init(&period_type);
    period_type.type = 7; /* space */
    period_type.unit = 4; /* bytes */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);

    Goshm__Pprof__Profile p = GOSHM__PPROF__PROFILE__INIT;
    p.n_sample_type = 4;
    p.sample_type = vtp;
    p.n_sample = ns;
    p.sample = smpp;
    p.n_location = nfn;
    p.location = locp;
    p.n_function = nfn;
    p.function = fnp;
    p.n_string_table = st.n;
    p.string_table = st.s;
    p.time_nanos = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    p.period_type = &period_type;
    p.period = (int64_t)period;
    p.default_sample_type = 6; /* inuse_space */

    size_t len = goshm__pprof__profile__get_packed_size(&p);
    packed = malloc(len ? len : 1);
    if (!packed) goto out;
    goshm__pprof__profile__pack(&p, packed);
    int dfd = dup(fd);
    if (dfd < 0) {
        rc = -errno;
        snprintf(err, errlen, "dup: %s", strerror(errno));
        goto out_quiet;
    }
    gzFile gz = gzdopen(dfd, "wb");
    if (!gz) {
        close(dfd);
        goto out;
    }
    int wrote = len ? gzwrite(gz, packed, (unsigned)len) : 0;
    int closed = gzclose(gz);
    if ((len && wrote != (int)len) || closed != Z_OK) {
        rc = -EIO;
        snprintf(err, errlen, "writing the gzipped profile failed");
        goto out_quiet;
    }
    rc = 0;
    if (totals) *totals = tot;
    goto out_quiet;
out:
    snprintf(err, errlen, "out of memory building the profile");
out_quiet:
    free(packed);
    free(fn);
    free(fnp);
    free(loc);
    free(locp);
    free(line);
    free(linep);
    free(acc);
    free(valid);
    free(smp);
    free(smpp);
    free(locs);
    free(vals);
    free(labels);
    free(labelp);
    free(pids);
    free(nfr);
    strtab_free(&st);
    return rc;
}
