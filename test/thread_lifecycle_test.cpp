// Thread and pool lifecycle of sharded_buffer_resource: per-(thread, pool)
// caches keyed by a never-reused pool id, thread exit handing blocks to a
// shard, calls arriving after a thread's teardown, pools destroyed while other
// threads still cache their blocks, and thousands of pools alive at once.
// See docs/design.md and the design notes, sections 3 and 4.
#include <zeropool/sharded_buffer_resource.hpp>

#define BOOST_TEST_MODULE thread_lifecycle
#include <boost/test/unit_test.hpp>

#include "test_resources.hpp"
#include "test_support.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>

namespace {

using zeropool_test::arrivals;

namespace zp = zeropool;
using zeropool_test::expect_balanced;
using zeropool_test::recording_resource;

using zeropool_test::failure_log;
using zeropool_test::kib;
using zeropool_test::sanitized;
using zeropool_test::scaled;

/// A one-shot gate: threads wait until it is opened.
class gate {
public:
    void open() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            open_ = true;
        }
        cv_.notify_all();
    }
    void wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [this] { return open_; });
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool open_ = false;
};


bool balanced(const recording_resource& up) {
    return up.outstanding_blocks() == 0 && up.outstanding_bytes() == 0 && up.violations().empty();
}

/// Writes a pattern derived from the block's address into its first and last
/// words, so a block that is handed to two owners is noticed.
void stamp(void* p, std::size_t bytes) noexcept {
    auto* w = static_cast<std::uint64_t*>(p);
    const auto tag = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p)) ^
                     0x9E3779B97F4A7C15ull;
    w[0] = tag;
    w[bytes / sizeof(std::uint64_t) - 1] = ~tag;
}

bool stamped(const void* p, std::size_t bytes) noexcept {
    const auto* w = static_cast<const std::uint64_t*>(p);
    const auto tag = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p)) ^
                     0x9E3779B97F4A7C15ull;
    return w[0] == tag && w[bytes / sizeof(std::uint64_t) - 1] == ~tag;
}

constexpr std::size_t block = 64 * kib; // pooled with the default options

} // namespace

BOOST_AUTO_TEST_SUITE(thread_lifecycle)

// ---- a pool built where a destroyed one lived ----------------------------------

BOOST_AUTO_TEST_CASE(pool_rebuilt_in_same_storage_never_sees_old_blocks,
                     *boost::unit_test::timeout(60)) {
    alignas(zp::sharded_buffer_resource) unsigned char storage[sizeof(zp::sharded_buffer_resource)];
    for (int round = 0; round < 20; ++round) {
        BOOST_TEST_CONTEXT("round " << round) {
            recording_resource old_up;
            recording_resource new_up;
            auto* old_pool = ::new (static_cast<void*>(storage)) zp::sharded_buffer_resource(
                zp::pool_config{}, &old_up);
            void* p = old_pool->allocate(block);
            old_pool->deallocate(p, block);
            // A second class, so the cache holds more than one block.
            void* p2 = old_pool->allocate(8 * kib);
            old_pool->deallocate(p2, 8 * kib);
            BOOST_TEST(old_pool->stats().idle_blocks == 2u);
            BOOST_TEST(old_up.outstanding_blocks() == 2u);
            old_pool->~sharded_buffer_resource();
            expect_balanced(old_up);

            auto* new_pool = ::new (static_cast<void*>(storage)) zp::sharded_buffer_resource(
                zp::pool_config{}, &new_up);
            BOOST_TEST(static_cast<void*>(new_pool) == static_cast<void*>(storage));
            void* q = new_pool->allocate(block);
            const zp::pool_stats st = new_pool->stats();
            BOOST_TEST(st.upstream_allocations == 1u);
            BOOST_TEST(st.thread_cache_hits == 0u);
            BOOST_TEST(st.shard_hits == 0u);
            BOOST_TEST(new_up.is_live(q));
            BOOST_TEST(new_up.outstanding_blocks() == 1u);
            BOOST_TEST(old_up.outstanding_blocks() == 0u); // nothing new asked of the old one
            new_pool->deallocate(q, block);
            new_pool->~sharded_buffer_resource();
            expect_balanced(new_up);
            expect_balanced(old_up);
        }
    }
}

