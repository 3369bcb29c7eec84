// zeropool::sharded_buffer_resource, single-threaded: routing (pooled vs
// pass-through), what upstream sees, the tiers (thread cache, shards), the
// caps, trim, preallocate, failure atomicity and the destructor.
#include <zeropool/sharded_buffer_resource.hpp>

#define BOOST_TEST_MODULE sharded_buffer_resource
#include <boost/test/unit_test.hpp>

#include <zeropool/detail/size_class.hpp>

#include "test_resources.hpp"
#include "test_support.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <memory_resource>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <sys/resource.h>

namespace {

using zeropool::pool_config;
using zeropool::pool_stats;
using zeropool::sharded_buffer_resource;
using zeropool_test::class_alignment;
using zeropool_test::class_bytes;
using zeropool_test::expect_balanced;
using zeropool_test::expect_same_stats;
using zeropool_test::failing_resource;
using zeropool_test::gib;
using zeropool_test::injected_failure;
using zeropool_test::is_aligned;
using zeropool_test::kib;
using zeropool_test::mib;
using zeropool_test::recording_resource;
using zeropool_test::upstream_bytes;

constexpr std::size_t size_max = std::numeric_limits<std::size_t>::max();

/// Allocates `n` blocks of `bytes` from `pool`.
std::vector<void*> allocate_n(std::pmr::memory_resource& pool, std::size_t n, std::size_t bytes,
                              std::size_t alignment = alignof(std::max_align_t)) {
    std::vector<void*> v;
    for (std::size_t i = 0; i < n; ++i) v.push_back(pool.allocate(bytes, alignment));
    return v;
}
void deallocate_all(std::pmr::memory_resource& pool, std::vector<void*>& v, std::size_t bytes,
                    std::size_t alignment = alignof(std::max_align_t)) {
    for (void* p : v) pool.deallocate(p, bytes, alignment);
    v.clear();
}

} // namespace

BOOST_AUTO_TEST_SUITE(sharded_buffer_resource_suite)

// ---- construction ------------------------------------------------------------

BOOST_AUTO_TEST_CASE(constructor_and_destructor_of_unused_pool_make_no_upstream_call,
                     *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource a(pool_config{}, &upstream);
        sharded_buffer_resource b(pool_config{}.with_min_buffer_size(1).with_num_shards(256).with_tls_cache_size(16),
                                  &upstream);
        BOOST_TEST(upstream.allocate_calls() == 0u);
        expect_same_stats(a.stats(), pool_stats{});
        expect_same_stats(b.stats(), pool_stats{});
        BOOST_TEST(a.upstream_resource() == &upstream);
    }
    BOOST_TEST(upstream.allocate_calls() == 0u);
    BOOST_TEST(upstream.deallocate_calls() == 0u);
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(null_upstream_throws_invalid_argument, *boost::unit_test::timeout(60)) {
    BOOST_CHECK_THROW(sharded_buffer_resource(pool_config{}, nullptr), std::invalid_argument);
    BOOST_CHECK_THROW(sharded_buffer_resource(static_cast<std::pmr::memory_resource*>(nullptr)),
                      std::invalid_argument);
}

// ---- pass-through --------------------------------------------------------------

BOOST_AUTO_TEST_CASE(small_requests_pass_through_with_exact_size_and_alignment, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}, &upstream);
        const std::size_t min = pool.config().min_buffer_size;
        BOOST_TEST_REQUIRE(min > 64u);
        struct request {
            std::size_t bytes, alignment, seen_bytes;
        };
        const request requests[] = {{min - 1, 8, min - 1}, {min - 1, 64, min - 1}, {100, 16, 100},
                                    {1, 1, 1},             {0, 1, 1},               {0, 16, 1}};
        std::uint64_t calls = 0;
        for (const request& r : requests) {
            BOOST_TEST_CONTEXT("allocate(" << r.bytes << ", " << r.alignment << ")") {
                void* p = pool.allocate(r.bytes, r.alignment);
                ++calls;
                BOOST_TEST(upstream.last_allocate_size() == r.seen_bytes);
                BOOST_TEST(upstream.last_allocate_alignment() == r.alignment);
                BOOST_TEST(upstream.is_live(p));
                pool.deallocate(p, r.bytes, r.alignment);
                BOOST_TEST(upstream.last_deallocate_size() == r.seen_bytes);
                BOOST_TEST(upstream.last_deallocate_alignment() == r.alignment);
                BOOST_TEST(!upstream.is_live(p)); // straight back, not cached
                const pool_stats s = pool.stats();
                BOOST_TEST(s.upstream_allocations == calls);
                BOOST_TEST(s.upstream_deallocations == calls);
                BOOST_TEST(s.idle_bytes == 0u);
                BOOST_TEST(s.idle_blocks == 0u);
            }
        }
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(oversize_requests_pass_through, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}.with_max_buffer_size(mib), &upstream);
        // Just above the largest pooled size.
        void* p = pool.allocate(mib + 1, 16);
        BOOST_TEST(upstream.last_allocate_size() == mib + 1);
        BOOST_TEST(upstream.last_allocate_alignment() == 16u);
        pool.deallocate(p, mib + 1, 16);
        BOOST_TEST(!upstream.is_live(p));
        // The largest pooled size itself is pooled.
        void* q = pool.allocate(mib, 16);
        BOOST_TEST(upstream.last_allocate_size() == upstream_bytes(mib));
        BOOST_TEST(upstream.last_allocate_alignment() == class_alignment(mib));
        pool.deallocate(q, mib, 16);
        BOOST_TEST(upstream.is_live(q)); // kept idle
        const pool_stats s = pool.stats();
        BOOST_TEST(s.upstream_allocations == 2u);
        BOOST_TEST(s.upstream_deallocations == 1u);
        BOOST_TEST(s.idle_blocks == 1u);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(over_aligned_requests_pass_through, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}, &upstream);
        for (std::size_t alignment : {std::size_t{8192}, std::size_t{16384}}) {
            for (std::size_t bytes : {std::size_t{0}, std::size_t{100}, 3 * std::size_t{4096}, mib}) {
                BOOST_TEST_CONTEXT("allocate(" << bytes << ", " << alignment << ")") {
                    void* p = pool.allocate(bytes, alignment);
                    BOOST_TEST(is_aligned(p, alignment));
                    BOOST_TEST(upstream.last_allocate_size() == (bytes == 0 ? 1 : bytes));
                    BOOST_TEST(upstream.last_allocate_alignment() == alignment);
                    pool.deallocate(p, bytes, alignment);
                    BOOST_TEST(!upstream.is_live(p));
                }
            }
        }
        BOOST_TEST(pool.stats().idle_blocks == 0u);
    }
    expect_balanced(upstream);
}

