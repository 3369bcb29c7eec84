// The std::pmr::memory_resource contract, one suite for several resources:
// std::pmr::synchronized_pool_resource (the reference) and zeropool pools in
// several configurations, each over a recording upstream that checks every
// call and must balance once the resource is destroyed.
#include <zeropool/sharded_buffer_resource.hpp>

#define BOOST_TEST_MODULE conformance
#include <boost/test/unit_test.hpp>

#include "test_resources.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <memory_resource>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

namespace {

using zeropool_test::expect_balanced;
using zeropool_test::failing_resource;
using zeropool_test::injected_failure;
using zeropool_test::is_aligned;
using zeropool_test::recording_resource;

constexpr std::size_t kib = std::size_t{1} << 10;
constexpr std::size_t mib = std::size_t{1} << 20;
constexpr std::size_t size_max = std::numeric_limits<std::size_t>::max();

// ---- resource factories: make(upstream) builds the resource under test -----

/// The reference: libstdc++'s synchronized pool.
struct std_synchronized_pool {
    static std::unique_ptr<std::pmr::memory_resource> make(std::pmr::memory_resource* upstream) {
        return std::make_unique<std::pmr::synchronized_pool_resource>(upstream);
    }
};

/// zeropool with the default options.
struct zeropool_defaults {
    static std::unique_ptr<std::pmr::memory_resource> make(std::pmr::memory_resource* upstream) {
        return std::make_unique<zeropool::sharded_buffer_resource>(zeropool::pool_config{}, upstream);
    }
};

/// zeropool pooling every size (min_buffer_size 1) under a small byte cap, so
/// tiny blocks are pooled and large ones overflow the cap to upstream.
struct zeropool_all_pooled_small_cap {
    static std::unique_ptr<std::pmr::memory_resource> make(std::pmr::memory_resource* upstream) {
        return std::make_unique<zeropool::sharded_buffer_resource>(
            zeropool::pool_config{}.with_min_buffer_size(1).with_max_cached_bytes(256 * kib).with_tls_cache_size(2),
            upstream);
    }
};

/// zeropool with the smallest tiers: one shard of one block, one cached block
/// per thread, nothing above 64 KiB pooled.
struct zeropool_tiny_tiers {
    static std::unique_ptr<std::pmr::memory_resource> make(std::pmr::memory_resource* upstream) {
        return std::make_unique<zeropool::sharded_buffer_resource>(zeropool::pool_config{}
                                                                        .with_max_buffer_size(64 * kib)
                                                                        .with_num_shards(1)
                                                                        .with_max_buffers_per_shard(1)
                                                                        .with_tls_cache_size(1),
                                                                    upstream);
    }
};

using resource_factories =
    std::tuple<std_synchronized_pool, zeropool_defaults, zeropool_all_pooled_small_cap, zeropool_tiny_tiers>;

// ---- helpers -----------------------------------------------------------------

/// Request sizes of the sweeps: empty, tiny, below and at a page, just above a
/// class boundary, and large ones on both sides of a class boundary.
const std::size_t sweep_sizes[] = {0, 1, 7, 64, 4096, 5000, mib, 3 * mib + 1};

/// Fills the `n` bytes at `p` with `v`.
void fill(void* p, std::size_t n, unsigned char v) { std::memset(p, v, n); }

/// True when the `n` bytes at `p` all equal `v`. (All bytes are equal iff each
/// equals its successor: one overlapping memcmp, fast even at -O0.)
bool holds(const void* p, std::size_t n, unsigned char v) {
    if (n == 0) return true;
    const auto* b = static_cast<const unsigned char*>(p);
    return b[0] == v && std::memcmp(b, b + 1, n - 1) == 0;
}

/// How much of a block a test writes: all of it, or (to keep the sanitizer
/// runs fast) its first and last 64 bytes, which still proves the block
/// reaches its requested end.
enum class write_mode { full, ends };

/// A live block of the resource under test.
struct block {
    void* p;
    std::size_t bytes;
    std::size_t alignment;
    unsigned char pattern;
    write_mode mode;
};

/// The byte ranges of `b` that the test writes: [0, head) and [tail, bytes).
std::pair<std::size_t, std::size_t> written(const block& b) {
    if (b.mode == write_mode::full || b.bytes <= 128) return {b.bytes, b.bytes};
    return {64, b.bytes - 64};
}
void write_block(const block& b) {
    const auto [head, tail] = written(b);
    fill(b.p, head, b.pattern);
    fill(static_cast<unsigned char*>(b.p) + tail, b.bytes - tail, b.pattern);
}
bool intact(const block& b) {
    const auto [head, tail] = written(b);
    return holds(b.p, head, b.pattern) && holds(static_cast<unsigned char*>(b.p) + tail, b.bytes - tail, b.pattern);
}

/// True when no two live blocks overlap (blocks of 0 bytes count as 1 byte:
/// they must still be distinct).
bool disjoint(std::vector<block> blocks) {
    std::sort(blocks.begin(), blocks.end(), [](const block& a, const block& b) {
        return reinterpret_cast<std::uintptr_t>(a.p) < reinterpret_cast<std::uintptr_t>(b.p);
    });
    for (std::size_t i = 1; i < blocks.size(); ++i) {
        const auto end = reinterpret_cast<std::uintptr_t>(blocks[i - 1].p) + std::max<std::size_t>(blocks[i - 1].bytes, 1);
        if (end > reinterpret_cast<std::uintptr_t>(blocks[i].p)) return false;
    }
    return true;
}

/// Allocates from `r`, checks non-null and alignment, writes `pattern`.
block take(std::pmr::memory_resource& r, std::size_t bytes, std::size_t alignment, unsigned char pattern,
           write_mode mode = write_mode::ends) {
    void* p = r.allocate(bytes, alignment);
    BOOST_TEST_CONTEXT("allocate(" << bytes << ", " << alignment << ")") {
        BOOST_TEST(p != nullptr);
        BOOST_TEST(is_aligned(p, alignment));
    }
    const block b{p, bytes, alignment, pattern, mode};
    write_block(b);
    return b;
}

/// Checks the pattern of every block, then gives them all back.
void check_and_release(std::pmr::memory_resource& r, std::vector<block>& blocks) {
    for (const block& b : blocks) {
        BOOST_TEST_CONTEXT("block (" << b.bytes << ", " << b.alignment << ") pattern " << int{b.pattern}) {
            BOOST_TEST(intact(b));
        }
    }
    for (const block& b : blocks) r.deallocate(b.p, b.bytes, b.alignment);
    blocks.clear();
}

} // namespace

