// What a pool that keeps freed blocks must hold on the mixed-sizes workload
// (workloads 6 and 8), by policy: a model replayed from the benchmark's size
// list (perf/common/mixed_sizes.hpp), not a measurement. It answers why peak
// memory stays well above 1.3x the live bytes for any pool that does not
// split and merge blocks, what zeropool's policy as built holds, and what
// other class tables would hold.
//
//   footprint_model [--steps N] [--warm-up W]
//
// Replays the ring (64 live blocks, 1 KiB..1 MiB log-uniform) for W + N
// steps (default 8192 + 200000, about one benchmark repetition of the
// zeropool row) and prints a Markdown table, one row per policy:
//   exact classes, g per power of two     a freed block serves only requests
//       of its own class, g classes per power of two (zeropool has g = 4,
//       checked against detail/size_class.hpp at start; the other g are
//       what a finer or coarser table would hold);
//   zeropool exact classes (as built, fit off), zeropool fit (as built),
//   bound K                               zeropool_pool_model of
//       mixed_sizes.hpp, the model mixed_sizes_bench reports beside its
//       measurement (model_peak_per_live): zeropool's thread cache and
//       shards for one thread. A request takes an idle block of its class,
//       else (fit on) the smallest idle block of a class in [lo, class + K],
//       lo the smallest class past the request's own whose block holds it
//       behind the fitted block's 16-byte header, unless the thread's loop
//       detector says it has just freed its last fitted block of that class
//       (then a block of its own), else a fresh block of its class; a block keeps its
//       class for life. K = 4 is the default (pool_config::max_fit_classes: a
//       block at most twice the request's class size). The byte cap and
//       release by demand are left out; mixed_sizes.hpp says why that changes
//       nothing here (idle bytes far below the cap, runs shorter than 5 s);
//   classes, no idle blocks               the rounding alone: live blocks
//       rounded up to their class, every freed block returned at once.
// Columns:
//   held peak / live peak      the most upstream bytes held at once (a block
//                              of >= 64 KiB counts 16 bytes more, as
//                              zeropool asks) over the most bytes live at once;
//   fresh blocks after warm-up upstream allocations during the N steps;
//   fresh pages per step       the 4 KiB pages of those blocks per step: each
//                              is a page fault when the step writes it;
//   fitted per step            requests served by a block of a larger class;
//   idle blocks, most at once  the pool's idle blocks at their peak (for
//                              zeropool below max_buffers_per_shard, 256, so
//                              one thread's idle blocks share one shard, as
//                              the model assumes).
#include <zeropool/detail/size_class.hpp>
#include <zeropool/pool_config.hpp>

#include "../common/mixed_sizes.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using zeropool::detail::floor_log2;

/// Block size of a request of `s` bytes with `g` classes per power of two
/// (g a power of two): the geometric scheme of detail/size_class.hpp, which
/// uses g = 4.
std::size_t class_size_with(std::size_t s, unsigned g) {
    if (s <= 2u * std::size_t{g}) return s; // the smallest sizes are classes of their own
    const std::uint64_t v = s - 1;
    const unsigned k = floor_log2(v);
    const unsigned lg = floor_log2(g);
    const unsigned shift = k - lg;
    const std::uint64_t m = (v >> shift) & (g - 1u);
    return (std::size_t{1} << k) + static_cast<std::size_t>((m + 1u) << shift);
}

using zeropool_perf::replay_ledger;
using zeropool_perf::replay_outcome;

/// Exact classes, `g` per power of two: a freed block serves its class only.
replay_outcome exact_classes(unsigned g, std::size_t warm_up, std::size_t steps) {
    return zeropool_perf::exact_class_cache(warm_up, steps, [g](std::size_t bytes) {
        return zeropool::detail::upstream_block_bytes(class_size_with(bytes, g));
    });
}

/// zeropool's classes, every freed block returned at once: the rounding alone.
replay_outcome no_idle_blocks(std::size_t warm_up, std::size_t steps) {
    replay_ledger book(warm_up);
    zeropool_perf::replay_mixed_ring_with(
        book, warm_up, steps,
        [&](std::size_t, std::size_t bytes) {
            book.live_added(bytes);
            book.fresh(zeropool::detail::upstream_size(zeropool::detail::class_index(bytes)));
        },
        [&](std::size_t, std::size_t bytes) {
            book.live_removed(bytes);
            book.released(zeropool::detail::upstream_size(zeropool::detail::class_index(bytes)));
        });
    return book.result();
}

