// zeropool: one shard of the shared pool.
//
// Who touches what:
//   nodes_, heads_, free_head_, count_, hits_, bytes_   the shard's mutex_.
//   A node records the tick (release by demand, src/pool_reclaim.cpp) at
//   which its block became idle here.
//   count_hint_                         written under mutex_ (relaxed store),
//       read without it to skip empty shards; a stale value only costs a
//       needless lock or a look elsewhere.
//   mutex_ is also taken by the fork prepare handler (thread_registry.cpp).
#ifndef ZEROPOOL_SRC_SHARD_HPP
#define ZEROPOOL_SRC_SHARD_HPP

#include <zeropool/detail/size_class.hpp>

#include "asan.hpp"
#include "cached_block.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace zeropool::detail {

/// A mutex-protected set of up to `capacity` idle blocks, kept in one
/// last-in-first-out list per size class: the nodes live in one array, linked
/// by index (a free list holds the unused nodes), so no idle block is written.
/// Complexity: push O(1); take O(1); take_any O(classes) (trim, destruction);
/// take_idle_since O(classes + blocks) (release by demand, once a tick).
class alignas(64) shard {
public:
    /// Throws: std::bad_alloc when the arrays cannot be allocated.
    explicit shard(std::uint32_t capacity)
        : nodes_(new node[capacity]), heads_(new std::uint32_t[class_count]), capacity_(capacity) {
        for (std::uint32_t i = 0; i < capacity; ++i) nodes_[i].next = i + 1 < capacity ? i + 1 : none;
        for (std::uint32_t c = 0; c < class_count; ++c) heads_[c] = none;
    }

    shard(const shard&) = delete;
    shard& operator=(const shard&) = delete;

    /// Adds a block, idle since tick `now`; false when the shard is full.
    bool push(void* p, std::uint32_t cls, std::uint32_t now) noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        if (count_ == capacity_) return false;
        link(p, cls, now);
        count_hint_.store(count_, std::memory_order_relaxed);
        return true;
    }

    /// Removes the most recently added block of class `cls`, or returns nullptr.
    void* take(std::uint32_t cls) noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        const std::uint32_t i = heads_[cls];
        if (i == none) return nullptr;
        void* p = unlink(cls, i);
        ++hits_;
        return p;
    }

    /// Removes the most recently added block of the smallest class in
    /// [lo, hi] into `out` (fit); false when there is none. O(hi - lo).
    bool take_smallest(std::uint32_t lo, std::uint32_t hi, cached_block& out) noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        for (std::uint32_t cls = lo; cls <= hi && cls < class_count; ++cls) {
            const std::uint32_t i = heads_[cls];
            if (i == none) continue;
            out = cached_block{unlink(cls, i), cls};
            ++hits_;
            return true;
        }
        return false;
    }

    /// Removes up to `max` blocks of class `cls` into `out` (the most recently
    /// added first) under one lock, and returns how many. Counts one hit: the
    /// caller serves one block and caches the rest (served later as thread
    /// cache hits). O(max).
    std::uint32_t take_batch(std::uint32_t cls, void** out, std::uint32_t max) noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        std::uint32_t n = 0;
        while (n < max && heads_[cls] != none) out[n++] = unlink(cls, heads_[cls]);
        if (n != 0) ++hits_;
        return n;
    }

    /// Adds blocks from `blocks`, idle since tick `now`, under one lock until
    /// the shard is full; returns how many were added (a prefix of `blocks`).
    std::uint32_t push_batch(const cached_block* blocks, std::uint32_t n, std::uint32_t now) noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        std::uint32_t k = 0;
        for (; k < n && count_ < capacity_; ++k) link(blocks[k].ptr, blocks[k].cls, now);
        count_hint_.store(count_, std::memory_order_relaxed);
        return k;
    }

    /// Removes any block into `out`; false when empty.
    bool take_any(cached_block& out) noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        if (count_ == 0) return false;
        std::uint32_t cls = 0;
        while (heads_[cls] == none) ++cls; // count_ != 0: some list is not empty
        out = cached_block{unlink(cls, heads_[cls]), cls};
        return true;
    }

    /// Removes up to `max` blocks idle since tick `before` or earlier into
    /// `out`, under one lock, and returns how many.
    std::uint32_t take_idle_since(std::uint32_t before, cached_block* out, std::uint32_t max) noexcept {
        std::lock_guard<std::mutex> lock(mutex_);
        std::uint32_t n = 0;
        for (std::uint32_t cls = 0; cls < class_count && n < max && count_ != 0; ++cls) {
            std::uint32_t* link_to = &heads_[cls]; // the link that points at node i
            for (std::uint32_t i = *link_to; i != none && n < max; i = *link_to) {
                if (static_cast<std::int32_t>(nodes_[i].idle_since - before) > 0) { // younger: keep
                    link_to = &nodes_[i].next;
                    continue;
                }
                *link_to = nodes_[i].next;
                out[n++] = cached_block{release_node(cls, i), cls};
            }
        }
        count_hint_.store(count_, std::memory_order_relaxed);
        return n;
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
    static constexpr std::uint32_t none = ~std::uint32_t{0};

    struct node {
        void* ptr;
        std::uint32_t cls;
        std::uint32_t next;       // next node of the same class list, or of the free list
        std::uint32_t idle_since; // the tick at which the block came here
    };

    /// Puts `p` at the head of class `cls`'s list, in an unused node. Caller
    /// holds mutex_ and has checked count_ < capacity_.
    void link(void* p, std::uint32_t cls, std::uint32_t now) noexcept {
        ZEROPOOL_POISON_IDLE(p, upstream_size(cls));
        const std::uint32_t i = free_head_;
        free_head_ = nodes_[i].next;
        nodes_[i] = node{p, cls, heads_[cls], now};
        heads_[cls] = i;
        ++count_;
        bytes_ += upstream_size(cls);
    }

    /// Removes node `i`, the head of class `cls`'s list; returns its block.
    /// Caller holds mutex_.
    void* unlink(std::uint32_t cls, std::uint32_t i) noexcept {
        heads_[cls] = nodes_[i].next;
        return release_node(cls, i);
    }

    /// Frees node `i`, already out of class `cls`'s list; returns its block.
    /// Caller holds mutex_.
    void* release_node(std::uint32_t cls, std::uint32_t i) noexcept {
        void* p = nodes_[i].ptr;
        nodes_[i].next = free_head_;
        free_head_ = i;
        --count_;
        bytes_ -= upstream_size(cls);
        count_hint_.store(count_, std::memory_order_relaxed);
        ZEROPOOL_UNPOISON_IDLE(p, upstream_size(cls));
        return p;
    }

    std::mutex mutex_;
    std::unique_ptr<node[]> nodes_;
    std::unique_ptr<std::uint32_t[]> heads_; // per class: its newest node, or none
    std::uint32_t capacity_;
    std::uint32_t free_head_ = 0;             // first unused node, or none
    std::uint32_t count_ = 0;
    std::atomic<std::uint32_t> count_hint_{0};
    std::uint64_t hits_ = 0;
    std::size_t bytes_ = 0;
};

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_SHARD_HPP
