// zeropool: the shared state of one sharded_buffer_resource below its hit
// paths: the shard set, the idle-byte budget, the counted upstream, and the
// pool's entry in the thread registry; and the transfers between the tiers
// (src/tier_transfer.cpp).
//
// Who touches what:
//   shards    see shard_set.hpp.
//   budget    see byte_budget.hpp.
//   upstream  see counted_upstream.hpp.
//   tls_capacity_   immutable.
//   the registered_pool base   see thread_registry.hpp.
//
// The tiers hold block starts: a request's data starts data_offset(class,
// alignment) bytes into its block; the routing (sharded_buffer_resource.cpp)
// adds and removes that offset, everything here sees blocks.
#ifndef ZEROPOOL_SRC_POOL_CORE_HPP
#define ZEROPOOL_SRC_POOL_CORE_HPP

#include <zeropool/pool_config.hpp>

#include "byte_budget.hpp"
#include "counted_upstream.hpp"
#include "shard_set.hpp"
#include "thread_cache.hpp"
#include "thread_registry.hpp"

#include <cstddef>
#include <cstdint>
#include <memory_resource>

namespace zeropool::detail {

class pool_core final : public registered_pool {
public:
    /// Throws: std::bad_alloc. Registers with the thread registry.
    pool_core(std::uint64_t pool_id, const pool_config& config, std::pmr::memory_resource* upstream);

    /// Returns every idle block of every tier upstream, other threads' caches
    /// included. No other thread may be inside a call on the pool.
    ~pool_core();

    // ---- the slow paths of allocate and deallocate (tier_transfer.cpp) -------

    /// A block of class `cls` for a request that missed the calling thread's
    /// cache memo: from the cache, the shards, or upstream.
    /// Throws: what upstream throws; nothing has changed then.
    void* allocate_block(std::uint32_t cls);
    /// Takes back a block of class `cls`: into the calling thread's cache, a
    /// shard, or upstream beyond the caps.
    void deallocate_block(void* block, std::uint32_t cls) noexcept;

    // ---- extensions ------------------------------------------------------------

    /// Keeps a new block of class `cls` idle in a shard, its pages faulted in;
    /// false (block returned upstream, or none taken) when the caps are reached.
    /// Throws: what upstream throws; nothing has changed then.
    bool preallocate_block(std::uint32_t cls, std::size_t spread);
    /// Returns the calling thread's cached blocks and every shard's upstream.
    void trim() noexcept;

    shard_set shards;
    byte_budget budget;
    counted_upstream upstream;

private:
    // registered_pool
    void flush_exiting(thread_cache& cache) noexcept override;
    void lock_for_fork() noexcept override { shards.lock_all(); }
    void unlock_after_fork() noexcept override { shards.unlock_all(); }

    // The cache <-> shard transfer policy.
    void* refill_from_shards(thread_cache& cache, std::uint32_t cls, bool batch) noexcept;
    void spill_and_cache(thread_cache& cache, void* block, std::uint32_t cls) noexcept;
    void empty_cache(thread_cache& cache, bool to_upstream) noexcept;

    // Shards and upstream.
    std::size_t home_shard() const noexcept;
    void* take_from_shards(std::uint32_t cls) noexcept;
    bool give_to_shards(void* block, std::uint32_t cls) noexcept;
    void release_block(void* block, std::uint32_t cls) noexcept;
    void release_blocks(const cached_block* blocks, std::uint32_t n) noexcept;
    void return_upstream(void* block, std::uint32_t cls) noexcept;
    void return_shards_upstream() noexcept;

    const std::uint32_t tls_capacity_;
};

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_POOL_CORE_HPP
