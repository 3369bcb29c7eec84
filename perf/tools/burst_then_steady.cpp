// Burst then steady: how long each allocator keeps the memory of a burst that
// is over, while the program goes on with a small working set.
//
//   burst_then_steady [--seconds N] [--burst-mib N] [--peers a,b,c] [--out DIR]
//
// Workload, the same for every peer, one thread, blocks of 1 MiB asked of a
// std::pmr::memory_resource (default alignment):
//   burst   --burst-mib blocks (default 1024: 1 GiB) allocated and all live at
//           once, one byte written in every 4 KiB page of each (so every page
//           is resident), then all freed. The burst leaves that much memory
//           idle in whatever sits between the program and the kernel.
//   steady  then, for --seconds (default 60): every millisecond (an absolute
//           schedule; an iteration that overruns is not caught up), 8 blocks of
//           1 MiB allocated, every page written, and freed: a working set of
//           8 MiB, drawn on 1000 times a second.
// Sampled every 100 ms, in the workload's own thread between two steps (the
// burst's samples between two blocks): RSS (/proc/self/statm, resident pages,
// so the program's code and libraries count too: a few MiB), and for the
// zeropool peers stats().idle_bytes and stats().upstream_allocations. Sampling
// allocates nothing.
//
// Peers, each in a process of its own (this program re-executes itself as
// `burst_then_steady --child PEER ...` with the peer's environment; the
// allocator variables of the caller's environment, LD_PRELOAD, MALLOC_CONF,
// GLIBC_TUNABLES, TCMALLOC_* and MIMALLOC_*, are not passed on):
//   zeropool           a sharded_buffer_resource, default pool_config (idle
//                      release after 5000 ms, run on pool activity, no thread),
//                      over std::pmr::new_delete_resource() (glibc malloc);
//   zeropool_releaser  the same plus a zeropool::idle_releaser (a background
//                      thread calling release_idle() periodically);
//   glibc              std::pmr::new_delete_resource(), glibc malloc as is;
//   jemalloc           the same under LD_PRELOAD=libjemalloc.so.2, default
//                      decay (no MALLOC_CONF: dirty pages decay over 10 s);
//   tcmalloc           the same under LD_PRELOAD=libtcmalloc_minimal.so.4 (or
//                      libtcmalloc.so.4), default release rate;
//   mimalloc           the same under LD_PRELOAD=libmimalloc.so.2, defaults;
//   std_pool           std::pmr::synchronized_pool_resource over
//                      new_delete_resource(), largest_required_pool_block
//                      256 MiB (as the "large blocks" std peers of
//                      perf/bench/peers.hpp) so that 1 MiB blocks are pooled:
//                      it returns nothing before release() or its destruction.
// A malloc peer whose library is not found is skipped with a message on
// stderr (ZEROPOOL_JEMALLOC, ZEROPOOL_TCMALLOC, ZEROPOOL_MIMALLOC may name the
// library); its child checks in /proc/self/maps that the library is loaded.
// Under a sanitizer, run only the peers that need no LD_PRELOAD.
//
// Output: DIR/<peer>.csv for each peer run (default DIR: the current
// directory), one row per sample, columns
//   peer                  the peer's name, as above;
//   t_s                   seconds since the burst's last block was freed:
//                         negative during the burst, 0 right after it;
//   rss_bytes             resident set of the whole process;
//   idle_bytes            zeropool only (else empty): idle bytes the pool
//                         holds, every tier (blocks counted at their upstream
//                         size);
//   upstream_allocations  zeropool only (else empty): upstream allocate calls
//                         since the pool was built (the burst's included).
// perf/report/burst_report.py turns the files into a chart and a table.
//
// Summary on stdout, one row per peer, computed from the samples:
//   burst MiB       the highest RSS sampled (at the end of the burst);
//   steady MiB      the median RSS over the last 10 s of the steady phase (the
//                   last half when it is shorter than 20 s): the working set's
//                   RSS once the allocator has done what it does;
//   settle s        seconds after the burst at which RSS is first within 10%
//                   of that steady level and stays there until the end (the
//                   first sample, at 0, when it never leaves it). A peer that
//                   keeps the burst's memory settles at once, at the burst's
//                   level: read the steady column first;
//   ups steady      zeropool only: upstream allocations during the steady
//                   phase after its first second (0 means the pool kept the
//                   working set's blocks while it released the others);
//   idle end MiB,   zeropool only: idle bytes at the end, and the bytes
//   by demand MiB   returned upstream by idle release (stats());
//   steps/s         steady iterations done per second (1000 asked; fewer when
//                   an iteration took longer than 1 ms, e.g. faulting in fresh
//                   pages);
//   longest step    the slowest steady iteration (8 allocations, their pages
//                   written, 8 deallocations), wall-clock ms, the workload
//                   thread's CPU ms in it in brackets, and when it began:
//                   work that a pool or malloc does inline, such as releasing
//                   idle memory on the caller's thread, shows here (CPU close
//                   to the wall time: the thread did the work itself; CPU far
//                   below it: the thread waited, or was preempted).
// The numbers are one run each, on a shared VM: RSS is exact, times to 0.1 s
// (the sampling period).
#include <zeropool/idle_releaser.hpp>
#include <zeropool/sharded_buffer_resource.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <memory_resource>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

