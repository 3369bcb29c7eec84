// zeropool::detail::shard (src/shard.hpp), the mutex-protected tier of idle
// blocks, on its own: push until full, take (LIFO per class, never a block of
// another class), take_batch (at most `max`, one hit), push_batch (a prefix,
// until full), take_any (drains everything), take_idle_since (the blocks idle
// since a tick or earlier, of every class, at most `max`, across the
// wrap-around of the tick counter), the read() snapshot and the
// probably_empty / probably_full hints as one thread sees them.
//
// The blocks are plain heap memory of upstream_size(cls) bytes that the test
// owns and frees itself; the shard only stores their addresses (and, under
// AddressSanitizer, poisons them while it holds them).
#include "../src/shard.hpp"

#define BOOST_TEST_MODULE shard
#include <boost/test/unit_test.hpp>

#include <zeropool/detail/size_class.hpp>

#include "test_support.hpp"
#include "tier_blocks.hpp"

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <limits>
#include <map>
#include <new>
#include <set>
#include <utility>
#include <vector>

namespace {

using zeropool::detail::cached_block;
using zeropool::detail::class_index;
using zeropool::detail::shard;
using zeropool::detail::upstream_size;
using zeropool_test::kib;
using zeropool_test::mib;

// Three classes, and a neighbour of the first that is never pushed.
const std::uint32_t cls_a = class_index(4 * kib);
const std::uint32_t cls_b = class_index(64 * kib);
const std::uint32_t cls_c = class_index(mib);
const std::uint32_t cls_a_next = cls_a + 1;

/// The tick the tests that do not look at ticks push at.
constexpr std::uint32_t t0 = 7;

using blocks = zeropool_test::tier_blocks;

/// Removes every block of `s` with take_any: {block -> class}.
std::map<void*, std::uint32_t> drain(shard& s) {
    std::map<void*, std::uint32_t> got;
    cached_block b{};
    while (s.take_any(b)) got.emplace(b.ptr, b.cls);
    return got;
}

/// Removes every block of `s` with take_idle_since(before, .., max) called
/// until it returns less than `max`: {block -> class}, each block once.
std::map<void*, std::uint32_t> take_idle(shard& s, std::uint32_t before, std::uint32_t max = 64) {
    std::map<void*, std::uint32_t> got;
    std::vector<cached_block> out(max);
    for (;;) {
        const std::uint32_t n = s.take_idle_since(before, out.data(), max);
        for (std::uint32_t i = 0; i < n; ++i) BOOST_TEST(got.emplace(out[i].ptr, out[i].cls).second);
        if (n < max) return got;
    }
}

/// Takes every block of class `cls` with take(), in the order take gives them.
std::vector<void*> take_all_of(shard& s, std::uint32_t cls) {
    std::vector<void*> got;
    while (void* p = s.take(cls)) got.push_back(p);
    return got;
}

#ifdef ZEROPOOL_ASAN
bool poisoned(const void* p) { return __asan_address_is_poisoned(p) != 0; }
#endif

} // namespace

BOOST_AUTO_TEST_SUITE(shard_suite)

BOOST_AUTO_TEST_CASE(a_new_shard_is_empty, *boost::unit_test::timeout(60)) {
    shard s(4);
    BOOST_TEST(s.probably_empty());
    BOOST_TEST(!s.probably_full());
    const shard::snapshot snap = s.read();
    BOOST_TEST(snap.blocks == 0u);
    BOOST_TEST(snap.bytes == 0u);
    BOOST_TEST(snap.hits == 0u);
    BOOST_TEST(s.take(cls_a) == nullptr);
    void* out[4] = {};
    BOOST_TEST(s.take_batch(cls_a, out, 4) == 0u);
    cached_block b{};
    BOOST_TEST(!s.take_any(b));
    BOOST_TEST(s.read().hits == 0u); // misses are not hits
}

