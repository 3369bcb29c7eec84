// zeropool: a polymorphic allocator that default-initialises.
#ifndef ZEROPOOL_DEFAULT_INIT_ALLOCATOR_HPP
#define ZEROPOOL_DEFAULT_INIT_ALLOCATOR_HPP

#include <memory_resource>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace zeropool {

/// A std::pmr::polymorphic_allocator<T> with two differences:
///  - construct(p) with no arguments default-initialises (placement new of U
///    without an initialiser), so
///    `resize(n)` on a vector of trivial types leaves the bytes unwritten
///    (at -O0 the compiler still emits an empty loop over the elements);
///  - select_on_container_copy_construction() returns a copy of *this, so a
///    copied container keeps its memory resource (the std allocator returns
///    the default resource instead).
/// Everything else (equality, no propagation on assignment or swap) is the
/// std::pmr::polymorphic_allocator behaviour.
template <class T>
class default_init_allocator : public std::pmr::polymorphic_allocator<T> {
    using base = std::pmr::polymorphic_allocator<T>;
    template <class U>
    struct is_pair : std::false_type {};
    template <class A, class B>
    struct is_pair<std::pair<A, B>> : std::true_type {};

public:
    /// The element type.
    using value_type = T;

    /// Rebinding keeps the default-initialising behaviour.
    template <class U>
    struct rebind {
        /// The same allocator for elements of type U.
        using other = default_init_allocator<U>;
    };

    /// Uses std::pmr::get_default_resource(). Throws nothing.
    default_init_allocator() noexcept = default;
    /// Uses `resource`, which must be non-null and outlive the allocator.
    /// Implicit, like std::pmr::polymorphic_allocator.
    default_init_allocator(std::pmr::memory_resource* resource) noexcept : base(resource) {}
    /// Copies the resource of `other`.
    template <class U>
    default_init_allocator(const default_init_allocator<U>& other) noexcept
        : base(other.resource()) {}
    /// Copies: the copy uses the same resource.
    default_init_allocator(const default_init_allocator&) noexcept = default;
    default_init_allocator& operator=(const default_init_allocator&) = delete;

    /// Effects: for a U that uses an allocator (std::uses_allocator, or a
    /// std::pair), uses-allocator construction as polymorphic_allocator does,
    /// so elements share the resource. Otherwise placement new of U without
    /// an initialiser: default-initialisation, which writes nothing for a trivial U.
    template <class U>
    void construct(U* p) {
        if constexpr (std::uses_allocator_v<U, base> || is_pair<U>::value)
            base::construct(p);
        else
            ::new (static_cast<void*>(p)) U;
    }
    /// Effects: as std::pmr::polymorphic_allocator<T>::construct.
    template <class U, class A0, class... Args>
    void construct(U* p, A0&& a0, Args&&... args) {
        base::construct(p, std::forward<A0>(a0), std::forward<Args>(args)...);
    }

    /// Returns a copy of *this: copies of a container stay on its resource.
    default_init_allocator select_on_container_copy_construction() const noexcept { return *this; }
};

/// True when both allocators use equal resources.
template <class T, class U>
bool operator==(const default_init_allocator<T>& a, const default_init_allocator<U>& b) noexcept {
    return *a.resource() == *b.resource();
}
/// True when the allocators use resources that are not equal.
template <class T, class U>
bool operator!=(const default_init_allocator<T>& a, const default_init_allocator<U>& b) noexcept {
    return !(a == b);
}

} // namespace zeropool

#endif // ZEROPOOL_DEFAULT_INIT_ALLOCATOR_HPP