// ---- pooled requests -------------------------------------------------------------

BOOST_AUTO_TEST_CASE(pooled_requests_reach_upstream_with_class_size_and_alignment, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}.with_min_buffer_size(4 * kib), &upstream);
        std::vector<std::pair<void*, std::pair<std::size_t, std::size_t>>> live;
        for (std::size_t bytes : {4 * kib, 4 * kib + 1, std::size_t{5000}, 64 * kib + 1, 600 * kib, mib, 3 * mib + 1}) {
            for (std::size_t alignment : {std::size_t{1}, std::size_t{16}, std::size_t{4096}}) {
                BOOST_TEST_CONTEXT("allocate(" << bytes << ", " << alignment << ")") {
                    const std::size_t calls = upstream.allocate_calls();
                    void* p = pool.allocate(bytes, alignment);
                    BOOST_TEST(upstream.allocate_calls() == calls + 1); // nothing idle yet
                    BOOST_TEST(is_aligned(p, alignment));
                    BOOST_TEST(upstream.last_allocate_size() == upstream_bytes(bytes));
                    BOOST_TEST(upstream.last_allocate_alignment() == class_alignment(bytes));
                    BOOST_TEST(upstream.size_of(p) == upstream_bytes(bytes));
                    live.push_back({p, {bytes, alignment}});
                }
            }
        }
        // Documented examples: 5000 bytes is a 5120-byte, page-aligned block.
        BOOST_TEST(class_bytes(5000) == 5120u);
        BOOST_TEST(class_alignment(5000) == 4096u);
        // A request below min_buffer_size but with page alignment is classified
        // by max(bytes, alignment) = 4096 and so pooled (nothing is idle yet).
        const std::size_t calls = upstream.allocate_calls();
        void* p = pool.allocate(100, 4096);
        BOOST_TEST(upstream.allocate_calls() == calls + 1);
        BOOST_TEST(upstream.last_allocate_size() == 4096u);
        BOOST_TEST(upstream.last_allocate_alignment() == 4096u);
        pool.deallocate(p, 100, 4096);
        BOOST_TEST(upstream.is_live(p)); // pooled: kept idle
        for (auto& [block, req] : live) pool.deallocate(block, req.first, req.second);
        // The same size with a small alignment is below the minimum: passed through.
        void* q = pool.allocate(4095, 64);
        BOOST_TEST(upstream.last_allocate_size() == 4095u);
        BOOST_TEST(upstream.last_allocate_alignment() == 64u);
        pool.deallocate(q, 4095, 64);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(freed_block_is_reused_from_the_thread_cache, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}, &upstream);
        void* p = pool.allocate(mib, 64);
        pool.deallocate(p, mib, 64);
        pool_stats s = pool.stats();
        BOOST_TEST(s.upstream_allocations == 1u);
        BOOST_TEST(s.upstream_deallocations == 0u);
        BOOST_TEST(s.idle_blocks == 1u);
        BOOST_TEST(s.idle_bytes == upstream_bytes(mib));
        // Another size of the same class (1 MiB - 100 rounds up to 1 MiB), and
        // deallocate with the size asked for: the pool recovers the block size.
        BOOST_TEST_REQUIRE(class_bytes(mib - 100) == mib);
        void* q = pool.allocate(mib - 100, 16);
        // The same block; alignment 16 places the data 16 bytes in, alignment 64 at the start.
        BOOST_TEST(upstream.block_of(q) == p);
        BOOST_TEST(static_cast<char*>(q) == static_cast<char*>(p) + zeropool::detail::low_alignment_offset);
        s = pool.stats();
        BOOST_TEST(s.thread_cache_hits == 1u);
        BOOST_TEST(s.upstream_allocations == 1u);
        BOOST_TEST(s.idle_blocks == 0u);
        BOOST_TEST(s.idle_bytes == 0u);
        BOOST_TEST(upstream.allocate_calls() == 1u);
        pool.deallocate(q, mib - 100, 16);
        // Classification uses max(bytes, alignment): (100, 4096) and (4096, 16)
        // are the same class, so one block serves both.
        void* a = pool.allocate(100, 4096);
        pool.deallocate(a, 100, 4096);
        void* b = pool.allocate(4096, 16);
        BOOST_TEST(b == a);
        BOOST_TEST(pool.stats().thread_cache_hits == 2u);
        pool.deallocate(b, 4096, 16);
        BOOST_TEST(pool.stats().idle_bytes == upstream_bytes(mib) + upstream_bytes(4096));
    }
    expect_balanced(upstream);
}

