// zeropool: the per-(thread, pool) cache of idle blocks.
//
// Who touches what:
//   slots (cls_, ptr_), reserved_, memo_     owner thread only, and the pool's
//       destructor, which empties the cache after the owner's last call on
//       that pool (using a pool while it is destroyed is the caller's bug)
//       and while the registry keeps the owner off it (draining_).
//   state_ (count and hits), room_, reserved_   written by the owner thread only,
//       as relaxed atomic stores (plain moves on x86, no read-modify-write);
//       read by stats() from any thread (held = reserved_ - room_, a snapshot
//       that may be off by the block in flight).
//   pool_, prev_, next_, dead_, draining_, orphaned_   the registry mutex
//       (see thread_registry.hpp): the links of the pool's list of caches,
//       whether the pool has been destroyed, and who frees a dead cache.
//   The pool's destructor empties a dead cache without the registry mutex,
//   while draining_ is set (the owner thread keeps off it then).
#ifndef ZEROPOOL_SRC_THREAD_CACHE_HPP
#define ZEROPOOL_SRC_THREAD_CACHE_HPP

#include <zeropool/config.hpp>
#include "asan.hpp"
#include "cached_block.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace zeropool::detail {

class registered_pool;
class byte_budget;

/// A small LIFO array of idle blocks owned by one thread for one pool. The
/// hit paths (take, try_put) take no lock and do no atomic read-modify-write.
/// Budget: the cache holds `reserved()` bytes of the pool's global byte budget
/// and keeps `held() <= reserved()`; growing the reservation is the pool's job.
/// It stores the room left (reserved - held) rather than held, so that a
/// hit updates one counter and a put compares against one.
///
/// Slots are 1-based: slot 0 holds a class no request has (empty_class), so
/// a take needs no emptiness test.
class alignas(64) thread_cache { // a cache line of its own: no false sharing between threads
public:
    /// Largest tls_cache_size accepted.
    static constexpr std::uint32_t max_capacity = 16;
    /// The class of slot 0, which never holds a block: no request has it.
    static constexpr std::uint32_t empty_class = ~std::uint32_t{0};
    /// The class of the initial memo: no request has it, and it is not empty_class.
    static constexpr std::uint32_t no_class = ~std::uint32_t{0} - 1;

    thread_cache(registered_pool& pool, std::uint32_t capacity) noexcept : pool_(&pool), capacity_(capacity) {
        cls_[0] = empty_class;
        ptr_[0] = nullptr;
    }

    thread_cache(const thread_cache&) = delete;
    thread_cache& operator=(const thread_cache&) = delete;

    // ---- owner thread only -------------------------------------------------

    /// The classification of the last pooled request this thread made of the
    /// pool: a loop that asks for one size again and again skips the size
    /// checks and the class arithmetic on the hit paths. Owner thread only.
    /// The initial memo matches only (SIZE_MAX, 0), which no pool serves:
    /// its class is in no slot (a take misses) and its size exceeds any room
    /// (a put is refused), so both fall through to the checked paths.
    struct request_memo {
        std::size_t bytes = ~std::size_t{0};
        std::size_t alignment = 0;
        std::size_t upstream = ~std::size_t{0}; // upstream_size(cls)
        std::size_t offset = 0;                 // data_offset(class size, alignment)
        std::uint32_t cls = no_class;
    };

    /// True when (bytes, alignment) is the remembered request.
    ZEROPOOL_ALWAYS_INLINE bool memo_matches(std::size_t bytes, std::size_t alignment) const noexcept {
        return bytes == memo_.bytes && alignment == memo_.alignment;
    }
    /// The remembered classification; valid when memo_matches().
    const request_memo& memo() const noexcept { return memo_; }
    /// Remembers a pooled request's classification.
    void remember(std::size_t bytes, std::size_t alignment, std::uint32_t cls, std::size_t upstream,
                  std::size_t offset) noexcept {
        memo_.bytes = bytes;
        memo_.alignment = alignment;
        memo_.upstream = upstream;
        memo_.offset = offset;
        memo_.cls = cls;
    }

