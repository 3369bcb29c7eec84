// Variable-size I/O: a loader reading records of many sizes from a file,
// each into a buffer of the record's size, as a program that loads weights
// or serves files does. Two record sets, read from the same file:
//   gpt2   the 148 tensors of GPT-2 124M (3 KiB to 147.2 MiB, 475 MiB in
//          all) in the order of its model.safetensors, laid end to end: the
//          file is this checkpoint. The list is derived from the
//          architecture, not read from a file (perf/common/gpt2_tensors.hpp).
//          Its few sizes repeat layer by layer, so each class's blocks come
//          back before its next request: fit never serves one.
//   mixed  256 records log-uniform in [64 KiB, 8 MiB), 428 MiB in all, from
//          a seeded generator (perf/common/mixed_records.hpp): 28 size
//          classes, about 9 records each per pass, in no order. A request
//          often finds its own class empty while a block one to four classes
//          larger idles: the stream where fit serves requests. Record i is
//          read from offset (the sizes of records 0 .. i-1 summed) modulo
//          (file size - its size + 1), so that it lies within the file.
//
//   variable_io/<resource>/window:<K>          gpt2,  K = 4 and 1
//   variable_io_mixed/<resource>/window:<K>    mixed, K = 4 and 16
//       One iteration is one pass over the set: for each record in order,
//       release the oldest of the K live buffers when K are live, take a
//       buffer of the record's size (never zero-filled), and pread(2) the
//       record's bytes into it from a real file. K live buffers model a
//       loader that decodes a few records while it reads the next (K = 4);
//       K = 1 reads, decodes and releases one tensor at a time; K = 16 is a
//       deeper queue, with more buffers live and more idle blocks to choose
//       from. The window carries on from one pass to the next (the set is
//       read again while the last records of this pass are being decoded).
//   variable_io_no_touch/<resource>/window:<K>, variable_io_mixed_no_touch/...
//       The same requests, releases and window, with no read and no write:
//       the allocator's cost alone. A read into a fresh page costs the page
//       fault first (10-14 us per 4 KiB on our VMs), which the other rows
//       include.
//   resources: zeropool (default config: fit on, get/put); zeropool_exact
//       (pool_config::exact_classes_only: each request served by its own
//       class only); std_sync_pool_large (std::pmr::synchronized_pool_resource
//       with largest_required_pool_block 256 MiB, which libstdc++ 12
//       clamps to 4 MiB: larger records go to its upstream every time); the malloc row, glibc
//       malloc through new_delete_resource() ("new_delete"; the tcmalloc,
//       jemalloc and mimalloc variants of this program name it after their
//       malloc); TBB's scalable allocator when built with it.
//
// The file: written once per process in the system temp directory ($TMPDIR,
// else /tmp), 475 MiB of non-zero bytes (no holes), flushed to disk with
// fdatasync and unlinked at once (nothing is left behind, even after a
// crash). Its pages stay in the page cache while the program holds it open,
// so every read is a copy from the page cache, not disk I/O, when the
// machine has a few hundred MiB of memory to spare.
//
// Every resource is built once per row and kept across the row's calls and
// repetitions, so the timed passes reuse what earlier passes freed. Building
// it, one untimed pass follows (cold_pass_ms) before any timed one. A row's
// resource is destroyed before the next row's is built, so one row's idle
// memory does not sit in the next row's RSS.
//
// Time is wall-clock time per pass (reads and page faults are kernel time).
// Counters (per pass: averaged over the timed passes):
//   faults_per_pass        minor page faults of the process per pass
//                          (getrusage RUSAGE_SELF): fresh pages.
//   upstream_per_pass      zeropool and std pool rows: bytes the resource
//                          asked of its upstream per pass, from a counting
//                          wrapper over new_delete_resource(). The malloc and
//                          TBB rows report none: malloc is its own upstream
//                          (mallinfo2 counts only glibc's heap and would mean
//                          different things for each malloc); faults_per_pass
//                          and rss_peak show what they fetch fresh.
//   upstream_held          zeropool and std pool rows: bytes held from
//                          upstream at the end of the timed passes, the
//                          window's K buffers still live: the footprint,
//                          live plus idle plus rounding.
//   rss_peak               VmHWM minus VmRSS before the row's resource was
//                          built (VmHWM reset there, /proc/self/clear_refs):
//                          what the row made resident at its peak, warm-up
//                          pass included.
//   live_peak              the most bytes requested and live at once: a
//                          property of the set and K (gpt2: wte plus its
//                          neighbours), to read rss_peak against.
//   cold_pass_ms           the untimed first pass of the row's fresh resource.
//   fitted_cold_pass       zeropool rows: stats().fitted_allocations in the
//                          cold pass (a fresh pool, where fit can save an
//                          upstream call).
//   fitted_per_pass        zeropool rows: stats().fitted_allocations per
//                          timed pass. On gpt2 both read 0 with the default
//                          bound (4 classes): every class's blocks come back
//                          before its next request, and a request that
//                          finds its class empty while a larger block idles
//                          is at least 5 classes below that block (the
//                          closest: wpe, 3 MiB, and the 7 MiB blocks of
//                          c_attn.weight). On mixed, fit serves 40 to 55%
//                          of the requests of the cold pass and a little
//                          fewer of each timed pass, whose pool keeps the blocks
//                          the earlier passes added (of 256 requests: 141
//                          and 125 at K = 4, 104 and 97 at K = 16). The
//                          pool is deterministic here (one thread, the same
//                          list every pass): the counts change only with
//                          the fit policy.
//   live_fitted_blocks, live_fitted_requested, live_fitted_block_bytes
//                          zeropool rows: those stats() at the end of the
//                          timed passes, the window's K buffers still live.
//
// How to read it: compare rows of one run as ratios (absolute times drift on
// shared VMs). The read rows are bounded below by the page-cache copy (the
// set's bytes per pass: 475 MiB for gpt2, 428 MiB for mixed); what lies
// above it is the allocator's, mostly in fresh pages. Rows that fault in no
// page pay that copy and little else: compare them over several runs. As in
// mixed_sizes_bench, a malloc's state carries over from one row to the next
// in a process (glibc's mmap threshold rises when it frees a large mapped
// block; tcmalloc keeps the pages an earlier row freed, so its window:1
// row's cold pass is warm); run one row per process
// (--benchmark_filter) to see a fresh program's malloc, and report which you
// used.
#include <zeropool/sharded_buffer_resource.hpp>

