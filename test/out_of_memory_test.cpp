// Out of memory: an upstream that fails on the k-th allocate call, for every k
// over a fixed workload. Each failure must surface as the upstream's own
// exception from exactly the operation that needed memory, nothing may leak,
// the pool's statistics must agree with the upstream's books, and the pool
// must keep working once upstream recovers.
#include <zeropool/sharded_buffer_resource.hpp>

#define BOOST_TEST_MODULE out_of_memory
#include <boost/test/unit_test.hpp>

#include "test_resources.hpp"
#include "test_support.hpp"

#include <atomic>
#include <cstddef>
#include <memory_resource>
#include <thread>
#include <utility>
#include <vector>

namespace {

using zeropool::pool_config;
using zeropool::sharded_buffer_resource;
using zeropool_test::expect_balanced;
using zeropool_test::failing_resource;
using zeropool_test::injected_failure;
using zeropool_test::kib;
using zeropool_test::mib;
using zeropool_test::recording_resource;

/// Small tiers, so that the workload goes upstream often.
pool_config small_tiers() {
    return pool_config{}
        .with_tls_cache_size(2)
        .with_num_shards(2)
        .with_max_buffers_per_shard(2)
        .with_max_cached_bytes(8 * mib);
}

struct live_block {
    void* p;
    std::size_t bytes;
    std::size_t alignment;
};

/// A fixed mix of pooled, pass-through and over-aligned allocations, frees,
/// get/put, preallocate and trim. Returns how many operations threw
/// injected_failure (each is caught where it happens and the workload goes on).
std::size_t run_workload(sharded_buffer_resource& pool) {
    std::size_t thrown = 0;
    auto attempt = [&thrown](auto&& operation) {
        try {
            operation();
        } catch (const injected_failure&) {
            ++thrown;
        }
    };
    const std::size_t sizes[] = {512, 4 * kib, 64 * kib, 100 * kib, mib, 3 * mib + 1};
    const std::size_t alignments[] = {8, 16, 64, 4096, 8192};
    std::vector<live_block> live;
    for (int round = 0; round < 3; ++round) {
        for (std::size_t bytes : sizes)
            for (std::size_t alignment : alignments)
                attempt([&] { live.push_back({pool.allocate(bytes, alignment), bytes, alignment}); });
        std::vector<live_block> kept;
        for (std::size_t i = 0; i < live.size(); ++i) {
            if (i % 2 == 0) pool.deallocate(live[i].p, live[i].bytes, live[i].alignment);
            else kept.push_back(live[i]);
        }
        live = std::move(kept);
        attempt([&] {
            zeropool::buffer b = pool.get(256 * kib);
            b[0] = std::byte{1};
            pool.put(std::move(b));
        });
        attempt([&] { pool.preallocate(2, 2 * mib); });
        if (round == 1) pool.trim();
    }
    for (const live_block& b : live) pool.deallocate(b.p, b.bytes, b.alignment);
    return thrown;
}

} // namespace

BOOST_AUTO_TEST_SUITE(out_of_memory_suite)

BOOST_AUTO_TEST_CASE(every_upstream_failure_surfaces_and_leaks_nothing, *boost::unit_test::timeout(120)) {
    // The workload's upstream allocate calls when nothing fails.
    std::size_t calls = 0;
    {
        recording_resource books;
        failing_resource upstream(&books);
        {
            sharded_buffer_resource pool(small_tiers(), &upstream);
            BOOST_TEST(run_workload(pool) == 0u);
        }
        calls = upstream.allocate_calls();
        expect_balanced(books);
    }
    BOOST_TEST_MESSAGE("upstream allocate calls in the workload: " << calls);
    BOOST_TEST_REQUIRE(calls > 20u); // the small tiers make it go upstream often

    std::size_t cases_with_one_failure = 0;
    for (std::size_t k = 1; k <= calls; ++k) {
        BOOST_TEST_CONTEXT("allocate call " << k << " of " << calls << " fails") {
            recording_resource books;
            failing_resource upstream(&books);
            upstream.fail_nth(k);
            {
                sharded_buffer_resource pool(small_tiers(), &upstream);
                const std::size_t thrown = run_workload(pool);
                // Exactly the operation that needed the failed call threw.
                BOOST_TEST(upstream.failures() == 1u);
                BOOST_TEST(thrown == 1u);
                if (thrown == 1u) ++cases_with_one_failure;
                // The pool's books agree with upstream's (the failed call is
                // in neither), and nothing is outstanding beyond the idle blocks.
                const zeropool::pool_stats st = pool.stats();
                BOOST_TEST(st.upstream_allocations == books.allocate_calls());
                BOOST_TEST(st.upstream_deallocations == books.deallocate_calls());
                BOOST_TEST(books.outstanding_blocks() == st.idle_blocks);
                // Upstream has recovered: the pool works.
                void* p = pool.allocate(2 * mib);
                zeropool::buffer b = pool.get(64 * kib);
                BOOST_TEST(b.size() == 64 * kib);
                pool.put(std::move(b));
                pool.deallocate(p, 2 * mib);
            }
            expect_balanced(books);
        }
    }
    BOOST_TEST(cases_with_one_failure == calls);
}