    /// Returns the most recently cached block of class `cls` (of `bytes`
    /// bytes), or nullptr. O(1) when the newest block matches (the common
    /// case for a loop), O(capacity) otherwise.
    ZEROPOOL_ALWAYS_INLINE void* take(std::uint32_t cls, std::size_t bytes) noexcept {
        if (void* p = take_newest(cls, bytes)) return p;
        const std::uint32_t n = count();
        return n > 1 ? take_older(cls, bytes, n) : nullptr;
    }

    /// The newest block when it is of class `cls` (of `bytes` bytes), or
    /// nullptr: take() without its O(capacity) fallback, for the hit path.
    ZEROPOOL_ALWAYS_INLINE void* take_newest(std::uint32_t cls, std::size_t bytes) noexcept {
        const std::uint64_t state = state_.load(std::memory_order_relaxed);
        const auto n = static_cast<std::uint32_t>(state & count_mask);
        if (cls_[n] != cls) return nullptr; // slot 0 (empty) matches no class
        state_.store(state + take_hit, std::memory_order_relaxed); // one fewer block, one more hit
        room_.store(room_.load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
        void* const p = ptr_[n];
        ZEROPOOL_UNPOISON_IDLE(p, bytes);
        ZEROPOOL_ASSUME(p != nullptr); // slots 1..count hold blocks
        return p;
    }

    /// Caches `p` when a slot is free and the reservation covers it.
    ZEROPOOL_ALWAYS_INLINE bool try_put(void* p, std::uint32_t cls, std::size_t bytes) noexcept {
        const std::uint64_t state = state_.load(std::memory_order_relaxed);
        const auto n = static_cast<std::uint32_t>(state & count_mask);
        const std::size_t room = room_.load(std::memory_order_relaxed);
        if (n == capacity_ || bytes > room) return false;
        cls_[n + 1] = cls;
        ptr_[n + 1] = p;
        state_.store(state + 1, std::memory_order_relaxed);
        room_.store(room - bytes, std::memory_order_relaxed);
        ZEROPOOL_POISON_IDLE(p, bytes);
        return true;
    }

    /// Caches `p` unconditionally; the caller made room and reserved for it.
    void push(void* p, std::uint32_t cls, std::size_t bytes) noexcept {
        push(p, cls, bytes, count());
    }

    /// Removes and returns the oldest block; the cache must not be empty.
    /// The reservation is unchanged.
    cached_block pop_oldest(std::size_t bytes_of_oldest) noexcept {
        const std::uint32_t n = count();
        cached_block b{ptr_[1], cls_[1]};
        for (std::uint32_t j = 2; j <= n; ++j) {
            cls_[j - 1] = cls_[j];
            ptr_[j - 1] = ptr_[j];
        }
        state_.store(state_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
        room_.store(room_.load(std::memory_order_relaxed) + bytes_of_oldest, std::memory_order_relaxed);
        ZEROPOOL_UNPOISON_IDLE(b.ptr, bytes_of_oldest);
        return b;
    }

    /// Class of the oldest block; the cache must not be empty.
    std::uint32_t oldest_class() const noexcept { return cls_[1]; }

    bool empty() const noexcept { return count() == 0; }
    /// Slots not holding a block. Owner thread only.
    std::uint32_t free_slots() const noexcept { return capacity_ - count(); }
    /// Records that the cache missed class `cls`; true when its previous miss
    /// was of the same class (the thread allocates that class faster than it
    /// frees it, as a producer does: refilling several blocks at once pays,
    /// where for a thread asking each class once it would only hoard).
    /// Owner thread only.
    bool repeated_miss(std::uint32_t cls) noexcept {
        const bool repeated = last_miss_ == cls;
        last_miss_ = cls;
        return repeated;
    }
    /// Blocks held. Exact for the owner thread; a relaxed snapshot for any
    /// other (stats()).
    std::uint32_t count() const noexcept {
        return static_cast<std::uint32_t>(state_.load(std::memory_order_relaxed) & count_mask);
    }
    bool full() const noexcept { return count() == capacity_; }
    /// Idle bytes in the slots. Owner thread only.
    std::size_t held() const noexcept {
        return reserved_.load(std::memory_order_relaxed) - room_.load(std::memory_order_relaxed);
    }
    /// Bytes of the pool's budget this cache holds (byte_budget changes it).
    /// Owner thread only.
    std::size_t reserved() const noexcept { return reserved_.load(std::memory_order_relaxed); }

    // ---- any thread (relaxed snapshots for stats) ----------------------------

    std::uint64_t hits() const noexcept { return state_.load(std::memory_order_relaxed) >> hits_shift; }
    /// Idle bytes in the slots, as a relaxed snapshot for stats().
    std::size_t published_held() const noexcept {
        const std::size_t reserved = reserved_.load(std::memory_order_relaxed);
        const std::size_t room = room_.load(std::memory_order_relaxed);
        return room < reserved ? reserved - room : 0;
    }

    // ---- registry mutex ----------------------------------------------------

    registered_pool* pool_;        // the pool these blocks belong to
    thread_cache* prev_ = nullptr; // the pool's list of caches
    thread_cache* next_ = nullptr;
    bool dead_ = false;            // the pool is unregistered
    bool draining_ = false;        // dead, and the pool's destructor is emptying it
    bool orphaned_ = false;        // the owner let go while draining_: release_dead_cache frees it

private:
    friend class byte_budget;          // the one writer of the reservation
    friend struct thread_cache_access; // unit tests (test/thread_cache_test.cpp)

    /// Sets the reservation; `bytes` must be >= held(). Owner thread only.
    void set_reserved(std::size_t bytes) noexcept {
        const std::size_t h = held();
        reserved_.store(bytes, std::memory_order_relaxed);
        room_.store(bytes - h, std::memory_order_relaxed);
    }

    void push(void* p, std::uint32_t cls, std::size_t bytes, std::uint32_t n) noexcept {
        ZEROPOOL_POISON_IDLE(p, bytes);
        cls_[n + 1] = cls;
        ptr_[n + 1] = p;
        state_.store(state_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        room_.store(room_.load(std::memory_order_relaxed) - bytes, std::memory_order_relaxed);
    }

    // A match below the newest block: remove it and keep the age order.
    ZEROPOOL_NOINLINE void* take_older(std::uint32_t cls, std::size_t bytes, std::uint32_t n) noexcept {
        for (std::uint32_t i = n; --i > 0;) { // slots n-1 .. 1
            if (cls_[i] != cls) continue;
            void* p = ptr_[i];
            for (std::uint32_t j = i + 1; j <= n; ++j) {
                cls_[j - 1] = cls_[j];
                ptr_[j - 1] = ptr_[j];
            }
            state_.store(state_.load(std::memory_order_relaxed) + take_hit, std::memory_order_relaxed);
            room_.store(room_.load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
            ZEROPOOL_UNPOISON_IDLE(p, bytes);
            return p;
        }
        return nullptr;
    }

    request_memo memo_;
    std::uint32_t last_miss_ = no_class; // class of the last miss (repeated_miss)
    std::uint32_t capacity_;
    // Blocks held (low 8 bits) and hits (the rest) in one word, so that a
    // hit stores it once: a take adds take_hit, a put adds 1.
    static constexpr std::uint64_t count_mask = 0xff;
    static constexpr unsigned hits_shift = 8;
    static constexpr std::uint64_t take_hit = (std::uint64_t{1} << hits_shift) - 1;
    static_assert(max_capacity <= count_mask, "the count must fit below the hits");
    std::atomic<std::uint64_t> state_{0};
    std::atomic<std::size_t> room_{0};     // reserved_ - idle bytes in the slots
    std::atomic<std::size_t> reserved_{0}; // bytes of the pool's budget this cache holds
    std::uint32_t cls_[max_capacity + 1]; // slot 0: empty_class; blocks in 1..count()
    void* ptr_[max_capacity + 1];
};

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_THREAD_CACHE_HPP
