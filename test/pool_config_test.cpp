// Tests of zeropool::pool_config and zeropool::normalize: defaults, "0 means
// default", clamping of every field (too small, too large), rounding of
// num_shards, the fluent setters, and sharded_buffer_resource::config().
#include <zeropool/pool_config.hpp>

#define BOOST_TEST_MODULE pool_config
#include <boost/test/unit_test.hpp>

#include <zeropool/sharded_buffer_resource.hpp>

#include "test_resources.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <thread>
#include <type_traits>

#include <unistd.h>

namespace {

using zeropool::normalize;
using zeropool::pool_config;

constexpr std::size_t kib = std::size_t{1} << 10;
constexpr std::size_t mib = std::size_t{1} << 20;
constexpr std::size_t gib = std::size_t{1} << 30;
constexpr std::size_t size_max = std::numeric_limits<std::size_t>::max();
constexpr std::size_t max_classified = std::size_t{1} << 48;

std::size_t next_pow2(std::size_t v) {
    std::size_t p = 1;
    while (p < v) p *= 2;
    return p;
}

std::size_t expected_default_shards() {
    const std::size_t cpus = std::thread::hardware_concurrency();
    const std::size_t p = next_pow2(cpus == 0 ? 1 : cpus);
    return p < 4 ? 4 : (p > 64 ? 64 : p);
}

std::size_t expected_default_cached_bytes() {
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long page = ::sysconf(_SC_PAGESIZE);
    const std::size_t phys = pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) : 0;
    return phys / 8 > 64 * mib ? phys / 8 : 64 * mib;
}

// BOOST_TESTs that two configs have equal fields, naming the field.
void check_same(const pool_config& a, const pool_config& b) {
    BOOST_TEST(a.tls_cache_size == b.tls_cache_size);
    BOOST_TEST(a.min_buffer_size == b.min_buffer_size);
    BOOST_TEST(a.max_buffer_size == b.max_buffer_size);
    BOOST_TEST(a.max_buffers_per_shard == b.max_buffers_per_shard);
    BOOST_TEST(a.num_shards == b.num_shards);
    BOOST_TEST(a.max_cached_bytes == b.max_cached_bytes);
}

static_assert(std::is_aggregate_v<pool_config>);
static_assert(noexcept(normalize(pool_config{})));

} // namespace

BOOST_AUTO_TEST_SUITE(pool_config_suite)

BOOST_AUTO_TEST_CASE(default_constructed_is_all_zero, *boost::unit_test::timeout(60)) {
    const pool_config c{};
    BOOST_TEST(c.tls_cache_size == 0u);
    BOOST_TEST(c.min_buffer_size == 0u);
    BOOST_TEST(c.max_buffer_size == 0u);
    BOOST_TEST(c.max_buffers_per_shard == 0u);
    BOOST_TEST(c.num_shards == 0u);
    BOOST_TEST(c.max_cached_bytes == 0u);
}

BOOST_AUTO_TEST_CASE(defaults, *boost::unit_test::timeout(60)) {
    const pool_config c = normalize(pool_config{});
    BOOST_TEST(c.tls_cache_size == 4u);
    BOOST_TEST(c.min_buffer_size == kib); // 1 KiB (pool_config.hpp, docs/design.md "Defaults")
    BOOST_TEST(c.max_buffer_size == gib);
    BOOST_TEST(c.max_buffers_per_shard == 256u); // docs/design.md "Defaults": mixed sizes need room
    BOOST_TEST(c.num_shards == expected_default_shards());
    BOOST_TEST(c.num_shards >= 4u);
    BOOST_TEST(c.num_shards <= 64u);
    BOOST_TEST((c.num_shards & (c.num_shards - 1)) == 0u);
    BOOST_TEST(c.max_cached_bytes == expected_default_cached_bytes());
    BOOST_TEST(c.max_cached_bytes >= 64 * mib);
}