// With fit off (fit itself: test/fit_test.cpp).
BOOST_AUTO_TEST_CASE(exact_classes_only_never_use_a_block_of_another_class, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}.with_max_fit_classes(pool_config::exact_classes_only), &upstream);
        void* big = pool.allocate(mib, 16);
        pool.deallocate(big, mib, 16);
        // 600 KiB is class 640 KiB: the idle 1 MiB block must not serve it.
        void* mid = pool.allocate(600 * kib, 16);
        BOOST_TEST(mid != big);
        BOOST_TEST(class_bytes(600 * kib) == 640 * kib);
        BOOST_TEST(upstream.last_allocate_size() == upstream_bytes(600 * kib));
        // Nor may it serve a larger class (1 MiB + 1 is 1.25 MiB).
        void* bigger = pool.allocate(mib + 1, 16);
        BOOST_TEST(bigger != big);
        BOOST_TEST(class_bytes(mib + 1) == mib + mib / 4);
        BOOST_TEST(upstream.last_allocate_size() == upstream_bytes(mib + 1));
        pool_stats s = pool.stats();
        BOOST_TEST(s.upstream_allocations == 3u);
        BOOST_TEST(s.thread_cache_hits == 0u);
        BOOST_TEST(s.shard_hits == 0u);
        BOOST_TEST(s.idle_blocks == 1u);
        // The 1 MiB block still serves a 1 MiB request.
        void* again = pool.allocate(mib, 16);
        BOOST_TEST(again == big);
        pool.deallocate(again, mib, 16);
        pool.deallocate(mid, 600 * kib, 16);
        pool.deallocate(bigger, mib + 1, 16);
        s = pool.stats();
        BOOST_TEST(s.idle_blocks == 3u);
        BOOST_TEST(s.idle_bytes == upstream_bytes(mib) + upstream_bytes(600 * kib) + upstream_bytes(mib + 1));
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(pools_do_not_share_idle_blocks, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource a(pool_config{}, &upstream);
        sharded_buffer_resource b(pool_config{}, &upstream);
        void* p = a.allocate(mib);
        a.deallocate(p, mib);
        void* q = b.allocate(mib);
        BOOST_TEST(q != p);
        BOOST_TEST(b.stats().thread_cache_hits == 0u);
        BOOST_TEST(b.stats().upstream_allocations == 1u);
        BOOST_TEST(a.stats().idle_blocks == 1u);
        b.deallocate(q, mib);
    }
    expect_balanced(upstream);
}

// A thread that alternates between more pools than its direct-mapped table
// has slots, with a mix of sizes: each pool serves only blocks it got from its
// own upstream, and once warm every pool hits its thread cache (the hit path
// checks that the pool is the one the thread used last).
BOOST_AUTO_TEST_CASE(thread_alternating_between_pools_gets_each_pools_own_blocks, *boost::unit_test::timeout(60)) {
    constexpr std::size_t pools = 11; // more than the 8 slots of the table
    std::vector<std::unique_ptr<recording_resource>> upstreams;
    std::vector<std::unique_ptr<sharded_buffer_resource>> pool;
    for (std::size_t i = 0; i < pools; ++i) {
        upstreams.push_back(std::make_unique<recording_resource>());
        pool.push_back(std::make_unique<sharded_buffer_resource>(pool_config{}, upstreams.back().get()));
    }
    const std::size_t sizes[] = {64 * kib, mib, 64 * kib, 5000};
    for (int round = 0; round < 200; ++round) {
        for (std::size_t i = 0; i < pools; ++i) {
            const std::size_t bytes = sizes[(static_cast<std::size_t>(round) + i) % 4];
            void* p = pool[i]->allocate(bytes);
            std::memset(p, static_cast<int>(i), bytes);
            pool[i]->deallocate(p, bytes);
        }
    }
    for (std::size_t i = 0; i < pools; ++i) {
        BOOST_TEST_CONTEXT("pool " << i) {
            const pool_stats st = pool[i]->stats();
            // Three classes, one block each, however many rounds.
            BOOST_TEST(st.upstream_allocations == 3u);
            BOOST_TEST(st.thread_cache_hits == 200u - 3u);
            BOOST_TEST(upstreams[i]->allocate_calls() == 3u);
        }
    }
    pool.clear();
    for (auto& u : upstreams) expect_balanced(*u);
}

