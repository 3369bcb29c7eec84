// zeropool::size_split_resource (include/zeropool/size_split_resource.hpp):
// routing by max(bytes, alignment) against the threshold, deallocation routed
// the same way, the accessors and the default small target, is_equal, null
// targets, and use from several threads. Its composition with page_resource
// under a pool is tested in page_resource_test.cpp.
//
// The header's rule: a request goes to large() when max(bytes, alignment) is
// *at least* threshold(), so a request of exactly the threshold goes to
// large(); everything below it goes to small().
#include <zeropool/size_split_resource.hpp>

#define BOOST_TEST_MODULE size_split_resource
#include <boost/test/unit_test.hpp>

#include "test_resources.hpp"
#include "test_support.hpp"

#include <cstddef>
#include <memory_resource>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using zeropool::size_split_resource;
using zeropool_test::default_resource_guard;
using zeropool_test::expect_balanced;
using zeropool_test::is_aligned;
using zeropool_test::kib;
using zeropool_test::mib;
using zeropool_test::recording_resource;

/// A resource that forwards to new_delete_resource() and is equal to every
/// other resource of its type (as page_resource is to every page_resource):
/// so two distinct objects can be equal targets.
class interchangeable_resource final : public std::pmr::memory_resource {
    void* do_allocate(std::size_t bytes, std::size_t alignment) override {
        return std::pmr::new_delete_resource()->allocate(bytes, alignment);
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
        std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
    }
    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
        return dynamic_cast<const interchangeable_resource*>(&other) != nullptr;
    }
};

/// Where one request must go.
struct route {
    std::size_t bytes;
    std::size_t alignment;
    bool to_large;
};

/// Allocates each request through `split`, checks which target served it
/// (and only it), then deallocates each through `split` and checks that the
/// same target got it back with the same size and alignment.
void expect_routes(size_split_resource& split, recording_resource& large, recording_resource& small,
                   const std::vector<route>& routes) {
    std::vector<void*> blocks;
    for (const route& r : routes) {
        BOOST_TEST_CONTEXT("allocate(" << r.bytes << ", " << r.alignment << "), threshold " << split.threshold()) {
            recording_resource& to = r.to_large ? large : small;
            recording_resource& other = r.to_large ? small : large;
            const std::size_t to_calls = to.allocate_calls();
            const std::size_t other_calls = other.allocate_calls();
            void* p = split.allocate(r.bytes, r.alignment);
            blocks.push_back(p);
            BOOST_TEST(to.allocate_calls() == to_calls + 1);
            BOOST_TEST(other.allocate_calls() == other_calls);
            BOOST_TEST(to.is_live(p));
            BOOST_TEST(to.last_allocate_size() == r.bytes); // passed on unchanged
            BOOST_TEST(to.last_allocate_alignment() == r.alignment);
            BOOST_TEST(is_aligned(p, r.alignment));
        }
    }
    for (std::size_t i = 0; i < routes.size(); ++i) {
        const route& r = routes[i];
        BOOST_TEST_CONTEXT("deallocate(" << r.bytes << ", " << r.alignment << "), threshold " << split.threshold()) {
            recording_resource& to = r.to_large ? large : small;
            recording_resource& other = r.to_large ? small : large;
            const std::size_t to_calls = to.deallocate_calls();
            const std::size_t other_calls = other.deallocate_calls();
            split.deallocate(blocks[i], r.bytes, r.alignment);
            BOOST_TEST(to.deallocate_calls() == to_calls + 1);
            BOOST_TEST(other.deallocate_calls() == other_calls);
            BOOST_TEST(!to.is_live(blocks[i]));
            BOOST_TEST(to.last_deallocate_size() == r.bytes);
            BOOST_TEST(to.last_deallocate_alignment() == r.alignment);
        }
    }
}

} // namespace

BOOST_AUTO_TEST_SUITE(size_split_resource_suite)

BOOST_AUTO_TEST_CASE(accessors_return_the_constructor_arguments, *boost::unit_test::timeout(30)) {
    recording_resource large;
    recording_resource small;
    const size_split_resource split(mib, &large, &small);
    BOOST_TEST(split.threshold() == mib);
    BOOST_TEST(split.large() == &large);
    BOOST_TEST(split.small() == &small);
    BOOST_TEST(large.allocate_calls() == 0u); // constructing calls neither target
    BOOST_TEST(small.allocate_calls() == 0u);
}

BOOST_AUTO_TEST_CASE(small_defaults_to_the_default_resource_at_construction, *boost::unit_test::timeout(30)) {
    recording_resource large;
    recording_resource fallback;
    {
        const default_resource_guard guard(&fallback);
        size_split_resource split(64 * kib, &large);
        BOOST_TEST(split.small() == &fallback);
        void* p = split.allocate(100, 8);
        BOOST_TEST(fallback.is_live(p));
        split.deallocate(p, 100, 8);
    }
    // Changing the default afterwards does not change the target.
    recording_resource later;
    size_split_resource split(64 * kib, &large, &fallback);
    {
        const default_resource_guard guard(&later);
        BOOST_TEST(split.small() == &fallback);
    }
    expect_balanced(large);
    expect_balanced(fallback);
    BOOST_TEST(later.allocate_calls() == 0u);
}

BOOST_AUTO_TEST_CASE(routes_by_bytes_below_at_and_above_the_threshold, *boost::unit_test::timeout(30)) {
    recording_resource large;
    recording_resource small;
    {
        size_split_resource split(mib, &large, &small);
        // The threshold itself goes to large(): "at least threshold()".
        expect_routes(split, large, small,
                      {{0, 1, false},
                       {1, 1, false},
                       {64 * kib, 16, false},
                       {mib - 1, 16, false},
                       {mib, 16, true},
                       {mib, 1, true},
                       {mib + 1, 16, true},
                       {8 * mib, 64, true}});
        BOOST_TEST(small.allocate_calls() == 4u);
        BOOST_TEST(large.allocate_calls() == 4u);
    }
    expect_balanced(large);
    expect_balanced(small);
}

