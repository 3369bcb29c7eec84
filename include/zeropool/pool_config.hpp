// zeropool: the options of a sharded_buffer_resource.
#ifndef ZEROPOOL_POOL_CONFIG_HPP
#define ZEROPOOL_POOL_CONFIG_HPP

#include <cstddef>

namespace zeropool {

/// Options of a sharded_buffer_resource. Every field left at 0 means "use the
/// default". The resource normalises the values once, in its constructor, and
/// sharded_buffer_resource::config() returns the effective values. The
/// defaults and the clamping rules are listed in docs/reference.md.
struct pool_config {
    /// Blocks cached per thread, per pool. Default 4; clamped to [1, 16].
    std::size_t tls_cache_size = 0;
    /// Requests whose max(bytes, alignment) is below this go straight to
    /// upstream. Default 1 KiB; clamped to [1, max_buffer_size].
    std::size_t min_buffer_size = 0;
    /// Requests whose max(bytes, alignment) is above this go straight to
    /// upstream. Default 1 GiB; clamped to [min_buffer_size, 2^48].
    std::size_t max_buffer_size = 0;
    /// Idle blocks one shard holds at most. Default 256; clamped to [1, 1024].
    std::size_t max_buffers_per_shard = 0;
    /// Number of shards. Default: the next power of two >= the CPU count,
    /// clamped to [4, 64]. A value given is rounded up to a power of two and
    /// clamped to [1, 256].
    std::size_t num_shards = 0;
    /// Cap on idle bytes held by all tiers together (every thread cache
    /// counted). Default: 1/8 of physical memory, at least 64 MiB.
    std::size_t max_cached_bytes = 0;
    /// Release by demand: an idle block that no request has drawn on for
    /// about this many milliseconds goes back upstream, on the pool's own
    /// activity (docs/design.md, "Memory that goes back"). Default 5000;
    /// clamped to [10, 2^32]; no_idle_release turns it off.
    std::size_t idle_release_ms = 0;
    /// Fit: a request whose size class has no idle block in the calling
    /// thread's cache or in the shards is served, before upstream is asked,
    /// by the smallest idle block of at most this many classes above its own
    /// (four classes per power of two: 4 means a block at most twice the
    /// request's class size). The block keeps its own class for life
    /// (docs/design.md, "Fit"). Default 4; clamped to [1, 32];
    /// exact_classes_only turns fit off (each request served by blocks of its
    /// own class only).
    std::size_t max_fit_classes = 0;

    /// The value of idle_release_ms that turns release by demand off.
    static constexpr std::size_t no_idle_release = ~std::size_t{0};
    /// The value of max_fit_classes that turns fit off.
    static constexpr std::size_t exact_classes_only = ~std::size_t{0};

    /// Fluent setter: sets the field of the same name and returns *this.
    ///@{
    pool_config& with_tls_cache_size(std::size_t v) noexcept { tls_cache_size = v; return *this; }
    pool_config& with_min_buffer_size(std::size_t v) noexcept { min_buffer_size = v; return *this; }
    pool_config& with_max_buffer_size(std::size_t v) noexcept { max_buffer_size = v; return *this; }
    pool_config& with_max_buffers_per_shard(std::size_t v) noexcept { max_buffers_per_shard = v; return *this; }
    pool_config& with_num_shards(std::size_t v) noexcept { num_shards = v; return *this; }
    pool_config& with_max_cached_bytes(std::size_t v) noexcept { max_cached_bytes = v; return *this; }
    pool_config& with_idle_release_ms(std::size_t v) noexcept { idle_release_ms = v; return *this; }
    pool_config& with_max_fit_classes(std::size_t v) noexcept { max_fit_classes = v; return *this; }
    ///@}
};

/// Returns `config` with every 0 replaced by its default and every value
/// clamped to its range: the values a sharded_buffer_resource built from
/// `config` will use. Throws nothing.
pool_config normalize(const pool_config& config) noexcept;

} // namespace zeropool

#endif // ZEROPOOL_POOL_CONFIG_HPP