#include <benchmark/benchmark.h>

#include "../common/file_io.hpp"
#include "../common/gpt2_tensors.hpp"
#include "../common/mixed_records.hpp"
#include "../common/proc_status.hpp"
#include "peers.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <memory>
#include <memory_resource>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/resource.h> // getrusage
#include <sys/types.h>
#include <unistd.h>

namespace {

using zeropool_perf::launder;

/// The windows the rows use: both sets 4, GPT-2 also 1, the mixed set also 16.
constexpr std::int64_t default_window = 4;
constexpr std::int64_t single_window = 1;
constexpr std::int64_t wide_window = 16;

// ---- the checkpoint file -----------------------------------------------------

/// The record sets (see the top of this file).
enum class record_set { gpt2, mixed };

/// One record: its size and where it starts in the file.
struct record {
    std::size_t bytes = 0;
    off_t offset = 0;
};

/// The file's size: the GPT-2 checkpoint's.
constexpr std::size_t file_bytes = zeropool_perf::gpt2_124m_total_bytes;

/// The records of the GPT-2 124M list, laid end to end from offset 0.
std::vector<record> gpt2_records() {
    std::vector<record> out;
    off_t at = 0;
    for (std::size_t bytes : zeropool_perf::gpt2_124m_tensor_bytes()) {
        out.push_back(record{bytes, at});
        at += static_cast<off_t>(bytes);
    }
    return out;
}

/// The records of the mixed set in the same file: record i starts at the sum
/// of the sizes before it, modulo (file_bytes - its size + 1), so that it
/// ends within the file.
std::vector<record> mixed_records() {
    static_assert(zeropool_perf::mixed_record_max_bytes <= file_bytes, "every record fits in the file");
    std::vector<record> out;
    std::size_t at = 0;
    for (std::size_t bytes : zeropool_perf::mixed_record_bytes()) {
        out.push_back(record{bytes, static_cast<off_t>(at % (file_bytes - bytes + 1))});
        at += bytes;
    }
    return out;
}

/// The bytes of one pass over `records`.
std::size_t total_bytes(const std::vector<record>& records) {
    std::size_t total = 0;
    for (const record& r : records) total += r.bytes;
    return total;
}

/// Writes `total` bytes of a non-zero pattern to `fd`, 1 MiB at a time.
void fill(int fd, std::size_t total, const std::string& path) {
    std::vector<std::byte> chunk(std::size_t{1} << 20);
    for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<std::byte>(i % 251 + 1);
    for (std::size_t done = 0; done < total;) {
        const std::size_t n = std::min(chunk.size(), total - done);
        zeropool_perf::write_all(fd, chunk.data(), n, path);
        done += n;
    }
}

/// Creates, fills, flushes and unlinks a file of `total` bytes in the temp
/// directory. Returns its descriptor, open for reading. Throws on failure.
int make_checkpoint_file(std::size_t total) {
    std::string path;
    const int fd = zeropool_perf::create_temp_file("zeropool_variable_io_", path);
    ::unlink(path.c_str()); // the open descriptor keeps it; nothing is left behind
    fill(fd, total, path);
    // Clean pages: no writeback competes with the timed passes.
    if (::fdatasync(fd) != 0) throw zeropool_perf::io_error("cannot flush", path);
    return fd;
}

/// The file and the record sets read from it (see the top of this file).
/// One per process, made on first use.
class checkpoint_file {
public:
    checkpoint_file()
        : gpt2_(gpt2_records()), mixed_(mixed_records()), fd_(make_checkpoint_file(file_bytes)) {}
    const std::vector<record>& records(record_set s) const noexcept {
        return s == record_set::gpt2 ? gpt2_ : mixed_;
    }
    int fd() const noexcept { return fd_.get(); }

private:
    std::vector<record> gpt2_;
    std::vector<record> mixed_;
    zeropool_perf::file_descriptor fd_;
};

const checkpoint_file& checkpoint() {
    static const checkpoint_file file;
    return file;
}

/// Reads the record's bytes into `dst` with pread(2), retrying after short
/// reads and EINTR. Throws on an error or at an early end of file.
void read_record(int fd, std::byte* dst, const record& r) {
    for (std::size_t done = 0; done < r.bytes;) {
        const ssize_t got = ::pread(fd, dst + done, r.bytes - done, r.offset + static_cast<off_t>(done));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) throw zeropool_perf::io_error("cannot read", "the checkpoint file");
        if (got == 0) throw std::runtime_error("variable_io_bench: the checkpoint file ends early");
        done += static_cast<std::size_t>(got);
    }
}

