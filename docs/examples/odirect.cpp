// Example: page-aligned buffers for O_DIRECT. Direct I/O needs the buffer
// address, the length and the file offset aligned to the device's block size
// (4096 covers common devices). Ask the pool for alignment 4096: the block is
// pooled like any other, and page-aligned. (zeropool::buffer from get() is NOT
// page-aligned in large blocks: its data starts 16 bytes in, as with malloc.)
// Some filesystems refuse O_DIRECT (tmpfs does, with EINVAL): the example then
// says so and does the same I/O through the page cache.
// Exit status 0 when the data read back equals the data written.
#include <zeropool/zeropool.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

namespace {

constexpr std::size_t page = 4096;
constexpr std::size_t io_size = 1 << 20; // a multiple of page

/// A page-aligned block of `size` bytes from `pool`, given back on destruction.
class aligned_block {
public:
    aligned_block(zeropool::sharded_buffer_resource& pool, std::size_t size)
        : pool_(pool), size_(size), data_(static_cast<unsigned char*>(pool.allocate(size, page))) {}
    ~aligned_block() { pool_.deallocate(data_, size_, page); }
    aligned_block(const aligned_block&) = delete;
    aligned_block& operator=(const aligned_block&) = delete;

    unsigned char* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }

private:
    zeropool::sharded_buffer_resource& pool_;
    std::size_t size_;
    unsigned char* data_;
};

/// Removes the file when it goes out of scope, whatever happens.
struct temp_file {
    std::filesystem::path path;
    ~temp_file() {
        std::error_code ignored;
        std::filesystem::remove(path, ignored);
    }
};

/// Opens `path` with O_DIRECT when the filesystem accepts it, else without.
int open_direct(const std::filesystem::path& path, int flags, bool& direct) {
    direct = true;
    int fd = ::open(path.c_str(), flags | O_DIRECT, 0600);
    if (fd < 0 && errno == EINVAL) {
        direct = false;
        fd = ::open(path.c_str(), flags, 0600);
    }
    return fd;
}

} // namespace

int main() {
    zeropool::sharded_buffer_resource pool;
    temp_file file{std::filesystem::temp_directory_path() /
                   ("zeropool_odirect_" + std::to_string(::getpid()) + ".dat")};

    aligned_block out(pool, io_size);
    aligned_block in(pool, io_size);
    if (reinterpret_cast<std::uintptr_t>(out.data()) % page != 0 ||
        reinterpret_cast<std::uintptr_t>(in.data()) % page != 0) {
        std::fprintf(stderr, "odirect: the pool returned a block that is not page-aligned\n");
        return 1;
    }
    for (std::size_t i = 0; i < io_size; ++i) out.data()[i] = static_cast<unsigned char>(i * 7 % 253);
    std::memset(in.data(), 0, io_size);

    bool direct = false;
    int fd = open_direct(file.path, O_RDWR | O_CREAT | O_EXCL, direct);
    if (fd < 0) {
        std::perror("odirect: open");
        return 1;
    }
    ssize_t wrote = ::pwrite(fd, out.data(), io_size, 0);
    if (wrote < 0 && errno == EINVAL && direct) {
        // Accepted at open, refused at write (some filesystems do this).
        ::close(fd);
        direct = false;
        fd = ::open(file.path.c_str(), O_RDWR);
        wrote = fd < 0 ? -1 : ::pwrite(fd, out.data(), io_size, 0);
    }
    if (!direct)
        std::printf("odirect: the filesystem of %s refuses O_DIRECT; using buffered I/O instead\n",
                    file.path.parent_path().c_str());
    if (wrote != static_cast<ssize_t>(io_size)) {
        std::perror("odirect: pwrite");
        if (fd >= 0) ::close(fd);
        return 1;
    }
    const ssize_t got = ::pread(fd, in.data(), io_size, 0);
    ::close(fd);
    if (got != static_cast<ssize_t>(io_size) || std::memcmp(in.data(), out.data(), io_size) != 0) {
        std::fprintf(stderr, "odirect: read back %zd bytes, %s\n", got,
                     got == static_cast<ssize_t>(io_size) ? "different from those written" : "expected 1 MiB");
        return 1;
    }
    std::printf("odirect: wrote and read back %zu bytes %s, from page-aligned pooled blocks\n", io_size,
                direct ? "with O_DIRECT" : "through the page cache");
    return 0;
}
