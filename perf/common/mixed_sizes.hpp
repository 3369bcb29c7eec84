// Shared by mixed_sizes_bench (workloads 6 and 8) and footprint_model: the
// workload's request sizes, its ring of live blocks replayed without
// allocating, the bookkeeping of a modelled pool over that replay, and the
// model of zeropool's own policy (exact classes, or bounded fit) that both
// programs replay. Not a program of its own (the build globs perf/*.cpp).
#ifndef ZEROPOOL_PERF_MIXED_SIZES_HPP
#define ZEROPOOL_PERF_MIXED_SIZES_HPP

#include <zeropool/detail/size_class.hpp>
#include <zeropool/pool_config.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
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
    std::size_t fitted_after_warm_up = 0;  // requests served by a block of a larger class
    std::size_t idle_blocks_peak = 0;      // the most idle blocks held at once
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
    /// The pool served a request with an idle block of a larger class.
    void fitted() {
        if (step_ >= warm_up_) ++result_.fitted_after_warm_up;
    }
    /// The pool now holds `n` idle blocks.
    void idle_blocks(std::size_t n) { result_.idle_blocks_peak = std::max(result_.idle_blocks_peak, n); }
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
    std::size_t idle_count = 0;
    replay_mixed_ring_with(
        book, warm_up, steps,
        [&](std::size_t, std::size_t bytes) {
            book.live_added(bytes);
            const std::size_t block = block_bytes(bytes);
            if (block == 0) return book.fresh(bytes);
            std::size_t& n = idle[block];
            if (n == 0) return book.fresh(block);
            --n;
            --idle_count;
        },
        [&](std::size_t, std::size_t bytes) {
            book.live_removed(bytes);
            const std::size_t block = block_bytes(bytes);
            if (block == 0) return book.released(bytes);
            ++idle[block];
            book.idle_blocks(++idle_count);
        });
    return book.result();
}

/// zeropool::sharded_buffer_resource's choice of block, as a model: which
/// requests it pools, how many blocks its thread cache holds, and which idle
/// blocks may serve a request.
struct zeropool_policy {
    /// Pooled: min_buffer_size <= max(bytes, alignment) <= max_buffer_size.
    std::size_t min_buffer_size = 0;
    std::size_t max_buffer_size = 0;
    /// Blocks the calling thread's cache holds.
    std::size_t tls_cache_size = 0;
    /// Fit reaches this many classes above the request's; 0: exact classes only.
    std::uint32_t max_fit_classes = 0;
    /// The alignment of every request: the ring calls allocate(bytes), which
    /// asks for alignof(std::max_align_t).
    std::size_t alignment = alignof(std::max_align_t);

    /// The policy of a pool built with `config` (normalised here, as the pool
    /// does in its constructor).
    static zeropool_policy of(const zeropool::pool_config& config,
                              std::size_t alignment = alignof(std::max_align_t)) {
        const zeropool::pool_config c = zeropool::normalize(config);
        zeropool_policy p;
        p.min_buffer_size = c.min_buffer_size;
        p.max_buffer_size = c.max_buffer_size;
        p.tls_cache_size = c.tls_cache_size;
        p.max_fit_classes = c.max_fit_classes == zeropool::pool_config::exact_classes_only
                                ? 0u
                                : static_cast<std::uint32_t>(c.max_fit_classes);
        p.alignment = alignment;
        return p;
    }
};

/// Where a fitted request's data starts in its block, and whether a request
/// may be fitted at all: the rules of the library's private
/// src/fitted_block.hpp (fit_offset, fit_allowed), restated here because
/// programs outside the library cannot include it. mixed_sizes_bench checks
/// the restatement: its model_fitted_per_op counter must equal the measured
/// fitted_per_op.
constexpr std::size_t model_fit_offset(std::size_t alignment) noexcept {
    return alignment > 32 ? alignment : 32; // past the 16-byte header
}
constexpr bool model_fit_allowed(std::uint32_t cls, std::size_t alignment) noexcept {
    const std::size_t a = zeropool::detail::block_alignment(cls);
    return a >= 64 && alignment < a;
}