// The first call a thread makes on a cache that no allocation created (a
// deallocate made it, so it remembers no request) is still checked: bad
// sizes and alignments throw and never reach a cached block.
BOOST_AUTO_TEST_CASE(a_fresh_caches_first_request_is_checked, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}.with_min_buffer_size(1), &upstream);
        void* p = pool.allocate(64 * kib);
        std::thread([&] {
            pool.deallocate(p, 64 * kib); // creates this thread's cache; no request remembered
            for (std::size_t bytes : {size_max, size_max / 2 + 1})
                for (std::size_t alignment : {std::size_t{0}, std::size_t{16}, std::size_t{3}})
                    BOOST_CHECK_THROW(static_cast<void>(pool.allocate(bytes, alignment)), std::bad_alloc);
            for (std::size_t alignment : {std::size_t{0}, std::size_t{48}})
                BOOST_CHECK_THROW(static_cast<void>(pool.allocate(64 * kib, alignment)), std::bad_alloc);
            BOOST_TEST(pool.stats().idle_blocks == 1u); // the cached block is still there
            void* q = pool.allocate(64 * kib);
            BOOST_TEST(q == p);
            pool.deallocate(q, 64 * kib);
        }).join();
        BOOST_TEST(upstream.allocate_calls() == 1u);
    }
    expect_balanced(upstream);
}

// ---- tiers and caps --------------------------------------------------------------

// A thread that keeps missing one class (a producer: another thread frees
// what it allocates) takes several blocks per shard lock (docs/design.md,
// "Allocate"); a thread asking each class once is served by one shard hit per
// class. How many blocks a refill moves is pinned in refill_policy_*, not here.
BOOST_AUTO_TEST_CASE(repeated_misses_of_a_class_refill_the_cache_in_one_lock, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}.with_tls_cache_size(4), &upstream);
        const std::size_t sizes[] = {64 * kib, 96 * kib, 128 * kib};
        std::vector<void*> blocks[3];
        for (std::size_t c = 0; c < 3; ++c) blocks[c] = allocate_n(pool, 12, sizes[c]);
        std::thread([&] { // frees everything: 4 stay in its cache, which goes to the shards at exit
            for (std::size_t c = 0; c < 3; ++c) deallocate_all(pool, blocks[c], sizes[c]);
        }).join();
        pool_stats s = pool.stats();
        BOOST_TEST(s.idle_blocks == 36u);
        BOOST_TEST(s.thread_cache_hits == 0u);
        BOOST_TEST(s.shard_hits == 0u);
        std::thread([&] {
            // One of each class: three shard hits, nothing extra taken.
            void* one[3];
            for (std::size_t c = 0; c < 3; ++c) one[c] = pool.allocate(sizes[c]);
            const pool_stats t = pool.stats();
            BOOST_TEST(t.shard_hits == 3u);
            BOOST_TEST(t.idle_blocks == 33u);
            for (std::size_t c = 0; c < 3; ++c) pool.deallocate(one[c], sizes[c]);
        }).join();
        std::thread([&] {
            // Twelve of one class, all live, all from the pool: each is a
            // shard hit or a thread cache hit of a block a refill moved into
            // this thread's cache (it frees nothing, so nothing else is
            // there). Some were refilled: fewer shard locks than blocks.
            std::vector<void*> got = allocate_n(pool, 12, sizes[0]);
            const pool_stats t = pool.stats();
            BOOST_TEST((t.shard_hits - 3u) + t.thread_cache_hits == 12u);
            BOOST_TEST(t.thread_cache_hits > 0u);
            BOOST_TEST(t.upstream_allocations == 36u);
            BOOST_TEST(std::set<void*>(got.begin(), got.end()).size() == 12u);
            deallocate_all(pool, got, sizes[0]);
        }).join();
        s = pool.stats();
        BOOST_TEST(s.upstream_allocations == 36u);
        BOOST_TEST(s.idle_blocks == 36u);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(shard_tier_serves_once_the_thread_cache_is_full, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}.with_tls_cache_size(2), &upstream);
        std::vector<void*> blocks = allocate_n(pool, 5, 64 * kib);
        const std::set<void*> first(blocks.begin(), blocks.end());
        deallocate_all(pool, blocks, 64 * kib);
        pool_stats s = pool.stats();
        BOOST_TEST(s.idle_blocks == 5u); // at most 2 in the thread cache, the rest in shards
        BOOST_TEST(s.idle_bytes == 5 * upstream_bytes(64 * kib));
        BOOST_TEST(s.upstream_deallocations == 0u);
        blocks = allocate_n(pool, 5, 64 * kib);
        const std::set<void*> second(blocks.begin(), blocks.end());
        BOOST_TEST((second == first)); // all reused
        s = pool.stats();
        // All five from the pool: the last block freed stayed in the thread
        // cache (a hit), and the blocks the cache could not hold came through
        // the shards (at least one shard hit). How the rest split between the
        // tiers is the refill policy, pinned in refill_policy_*.
        BOOST_TEST(s.thread_cache_hits + s.shard_hits == 5u);
        BOOST_TEST(s.thread_cache_hits >= 1u);
        BOOST_TEST(s.shard_hits >= 1u);
        BOOST_TEST(s.upstream_allocations == 5u);
        BOOST_TEST(s.idle_blocks == 0u);
        deallocate_all(pool, blocks, 64 * kib);
    }
    expect_balanced(upstream);
}

