// Handoff harness in the style of tcmalloc's allocator test harness: each
// thread keeps a list of blocks it owns and an inbound queue; it allocates,
// frees, rewrites blocks (new contents, or a move to a block of another size),
// and hands blocks to other threads' queues, so a large share of the frees
// happen on a thread other than the one that allocated. Every block carries a
// pattern derived from its address and a generation, checked whenever it
// changes hands and when it is freed. At the end the recording upstream
// balances exactly.
//
// Parameters (environment variables; the defaults are the short CI run):
//   ZEROPOOL_HANDOFF_THREADS  threads (default 4)
//   ZEROPOOL_HANDOFF_OPS      operations per thread (default 8000, 1500 under
//                             sanitizers); a long run: ZEROPOOL_HANDOFF_OPS=1000000
#include <zeropool/sharded_buffer_resource.hpp>

#define BOOST_TEST_MODULE handoff
#include <boost/test/unit_test.hpp>

#include "test_resources.hpp"
#include "test_support.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

namespace {

namespace zp = zeropool;
using zeropool_test::check_pattern;
using zeropool_test::env_param;
using zeropool_test::expect_balanced;
using zeropool_test::failure_log;
using zeropool_test::fill_pattern;
using zeropool_test::kib;
using zeropool_test::mib;
using zeropool_test::recording_resource;
using zeropool_test::scaled;

/// One block and what is known of it.
struct record {
    std::size_t bytes = 0;
    std::size_t alignment = 0;
    void* data = nullptr;
    std::optional<zp::buffer> buf; // set for blocks obtained with get()
    std::uint64_t gen = 0;         // contents generation
    int origin = 0;                // thread that allocated it
};
using record_ptr = std::unique_ptr<record>;

/// A thread's inbound queue.
struct inbox {
    std::mutex mutex;
    std::vector<record_ptr> items;
};


struct harness {
    harness(zp::sharded_buffer_resource& p, int n) : pool(p), inboxes(static_cast<std::size_t>(n)), done(n) {}

    zp::sharded_buffer_resource& pool;
    std::vector<inbox> inboxes;
    zeropool_test::arrivals done;
    failure_log log;
    std::atomic<std::uint64_t> allocations{0};
    std::atomic<std::uint64_t> frees{0};
    std::atomic<std::uint64_t> remote_frees{0}; // freed by another thread than the allocating one
    std::atomic<std::uint64_t> handoffs{0};
    std::atomic<std::uint64_t> rewrites{0};

    std::size_t pick_size(std::mt19937_64& rng) const {
        static constexpr std::size_t sizes[] = {kib, 3 * kib, 4 * kib, 12 * kib, 64 * kib, 100 * kib,
                                                256 * kib, 512 * kib + 8, mib};
        const std::size_t base = sizes[rng() % (sizeof sizes / sizeof sizes[0])];
        return (base + (rng() % 64) * 8) & ~std::size_t{7};
    }

    record_ptr allocate(std::mt19937_64& rng, int self) {
        auto r = std::make_unique<record>();
        r->bytes = pick_size(rng);
        r->origin = self;
        // get() only for up to 256 KiB: an unoptimised build constructs and
        // destroys a buffer's bytes one call each.
        if (r->bytes <= 256 * kib && rng() % 3 == 0) {
            r->buf.emplace(pool.get(r->bytes));
            r->data = r->buf->data();
            r->alignment = alignof(std::max_align_t);
        } else {
            static constexpr std::size_t aligns[] = {8, 16, 64, 4096};
            r->alignment = aligns[rng() % 4];
            r->data = pool.allocate(r->bytes, r->alignment);
        }
        if (reinterpret_cast<std::uintptr_t>(r->data) % r->alignment != 0) log.add("misaligned block");
        fill_pattern(r->data, r->bytes, r->gen);
        allocations.fetch_add(1, std::memory_order_relaxed);
        return r;
    }

    void check(const record& r, const char* when) {
        if (!check_pattern(r.data, r.bytes, r.gen)) log.add(when);
    }

    void free(record_ptr r, int self) {
        check(*r, "contents changed before free");
        if (r->buf) {
            pool.put(std::move(*r->buf));
        } else {
            pool.deallocate(r->data, r->bytes, r->alignment);
        }
        frees.fetch_add(1, std::memory_order_relaxed);
        if (r->origin != self) remote_frees.fetch_add(1, std::memory_order_relaxed);
    }

    /// New contents in place, or (half the time) a move to a block of another
    /// size with the common prefix compared, as realloc would.
    void rewrite(record_ptr& r, std::mt19937_64& rng, int self) {
        check(*r, "contents changed before rewrite");
        rewrites.fetch_add(1, std::memory_order_relaxed);
        if (rng() % 2 == 0) {
            ++r->gen;
            fill_pattern(r->data, r->bytes, r->gen);
            return;
        }
        record_ptr moved = allocate(rng, self);
        const std::size_t common = std::min(moved->bytes, r->bytes);
        std::memcpy(moved->data, r->data, common);
        if (std::memcmp(moved->data, r->data, common) != 0) log.add("copy differs");
        fill_pattern(moved->data, moved->bytes, moved->gen);
        free(std::move(r), self);
        r = std::move(moved);
    }

