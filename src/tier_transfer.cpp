// zeropool: how blocks move between the tiers below the hit paths: the
// calling thread's cache, the shards (searched from the thread's home shard),
// and upstream; and when a thread cache spills to or refills from the shards.
//
// Budget (byte_budget.hpp): a block idle in a shard holds its upstream_size
// of the budget; a thread cache holds a reservation that covers the blocks in
// its slots and may keep room for more. A block moving between a cache and a
// shard takes its bytes of budget with it; a block leaving the idle tiers
// (served, or returned upstream) gives them back.
#include "pool_core.hpp"

#include <zeropool/detail/size_class.hpp>

namespace zeropool::detail {

std::size_t pool_core::home_shard() const noexcept { return shards.home(thread_index()); }

// ---- allocate and deallocate ---------------------------------------------------

void* pool_core::allocate_block(std::uint32_t cls) {
    const std::size_t bytes = upstream_size(cls);
    if (thread_cache* cache = find_or_create_cache(*this, tls_capacity_)) {
        if (void* p = cache->take(cls, bytes)) return p;
        if (void* p = refill_from_shards(*cache, cls, cache->repeated_miss(cls))) return p;
    } else if (void* p = take_from_shards(cls)) {
        budget.release(bytes);
        return p;
    }
    return upstream.allocate_block(cls); // may throw: nothing changed
}

void pool_core::deallocate_block(void* block, std::uint32_t cls) noexcept {
    const std::size_t bytes = upstream_size(cls);
    if (thread_cache* cache = find_or_create_cache(*this, tls_capacity_)) {
        if (cache->try_put(block, cls, bytes)) return;
        if (bytes <= budget.cache_limit()) {
            spill_and_cache(*cache, block, cls);
            return;
        }
    }
    if (budget.try_reserve(bytes)) release_block(block, cls);
    else return_upstream(block, cls);
}

// ---- the cache <-> shard transfer policy -----------------------------------------

// The cache is full, or its reservation does not cover the block: move its
// oldest blocks to the shards until the block fits the cache's share (when
// the cache is full, half of it: one shard lock then serves several frees, as
// when one thread frees what another allocates), then grow the reservation
// from the pool's budget.
void pool_core::spill_and_cache(thread_cache& cache, void* block, std::uint32_t cls) noexcept {
    const std::size_t bytes = upstream_size(cls);
    cached_block moving[thread_cache::max_capacity];
    std::uint32_t n = 0;
    const std::uint32_t keep = cache.full() ? cache.count() / 2 : cache.count();
    while (!cache.empty() && (cache.count() > keep || cache.held() + bytes > budget.cache_limit())) {
        const std::size_t oldest_bytes = upstream_size(cache.oldest_class());
        moving[n++] = cache.pop_oldest(oldest_bytes);
        budget.hand_over(cache, oldest_bytes); // its budget moves with it
    }
    if (n != 0) release_blocks(moving, n);
    // held + bytes <= cache_limit now, so the reservation stays within it.
    const std::size_t wanted = cache.held() + bytes;
    const std::size_t need = wanted > cache.reserved() ? wanted - cache.reserved() : 0;
    if (need == 0 || budget.grow(cache, need)) {
        cache.push(block, cls, bytes);
        return;
    }
    if (budget.try_reserve(bytes)) release_block(block, cls);
    else return_upstream(block, cls);
}

// A thread cache missed class `cls`: take a block of it from the shards and,
// when `batch` (the cache's previous miss was of this class too), under the
// same lock up to as many more as the cache has slots and byte share for, so
// that the next allocations of the class hit the cache. Returns the block to
// serve, or nullptr.
void* pool_core::refill_from_shards(thread_cache& cache, std::uint32_t cls, bool batch) noexcept {
    const std::size_t bytes = upstream_size(cls);
    std::uint32_t extra = 0;
    if (batch) {
        const std::size_t limit = budget.cache_limit();
        const std::size_t share = limit > cache.held() ? limit - cache.held() : 0;
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
        const std::size_t room = cache.reserved() - cache.held();
        const std::size_t need = incoming > room ? incoming - room : 0;
        budget.release(bytes + (incoming - need));
        budget.adopt(cache, need);
        for (std::uint32_t i = 1; i < taken; ++i) cache.push(got[i], cls, bytes);
        served = got[0];
        return true;
    });
    return served;
}

// Empties `cache`: its blocks go to the shards (or upstream beyond the caps),
// or all straight upstream; its whole reservation goes back to the budget.
void pool_core::empty_cache(thread_cache& cache, bool to_upstream) noexcept {
    while (!cache.empty()) {
        const std::size_t oldest_bytes = upstream_size(cache.oldest_class());
        const cached_block b = cache.pop_oldest(oldest_bytes);
        if (to_upstream) {
            budget.shrink(cache, oldest_bytes);
            return_upstream(b.ptr, b.cls);
        } else {
            budget.hand_over(cache, oldest_bytes);
            release_block(b.ptr, b.cls);
        }
    }
    budget.shrink(cache, cache.reserved());
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

// A block whose budget is held: into a shard, the home shard first (other
// shards only when they do not look full); false when none has room.
bool pool_core::give_to_shards(void* block, std::uint32_t cls) noexcept {
    return shards.any_from(home_shard(), [&](shard& s, std::size_t k) noexcept {
        return (k == 0 || !s.probably_full()) && s.push(block, cls);
    });
}

// A block whose budget is held: to a shard, or upstream with its budget.
void pool_core::release_block(void* block, std::uint32_t cls) noexcept {
    if (give_to_shards(block, cls)) return;
    budget.release(upstream_size(cls));
    return_upstream(block, cls);
}

// Blocks whose budget is held: to the shards, the home shard first, one lock
// per shard; what no shard has room for goes upstream with its budget.
void pool_core::release_blocks(const cached_block* blocks, std::uint32_t n) noexcept {
    std::uint32_t done = 0;
    shards.any_from(home_shard(), [&](shard& s, std::size_t k) noexcept {
        if (k == 0 || !s.probably_full()) done += s.push_batch(blocks + done, n - done);
        return done == n;
    });
    for (; done < n; ++done) {
        budget.release(upstream_size(blocks[done].cls));
        return_upstream(blocks[done].ptr, blocks[done].cls);
    }
}

void pool_core::return_upstream(void* block, std::uint32_t cls) noexcept {
    upstream.deallocate_block(block, cls);
}

} // namespace zeropool::detail
