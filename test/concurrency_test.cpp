// Concurrent use of sharded_buffer_resource: producer/consumer pairs, many
// threads on one pool with mixed sizes (contents checked, the idle-byte cap
// sampled while it runs), several pools shared by several threads, and pools
// created and destroyed while others are in use. Meant to run under TSan too.
#include <zeropool/sharded_buffer_resource.hpp>

#define BOOST_TEST_MODULE concurrency
#include <boost/test/unit_test.hpp>

#include "test_resources.hpp"
#include "test_support.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <iterator>
#include <map>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>


namespace {

namespace zp = zeropool;
using zeropool_test::expect_balanced;
using zeropool_test::recording_resource;

using zeropool_test::failure_log;
using zeropool_test::kib;
using zeropool_test::mib;
using zeropool_test::sanitized;
using zeropool_test::scaled;
#ifdef ZEROPOOL_TEST_TSAN
// The owner registry below serialises every operation on one mutex; under TSan
// that would add happens-before edges hiding the pool's own races, so there
// TSan itself (plus the content checks) watches for blocks with two owners.
constexpr bool track_owners = false;
#else
constexpr bool track_owners = true;
#endif

// ---- block contents ---------------------------------------------------------------

/// Distance between the words written into a block (plus its last word).
constexpr std::size_t stride = 512;

std::uint64_t word_at(const void* block, std::size_t offset) noexcept {
    const auto a = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(block));
    return (a + offset) * 0x9E3779B97F4A7C15ull ^ 0xD6E8FEB86659FD93ull;
}

/// Writes a pattern derived from the block's address every `stride` bytes and
/// into the last word, so a block given to two owners (or to the wrong size)
/// is noticed when it is checked before being freed.
void fill(void* p, std::size_t bytes) noexcept {
    auto* b = static_cast<unsigned char*>(p);
    for (std::size_t off = 0; off + 8 <= bytes; off += stride) {
        const std::uint64_t w = word_at(p, off);
        std::memcpy(b + off, &w, 8);
    }
    const std::uint64_t last = ~word_at(p, bytes - 8);
    std::memcpy(b + bytes - 8, &last, 8);
}

bool intact(const void* p, std::size_t bytes) noexcept {
    const auto* b = static_cast<const unsigned char*>(p);
    std::uint64_t w = 0;
    for (std::size_t off = 0; off + 8 <= bytes - 8; off += stride) {
        std::memcpy(&w, b + off, 8);
        if (w != word_at(p, off)) return false;
    }
    std::memcpy(&w, b + bytes - 8, 8);
    return w == ~word_at(p, bytes - 8);
}

bool aligned(const void* p, std::size_t alignment) noexcept {
    return reinterpret_cast<std::uintptr_t>(p) % alignment == 0;
}

/// Every block currently owned by a test thread, as [address, address+size):
/// a new block overlapping a live one is a block with two owners.
class owner_registry {
public:
    bool acquire(const void* p, std::size_t bytes) {
        const auto a = reinterpret_cast<std::uintptr_t>(p);
        std::lock_guard<std::mutex> lock(mutex_);
        auto next = live_.lower_bound(a);
        if (next != live_.end() && next->first < a + bytes) return false;
        if (next != live_.begin() && std::prev(next)->first + std::prev(next)->second > a) return false;
        live_.emplace(a, bytes);
        return true;
    }
    bool release(const void* p) {
        std::lock_guard<std::mutex> lock(mutex_);
        return live_.erase(reinterpret_cast<std::uintptr_t>(p)) == 1;
    }

private:
    std::mutex mutex_;
    std::map<std::uintptr_t, std::size_t> live_;
};

/// A bounded blocking FIFO.
template <class T>
class bounded_queue {
public:
    explicit bounded_queue(std::size_t capacity) : capacity_(capacity) {}
    void push(T v) {
        std::unique_lock<std::mutex> lock(mutex_);
        not_full_.wait(lock, [this] { return items_.size() < capacity_; });
        items_.push_back(std::move(v));
        lock.unlock();
        not_empty_.notify_one();
    }
    T pop() {
        std::unique_lock<std::mutex> lock(mutex_);
        not_empty_.wait(lock, [this] { return !items_.empty(); });
        T v = std::move(items_.front());
        items_.pop_front();
        lock.unlock();
        not_full_.notify_one();
        return v;
    }

private:
    std::mutex mutex_;
    std::condition_variable not_full_;
    std::condition_variable not_empty_;
    std::deque<T> items_;
    std::size_t capacity_;
};

} // namespace