/// The most bytes live at once when `k` consecutive records are live, the
/// list repeating (the window carries on from one pass to the next).
std::size_t window_peak_bytes(const std::vector<record>& records, std::size_t k) {
    std::size_t peak = 0;
    for (std::size_t first = 0; first < records.size(); ++first) {
        std::size_t live = 0;
        for (std::size_t j = 0; j < k; ++j) live += records[(first + j) % records.size()].bytes;
        peak = std::max(peak, live);
    }
    return peak;
}

// ---- process measurements ----------------------------------------------------

/// Minor page faults of the process so far.
long minor_faults() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

/// Wall-clock milliseconds from `start` to now.
double milliseconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// ---- the resources -----------------------------------------------------------

/// Forwards to new_delete_resource(); counts the bytes asked for, in all,
/// and the bytes held (allocated, not yet deallocated).
/// Single-threaded use only (this program is single-threaded).
class counting_upstream final : public std::pmr::memory_resource {
public:
    std::uint64_t bytes_allocated() const noexcept { return allocated_; }
    std::size_t bytes_held() const noexcept { return held_; }

private:
    void* do_allocate(std::size_t bytes, std::size_t align) override {
        void* p = std::pmr::new_delete_resource()->allocate(bytes, align);
        allocated_ += bytes;
        held_ += bytes;
        return p;
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
        std::pmr::new_delete_resource()->deallocate(p, bytes, align);
        held_ -= bytes;
    }
    bool do_is_equal(const memory_resource& o) const noexcept override { return this == &o; }

