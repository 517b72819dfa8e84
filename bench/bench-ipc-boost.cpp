/* SPDX-License-Identifier: MIT */
// bench-ipc-boost.cpp: workload W3 on Boost.Interprocess, the peer of
// bench-ipc.c's W3 (see that file and bench/README.md).
//
//   bench-ipc-boost [--scale F] [--messages N] [--warmup N] [--batch K]
//                   [--ring N] [--seed S] [--runs N] [--segment BYTES]
//
// The producer creates a managed_shared_memory segment (rbtree_best_fit, one
// process-shared mutex taken on every allocate and deallocate), allocates the
// SPSC ring of handles in it, and spawns this binary again as the consumer
// with the ring's handle (get_handle_from_address) and the segment's name in
// argv. Each message: allocate a buffer of random size 64..4096 B (the same
// xorshift sequence and seed as bench-ipc), write the header (sequence
// number, size) and trailer tag, pass its handle through the ring; the
// consumer checks header and trailer, counts the good ones and deallocates.
// The ring code, batching (--batch K: publish tail/head every K messages),
// warm-up and timing are those of bench-ipc.c, line for line.
//
// Output: "run workload=W3 alloc=boost ..." lines as bench-ipc prints.
// Exit status 0 when every check passed, 1 on a check failure, 2 on a usage
// or setup error. Never part of the ctest suite.
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>
#include <algorithm>

#include <sched.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <boost/interprocess/managed_shared_memory.hpp>

extern char **environ;

namespace bip = boost::interprocess;

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

namespace {

constexpr uint64_t RING_MAGIC = UINT64_C(0x626f6f7374495043); // "boostIPC"
constexpr uint64_t TAG_MUL = UINT64_C(0x9e3779b97f4a7c15);
constexpr uint32_t MIN_SIZE = 64, MAX_SIZE = 4096;
constexpr unsigned SPINS_BEFORE_YIELD = 256;
typedef bip::managed_shared_memory::handle_t handle_t;

static_assert(std::atomic<uint64_t>::is_always_lock_free, "the ring needs lock-free 64-bit atomics");

struct alignas(64) ipc_ring {
    alignas(64) std::atomic<uint64_t> tail;
    alignas(64) std::atomic<uint64_t> head;
    alignas(64) std::atomic<uint32_t> state;
    std::atomic<uint64_t> checked;
    std::atomic<uint64_t> errors;
    alignas(64) uint64_t magic;
    uint64_t total;
    uint32_t nslots, batch;
    alignas(64) handle_t slot[1]; // nslots in fact
};

enum : uint32_t { ST_NONE = 0, ST_READY = 1, ST_DONE = 2, ST_FAILED = 3 };

uint64_t now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

inline uint64_t xorshift64(uint64_t &s)
{
    uint64_t x = s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return s = x;
}

inline uint32_t msg_size(uint64_t &rng) { return MIN_SIZE + uint32_t(xorshift64(rng) % (MAX_SIZE - MIN_SIZE + 1u)); }
inline uint64_t msg_tag(uint64_t seq, uint32_t size) { return (seq * TAG_MUL) ^ size; }

inline void spin_wait(unsigned &spins)
{
    if (++spins % SPINS_BEFORE_YIELD == 0) sched_yield();
    else cpu_relax();
}

[[noreturn]] void die(const char *what)
{
    std::fprintf(stderr, "bench-ipc-boost: %s: %s\n", what, std::strerror(errno));
    std::exit(2);
}

struct opts {
    double scale = 1.0;
    uint64_t messages = 0, warmup = 0, seed = 42, segment = 256u << 20;
    uint64_t ring_handle = 0;
    uint32_t batch = 1, ring = 256, runs = 1;
    bool consumer = false, have_msgs = false, have_warm = false;
    std::string name;
};

[[noreturn]] void usage()
{
    std::fprintf(stderr, "usage: bench-ipc-boost [--scale F] [--messages N (2000000)] [--warmup N (messages/10)]\n"
                         "       [--batch K (1)] [--ring SLOTS (256)] [--seed S (42)] [--runs N] [--segment BYTES]\n");
    std::exit(2);
}

const char *optval(int argc, char **argv, int &i, const char *name)
{
    size_t n = std::strlen(name);
    if (std::strncmp(argv[i], name, n) != 0) return nullptr;
    if (argv[i][n] == '=') return argv[i] + n + 1;
    if (argv[i][n] == '\0') {
        if (i + 1 >= argc) usage();
        return argv[++i];
    }
    return nullptr;
}

uint64_t parse_u64(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = std::strtoull(s, &end, 0);
    if (errno || *end || end == s) usage();
    return v;
}

opts parse(int argc, char **argv)
{
    opts o;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (std::strcmp(argv[i], "--consumer") == 0) o.consumer = true;
        else if ((v = optval(argc, argv, i, "--workload"))) {
            if (std::strcmp(v, "W3") != 0) usage();
        } else if ((v = optval(argc, argv, i, "--name"))) o.name = v;
        else if ((v = optval(argc, argv, i, "--scale"))) {
            char *end;
            o.scale = std::strtod(v, &end);
            if (*end || !(o.scale > 0)) usage();
        } else if ((v = optval(argc, argv, i, "--messages"))) o.messages = parse_u64(v), o.have_msgs = true;
        else if ((v = optval(argc, argv, i, "--warmup"))) o.warmup = parse_u64(v), o.have_warm = true;
        else if ((v = optval(argc, argv, i, "--seed"))) o.seed = parse_u64(v);
        else if ((v = optval(argc, argv, i, "--segment"))) o.segment = parse_u64(v);
        else if ((v = optval(argc, argv, i, "--ring-handle"))) o.ring_handle = parse_u64(v);
        else if ((v = optval(argc, argv, i, "--batch"))) o.batch = uint32_t(parse_u64(v));
        else if ((v = optval(argc, argv, i, "--ring"))) o.ring = uint32_t(parse_u64(v));
        else if ((v = optval(argc, argv, i, "--runs"))) o.runs = uint32_t(parse_u64(v));
        else usage();
    }
    if (!o.have_msgs) o.messages = uint64_t(2000000.0 * o.scale);
    if (!o.have_warm) o.warmup = o.messages / 10u;
    if (o.messages < 1) o.messages = 1;
    if (o.batch < 1 || o.ring < 2 || (o.ring & (o.ring - 1u)) || o.runs < 1) usage();
    return o;
}