constexpr std::size_t mib = std::size_t{1} << 20;
constexpr std::size_t block_bytes = mib;
constexpr std::size_t page_stride = 4096;
constexpr std::size_t steady_blocks = 8;
constexpr long step_period_ns = 1000000;  // one steady iteration per millisecond
constexpr double sample_period_s = 0.1;
constexpr double settle_tolerance = 0.10; // "within 10% of the steady level"
constexpr double steady_window_s = 10.0;  // the steady level: median RSS of the last 10 s
constexpr double ups_skip_s = 1.0;        // upstream allocations counted after the first second

const char* const all_peers[] = {"zeropool", "zeropool_releaser", "glibc", "jemalloc",
                                 "tcmalloc", "mimalloc", "std_pool"};

// ---- command line ----------------------------------------------------------------

struct options {
    double seconds = 60;
    std::size_t burst_mib = 1024;
    std::vector<std::string> peers;
    std::string out = ".";
    std::string child; // non-empty: run this peer in this process
};

void print_usage(std::FILE* out, const char* argv0) {
    std::fprintf(out,
                 "usage: %s [--seconds N] [--burst-mib N] [--peers a,b,c] [--out DIR]\n"
                 "  --seconds N    length of the steady phase, seconds (default 60)\n"
                 "  --burst-mib N  blocks of 1 MiB live at once in the burst (default 1024)\n"
                 "  --peers LIST   comma-separated, from: zeropool, zeropool_releaser, glibc,\n"
                 "                 jemalloc, tcmalloc, mimalloc, std_pool (default: all)\n"
                 "  --out DIR      where to write <peer>.csv (default: the current directory)\n",
                 argv0);
}

bool known_peer(const std::string& name) {
    return std::any_of(std::begin(all_peers), std::end(all_peers),
                       [&](const char* p) { return name == p; });
}

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= s.size()) {
        const std::size_t comma = std::min(s.find(',', start), s.size());
        if (comma > start) out.push_back(s.substr(start, comma - start));
        start = comma + 1;
    }
    return out;
}

/// Returns the options, or exits with status 2 (bad usage) or 0 (--help).
options parse_args(int argc, char** argv) {
    options opt;
    const auto bad = [&](const char* message, const char* arg) {
        std::fprintf(stderr, "burst_then_steady: %s: %s\n", message, arg);
        print_usage(stderr, argv[0]);
        std::exit(2);
    };
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
        const char* shown = value != nullptr ? value : "(none)";
        if (arg == "--help" || arg == "-h") {
            print_usage(stdout, argv[0]);
            std::exit(0);
        } else if (arg == "--seconds") {
            char* end = nullptr;
            errno = 0;
            const double v = value != nullptr ? std::strtod(value, &end) : 0.0;
            if (value == nullptr || errno != 0 || *end != '\0' || !(v > 0) || v > 86400)
                bad("--seconds needs a number of seconds in (0, 86400]", shown);
            opt.seconds = v;
            ++i;
        } else if (arg == "--burst-mib") {
            char* end = nullptr;
            errno = 0;
            const unsigned long long v = value != nullptr ? std::strtoull(value, &end, 10) : 0;
            if (value == nullptr || *value < '0' || *value > '9' || errno != 0 || *end != '\0' || v == 0 ||
                v > (std::uint64_t{1} << 20))
                bad("--burst-mib needs a whole number of MiB in [1, 1048576]", shown);
            opt.burst_mib = static_cast<std::size_t>(v);
            ++i;
        } else if (arg == "--peers") {
            if (value == nullptr) bad("--peers needs a list", shown);
            opt.peers = split_list(value);
            if (opt.peers.empty()) bad("--peers needs a list", shown);
            for (const std::string& p : opt.peers)
                if (!known_peer(p)) bad("unknown peer", p.c_str());
            ++i;
        } else if (arg == "--out") {
            if (value == nullptr || *value == '\0') bad("--out needs a directory", shown);
            opt.out = value;
            ++i;
        } else if (arg == "--child") { // internal: one peer, in this process
            if (value == nullptr || !known_peer(value)) bad("--child needs a peer", shown);
            opt.child = value;
            ++i;
        } else {
            bad("unknown argument", argv[i]);
        }
    }
    if (opt.peers.empty()) opt.peers.assign(std::begin(all_peers), std::end(all_peers));
    return opt;
}

