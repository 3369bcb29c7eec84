// Fit (pool_config::max_fit_classes; docs/design.md, "Fit"): a request whose
// class has no idle block is served by the smallest idle block of at most
// max_fit_classes classes above it, before upstream; the block keeps its own
// class for life, so upstream gets back exactly the size and alignment it
// handed out (the recording upstream checks every call) and the budget counts
// the block's true size. Through allocate/deallocate and get/put, on one
// thread and across threads, with alignments up to 4096 and contents checked.
#include <zeropool/sharded_buffer_resource.hpp>

#define BOOST_TEST_MODULE fit
#include <boost/test/unit_test.hpp>

#include "test_resources.hpp"
#include "test_support.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <csignal>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace zp = zeropool;
using zeropool_test::class_bytes;
using zeropool_test::expect_balanced;
using zeropool_test::kib;
using zeropool_test::mib;
using zeropool_test::pattern_word;
using zeropool_test::recording_resource;
using zeropool_test::upstream_bytes;

/// A pool over `upstream` with release by demand off (no block leaves on its
/// own during a test) and the given fit bound.
zp::pool_config fit_config(std::size_t max_fit_classes = 0) {
    return zp::pool_config{}.with_idle_release_ms(zp::pool_config::no_idle_release).with_max_fit_classes(max_fit_classes);
}

/// True when [p, p + n) lies inside the live upstream block that `block` points into.
bool inside(const recording_resource& upstream, const void* block, const void* p, std::size_t n) {
    const auto* start = static_cast<const std::byte*>(upstream.block_of(block));
    const auto* q = static_cast<const std::byte*>(p);
    return start != nullptr && q >= start && q + n <= start + upstream.size_of(block);
}

/// Writes the pattern of (p, gen) into [p, p + n): every word for the
/// first and last 256 bytes, one word in every 512 bytes between, so that a
/// buffer placed over another live one, or moved, shows a wrong word.
void fill(void* p, std::size_t n, std::uint64_t gen) {
    auto* b = static_cast<unsigned char*>(p);
    for (std::size_t i = 0; i + 8 <= n; i += (i < 256 || i + 264 > n) ? 8 : 512) {
        const std::uint64_t w = pattern_word(p, i / 8, gen);
        std::memcpy(b + i, &w, 8);
    }
}
/// True when [p, p + n) still holds what fill(p, n, gen) wrote.
bool holds(const void* p, std::size_t n, std::uint64_t gen) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i + 8 <= n; i += (i < 256 || i + 264 > n) ? 8 : 512) {
        std::uint64_t w;
        std::memcpy(&w, b + i, 8);
        if (w != pattern_word(p, i / 8, gen)) return false;
    }
    return true;
}

} // namespace

BOOST_AUTO_TEST_CASE(an_idle_larger_block_serves_a_smaller_class, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        zp::sharded_buffer_resource pool(fit_config(), &upstream);
        void* big = pool.allocate(mib, 16);
        pool.deallocate(big, mib, 16);
        // 600 KiB is class 640 KiB; 1 MiB is three classes above it.
        void* mid = pool.allocate(600 * kib, 16);
        BOOST_TEST(inside(upstream, big, mid, 600 * kib));
        fill(mid, 600 * kib, 1);
        zp::pool_stats s = pool.stats();
        BOOST_TEST(s.upstream_allocations == 1u);
        BOOST_TEST(s.fitted_allocations == 1u);
        BOOST_TEST(s.live_fitted_blocks == 1u);
        BOOST_TEST(s.live_fitted_requested_bytes == 600 * kib);
        BOOST_TEST(s.live_fitted_block_bytes == upstream_bytes(mib));
        BOOST_TEST(s.idle_blocks == 0u);
        BOOST_TEST(holds(mid, 600 * kib, 1));
        pool.deallocate(mid, 600 * kib, 16);
        s = pool.stats();
        BOOST_TEST(s.live_fitted_blocks == 0u);
        BOOST_TEST(s.live_fitted_requested_bytes == 0u);
        BOOST_TEST(s.live_fitted_block_bytes == 0u);
        // It went back as what it is: a 1 MiB block, which serves 1 MiB again.
        BOOST_TEST(s.idle_bytes == upstream_bytes(mib));
        void* again = pool.allocate(mib, 16);
        BOOST_TEST(again == big);
        BOOST_TEST(pool.stats().fitted_allocations == 1u);
        pool.deallocate(again, mib, 16);
    }
    expect_balanced(upstream); // sizes and alignments as handed out, to the byte
}

