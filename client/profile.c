/* SPDX-License-Identifier: MIT */
/* profile.c: sampling allocations, capturing and naming their stacks, and
 * retiring samples on free, from any process.
 *
 * Overview: shm/overview.h; the shared layout and its rules: shm/profregion.h.
 *
 * Cost. When sampling is off the countdown starts at INT64_MAX and the
 * allocation path pays one subtract and one branch that is never taken. When
 * it is on, once per GOSHM_PROFILE_RATE bytes (512 KiB) on average, a sample
 * walks the frame-pointer chain (GOSHM_PROFILE_UNWIND=fp, the default: two
 * loads per frame, tens of nanoseconds for 20 frames; libgoshm is built with
 * frame pointers) or calls glibc's backtrace() (=dwarf: the unwinder reads
 * the .eh_frame tables, a few microseconds; the first call in a process
 * loads libgcc_s), finds or adds its stack in the shared table (a hash and
 * an acquire load when the stack is known) and claims an entry of the
 * sample table (one CAS). No lock is taken and nothing is named unless the
 * stack was never seen before: then each frame not seen before is named
 * once (dladdr, cached by pc). Frees pay one relaxed load of the span's
 * bucket; only frees in buckets with live samples look the offset up.
 *
 * The walk's limit: a caller built without frame pointers (-O2 omits them,
 * Debian's default) keeps the frame pointer of a frame further out, or
 * garbage, in that register. The walk then skips frames or stops (it checks
 * every frame: inside this thread's stack, aligned, above the one before),
 * so such a program's stacks are truncated; the caller of goshm_malloc is
 * always right (its return address is in libgoshm's own frame). Go, perf's
 * users and Fedora (since 38) made the same trade: build with
 * -fno-omit-frame-pointer, or use GOSHM_PROFILE_UNWIND=dwarf.
 *
 * Naming. Only this process knows its address space, so it names its frames
 * when it samples them, with dladdr(): exported (dynamic) symbols of the
 * executable and its libraries. Functions of an executable need -rdynamic
 * (CMake's ENABLE_EXPORTS) and default visibility to be named; others are
 * named "module+0xOFFSET". Leading frames of the allocator itself are dropped
 * so that a sample's innermost frame is the caller of goshm_malloc.
 */
#define _GNU_SOURCE
#include "client.h"

#include <dlfcn.h>    /* dladdr */
#include <link.h>     /* dl_iterate_phdr */
#include <errno.h>    /* errno */
#include <execinfo.h> /* backtrace */
#include <math.h>     /* exp, log */
#include <pthread.h>  /* pthread_mutex_t */
#include <stdio.h>    /* snprintf */
#include <stdlib.h>   /* getenv, strtoull */
#include <string.h>   /* strlen, strncmp, strrchr */
#include <time.h>     /* clock_gettime */
#include <unistd.h>   /* getpid */

#define NAME_CACHE 4096u       /* this process's pc -> name offset cache */
#define MAX_NAME 200u

static _Atomic uint32_t no_buckets; /* the bucket of a heap without a region: always 0 */

#if defined(__x86_64__) || defined(__aarch64__)
#define HAVE_FP_WALK 1 /* [fp] is the caller's frame pointer, [fp + 8] the return address */
#else
#define HAVE_FP_WALK 0
#endif

static void own_init(void);

/* GOSHM_PROFILE_UNWIND of this process, set at attach. */
static _Atomic int unwind_mode = HAVE_FP_WALK ? GS_UNWIND_FP : GS_UNWIND_DWARF;
/* getpid() is a system call: this process's pid, refreshed in fork children. */
static _Atomic uint32_t self_pid;
static pthread_once_t prof_once = PTHREAD_ONCE_INIT;
static void forget_pid(void) { atomic_store_explicit(&self_pid, 0, memory_order_relaxed); }
static void prof_once_init(void) { pthread_atfork(NULL, NULL, forget_pid); }

static uint32_t my_pid(void)
{
    uint32_t p = atomic_load_explicit(&self_pid, memory_order_relaxed);
    if (gs_unlikely(!p)) {
        p = (uint32_t)getpid();
        atomic_store_explicit(&self_pid, p, memory_order_relaxed);
    }
    return p;
}