// ---- measuring -------------------------------------------------------------------

double now_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// CPU time of the calling thread, seconds.
double thread_cpu_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// Resident bytes of this process (/proc/self/statm, second field), 0 if
/// unreadable. Allocates nothing.
std::size_t rss_bytes() {
    static const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    char text[256];
    const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    const ssize_t n = ::read(fd, text, sizeof text - 1);
    ::close(fd);
    if (n <= 0) return 0;
    text[n] = '\0';
    char* end = nullptr;
    std::strtoull(text, &end, 10); // total program size
    const unsigned long long resident = std::strtoull(end, nullptr, 10);
    return static_cast<std::size_t>(resident) * page;
}

/// Writes one byte in every 4 KiB page of [p, p + n), the first and the last
/// byte included, as I/O into the block would.
void touch_pages(void* p, std::size_t n) {
    auto* bytes = static_cast<unsigned char*>(p);
    for (std::size_t i = 0; i < n; i += page_stride) bytes[i] = 1;
    if (n != 0) bytes[n - 1] = 1;
    // The stores must happen: the block escapes, and memory counts as written.
#if defined(__GNUC__) || defined(__clang__)
    asm volatile("" : : "r"(bytes) : "memory");
#endif
}

struct sample {
    double t = 0; // seconds since the burst was freed
    std::size_t rss = 0;
    std::size_t idle = 0;          // zeropool peers only
    std::uint64_t upstream = 0;    // zeropool peers only
};

/// The resource of a peer, and its stats when it is a zeropool pool.
class peer_resource {
public:
    explicit peer_resource(const std::string& name) {
        if (name == "zeropool" || name == "zeropool_releaser") {
            pool_ = std::make_unique<zeropool::sharded_buffer_resource>(zeropool::pool_config{},
                                                                         std::pmr::new_delete_resource());
            if (name == "zeropool_releaser") releaser_.emplace(*pool_);
        } else if (name == "std_pool") {
            std::pmr::pool_options o;
            o.largest_required_pool_block = std::size_t{256} << 20;
            std_pool_ = std::make_unique<std::pmr::synchronized_pool_resource>(o, std::pmr::new_delete_resource());
        }
    }
    peer_resource(const peer_resource&) = delete;
    peer_resource& operator=(const peer_resource&) = delete;
    ~peer_resource() { releaser_.reset(); } // the releaser goes before its pool

    std::pmr::memory_resource& get() {
        if (pool_) return *pool_;
        if (std_pool_) return *std_pool_;
        return *std::pmr::new_delete_resource();
    }
    zeropool::sharded_buffer_resource* pool() const { return pool_.get(); }

private:
    std::unique_ptr<zeropool::sharded_buffer_resource> pool_;
    std::optional<zeropool::idle_releaser> releaser_;
    std::unique_ptr<std::pmr::synchronized_pool_resource> std_pool_;
};

