// zeropool::detail::thread_cache (src/thread_cache.hpp), the per-(thread, pool)
// tier, on its own: try_put within the capacity and the put limit, the put
// limit that remember() and refresh_put_limit() compute from the reservation
// for the remembered class, take / take_newest (LIFO, class matching), a take
// below the newest keeping the age order, pop_oldest and push, the held /
// reserved / count bookkeeping, the hit counter and the clock checks it asks
// for, the state snapshot, the request memo, repeated_miss and
// count_slow_call.
//
// The cache is used by one thread here, as its owner, the way the pool uses
// it: remember() before a put of a class (as deallocate does), the sections
// that change the reservation under lock(), each ending with
// refresh_put_limit(). Its blocks are plain heap memory of upstream_size(cls)
// bytes that the test owns and frees itself. The pool it belongs to is a
// do-nothing registered_pool: none of these members calls it. What another
// thread does to a cache (freeze, take_all, thaw) is test/cache_reclaim_test.cpp.
#include "../src/thread_cache.hpp"
#include "../src/thread_registry.hpp"

#define BOOST_TEST_MODULE thread_cache
#include <boost/test/unit_test.hpp>

#include <zeropool/detail/size_class.hpp>

#include "test_support.hpp"
#include "tier_blocks.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <tuple>
#include <vector>

// The cache's reservation has one writer, byte_budget (src/byte_budget.hpp);
// thread_cache names this struct its friend so that these tests can set it,
// and read the put limit they expect remember() and refresh_put_limit() to set.
namespace zeropool::detail {
struct thread_cache_access {
    static void set_reserved(thread_cache& c, std::size_t bytes) noexcept { c.set_reserved(bytes); }
    static std::uint32_t put_limit(const thread_cache& c) noexcept {
        return c.put_limit_.load(std::memory_order_relaxed);
    }
};
} // namespace zeropool::detail

namespace {

using zeropool::detail::cached_block;
using zeropool::detail::class_index;
using zeropool::detail::class_size;
using zeropool::detail::registered_pool;
using zeropool::detail::thread_cache;
using zeropool::detail::thread_cache_access;
using zeropool::detail::upstream_size;
using zeropool_test::kib;
using zeropool_test::mib;

/// Sets the reservation of `c` (>= c.held()) under its lock, as byte_budget
/// does in the pool's sections, and ends the section as they do.
void set_reserved(thread_cache& c, std::size_t bytes) noexcept {
    std::lock_guard<std::mutex> lock(c.lock());
    thread_cache_access::set_reserved(c, bytes);
    c.refresh_put_limit();
}

/// The same without refresh_put_limit(): the put limit stays what it was.
void set_reserved_only(thread_cache& c, std::size_t bytes) noexcept {
    std::lock_guard<std::mutex> lock(c.lock());
    thread_cache_access::set_reserved(c, bytes);
}

std::uint32_t put_limit(const thread_cache& c) noexcept { return thread_cache_access::put_limit(c); }

/// Remembers a request of class `cls` (its class size, alignment 16), as the
/// pool's classified paths do.
void remember(thread_cache& c, std::uint32_t cls) noexcept {
    const std::size_t size = class_size(cls);
    c.remember(size, 16, cls, upstream_size(cls), zeropool::detail::data_offset(size, 16));
}

/// A put as deallocate_classified does it: remember the class, then try_put.
bool put(thread_cache& c, void* p, std::uint32_t cls) noexcept {
    remember(c, cls);
    return c.try_put(p, cls);
}

/// What the put limit should be: the count, plus how many more blocks of
/// `bytes` fit in what the reservation does not hold, at most `capacity`.
std::uint32_t expected_limit(std::uint32_t count, std::size_t held, std::size_t reserved, std::size_t bytes,
                             std::uint32_t capacity) {
    const std::size_t more = reserved > held ? (reserved - held) / bytes : 0;
    return static_cast<std::uint32_t>(std::min<std::size_t>(capacity, count + more));
}

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
const std::uint32_t cls_c = class_index(mib);
const std::uint32_t cls_d = class_index(5 * kib);
const std::size_t bytes_a = upstream_size(cls_a);
const std::size_t bytes_b = upstream_size(cls_b);
const std::size_t bytes_c = upstream_size(cls_c);
const std::size_t bytes_d = upstream_size(cls_d);

using blocks = zeropool_test::tier_blocks;

/// held() and the other counters agree with what the test knows is cached.
void expect_books(const thread_cache& c, std::uint32_t count, std::size_t held, std::size_t reserved) {
    BOOST_TEST(c.count() == count);
    BOOST_TEST(c.empty() == (count == 0));
    BOOST_TEST(c.held() == held);
    BOOST_TEST(c.reserved() == reserved);
}

void pop_all(thread_cache& c) {
    std::lock_guard<std::mutex> lock(c.lock());
    while (!c.empty()) static_cast<void>(c.pop_oldest());
    c.refresh_put_limit();
}

#ifdef ZEROPOOL_ASAN
bool poisoned(const void* p) { return __asan_address_is_poisoned(p) != 0; }
#endif

} // namespace

