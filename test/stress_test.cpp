// Stress test in the style of mimalloc's test-stress: rounds in which threads
// are created and joined while some blocks survive them (handed to the next
// round's threads, or parked in a transfer array), sizes across every pooled
// size class plus pass-through ones (below min_buffer_size, above
// max_buffer_size, alignment above 4096), about a quarter of the blocks handed
// to other threads through an atomic exchange array, and every block filled
// with a pattern derived from its address and checked when it is freed. At the
// end the recording upstream balances exactly and the pool's counters agree
// with it.
//
// Parameters (environment variables; the defaults are the short CI run):
//   ZEROPOOL_STRESS_THREADS  threads per round        (default 4)
//   ZEROPOOL_STRESS_SCALE    x 100 operations per thread and round
//                            (default 10, 2 under sanitizers)
//   ZEROPOOL_STRESS_ROUNDS   rounds                   (default 10, 5 under sanitizers)
//   ZEROPOOL_STRESS_LONG=1   long run for people: 16 threads, scale 100,
//                            50 rounds (each still overridable)
// The figures of a run are printed on one line per test case ("stress: ...").
#include <zeropool/sharded_buffer_resource.hpp>

#define BOOST_TEST_MODULE stress
#include <boost/test/unit_test.hpp>

#include "test_resources.hpp"
#include "test_support.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <memory>
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

struct parameters {
    int threads;
    int scale;
    int rounds;
};

parameters read_parameters() {
    const bool long_run = env_param("ZEROPOOL_STRESS_LONG", 0) != 0;
    parameters p{};
    p.threads = static_cast<int>(env_param("ZEROPOOL_STRESS_THREADS", long_run ? 16 : 4));
    p.scale = static_cast<int>(env_param("ZEROPOOL_STRESS_SCALE", long_run ? 100 : scaled(10, 2)));
    p.rounds = static_cast<int>(env_param("ZEROPOOL_STRESS_ROUNDS", long_run ? 50 : scaled(10, 5)));
    return p;
}

/// One live block: what was asked, how (allocate or get), and where it is.
struct item {
    std::size_t bytes = 0;
    std::size_t alignment = 0;
    void* data = nullptr;           // allocate(): the block; get(): buf->data()
    std::optional<zp::buffer> buf;  // set for blocks obtained with get()
};

constexpr std::size_t max_pooled = 4 * mib;

/// The shared state of one stress run.
struct run_state {
    explicit run_state(zp::sharded_buffer_resource& p, std::size_t transfer_slots, int threads)
        : pool(p), transfer(transfer_slots), survivors(static_cast<std::size_t>(threads)) {
        for (auto& slot : transfer) slot.store(nullptr);
    }
    zp::sharded_buffer_resource& pool;
    std::vector<std::atomic<item*>> transfer; // survives threads and rounds
    std::vector<std::vector<item*>> survivors; // slot t: kept by thread t for the next round's thread t
    failure_log log;
    std::atomic<std::uint64_t> operations{0};
    std::atomic<std::uint64_t> allocations{0};
    std::atomic<std::uint64_t> exchanges{0};
    std::atomic<std::uint64_t> bytes{0};
    std::array<std::atomic<std::uint64_t>, 128> class_hits{}; // by class index
};

/// Picks a request: mostly small pooled sizes, some large, every pooled class
/// reachable, and a few pass-through requests of each kind.
std::pair<std::size_t, std::size_t> pick_request(std::mt19937_64& rng) {
    const auto r = rng() % 1000;
    std::size_t lo = 0;
    std::size_t hi = 0;
    if (r < 30) { // below min_buffer_size: pass-through
        lo = 16;
        hi = kib - 1;
    } else if (r < 850) {
        lo = kib;
        hi = 64 * kib;
    } else if (r < 980) {
        lo = 64 * kib + 1;
        hi = mib;
    } else if (r < 995) {
        lo = mib + 1;
        hi = max_pooled;
    } else { // above max_buffer_size: pass-through
        lo = max_pooled + 1;
        hi = max_pooled + mib;
    }
    // Uniform over classes in [lo, hi] (log-uniform), then uniform in the class.
    const std::uint32_t ci_lo = zp::detail::class_index(lo);
    const std::uint32_t ci_hi = zp::detail::class_index(hi);
    const std::uint32_t ci = ci_lo + static_cast<std::uint32_t>(rng() % (ci_hi - ci_lo + 1));
    std::size_t top = zp::detail::class_size(ci);
    std::size_t bottom = ci == 0 ? 1 : zp::detail::class_size(ci - 1) + 1;
    if (bottom < lo) bottom = lo;
    if (top > hi) top = hi;
    std::size_t bytes = bottom + static_cast<std::size_t>(rng() % (top - bottom + 1));
    bytes = (bytes + 7) & ~std::size_t{7}; // whole words for the pattern
    static constexpr std::size_t alignments[] = {1, 8, 16, 64, 256, 4096, 8192};
    const auto a = rng() % 100;
    const std::size_t alignment = a < 60 ? 8 : alignments[a % 7];
    return {bytes, alignment < 8 ? 8 : alignment};
}

