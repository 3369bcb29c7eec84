// zeropool::detail::cache_freeze and freeze_until_quiet (src/cache_reclaim.hpp):
// how a thread other than a thread cache's owner takes its blocks or its
// unused reservation (src/thread_cache.hpp explains the protocol).
//
// Single-threaded, the contracts: after freeze() every take of every class and
// every put fails and remember() sets no put limit, while the counters stay;
// check() is quiet with nothing in flight, in_flight for an operation
// announced before the freeze, changed once the owner committed one (or
// stored a put limit); take_all() returns exactly the blocks, oldest first,
// and leaves the count 0 and the hits as they were; thaw() gives the owner its
// takes back (not its put limit); unused_reservation(); freeze_until_quiet()
// with no cache, quiet caches, and an owner that stays mid-operation. An
// owner's operation "in flight" is simulated with the first half of
// take_newest (thread_cache_access, below), as a preempted owner leaves it.
//
// Interleavings: the owner's take() run inside the reclaimer's freeze() and
// thaw(), and its commit inside check(), by a periodic signal whose handler
// plays the owner on this thread (the same effect on memory as the owner
// thread running there); and, step by step, an owner preempted inside take()
// while freeze_until_quiet() gives up on it and thaws its cache.
//
// Concurrently, the stress tests: owner threads run take_newest / take /
// try_put / remember over a few blocks of three classes on their caches, with
// a slow-path section now and then (pop_oldest, push, the reservation,
// refresh_put_limit), while a reclaimer thread freezes the caches until quiet
// again and again and takes every block, or the unused reservation, or just
// thaws. Each block has a holder (owner, cache, reclaimer, return list)
// changed by an atomic exchange that checks the previous one, and an owner
// tag written in the block by whoever holds it and checked on acquisition:
// no block is ever held by two parties, no block is taken as the wrong
// class, none is lost. Under ThreadSanitizer the tags in the blocks are plain
// memory, so a hand-over the protocol does not order is a reported race.
#include "../src/cache_reclaim.hpp"
#include "../src/process_barrier.hpp"
#include "../src/thread_cache.hpp"
#include "../src/thread_registry.hpp"

#define BOOST_TEST_MODULE cache_reclaim
#include <boost/test/unit_test.hpp>

#include <zeropool/detail/size_class.hpp>

#include "test_support.hpp"
#include "tier_blocks.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <signal.h>
#include <time.h>
#endif

// thread_cache names this struct its friend: the tests set the reservation
// (byte_budget's job), read the put limit and the slots, and play the first
// and second halves of an owner's take_newest, as a preempted owner leaves it.
namespace zeropool::detail {
struct thread_cache_access {
    static void set_reserved(thread_cache& c, std::size_t bytes) noexcept { c.set_reserved(bytes); }
    static std::uint32_t put_limit(const thread_cache& c) noexcept {
        return c.put_limit_.load(std::memory_order_relaxed);
    }
    static std::uint32_t slot_class(const thread_cache& c, std::uint32_t i) noexcept {
        return c.cls_[i].load(std::memory_order_relaxed);
    }
    static void* slot_ptr(const thread_cache& c, std::uint32_t i) noexcept {
        return c.ptr_[i].load(std::memory_order_relaxed);
    }
    /// Repairs a slot's class after a test saw it wrong, so that the blocks
    /// leave the cache with their sizes (ASan unpoisons by them).
    static void set_slot_class(thread_cache& c, std::uint32_t i, std::uint32_t cls) noexcept {
        c.cls_[i].store(cls, std::memory_order_relaxed);
    }
    /// take_newest up to its commit: announced, the newest slot read. Returns
    /// the block it would take, or nullptr (and withdraws) on a miss.
    static void* begin_take_newest(thread_cache& c, std::uint32_t cls, std::uint64_t& state) noexcept {
        state = c.announce();
        const std::uint32_t n = thread_cache::count_of(state);
        if (c.cls_[n].load(std::memory_order_relaxed) != cls) {
            c.withdraw();
            return nullptr;
        }
        return c.ptr_[n].load(std::memory_order_relaxed);
    }
    /// The commit of that take_newest.
    static void end_take_newest(thread_cache& c, std::uint64_t state) noexcept {
        c.state_.store(state + thread_cache::take_hit, std::memory_order_release);
    }
    /// The end of an announced operation that changed nothing.
    static void withdraw(thread_cache& c) noexcept { c.withdraw(); }
    /// take() in steps, as an owner preempted in its middle runs it: the
    /// announcement and the search (the slot of the newest block of class
    /// `cls`, or 0), one move of its loop, and the commit.
    static std::uint32_t begin_take(thread_cache& c, std::uint32_t cls, std::uint64_t& state) noexcept {
        state = c.announce();
        for (std::uint32_t i = thread_cache::count_of(state); i > 0; --i)
            if (c.cls_[i].load(std::memory_order_relaxed) == cls) return i;
        c.withdraw();
        return 0;
    }
    static void move_slot(thread_cache& c, std::uint32_t from, std::uint32_t to) noexcept { c.move_slot(from, to); }
    /// The second half of move_slot(): the block, not the class.
    static void move_block(thread_cache& c, std::uint32_t from, std::uint32_t to) noexcept {
        c.ptr_[to].store(c.ptr_[from].load(std::memory_order_relaxed), std::memory_order_relaxed);
    }
    static void end_take(thread_cache& c, std::uint64_t state) noexcept {
        c.state_.store(state + thread_cache::take_hit, std::memory_order_release);
    }
};
} // namespace zeropool::detail

namespace {

using zeropool::detail::cache_freeze;
using zeropool::detail::cached_block;
using zeropool::detail::class_index;
using zeropool::detail::class_size;
using zeropool::detail::freeze_until_quiet;
using zeropool::detail::process_barrier;
using zeropool::detail::process_barrier_available;
using zeropool::detail::registered_pool;
using zeropool::detail::thread_cache;
using zeropool::detail::thread_cache_access;
using zeropool::detail::upstream_size;
using zeropool_test::kib;
using outcome = cache_freeze::outcome;

/// A registered_pool whose virtual functions do nothing.
class null_pool final : public registered_pool {
public:
    null_pool() noexcept : registered_pool(1) {}
    void flush_exiting(thread_cache&) noexcept override {}
    void lock_for_fork() noexcept override {}
    void unlock_after_fork() noexcept override {}
};

const std::uint32_t cls_a = class_index(4 * kib);
const std::uint32_t cls_b = class_index(64 * kib);
const std::uint32_t cls_c = class_index(16 * kib);
const std::uint32_t cls_d = class_index(5 * kib);
const std::size_t bytes_a = upstream_size(cls_a);
const std::size_t bytes_b = upstream_size(cls_b);
const std::size_t bytes_c = upstream_size(cls_c);
const std::size_t bytes_d = upstream_size(cls_d);
const std::uint32_t all_classes[] = {cls_a, cls_b, cls_c, cls_d};

using blocks = zeropool_test::tier_blocks;

std::uint32_t put_limit(const thread_cache& c) noexcept { return thread_cache_access::put_limit(c); }

/// Sets the reservation under the cache's lock and ends the section as the
/// pool's do, with refresh_put_limit().
void set_reserved(thread_cache& c, std::size_t bytes) noexcept {
    std::lock_guard<std::mutex> lock(c.lock());
    thread_cache_access::set_reserved(c, bytes);
    c.refresh_put_limit();
}

/// Remembers a request of class `cls`, as the pool's classified paths do.
void remember(thread_cache& c, std::uint32_t cls) noexcept {
    const std::size_t size = class_size(cls);
    c.remember(size, 16, cls, upstream_size(cls), zeropool::detail::data_offset(size, 16));
}

/// A put as deallocate_classified does it: remember the class, then try_put.
bool put(thread_cache& c, void* p, std::uint32_t cls) noexcept {
    remember(c, cls);
    return c.try_put(p, cls);
}

/// Milliseconds since `start`.
double ms_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

/// The barrier a reclaimer issues between freeze() and check(), when there
/// is one (one thread needs none: these tests call it to follow the protocol).
void barrier() noexcept {
    if (process_barrier_available()) BOOST_TEST(process_barrier());
}

/// check() after a freeze on this thread, which must be quiet.
void barrier_free_check_quiet(const cache_freeze& f) {
    if (f.check() != outcome::quiet) BOOST_ERROR("check() after freeze() with nothing in flight is not quiet");
}

/// Every take of every class fails, and so does a put after remember().
void expect_owner_locked_out(thread_cache& c, blocks& heap) {
    const std::uint64_t state = c.state_snapshot();
    bool check_clock = false;
    for (std::uint32_t cls : all_classes) {
        BOOST_TEST_CONTEXT("class " << cls) {
            BOOST_TEST(c.take_newest(cls, check_clock) == nullptr);
            BOOST_TEST(c.take(cls) == nullptr);
            remember(c, cls);
            BOOST_TEST(put_limit(c) == 0u); // remember() sets no limit while frozen
            BOOST_TEST(!c.try_put(heap.make(cls), cls));
        }
    }
    BOOST_TEST(c.state_snapshot() == state);
}

/// A cache of capacity 8 reserving 1 MiB, holding blocks of these classes,
/// put in this order (so slot i + 1 holds put[i]).
struct filled_cache {
    null_pool pool;
    blocks heap;
    thread_cache c{pool, 8};
    std::vector<cached_block> put_blocks;
    std::size_t held = 0;