BOOST_AUTO_TEST_SUITE(thread_cache_suite)

BOOST_AUTO_TEST_CASE(a_new_cache_is_empty_and_reserves_nothing, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 4);
    BOOST_TEST(c.pool_ == &pool);
    expect_books(c, 0, 0, 0);
    BOOST_TEST(!c.full());
    BOOST_TEST(c.free_slots() == 4u);
    BOOST_TEST(c.hits() == 0u);
    BOOST_TEST(put_limit(c) == 0u);
    bool check_clock = false;
    BOOST_TEST(c.take(cls_a) == nullptr);
    BOOST_TEST(c.take_newest(cls_a, check_clock) == nullptr);
    BOOST_TEST(!check_clock);
    BOOST_TEST(c.hits() == 0u);
    // No reservation yet: not even one block may be cached, whatever the
    // remembered class.
    BOOST_TEST(!put(c, heap.make(cls_a), cls_a));
    BOOST_TEST(put_limit(c) == 0u);
    expect_books(c, 0, 0, 0);
}

BOOST_AUTO_TEST_CASE(try_put_respects_the_capacity, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    for (std::uint32_t capacity : {1u, 4u, thread_cache::max_capacity}) {
        BOOST_TEST_CONTEXT("capacity " << capacity) {
            thread_cache c(pool, capacity);
            set_reserved(c, 100 * bytes_b); // the reservation is not what stops it
            remember(c, cls_b);
            BOOST_TEST(put_limit(c) == capacity); // covered, but no more slots than that
            for (std::uint32_t i = 0; i < capacity; ++i) {
                BOOST_TEST(c.free_slots() == capacity - i);
                BOOST_TEST(c.try_put(heap.make(cls_b), cls_b));
            }
            BOOST_TEST(c.full());
            BOOST_TEST(c.free_slots() == 0u);
            void* refused = heap.make(cls_a);
            BOOST_TEST(!put(c, refused, cls_a));
            expect_books(c, capacity, capacity * bytes_b, 100 * bytes_b);
            BOOST_TEST(c.take(cls_a) == nullptr); // the refused block was not kept
            // One out: room for one.
            BOOST_TEST(c.take(cls_b) != nullptr);
            BOOST_TEST(!c.full());
            BOOST_TEST(c.try_put(refused, cls_a)); // class a is still the remembered one
            BOOST_TEST(c.full());
            BOOST_TEST(!c.try_put(heap.make(cls_a), cls_a));
            pop_all(c);
        }
    }
}

