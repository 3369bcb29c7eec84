// zeropool: the per-(thread, pool) cache of idle blocks.
//
// Who touches what:
//   slots (cls_, ptr_), reserved_, memo_     owner thread only. The pool's
//       destructor also drains them, which the contract orders after the
//       owner's last call on that pool (using a pool while it is destroyed is
//       the caller's bug).
//   count_, held_, hits_                     written by the owner thread only,
//       as relaxed atomic stores (plain moves on x86, no read-modify-write);
//       read by stats() from any thread.
//   pool_, pool_id_, prev_, next_, dead_      the registry mutex (see
//       thread_registry.hpp): the links of the pool's list of caches, and
//       whether the pool has been destroyed.
#ifndef ZEROPOOL_DETAIL_THREAD_CACHE_HPP
#define ZEROPOOL_DETAIL_THREAD_CACHE_HPP

#include <zeropool/config.hpp>
#include <zeropool/detail/asan.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace zeropool::detail {

struct pool_handle;

/// One idle block: its address and size class.
struct cached_block {
    void* ptr;
    std::uint32_t cls;
};

/// A small LIFO array of idle blocks owned by one thread for one pool. The
/// hit paths (take, try_put) take no lock and do no atomic read-modify-write.
/// Budget: the cache holds `reserved()` bytes of the pool's global byte budget
/// and keeps `held() <= reserved()`; growing the reservation is the pool's job.
class thread_cache {
public:
    /// Largest tls_cache_size accepted.
    static constexpr std::uint32_t max_capacity = 16;

    thread_cache(pool_handle& pool, std::uint64_t pool_id, std::uint32_t capacity) noexcept
        : pool_(&pool), pool_id_(pool_id), capacity_(capacity) {}

    thread_cache(const thread_cache&) = delete;
    thread_cache& operator=(const thread_cache&) = delete;

    // ---- owner thread only -------------------------------------------------

    /// The classification of the last pooled request this thread made of the
    /// pool: a loop that asks for one size again and again skips the size
    /// checks and the class arithmetic on the hit paths. Owner thread only.
    struct request_memo {
        std::size_t bytes = 0;
        std::size_t alignment_key = 0; // alignment | memo_tag; 0 matches no request
        std::size_t upstream = 0;      // upstream_size(cls)
        std::size_t offset = 0;        // data_offset(class size, alignment)
        std::uint32_t cls = 0;
    };
    /// Set in every alignment_key, so that the initial key matches no request.
    static constexpr std::size_t memo_tag = ~(~std::size_t{0} >> 1);

    /// True when (bytes, alignment) is the remembered request.
    ZEROPOOL_ALWAYS_INLINE bool memo_matches(std::size_t bytes, std::size_t alignment) const noexcept {
        return bytes == memo_.bytes && (alignment | memo_tag) == memo_.alignment_key;
    }
    /// The remembered classification; valid when memo_matches().
    const request_memo& memo() const noexcept { return memo_; }
    /// Remembers a pooled request's classification.
    void remember(std::size_t bytes, std::size_t alignment, std::uint32_t cls, std::size_t upstream,
                  std::size_t offset) noexcept {
        memo_.bytes = bytes;
        memo_.alignment_key = alignment | memo_tag;
        memo_.upstream = upstream;
        memo_.offset = offset;
        memo_.cls = cls;
    }

    /// Returns the most recently cached block of class `cls` (of `bytes`
    /// bytes), or nullptr. O(1) when the newest block matches (the common
    /// case for a loop), O(capacity) otherwise.
    ZEROPOOL_ALWAYS_INLINE void* take(std::uint32_t cls, std::size_t bytes) noexcept {
        if (void* p = take_newest(cls, bytes)) return p;
        const std::uint32_t n = count_.load(std::memory_order_relaxed);
        return n > 1 ? take_older(cls, bytes, n) : nullptr;
    }

