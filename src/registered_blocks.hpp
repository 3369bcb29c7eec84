// zeropool: the address table of io_uring_registry (src/io_uring_registry.cpp):
// which registered block holds an address, and at which index of the
// fixed-buffer table, looked up without a lock.
//
// A registered_blocks is a sorted array of at most `capacity` blocks (start
// address, bytes, table index), guarded by a sequence lock. Writers (insert,
// erase) are serialised by the caller's mutex; find() may run on any thread
// at any time and writes nothing shared: it reads the array, then checks
// that no writer ran meanwhile, and reads again if one did. So concurrent
// lookups do not contend on a lock's cache line, as a shared_mutex's readers
// do (each of them writes the reader count). Every element is an atomic, so
// a lookup racing a writer reads stale or mixed values, never a torn one,
// and throws them away; the size never exceeds the capacity, so it never
// reads out of bounds.
//
// Capacity is the registry's table size (at most 16,384): each block holds a
// slot, so the array never grows and insert() never allocates. Inserting and
// erasing move the entries after the position (O(n) stores); they
// run when a block enters or leaves the pool, next to io_uring_register
// calls that cost far more.
#ifndef ZEROPOOL_SRC_REGISTERED_BLOCKS_HPP
#define ZEROPOOL_SRC_REGISTERED_BLOCKS_HPP

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>

namespace zeropool::detail {

class registered_blocks {
public:
    /// One block, as a writer reads it.
    struct entry {
        std::uintptr_t start;
        std::size_t bytes;
        int index;
    };

    /// Throws: std::bad_alloc.
    explicit registered_blocks(std::size_t capacity)
        : capacity_(capacity),
          starts_(std::make_unique<std::atomic<std::uintptr_t>[]>(capacity)),
          bytes_(std::make_unique<std::atomic<std::size_t>[]>(capacity)),
          indices_(std::make_unique<std::atomic<int>[]>(capacity)) {}

    /// Any thread, no lock. Returns: the table index of the block holding
    /// [a, a + n), or -1 when no block holds it all.
    int find(std::uintptr_t a, std::size_t n) const noexcept {
        for (unsigned spins = 1;; ++spins) {
            const std::uint64_t before = version_.load(std::memory_order_acquire);
            if ((before & 1) != 0) { // a writer is in the array
                // Give the core up now and then: a writer preempted inside
                // its few stores must not wait for the spinning readers.
                if (spins % 64 == 0) std::this_thread::yield();
                continue;
            }
            const std::size_t count = count_.load(std::memory_order_acquire);
            // The last block starting at or before a, the only one that may
            // hold it: a binary search without branches on the data (the
            // step is a conditional move), since lookups of random blocks
            // would mispredict every step of a branching one.
            int found = -1;
            if (count > 0 && starts_[0].load(std::memory_order_acquire) <= a) {
                std::size_t base = 0; // starts_[base] <= a throughout
                std::size_t len = count;
                while (len > 1) {
                    const std::size_t half = len / 2;
                    base = starts_[base + half].load(std::memory_order_acquire) <= a ? base + half : base;
                    len -= half;
                }
                const std::uintptr_t start = starts_[base].load(std::memory_order_acquire);
                const std::size_t bytes = bytes_[base].load(std::memory_order_acquire);
                if (a - start <= bytes && n <= bytes - (a - start)) found = indices_[base].load(std::memory_order_acquire);
            }
            if (version_.load(std::memory_order_relaxed) == before) return found;
        }
    }

    // Writers only (the caller's mutex held) from here on.

    std::size_t size() const noexcept { return count_.load(std::memory_order_relaxed); }
    bool full() const noexcept { return size() == capacity_; }

    /// Requires: pos < size().
    entry at(std::size_t pos) const noexcept {
        assert(pos < size());
        return entry{starts_[pos].load(std::memory_order_relaxed), bytes_[pos].load(std::memory_order_relaxed),
                     indices_[pos].load(std::memory_order_relaxed)};
    }

    /// Returns: the position of the block starting at `start`, or size().
    std::size_t position_of(std::uintptr_t start) const noexcept {
        const std::size_t pos = lower_bound(start);
        return pos < size() && starts_[pos].load(std::memory_order_relaxed) == start ? pos : size();
    }

    /// Requires: !full(); [start, start + bytes) overlaps no block here.
    void insert(entry e) noexcept {
        assert(!full());
        const std::size_t count = size();
        const std::size_t pos = lower_bound(e.start);
        begin_write();
        for (std::size_t i = count; i > pos; --i) copy(i - 1, i);
        starts_[pos].store(e.start, std::memory_order_release);
        bytes_[pos].store(e.bytes, std::memory_order_release);
        indices_[pos].store(e.index, std::memory_order_release);
        count_.store(count + 1, std::memory_order_release);
        end_write();
    }

    /// Requires: pos < size().
    void erase(std::size_t pos) noexcept {
        assert(pos < size());
        const std::size_t count = size();
        begin_write();
        for (std::size_t i = pos + 1; i < count; ++i) copy(i, i - 1);
        count_.store(count - 1, std::memory_order_release);
        end_write();
    }

private:
    std::size_t lower_bound(std::uintptr_t start) const noexcept {
        std::size_t lo = 0;
        std::size_t hi = size();
        while (lo < hi) {
            const std::size_t mid = lo + (hi - lo) / 2;
            if (starts_[mid].load(std::memory_order_relaxed) < start)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo;
    }
    void copy(std::size_t from, std::size_t to) noexcept {
        starts_[to].store(starts_[from].load(std::memory_order_relaxed), std::memory_order_release);
        bytes_[to].store(bytes_[from].load(std::memory_order_relaxed), std::memory_order_release);
        indices_[to].store(indices_[from].load(std::memory_order_relaxed), std::memory_order_release);
    }
    // The sequence lock: odd while a writer changes the array. Without
    // fences (which ThreadSanitizer does not model): the array's stores are
    // releases and find()'s loads acquires, so a lookup that reads any value
    // a writer stored also sees that writer's odd version when it checks the
    // version again (the check cannot move before the acquiring loads); the
    // even version is a release store, so a lookup that starts on it sees
    // every store before it. On x86-64 these are plain moves.
    void begin_write() noexcept {
        version_.store(version_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    void end_write() noexcept {
        version_.store(version_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }

    const std::size_t capacity_;
    std::atomic<std::uint64_t> version_{0};
    std::atomic<std::size_t> count_{0};
    std::unique_ptr<std::atomic<std::uintptr_t>[]> starts_; // sorted, ascending
    std::unique_ptr<std::atomic<std::size_t>[]> bytes_;
    std::unique_ptr<std::atomic<int>[]> indices_;
};

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_REGISTERED_BLOCKS_HPP
