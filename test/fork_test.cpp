// fork() while other threads use sharded_buffer_resource: the child (one
// thread, a copy of every lock as it was at the fork) must be able to use the
// pools, build new ones and exit. A child that deadlocks fails the test after a
// timeout instead of hanging it. See the design notes, section 4 (fork).
#include <zeropool/sharded_buffer_resource.hpp>

#define BOOST_TEST_MODULE fork
#include <boost/test/unit_test.hpp>

#include "test_support.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory_resource>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>


namespace {

namespace zp = zeropool;

using zeropool_test::child_outcome;
using zeropool_test::kib;
using zeropool_test::sanitized;
using zeropool_test::wait_for_child;

// The sanitizers' allocators (ASan: the runtimes of g++ 12 and clang++ 14;
// TSan: g++ 12's libtsan) do not take their own locks around fork(): a child
// forked while another thread was inside malloc or free can hang in
// __sanitizer::SizeClassAllocator64 or LargeMmapAllocator before the pool is
// involved. TSan's fork handler (__tsan::ForkBefore) takes only its thread
// registry and report locks; children were seen stuck in
// SizeClassAllocator64::GetFromAllocator and ReturnToAllocator on a region
// mutex that a parent thread held at the fork, from the child's own upstream
// calls (3 runs in 30, with or without this pool's changes). LLVM's runtime
// locks its allocator around fork only since llvm/llvm-project#96600 (2024).
// Under ASan and TSan the parent's threads therefore only use blocks the pool
// already holds (its hit paths and shard locks, no upstream call) and no
// pools or threads are created during the forks. glibc's malloc is
// fork-safe: there (the plain builds), the parent's threads also allocate
// upstream, build pools and start threads.
#if defined(ZEROPOOL_TEST_ASAN) || defined(ZEROPOOL_TEST_TSAN)
constexpr bool allocator_fork_safe = false;
#else
constexpr bool allocator_fork_safe = true;
#endif

/// Forks per test case.
constexpr int forks = 50;
/// A child still running after this long is deadlocked.
constexpr auto child_time_limit = std::chrono::seconds(10);

/// An upstream that counts with atomics only. The test doubles of
/// test_resources.hpp take a mutex on every call: a child forked while a
/// parent thread held it would deadlock in the test double, not in the pool.
class counting_resource final : public std::pmr::memory_resource {
public:
    std::int64_t outstanding_blocks() const noexcept { return blocks_.load(); }
    std::int64_t outstanding_bytes() const noexcept { return bytes_.load(); }
    std::uint64_t allocations() const noexcept { return allocations_.load(); }

private:
    void* do_allocate(std::size_t bytes, std::size_t alignment) override {
        void* p = std::pmr::new_delete_resource()->allocate(bytes, alignment);
        allocations_.fetch_add(1);
        blocks_.fetch_add(1);
        bytes_.fetch_add(static_cast<std::int64_t>(bytes));
        return p;
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
        blocks_.fetch_sub(1);
        bytes_.fetch_sub(static_cast<std::int64_t>(bytes));
        std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
    }
    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
        return this == &other;
    }

    std::atomic<std::int64_t> blocks_{0};
    std::atomic<std::int64_t> bytes_{0};
    std::atomic<std::uint64_t> allocations_{0};
};

/// Writes a pattern derived from the block's address into its first and last
/// words; true when a second look finds it intact.
bool write_and_check(void* p, std::size_t bytes) noexcept {
    auto* b = static_cast<unsigned char*>(p);
    const auto tag = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p)) * 31u + 7u;
    std::memcpy(b, &tag, 8);
    std::memcpy(b + bytes - 8, &tag, 8);
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    std::memcpy(&first, b, 8);
    std::memcpy(&last, b + bytes - 8, 8);
    return first == tag && last == tag;
}

/// Pooled sizes used by the parent's threads and the child; 1000 (below
/// min_buffer_size) goes straight upstream.
constexpr std::size_t pooled_sizes[] = {4 * kib, 6 * kib, 64 * kib, 256 * kib};
constexpr std::size_t unpooled_size = 1000;
constexpr std::size_t buffer_size = 8 * kib; // get()/put()
constexpr std::size_t forker_size = 16 * kib;