BOOST_AUTO_TEST_SUITE(concurrency)

// ---- producer / consumer --------------------------------------------------------------

BOOST_AUTO_TEST_CASE(producer_consumer_upstream_stays_bounded, *boost::unit_test::timeout(60)) {
    constexpr int operations = 20000;
    constexpr std::size_t depth = 16;
    constexpr std::size_t tls_cache = 4;
    constexpr std::size_t size = 64 * kib;
    recording_resource up;
    failure_log log;
    {
        zp::sharded_buffer_resource pool(zp::pool_config{}.with_tls_cache_size(tls_cache), &up);
        bounded_queue<void*> queue(depth);
        std::thread producer([&] {
            for (int i = 0; i < operations; ++i) {
                void* p = pool.allocate(size);
                fill(p, size);
                queue.push(p);
            }
            queue.push(nullptr);
        });
        std::thread consumer([&] {
            while (void* p = queue.pop()) {
                log.check(intact(p, size), "block changed between producer and consumer");
                pool.deallocate(p, size);
            }
        });
        producer.join();
        consumer.join();
        log.report();

        // Live blocks never exceed depth + 2 (one in each thread's hands);
        // idle ones sit in the consumer's cache or in the shards, where the
        // producer finds them. Allow twice that for scan races.
        const zp::pool_stats st = pool.stats();
        BOOST_TEST_MESSAGE("producer/consumer: " << st.upstream_allocations << " upstream allocations, "
                           << st.shard_hits << " shard hits, " << st.upstream_deallocations
                           << " upstream deallocations");
        BOOST_TEST(st.upstream_allocations <= 2 * (depth + 2 + tls_cache));
        BOOST_TEST(st.upstream_deallocations <= st.upstream_allocations);
        // Every allocation is the producer's: from a shard, from its cache
        // (refilled from a shard in batches), or from upstream.
        BOOST_TEST(st.shard_hits + st.thread_cache_hits + st.upstream_allocations ==
                   static_cast<std::uint64_t>(operations));
        BOOST_TEST(st.thread_cache_hits > 0u); // the batches served some
        BOOST_TEST(up.outstanding_blocks() == st.idle_blocks);
    }
    expect_balanced(up);
}

// The same pattern in lock-step, so the outcome does not depend on scheduling:
// one thread allocates a burst a little larger than one shard holds, the
// other frees it all, and again. The pool has room for every idle block
// (num_shards * max_buffers_per_shard slots, max_cached_bytes far away), so
// after the first burst nothing more needs to come from upstream.
BOOST_AUTO_TEST_CASE(producer_consumer_bursts_do_not_churn_upstream, *boost::unit_test::timeout(60)) {
    constexpr std::size_t per_shard = 16;
    constexpr std::size_t tls_cache = 4;
    constexpr std::size_t burst = per_shard + 8;
    constexpr int cycles = 50;
    constexpr std::size_t size = 64 * kib;
    recording_resource up;
    failure_log log;
    {
        zp::sharded_buffer_resource pool(zp::pool_config{}
                                             .with_tls_cache_size(tls_cache)
                                             .with_num_shards(4)
                                             .with_max_buffers_per_shard(per_shard),
                                         &up);
        BOOST_TEST(burst * size < pool.config().max_cached_bytes);
        std::mutex mutex;
        std::condition_variable turn_changed;
        bool consumer_turn = false;
        std::vector<void*> batch;
        std::thread producer([&] {
            for (int c = 0; c < cycles; ++c) {
                std::unique_lock<std::mutex> lock(mutex);
                turn_changed.wait(lock, [&] { return !consumer_turn; });
                for (std::size_t i = 0; i < burst; ++i) {
                    void* p = pool.allocate(size);
                    fill(p, size);
                    batch.push_back(p);
                }
                consumer_turn = true;
                turn_changed.notify_all();
            }
        });
        std::thread consumer([&] {
            for (int c = 0; c < cycles; ++c) {
                std::unique_lock<std::mutex> lock(mutex);
                turn_changed.wait(lock, [&] { return consumer_turn; });
                for (void* p : batch) {
                    log.check(intact(p, size), "block changed between producer and consumer");
                    pool.deallocate(p, size);
                }
                batch.clear();
                consumer_turn = false;
                turn_changed.notify_all();
            }
        });
        producer.join();
        consumer.join();
        log.report();
        const zp::pool_stats st = pool.stats();
        BOOST_TEST_MESSAGE("bursts: " << st.upstream_allocations << " upstream allocations, "
                           << st.upstream_deallocations << " upstream deallocations");
        BOOST_TEST(st.upstream_allocations <= burst + tls_cache);
        BOOST_TEST(st.upstream_deallocations == 0u);
    }
    expect_balanced(up);
}