BOOST_AUTO_TEST_CASE(push_until_full_returns_false, *boost::unit_test::timeout(60)) {
    blocks heap;
    shard s(3);
    const std::uint32_t classes[] = {cls_a, cls_b, cls_a};
    std::size_t bytes = 0;
    for (std::uint32_t cls : classes) {
        BOOST_TEST(s.push(heap.make(cls), cls, t0));
        bytes += upstream_size(cls);
    }
    BOOST_TEST(s.probably_full());
    BOOST_TEST(!s.probably_empty());
    // Full: refused, whatever the class, and nothing changes.
    void* refused = heap.make(cls_c);
    BOOST_TEST(!s.push(refused, cls_c, t0));
    BOOST_TEST(!s.push(heap.make(cls_a), cls_a, t0));
    shard::snapshot snap = s.read();
    BOOST_TEST(snap.blocks == 3u);
    BOOST_TEST(snap.bytes == bytes);
    BOOST_TEST(s.take(cls_c) == nullptr); // the refused block was not kept
    // One out: room for one more.
    BOOST_TEST(s.take(cls_b) != nullptr);
    BOOST_TEST(!s.probably_full());
    BOOST_TEST(s.push(refused, cls_c, t0));
    BOOST_TEST(s.probably_full());
    BOOST_TEST(!s.push(heap.make(cls_b), cls_b, t0));
    snap = s.read();
    BOOST_TEST(snap.blocks == 3u);
    BOOST_TEST(snap.bytes == 2 * upstream_size(cls_a) + upstream_size(cls_c));
    BOOST_TEST(drain(s).size() == 3u);
}

BOOST_AUTO_TEST_CASE(take_is_lifo_per_class_and_never_another_class, *boost::unit_test::timeout(60)) {
    blocks heap;
    shard s(16);
    // Interleaved pushes of two classes.
    std::vector<void*> a;
    std::vector<void*> b;
    for (int i = 0; i < 3; ++i) {
        a.push_back(heap.make(cls_a));
        BOOST_TEST(s.push(a.back(), cls_a, t0));
        b.push_back(heap.make(cls_b));
        BOOST_TEST(s.push(b.back(), cls_b, t0));
    }
    // Classes with no block: nothing, even next to a class that has blocks.
    BOOST_TEST(s.take(cls_c) == nullptr);
    BOOST_TEST(s.take(cls_a_next) == nullptr);
    BOOST_TEST(s.read().hits == 0u);
    // Each class gives its own blocks back, the most recently pushed first.
    BOOST_TEST(s.take(cls_a) == a[2]);
    BOOST_TEST(s.take(cls_b) == b[2]);
    BOOST_TEST(s.take(cls_a) == a[1]);
    // A push between takes becomes the newest of its class.
    void* a_new = heap.make(cls_a);
    BOOST_TEST(s.push(a_new, cls_a, t0));
    BOOST_TEST(s.take(cls_a) == a_new);
    BOOST_TEST(s.take(cls_a) == a[0]);
    BOOST_TEST(s.take(cls_a) == nullptr); // class a is empty, class b is not
    BOOST_TEST(s.take(cls_b) == b[1]);
    BOOST_TEST(s.take(cls_b) == b[0]);
    BOOST_TEST(s.take(cls_b) == nullptr);
    const shard::snapshot snap = s.read();
    BOOST_TEST(snap.blocks == 0u);
    BOOST_TEST(snap.bytes == 0u);
    BOOST_TEST(snap.hits == 7u); // one per block taken, none per miss
    BOOST_TEST(s.probably_empty());
}

