// zeropool: a std::pmr::memory_resource that pools large I/O buffers.
//
// Glossary, from fastest to slowest tier (each has one source file):
//   thread cache  a few idle blocks per (thread, pool); the owner thread takes
//                 and returns them with no lock and no atomic read-modify-write
//                 (src/thread_cache.hpp; found through src/thread_registry.hpp).
//   shard         a mutex-protected set of idle blocks, one list per size
//                 class; each thread has a home shard and looks in the
//                 others before upstream (src/shard.hpp, src/shard_set.hpp).
//   upstream      any std::pmr::memory_resource; pooled blocks are asked of it
//                 with their class size and class alignment
//                 (src/counted_upstream.hpp).
//   budget        the cap on idle bytes, in all tiers (src/byte_budget.hpp).
// Blocks move between the tiers in src/tier_transfer.cpp. A block's class is
// a pure function of (bytes, alignment): see detail/size_class.hpp and
// docs/design.md. A *block* is what the pool holds and hands out; a *buffer*
// is a zeropool::buffer, which get() makes from a block.
#ifndef ZEROPOOL_SHARDED_BUFFER_RESOURCE_HPP
#define ZEROPOOL_SHARDED_BUFFER_RESOURCE_HPP

#include <zeropool/buffer.hpp>
#include <zeropool/config.hpp>
#include <zeropool/pool_config.hpp>
#include <zeropool/pool_stats.hpp>

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <utility>

namespace zeropool {

namespace detail {
class pool_core;
class thread_cache;
struct cached_block;
struct fit_range;
} // namespace detail

/// A thread-safe std::pmr::memory_resource that keeps idle large blocks for
/// reuse in three tiers (thread cache, shards, upstream). Requests whose
/// max(bytes, alignment) lies in [min_buffer_size, max_buffer_size] and whose
/// alignment is at most 4096 are pooled; all others pass straight through to
/// upstream with their own size and alignment. Every member may be called from
/// any thread at any time, except that the destructor must not run while
/// another thread is inside a member of the same pool.
class sharded_buffer_resource final : public std::pmr::memory_resource {
public:
    /// Effects: builds a pool with the default options over
    /// std::pmr::get_default_resource(). Makes no upstream call.
    /// Throws: std::bad_alloc if the pool's bookkeeping cannot be allocated.
    sharded_buffer_resource();

    /// Effects: builds a pool with the default options over `upstream`, which
    /// must outlive the pool. Makes no upstream call.
    /// Throws: std::invalid_argument if `upstream` is null; std::bad_alloc if
    /// the pool's bookkeeping cannot be allocated.
    explicit sharded_buffer_resource(std::pmr::memory_resource* upstream);

    /// Effects: builds a pool with normalize(config) over `upstream`, which
    /// must outlive the pool. Makes no upstream call.
    /// Throws: std::invalid_argument if `upstream` is null; std::bad_alloc if
    /// the pool's bookkeeping cannot be allocated.
    explicit sharded_buffer_resource(
        const pool_config& config,
        std::pmr::memory_resource* upstream = std::pmr::get_default_resource());

    /// Effects: returns every idle block of every tier, including the blocks
    /// cached by other threads for this pool, to upstream before returning;
    /// those threads remain safe to run and exit. Blocks still allocated from
    /// the pool must not be deallocated after this.
    /// Thread safety: no other thread may be inside a member of this pool.
    ~sharded_buffer_resource() override;

    sharded_buffer_resource(const sharded_buffer_resource&) = delete;
    sharded_buffer_resource& operator=(const sharded_buffer_resource&) = delete;

    /// Non-standard extension.
    /// Returns: a buffer with size() == size and capacity() == size, whose
    /// allocator uses this pool; its bytes are not written (not zeroed). The
    /// block behind it may be larger (its size class, up to 25% more):
    /// get(good_size(n)) uses all of it.
    /// Throws: what upstream throws (std::bad_alloc), std::length_error if
    /// `size` exceeds buffer::max_size().
    buffer get(std::size_t size);

    /// Non-standard extension.
    /// Precondition: `buf` is empty or was allocated by this pool (its
    /// allocator's resource is *this); checked by an assertion in debug builds.
    /// Effects: gives the storage of `buf` back to the pool (its capacity(),
    /// not its size(), names the block) and leaves `buf` empty. An empty
    /// buffer is a no-op. In builds without assertions, a buffer of another
    /// resource is released to that resource, and this pool is not touched.
    /// Throws: nothing.
    void put(buffer&& buf) noexcept;

    /// Non-standard extension.
    /// Returns: the bytes that a request of `size` bytes (default alignment)
    /// may use without a larger block: its size class when the pool pools it,
    /// else `size` (as nallocx and mi_good_size do). good_size(n) >= n.
    /// Throws: nothing. Complexity: O(1).
    std::size_t good_size(std::size_t size) const noexcept;

