// zeropool: one idle block as the tiers pass it around.
#ifndef ZEROPOOL_SRC_CACHED_BLOCK_HPP
#define ZEROPOOL_SRC_CACHED_BLOCK_HPP

#include <cstdint>

namespace zeropool::detail {

/// One idle block: its start and its size class.
struct cached_block {
    void* ptr;
    std::uint32_t cls;
};

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_CACHED_BLOCK_HPP
