// zeropool and its peers under a mixed-size workload with many blocks live at
// once, as a program juggling buffers of various sizes does.
//
//   mixed_sizes/<resource>/<live blocks>
//       resources: zeropool (default config: fit on, bound 4), zeropool_exact
//       (fit off: pool_config::exact_classes_only), glibc malloc (new_delete; the
//       tcmalloc/jemalloc/mimalloc variants of this program name the row after
//       their malloc), the std pool with large blocks, Boost's pool, TBB.
//   mixed_sizes_untouched/<resource>/<live blocks>
//       the same rows without the page writes: what the allocator itself
//       costs, without the page faults of fresh memory (which dominate the
//       rows above when a resource keeps taking fresh blocks; see
//       faults_per_op there). The counters are those of the rows above.
//   mixed_sizes_budget/zeropool/live:64/max_cached_mib:<M>
//       zeropool with max_cached_bytes = M MiB: the price in time of holding
//       fewer idle bytes.
//       A ring of 64 live blocks. Each iteration (one step) deallocates the
//       oldest block, allocates a new one and writes one byte per 4 KiB page of
//       it (the first byte included), as I/O into it would. Sizes are
//       log-uniform in [1 KiB, 1 MiB], drawn once from std::mt19937_64 with a
//       fixed seed into a list of 65536 sizes that every resource walks in the
//       same order from the start, so every resource sees the same requests.
//       Untimed: the ring is filled, then 8192 steps are taken (a fresh pool's
//       first misses are not the subject); the timed steps follow.
//
// Counters (per run, not per iteration):
//   peak_live_bytes        the most bytes requested and live at once during
//                          the run (a property of the size list: equal for
//                          runs of equal length; longer runs see more of it).
//   faults_per_op          minor page faults of the thread per timed step
//                          (getrusage): fresh pages, the usual cause of slow
//                          rows here.
//   upstream_bytes_end     bytes the resource holds from its upstream after the
//                          timed loop, its 64 live blocks included: the memory
//                          footprint, live plus idle plus rounding.
//   upstream_bytes_peak    the most bytes held from upstream at any time.
//   upstream_end_per_live  upstream_bytes_end / peak_live_bytes (1.0 would be
//                          no overhead at all; zeropool's size classes round up
//                          by < 25% and it keeps idle blocks, up to its cap).
//   upstream_peak_per_live upstream_bytes_peak / peak_live_bytes.
//   upstream_allocs_per_op upstream allocate calls per timed step.
//   class_floor_per_live   zeropool rows only, computed from the size list,
//                          not measured: the upstream bytes that ANY pool
//                          keeping idle blocks by zeropool's size classes
//                          (and never returning them) must hold after the
//                          same steps, over peak_live_bytes. A block of a
//                          class serves only that class, so such a pool holds,
//                          per class, as many blocks as were ever live at
//                          once in it; requests below min_buffer_size count
//                          their live bytes. The floor of
//                          upstream_peak_per_live for exact classes.
//   fitted_per_op          zeropool rows only: allocations served by an idle
//                          block of a larger class (fit; stats().
//                          fitted_allocations) per timed step.
//   model_peak_per_live,   zeropool rows with the default byte cap only,
//   model_allocs_per_op,   computed, not measured: the same steps replayed
//   model_fitted_per_op    through the model of the row's policy
//                          (zeropool_pool_model in perf/common/mixed_sizes.hpp,
//                          also footprint_model's "as built" rows): its
//                          upstream peak over the live peak, its upstream
//                          allocations and its fitted allocations per timed
//                          step. Each should equal the measured counter of
//                          the same name; a difference means the model and
//                          the pool disagree. (The model has no byte cap, so
//                          the capped rows do not report it.)
//   rss_peak_per_live      workload 8: (VmHWM at the end - VmRSS before the
//                          row's first run) / the most live bytes of any of
//                          its runs, from /proc/self/status, VmHWM reset
//                          first (/proc/self/clear_refs). It
//                          counts what the process really keeps resident: live
//                          bytes, rounding, idle blocks, and what malloc keeps.
//                          Meaningful when the row runs in a fresh process
//                          (perf/run_benchmarks.sh runs each row alone): in a
//                          shared process an earlier row's freed-but-resident
//                          heap can serve a later row without growing RSS.
// The upstream counters come from a counting wrapper over new_delete_resource()
// given as upstream to zeropool and to the std pool (one more virtual call on
// their upstream path only). new_delete's upstream is malloc itself, and the
// Boost pool keeps its own default upstream, so they report neither.
//
// How to read it: compare rows of one run as ratios (absolute times drift on
// shared VMs): time per step against zeropool's, and the footprint ratios
// between zeropool and the std pool. Every resource is called through a
// laundered base-class reference (a virtual call). The ideal same-size free
// list of the other programs has no meaning for mixed sizes and is left out.
//
// Caution: every row ends in glibc malloc, whose state carries over from one
// row to the next within a process (its mmap threshold rises when it frees a
// large mmapped block, and stays raised). The rows whose blocks come straight
// from malloc (new_delete; Boost, which pools nothing above 4 KiB) can be
// several times faster after another row has run than in a fresh process. Run
// one resource per process (--benchmark_filter=mixed_sizes/new_delete, ...) to
// compare them as a fresh program would see them, and report which you used.
//
// Notes. Boost.Container's pool resource derives from
// boost::container::pmr::memory_resource and is called through that base.
// Boost 1.81 clamps largest_required_pool_block to 4096 whatever is asked, so
// above 4 KiB its pool passes every request to its upstream.
#include <zeropool/detail/size_class.hpp>
#include <zeropool/sharded_buffer_resource.hpp>

