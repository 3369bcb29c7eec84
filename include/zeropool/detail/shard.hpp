// zeropool: one shard of the shared pool.
//
// Who touches what:
//   entries_, count_, hits_, bytes_     the shard's mutex_.
//   count_hint_                         written under mutex_ (relaxed store),
//       read without it to skip empty shards; a stale value only costs a
//       needless lock or a look elsewhere.
//   mutex_ is also taken by the fork prepare handler (thread_registry.cpp).
#ifndef ZEROPOOL_DETAIL_SHARD_HPP
#define ZEROPOOL_DETAIL_SHARD_HPP

#include <zeropool/detail/asan.hpp>
#include <zeropool/detail/size_class.hpp>
#include <zeropool/detail/thread_cache.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace zeropool::detail {

/// A mutex-protected first-fit array of up to `capacity` idle blocks.
/// Complexity: push O(1); take O(n) in the blocks held (n <= capacity).
class alignas(64) shard {
public:
    /// Throws: std::bad_alloc when the entry array cannot be allocated.
    explicit shard(std::uint32_t capacity)
        : entries_(new cached_block[capacity]), capacity_(capacity) {}

    shard(const shard&) = delete;
    shard& operator=(const shard&) = delete;

    /// Adds a block; false when the shard is full.
    bool push(void* p, std::uint32_t cls) noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        if (count_ == capacity_) return false;
        ZEROPOOL_POISON_IDLE(p, upstream_size(cls));
        entries_[count_++] = cached_block{p, cls};
        bytes_ += upstream_size(cls);
        count_hint_.store(count_, std::memory_order_relaxed);
        return true;
    }

    /// Removes the most recently added block of class `cls`, or returns nullptr.
    void* take(std::uint32_t cls) noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        for (std::uint32_t i = count_; i-- > 0;) {
            if (entries_[i].cls != cls) continue;
            void* p = entries_[i].ptr;
            entries_[i] = entries_[--count_];
            bytes_ -= upstream_size(cls);
            ++hits_;
            count_hint_.store(count_, std::memory_order_relaxed);
            ZEROPOOL_UNPOISON_IDLE(p, upstream_size(cls));
            return p;
        }
        return nullptr;
    }

    /// Removes up to `max` blocks of class `cls` into `out` (the most recently
    /// added first) under one lock, and returns how many. Counts one hit: the
    /// caller serves one block and caches the rest (served later as thread
    /// cache hits).
    std::uint32_t take_batch(std::uint32_t cls, void** out, std::uint32_t max) noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        std::uint32_t n = 0;
        // Entries above i are examined already; the one moved into i comes from above.
        for (std::uint32_t i = count_; n < max && i-- > 0;) {
            if (entries_[i].cls != cls) continue;
            out[n++] = entries_[i].ptr;
            entries_[i] = entries_[--count_];
        }
        if (n == 0) return 0;
        bytes_ -= n * upstream_size(cls);
        ++hits_;
        count_hint_.store(count_, std::memory_order_relaxed);
        for (std::uint32_t k = 0; k < n; ++k) ZEROPOOL_UNPOISON_IDLE(out[k], upstream_size(cls));
        return n;
    }

    /// Adds blocks from `blocks` under one lock until the shard is full;
    /// returns how many were added (a prefix of `blocks`).
    std::uint32_t push_batch(const cached_block* blocks, std::uint32_t n) noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        std::uint32_t k = 0;
        for (; k < n && count_ < capacity_; ++k) {
            ZEROPOOL_POISON_IDLE(blocks[k].ptr, upstream_size(blocks[k].cls));
            entries_[count_++] = blocks[k];
            bytes_ += upstream_size(blocks[k].cls);
        }
        count_hint_.store(count_, std::memory_order_relaxed);
        return k;
    }

    /// Removes any block into `out`; false when empty.
    bool take_any(cached_block& out) noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        if (count_ == 0) return false;
        out = entries_[--count_];
        bytes_ -= upstream_size(out.cls);
        ZEROPOOL_UNPOISON_IDLE(out.ptr, upstream_size(out.cls));
        count_hint_.store(count_, std::memory_order_relaxed);
        return true;
    }

    /// True when the shard looked empty recently (no lock).
    bool probably_empty() const noexcept { return count_hint_.load(std::memory_order_relaxed) == 0; }
    /// True when the shard looked full recently (no lock).
    bool probably_full() const noexcept {
        return count_hint_.load(std::memory_order_relaxed) >= capacity_;
    }

    /// Counters for stats(), read under the lock.
    struct snapshot {
        std::uint64_t hits;
        std::size_t bytes;
        std::size_t blocks;
    };
    snapshot read() noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        return snapshot{hits_, bytes_, count_};
    }

    /// For the fork handlers only.
    void lock() noexcept { mutex_.lock(); }
    void unlock() noexcept { mutex_.unlock(); }

private:
    std::mutex mutex_;
    std::unique_ptr<cached_block[]> entries_;
    std::uint32_t capacity_;
    std::uint32_t count_ = 0;
    std::atomic<std::uint32_t> count_hint_{0};
    std::uint64_t hits_ = 0;
    std::size_t bytes_ = 0;
};

} // namespace zeropool::detail

#endif // ZEROPOOL_DETAIL_SHARD_HPP
