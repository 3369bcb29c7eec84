// zeropool: the clock that release by demand reads: CLOCK_MONOTONIC_COARSE,
// a few nanoseconds through the vDSO, with the resolution of the kernel tick
// (1-4 ms), which is plenty for periods of seconds.
#ifndef ZEROPOOL_SRC_COARSE_CLOCK_HPP
#define ZEROPOOL_SRC_COARSE_CLOCK_HPP

#include <cstdint>
#include <ctime>

namespace zeropool::detail {

/// Nanoseconds on a monotonic clock of coarse resolution.
inline std::uint64_t coarse_now_ns() noexcept {
    timespec ts{};
#if defined(CLOCK_MONOTONIC_COARSE)
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

} // namespace zeropool::detail

#endif // ZEROPOOL_SRC_COARSE_CLOCK_HPP
