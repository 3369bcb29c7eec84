// Shared by the zeropool benchmarks: the peers' settings and the ideal free
// list that every program compares against, and the helper that keeps calls
// virtual. Not a program of its own (the build globs perf/*.cpp).
#ifndef ZEROPOOL_PERF_PEERS_HPP
#define ZEROPOOL_PERF_PEERS_HPP

#include <benchmark/benchmark.h>

#include <boost/container/pmr/pool_options.hpp>

#include <cstddef>
#include <memory_resource>
#include <new>
#include <string>
#include <vector>

#include <dlfcn.h> // dlsym(RTLD_DEFAULT): which malloc this program runs on

#if defined(ZEROPOOL_PERF_HAVE_TBB)
#include <tbb/scalable_allocator.h>
#endif

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

/// The malloc this program runs on, named after the library that replaced
/// glibc's: "tcmalloc", "jemalloc" or "mimalloc" when the program is linked
/// with one of them (perf/CMakeLists.txt builds such variants of the programs
/// that have a malloc row), else "new_delete" (glibc malloc behind
/// std::pmr::new_delete_resource()). The malloc rows of every program are
/// named with it, so one JSON file says which malloc it measured.
inline const std::string& malloc_name() {
    static const std::string name = [] {
        if (::dlsym(RTLD_DEFAULT, "tc_malloc") != nullptr) return std::string("tcmalloc");
        if (::dlsym(RTLD_DEFAULT, "mallocx") != nullptr) return std::string("jemalloc");
        if (::dlsym(RTLD_DEFAULT, "mi_malloc") != nullptr) return std::string("mimalloc");
        return std::string("new_delete");
    }();
    return name;
}

/// `prefix` followed by malloc_name(): the name of a malloc row.
inline std::string malloc_row(const char* prefix) { return std::string(prefix) + malloc_name(); }

/// True when the program runs on a malloc other than glibc's: only its malloc
/// rows are of interest then (the script runs it with a filter on them).
inline bool malloc_variant() { return malloc_name() != "new_delete"; }

#if defined(ZEROPOOL_PERF_HAVE_TBB)
/// TBB's scalable allocator (libtbbmalloc, which does not replace malloc)
/// as a pmr resource: scalable_aligned_malloc / scalable_aligned_free.
class tbb_scalable_resource final : public std::pmr::memory_resource {
private:
    void* do_allocate(std::size_t bytes, std::size_t align) override {
        void* p = scalable_aligned_malloc(bytes == 0 ? 1 : bytes, align);
        if (p == nullptr) throw std::bad_alloc();
        return p;
    }
    void do_deallocate(void* p, std::size_t, std::size_t) override { scalable_aligned_free(p); }
    bool do_is_equal(const memory_resource& o) const noexcept override { return this == &o; }
};

/// One TBB resource for the whole program (it is stateless: every instance
/// shares TBB's process-wide allocator).
inline std::pmr::memory_resource* tbb_scalable() {
    static tbb_scalable_resource r;
    return &r;
}
#endif

/// Makes the optimiser forget the value of `p` (as if something had changed
/// it) and assume that all memory was read and written, so that neither the
/// work that produced p nor what uses it can be folded away. Used instead of
/// Google Benchmark 1.7.1's DoNotOptimize(T&), whose "+m,r" operand g++ 12
/// mishandles in some frames: in a g++ ASan build, launder() read `r` back
/// from a stack slot the asm had never written (a null resource, then a
/// crash), and at -O2 it once left a stale pointer in a ring member
/// (mixed_sizes_bench).
template <class T>
inline void escape(T*& p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    asm volatile("" : "+r"(p) : : "memory");
#else
    benchmark::DoNotOptimize(p);
#endif
}

/// Hides the dynamic type of `r` from the optimiser, so that every call
/// through the returned reference stays virtual (no devirtualisation).
template <class Base>
Base& launder(Base* r) {
    escape(r);
    return *r;
}

} // namespace zeropool_perf

#endif // ZEROPOOL_PERF_PEERS_HPP
