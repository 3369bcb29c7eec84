// Shared by mixed_sizes_bench (workloads 6 and 8) and footprint_model: the
// workload's request sizes, its ring of live blocks replayed without
// allocating, and the bookkeeping of a modelled pool over that replay. Not a
// program of its own (the build globs perf/*.cpp).
#ifndef ZEROPOOL_PERF_MIXED_SIZES_HPP
#define ZEROPOOL_PERF_MIXED_SIZES_HPP

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <map>
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

/// What a modelled pool held over a replay of the ring.
struct replay_outcome {
    double held_peak = 0;                  // the most upstream bytes held at once
    double live_peak = 0;                  // the most requested bytes live at once
    std::size_t fresh_after_warm_up = 0;   // upstream allocations after the warm-up
    double fresh_pages_after_warm_up = 0;  // their 4 KiB pages
};

/// The bookkeeping of a modelled pool: live and held bytes, their peaks, and
/// the upstream allocations made after the warm-up steps.
class replay_ledger {
public:
    explicit replay_ledger(std::size_t warm_up) : warm_up_(warm_up) {}
    /// Step `i` (0-based, counted from the end of the fill) begins.
    void step_begins(std::size_t i) { step_ = i; }
    void live_added(std::size_t bytes) {
        live_ += static_cast<double>(bytes);
        result_.live_peak = std::max(result_.live_peak, live_);
    }
    void live_removed(std::size_t bytes) { live_ -= static_cast<double>(bytes); }
    /// The pool asked upstream for `upstream` bytes.
    void fresh(std::size_t upstream) {
        held_ += static_cast<double>(upstream);
        result_.held_peak = std::max(result_.held_peak, held_);
        if (step_ >= warm_up_) {
            ++result_.fresh_after_warm_up;
            result_.fresh_pages_after_warm_up += static_cast<double>((upstream + 4095) / 4096);
        }
    }
    /// The pool gave `upstream` bytes back.
    void released(std::size_t upstream) { held_ -= static_cast<double>(upstream); }
    const replay_outcome& result() const { return result_; }

private:
    std::size_t warm_up_;
    std::size_t step_ = 0;
    double live_ = 0;
    double held_ = 0;
    replay_outcome result_;
};

/// replay_mixed_ring over warm_up + steps steps, telling `book` which step
/// each removal begins.
template <class Add, class Remove>
void replay_mixed_ring_with(replay_ledger& book, std::size_t warm_up, std::size_t steps, Add&& add,
                            Remove&& remove) {
    std::size_t removed = 0;
    replay_mixed_ring(warm_up + steps, add, [&](std::size_t slot, std::size_t bytes) {
        book.step_begins(removed++);
        remove(slot, bytes);
    });
}

/// A pool that keeps every freed block for its own class and never returns
/// one (zeropool without a cap, or any exact-class cache), replayed over
/// warm_up + steps steps. block_bytes(request) is the upstream bytes of the
/// request's block, which identify its class, or 0 for a request the pool
/// does not pool (then upstream holds exactly the request while it is live).
template <class BlockBytes>
replay_outcome exact_class_cache(std::size_t warm_up, std::size_t steps, BlockBytes&& block_bytes) {
    replay_ledger book(warm_up);
    std::map<std::size_t, std::size_t> idle; // block bytes -> idle blocks
    replay_mixed_ring_with(
        book, warm_up, steps,
        [&](std::size_t, std::size_t bytes) {
            book.live_added(bytes);
            const std::size_t block = block_bytes(bytes);
            if (block == 0) return book.fresh(bytes);
            std::size_t& n = idle[block];
            if (n > 0) --n;
            else book.fresh(block);
        },
        [&](std::size_t, std::size_t bytes) {
            book.live_removed(bytes);
            const std::size_t block = block_bytes(bytes);
            if (block == 0) return book.released(bytes);
            ++idle[block];
        });
    return book.result();
}

} // namespace zeropool_perf

#endif // ZEROPOOL_PERF_MIXED_SIZES_HPP