BOOST_AUTO_TEST_CASE(producer_consumer_with_get_and_put, *boost::unit_test::timeout(60)) {
    // get(n) resizes through the default-initialising allocator: at -O0 that
    // is still a loop over n no-op constructions, so sizes stay small.
    constexpr int operations = 10000;
    constexpr std::size_t depth = 8;
    constexpr std::size_t tls_cache = 4;
    const std::size_t sizes[2] = {16 * kib, 3 * kib + 2000}; // two classes
    recording_resource up;
    failure_log log;
    {
        zp::sharded_buffer_resource pool(zp::pool_config{}.with_tls_cache_size(tls_cache), &up);
        bounded_queue<std::optional<zp::buffer>> queue(depth);
        std::thread producer([&] {
            for (int i = 0; i < operations; ++i) {
                zp::buffer b = pool.get(sizes[i % 2]);
                fill(b.data(), b.size());
                queue.push(std::move(b));
            }
            queue.push(std::nullopt);
        });
        std::thread consumer([&] {
            while (std::optional<zp::buffer> b = queue.pop()) {
                log.check(b->get_allocator().resource() == &pool, "buffer left the pool");
                log.check(intact(b->data(), b->size()), "buffer changed between producer and consumer");
                pool.put(std::move(*b));
                log.check(b->capacity() == 0, "put() left the buffer non-empty");
            }
        });
        producer.join();
        consumer.join();
        log.report();
        const zp::pool_stats st = pool.stats();
        BOOST_TEST_MESSAGE("get/put: " << st.upstream_allocations << " upstream allocations");
        BOOST_TEST(st.upstream_allocations <= 2 * 2 * (depth + 2 + tls_cache));
        BOOST_TEST(up.outstanding_blocks() == st.idle_blocks);
    }
    expect_balanced(up);
}

// ---- many threads, one pool ---------------------------------------------------------------

