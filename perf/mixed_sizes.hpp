// Shared by mixed_sizes_bench (workloads 6 and 8) and footprint_model: the
// workload's request sizes and its ring of live blocks, replayed without
// allocating. Not a program of its own (the build globs perf/*.cpp).
#ifndef ZEROPOOL_PERF_MIXED_SIZES_HPP
#define ZEROPOOL_PERF_MIXED_SIZES_HPP

#include <array>
#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

namespace zeropool_perf {

/// Blocks live at once in the ring.
inline constexpr std::size_t mixed_live_blocks = 64;
/// Length of the size list; the ring walks it cyclically.
inline constexpr std::size_t mixed_size_count = std::size_t{1} << 16; // a power of two
/// Untimed steps after the ring is filled, before the timed steps.
inline constexpr std::size_t mixed_warm_up_steps = 8192;

/// The request sizes, log-uniform in [1 KiB, 1 MiB). The mapping from the
/// generator's bits to a size is written out (std::uniform_real_distribution
/// differs between standard libraries), so the list is the same everywhere.
inline const std::vector<std::size_t>& mixed_request_sizes() {
    static const std::vector<std::size_t> sizes = [] {
        std::mt19937_64 gen(20261124);
        std::vector<std::size_t> v(mixed_size_count);
        for (std::size_t& s : v) {
            const double u = static_cast<double>(gen() >> 11) * 0x1.0p-53; // [0, 1)
            s = static_cast<std::size_t>(1024.0 * std::exp2(10.0 * u));   // [1 KiB, 1 MiB)
        }
        return v;
    }();
    return sizes;
}

/// Replays the ring without allocating: fills it (add(slot, bytes) for slots
/// 0 .. mixed_live_blocks - 1), then takes `steps` steps, each
/// remove(slot, bytes) of the oldest request followed by add(slot, bytes) of
/// the next one in the same slot: the order in which the benchmark frees and
/// allocates.
template <class Add, class Remove>
void replay_mixed_ring(std::size_t steps, Add&& add, Remove&& remove) {
    const std::vector<std::size_t>& sizes = mixed_request_sizes();
    std::array<std::size_t, mixed_live_blocks> ring{};
    std::size_t next = 0;
    for (std::size_t slot = 0; slot < mixed_live_blocks; ++slot)
        add(slot, ring[slot] = sizes[next++ % mixed_size_count]);
    for (std::size_t i = 0; i < steps; ++i) {
        const std::size_t slot = i % mixed_live_blocks;
        remove(slot, ring[slot]);
        add(slot, ring[slot] = sizes[next++ % mixed_size_count]);
    }
}

} // namespace zeropool_perf

#endif // ZEROPOOL_PERF_MIXED_SIZES_HPP