/// The samples of one run, in storage reserved up front (taking one
/// allocates nothing).
class recorder {
public:
    recorder(zeropool::sharded_buffer_resource* pool, std::size_t capacity) : pool_(pool) {
        samples_.reserve(capacity);
    }
    /// Takes a sample at monotonic time `now`; returns the sampling time after
    /// `due` (the one that was due) that is still ahead of `now`.
    double take(double now, double due) {
        sample s;
        s.t = now;
        s.rss = rss_bytes();
        if (pool_ != nullptr) {
            const zeropool::pool_stats st = pool_->stats();
            s.idle = st.idle_bytes;
            s.upstream = st.upstream_allocations;
        }
        if (samples_.size() < samples_.capacity()) samples_.push_back(s); // never reallocates mid-run
        return due + sample_period_s * (1 + std::floor((now - due) / sample_period_s));
    }
    /// Makes every time relative to `t0`.
    void shift(double t0) {
        for (sample& s : samples_) s.t -= t0;
    }
    const std::vector<sample>& samples() const { return samples_; }

private:
    zeropool::sharded_buffer_resource* pool_;
    std::vector<sample> samples_;
};

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 != 0 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct summary {
    double burst_rss = 0;
    double steady_rss = 0;
    double settle_s = -1; // -1: never within 10% until the end
    bool zeropool = false;
    std::uint64_t steady_upstream = 0;
    double idle_end = 0;
    double released_by_demand = 0;
    double steps_per_s = 0;
    double longest_step_ms = 0;
    double longest_step_cpu_ms = 0;
    double longest_step_at = 0;
};

/// The summary of a run's samples (times relative to the end of the burst).
/// perf/report/burst_report.py computes the same from the CSV.
summary summarise(const std::vector<sample>& samples) {
    summary s;
    if (samples.empty()) return s;
    const double last = samples.back().t; // the end of the steady phase
    const double window = std::min(steady_window_s, last / 2);
    std::vector<double> tail;
    for (const sample& x : samples) {
        s.burst_rss = std::max(s.burst_rss, static_cast<double>(x.rss));
        if (x.t >= last - window) tail.push_back(static_cast<double>(x.rss));
    }
    s.steady_rss = median(tail);
    // The first sample from which RSS stays within 10% of the steady level.
    for (const sample& x : samples) {
        if (x.t < 0) continue;
        const bool within = std::abs(static_cast<double>(x.rss) - s.steady_rss) <= settle_tolerance * s.steady_rss;
        if (!within) s.settle_s = -1;
        else if (s.settle_s < 0) s.settle_s = x.t;
    }
    const auto after = std::find_if(samples.begin(), samples.end(), [](const sample& x) { return x.t >= ups_skip_s; });
    if (after != samples.end()) s.steady_upstream = samples.back().upstream - after->upstream;
    return s;
}

