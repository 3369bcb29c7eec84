// Registered buffers for io_uring: O_DIRECT random reads from a file on disk
// into pooled blocks, three ways side by side, at queue depth 1 and 32 and
// read sizes of 4 KiB, 64 KiB and 1 MiB; and the cost of finding a block's
// slot. Built only with zeropool::uring (liburing found); run by
// perf/run_benchmarks.sh.
//
//   uring_read/<size>/qd:<Q>/<mode>      size 4KiB, 64KiB, 1MiB; Q = 1, 32
//       One iteration is 32 reads completed. Each read takes a page-aligned
//       block of <size> bytes from a sharded_buffer_resource, reads <size>
//       bytes at a random offset (a multiple of <size>, uniform over the
//       file) into it, and gives the block back on completion; Q reads are
//       in flight at all times, across iterations (the last few are drained
//       after the timed region).
//   modes:
//     read_fixed  io_uring, one ring of Q entries; the pool's upstream is an
//                 io_uring_registry (over a page_resource) attached to the
//                 ring, so every block is registered once when the pool takes
//                 it (in the untimed warm-up) and each read is a READ_FIXED:
//                 the kernel does not pin and unpin the block's pages per I/O.
//     read        the same ring and pool, the pool over the page_resource
//                 directly (no registry): plain IORING_OP_READ, which pins
//                 and unpins the pages of every read.
//     pread       Q threads (one at Q = 1) sharing the pool, each doing a
//                 blocking pread(2) per read; a lock and condition variable
//                 hand out the reads, as a thread pool's queue does.
//
//   uring_find/<N>/threads:<T>          N = 32, 1024 registered blocks; T = 1, 2
//       What a READ_FIXED costs its submitter before the read: one
//       io_uring_registry::find() of a random block of the N (4 KiB each,
//       registered in one attached ring before the threads start), on each
//       of T threads at once. CPU time per lookup.
//
// The file: 1 GiB ($ZEROPOOL_URING_BENCH_FILE_MIB MiB when set) of non-zero
// bytes (no holes), written once per process in $ZEROPOOL_DIRECT_DIR, else
// /var/tmp (O_DIRECT needs a file system that supports it: not /tmp, often a
// tmpfs), flushed with fsync, opened with O_DIRECT and unlinked at once, so
// nothing is left behind even after a crash. Reads bypass the page cache: a
// file system refusing O_DIRECT fails every row (a buffered read would
// measure memory copies, not the disk).
//
// What the disk limits: every row waits for a device. At Q = 1 the rows
// measure its latency per read (plus the path to it), the same for all three
// modes; at Q = 32 with 64 KiB and 1 MiB its bandwidth, which all three
// approach, so items_per_second says little there and cpu_us_per_io says
// what each mode costs. On a VM's virtio disk the host may cache the image:
// the numbers are the host's storage stack, not a bare device's, and vary
// from run to run (on our 2-core VM, ext4 on virtio: 10k to 20k reads per
// second of 4 KiB at Q = 1 from one run to the next, 120k to 220k at Q = 32,
// 1.2 to 2 GB/s at 64 KiB and above). The first rows after the file is
// written may also share the disk with the host flushing it. At Q = 1
// cpu_us_per_io is mostly the kernel's work around each sleep and wake-up,
// alike in all modes; the pread rows at Q = 32 run 32 threads on however
// few cores there are, and pay their switches.
//
// Time is wall-clock time (UseRealTime: the reading thread mostly sleeps).
// Counters:
//   items_per_second   reads completed per second (IOPS).
//   bytes_per_second   bytes read per second.
//   cpu_us_per_io      CPU time of the whole process (user and system, every
//                      thread, CLOCK_PROCESS_CPUTIME_ID) over the timed region,
//                      per read: what issuing and completing a read costs the
//                      host. io_uring's own workers (iou-wrk) count when the
//                      kernel needs them; interrupt time the kernel charges
//                      to whichever task it interrupts does not.
//   fixed_fraction     read_fixed rows: the share of reads issued as
//                      READ_FIXED (1 unless a block was refused registration:
//                      RLIMIT_MEMLOCK without CAP_IPC_LOCK, a full table).
//   registrations      read_fixed rows: blocks registered during the timed
//                      region: 0 when the pool serves every read from blocks
//                      it already holds.
#include <zeropool/io_uring_registry.hpp>
#include <zeropool/zeropool.hpp>

