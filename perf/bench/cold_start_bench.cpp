// zeropool cold-path benchmarks (issue: cold path), every peer in one run.
//
// "Cold first use": a process that has never held a block of this size asks for
// one, writes one byte per 4 KiB page, and gives it back. For zeropool that is
// a new pool, get(n), touch, put, and the pool's destruction.
//
// Every sample runs in a fresh process: this program re-executes itself as
// `cold_start_bench --sample KIND BYTES`, with the environment of the peer, and
// reads back the seconds the sample timed. So no allocator keeps a warm block
// from an earlier sample (glibc raises its mmap threshold after a free and
// would then serve 1 and 16 MiB warm from its heap), no sample pays for
// copy-on-write faults of a forked parent, and peers that are chosen by the
// environment run side by side with the others:
//   new_delete_glibc            plain glibc malloc
//   new_delete_glibc_hugetlb1   GLIBC_TUNABLES=glibc.malloc.hugetlb=1
//   new_delete_jemalloc_thp     LD_PRELOAD=libjemalloc.so.2 MALLOC_CONF=thp:always
//                               (when Debian's libjemalloc2 is installed, or
//                               ZEROPOOL_JEMALLOC names the library)
// Each row also reports `faults`: the minor page faults of a sample, which
// do not depend on the machine's load (a 4 KiB page is one fault, a 2 MiB huge
// page one too). On these VMs the times do: memory that the guest freed a few
// seconds before is slow to touch again, so run repetitions and read medians
// (perf/cold_run.sh).
//
// "File read": read a file that is in the page cache (512 MiB by default,
// ZEROPOOL_COLD_FILE_MIB) into a buffer: the reused-buffer floor (the third
// read into the same buffer), a cold pool per read (default upstream, page
// upstream), and a fresh new[] per read.
#include <zeropool/page_resource.hpp>
#include <zeropool/sharded_buffer_resource.hpp>
#include <zeropool/size_split_resource.hpp>

#include <benchmark/benchmark.h>

#include "../common/file_io.hpp"
#include "peers.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <memory_resource>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

constexpr std::size_t mib = std::size_t{1} << 20;
constexpr std::size_t touch_stride = 4096;

double now_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void touch_pages(std::byte* p, std::size_t n) {
    for (std::size_t i = 0; i < n; i += touch_stride) p[i] = std::byte{1};
    if (n != 0) p[n - 1] = std::byte{1};
    // p must escape: ClobberMemory() alone (a signal fence in Google Benchmark
    // 1.7.1) lets clang -O3 delete the new[], the stores and the delete[] of
    // the cold_new_delete sample (2 page faults instead of 16387 for 64 MiB).
    zeropool_perf::escape(p); // this function's own copy of the pointer
}

// ---- the samples, run in a child process -----------------------------------

/// Minor page faults of this process so far (a first touch of a page is one).
long minor_faults() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

/// Page faults of the timed part of the last sample (set by stopwatch).
long timed_faults = 0;

/// Times the part of a sample that counts, and counts its page faults.
class stopwatch {
public:
    stopwatch() : faults_(minor_faults()), start_(now_seconds()) {}
    /// Returns: seconds since construction; sets timed_faults.
    double elapsed() const {
        const double seconds = now_seconds() - start_;
        timed_faults = minor_faults() - faults_;
        return seconds;
    }

private:
    long faults_;
    double start_;
};

double pool_first_use(std::size_t n, std::pmr::memory_resource* upstream) {
    const stopwatch t0;
    {
        zeropool::sharded_buffer_resource pool(zeropool::pool_config{}, upstream);
        zeropool::buffer b = pool.get(n);
        touch_pages(b.data(), b.size());
        pool.put(std::move(b));
    } // the pool gives its block back to upstream here
    return t0.elapsed();
}

double pool_file_read(const char* file, std::size_t n, std::pmr::memory_resource* upstream) {
    const stopwatch t0;
    {
        zeropool::sharded_buffer_resource pool(zeropool::pool_config{}, upstream);
        zeropool::buffer b = pool.get(n);
        zeropool_perf::read_file(file, b.data(), n);
        pool.put(std::move(b));
    }
    return t0.elapsed();
}

/// The composition of docs/cold_path.md: classes of 2 MiB and more from a
/// page_resource (huge pages), the others from new/delete.
struct page_upstream {
    zeropool::page_resource pages;
    zeropool::size_split_resource split;
    explicit page_upstream(bool populate)
        : pages(zeropool::page_resource_options{}.with_populate(populate)),
          split(2 * mib, &pages, std::pmr::new_delete_resource()) {}
};

