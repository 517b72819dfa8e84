/* SPDX-License-Identifier: MIT */
/* obs.h: helpers of the observability tests: run a command and read its
 * output, a child role driven through pipes, an HTTP GET on the loopback, and a Prometheus text parser that
 * also checks the format (every sample's family has # HELP and # TYPE before
 * it, counters end in _total, values are numbers).
 */
#ifndef GOSHM_TEST_OBS_H
#define GOSHM_TEST_OBS_H

#define _GNU_SOURCE
#include <arpa/inet.h>  /* inet_pton */
#include <errno.h>      /* errno */
#include <fcntl.h>      /* O_CLOEXEC */
#include <netinet/in.h> /* sockaddr_in */
#include <poll.h>       /* poll */
#include <stdbool.h>    /* bool */
#include <stdint.h>     /* uint64_t */
#include <stdio.h>      /* popen */
#include <stdlib.h>     /* malloc */
#include <string.h>     /* strstr */
#include <sys/socket.h> /* socket */
#include <sys/wait.h>   /* WEXITSTATUS */
#include <unistd.h>     /* close */

/* Run `cmd` through sh, return its stdout (malloc'd, NUL-terminated) and
 * exit status in *status (-1 if it did not exit normally). */
static inline char *obs_run(const char *cmd, int *status)
{
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 4096 > cap) buf = realloc(buf, cap *= 2);
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        if (k == 0) break;
        n += k;
    }
    buf[n] = '\0';
    int st = pclose(f);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return buf;
}

/* A free TCP port on 127.0.0.1 (bound then closed: a small race, fine for
 * tests). 0 on failure. */
/* Fork and run this program again (/proc/self/exe) as `argv0 role sock`,
 * its stdin and stdout pipes to *in (line-buffered) and *out; `unset`, if
 * not NULL, is removed from the child's environment first. The pid, or -1. */
static inline pid_t obs_child_start(const char *argv0, const char *role, const char *sock,
                                    const char *unset, FILE **in, FILE **out)
{
    int to[2], from[2];
    if (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        if (unset) unsetenv(unset);
        execl("/proc/self/exe", argv0, role, sock, (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    *in = fdopen(to[1], "w");
    *out = fdopen(from[0], "r");
    setvbuf(*in, NULL, _IOLBF, 0);
    return pid;
}

static inline unsigned obs_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t len = sizeof sa;
    unsigned port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

/* One HTTP/1.1 request to 127.0.0.1:port. Returns the status code (or -1),
 * the whole response in *resp (malloc'd) and a pointer to its body. */
static inline int obs_http(unsigned port, const char *method, const char *path, char **resp, char **body)
{
    *resp = NULL;
    *body = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    char req[256];
    int rl = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", method, path);
    if (send(fd, req, (size_t)rl, MSG_NOSIGNAL) != rl) {
        close(fd);
        return -1;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0) break;
        if (n + 4096 > cap) buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + n, cap - n - 1, 0);
        if (k <= 0) break;
        n += (size_t)k;
    }
    close(fd);
    buf[n] = '\0';
    *resp = buf;
    int code = -1;
    if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1) return -1;
    char *b = strstr(buf, "\r\n\r\n");
    *body = b ? b + 4 : buf + n;
    return code;
}

/* Check the exposition text's format; returns the number of problems,
 * printed on stderr. */
static inline int obs_prom_check(const char *text)
{
    int bad = 0;
    char typed[256][96];
    char types[256][16];
    int ntyped = 0;
    const char *p = text;
    while (*p) {
        const char *e = strchr(p, '\n');
        if (!e) {
            fprintf(stderr, "prom: last line has no newline\n");
            return bad + 1;
        }
        char line[1024];
        size_t n = (size_t)(e - p) < sizeof line - 1 ? (size_t)(e - p) : sizeof line - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        p = e + 1;
        char name[96], type[16];
        if (strncmp(line, "# HELP ", 7) == 0) continue;
        if (sscanf(line, "# TYPE %95s %15s", name, type) == 2) {
            if (ntyped < 256) {
                strcpy(typed[ntyped], name);
                strcpy(types[ntyped++], type);
            }
            if (strcmp(type, "counter") == 0 && (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total")))
                fprintf(stderr, "prom: counter %s does not end in _total\n", name), bad++;
            continue;
        }
        if (line[0] == '#' || line[0] == '\0') {
            fprintf(stderr, "prom: unexpected line '%s'\n", line);
            bad++;
            continue;
        }
        size_t k = strcspn(line, "{ ");
        if (k == 0 || k >= sizeof name) {
            fprintf(stderr, "prom: bad sample '%s'\n", line), bad++;
            continue;
        }
        memcpy(name, line, k);
        name[k] = '\0';
        for (size_t i = 0; i < k; i++)
            if (!(name[i] == '_' || name[i] == ':' || (name[i] >= 'a' && name[i] <= 'z') ||
                  (name[i] >= 'A' && name[i] <= 'Z') || (i && name[i] >= '0' && name[i] <= '9')))
                fprintf(stderr, "prom: bad metric name '%s'\n", name), bad++;
        bool found = false;
        for (int i = 0; i < ntyped; i++) found |= strcmp(typed[i], name) == 0;
        if (!found) fprintf(stderr, "prom: sample of %s before its # TYPE\n", name), bad++;
        const char *v = strrchr(line, ' ');
        char *end;
        if (!v || (strtod(v + 1, &end), *end != '\0' || end == v + 1))
            fprintf(stderr, "prom: bad value in '%s'\n", line), bad++;
    }
    return bad;
}

/* The value of the first sample whose line starts with `prefix` (a name, or
 * a name with labels), e.g. "goshm_heap_in_use_bytes " or
 * "goshm_client_in_use_bytes{pid=\"12\"". -1 if none. */
static inline double obs_prom_value(const char *text, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, prefix, pl) != 0) continue;
        const char *e = strchr(p, '\n');
        const char *sp = e ? e : p + strlen(p);
        while (sp > p && sp[-1] != ' ') sp--;
        return strtod(sp, NULL);
    }
    return -1;
}

#endif
