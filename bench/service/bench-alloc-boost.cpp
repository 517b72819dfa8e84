/* SPDX-License-Identifier: MIT */
// bench-alloc-boost.cpp: W1 and W2 on Boost.Interprocess, the shared-memory
// peer of bench-alloc's goshm mode (same loops, same sizes, same seed).
//
//   bench-alloc-boost --workload=W1|W2 [--scale F] [--settle-ms MS]
//
// One process allocates from a managed_shared_memory segment (POSIX shm,
// rbtree_best_fit, one process-shared mutex per allocate and deallocate) of
// 3 GiB, created for the run and removed after it. W1: allocate(n), write
// the last byte, read it back into a checksum, deallocate; n cycling 16..1024;
// 20M pairs after 2M warm-up. W2: 1M objects of 8..2048 B (xorshift, the
// seed of bench-alloc), first byte written, freed in a Fisher-Yates order;
// one untimed round then 5 timed ones; RSS = RssAnon + RssShmem above the
// baseline (the segment's pages are RssShmem). Output: bench-alloc's "run"
// line format. Never part of the ctest suite.
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <boost/interprocess/managed_shared_memory.hpp>

namespace bip = boost::interprocess;

namespace {

const uint32_t W1_SIZES[8] = {16, 32, 48, 64, 128, 256, 512, 1024};

uint64_t now_ns()
{
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return uint64_t(t.tv_sec) * 1000000000u + uint64_t(t.tv_nsec);
}

inline uint64_t xorshift64(uint64_t &s)
{
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

uint64_t rss_bytes()
{
    FILE *f = std::fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    uint64_t kb = 0, v;
    while (std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "RssAnon: %" SCNu64, &v) == 1 || std::sscanf(line, "RssShmem: %" SCNu64, &v) == 1) kb += v;
    std::fclose(f);
    return kb * 1024u;
}

template <class T> T *map(size_t n)
{
    void *p = mmap(nullptr, n * sizeof(T), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) {
        std::perror("mmap");
        std::exit(2);
    }
    return static_cast<T *>(p);
}

uint64_t w1(bip::managed_shared_memory &seg, uint64_t pairs, bool &ok)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < pairs; i++) {
        size_t n = W1_SIZES[i & 7];
        volatile unsigned char *p = static_cast<unsigned char *>(seg.allocate(n, std::nothrow));
        if (!p) {
            ok = false;
            return sum;
        }
        p[n - 1] = (unsigned char)i;
        sum += p[n - 1];
        seg.deallocate((void *)p);
    }
    return sum;
}

} // namespace

