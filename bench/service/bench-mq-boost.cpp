/* SPDX-License-Identifier: MIT */
// bench-mq-boost.cpp: W5 and W6 on Boost.Interprocess, the peer of
// bench-chan (goshm's channels): buffers from a managed_shared_memory
// segment, their handles through boost::interprocess::message_queue.
// Overview: shm/overview.h; workloads: bench/README.md.
//
//   bench-mq-boost [--workload=W5|W6] [--subscribers N] [--messages N]
//                  [--warmup N] [--seed S] [--scale F] [--spin-us US]
//                  [--capacity C] [--segment BYTES]
//
// The publisher creates the segment "goshm-bench-mq-PID" (rbtree_best_fit,
// one process-shared mutex per allocate and deallocate) and one queue per
// subscriber, "goshm-bench-mq-PID.qI" (C = 256 messages of one handle each;
// a process-shared mutex and condition variables inside), then spawns N
// copies of itself (--consumer --index I), which open both by name (the
// publisher's pid from getppid()). Per message: allocate 16 + size bytes
// (size 64..4096, bench-msg.h: the seed and sequence of bench-ipc), set the
// buffer's reference count to N in its 16-byte header, stamp the payload
// (sequence number, size, tail tag), and send its handle to every queue.
// Each subscriber receives a handle, checks the stamp, and drops its
// reference; the one that drops the last deallocates the buffer (with one
// subscriber: deallocate, no atomic). The fan-out costs Boost one allocation
// and N sends, as goshm's costs one goshm_buf_alloc, N-1 retains and N sends.
//
// Waiting (bench-msg.h, --spin-us): -1 polls try_receive / try_send for ever
// (PAUSE, sched_yield every 256 polls); US >= 0 polls for US microseconds,
// then blocks in timed_receive / timed_send (100 ms at a time, checking that
// the peers are alive).
//
// W5: 1 subscriber, 2M messages after 200k warm-up; W6: 4 subscribers, 1M
// messages after 100k warm-up; --scale shrinks both. Subscribers report the
// time of their last release and their counts through a pipe; timing runs
// from the first timed allocation to the last subscriber's last release.
// Output: one "run workload=... alloc=boost-mq ..." line as
// bench-w3-iceoryx's. Exit status 0 when every check passed, 1 on a check
// failure, 2 on a usage or setup error. Never part of the ctest suite.
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>

#include "bench-msg.h"

extern char **environ;

namespace bip = boost::interprocess;

namespace {

constexpr unsigned MAX_SUBS = 16;
constexpr size_t HDR = 16; // the reference count, then the payload 16-byte aligned

using handle_t = bip::managed_shared_memory::handle_t;

struct opts {
    std::string workload = "W5";
    unsigned subs = 0, index = 0;
    uint64_t messages = 0, warmup = 0, seed = 42, segment = 256u << 20;
    uint32_t capacity = 256;
    double scale = 1;
    int64_t spin_us = -1;
    int report_fd = -1, ready_fd = -1;
    bool consumer = false, have_msgs = false, have_warm = false;
};

[[noreturn]] void usage()
{
    std::fprintf(stderr, "usage: bench-mq-boost [--workload=W5|W6] [--subscribers N] [--messages N] [--warmup N] [--seed S]\n"
                         "       [--scale F] [--spin-us US] [--capacity C] [--segment BYTES]\n");
    std::exit(2);
}

std::string seg_name(pid_t pub) { return "goshm-bench-mq-" + std::to_string(pub); }
std::string queue_name(pid_t pub, unsigned i) { return seg_name(pub) + ".q" + std::to_string(i); }

std::atomic<uint32_t> &refs(void *buf) { return *static_cast<std::atomic<uint32_t> *>(buf); }

boost::posix_time::ptime in_100ms()
{
    return boost::posix_time::microsec_clock::universal_time() + boost::posix_time::milliseconds(100);
}

int consumer_main(const opts &o)
{
    pid_t pub = getppid();
    bip::managed_shared_memory seg(bip::open_only, seg_name(pub).c_str());
    bip::message_queue q(bip::open_only, queue_name(pub, o.index).c_str());
    char one = 1;
    if (write(o.ready_fd, &one, 1) != 1) return 2;
    const bool shared = o.subs > 1;
    bmsg_report_t r = {0, 0, 0, o.index};
    for (uint64_t seq = 0; seq < o.messages; seq++) {
        handle_t h;
        bip::message_queue::size_type got;
        unsigned prio;
        bmsg_spin_t s;
        bmsg_spin_init(&s, o.spin_us);
        bool have = false;
        while (!(have = q.try_receive(&h, sizeof h, got, prio)) && bmsg_spin_more(&s))
            if (s.n % 65536 == 0 && getppid() != pub) return 2; // the publisher is gone
        while (!have) {
            have = q.timed_receive(&h, sizeof h, got, prio, in_100ms());
            if (!have && getppid() != pub) return 2; // the publisher is gone
        }
        char *buf = static_cast<char *>(seg.get_address_from_handle(h));
        if (got == sizeof h && bmsg_check(buf + HDR, seq)) r.checked++;
        else r.errors++;
        if (!shared || refs(buf).fetch_sub(1, std::memory_order_acq_rel) == 1) seg.deallocate(buf);
    }
    r.end_ns = bmsg_now_ns();
    if (write(o.report_fd, &r, sizeof r) != (ssize_t)sizeof r) return 1;
    return 0;
}

bool alive(const std::vector<pid_t> &pids)
{
    for (pid_t p : pids) {
        int status;
        if (waitpid(p, &status, WNOHANG) == p) return false;
    }
    return true;
}

} // namespace