#include <benchmark/benchmark.h>
#include <liburing.h>

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t page = 4096;
constexpr std::size_t mib = std::size_t{1} << 20;
constexpr std::uint64_t reads_per_iteration = 32;

double process_cpu_seconds() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// xorshift64*: the random offsets, seeded per row and per thread.
struct random_offsets {
    std::uint64_t state;
    std::uint64_t slots; // the file's bytes / the read size
    std::size_t size;
    std::uint64_t next() noexcept {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return ((state * 0x2545F4914F6CDD1Dull) % slots) * size;
    }
};

/// The file, written once per process (see the file comment).
class bench_file {
public:
    static const bench_file& get() {
        static const bench_file file;
        return file;
    }
    ~bench_file() {
        if (fd_ >= 0) ::close(fd_);
    }
    bench_file(const bench_file&) = delete;
    bench_file& operator=(const bench_file&) = delete;

    int fd() const noexcept { return fd_; }
    std::size_t bytes() const noexcept { return bytes_; }
    /// Empty when the file is ready; else why it is not.
    const std::string& error() const noexcept { return error_; }

private:
    bench_file() {
        std::size_t file_mib = 1024;
        if (const char* v = std::getenv("ZEROPOOL_URING_BENCH_FILE_MIB"); v != nullptr && *v != '\0')
            file_mib = std::strtoull(v, nullptr, 10);
        if (file_mib < 1) file_mib = 1;
        bytes_ = file_mib * mib;
        const char* dir = std::getenv("ZEROPOOL_DIRECT_DIR");
        const std::string path = std::string(dir != nullptr && *dir != '\0' ? dir : "/var/tmp") +
                                 "/zeropool_uring_read_bench_" + std::to_string(::getpid()) + ".dat";
        const int w = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (w < 0) {
            error_ = "create " + path + ": " + std::strerror(errno);
            return;
        }
        std::vector<unsigned char> chunk(mib);
        bool ok = true;
        for (std::size_t off = 0; ok && off < bytes_; off += mib) {
            for (std::size_t i = 0; i < mib; ++i) chunk[i] = static_cast<unsigned char>(1 + (off / mib + i) % 251);
            ok = ::pwrite(w, chunk.data(), mib, static_cast<off_t>(off)) == static_cast<ssize_t>(mib);
        }
        ok = ok && ::fsync(w) == 0;
        if (!ok) error_ = "write " + path + ": " + std::strerror(errno);
        ::close(w);
        if (ok) {
            fd_ = ::open(path.c_str(), O_RDONLY | O_DIRECT);
            if (fd_ < 0) error_ = "O_DIRECT open of " + path + ": " + std::strerror(errno);
        }
        ::unlink(path.c_str());
    }

    int fd_ = -1;
    std::size_t bytes_ = 0;
    std::string error_;
};

/// Sets the counters every row reports.
void report(benchmark::State& state, std::uint64_t reads, std::size_t size, double cpu_seconds) {
    state.SetItemsProcessed(static_cast<std::int64_t>(reads));
    state.SetBytesProcessed(static_cast<std::int64_t>(reads * size));
    state.counters["cpu_us_per_io"] = reads == 0 ? 0.0 : cpu_seconds * 1e6 / static_cast<double>(reads);
}

// ---- io_uring: read_fixed and read ------------------------------------------

