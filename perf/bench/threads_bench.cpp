// zeropool and its peers under two threads. Bytes are never touched.
//
//   threads/<resource>/<bytes>/real_time/threads:<T>
//       T threads (1 or 2) at once, each doing allocate + deallocate round
//       trips of one block on one shared resource. items_per_second is the
//       aggregate rate of all T threads (items are summed over the threads and
//       divided by wall-clock time: the rows use real time). Scaling is
//       items_per_second at threads:2 over threads:1 of the same resource
//       (2.0 is perfect; the target for zeropool is >= 1.8). The CPU column
//       is CPU time summed over the threads per item, so CPU / Time is the
//       number of cores the row actually got: below 2 at threads:2 means
//       something else held a core, and the wall-clock scaling cannot reach 2.
//       CPU per item at threads:2 over threads:1 is the cost of sharing (1.0:
//       none).
//   producer_consumer/<resource>/<bytes>/real_time
//       one thread (the benchmark's) allocates blocks and hands them through a
//       lock-free single-producer single-consumer ring of depth 16 to a second
//       thread, which deallocates them: 1024 blocks per iteration. per_op is
//       the wall-clock time per block (allocate + hand-over + deallocate,
//       pipelined over the two threads). upstream_allocs_per_op is the number
//       of upstream allocate calls per block during the timed loop, and
//       upstream_allocs is the total since the resource was built (warm-up
//       included): for a pool that reuses the consumer's blocks it stays a
//       small constant however long the run is. zeropool's come from stats();
//       the std pool's from a counting upstream wrapper (one more virtual call,
//       on the upstream path only). new_delete allocates upstream every time.
//
// How to read it: compare rows of one run as ratios (absolute times drift on
// shared VMs; with 2 cores, anything else running eats into the two-thread
// rows). Every resource is called through a laundered base-class reference
// (a virtual call), so nothing is devirtualised. The ideal single-threaded
// free list appears in the one-thread rows only (it is not thread-safe).
//
// Notes. Boost.Container's pool resource derives from
// boost::container::pmr::memory_resource and is called through that base
// (one virtual call, like the others). Boost 1.81 clamps
// largest_required_pool_block to 4096 whatever is asked, so from 64 KiB on its
// pool passes every request to its upstream (its own default resource).
#include <zeropool/sharded_buffer_resource.hpp>

#include <benchmark/benchmark.h>

#include "peers.hpp"

#include <boost/container/pmr/memory_resource.hpp>
#include <boost/container/pmr/pool_options.hpp>
#include <boost/container/pmr/synchronized_pool_resource.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <thread>
#include <vector>

namespace {

using zeropool_perf::boost_large_blocks;
using zeropool_perf::ideal_free_list;
using zeropool_perf::launder;
using zeropool_perf::std_large_blocks;
constexpr std::size_t ops_per_iteration = 1024; // producer/consumer blocks per iteration

/// Forwards to new_delete_resource() and counts the allocate calls.
class counting_upstream final : public std::pmr::memory_resource {
public:
    std::uint64_t allocations() const noexcept { return allocations_.load(std::memory_order_relaxed); }

private:
    void* do_allocate(std::size_t bytes, std::size_t align) override {
        void* p = std::pmr::new_delete_resource()->allocate(bytes, align);
        allocations_.fetch_add(1, std::memory_order_relaxed);
        return p;
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
        std::pmr::new_delete_resource()->deallocate(p, bytes, align);
    }
    bool do_is_equal(const memory_resource& o) const noexcept override { return this == &o; }

