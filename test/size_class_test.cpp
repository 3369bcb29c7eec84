// Tests of the size-class table (include/zeropool/detail/size_class.hpp):
// compile-time checks of the documented values, then runtime sweeps of the
// properties the pool relies on (a class holds every request mapped to it,
// wastes < 25%, is a pure monotone function, and its block alignment covers
// every pooled alignment).
#include <zeropool/detail/size_class.hpp>

#define BOOST_TEST_MODULE size_class
#include <boost/test/unit_test.hpp>

#include <cstddef>
#include <cstdint>

namespace {

using namespace zeropool::detail;

constexpr std::size_t kib = std::size_t{1} << 10;
constexpr std::size_t mib = std::size_t{1} << 20;
constexpr std::size_t gib = std::size_t{1} << 30;

// ---- compile-time checks of the documented table ---------------------------

// Indices 0..3 are the sizes 1..4.
static_assert(class_index(1) == 0 && class_index(2) == 1 && class_index(3) == 2 && class_index(4) == 3);
static_assert(class_size(0) == 1 && class_size(1) == 2 && class_size(2) == 3 && class_size(3) == 4);
// The table row of the header: 5 6 7 8 10 12 14 16 20.
static_assert(class_size(4) == 5 && class_size(5) == 6 && class_size(6) == 7 && class_size(7) == 8);
static_assert(class_size(8) == 10 && class_size(9) == 12 && class_size(10) == 14 && class_size(11) == 16);
static_assert(class_size(12) == 20);
// Landmarks: 4 KiB is index 43, 1 MiB index 75, 1 GiB index 115.
static_assert(class_index(4 * kib) == 43 && class_size(43) == 4 * kib);
static_assert(class_index(mib) == 75 && class_size(75) == mib);
static_assert(class_index(gib) == 115 && class_size(115) == gib);
// One past a class boundary is the next class.
static_assert(class_index(4 * kib + 1) == 44 && class_size(44) == 5 * kib);
static_assert(class_index(mib + 1) == 76 && class_size(76) == mib + mib / 4);
// A 600 KiB request and a 1 MiB request are in different classes.
static_assert(class_index(600 * kib) != class_index(mib));
static_assert(class_size(class_index(600 * kib)) == 640 * kib);
// The largest classified size is a class size.
static_assert(max_classified_size == std::size_t{1} << 48);
static_assert(class_size(class_index(max_classified_size)) == max_classified_size);
static_assert(class_index(max_classified_size) == 187);
// The class table holds what classify() computes, for every class: the
// slow paths read the table, the hit paths classify.
constexpr bool table_matches_classify() {
    for (std::uint32_t i = 0; i < class_count; ++i) {
        const size_class_info c = classify(class_size_formula(i));
        if (c.index != i || class_size(i) != c.size || upstream_size(i) != c.upstream) return false;
        if (class_size(i) != class_size_formula(i)) return false;
    }
    return class_count == class_index(max_classified_size) + 1;
}
static_assert(table_matches_classify());
// Four classes per doubling.
static_assert(class_size(43 + 4) == 2 * class_size(43));
static_assert(class_size(75 + 4) == 2 * class_size(75));

// Block alignment: at least alignof(max_align_t), at most one page.
static_assert(page_alignment == 4096);
static_assert(min_block_alignment == alignof(std::max_align_t));
static_assert(block_alignment(0) == min_block_alignment);
static_assert(block_alignment(class_index(64)) == 64);
static_assert(block_alignment(class_index(3000)) == 2048); // class 3072
static_assert(block_alignment(class_index(4 * kib)) == 4096);
static_assert(block_alignment(class_index(5000)) == 4096); // class 5120
static_assert(block_alignment(class_index(mib)) == 4096);
static_assert(block_alignment(class_index(max_classified_size)) == 4096);

// classified_size = max(bytes, alignment, 1).
static_assert(classified_size(0, 0) == 1);
static_assert(classified_size(0, 1) == 1);
static_assert(classified_size(0, 4096) == 4096);
static_assert(classified_size(100, 4096) == 4096);
static_assert(classified_size(5000, 64) == 5000);
static_assert(classified_size(5000, 8192) == 8192);

static_assert(is_power_of_two(1) && is_power_of_two(2) && is_power_of_two(4096));
static_assert(is_power_of_two(std::size_t{1} << (sizeof(std::size_t) * 8 - 1)));
static_assert(!is_power_of_two(0) && !is_power_of_two(3) && !is_power_of_two(48));
static_assert(!is_power_of_two(4097) && !is_power_of_two(~std::size_t{0}));

static_assert(floor_log2(1) == 0 && floor_log2(2) == 1 && floor_log2(3) == 1);
static_assert(floor_log2(4096) == 12 && floor_log2(4097) == 12);
static_assert(floor_log2(~std::uint64_t{0}) == 63);

// classify(s) (the hit paths' shortcut) agrees with class_index/class_size.
static_assert(classify(1).index == 0 && classify(1).size == 1);
static_assert(classify(4).index == 3 && classify(4).size == 4);
static_assert(classify(5).index == 4 && classify(5).size == 5);
static_assert(classify(5000).index == class_index(5000) && classify(5000).size == 5120);
static_assert(classify(mib).index == 75 && classify(mib).size == mib);
static_assert(classify(max_classified_size).size == max_classified_size);

// The functions are usable in constant expressions and throw nothing.
static_assert(noexcept(class_index(1)) && noexcept(class_size(0)) && noexcept(block_alignment(0)));

// ---- runtime helpers ---------------------------------------------------------

// 4 * c < 5 * s, i.e. c < 1.25 * s (no overflow: both are <= 2^49 here).
bool under_125_percent(std::size_t c, std::size_t s) noexcept { return 4 * c < 5 * s; }

// The properties of the class of one request size `s` (1 <= s <= max):
// holds s, is exact up to 4 bytes and wastes < 25% above, and the previous
// class is too small (the class is the smallest that fits).
bool class_fits(std::size_t s) noexcept {
    const std::uint32_t i = class_index(s);
    const std::size_t c = class_size(i);
    if (c < s) return false;
    if (s <= 4 ? c != s : !under_125_percent(c, s)) return false;
    return i == 0 || class_size(i - 1) < s;
}

} // namespace