BOOST_AUTO_TEST_CASE(optional_emplace_reset_never_sees_old_blocks,
                     *boost::unit_test::timeout(60)) {
    std::optional<zp::sharded_buffer_resource> pool;
    const void* address = nullptr;
    for (int round = 0; round < 20; ++round) {
        BOOST_TEST_CONTEXT("round " << round) {
            recording_resource up;
            pool.emplace(zp::pool_config{}, &up);
            if (address == nullptr) address = &*pool;
            BOOST_TEST(static_cast<const void*>(&*pool) == address);
            void* p = pool->allocate(block);
            const zp::pool_stats first = pool->stats();
            BOOST_TEST(first.upstream_allocations == 1u);
            BOOST_TEST(first.thread_cache_hits == 0u);
            BOOST_TEST(first.shard_hits == 0u);
            BOOST_TEST(up.is_live(p));
            pool->deallocate(p, block); // into this thread's cache for this pool
            void* again = pool->allocate(block);
            BOOST_TEST(again == p); // the cache works for the live pool
            BOOST_TEST(pool->stats().thread_cache_hits == 1u);
            pool->deallocate(again, block);
            pool.reset();
            expect_balanced(up);
        }
    }
}

// ---- thread exit ------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(exiting_thread_hands_cached_blocks_to_a_shard,
                     *boost::unit_test::timeout(60)) {
    recording_resource up;
    zp::sharded_buffer_resource pool(zp::pool_config{}.with_tls_cache_size(4), &up);
    const std::size_t sizes[4] = {4 * kib, 16 * kib, block, 256 * kib};

    std::vector<void*> cached(4, nullptr);
    gate go;
    arrivals ready(1);
    std::thread owner([&] {
        for (std::size_t i = 0; i < 4; ++i) cached[i] = pool.allocate(sizes[i]);
        for (std::size_t i = 0; i < 4; ++i) pool.deallocate(cached[i], sizes[i]);
        ready.arrive();
        go.wait();
    });
    ready.wait();
    const zp::pool_stats before = pool.stats();
    BOOST_TEST(before.upstream_allocations == 4u);
    BOOST_TEST(before.idle_blocks == 4u);
    BOOST_TEST(before.upstream_deallocations == 0u);
    BOOST_TEST(up.outstanding_blocks() == 4u);
    go.open();
    owner.join();

    const zp::pool_stats after = pool.stats();
    BOOST_TEST(after.idle_blocks == before.idle_blocks);
    BOOST_TEST(after.idle_bytes == before.idle_bytes);
    BOOST_TEST(after.upstream_deallocations == before.upstream_deallocations);
    BOOST_TEST(up.outstanding_blocks() == 4u); // not freed, not leaked: idle in a shard

    // Another thread finds every block in the shards.
    failure_log log;
    std::thread taker([&] {
        for (std::size_t i = 0; i < 4; ++i) {
            void* p = pool.allocate(sizes[i]);
            log.check(p == cached[i], "the exited thread's block of this class was not reused");
            pool.deallocate(p, sizes[i]);
        }
    });
    taker.join();
    log.report();
    // One idle block per class, all in the shards, and a taker with an empty
    // cache: each allocation is a shard hit.
    const zp::pool_stats reused = pool.stats();
    BOOST_TEST(reused.shard_hits == after.shard_hits + 4);
    BOOST_TEST(reused.upstream_allocations == before.upstream_allocations);
    BOOST_TEST(reused.upstream_deallocations == 0u);
    BOOST_TEST(reused.idle_blocks == 4u);
    BOOST_TEST(up.violations().empty());
}

BOOST_AUTO_TEST_CASE(short_lived_threads_reuse_each_others_blocks,
                     *boost::unit_test::timeout(60)) {
    recording_resource up;
    zp::sharded_buffer_resource pool(zp::pool_config{}.with_tls_cache_size(4), &up);
    const std::size_t sizes[4] = {4 * kib, 12 * kib, block, 1024 * kib};
    const int threads = scaled(50, 20);
    failure_log log;
    for (int t = 0; t < threads; ++t) {
        std::thread worker([&] {
            void* held[4];
            for (std::size_t i = 0; i < 4; ++i) {
                held[i] = pool.allocate(sizes[i]);
                stamp(held[i], sizes[i]);
            }
            for (std::size_t i = 0; i < 4; ++i) {
                log.check(stamped(held[i], sizes[i]), "block overwritten while owned");
                pool.deallocate(held[i], sizes[i]);
            }
        });
        worker.join();
    }
    log.report();
    const zp::pool_stats st = pool.stats();
    // Only the first thread asks upstream; every later one finds the blocks
    // the exited threads handed to the shards.
    BOOST_TEST(st.upstream_allocations == 4u);
    BOOST_TEST(st.upstream_deallocations == 0u);
    BOOST_TEST(st.shard_hits == 4u * static_cast<std::uint64_t>(threads - 1));
    BOOST_TEST(st.idle_blocks == 4u);
    BOOST_TEST(up.outstanding_blocks() == 4u);
}

