// zeropool headline demo: read a cached file into a buffer, again and again.
//
// A program that reads, decodes or sends data in a loop usually takes a fresh
// buffer for every message. For large buffers that is expensive: each fresh
// page costs a page fault (and std::vector also zero-fills it), which can
// cost far more than the read itself. This demo measures it. It writes a file,
// reads it once untimed so that it sits in the page cache, then reads it
// `--reads` times into each of these targets:
//
//   1. a fresh std::vector<std::byte>(n) per read (zero-filled, then read into);
//   2. a fresh `new std::byte[n]` per read (not zeroed, but fresh pages);
//   3. a std::pmr::vector<std::byte>(n) per read from one long-lived
//      std::pmr::synchronized_pool_resource (default options);
//   4. zeropool: pool.get(n), read, pool.put(std::move(buf)), with one
//      zeropool::sharded_buffer_resource (default config) living across reads;
//   5. one buffer allocated before the loop and reused by hand: the floor.
//
// Each measured iteration is: allocate + open/read/close + check + free,
// timed with std::chrono::steady_clock. The three fresh targets take turns
// among themselves, then zeropool and the floor take turns among themselves
// (the starting target rotates every round). The phases are separate because
// freeing a fresh 512 MiB buffer slows the next read into a warm buffer on our
// VMs (200-800 ms instead of 35 ms, with or without zeropool), which would
// otherwise be charged to whichever warm target came next. zeropool's first
// use, a miss, is timed and printed on its own. The table shows the median and
// the minimum ms per read and the median as a multiple of the floor's median.
//
// Usage: file_read_demo [--size-mib N] [--reads N] [--file PATH] [--keep-file]
// (`bash perf/run_demo.sh` installs the tools, builds in Release and runs it.)

#include <zeropool/sharded_buffer_resource.hpp>

#include "../common/file_io.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <memory_resource>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

namespace {

using zeropool_perf::file_descriptor;
using zeropool_perf::io_error;
using zeropool_perf::read_file;
using zeropool_perf::write_all;

constexpr std::size_t mib = std::size_t{1} << 20;

// ---- command line --------------------------------------------------------------

struct options {
    std::size_t size_mib = 512;
    std::size_t reads = 7;
    std::string file;       // empty: a new file in the system temp directory
    bool keep_file = false; // otherwise the file is removed at exit
};

void print_usage(std::FILE* out, const char* argv0) {
    std::fprintf(out,
                 "usage: %s [--size-mib N] [--reads N] [--file PATH] [--keep-file]\n"
                 "  --size-mib N  size of the file and of every buffer, in MiB (default 512)\n"
                 "  --reads N     timed reads per target (default 7)\n"
                 "  --file PATH   where to write the file; PATH is overwritten\n"
                 "                (default: a new file in the system temp directory)\n"
                 "  --keep-file   keep the file at exit (by default it is removed)\n",
                 argv0);
}

/// Parses a positive decimal integer no larger than `max`; false otherwise.
bool parse_count(const char* text, std::size_t max, std::size_t& out) {
    if (text == nullptr || *text < '0' || *text > '9') return false;
    errno = 0;
    char* end = nullptr;
    const unsigned long long v = std::strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0 || v > max) return false;
    out = static_cast<std::size_t>(v);
    return true;
}

/// Returns the options, or exits with status 2 (bad usage) or 0 (--help).
options parse_args(int argc, char** argv) {
    options opt;
    const auto bad = [&](const char* message, const char* arg) {
        std::fprintf(stderr, "file_read_demo: %s: %s\n", message, arg);
        print_usage(stderr, argv[0]);
        std::exit(2);
    };
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
        if (arg == "--help" || arg == "-h") {
            print_usage(stdout, argv[0]);
            std::exit(0);
        } else if (arg == "--size-mib") {
            // Up to 1 TiB: far beyond any sensible run, and n never overflows.
            if (!parse_count(value, std::size_t{1} << 20, opt.size_mib))
                bad("--size-mib needs a whole number of MiB in [1, 1048576]", value ? value : "(none)");
            ++i;
        } else if (arg == "--reads") {
            if (!parse_count(value, 1000000, opt.reads))
                bad("--reads needs a whole number in [1, 1000000]", value ? value : "(none)");
            ++i;
        } else if (arg == "--file") {
            if (value == nullptr || *value == '\0') bad("--file needs a path", "(none)");
            opt.file = value;
            ++i;
        } else if (arg == "--keep-file") {
            opt.keep_file = true;
        } else {
            bad("unknown argument", argv[i]);
        }
    }
    return opt;
}

// ---- errors and the test file --------------------------------------------------

/// The content of the file: 64-bit word number i holds pattern_word(i). Every
/// byte is non-zero (so zero pages are not special) and every word differs
/// from its neighbours (so a misplaced or missing chunk is caught).
std::uint64_t pattern_word(std::uint64_t index) noexcept {
    return (index * 0x9E3779B97F4A7C15ull) | 0x0101010101010101ull;
}