// The data offset: blocks of 64 KiB and more hold 16 bytes more than their
// class size, and only requests of alignment <= 16 start 16 bytes in, so the
// data still fits the class size and keeps the alignment asked for.
static_assert(upstream_size(class_index(4 * kib)) == 4 * kib);
static_assert(upstream_size(class_index(64 * kib - 1)) == 64 * kib + low_alignment_offset);
static_assert(upstream_size(class_index(48 * kib)) == 48 * kib);
static_assert(data_offset(48 * kib, 1) == 0);
static_assert(data_offset(64 * kib, 1) == low_alignment_offset);
static_assert(data_offset(64 * kib, 16) == low_alignment_offset);
static_assert(data_offset(64 * kib, 32) == 0);
static_assert(data_offset(mib, 4096) == 0);


BOOST_AUTO_TEST_SUITE(size_class_suite)

BOOST_AUTO_TEST_CASE(sweep_every_size_up_to_4_mib, *boost::unit_test::timeout(60)) {
    // One BOOST_TEST per property (not per size) keeps the sweep fast; the
    // first failing size is reported.
    constexpr std::size_t limit = 4 * mib + 17;
    std::size_t first_bad_fit = 0, first_bad_waste = 0, first_bad_monotone = 0, first_bad_tight = 0;
    std::size_t first_bad_classify = 0;
    std::uint32_t prev = class_index(1);
    for (std::size_t s = 1; s <= limit; ++s) {
        const std::uint32_t i = class_index(s);
        const std::size_t c = class_size(i);
        if (first_bad_fit == 0 && (c < s || (s <= 4 && c != s))) first_bad_fit = s;
        if (first_bad_waste == 0 && s > 4 && !under_125_percent(c, s)) first_bad_waste = s;
        // Monotone and gap-free: the index grows by 0 or 1 from s - 1 to s.
        if (first_bad_monotone == 0 && s > 1 && i != prev && i != prev + 1) first_bad_monotone = s;
        // Smallest fitting class.
        if (first_bad_tight == 0 && i > 0 && class_size(i - 1) >= s) first_bad_tight = s;
        // classify(s) is the same pair.
        const size_class_info info = classify(s);
        if (first_bad_classify == 0 && (info.index != i || info.size != c || info.upstream != upstream_size(i)))
            first_bad_classify = s;
        prev = i;
    }
    BOOST_TEST(first_bad_fit == 0u, "class_size(class_index(s)) < s (or != s for s <= 4) at s = " << first_bad_fit);
    BOOST_TEST(first_bad_waste == 0u, "class_size >= 1.25 * s at s = " << first_bad_waste);
    BOOST_TEST(first_bad_monotone == 0u, "class_index not monotone/gap-free at s = " << first_bad_monotone);
    BOOST_TEST(first_bad_tight == 0u, "a smaller class fits s = " << first_bad_tight);
    BOOST_TEST(first_bad_classify == 0u, "classify(s) disagrees at s = " << first_bad_classify);
    BOOST_TEST(class_index(limit) == class_index(4 * mib) + 1);
}

