// The cost of zeropool's buffer API (get(n) + put(buf)) against the raw
// std::pmr::memory_resource round trip (allocate + deallocate) on the same
// pool, with zeropool's peers for scale. Bytes are never touched: this is the
// API's own overhead, not page-fault cost.
//
//   raw/<resource>/<bytes>         r.allocate(bytes) + r.deallocate(p, bytes),
//                                  r a laundered memory_resource& (virtual call)
//   get_put/zeropool/<bytes>       pool.get(bytes) + pool.put(std::move(buf))
//   buffer/<resource>/<bytes>      a zeropool::buffer over the resource (its
//                                  default_init_allocator), resize(bytes), then
//                                  destroyed: what get/put do, written by hand,
//                                  so every peer pays the same vector overhead
//
// How to read it: compare rows of one run as ratios (absolute times drift on
// shared VMs). The figure of merit is get_put/zeropool/N over raw/zeropool/N
// at the same N (target <= 1.2); buffer/zeropool/N shows how much of that is
// std::vector itself. The peers' raw rows put zeropool's raw cost in context.
//
// Notes. The buffer rows allocate with alignof(std::byte) == 1 and the raw rows
// with the default alignment (alignof(std::max_align_t)); zeropool puts both in
// the same size class. Boost.Container's pool resource derives from
// boost::container::pmr::memory_resource, not std::pmr::memory_resource: its
// raw rows call it through a laundered boost memory_resource& (one virtual
// call, like the others), and its buffer rows go through a std-to-boost
// forwarding resource defined below (one more virtual call per operation).
// Boost 1.81 clamps largest_required_pool_block to 4096 whatever is asked, so
// from 64 KiB on its pool passes every request to its upstream.
#include <zeropool/sharded_buffer_resource.hpp>

#include <benchmark/benchmark.h>

#include "peers.hpp"

#include <boost/container/pmr/memory_resource.hpp>
#include <boost/container/pmr/pool_options.hpp>
#include <boost/container/pmr/synchronized_pool_resource.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <utility>
#include <vector>

namespace {

using zeropool_perf::boost_large_blocks;
using zeropool_perf::ideal_free_list;
using zeropool_perf::launder;
using zeropool_perf::std_large_blocks;

/// A std::pmr::memory_resource forwarding to a Boost.Container one, so that a
/// zeropool::buffer (a std::pmr allocator) can sit on Boost's pool.
class boost_as_std final : public std::pmr::memory_resource {
public:
    explicit boost_as_std(boost::container::pmr::memory_resource* target) noexcept
        : target_(target) {}

private:
    void* do_allocate(std::size_t bytes, std::size_t align) override {
        return target_->allocate(bytes, align);
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
        target_->deallocate(p, bytes, align);
    }
    bool do_is_equal(const memory_resource& o) const noexcept override { return this == &o; }

    boost::container::pmr::memory_resource* target_;
};

std::size_t bytes_of(const benchmark::State& state) {
    return static_cast<std::size_t>(state.range(0));
}

template <class Base>
void raw_loop(benchmark::State& state, Base* resource) {
    const std::size_t bytes = bytes_of(state);
    Base& r = launder(resource);
    r.deallocate(r.allocate(bytes), bytes); // warm-up: the first miss is not the subject
    for (auto _ : state) {
        void* p = r.allocate(bytes);
        zeropool_perf::escape(p);
        r.deallocate(p, bytes);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void buffer_loop(benchmark::State& state, std::pmr::memory_resource* resource) {
    const std::size_t bytes = bytes_of(state);
    std::pmr::memory_resource* r = &launder(resource);
    {
        zeropool::buffer warm{zeropool::default_init_allocator<std::byte>(r)};
        warm.resize(bytes);
    }
    for (auto _ : state) {
        zeropool::buffer b{zeropool::default_init_allocator<std::byte>(r)};
        b.resize(bytes);
        benchmark::DoNotOptimize(b.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// ---- zeropool ----

void raw_zeropool(benchmark::State& state) {
    zeropool::sharded_buffer_resource pool;
    raw_loop<std::pmr::memory_resource>(state, &pool);
}

void get_put_zeropool(benchmark::State& state) {
    const std::size_t bytes = bytes_of(state);
    zeropool::sharded_buffer_resource storage;
    zeropool::sharded_buffer_resource& pool = launder(&storage);
    pool.put(pool.get(bytes));
    for (auto _ : state) {
        zeropool::buffer b = pool.get(bytes);
        benchmark::DoNotOptimize(b.data());
        pool.put(std::move(b));
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void buffer_zeropool(benchmark::State& state) {
    zeropool::sharded_buffer_resource pool;
    buffer_loop(state, &pool);
}

// ---- peers ----

void raw_ideal(benchmark::State& state) {
    ideal_free_list r;
    raw_loop<std::pmr::memory_resource>(state, &r);
}
void buffer_ideal(benchmark::State& state) {
    ideal_free_list r;
    buffer_loop(state, &r);
}

void raw_new_delete(benchmark::State& state) {
    raw_loop<std::pmr::memory_resource>(state, std::pmr::new_delete_resource());
}
void buffer_new_delete(benchmark::State& state) {
    buffer_loop(state, std::pmr::new_delete_resource());
}

void raw_std_sync(benchmark::State& state) {
    std::pmr::synchronized_pool_resource r(std_large_blocks());
    raw_loop<std::pmr::memory_resource>(state, &r);
}
void buffer_std_sync(benchmark::State& state) {
    std::pmr::synchronized_pool_resource r(std_large_blocks());
    buffer_loop(state, &r);
}

void raw_boost_sync(benchmark::State& state) {
    boost::container::pmr::synchronized_pool_resource r(boost_large_blocks());
    raw_loop<boost::container::pmr::memory_resource>(state, &r);
}
void buffer_boost_sync(benchmark::State& state) {
    boost::container::pmr::synchronized_pool_resource r(boost_large_blocks());
    boost_as_std bridge(&r);
    buffer_loop(state, &bridge);
}

void sizes(benchmark::internal::Benchmark* b) {
    for (std::int64_t s : {std::int64_t{4} << 10, std::int64_t{64} << 10,
                           std::int64_t{1} << 20, std::int64_t{16} << 20})
        b->Arg(s);
}

BENCHMARK(raw_zeropool)->Apply(sizes)->Name("raw/zeropool");
BENCHMARK(get_put_zeropool)->Apply(sizes)->Name("get_put/zeropool");
BENCHMARK(buffer_zeropool)->Apply(sizes)->Name("buffer/zeropool");
BENCHMARK(raw_ideal)->Apply(sizes)->Name("raw/ideal_free_list");
BENCHMARK(buffer_ideal)->Apply(sizes)->Name("buffer/ideal_free_list");
BENCHMARK(raw_new_delete)->Apply(sizes)->Name("raw/new_delete");
BENCHMARK(buffer_new_delete)->Apply(sizes)->Name("buffer/new_delete");
BENCHMARK(raw_std_sync)->Apply(sizes)->Name("raw/std_sync_pool_large");
BENCHMARK(buffer_std_sync)->Apply(sizes)->Name("buffer/std_sync_pool_large");
BENCHMARK(raw_boost_sync)->Apply(sizes)->Name("raw/boost_sync_pool_large");
BENCHMARK(buffer_boost_sync)->Apply(sizes)->Name("buffer/boost_sync_pool_large");

} // namespace
