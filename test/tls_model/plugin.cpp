// A plugin that a program dlopen()s: zeropool compiled into a shared object
// (test/tls_model_test.cpp loads it).
#include <zeropool/sharded_buffer_resource.hpp>

#include <cstddef>

/// Returns 0 when a pool in this module serves a second request of a size
/// from the calling thread's cache (its TLS works), else 1.
extern "C" __attribute__((visibility("default"))) int zeropool_plugin_round_trip() {
    constexpr std::size_t size = 64 * 1024;
    zeropool::sharded_buffer_resource pool;
    void* p = pool.allocate(size);
    pool.deallocate(p, size);
    void* q = pool.allocate(size);
    const bool reused = p == q;
    pool.deallocate(q, size);
    return reused && pool.stats().thread_cache_hits >= 1 ? 0 : 1;
}