BOOST_AUTO_TEST_SUITE(conformance_suite)

BOOST_TEST_DECORATOR(*boost::unit_test::timeout(60))
BOOST_AUTO_TEST_CASE_TEMPLATE(alignment_honoured_for_every_power_of_two, Factory, resource_factories) {
    recording_resource upstream;
    {
        auto r = Factory::make(&upstream);
        // Two rounds: the second is served from whatever the first left idle.
        for (int round = 0; round < 2; ++round) {
            for (std::size_t bytes : sweep_sizes) {
                std::vector<block> live;
                unsigned char pattern = 1;
                for (std::size_t alignment = 1; alignment <= 8192; alignment *= 2) {
                    BOOST_TEST_CONTEXT("round " << round << ", size " << bytes << ", alignment " << alignment) {
                        live.push_back(take(*r, bytes, alignment, pattern++));
                    }
                }
                BOOST_TEST_CONTEXT("round " << round << ", size " << bytes) {
                    BOOST_TEST(disjoint(live));
                    check_and_release(*r, live);
                }
            }
        }
    }
    expect_balanced(upstream);
}

BOOST_TEST_DECORATOR(*boost::unit_test::timeout(60))
BOOST_AUTO_TEST_CASE_TEMPLATE(allocate_zero_returns_distinct_non_null, Factory, resource_factories) {
    recording_resource upstream;
    {
        auto r = Factory::make(&upstream);
        for (std::size_t alignment : {std::size_t{1}, std::size_t{8}, std::size_t{16}, std::size_t{64},
                                      std::size_t{4096}, std::size_t{8192}}) {
            BOOST_TEST_CONTEXT("allocate(0, " << alignment << ")") {
                std::vector<void*> live;
                std::set<void*> distinct;
                for (int i = 0; i < 32; ++i) {
                    void* p = r->allocate(0, alignment);
                    BOOST_TEST(p != nullptr);
                    BOOST_TEST(is_aligned(p, alignment));
                    live.push_back(p);
                    distinct.insert(p);
                }
                BOOST_TEST(distinct.size() == live.size());
                for (void* p : live) r->deallocate(p, 0, alignment);
            }
        }
    }
    expect_balanced(upstream);
}

