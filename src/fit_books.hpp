// zeropool: the books of fitted blocks, which stats() reports: allocations
// served by a block of a larger class, and, of the fitted blocks handed out
// and not yet back, their number, the bytes their requests asked for and the
// bytes their blocks hold (src/fitted_block.hpp has the layout).
//
// Every thread cache keeps books of its owner's fits and returns, written by
// the owner only: a load and a store per counter, no read-modify-write and no
// cache line shared with another thread (a pool that fits on every miss paid
// four locked adds on one line per fit, and four per return). A thread that
// takes back a block another thread handed out makes its own live counts go
// below zero: they are kept modulo 2^64, and only their sum over every book of
// the pool (sum_caches() in src/thread_registry.cpp, plus the books of the
// caches that are gone and of calls made without a cache) means anything.
#ifndef ZEROPOOL_SRC_FIT_BOOKS_HPP
#define ZEROPOOL_SRC_FIT_BOOKS_HPP

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace zeropool::detail {

/// A snapshot of fit books, or a sum of them (modulo 2^64).
struct fit_totals {
    std::uint64_t allocations = 0;    // allocations served by a fitted block
    std::uint64_t live_blocks = 0;    // fitted blocks handed out, not yet back
    std::uint64_t live_requested = 0; // the bytes their requests asked for
    std::uint64_t live_bytes = 0;     // the upstream bytes their blocks hold

    fit_totals& operator+=(const fit_totals& o) noexcept {
        allocations += o.allocations;
        live_blocks += o.live_blocks;
        live_requested += o.live_requested;
        live_bytes += o.live_bytes;
        return *this;
    }
};

/// Fit books that one thread writes and any thread reads (relaxed).
class fit_books {
public:
    /// A fitted block of `block_bytes` serves a request of `requested` bytes.
    /// Only one thread may call the note_ functions of one book.
    void note_fit(std::size_t requested, std::size_t block_bytes) noexcept {
        bump(allocations_, 1);
        bump(live_blocks_, 1);
        bump(live_requested_, requested);
        bump(live_bytes_, block_bytes);
    }
    /// A fitted block of `block_bytes` that served `requested` bytes is back.
    void note_return(std::size_t requested, std::size_t block_bytes) noexcept {
        bump(live_blocks_, -std::uint64_t{1});
        bump(live_requested_, -std::uint64_t{requested});
        bump(live_bytes_, -std::uint64_t{block_bytes});
    }
    /// The counters as they are now; any thread.
    fit_totals read() const noexcept {
        return fit_totals{allocations_.load(std::memory_order_relaxed), live_blocks_.load(std::memory_order_relaxed),
                          live_requested_.load(std::memory_order_relaxed), live_bytes_.load(std::memory_order_relaxed)};
    }

private:
    static void bump(std::atomic<std::uint64_t>& c, std::uint64_t by) noexcept {
        c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
    }

    std::atomic<std::uint64_t> allocations_{0};
    std::atomic<std::uint64_t> live_blocks_{0};
    std::atomic<std::uint64_t> live_requested_{0};
    std::atomic<std::uint64_t> live_bytes_{0};
};

/// Fit books that any thread may write: for calls made without a thread
/// cache (a thread past its exit handler, or one whose cache could not be
/// allocated). Locked adds; rare.
class shared_fit_books {
public:
    void note_fit(std::size_t requested, std::size_t block_bytes) noexcept {
        allocations_.fetch_add(1, std::memory_order_relaxed);
        live_blocks_.fetch_add(1, std::memory_order_relaxed);
        live_requested_.fetch_add(requested, std::memory_order_relaxed);
        live_bytes_.fetch_add(block_bytes, std::memory_order_relaxed);
    }
    void note_return(std::size_t requested, std::size_t block_bytes) noexcept {
        live_blocks_.fetch_sub(1, std::memory_order_relaxed);
        live_requested_.fetch_sub(requested, std::memory_order_relaxed);
        live_bytes_.fetch_sub(block_bytes, std::memory_order_relaxed);
    }
    fit_totals read() const noexcept {
        return fit_totals{allocations_.load(std::memory_order_relaxed), live_blocks_.load(std::memory_order_relaxed),
                          live_requested_.load(std::memory_order_relaxed), live_bytes_.load(std::memory_order_relaxed)};
    }

private:
    std::atomic<std::uint64_t> allocations_{0};
    std::atomic<std::uint64_t> live_blocks_{0};
    std::atomic<std::uint64_t> live_requested_{0};
    std::atomic<std::uint64_t> live_bytes_{0};
};

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_FIT_BOOKS_HPP
