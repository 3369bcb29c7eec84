// zeropool: the layout of a fitted block, one served to a request of a
// smaller class (fit, pool_config::max_fit_classes).
//
// deallocate is told the request's size and alignment, not the block's, so a
// fitted block must be told apart from a block of the request's own class,
// and its class found again, without any cost on the hit path of an
// exact-class loop. Two facts do it:
//   - address: a block of class c is aligned to block_alignment(c) (upstream
//     was asked for it), so an exact block's data pointer minus
//     data_offset(c, alignment) is aligned to it. A fitted block puts the
//     data fit_offset(alignment) bytes into its block instead, which leaves
//     that difference misaligned: the hit path of deallocate tests it with
//     one AND on the pointer (request_memo::exact_mask), and a misaligned
//     one takes the classified path.
//   - header: the first 16 bytes of a fitted block, before its data, record
//     its class and a check word. Only fitted blocks have it, and only the
//     classified paths read or write it.
// The difference is misaligned when fit_offset(a) - data_offset(c, a) is not
// a multiple of block_alignment(c): for a <= 16, fit_offset is 32 and
// data_offset 0 or 16; for a > 16, fit_offset is a and data_offset 0. Both
// hold when a < block_alignment(c) and block_alignment(c) >= 64, the two
// conditions of fit_allowed(). A page-aligned request of a class of 4 KiB or
// more has a == block_alignment(c): it is served by its own class only.
#ifndef ZEROPOOL_SRC_FITTED_BLOCK_HPP
#define ZEROPOOL_SRC_FITTED_BLOCK_HPP

#include <zeropool/detail/size_class.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace zeropool::detail {

/// The bytes of a fitted block's header (its class and a check word).
inline constexpr std::size_t fitted_header_bytes = 16;

/// Where a request's data starts in a fitted block: past the header, and at
/// a multiple of the request's alignment (the block is aligned to at least it).
constexpr std::size_t fit_offset(std::size_t alignment) noexcept {
    return alignment > 2 * fitted_header_bytes ? alignment : 2 * fitted_header_bytes;
}

/// True when a request of class `cls` and `alignment` may be fitted: its
/// fitted data pointer can be told from an exact one by address (above).
constexpr bool fit_allowed(std::uint32_t cls, std::size_t alignment) noexcept {
    const std::size_t a = block_alignment(cls);
    return a >= 64 && alignment < a;
}

/// The smallest class whose block holds a fitted request of `bytes` with
/// `alignment`: its data starts fit_offset(alignment) bytes in.
constexpr std::uint32_t smallest_fit_class(std::size_t bytes, std::size_t alignment) noexcept {
    return class_index(fit_offset(alignment) + (bytes == 0 ? 1 : bytes));
}

/// The classes a fitted block for a request may have: [lo, hi], empty when
/// lo > hi.
struct fit_range {
    std::uint32_t lo;
    std::uint32_t hi;
    bool empty() const noexcept { return lo > hi; }
};
/// The empty range: the request is not fitted.
inline constexpr fit_range no_fit{1, 0};

/// The fit range of a request of `bytes` with `alignment`, of class `cls`:
/// the classes up to `max_fit_classes` above it whose blocks hold the
/// request at fit_offset; empty when fit is off (max_fit_classes is 0) or
/// not allowed for the request.
constexpr fit_range fit_range_for(std::uint32_t cls, std::size_t bytes, std::size_t alignment,
                                  std::uint32_t max_fit_classes) noexcept {
    if (max_fit_classes == 0 || !fit_allowed(cls, alignment)) return no_fit;
    const std::uint32_t smallest = smallest_fit_class(bytes, alignment);
    return fit_range{smallest > cls ? smallest : cls + 1, cls + max_fit_classes};
}

/// True when `block` cannot be an exact block of a request of class `cls`
/// with its data at data_offset: it is a fitted block.
inline bool is_fitted(const void* block, std::uint32_t cls) noexcept {
    return (reinterpret_cast<std::uintptr_t>(block) & (block_alignment(cls) - 1)) != 0;
}

/// The check word of a fitted block's header: its class and address mixed
/// with a constant, so that a header this pool did not write is recognised
/// (all but by chance).
inline std::uint64_t fitted_check(const void* block, std::uint32_t cls) noexcept {
    constexpr std::uint64_t key = 0x7a65726f706f6f6cULL; // "zeropool"
    return (reinterpret_cast<std::uintptr_t>(block) ^ key) * 0x9e3779b97f4a7c15ULL + cls;
}

/// Writes the header of a fitted block of class `cls` at its start.
inline void write_fitted_header(void* block, std::uint32_t cls) noexcept {
    const std::uint64_t words[2] = {cls, fitted_check(block, cls)};
    std::memcpy(block, words, sizeof words);
}

/// The class recorded in a fitted block's header, or not_fitted when the
/// header is not one this pool wrote (a deallocate with a size, an
/// alignment or a pointer that the allocation did not have).
inline constexpr std::uint32_t not_fitted = ~std::uint32_t{0};
inline std::uint32_t read_fitted_header(const void* block) noexcept {
    std::uint64_t words[2];
    std::memcpy(words, block, sizeof words);
    const auto cls = static_cast<std::uint32_t>(words[0]);
    if (words[0] != cls || words[1] != fitted_check(block, cls)) return not_fitted;
    return cls;
}

/// The outcome of a deallocate that names no block this pool handed out
/// (detected where a fitted block's header is read): a message and abort().
[[noreturn]] inline void bad_deallocate(const char* what) noexcept {
    std::fprintf(stderr, "zeropool::sharded_buffer_resource: %s\n", what);
    std::abort();
}

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_FITTED_BLOCK_HPP