BOOST_AUTO_TEST_CASE(try_put_succeeds_while_the_count_is_below_the_put_limit, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 8);
    // Room for two and a half blocks of class b: a limit of two.
    const std::size_t reserved = 2 * bytes_b + bytes_b / 2;
    set_reserved(c, reserved);
    remember(c, cls_b);
    BOOST_TEST(put_limit(c) == 2u);
    void* b1 = heap.make(cls_b);
    void* b2 = heap.make(cls_b);
    void* b3 = heap.make(cls_b);
    BOOST_TEST(c.try_put(b1, cls_b));
    BOOST_TEST(c.try_put(b2, cls_b));
    BOOST_TEST(!c.try_put(b3, cls_b)); // slots free, reservation spent
    BOOST_TEST(!c.full());
    BOOST_TEST(put_limit(c) == 2u);    // a put changes the count, not the limit
    expect_books(c, 2, 2 * bytes_b, reserved);
    // A take of the remembered class gives its bytes back to the room, not to
    // the pool: the limit stays, so the next put of that class fits again.
    BOOST_TEST(c.take(cls_b) == b2);
    BOOST_TEST(put_limit(c) == 2u);
    expect_books(c, 1, bytes_b, reserved);
    BOOST_TEST(c.try_put(b3, cls_b));
    BOOST_TEST(!c.try_put(b2, cls_b));
    expect_books(c, 2, 2 * bytes_b, reserved);
    // A smaller class fits in what is left, once remembered: 2 + half a
    // block of class b in blocks of class a.
    remember(c, cls_a);
    BOOST_TEST(put_limit(c) == expected_limit(2, 2 * bytes_b, reserved, bytes_a, 8));
    BOOST_TEST(put_limit(c) == 8u); // capped by the capacity: bytes_b / 2 / bytes_a == 8
    std::uint32_t put_a = 0;
    while (c.try_put(heap.make(cls_a), cls_a)) ++put_a;
    BOOST_TEST(put_a == 6u);
    BOOST_TEST(c.full());
    BOOST_TEST(c.held() <= c.reserved());
    pop_all(c);
}

BOOST_AUTO_TEST_CASE(the_put_limit_follows_remember, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 16);
    const std::size_t reserved = 2 * bytes_b;
    set_reserved(c, reserved);
    // The initial memo's class has no size a reservation covers: 0.
    BOOST_TEST(put_limit(c) == 0u);
    // Remembering a class sets the limit for it, from the count and the room.
    remember(c, cls_c); // 1 MiB: more than the reservation
    BOOST_TEST(put_limit(c) == 0u);
    BOOST_TEST(!c.try_put(heap.make(cls_c), cls_c));
    remember(c, cls_b);
    BOOST_TEST(put_limit(c) == 2u);
    remember(c, cls_a);
    BOOST_TEST(put_limit(c) == 16u); // 32 blocks of class a fit; 16 slots
    BOOST_TEST(c.try_put(heap.make(cls_a), cls_a));
    // With a block of class a held, one block of class b fits beside it.
    remember(c, cls_b);
    BOOST_TEST(put_limit(c) == expected_limit(1, bytes_a, reserved, bytes_b, 16));
    BOOST_TEST(put_limit(c) == 2u);
    BOOST_TEST(c.try_put(heap.make(cls_b), cls_b));
    BOOST_TEST(!c.try_put(heap.make(cls_b), cls_b));
    expect_books(c, 2, bytes_a + bytes_b, reserved);
    remember(c, cls_d);
    BOOST_TEST(put_limit(c) == expected_limit(2, bytes_a + bytes_b, reserved, bytes_d, 16));
    BOOST_TEST(put_limit(c) == 2u + static_cast<std::uint32_t>((bytes_b - bytes_a) / bytes_d));
    // A reservation that grows without refresh_put_limit() changes nothing...
    set_reserved_only(c, reserved + bytes_b);
    BOOST_TEST(put_limit(c) == 2u + static_cast<std::uint32_t>((bytes_b - bytes_a) / bytes_d));
    remember(c, cls_b);
    // ...until remember() computes the limit again.
    BOOST_TEST(put_limit(c) == 3u);
    BOOST_TEST(c.try_put(heap.make(cls_b), cls_b));
    BOOST_TEST(!c.try_put(heap.make(cls_b), cls_b));
    expect_books(c, 3, bytes_a + 2 * bytes_b, reserved + bytes_b);
    BOOST_TEST(c.held() <= c.reserved());
    pop_all(c);
}

