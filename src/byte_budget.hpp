// zeropool: the pool's idle-byte budget.
//
// Who touches what:
//   used_   atomic; any thread. Grows only by a compare-exchange that keeps it
//       <= cap_, so the bytes it stands for never exceed the cap; shrinks by
//       the bytes given back, which were reserved before (asserted in debug
//       builds).
//   cap_    immutable.
//   peak_   atomic; raised (compare-exchange) after a reservation that grew
//       used_ past it.
//
// What it counts: the bytes of the blocks the shards hold, plus every thread
// cache's reservation (the bytes its slots hold and the room it keeps for
// more, so that a cache hit or put needs no atomic read-modify-write).
//
// It is the only writer of a cache's reservation: the cache's owner under the
// cache's lock, or a reclaimer holding that lock while the cache is frozen
// (src/cache_reclaim.cpp). Invariants, asserted in debug builds after every
// change: used <= cap; for each cache, held <= reserved <= cache_limit.
#ifndef ZEROPOOL_SRC_BYTE_BUDGET_HPP
#define ZEROPOOL_SRC_BYTE_BUDGET_HPP

#include "thread_cache.hpp"

#include <atomic>
#include <cassert>
#include <cstddef>

namespace zeropool::detail {

class byte_budget {
public:
    /// A budget of `cap` bytes, of which one thread cache may reserve at most
    /// `cache_limit`.
    byte_budget(std::size_t cap, std::size_t cache_limit) noexcept : cap_(cap), cache_limit_(cache_limit) {}

    byte_budget(const byte_budget&) = delete;
    byte_budget& operator=(const byte_budget&) = delete;

    /// Reserves `bytes` when that keeps the total within the cap; false (and
    /// nothing reserved) otherwise.
    bool try_reserve(std::size_t bytes) noexcept {
        std::size_t used = used_.load(std::memory_order_relaxed);
        do {
            if (bytes > cap_ - used) return false;
        } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
        raise_peak(used + bytes);
        return true;
    }

    /// Gives back `bytes` reserved earlier.
    void release(std::size_t bytes) noexcept {
        if (bytes == 0) return;
        [[maybe_unused]] const std::size_t before = used_.fetch_sub(bytes, std::memory_order_relaxed);
        assert(before >= bytes && "byte_budget: more released than reserved");
    }

    // ---- a thread cache's reservation (under the cache's lock) ----------------

    /// Grows `cache`'s reservation by `bytes` taken from the budget; false (and
    /// nothing changed) when the cap does not allow it.
    bool grow(thread_cache& cache, std::size_t bytes) noexcept {
        if (!try_reserve(bytes)) return false;
        cache.set_reserved(cache.reserved() + bytes);
        check(cache);
        return true;
    }

    /// Gives `bytes` of `cache`'s reservation, not held by any of its blocks,
    /// back to the budget.
    void shrink(thread_cache& cache, std::size_t bytes) noexcept {
        cache.set_reserved(cache.reserved() - bytes);
        release(bytes);
        check(cache);
    }

    /// Blocks whose budget is held (from a shard) move into `cache`: `bytes`
    /// of that budget join its reservation; the total is unchanged.
    void adopt(thread_cache& cache, std::size_t bytes) noexcept {
        cache.set_reserved(cache.reserved() + bytes);
        check(cache);
    }

    /// Blocks just popped from `cache` leave for a shard with their budget:
    /// `bytes` leave its reservation; the total is unchanged.
    void hand_over(thread_cache& cache, std::size_t bytes) noexcept {
        cache.set_reserved(cache.reserved() - bytes);
        check(cache);
    }

    /// Bytes reserved now (a relaxed snapshot).
    std::size_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
    std::size_t cap() const noexcept { return cap_; }
    std::size_t cache_limit() const noexcept { return cache_limit_; }
    /// The highest used() has been.
    std::size_t peak() const noexcept { return peak_.load(std::memory_order_relaxed); }

private:
    void check([[maybe_unused]] const thread_cache& cache) const noexcept {
        assert(cache.held() <= cache.reserved() && "byte_budget: a cache holds more than it reserved");
        assert(cache.reserved() <= cache_limit_ && "byte_budget: a cache reserved more than its limit");
        assert(used() <= cap_ && "byte_budget: more reserved than the cap");
    }

    void raise_peak(std::size_t used) noexcept {
        std::size_t peak = peak_.load(std::memory_order_relaxed);
        while (used > peak && !peak_.compare_exchange_weak(peak, used, std::memory_order_relaxed)) {
        }
    }

    const std::size_t cap_;
    const std::size_t cache_limit_;
    std::atomic<std::size_t> used_{0};
    std::atomic<std::size_t> peak_{0};
};

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_BYTE_BUDGET_HPP