// Thousands of threads, a few alive at a time, each using the pool briefly:
// every exit hands the thread's cache to the shards, so the blocks circulate
// between generations of threads and upstream sees only the peak.
BOOST_AUTO_TEST_CASE(thousands_of_short_lived_threads, *boost::unit_test::timeout(120)) {
    const int total = scaled(4000, 1000);
    constexpr int alive = 8;  // threads alive at once
    constexpr std::size_t per_thread = 3;
    const std::size_t sizes[per_thread] = {4 * kib, block, 256 * kib};
    recording_resource up;
    failure_log log;
    {
        // Shards large enough that no idle block is ever sent back upstream.
        zp::sharded_buffer_resource pool(
            zp::pool_config{}.with_tls_cache_size(4).with_max_buffers_per_shard(256), &up);
        std::atomic<int> ran{0};
        for (int started = 0; started < total; started += alive) {
            std::vector<std::thread> batch;
            for (int t = 0; t < alive && started + t < total; ++t) {
                batch.emplace_back([&, t] {
                    void* held[per_thread];
                    for (std::size_t i = 0; i < per_thread; ++i) {
                        held[i] = pool.allocate(sizes[i]);
                        stamp(held[i], sizes[i]);
                    }
                    if (t % 2 == 0) { // half of them also use get/put
                        zp::buffer b = pool.get(block);
                        log.check(b.size() == block, "get() returned the wrong size");
                        pool.put(std::move(b));
                    }
                    for (std::size_t i = 0; i < per_thread; ++i) {
                        log.check(stamped(held[i], sizes[i]), "block overwritten while owned");
                        pool.deallocate(held[i], sizes[i]);
                    }
                    ran.fetch_add(1);
                });
            }
            for (std::thread& th : batch) th.join();
        }
        log.report();
        BOOST_TEST(ran.load() == total);
        const zp::pool_stats st = pool.stats();
        // At most `alive` threads hold at most per_thread blocks of each class
        // at once (get() takes a block of block's class): the exited threads'
        // blocks are reused, so upstream sees no more than that peak.
        BOOST_TEST(st.upstream_allocations <= static_cast<std::uint64_t>(alive) * (per_thread + 1));
        BOOST_TEST(st.upstream_deallocations == 0u);
        BOOST_TEST(st.idle_blocks == up.outstanding_blocks());
        BOOST_TEST(st.thread_cache_hits + st.shard_hits + st.upstream_allocations ==
                   static_cast<std::uint64_t>(total) * per_thread + static_cast<std::uint64_t>((total + 1) / 2));
    }
    expect_balanced(up);
}

// ---- calls after the thread's teardown ------------------------------------------------

namespace {

/// A user thread_local that is constructed before the thread first uses the
/// pool, so it is destroyed after the library's per-thread record.
struct late_holder {
    zp::sharded_buffer_resource* pool = nullptr;
    std::optional<std::pmr::vector<std::byte>> vec;
    failure_log* log = nullptr;
    std::atomic<int>* destroyed = nullptr;

    late_holder() = default;
    late_holder(const late_holder&) = delete;
    late_holder& operator=(const late_holder&) = delete;
    ~late_holder() {
        if (pool == nullptr) return;
        // A late allocate and deallocate.
        void* p = pool->allocate(block);
        stamp(p, block);
        log->check(stamped(p, block), "late block not writable");
        pool->deallocate(p, block);
        // A late get/put.
        zp::buffer b = pool->get(block);
        log->check(b.size() == block, "late get() returned the wrong size");
        pool->put(std::move(b));
        // The late deallocate of a block allocated while the thread was live.
        vec.reset();
        destroyed->fetch_add(1);
    }
};

/// A user thread_local whose destructor is the thread's first use of the pool.
struct first_use_holder {
    zp::sharded_buffer_resource* pool = nullptr;
    std::atomic<int>* destroyed = nullptr;

    first_use_holder() = default;
    first_use_holder(const first_use_holder&) = delete;
    first_use_holder& operator=(const first_use_holder&) = delete;
    ~first_use_holder() {
        if (pool == nullptr) return;
        void* p = pool->allocate(block);
        pool->deallocate(p, block);
        zp::buffer b = pool->get(block);
        pool->put(std::move(b));
        destroyed->fetch_add(1);
    }
};

} // namespace