// ---- consumer -------------------------------------------------------------------

int consumer_main(const opts &o)
{
    bip::managed_shared_memory seg(bip::open_only, o.name.c_str());
    auto *r = static_cast<ipc_ring *>(seg.get_address_from_handle(handle_t(o.ring_handle)));
    if (r->magic != RING_MAGIC) {
        std::fprintf(stderr, "bench-ipc-boost consumer: no ring at handle %" PRIu64 "\n", o.ring_handle);
        r->state.store(ST_FAILED, std::memory_order_release);
        return 2;
    }
    const uint64_t total = r->total, mask = r->nslots - 1u, batch = r->batch;
    r->state.store(ST_READY, std::memory_order_release);

    uint64_t head = 0, tail_cache = 0, pub = 0, checked = 0, errors = 0;
    while (head < total) {
        if (head == tail_cache) {
            if (pub != head) r->head.store(pub = head, std::memory_order_release);
            unsigned spins = 0;
            while ((tail_cache = r->tail.load(std::memory_order_acquire)) == head) spin_wait(spins);
        }
        handle_t hd = r->slot[head & mask];
        char *p = static_cast<char *>(seg.get_address_from_handle(hd));
        uint64_t seq, tag;
        uint32_t size;
        std::memcpy(&seq, p, 8);
        std::memcpy(&size, p + 8, 4);
        bool ok = seq == head && size >= MIN_SIZE && size <= MAX_SIZE;
        if (ok) {
            std::memcpy(&tag, p + size - 8, 8);
            ok = tag == msg_tag(seq, size);
        }
        if (ok) checked++;
        else errors++;
        seg.deallocate(p);
        head++;
        if (head - pub >= batch) r->head.store(pub = head, std::memory_order_release);
    }
    r->checked.store(checked, std::memory_order_relaxed);
    r->errors.store(errors, std::memory_order_relaxed);
    r->state.store(ST_DONE, std::memory_order_release);
    r->head.store(head, std::memory_order_release);
    return errors ? 1 : 0;
}

// ---- producer -------------------------------------------------------------------

struct w3_result {
    double ns_per_msg = 0;
    uint64_t checked = 0, errors = 0;
    bool ok = false;
};

void check_alive(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
        std::fprintf(stderr, "bench-ipc-boost: the consumer died (status 0x%x)\n", unsigned(status));
        std::exit(1);
    }
}

bool wait_state(ipc_ring *r, uint32_t from, pid_t pid, int *status)
{
    unsigned spins = 0;
    while (r->state.load(std::memory_order_acquire) == from) {
        if (spins++ % 1024u == 0 && waitpid(pid, status, WNOHANG) == pid)
            return r->state.load(std::memory_order_acquire) != from;
        usleep(100);
    }
    return true;
}

