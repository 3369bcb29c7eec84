// zeropool: page_resource, one anonymous mapping per block.
//
// A block of `size` bytes (rounded up to pages) with alignment A > page size
// is cut out of a mapping of size + A - page bytes: the unaligned head and the
// tail are unmapped at once, so the block is exactly one mapping again and
// deallocate() unmaps [p, p + size) without remembering anything.
#include <zeropool/page_resource.hpp>

#include <zeropool/detail/size_class.hpp>

#include "pages.hpp"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 // Linux 5.14; older headers lack the name
#endif

namespace zeropool {

namespace {

using detail::max_request;

std::size_t round_up(std::size_t v, std::size_t to) noexcept { return (v + to - 1) & ~(to - 1); }

/// The first line of a small file (sysfs), or "" when it cannot be read.
/// Plain read(2): iostreams would cost a fresh process about 0.7 ms here.
std::string read_small_file(const char* path) {
    char text[256];
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::string();
    const ssize_t n = ::read(fd, text, sizeof text - 1);
    ::close(fd);
    if (n <= 0) return std::string();
    text[n] = '\0';
    const char* end = std::strchr(text, '\n');
    const auto length = end != nullptr ? static_cast<std::size_t>(end - text) : static_cast<std::size_t>(n);
    return std::string(text, length);
}

struct system_huge_pages {
    thp_mode mode = thp_mode::unsupported;
    std::size_t size = 0; // 0: none
};

const system_huge_pages& huge_pages() noexcept {
    static const system_huge_pages info = []() noexcept {
        system_huge_pages r;
        try {
            const std::string enabled = read_small_file("/sys/kernel/mm/transparent_hugepage/enabled");
            r.mode = page_resource::parse_thp_mode(enabled.c_str());
            if (r.mode != thp_mode::unsupported) {
                const std::string size = read_small_file("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");
                const unsigned long long v = std::strtoull(size.c_str(), nullptr, 10);
                if (v != 0 && detail::is_power_of_two(static_cast<std::size_t>(v))) {
                    r.size = static_cast<std::size_t>(v);
                } else {
                    r.mode = thp_mode::unsupported; // no usable size: behave as without
                }
            }
        } catch (...) {
            r = system_huge_pages{};
        }
        return r;
    }();
    return info;
}

[[noreturn]] void die(const char* what, int error) noexcept {
    std::fprintf(stderr, "zeropool::page_resource: %s: %s\n", what, std::strerror(error));
    std::abort();
}

void unmap_or_die(void* p, std::size_t size) noexcept {
    if (::munmap(p, size) != 0) die("munmap failed (a pointer or size not from allocate?)", errno);
}

/// Faults every page of [p, p + size) in, writing zero (fresh anonymous pages
/// are zero already). Returns false when the memory cannot be provided.
bool populate(void* p, std::size_t size) noexcept {
    if (::madvise(p, size, MADV_POPULATE_WRITE) == 0) return true;
    if (errno != EINVAL) return false; // ENOMEM, EFAULT, EHWPOISON: no memory behind it
    detail::touch_pages(p, size); // kernel older than 5.14: one write per page
    return true;
}

} // namespace

thp_mode page_resource::parse_thp_mode(const char* text) noexcept {
    if (text == nullptr) return thp_mode::unsupported;
    const char* open = std::strchr(text, '[');
    if (open == nullptr) return thp_mode::unsupported;
    const char* close = std::strchr(open, ']');
    if (close == nullptr) return thp_mode::unsupported;
    const std::string word(open + 1, close);
    if (word == "always") return thp_mode::always;
    if (word == "madvise") return thp_mode::madvise;
    if (word == "never") return thp_mode::never;
    return thp_mode::unsupported;
}

std::size_t page_resource::page_size() noexcept { return detail::system_page_size(); }

std::size_t page_resource::huge_page_size() noexcept { return huge_pages().size; }

thp_mode page_resource::system_thp_mode() noexcept { return huge_pages().mode; }

page_resource::page_resource(const page_resource_options& options) noexcept : options_(options) {
    const system_huge_pages& system = huge_pages();
    const bool available = system.size != 0 &&
                           (system.mode == thp_mode::always || system.mode == thp_mode::madvise);
    if (!available) options_.huge_pages = false;
    // Without huge pages (size 0) the threshold is left as given: it is
    // never consulted, since huge_pages is false then.
    if (options_.huge_page_threshold < system.size) options_.huge_page_threshold = system.size;
}

page_resource_stats page_resource::stats() const noexcept {
    page_resource_stats s;
    s.maps = maps_.load(std::memory_order_relaxed);
    s.unmaps = unmaps_.load(std::memory_order_relaxed);
    s.mapped_bytes = mapped_bytes_.load(std::memory_order_relaxed);
    s.huge_advised = huge_advised_.load(std::memory_order_relaxed);
    s.advice_refused = advice_refused_.load(std::memory_order_relaxed);
    return s;
}

std::size_t page_resource::mapping_size(std::size_t bytes) const noexcept {
    return round_up(bytes == 0 ? 1 : bytes, page_size());
}

std::size_t page_resource::mapping_alignment(std::size_t size, std::size_t alignment) const noexcept {
    std::size_t a = alignment < page_size() ? page_size() : alignment;
    if (options_.huge_pages && size >= options_.huge_page_threshold && a < huge_page_size()) {
        a = huge_page_size(); // so that whole huge pages fit in the block
    }
    return a;
}

void* page_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
    if (bytes > max_request || alignment > max_request || !detail::is_power_of_two(alignment)) {
        throw std::bad_alloc();
    }
    const std::size_t size = mapping_size(bytes);
    const std::size_t align = mapping_alignment(size, alignment);
    const std::size_t length = size + (align - page_size()); // no wrap: both <= max_request

    void* base = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) throw std::bad_alloc();

    // Cut the aligned block out of the mapping.
    const auto start = reinterpret_cast<std::uintptr_t>(base);
    const std::uintptr_t aligned = round_up(start, align);
    const std::size_t head = aligned - start;
    const std::size_t tail = length - head - size;
    if (head != 0) unmap_or_die(base, head);
    void* p = reinterpret_cast<void*>(aligned);
    if (tail != 0) unmap_or_die(static_cast<std::byte*>(p) + size, tail);

    if (options_.huge_pages && size >= options_.huge_page_threshold) {
        if (::madvise(p, size, MADV_HUGEPAGE) == 0) {
            huge_advised_.fetch_add(1, std::memory_order_relaxed);
        } else {
            advice_refused_.fetch_add(1, std::memory_order_relaxed); // plain pages then
        }
    }
    if (options_.populate && !populate(p, size)) {
        unmap_or_die(p, size);
        throw std::bad_alloc();
    }
    maps_.fetch_add(1, std::memory_order_relaxed);
    mapped_bytes_.fetch_add(size, std::memory_order_relaxed);
    return p;
}

void page_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
    (void)alignment; // the block is exactly one mapping of mapping_size(bytes)
    if (p == nullptr) return;
    if (bytes > max_request) die("deallocate of a size allocate() never returned", EINVAL);
    const std::size_t size = mapping_size(bytes);
    unmap_or_die(p, size);
    unmaps_.fetch_add(1, std::memory_order_relaxed);
    mapped_bytes_.fetch_sub(size, std::memory_order_relaxed);
}

bool page_resource::do_is_equal(const std::pmr::memory_resource& other) const noexcept {
    return this == &other || dynamic_cast<const page_resource*>(&other) != nullptr;
}

} // namespace zeropool
