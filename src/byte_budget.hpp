// zeropool: the pool's idle-byte budget.
//
// Who touches what:
//   used_   atomic; any thread. Grows only by a compare-exchange that keeps it
//       <= cap_, so the bytes it stands for never exceed the cap; shrinks by
//       the bytes given back, which were reserved before (asserted in debug
//       builds).
//   cap_    immutable.
//
// What it counts: the bytes of the blocks the shards hold, plus every thread
// cache's reservation (the bytes its slots hold and the room it keeps for
// more, so that a cache hit or put needs no atomic read-modify-write).
#ifndef ZEROPOOL_SRC_BYTE_BUDGET_HPP
#define ZEROPOOL_SRC_BYTE_BUDGET_HPP

#include <atomic>
#include <cassert>
#include <cstddef>

namespace zeropool::detail {

class byte_budget {
public:
    explicit byte_budget(std::size_t cap) noexcept : cap_(cap) {}

    byte_budget(const byte_budget&) = delete;
    byte_budget& operator=(const byte_budget&) = delete;

    /// Reserves `bytes` when that keeps the total within the cap; false (and
    /// nothing reserved) otherwise.
    bool try_reserve(std::size_t bytes) noexcept {
        std::size_t used = used_.load(std::memory_order_relaxed);
        do {
            if (bytes > cap_ - used) return false;
        } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
        return true;
    }

    /// Gives back `bytes` reserved earlier.
    void release(std::size_t bytes) noexcept {
        if (bytes == 0) return;
        [[maybe_unused]] const std::size_t before = used_.fetch_sub(bytes, std::memory_order_relaxed);
        assert(before >= bytes && "byte_budget: more released than reserved");
    }

    /// Bytes reserved now (a relaxed snapshot).
    std::size_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
    std::size_t cap() const noexcept { return cap_; }

private:
    const std::size_t cap_;
    std::atomic<std::size_t> used_{0};
};

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_BYTE_BUDGET_HPP