int gs_prof_env_unwind(void)
{
    const char *s = getenv("GOSHM_PROFILE_UNWIND");
    int dflt = HAVE_FP_WALK ? GS_UNWIND_FP : GS_UNWIND_DWARF;
    if (!s || !*s) return dflt;
    if (strcmp(s, "dwarf") == 0) return GS_UNWIND_DWARF;
    if (strcmp(s, "fp") == 0) {
        if (HAVE_FP_WALK) return GS_UNWIND_FP;
        static _Atomic int said_arch;
        if (!atomic_exchange(&said_arch, 1))
            gs_printf("goshm: GOSHM_PROFILE_UNWIND=fp: no frame-pointer walk on this architecture; using dwarf\n");
        return GS_UNWIND_DWARF;
    }
    static _Atomic int said;
    if (!atomic_exchange(&said, 1))
        gs_printf("goshm: GOSHM_PROFILE_UNWIND=%s: want fp or dwarf; using %s\n", s, dflt == GS_UNWIND_FP ? "fp" : "dwarf");
    return dflt;
}

uint64_t gs_prof_env_rate(void)
{
    const char *s = getenv("GOSHM_PROFILE_RATE");
    if (!s || !*s) return GS_PROF_DEFAULT_RATE;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || s[0] == '-' || v > (UINT64_C(1) << 40)) {
        static _Atomic int said;
        if (!atomic_exchange(&said, 1))
            gs_printf("goshm: GOSHM_PROFILE_RATE=%s: want bytes (0 turns sampling off); using %u\n", s,
                      GS_PROF_DEFAULT_RATE);
        return GS_PROF_DEFAULT_RATE;
    }
    return v;
}

void gs_prof_attach(struct goshm *h, uint64_t prof_off, uint64_t rate)
{
    gs_prof_view_t *v = &h->prof;
    *v = (gs_prof_view_t){.buckets = &no_buckets, .mask = 0};
    if (prof_off == 0 || prof_off + GS_PROF_BUCKETS_OFF > h->arena_off || prof_off % 4096u) return;
    gs_prof_header_t *ph = (gs_prof_header_t *)(h->data + prof_off);
    uint32_t nb = ph->nbuckets;
    if (ph->magic != GS_PROF_MAGIC || nb == 0 || (nb & (nb - 1u)) || nb > GS_PROF_MAX_BUCKETS ||
        prof_off + gs_prof_region_size(nb) > h->arena_off)
        return;
    char *base = h->data + prof_off;
    v->hdr = ph;
    v->stacks = (gs_prof_stack_t *)(base + GS_PROF_STACKS_OFF);
    v->samples = (gs_prof_sample_t *)(base + GS_PROF_SAMPLES_OFF);
    v->names = base + GS_PROF_NAMES_OFF;
    v->buckets = (_Atomic uint32_t *)(base + GS_PROF_BUCKETS_OFF);
    v->mask = nb - 1u;
    v->rate = rate;
    pthread_once(&prof_once, prof_once_init);
    atomic_store_explicit(&unwind_mode, gs_prof_env_unwind(), memory_order_relaxed);
    own_init();
}

/* xorshift64*, per mcache. */
static uint64_t rng_next(gs_mcache_t *c)
{
    if (c->rng == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        c->rng = gs_prof_mix((uint64_t)(uintptr_t)c ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32)) | 1u;
    }
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * UINT64_C(2685821657736338717);
}

/* Go's fastexprand: an exponential variate with the given mean. */
int64_t gs_prof_next(struct goshm *h, gs_mcache_t *c)
{
    uint64_t rate = h->prof.rate;
    if (rate == 0 || !h->prof.hdr) return INT64_MAX;
    if (rate == 1) return 0; /* every allocation */
    double u = ((double)(rng_next(c) >> 11) + 1.0) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double next = -log(u) * (double)rate;
    if (next > (double)(INT64_MAX / 2)) return INT64_MAX / 2;
    return (int64_t)next;
}

/* ---- naming frames ---------------------------------------------------------- */

static pthread_mutex_t name_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uintptr_t pc;
    uint32_t off;     /* in names[] + 1; 0: empty */
    const char *heap; /* which heap's names[] (a process may attach several) */
} name_cache[NAME_CACHE];

