// zeropool: membarrier(2) behind process_barrier().
#include "process_barrier.hpp"

#if defined(__linux__)
#include <cerrno>

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace zeropool::detail {

namespace {

#if defined(__linux__) && defined(__NR_membarrier)
long membarrier(int command) noexcept { return ::syscall(__NR_membarrier, command, 0, 0); }

// Asks the kernel once whether the private expedited command exists, and
// registers the process for it.
bool register_once() noexcept {
    const long supported = membarrier(MEMBARRIER_CMD_QUERY);
    if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
    return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}
#endif

} // namespace

bool process_barrier_available() noexcept {
#if defined(__linux__) && defined(__NR_membarrier)
    static const bool available = register_once();
    return available;
#else
    return false;
#endif
}

bool process_barrier() noexcept {
#if defined(__linux__) && defined(__NR_membarrier)
    if (!process_barrier_available()) return false;
    if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return true;
    // EPERM: this process is not registered (a fork() child whose kernel does
    // not carry the registration over): register, and try once more.
    if (errno != EPERM || membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0) return false;
    return membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0;
#else
    return false;
#endif
}

} // namespace zeropool::detail
