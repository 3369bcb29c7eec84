// Shared by the zeropool benchmarks: the peers' settings and the ideal free
// list that every program compares against, and the helper that keeps calls
// virtual. Not a program of its own (the build globs perf/*.cpp).
#ifndef ZEROPOOL_PERF_PEERS_HPP
#define ZEROPOOL_PERF_PEERS_HPP

#include <benchmark/benchmark.h>

#include <boost/container/pmr/pool_options.hpp>

#include <cstddef>
#include <memory_resource>
#include <vector>

namespace zeropool_perf {

/// The largest block the std and Boost pools are asked to pool, so that large
/// blocks are pooled at all (their defaults stop at a few KiB). Boost 1.81
/// caps it at 4 KiB whatever is asked: its options() reports the cap.
inline constexpr std::size_t large_pool_block = std::size_t{256} << 20;

/// std pool options with large blocks enabled.
inline std::pmr::pool_options std_large_blocks() {
    std::pmr::pool_options o;
    o.largest_required_pool_block = large_pool_block;
    return o;
}

/// Boost pool options with large blocks asked for (see large_pool_block).
inline boost::container::pmr::pool_options boost_large_blocks() {
    boost::container::pmr::pool_options o;
    o.largest_required_pool_block = large_pool_block;
    return o;
}

/// The floor for a cache hit: a single-threaded LIFO of same-size blocks.
class ideal_free_list final : public std::pmr::memory_resource {
public:
    ideal_free_list() = default;
    ideal_free_list(const ideal_free_list&) = delete;
    ideal_free_list& operator=(const ideal_free_list&) = delete;
    ~ideal_free_list() override {
        for (void* p : free_) std::pmr::new_delete_resource()->deallocate(p, bytes_, align_);
    }

private:
    void* do_allocate(std::size_t bytes, std::size_t align) override {
        if (!free_.empty()) {
            void* p = free_.back();
            free_.pop_back();
            return p;
        }
        bytes_ = bytes;
        align_ = align;
        return std::pmr::new_delete_resource()->allocate(bytes, align);
    }
    void do_deallocate(void* p, std::size_t, std::size_t) override { free_.push_back(p); }
    bool do_is_equal(const memory_resource& o) const noexcept override { return this == &o; }

    std::vector<void*> free_;
    std::size_t bytes_ = 0;
    std::size_t align_ = 0;
};

/// Hides the dynamic type of `r` from the optimiser, so that every call
/// through the returned reference stays virtual (no devirtualisation).
template <class Base>
Base& launder(Base* r) {
    benchmark::DoNotOptimize(r);
    return *r;
}

} // namespace zeropool_perf

#endif // ZEROPOOL_PERF_PEERS_HPP
