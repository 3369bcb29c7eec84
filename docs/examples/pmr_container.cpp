// Example: standard pmr containers on a zeropool pool. Large contiguous
// storage (vector growth, long strings) is pooled and reused; small requests
// (tree and list nodes, below min_buffer_size) pass through to upstream.
// Exit status 0 when the contents are right and the pool reused its blocks.
#include <zeropool/zeropool.hpp>

#include <cstdio>
#include <map>
#include <memory_resource>
#include <string>
#include <vector>

int main() {
    zeropool::sharded_buffer_resource pool;

    for (int round = 0; round < 3; ++round) {
        // Every container, and every string inside them, allocates from the pool.
        std::pmr::vector<double> samples(&pool);
        for (int i = 0; i < 100000; ++i) samples.push_back(i * 0.5);

        std::pmr::map<int, std::pmr::string> names(&pool);
        for (int i = 0; i < 100; ++i) names.emplace(i, std::pmr::string(4096, static_cast<char>('a' + i % 26)));

        if (samples.size() != 100000 || samples.back() != 99999 * 0.5 || names.size() != 100 ||
            names.at(27).get_allocator().resource() != &pool || names.at(27)[0] != 'b') {
            std::fprintf(stderr, "pmr_container: wrong contents\n");
            return 1;
        }
    } // the containers give their storage back; the pool keeps it idle

    const zeropool::pool_stats s = pool.stats();
    std::printf("pmr_container: %llu upstream allocations, %llu served from the pool, "
                "%zu idle buffers (%zu bytes)\n",
                static_cast<unsigned long long>(s.upstream_allocations),
                static_cast<unsigned long long>(s.thread_cache_hits + s.shard_hits), s.idle_blocks,
                s.idle_bytes);
    if (s.thread_cache_hits + s.shard_hits == 0 || s.idle_blocks == 0) {
        std::fprintf(stderr, "pmr_container: the pool served nothing\n");
        return 1;
    }
    return 0;
}