    explicit filled_cache(std::initializer_list<std::uint32_t> classes) {
        set_reserved(c, 1024 * kib);
        for (std::uint32_t cls : classes) {
            put_blocks.push_back(cached_block{heap.make(cls), cls});
            BOOST_TEST_REQUIRE(put(c, put_blocks.back().ptr, cls));
            held += upstream_size(cls);
        }
    }
    ~filled_cache() {
        std::lock_guard<std::mutex> lock(c.lock());
        while (!c.empty()) static_cast<void>(c.pop_oldest());
    }
};

} // namespace

BOOST_AUTO_TEST_SUITE(cache_freeze_suite)

BOOST_AUTO_TEST_CASE(freeze_makes_every_owner_operation_fail, *boost::unit_test::timeout(60)) {
    filled_cache f{cls_a, cls_b, cls_a, cls_c};
    thread_cache& c = f.c;
    bool check_clock = false;
    BOOST_TEST(c.take_newest(cls_c, check_clock) == f.put_blocks[3].ptr); // a hit before the freeze
    BOOST_TEST(put(c, f.put_blocks[3].ptr, cls_c));
    const std::uint64_t hits = c.hits();
    std::lock_guard<std::mutex> lock(c.lock());
    cache_freeze z(c);
    BOOST_TEST(&z.cache() == &c);
    z.freeze();
    expect_owner_locked_out(c, f.heap);
    // The books are what they were: held() sees through the frozen classes.
    BOOST_TEST(c.count() == 4u);
    BOOST_TEST(c.held() == f.held);
    BOOST_TEST(c.reserved() == 1024 * kib);
    BOOST_TEST(c.hits() == hits);
    for (std::uint32_t i = 1; i <= 4; ++i) {
        BOOST_TEST_CONTEXT("slot " << i) {
            const std::uint32_t cls = thread_cache_access::slot_class(c, i);
            BOOST_TEST((cls & thread_cache::frozen_bit) != 0u);
            BOOST_TEST((cls & ~thread_cache::frozen_bit) == f.put_blocks[i - 1].cls);
            BOOST_TEST(thread_cache_access::slot_ptr(c, i) == f.put_blocks[i - 1].ptr);
        }
    }
    // Nothing was in flight, and nothing the owner tried changed the cache.
    barrier();
    BOOST_TEST((z.check() == outcome::quiet));
    z.thaw();
}

BOOST_AUTO_TEST_CASE(thaw_restores_the_takes_but_not_the_put_limit, *boost::unit_test::timeout(60)) {
    filled_cache f{cls_a, cls_b, cls_a};
    thread_cache& c = f.c;
    {
        std::lock_guard<std::mutex> lock(c.lock());
        cache_freeze z(c);
        z.freeze();
        barrier();
        BOOST_TEST((z.check() == outcome::quiet));
        z.thaw();
    }
    for (std::uint32_t i = 1; i <= 3; ++i) // every class as it was
        BOOST_TEST(thread_cache_access::slot_class(c, i) == f.put_blocks[i - 1].cls);
    // The put limit stays 0 until the owner's next remember() or section...
    BOOST_TEST(put_limit(c) == 0u);
    BOOST_TEST(!c.try_put(f.heap.make(cls_a), cls_a)); // class a is the remembered one
    // ...while its takes work again, LIFO and with the age order kept.
    bool check_clock = false;
    BOOST_TEST(c.take_newest(cls_a, check_clock) == f.put_blocks[2].ptr);
    BOOST_TEST(c.take_newest(cls_a, check_clock) == nullptr); // b is the newest now
    BOOST_TEST(c.take(cls_a) == f.put_blocks[0].ptr);
    BOOST_TEST(c.take(cls_b) == f.put_blocks[1].ptr);
    BOOST_TEST(c.empty());
    BOOST_TEST(c.hits() == 3u);
    remember(c, cls_a);
    BOOST_TEST(put_limit(c) == 8u);
    BOOST_TEST(c.try_put(f.put_blocks[0].ptr, cls_a));
    // refresh_put_limit() sets it too.
    {
        std::lock_guard<std::mutex> lock(c.lock());
        cache_freeze z(c);
        z.freeze();
        barrier();
        BOOST_TEST((z.check() == outcome::quiet));
        z.thaw();
        BOOST_TEST(put_limit(c) == 0u);
        c.refresh_put_limit();
        BOOST_TEST(put_limit(c) == 8u);
    }
    BOOST_TEST(c.try_put(f.put_blocks[2].ptr, cls_a));
    BOOST_TEST(c.count() == 2u);
}

BOOST_AUTO_TEST_CASE(check_reports_changed_once_the_owner_committed_or_set_a_limit, *boost::unit_test::timeout(60)) {
    filled_cache f{cls_a, cls_b, cls_a};
    thread_cache& c = f.c;
    std::lock_guard<std::mutex> lock(c.lock()); // a reclaimer's; the owner's operations below take none
    bool check_clock = false;
    // A take committed after the freeze (possible here only because the
    // cache was thawed in between: a frozen cache refuses it).
    {
        cache_freeze z(c);
        z.freeze();
        barrier();
        BOOST_TEST((z.check() == outcome::quiet));
        z.thaw();
        BOOST_TEST(c.take_newest(cls_a, check_clock) == f.put_blocks[2].ptr);
        BOOST_TEST((z.check() == outcome::changed));
        // Freezing again starts from what the owner left: quiet.
        z.freeze();
        barrier();
        BOOST_TEST((z.check() == outcome::quiet));
        z.thaw();
    }
    // A put committed after the freeze.
    {
        cache_freeze z(c);
        z.freeze();
        barrier();
        z.thaw();
        BOOST_TEST(put(c, f.put_blocks[2].ptr, cls_a));
        BOOST_TEST((z.check() == outcome::changed));
        z.freeze();
        barrier();
        BOOST_TEST((z.check() == outcome::quiet));
        z.thaw();
    }
    // A remember() that stored a put limit after the freeze changed no block
    // but would let a put succeed: changed too.
    {
        cache_freeze z(c);
        z.freeze();
        barrier();
        z.thaw();
        remember(c, cls_b);
        BOOST_TEST(put_limit(c) != 0u);
        BOOST_TEST((z.check() == outcome::changed));
        z.freeze();
        BOOST_TEST(put_limit(c) == 0u);
        barrier();
        BOOST_TEST((z.check() == outcome::quiet));
        z.thaw();
    }
    // Operations that failed change nothing: still quiet.
    {
        cache_freeze z(c);
        z.freeze();
        barrier();
        BOOST_TEST(c.take(cls_d) == nullptr);
        BOOST_TEST(c.take_newest(cls_a, check_clock) == nullptr);
        BOOST_TEST(!c.try_put(f.heap.make(cls_b), cls_b));
        BOOST_TEST((z.check() == outcome::quiet));
        z.thaw();
    }
}