/* Copy s into the shared name pool; its offset, or UINT32_MAX if full. */
static uint32_t pool_put(gs_prof_view_t *v, const char *s)
{
    size_t n = strlen(s);
    if (n > MAX_NAME) n = MAX_NAME;
    uint64_t at = gs_fetch_add_relaxed(&v->hdr->xnames_used, n + 1u);
    if (at + n + 1u > GS_PROF_NAMES) return UINT32_MAX;
    memcpy(v->names + at, s, n);
    v->names[at + n] = '\0';
    return (uint32_t)at;
}

/* The name of the frame at pc, in the pool. Under name_lock. */
static uint32_t frame_name(gs_prof_view_t *v, uintptr_t pc)
{
    uint32_t k = (uint32_t)(gs_prof_mix(pc) % NAME_CACHE);
    if (name_cache[k].off && name_cache[k].pc == pc && name_cache[k].heap == v->names) return name_cache[k].off - 1u;
    Dl_info di = {0};
    char buf[MAX_NAME + 32];
    /* pc - 1: a return address may be past the end of its function. */
    if (!dladdr((void *)(pc - 1u), &di)) {
        snprintf(buf, sizeof buf, "0x%lx", (unsigned long)pc);
    } else if (di.dli_sname) {
        snprintf(buf, sizeof buf, "%s", di.dli_sname);
    } else if (di.dli_fname && di.dli_fbase) {
        const char *slash = strrchr(di.dli_fname, '/');
        snprintf(buf, sizeof buf, "%s+0x%lx", slash ? slash + 1 : di.dli_fname,
                 (unsigned long)(pc - (uintptr_t)di.dli_fbase));
    } else {
        snprintf(buf, sizeof buf, "0x%lx", (unsigned long)pc);
    }
    uint32_t off = pool_put(v, buf);
    if (off != UINT32_MAX) {
        name_cache[k].pc = pc;
        name_cache[k].off = off + 1u;
        name_cache[k].heap = v->names;
    }
    return off;
}

/* Is the frame at pc part of the allocator (to drop from the top)? dladdr
 * walks symbol tables (microseconds): its answer is cached per pc, without a
 * lock: an entry is one word, pc * 2 + (1 if ours), 0 empty; a race between
 * two writers of a slot leaves one of two right answers. */
static _Atomic uint64_t own_cache[NAME_CACHE];
static const void *_Atomic own_base; /* the module that holds libgoshm's code */

static void own_init(void)
{
    Dl_info self;
    const void *base = dladdr((void *)(uintptr_t)gs_prof_sample, &self) ? self.dli_fbase : NULL;
    atomic_store_explicit(&own_base, base, memory_order_relaxed);
}

static bool own_frame(uintptr_t pc)
{
    uint32_t k = (uint32_t)(gs_prof_mix(pc ^ 1u) % NAME_CACHE);
    uint64_t e = atomic_load_explicit(&own_cache[k], memory_order_relaxed);
    if (e >> 1 == (uint64_t)pc) return e & 1u;
    Dl_info di;
    bool own = dladdr((void *)(pc - 1u), &di) && di.dli_fbase == atomic_load_explicit(&own_base, memory_order_relaxed) &&
               (!di.dli_sname || strncmp(di.dli_sname, "goshm_", 6) == 0 || strncmp(di.dli_sname, "gs_", 3) == 0);
    atomic_store_explicit(&own_cache[k], (uint64_t)pc << 1 | (own ? 1u : 0u), memory_order_relaxed);
    return own;
}

/* ---- the frame-pointer walk --------------------------------------------------- */

/* Not instrumented: a frame that is not what it seems may point at a
 * sanitizer's redzone on the stack, which the checks below keep inside this
 * thread's stack but not out of a redzone. */
__attribute__((no_sanitize_address)) int gs_prof_fp_chain(uintptr_t fp, uintptr_t lo, uintptr_t hi, void **pcs,
                                                           int max)
{
    int n = 0;
    while (n < max) {
        if (fp < lo || hi < 2u * sizeof(uintptr_t) || fp > hi - 2u * sizeof(uintptr_t) ||
            fp % sizeof(uintptr_t))
            break;
        const uintptr_t *f = (const uintptr_t *)fp;
        uintptr_t next = f[0], ret = f[1];
#if defined(__aarch64__)
        ret &= (UINT64_C(1) << 48) - 1u; /* a pointer-authentication code in the top bits (pac-ret) */
#endif
        if (ret < 4096u) break; /* 0: the outermost frame; small: not code */
        pcs[n++] = (void *)ret;
        if (next <= fp) break;
        fp = next;
    }
    return n;
}

