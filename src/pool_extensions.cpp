// zeropool: the extensions of sharded_buffer_resource beyond
// std::pmr::memory_resource: preallocate, good_size, trim, release_idle and
// stats.
#include <zeropool/sharded_buffer_resource.hpp>

#include <zeropool/detail/size_class.hpp>

#include "pool_core.hpp"
#include "thread_registry.hpp"

#include <cstddef>

namespace zeropool {

namespace {
/// The alignment of allocate(size) without one, which preallocate and
/// good_size serve.
constexpr std::size_t default_alignment = alignof(std::max_align_t);
} // namespace

std::size_t sharded_buffer_resource::preallocate(std::size_t count, std::size_t size) {
    if (!is_pooled(size, default_alignment)) return 0;
    const std::uint32_t cls = detail::class_index(detail::classified_size(size, default_alignment));
    std::size_t kept = 0;
    while (kept < count && core_->preallocate_block(cls, kept)) ++kept; // stops at a cap
    return kept;
}

std::size_t sharded_buffer_resource::good_size(std::size_t size) const noexcept {
    if (!is_pooled(size, default_alignment)) return size;
    return detail::class_size(detail::class_index(detail::classified_size(size, default_alignment)));
}

void sharded_buffer_resource::trim() noexcept { static_cast<void>(core_->trim()); }

std::size_t sharded_buffer_resource::release_idle() noexcept { return core_->release_idle(); }

pool_stats sharded_buffer_resource::stats() const noexcept {
    pool_stats st;
    const detail::cache_totals caches = detail::sum_caches(*core_);
    st.thread_cache_hits = caches.hits;
    st.idle_blocks = caches.blocks;
    st.idle_bytes = caches.bytes;
    core_->shards.for_each([&st](detail::shard& s) noexcept {
        const detail::shard::snapshot snap = s.read();
        st.shard_hits += snap.hits;
        st.idle_bytes += snap.bytes;
        st.idle_blocks += snap.blocks;
    });
    st.reserved_bytes = core_->budget.used();
    st.peak_reserved_bytes = core_->budget.peak();
    st.released_by_demand_bytes = core_->released_by_demand();
    st.released_by_trim_bytes = core_->released_by_trim();
    detail::fit_totals fit = caches.fits;
    fit += core_->fits_without_cache();
    st.fitted_allocations = fit.allocations;
    st.live_fitted_blocks = static_cast<std::size_t>(fit.live_blocks);
    st.live_fitted_requested_bytes = static_cast<std::size_t>(fit.live_requested);
    st.live_fitted_block_bytes = static_cast<std::size_t>(fit.live_bytes);
    st.upstream_allocations = core_->upstream.allocations();
    st.upstream_deallocations = core_->upstream.deallocations();
    return st;
}

} // namespace zeropool