BOOST_AUTO_TEST_CASE(check_waits_for_an_operation_announced_before_the_freeze, *boost::unit_test::timeout(60)) {
    filled_cache f{cls_a, cls_b, cls_c};
    thread_cache& c = f.c;
    std::lock_guard<std::mutex> lock(c.lock());
    // The owner is in take_newest(c): it announced and read the newest slot
    // before the freeze, and has not committed.
    std::uint64_t state = 0;
    void* const p = thread_cache_access::begin_take_newest(c, cls_c, state);
    BOOST_TEST(p == f.put_blocks[2].ptr);
    cache_freeze z(c);
    z.freeze();
    barrier();
    BOOST_TEST((z.check() == outcome::in_flight));
    BOOST_TEST((z.check() == outcome::in_flight)); // as long as it is
    // It commits: the cache changed; frozen again, it is quiet, and take_all
    // gets the two blocks the owner did not take.
    thread_cache_access::end_take_newest(c, state);
    BOOST_TEST((z.check() == outcome::changed));
    z.freeze();
    barrier();
    BOOST_TEST((z.check() == outcome::quiet));
    cached_block out[thread_cache::max_capacity] = {};
    BOOST_TEST(z.take_all(out) == 2u);
    BOOST_TEST(out[0].ptr == f.put_blocks[0].ptr);
    BOOST_TEST(out[1].ptr == f.put_blocks[1].ptr);
    BOOST_TEST(c.count() == 0u);
    BOOST_TEST(c.hits() == 1u);
    z.thaw();

    // An operation announced before the freeze that then misses: it withdraws.
    BOOST_TEST(put(c, f.put_blocks[0].ptr, cls_a));
    BOOST_TEST(thread_cache_access::begin_take_newest(c, cls_a, state) == f.put_blocks[0].ptr);
    cache_freeze y(c);
    y.freeze();
    barrier();
    BOOST_TEST((y.check() == outcome::in_flight));
    thread_cache_access::withdraw(c); // it saw the frozen class, in the real code
    BOOST_TEST((y.check() == outcome::quiet));
    y.thaw();
}

BOOST_AUTO_TEST_CASE(take_all_returns_every_block_in_slot_order, *boost::unit_test::timeout(60)) {
    filled_cache f{cls_a, cls_b, cls_a, cls_c, cls_d};
    thread_cache& c = f.c;
    bool check_clock = false;
    // Some hits first, and a take from the middle (slots move down).
    BOOST_TEST(c.take_newest(cls_d, check_clock) == f.put_blocks[4].ptr);
    BOOST_TEST(c.take(cls_b) == f.put_blocks[1].ptr);
    BOOST_TEST(put(c, f.put_blocks[4].ptr, cls_d));
    BOOST_TEST(put(c, f.put_blocks[1].ptr, cls_b));
    const std::vector<cached_block> expected = {f.put_blocks[0], f.put_blocks[2], f.put_blocks[3], f.put_blocks[4],
                                                f.put_blocks[1]};
    const std::uint64_t hits = c.hits();
    BOOST_TEST(hits == 2u);
    std::lock_guard<std::mutex> lock(c.lock());
    cache_freeze z(c);
    z.freeze();
    barrier();
    BOOST_TEST_REQUIRE((z.check() == outcome::quiet));
    cached_block out[thread_cache::max_capacity + 1];
    const cached_block sentinel{&out, 4242};
    std::fill(std::begin(out), std::end(out), sentinel);
    BOOST_TEST_REQUIRE(z.take_all(out) == 5u);
    for (std::size_t i = 0; i < 5; ++i) {
        BOOST_TEST_CONTEXT("block " << i) {
            BOOST_TEST(out[i].ptr == expected[i].ptr);
            BOOST_TEST(out[i].cls == expected[i].cls); // its class, without frozen_bit
        }
    }
    BOOST_TEST(out[5].ptr == sentinel.ptr); // nothing beyond
    BOOST_TEST(c.count() == 0u);
    BOOST_TEST(c.empty());
    BOOST_TEST(c.held() == 0u);
    BOOST_TEST(c.hits() == hits);             // the reclaimer's takes are not hits
    BOOST_TEST(c.reserved() == 1024 * kib);   // the caller gives it back
    BOOST_TEST(z.unused_reservation() == 1024 * kib);
    // Still frozen until thaw(): the owner gets nothing, puts nothing.
    expect_owner_locked_out(c, f.heap);
    BOOST_TEST(z.take_all(out) == 0u); // nothing left to take
    thread_cache_access::set_reserved(c, 3 * bytes_d); // as byte_budget::shrink would
    z.thaw();
    BOOST_TEST(put_limit(c) == 0u);
    BOOST_TEST(c.memo().cls == cls_d); // expect_owner_locked_out remembered it last
    c.refresh_put_limit();             // the owner's next section
    BOOST_TEST(put_limit(c) == 3u);
    // The blocks are the reclaimer's now; the owner's cache starts empty.
    BOOST_TEST(c.take(cls_a) == nullptr);
    void* fresh = f.heap.make(cls_a);
    BOOST_TEST(put(c, fresh, cls_a));
    BOOST_TEST(c.take_newest(cls_a, check_clock) == fresh);
    BOOST_TEST(c.hits() == hits + 1);
}

BOOST_AUTO_TEST_CASE(unused_reservation_is_what_the_blocks_do_not_hold, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 8);
    set_reserved(c, 2 * bytes_b + 3 * bytes_a + 100);
    BOOST_TEST(put(c, heap.make(cls_b), cls_b));
    BOOST_TEST(put(c, heap.make(cls_a), cls_a));
    BOOST_TEST(put(c, heap.make(cls_c), cls_c));
    const std::size_t held = bytes_b + bytes_a + bytes_c;
    BOOST_TEST(c.held() == held);
    std::lock_guard<std::mutex> lock(c.lock());
    cache_freeze z(c);
    z.freeze();
    barrier();
    BOOST_TEST_REQUIRE((z.check() == outcome::quiet));
    const std::size_t unused = z.unused_reservation();
    BOOST_TEST(unused == c.reserved() - held);
    BOOST_TEST(unused == bytes_b + 2 * bytes_a + 100 - bytes_c);
    // Given back (byte_budget::shrink), the cache holds what it reserves.
    thread_cache_access::set_reserved(c, c.reserved() - unused);
    BOOST_TEST(z.unused_reservation() == 0u);
    z.thaw();
    c.refresh_put_limit();
    BOOST_TEST(put_limit(c) == 3u); // the count: no room left
    BOOST_TEST(c.count() == 3u);
    BOOST_TEST(c.held() == c.reserved());
    // Nothing more to give back the next time.
    z.freeze();
    barrier();
    BOOST_TEST_REQUIRE((z.check() == outcome::quiet));
    BOOST_TEST(z.unused_reservation() == 0u);
    z.thaw();
    while (!c.empty()) static_cast<void>(c.pop_oldest());
}

// After take_all(), thaw() and no further operation of the owner, nothing is
// in flight, so a new freeze must be quiet. The owner's last operation was a
// put into an empty cache: it committed from the state (hits, 0) and a
// commit leaves announce_ at that value; take_all() brings state_ back to
// exactly (hits, 0). Unless that announcement is forgotten, check() sees
// announce_ == state_ and answers in_flight for as long as the owner does
// nothing, and freeze_until_quiet() waits its whole patience (under the
// registry mutex, in the pool) for nothing, then skips the cache.
// pop_oldest() after a put brings the state back the same way.
BOOST_AUTO_TEST_CASE(check_is_quiet_when_the_state_comes_back_to_an_old_announcement, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 4);
    set_reserved(c, 4 * bytes_a);
    BOOST_TEST(put(c, heap.make(cls_a), cls_a));
    std::lock_guard<std::mutex> lock(c.lock());
    {
        cache_freeze z(c);
        z.freeze();
        barrier();
        BOOST_TEST_REQUIRE((z.check() == outcome::quiet));
        cached_block out[thread_cache::max_capacity];
        BOOST_TEST_REQUIRE(z.take_all(out) == 1u);
        z.thaw();
    }
    cache_freeze z(c);
    z.freeze();
    barrier();
    BOOST_TEST((z.check() == outcome::quiet), "nothing is in flight, yet check() says "
                                                 << (z.check() == outcome::in_flight ? "in_flight" : "changed"));
    z.thaw();
    if (process_barrier_available()) {
        const auto start = std::chrono::steady_clock::now();
        BOOST_TEST(freeze_until_quiet(&z, 1, 50));
        const double waited = ms_since(start);
        BOOST_TEST(z.quiet);
        BOOST_TEST(!z.skipped);
        BOOST_TEST(waited < 40.0, "freeze_until_quiet waited " << waited << " ms for an owner that does nothing");
        if (z.quiet) z.thaw();
    }
    // The same after the owner's own pop_oldest() undoes a put.
    void* p = heap.make(cls_a);
    c.refresh_put_limit();
    remember(c, cls_a);
    BOOST_TEST(c.try_put(p, cls_a));
    BOOST_TEST(c.try_put(heap.make(cls_a), cls_a));
    static_cast<void>(c.pop_oldest()); // count back to 1: the state the second put started from
    cache_freeze y(c);
    y.freeze();
    barrier();
    BOOST_TEST((y.check() == outcome::quiet));
    y.thaw();
    while (!c.empty()) static_cast<void>(c.pop_oldest());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(freeze_until_quiet_suite)

