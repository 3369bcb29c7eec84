// Example: bounding the memory a pool keeps, and giving it back on demand.
// max_cached_bytes caps the idle bytes of all tiers together; trim() returns
// the idle blocks of the shards and of the calling thread's cache to upstream
// (here, all of them: the program has one thread).
// Exit status 0 when the cap holds and trim empties the pool.
#include <zeropool/zeropool.hpp>

#include <cstddef>
#include <cstdio>
#include <utility>
#include <vector>

namespace {

void print(const char* when, const zeropool::pool_stats& s) {
    std::printf("cap_and_trim: %-28s idle %2zu buffers, %9zu bytes (budget in use %9zu)\n", when,
                s.idle_blocks, s.idle_bytes, s.reserved_bytes);
}

} // namespace

int main() {
    constexpr std::size_t mib = std::size_t{1} << 20;
    // Keep at most 8 MiB idle, whatever the load was.
    const auto config = zeropool::pool_config{}.with_max_cached_bytes(8 * mib);
    zeropool::sharded_buffer_resource pool(config);
    std::printf("cap_and_trim: max_cached_bytes = %zu\n", pool.config().max_cached_bytes);

    {
        // A burst: 32 buffers of 1 MiB in use at once...
        std::vector<zeropool::buffer> burst;
        for (int i = 0; i < 32; ++i) burst.push_back(pool.get(mib));
        print("during the burst:", pool.stats());
        // ...all given back: the pool keeps what fits under the cap, the rest
        // goes back upstream.
        for (auto& b : burst) pool.put(std::move(b));
    }
    const zeropool::pool_stats after_burst = pool.stats();
    print("after the burst:", after_burst);

    pool.trim();
    const zeropool::pool_stats after_trim = pool.stats();
    print("after trim():", after_trim);

    if (after_burst.idle_blocks == 0 || after_burst.idle_bytes > 8 * mib ||
        after_burst.reserved_bytes > 8 * mib) {
        std::fprintf(stderr, "cap_and_trim: the cap did not hold, or nothing was kept\n");
        return 1;
    }
    if (after_trim.idle_blocks != 0 || after_trim.idle_bytes != 0 || after_trim.reserved_bytes != 0 ||
        after_trim.upstream_deallocations != after_trim.upstream_allocations) {
        std::fprintf(stderr, "cap_and_trim: trim() left idle memory in a single-threaded program\n");
        return 1;
    }
    return 0;
}