/// Runs one sample of `kind` over `n` bytes and returns the seconds timed.
double run_sample(const std::string& kind, std::size_t n) {
    const char* file = std::getenv("ZEROPOOL_COLD_FILE");
    if (kind == "cold_new_delete") {
        const stopwatch t0;
        auto* p = new std::byte[n]; // default-initialised: nothing zeroed by the library
        touch_pages(p, n);
        delete[] p;
        return t0.elapsed();
    }
    if (kind == "cold_floor") { // the same touching, of pages touched before
        std::vector<std::byte> keep(n);
        const stopwatch t0;
        touch_pages(keep.data(), n);
        return t0.elapsed();
    }
    if (kind == "cold_zeropool_default") return pool_first_use(n, std::pmr::new_delete_resource());
    if (kind == "cold_zeropool_page" || kind == "cold_zeropool_page_populate") {
        page_upstream up(kind == "cold_zeropool_page_populate");
        return pool_first_use(n, &up.split);
    }
    if (kind.rfind("read_", 0) == 0 && file == nullptr) throw std::runtime_error("ZEROPOOL_COLD_FILE is not set");
    if (kind == "read_floor") {
        // Steady state of a reused buffer: its pages were touched long ago and
        // it has been read into before (the first reads into freshly faulted
        // memory are slower on these VMs).
        std::vector<std::byte> keep(n);
        zeropool_perf::read_file(file, keep.data(), n);
        zeropool_perf::read_file(file, keep.data(), n);
        const stopwatch t0;
        zeropool_perf::read_file(file, keep.data(), n);
        return t0.elapsed();
    }
    if (kind == "read_new_delete") {
        const stopwatch t0;
        auto* p = new std::byte[n];
        zeropool_perf::read_file(file, p, n);
        delete[] p;
        return t0.elapsed();
    }
    if (kind == "read_zeropool_default") return pool_file_read(file, n, std::pmr::new_delete_resource());
    if (kind == "read_zeropool_page") {
        page_upstream up(false);
        return pool_file_read(file, n, &up.split);
    }
    throw std::runtime_error("unknown sample kind " + kind);
}

// ---- the parent: spawning samples ------------------------------------------------

/// The environment variables that choose an allocator; a sample's process gets
/// none of them unless its peer sets them.
bool is_allocator_variable(const char* entry) {
    for (const char* name : {"LD_PRELOAD=", "GLIBC_TUNABLES=", "MALLOC_CONF="}) {
        if (std::strncmp(entry, name, std::strlen(name)) == 0) return true;
    }
    return false;
}

struct sample_result {
    double seconds = 0;
    long minor_faults = 0; // during the timed part
};

/// Runs `--sample kind bytes` in a new process with `extra_env` added; returns
/// the seconds and the page faults it printed.
sample_result spawn_sample(const std::string& kind, std::size_t bytes, const std::vector<std::string>& extra_env) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
        if (!is_allocator_variable(*e)) env_strings.emplace_back(*e);
    }
    env_strings.insert(env_strings.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> envp;
    for (std::string& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);

    std::string exe = "/proc/self/exe";
    std::string flag = "--sample";
    std::string kind_arg = kind;
    std::string bytes_arg = std::to_string(bytes);
    char* argv[] = {exe.data(), flag.data(), kind_arg.data(), bytes_arg.data(), nullptr};

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
        ::close(fds[0]);
        throw std::runtime_error("posix_spawn failed");
    }
    std::string out;
    char chunk[256];
    ssize_t r;
    while ((r = ::read(fds[0], chunk, sizeof chunk)) > 0) out.append(chunk, static_cast<std::size_t>(r));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || out.empty()) {
        throw std::runtime_error("sample " + kind + " failed");
    }
    sample_result result;
    char* end = nullptr;
    result.seconds = std::strtod(out.c_str(), &end);
    result.minor_faults = std::strtol(end, nullptr, 10);
    return result;
}

/// Runs the samples of one benchmark; reports the minor page faults per sample.
void run_samples(benchmark::State& state, const std::string& kind, std::size_t bytes,
                 const std::vector<std::string>& env) {
    long faults = 0;
    for (auto _ : state) {
        const sample_result r = spawn_sample(kind, bytes, env);
        state.SetIterationTime(r.seconds);
        faults += r.minor_faults;
    }
    state.counters["faults"] = benchmark::Counter(static_cast<double>(faults), benchmark::Counter::kAvgIterations);
}

std::size_t file_size() {
    const char* mib_env = std::getenv("ZEROPOOL_COLD_FILE_MIB");
    return (mib_env != nullptr ? std::strtoull(mib_env, nullptr, 10) : 512) * mib;
}