void uring_read(benchmark::State& state, std::size_t size, unsigned qd, bool fixed) {
    const bench_file& file = bench_file::get();
    if (!file.error().empty()) {
        state.SkipWithError(file.error().c_str());
        return;
    }
    io_uring ring{};
    if (const int rc = io_uring_queue_init(qd, &ring, 0); rc != 0) {
        state.SkipWithError((std::string("io_uring_queue_init: ") + std::strerror(-rc)).c_str());
        return;
    }
    zeropool::page_resource pages;
    // Declared after the ring, before the pool: the pool gives its blocks
    // back (each unregistered) before the registry detaches from the ring.
    std::optional<zeropool::io_uring_registry> registry;
    std::string error;
    if (fixed) {
        registry.emplace(&pages, 2 * qd + 8); // Q blocks in flight, and room to spare
        if (const int rc = registry->attach(ring); rc != 0) error = std::string("attach: ") + std::strerror(-rc);
    }
    if (error.empty()) {
        zeropool::sharded_buffer_resource pool(fixed ? static_cast<std::pmr::memory_resource*>(&*registry)
                                                     : static_cast<std::pmr::memory_resource*>(&pages));
        random_offsets offsets{0x9E3779B97F4A7C15ull ^ (size * 31 + qd), file.bytes() / size, size};
        std::vector<void*> blocks(qd, nullptr); // a read's block, by its slot (the CQE's user data)
        unsigned in_flight = 0;
        std::uint64_t issued = 0, issued_fixed = 0, completed = 0;

        auto start = [&](std::size_t slot) {
            void* p = pool.allocate(size, page);
            blocks[slot] = p;
            io_uring_sqe* sqe = io_uring_get_sqe(&ring); // never null: at most Q in flight in a ring of Q
            const zeropool::fixed_buffer f = fixed ? registry->find(p, size) : zeropool::fixed_buffer{};
            if (f) {
                io_uring_prep_read_fixed(sqe, file.fd(), p, static_cast<unsigned>(size), offsets.next(), f.index);
                ++issued_fixed;
            } else {
                io_uring_prep_read(sqe, file.fd(), p, static_cast<unsigned>(size), offsets.next());
            }
            io_uring_sqe_set_data64(sqe, slot);
            ++in_flight;
            ++issued;
        };
        // Submits what is prepared, waits for at least one completion, and
        // reaps every completion there is; each freed slot starts a new read
        // when `restart` and no read has failed (a failed read sets `error`).
        // Returns false when the ring itself failed (`error` set too).
        auto reap = [&](bool restart) {
            io_uring_cqe* cqe = nullptr;
            const int rc = io_uring_submit_and_wait(&ring, 1);
            if (rc < 0 && rc != -EINTR) {
                if (error.empty()) error = std::string("io_uring_submit_and_wait: ") + std::strerror(-rc);
                return false;
            }
            while (io_uring_peek_cqe(&ring, &cqe) == 0) {
                const auto slot = static_cast<std::size_t>(io_uring_cqe_get_data64(cqe));
                const int res = cqe->res;
                io_uring_cqe_seen(&ring, cqe);
                --in_flight;
                ++completed;
                pool.deallocate(blocks[slot], size, page);
                blocks[slot] = nullptr;
                if (res != static_cast<int>(size) && error.empty()) {
                    error = "read returned " + std::to_string(res) + (res < 0 ? std::string(": ") + std::strerror(-res) : "");
                }
                if (!error.empty()) restart = false;
                if (restart) start(slot);
            }
            return true;
        };

        // Warm-up, untimed: the pool takes (and the registry registers) its
        // blocks, Q reads get in flight.
        for (std::size_t s = 0; s < qd; ++s) start(s);
        while (error.empty() && completed < 2 * std::uint64_t{qd})
            if (!reap(true)) break;

        const std::uint64_t registrations_before = fixed ? registry->stats().registrations : 0;
        const std::uint64_t completed_before = completed, issued_before = issued, fixed_before = issued_fixed;
        const double cpu_before = process_cpu_seconds();
        for (auto _ : state) {
            const std::uint64_t target = completed + reads_per_iteration;
            while (error.empty() && completed < target)
                if (!reap(true)) break;
            if (!error.empty()) break;
        }
        const double cpu = process_cpu_seconds() - cpu_before;
        const std::uint64_t reads = completed - completed_before;
        const std::uint64_t timed_issued = issued - issued_before, timed_fixed = issued_fixed - fixed_before;
        const std::uint64_t registrations = fixed ? registry->stats().registrations - registrations_before : 0;

        // Drain: no block goes back while the kernel may still write into it.
        while (in_flight > 0)
            if (!reap(false)) break;
        if (in_flight > 0) std::_Exit(3); // the ring failed with reads in flight: leak nothing into reuse
        if (!error.empty()) {
            state.SkipWithError(error.c_str());
        } else {
            report(state, reads, size, cpu);
            if (fixed) {
                state.counters["fixed_fraction"] =
                    timed_issued == 0 ? 0.0 : static_cast<double>(timed_fixed) / static_cast<double>(timed_issued);
                state.counters["registrations"] = static_cast<double>(registrations);
            }
        }
    } else {
        state.SkipWithError(error.c_str());
    }
    registry.reset(); // detaches from the ring while the ring is alive
    io_uring_queue_exit(&ring);
}