    /// Non-standard extension.
    /// Effects: allocates up to `count` blocks of the class of `size` (default
    /// alignment) from upstream, writes one byte in each of their pages (so
    /// their pages are faulted in now, not at first use), and keeps them idle
    /// in the shards, stopping early when the caps (max_cached_bytes,
    /// max_buffers_per_shard) are reached. Does nothing when `size` is not
    /// pooled.
    /// Returns: the number of blocks kept (< count when a cap stopped it).
    /// Throws: what upstream throws; blocks already obtained stay pooled.
    std::size_t preallocate(std::size_t count, std::size_t size);

    /// Non-standard extension.
    /// Effects: returns to upstream every idle block of every tier: the
    /// shards, the calling thread's cache, and the other threads' caches,
    /// including those of threads that are parked and will not call the pool
    /// again, together with the budget they reserve. When it returns, the pool
    /// holds no idle block, unless another thread was inside a call on the
    /// pool meanwhile, or the system offers no process-wide memory barrier
    /// (Linux membarrier, 4.14 and later): other threads' caches are then left
    /// as they are (docs/design.md, "Memory that goes back").
    /// Throws: nothing. Complexity: linear in the threads that use the pool
    /// and in the idle blocks; one membarrier system call when any other
    /// thread holds blocks or reservation.
    void trim() noexcept;

    /// Non-standard extension.
    /// Effects: release by demand, when it is due (every quarter of
    /// config().idle_release_ms): returns upstream the idle blocks that no
    /// request has drawn on for about idle_release_ms, in every tier, and the
    /// budget reserved by thread caches that have not been used for that
    /// long. The pool also runs it on its own activity, in steps of at most
    /// 2 ms (none while an idle_releaser is attached); call it from a timer,
    /// or use an idle_releaser, when the program may go quiet. Does nothing
    /// when idle_release_ms is pool_config::no_idle_release, or when another
    /// thread is running it.
    /// Returns: the bytes returned upstream.
    /// Throws: nothing.
    std::size_t release_idle() noexcept;

    /// Non-standard extension. Returns: a snapshot of the pool's counters.
    /// Complexity: linear in shards and in threads that have used the pool.
    pool_stats stats() const noexcept;

    /// Returns: the effective options (defaults filled in, values clamped).
    const pool_config& config() const noexcept { return config_; }

    /// Returns: the upstream resource given at construction.
    std::pmr::memory_resource* upstream_resource() const noexcept;

private:
    friend class idle_releaser; // attaches to core_

    void* do_allocate(std::size_t bytes, std::size_t alignment) override;
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override;

    // Routing past the hit paths, out of line (src/sharded_buffer_resource.cpp).
    void* allocate_classified(std::size_t bytes, std::size_t alignment);
    void deallocate_classified(void* p, std::size_t bytes, std::size_t alignment) noexcept;
    bool is_pooled(std::size_t bytes, std::size_t alignment) const noexcept;
    // Fit (src/fitted_block.hpp): the classes that may serve a request, and
    // the hand-out and take-back of a block of a larger class.
    detail::fit_range fit_range(std::uint32_t cls, std::size_t bytes, std::size_t alignment) const noexcept;
    void* hand_out_fitted(detail::thread_cache* cache, detail::cached_block block, std::size_t bytes,
                          std::size_t alignment) noexcept;
    void take_back_fitted(void* p, std::size_t bytes, std::size_t alignment, std::uint32_t request_cls) noexcept;

    // Immutable after construction.
    std::uint64_t id_;   // the pool's never-reused id (core_->id), here so a hit needs one load
    pool_config config_; // effective options
    // The tiers below the hit paths and their books (src/pool_core.hpp).
    std::unique_ptr<detail::pool_core> core_;
};

// get and put are inline so that the vector's bookkeeping folds into the
// caller. get constructs the vector at its size: resize() of an empty vector
// stays out of line in libstdc++ (docs/design.md, "The buffer API").
inline buffer sharded_buffer_resource::get(std::size_t size) {
    // The default-initialising allocator: no byte is written.
    return buffer(size, default_init_allocator<std::byte>(this));
}

inline void sharded_buffer_resource::put(buffer&& buf) noexcept {
    if (buf.capacity() == 0) return;
    assert(buf.get_allocator().resource() == this && "zeropool: put() of a buffer from another resource");
    buffer released(std::move(buf)); // its destructor deallocates through its own resource
    buf.clear();
}

} // namespace zeropool

#endif // ZEROPOOL_SHARDED_BUFFER_RESOURCE_HPP
