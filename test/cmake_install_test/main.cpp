// Smallest zeropool user: a pool, one get and one put. Exit status 0 on success.
#include <zeropool/zeropool.hpp>

#include <cstddef>
#include <cstdio>
#include <utility>

int main() {
    zeropool::sharded_buffer_resource pool;
    constexpr std::size_t size = 64 * 1024;
    zeropool::buffer buf = pool.get(size);
    if (buf.size() != size || buf.capacity() < size) {
        std::fprintf(stderr, "zeropool consumer: get(%zu) returned size %zu\n", size, buf.size());
        return 1;
    }
    pool.put(std::move(buf));
    if (!buf.empty()) {
        std::fprintf(stderr, "zeropool consumer: put() left the buffer non-empty\n");
        return 1;
    }
    std::printf("zeropool consumer: ok (zeropool %d.%d.%d)\n", ZEROPOOL_VERSION_MAJOR,
                ZEROPOOL_VERSION_MINOR, ZEROPOOL_VERSION_PATCH);
    return 0;
}