// Pins the current refill and spill policy (docs/design.md, "Allocate",
// "Deallocate" and "Bounds"): exact thread cache and shard hit counts that
// follow from how many blocks a refill moves in one shard lock and how many a
// full thread cache sends to the shards, not from any documented contract.
// Expected to change with that policy: update these numbers and design.md
// together. The contracts these scenarios stand for (every allocation served
// from the pool, upstream untouched, no block lost) are asserted by the tests
// above, which do not depend on these numbers.
BOOST_AUTO_TEST_CASE(refill_policy_pins_current_batch_and_spill_counts, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        // A producer: twelve of one class from the shards, by a thread that
        // frees none. The first miss takes one block; each repeated miss of
        // the class takes one plus one per free slot of the 4-slot cache,
        // which then serves those: 1 + (1 + 4) + (1 + 4) + 1, from 4 shard locks.
        sharded_buffer_resource pool(pool_config{}.with_tls_cache_size(4), &upstream);
        std::vector<void*> blocks = allocate_n(pool, 12, 64 * kib);
        std::thread([&] { deallocate_all(pool, blocks, 64 * kib); }).join(); // its cache goes to the shards
        BOOST_TEST_REQUIRE(pool.stats().idle_blocks == 12u);
        std::thread([&] {
            std::vector<void*> got = allocate_n(pool, 12, 64 * kib);
            const pool_stats t = pool.stats();
            BOOST_TEST(t.shard_hits == 4u);
            BOOST_TEST(t.thread_cache_hits == 8u);
            BOOST_TEST(t.upstream_allocations == 12u);
            deallocate_all(pool, got, 64 * kib);
        }).join();
    }
    expect_balanced(upstream);
    {
        // A full 2-slot cache sends its oldest block to a shard on each
        // further free (half the cache), so after five frees it holds the last
        // two. Reallocating: 2 thread cache hits; then a repeated miss (the
        // first round missed this class too) takes one block and refills the
        // two free slots under one shard lock: 1 shard hit, 2 more cache hits.
        sharded_buffer_resource pool(pool_config{}.with_tls_cache_size(2), &upstream);
        std::vector<void*> blocks = allocate_n(pool, 5, 64 * kib);
        deallocate_all(pool, blocks, 64 * kib);
        blocks = allocate_n(pool, 5, 64 * kib);
        const pool_stats s = pool.stats();
        BOOST_TEST(s.thread_cache_hits == 4u);
        BOOST_TEST(s.shard_hits == 1u);
        BOOST_TEST(s.upstream_allocations == 5u);
        deallocate_all(pool, blocks, 64 * kib);
    }
    expect_balanced(upstream);
    {
        // The first miss of a class takes one block only (no refill): two
        // allocations of preallocated blocks are two shard hits.
        sharded_buffer_resource pool(pool_config{}, &upstream);
        BOOST_TEST(pool.preallocate(3, mib) == 3u);
        void* p = pool.allocate(mib);
        void* q = pool.allocate(mib);
        const pool_stats s = pool.stats();
        BOOST_TEST(s.shard_hits == 2u);
        BOOST_TEST(s.thread_cache_hits == 0u);
        BOOST_TEST(s.upstream_allocations == 3u);
        pool.deallocate(p, mib);
        pool.deallocate(q, mib);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(idle_bytes_never_exceed_max_cached_bytes, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        // A cap of three 64 KiB blocks (as held from upstream); a thread may hold a quarter (48 KiB),
        // which is less than one block, so the shards keep what the cap allows.
        const std::size_t cap = 3 * upstream_bytes(64 * kib);
        sharded_buffer_resource pool(pool_config{}.with_max_cached_bytes(cap), &upstream);
        std::vector<void*> blocks = allocate_n(pool, 10, 64 * kib);
        for (std::size_t i = 0; i < blocks.size(); ++i) {
            pool.deallocate(blocks[i], 64 * kib);
            const pool_stats s = pool.stats();
            BOOST_TEST_CONTEXT("after " << i + 1 << " deallocations") {
                BOOST_TEST(s.idle_bytes <= cap);
                BOOST_TEST(s.idle_bytes == s.idle_blocks * upstream_bytes(64 * kib));
                BOOST_TEST(s.upstream_deallocations == i + 1 - s.idle_blocks);
            }
        }
        blocks.clear();
        const pool_stats s = pool.stats();
        BOOST_TEST(s.idle_blocks == 3u);         // what the cap allows is kept
        BOOST_TEST(s.upstream_deallocations == 7u); // the excess went upstream
        BOOST_TEST(upstream.outstanding_blocks() == 3u);
    }
    expect_balanced(upstream);
    {
        // With a thread cache in play: 64 KiB blocks, cap 1 MiB, tls 4.
        const std::size_t cap = mib;
        sharded_buffer_resource pool(pool_config{}.with_max_cached_bytes(cap), &upstream);
        std::vector<void*> blocks = allocate_n(pool, 24, 64 * kib);
        deallocate_all(pool, blocks, 64 * kib);
        const pool_stats s = pool.stats();
        BOOST_TEST(s.idle_bytes <= cap);
        BOOST_TEST(s.idle_blocks >= 4u); // at least the thread cache's worth
        BOOST_TEST(s.idle_bytes == s.idle_blocks * upstream_bytes(64 * kib));
        BOOST_TEST(s.upstream_deallocations == 24u - s.idle_blocks);
        BOOST_TEST(upstream.outstanding_blocks() == s.idle_blocks);
    }
    expect_balanced(upstream);
    {
        // A block larger than the whole cap is never kept.
        sharded_buffer_resource pool(pool_config{}.with_max_cached_bytes(mib), &upstream);
        void* p = pool.allocate(2 * mib);
        pool.deallocate(p, 2 * mib);
        BOOST_TEST(pool.stats().idle_bytes == 0u);
        BOOST_TEST(!upstream.is_live(p));
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(max_buffers_per_shard_is_respected, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        // One shard of two blocks, one block per thread cache: 3 idle at most.
        sharded_buffer_resource pool(
            pool_config{}.with_num_shards(1).with_max_buffers_per_shard(2).with_tls_cache_size(1), &upstream);
        std::vector<void*> blocks = allocate_n(pool, 6, 64 * kib);
        deallocate_all(pool, blocks, 64 * kib);
        const pool_stats s = pool.stats();
        BOOST_TEST(s.idle_blocks == 3u);
        BOOST_TEST(s.upstream_deallocations == 3u);
        BOOST_TEST(upstream.outstanding_blocks() == 3u);
    }
    expect_balanced(upstream);
    {
        // Two shards of two: 1 + 4 idle at most, whatever the shard choice.
        sharded_buffer_resource pool(
            pool_config{}.with_num_shards(2).with_max_buffers_per_shard(2).with_tls_cache_size(1), &upstream);
        std::vector<void*> blocks = allocate_n(pool, 10, 64 * kib);
        deallocate_all(pool, blocks, 64 * kib);
        const pool_stats s = pool.stats();
        BOOST_TEST(s.idle_blocks <= 5u);
        BOOST_TEST(s.idle_blocks >= 3u); // at least the thread cache and the home shard
        BOOST_TEST(s.upstream_deallocations == 10u - s.idle_blocks);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(trim_returns_idle_blocks_of_shards_and_thread_cache, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}.with_tls_cache_size(2), &upstream);
        void* in_use = pool.allocate(mib);
        // Six idle blocks of three classes: some in the thread cache, the rest in shards.
        std::vector<void*> a = allocate_n(pool, 2, 64 * kib);
        std::vector<void*> b = allocate_n(pool, 2, 5000);
        std::vector<void*> c = allocate_n(pool, 2, 600 * kib);
        deallocate_all(pool, a, 64 * kib);
        deallocate_all(pool, b, 5000);
        deallocate_all(pool, c, 600 * kib);
        BOOST_TEST(pool.stats().idle_blocks == 6u);
        pool.trim();
        const pool_stats s = pool.stats();
        BOOST_TEST(s.idle_bytes == 0u);
        BOOST_TEST(s.idle_blocks == 0u);
        BOOST_TEST(s.upstream_deallocations == 6u);
        BOOST_TEST(upstream.outstanding_blocks() == 1u); // the block in use is untouched
        BOOST_TEST(upstream.is_live(in_use));
        // The pool keeps working after a trim.
        void* p = pool.allocate(64 * kib);
        BOOST_TEST(pool.stats().upstream_allocations == s.upstream_allocations + 1);
        pool.deallocate(p, 64 * kib);
        BOOST_TEST(pool.stats().idle_blocks == 1u);
        pool.deallocate(in_use, mib);
        pool.trim();
        BOOST_TEST(pool.stats().idle_blocks == 0u);
        BOOST_TEST(upstream.outstanding_blocks() == 0u);
        pool.trim(); // trimming an empty pool is harmless
        BOOST_TEST(pool.stats().upstream_deallocations == pool.stats().upstream_allocations);
    }
    expect_balanced(upstream);
}