    void run(int self, int threads, int ops) {
        std::mt19937_64 rng(0x5EED0000u + static_cast<std::uint64_t>(self));
        std::vector<record_ptr> owned;
        auto drain = [&](bool keep_some) {
            std::vector<record_ptr> in;
            {
                std::lock_guard<std::mutex> lock(inboxes[static_cast<std::size_t>(self)].mutex);
                in.swap(inboxes[static_cast<std::size_t>(self)].items);
            }
            for (record_ptr& r : in) {
                check(*r, "contents changed in transit");
                if (keep_some && rng() % 2 == 0)
                    owned.push_back(std::move(r));
                else
                    free(std::move(r), self);
            }
        };
        for (int i = 0; i < ops; ++i) {
            const auto op = rng() % 100;
            if (op < 40 || owned.empty()) {
                owned.push_back(allocate(rng, self));
            } else if (op < 60) {
                const std::size_t k = static_cast<std::size_t>(rng() % owned.size());
                free(std::move(owned[k]), self);
                owned[k] = std::move(owned.back());
                owned.pop_back();
            } else if (op < 85 && threads > 1) {
                const std::size_t k = static_cast<std::size_t>(rng() % owned.size());
                record_ptr r = std::move(owned[k]);
                owned[k] = std::move(owned.back());
                owned.pop_back();
                int to = static_cast<int>(rng() % static_cast<std::uint64_t>(threads - 1));
                if (to >= self) ++to;
                std::lock_guard<std::mutex> lock(inboxes[static_cast<std::size_t>(to)].mutex);
                inboxes[static_cast<std::size_t>(to)].items.push_back(std::move(r));
                handoffs.fetch_add(1, std::memory_order_relaxed);
            } else if (op < 90) {
                rewrite(owned[static_cast<std::size_t>(rng() % owned.size())], rng, self);
            } else {
                drain(true);
            }
            while (owned.size() > 48) {
                free(std::move(owned.back()), self);
                owned.pop_back();
            }
        }
        done.arrive_and_wait(); // nobody hands on any more
        drain(false);
        for (record_ptr& r : owned) free(std::move(r), self);
    }
};

void run_handoff(const zp::pool_config& config, const char* name) {
    const int threads = static_cast<int>(env_param("ZEROPOOL_HANDOFF_THREADS", 4));
    const int ops = static_cast<int>(env_param("ZEROPOOL_HANDOFF_OPS", scaled(8000, 1500)));
    recording_resource up;
    const auto start = std::chrono::steady_clock::now();
    std::uint64_t allocations = 0;
    std::uint64_t remote = 0;
    std::uint64_t handoffs = 0;
    std::uint64_t rewrites = 0;
    {
        zp::sharded_buffer_resource pool(config, &up);
        harness h(pool, threads);
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) workers.emplace_back([&h, t, threads, ops] { h.run(t, threads, ops); });
        for (std::thread& w : workers) w.join();
        h.log.report();
        allocations = h.allocations.load();
        remote = h.remote_frees.load();
        handoffs = h.handoffs.load();
        rewrites = h.rewrites.load();
        BOOST_TEST(h.frees.load() == allocations); // every block freed exactly once
        if (threads > 1) BOOST_TEST(remote * 5 > allocations); // over a fifth freed on another thread
        const zp::pool_stats st = pool.stats();
        BOOST_TEST(st.upstream_allocations == up.allocate_calls());
        BOOST_TEST(st.upstream_deallocations == up.deallocate_calls());
        BOOST_TEST(st.idle_bytes == up.outstanding_bytes()); // nothing outside the pool
        BOOST_TEST(st.idle_bytes <= st.reserved_bytes);
        BOOST_TEST(st.reserved_bytes <= pool.config().max_cached_bytes);
    }
    expect_balanced(up);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "handoff: " << name << ": threads " << threads << " x operations " << ops << ", blocks "
              << allocations << ", handed off " << handoffs << ", freed remotely " << remote << ", rewrites "
              << rewrites << ", upstream calls " << up.allocate_calls() << ", " << seconds << " s" << std::endl;
}

} // namespace

BOOST_AUTO_TEST_SUITE(handoff)

BOOST_AUTO_TEST_CASE(blocks_change_threads_default_pool, *boost::unit_test::timeout(1800)) {
    run_handoff(zp::pool_config{}, "default");
}

BOOST_AUTO_TEST_CASE(blocks_change_threads_tight_pool, *boost::unit_test::timeout(1800)) {
    run_handoff(zp::pool_config{}.with_tls_cache_size(1).with_max_buffers_per_shard(2).with_num_shards(2)
                    .with_max_cached_bytes(4 * mib),
                "tight");
}

BOOST_AUTO_TEST_SUITE_END()