// ---- pread: a thread pool ----------------------------------------------------

void pread_threads(benchmark::State& state, std::size_t size, unsigned qd) {
    const bench_file& file = bench_file::get();
    if (!file.error().empty()) {
        state.SkipWithError(file.error().c_str());
        return;
    }
    zeropool::page_resource pages;
    zeropool::sharded_buffer_resource pool(&pages);

    // Reads are handed out as credits: `granted` reads may have started. The
    // main thread keeps Q credits ahead of the completions it waits for, so Q
    // reads stay in flight across iterations, as the rings' do.
    std::mutex m;
    std::condition_variable work, done;
    std::uint64_t granted = qd, taken = 0, completed = 0, target = 0;
    bool stop = false;
    std::string error;

    auto worker = [&](std::uint64_t seed) {
        random_offsets offsets{seed, file.bytes() / size, size};
        std::unique_lock<std::mutex> lock(m);
        for (;;) {
            work.wait(lock, [&] { return stop || taken < granted; });
            if (stop) return;
            ++taken;
            lock.unlock();
            void* p = pool.allocate(size, page);
            const ssize_t got = ::pread(file.fd(), p, size, static_cast<off_t>(offsets.next()));
            const int err = errno;
            pool.deallocate(p, size, page);
            lock.lock();
            ++completed;
            if (got != static_cast<ssize_t>(size) && error.empty())
                error = "pread returned " + std::to_string(got) + (got < 0 ? std::string(": ") + std::strerror(err) : "");
            if (completed >= target || !error.empty()) done.notify_one();
        }
    };
    std::vector<std::thread> threads;
    threads.reserve(qd);
    for (unsigned t = 0; t < qd; ++t)
        threads.emplace_back(worker, 0x9E3779B97F4A7C15ull ^ (size * 31 + qd) ^ (std::uint64_t{t} << 40));

    // Warm-up, untimed: the pool takes its blocks, every thread gets going.
    auto complete = [&](std::uint64_t reads) {
        std::unique_lock<std::mutex> lock(m);
        target = completed + reads;
        granted = target + qd;
        work.notify_all();
        done.wait(lock, [&] { return completed >= target || !error.empty(); });
        return error.empty();
    };
    complete(2 * std::uint64_t{qd});

    std::uint64_t completed_before = 0;
    {
        std::lock_guard<std::mutex> lock(m);
        completed_before = completed;
    }
    const double cpu_before = process_cpu_seconds();
    for (auto _ : state)
        if (!complete(reads_per_iteration)) break;
    const double cpu = process_cpu_seconds() - cpu_before;
    std::uint64_t reads = 0;
    {
        std::lock_guard<std::mutex> lock(m);
        reads = completed - completed_before;
        stop = true; // the reads in flight finish; no new one starts
    }
    work.notify_all();
    for (std::thread& t : threads) t.join();
    if (!error.empty())
        state.SkipWithError(error.c_str());
    else
        report(state, reads, size, cpu);
}

