// zeropool: the per-(thread, pool) cache of idle blocks.
//
// Who touches what:
//   memo_, last_miss_, slow_calls_, last_fit_, fit_cycled_   the owner thread only.
//   fits_   written by the owner thread only; read by stats() (fit_books.hpp).
//   state_ (count and hits), cls_, ptr_   written by the owner thread in its
//       announced operations (below) and in its sections under lock_; by a
//       reclaimer (another thread: trim, release by demand, a budget
//       shortage) under lock_ while the cache is frozen; by the pool's
//       destructor once the owner is kept off (draining_). All relaxed
//       atomics (plain moves on x86); state_ is stored with release last in
//       an operation, and loaded with acquire first.
//   announce_   the owner thread only (relaxed stores); read by a reclaimer.
//   put_limit_, frozen_, freezes_, reserved_   under lock_ (owner or reclaimer); the
//       owner's remember() also writes put_limit_, announced, and only when
//       frozen_ is clear. Read by stats() from any thread.
//   lock_   the owner's slow-path sections (never held across an upstream
//       call, an allocation or the registry mutex), a reclaimer, and the fork
//       handlers. Lock order: the registry mutex, then lock_, then a shard's.
//   pool_, prev_, next_, dead_, draining_, orphaned_, idle_ticks_,
//   last_seen_state_, abandoned_   the registry mutex (see thread_registry.hpp).
//
// How another thread reclaims from a cache whose owner takes no lock and does
// no atomic read-modify-write (src/cache_reclaim.cpp): every operation of the
// owner outside lock_ is *announced*: it loads state_, stores that value into
// announce_, and only then reads the slots or the put limit; it ends by
// storing a new state_ (it committed) or by clearing announce_ (it changed
// nothing). The reclaimer freezes the cache (marks every slot's class with
// frozen_bit and sets put_limit_ to 0, so any operation that reads them
// fails), issues a process-wide memory barrier (membarrier), and then knows
// that no operation that could still succeed is in flight when state_ is
// unchanged and announce_ does not equal it. The barrier orders the owner's
// announce store before its later loads without a fence on the owner's side
// (an asymmetric Dekker handshake, as userspace RCU and folly use).
#ifndef ZEROPOOL_SRC_THREAD_CACHE_HPP
#define ZEROPOOL_SRC_THREAD_CACHE_HPP