BOOST_AUTO_TEST_CASE(take_batch_takes_at_most_max_and_counts_one_hit, *boost::unit_test::timeout(60)) {
    blocks heap;
    shard s(16);
    std::vector<void*> a;
    for (int i = 0; i < 5; ++i) {
        a.push_back(heap.make(cls_a));
        BOOST_TEST(s.push(a.back(), cls_a, t0));
    }
    void* b0 = heap.make(cls_b);
    void* b1 = heap.make(cls_b);
    BOOST_TEST(s.push(b0, cls_b, t0));
    BOOST_TEST(s.push(b1, cls_b, t0));

    void* out[8] = {};
    // Fewer than there are: exactly max, the most recently pushed first.
    BOOST_TEST(s.take_batch(cls_a, out, 3) == 3u);
    BOOST_TEST(out[0] == a[4]);
    BOOST_TEST(out[1] == a[3]);
    BOOST_TEST(out[2] == a[2]);
    BOOST_TEST(s.read().hits == 1u);
    BOOST_TEST(s.read().blocks == 4u);
    // More than there are: what is left of the class, and nothing of another.
    out[2] = nullptr;
    BOOST_TEST(s.take_batch(cls_a, out, 8) == 2u);
    BOOST_TEST(out[0] == a[1]);
    BOOST_TEST(out[1] == a[0]);
    BOOST_TEST(out[2] == nullptr); // not written beyond what was taken
    BOOST_TEST(s.read().hits == 2u);
    // An empty class: 0 and no hit.
    BOOST_TEST(s.take_batch(cls_a, out, 8) == 0u);
    BOOST_TEST(s.take_batch(cls_c, out, 8) == 0u);
    BOOST_TEST(s.read().hits == 2u);
    // max == 0 takes nothing and counts nothing.
    BOOST_TEST(s.take_batch(cls_b, out, 0) == 0u);
    const shard::snapshot snap = s.read();
    BOOST_TEST(snap.hits == 2u);
    BOOST_TEST(snap.blocks == 2u);
    BOOST_TEST(snap.bytes == 2 * upstream_size(cls_b));
    BOOST_TEST(s.take(cls_b) == b1);
    BOOST_TEST(s.take(cls_b) == b0);
}

BOOST_AUTO_TEST_CASE(push_batch_adds_a_prefix_until_full, *boost::unit_test::timeout(60)) {
    blocks heap;
    shard s(5);
    void* held0 = heap.make(cls_c);
    void* held1 = heap.make(cls_c);
    BOOST_TEST(s.push(held0, cls_c, t0));
    BOOST_TEST(s.push(held1, cls_c, t0));
    std::vector<cached_block> batch;
    for (int i = 0; i < 6; ++i) {
        const std::uint32_t cls = i % 2 == 0 ? cls_a : cls_b;
        batch.push_back(cached_block{heap.make(cls), cls});
    }
    BOOST_TEST(s.push_batch(batch.data(), 0, t0) == 0u); // nothing to add
    BOOST_TEST(s.read().blocks == 2u);
    // Room for three: the first three of the batch, in order.
    BOOST_TEST(s.push_batch(batch.data(), 6, t0) == 3u);
    BOOST_TEST(s.probably_full());
    shard::snapshot snap = s.read();
    BOOST_TEST(snap.blocks == 5u);
    BOOST_TEST(snap.bytes == 2 * upstream_size(cls_c) + 2 * upstream_size(cls_a) + upstream_size(cls_b));
    BOOST_TEST(snap.hits == 0u); // adding blocks is no hit
    // Full: nothing more is added.
    BOOST_TEST(s.push_batch(batch.data() + 3, 3, t0) == 0u);
    BOOST_TEST(s.read().blocks == 5u);
    // Pushed in batch order, so taken back in reverse order within a class.
    BOOST_TEST(s.take(cls_a) == batch[2].ptr);
    BOOST_TEST(s.take(cls_a) == batch[0].ptr);
    BOOST_TEST(s.take(cls_a) == nullptr);
    BOOST_TEST(s.take(cls_b) == batch[1].ptr);
    BOOST_TEST(s.take(cls_b) == nullptr); // batch[3] and [5] were not added
    // The rest of the batch fits now, up to the capacity again.
    BOOST_TEST(s.push_batch(batch.data() + 3, 3, t0) == 3u);
    const std::map<void*, std::uint32_t> left = drain(s);
    const std::map<void*, std::uint32_t> expected = {{held0, cls_c},        {held1, cls_c},
                                                     {batch[3].ptr, cls_b}, {batch[4].ptr, cls_a},
                                                     {batch[5].ptr, cls_b}};
    BOOST_TEST((left == expected));
}

