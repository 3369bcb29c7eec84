// Memory that goes back (docs/design.md, "Memory that goes back"): the byte
// budget bounds idle bytes, not reservations that threads keep without using
// them; trim() reaches every thread's cache, parked threads included; release
// by demand returns what has not been drawn on for a period and never a block
// that a steady loop reuses; all of it racing thread exit, pool destruction and
// fork, over the recording upstream, balanced to the byte.
#include <zeropool/idle_releaser.hpp>
#include <zeropool/sharded_buffer_resource.hpp>

#define BOOST_TEST_MODULE memory_return
#include <boost/test/unit_test.hpp>

#include "test_resources.hpp"
#include "test_support.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace zp = zeropool;
using zeropool_test::arrivals;
using zeropool_test::eventually;
using zeropool_test::expect_balanced;
using zeropool_test::gate;
using zeropool_test::kib;
using zeropool_test::mib;
using zeropool_test::recording_resource;

using clock_type = std::chrono::steady_clock;

} // namespace

// ---- an exact idle-byte cap -----------------------------------------------------------

// Issue 14's scenario: five threads each cycle three 256 KiB blocks through
// their caches and keep them in use, so their caches are empty but hold the
// budget's reservation; the main thread's rounds of four 256 KiB blocks must
// still be cached (at most 8 upstream allocations for 400 allocations).
BOOST_AUTO_TEST_CASE(reservation_an_idle_thread_does_not_use_does_not_starve_others,
                     *boost::unit_test::timeout(60)) {
    constexpr std::size_t block = 256 * kib;
    constexpr int workers = 5;
    recording_resource up;
    {
        zp::sharded_buffer_resource pool(zp::pool_config{}.with_max_cached_bytes(4 * mib), &up);
        gate finish;
        arrivals holding(workers);
        std::vector<std::thread> threads;
        for (int t = 0; t < workers; ++t) {
            threads.emplace_back([&] {
                void* b[3];
                for (void*& p : b) p = pool.allocate(block);
                for (void* p : b) pool.deallocate(p, block); // into the cache, reserving budget
                for (void*& p : b) p = pool.allocate(block); // out again: the reservation stays
                holding.arrive();
                finish.wait(); // parked, the blocks in use
                for (void* p : b) pool.deallocate(p, block);
            });
        }
        holding.wait();
        const zp::pool_stats before = pool.stats();
        BOOST_TEST_MESSAGE("reserved by the parked threads: " << before.reserved_bytes << " bytes, idle "
                                                              << before.idle_bytes);
        for (int round = 0; round < 100; ++round) {
            void* b[4];
            for (void*& p : b) p = pool.allocate(block);
            for (void* p : b) pool.deallocate(p, block);
        }
        const zp::pool_stats after = pool.stats();
        const std::uint64_t upstream_calls = after.upstream_allocations - before.upstream_allocations;
        BOOST_TEST_MESSAGE("the main thread's 400 allocations made " << upstream_calls << " upstream");
        BOOST_TEST(upstream_calls <= 8u, upstream_calls << " upstream allocations for 400 pooled ones");
        BOOST_TEST(after.reserved_bytes <= 4 * mib);
        finish.open();
        for (std::thread& th : threads) th.join();
        BOOST_TEST(pool.stats().reserved_bytes <= 4 * mib);
    }
    expect_balanced(up);
}

// ---- trim() reaches every thread ------------------------------------------------------

BOOST_AUTO_TEST_CASE(trim_returns_the_blocks_cached_by_parked_threads, *boost::unit_test::timeout(60)) {
    constexpr int workers = 4;
    recording_resource up;
    {
        zp::sharded_buffer_resource pool(zp::pool_config{}.with_idle_release_ms(zp::pool_config::no_idle_release),
                                         &up);
        gate wake;
        arrivals cached(workers);
        std::vector<std::thread> threads;
        for (int t = 0; t < workers; ++t) {
            threads.emplace_back([&, t] {
                const std::size_t sizes[3] = {16 * kib, 64 * kib + static_cast<std::size_t>(t) * kib, 1 * mib};
                void* b[3];
                for (int i = 0; i < 3; ++i) b[i] = pool.allocate(sizes[i]);
                for (int i = 0; i < 3; ++i) pool.deallocate(b[i], sizes[i]); // cached by this thread
                cached.arrive();
                wake.wait(); // parked: it will not call the pool until trim() is over
                // The pool still works for it afterwards.
                for (int i = 0; i < 3; ++i) b[i] = pool.allocate(sizes[i]);
                for (int i = 0; i < 3; ++i) pool.deallocate(b[i], sizes[i]);
            });
        }
        cached.wait();
        const zp::pool_stats before = pool.stats();
        BOOST_TEST(before.idle_blocks >= static_cast<std::size_t>(workers)); // the caches hold blocks
        pool.trim();
        const zp::pool_stats after = pool.stats();
        BOOST_TEST(after.idle_blocks == 0u);
        BOOST_TEST(after.idle_bytes == 0u);
        BOOST_TEST(after.reserved_bytes == 0u); // the caches' reservations too
        BOOST_TEST(up.outstanding_blocks() == 0u); // every block is back upstream
        BOOST_TEST(after.released_by_trim_bytes >= before.idle_bytes);
        wake.open();
        for (std::thread& th : threads) th.join();
    }
    expect_balanced(up);
}

