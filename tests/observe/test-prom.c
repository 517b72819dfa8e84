/* SPDX-License-Identifier: MIT */
/* Description: proto/prom.c, the one Prometheus exposition builder: a
 * StatsReply made by hand renders as valid text format 0.0.4 (every sample
 * after its family's # HELP and # TYPE, counters ending in _total), with
 * the heap's, classes' (size label), clients' (pid label) and departed
 * clients' figures, and label values escaped.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "obs.h"
#include "prom.h"

int main(void)
{
    Goshm__HeapStats hs = GOSHM__HEAP_STATS__INIT;
    hs.in_use_bytes = 12345;
    hs.reserved_bytes = 1u << 30;
    hs.large_allocs = 7;
    Goshm__ClassStats c64 = GOSHM__CLASS_STATS__INIT, c128 = GOSHM__CLASS_STATS__INIT;
    c64.size = 64;
    c64.objects_in_use = 10;
    c64.allocs = 30;
    c128.size = 128;
    c128.frees = 4;
    Goshm__ClassStats *cls[] = {&c64, &c128};
    Goshm__ClientStats cl = GOSHM__CLIENT_STATS__INIT;
    cl.pid = 4242;
    cl.slot = 3;
    cl.in_use_bytes = 999;
    Goshm__ClientStats *cls2[] = {&cl};
    Goshm__DepartedStats dp = GOSHM__DEPARTED_STATS__INIT;
    dp.pid = 77;
    dp.in_use_bytes = 555;
    Goshm__DepartedStats *dps[] = {&dp};
    Goshm__StatsReply r = GOSHM__STATS_REPLY__INIT;
    r.heap = &hs;
    r.n_classes = 2;
    r.classes = cls;
    r.n_clients = 1;
    r.clients = cls2;
    r.n_departed = 1;
    r.departed = dps;
    r.backend = "epo\"ll\\";
    r.version = "0.1.0";
    r.heap_id = 0xabcdefu;
    r.uptime_ms = 61234;
    r.size_bytes = 1u << 30;

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(gs_prom_write(f, &r) == 0);
    fclose(f);
    CHECK(obs_prom_check(text) == 0);
    CHECK(obs_prom_value(text, "goshm_heap_in_use_bytes ") == 12345);
    CHECK(obs_prom_value(text, "goshm_large_allocs_total ") == 7);
    CHECK(obs_prom_value(text, "goshm_class_objects_in_use{size=\"64\"} ") == 10);
    CHECK(obs_prom_value(text, "goshm_class_frees_total{size=\"128\"} ") == 4);
    CHECK(obs_prom_value(text, "goshm_client_in_use_bytes{pid=\"4242\",slot=\"3\"} ") == 999);
    CHECK(obs_prom_value(text, "goshm_departed_in_use_bytes{pid=\"77\"} ") == 555);
    CHECK(obs_prom_value(text, "goshm_uptime_seconds ") == 61.234);
    CHECK(obs_prom_value(text, "goshm_heap_size_bytes ") == (double)(1u << 30));
    CHECK(strstr(text, "backend=\"epo\\\"ll\\\\\"") != NULL);
    CHECK(strstr(text, "heap_id=\"0000000000abcdef\"") != NULL);
    /* Each family exactly once. */
    int n = 0;
    for (const char *p = text; (p = strstr(p, "# TYPE goshm_client_in_use_bytes ")); p++) n++;
    CHECK(n == 1);
    /* And the checker itself catches mistakes. */
    CHECK(obs_prom_check("goshm_x 1\n") > 0);
    CHECK(obs_prom_check("# TYPE goshm_y counter\ngoshm_y 1\n") > 0);
    free(text);
    return CHECK_DONE("test-prom");
}
