// A pool whose upstream is another zeropool pool: both take the one registry
// mutex, so the outer pool must never call its upstream while it holds that
// mutex. The destructor is the dangerous path: it takes the blocks other
// threads cache for the pool out of the registry, and used to allocate while
// doing so (and, when that failed, return the block upstream right there).
//
// This file replaces the global operator new, so that a test can make every
// heap allocation fail for a while.
#include <zeropool/sharded_buffer_resource.hpp>

#define BOOST_TEST_MODULE pool_over_pool
#include <boost/test/unit_test.hpp>

#include "test_resources.hpp"
#include "test_support.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <thread>

namespace {

std::atomic<bool> fail_new{false};
std::atomic<std::size_t> failed_news{0};

} // namespace

// While fail_new is set, every throwing and nothrow operator new fails.
void* operator new(std::size_t n) {
    if (fail_new.load(std::memory_order_relaxed)) {
        failed_news.fetch_add(1, std::memory_order_relaxed);
        throw std::bad_alloc();
    }
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return ::operator new(n);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return ::operator new(n, t); }
// Out of line, so that g++ does not pair an inlined operator new with free()
// and warn of a mismatch (-Wmismatched-new-delete): both sides use malloc.
[[gnu::noinline]] static void release_heap(void* p) noexcept { std::free(p); }
void operator delete(void* p) noexcept { release_heap(p); }
void operator delete[](void* p) noexcept { release_heap(p); }
void operator delete(void* p, std::size_t) noexcept { release_heap(p); }
void operator delete[](void* p, std::size_t) noexcept { release_heap(p); }

namespace {

using zeropool::pool_config;
using zeropool::sharded_buffer_resource;
using zeropool_test::kib;
using zeropool_test::recording_resource;

// Waits (bounded) until `flag` is set.
bool wait_for(const std::atomic<bool>& flag) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!flag.load(std::memory_order_acquire)) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::yield();
    }
    return true;
}

} // namespace

// The reproduction of the hang: one thread caches a block of the outer pool
// and parks; the outer pool is destroyed while no heap allocation can
// succeed. The destructor must return that block to the inner pool (which
// cannot cache it either: its own thread record cannot be allocated) and
// finish. Before the fix it deadlocked on the registry mutex.
BOOST_AUTO_TEST_CASE(destroying_a_pool_over_a_pool_without_heap_memory_finishes, *boost::unit_test::timeout(60)) {
    recording_resource books;
    {
        sharded_buffer_resource inner(pool_config{}.with_min_buffer_size(1 * kib), &books);
        auto outer = std::make_unique<sharded_buffer_resource>(pool_config{}.with_min_buffer_size(1 * kib), &inner);

        std::atomic<bool> cached{false};
        std::atomic<bool> may_exit{false};
        std::thread worker([&] {
            void* p = outer->allocate(64 * kib);
            outer->deallocate(p, 64 * kib); // now in this thread's cache of `outer`
            cached.store(true, std::memory_order_release);
            wait_for(may_exit); // parked, holding the cache
        });
        BOOST_REQUIRE(wait_for(cached));
        BOOST_TEST(outer->stats().idle_blocks == 1u);

        failed_news.store(0);
        fail_new.store(true);
        outer.reset(); // the destructor: must not hang, must not leak
        fail_new.store(false);

        may_exit.store(true, std::memory_order_release);
        worker.join();
        // The outer pool's block went back to the inner pool (its one upstream
        // allocation), and from there upstream only when the inner pool had
        // nowhere to keep it.
        BOOST_TEST(inner.stats().upstream_allocations == 1u);
    }
    BOOST_TEST(books.outstanding_blocks() == 0u);
    BOOST_TEST(books.violations().empty());
}

// The same without failing allocations, and with the worker exiting while
// the outer pool is destroyed: the dead cache is freed once, by whichever of
// the two finishes last.
BOOST_AUTO_TEST_CASE(thread_exit_racing_a_pool_over_a_pool_destruction, *boost::unit_test::timeout(120)) {
    recording_resource books;
    const int rounds = zeropool_test::scaled(200, 50);
    for (int round = 0; round < rounds; ++round) {
        sharded_buffer_resource inner(pool_config{}.with_min_buffer_size(1 * kib), &books);
        auto outer = std::make_unique<sharded_buffer_resource>(pool_config{}.with_min_buffer_size(1 * kib), &inner);
        std::atomic<bool> cached{false};
        std::thread worker([&] {
            for (std::size_t size : {4 * kib, 64 * kib, 256 * kib}) {
                void* p = outer->allocate(size);
                outer->deallocate(p, size);
            }
            cached.store(true, std::memory_order_release);
            // exits now, racing the destructor below
        });
        BOOST_REQUIRE(wait_for(cached));
        outer.reset();
        worker.join();
    }
    BOOST_TEST(books.outstanding_blocks() == 0u);
    BOOST_TEST(books.violations().empty());
}