int main(int argc, char **argv)
{
    opts o;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        auto val = [&]() -> const char * {
            if (i + 1 >= argc) usage();
            return argv[++i];
        };
        if (!std::strncmp(a, "--workload=", 11)) o.workload = a + 11;
        else if (!std::strcmp(a, "--subscribers")) o.subs = unsigned(std::strtoul(val(), nullptr, 10));
        else if (!std::strcmp(a, "--messages")) o.messages = std::strtoull(val(), nullptr, 10), o.have_msgs = true;
        else if (!std::strcmp(a, "--warmup")) o.warmup = std::strtoull(val(), nullptr, 10), o.have_warm = true;
        else if (!std::strcmp(a, "--seed")) o.seed = std::strtoull(val(), nullptr, 10);
        else if (!std::strcmp(a, "--scale")) o.scale = std::strtod(val(), nullptr);
        else if (!std::strcmp(a, "--spin-us")) o.spin_us = std::strtoll(val(), nullptr, 10);
        else if (!std::strcmp(a, "--capacity")) o.capacity = uint32_t(std::strtoul(val(), nullptr, 10));
        else if (!std::strcmp(a, "--segment")) o.segment = std::strtoull(val(), nullptr, 10);
        else if (!std::strcmp(a, "--consumer")) o.consumer = true;
        else if (!std::strcmp(a, "--report")) o.report_fd = std::atoi(val());
        else if (!std::strcmp(a, "--ready")) o.ready_fd = std::atoi(val());
        else if (!std::strcmp(a, "--index")) o.index = unsigned(std::strtoul(val(), nullptr, 10));
        else usage();
    }
    const bool w6 = o.workload == "W6";
    if (!w6 && o.workload != "W5") usage();
    if (!o.subs) o.subs = w6 ? 4 : 1;
    if (o.subs > MAX_SUBS || !(o.scale > 0) || o.capacity < 1) usage();
    if (o.consumer) {
        try {
            return consumer_main(o);
        } catch (const std::exception &e) {
            std::fprintf(stderr, "bench-mq-boost consumer %u: %s\n", o.index, e.what());
            return 2;
        }
    }
    if (!o.have_msgs) o.messages = w6 ? 1000000 : 2000000;
    if (!o.have_warm) o.warmup = w6 ? 100000 : 200000;
    o.messages = uint64_t(double(o.messages) * o.scale);
    o.warmup = uint64_t(double(o.warmup) * o.scale);
    if (!o.messages) o.messages = 1;
    const uint64_t total = o.messages + o.warmup;

    pid_t me = getpid();
    std::string sname = seg_name(me);
    std::vector<std::string> qnames;
    for (unsigned i = 0; i < o.subs; i++) qnames.push_back(queue_name(me, i));
    struct remover {
        const std::string &s;
        const std::vector<std::string> &q;
        ~remover()
        {
            bip::shared_memory_object::remove(s.c_str());
            for (auto &n : q) bip::message_queue::remove(n.c_str());
        }
    } rm{sname, qnames};
    uint64_t end = 0, checked = 0, errors = 0, t0 = 0;
    unsigned reports = 0;
    bool good = true;
    try {
        bip::managed_shared_memory seg(bip::create_only, sname.c_str(), o.segment);
        std::vector<std::unique_ptr<bip::message_queue>> q;
        for (auto &n : qnames) q.emplace_back(new bip::message_queue(bip::create_only, n.c_str(), o.capacity, sizeof(handle_t)));

        int rep[2], rdy[2];
        if (pipe(rep) || pipe(rdy)) return 2;
        std::string s_msgs = std::to_string(total), s_spin = std::to_string(o.spin_us), s_subs = std::to_string(o.subs),
                    s_rep = std::to_string(rep[1]), s_rdy = std::to_string(rdy[1]), s_wl = "--workload=" + o.workload;
        char self[4096];
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len <= 0) std::snprintf(self, sizeof self, "/proc/self/exe");
        else self[len] = '\0';
        std::vector<pid_t> pids;
        for (unsigned i = 0; i < o.subs; i++) {
            std::string s_idx = std::to_string(i);
            std::vector<std::string> args = {"bench-mq-boost", s_wl, "--consumer", "--index", s_idx, "--subscribers", s_subs,
                                             "--messages", s_msgs, "--spin-us", s_spin, "--report", s_rep, "--ready", s_rdy};
            std::vector<char *> av;
            for (auto &x : args) av.push_back(&x[0]);
            av.push_back(nullptr);
            pid_t pid;
            if (posix_spawn(&pid, self, nullptr, nullptr, av.data(), environ)) {
                std::perror("posix_spawn");
                return 2;
            }
            pids.push_back(pid);
        }
        close(rep[1]);
        close(rdy[1]);
        for (unsigned i = 0; i < o.subs; i++) {
            char c;
            if (read(rdy[0], &c, 1) != 1) {
                std::fprintf(stderr, "bench-mq-boost: a subscriber exited before opening its queue\n");
                return 2;
            }
        }
        const bool shared = o.subs > 1;
        uint64_t rng = o.seed;
        t0 = bmsg_now_ns();
        for (uint64_t seq = 0; seq < total; seq++) {
            if (seq == o.warmup) t0 = bmsg_now_ns();
            uint32_t size = bmsg_size(&rng);
            char *buf = static_cast<char *>(seg.allocate(HDR + size, std::nothrow));
            if (!buf) {
                std::fprintf(stderr, "bench-mq-boost: allocate failed\n");
                good = false;
                break;
            }
            if (shared) new (buf) std::atomic<uint32_t>(o.subs); // published by the queue's mutex
            bmsg_write(buf + HDR, seq, size);
            handle_t h = seg.get_handle_from_address(buf);
            for (unsigned i = 0; i < o.subs; i++) {
                bmsg_spin_t s;
                bmsg_spin_init(&s, o.spin_us);
                bool sent = false;
                while (!(sent = q[i]->try_send(&h, sizeof h, 0)) && bmsg_spin_more(&s))
                    if (s.n % 65536 == 0 && !alive(pids)) {
                        std::fprintf(stderr, "bench-mq-boost: a subscriber died\n");
                        return 1;
                    }
                while (!sent) {
                    sent = q[i]->timed_send(&h, sizeof h, 0, in_100ms());
                    if (!sent && !alive(pids)) {
                        std::fprintf(stderr, "bench-mq-boost: a subscriber died\n");
                        return 1;
                    }
                }
            }
        }
        bmsg_report_t r;
        while (reports < o.subs && read(rep[0], &r, sizeof r) == (ssize_t)sizeof r) {
            reports++;
            if (r.end_ns > end) end = r.end_ns;
            checked += r.checked;
            errors += r.errors;
        }
        for (pid_t p : pids) {
            int status = 0;
            if (waitpid(p, &status, 0) != p || !WIFEXITED(status) || WEXITSTATUS(status) != 0) good = false;
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "bench-mq-boost: %s\n", e.what());
        return 2;
    }
    good = good && reports == o.subs && errors == 0 && checked == o.subs * total;
    double ns = good ? double(end - t0) / double(o.messages) : 0;
    std::printf("run workload=%s alloc=boost-mq subscribers=%u messages=%" PRIu64 " warmup=%" PRIu64 " scale=%g spin_us=%" PRId64
                " ns=%.1f msgs_per_s=%.0f deliveries_per_s=%.0f checked=%" PRIu64 " errors=%" PRIu64 " check=%s\n",
                o.workload.c_str(), o.subs, o.messages, o.warmup, o.scale, o.spin_us, ns, ns > 0 ? 1e9 / ns : 0,
                ns > 0 ? o.subs * 1e9 / ns : 0, checked, errors, good ? "ok" : "FAIL");
    return good ? 0 : 1;
}