#include <zeropool/config.hpp>
#include <zeropool/detail/size_class.hpp>
#include "asan.hpp"
#include "cached_block.hpp"
#include "fit_books.hpp"

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace zeropool::detail {

class registered_pool;
class byte_budget;
class cache_freeze;

/// A small LIFO array of idle blocks owned by one thread for one pool. The
/// owner's operations outside lock_ (take_newest, take, try_put, remember)
/// take no lock and do no atomic read-modify-write.
/// Budget: the cache holds `reserved()` bytes of the pool's byte budget and
/// keeps `held() <= reserved()`. A put succeeds while the count is below
/// put_limit_: the number of slots that the reservation covers for blocks of
/// the remembered class, so that a hit updates no byte counter (a take or a
/// put of that class leaves count + room / class bytes unchanged).
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
    /// Set in a slot's class while a reclaimer has frozen the cache: no
    /// request has such a class, so a take of that slot fails.
    static constexpr std::uint32_t frozen_bit = std::uint32_t{1} << 31;
    /// A take whose hit count is a multiple of this many tells the pool to
    /// look at its clock (release by demand).
    static constexpr std::uint64_t hits_per_clock_check = 1024;

    thread_cache(registered_pool& pool, std::uint32_t capacity) noexcept : pool_(&pool), capacity_(capacity) {
        cls_[0].store(empty_class, std::memory_order_relaxed);
        ptr_[0].store(nullptr, std::memory_order_relaxed);
    }

    thread_cache(const thread_cache&) = delete;
    thread_cache& operator=(const thread_cache&) = delete;

    // ---- owner thread, no lock (announced operations) ------------------------

    /// The classification of the last pooled request this thread made of the
    /// pool: a loop that asks for one size again and again skips the size
    /// checks and the class arithmetic on the hit paths. Owner thread only.
    /// The initial memo matches only (SIZE_MAX, 0), which no pool serves:
    /// its class is in no slot (a take misses) and the put limit is 0 (a put
    /// is refused), so both fall through to the checked paths.
    struct request_memo {
        std::size_t bytes = ~std::size_t{0};
        std::size_t alignment = 0;
        std::size_t upstream = ~std::size_t{0}; // upstream_size(cls)
        std::uint32_t offset = 0;               // data_offset(class size, alignment)
        // block_alignment(cls) - 1: a block handed out for the request whose
        // start (data pointer - offset) has one of these bits set is not of
        // class cls but a fitted one (src/fitted_block.hpp).
        std::uint32_t exact_mask = 0;
        std::uint32_t cls = no_class;
    };

    /// True when (bytes, alignment) is the remembered request.
    ZEROPOOL_ALWAYS_INLINE bool memo_matches(std::size_t bytes, std::size_t alignment) const noexcept {
        return bytes == memo_.bytes && alignment == memo_.alignment;
    }
    /// The remembered classification; valid when memo_matches().
    const request_memo& memo() const noexcept { return memo_; }

    /// Remembers a pooled request's classification, and sets the put limit
    /// for its class (0 while a reclaimer has frozen the cache).
    void remember(std::size_t bytes, std::size_t alignment, std::uint32_t cls, std::size_t upstream,
                  std::size_t offset) noexcept {
        memo_.bytes = bytes;
        memo_.alignment = alignment;
        memo_.upstream = upstream;
        memo_.offset = static_cast<std::uint32_t>(offset);
        memo_.exact_mask = cls == no_class ? 0 : static_cast<std::uint32_t>(block_alignment(cls) - 1);
        memo_.cls = cls;
        static_cast<void>(announce());
        // Frozen: 0, as the reclaimer wants. Never leave a limit computed for
        // the previous class (an operation announced before the freeze may
        // have stored one after it; the reclaimer sees that and freezes again).
        // The count is read again after frozen_: a reclaimer may have emptied
        // the cache between announce()'s load and its store. And a whole
        // freeze may have come and gone while the limit was computed from
        // what it changed (announce()'s state, loaded before it, then looks
        // like no operation to the reclaimer): freezes_ tells, and the limit
        // is 0 then, for the slow path to set.
        const std::uint32_t freezes = freezes_.load(std::memory_order_acquire);
        put_limit_.store(frozen_.load(std::memory_order_acquire) ? 0 : limit_for(count(), upstream),
                         std::memory_order_relaxed);
        if (freezes_.load(std::memory_order_acquire) != freezes) put_limit_.store(0, std::memory_order_relaxed);
        withdraw();
    }

    /// The newest block when it is of class `cls`, or nullptr: take() without
    /// its O(capacity) fallback, for the hit path. `check_clock` is set when
    /// the pool should look at its clock (every hits_per_clock_check hits).
    ZEROPOOL_ALWAYS_INLINE void* take_newest(std::uint32_t cls, bool& check_clock) noexcept {
        const std::uint64_t state = announce();
        const std::uint32_t n = count_of(state);
        if (cls_[n].load(std::memory_order_relaxed) != cls) { // slot 0 (empty) matches no class
            withdraw();
            return nullptr;
        }
        void* const p = ptr_[n].load(std::memory_order_relaxed);
        const std::uint64_t next = state + take_hit; // one fewer block, one more hit
        state_.store(next, std::memory_order_release);
        check_clock = (next & clock_mask) == 0;
        ZEROPOOL_UNPOISON_IDLE(p, upstream_size(cls));
        ZEROPOOL_ASSUME(p != nullptr); // slots 1..count hold blocks
        return p;
    }

    /// Returns the most recently cached block of class `cls`, or nullptr.
    /// O(1) when the newest block matches (the common case for a loop),
    /// O(capacity) otherwise.
    void* take(std::uint32_t cls) noexcept {
        const std::uint64_t state = announce();
        const std::uint32_t n = count_of(state);
        for (std::uint32_t i = n; i > 0; --i) { // slots n .. 1
            if (cls_[i].load(std::memory_order_relaxed) != cls) continue;
            void* p = ptr_[i].load(std::memory_order_relaxed);
            for (std::uint32_t j = i + 1; j <= n; ++j) move_slot(j, j - 1); // keep the age order
            state_.store(state + take_hit, std::memory_order_release);
            ZEROPOOL_UNPOISON_IDLE(p, upstream_size(cls));
            return p;
        }
        withdraw();
        return nullptr;
    }

    /// The smallest class in [lo, hi] that a slot holds, or empty_class.
    /// Owner thread only; a reclaimer may empty the cache meanwhile (the
    /// take_smallest() that follows then finds less). O(capacity).
    std::uint32_t smallest_class_in(std::uint32_t lo, std::uint32_t hi) const noexcept {
        const std::uint32_t n = count();
        std::uint32_t best = empty_class;
        for (std::uint32_t i = 1; i <= n; ++i) { // a frozen mark is above any hi
            const std::uint32_t c = cls_[i].load(std::memory_order_relaxed);
            if (c >= lo && c <= hi && c < best) best = c;
        }
        return best;
    }

    /// Takes the block of the smallest class in [lo, hi] (the newest of that
    /// class), or returns {nullptr, empty_class}: fit (pool_config::max_fit_classes).
    /// O(capacity).
    cached_block take_smallest(std::uint32_t lo, std::uint32_t hi) noexcept {
        const std::uint64_t state = announce();
        const std::uint32_t n = count_of(state);
        std::uint32_t best = 0;
        std::uint32_t best_cls = empty_class;
        for (std::uint32_t i = n; i > 0; --i) { // newest first; a frozen mark is above any hi
            const std::uint32_t c = cls_[i].load(std::memory_order_relaxed);
            if (c >= lo && c <= hi && c < best_cls) {
                best = i;
                best_cls = c;
            }
        }
        if (best == 0) {
            withdraw();
            return cached_block{nullptr, empty_class};
        }
        void* p = ptr_[best].load(std::memory_order_relaxed);
        for (std::uint32_t j = best + 1; j <= n; ++j) move_slot(j, j - 1); // keep the age order
        state_.store(state + take_hit, std::memory_order_release);
        ZEROPOOL_UNPOISON_IDLE(p, upstream_size(best_cls));
        return cached_block{p, best_cls};
    }

    /// Caches `p`, a block of the remembered class `cls`, when the count is
    /// below the put limit (a free slot the reservation covers).
    ZEROPOOL_ALWAYS_INLINE bool try_put(void* p, std::uint32_t cls) noexcept {
        assert(cls == memo_.cls && "thread_cache: try_put of a class other than the remembered one");
        const std::uint64_t state = announce();
        const std::uint32_t n = count_of(state);
        if (n >= put_limit_.load(std::memory_order_relaxed)) {
            withdraw();
            return false;
        }
        ZEROPOOL_POISON_IDLE(p, upstream_size(cls));
        cls_[n + 1].store(cls, std::memory_order_relaxed);
        ptr_[n + 1].store(p, std::memory_order_relaxed);
        state_.store(state + 1, std::memory_order_release);
        return true;
    }

    // ---- owner thread, under lock_ (slow paths) ------------------------------

    /// Taken by the owner around every change outside the announced
    /// operations, and by a reclaimer.
    std::mutex& lock() noexcept { return lock_; }

    /// Caches `p` unconditionally; the caller made room and reserved for it.
    void push(void* p, std::uint32_t cls) noexcept {
        const std::uint64_t state = state_.load(std::memory_order_relaxed);
        const std::uint32_t n = count_of(state);
        assert(n < capacity_ && "thread_cache: push into a full cache");
        ZEROPOOL_POISON_IDLE(p, upstream_size(cls));
        cls_[n + 1].store(cls, std::memory_order_relaxed);
        ptr_[n + 1].store(p, std::memory_order_relaxed);
        state_.store(state + 1, std::memory_order_release);
    }

    /// Removes and returns the oldest block; the cache must not be empty.
    /// The reservation is unchanged.
    cached_block pop_oldest() noexcept {
        const std::uint64_t state = state_.load(std::memory_order_relaxed);
        const std::uint32_t n = count_of(state);
        cached_block b{ptr_[1].load(std::memory_order_relaxed), oldest_class()};
        for (std::uint32_t j = 2; j <= n; ++j) move_slot(j, j - 1);
        state_.store(state - 1, std::memory_order_release);
        // The state went back to a value an earlier operation may have
        // started from: that announcement must not look in flight.
        announce_.store(no_announcement, std::memory_order_relaxed);
        ZEROPOOL_UNPOISON_IDLE(b.ptr, upstream_size(b.cls));
        return b;
    }

    /// Class of the oldest block; the cache must not be empty. (A mark a
    /// reclaimer left, which a take never matches, is not part of it.)
    std::uint32_t oldest_class() const noexcept { return cls_[1].load(std::memory_order_relaxed) & ~frozen_bit; }

    /// Takes off the marks a reclaimer that gave up on this cache may have
    /// left behind (an operation of the owner that was in the middle of
    /// moving slots copied a mark after the thaw): such a block cannot be
    /// taken until then. Called at the start of every section under lock_.
    void clear_stray_marks() noexcept {
        const std::uint32_t n = count();
        for (std::uint32_t i = 1; i <= n; ++i) {
            const std::uint32_t cls = cls_[i].load(std::memory_order_relaxed);
            if ((cls & frozen_bit) != 0) cls_[i].store(cls & ~frozen_bit, std::memory_order_relaxed);
        }
    }

    /// Sets the put limit for the remembered class from the count and the
    /// reservation. Called at the end of every section under lock_.
    void refresh_put_limit() noexcept {
        put_limit_.store(limit_for(count(), memo_.upstream), std::memory_order_relaxed);
    }

    bool empty() const noexcept { return count() == 0; }
    bool full() const noexcept { return count() == capacity_; }
    /// Slots not holding a block.
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
    /// Fit's loop detector. A thread that frees a fitted block and, with its
    /// next miss, asks for the same class again is in a loop, and would take
    /// the fit path (no hit) on every turn: that miss gets a block of its own
    /// instead, which the loop then reuses from the cache. A run of
    /// allocations that are kept keeps fitting, and so does a class asked
    /// for again only after misses of other classes (a pool serving many
    /// sizes, where fit saves the most). Owner thread only.
    ///@{
    /// A request of class `cls` was served by a fitted block.
    void note_fit(std::uint32_t cls) noexcept { last_fit_ = cls; }
    /// A fitted block that served a request of class `cls` came back.
    void note_fit_returned(std::uint32_t cls) noexcept {
        if (cls == last_fit_) fit_cycled_ = cls;
    }
    /// Called on every miss: true when this miss, of class `cls`, should not
    /// fit, because the previous event was the return of the last fitted
    /// block of that class. Disarms the detector either way.
    bool fit_cycled(std::uint32_t cls) noexcept {
        const bool cycled = fit_cycled_ == cls;
        fit_cycled_ = no_class;
        if (cycled) last_fit_ = no_class;
        return cycled;
    }
    ///@}
    /// The books of the fits and fitted returns of the owner's calls:
    /// written by the owner only, read by any thread (stats()).
    fit_books& fits() noexcept { return fits_; }
    const fit_books& fits() const noexcept { return fits_; }

    /// True once every `period` calls: how often a slow path looks at the
    /// pool's clock. Owner thread only.
    bool count_slow_call(std::uint32_t period) noexcept { return ++slow_calls_ % period == 0; }

    /// Blocks held. Exact for the owner thread and under lock_; a relaxed
    /// snapshot for any other (stats()).
    std::uint32_t count() const noexcept { return count_of(state_.load(std::memory_order_acquire)); }
    /// Idle bytes in the slots (the sum of their classes' upstream sizes).
    /// Exact for the owner and under lock_; a snapshot for stats().
    std::size_t held() const noexcept {
        const std::uint32_t n = count();
        std::size_t sum = 0;
        for (std::uint32_t i = 1; i <= n; ++i) sum += upstream_size(cls_[i].load(std::memory_order_relaxed) & ~frozen_bit);
        return sum;
    }
    /// Bytes of the pool's budget this cache holds (byte_budget changes it).
    std::size_t reserved() const noexcept { return reserved_.load(std::memory_order_relaxed); }

    // ---- any thread (relaxed snapshots for stats) ----------------------------

    std::uint64_t hits() const noexcept { return state_.load(std::memory_order_relaxed) >> hits_shift; }
    /// state_ as a reclaimer sees it: it changes with every take and put.
    std::uint64_t state_snapshot() const noexcept { return state_.load(std::memory_order_acquire); }

    // ---- registry mutex ----------------------------------------------------

    registered_pool* pool_;        // the pool these blocks belong to
    thread_cache* prev_ = nullptr; // the pool's list of caches
    thread_cache* next_ = nullptr;
    bool dead_ = false;            // the pool is unregistered
    bool draining_ = false;        // dead, and the pool's destructor is emptying it
    bool orphaned_ = false;        // the owner let go while draining_: release_dead_cache frees it
    std::uint32_t idle_ticks_ = 0; // release by demand: ticks the cache has not changed
    std::uint64_t last_seen_state_ = 0;

    /// True when an operation of the owner has been announced and has not
    /// ended: in a fork() child, whose other threads do not exist, such a
    /// cache may be half changed for good.
    bool in_operation() const noexcept {
        return announce_.load(std::memory_order_acquire) == state_.load(std::memory_order_acquire);
    }
    /// Set in a fork() child for a cache whose owner was in the middle of an
    /// operation at the fork: reclaimers leave it alone (its blocks stay
    /// until the pool is destroyed).
    bool abandoned_ = false;

private:
    friend class byte_budget;          // the one writer of the reservation
    friend class cache_freeze;         // a reclaimer (src/cache_reclaim.cpp)
    friend struct thread_cache_access; // unit tests (test/thread_cache_test.cpp)

    static constexpr std::uint32_t count_of(std::uint64_t state) noexcept {
        return static_cast<std::uint32_t>(state & count_mask);
    }

    /// Starts an operation outside lock_: publishes the state it starts from.
    /// The empty asm keeps the compiler from reading the slots, the put limit
    /// or frozen_ before the store; the reclaimer's membarrier orders it for
    /// the processor.
    ZEROPOOL_ALWAYS_INLINE std::uint64_t announce() noexcept {
        const std::uint64_t state = state_.load(std::memory_order_acquire);
        announce_.store(state, std::memory_order_relaxed);
        asm volatile("" : "+m"(cls_), "+m"(ptr_), "+m"(put_limit_), "+m"(frozen_), "+m"(freezes_) : "m"(announce_));
        return state;
    }
    /// Ends an announced operation that changed nothing.
    ZEROPOOL_ALWAYS_INLINE void withdraw() noexcept { announce_.store(no_announcement, std::memory_order_release); }

    /// Slots the reservation covers for blocks of `bytes` bytes beyond the
    /// `n` held, plus n, at most the capacity.
    std::uint32_t limit_for(std::uint32_t n, std::size_t bytes) const noexcept {
        const std::size_t reserved = reserved_.load(std::memory_order_relaxed);
        const std::size_t h = held();
        std::size_t room = reserved > h ? reserved - h : 0;
        std::uint32_t limit = n;
        while (limit < capacity_ && room >= bytes) {
            room -= bytes;
            ++limit;
        }
        return limit;
    }

    /// Sets the reservation; `bytes` must be >= held(). Under lock_.
    void set_reserved(std::size_t bytes) noexcept { reserved_.store(bytes, std::memory_order_relaxed); }

    void move_slot(std::uint32_t from, std::uint32_t to) noexcept {
        cls_[to].store(cls_[from].load(std::memory_order_relaxed), std::memory_order_relaxed);
        ptr_[to].store(ptr_[from].load(std::memory_order_relaxed), std::memory_order_relaxed);
    }

    static constexpr std::uint64_t no_announcement = ~std::uint64_t{0}; // no state has it
    // Blocks held (low 8 bits) and hits (the rest) in one word, so that a
    // hit stores it once: a take adds take_hit, a put adds 1. Announced
    // operations only make it grow, so their start state is never seen again
    // once they committed; pop_oldest() and a reclaimer's take_all() make it
    // go back, and clear announce_ as they do.
    static constexpr std::uint64_t count_mask = 0xff;
    static constexpr unsigned hits_shift = 8;
    static constexpr std::uint64_t take_hit = (std::uint64_t{1} << hits_shift) - 1;
    static constexpr std::uint64_t clock_mask = (hits_per_clock_check - 1) << hits_shift;
    static_assert(max_capacity <= count_mask, "the count must fit below the hits");

    request_memo memo_;
    std::uint32_t last_miss_ = no_class; // class of the last miss (repeated_miss)
    std::uint32_t capacity_;
    std::uint32_t slow_calls_ = 0;
    std::uint32_t last_fit_ = no_class;   // request class of the last fit (note_fit)
    std::uint32_t fit_cycled_ = no_class; // that class, from its fitted block's return to the next miss
    std::atomic<std::uint64_t> state_{0};
    std::atomic<std::uint64_t> announce_{no_announcement};
    std::atomic<std::uint32_t> put_limit_{0};

    std::atomic<bool> frozen_{false};
    std::atomic<std::uint32_t> freezes_{0}; // freezes so far (a reclaimer, under lock_)
    std::atomic<std::size_t> reserved_{0}; // bytes of the pool's budget this cache holds
    std::atomic<std::uint32_t> cls_[max_capacity + 1]; // slot 0: empty_class; blocks in 1..count()
    std::atomic<void*> ptr_[max_capacity + 1];
    std::mutex lock_;
    // Last: the fields above that the hit paths touch keep their cache lines.
    fit_books fits_;
};

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_THREAD_CACHE_HPP