BOOST_AUTO_TEST_CASE(take_any_drains_every_block_with_its_class, *boost::unit_test::timeout(60)) {
    blocks heap;
    shard s(32);
    std::map<void*, std::uint32_t> pushed;
    const std::uint32_t classes[] = {cls_c, cls_a, cls_b, cls_a, cls_a_next, cls_b, cls_c, cls_a};
    for (std::uint32_t cls : classes) {
        void* p = heap.make(cls);
        BOOST_TEST(s.push(p, cls, t0));
        pushed.emplace(p, cls);
    }
    const std::map<void*, std::uint32_t> drained = drain(s);
    BOOST_TEST((drained == pushed)); // each block once, with the class it was pushed with
    cached_block b{};
    BOOST_TEST(!s.take_any(b));
    const shard::snapshot snap = s.read();
    BOOST_TEST(snap.blocks == 0u);
    BOOST_TEST(snap.bytes == 0u);
    BOOST_TEST(s.probably_empty());
    BOOST_TEST(!s.probably_full());
    // The shard is reusable afterwards: every node is free again.
    for (const auto& [p, cls] : pushed) BOOST_TEST(s.push(p, cls, t0));
    BOOST_TEST(s.read().blocks == pushed.size());
    BOOST_TEST(drain(s).size() == pushed.size());
}

BOOST_AUTO_TEST_CASE(read_counts_held_classes_blocks_and_hits, *boost::unit_test::timeout(60)) {
    blocks heap;
    shard s(8);
    struct step {
        std::uint32_t cls;
        bool push; // else take
    };
    // The snapshot follows every operation: bytes are the sum of
    // upstream_size over the held blocks' classes.
    const step steps[] = {{cls_a, true},  {cls_b, true}, {cls_c, true},  {cls_b, true}, {cls_b, false},
                          {cls_a, false}, {cls_a, true}, {cls_c, false}, {cls_c, false}};
    std::multiset<std::uint32_t> held;
    std::uint64_t hits = 0;
    for (const step& st : steps) {
        if (st.push) {
            BOOST_TEST(s.push(heap.make(st.cls), st.cls, t0));
            held.insert(st.cls);
        } else {
            const bool had = held.count(st.cls) != 0;
            BOOST_TEST((s.take(st.cls) != nullptr) == had);
            if (had) {
                held.erase(held.find(st.cls));
                ++hits;
            }
        }
        std::size_t bytes = 0;
        for (std::uint32_t cls : held) bytes += upstream_size(cls);
        const shard::snapshot snap = s.read();
        BOOST_TEST(snap.blocks == held.size());
        BOOST_TEST(snap.bytes == bytes);
        BOOST_TEST(snap.hits == hits);
        BOOST_TEST(s.probably_empty() == held.empty());
        BOOST_TEST(!s.probably_full());
    }
    BOOST_TEST(hits == 3u);          // the last take of class c missed
    BOOST_TEST(held.size() == 2u);   // a and b
    BOOST_TEST(drain(s).size() == 2u);
}

BOOST_AUTO_TEST_CASE(hints_follow_every_kind_of_operation, *boost::unit_test::timeout(60)) {
    blocks heap;
    shard s(2);
    BOOST_TEST(s.probably_empty());
    BOOST_TEST(s.push(heap.make(cls_a), cls_a, t0));
    BOOST_TEST(!s.probably_empty());
    BOOST_TEST(!s.probably_full());
    const cached_block more[] = {{heap.make(cls_a), cls_a}, {heap.make(cls_b), cls_b}};
    BOOST_TEST(s.push_batch(more, 2, t0) == 1u);
    BOOST_TEST(s.probably_full());
    void* out[2] = {};
    BOOST_TEST(s.take_batch(cls_a, out, 2) == 2u);
    BOOST_TEST(s.probably_empty());
    BOOST_TEST(!s.probably_full());
    BOOST_TEST(s.push(out[0], cls_a, t0));
    BOOST_TEST(s.push(out[1], cls_a, t0));
    BOOST_TEST(s.probably_full());
    cached_block b{};
    BOOST_TEST(s.take_any(b));
    BOOST_TEST(!s.probably_full());
    BOOST_TEST(!s.probably_empty());
    BOOST_TEST(s.take_any(b));
    BOOST_TEST(s.probably_empty());
}