// A loop that frees what it was fitted with and asks again would take the
// fit path, never the cache's hit path, on every turn: the pool gives it a
// block of its own class instead, which the loop then reuses. Allocations
// that are kept go on fitting.
BOOST_AUTO_TEST_CASE(a_loop_gets_its_own_block_and_a_run_keeps_fitting, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        zp::sharded_buffer_resource pool(fit_config(), &upstream);
        std::vector<void*> big;
        for (int i = 0; i < 3; ++i) big.push_back(pool.allocate(mib, 16));
        for (void* p : big) pool.deallocate(p, mib, 16);
        const int turns = 1000;
        for (int i = 0; i < turns; ++i) pool.deallocate(pool.allocate(600 * kib, 16), 600 * kib, 16);
        zp::pool_stats s = pool.stats();
        BOOST_TEST(s.fitted_allocations <= 2u);
        BOOST_TEST(s.upstream_allocations <= 4u); // the three 1 MiB blocks, one 640 KiB block
        BOOST_TEST(s.thread_cache_hits >= static_cast<std::uint64_t>(turns - 4));
        // Three kept allocations of 896 KiB fit into the three 1 MiB blocks.
        std::vector<void*> kept;
        for (int i = 0; i < 3; ++i) kept.push_back(pool.allocate(800 * kib, 16));
        BOOST_TEST(pool.stats().fitted_allocations == s.fitted_allocations + 3);
        BOOST_TEST(pool.stats().upstream_allocations == s.upstream_allocations);
        for (void* p : kept) pool.deallocate(p, 800 * kib, 16);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(the_bound_is_respected, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        zp::sharded_buffer_resource pool(fit_config(), &upstream);
        BOOST_TEST(pool.config().max_fit_classes == 4u);
        void* big = pool.allocate(mib, 16);
        pool.deallocate(big, mib, 16);
        // A 1 MiB block is never handed out for 100 KiB, nor for a class five
        // classes below it (448 KiB); it is for one four classes below (512 KiB).
        void* small = pool.allocate(100 * kib, 16);
        BOOST_TEST(!inside(upstream, big, small, 1));
        BOOST_TEST(upstream.last_allocate_size() == upstream_bytes(100 * kib));
        void* five_below = pool.allocate(440 * kib, 16);
        BOOST_TEST(class_bytes(440 * kib) == 448 * kib);
        BOOST_TEST(!inside(upstream, big, five_below, 1));
        void* four_below = pool.allocate(500 * kib, 16);
        BOOST_TEST(class_bytes(500 * kib) == 512 * kib);
        BOOST_TEST(inside(upstream, big, four_below, 500 * kib));
        BOOST_TEST(pool.stats().fitted_allocations == 1u);
        pool.deallocate(small, 100 * kib, 16);
        pool.deallocate(five_below, 440 * kib, 16);
        pool.deallocate(four_below, 500 * kib, 16);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(the_bound_is_configurable, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        // One class up: 1 MiB serves 896 KiB, not 768 KiB.
        zp::sharded_buffer_resource pool(fit_config(1), &upstream);
        void* big = pool.allocate(mib, 16);
        pool.deallocate(big, mib, 16);
        void* two_below = pool.allocate(700 * kib, 16);
        BOOST_TEST(class_bytes(700 * kib) == 768 * kib);
        BOOST_TEST(!inside(upstream, big, two_below, 1));
        void* one_below = pool.allocate(800 * kib, 16);
        BOOST_TEST(inside(upstream, big, one_below, 800 * kib));
        pool.deallocate(two_below, 700 * kib, 16);
        pool.deallocate(one_below, 800 * kib, 16);
    }
    {
        // Fit off: exactly the class, whatever is idle.
        zp::sharded_buffer_resource pool(fit_config(zp::pool_config::exact_classes_only), &upstream);
        BOOST_TEST(pool.config().max_fit_classes == zp::pool_config::exact_classes_only);
        void* big = pool.allocate(mib, 16);
        pool.deallocate(big, mib, 16);
        void* one_below = pool.allocate(800 * kib, 16);
        BOOST_TEST(!inside(upstream, big, one_below, 1));
        BOOST_TEST(pool.stats().fitted_allocations == 0u);
        pool.deallocate(one_below, 800 * kib, 16);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(the_smallest_idle_block_in_the_bound_serves, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        zp::sharded_buffer_resource pool(fit_config(), &upstream);
        // Idle: 1 MiB and 768 KiB, in the thread cache or the shards (more
        // blocks than the cache has slots push the oldest to a shard).
        std::vector<void*> fillers;
        void* big = pool.allocate(mib, 16);
        void* smaller = pool.allocate(768 * kib, 16);
        for (int i = 0; i < 8; ++i) fillers.push_back(pool.allocate(64 * kib, 16));
        pool.deallocate(smaller, 768 * kib, 16);
        pool.deallocate(big, mib, 16);
        for (void* f : fillers) pool.deallocate(f, 64 * kib, 16);
        void* mid = pool.allocate(600 * kib, 16);
        BOOST_TEST(inside(upstream, smaller, mid, 600 * kib));
        void* next = pool.allocate(600 * kib, 16);
        BOOST_TEST(inside(upstream, big, next, 600 * kib));
        BOOST_TEST(pool.stats().upstream_allocations == 10u);
        pool.deallocate(mid, 600 * kib, 16);
        pool.deallocate(next, 600 * kib, 16);
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(get_and_put_reuse_across_classes, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        zp::sharded_buffer_resource pool(fit_config(), &upstream);
        void* block = nullptr;
        {
            zp::buffer b = pool.get(mib);
            block = b.data();
            pool.put(std::move(b));
        }
        zp::buffer b = pool.get(700 * kib);
        BOOST_TEST(inside(upstream, block, b.data(), 700 * kib));
        // capacity() is what the buffer asked for, not the block behind it.
        BOOST_TEST(b.capacity() == 700 * kib);
        fill(b.data(), b.size(), 2);
        BOOST_TEST(holds(b.data(), b.size(), 2));
        BOOST_TEST(pool.stats().fitted_allocations == 1u);
        pool.put(std::move(b));
        BOOST_TEST(pool.stats().live_fitted_blocks == 0u);
        BOOST_TEST(pool.stats().idle_bytes == upstream_bytes(mib));
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(alignments_up_to_a_page, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    for (std::size_t align = 1; align <= 4096; align *= 2) {
        // A pool each: one would see a loop (a_loop_gets_its_own_block...).
        zp::sharded_buffer_resource pool(fit_config(), &upstream);
        {
            void* big = pool.allocate(mib, 16);
            pool.deallocate(big, mib, 16);
            const std::uint64_t fitted = pool.stats().fitted_allocations;
            void* p = pool.allocate(800 * kib, align);
            BOOST_TEST(reinterpret_cast<std::uintptr_t>(p) % align == 0u);
            fill(p, 800 * kib, align);
            // Fitted below a page; a page-aligned request keeps to its class
            // (docs/design.md, "Fit": its pointer could not tell the block).
            const bool expect_fit = align < 4096;
            BOOST_TEST(inside(upstream, big, p, 800 * kib) == expect_fit, "alignment " << align);
            BOOST_TEST(pool.stats().fitted_allocations == fitted + (expect_fit ? 1u : 0u));
            BOOST_TEST(holds(p, 800 * kib, align));
            pool.deallocate(p, 800 * kib, align);
        }
    }
    expect_balanced(upstream);
}

BOOST_AUTO_TEST_CASE(blocks_freed_on_one_thread_fit_requests_on_another, *boost::unit_test::timeout(60)) {
    recording_resource upstream;
    {
        zp::sharded_buffer_resource pool(fit_config(), &upstream);
        std::vector<void*> freed;
        // A thread frees 1 MiB blocks and exits: its cache goes to the shards.
        std::thread([&] {
            for (int i = 0; i < 6; ++i) freed.push_back(pool.allocate(mib, 16));
            for (void* p : freed) pool.deallocate(p, mib, 16);
        }).join();
        std::vector<void*> got;
        for (int i = 0; i < 6; ++i) got.push_back(pool.allocate(800 * kib, 16)); // class 896 KiB
        const zp::pool_stats s = pool.stats();
        BOOST_TEST(s.upstream_allocations == 6u);
        BOOST_TEST(s.fitted_allocations == 6u);
        // And fitted blocks freed on another thread go back as what they are.
        std::thread([&] {
            for (void* p : got) pool.deallocate(p, 800 * kib, 16);
        }).join();
        BOOST_TEST(pool.stats().live_fitted_blocks == 0u);
        BOOST_TEST(pool.stats().idle_bytes == 6 * upstream_bytes(mib));
    }
    expect_balanced(upstream);
}

// Several threads, random sizes across three octaves and random alignments:
// fits happen all the time, blocks cross threads through a shared exchange,
// every buffer's contents are checked when it is freed, and the recording
// upstream fails on any size or alignment mismatch.
BOOST_AUTO_TEST_CASE(random_workload_with_constant_fits, *boost::unit_test::timeout(300)) {
    recording_resource upstream;
    const int threads = 3;
    const int steps = zeropool_test::scaled(20000, 3000);
    zeropool_test::failure_log failures;
    {
        zp::sharded_buffer_resource pool(fit_config().with_max_cached_bytes(64 * mib), &upstream);
        struct live {
            void* p;
            std::size_t bytes;
            std::size_t align;
            std::uint64_t gen;
        };
        std::mutex exchange_mutex;
        std::vector<live> exchange;
        auto worker = [&](unsigned seed) {
            std::mt19937_64 rng(seed);
            std::vector<live> mine;
            auto release = [&](const live& b) {
                failures.check(holds(b.p, b.bytes, b.gen), "contents changed while allocated");
                pool.deallocate(b.p, b.bytes, b.align);
            };
            for (int i = 0; i < steps; ++i) {
                const std::uint64_t r = rng();
                if (mine.size() < 12 && (r & 3) != 0) {
                    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
                    const auto bytes = static_cast<std::size_t>(4096.0 * std::exp2(8.0 * u)); // 4 KiB..1 MiB
                    const std::size_t align = std::size_t{1} << (rng() % 13);              // 1..4096
                    live b{pool.allocate(bytes, align), bytes, align, rng()};
                    failures.check(reinterpret_cast<std::uintptr_t>(b.p) % align == 0, "misaligned");
                    fill(b.p, b.bytes, b.gen);
                    mine.push_back(b);
                } else if (!mine.empty()) {
                    const std::size_t k = rng() % mine.size();
                    const live b = mine[k];
                    mine[k] = mine.back();
                    mine.pop_back();
                    if ((r & 4) != 0) { // hand it to whichever thread takes it next
                        std::lock_guard<std::mutex> lock(exchange_mutex);
                        exchange.push_back(b);
                    } else {
                        release(b);
                    }
                }
                if ((r & 24) == 0) {
                    live b{};
                    {
                        std::lock_guard<std::mutex> lock(exchange_mutex);
                        if (exchange.empty()) continue;
                        b = exchange.back();
                        exchange.pop_back();
                    }
                    release(b);
                }
            }
            for (const live& b : mine) release(b);
        };
        std::vector<std::thread> pool_threads;
        for (int t = 0; t < threads; ++t) pool_threads.emplace_back(worker, 7919u * static_cast<unsigned>(t + 1));
        for (std::thread& t : pool_threads) t.join();
        for (const live& b : exchange) {
            BOOST_TEST(holds(b.p, b.bytes, b.gen));
            pool.deallocate(b.p, b.bytes, b.align);
        }
        const zp::pool_stats s = pool.stats();
        BOOST_TEST_MESSAGE("fitted " << s.fitted_allocations << " of " << threads * steps << " steps, upstream "
                                     << s.upstream_allocations);
        BOOST_TEST(s.fitted_allocations > 0u);
        BOOST_TEST(s.live_fitted_blocks == 0u);
        BOOST_TEST(s.live_fitted_requested_bytes == 0u);
        BOOST_TEST(s.live_fitted_block_bytes == 0u);
        BOOST_TEST(s.idle_bytes <= s.reserved_bytes);
    }
    failures.report();
    expect_balanced(upstream);
}

// A deallocate that names no block the pool handed out, where a fitted
// block's header is read: a message and abort(), never a block returned
// under a wrong class. Run in a child process.
BOOST_AUTO_TEST_CASE(a_bad_deallocate_of_a_fitted_block_aborts, *boost::unit_test::timeout(60)) {
    zp::sharded_buffer_resource pool(fit_config());
    void* big = pool.allocate(mib, 16);
    pool.deallocate(big, mib, 16);
    void* mid = pool.allocate(800 * kib, 16);
    BOOST_TEST(pool.stats().fitted_allocations == 1u);
    const pid_t child = ::fork();
    BOOST_TEST_REQUIRE(child >= 0);
    if (child == 0) {
        std::signal(SIGABRT, SIG_DFL); // Boost.Test's handler would catch it
        // A pointer inside the buffer, not its start: no header there.
        pool.deallocate(static_cast<std::byte*>(mid) + 4096, 800 * kib, 16);
        ::_exit(0);
    }
    int status = 0;
    BOOST_TEST_REQUIRE(::waitpid(child, &status, 0) == child);
    BOOST_TEST(WIFSIGNALED(status));
    if (WIFSIGNALED(status)) BOOST_TEST(WTERMSIG(status) == SIGABRT);
    pool.deallocate(mid, 800 * kib, 16);
}