BOOST_AUTO_TEST_CASE(zero_means_default_per_field, *boost::unit_test::timeout(60)) {
    const pool_config d = normalize(pool_config{});
    // Each field explicitly set to 0 (the others set to a valid non-default)
    // gets the default, and leaves the other fields alone.
    pool_config base = pool_config{}
                           .with_tls_cache_size(2)
                           .with_min_buffer_size(8 * kib)
                           .with_max_buffer_size(64 * mib)
                           .with_max_buffers_per_shard(3)
                           .with_num_shards(2)
                           .with_max_cached_bytes(5 * mib);
    {
        pool_config c = base;
        c.with_tls_cache_size(0);
        const pool_config n = normalize(c);
        BOOST_TEST(n.tls_cache_size == d.tls_cache_size);
        BOOST_TEST(n.max_buffers_per_shard == 3u);
    }
    {
        pool_config c = base;
        c.with_min_buffer_size(0);
        const pool_config n = normalize(c);
        BOOST_TEST(n.min_buffer_size == d.min_buffer_size);
        BOOST_TEST(n.max_buffer_size == 64 * mib);
    }
    {
        pool_config c = base;
        c.with_max_buffer_size(0);
        const pool_config n = normalize(c);
        BOOST_TEST(n.max_buffer_size == d.max_buffer_size);
        BOOST_TEST(n.min_buffer_size == 8 * kib);
    }
    {
        pool_config c = base;
        c.with_max_buffers_per_shard(0);
        const pool_config n = normalize(c);
        BOOST_TEST(n.max_buffers_per_shard == d.max_buffers_per_shard);
        BOOST_TEST(n.tls_cache_size == 2u);
    }
    {
        pool_config c = base;
        c.with_num_shards(0);
        const pool_config n = normalize(c);
        BOOST_TEST(n.num_shards == d.num_shards);
        BOOST_TEST(n.max_cached_bytes == 5 * mib);
    }
    {
        pool_config c = base;
        c.with_max_cached_bytes(0);
        const pool_config n = normalize(c);
        BOOST_TEST(n.max_cached_bytes == d.max_cached_bytes);
        BOOST_TEST(n.num_shards == 2u);
    }
    // All valid non-default values are kept as given.
    check_same(normalize(base), base);
}

BOOST_AUTO_TEST_CASE(tls_cache_size_clamped_to_1_16, *boost::unit_test::timeout(60)) {
    const std::pair<std::size_t, std::size_t> cases[] = {
        {1, 1}, {2, 2}, {7, 7}, {16, 16}, {17, 16}, {1000, 16}, {size_max, 16}};
    for (auto [given, expected] : cases) {
        BOOST_TEST_CONTEXT("tls_cache_size " << given) {
            BOOST_TEST(normalize(pool_config{}.with_tls_cache_size(given)).tls_cache_size == expected);
        }
    }
}

BOOST_AUTO_TEST_CASE(max_buffers_per_shard_clamped_to_1_1024, *boost::unit_test::timeout(60)) {
    const std::pair<std::size_t, std::size_t> cases[] = {
        {1, 1}, {5, 5}, {1024, 1024}, {1025, 1024}, {size_max, 1024}};
    for (auto [given, expected] : cases) {
        BOOST_TEST_CONTEXT("max_buffers_per_shard " << given) {
            BOOST_TEST(normalize(pool_config{}.with_max_buffers_per_shard(given)).max_buffers_per_shard ==
                       expected);
        }
    }
}

BOOST_AUTO_TEST_CASE(num_shards_rounded_up_to_pow2_and_clamped_to_1_256, *boost::unit_test::timeout(60)) {
    const std::pair<std::size_t, std::size_t> cases[] = {
        {1, 1},     {2, 2},     {3, 4},     {4, 4},     {5, 8},       {7, 8},         {8, 8},
        {9, 16},    {63, 64},   {64, 64},   {65, 128},  {129, 256},   {255, 256},     {256, 256},
        {257, 256}, {512, 256}, {1000, 256}, {size_max / 2 + 2, 256}, {size_max, 256}};
    for (auto [given, expected] : cases) {
        BOOST_TEST_CONTEXT("num_shards " << given) {
            BOOST_TEST(normalize(pool_config{}.with_num_shards(given)).num_shards == expected);
        }
    }
}