// uring_find/<N>/threads:<T>: what a READ_FIXED costs the submitter
// before the read: looking up the registration of the block it reads into.
// N blocks of 4 KiB are registered (one ring attached) before the threads
// start; each of T threads calls find(p, 4096) on the blocks in random order.
// Time per find, per thread.
struct find_fixture {
    zeropool::page_resource pages;
    zeropool::io_uring_registry registry{&pages, 2048};
    ::io_uring ring{};
    bool ring_ok = false;
    std::vector<void*> blocks;
    explicit find_fixture(std::size_t n) {
        ring_ok = ::io_uring_queue_init(4, &ring, 0) == 0;
        if (ring_ok && registry.attach(ring) != 0) {
            ::io_uring_queue_exit(&ring);
            ring_ok = false;
        }
        for (std::size_t i = 0; i < n; ++i) blocks.push_back(registry.allocate(page, page));
    }
    ~find_fixture() {
        for (void* b : blocks) registry.deallocate(b, page, page);
        if (ring_ok) {
            registry.detach(ring);
            ::io_uring_queue_exit(&ring);
        }
    }
    find_fixture(const find_fixture&) = delete;
    find_fixture& operator=(const find_fixture&) = delete;
};
std::unique_ptr<find_fixture> the_find_fixture; // between Setup and Teardown

void uring_find(benchmark::State& state) {
    const find_fixture& fx = *the_find_fixture;
    if (!fx.ring_ok) {
        state.SkipWithError("io_uring_queue_init or attach failed");
        return;
    }
    // xorshift64, masked: the block counts are powers of two (no division in
    // the loop).
    const std::size_t mask = fx.blocks.size() - 1;
    std::uint64_t x = std::uint64_t{0x9E3779B97F4A7C15} + static_cast<std::uint64_t>(state.thread_index());
    std::uint64_t found = 0;
    for (auto _ : state) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const zeropool::fixed_buffer f = fx.registry.find(fx.blocks[x & mask], page);
        found += f ? 1u : 0u;
        benchmark::DoNotOptimize(f);
    }
    // 1 when every block was registered (they are few enough for the default
    // RLIMIT_MEMLOCK).
    state.counters["registered_fraction"] =
        benchmark::Counter(static_cast<double>(found), benchmark::Counter::kAvgIterations);
}

// The rows, by size, then queue depth, then mode: the modes side by side.
const bool registered = [] {
    const char* const modes[] = {"read_fixed", "read", "pread"};
    const std::pair<std::size_t, const char*> sizes[] = {{4096, "4KiB"}, {64 * 1024, "64KiB"}, {mib, "1MiB"}};
    for (const auto& [size, label] : sizes)
        for (const unsigned qd : {1u, 32u})
            for (const char* md : modes) {
                const std::string name = std::string("uring_read/") + label + "/qd:" + std::to_string(qd) + "/" + md;
                const std::string mode = md;
                benchmark::RegisterBenchmark(name.c_str(),
                                             [size = size, qd, mode](benchmark::State& state) {
                                                 if (mode == "pread")
                                                     pread_threads(state, size, qd);
                                                 else
                                                     uring_read(state, size, qd, mode == "read_fixed");
                                             })
                    ->UseRealTime()
                    ->Unit(benchmark::kMicrosecond);
            }
    for (const int blocks : {32, 1024})
        benchmark::RegisterBenchmark("uring_find", uring_find)
            ->Arg(blocks)
            ->Setup([](const benchmark::State& st) {
                the_find_fixture = std::make_unique<find_fixture>(static_cast<std::size_t>(st.range(0)));
            })
            ->Teardown([](const benchmark::State&) { the_find_fixture.reset(); })
            ->Threads(1)
            ->Threads(2);
    return true;
}();

} // namespace