/// Writes the `size`-byte test file to the open descriptor `fd`.
void write_test_file(int fd, std::size_t size, const std::string& path) {
    constexpr std::size_t chunk_words = (4 * mib) / sizeof(std::uint64_t);
    std::vector<std::uint64_t> chunk(chunk_words);
    std::uint64_t word = 0;
    for (std::size_t done = 0; done < size;) {
        for (std::uint64_t& w : chunk) w = pattern_word(word++);
        const std::size_t n = std::min(size - done, chunk.size() * sizeof(std::uint64_t));
        write_all(fd, reinterpret_cast<const std::byte*>(chunk.data()), n, path);
        done += n;
    }
}

/// The cheap check after every read, the same for every target: compares one
/// 64-bit word per page (and the last word) with the pattern. It proves the
/// bytes arrived, and its observable outcome keeps the compiler from eliding
/// the read.
void check_data(const std::byte* data, std::size_t n, std::size_t page) {
    const auto check_word_at = [&](std::size_t offset) {
        std::uint64_t w;
        std::memcpy(&w, data + offset, sizeof w);
        if (w != pattern_word(offset / sizeof w))
            throw std::runtime_error("data check failed at offset " + std::to_string(offset));
    };
    for (std::size_t offset = 0; offset < n; offset += page) check_word_at(offset);
    check_word_at(n - sizeof(std::uint64_t));
}

// The temp file is removed on Ctrl-C / SIGTERM too: the handler may only
// call async-signal-safe functions, so the path lives in a static buffer.
char g_unlink_on_signal[4096];

extern "C" void remove_file_and_exit(int sig) {
    if (g_unlink_on_signal[0] != '\0') ::unlink(g_unlink_on_signal);
    ::_exit(128 + sig);
}

/// Owns the test file: creates it and removes it at scope exit unless kept.
class test_file {
public:
    test_file(const options& opt, std::size_t size) : keep_(opt.keep_file) {
        int fd = -1;
        if (opt.file.empty()) { // a fresh, unique name in the temp directory
            fd = zeropool_perf::create_temp_file("zeropool_demo_", path_);
        } else {
            path_ = opt.file;
            fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd < 0) throw io_error("cannot create", path_);
        }
        const file_descriptor guard(fd);
        if (!keep_ && path_.size() < sizeof g_unlink_on_signal) {
            std::memcpy(g_unlink_on_signal, path_.c_str(), path_.size() + 1);
            std::signal(SIGINT, remove_file_and_exit);
            std::signal(SIGTERM, remove_file_and_exit);
        }
        try {
            write_test_file(fd, size, path_);
        } catch (...) {
            remove();
            throw;
        }
    }
    ~test_file() {
        if (!keep_) remove();
    }
    test_file(const test_file&) = delete;
    test_file& operator=(const test_file&) = delete;

    const std::string& path() const noexcept { return path_; }

private:
    void remove() noexcept {
        ::unlink(path_.c_str());
        g_unlink_on_signal[0] = '\0';
    }

    std::string path_;
    bool keep_;
};

// ---- measurement ---------------------------------------------------------------

/// One way of getting a buffer. `run` does one measured iteration:
/// allocate, read the file into the buffer, check it, free the buffer.
struct target {
    std::string name;
    std::function<void()> run;
    std::vector<double> ms; // one entry per timed read
};