/// Runs the workload of peer `name` in this process, writes its CSV and
/// prints its summary row on stdout.
int run_child(const options& opt) {
    const std::string& name = opt.child;
    // A malloc peer must really run on its malloc.
    const char* needed = name == "jemalloc" ? "libjemalloc" : name == "tcmalloc" ? "libtcmalloc"
                       : name == "mimalloc" ? "libmimalloc" : nullptr;
    if (needed != nullptr) {
        std::ifstream maps("/proc/self/maps");
        const std::string text((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
        if (text.find(needed) == std::string::npos) {
            std::fprintf(stderr, "burst_then_steady --child %s: %s is not loaded (LD_PRELOAD?)\n", name.c_str(), needed);
            return 1;
        }
    }

    peer_resource peer(name);
    std::pmr::memory_resource& r = peer.get();
    // Room for every sample: one per 100 ms, with an ample margin for the
    // burst (a sample per block at most) and for the steady phase.
    const std::size_t capacity =
        static_cast<std::size_t>(opt.seconds / sample_period_s) * 2 + opt.burst_mib + 64;
    recorder rec(peer.pool(), capacity);

    // ---- burst ----
    std::vector<void*> live(opt.burst_mib, nullptr); // allocated before the first sample
    double next_sample = now_seconds();
    for (void*& p : live) {
        const double now = now_seconds();
        if (now >= next_sample) next_sample = rec.take(now, next_sample);
        p = r.allocate(block_bytes);
        touch_pages(p, block_bytes);
    }
    rec.take(now_seconds(), next_sample); // the peak: every block live
    for (void*& p : live) {
        r.deallocate(p, block_bytes);
        p = nullptr;
    }
    const double t0 = now_seconds(); // the burst is over: t = 0
    rec.take(t0, next_sample);

    // ---- steady ----
    void* working[steady_blocks] = {};
    timespec tick{};
    ::clock_gettime(CLOCK_MONOTONIC, &tick);
    next_sample = t0 + sample_period_s;
    std::uint64_t steps = 0;
    double longest_step = 0;    // seconds
    double longest_step_cpu = 0; // this thread's CPU seconds in it
    double longest_step_at = 0; // when it began, seconds since the burst
    const double end = t0 + opt.seconds;
    for (;;) {
        const double now = now_seconds();
        if (now >= next_sample) next_sample = rec.take(now, next_sample);
        if (now >= end) break;
        const double step_start = now_seconds();
        const double step_cpu_start = thread_cpu_seconds();
        for (void*& p : working) {
            p = r.allocate(block_bytes);
            touch_pages(p, block_bytes);
        }
        for (void*& p : working) r.deallocate(p, block_bytes);
        ++steps;
        const double step_time = now_seconds() - step_start;
        if (step_time > longest_step) {
            longest_step = step_time;
            longest_step_cpu = thread_cpu_seconds() - step_cpu_start;
            longest_step_at = step_start - t0;
        }
        // The next tick of the absolute schedule; an overrun is not caught up.
        tick.tv_nsec += step_period_ns;
        if (tick.tv_nsec >= 1000000000L) {
            tick.tv_nsec -= 1000000000L;
            ++tick.tv_sec;
        }
        timespec ts_now{};
        ::clock_gettime(CLOCK_MONOTONIC, &ts_now);
        if (ts_now.tv_sec > tick.tv_sec || (ts_now.tv_sec == tick.tv_sec && ts_now.tv_nsec > tick.tv_nsec)) {
            tick = ts_now;
        } else {
            while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, nullptr) == EINTR) {
            }
        }
    }
    rec.shift(t0);

    summary s = summarise(rec.samples());
    s.steps_per_s = static_cast<double>(steps) / opt.seconds;
    s.longest_step_ms = longest_step * 1e3;
    s.longest_step_cpu_ms = longest_step_cpu * 1e3;
    s.longest_step_at = longest_step_at;
    if (zeropool::sharded_buffer_resource* pool = peer.pool()) {
        const zeropool::pool_stats st = pool->stats();
        s.zeropool = true;
        s.idle_end = static_cast<double>(st.idle_bytes);
        s.released_by_demand = static_cast<double>(st.released_by_demand_bytes);
    }

    // ---- the CSV ----
    std::filesystem::create_directories(opt.out);
    const std::string path = (std::filesystem::path(opt.out) / (name + ".csv")).string();
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) {
        std::fprintf(stderr, "burst_then_steady: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
        return 1;
    }
    std::fprintf(f, "peer,t_s,rss_bytes,idle_bytes,upstream_allocations\n");
    for (const sample& x : rec.samples()) {
        if (s.zeropool) {
            std::fprintf(f, "%s,%.6f,%zu,%zu,%llu\n", name.c_str(), x.t, x.rss, x.idle,
                         static_cast<unsigned long long>(x.upstream));
        } else {
            std::fprintf(f, "%s,%.6f,%zu,,\n", name.c_str(), x.t, x.rss);
        }
    }
    if (std::fclose(f) != 0) {
        std::fprintf(stderr, "burst_then_steady: cannot write %s\n", path.c_str());
        return 1;
    }

    // ---- the summary row (the parent prints it under its header) ----
    const double m = static_cast<double>(mib);
    char settle[32];
    if (s.settle_s < 0) std::snprintf(settle, sizeof settle, "never");
    else std::snprintf(settle, sizeof settle, "%.1f", s.settle_s);
    char ups[32] = "-", idle[32] = "-", demand[32] = "-";
    if (s.zeropool) {
        std::snprintf(ups, sizeof ups, "%llu", static_cast<unsigned long long>(s.steady_upstream));
        std::snprintf(idle, sizeof idle, "%.1f", s.idle_end / m);
        std::snprintf(demand, sizeof demand, "%.1f", s.released_by_demand / m);
    }
    std::printf("%-18s %9.1f %10.1f %8s %10s %12s %13s %8.0f %8.1f (%6.1f) at %5.1f s\n", name.c_str(),
                s.burst_rss / m, s.steady_rss / m, settle, ups, idle, demand, s.steps_per_s, s.longest_step_ms,
                s.longest_step_cpu_ms, s.longest_step_at);
    return 0;
}

// ---- the parent: one process per peer --------------------------------------------

/// The environment variables that choose or tune an allocator; a peer's
/// process gets none of them unless the peer sets them.
bool is_allocator_variable(const char* entry) {
    for (const char* prefix : {"LD_PRELOAD=", "MALLOC_CONF=", "GLIBC_TUNABLES=", "TCMALLOC_", "MIMALLOC_"}) {
        if (std::strncmp(entry, prefix, std::strlen(prefix)) == 0) return true;
    }
    return false;
}