item* make_item(run_state& s, std::mt19937_64& rng) {
    auto [bytes, alignment] = pick_request(rng);
    auto* it = new item;
    it->bytes = bytes;
    it->alignment = alignment;
    // A quarter through get(), up to 256 KiB: an unoptimised build constructs
    // and destroys a buffer's bytes one call each.
    if (alignment <= 16 && bytes <= 256 * kib && rng() % 4 == 0) {
        it->buf.emplace(s.pool.get(bytes));
        it->data = it->buf->data();
        it->alignment = alignof(std::max_align_t);
    } else {
        it->data = s.pool.allocate(bytes, alignment);
    }
    if (reinterpret_cast<std::uintptr_t>(it->data) % it->alignment != 0) s.log.add("misaligned block");
    fill_pattern(it->data, bytes);
    s.allocations.fetch_add(1, std::memory_order_relaxed);
    s.bytes.fetch_add(bytes, std::memory_order_relaxed);
    const std::size_t pooled = bytes > it->alignment ? bytes : it->alignment;
    if (pooled >= kib && pooled <= max_pooled && it->alignment <= 4096)
        s.class_hits[zp::detail::class_index(pooled) % 128].fetch_add(1, std::memory_order_relaxed);
    return it;
}

void free_item(run_state& s, item* it) {
    if (!check_pattern(it->data, it->bytes)) s.log.add("block contents changed while owned");
    if (it->buf) {
        if (it->buf->size() != it->bytes) s.log.add("buffer size changed");
        s.pool.put(std::move(*it->buf));
        if (!it->buf->empty()) s.log.add("put() left the buffer non-empty");
    } else {
        s.pool.deallocate(it->data, it->bytes, it->alignment);
    }
    delete it;
}

/// The work of thread `t` in one round.
void stress_thread(run_state& s, int t, int round, int ops) {
    std::mt19937_64 rng(static_cast<std::uint64_t>(round) * 1000003u + static_cast<std::uint64_t>(t) + 1);
    std::vector<item*> owned;
    // Take over what this slot's thread of the previous round left behind.
    owned.swap(s.survivors[static_cast<std::size_t>(t)]);
    const std::size_t max_owned = 64;
    for (int i = 0; i < ops; ++i) {
        const auto r = rng() % 100;
        if (r < 15) { // hand a block on through the exchange array
            item* mine = make_item(s, rng);
            const std::size_t slot = static_cast<std::size_t>(rng() % s.transfer.size());
            item* theirs = s.transfer[slot].exchange(mine, std::memory_order_acq_rel);
            s.exchanges.fetch_add(1, std::memory_order_relaxed);
            if (theirs != nullptr) owned.push_back(theirs); // now ours to check and free
        } else if (r < 60 || owned.empty()) { // 15 of 60 new blocks are exchanged
            owned.push_back(make_item(s, rng));
        } else {
            const std::size_t k = static_cast<std::size_t>(rng() % owned.size());
            free_item(s, owned[k]);
            owned[k] = owned.back();
            owned.pop_back();
        }
        if (r == 99 && rng() % 8 == 0) s.pool.trim();
        if (r == 98 && rng() % 8 == 0) (void)s.pool.stats();
        while (owned.size() > max_owned) {
            free_item(s, owned.back());
            owned.pop_back();
        }
    }
    s.operations.fetch_add(static_cast<std::uint64_t>(ops), std::memory_order_relaxed);
    // A few blocks survive this thread for the next round's thread t.
    const std::size_t keep = owned.size() < 8 ? owned.size() : 8;
    for (std::size_t k = keep; k < owned.size(); ++k) free_item(s, owned[k]);
    owned.resize(keep);
    s.survivors[static_cast<std::size_t>(t)] = std::move(owned);
}

