// zeropool with the standard library's pmr: std::pmr containers (vector,
// string, map, unordered_map, deque, list) allocating from a zeropool pool
// directly, and zeropool as the upstream of std::pmr::monotonic_buffer_resource
// and of the std pools (synchronized_pool_resource, unsynchronized_pool_resource)
// with the same containers on top. Every test proves that the memory really
// went through the pool (its counters, the recording upstream) and ends with a
// balanced upstream, except the control_ case, which pins the standard
// library's own behaviour.
#include <zeropool/sharded_buffer_resource.hpp>

#define BOOST_TEST_MODULE std_interop
#include <boost/test/unit_test.hpp>

#include "test_resources.hpp"
#include "test_support.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory_resource>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace {

using zeropool::pool_config;
using zeropool::pool_stats;
using zeropool::sharded_buffer_resource;
using zeropool_test::expect_balanced;
using zeropool_test::kib;
using zeropool_test::recording_resource;

/// A small pool: few shards, so the tests stay quick.
pool_config small_config() { return pool_config{}.with_num_shards(4); }

/// Element counts: large enough that contiguous storage (and the std
/// resources' chunks) reaches zeropool in pooled blocks of 1 KiB and more.
constexpr int vector_count = 50000;
constexpr int node_count = 2000;

/// A string of `n` characters that depends on `i` (long enough to live on the
/// heap, so it allocates from its allocator's resource). It is built on the
/// default resource; containers copy it onto their own.
std::pmr::string text(int i, std::size_t n = 40) {
    std::pmr::string s(std::to_string(i).c_str());
    s.resize(n, static_cast<char>('a' + i % 26));
    return s;
}

/// Pooled allocations the pool served without calling upstream.
std::uint64_t pool_hits(const pool_stats& s) { return s.thread_cache_hits + s.shard_hits; }

/// The std::pmr containers of the issue, filled on `resource` and checked:
/// contents, and that every container and every nested string uses `resource`.
/// Everything is destroyed before returning.
void fill_std_pmr_containers(std::pmr::memory_resource& resource) {
    std::pmr::vector<int> numbers(&resource);
    for (int i = 0; i < vector_count; ++i) numbers.push_back(i * 7);

    std::pmr::string long_text(&resource);
    for (int i = 0; i < 1000; ++i) long_text += text(i, 20);

    std::pmr::map<int, std::pmr::string> tree(&resource);
    for (int i = 0; i < node_count; ++i) tree.emplace(i, text(i));

    std::pmr::unordered_map<int, std::pmr::string> hash(&resource);
    for (int i = node_count; i-- > 0;) hash.emplace(i, text(i, 2 * kib));

    std::pmr::deque<int> queue(&resource);
    for (int i = 0; i < vector_count; ++i) queue.push_back(-i);

    std::pmr::list<std::pmr::string> lines(&resource);
    for (int i = 0; i < node_count; ++i) lines.emplace_back(text(i, 100));

    BOOST_TEST(numbers.get_allocator().resource() == &resource);
    BOOST_TEST(long_text.get_allocator().resource() == &resource);
    BOOST_TEST(tree.get_allocator().resource() == &resource);
    BOOST_TEST(hash.get_allocator().resource() == &resource);
    BOOST_TEST(queue.get_allocator().resource() == &resource);
    BOOST_TEST(lines.get_allocator().resource() == &resource);

    bool numbers_ok = numbers.size() == static_cast<std::size_t>(vector_count);
    for (int i = 0; numbers_ok && i < vector_count; ++i)
        numbers_ok = numbers[static_cast<std::size_t>(i)] == i * 7;
    BOOST_TEST(numbers_ok);

    BOOST_TEST(long_text.size() == 20000u);
    BOOST_TEST(long_text.substr(0, 20) == text(0, 20));
    BOOST_TEST(long_text.substr(19980) == text(999, 20));

    BOOST_TEST(tree.size() == static_cast<std::size_t>(node_count));
    BOOST_TEST(hash.size() == static_cast<std::size_t>(node_count));
    bool tree_ok = true;
    bool hash_ok = true;
    bool nested_ok = true;
    for (int i = 0; i < node_count; ++i) {
        const auto t = tree.find(i);
        const auto h = hash.find(i);
        tree_ok = tree_ok && t != tree.end() && t->second == text(i);
        hash_ok = hash_ok && h != hash.end() && h->second == text(i, 2 * kib);
        nested_ok = nested_ok && t != tree.end() && h != hash.end() &&
                    t->second.get_allocator().resource() == &resource &&
                    h->second.get_allocator().resource() == &resource;
    }
    BOOST_TEST(tree_ok);
    BOOST_TEST(hash_ok);
    BOOST_TEST(nested_ok);

    BOOST_TEST(queue.size() == static_cast<std::size_t>(vector_count));
    BOOST_TEST(queue.front() == 0);
    BOOST_TEST(queue.back() == -(vector_count - 1));
    BOOST_TEST(queue[12345] == -12345);

    BOOST_TEST(lines.size() == static_cast<std::size_t>(node_count));
    bool lines_ok = true;
    int i = 0;
    for (const auto& line : lines) {
        lines_ok = lines_ok && line == text(i, 100) && line.get_allocator().resource() == &resource;
        ++i;
    }
    BOOST_TEST(lines_ok);
}

} // namespace

BOOST_AUTO_TEST_SUITE(std_containers_on_zeropool)

