// Example: an I/O loop on pooled buffers. Writes a temporary file, then reads
// it back twice in 256 KiB chunks: once with read(2) into buffers taken with
// get() and returned with put(), once with pread(2) at explicit offsets. After
// the first chunk every buffer comes from the pool, not from the heap.
// Exit status 0 when both passes read the whole file and checksums match.
#include <zeropool/zeropool.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

namespace {

constexpr std::size_t chunk = 256 * 1024;
constexpr std::size_t file_size = 8 * 1024 * 1024 + 12345; // not a multiple of chunk

/// Removes the file when it goes out of scope, whatever happens.
struct temp_file {
    std::filesystem::path path;
    ~temp_file() {
        std::error_code ignored;
        std::filesystem::remove(path, ignored);
    }
};

/// A small, order-sensitive checksum (FNV-1a).
std::uint64_t fnv1a(std::uint64_t h, const std::byte* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) h = (h ^ std::to_integer<std::uint64_t>(p[i])) * 0x100000001b3u;
    return h;
}

constexpr std::uint64_t fnv_offset = 0xcbf29ce484222325u;

} // namespace

int main() {
    zeropool::sharded_buffer_resource pool;

    temp_file file{std::filesystem::temp_directory_path() /
                   ("zeropool_io_loop_" + std::to_string(::getpid()) + ".dat")};

    // Write the file, chunk by chunk, from pooled buffers.
    std::uint64_t written_sum = fnv_offset;
    {
        const int fd = ::open(file.path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0) {
            std::perror("io_loop: open for writing");
            return 1;
        }
        for (std::size_t off = 0; off < file_size; off += chunk) {
            const std::size_t n = std::min(chunk, file_size - off);
            zeropool::buffer buf = pool.get(n); // bytes not zeroed: we fill them all
            for (std::size_t i = 0; i < n; ++i) buf[i] = static_cast<std::byte>((off + i) * 31 % 251);
            written_sum = fnv1a(written_sum, buf.data(), n);
            if (::write(fd, buf.data(), n) != static_cast<ssize_t>(n)) {
                std::perror("io_loop: write");
                ::close(fd);
                return 1;
            }
            pool.put(std::move(buf));
        }
        ::close(fd);
    }

    const int fd = ::open(file.path.c_str(), O_RDONLY);
    if (fd < 0) {
        std::perror("io_loop: open for reading");
        return 1;
    }

    // Pass 1: sequential read(2) until end of file.
    std::uint64_t read_sum = fnv_offset;
    std::size_t read_total = 0;
    for (;;) {
        zeropool::buffer buf = pool.get(chunk);
        const ssize_t got = ::read(fd, buf.data(), buf.size());
        if (got < 0) {
            if (errno == EINTR) continue;
            std::perror("io_loop: read");
            ::close(fd);
            return 1;
        }
        if (got == 0) break; // end of file; the buffer goes back with its destructor
        buf.resize(static_cast<std::size_t>(got)); // shrinking keeps the capacity (and size class)
        read_sum = fnv1a(read_sum, buf.data(), buf.size());
        read_total += buf.size();
        pool.put(std::move(buf));
    }

    // Pass 2: pread(2) at explicit offsets, last chunk first.
    std::uint64_t pread_total = 0;
    for (std::size_t off = (file_size - 1) / chunk * chunk;; off -= chunk) {
        zeropool::buffer buf = pool.get(chunk);
        const ssize_t got = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
        if (got < 0) {
            std::perror("io_loop: pread");
            ::close(fd);
            return 1;
        }
        pread_total += static_cast<std::uint64_t>(got);
        const bool first_byte_ok = got == 0 || buf[0] == static_cast<std::byte>(off * 31 % 251);
        pool.put(std::move(buf));
        if (!first_byte_ok) {
            std::fprintf(stderr, "io_loop: pread at %zu returned wrong data\n", off);
            ::close(fd);
            return 1;
        }
        if (off == 0) break;
    }
    ::close(fd);

    const zeropool::pool_stats s = pool.stats();
    std::printf("io_loop: %zu bytes written, read with read() and pread(); "
                "%llu upstream allocations, %llu served from the pool\n",
                file_size, static_cast<unsigned long long>(s.upstream_allocations),
                static_cast<unsigned long long>(s.thread_cache_hits + s.shard_hits));

    if (read_total != file_size || pread_total != file_size || read_sum != written_sum) {
        std::fprintf(stderr, "io_loop: read %zu / pread %llu of %zu bytes, checksum %s\n", read_total,
                     static_cast<unsigned long long>(pread_total), file_size,
                     read_sum == written_sum ? "ok" : "WRONG");
        return 1;
    }
    // One buffer was in use at a time: the pool fetched one block per size
    // class and served every other request from its cache.
    if (s.upstream_allocations > 4 || s.thread_cache_hits == 0) {
        std::fprintf(stderr, "io_loop: the pool did not reuse its buffers\n");
        return 1;
    }
    return 0;
}
