// zeropool: the extensions of sharded_buffer_resource beyond
// std::pmr::memory_resource: preallocate, trim and stats.
#include <zeropool/sharded_buffer_resource.hpp>

#include <zeropool/detail/size_class.hpp>

#include "pool_core.hpp"
#include "thread_registry.hpp"

#include <cstddef>

namespace zeropool {

void sharded_buffer_resource::preallocate(std::size_t count, std::size_t size) {
    // The blocks serve allocate(size) with its default alignment.
    constexpr std::size_t alignment = alignof(std::max_align_t);
    if (!is_pooled(size, alignment)) return;
    const std::uint32_t cls = detail::class_index(detail::classified_size(size, alignment));
    for (std::size_t i = 0; i < count; ++i)
        if (!core_->preallocate_block(cls, i)) return; // a cap is reached
}

void sharded_buffer_resource::trim() noexcept { core_->trim(); }

pool_stats sharded_buffer_resource::stats() const noexcept {
    pool_stats st;
    const detail::cache_totals caches = detail::sum_caches(*core_);
    st.thread_cache_hits = caches.hits;
    st.cached_buffers = caches.blocks;
    st.cached_bytes = caches.bytes;
    core_->shards.for_each([&st](detail::shard& s) noexcept {
        const detail::shard::snapshot snap = s.read();
        st.shard_hits += snap.hits;
        st.cached_bytes += snap.bytes;
        st.cached_buffers += snap.blocks;
    });
    st.reserved_bytes = core_->budget.used();
    st.upstream_allocations = core_->upstream.allocations();
    st.upstream_deallocations = core_->upstream.deallocations();
    return st;
}

} // namespace zeropool