BOOST_AUTO_TEST_CASE(no_cache_is_done_at_once, *boost::unit_test::timeout(60)) {
    BOOST_TEST(freeze_until_quiet(nullptr, 0, 100));
}

BOOST_AUTO_TEST_CASE(caches_with_no_operation_in_flight_end_quiet, *boost::unit_test::timeout(60)) {
    if (!process_barrier_available()) {
        BOOST_TEST_MESSAGE("process_barrier() is not available here: skipped");
        return;
    }
    filled_cache f1{cls_a, cls_b};
    filled_cache f2{cls_c};
    null_pool pool;
    thread_cache empty(pool, 4); // frozen and quiet too, with nothing to take
    std::lock_guard<std::mutex> l1(f1.c.lock());
    std::lock_guard<std::mutex> l2(f2.c.lock());
    std::lock_guard<std::mutex> l3(empty.lock());
    cache_freeze z[3] = {cache_freeze(f1.c), cache_freeze(f2.c), cache_freeze(empty)};
    z[1].skipped = true; // stale flags are reset
    const auto start = std::chrono::steady_clock::now();
    BOOST_TEST(freeze_until_quiet(z, 3, 1000));
    BOOST_TEST(ms_since(start) < 500.0);
    for (cache_freeze& x : z) {
        BOOST_TEST(x.quiet);
        BOOST_TEST(!x.skipped);
    }
    expect_owner_locked_out(f1.c, f1.heap); // frozen
    cached_block out[thread_cache::max_capacity];
    BOOST_TEST(z[0].take_all(out) == 2u);
    BOOST_TEST(out[0].ptr == f1.put_blocks[0].ptr);
    BOOST_TEST(out[1].ptr == f1.put_blocks[1].ptr);
    BOOST_TEST(z[2].take_all(out) == 0u);
    for (cache_freeze& x : z) x.thaw();
    bool check_clock = false;
    BOOST_TEST(f2.c.take_newest(cls_c, check_clock) == f2.put_blocks[0].ptr);
    BOOST_TEST(f1.c.take(cls_a) == nullptr);
}

BOOST_AUTO_TEST_CASE(an_owner_that_stays_mid_operation_is_skipped_and_thawed, *boost::unit_test::timeout(60)) {
    if (!process_barrier_available()) {
        BOOST_TEST_MESSAGE("process_barrier() is not available here: skipped");
        return;
    }
    filled_cache stuck{cls_a, cls_b};
    filled_cache idle{cls_c};
    std::lock_guard<std::mutex> l1(stuck.c.lock());
    std::lock_guard<std::mutex> l2(idle.c.lock());
    std::uint64_t state = 0;
    BOOST_TEST(thread_cache_access::begin_take_newest(stuck.c, cls_b, state) == stuck.put_blocks[1].ptr);
    cache_freeze z[2] = {cache_freeze(stuck.c), cache_freeze(idle.c)};
    const auto start = std::chrono::steady_clock::now();
    BOOST_TEST(freeze_until_quiet(z, 2, 30));
    BOOST_TEST(ms_since(start) >= 30.0); // its whole patience
    BOOST_TEST(!z[0].quiet);
    BOOST_TEST(z[0].skipped);
    BOOST_TEST(z[1].quiet); // the other cache is not held up
    BOOST_TEST(!z[1].skipped);
    z[1].thaw();
    // The stuck cache was thawed: its classes are back, for the operation to
    // finish and for the next ones.
    BOOST_TEST(thread_cache_access::slot_class(stuck.c, 1) == cls_a);
    BOOST_TEST(thread_cache_access::slot_class(stuck.c, 2) == cls_b);
    thread_cache_access::end_take_newest(stuck.c, state);
    BOOST_TEST(stuck.c.count() == 1u);
    BOOST_TEST(stuck.c.take(cls_a) == stuck.put_blocks[0].ptr);
    BOOST_TEST(put(stuck.c, stuck.put_blocks[1].ptr, cls_b)); // the block the owner took
    BOOST_TEST(put(stuck.c, stuck.put_blocks[0].ptr, cls_a));
}

BOOST_AUTO_TEST_SUITE_END()

// ---- interleavings ------------------------------------------------------------------
//
// The owner runs at any time, between any two instructions of a reclaimer.
// These tests put it there: a periodic signal interrupts the reclaimer's
// step (freeze, thaw, check) on this thread, and its handler runs the owner's
// operation, with the same effect on memory as the owner thread running
// then. Each trial builds a cache, arms the handler, runs the reclaimer's
// step, and judges the cache once the handler has run inside it.

namespace {

/// Slot i of `c` (1 <= i <= count) holds a block of the class it says, and
/// (unless `frozen_ok`) without frozen_bit. Empty when so, else what is wrong.
std::string slots_problem(const thread_cache& c, const std::map<const void*, std::uint32_t>& truth, bool frozen_ok) {
    std::ostringstream s;
    const std::uint32_t n = c.count();
    for (std::uint32_t i = 1; i <= n; ++i) {
        const std::uint32_t cls = thread_cache_access::slot_class(c, i);
        const auto it = truth.find(thread_cache_access::slot_ptr(c, i));
        if (it == truth.end()) {
            s << "slot " << i << " of " << n << " holds an unknown block; ";
            continue;
        }
        if (!frozen_ok && (cls & thread_cache::frozen_bit) != 0)
            s << "slot " << i << " of " << n << " is still frozen after thaw(); ";
        if ((cls & ~thread_cache::frozen_bit) != it->second)
            s << "slot " << i << " of " << n << " holds a block of class " << it->second << " labelled class "
              << (cls & ~thread_cache::frozen_bit) << "; ";
    }
    return s.str();
}

#if defined(__linux__)
namespace interrupts {

std::atomic<bool> armed{false};
std::atomic<bool> fired{false};
void (*action)() noexcept = nullptr;

extern "C" void on_signal(int) {
    if (armed.exchange(false, std::memory_order_relaxed)) {
        action();
        fired.store(true, std::memory_order_relaxed);
    }
}

/// SIGUSR2 to this process every `period_ns`, while it lives.
class periodic_signal {
public:
    explicit periodic_signal(long period_ns) {
        struct sigaction sa {};
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        ok_ = sigaction(SIGUSR2, &sa, &old_) == 0;
        sigevent sev{};
        sev.sigev_notify = SIGEV_SIGNAL;
        sev.sigev_signo = SIGUSR2;
        ok_ = ok_ && timer_create(CLOCK_MONOTONIC, &sev, &timer_) == 0;
        itimerspec its{};
        its.it_interval.tv_nsec = period_ns;
        its.it_value.tv_nsec = period_ns;
        ok_ = ok_ && timer_settime(timer_, 0, &its, nullptr) == 0;
    }
    ~periodic_signal() {
        armed.store(false);
        timer_delete(timer_);
        sigaction(SIGUSR2, &old_, nullptr);
    }
    periodic_signal(const periodic_signal&) = delete;
    periodic_signal& operator=(const periodic_signal&) = delete;
    bool ok() const noexcept { return ok_; }

private:
    struct sigaction old_ {};
    timer_t timer_{};
    bool ok_ = false;
};

/// Runs trials for at most `ms` milliseconds or `wanted` trials in which the
/// handler ran during `step`: setup(); arm `act`; step(); disarm; then
/// judge() (a description of what went wrong, or empty) when it ran.
/// Returns {trials in which it ran, bad ones, the first description}.
struct verdict {
    std::uint64_t hit = 0;
    std::uint64_t bad = 0;
    std::string first;
};
template <class Setup, class Step, class Judge>
verdict run_trials(void (*act)() noexcept, Setup&& setup, Step&& step, Judge&& judge, long ms, std::uint64_t wanted) {
    verdict v;
    periodic_signal timer(13000); // 13 us: not a multiple of anything the trial does
    if (!timer.ok()) {
        BOOST_TEST_MESSAGE("no timer signal: skipped");
        return v;
    }
    action = act;
    const auto start = std::chrono::steady_clock::now();
    while (v.hit < wanted && ms_since(start) < static_cast<double>(ms)) {
        setup();
        fired.store(false, std::memory_order_relaxed);
        armed.store(true, std::memory_order_relaxed);
        step();
        armed.store(false, std::memory_order_relaxed);
        if (!fired.load(std::memory_order_relaxed)) continue;
        ++v.hit;
        std::string problem = judge();
        if (!problem.empty()) {
            if (v.bad++ == 0) v.first = problem;
        }
    }
    return v;
}

} // namespace interrupts

/// One cache at a time for the handler to work on.
struct interleaving_scene {
    null_pool pool;
    blocks heap;
    std::unique_ptr<thread_cache> c;
    cache_freeze f;
    std::vector<cached_block> put_blocks;
    std::map<const void*, std::uint32_t> truth;
    std::uint32_t take_class = 0;
    void* got = nullptr;
    std::uint64_t state = 0;
    outcome result = outcome::in_flight;