BOOST_AUTO_TEST_CASE(deallocate_after_thread_teardown_goes_to_a_shard,
                     *boost::unit_test::timeout(60)) {
    recording_resource up;
    std::atomic<int> destroyed{0};
    failure_log log;
    {
        zp::sharded_buffer_resource pool(zp::pool_config{}, &up);
        std::thread worker([&] {
            static thread_local late_holder holder; // constructed first, destroyed last
            holder.log = &log;
            holder.destroyed = &destroyed;
            // First use of the pool by this thread: creates its record.
            void* a = pool.allocate(block);
            pool.deallocate(a, block);
            // The vector takes that block back out of the thread cache.
            holder.vec.emplace(block, std::byte{0x5A}, &pool);
            log.check(static_cast<void*>(holder.vec->data()) == a, "cache miss on the vector");
            holder.pool = &pool;
        });
        worker.join();
        log.report();
        BOOST_TEST(destroyed.load() == 1);

        // In order: upstream (first block), thread cache hit (the vector),
        // then after teardown: upstream (late allocate, shards empty), shard
        // (late deallocate), shard hit (late get), shard (late put), shard
        // (the vector's block).
        const zp::pool_stats st = pool.stats();
        BOOST_TEST(st.upstream_allocations == 2u);
        BOOST_TEST(st.upstream_deallocations == 0u);
        BOOST_TEST(st.thread_cache_hits == 1u);
        BOOST_TEST(st.shard_hits == 1u);
        BOOST_TEST(st.idle_blocks == 2u);
        BOOST_TEST(st.idle_bytes >= 2 * block);
        BOOST_TEST(up.outstanding_blocks() == 2u);

        // Both blocks sit in the shards, where another thread finds them.
        std::thread taker([&] {
            void* x = pool.allocate(block);
            void* y = pool.allocate(block);
            log.check(x != y, "one block handed out twice");
            pool.deallocate(x, block);
            pool.deallocate(y, block);
        });
        taker.join();
        log.report();
        // Both from the pool: the first by a shard hit (the taker's cache is
        // empty), the second by a shard hit or from the taker's cache if the
        // first refilled it (the refill policy: refill_policy_* in
        // sharded_buffer_resource_test.cpp).
        const zp::pool_stats after = pool.stats();
        BOOST_TEST(after.shard_hits + after.thread_cache_hits == st.shard_hits + st.thread_cache_hits + 2);
        BOOST_TEST(after.shard_hits >= st.shard_hits + 1);
        BOOST_TEST(after.upstream_allocations == 2u);
    }
    expect_balanced(up);
}

BOOST_AUTO_TEST_CASE(first_use_inside_a_thread_local_destructor,
                     *boost::unit_test::timeout(60)) {
    recording_resource up;
    std::atomic<int> destroyed{0};
    failure_log log;
    {
        zp::sharded_buffer_resource pool(zp::pool_config{}, &up);
        std::thread worker([&] {
            static thread_local first_use_holder holder;
            holder.destroyed = &destroyed;
            holder.pool = &pool; // the pool is used only from the destructor
        });
        worker.join();
        BOOST_TEST(destroyed.load() == 1);
        const zp::pool_stats st = pool.stats();
        BOOST_TEST(st.upstream_allocations == 1u);
        BOOST_TEST(st.upstream_deallocations == 0u);
        BOOST_TEST(st.idle_blocks == 1u);
        BOOST_TEST(up.outstanding_blocks() == 1u);

        // Whatever the thread cached during its teardown reached a shard.
        std::thread taker([&] {
            void* x = pool.allocate(block);
            pool.deallocate(x, block);
        });
        taker.join();
        const zp::pool_stats after = pool.stats();
        BOOST_TEST(after.upstream_allocations == 1u);
        BOOST_TEST(after.shard_hits == st.shard_hits + 1);
    }
    expect_balanced(up);
}

// ---- pools destroyed while other threads cache their blocks ---------------------------