/// One round of ordinary use of `pool`: the workload of the parent's threads
/// and of the child. Returns false when a block was not usable.
bool use_pool(zp::sharded_buffer_resource& pool, std::mt19937& rng, bool with_unpooled = true) {
    void* held[4];
    std::size_t held_size[4];
    bool ok = true;
    for (int i = 0; i < 4; ++i) {
        const auto pick = static_cast<std::size_t>(rng() % (with_unpooled ? 5u : 4u));
        held_size[i] = pick == 4 ? unpooled_size : pooled_sizes[pick];
        held[i] = pool.allocate(held_size[i]);
        ok = write_and_check(held[i], held_size[i]) && ok;
    }
    for (int i = 3; i >= 0; --i) pool.deallocate(held[i], held_size[i]);
    zp::buffer b = pool.get(buffer_size);
    ok = b.size() == buffer_size && write_and_check(b.data(), b.size()) && ok;
    pool.put(std::move(b));
    return ok;
}

/// Exit codes of the child, so the parent can say what went wrong.
enum child_status : int {
    child_ok = 0,
    child_shared_pool_failed = 10,
    child_new_pool_failed = 11,
    child_threw = 12,
};

/// What a child does before _exit: use the pool the parent's threads were
/// using, its stats() and trim(), and a pool of its own. Runs in the child
/// only; no Boost.Test in here.
int child_work(zp::sharded_buffer_resource& shared) noexcept {
    try {
        std::mt19937 rng(static_cast<std::uint32_t>(::getpid()));
        for (int i = 0; i < 3; ++i)
            if (!use_pool(shared, rng)) return child_shared_pool_failed;
        (void)shared.stats();
        shared.trim();
        if (!use_pool(shared, rng)) return child_shared_pool_failed;

        counting_resource own_up;
        {
            zp::sharded_buffer_resource own(zp::pool_config{}, &own_up);
            for (int i = 0; i < 3; ++i)
                if (!use_pool(own, rng)) return child_new_pool_failed;
        }
        if (own_up.outstanding_blocks() != 0) return child_new_pool_failed;
        return child_ok;
    } catch (...) {
        return child_threw;
    }
}

/// Forks `count` times from the calling thread, each child running
/// child_work(shared), and returns the children's outcomes (no Boost.Test
/// here: this may run on another thread than the test's).
std::vector<child_outcome> fork_children(zp::sharded_buffer_resource& shared, int count,
                                         std::mt19937& rng) {
    std::vector<child_outcome> outcomes;
    for (int i = 0; i < count; ++i) {
        std::this_thread::sleep_for(std::chrono::microseconds(500 + rng() % 3000));
        // The forking thread uses the pool too, so its own cache is in the
        // middle of things at the fork.
        void* mine = shared.allocate(forker_size);
        const pid_t pid = ::fork();
        const int fork_errno = errno;
        if (pid == 0) {
            const int code = child_work(shared);
            ::_exit(code);
        }
        shared.deallocate(mine, forker_size);
        if (pid < 0) {
            child_outcome failed;
            failed.exit_code = -fork_errno;
            outcomes.push_back(failed);
            continue;
        }
        outcomes.push_back(wait_for_child(pid, child_time_limit));
        if (outcomes.back().timed_out) break; // one deadlock is enough: fail fast
    }
    return outcomes;
}

void check_outcomes(const std::vector<child_outcome>& outcomes, int expected) {
    BOOST_TEST(outcomes.size() == static_cast<std::size_t>(expected));
    int good = 0;
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
        const child_outcome& o = outcomes[i];
        BOOST_TEST_CONTEXT("child " << i) {
            BOOST_TEST(!o.timed_out, "child still running after "
                                         << child_time_limit.count() << " s: deadlocked after fork");
            BOOST_TEST(o.exited, "child did not exit normally (signal " << o.signal << ")");
            BOOST_TEST(o.exit_code == 0, "child exit code " << o.exit_code);
        }
        if (!o.timed_out && o.exited && o.exit_code == 0) ++good;
    }
    BOOST_TEST(good == expected);
}

/// The pool configuration of the parent. Without a fork-safe allocator, the
/// shards are made large enough to hold every block the parent's threads can
/// ever have idle, so that, once warmed up, nothing goes upstream.
zp::pool_config parent_config(std::size_t tls_cache_size) {
    zp::pool_config c = zp::pool_config{}.with_tls_cache_size(tls_cache_size);
    if (!allocator_fork_safe) c.with_max_buffers_per_shard(256);
    return c;
}

/// Background load for the parent: threads using `shared` in a loop and, with
/// a fork-safe allocator, a thread that builds and destroys pools (registry and
/// shard creation) and a thread that starts short-lived threads which use
/// `shared` and exit (thread-exit flushes). The constructor returns once every
/// thread has used the pool. Stops and joins in its destructor.
class parent_load {
public:
    static constexpr int users = 4;

