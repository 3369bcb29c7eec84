// zeropool: how a thread takes blocks or unused reservation from another
// thread's cache, whose owner takes no lock and does no atomic
// read-modify-write: freeze, process-wide barrier, check, then act. The
// protocol is explained in src/thread_cache.hpp; the policies that use it
// (trim, release by demand, a budget shortage) are in src/pool_reclaim.cpp.
#ifndef ZEROPOOL_SRC_CACHE_RECLAIM_HPP
#define ZEROPOOL_SRC_CACHE_RECLAIM_HPP

#include "cached_block.hpp"
#include "thread_cache.hpp"

#include <cstddef>
#include <cstdint>

namespace zeropool::detail {

/// One thread cache being reclaimed by a thread other than its owner. The
/// caller holds the cache's lock() for the whole life of this object, and
/// ends it with take_all(), thaw(), or nothing at all when it was never
/// frozen.
class cache_freeze {
public:
    cache_freeze() noexcept = default;
    explicit cache_freeze(thread_cache& cache) noexcept : cache_(&cache) {}

    thread_cache& cache() const noexcept { return *cache_; }

    /// Snapshots the slots, then freezes them: every slot's class gets
    /// frozen_bit and the put limit drops to 0, so that every operation of
    /// the owner that reads them from now on fails.
    void freeze() noexcept;

    enum class outcome {
        quiet,     // no operation of the owner can change the cache now
        in_flight, // an operation that started before the freeze is running
        changed,   // an operation committed since freeze(): freeze again
    };
    /// Called after a process_barrier() that followed freeze().
    outcome check() const noexcept;

    /// Quiet only. Takes every block into `out` (room for
    /// thread_cache::max_capacity) and returns how many; the cache is left
    /// empty and frozen, with its reservation unchanged (the caller gives it
    /// back through byte_budget, then calls thaw()).
    std::uint32_t take_all(cached_block* out) noexcept;

    /// Restores the slots' classes (the cache keeps its blocks); the put
    /// limit stays 0 until the owner's next slow path sets it.
    void thaw() noexcept;

    /// Bytes of the reservation not covering a block (quiet only).
    std::size_t unused_reservation() const noexcept;

    /// Set by freeze_until_quiet(): frozen and quiet; the caller may act.
    bool quiet = false;
    /// Set by freeze_until_quiet(): its owner stayed in an operation too
    /// long; thawed, left alone.
    bool skipped = false;

private:
    thread_cache* cache_ = nullptr;
    std::uint64_t state_ = 0; // state_ when frozen
    std::uint32_t count_ = 0;
    std::uint32_t cls_[thread_cache::max_capacity + 1] = {};
};

/// Freezes the `n` caches (whose locks the caller holds) until each is quiet,
/// with as few process-wide barriers as it takes (one when no owner is in the
/// middle of an operation). A cache whose owner stays in the middle of an
/// operation for `patience_ms` (an owner stopped in a signal handler, or
/// preempted that long) is thawed and marked `skipped`; the others end
/// `quiet`. Returns false, with every cache thawed and none quiet, when
/// process_barrier() is not available.
bool freeze_until_quiet(cache_freeze* caches, std::size_t n, unsigned patience_ms) noexcept;

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_CACHE_RECLAIM_HPP
