// Self-check for test/valgrind/run_valgrind.sh: this program reads a byte of
// a fresh get() buffer that nobody wrote and branches on it. memcheck must
// report it (the script expects this run to FAIL); if it did not, a clean run
// of uninitialised_bytes would prove nothing.
#include <zeropool/sharded_buffer_resource.hpp>

#include <cstddef>
#include <cstdio>

int main() {
    zeropool::sharded_buffer_resource pool;
    zeropool::buffer b = pool.get(8192); // fresh from upstream: bytes never written
    volatile std::byte* bytes = b.data();
    if (bytes[100] == std::byte{0x5A}) std::puts("unlikely"); // the deliberate uninitialised read
    pool.put(std::move(b));
    return 0;
}
