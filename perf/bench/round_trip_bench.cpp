// Round trip allocate + deallocate of one block, through the
// std::pmr::memory_resource interface, for zeropool and its peers, in one run.
//
//   round_trip/<resource>/<bytes>          bytes untouched: the pool's own cost
//   round_trip_touch/<resource>/<bytes>    one byte written per 4 KiB page, as
//                                          I/O does: fresh pages pay a fault
//
// Every resource is called through a std::pmr::memory_resource& (a virtual
// call), including the ideal free list, so the comparison is like for like;
// Boost's pool through boost::container::pmr::memory_resource&, its own base.
// Peers: glibc malloc (new_delete), the std pools with default options and
// with largest_required_pool_block raised (_large; libstdc++ 12 clamps it to
// 4 MiB, so its larger rows reach upstream every time), Boost's pool (1.81 caps
// its pooled blocks at 4 KiB whatever is asked), TBB's scalable allocator
// when built with it, and the ideal free list. The malloc row is named after
// the malloc the program runs on: the tcmalloc, jemalloc and mimalloc
// variants of this program (perf/CMakeLists.txt) report it as such.
// Compare the rows of one run as ratios: absolute times drift on shared VMs.
#include <zeropool/sharded_buffer_resource.hpp>

#include <benchmark/benchmark.h>

#include "peers.hpp"

#include <boost/container/pmr/memory_resource.hpp>
#include <boost/container/pmr/synchronized_pool_resource.hpp>

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <vector>

namespace {

using zeropool_perf::ideal_free_list;
using zeropool_perf::std_large_blocks;
using boost_resource = boost::container::pmr::synchronized_pool_resource;

// The base class a resource is called through (std's, or Boost's own).
std::pmr::memory_resource* as_base(std::pmr::memory_resource* r) { return r; }
boost::container::pmr::memory_resource* as_base(boost::container::pmr::memory_resource* r) {
    return r;
}

template <class Make>
void round_trip(benchmark::State& state, Make make, bool touch) {
    const auto bytes = static_cast<std::size_t>(state.range(0));
    auto resource = make();
    auto* opaque = as_base(&*resource);
    zeropool_perf::escape(opaque); // forget the dynamic type: no devirtualisation
    auto& r = *opaque;
    auto touch_pages = [&](void* p) {
        auto* c = static_cast<volatile unsigned char*>(p);
        for (std::size_t off = 0; off < bytes; off += 4096) c[off] = 1;
    };
    // Warm-up, touched like the loop: the first miss is not the subject (with
    // few iterations of a large size it would otherwise be the whole result).
    void* first = r.allocate(bytes);
    if (touch) touch_pages(first);
    r.deallocate(first, bytes);
    for (auto _ : state) {
        void* p = r.allocate(bytes);
        if (touch) touch_pages(p);
        zeropool_perf::escape(p);
        r.deallocate(p, bytes);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

struct new_delete_ptr {
    std::pmr::memory_resource* r = std::pmr::new_delete_resource();
    std::pmr::memory_resource& operator*() const { return *r; }
};

#if defined(ZEROPOOL_PERF_HAVE_TBB)
struct tbb_ptr {
    std::pmr::memory_resource* r = zeropool_perf::tbb_scalable();
    std::pmr::memory_resource& operator*() const { return *r; }
};
#endif

void sizes(benchmark::internal::Benchmark* b) {
    for (std::int64_t s : {4096L, 65536L, 1L << 20, 16L << 20, 256L << 20}) b->Arg(s);
}

// Small sizes, for the choice of the default min_buffer_size (docs/design.md).
void small_sizes(benchmark::internal::Benchmark* b) {
    for (std::int64_t s : {256L, 1024L, 2048L, 4096L, 16384L}) b->Arg(s);
}

#define ZEROPOOL_ROUND_TRIP(name, make)                                                        \
    BENCHMARK_CAPTURE(round_trip, name, make, false)->Apply(sizes)->Name("round_trip/" #name); \
    BENCHMARK_CAPTURE(round_trip, name, make, true)->Apply(sizes)->Name("round_trip_touch/" #name)

auto make_zeropool = [] { return std::make_unique<zeropool::sharded_buffer_resource>(); };
auto make_zeropool_pool_all = [] {
    return std::make_unique<zeropool::sharded_buffer_resource>(
        zeropool::pool_config{}.with_min_buffer_size(1));
};
auto make_ideal = [] { return std::make_unique<ideal_free_list>(); };
auto make_new_delete = [] { return new_delete_ptr{}; };
auto make_sync = [] { return std::make_unique<std::pmr::synchronized_pool_resource>(); };
auto make_sync_large = [] {
    return std::make_unique<std::pmr::synchronized_pool_resource>(std_large_blocks());
};
auto make_unsync = [] { return std::make_unique<std::pmr::unsynchronized_pool_resource>(); };
auto make_boost_sync_large = [] {
    return std::make_unique<boost_resource>(zeropool_perf::boost_large_blocks());
};
#if defined(ZEROPOOL_PERF_HAVE_TBB)
auto make_tbb = [] { return tbb_ptr{}; };
#endif
auto make_unsync_large = [] {
    return std::make_unique<std::pmr::unsynchronized_pool_resource>(std_large_blocks());
};

ZEROPOOL_ROUND_TRIP(zeropool, make_zeropool);
ZEROPOOL_ROUND_TRIP(ideal_free_list, make_ideal);
BENCHMARK_CAPTURE(round_trip, new_delete, make_new_delete, false)
    ->Apply(sizes)->Name(zeropool_perf::malloc_row("round_trip/"));
BENCHMARK_CAPTURE(round_trip, new_delete, make_new_delete, true)
    ->Apply(sizes)->Name(zeropool_perf::malloc_row("round_trip_touch/"));
ZEROPOOL_ROUND_TRIP(std_sync_pool, make_sync);
ZEROPOOL_ROUND_TRIP(std_sync_pool_large, make_sync_large);
ZEROPOOL_ROUND_TRIP(std_unsync_pool, make_unsync);
ZEROPOOL_ROUND_TRIP(std_unsync_pool_large, make_unsync_large);
ZEROPOOL_ROUND_TRIP(boost_sync_pool_large, make_boost_sync_large);
#if defined(ZEROPOOL_PERF_HAVE_TBB)
ZEROPOOL_ROUND_TRIP(tbb_scalable, make_tbb);
#endif

} // namespace

namespace {
BENCHMARK_CAPTURE(round_trip, zeropool_min1, make_zeropool_pool_all, false)
    ->Apply(small_sizes)->Name("small_round_trip/zeropool_min1");
BENCHMARK_CAPTURE(round_trip, new_delete, make_new_delete, false)
    ->Apply(small_sizes)->Name("small_round_trip/new_delete");
} // namespace