// ---- take_idle_since ------------------------------------------------------------

BOOST_AUTO_TEST_CASE(take_idle_since_takes_the_blocks_idle_since_before_or_earlier, *boost::unit_test::timeout(60)) {
    blocks heap;
    shard s(9);
    struct pushed_block {
        void* p;
        std::uint32_t cls;
        std::uint32_t tick;
    };
    // Ticks out of order within a class list, so that the blocks to take are
    // its head, its middle and its tail, and a class loses every block.
    // Class a, newest first: a5@1 a4@3 a3@2 a2@3 a1@1.
    const std::uint32_t order[][2] = {{cls_a, 1}, {cls_a, 3}, {cls_a, 2}, {cls_a, 3}, {cls_a, 1},
                                      {cls_b, 3}, {cls_b, 2}, {cls_c, 2}, {cls_c, 1}};
    std::vector<pushed_block> all;
    for (const auto& o : order) {
        all.push_back(pushed_block{heap.make(o[0]), o[0], o[1]});
        BOOST_TEST(s.push(all.back().p, o[0], o[1]));
    }
    BOOST_TEST(s.probably_full());
    std::map<void*, std::uint32_t> old;
    std::size_t young_bytes = 0;
    for (const pushed_block& b : all) {
        if (b.tick <= 2)
            old.emplace(b.p, b.cls);
        else
            young_bytes += upstream_size(b.cls);
    }
    BOOST_TEST_REQUIRE(old.size() == 6u);

    // Exactly the blocks pushed at ticks 1 and 2, each once, with its class.
    const std::map<void*, std::uint32_t> got = take_idle(s, 2);
    BOOST_TEST((got == old));
    shard::snapshot snap = s.read();
    BOOST_TEST(snap.blocks == 3u);
    BOOST_TEST(snap.bytes == young_bytes);
    BOOST_TEST(snap.hits == 0u); // releasing idle blocks is no hit
    BOOST_TEST(!s.probably_full());
    BOOST_TEST(!s.probably_empty());
    // Nothing that old is left.
    cached_block out[4] = {};
    BOOST_TEST(s.take_idle_since(2, out, 4) == 0u);
    BOOST_TEST(s.read().blocks == 3u);

    // The blocks of tick 3 stay takeable, in LIFO order within their class:
    // the unlinking of a5, a3 and a1 kept class a's list intact.
    BOOST_TEST(s.take(cls_c) == nullptr); // c lost both its blocks
    const std::vector<void*> a_left = {all[3].p, all[1].p}; // a4, then a2
    BOOST_TEST((take_all_of(s, cls_a) == a_left));
    BOOST_TEST(s.take(cls_b) == all[5].p);
    BOOST_TEST(s.take(cls_b) == nullptr);
    snap = s.read();
    BOOST_TEST(snap.blocks == 0u);
    BOOST_TEST(snap.bytes == 0u);
    BOOST_TEST(snap.hits == 3u);
    BOOST_TEST(s.probably_empty());

    // Every node went back to the free list: the shard takes its capacity
    // again, and no more.
    for (const pushed_block& b : all) BOOST_TEST(s.push(b.p, b.cls, 4));
    BOOST_TEST(!s.push(heap.make(cls_a), cls_a, 4));
    BOOST_TEST(drain(s).size() == all.size());
}