    std::uint64_t allocated_ = 0;
    std::size_t held_ = 0;
};

enum class fit { on, exact_classes_only };

/// zeropool through its buffer API (get/put), over a counting upstream.
template <fit F>
class zeropool_peer {
public:
    using held = zeropool::buffer;
    zeropool_peer() : pool_(config(), &upstream_) {}
    held take(std::size_t n) { return pool_.get(n); }
    void give(held& b) noexcept { pool_.put(std::move(b)); }
    static std::byte* data(held& b) noexcept { return b.data(); }
    const counting_upstream* upstream() const noexcept { return &upstream_; }
    const zeropool::sharded_buffer_resource& pool() const noexcept { return pool_; }

private:
    static zeropool::pool_config config() {
        if (F == fit::on) return zeropool::pool_config{};
        return zeropool::pool_config{}.with_max_fit_classes(zeropool::pool_config::exact_classes_only);
    }

    counting_upstream upstream_; // declared first: it outlives the pool
    zeropool::sharded_buffer_resource pool_;
};

/// A buffer taken from a memory resource directly: bytes never written.
struct raw_buffer {
    std::byte* p = nullptr;
    std::size_t n = 0;
};

raw_buffer allocate_raw(std::pmr::memory_resource& r, std::size_t n) {
    return raw_buffer{static_cast<std::byte*>(r.allocate(n)), n};
}

/// The std pool with large blocks, over a counting upstream; every call
/// virtual (laundered).
class std_pool_peer {
public:
    using held = raw_buffer;
    std_pool_peer() : pool_(zeropool_perf::std_large_blocks(), &upstream_) {}
    held take(std::size_t n) { return allocate_raw(launder<std::pmr::memory_resource>(&pool_), n); }
    void give(held& b) { launder<std::pmr::memory_resource>(&pool_).deallocate(b.p, b.n); }
    static std::byte* data(held& b) noexcept { return b.p; }
    const counting_upstream* upstream() const noexcept { return &upstream_; }

private:
    counting_upstream upstream_; // declared first: it outlives the pool
    std::pmr::synchronized_pool_resource pool_;
};

/// A process-wide resource that has no upstream to count (malloc, TBB).
template <std::pmr::memory_resource* (*Resource)()>
class plain_peer {
public:
    using held = raw_buffer;
    held take(std::size_t n) { return allocate_raw(launder(Resource()), n); }
    void give(held& b) { launder(Resource()).deallocate(b.p, b.n); }
    static std::byte* data(held& b) noexcept { return b.p; }
    const counting_upstream* upstream() const noexcept { return nullptr; }
};

using malloc_peer = plain_peer<&std::pmr::new_delete_resource>;
#if defined(ZEROPOOL_PERF_HAVE_TBB)
using tbb_peer = plain_peer<&zeropool_perf::tbb_scalable>;
#endif

/// zeropool rows: stats().fitted_allocations; the other rows: 0.
template <fit F>
std::uint64_t fitted_allocations(const zeropool_peer<F>& p) {
    return p.pool().stats().fitted_allocations;
}
template <class Peer>
std::uint64_t fitted_allocations(const Peer&) {
    return 0;
}

// ---- one row -----------------------------------------------------------------

enum class access { read, no_touch };

/// K buffers live at once, oldest first out.
template <class Held>
class window {
public:
    explicit window(std::size_t k) : slots_(k) {}
    /// Returns: the slot of the oldest buffer, which the caller releases and
    /// refills; the next call returns the one after it.
    std::optional<Held>& oldest() noexcept {
        std::optional<Held>& s = slots_[next_];
        next_ = (next_ + 1) % slots_.size();
        return s;
    }
    std::vector<std::optional<Held>>& slots() noexcept { return slots_; }

private:
    std::vector<std::optional<Held>> slots_;
    std::size_t next_ = 0;
};

/// A row's resource and window, kept across the row's calls. Made with an
/// untimed first pass; released buffers go back when it is destroyed.
template <class Peer>
class row {
public:
    row(std::size_t k, access a, record_set s) : records_(&checkpoint().records(s)), window_(k), access_(a) {
        zeropool_perf::reset_peak_rss();
        rss_base_ = zeropool_perf::proc_status_bytes("VmRSS");
        const auto start = std::chrono::steady_clock::now();
        pass();
        cold_pass_ms_ = milliseconds_since(start);
        drain();
        cold_fitted_ = fitted_allocations(peer_);
    }
    row(const row&) = delete;
    row& operator=(const row&) = delete;
    ~row() { drain(); }

