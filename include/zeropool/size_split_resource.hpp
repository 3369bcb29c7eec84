// zeropool: a memory_resource that routes requests to one of two resources by
// size. Its use here: the upstream of a sharded_buffer_resource that sends the
// large size classes to a page_resource (huge pages, cheap first touch) and the
// others to the default resource.
#ifndef ZEROPOOL_SIZE_SPLIT_RESOURCE_HPP
#define ZEROPOOL_SIZE_SPLIT_RESOURCE_HPP

#include <cstddef>
#include <memory_resource>
#include <stdexcept>

namespace zeropool {

/// A std::pmr::memory_resource that forwards each request whose
/// max(bytes, alignment) is at least threshold() to large(), and every other
/// request to small(). Deallocation follows the same rule, so a block always
/// returns to the resource that gave it. Holds no state beside the three
/// values; thread-safe when both targets are.
///
///     zeropool::page_resource pages;                        // huge pages
///     zeropool::size_split_resource upstream(2 << 20, &pages); // >= 2 MiB: pages
///     zeropool::sharded_buffer_resource pool({}, &upstream);
class size_split_resource final : public std::pmr::memory_resource {
public:
    /// Effects: routes requests of at least `threshold` bytes to `large`, the
    /// others to `small`; both must outlive this resource.
    /// Throws: std::invalid_argument if `large` or `small` is null.
    size_split_resource(std::size_t threshold, std::pmr::memory_resource* large,
                        std::pmr::memory_resource* small = std::pmr::get_default_resource())
        : threshold_(threshold), large_(large), small_(small) {
        if (large == nullptr || small == nullptr) {
            throw std::invalid_argument("zeropool::size_split_resource: null target resource");
        }
    }

    /// Returns: the smallest max(bytes, alignment) routed to large().
    std::size_t threshold() const noexcept { return threshold_; }
    /// Returns: the resource that serves requests of at least threshold().
    std::pmr::memory_resource* large() const noexcept { return large_; }
    /// Returns: the resource that serves requests below threshold().
    std::pmr::memory_resource* small() const noexcept { return small_; }

private:
    std::pmr::memory_resource* target(std::size_t bytes, std::size_t alignment) const noexcept {
        return (bytes > alignment ? bytes : alignment) >= threshold_ ? large_ : small_;
    }
    void* do_allocate(std::size_t bytes, std::size_t alignment) override {
        return target(bytes, alignment)->allocate(bytes, alignment);
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
        target(bytes, alignment)->deallocate(p, bytes, alignment);
    }
    /// True when `other` is a size_split_resource with the same threshold and
    /// equal targets: then either can free the other's blocks.
    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
        if (this == &other) return true;
        const auto* o = dynamic_cast<const size_split_resource*>(&other);
        return o != nullptr && o->threshold_ == threshold_ && o->large_->is_equal(*large_) &&
               o->small_->is_equal(*small_);
    }

    std::size_t threshold_;
    std::pmr::memory_resource* large_;
    std::pmr::memory_resource* small_;
};

} // namespace zeropool

#endif // ZEROPOOL_SIZE_SPLIT_RESOURCE_HPP