w3_result w3_run(bip::managed_shared_memory &seg, const std::string &name, const opts &o)
{
    w3_result res;
    const uint64_t total = o.warmup + o.messages, mask = o.ring - 1u;
    size_t ring_bytes = sizeof(ipc_ring) + size_t(o.ring) * sizeof(handle_t);
    void *mem = seg.allocate_aligned(ring_bytes, 64, std::nothrow);
    if (!mem) die("allocate(ring)");
    std::memset(mem, 0, ring_bytes);
    auto *r = new (mem) ipc_ring; // trivially constructible members, zeroed above
    r->total = total;
    r->nslots = o.ring;
    r->batch = o.batch;
    r->magic = RING_MAGIC;
    std::atomic_thread_fence(std::memory_order_seq_cst);

    std::string hbuf = std::to_string(uint64_t(seg.get_handle_from_address(r)));
    std::vector<std::string> args = {"bench-ipc-boost", "--consumer", "--name", name, "--ring-handle", hbuf};
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // This binary by its real path, so that the consumer's name is ours.
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) std::snprintf(self, sizeof self, "/proc/self/exe");
    else self[len] = '\0';
    pid_t pid;
    int rc = posix_spawn(&pid, self, nullptr, nullptr, argv.data(), environ);
    if (rc) {
        errno = rc;
        die("posix_spawn consumer");
    }
    int status = 0;
    if (!wait_state(r, ST_NONE, pid, &status) || r->state.load() != ST_READY) {
        std::fprintf(stderr, "bench-ipc-boost: the consumer did not start\n");
        std::exit(2);
    }

    uint64_t rng = o.seed ? o.seed : 42;
    uint64_t tail = 0, head_cache = 0, pub = 0, t0 = 0;
    for (uint64_t seq = 0; seq < total; seq++) {
        if (seq == o.warmup) {
            if (pub != tail) r->tail.store(pub = tail, std::memory_order_release);
            unsigned spins = 0;
            while ((head_cache = r->head.load(std::memory_order_acquire)) != tail) {
                spin_wait(spins);
                if (spins % 65536u == 0) check_alive(pid);
            }
            t0 = now_ns();
        }
        uint32_t size = msg_size(rng);
        char *p = static_cast<char *>(seg.allocate(size, std::nothrow));
        if (UNLIKELY(!p)) die("allocate(message)");
        uint64_t tag = msg_tag(seq, size);
        std::memcpy(p, &seq, 8);
        std::memcpy(p + 8, &size, 4);
        std::memcpy(p + size - 8, &tag, 8);
        if (UNLIKELY(tail - head_cache >= o.ring)) {
            if (pub != tail) r->tail.store(pub = tail, std::memory_order_release);
            unsigned spins = 0;
            while (tail - (head_cache = r->head.load(std::memory_order_acquire)) >= o.ring) {
                spin_wait(spins);
                if (spins % 65536u == 0) check_alive(pid);
            }
        }
        r->slot[tail & mask] = seg.get_handle_from_address(p);
        tail++;
        if (tail - pub >= o.batch) r->tail.store(pub = tail, std::memory_order_release);
    }
    if (pub != tail) r->tail.store(pub = tail, std::memory_order_release);
    unsigned spins = 0;
    while (r->head.load(std::memory_order_acquire) != total) {
        spin_wait(spins);
        if (spins % 65536u == 0) check_alive(pid);
    }
    uint64_t t1 = now_ns();
    if (!wait_state(r, ST_READY, pid, &status)) {
        std::fprintf(stderr, "bench-ipc-boost: the consumer died before reporting\n");
        std::exit(1);
    }
    res.checked = r->checked.load();
    res.errors = r->errors.load();
    if (waitpid(pid, &status, 0) != pid) die("waitpid");
    res.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && res.errors == 0 && res.checked == total;
    res.ns_per_msg = double(t1 - t0) / double(o.messages);
    seg.deallocate(r);
    return res;
}

} // namespace

int main(int argc, char **argv)
{
    opts o = parse(argc, argv);
    try {
        if (o.consumer) return consumer_main(o);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "bench-ipc-boost consumer: %s\n", e.what());
        return 2;
    }
    setvbuf(stdout, nullptr, _IOLBF, 0);
    std::string name = "goshm-bench-ipc-boost-" + std::to_string(getpid());
    bip::shared_memory_object::remove(name.c_str());
    int rc = 0;
    try {
        // Removes the segment however we leave this scope.
        struct remover {
            const std::string &n;
            ~remover() { bip::shared_memory_object::remove(n.c_str()); }
        } rm{name};
        bip::managed_shared_memory seg(bip::create_only, name.c_str(), o.segment);
        std::vector<double> ns;
        for (uint32_t run = 0; run < o.runs; run++) {
            w3_result res = w3_run(seg, name, o);
            ns.push_back(res.ns_per_msg);
            std::printf("run workload=W3 alloc=boost run=%u batch=%u ring=%u messages=%" PRIu64 " warmup=%" PRIu64
                        " ns_per_msg=%.1f msgs_per_s=%.0f checked=%" PRIu64 " errors=%" PRIu64 " ok=%d\n",
                        run, o.batch, o.ring, o.messages, o.warmup, res.ns_per_msg, 1e9 / res.ns_per_msg,
                        res.checked, res.errors, int(res.ok));
            if (!res.ok) rc = 1;
        }
        if (o.runs > 1) {
            std::sort(ns.begin(), ns.end());
            std::printf("summary workload=W3 alloc=boost batch=%u runs=%u median_ns_per_msg=%.1f min=%.1f max=%.1f\n",
                        o.batch, o.runs, ns[ns.size() / 2], ns.front(), ns.back());
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "bench-ipc-boost: %s\n", e.what());
        return 2;
    }
    return rc;
}