// ---- preallocate -----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(preallocate_fills_the_shards, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}, &upstream);
        BOOST_TEST(pool.preallocate(3, mib) == 3u);
        pool_stats s = pool.stats();
        BOOST_TEST(s.upstream_allocations == 3u);
        BOOST_TEST(s.idle_blocks == 3u);
        BOOST_TEST(s.idle_bytes == 3 * upstream_bytes(mib));
        BOOST_TEST(upstream.last_allocate_size() == upstream_bytes(mib));
        BOOST_TEST(upstream.last_allocate_alignment() == class_alignment(mib));
        // Served without upstream, from the shards.
        void* p = pool.allocate(mib);
        zeropool::buffer buf = pool.get(mib);
        s = pool.stats();
        BOOST_TEST(s.upstream_allocations == 3u);
        // The first from a shard (this thread's cache is empty); the second
        // from a shard or from the cache, if the first miss refilled it.
        BOOST_TEST(s.shard_hits >= 1u);
        BOOST_TEST(s.shard_hits + s.thread_cache_hits == 2u);
        BOOST_TEST(s.idle_blocks == 1u);
        pool.put(std::move(buf));
        pool.deallocate(p, mib);
        // The class of `size`, not `size` itself.
        pool.preallocate(1, 5000);
        BOOST_TEST(upstream.last_allocate_size() == 5120u);
        BOOST_TEST(upstream.last_allocate_alignment() == 4096u);
        const std::size_t calls = upstream.allocate_calls();
        // Not pooled sizes, and count 0: nothing.
        BOOST_TEST(pool.preallocate(4, pool.config().min_buffer_size - 1) == 0u);
        BOOST_TEST(pool.preallocate(4, pool.config().max_buffer_size + 1) == 0u);
        BOOST_TEST(pool.preallocate(0, mib) == 0u);
        BOOST_TEST(upstream.allocate_calls() == calls);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(preallocate_returns_the_blocks_kept_under_the_cap, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        // Room for two 1 MiB blocks (each holds upstream_bytes(mib) of the budget).
        sharded_buffer_resource pool(pool_config{}.with_max_cached_bytes(2 * upstream_bytes(mib) + 1), &upstream);
        BOOST_TEST(pool.preallocate(5, mib) == 2u);
        BOOST_TEST(pool.stats().idle_blocks == 2u);
        BOOST_TEST(upstream.outstanding_blocks() == 2u); // nothing more taken, nothing lost
    }
    expect_balanced(upstream);
}