BOOST_AUTO_TEST_CASE(pool_destroyed_while_threads_hold_cached_blocks,
                     *boost::unit_test::timeout(60)) {
    constexpr int threads = 8;
    const std::size_t sizes[4] = {4 * kib, 16 * kib, block, 512 * kib};
    recording_resource old_up;
    recording_resource new_up;
    std::optional<zp::sharded_buffer_resource> pool;
    pool.emplace(zp::pool_config{}.with_tls_cache_size(4), &old_up);

    failure_log log;
    arrivals cached(threads);
    arrivals first_allocated(threads);
    gate pool_replaced;
    gate may_exit;
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&] {
            void* held[4];
            for (std::size_t i = 0; i < 4; ++i) held[i] = pool->allocate(sizes[i]);
            for (std::size_t i = 0; i < 4; ++i) pool->deallocate(held[i], sizes[i]);
            cached.arrive();
            pool_replaced.wait();

            // The pool now in the same storage is a different pool: this
            // thread's first allocate comes from the new upstream.
            void* p = pool->allocate(block);
            log.check(new_up.is_live(p), "block of the new pool not from its upstream");
            log.check(!old_up.is_live(p), "block of the destroyed pool handed out again");
            stamp(p, block);
            first_allocated.arrive();
            may_exit.wait();
            log.check(stamped(p, block), "block overwritten while owned");
            pool->deallocate(p, block);

            // Other pools, built and destroyed by this thread, still work.
            recording_resource local_up;
            {
                zp::sharded_buffer_resource local(zp::pool_config{}, &local_up);
                for (int round = 0; round < 3; ++round) {
                    void* q = local.allocate(block);
                    local.deallocate(q, block);
                }
                log.check(local.stats().upstream_allocations == 1u, "local pool missed its cache");
            }
            log.check(balanced(local_up), "thread-local pool did not balance");
        });
    }
    cached.wait();
    BOOST_TEST(pool->stats().idle_blocks == 4u * threads);
    BOOST_TEST(old_up.outstanding_blocks() == 4u * threads);

    pool.reset(); // the workers still hold cached blocks of this pool
    BOOST_TEST(old_up.outstanding_blocks() == 0u);
    BOOST_TEST(old_up.outstanding_bytes() == 0u);
    BOOST_TEST(old_up.violations().empty());

    pool.emplace(zp::pool_config{}.with_tls_cache_size(4), &new_up);
    pool_replaced.open();
    first_allocated.wait();
    const zp::pool_stats st = pool->stats();
    BOOST_TEST(st.upstream_allocations == static_cast<std::uint64_t>(threads));
    BOOST_TEST(st.thread_cache_hits == 0u);
    BOOST_TEST(st.shard_hits == 0u);
    may_exit.open();
    for (std::thread& w : workers) w.join();
    log.report();

    BOOST_TEST(pool->stats().idle_blocks == static_cast<std::size_t>(threads));
    pool.reset();
    expect_balanced(new_up);
    expect_balanced(old_up);
}

BOOST_AUTO_TEST_CASE(thread_exit_races_pool_destructor, *boost::unit_test::timeout(90)) {
    const int rounds = scaled(300, 60);
    constexpr int threads = 2;
    std::mt19937 rng(20240611u);
    std::uniform_int_distribution<int> delay_us(0, 200);
    failure_log log;
    for (int round = 0; round < rounds; ++round) {
        recording_resource up;
        std::optional<zp::sharded_buffer_resource> pool;
        // A full cache of 8 blocks and shards of 2 blocks: the exiting
        // thread's flush takes a while and sends most blocks upstream.
        pool.emplace(zp::pool_config{}.with_tls_cache_size(8).with_max_buffers_per_shard(2), &up);
        arrivals cached(threads);
        std::atomic<bool> go{false};
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            const int delay = delay_us(rng);
            workers.emplace_back([&, delay] {
                void* held[8];
                for (std::size_t i = 0; i < 8; ++i) held[i] = pool->allocate(4 * kib + i * kib);
                for (std::size_t i = 0; i < 8; ++i) pool->deallocate(held[i], 4 * kib + i * kib);
                cached.arrive();
                while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
                if (delay > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay));
                // returns: the thread exits and hands its cache back
            });
        }
        cached.wait();
        const int main_delay = delay_us(rng);
        go.store(true, std::memory_order_release);
        if (main_delay > 0) std::this_thread::sleep_for(std::chrono::microseconds(main_delay));
        pool.reset();
        const std::size_t outstanding_after_destructor = up.outstanding_blocks();
        for (std::thread& w : workers) w.join();
        if (outstanding_after_destructor != 0 || !balanced(up)) {
            BOOST_TEST_CONTEXT("round " << round) {
                BOOST_TEST(outstanding_after_destructor == 0u);
                expect_balanced(up);
            }
            break;
        }
    }
    log.report();
}