BOOST_AUTO_TEST_CASE(refresh_put_limit_recomputes_it_under_the_lock, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 8);
    set_reserved(c, 4 * bytes_b);
    remember(c, cls_b);
    void* b[4];
    for (void*& p : b) {
        p = heap.make(cls_b);
        BOOST_TEST(c.try_put(p, cls_b));
    }
    BOOST_TEST(put_limit(c) == 4u);
    {
        // A section moves the two oldest blocks out and gives their budget
        // back (as spill_and_cache does); the limit is what it was until
        // refresh_put_limit().
        std::lock_guard<std::mutex> lock(c.lock());
        BOOST_TEST(c.pop_oldest().ptr == b[0]);
        BOOST_TEST(c.pop_oldest().ptr == b[1]);
        thread_cache_access::set_reserved(c, 2 * bytes_b);
        BOOST_TEST(put_limit(c) == 4u);
        c.refresh_put_limit();
        BOOST_TEST(put_limit(c) == 2u); // the count, and no room
    }
    BOOST_TEST(!c.try_put(b[0], cls_b));
    expect_books(c, 2, 2 * bytes_b, 2 * bytes_b);
    {
        // push() (the caller reserved for it) does not touch the limit either.
        std::lock_guard<std::mutex> lock(c.lock());
        thread_cache_access::set_reserved(c, 5 * bytes_b);
        c.push(b[0], cls_b);
        BOOST_TEST(put_limit(c) == 2u);
        c.refresh_put_limit();
        BOOST_TEST(put_limit(c) == 5u); // 3 held, room for 2 more
    }
    BOOST_TEST(c.try_put(b[1], cls_b));
    BOOST_TEST(c.try_put(heap.make(cls_b), cls_b));
    BOOST_TEST(!c.try_put(heap.make(cls_b), cls_b));
    expect_books(c, 5, 5 * bytes_b, 5 * bytes_b);
    {
        // The limit is for the remembered class, whatever the slots hold.
        std::lock_guard<std::mutex> lock(c.lock());
        thread_cache_access::set_reserved(c, 5 * bytes_b + 2 * bytes_a);
        c.refresh_put_limit();
        BOOST_TEST(put_limit(c) == 5u); // two blocks of class a would fit, not one of b
    }
    remember(c, cls_a);
    BOOST_TEST(put_limit(c) == 7u);
    pop_all(c); // refresh_put_limit() with the memo of class a
    BOOST_TEST(put_limit(c) == 8u); // capacity
}

BOOST_AUTO_TEST_CASE(take_is_lifo_and_matches_the_class, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 8);
    set_reserved(c, mib);
    void* a1 = heap.make(cls_a);
    void* b1 = heap.make(cls_b);
    void* a2 = heap.make(cls_a);
    void* a3 = heap.make(cls_a);
    for (auto [p, cls] : {std::tuple{a1, cls_a}, std::tuple{b1, cls_b}, std::tuple{a2, cls_a}, std::tuple{a3, cls_a}})
        BOOST_TEST(put(c, p, cls));
    bool check_clock = false;
    // Classes with no block: nothing, and nothing changes.
    BOOST_TEST(c.take(cls_c) == nullptr);
    BOOST_TEST(c.take(cls_d) == nullptr);
    BOOST_TEST(c.take_newest(cls_b, check_clock) == nullptr); // b1 is there, but not the newest
    expect_books(c, 4, 3 * bytes_a + bytes_b, mib);
    BOOST_TEST(c.hits() == 0u);
    // The newest block of the class first.
    BOOST_TEST(c.take_newest(cls_a, check_clock) == a3);
    BOOST_TEST(c.take(cls_a) == a2);
    BOOST_TEST(c.take_newest(cls_a, check_clock) == nullptr); // the newest is b1 now
    BOOST_TEST(c.take(cls_a) == a1);                          // below it
    BOOST_TEST(c.take(cls_a) == nullptr);
    expect_books(c, 1, bytes_b, mib);
    BOOST_TEST(c.take(cls_b) == b1);
    BOOST_TEST(c.take(cls_b) == nullptr);
    expect_books(c, 0, 0, mib);
    // A block put after takes is the newest.
    BOOST_TEST(put(c, a1, cls_a));
    BOOST_TEST(put(c, a2, cls_a));
    BOOST_TEST(c.take_newest(cls_a, check_clock) == a2);
    BOOST_TEST(c.take(cls_a) == a1);
    BOOST_TEST(c.hits() == 6u);
    BOOST_TEST(!check_clock);
}