// ---- good_size ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(good_size_is_the_usable_size_of_the_block, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}, &upstream);
        for (std::size_t n : {std::size_t{1024}, std::size_t{1025}, std::size_t{5000}, 64 * kib + 1, mib - 1,
                              mib, mib + 1, 3 * mib + 7}) {
            BOOST_TEST_CONTEXT("good_size(" << n << ")") {
                const std::size_t g = pool.good_size(n);
                BOOST_TEST(g >= n);
                BOOST_TEST(g == class_bytes(n));
                BOOST_TEST(g < n + n / 4 + 1); // under 25% more
                // A request of good_size(n) takes the same block as one of n.
                void* p = pool.allocate(n);
                pool.deallocate(p, n);
                const std::size_t calls = upstream.allocate_calls();
                void* q = pool.allocate(g);
                BOOST_TEST(q == p);
                BOOST_TEST(upstream.allocate_calls() == calls);
                pool.deallocate(q, g);
            }
        }
        // Not pooled: the size itself.
        BOOST_TEST(pool.good_size(100) == 100u);
        BOOST_TEST(pool.good_size(2 * gib) == 2 * gib);
        BOOST_TEST(pool.good_size(0) == 0u);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(upstream_only_constructor_uses_the_default_options, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(&upstream);
        BOOST_TEST(pool.upstream_resource() == &upstream);
        const pool_config defaults = zeropool::normalize(pool_config{});
        BOOST_TEST(pool.config().max_cached_bytes == defaults.max_cached_bytes);
        BOOST_TEST(pool.config().min_buffer_size == defaults.min_buffer_size);
        void* p = pool.allocate(mib);
        BOOST_TEST(upstream.allocate_calls() == 1u);
        pool.deallocate(p, mib);
    }
    expect_balanced(upstream);
}

// Minor page faults of this process so far (exact, not a timing).
long minor_faults() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return usage.ru_minflt;
}