// A pool that is itself a thread_local dies during its thread's teardown,
// either after the library's per-thread record (it was constructed before the
// thread's first use of any pool) or before it (constructed after).
BOOST_AUTO_TEST_CASE(thread_local_pools_in_both_destruction_orders, *boost::unit_test::timeout(60)) {
    recording_resource before_up; // pool constructed before the thread's first pool use
    recording_resource after_up;  // pool constructed after it
    recording_resource other_up;
    {
        zp::sharded_buffer_resource other(zp::pool_config{}, &other_up);
        std::thread first([&] {
            static thread_local std::optional<zp::sharded_buffer_resource> pool;
            pool.emplace(zp::pool_config{}, &before_up); // before any pool use: destroyed last
            for (std::size_t i = 0; i < 3; ++i) {
                void* p = pool->allocate(block << i);
                pool->deallocate(p, block << i);
            }
            void* q = other.allocate(block);
            other.deallocate(q, block);
        });
        first.join();
        expect_balanced(before_up);

        std::thread second([&] {
            void* q = other.allocate(block); // first pool use: the record comes first
            other.deallocate(q, block);
            static thread_local std::optional<zp::sharded_buffer_resource> pool;
            pool.emplace(zp::pool_config{}, &after_up); // destroyed before the record
            for (std::size_t i = 0; i < 3; ++i) {
                void* p = pool->allocate(block << i);
                pool->deallocate(p, block << i);
            }
        });
        second.join();
        expect_balanced(after_up);
        // `other` got both threads' cached blocks back at their exit.
        const zp::pool_stats st = other.stats();
        BOOST_TEST(st.idle_blocks == 1u);
        BOOST_TEST(st.upstream_allocations == 1u);
        BOOST_TEST(st.upstream_deallocations == 0u);
    }
    expect_balanced(other_up);
}

// ---- a detached thread still holding blocks when main returns -----------------------

namespace {

/// Runs `body` in a forked child (the test process is single-threaded here)
/// and returns its exit code, or -(signal) if it was killed, or -1000 when it
/// was still running after 20 s (then it is killed).
template <typename F>
int exit_code_of_child(F body) {
    std::fflush(nullptr); // the child must not print the parent's buffered output again
    const pid_t pid = ::fork();
    if (pid == 0) {
        body(); // calls std::exit, as returning from main does
        ::_exit(90);
    }
    if (pid < 0) return -2000;
    const zeropool_test::child_outcome out = zeropool_test::wait_for_child(pid, std::chrono::seconds(20));
    if (out.timed_out) return -1000;
    if (out.exited) return out.exit_code;
    return out.signal != 0 ? -out.signal : -3000;
}

// Exit codes of the children below.
constexpr int child_ok = 0;
constexpr int child_unbalanced = 11;  // upstream books wrong after the pool's destructor
constexpr int child_bad_block = 12;   // a block was unusable

/// Objects with static storage duration in the child, destroyed by exit() in
/// the reverse order of their construction. Built in the order upstream,
/// checker, pool, they are destroyed pool, checker, upstream: the checker
/// reads the upstream after the pool's destructor and while the upstream
/// still exists, then ends the process before the upstream's destructor.
struct exit_checker {
    recording_resource* up = nullptr;
    std::size_t expected_outstanding = 0;
    ~exit_checker() {
        if (up == nullptr) return;
        // Runs after the pool's destructor: only the blocks the detached
        // thread still holds may be outstanding, and no call may have been bad.
        const bool ok = up->outstanding_blocks() == expected_outstanding && up->violations().empty();
        std::fflush(nullptr);
        ::_exit(ok ? child_ok : child_unbalanced); // skip the rest (the leak check sees held blocks)
    }
};

} // namespace