int main(int argc, char **argv)
{
    const char *wl = nullptr;
    double scale = 1;
    unsigned settle_ms = 6000;
    for (int i = 1; i < argc; i++) {
        if (!std::strncmp(argv[i], "--workload=", 11)) wl = argv[i] + 11;
        else if (!std::strcmp(argv[i], "--scale") && i + 1 < argc) scale = std::strtod(argv[++i], nullptr);
        else if (!std::strcmp(argv[i], "--settle-ms") && i + 1 < argc) settle_ms = unsigned(std::strtoul(argv[++i], nullptr, 10));
        else if (!std::strcmp(argv[i], "--socket") && i + 1 < argc) i++; // accepted, unused (bench-alloc's options)
        else if (!std::strncmp(argv[i], "--alloc=", 8)) {
        } else {
            std::fprintf(stderr, "usage: bench-alloc-boost --workload=W1|W2 [--scale F] [--settle-ms MS]\n");
            return 2;
        }
    }
    if (!wl || scale <= 0) return 2;
    std::string name = "goshm-bench-alloc-boost-" + std::to_string(getpid());
    bip::shared_memory_object::remove(name.c_str());
    struct remover {
        const std::string &n;
        ~remover() { bip::shared_memory_object::remove(n.c_str()); }
    } rm{name};
    int rc = 0;
    try {
        bip::managed_shared_memory seg(bip::create_only, name.c_str(), size_t(3) << 30);
        std::printf("# alloc=boost: managed_shared_memory, 3 GiB segment\n");
        if (!std::strcmp(wl, "W1")) {
            uint64_t pairs = uint64_t(20000000 * scale);
            bool ok = true;
            w1(seg, pairs / 10, ok);
            uint64_t t0 = now_ns();
            uint64_t sum = w1(seg, pairs, ok);
            uint64_t t1 = now_ns(), expect = 0;
            for (uint64_t i = 0; i < pairs; i++) expect += (unsigned char)i;
            bool good = ok && sum == expect;
            std::printf("run workload=W1 alloc=boost pairs=%" PRIu64 " ns=%.2f checksum=%" PRIu64 " check=%s\n", pairs,
                        double(t1 - t0) / double(pairs), sum, good ? "ok" : "FAIL");
            rc = !good;
        } else if (!std::strcmp(wl, "W2")) {
            uint32_t nobj = uint32_t(1000000 * scale);
            if (nobj < 1000) nobj = 1000;
            uint32_t *size = map<uint32_t>(nobj), *order = map<uint32_t>(nobj);
            unsigned char **ptr = map<unsigned char *>(nobj);
            uint64_t rng = 0x2545f4914f6cdd1dull, requested = 0;
            for (uint32_t i = 0; i < nobj; i++) {
                size[i] = 8 + uint32_t(xorshift64(rng) % 2041u);
                requested += size[i];
                order[i] = i;
            }
            for (uint32_t i = nobj - 1; i > 0; i--) {
                uint32_t j = uint32_t(xorshift64(rng) % (i + 1u));
                std::swap(order[i], order[j]);
            }
            uint64_t base = rss_bytes(), peak = 0, a = 0, f = 0, errors = 0;
            bool ok = true;
            const int rounds = 5;
            for (int r = -1; r < rounds; r++) { // r = -1: the untimed warm-up round
                uint64_t t0 = now_ns();
                for (uint32_t i = 0; i < nobj; i++) {
                    unsigned char *p = static_cast<unsigned char *>(seg.allocate(size[i], std::nothrow));
                    if (!p) ok = false;
                    else p[0] = (unsigned char)i;
                    ptr[i] = p;
                }
                uint64_t t1 = now_ns(), rs = rss_bytes();
                if (rs > base && rs - base > peak) peak = rs - base;
                uint64_t t2 = now_ns();
                for (uint32_t j = 0; j < nobj; j++) {
                    uint32_t i = order[j];
                    if (!ptr[i]) continue;
                    if (ptr[i][0] != (unsigned char)i) errors++;
                    seg.deallocate(ptr[i]);
                }
                uint64_t t3 = now_ns();
                if (r >= 0) {
                    a += t1 - t0;
                    f += t3 - t2;
                }
            }
            uint64_t r0 = rss_bytes(), cur = r0, t0 = now_ns(), last_drop = t0;
            while (settle_ms && now_ns() - t0 < uint64_t(settle_ms) * 1000000u && now_ns() - last_drop < 1500000000u) {
                usleep(100000);
                uint64_t r = rss_bytes();
                if (r + 65536 < cur) last_drop = now_ns();
                if (r < cur) cur = r;
            }
            uint64_t kept = r0 > base ? r0 - base : 0, kept_s = cur > base ? cur - base : 0;
            bool good = ok && errors == 0;
            std::printf("run workload=W2 alloc=boost ns=%.1f requested_mib=%.1f peak_mib=%.1f peak_rss_ratio=%.3f "
                        "kept_pct=%.1f kept_settled_pct=%.1f errors=%" PRIu64 " check=%s\n",
                        double(a + f) / (double(nobj) * rounds), requested / 1048576.0, peak / 1048576.0,
                        double(peak) / double(requested), peak ? 100.0 * kept / peak : 0, peak ? 100.0 * kept_s / peak : 0,
                        errors, good ? "ok" : "FAIL");
            rc = !good;
        } else {
            std::fprintf(stderr, "bench-alloc-boost: workload %s: only W1 and W2\n", wl);
            return 2;
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "bench-alloc-boost: %s\n", e.what());
        return 2;
    }
    return rc;
}
