// What a pool that keeps freed blocks must hold on the mixed-sizes workload
// (workloads 6 and 8), by policy: a model replayed from the benchmark's size
// list (perf/mixed_sizes.hpp), not a measurement. It answers why peak memory
// stays well above 1.3x the live bytes for any pool that does not split and
// merge blocks, and what the alternatives to zeropool's exact size classes
// would buy.
//
//   footprint_model [--steps N] [--warm-up W]
//
// Replays the ring (64 live blocks, 1 KiB..1 MiB log-uniform) for W + N
// steps (default 8192 + 200000, about one benchmark repetition of the
// zeropool row) and prints a Markdown table, one row per policy:
//   exact classes, g per power of two     a freed block serves only requests
//       of its own class (g = 4 is zeropool's table, checked against
//       detail/size_class.hpp at start);
//   best fit within K classes above       a request takes an idle block of
//       its class or of up to K classes larger (zeropool's table), smallest
//       first; the block keeps its size for life, so the pool must record
//       each block's size (deallocate only sees the request's);
//   classes, no idle blocks               the rounding alone: live blocks
//       rounded up to their class, every freed block returned at once.
// Columns:
//   held peak / live peak      the most upstream bytes held at once (a block
//                              of >= 64 KiB counts 16 bytes more, as
//                              zeropool asks) over the most bytes live at once;
//   fresh blocks after warm-up upstream allocations during the N steps;
//   fresh pages per step       the 4 KiB pages of those blocks per step: each
//                              is a page fault when the step writes it.
#include <zeropool/detail/size_class.hpp>

#include "../common/mixed_sizes.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
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

/// zeropool's classes; a miss takes the smallest idle block of up to
/// `reach` classes above. Each live block remembers its own class.
replay_outcome best_fit(std::uint32_t reach, std::size_t warm_up, std::size_t steps) {
    replay_ledger book(warm_up);
    std::map<std::uint32_t, std::size_t> idle;                      // class -> idle blocks
    std::array<std::uint32_t, zeropool_perf::mixed_live_blocks> of{}; // class of each ring slot's block
    zeropool_perf::replay_mixed_ring_with(
        book, warm_up, steps,
        [&](std::size_t slot, std::size_t bytes) {
            book.live_added(bytes);
            const std::uint32_t c = zeropool::detail::class_index(bytes);
            for (std::uint32_t j = c; j <= c + reach; ++j) {
                auto it = idle.find(j);
                if (it != idle.end() && it->second > 0) {
                    --it->second;
                    of[slot] = j;
                    return;
                }
            }
            book.fresh(zeropool::detail::upstream_size(c));
            of[slot] = c;
        },
        [&](std::size_t slot, std::size_t bytes) {
            book.live_removed(bytes);
            ++idle[of[slot]];
        });
    return book.result();
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
    std::printf("| %s | %.2f | %zu | %.4f | %s |\n", policy.c_str(), o.held_peak / o.live_peak,
                o.fresh_after_warm_up,
                steps == 0 ? 0.0 : o.fresh_pages_after_warm_up / static_cast<double>(steps),
                needs.c_str());
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
                "needs |\n|---|---|---|---|---|\n");
    for (unsigned g : {1u, 2u, 4u, 8u}) {
        const std::string bound = g == 1 ? "< 100%" : g == 2 ? "< 50%" : g == 4 ? "< 25%" : "< 12.5%";
        print_row("exact classes, " + std::to_string(g) + " per power of two" +
                      (g == 4 ? " (zeropool)" : ""),
                  "rounding " + bound, exact_classes(g, warm_up, steps), steps);
    }
    for (std::uint32_t reach : {1u, 2u, 4u, 8u})
        print_row("best fit within " + std::to_string(reach) + (reach == 1 ? " class" : " classes") +
                      " above",
                  "a size record per block", best_fit(reach, warm_up, steps), steps);
    print_row("classes, no idle blocks", "every free returned to upstream",
              no_idle_blocks(warm_up, steps), steps);
    return 0;
}
