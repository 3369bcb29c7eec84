// zeropool: the shared state of one sharded_buffer_resource below its hit
// paths: the shard set, the idle-byte budget, the counted upstream, and the
// pool's entry in the thread registry; the transfers between the tiers
// (src/tier_transfer.cpp); and what gives idle memory back: trim, release by
// demand, and the reclaim of unused reservation when the budget runs short
// (src/pool_reclaim.cpp).
//
// Who touches what:
//   shards    see shard_set.hpp.
//   budget    see byte_budget.hpp.
//   upstream  see counted_upstream.hpp.
//   tls_capacity_, tick_ns_, epoch_ns_   immutable.
//   next_tick_ns_, next_room_scan_ns_   atomics, any thread: when release by
//       demand and the reclaim of unused reservation may run next.
//   last_tick_   release_mutex_.
//   releasers_   atomic: idle_releasers attached (pool calls then leave
//       release by demand to them).
//   released_by_demand_, released_by_trim_   atomic counters (slow paths only).
//   fits_without_cache_   any thread (fit_books.hpp); the fits of the threads
//       with a cache are in their caches' books.
//   release_mutex_   one release-by-demand pass at a time (try_lock: a
//       thread that finds it taken goes on).
//   the registered_pool base   see thread_registry.hpp.
//
// Lock order: the registry mutex, then a thread cache's lock, then the shard
// set's, then a shard's. A thread holding its cache's lock makes no upstream
// call and takes no registry mutex: the sections under it collect the blocks
// bound upstream and return them after unlocking.
//
// The tiers hold block starts: a request's data starts data_offset(class,
// alignment) bytes into its block; the routing (sharded_buffer_resource.cpp)
// adds and removes that offset, everything here sees blocks.
#ifndef ZEROPOOL_SRC_POOL_CORE_HPP
#define ZEROPOOL_SRC_POOL_CORE_HPP

#include <zeropool/pool_config.hpp>

#include "byte_budget.hpp"
#include "counted_upstream.hpp"
#include "fitted_block.hpp"
#include "shard_set.hpp"
#include "thread_cache.hpp"
#include "thread_registry.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <mutex>

namespace zeropool::detail {

class cache_freeze;

/// Blocks bound upstream, collected under a lock and returned after it.
struct upstream_batch {
    cached_block blocks[thread_cache::max_capacity + 1];
    std::uint32_t count = 0;
};

class pool_core final : public registered_pool {
public:
    /// Throws: std::bad_alloc. Registers with the thread registry.
    pool_core(std::uint64_t pool_id, const pool_config& config, std::pmr::memory_resource* upstream);

    /// Returns every idle block of every tier upstream, other threads' caches
    /// included. No other thread may be inside a call on the pool.
    ~pool_core();

    // ---- the slow paths of allocate and deallocate (tier_transfer.cpp) -------

    /// The calling thread's cache of this pool: from the thread's table when
    /// it is there (inline, no call), else found or created by the registry;
    /// nullptr when the thread cannot have one (it is exiting, or memory for
    /// the record is short): its calls then bypass the cache tier.
    thread_cache* own_cache() noexcept {
        if (thread_cache* c = find_cache_fast(id)) return c;
        return find_or_create_cache(*this, tls_capacity_);
    }

    /// A block for a request of class `cls` that missed `cache`, the calling
    /// thread's cache (own_cache(); the caller tried its take()), or nullptr:
    /// of class `cls` from the shards; else the smallest idle block of a
    /// class in `fit` (fit: its class is returned with it); else a new block
    /// of class `cls` from upstream.
    /// Throws: what upstream throws; nothing has changed then.
    cached_block allocate_block(thread_cache* cache, std::uint32_t cls, fit_range fit);
    /// Takes back a block of class `cls`: into `cache`, the calling thread's
    /// cache (own_cache()) or nullptr, a shard, or upstream beyond the caps.
    void deallocate_block(thread_cache* cache, void* block, std::uint32_t cls) noexcept;

    // ---- fit (the books of fitted blocks; the layout is fitted_block.hpp) ------

    /// A fitted block of class `cls` serves a request of `requested` bytes;
    /// `cache` is the calling thread's cache, or nullptr.
    void count_fitted(thread_cache* cache, std::uint32_t cls, std::size_t requested) noexcept;
    /// Takes back a fitted block of class `cls` that served `requested`
    /// bytes; `cache` is the calling thread's cache, or nullptr.
    void deallocate_fitted(thread_cache* cache, void* block, std::uint32_t cls, std::size_t requested) noexcept;
    /// The fit books of the calls made without a thread cache (stats() adds
    /// the caches' books: sum_caches()).
    fit_totals fits_without_cache() const noexcept { return fits_without_cache_.read(); }

    // ---- extensions ------------------------------------------------------------