/// zeropool::sharded_buffer_resource on the ring, one thread, replayed over
/// warm_up + steps steps: the calling thread's cache (tls_cache_size blocks,
/// oldest first) and the shards' idle blocks (per class), as the pool moves
/// blocks between them (src/sharded_buffer_resource.cpp, src/tier_transfer.cpp).
///
/// Allocate, class c:
///   1. the newest block of class c in the cache;
///   2. else (a miss) the cache's loop detector is cleared, and when it
///      held c (below) this request may not fit; the miss is recorded, and a block of
///      class c from the shards is taken, with as many more of class c as the
///      cache has free slots when the previous miss was of class c too;
///   3. else fit (when on, allowed, and not a loop): the idle block of the
///      smallest class in [lo, hi], hi = c + max_fit_classes, lo = max(c + 1,
///      class_index(fit offset + bytes)): the smallest block that holds the
///      request past its header; the cache's when it holds that class, else
///      the shards'. The detector records c as the last fitted class;
///   4. else a fresh block of class c, upstream_size(c) bytes (16 more than
///      the class size from 64 KiB on).
/// Deallocate: a fitted block that served a request of the last fitted class
/// arms the loop detector with that class. Every block goes into the cache,
/// in its own class (a block keeps its class for life); a full cache first
/// moves its oldest half to the shards. A request the pool does not pool
/// holds exactly its bytes upstream while live.
///
/// What the model leaves out, and why that changes nothing on this workload:
///   - the byte cap (max_cached_bytes, by default 1/8 of physical memory and
///     at least 64 MiB) and a cache's share of it (a quarter of the cap): the
///     idle bytes here stay far below both, so no block is turned away;
///   - release by demand (idle_release_ms, default 5 s): a run of the
///     benchmark is shorter, and this workload draws on every class often;
///   - which shard: the pool searches from the thread's home shard and fits
///     from the first shard that holds a class in range; one thread's freed
///     blocks all go to its home shard until that holds max_buffers_per_shard
///     (256 by default), so while the idle blocks are fewer than that
///     (idle_blocks_peak reports it) the shards act as one;
///   - which block of a class is taken: blocks of one class hold the same
///     bytes.
inline replay_outcome zeropool_pool_model(std::size_t warm_up, std::size_t steps,
                                          const zeropool_policy& policy) {
    namespace d = zeropool::detail;
    constexpr std::uint32_t none = ~std::uint32_t{0};
    replay_ledger book(warm_up);
    std::vector<std::size_t> shards(d::class_index(d::max_classified_size) + 1, 0); // idle per class
    std::vector<std::uint32_t> cache;                                               // oldest first
    std::size_t idle = 0;
    std::uint32_t last_miss = none;  // thread_cache::repeated_miss
    std::uint32_t last_fit = none;   // thread_cache::note_fit
    std::uint32_t fit_cycled = none; // thread_cache::fit_cycled
    struct live_block {
        std::uint32_t cls = none;     // the block's class; none: not pooled
        std::uint32_t request = none; // the request's class
        bool fitted = false;
    };
    std::array<live_block, mixed_live_blocks> ring{};

    auto take_from_cache = [&](std::uint32_t cls) {
        for (std::size_t i = cache.size(); i-- > 0;) {
            if (cache[i] != cls) continue;
            cache.erase(cache.begin() + static_cast<std::ptrdiff_t>(i));
            return true;
        }
        return false;
    };
    auto fit = [&](std::uint32_t cls, std::size_t bytes) -> std::uint32_t {
        const std::uint32_t lo =
            std::max(cls + 1, d::class_index(model_fit_offset(policy.alignment) + (bytes == 0 ? 1 : bytes)));
        const std::uint32_t hi =
            std::min(cls + policy.max_fit_classes, static_cast<std::uint32_t>(shards.size() - 1));
        std::uint32_t cached = none;
        for (std::uint32_t c : cache)
            if (c >= lo && c <= hi) cached = std::min(cached, c);
        for (std::uint32_t j = lo; j <= hi && j < cached; ++j) {
            if (shards[j] == 0) continue;
            --shards[j];
            return j;
        }
        if (cached != none) take_from_cache(cached);
        return cached;
    };
    auto allocate = [&](std::size_t bytes) -> live_block {
        const std::size_t s = d::classified_size(bytes, policy.alignment);
        if (s < policy.min_buffer_size || s > policy.max_buffer_size) {
            book.fresh(bytes == 0 ? 1 : bytes);
            return live_block{};
        }
        const std::uint32_t cls = d::class_index(s);
        if (take_from_cache(cls)) {
            --idle;
            return live_block{cls, cls, false};
        }
        const bool loop = fit_cycled == cls;
        fit_cycled = none;
        if (loop) last_fit = none;
        const bool batch = last_miss == cls;
        last_miss = cls;
        if (shards[cls] > 0) {
            --shards[cls];
            --idle;
            const std::size_t extra = batch ? std::min(policy.tls_cache_size - cache.size(), shards[cls]) : 0;
            shards[cls] -= extra;
            cache.insert(cache.end(), extra, cls);
            return live_block{cls, cls, false};
        }
        if (!loop && policy.max_fit_classes != 0 && model_fit_allowed(cls, policy.alignment)) {
            const std::uint32_t j = fit(cls, bytes);
            if (j != none) {
                --idle;
                book.fitted();
                last_fit = cls;
                return live_block{j, cls, true};
            }
        }
        book.fresh(d::upstream_size(cls));
        return live_block{cls, cls, false};
    };
    auto deallocate = [&](const live_block& b, std::size_t bytes) {
        if (b.cls == none) return book.released(bytes == 0 ? 1 : bytes);
        if (b.fitted && b.request == last_fit) fit_cycled = b.request;
        if (cache.size() == policy.tls_cache_size) { // the oldest half to the shards
            const std::size_t moving = cache.size() - cache.size() / 2;
            for (std::size_t i = 0; i < moving; ++i) ++shards[cache[i]];
            cache.erase(cache.begin(), cache.begin() + static_cast<std::ptrdiff_t>(moving));
        }
        cache.push_back(b.cls);
        book.idle_blocks(++idle);
    };
    replay_mixed_ring_with(
        book, warm_up, steps,
        [&](std::size_t slot, std::size_t bytes) {
            book.live_added(bytes);
            ring[slot] = allocate(bytes);
        },
        [&](std::size_t slot, std::size_t bytes) {
            book.live_removed(bytes);
            deallocate(ring[slot], bytes);
        });
    return book.result();
}

} // namespace zeropool_perf

#endif // ZEROPOOL_PERF_MIXED_SIZES_HPP