BOOST_AUTO_TEST_CASE(powers_of_two_and_neighbours_up_to_2_pow_48, *boost::unit_test::timeout(60)) {
    for (unsigned k = 0; k <= 48; ++k) {
        const std::size_t p = std::size_t{1} << k;
        for (std::size_t s : {p - 1, p, p + 1, p + p / 4, p + p / 4 + 1, p + p / 2 + 1}) {
            if (s == 0 || s > max_classified_size) continue;
            BOOST_TEST_CONTEXT("k = " << k << ", s = " << s) {
                BOOST_TEST(class_fits(s));
                const std::size_t c = class_size(class_index(s));
                BOOST_TEST(classify(s).index == class_index(s));
                BOOST_TEST(classify(s).size == c);
                BOOST_TEST(c >= s);
                if (s > 4) BOOST_TEST(under_125_percent(c, s));
            }
        }
        // A power of two is a class size (the class is exact).
        BOOST_TEST_CONTEXT("k = " << k) {
            BOOST_TEST(class_size(class_index(p)) == p);
            // The worst case 2^k + 1 (k >= 2) lands on 2^k + 2^(k-2).
            if (k >= 2 && p + 1 <= max_classified_size) {
                BOOST_TEST(class_size(class_index(p + 1)) == p + p / 4);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(every_class_round_trips, *boost::unit_test::timeout(60)) {
    const std::uint32_t last = class_index(max_classified_size);
    for (std::uint32_t i = 0; i <= last; ++i) {
        BOOST_TEST_CONTEXT("class " << i << ", size " << class_size(i)) {
            // class_index(class_size(i)) == i: the class size is the largest
            // request of the class ...
            BOOST_TEST(class_index(class_size(i)) == i);
            if (i < last) {
                // ... and one more byte is the next class, strictly larger.
                BOOST_TEST(class_index(class_size(i) + 1) == i + 1);
                BOOST_TEST(class_size(i + 1) > class_size(i));
            }
            if (i >= 4) {
                // Geometric: four classes per doubling.
                if (i + 4 <= last) BOOST_TEST(class_size(i + 4) == 2 * class_size(i));
                // The smallest request of the class also fits under 1.25x.
                const std::size_t lowest = class_size(i - 1) + 1;
                BOOST_TEST(class_index(lowest) == i);
                if (lowest > 4) BOOST_TEST(under_125_percent(class_size(i), lowest));
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(block_alignment_properties, *boost::unit_test::timeout(60)) {
    const std::uint32_t last = class_index(max_classified_size);
    for (std::uint32_t i = 0; i <= last; ++i) {
        const std::size_t a = block_alignment(i);
        const std::size_t c = class_size(i);
        BOOST_TEST_CONTEXT("class " << i << ", size " << c << ", block alignment " << a) {
            BOOST_TEST(is_power_of_two(a));
            BOOST_TEST(a >= min_block_alignment);
            BOOST_TEST(a <= page_alignment);
            // The largest power of two <= the class size, within the limits.
            if (c >= min_block_alignment) {
                BOOST_TEST(a <= c);
                if (a < page_alignment) BOOST_TEST(2 * a > c);
            }
            // Page-sized and larger classes are page aligned (O_DIRECT, io_uring).
            if (c >= page_alignment) BOOST_TEST(a == page_alignment);
        }
    }
}

BOOST_AUTO_TEST_CASE(pooled_alignment_divides_block_alignment, *boost::unit_test::timeout(60)) {
    // For every pooled alignment (power of two <= a page) and request size, the
    // block alignment of the request's class is a multiple of the alignment
    // asked for, and the class holds max(bytes, alignment) bytes.
    std::size_t failures = 0;
    for (std::size_t align = 1; align <= page_alignment; align *= 2) {
        for (std::size_t bytes = 0; bytes <= 3 * page_alignment + 1; bytes += (bytes < 300 ? 1 : 37)) {
            const std::size_t s = classified_size(bytes, align);
            const std::uint32_t i = class_index(s);
            const bool ok = block_alignment(i) % align == 0 && class_size(i) >= bytes &&
                            class_size(i) >= align && s >= 1;
            if (!ok && failures++ == 0) {
                BOOST_TEST_CONTEXT("bytes " << bytes << ", alignment " << align) {
                    BOOST_TEST(block_alignment(i) % align == 0u);
                    BOOST_TEST(class_size(i) >= bytes);
                }
            }
        }
        for (unsigned k = 12; k <= 40; ++k) { // large sizes, including odd ones
            for (std::size_t bytes : {(std::size_t{1} << k) - 1, (std::size_t{1} << k) + 3}) {
                const std::uint32_t i = class_index(classified_size(bytes, align));
                if (block_alignment(i) % align != 0 || class_size(i) < bytes) ++failures;
            }
        }
    }
    BOOST_TEST(failures == 0u);
}

BOOST_AUTO_TEST_CASE(classification_is_a_pure_function_of_bytes_and_alignment,
                     *boost::unit_test::timeout(60)) {
    // deallocate(p, bytes, alignment) must find the class of allocate(bytes,
    // alignment): the same arguments give the same class, every time.
    for (std::size_t bytes : {std::size_t{0}, std::size_t{1}, std::size_t{100}, 4 * kib, 5000 * std::size_t{1},
                              600 * kib, mib, 3 * mib + 1, gib}) {
        for (std::size_t align = 1; align <= page_alignment; align *= 2) {
            const std::uint32_t a = class_index(classified_size(bytes, align));
            const std::uint32_t b = class_index(classified_size(bytes, align));
            BOOST_TEST_CONTEXT("bytes " << bytes << ", alignment " << align) {
                BOOST_TEST(a == b);
                // Asking for less alignment than the size never changes the class.
                if (align <= bytes) BOOST_TEST(a == class_index(bytes));
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(data_offset_keeps_alignment_and_fits_the_block, *boost::unit_test::timeout(60)) {
    std::size_t failures = 0;
    for (std::size_t align = 1; align <= page_alignment; align *= 2) {
        for (std::size_t bytes : {std::size_t{1}, kib, 60 * kib, 64 * kib, 64 * kib + 1, mib, 512 * mib}) {
            const std::uint32_t i = class_index(classified_size(bytes, align));
            const std::size_t offset = data_offset(class_size(i), align);
            BOOST_TEST_CONTEXT("bytes " << bytes << ", alignment " << align) {
                BOOST_TEST(offset % align == 0);                           // block_alignment(i) >= align
                BOOST_TEST(offset + bytes <= upstream_size(i));            // the data fits what upstream gave
                BOOST_TEST(upstream_size(i) - class_size(i) >= offset);    // slack covers the offset
                if (offset % align != 0 || offset + bytes > upstream_size(i)) ++failures;
            }
        }
    }
    BOOST_TEST(failures == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