BOOST_AUTO_TEST_CASE(take_of_an_older_block_keeps_the_age_order, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 8);
    set_reserved(c, 4 * mib);
    const std::uint32_t classes[] = {cls_a, cls_b, cls_c, cls_b, cls_d, cls_a};
    std::vector<void*> put_blocks;
    for (std::uint32_t cls : classes) {
        put_blocks.push_back(heap.make(cls));
        BOOST_TEST(put(c, put_blocks.back(), cls));
    }
    // The newest block of class b is the fourth of six: taken from the
    // middle, and the older block of class b stays.
    BOOST_TEST(c.take(cls_b) == put_blocks[3]);
    // Likewise the only block of class c, the third.
    BOOST_TEST(c.take(cls_c) == put_blocks[2]);
    expect_books(c, 4, 2 * bytes_a + bytes_b + bytes_d, 4 * mib);
    // What is left comes out oldest first, in the order it was put.
    std::lock_guard<std::mutex> lock(c.lock());
    const std::size_t expected[] = {0, 1, 4, 5};
    for (std::size_t i : expected) {
        BOOST_TEST_CONTEXT("block " << i) {
            BOOST_TEST(c.oldest_class() == classes[i]);
            const cached_block b = c.pop_oldest();
            BOOST_TEST(b.ptr == put_blocks[i]);
            BOOST_TEST(b.cls == classes[i]);
        }
    }
    expect_books(c, 0, 0, 4 * mib);
}

BOOST_AUTO_TEST_CASE(pop_oldest_returns_oldest_first_and_keeps_the_reservation, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 4);
    const std::size_t reserved = 2 * bytes_b + 2 * bytes_a;
    set_reserved(c, reserved);
    const std::uint32_t classes[] = {cls_b, cls_a, cls_b, cls_a};
    std::vector<void*> put_blocks;
    std::size_t held = 0;
    for (std::uint32_t cls : classes) {
        put_blocks.push_back(heap.make(cls));
        BOOST_TEST(put(c, put_blocks.back(), cls));
        held += upstream_size(cls);
    }
    BOOST_TEST(c.full());
    BOOST_TEST(held == reserved);
    {
        std::lock_guard<std::mutex> lock(c.lock());
        for (std::size_t i = 0; i < 4; ++i) {
            BOOST_TEST_CONTEXT("pop " << i) {
                BOOST_TEST(c.oldest_class() == classes[i]);
                const cached_block b = c.pop_oldest();
                BOOST_TEST(b.ptr == put_blocks[i]);
                BOOST_TEST(b.cls == classes[i]);
                held -= upstream_size(classes[i]);
                expect_books(c, static_cast<std::uint32_t>(3 - i), held, reserved);
            }
        }
        c.refresh_put_limit();
    }
    BOOST_TEST(c.hits() == 0u); // moving blocks out is not a hit
    // The reservation stayed: the cache takes as much again.
    for (std::size_t i = 0; i < 4; ++i) BOOST_TEST(put(c, put_blocks[i], classes[i]));
    BOOST_TEST(c.held() == reserved);
    {
        // push() (the caller made room and reserved) adds the newest block.
        std::lock_guard<std::mutex> lock(c.lock());
        static_cast<void>(c.pop_oldest());
        c.push(put_blocks[0], cls_b);
        c.refresh_put_limit();
    }
    BOOST_TEST(c.full());
    bool check_clock = false;
    BOOST_TEST(c.take_newest(cls_b, check_clock) == put_blocks[0]);
    BOOST_TEST(c.oldest_class() == cls_a); // put_blocks[1]
    pop_all(c);
    expect_books(c, 0, 0, reserved);
}

