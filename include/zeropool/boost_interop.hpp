// zeropool: a bridge from std::pmr::memory_resource to Boost.Container's pmr.
//
// Why it exists: boost::container::pmr::memory_resource is a class of its own,
// unrelated to std::pmr::memory_resource (Boost.Container implemented pmr
// before the standard library shipped it, and keeps its own hierarchy). A
// std::pmr resource such as sharded_buffer_resource therefore cannot be given
// to boost::container::pmr::polymorphic_allocator, nor be the upstream of
// Boost's pool and monotonic resources. Boost 1.81 ships no adaptor between the
// two (boost/container/pmr/resource_adaptor.hpp wraps an *allocator*, not a
// std::pmr resource), so zeropool provides boost_resource_adaptor.
//
// Boost containers whose allocator is the *standard* one
// (boost::container::vector<T, std::pmr::polymorphic_allocator<T>>) need no
// adaptor: give them the std resource directly.
//
// This is the only zeropool header that includes Boost; zeropool.hpp does not
// include it. Using it requires the Boost.Container headers (1.81 or newer);
// the adaptor itself is header-only, while Boost's pool and monotonic
// resources need the Boost.Container library at link time.
#ifndef ZEROPOOL_BOOST_INTEROP_HPP
#define ZEROPOOL_BOOST_INTEROP_HPP

#include <boost/container/pmr/memory_resource.hpp>

#include <cstddef>
#include <memory_resource>
#include <stdexcept>

namespace zeropool {

/// A boost::container::pmr::memory_resource that forwards every call to a
/// std::pmr::memory_resource (the target), unchanged. It holds nothing but the
/// target pointer: it neither owns nor tracks memory, and is as thread-safe as
/// the target (calling its members concurrently is safe whenever calling the
/// target's members concurrently is). Copying yields an adaptor of the same
/// target, equal to the original.
class boost_resource_adaptor final : public boost::container::pmr::memory_resource {
public:
    /// Precondition: `target` outlives the adaptor and every block allocated
    /// through it.
    /// Effects: builds an adaptor forwarding to `target`.
    /// Throws: std::invalid_argument if `target` is null.
    explicit boost_resource_adaptor(std::pmr::memory_resource* target) : target_(target) {
        if (target == nullptr) throw std::invalid_argument("zeropool::boost_resource_adaptor: null target resource");
    }

    /// Returns: the target given at construction. Throws: nothing.
    std::pmr::memory_resource* target() const noexcept { return target_; }

private:
    /// Returns: target()->allocate(bytes, alignment).
    /// Throws: what the target throws, unchanged.
    void* do_allocate(std::size_t bytes, std::size_t alignment) override {
        return target_->allocate(bytes, alignment);
    }

    /// Precondition: `p` was returned by allocate(bytes, alignment) on an
    /// adaptor equal to *this and not yet deallocated.
    /// Effects: target()->deallocate(p, bytes, alignment). Throws: nothing.
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
        target_->deallocate(p, bytes, alignment);
    }

    /// Returns: true exactly when `other` is a boost_resource_adaptor whose
    /// target compares equal to ours (`*target() == *other.target()`, i.e. the
    /// same target or targets whose is_equal says so). Throws: nothing.
    bool do_is_equal(const boost::container::pmr::memory_resource& other) const noexcept override {
        const auto* adaptor = dynamic_cast<const boost_resource_adaptor*>(&other);
        return adaptor != nullptr && *target_ == *adaptor->target_;
    }

    std::pmr::memory_resource* target_;
};

} // namespace zeropool

#endif // ZEROPOOL_BOOST_INTEROP_HPP
