// zeropool::detail::thread_cache (src/thread_cache.hpp), the per-(thread, pool)
// tier, on its own: try_put within the capacity and the reservation, take /
// take_newest (LIFO, class matching), a take below the newest keeping the age
// order, pop_oldest, the held / reserved / count bookkeeping, the hit counter,
// the request memo and repeated_miss.
//
// The cache is used by one thread here, as its owner. Its blocks are plain
// heap memory of upstream_size(cls) bytes that the test owns and frees itself.
// The pool it belongs to is a do-nothing registered_pool: none of these
// members calls it.
#include "../src/thread_cache.hpp"
#include "../src/thread_registry.hpp"

#define BOOST_TEST_MODULE thread_cache
#include <boost/test/unit_test.hpp>

#include <zeropool/detail/size_class.hpp>

#include "test_support.hpp"
#include "tier_blocks.hpp"

#include <cstddef>
#include <cstdint>
#include <new>
#include <tuple>
#include <vector>

// The cache's reservation has one writer, byte_budget (src/byte_budget.hpp);
// thread_cache names this struct its friend so that these tests can set it.
namespace zeropool::detail {
struct thread_cache_access {
    static void set_reserved(thread_cache& c, std::size_t bytes) noexcept { c.set_reserved(bytes); }
};
} // namespace zeropool::detail

namespace {

using zeropool::detail::cached_block;
using zeropool::detail::class_index;
using zeropool::detail::registered_pool;
using zeropool::detail::thread_cache;
using zeropool::detail::upstream_size;
using zeropool_test::kib;
using zeropool_test::mib;

/// Sets the reservation of `c` (>= c.held()), as byte_budget does.
void set_reserved(thread_cache& c, std::size_t bytes) noexcept {
    zeropool::detail::thread_cache_access::set_reserved(c, bytes);
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
    BOOST_TEST(c.published_held() == held); // the snapshot stats() reads, exact in one thread
    BOOST_TEST(c.reserved() == reserved);
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
    BOOST_TEST(c.take(cls_a, bytes_a) == nullptr);
    BOOST_TEST(c.take_newest(cls_a, bytes_a) == nullptr);
    BOOST_TEST(c.hits() == 0u);
    // No reservation yet: not even one block may be cached.
    BOOST_TEST(!c.try_put(heap.make(cls_a), cls_a, bytes_a));
    expect_books(c, 0, 0, 0);
}

BOOST_AUTO_TEST_CASE(try_put_respects_the_capacity, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    for (std::uint32_t capacity : {1u, 4u, thread_cache::max_capacity}) {
        BOOST_TEST_CONTEXT("capacity " << capacity) {
            thread_cache c(pool, capacity);
            set_reserved(c, 100 * bytes_b); // the reservation is not what stops it
            for (std::uint32_t i = 0; i < capacity; ++i) {
                BOOST_TEST(c.free_slots() == capacity - i);
                BOOST_TEST(c.try_put(heap.make(cls_b), cls_b, bytes_b));
            }
            BOOST_TEST(c.full());
            BOOST_TEST(c.free_slots() == 0u);
            void* refused = heap.make(cls_a);
            BOOST_TEST(!c.try_put(refused, cls_a, bytes_a));
            expect_books(c, capacity, capacity * bytes_b, 100 * bytes_b);
            BOOST_TEST(c.take(cls_a, bytes_a) == nullptr); // the refused block was not kept
            // One out: room for one.
            BOOST_TEST(c.take(cls_b, bytes_b) != nullptr);
            BOOST_TEST(!c.full());
            BOOST_TEST(c.try_put(refused, cls_a, bytes_a));
            BOOST_TEST(c.full());
            while (!c.empty()) static_cast<void>(c.pop_oldest(upstream_size(c.oldest_class())));
        }
    }
}

BOOST_AUTO_TEST_CASE(try_put_respects_the_reservation, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 8);
    // Room for two and a half blocks of class b.
    set_reserved(c, 2 * bytes_b + bytes_b / 2);
    BOOST_TEST(c.try_put(heap.make(cls_b), cls_b, bytes_b));
    BOOST_TEST(c.try_put(heap.make(cls_b), cls_b, bytes_b));
    void* third = heap.make(cls_b);
    BOOST_TEST(!c.try_put(third, cls_b, bytes_b)); // slots free, reservation spent
    BOOST_TEST(!c.full());
    expect_books(c, 2, 2 * bytes_b, 2 * bytes_b + bytes_b / 2);
    // A smaller block still fits in what is left.
    void* small = heap.make(cls_a);
    BOOST_TEST(c.try_put(small, cls_a, bytes_a));
    expect_books(c, 3, 2 * bytes_b + bytes_a, 2 * bytes_b + bytes_b / 2);
    // Growing the reservation makes room; a block that exactly fills it fits.
    set_reserved(c, 3 * bytes_b + bytes_a);
    BOOST_TEST(c.try_put(third, cls_b, bytes_b));
    expect_books(c, 4, 3 * bytes_b + bytes_a, 3 * bytes_b + bytes_a);
    BOOST_TEST(!c.try_put(heap.make(cls_a), cls_a, bytes_a)); // no byte left
    // A take gives its bytes back to the room, not to the pool: the
    // reservation stays, so the next put of that size fits again.
    void* p = c.take(cls_b, bytes_b);
    BOOST_TEST(p == third);
    expect_books(c, 3, 2 * bytes_b + bytes_a, 3 * bytes_b + bytes_a);
    BOOST_TEST(c.try_put(p, cls_b, bytes_b));
    // Lowering the reservation to what is held leaves no room.
    while (c.take(cls_b, bytes_b) != nullptr) {
    }
    expect_books(c, 1, bytes_a, 3 * bytes_b + bytes_a);
    set_reserved(c, bytes_a);
    expect_books(c, 1, bytes_a, bytes_a);
    BOOST_TEST(!c.try_put(third, cls_b, bytes_b));
    BOOST_TEST(c.take(cls_a, bytes_a) == small);
    expect_books(c, 0, 0, bytes_a);
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
    for (auto [p, cls, bytes] : {std::tuple{a1, cls_a, bytes_a}, std::tuple{b1, cls_b, bytes_b},
                                 std::tuple{a2, cls_a, bytes_a}, std::tuple{a3, cls_a, bytes_a}})
        BOOST_TEST(c.try_put(p, cls, bytes));
    // Classes with no block: nothing, and nothing changes.
    BOOST_TEST(c.take(cls_c, bytes_c) == nullptr);
    BOOST_TEST(c.take(cls_d, bytes_d) == nullptr);
    BOOST_TEST(c.take_newest(cls_b, bytes_b) == nullptr); // b1 is there, but not the newest
    expect_books(c, 4, 3 * bytes_a + bytes_b, mib);
    BOOST_TEST(c.hits() == 0u);
    // The newest block of the class first.
    BOOST_TEST(c.take_newest(cls_a, bytes_a) == a3);
    BOOST_TEST(c.take(cls_a, bytes_a) == a2);
    BOOST_TEST(c.take_newest(cls_a, bytes_a) == nullptr); // the newest is b1 now
    BOOST_TEST(c.take(cls_a, bytes_a) == a1);             // below it
    BOOST_TEST(c.take(cls_a, bytes_a) == nullptr);
    expect_books(c, 1, bytes_b, mib);
    BOOST_TEST(c.take(cls_b, bytes_b) == b1);
    BOOST_TEST(c.take(cls_b, bytes_b) == nullptr);
    expect_books(c, 0, 0, mib);
    // A block put after takes is the newest.
    BOOST_TEST(c.try_put(a1, cls_a, bytes_a));
    BOOST_TEST(c.try_put(a2, cls_a, bytes_a));
    BOOST_TEST(c.take(cls_a, bytes_a) == a2);
    BOOST_TEST(c.take(cls_a, bytes_a) == a1);
    BOOST_TEST(c.hits() == 6u);
}