BOOST_AUTO_TEST_CASE(held_is_the_sum_of_the_slots_classes, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 8);
    set_reserved(c, 4 * mib);
    std::size_t held = 0;
    for (std::uint32_t cls : {cls_c, cls_a, cls_d, cls_b, cls_a}) {
        BOOST_TEST(put(c, heap.make(cls), cls));
        held += upstream_size(cls);
        BOOST_TEST(c.held() == held);
    }
    BOOST_TEST(c.take(cls_d) != nullptr);
    held -= bytes_d;
    BOOST_TEST(c.held() == held);
    BOOST_TEST(c.reserved() == 4 * mib); // the slots, not the reservation
    pop_all(c);
    BOOST_TEST(c.held() == 0u);
}

BOOST_AUTO_TEST_CASE(hits_count_takes_only, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 2);
    set_reserved(c, mib);
    void* a = heap.make(cls_a);
    void* b = heap.make(cls_b);
    bool check_clock = false;
    // More hits than the block count's bits hold: the count stays right.
    const std::uint64_t rounds = 700;
    for (std::uint64_t i = 0; i < rounds; ++i) {
        BOOST_TEST_REQUIRE(put(c, a, cls_a));
        BOOST_TEST_REQUIRE(put(c, b, cls_b));
        BOOST_TEST_REQUIRE(!put(c, a, cls_a));      // full: no hit, no change
        BOOST_TEST_REQUIRE(c.take(cls_c) == nullptr); // a miss: no hit
        BOOST_TEST_REQUIRE(c.take(cls_a) == a);       // below the newest
        BOOST_TEST_REQUIRE(c.take_newest(cls_b, check_clock) == b);
        BOOST_TEST_REQUIRE(c.count() == 0u);
    }
    BOOST_TEST(c.hits() == 2 * rounds);
    expect_books(c, 0, 0, mib);
    BOOST_TEST(put(c, a, cls_a));
    pop_all(c); // not a hit
    BOOST_TEST(c.hits() == 2 * rounds);
}

BOOST_AUTO_TEST_CASE(check_clock_is_set_when_the_hits_reach_a_multiple_of_hits_per_clock_check,
                     *boost::unit_test::timeout(60)) {
    constexpr std::uint64_t period = thread_cache::hits_per_clock_check;
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 1);
    set_reserved(c, bytes_a);
    remember(c, cls_a);
    void* a = heap.make(cls_a);
    // take_newest hits, one after another: the flag is true on the hit that
    // makes the count a multiple of the period, false on every other hit.
    std::vector<std::uint64_t> flagged;
    std::uint64_t wrong_block = 0;
    for (std::uint64_t hit = 1; hit <= 2 * period + 10; ++hit) {
        BOOST_TEST_REQUIRE(c.try_put(a, cls_a));
        bool check_clock = hit % 2 == 0; // whatever it was before: a hit sets it
        if (c.take_newest(cls_a, check_clock) != a) ++wrong_block;
        if (check_clock) flagged.push_back(hit);
    }
    BOOST_TEST(wrong_block == 0u);
    const std::vector<std::uint64_t> expected = {period, 2 * period};
    BOOST_TEST(flagged == expected, boost::test_tools::per_element());
    BOOST_TEST(c.hits() == 2 * period + 10);
    // A miss is not a hit: it does not raise the flag.
    bool check_clock = false;
    BOOST_TEST(c.take_newest(cls_a, check_clock) == nullptr);
    BOOST_TEST(!check_clock);
    // Hits of take() count too: the take_newest hit that reaches the next
    // multiple raises the flag, however the hits before it were made.
    while (c.hits() < 3 * period - 1) {
        BOOST_TEST_REQUIRE(c.try_put(a, cls_a));
        BOOST_TEST_REQUIRE(c.take(cls_a) == a);
    }
    BOOST_TEST_REQUIRE(c.try_put(a, cls_a));
    check_clock = false;
    BOOST_TEST(c.take_newest(cls_a, check_clock) == a);
    BOOST_TEST(c.hits() == 3 * period);
    BOOST_TEST(check_clock);
    BOOST_TEST_REQUIRE(c.try_put(a, cls_a));
    BOOST_TEST(c.take_newest(cls_a, check_clock) == a);
    BOOST_TEST(!check_clock);
}