    /// The newest block when it is of class `cls` (of `bytes` bytes), or
    /// nullptr: take() without its O(capacity) fallback, for the hit path.
    ZEROPOOL_ALWAYS_INLINE void* take_newest(std::uint32_t cls, std::size_t bytes) noexcept {
        const std::uint32_t n = count_.load(std::memory_order_relaxed);
        if (n == 0 || cls_[n - 1] != cls) return nullptr;
        count_.store(n - 1, std::memory_order_relaxed);
        held_.store(held_.load(std::memory_order_relaxed) - bytes, std::memory_order_relaxed);
        hits_.store(hits_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        ZEROPOOL_UNPOISON_IDLE(ptr_[n - 1], bytes);
        return ptr_[n - 1];
    }

    /// Caches `p` when a slot is free and the reservation covers it.
    ZEROPOOL_ALWAYS_INLINE bool try_put(void* p, std::uint32_t cls, std::size_t bytes) noexcept {
        const std::uint32_t n = count_.load(std::memory_order_relaxed);
        if (n == capacity_ || bytes > reserved_ - held()) return false;
        push(p, cls, bytes, n);
        return true;
    }

    /// Caches `p` unconditionally; the caller made room and reserved for it.
    void push(void* p, std::uint32_t cls, std::size_t bytes) noexcept {
        push(p, cls, bytes, count_.load(std::memory_order_relaxed));
    }

    /// Removes and returns the oldest block; the cache must not be empty.
    /// The reservation is unchanged.
    cached_block pop_oldest(std::size_t bytes_of_oldest) noexcept {
        const std::uint32_t n = count_.load(std::memory_order_relaxed);
        cached_block b{ptr_[0], cls_[0]};
        for (std::uint32_t j = 1; j < n; ++j) {
            cls_[j - 1] = cls_[j];
            ptr_[j - 1] = ptr_[j];
        }
        count_.store(n - 1, std::memory_order_relaxed);
        held_.store(held() - bytes_of_oldest, std::memory_order_relaxed);
        ZEROPOOL_UNPOISON_IDLE(b.ptr, bytes_of_oldest);
        return b;
    }

    /// Class of the oldest block; the cache must not be empty.
    std::uint32_t oldest_class() const noexcept { return cls_[0]; }

    bool empty() const noexcept { return count_.load(std::memory_order_relaxed) == 0; }
    bool full() const noexcept { return count_.load(std::memory_order_relaxed) == capacity_; }
    std::size_t held() const noexcept { return held_.load(std::memory_order_relaxed); }
    std::size_t reserved() const noexcept { return reserved_; }
    void set_reserved(std::size_t bytes) noexcept { reserved_ = bytes; }

    // ---- any thread (relaxed snapshots for stats) ----------------------------

    std::uint64_t hits() const noexcept { return hits_.load(std::memory_order_relaxed); }
    std::uint32_t published_count() const noexcept { return count_.load(std::memory_order_relaxed); }
    std::size_t published_held() const noexcept { return held_.load(std::memory_order_relaxed); }

    // ---- registry mutex ----------------------------------------------------

    pool_handle* pool_;            // the pool these blocks belong to
    std::uint64_t pool_id_;        // that pool's never-reused id
    thread_cache* prev_ = nullptr; // the pool's list of caches
    thread_cache* next_ = nullptr;
    bool dead_ = false;            // the pool is destroyed; the owner frees this record

private:
    void push(void* p, std::uint32_t cls, std::size_t bytes, std::uint32_t n) noexcept {
        ZEROPOOL_POISON_IDLE(p, bytes);
        cls_[n] = cls;
        ptr_[n] = p;
        count_.store(n + 1, std::memory_order_relaxed);
        held_.store(held() + bytes, std::memory_order_relaxed);
    }

    // A match below the newest block: remove it and keep the age order.
    ZEROPOOL_NOINLINE void* take_older(std::uint32_t cls, std::size_t bytes, std::uint32_t n) noexcept {
        for (std::uint32_t i = n - 1; i-- > 0;) {
            if (cls_[i] != cls) continue;
            void* p = ptr_[i];
            for (std::uint32_t j = i + 1; j < n; ++j) {
                cls_[j - 1] = cls_[j];
                ptr_[j - 1] = ptr_[j];
            }
            count_.store(n - 1, std::memory_order_relaxed);
            held_.store(held() - bytes, std::memory_order_relaxed);
            hits_.store(hits_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
            ZEROPOOL_UNPOISON_IDLE(p, bytes);
            return p;
        }
        return nullptr;
    }

    request_memo memo_;
    std::uint32_t capacity_;
    std::atomic<std::uint32_t> count_{0};
    std::atomic<std::size_t> held_{0}; // idle bytes in the slots
    std::size_t reserved_ = 0;         // bytes of the pool's budget this cache holds
    std::atomic<std::uint64_t> hits_{0};
    std::uint32_t cls_[max_capacity];
    void* ptr_[max_capacity];
};

} // namespace zeropool::detail

#endif // ZEROPOOL_DETAIL_THREAD_CACHE_HPP
