// zeropool: the pool's upstream resource, with the counts of its calls.
//
// Who touches what:
//   resource_   immutable.
//   allocations_, deallocations_   relaxed atomic counters, bumped after an
//       upstream call succeeds (a failed call changes nothing).
#ifndef ZEROPOOL_SRC_COUNTED_UPSTREAM_HPP
#define ZEROPOOL_SRC_COUNTED_UPSTREAM_HPP

#include <zeropool/detail/size_class.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>

namespace zeropool::detail {

class counted_upstream {
public:
    explicit counted_upstream(std::pmr::memory_resource* resource) noexcept : resource_(resource) {}

    counted_upstream(const counted_upstream&) = delete;
    counted_upstream& operator=(const counted_upstream&) = delete;

    /// A new block of class `cls`: upstream_size(cls) bytes aligned to
    /// block_alignment(cls). Throws: what upstream throws.
    void* allocate_block(std::uint32_t cls) { return allocate(upstream_size(cls), block_alignment(cls)); }

    /// Gives back a block of class `cls` with the size and alignment it was
    /// allocated with.
    void deallocate_block(void* p, std::uint32_t cls) noexcept {
        deallocate(p, upstream_size(cls), block_alignment(cls));
    }

    /// Passes a request through. Throws: what upstream throws.
    void* allocate(std::size_t bytes, std::size_t alignment) {
        void* p = resource_->allocate(bytes, alignment);
        allocations_.fetch_add(1, std::memory_order_relaxed);
        return p;
    }

    void deallocate(void* p, std::size_t bytes, std::size_t alignment) noexcept {
        resource_->deallocate(p, bytes, alignment);
        deallocations_.fetch_add(1, std::memory_order_relaxed);
    }

    std::pmr::memory_resource* resource() const noexcept { return resource_; }
    std::uint64_t allocations() const noexcept { return allocations_.load(std::memory_order_relaxed); }
    std::uint64_t deallocations() const noexcept { return deallocations_.load(std::memory_order_relaxed); }

private:
    std::pmr::memory_resource* const resource_;
    std::atomic<std::uint64_t> allocations_{0};
    std::atomic<std::uint64_t> deallocations_{0};
};

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_COUNTED_UPSTREAM_HPP
