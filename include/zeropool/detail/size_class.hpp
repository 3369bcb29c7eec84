// zeropool: the size-class table, a pure function of (bytes, alignment).
//
// A pooled request of `bytes` with `alignment` is classified by
// s = max(bytes, alignment, 1). Classes are geometric with four classes per
// power of two: for v = s - 1 >= 4, with k = floor(log2(v)) and m the two bits
// of v below its top bit, the class index is 4 * (k - 1) + m and the class
// size is 2^k + (m + 1) * 2^(k - 2). Indices 0..3 are the sizes 1..4.
//
//   index  :  0  1  2  3  4  5  6  7  8   9   10  11  12  ...
//   size   :  1  2  3  4  5  6  7  8  10  12  14  16  20  ...
//   4 KiB is index 43, 1 MiB index 75, 1 GiB index 115.
//
// Rounding bound: class_size(class_index(s)) < 1.25 * s for every s > 4 (the
// worst case is s = 2^k + 1), and == s for s <= 4; so a block wastes less than
// 25% of the request. A request of alignment a <= page_alignment is served by
// a block aligned to block_alignment(class), which is >= a because the class
// size is >= a and a is a power of two.
#ifndef ZEROPOOL_DETAIL_SIZE_CLASS_HPP
#define ZEROPOOL_DETAIL_SIZE_CLASS_HPP

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace zeropool::detail {

/// Largest alignment that is pooled; larger alignments go straight upstream.
inline constexpr std::size_t page_alignment = 4096;
/// Smallest alignment asked of upstream for a pooled block.
inline constexpr std::size_t min_block_alignment = alignof(std::max_align_t);
/// Requests larger than this are refused up front (std::bad_alloc) by the
/// pool and by page_resource, which keeps every size computation free of
/// wrap-around (a size rounded up to a page, plus an alignment).
inline constexpr std::size_t max_request = std::numeric_limits<std::size_t>::max() / 4;
/// Largest size that may be classified (callers clamp max_buffer_size to it).
inline constexpr std::size_t max_classified_size = std::size_t{1} << 48;

/// floor(log2(v)) for v > 0.
constexpr unsigned floor_log2(std::uint64_t v) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    return 63u - static_cast<unsigned>(__builtin_clzll(v));
#else
    unsigned r = 0;
    while (v >>= 1) ++r;
    return r;
#endif
}

/// The class index of a request of `s` bytes, 1 <= s <= max_classified_size.
constexpr std::uint32_t class_index(std::size_t s) noexcept {
    const std::uint64_t v = static_cast<std::uint64_t>(s) - 1;
    if (v < 4) return static_cast<std::uint32_t>(v);
    const unsigned k = floor_log2(v);
    const auto m = static_cast<std::uint32_t>((v >> (k - 2)) & 3u);
    return 4u * (k - 1u) + m;
}

/// The block size of class `index` by the formula (class_size() reads it
/// from the table below).
constexpr std::size_t class_size_formula(std::uint32_t index) noexcept {
    if (index < 4) return index + 1u;
    const unsigned k = index / 4u + 1u;
    const std::size_t m = index % 4u;
    return (std::size_t{1} << k) + (m + 1u) * (std::size_t{1} << (k - 2u));
}

/// Blocks of at least this size start the data of low-alignment requests
/// `low_alignment_offset` bytes past the block's (page-aligned) start, as
/// malloc does; upstream is asked for that many bytes more: reading into a
/// page-aligned destination is slower (docs/design.md, "Measurements").
inline constexpr std::size_t offset_min_block = std::size_t{64} << 10;
inline constexpr std::size_t low_alignment_offset = 16;

/// The bytes asked of upstream for a block of `block_size` bytes.
constexpr std::size_t upstream_block_bytes(std::size_t block_size) noexcept {
    return block_size >= offset_min_block ? block_size + low_alignment_offset : block_size;
}

/// Every class a request can have: class_index(max_classified_size) + 1.
inline constexpr std::uint32_t class_count = class_index(max_classified_size) + 1;

/// The per-class values, computed once at compile time: the slow paths ask
/// for them many times per call (a cache's held bytes sum upstream sizes
/// over its slots), and a load is cheaper than the arithmetic.
struct class_table {
    std::size_t size[class_count];      // class_size_formula(index)
    std::size_t upstream[class_count];  // upstream_block_bytes(size)
    std::size_t alignment[class_count]; // the block alignment (block_alignment())
};
constexpr class_table make_class_table() noexcept {
    class_table t{};
    for (std::uint32_t i = 0; i < class_count; ++i) {
        t.size[i] = class_size_formula(i);
        t.upstream[i] = upstream_block_bytes(t.size[i]);
        const std::size_t floor_pow2 = std::size_t{1} << floor_log2(t.size[i]);
        t.alignment[i] = floor_pow2 < min_block_alignment ? min_block_alignment
                         : floor_pow2 > page_alignment    ? page_alignment
                                                          : floor_pow2;
    }
    return t;
}
inline constexpr class_table classes = make_class_table();

/// The block size of class `index` < class_count: the largest request the
/// class serves.
constexpr std::size_t class_size(std::uint32_t index) noexcept {
    assert(index < class_count && "zeropool: class index out of range");
    return classes.size[index];
}

/// The alignment asked of upstream for blocks of class `index`: the largest
/// power of two <= the class size, limited to [min_block_alignment, page_alignment]. Every request the class
/// serves with alignment <= page_alignment is satisfied by it.
constexpr std::size_t block_alignment(std::uint32_t index) noexcept {
    assert(index < class_count && "zeropool: class index out of range");
    return classes.alignment[index];
}

/// The bytes asked of upstream for a block of class `index` < class_count.
constexpr std::size_t upstream_size(std::uint32_t index) noexcept {
    assert(index < class_count && "zeropool: class index out of range");
    return classes.upstream[index];
}

/// A request's class: index, block size, and bytes held from upstream.
struct size_class_info {
    std::uint32_t index;
    std::size_t size;     // class_size(index)
    std::size_t upstream; // upstream_size(index): what idle-byte accounting counts
};

/// Same as {class_index(s), class_size(..), upstream_size(..)} with one bit
/// scan, for the hit paths.
constexpr size_class_info classify(std::size_t s) noexcept {
    const std::uint64_t v = static_cast<std::uint64_t>(s) - 1;
    if (v < 4) return size_class_info{static_cast<std::uint32_t>(v), s, s};
    const unsigned k = floor_log2(v);
    const std::uint64_t m = (v >> (k - 2)) & 3u;
    const auto size = static_cast<std::size_t>((m + 5u) << (k - 2u));
    return size_class_info{static_cast<std::uint32_t>(4u * (k - 1u) + m), size,
                           upstream_block_bytes(size)};
}

/// Where a request's data starts in a block of `block_size` bytes: a pure
/// function of the class and the requested alignment, so deallocate finds the
/// block's start again.
constexpr std::size_t data_offset(std::size_t block_size, std::size_t alignment) noexcept {
    return block_size >= offset_min_block && alignment <= low_alignment_offset
               ? low_alignment_offset
               : 0;
}

/// The size that classification looks at: max(bytes, alignment, 1).
constexpr std::size_t classified_size(std::size_t bytes, std::size_t alignment) noexcept {
    const std::size_t s = bytes > alignment ? bytes : alignment;
    return s == 0 ? 1 : s;
}

/// True when `a` is a power of two.
constexpr bool is_power_of_two(std::size_t a) noexcept { return a != 0 && (a & (a - 1)) == 0; }

} // namespace zeropool::detail

#endif // ZEROPOOL_DETAIL_SIZE_CLASS_HPP
