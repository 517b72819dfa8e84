/* SPDX-License-Identifier: MIT */
/* metrics.c: the /metrics endpoint on libevent's evhttp.
 *
 * Overview: shm/overview.h; contract and exposure: daemon/metrics.h. Each
 * request renders afresh into a memory stream (open_memstream) and hands the
 * bytes to evhttp; nothing is cached between requests. Requests are small
 * and answered at once, so evhttp's limits are kept tight: 8 KiB of headers,
 * no body, 10 s to send a request.
 */
#define _GNU_SOURCE
#include "metrics.h"

#include <errno.h>           /* errno */
#include <event2/buffer.h>   /* evbuffer_add */
#include <event2/event.h>    /* event_base */
#include <event2/http.h>     /* evhttp_* */
#include <stdio.h>           /* snprintf, open_memstream */
#include <stdlib.h>          /* free, strtoul */
#include <string.h>          /* strchr, strcmp */

#include "log.h"

#define METRICS_TIMEOUT_S 10
#define METRICS_MAX_HEADERS 8192
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct gs_metrics {
    struct evhttp *http;
    gs_metrics_render_fn render;
    void *arg;
    unsigned long served;
};

int gs_metrics_parse_addr(const char *addr, char *host, size_t hostlen, unsigned *port, char *err, size_t errlen)
{
    const char *colon, *h = addr;
    size_t hl;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "metrics: bad address '%s' (want [IPv6]:PORT)", addr);
            return -1;
        }
        h = addr + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || strchr(addr, ':') != colon) {
            snprintf(err, errlen, "metrics: bad address '%s' (want HOST:PORT, e.g. 127.0.0.1:9464)", addr);
            return -1;
        }
        hl = (size_t)(colon - addr);
    }
    if (hl == 0) {
        snprintf(err, errlen,
                 "metrics: '%s' names no host: give one (127.0.0.1 for this machine only, 0.0.0.0 for every "
                 "interface)",
                 addr);
        return -1;
    }
    if (hl >= hostlen) {
        snprintf(err, errlen, "metrics: host name too long in '%s'", addr);
        return -1;
    }
    char *end;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || p == 0 || p > 65535) {
        snprintf(err, errlen, "metrics: bad port in '%s' (want 1..65535)", addr);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (unsigned)p;
    return 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    gs_metrics_t *m = arg;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        evhttp_send_error(req, 405, "Method Not Allowed");
        return;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || strcmp(path, "/metrics") != 0) {
        evhttp_send_error(req, 404, "Not Found (try /metrics)");
        return;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int rc = f ? m->render(m->arg, f) : -1;
    if (f && fclose(f) != 0) rc = -1;
    if (rc != 0) {
        gs_log_warn("metrics: cannot render the statistics");
        free(text);
        evhttp_send_error(req, 500, "Internal Server Error");
        return;
    }
    struct evbuffer *body = evbuffer_new();
    if (!body || evbuffer_add(body, text, len) != 0) {
        if (body) evbuffer_free(body);
        free(text);
        evhttp_send_error(req, 500, "Internal Server Error");
        return;
    }
    free(text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", CONTENT_TYPE);
    evhttp_send_reply(req, 200, "OK", body); /* HEAD: evhttp sends no body */
    evbuffer_free(body);
    m->served++;
}

gs_metrics_t *gs_metrics_start(struct event_base *base, const char *addr, gs_metrics_render_fn render, void *arg,
                               char *err, size_t errlen)
{
    char host[256];
    unsigned port;
    if (gs_metrics_parse_addr(addr, host, sizeof host, &port, err, errlen) != 0) return NULL;
    gs_metrics_t *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "metrics: out of memory");
        return NULL;
    }
    m->render = render;
    m->arg = arg;
    m->http = evhttp_new(base);
    if (!m->http) {
        snprintf(err, errlen, "metrics: libevent: cannot create the HTTP server");
        free(m);
        return NULL;
    }
    /* Every common method reaches on_request, which answers 405 to all but
     * GET and HEAD (evhttp itself would answer 501). */
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_max_headers_size(m->http, METRICS_MAX_HEADERS);
    evhttp_set_max_body_size(m->http, 0);
    evhttp_set_timeout(m->http, METRICS_TIMEOUT_S);
    evhttp_set_gencb(m->http, on_request, m);
    if (!evhttp_bind_socket_with_handle(m->http, host, (ev_uint16_t)port)) {
        snprintf(err, errlen, "metrics: cannot listen on %s: %s", addr, strerror(errno));
        evhttp_free(m->http);
        free(m);
        return NULL;
    }
    gs_log_info("metrics: serving http://%s/metrics (heap figures to whoever can reach it)", addr);
    return m;
}

void gs_metrics_stop(gs_metrics_t *m)
{
    if (!m) return;
    evhttp_free(m->http);
    gs_log_debug("metrics: served %lu requests", m->served);
    free(m);
}