/// The first readable file among `names` in the usual library directories,
/// or the file named by the environment variable `override_variable`; "" if none.
std::string find_library(const char* override_variable, std::initializer_list<const char*> names) {
    if (const char* given = std::getenv(override_variable)) return given;
    for (const char* name : names) {
        for (const char* dir : {"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
                                "/usr/local/lib"}) {
            const std::string candidate = std::string(dir) + "/" + name;
            if (::access(candidate.c_str(), R_OK) == 0) return candidate;
        }
    }
    return "";
}

/// The LD_PRELOAD library of a malloc peer ("" when it is missing), or
/// nullopt for a peer that needs none.
std::optional<std::string> preload_of(const std::string& peer) {
    if (peer == "jemalloc") return find_library("ZEROPOOL_JEMALLOC", {"libjemalloc.so.2"});
    if (peer == "tcmalloc")
        return find_library("ZEROPOOL_TCMALLOC", {"libtcmalloc_minimal.so.4", "libtcmalloc.so.4"});
    if (peer == "mimalloc") return find_library("ZEROPOOL_MIMALLOC", {"libmimalloc.so.2"});
    return std::nullopt;
}

/// Runs `--child peer` in a new process with `extra_env` added; returns its
/// summary row, or "" when it failed.
std::string spawn_child(const options& opt, const std::string& peer, const std::vector<std::string>& extra_env) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
        if (!is_allocator_variable(*e)) env_strings.emplace_back(*e);
    }
    env_strings.insert(env_strings.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> envp;
    for (std::string& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);

    char seconds[64];
    std::snprintf(seconds, sizeof seconds, "%.17g", opt.seconds);
    std::vector<std::string> args = {"/proc/self/exe", "--child", peer, "--seconds", seconds,
                                     "--burst-mib", std::to_string(opt.burst_mib), "--out", opt.out};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
        ::close(fds[0]);
        throw std::runtime_error(std::string("posix_spawn failed: ") + std::strerror(rc));
    }
    std::string out;
    char chunk[256];
    ssize_t r;
    while ((r = ::read(fds[0], chunk, sizeof chunk)) != 0) {
        if (r < 0) {
            if (errno == EINTR) continue;
            break;
        }
        out.append(chunk, static_cast<std::size_t>(r));
    }
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || out.empty()) return "";
    return out;
}

std::string read_setting(const char* path) {
    std::ifstream f(path);
    std::string line;
    std::getline(f, line);
    return line.empty() ? "unknown" : line;
}

int run_parent(const options& opt) {
    std::filesystem::create_directories(opt.out);
    std::vector<std::string> rows;
    int status = 0;
    for (const std::string& peer : opt.peers) {
        std::vector<std::string> env;
        if (const std::optional<std::string> lib = preload_of(peer)) {
            if (lib->empty()) {
                std::fprintf(stderr, "burst_then_steady: skipping %s: its library is not installed\n", peer.c_str());
                continue;
            }
            env.push_back("LD_PRELOAD=" + *lib);
        }
        std::fprintf(stderr, "== %s: burst of %zu MiB, then %.3g s steady\n", peer.c_str(), opt.burst_mib,
                     opt.seconds);
        const std::string row = spawn_child(opt, peer, env);
        if (row.empty()) {
            std::fprintf(stderr, "burst_then_steady: peer %s failed\n", peer.c_str());
            status = 1;
            continue;
        }
        rows.push_back(row);
    }
    std::printf("burst_then_steady: burst of %zu x 1 MiB, then %g s of 8 x 1 MiB per ms; CSVs in %s\n",
                opt.burst_mib, opt.seconds, opt.out.c_str());
    std::printf("transparent_hugepage: %s\n",
                read_setting("/sys/kernel/mm/transparent_hugepage/enabled").c_str());
    std::printf("%-18s %9s %10s %8s %10s %12s %13s %8s %s\n", "peer", "burst MiB", "steady MiB", "settle s",
                "ups steady", "idle end MiB", "by demand MiB", "steps/s", "longest step ms (its CPU ms)");
    for (const std::string& row : rows) std::fputs(row.c_str(), stdout);
    return status;
}

} // namespace

int main(int argc, char** argv) {
    const options opt = parse_args(argc, argv);
    try {
        return opt.child.empty() ? run_parent(opt) : run_child(opt);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "burst_then_steady%s%s: %s\n", opt.child.empty() ? "" : " --child ",
                     opt.child.c_str(), e.what());
        return 1;
    }
}