    /// Keeps a new block of class `cls` idle in a shard, its pages faulted in;
    /// false (block returned upstream, or none taken) when the caps are reached.
    /// Throws: what upstream throws; nothing has changed then.
    bool preallocate_block(std::uint32_t cls, std::size_t spread);

    // ---- giving memory back (pool_reclaim.cpp) -------------------------------

    /// Returns every idle block upstream: the calling thread's cache, the
    /// other threads' caches (frozen in turn), the shards. Returns the bytes.
    std::size_t trim() noexcept;
    /// Release by demand, when a tick is due (idle_release_ms /
    /// ticks_per_period since the last): returns upstream the shards' blocks
    /// idle for a whole period and the blocks of the caches unchanged for a
    /// whole period. With a `budget_ns`, stops after about that long and
    /// leaves the rest due, for the next call. Returns the bytes (0 when no
    /// tick was due, or another thread runs one).
    std::size_t release_idle(std::uint64_t budget_ns = 0) noexcept;
    /// Release by demand from a pool call (a slow path, or the hit path every
    /// thread_cache::hits_per_clock_check hits): a step of at most
    /// activity_step_ns, and none while an idle_releaser is attached.
    void release_idle_from_activity() noexcept;
    /// The hit path's clock check, out of line: release_idle_from_activity(),
    /// then `result`.
    void* release_idle_and_return(void* result) noexcept;
    /// An idle_releaser starts (+1) or stops (-1) running release_idle().
    void attach_releaser(int delta) noexcept { releasers_.fetch_add(delta, std::memory_order_relaxed); }

    /// The longest step of release by demand that a pool call runs.
    static constexpr std::uint64_t activity_step_ns = 2000000;

    /// Bytes returned upstream by release_idle() and trim(), in all.
    std::size_t released_by_demand() const noexcept { return released_by_demand_.load(std::memory_order_relaxed); }
    std::size_t released_by_trim() const noexcept { return released_by_trim_.load(std::memory_order_relaxed); }

    /// Release by demand ticks this many times per idle_release_ms.
    static constexpr std::uint32_t ticks_per_period = 4;

    shard_set shards;
    byte_budget budget;
    counted_upstream upstream;

private:
    // registered_pool
    void flush_exiting(thread_cache& cache) noexcept override;
    void lock_for_fork() noexcept override { shards.lock_all(); }
    void unlock_after_fork() noexcept override { shards.unlock_all(); }

    // The cache <-> shard transfer policy (tier_transfer.cpp). The functions
    // taking a cache run under its lock.
    void* refill_from_shards(thread_cache& cache, std::uint32_t cls, bool batch) noexcept;
    bool spill_and_cache(thread_cache& cache, void* block, std::uint32_t cls, upstream_batch& out) noexcept;
    void empty_cache(thread_cache& cache, bool to_upstream, upstream_batch& out) noexcept;

    // Shards and upstream.
    std::size_t home_shard() const noexcept;
    std::uint32_t now_tick() const noexcept;
    void* take_from_shards(std::uint32_t cls) noexcept;
    cached_block take_fit(thread_cache* cache, fit_range fit) noexcept;
    bool give_to_shards(void* block, std::uint32_t cls) noexcept;
    void release_block(void* block, std::uint32_t cls) noexcept;
    void release_blocks(const cached_block* blocks, std::uint32_t n, upstream_batch& out) noexcept;
    void return_upstream(void* block, std::uint32_t cls) noexcept;
    std::size_t return_upstream(const upstream_batch& batch) noexcept;
    std::size_t return_shards_upstream() noexcept;
    void release_idle_if_due(thread_cache& cache) noexcept;

    // Reclaim from other threads' caches (pool_reclaim.cpp).
    template <class Select, class Act>
    bool reclaim_from_other_caches(Select&& select, Act&& act) noexcept;
    template <class Select>
    std::size_t empty_other_caches(Select&& select, std::size_t expected) noexcept;
    bool reclaim_unused_reservation() noexcept;
    std::size_t release_idle_shards(std::uint32_t tick, std::uint64_t deadline_ns, bool& finished) noexcept;
    std::size_t count_idle_caches(std::uint32_t elapsed_ticks) noexcept;
    std::size_t release_idle_caches(std::size_t idle_caches) noexcept;

    const std::uint32_t tls_capacity_;
    const std::uint64_t tick_ns_;  // 0: release by demand is off
    const std::uint64_t epoch_ns_; // the coarse clock when the pool was built
    std::atomic<std::uint64_t> next_tick_ns_;
    std::atomic<std::uint64_t> next_room_scan_ns_{0};
    std::uint32_t last_tick_ = 0;
    std::atomic<std::size_t> released_by_demand_{0};
    std::atomic<std::size_t> released_by_trim_{0};
    std::atomic<int> releasers_{0};
    shared_fit_books fits_without_cache_;
    std::mutex release_mutex_;
};

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_POOL_CORE_HPP
