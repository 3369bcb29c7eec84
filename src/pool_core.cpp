// zeropool: the life of a pool's shared state (registration, destruction with
// other threads' caches still holding blocks, thread exit) and preallocate.
#include "pool_core.hpp"

#include "coarse_clock.hpp"
#include "pages.hpp"

#include <zeropool/detail/size_class.hpp>

namespace zeropool::detail {

pool_core::pool_core(std::uint64_t pool_id, const pool_config& config, std::pmr::memory_resource* upstream_resource)
    : registered_pool(pool_id),
      shards(config.num_shards, static_cast<std::uint32_t>(config.max_buffers_per_shard)),
      budget(config.max_cached_bytes, config.max_cached_bytes / 4),
      upstream(upstream_resource),
      tls_capacity_(static_cast<std::uint32_t>(config.tls_cache_size)),
      tick_ns_(config.idle_release_ms == pool_config::no_idle_release
                   ? 0
                   : static_cast<std::uint64_t>(config.idle_release_ms) * 1000000u / ticks_per_period),
      epoch_ns_(coarse_now_ns()),
      next_tick_ns_(epoch_ns_ + tick_ns_) {
    register_pool(*this);
}

pool_core::~pool_core() {
    // 1. The caches other threads still hold for this pool. The registry hands
    //    them over under its mutex; they are emptied here, without it, so the
    //    upstream calls below never run under the registry mutex (an upstream
    //    that is itself a zeropool pool takes that mutex).
    for (thread_cache* c = unregister_pool(*this); c != nullptr;) {
        thread_cache* const following = c->next_;
        // abandoned_ (a fork() child; its owner was mid-operation at the
        // fork): its slots may name one block twice; its blocks are left.
        while (!c->abandoned_ && !c->empty()) {
            const cached_block b = c->pop_oldest();
            return_upstream(b.ptr, b.cls);
        }
        release_dead_cache(c);
        c = following;
    }
    // 2. Everything idle in the shards goes upstream; shard_set frees the shards.
    return_shards_upstream();
}

void pool_core::flush_exiting(thread_cache& cache) noexcept {
    upstream_batch overflow;
    {
        std::lock_guard<std::mutex> lock(cache.lock()); // every change to a cache is made under it
        empty_cache(cache, false, overflow);
    }
    return_upstream(overflow);
}

bool pool_core::preallocate_block(std::uint32_t cls, std::size_t spread) {
    const std::size_t bytes = upstream_size(cls);
    if (!budget.try_reserve(bytes)) return false;
    void* p = nullptr;
    try {
        p = upstream.allocate_block(cls);
    } catch (...) {
        budget.release(bytes);
        throw;
    }
    touch_pages(p, bytes);
    const std::uint32_t now = now_tick();
    const bool kept = shards.any_from(home_shard() + spread, [&](shard& s, std::size_t) noexcept {
        return s.push(p, cls, now);
    });
    if (kept) return true;
    budget.release(bytes);
    return_upstream(p, cls);
    return false;
}

} // namespace zeropool::detail