    std::atomic<std::uint64_t> allocations_{0};
};

std::size_t bytes_of(const benchmark::State& state) {
    return static_cast<std::size_t>(state.range(0));
}

// ---- (a) concurrent round trips on one shared resource ----------------------

// One resource per peer for the whole program, shared by the benchmark threads
// (they start and stop together, so none is built or destroyed under them).
std::pmr::memory_resource* shared_zeropool() {
    static zeropool::sharded_buffer_resource r;
    return &r;
}
std::pmr::memory_resource* shared_ideal() {
    static ideal_free_list r;
    return &r;
}
std::pmr::memory_resource* shared_new_delete() { return std::pmr::new_delete_resource(); }
#if defined(ZEROPOOL_PERF_HAVE_TBB)
std::pmr::memory_resource* shared_tbb() { return zeropool_perf::tbb_scalable(); }
#endif
std::pmr::memory_resource* shared_std_sync() {
    static std::pmr::synchronized_pool_resource r(std_large_blocks());
    return &r;
}
boost::container::pmr::memory_resource* shared_boost_sync() {
    static boost::container::pmr::synchronized_pool_resource r(boost_large_blocks());
    return &r;
}

template <class Base>
void concurrent_round_trip(benchmark::State& state, Base* (*shared)()) {
    const std::size_t bytes = bytes_of(state);
    Base& r = launder(shared());
    r.deallocate(r.allocate(bytes), bytes); // warm-up, per thread: the first miss is not the subject
    for (auto _ : state) {
        void* p = r.allocate(bytes);
        zeropool_perf::escape(p);
        r.deallocate(p, bytes);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void threads_zeropool(benchmark::State& s) { concurrent_round_trip(s, &shared_zeropool); }
void threads_ideal(benchmark::State& s) { concurrent_round_trip(s, &shared_ideal); }
void threads_new_delete(benchmark::State& s) { concurrent_round_trip(s, &shared_new_delete); }
void threads_std_sync(benchmark::State& s) { concurrent_round_trip(s, &shared_std_sync); }
void threads_boost_sync(benchmark::State& s) { concurrent_round_trip(s, &shared_boost_sync); }
#if defined(ZEROPOOL_PERF_HAVE_TBB)
void threads_tbb(benchmark::State& s) { concurrent_round_trip(s, &shared_tbb); }
#endif

// ---- (b) producer / consumer --------------------------------------------------

/// A bounded lock-free single-producer single-consumer ring of pointers.
/// Both sides spin (yielding) when it is full or empty.
class spsc_ring {
public:
    void push(void* p) noexcept {
        const std::size_t t = tail_.load(std::memory_order_relaxed);
        while (t - head_.load(std::memory_order_acquire) == depth) std::this_thread::yield();
        slots_[t % depth] = p;
        tail_.store(t + 1, std::memory_order_release);
    }
    void* pop() noexcept {
        const std::size_t h = head_.load(std::memory_order_relaxed);
        while (tail_.load(std::memory_order_acquire) == h) std::this_thread::yield();
        void* p = slots_[h % depth];
        head_.store(h + 1, std::memory_order_release);
        return p;
    }

private:
    static constexpr std::size_t depth = 16;
    std::array<void*, depth> slots_{};
    alignas(64) std::atomic<std::size_t> head_{0}; // next slot to pop (consumer)
    alignas(64) std::atomic<std::size_t> tail_{0}; // next slot to push (producer)
};

struct pc_result {
    std::uint64_t ops = 0;           // blocks handed over in the timed loop
    std::uint64_t upstream_mark = 0; // upstream allocations when the timed loop began
};

/// Runs the producer/consumer loop on `resource`. `upstream_count()` is read
/// once, after the warm-up. The consumer stops at a null pointer.
template <class Base, class Count>
pc_result producer_consumer(benchmark::State& state, Base* resource, Count upstream_count) {
    const std::size_t bytes = bytes_of(state);
    Base& r = launder(resource);
    spsc_ring ring;
    std::thread consumer([&] {
        while (void* p = ring.pop()) r.deallocate(p, bytes);
    });
    for (std::size_t i = 0; i < ops_per_iteration; ++i) ring.push(r.allocate(bytes)); // warm-up
    pc_result result;
    result.upstream_mark = upstream_count();
    for (auto _ : state) {
        for (std::size_t i = 0; i < ops_per_iteration; ++i) {
            void* p = r.allocate(bytes);
            zeropool_perf::escape(p);
            ring.push(p);
        }
    }
    ring.push(nullptr);
    consumer.join();
    result.ops = static_cast<std::uint64_t>(state.iterations()) * ops_per_iteration;
    state.SetItemsProcessed(static_cast<std::int64_t>(result.ops));
    state.counters["per_op"] = benchmark::Counter(
        static_cast<double>(ops_per_iteration),
        benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
    return result;
}

void report_upstream(benchmark::State& state, const pc_result& result, std::uint64_t total) {
    state.counters["upstream_allocs_per_op"] =
        result.ops == 0 ? 0.0
                        : static_cast<double>(total - result.upstream_mark) /
                              static_cast<double>(result.ops);
    state.counters["upstream_allocs"] = static_cast<double>(total);
}

std::uint64_t not_counted() { return 0; }

void pc_zeropool(benchmark::State& state) {
    zeropool::sharded_buffer_resource pool;
    auto count = [&pool] { return pool.stats().upstream_allocations; };
    const pc_result result = producer_consumer<std::pmr::memory_resource>(state, &pool, count);
    report_upstream(state, result, count());
}

void pc_std_sync(benchmark::State& state) {
    counting_upstream upstream;
    std::pmr::synchronized_pool_resource pool(std_large_blocks(), &upstream);
    auto count = [&upstream] { return upstream.allocations(); };
    const pc_result result = producer_consumer<std::pmr::memory_resource>(state, &pool, count);
    report_upstream(state, result, count());
}

void pc_new_delete(benchmark::State& state) {
    producer_consumer<std::pmr::memory_resource>(state, std::pmr::new_delete_resource(),
                                                 &not_counted);
}

#if defined(ZEROPOOL_PERF_HAVE_TBB)
void pc_tbb(benchmark::State& state) {
    producer_consumer<std::pmr::memory_resource>(state, zeropool_perf::tbb_scalable(), &not_counted);
}
#endif

void pc_boost_sync(benchmark::State& state) {
    boost::container::pmr::synchronized_pool_resource pool(boost_large_blocks());
    producer_consumer<boost::container::pmr::memory_resource>(state, &pool, &not_counted);
}

void sizes(benchmark::internal::Benchmark* b) {
    for (std::int64_t s : {std::int64_t{4} << 10, std::int64_t{64} << 10,
                           std::int64_t{1} << 20, std::int64_t{16} << 20})
        b->Arg(s);
}

void one_and_two_threads(benchmark::internal::Benchmark* b) {
    b->Apply(sizes)->UseRealTime()->Threads(1)->Threads(2);
}

BENCHMARK(threads_zeropool)->Name("threads/zeropool")->Apply(one_and_two_threads);
BENCHMARK(threads_ideal)->Name("threads/ideal_free_list")->Apply(sizes)->UseRealTime()->Threads(1);
BENCHMARK(threads_new_delete)->Name(zeropool_perf::malloc_row("threads/"))->Apply(one_and_two_threads);
BENCHMARK(threads_std_sync)->Name("threads/std_sync_pool_large")->Apply(one_and_two_threads);
BENCHMARK(threads_boost_sync)->Name("threads/boost_sync_pool_large")->Apply(one_and_two_threads);

BENCHMARK(pc_zeropool)->Name("producer_consumer/zeropool")->Apply(sizes)->UseRealTime();
BENCHMARK(pc_new_delete)->Name(zeropool_perf::malloc_row("producer_consumer/"))->Apply(sizes)->UseRealTime();
BENCHMARK(pc_std_sync)->Name("producer_consumer/std_sync_pool_large")->Apply(sizes)->UseRealTime();
BENCHMARK(pc_boost_sync)->Name("producer_consumer/boost_sync_pool_large")->Apply(sizes)->UseRealTime();
#if defined(ZEROPOOL_PERF_HAVE_TBB)
BENCHMARK(threads_tbb)->Name("threads/tbb_scalable")->Apply(one_and_two_threads);
BENCHMARK(pc_tbb)->Name("producer_consumer/tbb_scalable")->Apply(sizes)->UseRealTime();
#endif

} // namespace
