// zeropool: a std::pmr::memory_resource that maps whole pages from the kernel,
// with transparent huge pages for large blocks. Meant as the upstream of a
// sharded_buffer_resource for its large size classes (see size_split_resource.hpp
// and docs/cold_path.md), where a fresh block's first touch dominates the cost.
#ifndef ZEROPOOL_PAGE_RESOURCE_HPP
#define ZEROPOOL_PAGE_RESOURCE_HPP

#include <zeropool/config.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>

namespace zeropool {

/// The system's transparent huge page mode, read from
/// /sys/kernel/mm/transparent_hugepage/enabled.
enum class thp_mode {
    always,      ///< every suitable anonymous mapping may get huge pages
    madvise,     ///< only mappings advised with MADV_HUGEPAGE get huge pages
    never,       ///< huge pages are off: MADV_HUGEPAGE has no effect
    unsupported, ///< no such file: the kernel has no transparent huge pages
};

/// Options of a page_resource. Every field has a usable default.
struct page_resource_options {
    /// Blocks of at least this many bytes are aligned to the huge page size
    /// and advised with MADV_HUGEPAGE. 0 means the huge page size (2 MiB on
    /// x86-64); values below it are raised to it, since a smaller block cannot
    /// hold a huge page. Ignored when huge pages are off or unsupported.
    std::size_t huge_page_threshold = 0;
    /// Whether to use transparent huge pages at all (when the system has them).
    bool huge_pages = true;
    /// Whether allocate() faults every page of the block in before returning
    /// (MADV_POPULATE_WRITE, or one write per page where the kernel lacks it),
    /// so that the first touch by the caller costs nothing. Default: off (the
    /// pages are faulted in on first touch, by whoever touches them).
    bool populate = false;

    /// Sets huge_page_threshold; returns *this.
    page_resource_options& with_huge_page_threshold(std::size_t v) noexcept { huge_page_threshold = v; return *this; }
    /// Sets huge_pages; returns *this.
    page_resource_options& with_huge_pages(bool v) noexcept { huge_pages = v; return *this; }
    /// Sets populate; returns *this.
    page_resource_options& with_populate(bool v) noexcept { populate = v; return *this; }
};

/// Counters of one page_resource, each read atomically (the set is not one
/// snapshot under concurrency).
struct page_resource_stats {
    std::uint64_t maps = 0;            ///< successful allocate() calls (one mmap each)
    std::uint64_t unmaps = 0;          ///< deallocate() calls (one munmap each)
    std::uint64_t mapped_bytes = 0;    ///< bytes currently mapped, rounded to pages
    std::uint64_t huge_advised = 0;    ///< allocations advised with MADV_HUGEPAGE
    std::uint64_t advice_refused = 0;  ///< MADV_HUGEPAGE calls the kernel refused
};

/// A thread-safe std::pmr::memory_resource that gives every allocation its own
/// anonymous private mapping (mmap) and unmaps it on deallocation (munmap).
/// Sizes are rounded up to whole pages; every block is page-aligned, and any
/// larger power-of-two alignment is honoured. Blocks of at least
/// huge_page_threshold bytes are aligned to the huge page size and advised with
/// MADV_HUGEPAGE, so that the kernel backs them with 2 MiB pages where it can:
/// a first touch then costs one fault per 2 MiB instead of one per 4 KiB.
///
/// Where transparent huge pages are off or unsupported, or the kernel refuses
/// the advice, blocks are plain page mappings: nothing fails. What the system
/// setting changes: `always` gives huge pages even without advice (this
/// resource behaves the same), `madvise` gives them only to advised mappings
/// (this resource's large blocks), `never` gives none.
///
/// Each call is a system call: use this resource as the upstream of a pool, for
/// blocks large enough that the call costs little beside the memory (a mmap +
/// munmap pair costs a few microseconds), not for small objects.
class page_resource final : public std::pmr::memory_resource {
public:
    /// Effects: builds a resource with the given options. Reads the system's
    /// huge page size and mode once (cached for the process). Makes no mapping.
    explicit page_resource(const page_resource_options& options = {}) noexcept;

    page_resource(const page_resource&) = delete;
    page_resource& operator=(const page_resource&) = delete;

    /// Blocks still allocated are not unmapped: they stay valid until
    /// deallocated (through any page_resource, see do_is_equal).
    ~page_resource() override = default;

    /// Returns: the effective options (threshold raised to the huge page size,
    /// huge_pages false when the system has no huge pages; the threshold
    /// is then left as given).
    const page_resource_options& options() const noexcept { return options_; }

    /// Returns: a snapshot of the counters.
    page_resource_stats stats() const noexcept;

    /// Returns: the base page size (sysconf(_SC_PAGESIZE)).
    static std::size_t page_size() noexcept;

    /// Returns: the transparent huge page size (hpage_pmd_size), or 0 when the
    /// system has no transparent huge pages.
    static std::size_t huge_page_size() noexcept;

    /// Returns: the system's transparent huge page mode, read once.
    static thp_mode system_thp_mode() noexcept;

    /// Returns: the mode named by the contents of the sysfs `enabled` file
    /// (e.g. "always [madvise] never": the bracketed word); unsupported when
    /// no word is bracketed. Exposed for tests and diagnostics.
    static thp_mode parse_thp_mode(const char* enabled_file_contents) noexcept;

private:
    /// Throws: std::bad_alloc if `alignment` is not a power of two, if the
    /// rounded size overflows, or if mmap fails.
    void* do_allocate(std::size_t bytes, std::size_t alignment) override;
    /// Effects: unmaps the block. `p`, `bytes` and `alignment` must be the
    /// values of an allocate() of a page_resource. Throws: nothing. A pointer
    /// the kernel rejects (not page-aligned: it cannot come from a
    /// page_resource) aborts the process with a message.
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
    /// Returns: true when `other` is a page_resource: blocks are plain
    /// mappings, so any page_resource can unmap any other's (the counters of
    /// each resource then count only their own calls).
    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override;

    std::size_t mapping_size(std::size_t bytes) const noexcept;
    std::size_t mapping_alignment(std::size_t size, std::size_t alignment) const noexcept;

    page_resource_options options_;
    std::atomic<std::uint64_t> maps_{0};
    std::atomic<std::uint64_t> unmaps_{0};
    std::atomic<std::uint64_t> mapped_bytes_{0};
    std::atomic<std::uint64_t> huge_advised_{0};
    std::atomic<std::uint64_t> advice_refused_{0};
};

} // namespace zeropool

#endif // ZEROPOOL_PAGE_RESOURCE_HPP
