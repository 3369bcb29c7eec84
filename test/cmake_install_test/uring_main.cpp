// Consumer of an installed zeropool::uring (the io_uring registry): built by
// test/cmake_install_test with find_package(zeropool CONFIG REQUIRED
// COMPONENTS uring), by test/package_consumers.sh and
// test/deb_package_test.sh with `$(pkg-config --cflags --libs zeropool-uring)`,
// by test/cmake_subdir_test, and by the b2 project test/b2_consumer_test. A pool over a registry: a block is
// registered in a ring, a READ_FIXED reads a file into it, and the block
// leaves the table when the pool gives it back.
// Exit status 0 on success, 77 when this kernel does not let the process set
// up a ring (ctest: skipped), 1 on any failure.
#include <zeropool/io_uring_registry.hpp>
#include <zeropool/zeropool.hpp>

#include <liburing.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory_resource>
#include <string>
#include <unistd.h>

namespace {

int fail(const char* what) {
    std::fprintf(stderr, "uring consumer: %s\n", what);
    return 1;
}

} // namespace

int main() {
    io_uring ring;
    if (io_uring_queue_init(4, &ring, 0) != 0) {
        std::printf("uring consumer: skipped, io_uring_queue_init failed (io_uring is not available here)\n");
        return 77;
    }
    // A small file of known bytes (a buffered read: READ_FIXED does not need O_DIRECT).
    const char* dir = std::getenv("TMPDIR");
    std::string path = std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/zeropool_uring_consumer_XXXXXX";
    const int fd = ::mkstemp(path.data());
    if (fd < 0) return fail("mkstemp failed");
    ::unlink(path.c_str());
    constexpr std::size_t size = 64 * 1024;
    char expected[size];
    for (std::size_t i = 0; i < size; ++i) expected[i] = static_cast<char>(i * 7 + 1);
    if (::write(fd, expected, size) != static_cast<ssize_t>(size)) return fail("write failed");

    int code = 0;
    {
        zeropool::io_uring_registry registry(std::pmr::new_delete_resource());
        if (registry.attach(ring) != 0) return fail("attach failed");
        {
            zeropool::sharded_buffer_resource pool(&registry);
            void* p = pool.allocate(size, 4096);
            const zeropool::fixed_buffer f = registry.find(p, size);
            if (!f) {
                code = fail("the block was not registered");
            } else {
                io_uring_sqe* sqe = io_uring_get_sqe(&ring);
                io_uring_prep_read_fixed(sqe, fd, p, size, 0, f.index);
                io_uring_cqe* cqe = nullptr;
                if (io_uring_submit(&ring) != 1 || io_uring_wait_cqe(&ring, &cqe) != 0)
                    code = fail("submit or wait failed");
                else if (cqe->res != static_cast<int>(size) || std::memcmp(p, expected, size) != 0)
                    code = fail("READ_FIXED did not read the file");
                if (cqe != nullptr) io_uring_cqe_seen(&ring, cqe);
            }
            pool.deallocate(p, size, 4096);
        } // the pool gives its blocks back: each leaves the table
        const zeropool::io_uring_registry_stats s = registry.stats();
        if (code == 0 && (s.registered_blocks != 0 || s.registrations != s.unregistrations || s.registrations == 0))
            code = fail("registrations and unregistrations do not balance");
        registry.detach(ring);
    }
    io_uring_queue_exit(&ring);
    ::close(fd);
    if (code == 0)
        std::printf("uring consumer: ok (zeropool %d.%d.%d)\n", ZEROPOOL_VERSION_MAJOR, ZEROPOOL_VERSION_MINOR,
                    ZEROPOOL_VERSION_PATCH);
    return code;
}