#include <benchmark/benchmark.h>

#include "../common/mixed_sizes.hpp"
#include "../common/proc_status.hpp"
#include "peers.hpp"

#include <boost/container/pmr/memory_resource.hpp>
#include <boost/container/pmr/pool_options.hpp>
#include <boost/container/pmr/synchronized_pool_resource.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <utility>
#include <vector>

#include <fstream>
#include <string>

#include <sys/resource.h> // getrusage (Linux: RUSAGE_THREAD)

namespace {

using zeropool_perf::boost_large_blocks;
using zeropool_perf::launder;
using zeropool_perf::std_large_blocks;
constexpr std::size_t live_blocks = zeropool_perf::mixed_live_blocks;
constexpr std::size_t size_count = zeropool_perf::mixed_size_count;
constexpr std::size_t page = 4096;
constexpr std::size_t warm_up_steps = zeropool_perf::mixed_warm_up_steps;

/// Forwards to new_delete_resource() and counts calls and bytes outstanding.
/// Single-threaded use only (this program is single-threaded).
class counting_upstream final : public std::pmr::memory_resource {
public:
    std::uint64_t allocations() const noexcept { return allocations_; }
    std::size_t outstanding() const noexcept { return outstanding_; }
    std::size_t peak() const noexcept { return peak_; }

private:
    void* do_allocate(std::size_t bytes, std::size_t align) override {
        void* p = std::pmr::new_delete_resource()->allocate(bytes, align);
        ++allocations_;
        outstanding_ += bytes;
        peak_ = std::max(peak_, outstanding_);
        return p;
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
        std::pmr::new_delete_resource()->deallocate(p, bytes, align);
        outstanding_ -= bytes;
    }
    bool do_is_equal(const memory_resource& o) const noexcept override { return this == &o; }