BOOST_AUTO_TEST_CASE(the_state_snapshot_changes_with_every_take_and_put_only, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 2);
    set_reserved(c, mib);
    void* a = heap.make(cls_a);
    void* b = heap.make(cls_b);
    std::vector<std::uint64_t> seen = {c.state_snapshot()};
    auto changed = [&] {
        const std::uint64_t s = c.state_snapshot();
        const bool is_new = std::find(seen.begin(), seen.end(), s) == seen.end();
        seen.push_back(s);
        return is_new;
    };
    auto unchanged = [&] { return c.state_snapshot() == seen.back(); };
    bool check_clock = false;
    remember(c, cls_a);
    BOOST_TEST(unchanged()); // remember() takes and puts nothing
    BOOST_TEST(c.try_put(a, cls_a));
    BOOST_TEST(changed());
    BOOST_TEST(c.take(cls_b) == nullptr);
    BOOST_TEST(c.take_newest(cls_b, check_clock) == nullptr);
    BOOST_TEST(unchanged()); // misses change nothing
    BOOST_TEST(put(c, b, cls_b));
    BOOST_TEST(changed());
    BOOST_TEST(!c.try_put(heap.make(cls_b), cls_b));
    BOOST_TEST(unchanged()); // nor does a refused put
    BOOST_TEST(c.take(cls_a) == a);
    BOOST_TEST(changed());
    BOOST_TEST(c.take_newest(cls_b, check_clock) == b);
    BOOST_TEST(changed());
    // Every snapshot after a take or a put was new: a take counts a hit, so
    // take-then-put never comes back to an earlier state.
    BOOST_TEST(put(c, b, cls_b));
    BOOST_TEST(changed());
    BOOST_TEST(c.take(cls_b) == b);
    BOOST_TEST(changed());
}

BOOST_AUTO_TEST_CASE(memo_remembers_the_last_request, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 4);
    // The initial memo matches no request a pool serves: (SIZE_MAX, 0) only.
    BOOST_TEST(c.memo_matches(~std::size_t{0}, 0));
    BOOST_TEST(!c.memo_matches(4 * kib, 16));
    BOOST_TEST(!c.memo_matches(0, 0));
    BOOST_TEST(c.memo().cls == thread_cache::no_class);
    BOOST_TEST(c.memo().cls != thread_cache::empty_class);
    // ...so a take of its class misses and a put of it is refused, whatever
    // the cache holds and reserves.
    set_reserved(c, mib);
    void* p = heap.make(cls_a);
    BOOST_TEST(put(c, p, cls_a));
    c.remember(~std::size_t{0}, 0, thread_cache::no_class, ~std::size_t{0}, 0); // back to the initial memo
    bool check_clock = false;
    BOOST_TEST(c.take(c.memo().cls) == nullptr);
    BOOST_TEST(c.take_newest(c.memo().cls, check_clock) == nullptr);
    BOOST_TEST(put_limit(c) == 1u); // the count: no room for a block of SIZE_MAX bytes
    BOOST_TEST(!c.try_put(heap.make(cls_a), c.memo().cls));
    BOOST_TEST(c.count() == 1u);
    BOOST_TEST(c.hits() == 0u);

    c.remember(5000, 16, cls_d, bytes_d, 0);
    BOOST_TEST(c.memo_matches(5000, 16));
    BOOST_TEST(!c.memo_matches(5000, 32)); // the alignment is part of the request
    BOOST_TEST(!c.memo_matches(5001, 16)); // same class, another request
    BOOST_TEST(!c.memo_matches(~std::size_t{0}, 0));
    BOOST_TEST(c.memo().bytes == 5000u);
    BOOST_TEST(c.memo().alignment == 16u);
    BOOST_TEST(c.memo().cls == cls_d);
    BOOST_TEST(c.memo().upstream == bytes_d);
    BOOST_TEST(c.memo().offset == 0u);
    // A block of the class starts aligned to this mask's bit; a fitted one
    // does not (src/fitted_block.hpp).
    BOOST_TEST(c.memo().exact_mask == zeropool::detail::block_alignment(cls_d) - 1);

    c.remember(mib, 8, cls_c, bytes_c, zeropool::detail::low_alignment_offset);
    BOOST_TEST(c.memo_matches(mib, 8));
    BOOST_TEST(!c.memo_matches(5000, 16)); // only the last request is remembered
    BOOST_TEST(c.memo().cls == cls_c);
    BOOST_TEST(c.memo().upstream == bytes_c);
    BOOST_TEST(c.memo().offset == zeropool::detail::low_alignment_offset);
    // The memo is not the slots: remembering changed no block.
    BOOST_TEST(c.count() == 1u);
    BOOST_TEST(c.take(cls_a) == p);
}

