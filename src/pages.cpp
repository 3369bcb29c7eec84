// zeropool: the system's page size, and faulting pages in by touching them.
#include "pages.hpp"

#include <cstdint>

#include <unistd.h>

namespace zeropool::detail {

std::size_t system_page_size() noexcept {
    static const std::size_t size = [] {
        const long v = ::sysconf(_SC_PAGESIZE);
        return v > 0 ? static_cast<std::size_t>(v) : std::size_t{4096};
    }();
    return size;
}

void touch_pages(void* p, std::size_t bytes) noexcept {
    if (bytes == 0) return;
    auto* const first = static_cast<volatile unsigned char*>(p);
    const std::size_t page = system_page_size();
    const auto start = reinterpret_cast<std::uintptr_t>(p);
    first[0] = 0; // the page [p] is in, whole or partial
    for (std::size_t off = (page - start % page) % page; off < bytes; off += page) first[off] = 0;
}

} // namespace zeropool::detail
