// zeropool: the life of a pool's shared state (registration, destruction with
// other threads' caches still holding blocks, thread exit) and the
// extensions that act on every tier (preallocate, trim).
#include "pool_core.hpp"

#include "pages.hpp"

#include <zeropool/detail/size_class.hpp>

namespace zeropool::detail {

pool_core::pool_core(std::uint64_t pool_id, const pool_config& config, std::pmr::memory_resource* upstream_resource)
    : registered_pool(pool_id),
      shards(config.num_shards, static_cast<std::uint32_t>(config.max_buffers_per_shard)),
      budget(config.max_cached_bytes, config.max_cached_bytes / 4),
      upstream(upstream_resource),
      tls_capacity_(static_cast<std::uint32_t>(config.tls_cache_size)) {
    register_pool(*this);
}

pool_core::~pool_core() {
    // 1. The caches other threads still hold for this pool. The registry hands
    //    them over under its mutex; they are emptied here, without it, so the
    //    upstream calls below never run under the registry mutex (an upstream
    //    that is itself a zeropool pool takes that mutex).
    for (thread_cache* c = unregister_pool(*this); c != nullptr;) {
        thread_cache* const following = c->next_;
        while (!c->empty()) {
            const cached_block b = c->pop_oldest(upstream_size(c->oldest_class()));
            return_upstream(b.ptr, b.cls);
        }
        release_dead_cache(c);
        c = following;
    }
    // 2. Everything idle in the shards goes upstream; shard_set frees the shards.
    return_shards_upstream();
}

void pool_core::flush_exiting(thread_cache& cache) noexcept { empty_cache(cache, false); }

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
    const bool kept = shards.any_from(home_shard() + spread, [&](shard& s, std::size_t) noexcept {
        return s.push(p, cls);
    });
    if (kept) return true;
    budget.release(bytes);
    return_upstream(p, cls);
    return false;
}

void pool_core::trim() noexcept {
    if (thread_cache* cache = find_cache(*this)) empty_cache(*cache, true);
    return_shards_upstream();
}

// Every idle block of the shards goes upstream, with its budget.
void pool_core::return_shards_upstream() noexcept {
    shards.for_each([this](shard& s) noexcept {
        cached_block b{};
        while (s.take_any(b)) {
            budget.release(upstream_size(b.cls));
            return_upstream(b.ptr, b.cls);
        }
    });
}

} // namespace zeropool::detail