    std::uint64_t allocations_ = 0;
    std::size_t outstanding_ = 0;
    std::size_t peak_ = 0;
};

struct block {
    void* p = nullptr;
    std::size_t bytes = 0;
};

/// Minor page faults of the calling thread so far.
long minor_faults() {
    rusage u{};
    getrusage(RUSAGE_THREAD, &u);
    return u.ru_minflt;
}

/// Whether a step writes one byte per page of its new block (as I/O into
/// it would) or leaves the block untouched.
enum class pages : bool { written, untouched };

/// Runs the ring workload on `r` (empty on entry) and sets peak_live_bytes.
/// Leaves the ring's blocks live, for the caller to read the footprint before
/// freeing them with release(). Returns upstream_count() read when the timed
/// loop began.
template <class Base, class Count>
std::uint64_t run_ring(benchmark::State& state, Base& r, std::array<block, live_blocks>& ring,
                       Count upstream_count, pages touch) {
    const std::vector<std::size_t>& sizes = zeropool_perf::mixed_request_sizes();
    std::size_t next = 0;
    std::size_t live = 0;
    std::size_t peak_live = 0;
    auto make = [&] {
        const std::size_t bytes = sizes[next++ % size_count];
        void* p = r.allocate(bytes);
        if (touch == pages::written) {
            auto* c = static_cast<volatile unsigned char*>(p);
            for (std::size_t off = 0; off < bytes; off += page) c[off] = 1;
        } else {
            benchmark::DoNotOptimize(p);
        }
        live += bytes;
        peak_live = std::max(peak_live, live);
        return block{p, bytes};
    };
    std::size_t oldest = 0;
    auto step = [&] {
        block& b = ring[oldest];
        r.deallocate(b.p, b.bytes);
        live -= b.bytes;
        // No DoNotOptimize(b.p) here: the ring is read again, so nothing is
        // optimised away, and with Google Benchmark 1.7.1 under g++ -O1/-O2
        // its "+m,r" asm on this member left the old pointer in the ring
        // beside the new size (a wrong-size deallocate, then a heap overrun).
        b = make();
        oldest = (oldest + 1) % live_blocks;
    };
    // Google Benchmark calls this function several times (growing the
    // iteration count); the RSS baseline is the process's before the first.
    static const double rss_at_start = [] {
        zeropool_perf::reset_peak_rss();
        return zeropool_perf::proc_status_bytes("VmRSS");
    }();
    static std::size_t peak_live_all_runs = 0;
    for (block& b : ring) b = make();
    for (std::size_t i = 0; i < warm_up_steps; ++i) step();
    const std::uint64_t at_start = upstream_count();
    const long faults_at_start = minor_faults();
    for (auto _ : state) step();
    const long faults = minor_faults() - faults_at_start;
    peak_live_all_runs = std::max(peak_live_all_runs, peak_live);
    state.counters["rss_peak_per_live"] = (zeropool_perf::proc_status_bytes("VmHWM") - rss_at_start) /
                                          static_cast<double>(std::max<std::size_t>(peak_live_all_runs, 1));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
    state.counters["peak_live_bytes"] = static_cast<double>(peak_live);
    state.counters["faults_per_op"] =
        static_cast<double>(faults) /
        static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
    return at_start;
}

template <class Base>
void release(Base& r, std::array<block, live_blocks>& ring) {
    for (block& b : ring) r.deallocate(b.p, b.bytes);
}

std::uint64_t not_counted() { return 0; }

void report_upstream(benchmark::State& state, const counting_upstream& up,
                     std::uint64_t allocs_at_start) {
    const double peak_live = state.counters["peak_live_bytes"];
    state.counters["upstream_bytes_end"] = static_cast<double>(up.outstanding());
    state.counters["upstream_bytes_peak"] = static_cast<double>(up.peak());
    state.counters["upstream_end_per_live"] = static_cast<double>(up.outstanding()) / peak_live;
    state.counters["upstream_peak_per_live"] = static_cast<double>(up.peak()) / peak_live;
    const auto steps = static_cast<double>(state.iterations());
    state.counters["upstream_allocs_per_op"] =
        steps == 0.0 ? 0.0 : static_cast<double>(up.allocations() - allocs_at_start) / steps;
}

/// Replays the first `steps` ring steps of the size list (the ring filled,
/// then `steps` replacements) and returns the most upstream bytes held at
/// once by a pool that keeps every freed block for its class forever: per
/// pooled class, the most blocks of it live at once times its upstream size,
/// plus the live bytes of the requests it does not pool. See
/// class_floor_per_live.
double class_cache_floor_bytes(std::size_t steps, const zeropool::pool_config& config) {
    const zeropool::pool_config c = zeropool::normalize(config);
    return zeropool_perf::exact_class_cache(0, steps, [&c](std::size_t bytes) -> std::size_t {
               if (bytes < c.min_buffer_size || bytes > c.max_buffer_size) return 0; // not pooled
               return zeropool::detail::upstream_size(zeropool::detail::class_index(bytes));
           }).held_peak;
}

/// Whether a zeropool row reports the model's counters: the model has no
/// byte cap, so only the rows that leave max_cached_bytes at its default
/// (far above what this workload keeps idle) are modelled.
enum class modelled : bool { no, yes };

void mixed_zeropool_with(benchmark::State& state, const zeropool::pool_config& config,
                         modelled model, pages touch = pages::written) {
    counting_upstream up;
    zeropool::sharded_buffer_resource pool(config, &up);
    std::pmr::memory_resource& r = launder<std::pmr::memory_resource>(&pool);
    std::array<block, live_blocks> ring{};
    std::uint64_t fitted_at_start = 0;
    const std::uint64_t start = run_ring(
        state, r, ring,
        [&] {
            fitted_at_start = pool.stats().fitted_allocations;
            return up.allocations();
        },
        touch);
    const std::uint64_t fitted = pool.stats().fitted_allocations - fitted_at_start;
    report_upstream(state, up, start);
    release(r, ring);
    const auto timed = static_cast<std::size_t>(state.iterations());
    const double per_step = timed == 0 ? 0.0 : 1.0 / static_cast<double>(timed);
    state.counters["fitted_per_op"] = static_cast<double>(fitted) * per_step;
    state.counters["class_floor_per_live"] =
        class_cache_floor_bytes(warm_up_steps + timed, config) / state.counters["peak_live_bytes"];
    if (model == modelled::yes) {
        const zeropool_perf::replay_outcome m = zeropool_perf::zeropool_pool_model(
            warm_up_steps, timed, zeropool_perf::zeropool_policy::of(config));
        state.counters["model_peak_per_live"] = m.held_peak / m.live_peak;
        state.counters["model_allocs_per_op"] = static_cast<double>(m.fresh_after_warm_up) * per_step;
        state.counters["model_fitted_per_op"] = static_cast<double>(m.fitted_after_warm_up) * per_step;
    }
}

void mixed_zeropool(benchmark::State& state, pages touch) {
    mixed_zeropool_with(state, zeropool::pool_config{}, modelled::yes, touch);
}

// Fit off: every request served by blocks of its own class only.
void mixed_zeropool_exact(benchmark::State& state, pages touch) {
    mixed_zeropool_with(
        state, zeropool::pool_config{}.with_max_fit_classes(zeropool::pool_config::exact_classes_only),
        modelled::yes, touch);
}

// The trade-off between idle memory and hits (workloads 6 and 8): zeropool
// with max_cached_bytes set to range(1) MiB; range(0) is the live block count,
// as in the other rows. The live bytes peak near 18.5 MiB.
void mixed_zeropool_budget(benchmark::State& state) {
    mixed_zeropool_with(state,
                        zeropool::pool_config{}.with_max_cached_bytes(static_cast<std::size_t>(state.range(1))
                                                                      << 20),
                        modelled::no);
}

void mixed_std_sync(benchmark::State& state, pages touch) {
    counting_upstream up;
    std::pmr::synchronized_pool_resource pool(std_large_blocks(), &up);
    std::pmr::memory_resource& r = launder<std::pmr::memory_resource>(&pool);
    std::array<block, live_blocks> ring{};
    const std::uint64_t start = run_ring(state, r, ring, [&up] { return up.allocations(); }, touch);
    report_upstream(state, up, start);
    release(r, ring);
}

void mixed_new_delete(benchmark::State& state, pages touch) {
    std::pmr::memory_resource& r = launder(std::pmr::new_delete_resource());
    std::array<block, live_blocks> ring{};
    run_ring(state, r, ring, &not_counted, touch);
    release(r, ring);
}

#if defined(ZEROPOOL_PERF_HAVE_TBB)
void mixed_tbb(benchmark::State& state, pages touch) {
    std::pmr::memory_resource& r = launder(zeropool_perf::tbb_scalable());
    std::array<block, live_blocks> ring{};
    run_ring(state, r, ring, &not_counted, touch);
    release(r, ring);
}
#endif

void mixed_boost_sync(benchmark::State& state, pages touch) {
    boost::container::pmr::synchronized_pool_resource pool(boost_large_blocks());
    boost::container::pmr::memory_resource& r =
        launder<boost::container::pmr::memory_resource>(&pool);
    std::array<block, live_blocks> ring{};
    run_ring(state, r, ring, &not_counted, touch);
    release(r, ring);
}

constexpr auto live_arg = static_cast<std::int64_t>(live_blocks);

// Each resource twice: mixed_sizes/ (pages written) and mixed_sizes_untouched/.
void register_rows(const char* family, pages touch) {
    const std::string f = family;
    auto row = [&](const std::string& name, void (*fn)(benchmark::State&, pages)) {
        benchmark::RegisterBenchmark(name.c_str(), [fn, touch](benchmark::State& st) { fn(st, touch); })
            ->Arg(live_arg);
    };
    row(f + "zeropool", mixed_zeropool);
    row(f + "zeropool_exact", mixed_zeropool_exact);
    row(zeropool_perf::malloc_row(f.c_str()), mixed_new_delete);
    row(f + "std_sync_pool_large", mixed_std_sync);
    row(f + "boost_sync_pool_large", mixed_boost_sync);
#if defined(ZEROPOOL_PERF_HAVE_TBB)
    row(f + "tbb_scalable", mixed_tbb);
#endif
}
const bool rows_registered = [] {
    register_rows("mixed_sizes/", pages::written);
    register_rows("mixed_sizes_untouched/", pages::untouched);
    return true;
}();
BENCHMARK(mixed_zeropool_budget)
    ->Name("mixed_sizes_budget/zeropool")
    ->ArgNames({"live", "max_cached_mib"})
    ->Args({live_arg, 4})
    ->Args({live_arg, 8})
    ->Args({live_arg, 16})
    ->Args({live_arg, 32})
    ->Args({live_arg, 64});

} // namespace
