// zeropool: the system's page size, and faulting pages in by touching them.
#ifndef ZEROPOOL_SRC_PAGES_HPP
#define ZEROPOOL_SRC_PAGES_HPP

#include <cstddef>

namespace zeropool::detail {

/// The page size of the system (sysconf(_SC_PAGESIZE); 4096 if unknown).
std::size_t system_page_size() noexcept;

/// Writes one zero byte in every page that [p, p + bytes) touches, so the
/// kernel maps them now rather than at first use. The bytes written are in
/// memory the caller owns and whose content is unspecified (a fresh or idle
/// block).
void touch_pages(void* p, std::size_t bytes) noexcept;

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_PAGES_HPP