void run_stress(const zp::pool_config& config, const char* name) {
    const parameters p = read_parameters();
    const int ops = 100 * p.scale;
    recording_resource up;
    const auto start = std::chrono::steady_clock::now();
    std::uint64_t operations = 0;
    std::uint64_t allocations = 0;
    std::uint64_t exchanges = 0;
    std::uint64_t bytes = 0;
    {
        zp::sharded_buffer_resource pool(config, &up);
        run_state s(pool, 256, p.threads);
        for (int round = 0; round < p.rounds; ++round) {
            std::vector<std::thread> threads;
            for (int t = 0; t < p.threads; ++t)
                threads.emplace_back([&s, t, round, ops] { stress_thread(s, t, round, ops); });
            for (std::thread& th : threads) th.join();

            // Quiescent: the counters are exact and agree with upstream.
            const zp::pool_stats st = pool.stats();
            BOOST_TEST_CONTEXT(name << ", round " << round) {
                BOOST_TEST(st.upstream_allocations == up.allocate_calls());
                BOOST_TEST(st.upstream_deallocations == up.deallocate_calls());
                BOOST_TEST(st.idle_bytes <= st.reserved_bytes);
                BOOST_TEST(st.reserved_bytes <= pool.config().max_cached_bytes);
                BOOST_TEST(up.violations().empty());
            }
            if (s.log.count() != 0) break;
        }
        // The blocks that survived the last round's threads.
        std::size_t left = 0;
        for (auto& slot : s.transfer) {
            if (item* it = slot.exchange(nullptr)) {
                free_item(s, it);
                ++left;
            }
        }
        for (auto& kept : s.survivors) {
            left += kept.size();
            for (item* it : kept) free_item(s, it);
            kept.clear();
        }
        s.log.report();
        BOOST_TEST(left > 0u); // blocks did survive their threads

        // Every pooled class was exercised (the pass-through ones too).
        const zp::pool_stats st = pool.stats();
        BOOST_TEST(st.upstream_allocations - st.upstream_deallocations == up.outstanding_blocks());
        BOOST_TEST(st.idle_bytes == up.outstanding_bytes());
        if (p.scale * p.rounds * p.threads >= 80) {
            for (std::uint32_t ci = zp::detail::class_index(kib); ci <= zp::detail::class_index(max_pooled); ++ci)
                BOOST_TEST(s.class_hits[ci % 128].load() > 0u, "class " << ci << " never requested");
        }
        operations = s.operations.load();
        allocations = s.allocations.load();
        exchanges = s.exchanges.load();
        bytes = s.bytes.load();
    } // the pool returns every idle block
    expect_balanced(up);
    BOOST_TEST(up.allocate_calls() == up.deallocate_calls());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "stress: " << name << ": threads " << p.threads << " x rounds " << p.rounds
              << " (scale " << p.scale << "), operations " << operations << ", blocks " << allocations
              << ", exchanged " << exchanges << ", bytes " << bytes << ", upstream calls "
              << up.allocate_calls() << ", " << seconds << " s" << std::endl;
}

} // namespace

BOOST_AUTO_TEST_SUITE(stress)

// Generous caps: most blocks come back from the thread caches and shards.
BOOST_AUTO_TEST_CASE(threads_come_and_go_roomy_pool, *boost::unit_test::timeout(1800)) {
    run_stress(zp::pool_config{}.with_max_buffer_size(max_pooled).with_num_shards(4).with_max_cached_bytes(256 * mib),
               "roomy");
}

// Tight caps: the idle-byte budget and the shard caps are hit all the time,
// so blocks keep going back upstream from every tier, on every thread.
BOOST_AUTO_TEST_CASE(threads_come_and_go_tight_pool, *boost::unit_test::timeout(1800)) {
    run_stress(zp::pool_config{}
                   .with_max_buffer_size(max_pooled)
                   .with_num_shards(2)
                   .with_tls_cache_size(2)
                   .with_max_buffers_per_shard(2)
                   .with_max_cached_bytes(2 * mib),
               "tight");
}

// The hit path remembers a thread's last request (size, alignment) per pool.
// Requests of one size class that alternate between alignments, on one thread
// and across two, must each get a block aligned as asked whose bytes lie
// inside the upstream block (the data offset depends on the alignment).
BOOST_AUTO_TEST_CASE(alternating_alignments_keep_blocks_aligned, *boost::unit_test::timeout(120)) {
    recording_resource up;
    failure_log log;
    {
        zp::sharded_buffer_resource pool(zp::pool_config{}.with_tls_cache_size(4), &up);
        const std::size_t sizes[] = {4 * kib, 64 * kib - 16, 64 * kib, 100 * kib, mib + 8};
        const std::size_t alignments[] = {1, 8, 16, 32, 64, 4096};
        auto pass = [&] {
            for (std::size_t bytes : sizes)
                for (std::size_t a : alignments)
                    for (std::size_t b : alignments) {
                        void* p = pool.allocate(bytes, a);
                        pool.deallocate(p, bytes, a);
                        void* q = pool.allocate(bytes, b); // likely the same block, other alignment
                        const bool aligned = reinterpret_cast<std::uintptr_t>(q) % b == 0;
                        const void* start = up.block_of(q);
                        const std::size_t block_bytes = up.size_of(q);
                        const bool inside = start != nullptr &&
                                            static_cast<const std::byte*>(q) + bytes <=
                                                static_cast<const std::byte*>(start) + block_bytes;
                        if (!aligned) log.add("block not aligned as asked");
                        if (!inside) log.add("block's bytes run past its upstream block");
                        fill_pattern(q, bytes & ~std::size_t{7});
                        pool.deallocate(q, bytes, b);
                    }
        };
        pass();
        std::thread other(pass);
        other.join();
        pass();
        log.report();
        BOOST_TEST(up.violations().empty());
    }
    expect_balanced(up);
}

BOOST_AUTO_TEST_SUITE_END()
