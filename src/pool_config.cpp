// zeropool: defaults and clamping of pool_config.
#include <zeropool/pool_config.hpp>

#include <zeropool/detail/size_class.hpp>
#include "thread_cache.hpp"

#include <thread>

#include <unistd.h>

namespace zeropool {
namespace {

constexpr std::size_t kib = std::size_t{1} << 10;
constexpr std::size_t mib = std::size_t{1} << 20;
constexpr std::size_t gib = std::size_t{1} << 30;

// Defaults, chosen by measurement: see docs/design.md, "Defaults".
constexpr std::size_t default_tls_cache_size = 4;
constexpr std::size_t default_min_buffer_size = 1 * kib;
constexpr std::size_t default_max_buffer_size = 1 * gib;
constexpr std::size_t default_max_buffers_per_shard = 256;
constexpr std::size_t min_default_cached_bytes = 64 * mib;
constexpr std::size_t max_buffers_per_shard_limit = 1024;
constexpr std::size_t max_num_shards = 256;
constexpr std::size_t default_idle_release_ms = 5000;
constexpr std::size_t min_idle_release_ms = 10;
constexpr std::size_t max_idle_release_ms = std::size_t{1} << 32;
constexpr std::size_t default_max_fit_classes = 4; // twice the class size
constexpr std::size_t max_max_fit_classes = 32;

std::size_t clamp(std::size_t v, std::size_t lo, std::size_t hi) noexcept {
    return v < lo ? lo : (v > hi ? hi : v);
}

std::size_t round_up_pow2(std::size_t v) noexcept {
    std::size_t p = 1;
    while (p < v) p <<= 1;
    return p;
}

std::size_t physical_memory() noexcept {
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long page = ::sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return 0;
    return static_cast<std::size_t>(pages) * static_cast<std::size_t>(page);
}

} // namespace

pool_config normalize(const pool_config& in) noexcept {
    pool_config c = in;
    c.tls_cache_size = c.tls_cache_size == 0
                           ? default_tls_cache_size
                           : clamp(c.tls_cache_size, 1, detail::thread_cache::max_capacity);
    if (c.max_buffer_size == 0) c.max_buffer_size = default_max_buffer_size;
    c.max_buffer_size = clamp(c.max_buffer_size, 1, detail::max_classified_size);
    if (c.min_buffer_size == 0) c.min_buffer_size = default_min_buffer_size;
    c.min_buffer_size = clamp(c.min_buffer_size, 1, detail::max_classified_size);
    if (c.min_buffer_size > c.max_buffer_size) {
        // Honour whichever bound the caller gave; a default yields.
        if (in.max_buffer_size == 0) c.max_buffer_size = c.min_buffer_size;
        else c.min_buffer_size = c.max_buffer_size;
    }
    c.max_buffers_per_shard = c.max_buffers_per_shard == 0
                                  ? default_max_buffers_per_shard
                                  : clamp(c.max_buffers_per_shard, 1, max_buffers_per_shard_limit);
    if (c.num_shards == 0) {
        const std::size_t cpus = std::thread::hardware_concurrency();
        c.num_shards = clamp(round_up_pow2(cpus == 0 ? 1 : cpus), 4, 64);
    } else {
        c.num_shards = round_up_pow2(clamp(c.num_shards, 1, max_num_shards));
    }
    if (c.max_cached_bytes == 0) {
        const std::size_t eighth = physical_memory() / 8;
        c.max_cached_bytes = eighth > min_default_cached_bytes ? eighth : min_default_cached_bytes;
    }
    if (c.idle_release_ms == 0) c.idle_release_ms = default_idle_release_ms;
    else if (c.idle_release_ms != pool_config::no_idle_release)
        c.idle_release_ms = clamp(c.idle_release_ms, min_idle_release_ms, max_idle_release_ms);
    if (c.max_fit_classes == 0) c.max_fit_classes = default_max_fit_classes;
    else if (c.max_fit_classes != pool_config::exact_classes_only)
        c.max_fit_classes = clamp(c.max_fit_classes, 1, max_max_fit_classes);
    return c;
}

} // namespace zeropool
