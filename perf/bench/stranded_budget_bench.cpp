// zeropool's cap accounting with many threads and a small cap: does budget
// that idle threads' caches reserved, and no longer use, stop a busy thread
// from caching its blocks?
//
//   stranded_budget/zeropool/max_cached_mib:<M>/workers:<W>
//       One pool, pool_config{}.with_max_cached_bytes(M MiB), over
//       new_delete_resource(). Untimed set-up: W worker threads each cycle
//       three 256 KiB blocks through the pool (allocate 3, deallocate 3,
//       allocate 3) and then keep those three in use, parked, until the row
//       ends. Each worker's cache is empty then, but it reserved budget for
//       the three blocks it held for a moment (docs/design.md): W x 768 KiB
//       when the cap allows, more than a 4 MiB cap holds from W = 6 on.
//       Then the benchmark's thread takes one untimed round, and the timed
//       iterations are rounds: allocate four 256 KiB blocks, deallocate the
//       four (bytes untouched). A round that the cap does not starve is four
//       thread-cache hits and no upstream call.
//       M = 4 and 16 are the small caps; M = 64 is the reference row, where
//       every reservation fits (16 x 768 KiB = 12 MiB), as it would with the
//       default cap (1/8 of physical memory). W = 5 and 16 are the subject;
//       W = 0 is the control: the same cap with no other thread, so what the
//       cap costs by itself, without stranded budget (a thread cache may
//       reserve at most a quarter of the cap: with 4 MiB, four 256 KiB blocks,
//       each 16 bytes more upstream, do not all fit in one cache).
//
// Counters (from pool.stats() deltas over the timed rounds; the workers are
// parked, so the deltas are the benchmark thread's alone):
//   tc_hit_rate                thread-cache hits / allocations of the rounds
//                              (1.0: every allocation a cache hit);
//   shard_hit_rate             shard hits / allocations of the rounds;
//   upstream_allocs_per_round  upstream allocate calls per round (0 in a
//                              steady state that the cap does not starve; up
//                              to 4 when the benchmark thread can cache
//                              nothing);
//   workers_reserved_mib       stats().reserved_bytes once the workers are
//                              parked, before the benchmark thread's first
//                              round: the budget their empty caches hold;
//   reserved_mib_after         stats().reserved_bytes after the timed rounds.
// Time: CPU time of the benchmark thread per round (four allocations and four
// deallocations); an upstream call costs a glibc malloc/free of 256 KiB.
//
// How to read it: compare a small-cap row with the reference row of the same
// worker count, and with the control (workers:0) of the same cap. A hit rate
// below the control's, or upstream allocations per round, mean budget
// stranded in the idle threads' caches. Peers: none, this measures
// zeropool's own accounting. The pool is called through a laundered
// std::pmr::memory_resource& (a virtual call), as in the other programs.
#include <zeropool/sharded_buffer_resource.hpp>

#include <benchmark/benchmark.h>

#include "peers.hpp"

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <mutex>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t mib = std::size_t{1} << 20;
constexpr std::size_t block_bytes = std::size_t{256} << 10;
constexpr std::size_t worker_blocks = 3;
constexpr std::size_t round_blocks = 4;

/// W threads that each cycle three blocks through the pool, then keep three
/// in use until the crew is destroyed (which must happen before the pool's
/// destruction).
class worker_crew {
public:
    worker_crew(std::pmr::memory_resource& pool, std::size_t workers) : pool_(pool) {
        threads_.reserve(workers);
        try {
            for (std::size_t i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
        } catch (...) {
            stop();
            throw;
        }
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return parked_ == threads_.size(); });
    }
    worker_crew(const worker_crew&) = delete;
    worker_crew& operator=(const worker_crew&) = delete;
    ~worker_crew() { stop(); }

private:
    void work() {
        void* held[worker_blocks] = {};
        for (void*& p : held) p = pool_.allocate(block_bytes);
        for (void* p : held) pool_.deallocate(p, block_bytes);
        for (void*& p : held) p = pool_.allocate(block_bytes);
        {
            std::unique_lock<std::mutex> lock(mutex_);
            ++parked_;
            changed_.notify_all();
            changed_.wait(lock, [&] { return stopping_; });
        }
        for (void* p : held) pool_.deallocate(p, block_bytes);
    }

    void stop() {
        {
            const std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        changed_.notify_all();
        for (std::thread& t : threads_) t.join();
        threads_.clear();
    }

    std::pmr::memory_resource& pool_;
    std::vector<std::thread> threads_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::size_t parked_ = 0;
    bool stopping_ = false;
};

void one_round(std::pmr::memory_resource& r) {
    void* blocks[round_blocks];
    for (void*& p : blocks) {
        p = r.allocate(block_bytes);
        zeropool_perf::escape(p);
    }
    for (void* p : blocks) r.deallocate(p, block_bytes);
}

double ratio(std::uint64_t part, std::uint64_t whole) {
    return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

void stranded_budget(benchmark::State& state) {
    const auto cap_mib = static_cast<std::size_t>(state.range(0));
    const auto workers = static_cast<std::size_t>(state.range(1));
    zeropool::sharded_buffer_resource pool(zeropool::pool_config{}.with_max_cached_bytes(cap_mib * mib),
                                           std::pmr::new_delete_resource());
    std::pmr::memory_resource& r = zeropool_perf::launder<std::pmr::memory_resource>(&pool);
    const worker_crew crew(r, workers);
    const std::size_t workers_reserved = pool.stats().reserved_bytes;
    one_round(r); // warm-up: the first misses are not the subject

    const zeropool::pool_stats before = pool.stats();
    for (auto _ : state) one_round(r);
    const zeropool::pool_stats after = pool.stats();

    const auto rounds = static_cast<std::uint64_t>(state.iterations());
    const std::uint64_t allocations = rounds * round_blocks;
    state.counters["tc_hit_rate"] = ratio(after.thread_cache_hits - before.thread_cache_hits, allocations);
    state.counters["shard_hit_rate"] = ratio(after.shard_hits - before.shard_hits, allocations);
    state.counters["upstream_allocs_per_round"] =
        ratio(after.upstream_allocations - before.upstream_allocations, rounds);
    state.counters["workers_reserved_mib"] = static_cast<double>(workers_reserved) / static_cast<double>(mib);
    state.counters["reserved_mib_after"] = static_cast<double>(after.reserved_bytes) / static_cast<double>(mib);
}

BENCHMARK(stranded_budget)
    ->Name("stranded_budget/zeropool")
    ->ArgNames({"max_cached_mib", "workers"})
    ->ArgsProduct({{4, 16, 64}, {0, 5, 16}});

} // namespace
