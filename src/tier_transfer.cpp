// zeropool: how blocks move between the tiers below the hit paths: the
// calling thread's cache, the shards (searched from the thread's home shard),
// and upstream; and when a thread cache spills to or refills from the shards.
//
// Budget (byte_budget.hpp): a block idle in a shard holds its upstream_size
// of the budget; a thread cache holds a reservation that covers the blocks in
// its slots and may keep room for more. A block moving between a cache and a
// shard takes its bytes of budget with it; a block leaving the idle tiers
// (served, or returned upstream) gives them back. When the budget runs short,
// the unused reservation of the other threads' caches is reclaimed
// (pool_reclaim.cpp) before a block is turned away.
//
// Every change to a cache here runs under its lock (a reclaimer may be
// freezing it) and ends with refresh_put_limit(); blocks bound upstream
// meanwhile are collected and returned after the lock is released.
#include "pool_core.hpp"

#include "coarse_clock.hpp"

#include <zeropool/detail/size_class.hpp>

#include <mutex>

namespace zeropool::detail {

namespace {

/// A slow-path section on the calling thread's own cache: holds its lock,
/// takes off any mark a reclaimer left, and sets the put limit from the result
/// when it ends.
class cache_section {
public:
    explicit cache_section(thread_cache& cache) noexcept : cache_(cache) {
        cache_.lock().lock();
        cache_.clear_stray_marks();
    }
    ~cache_section() {
        cache_.refresh_put_limit();
        cache_.lock().unlock();
    }
    cache_section(const cache_section&) = delete;
    cache_section& operator=(const cache_section&) = delete;

private:
    thread_cache& cache_;
};

/// How many slow-path calls of a thread pass between two looks at the clock.
constexpr std::uint32_t slow_calls_per_clock_check = 64;

} // namespace

std::size_t pool_core::home_shard() const noexcept { return shards.home(thread_index()); }

std::uint32_t pool_core::now_tick() const noexcept {
    if (tick_ns_ == 0) return 0;
    return static_cast<std::uint32_t>((coarse_now_ns() - epoch_ns_) / tick_ns_);
}

void pool_core::release_idle_if_due(thread_cache& cache) noexcept {
    if (cache.count_slow_call(slow_calls_per_clock_check)) release_idle_from_activity();
}

// ---- allocate and deallocate ---------------------------------------------------

cached_block pool_core::allocate_block(thread_cache* cache, std::uint32_t cls, fit_range fit) {
    const std::size_t bytes = upstream_size(cls);
    if (cache != nullptr) {
        release_idle_if_due(*cache);
        cache_section section(*cache);
        if (void* p = refill_from_shards(*cache, cls, cache->repeated_miss(cls))) return cached_block{p, cls};
    } else if (void* p = take_from_shards(cls)) {
        budget.release(bytes);
        return cached_block{p, cls};
    }
    if (!fit.empty()) {
        const cached_block b = take_fit(cache, fit);
        if (b.ptr != nullptr) return b;
    }
    return cached_block{upstream.allocate_block(cls), cls}; // may throw: nothing changed
}

void pool_core::deallocate_block(thread_cache* cache, void* block, std::uint32_t cls) noexcept {
    const std::size_t bytes = upstream_size(cls);
    if (cache != nullptr) {
        release_idle_if_due(*cache);
        if (bytes <= budget.cache_limit()) {
            // Twice at most: the second time after reclaiming the reservation
            // other threads hold and do not use.
            for (int attempt = 0; attempt < 2; ++attempt) {
                upstream_batch spilled;
                bool cached = false;
                {
                    cache_section section(*cache);
                    cached = spill_and_cache(*cache, block, cls, spilled);
                }
                return_upstream(spilled);
                if (cached) return;
                if (attempt == 0 && !reclaim_unused_reservation()) break;
            }
        }
    }
    if (budget.try_reserve(bytes) || (reclaim_unused_reservation() && budget.try_reserve(bytes)))
        release_block(block, cls);
    else
        return_upstream(block, cls);
}

// ---- the cache <-> shard transfer policy -----------------------------------------

// The cache is full, or its reservation does not cover the block: move its
// oldest blocks to the shards until the block fits the cache's share (when
// the cache is full, half of it: one shard lock then serves several frees, as
// when one thread frees what another allocates), then grow the reservation
// from the pool's budget. False when the budget refuses: the block is not
// cached (blocks already spilled stay spilled). Blocks no shard has room for
// are added to `out`.
bool pool_core::spill_and_cache(thread_cache& cache, void* block, std::uint32_t cls, upstream_batch& out) noexcept {
    const std::size_t bytes = upstream_size(cls);
    cached_block moving[thread_cache::max_capacity];
    std::uint32_t n = 0;
    const std::uint32_t keep = cache.full() ? cache.count() / 2 : cache.count();
    std::size_t held = cache.held();
    while (!cache.empty() && (cache.count() > keep || held + bytes > budget.cache_limit())) {
        moving[n] = cache.pop_oldest();
        const std::size_t oldest_bytes = upstream_size(moving[n].cls);
        ++n;
        held -= oldest_bytes;
        budget.hand_over(cache, oldest_bytes); // its budget moves with it
    }
    if (n != 0) release_blocks(moving, n, out);
    // held + bytes <= cache_limit now, so the reservation stays within it.
    const std::size_t wanted = held + bytes;
    const std::size_t need = wanted > cache.reserved() ? wanted - cache.reserved() : 0;
    if (need != 0 && !budget.grow(cache, need)) return false;
    cache.push(block, cls);
    return true;
}

// A thread cache missed class `cls`: take a block of it from the shards and,
// when `batch` (the cache's previous miss was of this class too), under the
// same lock up to as many more as the cache has slots and byte share for, so
// that the next allocations of the class hit the cache. Returns the block to
// serve, or nullptr.
void* pool_core::refill_from_shards(thread_cache& cache, std::uint32_t cls, bool batch) noexcept {
    const std::size_t bytes = upstream_size(cls);
    const std::size_t held = cache.held();
    std::uint32_t extra = 0;
    if (batch) {
        const std::size_t limit = budget.cache_limit();
        const std::size_t share = limit > held ? limit - held : 0;
        const std::size_t by_bytes = share / bytes;
        extra = by_bytes < cache.free_slots() ? static_cast<std::uint32_t>(by_bytes) : cache.free_slots();
    }
    void* got[thread_cache::max_capacity + 1];
    void* served = nullptr;
    shards.any_existing_from(home_shard(), [&](shard& s, std::size_t) noexcept {
        if (s.probably_empty()) return false;
        const std::uint32_t taken = s.take_batch(cls, got, extra + 1);
        if (taken == 0) return false;
        // got[0] is served: its budget is released. The others move into the
        // cache with theirs: the reservation grows only by what its room does
        // not cover, to max(reserved, held + incoming) <= cache_limit (held +
        // extra * bytes is within it), and the rest of their budget is released.
        const std::size_t incoming = bytes * (taken - 1);
        const std::size_t room = cache.reserved() - held;
        const std::size_t need = incoming > room ? incoming - room : 0;
        budget.release(bytes + (incoming - need));
        for (std::uint32_t i = 1; i < taken; ++i) cache.push(got[i], cls);
        budget.adopt(cache, need);
        served = got[0];
        return true;
    });
    return served;
}

// Empties `cache`: its blocks go to the shards (what they have no room for
// into `out`, with its budget given back), or all into `out`; its whole
// reservation goes back to the budget.
void pool_core::empty_cache(thread_cache& cache, bool to_upstream, upstream_batch& out) noexcept {
    cached_block moving[thread_cache::max_capacity];
    std::uint32_t n = 0;
    while (!cache.empty()) {
        moving[n] = cache.pop_oldest();
        budget.hand_over(cache, upstream_size(moving[n].cls)); // its budget moves with it
        ++n;
    }
    budget.shrink(cache, cache.reserved());
    if (to_upstream) {
        for (std::uint32_t i = 0; i < n; ++i) {
            budget.release(upstream_size(moving[i].cls));
            out.blocks[out.count++] = moving[i];
        }
    } else if (n != 0) {
        release_blocks(moving, n, out);
    }
}

// ---- shards and upstream ---------------------------------------------------------------

void* pool_core::take_from_shards(std::uint32_t cls) noexcept {
    void* p = nullptr;
    shards.any_existing_from(home_shard(), [&](shard& s, std::size_t) noexcept {
        if (s.probably_empty()) return false;
        p = s.take(cls);
        return p != nullptr;
    });
    return p;
}

// Fit: the smallest idle block of a class in `fit`, from the calling thread's
// cache (no lock) or the shards (one lock per shard visited, the home shard
// first; the first shard that has one serves). A block from a shard gives its
// budget back; one from the cache leaves its reservation as room.
cached_block pool_core::take_fit(thread_cache* cache, fit_range fit) noexcept {
    const std::uint32_t cached =
        cache != nullptr ? cache->smallest_class_in(fit.lo, fit.hi) : thread_cache::empty_class;
    if (cached != fit.lo) { // a shard may have a smaller one
        const std::uint32_t hi = cached != thread_cache::empty_class ? cached - 1 : fit.hi;
        cached_block b{nullptr, thread_cache::empty_class};
        shards.any_existing_from(home_shard(), [&](shard& s, std::size_t) noexcept {
            return !s.probably_empty() && s.take_smallest(fit.lo, hi, b);
        });
        if (b.ptr != nullptr) {
            budget.release(upstream_size(b.cls));
            return b;
        }
    }
    if (cached != thread_cache::empty_class) return cache->take_smallest(fit.lo, fit.hi);
    return cached_block{nullptr, thread_cache::empty_class};
}

void pool_core::count_fitted(thread_cache* cache, std::uint32_t cls, std::size_t requested) noexcept {
    if (cache != nullptr)
        cache->fits().note_fit(requested, upstream_size(cls));
    else
        fits_without_cache_.note_fit(requested, upstream_size(cls));
}

void pool_core::deallocate_fitted(thread_cache* cache, void* block, std::uint32_t cls, std::size_t requested) noexcept {
    if (cache != nullptr)
        cache->fits().note_return(requested, upstream_size(cls));
    else
        fits_without_cache_.note_return(requested, upstream_size(cls));
    deallocate_block(cache, block, cls);
}

// A block whose budget is held: into a shard, the home shard first (other
// shards only when they do not look full); false when none has room.
bool pool_core::give_to_shards(void* block, std::uint32_t cls) noexcept {
    const std::uint32_t now = now_tick();
    return shards.any_from(home_shard(), [&](shard& s, std::size_t k) noexcept {
        return (k == 0 || !s.probably_full()) && s.push(block, cls, now);
    });
}

// A block whose budget is held: to a shard, or upstream with its budget.
void pool_core::release_block(void* block, std::uint32_t cls) noexcept {
    if (give_to_shards(block, cls)) return;
    budget.release(upstream_size(cls));
    return_upstream(block, cls);
}

// Blocks whose budget is held: to the shards, the home shard first, one lock
// per shard; what no shard has room for gives its budget back and goes into
// `out`, for the caller to return upstream once it holds no cache lock.
void pool_core::release_blocks(const cached_block* blocks, std::uint32_t n, upstream_batch& out) noexcept {
    const std::uint32_t now = now_tick();
    std::uint32_t done = 0;
    shards.any_from(home_shard(), [&](shard& s, std::size_t k) noexcept {
        if (k == 0 || !s.probably_full()) done += s.push_batch(blocks + done, n - done, now);
        return done == n;
    });
    for (; done < n; ++done) {
        budget.release(upstream_size(blocks[done].cls));
        out.blocks[out.count++] = blocks[done];
    }
}

void pool_core::return_upstream(void* block, std::uint32_t cls) noexcept {
    upstream.deallocate_block(block, cls);
}

std::size_t pool_core::return_upstream(const upstream_batch& batch) noexcept {
    std::size_t bytes = 0;
    for (std::uint32_t i = 0; i < batch.count; ++i) {
        bytes += upstream_size(batch.blocks[i].cls);
        return_upstream(batch.blocks[i].ptr, batch.blocks[i].cls);
    }
    return bytes;
}

} // namespace zeropool::detail