BOOST_AUTO_TEST_CASE(take_idle_since_takes_at_most_max, *boost::unit_test::timeout(60)) {
    blocks heap;
    shard s(16);
    std::map<void*, std::uint32_t> old;
    std::map<void*, std::uint32_t> young;
    for (int i = 0; i < 13; ++i) {
        const std::uint32_t cls = i % 3 == 0 ? cls_b : cls_a;
        const std::uint32_t tick = i % 4 == 3 ? 20 : 10; // 3 young, 10 old
        void* p = heap.make(cls);
        BOOST_TEST(s.push(p, cls, tick));
        (tick == 10 ? old : young).emplace(p, cls);
    }
    BOOST_TEST_REQUIRE(old.size() == 10u);
    cached_block out[8];
    const cached_block sentinel{&out, 12345};
    std::fill(std::begin(out), std::end(out), sentinel);
    // max == 0: nothing, and nothing changes.
    BOOST_TEST(s.take_idle_since(15, out, 0) == 0u);
    BOOST_TEST(s.read().blocks == 13u);
    BOOST_TEST(out[0].ptr == sentinel.ptr);

    std::map<void*, std::uint32_t> got;
    std::size_t left = 13;
    for (std::uint32_t expected : {4u, 4u, 2u, 0u}) {
        BOOST_TEST_CONTEXT("call expecting " << expected) {
            const std::uint32_t n = s.take_idle_since(15, out, 4);
            BOOST_TEST(n == expected);
            for (std::uint32_t i = 0; i < n; ++i) {
                BOOST_TEST(old.count(out[i].ptr) == 1u); // only old blocks
                BOOST_TEST(got.emplace(out[i].ptr, out[i].cls).second); // each once
            }
            for (std::uint32_t i = n; i < 8; ++i) { // nothing written beyond n
                BOOST_TEST(out[i].ptr == sentinel.ptr);
                BOOST_TEST(out[i].cls == sentinel.cls);
            }
            std::fill(std::begin(out), std::end(out), sentinel);
            left -= n;
            BOOST_TEST(s.read().blocks == left);
        }
    }
    BOOST_TEST((got == old)); // with their classes
    // The young ones are still there.
    std::size_t young_bytes = 0;
    for (const auto& [p, cls] : young) young_bytes += upstream_size(cls);
    BOOST_TEST(s.read().bytes == young_bytes);
    BOOST_TEST((drain(s) == young));
}

BOOST_AUTO_TEST_CASE(take_idle_since_leaves_younger_blocks_and_empty_shards_alone, *boost::unit_test::timeout(60)) {
    blocks heap;
    shard s(4);
    cached_block out[4] = {};
    BOOST_TEST(s.take_idle_since(100, out, 4) == 0u); // empty
    BOOST_TEST(s.probably_empty());
    void* p = heap.make(cls_a);
    void* q = heap.make(cls_b);
    BOOST_TEST(s.push(p, cls_a, 50));
    BOOST_TEST(s.push(q, cls_b, 51));
    BOOST_TEST(s.take_idle_since(49, out, 4) == 0u); // both younger than 49
    shard::snapshot snap = s.read();
    BOOST_TEST(snap.blocks == 2u);
    BOOST_TEST(snap.bytes == upstream_size(cls_a) + upstream_size(cls_b));
    BOOST_TEST(!s.probably_empty());
    // `before` itself counts as idle since then.
    BOOST_TEST(s.take_idle_since(50, out, 4) == 1u);
    BOOST_TEST(out[0].ptr == p);
    BOOST_TEST(out[0].cls == cls_a);
    BOOST_TEST(s.take_idle_since(51, out, 4) == 1u);
    BOOST_TEST(out[0].ptr == q);
    BOOST_TEST(out[0].cls == cls_b);
    snap = s.read();
    BOOST_TEST(snap.blocks == 0u);
    BOOST_TEST(snap.bytes == 0u);
    BOOST_TEST(snap.hits == 0u);
    BOOST_TEST(s.probably_empty()); // the hint follows take_idle_since too
}

