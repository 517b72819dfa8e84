/* SPDX-License-Identifier: MIT */
/* bench-wake.c: the floor under "R after idle": how long the kernel takes to
 * wake a process asleep on a futex (or an eventfd) after the machine idled.
 *
 * Overview: bench/README.md, "R after idle". R after 1 ms idle is a client
 * ringing the doorbell of a goshmd asleep on it, then waiting for the
 * answer. No allocator code can answer before the kernel has run the
 * daemon's thread again, so this program measures that step alone, with no
 * goshm code at all: a parent process sleeps (FUTEX_WAIT on a shared word,
 * or read(2) on an eventfd); a child sleeps GAP microseconds, stamps the
 * time in shared memory and wakes the parent; the parent reads the clock as
 * soon as it runs. The difference is the wake-up latency; p50/p99 over
 * SAMPLES samples are printed. Compare them with R's figures: what is left
 * above this floor is ours.
 *
 *   bench-wake [--gap-us N] [--samples N] [--kind futex|eventfd|both]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct shared {
    _Atomic uint32_t word;     /* futex word: the sample number being woken for */
    _Atomic uint64_t stamp_ns; /* when the waker woke it */
    _Atomic uint32_t ack;      /* the last sample the sleeper took */
} shared_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One run of `samples` wake-ups of kind ("futex" or "eventfd"); prints
 * p50/p99/max in ns. 0 on success. */
static int run(const char *kind, unsigned gap_us, unsigned samples)
{
    shared_t *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) return perror("mmap"), 1;
    int efd = eventfd(0, EFD_CLOEXEC);
    if (efd < 0) return perror("eventfd"), 1;
    bool futex = strcmp(kind, "futex") == 0;
    uint64_t *lat = calloc(samples, sizeof *lat);
    if (!lat) return perror("calloc"), 1;
    pid_t pid = fork();
    if (pid < 0) return perror("fork"), 1;
    if (pid == 0) { /* the waker */
        for (unsigned i = 1; i <= samples; i++) {
            /* One wake-up at a time: the sleeper must be back asleep (or
             * about to be) before the gap starts. */
            while (atomic_load(&sh->ack) != i - 1) {
            }
            sleep_us(gap_us);
            atomic_store(&sh->stamp_ns, now_ns());
            if (futex) {
                atomic_store(&sh->word, i);
                syscall(SYS_futex, (uint32_t *)&sh->word, FUTEX_WAKE, 1, NULL, NULL, 0);
            } else {
                uint64_t one = 1;
                if (write(efd, &one, sizeof one) != sizeof one) _exit(2);
            }
        }
        _exit(0);
    }
    for (unsigned i = 1; i <= samples; i++) {
        if (futex) {
            uint32_t w;
            while ((w = atomic_load(&sh->word)) != i)
                syscall(SYS_futex, (uint32_t *)&sh->word, FUTEX_WAIT, w, NULL, NULL, 0);
        } else {
            uint64_t v;
            if (read(efd, &v, sizeof v) != sizeof v) return perror("read eventfd"), 1;
        }
        lat[i - 1] = now_ns() - atomic_load(&sh->stamp_ns);
        atomic_store(&sh->ack, i);
    }
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return fprintf(stderr, "waker failed\n"), 1;
    qsort(lat, samples, sizeof *lat, cmp_u64);
    printf("wake %-7s gap_us=%u samples=%u p50_ns=%" PRIu64 " p99_ns=%" PRIu64 " max_ns=%" PRIu64 "\n", kind, gap_us,
           samples, lat[samples / 2], lat[(uint64_t)samples * 99 / 100], lat[samples - 1]);
    free(lat);
    close(efd);
    munmap(sh, sizeof *sh);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned gap_us = 1000, samples = 2000;
    const char *kind = "both";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--gap-us") && i + 1 < argc)
            gap_us = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--samples") && i + 1 < argc)
            samples = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--kind") && i + 1 < argc)
            kind = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--gap-us N] [--samples N] [--kind futex|eventfd|both]\n", argv[0]);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (samples == 0) samples = 1;
    int rc = 0;
    if (!strcmp(kind, "futex") || !strcmp(kind, "both")) rc |= run("futex", gap_us, samples);
    if (!strcmp(kind, "eventfd") || !strcmp(kind, "both")) rc |= run("eventfd", gap_us, samples);
    return rc;
}
