// Test support for the unit tests of the internal tiers (shard_test,
// thread_cache_test): heap blocks of a size class, standing in for the blocks
// a pool gets from upstream.
#ifndef ZEROPOOL_TEST_TIER_BLOCKS_HPP
#define ZEROPOOL_TEST_TIER_BLOCKS_HPP

#include <zeropool/detail/size_class.hpp>

#include "../src/asan.hpp"
#include "../src/cached_block.hpp"

#include <cstdint>
#include <new>
#include <vector>

namespace zeropool_test {

/// Heap blocks of a given class, freed when the owner goes. Unpoisons them
/// first: a test may end with blocks still in a tier (poisoned under ASan).
class tier_blocks {
public:
    tier_blocks() = default;
    tier_blocks(const tier_blocks&) = delete;
    tier_blocks& operator=(const tier_blocks&) = delete;
    ~tier_blocks() {
        for (const zeropool::detail::cached_block& b : all_) {
            ZEROPOOL_UNPOISON_IDLE(b.ptr, zeropool::detail::upstream_size(b.cls));
            ::operator delete(b.ptr, std::align_val_t{zeropool::detail::block_alignment(b.cls)});
        }
    }
    /// A new block of class `cls` (upstream_size(cls) bytes, its class alignment).
    void* make(std::uint32_t cls) {
        void* p = ::operator new(zeropool::detail::upstream_size(cls),
                                 std::align_val_t{zeropool::detail::block_alignment(cls)});
        all_.push_back(zeropool::detail::cached_block{p, cls});
        return p;
    }

private:
    std::vector<zeropool::detail::cached_block> all_;
};

} // namespace zeropool_test

#endif // ZEROPOOL_TEST_TIER_BLOCKS_HPP