    /// One pass over the row's record set (see the top of this file).
    void pass() {
        const int fd = checkpoint().fd();
        for (const record& r : *records_) step(r, fd);
    }
    /// Releases every live buffer.
    void drain() {
        for (std::optional<typename Peer::held>& s : window_.slots()) release(s);
    }
    Peer& peer() noexcept { return peer_; }
    double rss_base() const noexcept { return rss_base_; }
    double cold_pass_ms() const noexcept { return cold_pass_ms_; }
    std::uint64_t cold_fitted() const noexcept { return cold_fitted_; }

private:
    void step(const record& r, int fd) {
        std::optional<typename Peer::held>& slot = window_.oldest();
        release(slot);
        slot.emplace(peer_.take(r.bytes));
        std::byte* const data = Peer::data(*slot);
        if (access_ == access::read) read_record(fd, data, r);
        benchmark::DoNotOptimize(static_cast<const std::byte*>(data));
    }
    void release(std::optional<typename Peer::held>& s) {
        if (!s) return;
        peer_.give(*s);
        s.reset();
    }

    Peer peer_;
    const std::vector<record>* records_;
    window<typename Peer::held> window_;
    access access_;
    double rss_base_ = 0;
    double cold_pass_ms_ = 0;
    std::uint64_t cold_fitted_ = 0;
};

/// A row's identity: its benchmark function and its window.
struct row_key {
    const void* function = nullptr;
    std::size_t k = 0;
    bool operator==(const row_key& o) const noexcept { return function == o.function && k == o.k; }
};

/// The row in use and its key.
struct row_slot {
    row_key key;
    std::shared_ptr<void> state;
};

/// The one row slot of the process. Never destroyed: the last row's pool
/// must not be destroyed after the library's own statics at exit (it stays
/// reachable, so a leak checker does not report it).
row_slot& the_row_slot() {
    static row_slot* const slot = new row_slot;
    return *slot;
}

/// Returns: the row of type Row for `key`, made when the last row asked for
/// had another key (that one destroyed first, so that its memory is gone).
template <class Row>
Row& current_row(const row_key& key, access a, record_set s) {
    row_slot& slot = the_row_slot();
    if (!(slot.key == key)) {
        slot.state.reset();
        slot.key = row_key{};
        slot.state = std::make_shared<Row>(key.k, a, s);
        slot.key = key;
    }
    return *static_cast<Row*>(slot.state.get());
}

// ---- counters ----------------------------------------------------------------

/// What the counters are computed from, read before the timed passes.
struct readings {
    long faults = 0;
    std::uint64_t upstream_bytes = 0;
    std::uint64_t fitted = 0;
};

template <class Peer>
std::uint64_t upstream_bytes(const Peer& p) {
    return p.upstream() == nullptr ? 0 : p.upstream()->bytes_allocated();
}

template <class Peer>
readings read_now(const Peer& p) {
    return readings{minor_faults(), upstream_bytes(p), fitted_allocations(p)};
}

benchmark::Counter per_pass(double v) { return benchmark::Counter(v, benchmark::Counter::kAvgIterations); }
benchmark::Counter bytes(double v) {
    return benchmark::Counter(v, benchmark::Counter::kDefaults, benchmark::Counter::kIs1024);
}
benchmark::Counter bytes_per_pass(double v) {
    return benchmark::Counter(v, benchmark::Counter::kAvgIterations, benchmark::Counter::kIs1024);
}