BOOST_AUTO_TEST_CASE(every_container_family_allocates_from_the_pool, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(small_config(), &upstream);
        fill_std_pmr_containers(pool);
        const pool_stats first = pool.stats();
        // Every upstream call came from the pool (pooled misses and the small
        // node requests it passes through), and large blocks stayed idle.
        BOOST_TEST(first.upstream_allocations > 0u);
        BOOST_TEST(first.upstream_allocations == upstream.allocate_calls());
        BOOST_TEST(first.idle_blocks > 0u);
        BOOST_TEST(pool_hits(first) > 0u); // the vector's and strings' growth reuses blocks

        // A second identical round is served largely from the idle blocks.
        fill_std_pmr_containers(pool);
        const pool_stats second = pool.stats();
        BOOST_TEST(pool_hits(second) > pool_hits(first));
        BOOST_TEST(second.upstream_allocations == upstream.allocate_calls());
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(vector_storage_is_a_pooled_block, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(small_config(), &upstream);
        std::pmr::vector<std::uint64_t> v(&pool);
        v.reserve(8 * kib); // 64 KiB: pooled
        const std::uint64_t before = pool.stats().upstream_allocations;
        BOOST_TEST(upstream.is_live(v.data()));
        const void* first_storage = v.data();
        v.clear();
        v.shrink_to_fit(); // gives the block back to the pool...
        BOOST_TEST(upstream.is_live(first_storage)); // ...which keeps it idle
        v.reserve(8 * kib); // ...and hands the same block out again
        BOOST_TEST(static_cast<const void*>(v.data()) == first_storage);
        BOOST_TEST(pool.stats().upstream_allocations == before);
        BOOST_TEST(pool_hits(pool.stats()) >= 1u);
    }
    expect_balanced(upstream);
}

// Control: pins the standard library's behaviour that zeropool's design
// answers, not zeropool's: std::pmr::polymorphic_allocator's
// select_on_container_copy_construction returns the default resource, so a
// copy-constructed std::pmr container is not on the pool (zeropool::buffer
// differs on purpose). Pinned so that the documentation (docs/faq.md,
// "Copying buffers") stays true.
BOOST_AUTO_TEST_CASE(control_copies_of_std_pmr_containers_leave_the_pool, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    recording_resource fallback;
    std::pmr::memory_resource* const previous = std::pmr::set_default_resource(&fallback);
    try {
        sharded_buffer_resource pool(small_config(), &upstream);
        std::pmr::vector<int> original(10000, 1, &pool);
        std::pmr::vector<int> copy(original);
        BOOST_TEST(copy.get_allocator().resource() == &fallback);
        BOOST_TEST(fallback.is_live(copy.data()));
        std::pmr::vector<int> copy_on_pool(original, &pool); // the allocator-extended copy stays
        BOOST_TEST(copy_on_pool.get_allocator().resource() == &pool);
        BOOST_TEST(upstream.is_live(copy_on_pool.data()));
    } catch (...) {
        std::pmr::set_default_resource(previous);
        throw;
    }
    std::pmr::set_default_resource(previous);
    expect_balanced(upstream);
    expect_balanced(fallback);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(zeropool_under_std_resources)

using std_resources_over_zeropool = std::tuple<std::pmr::synchronized_pool_resource,
                                               std::pmr::unsynchronized_pool_resource,
                                               std::pmr::monotonic_buffer_resource>;

BOOST_TEST_DECORATOR(*boost::unit_test::timeout(60))
BOOST_AUTO_TEST_CASE_TEMPLATE(zeropool_is_the_upstream, StdResource, std_resources_over_zeropool) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(small_config(), &upstream);
        {
            StdResource std_resource(&pool);
            BOOST_TEST(std_resource.upstream_resource() == &pool);
            fill_std_pmr_containers(std_resource);
            BOOST_TEST(pool.stats().upstream_allocations > 0u);
            BOOST_TEST(upstream.outstanding_blocks() > 0u);
        }
        // The std resource gave its chunks back: zeropool keeps the large ones.
        const pool_stats first = pool.stats();
        BOOST_TEST(first.idle_blocks > 0u);
        BOOST_TEST(upstream.outstanding_blocks() == first.idle_blocks);

        // A fresh std resource doing the same work takes its chunks from the
        // idle blocks instead of upstream.
        {
            StdResource std_resource(&pool);
            fill_std_pmr_containers(std_resource);
        }
        BOOST_TEST(pool_hits(pool.stats()) > pool_hits(first));
        BOOST_TEST(pool.stats().upstream_allocations == upstream.allocate_calls());
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(monotonic_release_returns_chunks_to_the_pool, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        sharded_buffer_resource pool(small_config(), &upstream);
        std::pmr::monotonic_buffer_resource arena(64 * kib, &pool);
        for (int round = 0; round < 5; ++round) {
            {
                std::pmr::vector<std::pmr::string> words(&arena);
                for (int i = 0; i < 2000; ++i) words.emplace_back(text(i, 64));
                BOOST_TEST(words[1999] == text(1999, 64));
                BOOST_TEST(words[0].get_allocator().resource() == &arena);
            } // the words are gone before their memory is released
            arena.release();
            // Nothing of the arena is out any more: every block upstream still
            // holds is an idle block of the pool.
            BOOST_TEST(upstream.outstanding_blocks() == pool.stats().idle_blocks);
        }
        // Rounds 2..5 ran on the blocks of round 1.
        BOOST_TEST(pool_hits(pool.stats()) > 0u);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_SUITE_END()
