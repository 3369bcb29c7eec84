// Run under valgrind memcheck by test/valgrind/run_valgrind.sh: the library
// must never read the bytes it hands out. Nothing here writes a block it gets
// (get() buffers, allocate() blocks, pooled and pass-through), and before a
// block is given back its bytes are marked undefined again, so any decision
// the library took on their contents (while pooling, reusing, trimming,
// flushing a thread's cache or destroying the pool) would be reported as a
// use of uninitialised memory. Exits non-zero if the reuse paths were not
// taken (the run would then prove nothing).
#include <zeropool/sharded_buffer_resource.hpp>

#include <cstddef>
#include <cstdio>
#include <memory_resource>
#include <thread>
#include <utility>
#include <vector>

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define ZEROPOOL_HAVE_MEMCHECK 1
#endif
#endif

namespace {

namespace zp = zeropool;

/// Marks `n` bytes at p as never written (a no-op outside valgrind).
void forget(void* p, std::size_t n) noexcept {
#ifdef ZEROPOOL_HAVE_MEMCHECK
    (void)VALGRIND_MAKE_MEM_UNDEFINED(p, n);
#else
    (void)p;
    (void)n;
#endif
}

constexpr std::size_t kib = 1024;
const std::size_t sizes[] = {100, 1 * kib, 4 * kib, 12 * kib, 64 * kib, 100 * kib, 1024 * kib, 3 * 1024 * kib};
const std::size_t alignments[] = {1, 16, 64, 4096, 8192};

/// One round of get/put and allocate/deallocate over every size, nothing written.
void workload(zp::sharded_buffer_resource& pool, int rounds) {
    for (int r = 0; r < rounds; ++r) {
        std::vector<zp::buffer> bufs;
        for (std::size_t s : sizes) bufs.push_back(pool.get(s));
        for (zp::buffer& b : bufs) {
            b.resize(b.size() / 2); // shrinking writes nothing either
            forget(b.data(), b.capacity());
            pool.put(std::move(b));
        }
        std::vector<std::pair<void*, std::pair<std::size_t, std::size_t>>> blocks;
        for (std::size_t s : sizes)
            for (std::size_t a : alignments) blocks.push_back({pool.allocate(s, a), {s, a}});
        for (auto& [p, sa] : blocks) {
            forget(p, sa.first);
            pool.deallocate(p, sa.first, sa.second);
        }
    }
}

} // namespace

int main() {
    int status = 0;
    {
        zp::sharded_buffer_resource pool(
            zp::pool_config{}.with_tls_cache_size(2).with_max_buffers_per_shard(2).with_max_buffer_size(2 * 1024 * kib),
            std::pmr::new_delete_resource());
        workload(pool, 3);
        pool.preallocate(3, 64 * kib); // writes one byte per page: defined
        std::thread a([&] { workload(pool, 2); });
        std::thread b([&] { workload(pool, 2); });
        a.join();
        b.join();
        // A block handed from one thread to another, still unwritten.
        void* p = pool.allocate(64 * kib);
        std::thread c([&] {
            forget(p, 64 * kib);
            pool.deallocate(p, 64 * kib);
            workload(pool, 1);
        });
        c.join();
        const zp::pool_stats st = pool.stats();
        std::printf("uninitialised_bytes: thread cache hits %llu, shard hits %llu, upstream %llu/%llu\n",
                    static_cast<unsigned long long>(st.thread_cache_hits),
                    static_cast<unsigned long long>(st.shard_hits),
                    static_cast<unsigned long long>(st.upstream_allocations),
                    static_cast<unsigned long long>(st.upstream_deallocations));
        if (st.thread_cache_hits == 0 || st.shard_hits == 0 || st.upstream_deallocations == 0) status = 2;
        pool.trim();
    }
    return status;
}