    /// A new cache holding one block of each of `classes`, oldest first
    /// (blocks made once, reused by every trial).
    void build(const std::vector<std::uint32_t>& classes) {
        if (put_blocks.empty())
            for (std::uint32_t cls : classes) {
                put_blocks.push_back(cached_block{heap.make(cls), cls});
                truth.emplace(put_blocks.back().ptr, cls);
            }
        c = std::make_unique<thread_cache>(pool, thread_cache::max_capacity);
        std::lock_guard<std::mutex> lock(c->lock());
        thread_cache_access::set_reserved(*c, 4 * 1024 * kib);
        for (const cached_block& b : put_blocks) c->push(b.ptr, b.cls);
        c->refresh_put_limit();
        f = cache_freeze(*c);
        got = nullptr;
    }
};
interleaving_scene* scene = nullptr;

void owner_takes() noexcept { scene->got = scene->c->take(scene->take_class); }

void owner_commits_then_misses() noexcept {
    thread_cache_access::end_take_newest(*scene->c, scene->state);
    bool check_clock = false;
    static_cast<void>(scene->c->take_newest(scene->take_class, check_clock)); // frozen: it withdraws
}
#endif

} // namespace

BOOST_AUTO_TEST_SUITE(interleavings_suite)

// A take() the owner starts while freeze() is marking the slots. If it runs
// between freeze()'s load of a slot's class and its marking of that slot,
// and moves another block into the slot, a plain store of the old class with
// frozen_bit would label the block it moved with the wrong class; the next
// freeze() (check() answers changed) would snapshot that class, so take_all()
// would hand the block out as the wrong class, or thaw() would restore the
// wrong label and the owner's next take of that class would get a block of
// another size. Judged after what the reclaimer does next: freeze() again,
// then thaw().
BOOST_AUTO_TEST_CASE(a_take_during_freeze_keeps_every_slot_labelled_with_its_block, *boost::unit_test::timeout(60)) {
#if defined(__linux__)
    interleaving_scene sc;
    scene = &sc;
    sc.take_class = cls_a;
    const std::vector<std::uint32_t> classes = {cls_a, cls_b, cls_a, cls_b, cls_a, cls_b, cls_a, cls_c};
    std::string problem;
    const interrupts::verdict v = interrupts::run_trials(
        owner_takes, [&] { sc.build(classes); }, [&] { sc.f.freeze(); },
        [&]() -> std::string {
            // What the reclaimer does next: check() says changed, so it
            // freezes again; then it thaws (or takes every block).
            sc.f.freeze();
            std::string p = slots_problem(*sc.c, sc.truth, true);
            sc.f.thaw();
            if (p.empty()) p = slots_problem(*sc.c, sc.truth, false);
            if (sc.got != nullptr && sc.truth.at(sc.got) != cls_a) p += "take() returned a block of another class; ";
            return p;
        },
        3000, 20000);
    scene = nullptr;
    BOOST_TEST_MESSAGE("take() during freeze(): " << v.hit << " trials, " << v.bad << " bad");
    BOOST_TEST(v.bad == 0u, v.bad << " of " << v.hit << " trials went wrong; the first: " << v.first);
#endif
}

// A take() the owner starts while thaw() is taking the marks off (the cache
// was quiet; this is simply the owner's next operation). thaw() goes up from
// slot 1; the take finds its block in a slot thaw() has passed and moves the
// blocks above it down one slot, copying the marked classes of the slots
// thaw() has not reached yet. Restoring from the snapshot over them labels
// those slots with the classes of the blocks that were there before; taking
// off only the marks the freeze set (a compare-exchange against the
// snapshot's class) leaves the copied marks: those blocks cannot be taken,
// and pop_oldest() returns their class with frozen_bit set, which the pool
// then uses as a class index (upstream_size, a shard's list).
BOOST_AUTO_TEST_CASE(a_take_during_thaw_keeps_every_slot_labelled_with_its_block, *boost::unit_test::timeout(60)) {
#if defined(__linux__)
    interleaving_scene sc;
    scene = &sc;
    sc.take_class = cls_a;
    const std::vector<std::uint32_t> classes = {cls_a, cls_b, cls_a, cls_b, cls_a, cls_b, cls_a, cls_c};
    const interrupts::verdict v = interrupts::run_trials(
        owner_takes,
        [&] {
            sc.build(classes);
            sc.f.freeze();
            barrier_free_check_quiet(sc.f);
        },
        [&] { sc.f.thaw(); },
        [&]() -> std::string {
            std::string p = slots_problem(*sc.c, sc.truth, false);
            if (sc.got != nullptr && sc.truth.at(sc.got) != cls_a) p += "take() returned a block of another class; ";
            return p;
        },
        3000, 20000);
    scene = nullptr;
    BOOST_TEST_MESSAGE("take() during thaw(): " << v.hit << " trials, " << v.bad << " bad");
    BOOST_TEST(v.bad == 0u, v.bad << " of " << v.hit << " trials went wrong; the first: " << v.first);
#endif
}