double time_ms(const std::function<void()>& f) {
    const auto start = std::chrono::steady_clock::now();
    f();
    const auto stop = std::chrono::steady_clock::now();
    return std::chrono::duration<double, std::milli>(stop - start).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t mid = v.size() / 2;
    return v.size() % 2 != 0 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/// The kernel's transparent hugepage mode ("always", "madvise", "never"), or
/// "unknown". In "always" mode fresh large buffers fault 2 MiB at a time,
/// which makes them much cheaper.
std::string transparent_hugepage_mode() {
    std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string word;
    while (in >> word)
        if (word.size() > 2 && word.front() == '[' && word.back() == ']')
            return word.substr(1, word.size() - 2);
    return "unknown";
}

int run_demo(const options& opt) {
    const std::size_t n = opt.size_mib * mib;
    const long page_size = ::sysconf(_SC_PAGESIZE);
    const std::size_t page = page_size > 0 ? static_cast<std::size_t>(page_size) : 4096;

    std::fprintf(stderr, "writing the %zu MiB test file...\n", opt.size_mib);
    const test_file file(opt, n);
    const char* const path = file.path().c_str();

    // The floor's buffer: allocated once, reused by hand for every read. The
    // untimed warm-up read goes into it: that pulls the whole file into the
    // page cache (so every measured read hits it) and faults the buffer's
    // pages in, as they would be in a program that reuses its buffer.
    std::unique_ptr<std::byte[]> reused(new std::byte[n]);
    std::fprintf(stderr, "warm-up read...\n");
    read_file(path, reused.get(), n);
    check_data(reused.get(), n, page);

    // The long-lived resources of targets 3 and 4.
    std::pmr::synchronized_pool_resource std_pool; // default options, default upstream
    zeropool::sharded_buffer_resource pool;        // default config

    std::vector<target> targets;
    targets.push_back({"fresh std::vector<std::byte>(n)", [&] {
                           std::vector<std::byte> v(n); // zero-fills every page
                           read_file(path, v.data(), n);
                           check_data(v.data(), n, page);
                       }, {}});
    targets.push_back({"fresh new std::byte[n]", [&] {
                           std::unique_ptr<std::byte[]> p(new std::byte[n]); // delete[] at scope exit
                           read_file(path, p.get(), n);
                           check_data(p.get(), n, page);
                       }, {}});
    targets.push_back({"std::pmr::synchronized_pool_resource", [&] {
                           std::pmr::vector<std::byte> v(n, &std_pool); // zero-fills too
                           read_file(path, v.data(), n);
                           check_data(v.data(), n, page);
                       }, {}});
    targets.push_back({"zeropool get/put", [&] {
                           zeropool::buffer buf = pool.get(n); // size n, bytes not written
                           read_file(path, buf.data(), n);
                           check_data(buf.data(), n, page);
                           pool.put(std::move(buf));
                       }, {}});
    targets.push_back({"reused buffer (floor)", [&] {
                           read_file(path, reused.get(), n);
                           check_data(reused.get(), n, page);
                       }, {}});

    // zeropool's first use is a miss like any fresh buffer: time it alone,
    // then it is warm, as the floor's buffer is after the warm-up read.
    const double zeropool_first_ms = time_ms(targets[3].run);

    // Two phases. A fresh 512 MiB buffer leaves this kind of VM slow for the
    // next read into an already-warm buffer (measured here: 200-800 ms
    // instead of 35 ms, for a plain new[] buffer as much as for zeropool's),
    // so whichever warm target runs right after a fresh one pays for it.
    // Hence the fresh targets take turns among themselves, then the warm
    // targets (zeropool and the floor) take turns among themselves, each
    // going first in every other round.
    auto take_turns = [&](std::size_t first, std::size_t count) {
        for (std::size_t round = 0; round < opt.reads; ++round) {
            std::fprintf(stderr, "round %zu/%zu\n", round + 1, opt.reads);
            for (std::size_t k = 0; k < count; ++k) {
                target& t = targets[first + (round + k) % count];
                t.ms.push_back(time_ms(t.run));
            }
        }
    };
    std::fprintf(stderr, "fresh targets...\n");
    take_turns(0, 3);
    std::fprintf(stderr, "warm targets...\n");
    take_turns(3, 2);
    const zeropool::pool_stats st = pool.stats();

    // ---- report ----
    std::printf("zeropool file_read_demo: a %zu MiB file, already in the page cache, read %zu times "
                "into each target (round-robin)\n",
                opt.size_mib, opt.reads);
    std::printf("each read: allocate + open/read(2)/close + check one word per page + free\n");
    std::printf("fresh targets take turns among themselves, then the warm ones (zeropool, floor): a "
                "fresh buffer slows the next read on this kind of VM, whoever runs it\n");
    std::printf("transparent hugepages: %s; page size %zu bytes\n",
                transparent_hugepage_mode().c_str(), page);
    const std::size_t std_largest = std_pool.options().largest_required_pool_block;
    if (n > std_largest)
        std::printf("std::pmr::synchronized_pool_resource pools blocks up to %zu bytes only, so each "
                    "%zu MiB buffer goes to its upstream (new/delete) every time\n",
                    std_largest, opt.size_mib);
    std::printf("zeropool pool after the run: thread_cache_hits=%llu shard_hits=%llu "
                "upstream_allocations=%llu (upstream_deallocations=%llu, idle_bytes=%zu)\n",
                static_cast<unsigned long long>(st.thread_cache_hits),
                static_cast<unsigned long long>(st.shard_hits),
                static_cast<unsigned long long>(st.upstream_allocations),
                static_cast<unsigned long long>(st.upstream_deallocations), st.idle_bytes);
    if (st.upstream_allocations > 1)
        std::printf("note: zeropool went upstream more than once; with the default config it pools "
                    "up to %zu MiB per buffer and caches at most %zu MiB in all\n",
                    pool.config().max_buffer_size / mib, pool.config().max_cached_bytes / mib);
    if (n <= 32 * mib) // glibc's largest dynamic mmap threshold (64-bit)
        std::printf("note: at 32 MiB and below glibc malloc may recycle freed heap memory, so the "
                    "\"fresh\" targets may not get fresh pages\n");

    std::printf("zeropool's first get/read/put (a miss: fresh pages from upstream): %.1f ms\n",
                zeropool_first_ms);
    const double floor_median = median(targets.back().ms);
    std::printf("\n%-40s %12s %12s %10s\n", "target", "median ms", "min ms", "x floor");
    for (const target& t : targets) {
        const double med = median(t.ms);
        const double min = *std::min_element(t.ms.begin(), t.ms.end());
        std::printf("%-40s %12.1f %12.1f %9.2fx\n", t.name.c_str(), med, min, med / floor_median);
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    const options opt = parse_args(argc, argv);
    try {
        return run_demo(opt);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "file_read_demo: error: %s\n", e.what());
        return 1;
    }
}
