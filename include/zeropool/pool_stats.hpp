// zeropool: counters reported by sharded_buffer_resource::stats().
#ifndef ZEROPOOL_POOL_STATS_HPP
#define ZEROPOOL_POOL_STATS_HPP

#include <cstddef>
#include <cstdint>

namespace zeropool {

/// A snapshot of a pool's counters. Exact when no other thread is inside the
/// pool while stats() runs; otherwise each field is a recent value.
struct pool_stats {
    /// Pooled allocations served by the calling thread's cache (any thread).
    std::uint64_t thread_cache_hits = 0;
    /// Pooled allocations served by a shard. Blocks a shard hands to a thread
    /// cache in the same lock (a refill) count as thread cache hits when served.
    std::uint64_t shard_hits = 0;
    /// Calls made to upstream allocate (pooled misses and pass-through requests).
    std::uint64_t upstream_allocations = 0;
    /// Calls made to upstream deallocate.
    std::uint64_t upstream_deallocations = 0;
    /// Idle bytes held by the pool now, in all tiers: each block counted as
    /// the bytes it holds from upstream (not the request's size).
    std::size_t idle_bytes = 0;
    /// Idle blocks held by the pool now, in all tiers.
    std::size_t idle_blocks = 0;
    /// Bytes of the max_cached_bytes budget in use now: the idle bytes of the
    /// shards plus every thread cache's reservation. Read in one atomic load,
    /// so it is <= max_cached_bytes in every snapshot, even while other
    /// threads run (idle_bytes, summed tier by tier, may count a block that
    /// moves between tiers twice). When no other thread is inside the pool,
    /// idle_bytes <= reserved_bytes.
    std::size_t reserved_bytes = 0;
    /// The highest reserved_bytes has been: an upper bound of the peak of
    /// idle bytes (they differ by the thread caches' unused reservation).
    std::size_t peak_reserved_bytes = 0;
    /// Bytes returned upstream by release by demand (idle_release_ms), in
    /// all, since the pool was built.
    std::size_t released_by_demand_bytes = 0;
    /// Bytes returned upstream by trim(), in all, since the pool was built.
    std::size_t released_by_trim_bytes = 0;
    /// Pooled allocations served by an idle block of a larger class (fit,
    /// pool_config::max_fit_classes), in all, since the pool was built.
    std::uint64_t fitted_allocations = 0;
    /// Fitted allocations not deallocated yet.
    std::size_t live_fitted_blocks = 0;
    /// The bytes those allocations requested ...
    std::size_t live_fitted_requested_bytes = 0;
    /// ... and the bytes their blocks hold from upstream: the difference is
    /// what the program pays for the reuse.
    std::size_t live_fitted_block_bytes = 0;
};

} // namespace zeropool

#endif // ZEROPOOL_POOL_STATS_HPP
