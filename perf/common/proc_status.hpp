// Shared by the benchmarks that report resident memory (mixed_sizes_bench,
// variable_io_bench): reading /proc/self/status and resetting its peak. Not
// a program of its own.
#ifndef ZEROPOOL_PERF_PROC_STATUS_HPP
#define ZEROPOOL_PERF_PROC_STATUS_HPP

#include <fstream>
#include <string>

namespace zeropool_perf {

/// A field of /proc/self/status in bytes ("VmRSS", "VmHWM"), or 0.
inline double proc_status_bytes(const char* field) {
    std::ifstream in("/proc/self/status");
    std::string key;
    while (in >> key) {
        if (key.size() > 1 && key.compare(0, key.size() - 1, field) == 0 && key.back() == ':') {
            double kib = 0;
            in >> kib;
            return kib * 1024.0;
        }
        std::getline(in, key);
    }
    return 0.0;
}

/// Resets VmHWM to the current RSS (Linux >= 4.0); false when not possible.
inline bool reset_peak_rss() {
    std::ofstream out("/proc/self/clear_refs");
    out << "5";
    out.flush();
    return static_cast<bool>(out);
}

} // namespace zeropool_perf

#endif // ZEROPOOL_PERF_PROC_STATUS_HPP