BOOST_AUTO_TEST_CASE(preallocated_buffers_touch_no_fresh_page, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}, &upstream);
        constexpr std::size_t size = 16 * mib;
        const std::size_t pages = size / 4096;
        pool.preallocate(1, size);
        const std::size_t allocations = pool.stats().upstream_allocations;
        auto* p = static_cast<volatile unsigned char*>(pool.allocate(size));
        BOOST_TEST(pool.stats().upstream_allocations == allocations); // the preallocated block
        const long before = minor_faults();
        for (std::size_t off = 0; off < size; off += 4096) p[off] = 1;
        const long faults = minor_faults() - before;
        BOOST_TEST_MESSAGE("minor faults touching a preallocated " << size << "-byte block: " << faults);
        // A fresh block would fault once per page (4096 here); allow for
        // sanitizer shadow memory and the test's own stack.
        BOOST_TEST(faults < static_cast<long>(pages / 16));
        pool.deallocate(const_cast<unsigned char*>(p), size);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(preallocate_stops_at_the_caps, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}.with_num_shards(1).with_max_buffers_per_shard(2), &upstream);
        pool.preallocate(10, 64 * kib);
        const pool_stats s = pool.stats();
        BOOST_TEST(s.idle_blocks == 2u);
        BOOST_TEST(s.upstream_allocations - s.upstream_deallocations == 2u);
        BOOST_TEST(upstream.outstanding_blocks() == 2u);
    }
    expect_balanced(upstream);
    {
        const std::size_t cap = 3 * upstream_bytes(64 * kib);
        sharded_buffer_resource pool(pool_config{}.with_max_cached_bytes(cap), &upstream);
        pool.preallocate(10, 64 * kib);
        const pool_stats s = pool.stats();
        BOOST_TEST(s.idle_bytes <= cap);
        BOOST_TEST(s.idle_blocks == 3u);
        BOOST_TEST(s.upstream_allocations - s.upstream_deallocations == 3u);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(preallocate_failure_keeps_blocks_already_obtained, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    failing_resource failing(&upstream);
    {
        sharded_buffer_resource pool(pool_config{}, &failing);
        failing.fail_nth(3);
        BOOST_CHECK_THROW(pool.preallocate(5, mib), injected_failure);
        const pool_stats s = pool.stats();
        BOOST_TEST(s.idle_blocks == 2u);
        BOOST_TEST(s.upstream_allocations == 2u);
        BOOST_TEST(upstream.outstanding_blocks() == 2u);
        std::vector<void*> blocks = allocate_n(pool, 2, mib);
        BOOST_TEST(pool.stats().upstream_allocations == 2u);
        deallocate_all(pool, blocks, mib);
    }
    expect_balanced(upstream);
}

// ---- errors -----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(huge_sizes_and_bad_alignments_throw_without_upstream, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}.with_min_buffer_size(1).with_max_buffer_size(size_max), &upstream);
        for (std::size_t bytes : {size_max, size_max - 4095, zeropool::detail::max_request + 1}) {
            BOOST_TEST_CONTEXT("allocate(" << bytes << ")") {
                BOOST_CHECK_THROW(static_cast<void>(pool.allocate(bytes, 16)), std::bad_alloc);
            }
        }
        for (std::size_t alignment : {std::size_t{0}, std::size_t{3}, std::size_t{48}, std::size_t{4097},
                                      std::size_t{3} << 20}) {
            BOOST_TEST_CONTEXT("allocate(64 KiB, " << alignment << ")") {
                BOOST_CHECK_THROW(static_cast<void>(pool.allocate(64 * kib, alignment)), std::bad_alloc);
            }
        }
        BOOST_TEST(upstream.allocate_calls() == 0u);
        expect_same_stats(pool.stats(), pool_stats{});
        // detail::max_request itself is not rejected up front: it reaches
        // upstream (which has no such memory and throws).
        BOOST_CHECK_THROW(static_cast<void>(pool.allocate(zeropool::detail::max_request, 16)), std::bad_alloc);
        BOOST_TEST(upstream.allocate_calls() == 1u);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(failed_allocate_leaves_pool_and_stats_unchanged, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    failing_resource failing(&upstream);
    {
        sharded_buffer_resource pool(pool_config{}.with_tls_cache_size(1), &failing);
        // Some state in every tier: a cached 1 MiB block, a 64 KiB one in a
        // shard, a live block.
        void* cached = pool.allocate(mib);
        void* sharded = pool.allocate(64 * kib);
        void* live = pool.allocate(5000);
        pool.deallocate(sharded, 64 * kib);
        pool.deallocate(cached, mib);
        const pool_stats before = pool.stats();
        const std::size_t outstanding = upstream.outstanding_blocks();
        struct request {
            std::size_t bytes, alignment;
        };
        for (const request r : {request{2 * mib, 16}, request{64 * kib + 1, 4096}, request{100, 8},
                                request{100, 8192}, request{2 * gib, 16}}) {
            BOOST_TEST_CONTEXT("allocate(" << r.bytes << ", " << r.alignment << ")") {
                failing.fail_next(1);
                BOOST_CHECK_THROW(static_cast<void>(pool.allocate(r.bytes, r.alignment)), injected_failure);
                expect_same_stats(pool.stats(), before);
                BOOST_TEST(upstream.outstanding_blocks() == outstanding);
            }
        }
        failing.disarm();
        // The pool keeps working and its idle blocks are still there.
        void* again = pool.allocate(mib);
        BOOST_TEST(again == cached);
        void* again2 = pool.allocate(64 * kib);
        BOOST_TEST(again2 == sharded);
        void* fresh = pool.allocate(2 * mib);
        const pool_stats after = pool.stats();
        BOOST_TEST(after.upstream_allocations == before.upstream_allocations + 1);
        BOOST_TEST(after.thread_cache_hits + after.shard_hits == before.thread_cache_hits + before.shard_hits + 2);
        pool.deallocate(fresh, 2 * mib);
        pool.deallocate(again2, 64 * kib);
        pool.deallocate(again, mib);
        pool.deallocate(live, 5000);
    }
    expect_balanced(upstream);
}

// ---- destructor ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(destructor_returns_every_idle_block, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(pool_config{}.with_tls_cache_size(3), &upstream);
        std::vector<void*> a = allocate_n(pool, 8, 64 * kib, 4096);
        std::vector<void*> b = allocate_n(pool, 5, mib + 1, 64);
        std::vector<void*> c = allocate_n(pool, 3, 100); // pass-through
        deallocate_all(pool, b, mib + 1, 64);
        deallocate_all(pool, c, 100);
        deallocate_all(pool, a, 64 * kib, 4096);
        BOOST_TEST(pool.stats().idle_blocks == 13u);
        BOOST_TEST(upstream.outstanding_blocks() == 13u);
    }
    expect_balanced(upstream);
    BOOST_TEST(upstream.deallocate_calls() == upstream.allocate_calls());
    {
        // Also after preallocate only, and with a pool built over the same upstream again.
        sharded_buffer_resource pool(pool_config{}, &upstream);
        pool.preallocate(4, 256 * kib);
        BOOST_TEST(upstream.outstanding_blocks() == 4u);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_SUITE_END()
