// zeropool: a memory barrier on every thread of the process, issued from one
// (Linux membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)): the heavy side of the
// asymmetric handshake that lets a reclaimer take blocks from another
// thread's cache (src/thread_cache.hpp, src/cache_reclaim.cpp).
#ifndef ZEROPOOL_SRC_PROCESS_BARRIER_HPP
#define ZEROPOOL_SRC_PROCESS_BARRIER_HPP

namespace zeropool::detail {

/// Effects: when it returns true, every other thread of the process that was
/// running has executed a full memory barrier, so a store it made before that
/// point is visible to the caller, and a load it makes after that point sees
/// every store the caller made before the call. Returns false when the kernel
/// does not offer it (before Linux 4.14, or a seccomp filter refuses it);
/// then nothing is ordered, and a reclaimer must leave other threads' caches
/// alone. Registers the process for it on first use. Thread-safe.
bool process_barrier() noexcept;

/// True when process_barrier() works here (it is asked once, then cached).
bool process_barrier_available() noexcept;

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_PROCESS_BARRIER_HPP