__attribute__((noinline)) int gs_prof_fp_here(uintptr_t lo, uintptr_t hi, void **pcs, int max)
{
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    if (fp < lo || fp >= hi) return -1;
    return gs_prof_fp_chain(fp, fp, hi, pcs, max);
}

int gs_prof_thread_stack(uintptr_t *lo, uintptr_t *hi)
{
    pthread_attr_t a;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &a)) return -1;
    int rc = pthread_attr_getstack(&a, &addr, &size);
    pthread_attr_destroy(&a);
    if (rc || !addr || !size) return -1;
    *lo = (uintptr_t)addr;
    *hi = (uintptr_t)addr + size;
    return 0;
}

/* Is pc in the code of a loaded object? The executable segments seen so far
 * are kept in code[] (added under code_lock, published by the release of
 * ncode; never removed: a library unloaded leaves a range that only lets a
 * stale pc through, to be named by address). A pc outside them costs a
 * dl_iterate_phdr: only a walk that went astray (a caller without frame
 * pointers) meets one, once per sample. */
#define CODE_RANGES 64u
static struct {
    _Atomic uintptr_t lo, hi;
} code[CODE_RANGES];
static _Atomic uint32_t ncode;
static pthread_mutex_t code_lock = PTHREAD_MUTEX_INITIALIZER;

struct code_find {
    uintptr_t pc, lo, hi;
};

static int code_find_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct code_find *f = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t lo = (uintptr_t)info->dlpi_addr + (uintptr_t)ph->p_vaddr, hi = lo + (uintptr_t)ph->p_memsz;
        if (f->pc >= lo && f->pc < hi) {
            f->lo = lo;
            f->hi = hi;
            return 1;
        }
    }
    return 0;
}

static bool in_code(uintptr_t pc)
{
    uint32_t n = atomic_load_explicit(&ncode, memory_order_acquire);
    for (uint32_t i = 0; i < n; i++)
        if (pc >= atomic_load_explicit(&code[i].lo, memory_order_relaxed) &&
            pc < atomic_load_explicit(&code[i].hi, memory_order_relaxed))
            return true;
    struct code_find f = {.pc = pc};
    if (!dl_iterate_phdr(code_find_cb, &f)) return false;
    pthread_mutex_lock(&code_lock);
    n = atomic_load_explicit(&ncode, memory_order_relaxed);
    bool have = false;
    for (uint32_t i = 0; i < n && !have; i++) have = atomic_load_explicit(&code[i].lo, memory_order_relaxed) == f.lo;
    if (!have && n < CODE_RANGES) {
        atomic_store_explicit(&code[n].lo, f.lo, memory_order_relaxed);
        atomic_store_explicit(&code[n].hi, f.hi, memory_order_relaxed);
        atomic_store_explicit(&ncode, n + 1u, memory_order_release);
    }
    pthread_mutex_unlock(&code_lock);
    return true;
}

/* The stack of this sample, innermost first: the frame-pointer walk within
 * this thread's stack (bounds found once per thread and kept in its mcache),
 * or backtrace() when asked for or when the walk cannot be used here. */
static int capture(gs_mcache_t *c, void **frames, int max)
{
#if HAVE_FP_WALK
    if (atomic_load_explicit(&unwind_mode, memory_order_relaxed) == GS_UNWIND_FP) {
        if (gs_unlikely(c->stack_hi == 0) && gs_prof_thread_stack(&c->stack_lo, &c->stack_hi)) {
            c->stack_lo = 0;
            c->stack_hi = 1;
        }
        int n = gs_prof_fp_here(c->stack_lo, c->stack_hi, frames, max);
        if (n >= 0) {
            /* A frame that passed the walk's checks may still hold no
             * return address: the stack ends at the first that is not code. */
            for (int i = 0; i < n; i++)
                if (!in_code((uintptr_t)frames[i])) return i;
            return n;
        }
    }
#endif
    return backtrace(frames, max);
}

