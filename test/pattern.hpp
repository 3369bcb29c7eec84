// Shared by the zeropool tests and the fuzzer: the content pattern written into
// blocks and checked when they are freed. Needs no test framework.
#ifndef ZEROPOOL_TEST_PATTERN_HPP
#define ZEROPOOL_TEST_PATTERN_HPP

#include <cstddef>
#include <cstdint>

namespace zeropool_test {

/// The pattern word `i` of a block that starts at `p`, for a content
/// generation `gen` (so a rewrite is seen): a mix of the three, so a block
/// moved, shared or left stale shows a wrong word.
inline std::uint64_t pattern_word(const void* p, std::size_t i, std::uint64_t gen = 0) noexcept {
    std::uint64_t x = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p)) ^
                      (gen * 0xD6E8FEB86659FD93ull) ^ (static_cast<std::uint64_t>(i) * 0x9E3779B97F4A7C15ull);
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    return x ^ (x >> 32);
}

} // namespace zeropool_test

#endif // ZEROPOOL_TEST_PATTERN_HPP