BOOST_AUTO_TEST_CASE(min_buffer_size_clamped_to_1_max, *boost::unit_test::timeout(60)) {
    // Smallest allowed value.
    BOOST_TEST(normalize(pool_config{}.with_min_buffer_size(1)).min_buffer_size == 1u);
    // Not rounded: any value in range is kept.
    BOOST_TEST(normalize(pool_config{}.with_min_buffer_size(5000)).min_buffer_size == 5000u);
    // Above a given max: clamped down to it.
    {
        const pool_config n = normalize(pool_config{}.with_min_buffer_size(mib).with_max_buffer_size(64 * kib));
        BOOST_TEST(n.min_buffer_size == 64 * kib);
        BOOST_TEST(n.max_buffer_size == 64 * kib);
    }
    // Equal bounds are kept.
    {
        const pool_config n = normalize(pool_config{}.with_min_buffer_size(mib).with_max_buffer_size(mib));
        BOOST_TEST(n.min_buffer_size == mib);
        BOOST_TEST(n.max_buffer_size == mib);
    }
    // Beyond the largest classified size: clamped to 2^48 (and max follows).
    {
        const pool_config n = normalize(pool_config{}.with_min_buffer_size(size_max));
        BOOST_TEST(n.min_buffer_size == max_classified);
        BOOST_TEST(n.max_buffer_size == max_classified);
    }
}

BOOST_AUTO_TEST_CASE(max_buffer_size_clamped_to_min_2pow48, *boost::unit_test::timeout(60)) {
    // Too large: clamped to 2^48.
    for (std::size_t given : {max_classified + 1, std::size_t{1} << 49, size_max}) {
        BOOST_TEST_CONTEXT("max_buffer_size " << given) {
            BOOST_TEST(normalize(pool_config{}.with_max_buffer_size(given)).max_buffer_size == max_classified);
        }
    }
    BOOST_TEST(normalize(pool_config{}.with_max_buffer_size(max_classified)).max_buffer_size == max_classified);
    BOOST_TEST(normalize(pool_config{}.with_max_buffer_size(3 * mib + 1)).max_buffer_size == 3 * mib + 1);
    // A given min above the default max: the default max yields (raised to min).
    {
        const pool_config n = normalize(pool_config{}.with_min_buffer_size(2 * gib));
        BOOST_TEST(n.min_buffer_size == 2 * gib);
        BOOST_TEST(n.max_buffer_size == 2 * gib);
    }
    // A given max below the default min: the default min yields (lowered to max).
    {
        const pool_config n = normalize(pool_config{}.with_max_buffer_size(1000));
        BOOST_TEST(n.max_buffer_size == 1000u);
        BOOST_TEST(n.min_buffer_size == 1000u);
    }
    {
        const pool_config n = normalize(pool_config{}.with_max_buffer_size(1));
        BOOST_TEST(n.max_buffer_size == 1u);
        BOOST_TEST(n.min_buffer_size == 1u);
    }
}

BOOST_AUTO_TEST_CASE(max_cached_bytes_given_value_kept, *boost::unit_test::timeout(60)) {
    // No range is documented for a given cap: it is used as given.
    for (std::size_t given : {std::size_t{1}, 4 * kib, mib, 64 * mib + 1, size_max}) {
        BOOST_TEST_CONTEXT("max_cached_bytes " << given) {
            BOOST_TEST(normalize(pool_config{}.with_max_cached_bytes(given)).max_cached_bytes == given);
        }
    }
}