/* Find or add the stack of frames[0..n); its index, or UINT32_MAX. */
static uint32_t stack_index(gs_prof_view_t *v, void *const *frames, int n, uint32_t pid)
{
    uint64_t hash = gs_prof_mix(pid);
    for (int i = 0; i < n; i++) hash = gs_prof_mix(hash ^ (uint64_t)(uintptr_t)frames[i]);
    if (hash < 2u) hash += 2u;
    uint32_t home = (uint32_t)(hash % GS_PROF_STACKS);
    for (uint32_t p = 0; p < GS_PROF_PROBES; p++) {
        uint32_t i = (home + p) % GS_PROF_STACKS;
        gs_prof_stack_t *s = &v->stacks[i];
        uint64_t cur = gs_load_acquire(&s->xhash);
        if (cur == hash) return i;
        if (cur != 0) continue;
        uint64_t zero = 0;
        if (!gs_cas_seqcst(&s->xhash, &zero, (uint64_t)1)) {
            if (zero == hash) return i;
            continue;
        }
        s->pid = pid;
        uint32_t k = 0;
        pthread_mutex_lock(&name_lock);
        for (int f = 0; f < n && k < GS_PROF_FRAMES; f++) {
            uint32_t off = frame_name(v, (uintptr_t)frames[f]);
            if (off != UINT32_MAX) s->name[k++] = off;
        }
        pthread_mutex_unlock(&name_lock);
        s->nframes = k;
        gs_store_relaxed(&s->xalloc_weight, 0);
        gs_store_relaxed(&s->xalloc_bytes, 0);
        gs_store_release(&s->xhash, hash); /* names and fields first */
        return i;
    }
    return UINT32_MAX;
}

/* ---- samples ----------------------------------------------------------------- */

static uint32_t sample_home(uint64_t off) { return (uint32_t)(gs_prof_mix(off) % GS_PROF_SAMPLES); }

/* Take a sample of p: its stack, its entry in the sample table. */
static void *take_sample(struct goshm *h, gs_mcache_t *c, void *p, size_t size)
{
    gs_prof_view_t *v = &h->prof;
    if (!p || !v->hdr || size <= GS_TINY_HALF) return p;
    gs_lookup_t l;
    if (gs_lookup(h, p, &l) != NULL) return p;
    gs_mcache_forget(c); /* no undo shortcut: its free must retire the sample */
    gs_fetch_add_relaxed(&v->hdr->xsampled, 1);

    void *frames[GS_PROF_FRAMES + 8];
    int n = capture(c, frames, (int)(sizeof frames / sizeof frames[0]));
    /* Drop the allocator's frames: from the first of them among the
     * innermost few (a sanitizer's backtrace interceptor may come before
     * them) to the last one in a row. */
    int skip = 0;
    for (int i = 0; i < n - 1 && i < 4; i++) {
        if (!own_frame((uintptr_t)frames[i])) continue;
        skip = i;
        while (skip < n - 1 && own_frame((uintptr_t)frames[skip])) skip++;
        break;
    }
    uint32_t pid = my_pid();
    uint32_t st = stack_index(v, frames + skip, n - skip, pid);
    if (st == UINT32_MAX) {
        gs_fetch_add_relaxed(&v->hdr->xdropped, 1);
        return p;
    }
    double rate = (double)v->rate, s = (double)size;
    double w = rate <= 1.0 ? 1.0 : 1.0 / (1.0 - exp(-s / rate));
    uint64_t wfix = (uint64_t)(w * GS_PROF_WEIGHT_ONE + 0.5);
    gs_fetch_add_relaxed(&v->stacks[st].xalloc_weight, wfix);
    gs_fetch_add_relaxed(&v->stacks[st].xalloc_bytes, (uint64_t)(w * s + 0.5));

    /* The bucket first, then the sample (shm/profregion.h, crash story). */
    _Atomic uint32_t *b = &v->buckets[l.sid & v->mask];
    gs_fetch_add_acqrel(b, 1u);
    uint32_t home = sample_home(l.off);
    /* The retired entry of this very slot first: a slot keeps one. */
    uint32_t start = 0;
    for (uint32_t q = 0; q < GS_PROF_PROBES; q++) {
        uint64_t cur = gs_load_relaxed(&v->samples[(home + q) % GS_PROF_SAMPLES].xoff);
        if (cur == GS_PROF_EMPTY) break;
        if (cur == (l.off | GS_PROF_RETIRED_BIT)) {
            start = q;
            break;
        }
    }
    for (uint32_t q = start; q < GS_PROF_PROBES; q++) {
        gs_prof_sample_t *e = &v->samples[(home + q) % GS_PROF_SAMPLES];
        uint64_t cur = gs_load_relaxed(&e->xoff);
        if (cur != GS_PROF_EMPTY && !gs_prof_key_retired(cur)) continue;
        if (!gs_cas_seqcst(&e->xoff, &cur, (uint64_t)GS_PROF_WRITING)) continue;
        e->size = size;
        e->weight = wfix;
        e->stack = st;
        e->pid = pid;
        gs_store_release(&e->xoff, l.off);
        return p;
    }
    atomic_fetch_sub_explicit(b, 1u, memory_order_acq_rel);
    gs_fetch_add_relaxed(&v->hdr->xdropped, 1);
    return p;
}