BOOST_AUTO_TEST_CASE(routes_by_the_larger_of_bytes_and_alignment, *boost::unit_test::timeout(30)) {
    recording_resource large;
    recording_resource small;
    {
        size_split_resource split(64 * kib, &large, &small);
        expect_routes(split, large, small,
                      {{64, 32 * kib, false},     // alignment below the threshold
                       {64, 64 * kib, true},      // alignment alone reaches it
                       {0, 128 * kib, true},      // even for zero bytes
                       {64 * kib, 4096, true},    // bytes reach it, alignment does not
                       {64 * kib - 1, 4096, false}});
    }
    expect_balanced(large);
    expect_balanced(small);
}

BOOST_AUTO_TEST_CASE(extreme_thresholds, *boost::unit_test::timeout(30)) {
    recording_resource large;
    recording_resource small;
    {
        // 0 and 1: every request is at least that (max(bytes, alignment) >= 1).
        for (std::size_t threshold : {std::size_t{0}, std::size_t{1}}) {
            size_split_resource split(threshold, &large, &small);
            expect_routes(split, large, small, {{0, 1, true}, {1, 1, true}, {mib, 16, true}});
        }
        // Nothing allocatable reaches SIZE_MAX: all small.
        size_split_resource split(~std::size_t{0}, &large, &small);
        expect_routes(split, large, small, {{0, 1, false}, {mib, 4096, false}, {16 * mib, 16, false}});
    }
    expect_balanced(large);
    expect_balanced(small);
}

BOOST_AUTO_TEST_CASE(is_equal_needs_the_same_threshold_and_equal_targets, *boost::unit_test::timeout(30)) {
    recording_resource large;
    recording_resource small;
    interchangeable_resource one;
    interchangeable_resource another;
    const size_split_resource split(mib, &large, &small);
    const size_split_resource same(mib, &large, &small);
    const size_split_resource other_threshold(2 * mib, &large, &small);
    const size_split_resource swapped(mib, &small, &large);
    const size_split_resource other_large(mib, &small, &small);
    const size_split_resource other_small(mib, &large, &large);

    BOOST_TEST(split.is_equal(split));
    BOOST_TEST(split.is_equal(same));
    BOOST_TEST(same.is_equal(split));
    BOOST_TEST((split == same));
    BOOST_TEST(!split.is_equal(other_threshold));
    BOOST_TEST(!other_threshold.is_equal(split));
    BOOST_TEST(!split.is_equal(swapped));
    BOOST_TEST(!split.is_equal(other_large));
    BOOST_TEST(!split.is_equal(other_small));
    BOOST_TEST((split != swapped));
    // Not a size_split_resource: never equal, even to one of its targets.
    BOOST_TEST(!split.is_equal(large));
    BOOST_TEST(!split.is_equal(small));
    BOOST_TEST(!split.is_equal(*std::pmr::new_delete_resource()));
    // Equal targets, not the same objects: equal, and either frees the other's blocks.
    size_split_resource a(mib, &one, &another);
    size_split_resource b(mib, &another, &one);
    BOOST_TEST(a.is_equal(b));
    BOOST_TEST(b.is_equal(a));
    void* big = a.allocate(2 * mib, 16);
    void* little = a.allocate(100, 16);
    b.deallocate(big, 2 * mib, 16);
    b.deallocate(little, 100, 16);
    const size_split_resource c(2 * mib, &one, &another);
    BOOST_TEST(!a.is_equal(c));
}

BOOST_AUTO_TEST_CASE(null_targets_throw_invalid_argument, *boost::unit_test::timeout(30)) {
    recording_resource r;
    BOOST_CHECK_THROW(size_split_resource(mib, nullptr, &r), std::invalid_argument);
    BOOST_CHECK_THROW(size_split_resource(mib, &r, nullptr), std::invalid_argument);
    BOOST_CHECK_THROW(size_split_resource(mib, nullptr, nullptr), std::invalid_argument);
    BOOST_CHECK_THROW(size_split_resource(mib, nullptr), std::invalid_argument); // default small
    BOOST_TEST(r.allocate_calls() == 0u);
}

BOOST_AUTO_TEST_CASE(threads_share_one_split_resource, *boost::unit_test::timeout(60)) {
    recording_resource large; // thread-safe targets: the split is thread-safe
    recording_resource small;
    {
        size_split_resource split(16 * kib, &large, &small);
        const int rounds = zeropool_test::scaled(2000, 500);
        zeropool_test::failure_log failures;
        std::vector<std::thread> threads;
        for (int t = 0; t < 2; ++t) {
            threads.emplace_back([&, t] {
                for (int i = 0; i < rounds; ++i) {
                    const std::size_t bytes = (static_cast<std::size_t>(i + t) % 4) * 8 * kib + 64;
                    void* p = split.allocate(bytes, 16);
                    const bool to_large = bytes >= 16 * kib;
                    failures.check((to_large ? large : small).is_live(p), "served by the wrong target");
                    split.deallocate(p, bytes, 16);
                }
            });
        }
        for (std::thread& th : threads) th.join();
        failures.report();
        BOOST_TEST(large.allocate_calls() + small.allocate_calls() == 2u * static_cast<std::size_t>(rounds));
    }
    expect_balanced(large);
    expect_balanced(small);
}

BOOST_AUTO_TEST_SUITE_END()
