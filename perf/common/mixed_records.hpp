// Used by variable_io_bench: the byte sizes of its "mixed" record set, a
// stream of files or records of many sizes as a server or a data loader
// reads them, where every size class sees a different mix of requests. Not a
// program of its own (the build globs perf/*.cpp).
//
// 256 records, log-uniform in [64 KiB, 8 MiB): seven octaves, 28 of the
// pool's size classes, about 9 records per class per pass, 0.77 MiB median,
// 1.67 MiB mean, 428 MiB in all (less than the GPT-2 list's 475 MiB, so a
// pass takes about as long). Drawn from std::mt19937_64 with a fixed seed;
// the mapping from the generator's bits to a size is written out
// (std::uniform_real_distribution differs between standard libraries), so the
// list is the same everywhere: u = (bits >> 11) * 2^-53 in [0, 1), size =
// floor(64 KiB * 2^(7 u)).
#ifndef ZEROPOOL_PERF_MIXED_RECORDS_HPP
#define ZEROPOOL_PERF_MIXED_RECORDS_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace zeropool_perf {

/// Records in the list (one pass).
inline constexpr std::size_t mixed_record_count = 256;
/// The smallest record size; every size is below mixed_record_max_bytes.
inline constexpr std::size_t mixed_record_min_bytes = std::size_t{64} << 10;
inline constexpr std::size_t mixed_record_max_bytes = std::size_t{8} << 20;
/// log2(max / min): the octaves the sizes span.
inline constexpr double mixed_record_octaves = 7.0;
/// The generator's seed.
inline constexpr std::uint64_t mixed_record_seed = 20261124;

static_assert(mixed_record_min_bytes << 7 == mixed_record_max_bytes, "seven octaves");

/// Returns: the sizes of the mixed record set, in stream order (see the top
/// of this file).
inline std::vector<std::size_t> mixed_record_bytes() {
    std::mt19937_64 gen(mixed_record_seed);
    std::vector<std::size_t> out(mixed_record_count);
    for (std::size_t& s : out) {
        const double u = static_cast<double>(gen() >> 11) * 0x1.0p-53; // [0, 1)
        s = static_cast<std::size_t>(static_cast<double>(mixed_record_min_bytes) *
                                     std::exp2(mixed_record_octaves * u));
    }
    return out;
}

} // namespace zeropool_perf

#endif // ZEROPOOL_PERF_MIXED_RECORDS_HPP