// The tick is a 32-bit counter that wraps around; take_idle_since compares
// ticks as serial numbers (the signed difference), so a tick less than 2^31
// after `before` is younger and one less than 2^31 before it (or equal) is
// older, on either side of the wrap.
BOOST_AUTO_TEST_CASE(take_idle_since_compares_ticks_across_the_wrap_around, *boost::unit_test::timeout(60)) {
    constexpr std::uint32_t max = std::numeric_limits<std::uint32_t>::max();
    constexpr std::uint32_t half = std::uint32_t{1} << 31;
    blocks heap;
    shard s(16);
    struct pushed_block {
        void* p;
        std::uint32_t tick;
    };
    // `before` near the top of the range, blocks on both sides of the wrap.
    std::vector<pushed_block> all;
    for (std::uint32_t tick : {max - 5, max - 1, max, 0u, 3u}) {
        all.push_back(pushed_block{heap.make(cls_a), tick});
        BOOST_TEST(s.push(all.back().p, cls_a, tick));
    }
    std::map<void*, std::uint32_t> expected = {{all[0].p, cls_a}, {all[1].p, cls_a}};
    BOOST_TEST((take_idle(s, max - 1) == expected)); // max - 5 and max - 1; max, 0 and 3 are younger
    BOOST_TEST(s.read().blocks == 3u);
    // `before` small, after the wrap: the blocks of max and 0 are older now.
    expected = {{all[2].p, cls_a}, {all[3].p, cls_a}};
    BOOST_TEST((take_idle(s, 2) == expected));
    BOOST_TEST(s.take(cls_a) == all[4].p); // tick 3 is younger than 2
    BOOST_TEST(s.read().blocks == 0u);

    // The extremes of what the comparison orders: 2^31 - 1 ticks either way.
    const std::uint32_t before = 1000;
    void* oldest = heap.make(cls_b);   // 2^31 - 1 ticks before `before`, across the wrap
    void* youngest = heap.make(cls_b); // 2^31 - 1 ticks after it
    BOOST_TEST(s.push(oldest, cls_b, before - (half - 1)));
    BOOST_TEST(s.push(youngest, cls_b, before + (half - 1)));
    expected = {{oldest, cls_b}};
    BOOST_TEST((take_idle(s, before) == expected));
    BOOST_TEST(s.take(cls_b) == youngest);
}

// Under AddressSanitizer an idle block is poisoned while the shard holds it
// and usable again once taken out, by every way out, take_idle_since
// included (docs/design.md, "Use-after-put detection"). Elsewhere there is
// nothing to check.
BOOST_AUTO_TEST_CASE(idle_blocks_are_poisoned_under_asan,
                     *boost::unit_test::enable_if<zeropool_test::asan>() * boost::unit_test::timeout(60)) {
#ifdef ZEROPOOL_ASAN
    blocks heap;
    shard s(8);
    void* p = heap.make(cls_b);
    void* q = heap.make(cls_b);
    void* r = heap.make(cls_a);
    BOOST_TEST(s.push(p, cls_b, t0));
    const cached_block two[] = {{q, cls_b}, {r, cls_a}};
    BOOST_TEST(s.push_batch(two, 2, t0) == 2u);
    for (void* x : {p, q, r}) {
        BOOST_TEST(poisoned(x));
        BOOST_TEST(poisoned(static_cast<char*>(x) + upstream_size(x == r ? cls_a : cls_b) - 1));
    }
    BOOST_TEST(s.take(cls_b) == q);
    BOOST_TEST(!poisoned(q));
    BOOST_TEST(!poisoned(static_cast<char*>(q) + upstream_size(cls_b) - 1));
    void* out[1] = {};
    BOOST_TEST(s.take_batch(cls_b, out, 1) == 1u);
    BOOST_TEST(!poisoned(p));
    cached_block b{};
    BOOST_TEST(s.take_any(b));
    BOOST_TEST(!poisoned(r));
    BOOST_TEST(s.push(r, cls_a, 5));
    BOOST_TEST(poisoned(r));
    cached_block idle[1] = {};
    BOOST_TEST(s.take_idle_since(5, idle, 1) == 1u);
    BOOST_TEST(idle[0].ptr == r);
    BOOST_TEST(!poisoned(r));
    BOOST_TEST(!poisoned(static_cast<char*>(r) + upstream_size(cls_a) - 1));
#endif
}

BOOST_AUTO_TEST_SUITE_END()