// The pool (a static) is destroyed by exit() while a detached thread, blocked,
// still holds two blocks and caches two more: the destructor takes the cached
// ones back from that thread's cache and returns them upstream.
BOOST_AUTO_TEST_CASE(detached_thread_holds_blocks_when_main_returns, *boost::unit_test::timeout(60)) {
    const int code = exit_code_of_child([] {
        static recording_resource up;
        static exit_checker checker; // destroyed after the pool, before up
        static zp::sharded_buffer_resource pool(zp::pool_config{}.with_tls_cache_size(4), &up);
        checker.up = &up;
        checker.expected_outstanding = 2;
        static std::atomic<int> ready{0};
        std::thread([] {
            void* held[4];
            const std::size_t sizes[4] = {4 * kib, block, 16 * kib, 256 * kib};
            for (std::size_t i = 0; i < 4; ++i) {
                held[i] = pool.allocate(sizes[i]);
                stamp(held[i], sizes[i]);
            }
            for (std::size_t i = 2; i < 4; ++i) pool.deallocate(held[i], sizes[i]); // cached
            if (!stamped(held[0], sizes[0]) || !stamped(held[1], sizes[1])) ::_exit(child_bad_block);
            ready.store(1);
            for (;;) std::this_thread::sleep_for(std::chrono::seconds(1)); // never returns
        }).detach();
        while (ready.load() == 0) std::this_thread::yield();
        if (pool.stats().idle_blocks != 2u) ::_exit(child_unbalanced);
        std::exit(0); // as returning from main
    });
    BOOST_TEST(code == child_ok, "child exit code " << code);
}

// A detached thread keeps using a pool that is never destroyed while main
// returns: the library's process-wide state must stay usable during exit.
BOOST_AUTO_TEST_CASE(detached_thread_uses_a_pool_while_main_returns, *boost::unit_test::timeout(60)) {
    const int code = exit_code_of_child([] {
        auto* up = new recording_resource();                                 // never freed
        auto* pool = new zp::sharded_buffer_resource(zp::pool_config{}, up); // never destroyed
        static std::atomic<int> rounds{0};
        std::thread([pool] {
            for (;;) {
                void* p = pool->allocate(block);
                stamp(p, block);
                zp::buffer b = pool->get(16 * kib);
                if (!stamped(p, block) || b.size() != 16 * kib) ::_exit(child_bad_block);
                pool->put(std::move(b));
                pool->deallocate(p, block);
                rounds.fetch_add(1);
            }
        }).detach();
        while (rounds.load() < 100) std::this_thread::yield();
        std::exit(0); // the thread is still running
    });
    BOOST_TEST(code == child_ok, "child exit code " << code);
}

// ---- many pools -------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(ten_thousand_pools_used_by_one_thread, *boost::unit_test::timeout(90)) {
    constexpr std::size_t pools = 10000;
    constexpr std::size_t small = 1 * kib;
    const zp::pool_config config = zp::pool_config{}.with_min_buffer_size(small);
    recording_resource up;
    {
        std::vector<std::unique_ptr<zp::sharded_buffer_resource>> all;
        all.reserve(pools);
        for (std::size_t i = 0; i < pools; ++i)
            all.push_back(std::make_unique<zp::sharded_buffer_resource>(config, &up));

        std::vector<void*> first(pools);
        for (std::size_t i = 0; i < pools; ++i) {
            first[i] = all[i]->allocate(small);
            stamp(first[i], small);
            all[i]->deallocate(first[i], small);
        }
        BOOST_TEST(up.outstanding_blocks() == pools);

        // Every pool gives this thread back its own block, from its cache.
        std::size_t wrong_block = 0;
        std::size_t wrong_stats = 0;
        for (std::size_t i = 0; i < pools; ++i) {
            void* p = all[i]->allocate(small);
            if (p != first[i] || !stamped(p, small)) ++wrong_block;
            const zp::pool_stats st = all[i]->stats();
            if (st.upstream_allocations != 1u || st.thread_cache_hits != 1u) ++wrong_stats;
            all[i]->deallocate(p, small);
        }
        BOOST_TEST(wrong_block == 0u);
        BOOST_TEST(wrong_stats == 0u);
        BOOST_TEST(up.outstanding_blocks() == pools);

        // Destroy them in a shuffled order; each returns exactly its block.
        std::vector<std::size_t> order(pools);
        for (std::size_t i = 0; i < pools; ++i) order[i] = i;
        std::shuffle(order.begin(), order.end(), std::mt19937(7u));
        std::size_t not_returned = 0;
        for (std::size_t k = 0; k < pools; ++k) {
            const std::size_t i = order[k];
            all[i].reset();
            if (up.is_live(first[i])) ++not_returned;
        }
        BOOST_TEST(not_returned == 0u);
    }
    expect_balanced(up);
}