BOOST_AUTO_TEST_CASE(threads_hammer_one_pool_with_mixed_sizes, *boost::unit_test::timeout(120)) {
    constexpr int workers = 4;
    constexpr std::size_t max_live = 8;
    const int operations = scaled(15000, 1500);
    // Sanitizer runtimes pay per byte of every fresh upstream block (TSan
    // resets its shadow memory), so they get smaller big blocks.
    const std::size_t big = sanitized ? 256 * kib : 1 * mib;
    const std::size_t cap = 4 * big;
    // Below min_buffer_size, several classes, odd sizes, and above max_buffer_size.
    const std::array<std::size_t, 11> sizes = {1 * kib,  4 * kib,  5 * kib,   6000, 8 * kib,
                                               24 * kib, 64 * kib, 100 * kib, big / 4 + 3,
                                               big,      2 * big + 1};
    const std::array<std::size_t, 7> alignments = {1, 8, 16, 64, 512, 4096, 8192};
    recording_resource up;
    failure_log log;
    owner_registry owners;
    {
        zp::sharded_buffer_resource pool(zp::pool_config{}
                                             .with_max_cached_bytes(cap)
                                             .with_max_buffer_size(2 * big)
                                             .with_tls_cache_size(4)
                                             .with_max_buffers_per_shard(8),
                                         &up);
        std::atomic<int> running{workers};
        std::atomic<std::uint64_t> samples{0};
        std::atomic<std::size_t> max_seen{0};
        std::atomic<std::uint64_t> over_cap{0};

        // The monitor: the budget in use (shard idle bytes plus every cache's
        // reservation, an upper bound of the idle bytes) never exceeds the cap.
        std::thread monitor([&] {
            while (running.load(std::memory_order_acquire) > 0) {
                const zp::pool_stats st = pool.stats();
                samples.fetch_add(1, std::memory_order_relaxed);
                if (st.reserved_bytes > cap) {
                    if (over_cap.fetch_add(1, std::memory_order_relaxed) == 0) {
                        std::ostringstream m;
                        m << "reserved_bytes " << st.reserved_bytes << " > max_cached_bytes " << cap;
                        log.add(m.str());
                    }
                }
                if (st.reserved_bytes > max_seen.load(std::memory_order_relaxed))
                    max_seen.store(st.reserved_bytes, std::memory_order_relaxed);
                std::this_thread::sleep_for(std::chrono::microseconds(20));
            }
        });
        std::thread trimmer([&] { // trim() and preallocate() are thread-safe too
            int round = 0;
            while (running.load(std::memory_order_acquire) > 0) {
                if (++round % 2 == 0) pool.trim();
                else pool.preallocate(2, 64 * kib);
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
        });

        struct live_block {
            void* p;
            std::size_t bytes;
            std::size_t alignment;
        };
        std::vector<std::thread> threads;
        for (int t = 0; t < workers; ++t) {
            threads.emplace_back([&, t] {
                std::mt19937 rng(1234u + static_cast<std::uint32_t>(t));
                std::vector<live_block> live;
                auto release = [&](std::size_t index) {
                    const live_block b = live[index];
                    live[index] = live.back();
                    live.pop_back();
                    log.check(intact(b.p, b.bytes), "block contents changed while owned");
                    if (track_owners) log.check(owners.release(b.p), "freed block not owned");
                    pool.deallocate(b.p, b.bytes, b.alignment);
                };
                for (int i = 0; i < operations; ++i) {
                    if (live.size() < max_live && (live.empty() || rng() % 2 == 0)) {
                        const std::size_t bytes = sizes[rng() % sizes.size()];
                        const std::size_t alignment = alignments[rng() % alignments.size()];
                        void* p = pool.allocate(bytes, alignment);
                        log.check(aligned(p, alignment), "misaligned block");
                        if (track_owners)
                            log.check(owners.acquire(p, bytes), "block overlaps a block in use");
                        fill(p, bytes);
                        live.push_back(live_block{p, bytes, alignment});
                    } else {
                        release(rng() % live.size());
                    }
                }
                while (!live.empty()) release(live.size() - 1);
                running.fetch_sub(1, std::memory_order_acq_rel);
            });
        }
        for (std::thread& th : threads) th.join();
        monitor.join();
        trimmer.join();
        log.report();

        BOOST_TEST_MESSAGE("hammer: " << samples.load() << " stats samples, max reserved_bytes seen "
                                      << max_seen.load() << " of " << cap);
        BOOST_TEST(samples.load() > 0u);
        BOOST_TEST(over_cap.load() == 0u);

        // Quiescent: stats are exact and agree with the upstream's books.
        const zp::pool_stats st = pool.stats();
        BOOST_TEST(st.idle_bytes <= st.reserved_bytes);
        BOOST_TEST(st.reserved_bytes <= cap);
        BOOST_TEST(st.idle_blocks == up.outstanding_blocks());
        BOOST_TEST(st.idle_bytes == up.outstanding_bytes());
        BOOST_TEST(st.upstream_allocations == up.allocate_calls());
        BOOST_TEST(st.upstream_deallocations == up.deallocate_calls());
        BOOST_TEST(st.thread_cache_hits + st.shard_hits > 0u); // the pool did pool
        BOOST_TEST(up.violations().empty());
    }
    expect_balanced(up);
}

// The cap alone, sampled as often as possible: no content checks, sizes
// around the cap's scale, every worker moving blocks between its cache and
// the shards. reserved_bytes (an upper bound of the idle bytes, read in one
// atomic load) must stay within max_cached_bytes in every stats() snapshot.
// idle_bytes is summed tier by tier and may count a block that moves
// between tiers twice while other threads run (pool_stats.hpp): it is only
// checked once the pool is quiescent, and its racy excursions are reported.
BOOST_AUTO_TEST_CASE(idle_byte_budget_never_exceeds_the_cap, *boost::unit_test::timeout(60)) {
    constexpr int workers = 4;
    constexpr std::size_t cap = 4 * mib;
    const auto duration = std::chrono::milliseconds(1500);
    recording_resource up;
    {
        zp::sharded_buffer_resource pool(
            zp::pool_config{}.with_max_cached_bytes(cap).with_max_buffers_per_shard(8), &up);
        std::atomic<bool> stop{false};
        std::vector<std::thread> threads;
        for (int t = 0; t < workers; ++t) {
            threads.emplace_back([&, t] {
                const std::size_t sizes[4] = {4 * kib, 64 * kib, 256 * kib, 1 * mib};
                std::mt19937 rng(static_cast<std::uint32_t>(t));
                std::vector<std::pair<void*, std::size_t>> live;
                while (!stop.load(std::memory_order_relaxed)) {
                    if (live.size() < 8 && (live.empty() || rng() % 2 == 0)) {
                        const std::size_t n = sizes[rng() % 4];
                        live.emplace_back(pool.allocate(n), n);
                    } else {
                        const std::size_t i = rng() % live.size();
                        pool.deallocate(live[i].first, live[i].second);
                        live[i] = live.back();
                        live.pop_back();
                    }
                }
                for (const auto& b : live) pool.deallocate(b.first, b.second);
            });
        }
        std::uint64_t samples = 0;
        std::uint64_t over = 0;
        std::size_t worst = 0;
        std::size_t max_reserved = 0;
        std::uint64_t cached_over = 0; // racy tier-by-tier sums above the cap
        std::size_t cached_worst = 0;
        const auto end = std::chrono::steady_clock::now() + duration;
        while (std::chrono::steady_clock::now() < end) {
            const zp::pool_stats st = pool.stats();
            ++samples;
            max_reserved = std::max(max_reserved, st.reserved_bytes);
            if (st.reserved_bytes > cap) {
                ++over;
                worst = std::max(worst, st.reserved_bytes);
            }
            if (st.idle_bytes > cap) {
                ++cached_over;
                cached_worst = std::max(cached_worst, st.idle_bytes);
            }
        }
        stop.store(true);
        for (std::thread& th : threads) th.join();
        BOOST_TEST_MESSAGE("cap: " << samples << " samples, max reserved_bytes " << max_reserved << " of "
                           << cap << "; idle_bytes (racy sum) above the cap in " << cached_over
                           << " samples, worst " << cached_worst);
        BOOST_TEST(over == 0u, over << " of " << samples << " stats() samples reported reserved_bytes > "
                                    << cap << " (worst " << worst << ")");
        BOOST_TEST(max_reserved > cap / 2); // the workload did press against the cap
        const zp::pool_stats quiet = pool.stats();
        BOOST_TEST(quiet.idle_bytes <= quiet.reserved_bytes);
        BOOST_TEST(quiet.reserved_bytes <= cap);
    }
    expect_balanced(up);
}

// ---- several pools, several threads --------------------------------------------------------

BOOST_AUTO_TEST_CASE(three_pools_eight_threads_keep_blocks_apart, *boost::unit_test::timeout(120)) {
    constexpr int threads = 8;
    constexpr std::size_t pools = 3;
    const int operations = scaled(6000, 1500);
    const std::array<std::size_t, 4> sizes = {4 * kib, 16 * kib, 64 * kib, 200 * kib};
    std::array<recording_resource, pools> ups;
    failure_log log;
    {
        std::vector<std::unique_ptr<zp::sharded_buffer_resource>> pool;
        for (std::size_t k = 0; k < pools; ++k)
            pool.push_back(std::make_unique<zp::sharded_buffer_resource>(
                zp::pool_config{}.with_tls_cache_size(4).with_max_buffers_per_shard(4), &ups[k]));

        struct owned {
            void* p;
            std::size_t bytes;
            std::size_t pool;
        };
        // Blocks parked here are freed by another thread than their allocator.
        std::mutex exchange_mutex;
        std::vector<owned> exchange;

        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&, t] {
                std::mt19937 rng(99u + static_cast<std::uint32_t>(t));
                std::vector<owned> mine;
                auto give_back = [&](const owned& b) {
                    log.check(intact(b.p, b.bytes), "block contents changed while owned");
                    log.check(ups[b.pool].is_live(b.p), "block not live in its pool's upstream");
                    pool[b.pool]->deallocate(b.p, b.bytes);
                };
                for (int i = 0; i < operations; ++i) {
                    const unsigned action = rng() % 8;
                    if (action < 4 || mine.empty()) {
                        const std::size_t k = rng() % pools;
                        const std::size_t bytes = sizes[rng() % sizes.size()];
                        void* p = pool[k]->allocate(bytes);
                        bool foreign = false;
                        for (std::size_t j = 0; j < pools; ++j)
                            if (j != k && ups[j].is_live(p)) foreign = true;
                        if (!ups[k].is_live(p) || foreign) {
                            std::ostringstream m;
                            m << "pool " << k << " returned " << p << ", not a live block of its upstream"
                              << (foreign ? " but of another pool's" : "");
                            log.add(m.str());
                        }
                        fill(p, bytes);
                        mine.push_back(owned{p, bytes, k});
                    } else if (action < 6) {
                        const std::size_t idx = rng() % mine.size();
                        give_back(mine[idx]);
                        mine[idx] = mine.back();
                        mine.pop_back();
                    } else if (action == 6) { // hand a block to another thread
                        const std::size_t idx = rng() % mine.size();
                        {
                            std::lock_guard<std::mutex> lock(exchange_mutex);
                            exchange.push_back(mine[idx]);
                        }
                        mine[idx] = mine.back();
                        mine.pop_back();
                    } else { // free a block another thread allocated
                        std::optional<owned> b;
                        {
                            std::lock_guard<std::mutex> lock(exchange_mutex);
                            if (!exchange.empty()) {
                                b = exchange.back();
                                exchange.pop_back();
                            }
                        }
                        if (b) give_back(*b);
                    }
                    if (mine.size() > 16) {
                        give_back(mine.front());
                        mine.erase(mine.begin());
                    }
                }
                for (const owned& b : mine) give_back(b);
            });
        }
        for (std::thread& w : workers) w.join();
        for (const owned& b : exchange) pool[b.pool]->deallocate(b.p, b.bytes);
        log.report();

        for (std::size_t k = 0; k < pools; ++k) {
            BOOST_TEST_CONTEXT("pool " << k) {
                const zp::pool_stats st = pool[k]->stats();
                BOOST_TEST(st.idle_blocks == ups[k].outstanding_blocks());
                BOOST_TEST(st.upstream_allocations == ups[k].allocate_calls());
                BOOST_TEST(st.thread_cache_hits + st.shard_hits > 0u);
            }
        }
    }
    for (std::size_t k = 0; k < pools; ++k) {
        BOOST_TEST_CONTEXT("pool " << k) { expect_balanced(ups[k]); }
    }
}