BOOST_AUTO_TEST_CASE(repeated_miss_is_true_for_the_same_class_twice_in_a_row, *boost::unit_test::timeout(60)) {
    null_pool pool;
    thread_cache c(pool, 4);
    BOOST_TEST(!c.repeated_miss(cls_a)); // the first miss
    BOOST_TEST(c.repeated_miss(cls_a));
    BOOST_TEST(c.repeated_miss(cls_a));
    BOOST_TEST(!c.repeated_miss(cls_b)); // another class
    BOOST_TEST(!c.repeated_miss(cls_a)); // its previous miss was b
    BOOST_TEST(c.repeated_miss(cls_a));
    // Hits in between do not reset it: it looks at misses only.
    blocks heap;
    set_reserved(c, mib);
    void* p = heap.make(cls_a);
    BOOST_TEST(put(c, p, cls_a));
    BOOST_TEST(c.take(cls_a) == p);
    BOOST_TEST(c.repeated_miss(cls_a));
}

BOOST_AUTO_TEST_CASE(count_slow_call_is_true_once_every_period_calls, *boost::unit_test::timeout(60)) {
    null_pool pool;
    thread_cache c(pool, 4);
    std::vector<int> due;
    for (int call = 1; call <= 200; ++call)
        if (c.count_slow_call(64)) due.push_back(call);
    const std::vector<int> expected = {64, 128, 192};
    BOOST_TEST(due == expected, boost::test_tools::per_element());
    BOOST_TEST(c.count_slow_call(1));
    BOOST_TEST(c.count_slow_call(1));
}

// Under AddressSanitizer a block is poisoned while the cache holds it and
// usable again once it leaves, by take, take_newest or pop_oldest
// (docs/design.md, "Use-after-put detection"). Elsewhere there is nothing to
// check.
BOOST_AUTO_TEST_CASE(idle_blocks_are_poisoned_under_asan,
                     *boost::unit_test::enable_if<zeropool_test::asan>() * boost::unit_test::timeout(60)) {
#ifdef ZEROPOOL_ASAN
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 4);
    set_reserved(c, mib);
    void* p = heap.make(cls_b);
    void* q = heap.make(cls_a);
    void* r = heap.make(cls_a);
    void* s = heap.make(cls_a);
    BOOST_TEST(put(c, p, cls_b));
    BOOST_TEST(put(c, q, cls_a));
    {
        std::lock_guard<std::mutex> lock(c.lock());
        c.push(r, cls_a);
        c.push(s, cls_a);
        c.refresh_put_limit();
    }
    for (void* x : {p, q, r, s}) BOOST_TEST(poisoned(x));
    BOOST_TEST(poisoned(static_cast<char*>(p) + bytes_b - 1));
    bool check_clock = false;
    BOOST_TEST(c.take_newest(cls_a, check_clock) == s);
    BOOST_TEST(!poisoned(s));
    BOOST_TEST(!poisoned(static_cast<char*>(s) + bytes_a - 1));
    BOOST_TEST(c.take(cls_a) == r);
    BOOST_TEST(!poisoned(r));
    BOOST_TEST(!poisoned(static_cast<char*>(r) + bytes_a - 1));
    {
        std::lock_guard<std::mutex> lock(c.lock());
        BOOST_TEST(c.pop_oldest().ptr == p);
    }
    BOOST_TEST(!poisoned(p));
    BOOST_TEST(!poisoned(static_cast<char*>(p) + bytes_b - 1));
    BOOST_TEST(poisoned(q)); // still cached
#endif
}

BOOST_AUTO_TEST_SUITE_END()