namespace {

/// Fails every `period`-th allocate call (counted over all threads) with
/// injected_failure; forwards everything else. Thread-safe.
class periodic_failing_resource final : public std::pmr::memory_resource {
public:
    periodic_failing_resource(std::pmr::memory_resource* upstream, std::size_t period) noexcept
        : upstream_(upstream), period_(period) {}
    std::size_t failures() const noexcept { return failures_.load(); }

private:
    void* do_allocate(std::size_t bytes, std::size_t alignment) override {
        if (calls_.fetch_add(1) % period_ == period_ - 1) {
            failures_.fetch_add(1);
            throw injected_failure();
        }
        return upstream_->allocate(bytes, alignment);
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
        upstream_->deallocate(p, bytes, alignment);
    }
    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

    std::pmr::memory_resource* upstream_;
    std::size_t period_;
    std::atomic<std::size_t> calls_{0};
    std::atomic<std::size_t> failures_{0};
};

} // namespace

// Four threads share a pool whose upstream fails every 7th allocate call:
// every failure reaches exactly one caller as the upstream's exception, the
// blocks that were obtained stay intact and usable, and nothing leaks.
BOOST_AUTO_TEST_CASE(upstream_failures_under_four_threads, *boost::unit_test::timeout(120)) {
    constexpr int threads = 4;
    const int rounds = zeropool_test::scaled(400, 100);
    recording_resource books;
    periodic_failing_resource upstream(&books, 7);
    std::atomic<std::size_t> caught{0};
    zeropool_test::failure_log log;
    {
        sharded_buffer_resource pool(small_tiers(), &upstream);
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&, t] {
                const std::size_t sizes[] = {512, 4 * kib, 64 * kib, 100 * kib, mib, 3 * mib + 1};
                std::vector<live_block> live;
                for (int r = 0; r < rounds; ++r) {
                    const std::size_t bytes = sizes[static_cast<std::size_t>(r + t) % 6];
                    const std::size_t alignment = (r % 5 == 0) ? 8192 : 64;
                    try {
                        void* p = pool.allocate(bytes, alignment);
                        zeropool_test::fill_pattern(p, bytes & ~std::size_t{7});
                        live.push_back({p, bytes, alignment});
                    } catch (const injected_failure&) {
                        caught.fetch_add(1);
                    }
                    try {
                        zeropool::buffer b = pool.get(16 * kib);
                        b[0] = std::byte{1};
                        pool.put(std::move(b));
                    } catch (const injected_failure&) {
                        caught.fetch_add(1);
                    }
                    if (live.size() > 4 || (r % 3 == 0 && !live.empty())) {
                        const live_block b = live.front();
                        log.check(zeropool_test::check_pattern(b.p, b.bytes & ~std::size_t{7}),
                                  "block changed while owned");
                        pool.deallocate(b.p, b.bytes, b.alignment);
                        live.erase(live.begin());
                    }
                }
                for (const live_block& b : live) pool.deallocate(b.p, b.bytes, b.alignment);
            });
        }
        for (std::thread& w : workers) w.join();
        log.report();
        BOOST_TEST(upstream.failures() > 0u);
        BOOST_TEST(caught.load() == upstream.failures()); // each failure surfaced exactly once
        const zeropool::pool_stats st = pool.stats();
        BOOST_TEST(st.upstream_allocations == books.allocate_calls());
        BOOST_TEST(st.upstream_deallocations == books.deallocate_calls());
        BOOST_TEST(books.outstanding_blocks() == st.idle_blocks);
        BOOST_TEST_MESSAGE("faults injected under four threads: " << upstream.failures());
    }
    expect_balanced(books);
}

BOOST_AUTO_TEST_SUITE_END()
