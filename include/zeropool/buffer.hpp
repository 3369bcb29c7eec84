// zeropool: the buffer type handed out by sharded_buffer_resource::get().
#ifndef ZEROPOOL_BUFFER_HPP
#define ZEROPOOL_BUFFER_HPP

#include <zeropool/default_init_allocator.hpp>

#include <cstddef>
#include <vector>

namespace zeropool {

/// A vector of bytes whose allocator default-initialises (resize never
/// zero-fills) and keeps its memory resource when the vector is copied.
using buffer = std::vector<std::byte, default_init_allocator<std::byte>>;

} // namespace zeropool

#endif // ZEROPOOL_BUFFER_HPP