/// The file of the file-read rows, made at its first use and read once so
/// that it is in the page cache; removed at exit.
class cached_file {
public:
    static const std::string& path() {
        static cached_file file;
        return file.path_;
    }
    cached_file(const cached_file&) = delete;
    cached_file& operator=(const cached_file&) = delete;
    ~cached_file() { ::unlink(path_.c_str()); }

private:
    cached_file() {
        const zeropool_perf::file_descriptor fd(zeropool_perf::create_temp_file("zeropool_cold_", path_));
        std::vector<std::byte> chunk(8 * mib, std::byte{'z'});
        try {
            for (std::size_t done = 0; done < file_size(); done += chunk.size())
                zeropool_perf::write_all(fd.get(), chunk.data(), chunk.size(), path_);
        } catch (...) {
            ::unlink(path_.c_str());
            throw;
        }
        ::fsync(fd.get());
        ::lseek(fd.get(), 0, SEEK_SET);
        while (::read(fd.get(), chunk.data(), chunk.size()) > 0) { // into the page cache
        }
    }
    std::string path_;
};

struct peer {
    std::string name;             // row name
    std::string kind;             // sample kind (without the cold_/read_ prefix)
    std::vector<std::string> env; // added to the sample's environment
};

std::string jemalloc_library() {
    if (const char* given = std::getenv("ZEROPOOL_JEMALLOC")) return given;
    for (const char* candidate : {"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
                                  "/usr/lib64/libjemalloc.so.2", "/usr/lib/libjemalloc.so.2"}) {
        if (::access(candidate, R_OK) == 0) return candidate;
    }
    return "";
}

void register_all() {
    std::vector<peer> new_delete_peers = {
        {"new_delete_glibc", "new_delete", {}},
        {"new_delete_glibc_hugetlb1", "new_delete", {"GLIBC_TUNABLES=glibc.malloc.hugetlb=1"}},
    };
    const std::string jemalloc = jemalloc_library();
    if (!jemalloc.empty()) {
        new_delete_peers.push_back({"new_delete_jemalloc_thp", "new_delete", {"LD_PRELOAD=" + jemalloc, "MALLOC_CONF=thp:always"}});
    } else {
        std::fprintf(stderr, "cold_start_bench: libjemalloc.so.2 not found, no jemalloc rows\n");
    }

    std::vector<peer> cold = {{"floor_touch_reused_buffer", "floor", {}}};
    cold.insert(cold.end(), new_delete_peers.begin(), new_delete_peers.end());
    cold.push_back({"zeropool_default_upstream", "zeropool_default", {}});
    cold.push_back({"zeropool_page_upstream", "zeropool_page", {}});
    cold.push_back({"zeropool_page_upstream_populate", "zeropool_page_populate", {}});

    struct size_plan {
        std::size_t bytes;
        benchmark::IterationCount iterations;
    };
    const size_plan sizes[] = {{1 * mib, 10}, {16 * mib, 4}, {256 * mib, 1}};
    for (const size_plan& s : sizes) {
        for (const peer& p : cold) {
            const std::string kind = "cold_" + p.kind;
            const std::vector<std::string> env = p.env;
            const std::size_t bytes = s.bytes;
            benchmark::RegisterBenchmark(("cold/" + p.name).c_str(),
                                         [kind, env, bytes](benchmark::State& state) {
                                             run_samples(state, kind, bytes, env);
                                         })
                ->Arg(static_cast<std::int64_t>(s.bytes))
                ->Iterations(s.iterations)
                ->UseManualTime()
                ->Unit(benchmark::kMillisecond);
        }
    }

    std::vector<peer> reads = {{"reused_buffer_floor", "floor", {}}};
    reads.insert(reads.end(), new_delete_peers.begin(), new_delete_peers.end());
    reads.push_back({"cold_pool_default_upstream", "zeropool_default", {}});
    reads.push_back({"cold_pool_page_upstream", "zeropool_page", {}});
    const std::size_t n = file_size();
    for (const peer& p : reads) {
        const std::string kind = "read_" + p.kind;
        const std::vector<std::string> env = p.env;
        benchmark::RegisterBenchmark(("file_read/" + p.name).c_str(),
                                     [kind, env, n](benchmark::State& state) {
                                         std::vector<std::string> with_file = env;
                                         with_file.push_back("ZEROPOOL_COLD_FILE=" + cached_file::path());
                                         run_samples(state, kind, n, with_file);
                                     })
            ->Arg(static_cast<std::int64_t>(n))
            ->Iterations(1)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
    }
}

} // namespace

int main(int argc, char** argv) {
    if (argc == 4 && std::strcmp(argv[1], "--sample") == 0) {
        try {
            const double seconds = run_sample(argv[2], std::strtoull(argv[3], nullptr, 10));
            std::printf("%.9f %ld\n", seconds, timed_faults);
            return 0;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "cold_start_bench --sample %s: %s\n", argv[2], e.what());
            return 1;
        }
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    try {
        register_all();
        benchmark::RunSpecifiedBenchmarks();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cold_start_bench: %s\n", e.what());
        return 1;
    }
    benchmark::Shutdown();
    return 0;
}