BOOST_AUTO_TEST_CASE(ten_thousand_pools_used_by_several_threads, *boost::unit_test::timeout(120)) {
    constexpr std::size_t pools = 10000;
    constexpr int threads = 3;
    constexpr std::size_t small = 512;
    const zp::pool_config config = zp::pool_config{}.with_min_buffer_size(small);
    recording_resource up;
    failure_log log;
    {
        std::vector<std::unique_ptr<zp::sharded_buffer_resource>> all;
        all.reserve(pools);
        for (std::size_t i = 0; i < pools; ++i)
            all.push_back(std::make_unique<zp::sharded_buffer_resource>(config, &up));

        arrivals cached(threads);
        gate half_destroyed;
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&, t] {
                std::vector<std::size_t> order(pools);
                for (std::size_t i = 0; i < pools; ++i) order[i] = i;
                std::shuffle(order.begin(), order.end(),
                             std::mt19937(static_cast<std::uint32_t>(t) + 1u));
                std::vector<void*> mine(pools);
                std::size_t wrong = 0;
                for (std::size_t i : order) {
                    mine[i] = all[i]->allocate(small);
                    stamp(mine[i], small);
                    all[i]->deallocate(mine[i], small);
                }
                for (std::size_t i : order) { // each (thread, pool) cache gives its own block back
                    void* p = all[i]->allocate(small);
                    if (p != mine[i] || !stamped(p, small)) ++wrong;
                    all[i]->deallocate(p, small);
                }
                log.check(wrong == 0, "a pool returned a block not cached by this thread for it");
                cached.arrive();
                half_destroyed.wait();
                // The odd pools are gone; the even ones still hold this
                // thread's block in its cache.
                for (std::size_t i = 0; i < pools; i += 2) {
                    void* p = all[i]->allocate(small);
                    if (p != mine[i]) ++wrong;
                    all[i]->deallocate(p, small);
                }
                log.check(wrong == 0, "a surviving pool lost this thread's cached block");
            });
        }
        cached.wait();
        std::size_t wrong_count = 0;
        for (std::size_t i = 0; i < pools; i += 97)
            if (all[i]->stats().idle_blocks != static_cast<std::size_t>(threads)) ++wrong_count;
        BOOST_TEST(wrong_count == 0u);
        BOOST_TEST(up.outstanding_blocks() == pools * threads);

        for (std::size_t i = 1; i < pools; i += 2) all[i].reset();
        BOOST_TEST(up.outstanding_blocks() == (pools / 2) * threads);
        half_destroyed.open();
        for (std::thread& w : workers) w.join();
        log.report();

        // The exited threads handed their blocks to the shards.
        std::size_t wrong_after_exit = 0;
        for (std::size_t i = 0; i < pools; i += 2) {
            const zp::pool_stats st = all[i]->stats();
            if (st.idle_blocks != static_cast<std::size_t>(threads) ||
                st.upstream_deallocations != 0u)
                ++wrong_after_exit;
        }
        BOOST_TEST(wrong_after_exit == 0u);
        BOOST_TEST(up.outstanding_blocks() == (pools / 2) * threads);
    }
    expect_balanced(up);
}

BOOST_AUTO_TEST_CASE(thread_outlives_many_short_lived_pools, *boost::unit_test::timeout(60)) {
    const int rounds = scaled(3000, 1000);
    recording_resource long_up;
    recording_resource short_up;
    failure_log log;
    {
        zp::sharded_buffer_resource long_lived(zp::pool_config{}, &long_up);
        std::thread worker([&] {
            void* mine = long_lived.allocate(block);
            long_lived.deallocate(mine, block);
            for (int round = 0; round < rounds; ++round) {
                {
                    zp::sharded_buffer_resource short_lived(zp::pool_config{}, &short_up);
                    void* p = short_lived.allocate(block);
                    short_lived.deallocate(p, block);
                    void* q = short_lived.allocate(block);
                    log.check(p == q, "short-lived pool missed its cache");
                    short_lived.deallocate(q, block);
                } // destroyed with a block in this thread's cache
                void* again = long_lived.allocate(block);
                if (again != mine) {
                    log.add("the long-lived pool lost this thread's cached block");
                    long_lived.deallocate(again, block);
                    break;
                }
                long_lived.deallocate(again, block);
            }
            log.check(balanced(short_up), "short-lived pools did not balance");
        });
        worker.join();
        log.report();
        const zp::pool_stats st = long_lived.stats();
        BOOST_TEST(st.upstream_allocations == 1u);
        BOOST_TEST(st.thread_cache_hits == static_cast<std::uint64_t>(rounds));
        BOOST_TEST(st.idle_blocks == 1u);
    }
    expect_balanced(long_up);
    expect_balanced(short_up);
}

BOOST_AUTO_TEST_SUITE_END()