void *gs_prof_sample(struct goshm *h, gs_mcache_t *c, void *p, size_t size)
{
    if (gs_likely(!h->debug)) {
        c->next_sample = gs_prof_next(h, c);
        return take_sample(h, c, p, size);
    }
    /* A GOSHM_DEBUG mode: the countdown fires at every allocation, and the
     * profile's own countdown runs here. */
    c->next_sample = 0;
    gs_debug_on_alloc(h, "malloc", p, size);
    if ((c->debug_sample_left -= (int64_t)size) >= 0) return p;
    c->debug_sample_left = gs_prof_next(h, c);
    return take_sample(h, c, p, size);
}

void gs_prof_free(struct goshm *h, uint64_t off, uint32_t sid)
{
    gs_prof_view_t *v = &h->prof;
    if (!v->hdr) return;
    uint32_t home = sample_home(off);
    for (uint32_t q = 0; q < GS_PROF_PROBES; q++) {
        gs_prof_sample_t *e = &v->samples[(home + q) % GS_PROF_SAMPLES];
        uint64_t cur = gs_load_acquire(&e->xoff);
        if (cur == GS_PROF_EMPTY) return;
        if (cur != off) continue;
        if (gs_cas_seqcst(&e->xoff, &cur, off | GS_PROF_RETIRED_BIT)) {
            _Atomic uint32_t *b = &v->buckets[sid & v->mask];
            /* Never below zero, whatever a dead process left. */
            uint32_t n = gs_load_relaxed(b);
            while (n && !atomic_compare_exchange_weak(b, &n, n - 1u)) {}
        }
        return;
    }
}

void gs_prof_report_freed(struct goshm *h, uint64_t off)
{
    gs_prof_view_t *v = &h->prof;
    if (!v->hdr) return;
    uint32_t home = sample_home(off);
    for (uint32_t q = 0; q < GS_PROF_PROBES; q++) {
        const gs_prof_sample_t *e = &v->samples[(home + q) % GS_PROF_SAMPLES];
        uint64_t cur = gs_load_acquire((_Atomic uint64_t *)&e->xoff);
        if (cur == GS_PROF_EMPTY) break;
        if (cur != (off | GS_PROF_RETIRED_BIT)) continue;
        /* Client-written: bounded like the daemon's reader (daemon/profile.c). */
        uint32_t si = e->stack;
        if (si >= GS_PROF_STACKS) break;
        const gs_prof_stack_t *s = &v->stacks[si];
        uint32_t n = s->nframes < GS_PROF_FRAMES ? s->nframes : GS_PROF_FRAMES;
        gs_printf("goshm: that object was allocated (a sampled allocation) by pid %u at:\n", e->pid);
        for (uint32_t f = 0; f < n; f++) {
            char name[128];
            uint32_t at = s->name[f], k = 0;
            for (; at < GS_PROF_NAMES && k + 1u < sizeof name && v->names[at]; at++, k++) {
                char ch = v->names[at];
                name[k] = ch >= 0x20 && ch < 0x7f ? ch : '?';
            }
            name[k] = '\0';
            gs_printf("goshm:     %s\n", name);
        }
        return;
    }
    if (v->rate > 1)
        gs_printf("goshm: (its allocation was not sampled; GOSHM_PROFILE_RATE=1 samples every allocation)\n");
}