BOOST_TEST_DECORATOR(*boost::unit_test::timeout(60))
BOOST_AUTO_TEST_CASE_TEMPLATE(writing_full_blocks_corrupts_no_other_block, Factory, resource_factories) {
    recording_resource upstream;
    {
        auto r = Factory::make(&upstream);
        const std::size_t sizes[] = {1, 7, 64, 1000, 4096, 5000, 64 * kib, 600 * kib, mib, 3 * mib + 1};
        const std::size_t alignments[] = {1, 8, 64, 4096};
        std::vector<block> live;
        unsigned char pattern = 0;
        auto next_pattern = [&pattern] { return ++pattern == 0 ? ++pattern : pattern; };
        for (int round = 0; round < 2; ++round) {
            BOOST_TEST_CONTEXT("round " << round) {
                // Two blocks of every size, alignments rotating, written in full.
                for (std::size_t i = 0; i < 2; ++i)
                    for (std::size_t s = 0; s < std::size(sizes); ++s)
                        live.push_back(take(*r, sizes[s], alignments[(i + s) % std::size(alignments)],
                                            next_pattern(), write_mode::full));
                // Free every other block, then allocate the same requests again
                // (reusing what was freed) and write them in full.
                std::vector<block> kept, freed;
                for (std::size_t i = 0; i < live.size(); ++i) (i % 2 == 0 ? kept : freed).push_back(live[i]);
                check_and_release(*r, freed);
                for (std::size_t i = 1; i < live.size(); i += 2)
                    kept.push_back(take(*r, live[i].bytes, live[i].alignment, next_pattern(), write_mode::full));
                live = std::move(kept);
                BOOST_TEST(disjoint(live));
                for (const block& b : live) BOOST_TEST(intact(b));
                // Keep a third of the blocks live into the next round.
                std::vector<block> carry, release;
                for (std::size_t i = 0; i < live.size(); ++i) (i % 3 == 0 ? carry : release).push_back(live[i]);
                check_and_release(*r, release);
                live = std::move(carry);
            }
        }
        check_and_release(*r, live);
    }
    expect_balanced(upstream);
}

BOOST_TEST_DECORATOR(*boost::unit_test::timeout(60))
BOOST_AUTO_TEST_CASE_TEMPLATE(is_equal_is_identity, Factory, resource_factories) {
    recording_resource upstream;
    {
        auto a = Factory::make(&upstream);
        auto b = Factory::make(&upstream); // same type, same upstream, same options
        BOOST_TEST(a->is_equal(*a));
        BOOST_TEST(!a->is_equal(*b));
        BOOST_TEST(!b->is_equal(*a));
        BOOST_TEST(!a->is_equal(upstream));
        BOOST_TEST(!a->is_equal(*std::pmr::new_delete_resource()));
        BOOST_TEST((*a == *a));
        BOOST_TEST((*a != *b));
        // Allocators over distinct resources compare unequal.
        BOOST_TEST((std::pmr::polymorphic_allocator<int>(a.get()) == std::pmr::polymorphic_allocator<int>(a.get())));
        BOOST_TEST((std::pmr::polymorphic_allocator<int>(a.get()) != std::pmr::polymorphic_allocator<int>(b.get())));
    }
    expect_balanced(upstream);
}