    explicit parent_load(zp::sharded_buffer_resource& shared) : shared_(shared) {
        if (!allocator_fork_safe) {
            // Enough idle blocks of every class for all users' caches and
            // hands at once (users * 2 * 4) plus the forker's and the child's.
            for (std::size_t size : pooled_sizes) shared_.preallocate(48, size);
            shared_.preallocate(48, buffer_size);
            shared_.preallocate(48, forker_size);
        }
        for (int t = 0; t < users; ++t) {
            threads_.emplace_back([this, t] {
                std::mt19937 rng(static_cast<std::uint32_t>(t) + 1u);
                bool first = true;
                while (!stop_.load(std::memory_order_relaxed)) {
                    if (!use_pool(shared_, rng, allocator_fork_safe)) bad_.fetch_add(1);
                    if (rng() % 64 == 0) (void)shared_.stats();
                    if (first) {
                        first = false;
                        started_.fetch_add(1);
                    }
                }
            });
        }
        if (allocator_fork_safe) {
            threads_.emplace_back([this] { // pools come and go
                std::mt19937 rng(100u);
                bool first = true;
                while (!stop_.load(std::memory_order_relaxed)) {
                    counting_resource up;
                    {
                        zp::sharded_buffer_resource pool(zp::pool_config{}.with_num_shards(2), &up);
                        if (!use_pool(pool, rng)) bad_.fetch_add(1);
                    }
                    if (up.outstanding_blocks() != 0) bad_.fetch_add(1);
                    if (first) {
                        first = false;
                        started_.fetch_add(1);
                    }
                }
            });
            threads_.emplace_back([this] { // threads come and go
                bool first = true;
                while (!stop_.load(std::memory_order_relaxed)) {
                    std::thread brief([this] {
                        std::mt19937 local(300u);
                        if (!use_pool(shared_, local)) bad_.fetch_add(1);
                    });
                    brief.join();
                    if (first) {
                        first = false;
                        started_.fetch_add(1);
                    }
                }
            });
        }
        while (started_.load() < static_cast<int>(threads_.size())) std::this_thread::yield();
    }
    parent_load(const parent_load&) = delete;
    parent_load& operator=(const parent_load&) = delete;
    ~parent_load() { stop(); }

    void stop() {
        stop_.store(true);
        for (std::thread& t : threads_)
            if (t.joinable()) t.join();
    }
    int failures() const noexcept { return bad_.load(); }

private:
    zp::sharded_buffer_resource& shared_;
    std::atomic<bool> stop_{false};
    std::atomic<int> bad_{0};
    std::atomic<int> started_{0};
    std::vector<std::thread> threads_;
};

/// Forks from a thread while parent_load runs; checks the children and that
/// nothing leaked.
void run_fork_test(std::size_t tls_cache_size, bool from_worker_thread, int count) {
    if (!allocator_fork_safe)
        BOOST_TEST_MESSAGE("sanitizer: the allocator is not fork-safe; the parent's threads "
                           "only use blocks the pool already holds while forking");
    counting_resource up;
    {
        zp::sharded_buffer_resource shared(parent_config(tls_cache_size), &up);
        parent_load load(shared);
        const std::uint64_t upstream_before = up.allocations();
        std::vector<child_outcome> outcomes;
        std::mt19937 rng(from_worker_thread ? 43u : 42u);
        if (from_worker_thread) {
            std::thread forker([&] { outcomes = fork_children(shared, count, rng); });
            forker.join();
        } else {
            outcomes = fork_children(shared, count, rng);
        }
        const std::uint64_t upstream_during = up.allocations() - upstream_before;
        load.stop();
        check_outcomes(outcomes, count);
        BOOST_TEST(load.failures() == 0);
        if (!allocator_fork_safe) BOOST_TEST(upstream_during == 0u); // the premise of the sanitizer variant
        else BOOST_TEST_MESSAGE("upstream allocations while forking: " << upstream_during);
    }
    BOOST_TEST(up.outstanding_blocks() == 0);
    BOOST_TEST(up.outstanding_bytes() == 0);
}

} // namespace

BOOST_AUTO_TEST_SUITE(fork_suite)

BOOST_AUTO_TEST_CASE(fork_while_threads_use_the_pool, *boost::unit_test::timeout(300)) {
    run_fork_test(4, false, forks);
}

BOOST_AUTO_TEST_CASE(fork_from_a_worker_thread, *boost::unit_test::timeout(300)) {
    run_fork_test(2, true, sanitized ? forks / 2 : forks);
}

BOOST_AUTO_TEST_SUITE_END()