BOOST_AUTO_TEST_CASE(take_of_an_older_block_keeps_the_age_order, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 8);
    set_reserved(c, 4 * mib);
    const std::uint32_t classes[] = {cls_a, cls_b, cls_c, cls_b, cls_d, cls_a};
    std::vector<void*> put;
    for (std::uint32_t cls : classes) {
        put.push_back(heap.make(cls));
        BOOST_TEST(c.try_put(put.back(), cls, upstream_size(cls)));
    }
    // The newest block of class b is the fourth of six: taken from the
    // middle, and the older block of class b stays.
    BOOST_TEST(c.take(cls_b, bytes_b) == put[3]);
    // Likewise the only block of class c, the third.
    BOOST_TEST(c.take(cls_c, bytes_c) == put[2]);
    expect_books(c, 4, 2 * bytes_a + bytes_b + bytes_d, 4 * mib);
    // What is left comes out oldest first, in the order it was put.
    const std::size_t expected[] = {0, 1, 4, 5};
    for (std::size_t i : expected) {
        BOOST_TEST_CONTEXT("block " << i) {
            BOOST_TEST(c.oldest_class() == classes[i]);
            const cached_block b = c.pop_oldest(upstream_size(classes[i]));
            BOOST_TEST(b.ptr == put[i]);
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
    std::vector<void*> put;
    std::size_t held = 0;
    for (std::uint32_t cls : classes) {
        put.push_back(heap.make(cls));
        BOOST_TEST(c.try_put(put.back(), cls, upstream_size(cls)));
        held += upstream_size(cls);
    }
    BOOST_TEST(c.full());
    for (std::size_t i = 0; i < 4; ++i) {
        BOOST_TEST_CONTEXT("pop " << i) {
            BOOST_TEST(c.oldest_class() == classes[i]);
            const cached_block b = c.pop_oldest(upstream_size(classes[i]));
            BOOST_TEST(b.ptr == put[i]);
            BOOST_TEST(b.cls == classes[i]);
            held -= upstream_size(classes[i]);
            expect_books(c, static_cast<std::uint32_t>(3 - i), held, reserved);
        }
    }
    BOOST_TEST(c.hits() == 0u); // moving blocks out is not a hit
    // The reservation stayed: the cache takes as much again.
    for (std::size_t i = 0; i < 4; ++i) BOOST_TEST(c.try_put(put[i], classes[i], upstream_size(classes[i])));
    BOOST_TEST(c.held() == reserved);
    // push() (the caller made room and reserved) adds the newest block.
    static_cast<void>(c.pop_oldest(bytes_b));
    c.push(put[0], cls_b, bytes_b);
    BOOST_TEST(c.full());
    BOOST_TEST(c.take_newest(cls_b, bytes_b) == put[0]);
    BOOST_TEST(c.oldest_class() == cls_a); // put[1]
    while (!c.empty()) static_cast<void>(c.pop_oldest(upstream_size(c.oldest_class())));
    expect_books(c, 0, 0, reserved);
}

BOOST_AUTO_TEST_CASE(hits_count_takes_only, *boost::unit_test::timeout(60)) {
    null_pool pool;
    blocks heap;
    thread_cache c(pool, 2);
    set_reserved(c, mib);
    void* a = heap.make(cls_a);
    void* b = heap.make(cls_b);
    // More hits than the block count's bits hold: the count stays right.
    const std::uint64_t rounds = 700;
    for (std::uint64_t i = 0; i < rounds; ++i) {
        BOOST_TEST_REQUIRE(c.try_put(a, cls_a, bytes_a));
        BOOST_TEST_REQUIRE(c.try_put(b, cls_b, bytes_b));
        BOOST_TEST_REQUIRE(!c.try_put(a, cls_a, bytes_a)); // full: no hit, no change
        BOOST_TEST_REQUIRE(c.take(cls_c, bytes_c) == nullptr); // a miss: no hit
        BOOST_TEST_REQUIRE(c.take(cls_a, bytes_a) == a);       // below the newest
        BOOST_TEST_REQUIRE(c.take_newest(cls_b, bytes_b) == b);
        BOOST_TEST_REQUIRE(c.count() == 0u);
    }
    BOOST_TEST(c.hits() == 2 * rounds);
    expect_books(c, 0, 0, mib);
    BOOST_TEST(c.try_put(a, cls_a, bytes_a));
    static_cast<void>(c.pop_oldest(bytes_a)); // not a hit
    BOOST_TEST(c.hits() == 2 * rounds);
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
    // ...so a take of its class misses and a put of its size is refused,
    // whatever the cache holds.
    set_reserved(c, mib);
    void* p = heap.make(cls_a);
    BOOST_TEST(c.try_put(p, cls_a, bytes_a));
    BOOST_TEST(c.take(c.memo().cls, c.memo().upstream) == nullptr);
    BOOST_TEST(!c.try_put(heap.make(cls_a), c.memo().cls, c.memo().upstream));
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

    c.remember(mib, 8, cls_c, bytes_c, zeropool::detail::low_alignment_offset);
    BOOST_TEST(c.memo_matches(mib, 8));
    BOOST_TEST(!c.memo_matches(5000, 16)); // only the last request is remembered
    BOOST_TEST(c.memo().cls == cls_c);
    BOOST_TEST(c.memo().upstream == bytes_c);
    BOOST_TEST(c.memo().offset == zeropool::detail::low_alignment_offset);
    // The memo is not the slots: remembering changed no block.
    BOOST_TEST(c.count() == 1u);
    BOOST_TEST(c.take(cls_a, bytes_a) == p);
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
    BOOST_TEST(c.try_put(p, cls_a, bytes_a));
    BOOST_TEST(c.take(cls_a, bytes_a) == p);
    BOOST_TEST(c.repeated_miss(cls_a));
}

// Under AddressSanitizer a block is poisoned while the cache holds it and
// usable again once it leaves, by take or pop_oldest (docs/design.md,
// "Use-after-put detection"). Elsewhere there is nothing to check.
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
    BOOST_TEST(c.try_put(p, cls_b, bytes_b));
    BOOST_TEST(c.try_put(q, cls_a, bytes_a));
    c.push(r, cls_a, bytes_a);
    for (void* x : {p, q, r}) BOOST_TEST(poisoned(x));
    BOOST_TEST(poisoned(static_cast<char*>(p) + bytes_b - 1));
    BOOST_TEST(c.take(cls_a, bytes_a) == r);
    BOOST_TEST(!poisoned(r));
    BOOST_TEST(!poisoned(static_cast<char*>(r) + bytes_a - 1));
    BOOST_TEST(c.pop_oldest(bytes_b).ptr == p);
    BOOST_TEST(!poisoned(p));
    BOOST_TEST(!poisoned(static_cast<char*>(p) + bytes_b - 1));
    BOOST_TEST(poisoned(q)); // still cached
#endif
}

BOOST_AUTO_TEST_SUITE_END()