// An operation announced before the freeze (it read the slots before they
// were frozen) commits while check() runs, and the owner's next operation
// withdraws. Were check() to load state_ before announce_, a commit between
// the two loads would leave it the old state_ and an announce_ that is not
// it: quiet, although the cache changed after the freeze; take_all() would
// then take the block take_newest gave the owner (after a put, it would set
// the count to the snapshot's and lose the block put).
BOOST_AUTO_TEST_CASE(check_is_never_quiet_after_a_commit_since_the_freeze, *boost::unit_test::timeout(60)) {
#if defined(__linux__)
    interleaving_scene sc;
    scene = &sc;
    sc.take_class = cls_b;
    const std::vector<std::uint32_t> classes = {cls_a, cls_b};
    std::uint64_t frozen_state = 0;
    const interrupts::verdict v = interrupts::run_trials(
        owner_commits_then_misses,
        [&] {
            sc.build(classes);
            // The owner is in take_newest(b): announced, newest slot read.
            sc.got = thread_cache_access::begin_take_newest(*sc.c, cls_b, sc.state);
            sc.f.freeze();
            frozen_state = sc.c->state_snapshot();
        },
        [&] {
            do {
                sc.result = sc.f.check();
            } while (sc.result == outcome::in_flight);
        },
        [&]() -> std::string {
            if (sc.result != outcome::quiet) return {};
            std::ostringstream s;
            s << "check() answered quiet although the owner committed since the freeze (state "
              << frozen_state << " -> " << sc.c->state_snapshot() << ")";
            cached_block out[thread_cache::max_capacity];
            const std::uint32_t n = sc.f.take_all(out);
            for (std::uint32_t i = 0; i < n; ++i)
                if (out[i].ptr == sc.got) s << "; take_all() took the block the owner's take_newest returned";
            return s.str();
        },
        3000, 100000);
    scene = nullptr;
    BOOST_TEST_MESSAGE("commit during check(): " << v.hit << " trials, " << v.bad << " bad");
    BOOST_TEST(v.bad == 0u, v.bad << " of " << v.hit << " trials went wrong; the first: " << v.first);
#endif
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(skipped_owner_suite)

// An owner preempted in the middle of take() for longer than the
// reclaimer's patience: freeze_until_quiet() thaws its cache and skips it
// while the take is still moving blocks down. Step by step: the owner's
// take(a) found its block in slot 1 before the freeze, and had moved slot 2
// (class b, marked by the freeze) down into slot 1 when the reclaimer gave
// up on it. Restoring slot 1 from the snapshot labels the block of class b
// there as class a; taking off only the freeze's own marks leaves slot 1
// marked for good. Either way the cache is wrong once the take commits.
BOOST_AUTO_TEST_CASE(a_skipped_owner_mid_take_keeps_its_slots_labelled, *boost::unit_test::timeout(60)) {
    filled_cache f{cls_a, cls_b, cls_c};
    thread_cache& c = f.c;
    std::map<const void*, std::uint32_t> truth;
    for (const cached_block& b : f.put_blocks) truth.emplace(b.ptr, b.cls);
    std::lock_guard<std::mutex> lock(c.lock());
    std::uint64_t state = 0;
    BOOST_TEST_REQUIRE(thread_cache_access::begin_take(c, cls_a, state) == 1u);
    cache_freeze z(c);
    z.freeze();
    thread_cache_access::move_slot(c, 2, 1); // the owner's first move: b down into slot 1
    barrier();
    BOOST_TEST((z.check() == outcome::in_flight));
    z.thaw(); // what freeze_until_quiet() does when the patience runs out
    thread_cache_access::move_slot(c, 3, 2); // the owner goes on: c down into slot 2
    thread_cache_access::end_take(c, state);
    BOOST_TEST(c.count() == 2u);
    BOOST_TEST(thread_cache_access::slot_ptr(c, 1) == f.put_blocks[1].ptr);
    BOOST_TEST(thread_cache_access::slot_ptr(c, 2) == f.put_blocks[2].ptr);
    const std::string problem = slots_problem(c, truth, false);
    BOOST_TEST(problem.empty(), "after the skip: " << problem);
    // What the owner gets next: a take of class a must not find the block of
    // class b, a take of class b must.
    BOOST_TEST(c.take(cls_a) == nullptr);
    for (std::uint32_t i = 1; i <= c.count(); ++i)
        thread_cache_access::set_slot_class(c, i, truth.at(thread_cache_access::slot_ptr(c, i)));
    while (!c.empty()) static_cast<void>(c.pop_oldest());
}

// The same, with the owner preempted inside one move of take(): move_slot()
// loads the class of slot 2 (marked by the freeze), and stores it into slot
// 1 only after the reclaimer gave up and thawed. The mark it copies lands on
// a slot thaw() has already been through; the owner's next section under the
// lock takes it off.
BOOST_AUTO_TEST_CASE(a_skipped_owner_mid_move_keeps_its_slots_thawed, *boost::unit_test::timeout(60)) {
    filled_cache f{cls_a, cls_b, cls_c};
    thread_cache& c = f.c;
    std::map<const void*, std::uint32_t> truth;
    for (const cached_block& b : f.put_blocks) truth.emplace(b.ptr, b.cls);
    std::lock_guard<std::mutex> lock(c.lock());
    std::uint64_t state = 0;
    BOOST_TEST_REQUIRE(thread_cache_access::begin_take(c, cls_a, state) == 1u);
    cache_freeze z(c);
    z.freeze();
    const std::uint32_t loaded = thread_cache_access::slot_class(c, 2); // move_slot(2, 1): its load
    barrier();
    BOOST_TEST((z.check() == outcome::in_flight));
    z.thaw(); // the patience ran out
    thread_cache_access::set_slot_class(c, 1, loaded); // move_slot(2, 1): its store,
    thread_cache_access::move_block(c, 2, 1);          // then the block's
    thread_cache_access::move_slot(c, 3, 2);
    thread_cache_access::end_take(c, state);
    BOOST_TEST(c.count() == 2u);
    BOOST_TEST(thread_cache_access::slot_ptr(c, 1) == f.put_blocks[1].ptr);
    // The mark the owner copied after the thaw stays until the owner's next
    // section under the lock, which takes it off (clear_stray_marks, as the
    // pool's cache_section does): until then that block cannot be taken,
    // but nothing reads a wrong class meanwhile.
    BOOST_TEST(c.oldest_class() == cls_b);
    BOOST_TEST(c.held() == upstream_size(cls_b) + upstream_size(cls_c));
    c.clear_stray_marks();
    const std::string problem = slots_problem(c, truth, false);
    BOOST_TEST(problem.empty(), "after the owner's next section: " << problem);
    BOOST_TEST(c.take(cls_b) == f.put_blocks[1].ptr); // the block of class b can be taken
    for (std::uint32_t i = 1; i <= c.count(); ++i)
        thread_cache_access::set_slot_class(c, i, truth.at(thread_cache_access::slot_ptr(c, i)));
    while (!c.empty()) static_cast<void>(c.pop_oldest());
}

BOOST_AUTO_TEST_SUITE_END()

// ---- the owner and a reclaimer, concurrently ----------------------------------------

namespace {

/// Who holds a block.
enum holder : int { in_hand = 1, in_cache = 2, with_reclaimer = 3, in_return_list = 4 };

const char* holder_name(int h) {
    switch (h) {
    case in_hand: return "the owner";
    case in_cache: return "the cache";
    case with_reclaimer: return "the reclaimer";
    case in_return_list: return "the return list";
    default: return "nobody";
    }
}

/// Small xorshift generator: each thread its own.
struct rng {
    std::uint64_t s;
    std::uint64_t operator()() noexcept {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return s;
    }
};

/// Locks `m` spinning (a sleeping waiter wakes up long after the holder let
/// go, and std::mutex is not fair: a thread that locks again at once would
/// keep the other out).
void lock_spinning(std::mutex& m) noexcept {
    for (int i = 0; !m.try_lock(); ++i)
        if (i > 64) std::this_thread::yield();
}

/// One owner thread's cache and blocks, and the list the reclaimer hands
/// taken blocks back through.
struct owner_side {
    static constexpr std::uint32_t capacity = 6;
    static constexpr std::size_t per_class = 3;

    struct tracked {
        void* ptr;
        std::uint32_t cls;
        std::atomic<int> holder{in_hand};
    };

    null_pool pool;
    blocks heap;
    thread_cache cache{pool, capacity};
    std::vector<std::uint32_t> classes;
    std::unique_ptr<tracked[]> tracked_blocks;
    std::size_t block_count = 0;
    std::size_t reservation_target = 0;
    std::atomic<bool> wants_lock{false}; // the owner waits for its lock: the reclaimer lets it have it
    std::mutex return_mutex;
    std::vector<std::size_t> returned; // indices, under return_mutex
    std::vector<std::size_t> hand;     // the owner thread's, and the main thread's after join
    zeropool_test::failure_log& failures;
    int id;

    // Counters (the owner thread's; read after join).
    std::uint64_t ops = 0, takes = 0, puts = 0, sections = 0, pushes = 0, pops = 0, drained = 0;

    owner_side(zeropool_test::failure_log& log, int owner_id, std::vector<std::uint32_t> cls)
        : classes(std::move(cls)), failures(log), id(owner_id) {
        block_count = classes.size() * per_class;
        tracked_blocks.reset(new tracked[block_count]);
        std::size_t largest = 0;
        for (std::size_t i = 0; i < block_count; ++i) {
            const std::uint32_t c = classes[i % classes.size()];
            tracked_blocks[i].ptr = heap.make(c);
            tracked_blocks[i].cls = c;
            write_tag(i, tag_of(in_hand));
            hand.push_back(i);
            largest = std::max(largest, upstream_size(c));
        }
        reservation_target = 6 * largest; // room for some of each class, not for all
    }

    // The tag word at the start of each block: which owner and party wrote it last.
    std::uint64_t tag_of(int h) const noexcept { return 0x7a90000000000000ull | (std::uint64_t(id) << 8) | unsigned(h); }
    void write_tag(std::size_t i, std::uint64_t tag) noexcept { *static_cast<std::uint64_t*>(tracked_blocks[i].ptr) = tag; }
    std::uint64_t read_tag(std::size_t i) const noexcept { return *static_cast<const std::uint64_t*>(tracked_blocks[i].ptr); }

    /// The index of block `p`, or block_count.
    std::size_t index_of(const void* p) const noexcept {
        for (std::size_t i = 0; i < block_count; ++i)
            if (tracked_blocks[i].ptr == p) return i;
        return block_count;
    }

    void fail(const std::string& what) {
        std::ostringstream s;
        s << "owner " << id << ": " << what;
        failures.add(s.str());
    }

    /// `who` acquires `p`, got as a block of class `cls` from `from`: checks
    /// the block, its class, its previous holder and its tag. Returns its
    /// index, or block_count when it is not one of ours.
    std::size_t acquire(const void* p, std::uint32_t cls, int from, int who, const char* how) {
        const std::size_t i = index_of(p);
        if (i == block_count) {
            std::ostringstream s;
            s << how << " returned " << p << ", not one of the cache's blocks";
            fail(s.str());
            return i;
        }
        if (tracked_blocks[i].cls != cls) {
            std::ostringstream s;
            s << how << " returned block " << i << " of class " << tracked_blocks[i].cls << " as class " << cls;
            fail(s.str());
        }
        const int was = tracked_blocks[i].holder.exchange(who, std::memory_order_relaxed);
        if (was != from) {
            std::ostringstream s;
            s << how << " gave " << holder_name(who) << " block " << i << " held by " << holder_name(was)
              << " (expected " << holder_name(from) << ")";
            fail(s.str());
        }
        const std::uint64_t tag = read_tag(i);
        if (tag != tag_of(from)) {
            std::ostringstream s;
            s << how << ": block " << i << " has tag " << std::hex << tag << ", not " << tag_of(from);
            fail(s.str());
        }
        write_tag(i, tag_of(who));
        return i;
    }

    /// The holder leaves block i to `to` (writes the tag first).
    void hand_over(std::size_t i, int from, int to, const char* how) {
        write_tag(i, tag_of(to));
        const int was = tracked_blocks[i].holder.exchange(to, std::memory_order_relaxed);
        if (was != from) {
            std::ostringstream s;
            s << how << ": block " << i << " was held by " << holder_name(was) << ", not " << holder_name(from);
            fail(s.str());
        }
    }

    void remember_class(std::uint32_t cls) noexcept { remember(cache, cls); }

    bool oversubscribed = false; // set before the threads start

    /// The owner thread's loop.
    void run(const std::atomic<bool>& stop, std::uint64_t seed) {
        rng r{seed};
        std::uint32_t memo = thread_cache::no_class;
        while (!stop.load(std::memory_order_relaxed)) {
            ++ops;
            if (ops % 16 == 0) section(r);
            // More threads than CPUs (two owners and the reclaimer on two):
            // let the reclaimer run now and then.
            if (ops % 256 == 0 && oversubscribed) std::this_thread::yield();
            const std::uint64_t x = r();
            const std::uint32_t cls = classes[x % classes.size()];
            if (cls != memo) { // as allocate_classified / deallocate_classified do
                remember_class(cls);
                memo = cls;
            }
            switch ((x >> 16) % 8) { // puts more often than takes: the cache fills up
            case 0:
            case 1: {
                bool check_clock = false;
                if (void* p = cache.take_newest(cls, check_clock)) got(p, cls, "take_newest");
                break;
            }
            case 2:
                if (void* p = cache.take(cls)) got(p, cls, "take");
                break;
            default: {
                const auto it = std::find_if(hand.begin(), hand.end(),
                                             [&](std::size_t i) { return tracked_blocks[i].cls == cls; });
                if (it == hand.end()) break;
                const std::size_t i = *it;
                hand_over(i, in_hand, in_cache, "try_put"); // before it is visible in the cache
                if (cache.try_put(tracked_blocks[i].ptr, cls)) {
                    ++puts;
                    hand.erase(it);
                } else {
                    hand_over(i, in_cache, in_hand, "a refused try_put");
                }
                break;
            }
            }
        }
    }

    void got(void* p, std::uint32_t cls, const char* how) {
        ++takes;
        const std::size_t i = acquire(p, cls, in_cache, in_hand, how);
        if (i != block_count) hand.push_back(i);
    }

    /// A slow-path section under the cache's lock: take back what the
    /// reclaimer returned, maybe move the oldest block out, restore the
    /// reservation (byte_budget::grow), push blocks, refresh_put_limit().
    void section(rng& r) {
        ++sections;
        wants_lock.store(true, std::memory_order_relaxed);
        lock_spinning(cache.lock());
        std::lock_guard<std::mutex> lock(cache.lock(), std::adopt_lock);
        wants_lock.store(false, std::memory_order_relaxed);
        std::vector<std::size_t> back;
        {
            std::lock_guard<std::mutex> l(return_mutex);
            back.swap(returned);
        }
        // No reclaimer holds the lock: every slot is thawed and labelled
        // with its block's class.
        const std::uint32_t n = cache.count();
        for (std::uint32_t k = 1; k <= n; ++k) {
            const std::uint32_t cls = thread_cache_access::slot_class(cache, k);
            const std::size_t b = index_of(thread_cache_access::slot_ptr(cache, k));
            std::ostringstream s;
            if ((cls & thread_cache::frozen_bit) != 0) s << "slot " << k << " of " << n << " is still frozen; ";
            if (b == block_count)
                s << "slot " << k << " holds an unknown block";
            else if (tracked_blocks[b].cls != (cls & ~thread_cache::frozen_bit))
                s << "slot " << k << " labels block " << b << " of class " << tracked_blocks[b].cls << " as class "
                  << (cls & ~thread_cache::frozen_bit);
            if (!s.str().empty()) fail("a section: " + s.str());
        }
        for (std::size_t i : back) {
            acquire(tracked_blocks[i].ptr, tracked_blocks[i].cls, in_return_list, in_hand, "the return list");
            hand.push_back(i);
            ++drained;
        }
        if (r() % 4 == 0 && !cache.empty()) {
            const cached_block b = cache.pop_oldest();
            ++pops;
            const std::size_t i = acquire(b.ptr, b.cls, in_cache, in_hand, "pop_oldest");
            if (i != block_count) hand.push_back(i);
        }
        if (cache.reserved() < reservation_target) thread_cache_access::set_reserved(cache, reservation_target);
        while (!hand.empty() && r() % 2 == 0 && !cache.full()) {
            const std::size_t i = hand.back();
            if (cache.held() + upstream_size(tracked_blocks[i].cls) > cache.reserved()) break;
            hand.pop_back();
            hand_over(i, in_hand, in_cache, "push");
            cache.push(tracked_blocks[i].ptr, tracked_blocks[i].cls);
            ++pushes;
        }
        if (cache.held() > cache.reserved()) fail("a section found held() > reserved()");
        cache.refresh_put_limit();
    }
};

struct reclaimer_counts {
    std::uint64_t rounds = 0, quiet = 0, skipped = 0, take_alls = 0, blocks_taken = 0, unused_reclaims = 0,
                  thaws = 0, blocks_seen = 0;
};

/// Lets the owners take their locks between two rounds: only when there are
/// CPUs to spare, as a yield otherwise hands an owner a whole time slice.
const bool yield_between_rounds = std::thread::hardware_concurrency() > 2;

/// The reclaimer thread's loop over `owners`' caches, `per_round` of them
/// frozen at once.
void reclaim_loop(std::vector<owner_side*>& owners, std::size_t per_round, unsigned patience_ms,
                  const std::atomic<bool>& stop, reclaimer_counts& counts, zeropool_test::failure_log& failures) {
    rng r{0x9E3779B97F4A7C15ull};
    std::vector<cache_freeze> z(per_round);
    std::vector<owner_side*> picked(per_round);
    while (!stop.load(std::memory_order_relaxed)) {
        ++counts.rounds;
        const std::size_t first = r() % owners.size();
        for (std::size_t k = 0; k < per_round; ++k) picked[k] = owners[(first + k) % owners.size()];
        // Every lock, or none (then again): an owner waiting for its lock
        // goes first; without that, the reclaimer, locking again right after
        // unlocking, would starve the owners' sections.
        for (int attempt = 0;; ++attempt) {
            if (attempt > 64) std::this_thread::yield();
            if (std::any_of(picked.begin(), picked.end(),
                            [](const owner_side* o) { return o->wants_lock.load(std::memory_order_relaxed); }))
                continue;
            std::size_t locked = 0;
            while (locked < per_round && picked[locked]->cache.lock().try_lock()) ++locked;
            if (locked == per_round) break;
            while (locked-- > 0) picked[locked]->cache.lock().unlock();
        }
        for (std::size_t k = 0; k < per_round; ++k) z[k] = cache_freeze(picked[k]->cache);
        if (!freeze_until_quiet(z.data(), per_round, patience_ms)) failures.add("freeze_until_quiet failed");
        std::vector<std::pair<owner_side*, std::size_t>> to_return;
        for (std::size_t k = 0; k < per_round; ++k) {
            owner_side& o = *picked[k];
            thread_cache& c = o.cache;
            if (z[k].skipped) {
                ++counts.skipped;
                if (z[k].quiet) failures.add("a cache both quiet and skipped");
                continue;
            }
            if (!z[k].quiet) {
                failures.add("a cache neither quiet nor skipped");
                continue;
            }
            ++counts.quiet;
            // Quiet: every slot below the count is frozen and holds a block of
            // the class it says, and the cache is its holder.
            const std::uint32_t n = c.count();
            counts.blocks_seen += n;
            for (std::uint32_t i = 1; i <= n; ++i) {
                const std::uint32_t cls = thread_cache_access::slot_class(c, i);
                const std::size_t b = o.index_of(thread_cache_access::slot_ptr(c, i));
                std::ostringstream s;
                if ((cls & thread_cache::frozen_bit) == 0) s << "slot " << i << " of " << n << " is not frozen; ";
                if (b == o.block_count) {
                    s << "slot " << i << " holds an unknown block";
                } else {
                    if (o.tracked_blocks[b].cls != (cls & ~thread_cache::frozen_bit))
                        s << "slot " << i << " of " << n << " labels block " << b << " of class "
                          << o.tracked_blocks[b].cls << " as class " << (cls & ~thread_cache::frozen_bit) << "; ";
                    const int h = o.tracked_blocks[b].holder.load(std::memory_order_relaxed);
                    if (h != in_cache) s << "slot " << i << " holds block " << b << ", held by " << holder_name(h);
                }
                if (!s.str().empty()) o.fail("quiet cache: " + s.str());
            }
            if (c.held() > c.reserved()) o.fail("quiet cache: held() > reserved()");
            switch (r() % 16) {
            case 0:
            case 1: { // trim / release by demand: every block, and (mostly) the reservation
                const std::uint64_t hits = c.hits();
                cached_block out[thread_cache::max_capacity];
                const std::uint32_t taken = z[k].take_all(out);
                ++counts.take_alls;
                counts.blocks_taken += taken;
                if (taken != n) o.fail("take_all took another number of blocks than the count");
                if (c.count() != 0) o.fail("take_all left blocks");
                if (c.hits() != hits) o.fail("take_all changed the hits");
                for (std::uint32_t i = 0; i < taken; ++i) {
                    const std::size_t b = o.acquire(out[i].ptr, out[i].cls, in_cache, with_reclaimer, "take_all");
                    if (b != o.block_count) to_return.emplace_back(&o, b);
                }
                if (r() % 2 != 0) thread_cache_access::set_reserved(c, 0);
                z[k].thaw();
                break;
            }
            case 2: { // a budget shortage: the unused reservation
                const std::size_t unused = z[k].unused_reservation();
                if (unused != c.reserved() - c.held()) o.fail("unused_reservation() != reserved() - held()");
                thread_cache_access::set_reserved(c, c.reserved() - unused);
                ++counts.unused_reclaims;
                z[k].thaw();
                break;
            }
            default:
                ++counts.thaws;
                z[k].thaw();
                break;
            }
        }
        for (std::size_t k = per_round; k-- > 0;) picked[k]->cache.lock().unlock();
        // Hand the blocks back, as a pool would through a shard.
        for (auto& [o, b] : to_return) {
            o->hand_over(b, with_reclaimer, in_return_list, "the return list");
            std::lock_guard<std::mutex> l(o->return_mutex);
            o->returned.push_back(b);
        }
        if (yield_between_rounds) std::this_thread::yield();
        // A pause of random length: the owners fill their caches meanwhile,
        // and the next freeze lands at another point of their loops.
        const std::uint64_t pause = r() % 2048;
        for (std::uint64_t i = 0; i < pause && !stop.load(std::memory_order_relaxed); ++i) {
        }
    }
}

/// Runs `owner_count` owners and one reclaimer freezing `per_round` caches at
/// a time for `ms` milliseconds, then accounts for every block.
void run_stress(std::size_t owner_count, std::size_t per_round, unsigned patience_ms) {
    if (!process_barrier_available()) {
        BOOST_TEST_MESSAGE("process_barrier() is not available here: skipped");
        return;
    }
    const long ms = zeropool_test::env_param("ZEROPOOL_RECLAIM_STRESS_MS", 1500);
    zeropool_test::failure_log failures;
    const std::vector<std::vector<std::uint32_t>> class_sets = {
        {class_index(kib), class_index(2 * kib), class_index(4 * kib)},
        {class_index(1536), class_index(4 * kib)},
    };
    std::vector<std::unique_ptr<owner_side>> owners;
    std::vector<owner_side*> raw;
    for (std::size_t i = 0; i < owner_count; ++i) {
        owners.push_back(std::make_unique<owner_side>(failures, static_cast<int>(i), class_sets[i % class_sets.size()]));
        raw.push_back(owners.back().get());
    }
    for (auto& o : owners) o->oversubscribed = owner_count + 1 > std::thread::hardware_concurrency();
    std::atomic<bool> stop{false};
    reclaimer_counts counts;
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < owner_count; ++i)
        threads.emplace_back([&, i] { owners[i]->run(stop, 0x2545F4914F6CDD1Dull * (i + 1)); });
    threads.emplace_back([&] { reclaim_loop(raw, per_round, patience_ms, stop, counts, failures); });
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    stop.store(true, std::memory_order_relaxed);
    for (std::thread& t : threads) t.join();

    // Every block is accounted for: in the owner's hand, in its cache, or on
    // its return list, once, with the matching holder.
    std::uint64_t ops = 0, takes = 0, puts = 0;
    for (auto& o : owners) {
        std::vector<int> seen(o->block_count, 0);
        for (std::size_t i : o->hand) {
            ++seen[i];
            BOOST_TEST(o->tracked_blocks[i].holder.load() == in_hand);
        }
        {
            std::lock_guard<std::mutex> lock(o->cache.lock());
            while (!o->cache.empty()) {
                const cached_block b = o->cache.pop_oldest();
                const std::size_t i = o->acquire(b.ptr, b.cls, in_cache, in_hand, "the final pop_oldest");
                if (i != o->block_count) ++seen[i];
            }
        }
        for (std::size_t i : o->returned) {
            ++seen[i];
            BOOST_TEST(o->tracked_blocks[i].holder.load() == in_return_list);
        }
        for (std::size_t i = 0; i < o->block_count; ++i)
            BOOST_TEST(seen[i] == 1, "owner " << o->id << ": block " << i << " found " << seen[i] << " times");
        BOOST_TEST_MESSAGE("owner " << o->id << ": " << o->ops << " operations, " << o->takes << " takes, " << o->puts
                                    << " puts, " << o->sections << " sections (" << o->pushes << " pushes, " << o->pops
                                    << " pops, " << o->drained << " blocks back from the reclaimer), hits "
                                    << o->cache.hits());
        ops += o->ops;
        takes += o->takes;
        puts += o->puts;
    }
    BOOST_TEST_MESSAGE("reclaimer: " << counts.rounds << " rounds, " << counts.quiet << " caches quiet (holding "
                                     << counts.blocks_seen << " blocks in all), " << counts.skipped << " skipped, " << counts.take_alls << " take_all ("
                                     << counts.blocks_taken << " blocks), " << counts.unused_reclaims
                                     << " unused reservations, " << counts.thaws << " plain thaws");
    failures.report();
    // Both sides made progress.
    BOOST_TEST(takes > 0u);
    BOOST_TEST(puts > 0u);
    BOOST_TEST(counts.quiet > 0u);
    BOOST_TEST(counts.blocks_taken > 0u);
    static_cast<void>(ops);
}

} // namespace

BOOST_AUTO_TEST_SUITE(concurrent_suite)

// The pool's patience: an owner mid-operation is waited for.
BOOST_AUTO_TEST_CASE(one_owner_and_a_reclaimer_never_share_a_block, *boost::unit_test::timeout(120)) {
    run_stress(1, 1, 100);
}

// No patience: a cache whose owner is mid-operation is thawed and skipped at
// once, so thaw() runs while owner operations are in flight.
BOOST_AUTO_TEST_CASE(an_impatient_reclaimer_never_shares_a_block, *boost::unit_test::timeout(120)) {
    run_stress(1, 1, 0);
}

// Two owners, both caches frozen in one freeze_until_quiet call.
BOOST_AUTO_TEST_CASE(two_owners_frozen_together_never_share_a_block, *boost::unit_test::timeout(120)) {
    run_stress(2, 2, 100);
}

BOOST_AUTO_TEST_SUITE_END()
