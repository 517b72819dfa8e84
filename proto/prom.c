/* SPDX-License-Identifier: MIT */
/* prom.c: StatsReply -> Prometheus text exposition format 0.0.4.
 *
 * Overview: shm/overview.h; contract: proto/prom.h. Each family is printed
 * once, its # HELP and # TYPE lines first and all its samples together, as
 * the format requires. Label values are escaped (backslash, quote, newline).
 */
#include "prom.h"

#include <inttypes.h> /* PRIu64 */
#include <stddef.h>   /* size_t */

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(FILE *f, const char *name, uint64_t v)
{
    fprintf(f, "%s %" PRIu64 "\n", name, v);
}

/* A label value, escaped as the format requires. */
static void label_value(FILE *f, const char *s)
{
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == '\\') fputs("\\\\", f);
        else if (*p == '"') fputs("\\\"", f);
        else if (*p == '\n') fputs("\\n", f);
        else fputc(*p, f);
    }
}

typedef uint64_t (*class_field_fn)(const Goshm__ClassStats *c);
static uint64_t class_in_use(const Goshm__ClassStats *c) { return c->objects_in_use; }
static uint64_t class_allocs(const Goshm__ClassStats *c) { return c->allocs; }
static uint64_t class_frees(const Goshm__ClassStats *c) { return c->frees; }
static uint64_t class_spans(const Goshm__ClassStats *c) { return c->spans; }

static void class_family(FILE *f, const Goshm__StatsReply *r, const char *name, const char *type, const char *help,
                         class_field_fn get)
{
    family(f, name, type, help);
    for (size_t i = 0; i < r->n_classes; i++)
        fprintf(f, "%s{size=\"%u\"} %" PRIu64 "\n", name, r->classes[i]->size, get(r->classes[i]));
}

typedef uint64_t (*client_field_fn)(const Goshm__ClientStats *c);
static uint64_t client_in_use(const Goshm__ClientStats *c) { return c->in_use_bytes; }
static uint64_t client_allocs(const Goshm__ClientStats *c) { return c->allocs; }
static uint64_t client_frees(const Goshm__ClientStats *c) { return c->frees; }
static uint64_t client_large_allocs(const Goshm__ClientStats *c) { return c->large_allocs; }
static uint64_t client_large_frees(const Goshm__ClientStats *c) { return c->large_frees; }
static uint64_t client_cached(const Goshm__ClientStats *c) { return c->cached_spans; }

static void client_family(FILE *f, const Goshm__StatsReply *r, const char *name, const char *type, const char *help,
                          client_field_fn get)
{
    family(f, name, type, help);
    for (size_t i = 0; i < r->n_clients; i++)
        fprintf(f, "%s{pid=\"%u\",slot=\"%u\"} %" PRIu64 "\n", name, r->clients[i]->pid, r->clients[i]->slot,
                get(r->clients[i]));
}