BOOST_TEST_DECORATOR(*boost::unit_test::timeout(60))
BOOST_AUTO_TEST_CASE_TEMPLATE(huge_sizes_throw_bad_alloc, Factory, resource_factories) {
    recording_resource upstream;
    {
        auto r = Factory::make(&upstream);
        for (std::size_t bytes : {size_max, size_max - 4095, size_max / 2 + 1}) {
            for (std::size_t alignment : {std::size_t{1}, std::size_t{16}, std::size_t{4096}, std::size_t{8192}}) {
                BOOST_TEST_CONTEXT("allocate(" << bytes << ", " << alignment << ")") {
                    BOOST_CHECK_THROW(static_cast<void>(r->allocate(bytes, alignment)), std::bad_alloc);
                }
            }
        }
        // Nothing short was handed out, and the resource still works.
        std::vector<block> live;
        live.push_back(take(*r, 64, 16, 0x11));
        live.push_back(take(*r, mib, 4096, 0x22));
        check_and_release(*r, live);
    }
    expect_balanced(upstream);
}

BOOST_TEST_DECORATOR(*boost::unit_test::timeout(60))
BOOST_AUTO_TEST_CASE_TEMPLATE(upstream_exception_propagates_unchanged, Factory, resource_factories) {
    recording_resource upstream;
    failing_resource failing(&upstream);
    {
        auto r = Factory::make(&failing);
        failing.fail_next(size_max); // every upstream allocate fails
        std::size_t tried = 0;
        for (std::size_t bytes : {std::size_t{64}, std::size_t{5000}, mib, 3 * mib + 1}) {
            for (std::size_t alignment : {std::size_t{16}, std::size_t{4096}}) {
                BOOST_TEST_CONTEXT("allocate(" << bytes << ", " << alignment << ")") {
                    // A fresh resource has nothing idle: each request reaches
                    // upstream, and the exact injected exception must come out.
                    bool caught_injected = false;
                    try {
                        void* p = r->allocate(bytes, alignment);
                        r->deallocate(p, bytes, alignment);
                    } catch (const injected_failure&) {
                        caught_injected = true;
                    } catch (...) {
                        BOOST_ERROR("an exception other than injected_failure came out");
                    }
                    BOOST_TEST(caught_injected);
                    ++tried;
                }
            }
        }
        BOOST_TEST(failing.failures() >= tried);

        // The resource keeps working once upstream recovers.
        failing.disarm();
        std::vector<block> live;
        unsigned char pattern = 1;
        for (std::size_t bytes : {std::size_t{64}, std::size_t{5000}, mib, 3 * mib + 1})
            for (std::size_t alignment : {std::size_t{16}, std::size_t{4096}})
                live.push_back(take(*r, bytes, alignment, pattern++));
        BOOST_TEST(disjoint(live));
        check_and_release(*r, live);

        // A failure in the middle of a run (the 2nd upstream call from now):
        // blocks obtained before it stay valid.
        failing.fail_nth(2);
        bool caught_injected = false;
        for (int i = 0; i < 16 && !caught_injected; ++i) {
            try {
                live.push_back(take(*r, 3 * mib + 1, 64, pattern++));
            } catch (const injected_failure&) {
                caught_injected = true;
            }
        }
        BOOST_TEST(caught_injected);
        BOOST_TEST(!live.empty());
        check_and_release(*r, live);
        failing.disarm();
        live.push_back(take(*r, 3 * mib + 1, 64, pattern++));
        check_and_release(*r, live);
    }
    expect_balanced(upstream);
}

BOOST_TEST_DECORATOR(*boost::unit_test::timeout(60))
BOOST_AUTO_TEST_CASE_TEMPLATE(upstream_balances_after_destruction_with_idle_blocks, Factory, resource_factories) {
    // Leave the resource full of idle blocks of many sizes: destroying it must
    // return every one of them with the size and alignment it was asked with.
    recording_resource upstream;
    {
        auto r = Factory::make(&upstream);
        std::vector<block> live;
        unsigned char pattern = 1;
        for (std::size_t bytes : sweep_sizes)
            for (std::size_t alignment : {std::size_t{1}, std::size_t{64}, std::size_t{4096}, std::size_t{8192}})
                for (int i = 0; i < 3; ++i) live.push_back(take(*r, bytes, alignment, pattern++));
        check_and_release(*r, live);
        BOOST_TEST(upstream.violations().empty());
    }
    expect_balanced(upstream);
    BOOST_TEST(upstream.deallocate_calls() == upstream.allocate_calls() - upstream.failed_allocate_calls());
}

BOOST_AUTO_TEST_SUITE_END()