// ---- release by demand ------------------------------------------------------------------

// A burst leaves many blocks idle; a steady loop then uses a few. What the
// loop does not draw on goes back within a few periods; the loop's own
// blocks never do (no upstream allocation after its first round).
BOOST_AUTO_TEST_CASE(a_burst_goes_back_while_a_steady_loop_keeps_its_blocks, *boost::unit_test::timeout(60)) {
    constexpr std::size_t burst_block = 64 * kib;
    constexpr std::size_t steady_block = 64 * kib;
    constexpr int burst = 64;
    constexpr int steady = 6; // more than a thread cache holds: the shards serve some
    constexpr std::size_t period_ms = 100;
    recording_resource up;
    {
        zp::sharded_buffer_resource pool(zp::pool_config{}.with_idle_release_ms(period_ms), &up);
        std::vector<void*> b(burst);
        for (void*& p : b) p = pool.allocate(burst_block);
        for (void* p : b) pool.deallocate(p, burst_block);
        const std::size_t burst_idle = pool.stats().idle_bytes;
        BOOST_TEST(burst_idle >= burst * burst_block);

        std::uint64_t upstream_after_first_round = 0;
        const auto end = clock_type::now() + std::chrono::milliseconds(15 * period_ms);
        for (int round = 0; clock_type::now() < end; ++round) {
            void* s[steady];
            for (void*& p : s) p = pool.allocate(steady_block);
            for (void* p : s) pool.deallocate(p, steady_block);
            if (round == 0) upstream_after_first_round = pool.stats().upstream_allocations;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        const zp::pool_stats st = pool.stats();
        BOOST_TEST_MESSAGE("idle after the burst " << burst_idle << " bytes; after " << 15 * period_ms
                                                   << " ms of the steady loop " << st.idle_bytes << " bytes, "
                                                   << st.released_by_demand_bytes << " released by demand");
        BOOST_TEST(st.upstream_allocations == upstream_after_first_round); // the loop's blocks stayed
        // The loop draws on its six blocks and on the ones a refill brings into
        // its cache with them (at most a cache's worth): the rest went back.
        const std::size_t drawn = (steady + pool.config().tls_cache_size) * (steady_block + 16);
        BOOST_TEST(st.idle_bytes <= drawn);
        BOOST_TEST(st.released_by_demand_bytes >= burst_idle - drawn);
    }
    expect_balanced(up);
}

// A steady working set, reused every millisecond, across many periods: never
// released, while blocks of another class that nothing draws on are.
BOOST_AUTO_TEST_CASE(a_steady_working_set_is_never_released, *boost::unit_test::timeout(120)) {
    constexpr std::size_t block = 128 * kib;
    constexpr std::size_t other_block = 32 * kib;
    constexpr int working_set = 8;
    constexpr std::size_t period_ms = 500;
    const auto duration = std::chrono::seconds(10); // 20 periods
    recording_resource up;
    {
        zp::sharded_buffer_resource pool(zp::pool_config{}.with_idle_release_ms(period_ms), &up);
        // Blocks of another class, idle from the start.
        std::vector<void*> other(16);
        for (void*& p : other) p = pool.allocate(other_block);
        for (void* p : other) pool.deallocate(p, other_block);

        std::uint64_t warm = 0;
        const auto end = clock_type::now() + duration;
        for (int round = 0; clock_type::now() < end; ++round) {
            void* s[working_set];
            for (void*& p : s) p = pool.allocate(block);
            for (void* p : s) pool.deallocate(p, block);
            if (round == 0) warm = pool.stats().upstream_allocations;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        const zp::pool_stats st = pool.stats();
        BOOST_TEST(st.upstream_allocations == warm, st.upstream_allocations - warm
                                                        << " upstream allocations after the first round");
        BOOST_TEST(st.released_by_demand_bytes >= 16 * other_block); // the other class went back
        BOOST_TEST(st.idle_bytes >= working_set * block);            // the working set did not
    }
    expect_balanced(up);
}

// Threads that used the pool and went quiet: an idle_releaser returns their
// cached blocks and reservations after a period, with no call of theirs and
// none of the main thread's.
BOOST_AUTO_TEST_CASE(an_idle_releaser_empties_the_caches_of_quiet_threads, *boost::unit_test::timeout(60)) {
    constexpr int workers = 3;
    recording_resource up;
    {
        zp::sharded_buffer_resource pool(zp::pool_config{}.with_idle_release_ms(100), &up);
        gate wake;
        arrivals cached(workers);
        std::vector<std::thread> threads;
        for (int t = 0; t < workers; ++t) {
            threads.emplace_back([&] {
                void* b[2] = {pool.allocate(256 * kib), pool.allocate(8 * kib)};
                pool.deallocate(b[0], 256 * kib);
                pool.deallocate(b[1], 8 * kib);
                cached.arrive();
                wake.wait();
            });
        }
        cached.wait();
        BOOST_TEST(pool.stats().idle_blocks >= static_cast<std::size_t>(workers));
        {
            zp::idle_releaser releaser(pool);
            BOOST_TEST(eventually([&] { return pool.stats().idle_blocks == 0; }, std::chrono::seconds(10)));
        }
        const zp::pool_stats st = pool.stats();
        BOOST_TEST(st.idle_bytes == 0u);
        BOOST_TEST(st.reserved_bytes == 0u);
        BOOST_TEST(st.released_by_demand_bytes > 0u);
        BOOST_TEST(up.outstanding_blocks() == 0u);
        wake.open();
        for (std::thread& th : threads) th.join();
    }
    expect_balanced(up);
}

// Release by demand and trim from one thread while others come, use the pool
// and exit; then the pool is destroyed while a parked thread still caches
// blocks.
BOOST_AUTO_TEST_CASE(release_races_thread_exit_and_pool_destruction, *boost::unit_test::timeout(120)) {
    recording_resource up;
    {
        gate wake;
        arrivals cached(1); // outlives the parked thread's arrive()
        std::thread parked;
        {
            zp::sharded_buffer_resource pool(zp::pool_config{}.with_idle_release_ms(10).with_max_cached_bytes(8 * mib),
                                             &up);
            std::atomic<bool> stop{false};
            std::thread releaser([&] {
                for (int i = 0; !stop.load(); ++i) {
                    if (i % 8 == 0) pool.trim();
                    else static_cast<void>(pool.release_idle());
                    std::this_thread::yield();
                }
            });
            const auto end = clock_type::now() + std::chrono::milliseconds(1500);
            for (int generation = 0; clock_type::now() < end; ++generation) {
                std::vector<std::thread> threads;
                for (int t = 0; t < 3; ++t) {
                    threads.emplace_back([&pool, t, generation] {
                        const std::size_t sizes[3] = {4 * kib, 64 * kib, 512 * kib};
                        for (int i = 0; i < 200; ++i) {
                            const std::size_t n = sizes[static_cast<std::size_t>(i + t + generation) % 3];
                            void* p = pool.allocate(n);
                            static_cast<unsigned char*>(p)[n - 1] = 1;
                            pool.deallocate(p, n);
                        }
                    });
                }
                for (std::thread& th : threads) th.join();
            }
            stop.store(true);
            releaser.join();
            parked = std::thread([&] {
                void* p = pool.allocate(64 * kib);
                pool.deallocate(p, 64 * kib);
                cached.arrive();
                wake.wait(); // exits after the pool is gone
            });
            cached.wait();
        } // destroyed with the parked thread's cache holding a block
        wake.open();
        parked.join();
    }
    expect_balanced(up);
}

// fork() while threads are parked with cached blocks: in the child, which has
// only the forking thread, trim() returns the blocks those threads' caches
// held (the threads do not exist there); the parent is unaffected.
BOOST_AUTO_TEST_CASE(trim_in_a_fork_child_reaches_the_caches_of_threads_left_behind,
                     *boost::unit_test::timeout(60)) {
    recording_resource up;
    {
        zp::sharded_buffer_resource pool(zp::pool_config{}.with_idle_release_ms(zp::pool_config::no_idle_release),
                                         &up);
        gate wake;
        arrivals cached(2);
        std::vector<std::thread> threads;
        for (int t = 0; t < 2; ++t) {
            threads.emplace_back([&] {
                void* p = pool.allocate(128 * kib);
                pool.deallocate(p, 128 * kib);
                cached.arrive();
                wake.wait();
            });
        }
        cached.wait();
        const pid_t child = ::fork();
        BOOST_TEST_REQUIRE(child >= 0);
        if (child == 0) {
            pool.trim();
            const zp::pool_stats st = pool.stats();
            ::_exit(st.idle_blocks == 0 && st.idle_bytes == 0 && st.reserved_bytes == 0 ? 0 : 1);
        }
        int status = 0;
        BOOST_TEST_REQUIRE(::waitpid(child, &status, 0) == child);
        BOOST_TEST(WIFEXITED(status));
        BOOST_TEST(WEXITSTATUS(status) == 0, "the child's trim() left idle blocks");
        BOOST_TEST(pool.stats().idle_blocks >= 2u); // the parent's caches are untouched
        wake.open();
        for (std::thread& th : threads) th.join();
    }
    expect_balanced(up);
}