/// Aborts unless class_size_with(s, 4) is zeropool's class size for every
/// size of the workload: the model's g = 4 row is zeropool's table.
void check_against_zeropool() {
    for (std::size_t s : zeropool_perf::mixed_request_sizes()) {
        const std::size_t ours = zeropool::detail::class_size(zeropool::detail::class_index(s));
        if (class_size_with(s, 4) != ours) {
            std::fprintf(stderr, "footprint_model: class of %zu: %zu, zeropool's %zu\n", s,
                         class_size_with(s, 4), ours);
            std::exit(1);
        }
    }
}

void print_row(const std::string& policy, const std::string& needs, const replay_outcome& o,
               std::size_t steps) {
    const double n = steps == 0 ? 1.0 : static_cast<double>(steps);
    std::printf("| %s | %.2f | %zu | %.4f | %.4f | %zu | %s |\n", policy.c_str(),
                o.held_peak / o.live_peak, o.fresh_after_warm_up,
                o.fresh_pages_after_warm_up / n, static_cast<double>(o.fitted_after_warm_up) / n,
                o.idle_blocks_peak, needs.c_str());
}

/// zeropool with the default configuration but `max_fit_classes`.
replay_outcome zeropool_as_built(std::size_t max_fit_classes, std::size_t warm_up, std::size_t steps) {
    return zeropool_perf::zeropool_pool_model(
        warm_up, steps,
        zeropool_perf::zeropool_policy::of(zeropool::pool_config{}.with_max_fit_classes(max_fit_classes)));
}

std::size_t parse_count(const char* flag, const char* value) {
    char* end = nullptr;
    const unsigned long long v = value ? std::strtoull(value, &end, 10) : 0;
    if (!value || end == value || *end != '\0') {
        std::fprintf(stderr, "footprint_model: %s needs a number\n", flag);
        std::exit(2);
    }
    return static_cast<std::size_t>(v);
}

} // namespace

int main(int argc, char** argv) {
    std::size_t steps = 200000;
    std::size_t warm_up = zeropool_perf::mixed_warm_up_steps;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = parse_count(argv[i], argv[i + 1]), ++i;
        else if (std::strcmp(argv[i], "--warm-up") == 0 && i + 1 < argc) warm_up = parse_count(argv[i], argv[i + 1]), ++i;
        else {
            std::fprintf(stderr, "usage: footprint_model [--steps N] [--warm-up W]\n");
            return 2;
        }
    }
    check_against_zeropool();

    std::printf("footprint_model: %zu live blocks, %zu + %zu steps\n\n",
                zeropool_perf::mixed_live_blocks, warm_up, steps);
    std::printf("| policy | held peak / live peak | fresh blocks after warm-up | fresh pages per step | "
                "fitted per step | idle blocks, most at once | needs |\n"
                "|---|---|---|---|---|---|---|\n");
    for (unsigned g : {1u, 2u, 4u, 8u}) {
        const std::string bound = g == 1 ? "< 100%" : g == 2 ? "< 50%" : g == 4 ? "< 25%" : "< 12.5%";
        print_row("exact classes, " + std::to_string(g) + " per power of two",
                  "rounding " + bound, exact_classes(g, warm_up, steps), steps);
    }
    print_row("zeropool exact classes (as built, fit off)", "rounding < 25%",
              zeropool_as_built(zeropool::pool_config::exact_classes_only, warm_up, steps), steps);
    for (std::size_t k : {1u, 2u, 4u, 8u})
        print_row("zeropool fit (as built), bound " + std::to_string(k) + (k == 4 ? " (default)" : ""),
                  "a 16-byte header in each fitted block", zeropool_as_built(k, warm_up, steps), steps);
    print_row("classes, no idle blocks", "every free returned to upstream",
              no_idle_blocks(warm_up, steps), steps);
    return 0;
}