/// zeropool rows: fitted allocations in the cold pass and per timed pass,
/// and the live fitted blocks now.
template <fit F>
void report_fit(benchmark::State& state, const zeropool_peer<F>& p, const readings& before,
                std::uint64_t cold_fitted) {
    const zeropool::pool_stats s = p.pool().stats();
    state.counters["fitted_cold_pass"] = static_cast<double>(cold_fitted);
    state.counters["fitted_per_pass"] = per_pass(static_cast<double>(s.fitted_allocations - before.fitted));
    state.counters["live_fitted_blocks"] = static_cast<double>(s.live_fitted_blocks);
    state.counters["live_fitted_requested"] = bytes(static_cast<double>(s.live_fitted_requested_bytes));
    state.counters["live_fitted_block_bytes"] = bytes(static_cast<double>(s.live_fitted_block_bytes));
}
template <class Peer>
void report_fit(benchmark::State&, const Peer&, const readings&, std::uint64_t) {}

template <class Peer>
void report(benchmark::State& state, row<Peer>& r, const readings& before, std::size_t k,
            const std::vector<record>& records) {
    const readings after = read_now(r.peer());
    state.counters["faults_per_pass"] = per_pass(static_cast<double>(after.faults - before.faults));
    if (const counting_upstream* up = r.peer().upstream()) {
        state.counters["upstream_per_pass"] =
            bytes_per_pass(static_cast<double>(after.upstream_bytes - before.upstream_bytes));
        state.counters["upstream_held"] = bytes(static_cast<double>(up->bytes_held()));
    }
    // At least 0: the kernel's RSS counters are batched per thread, so a row
    // that maps nothing new can read a few hundred KiB below its base.
    const double hwm = zeropool_perf::proc_status_bytes("VmHWM");
    state.counters["rss_peak"] = bytes(std::max(0.0, hwm - r.rss_base()));
    state.counters["live_peak"] = bytes(static_cast<double>(window_peak_bytes(records, k)));
    state.counters["cold_pass_ms"] = r.cold_pass_ms();
    report_fit(state, r.peer(), before, r.cold_fitted());
}

// ---- the benchmark -----------------------------------------------------------

template <class Peer, access A, record_set S>
void variable_io(benchmark::State& state) {
    static const char function_tag = 0; // one per instantiation
    const auto k = static_cast<std::size_t>(state.range(0));
    // The file is made on first use: before any row's measurements.
    const std::vector<record>& records = checkpoint().records(S);
    row<Peer>& r = current_row<row<Peer>>(row_key{&function_tag, k}, A, S);
    const readings before = read_now(r.peer());
    for (auto _ : state) r.pass();
    report(state, r, before, k, records);
    if (A == access::read)
        state.SetBytesProcessed(static_cast<std::int64_t>(total_bytes(records)) * state.iterations());
    r.drain();
}

void gpt2_windows(benchmark::internal::Benchmark* b) {
    b->ArgName("window")->Arg(default_window)->Arg(single_window);
    b->UseRealTime()->Unit(benchmark::kMillisecond);
}

void mixed_windows(benchmark::internal::Benchmark* b) {
    b->ArgName("window")->Arg(default_window)->Arg(wide_window);
    b->UseRealTime()->Unit(benchmark::kMillisecond);
}

/// Registers the rows of one record set and access mode:
/// "<prefix><resource>/window:<K>".
template <access A, record_set S>
void register_rows(const char* prefix) {
    auto add = [](const std::string& name, void (*fn)(benchmark::State&)) {
        benchmark::RegisterBenchmark(name.c_str(), fn)
            ->Apply(S == record_set::gpt2 ? gpt2_windows : mixed_windows);
    };
    const std::string p = prefix;
    add(p + "zeropool", &variable_io<zeropool_peer<fit::on>, A, S>);
    add(p + "zeropool_exact", &variable_io<zeropool_peer<fit::exact_classes_only>, A, S>);
    add(p + "std_sync_pool_large", &variable_io<std_pool_peer, A, S>);
    add(zeropool_perf::malloc_row(prefix), &variable_io<malloc_peer, A, S>);
#if defined(ZEROPOOL_PERF_HAVE_TBB)
    add(p + "tbb_scalable", &variable_io<tbb_peer, A, S>);
#endif
}

[[maybe_unused]] const bool registered = [] {
    register_rows<access::read, record_set::gpt2>("variable_io/");
    register_rows<access::no_touch, record_set::gpt2>("variable_io_no_touch/");
    register_rows<access::read, record_set::mixed>("variable_io_mixed/");
    register_rows<access::no_touch, record_set::mixed>("variable_io_mixed_no_touch/");
    return true;
}();

} // namespace