BOOST_AUTO_TEST_CASE(normalize_is_idempotent, *boost::unit_test::timeout(60)) {
    const pool_config inputs[] = {
        pool_config{},
        pool_config{}.with_tls_cache_size(100).with_num_shards(3).with_max_buffers_per_shard(5000),
        pool_config{}.with_min_buffer_size(mib).with_max_buffer_size(64 * kib),
        pool_config{}.with_min_buffer_size(2 * gib),
        pool_config{}.with_max_buffer_size(size_max).with_min_buffer_size(size_max).with_num_shards(size_max),
        pool_config{}.with_max_buffer_size(1).with_max_cached_bytes(1),
    };
    for (const pool_config& in : inputs) {
        const pool_config once = normalize(in);
        check_same(normalize(once), once);
        // Invariants of every normalised config.
        BOOST_TEST(once.min_buffer_size >= 1u);
        BOOST_TEST(once.min_buffer_size <= once.max_buffer_size);
        BOOST_TEST(once.max_buffer_size <= max_classified);
        BOOST_TEST((once.num_shards & (once.num_shards - 1)) == 0u);
        BOOST_TEST(once.max_cached_bytes > 0u);
    }
}

BOOST_AUTO_TEST_CASE(fluent_setters_set_one_field_and_return_self, *boost::unit_test::timeout(60)) {
    pool_config c{};
    BOOST_TEST(&c.with_tls_cache_size(3) == &c);
    BOOST_TEST(&c.with_min_buffer_size(11) == &c);
    BOOST_TEST(&c.with_max_buffer_size(22) == &c);
    BOOST_TEST(&c.with_max_buffers_per_shard(33) == &c);
    BOOST_TEST(&c.with_num_shards(44) == &c);
    BOOST_TEST(&c.with_max_cached_bytes(55) == &c);
    BOOST_TEST(c.tls_cache_size == 3u);
    BOOST_TEST(c.min_buffer_size == 11u);
    BOOST_TEST(c.max_buffer_size == 22u);
    BOOST_TEST(c.max_buffers_per_shard == 33u);
    BOOST_TEST(c.num_shards == 44u);
    BOOST_TEST(c.max_cached_bytes == 55u);
    // Each setter touches its own field only.
    pool_config d{};
    d.with_num_shards(8);
    BOOST_TEST(d.num_shards == 8u);
    BOOST_TEST(d.tls_cache_size == 0u);
    BOOST_TEST(d.min_buffer_size == 0u);
    BOOST_TEST(d.max_buffer_size == 0u);
    BOOST_TEST(d.max_buffers_per_shard == 0u);
    BOOST_TEST(d.max_cached_bytes == 0u);
    // Usable on a temporary, as in the examples.
    const pool_config e = pool_config{}.with_tls_cache_size(1).with_max_cached_bytes(mib);
    BOOST_TEST(e.tls_cache_size == 1u);
    BOOST_TEST(e.max_cached_bytes == mib);
}

BOOST_AUTO_TEST_CASE(resource_config_equals_normalize_of_given, *boost::unit_test::timeout(60)) {
    zeropool_test::recording_resource upstream;
    const pool_config inputs[] = {
        pool_config{},
        pool_config{}.with_tls_cache_size(100).with_num_shards(3).with_max_buffers_per_shard(5000),
        pool_config{}.with_min_buffer_size(1).with_max_cached_bytes(256 * kib),
        pool_config{}.with_min_buffer_size(mib).with_max_buffer_size(64 * kib),
        pool_config{}.with_max_buffer_size(size_max).with_num_shards(1),
    };
    for (const pool_config& in : inputs) {
        zeropool::sharded_buffer_resource pool(in, &upstream);
        check_same(pool.config(), normalize(in));
        BOOST_TEST(pool.upstream_resource() == &upstream);
    }
    {
        // The default constructor uses the defaults over the default resource.
        zeropool::sharded_buffer_resource pool;
        check_same(pool.config(), normalize(pool_config{}));
        BOOST_TEST(pool.upstream_resource() == std::pmr::get_default_resource());
    }
    // Building pools with any config asks nothing of upstream.
    BOOST_TEST(upstream.allocate_calls() == 0u);
    zeropool_test::expect_balanced(upstream);
}

BOOST_AUTO_TEST_SUITE_END()