int gs_prom_write(FILE *f, const Goshm__StatsReply *r)
{
    static const Goshm__HeapStats zero = GOSHM__HEAP_STATS__INIT;
    const Goshm__HeapStats *h = r->heap ? r->heap : &zero;

    family(f, "goshm_info", "gauge", "Always 1; the labels name the daemon and its heap.");
    fputs("goshm_info{version=\"", f);
    label_value(f, r->version);
    fputs("\",backend=\"", f);
    label_value(f, r->backend);
    fprintf(f, "\",heap_id=\"%016" PRIx64 "\",daemon_pid=\"%u\"} 1\n", r->heap_id, r->daemon_pid);
    family(f, "goshm_uptime_seconds", "gauge", "Seconds since goshmd started.");
    fprintf(f, "goshm_uptime_seconds %" PRIu64 ".%03u\n", r->uptime_ms / 1000u, (unsigned)(r->uptime_ms % 1000u));
    family(f, "goshm_heap_size_bytes", "gauge", "The heap size goshmd was configured with (--size).");
    sample(f, "goshm_heap_size_bytes", r->size_bytes);

    static const struct {
        const char *name, *help;
        size_t off;
    } gauges[] = {
        {"goshm_heap_reserved_bytes", "Heap capacity: the reservation, in whole arenas.",
         offsetof(Goshm__HeapStats, reserved_bytes)},
        {"goshm_heap_grown_bytes", "Arenas grown so far.", offsetof(Goshm__HeapStats, grown_bytes)},
        {"goshm_heap_committed_bytes", "Heap pages backed by memory.", offsetof(Goshm__HeapStats, committed_bytes)},
        {"goshm_heap_in_use_bytes", "Bytes in live objects' slots and large spans.",
         offsetof(Goshm__HeapStats, in_use_bytes)},
        {"goshm_heap_span_bytes", "Pages in in-use spans.", offsetof(Goshm__HeapStats, span_bytes)},
        {"goshm_heap_idle_bytes", "Free pages still backed by memory.", offsetof(Goshm__HeapStats, idle_bytes)},
        {"goshm_heap_released_bytes", "Free pages given back to the system.",
         offsetof(Goshm__HeapStats, released_bytes)},
        {"goshm_heap_metadata_bytes", "Committed header, client slots, side records and span records.",
         offsetof(Goshm__HeapStats, metadata_bytes)},
        {"goshm_heap_large_objects", "Large objects (over 32 KiB) live now.",
         offsetof(Goshm__HeapStats, large_objects)},
    };
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++) {
        family(f, gauges[i].name, "gauge", gauges[i].help);
        sample(f, gauges[i].name, *(const uint64_t *)((const char *)h + gauges[i].off));
    }
    static const struct {
        const char *name, *help;
        size_t off;
    } counters[] = {
        {"goshm_large_allocs_total", "Large objects allocated.", offsetof(Goshm__HeapStats, large_allocs)},
        {"goshm_large_frees_total", "Large objects freed.", offsetof(Goshm__HeapStats, large_frees)},
        {"goshm_notices_total", "Spans that gained frees while uncached, handled by goshmd.",
         offsetof(Goshm__HeapStats, notices)},
        {"goshm_bad_requests_total", "Malformed client requests goshmd rejected.",
         offsetof(Goshm__HeapStats, bad_requests)},
        {"goshm_bad_ring_entries_total", "Malformed ring entries goshmd rejected.",
         offsetof(Goshm__HeapStats, bad_ring_entries)},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        family(f, counters[i].name, "counter", counters[i].help);
        sample(f, counters[i].name, *(const uint64_t *)((const char *)h + counters[i].off));
    }

    class_family(f, r, "goshm_class_objects_in_use", "gauge", "Live objects of the size class (bytes per object).",
                 class_in_use);
    class_family(f, r, "goshm_class_allocs_total", "counter", "Objects of the size class allocated.", class_allocs);
    class_family(f, r, "goshm_class_frees_total", "counter", "Objects of the size class freed.", class_frees);
    class_family(f, r, "goshm_class_spans", "gauge", "In-use spans of the size class.", class_spans);

    family(f, "goshm_clients", "gauge", "Clients attached now.");
    sample(f, "goshm_clients", r->n_clients);
    client_family(f, r, "goshm_client_in_use_bytes", "gauge",
                  "Live bytes in the spans the client caches or cached last, plus its large objects.", client_in_use);
    client_family(f, r, "goshm_client_allocs_total", "counter", "Small objects the client allocated.", client_allocs);
    client_family(f, r, "goshm_client_frees_total", "counter", "Small objects freed, as the client counted them.",
                  client_frees);
    client_family(f, r, "goshm_client_large_allocs_total", "counter", "Large objects the client allocated.",
                  client_large_allocs);
    client_family(f, r, "goshm_client_large_frees_total", "counter", "Large objects the client freed.",
                  client_large_frees);
    client_family(f, r, "goshm_client_cached_spans", "gauge", "Spans the client's mcaches hold.", client_cached);

    family(f, "goshm_departed_in_use_bytes", "gauge",
           "Live bytes left by a client that detached or died, by its former pid.");
    for (size_t i = 0; i < r->n_departed; i++)
        fprintf(f, "goshm_departed_in_use_bytes{pid=\"%u\"} %" PRIu64 "\n", r->departed[i]->pid,
                r->departed[i]->in_use_bytes);
    family(f, "goshm_departed_other_in_use_bytes", "gauge",
           "Live bytes left by departed clients that no longer fit the daemon's table.");
    sample(f, "goshm_departed_other_in_use_bytes", r->departed_other_bytes);
    return ferror(f) ? -1 : 0;
}