// ---- pools created and destroyed while others are busy ---------------------------------------

BOOST_AUTO_TEST_CASE(pools_come_and_go_while_a_shared_pool_is_busy, *boost::unit_test::timeout(120)) {
    constexpr int threads = 4;
    const int rounds = scaled(1500, 300);
    recording_resource shared_up;
    recording_resource private_up; // shared by every short-lived pool
    failure_log log;
    {
        zp::sharded_buffer_resource shared(zp::pool_config{}, &shared_up);
        // Idle blocks can only be in the workers' caches or in the shards.
        const std::size_t most_idle = threads * shared.config().tls_cache_size +
                                      shared.config().num_shards * shared.config().max_buffers_per_shard;
        std::atomic<bool> stop{false};
        std::thread observer([&] { // stats() walks the registry while it changes
            while (!stop.load(std::memory_order_acquire)) {
                const zp::pool_stats st = shared.stats();
                log.check(st.idle_blocks <= most_idle, "more idle blocks than the tiers can hold");
                std::this_thread::yield();
            }
        });
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&, t] {
                std::mt19937 rng(7u + static_cast<std::uint32_t>(t));
                for (int round = 0; round < rounds; ++round) {
                    const std::size_t bytes = (4 + rng() % 60) * kib;
                    void* s = shared.allocate(bytes);
                    fill(s, bytes);
                    {
                        zp::sharded_buffer_resource mine(zp::pool_config{}.with_tls_cache_size(2),
                                                         &private_up);
                        void* a = mine.allocate(bytes);
                        void* b = mine.allocate(2 * bytes);
                        fill(a, bytes);
                        fill(b, 2 * bytes);
                        log.check(intact(a, bytes) && intact(b, 2 * bytes), "private block changed");
                        mine.deallocate(b, 2 * bytes);
                        mine.deallocate(a, bytes);
                        void* again = mine.allocate(bytes);
                        log.check(again == a, "private pool missed its cache");
                        mine.deallocate(again, bytes);
                    } // destroyed with blocks in this thread's cache
                    log.check(intact(s, bytes), "shared block changed");
                    shared.deallocate(s, bytes);
                }
            });
        }
        for (std::thread& w : workers) w.join();
        stop.store(true, std::memory_order_release);
        observer.join();
        log.report();
        expect_balanced(private_up);
        const zp::pool_stats st = shared.stats();
        BOOST_TEST(st.idle_blocks == shared_up.outstanding_blocks());
    }
    expect_balanced(shared_up);
}

BOOST_AUTO_TEST_SUITE_END()
