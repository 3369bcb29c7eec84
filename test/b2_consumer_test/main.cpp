// Consumer of an installed zeropool from a b2 project (test/b2_consumer_test/Jamroot,
// built and run by test/package_consumers.sh).
// Usage: zeropool_b2_consumer VERSION. Exit status 0 when the pool works and
// the installed headers' version macros say VERSION (the version of the installed zeropool.pc).
#include <zeropool/zeropool.hpp>

#include <cstddef>
#include <cstdio>
#include <memory_resource>
#include <string>
#include <utility>
#include <vector>

int main(int argc, char** argv) {
    const std::string headers = std::to_string(ZEROPOOL_VERSION_MAJOR) + "." +
                                std::to_string(ZEROPOOL_VERSION_MINOR) + "." +
                                std::to_string(ZEROPOOL_VERSION_PATCH);
    if (argc != 2 || headers != argv[1]) {
        std::fprintf(stderr, "b2 consumer: headers say %s, zeropool.pc says %s\n", headers.c_str(),
                     argc == 2 ? argv[1] : "(not given)");
        return 1;
    }
    zeropool::sharded_buffer_resource pool;
    constexpr std::size_t size = 256 * 1024;
    for (int i = 0; i < 3; ++i) {
        zeropool::buffer buf = pool.get(size);
        if (buf.size() != size) return 1;
        buf[0] = std::byte{42};
        pool.put(std::move(buf));
    }
    std::pmr::vector<int> v(100000, 7, &pool);
    const zeropool::pool_stats s = pool.stats();
    if (v.back() != 7 || s.thread_cache_hits == 0) {
        std::fprintf(stderr, "b2 consumer: the pool did not reuse its buffer\n");
        return 1;
    }
    std::printf("b2 consumer: ok (zeropool %s)\n", headers.c_str());
    return 0;
}
